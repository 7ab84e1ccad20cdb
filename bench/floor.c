// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * The floor of the benchmark (bench/bench.py): the least work that fetches
 * what proxreapd fetches and parses it.
 *
 * Every interval, one GET /api2/json/cluster/resources?type=vm with one
 * libcurl easy handle kept across polls (keep-alive, TLS verified against
 * --cacert, the API token header). With --parser yajl (the default) the
 * body goes, as it arrives, to yajl's callback parser, whose callbacks
 * only track where they are and read each guest entry's "vmid", "cpu" and
 * "mem"; with --parser jansson it is collected into one buffer (reused)
 * and parsed with jansson's tree parser, then walked for the same fields.
 * Nothing is kept between polls: no windows, no verdicts, no files. What
 * proxreapd does beyond this is what it costs to be a reaper.
 *
 * The fields read are summed into a checksum that is printed, so that no
 * compiler can drop the parse.
 *
 * Protocol: after each poll one JSON line {"poll": N, "cpu": user+system
 * CPU seconds so far, "guests": entries, "idle": 0, "checksum": ...}; at
 * the end {"done": true, "state_bytes": 0, "peak_rss_kib": VmHWM}. A failure: a message on
 * stderr, exit 1.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <yajl/yajl_parse.h>

struct poll {
        /* yajl */
        yajl_handle yajl;
        int depth; /* 1: the answer object, 2: "data", 3: an entry */
        bool in_data, data_key;
        int field; /* 0 none, 1 vmid, 2 cpu, 3 mem */
        /* jansson */
        char *body;
        size_t len, cap;
        bool use_jansson;
        /* results */
        uint64_t guests;
        double checksum;
        bool failed;
};

static int on_start_map(void *ctx)
{
        struct poll *p = ctx;

        p->depth++;
        if (p->in_data && p->depth == 3)
                p->guests++;
        return 1;
}

static int on_end_map(void *ctx)
{
        struct poll *p = ctx;

        p->depth--;
        return 1;
}

static int on_start_array(void *ctx)
{
        struct poll *p = ctx;

        p->depth++;
        if (p->depth == 2 && p->data_key)
                p->in_data = true;
        return 1;
}

static int on_end_array(void *ctx)
{
        struct poll *p = ctx;

        if (p->depth == 2)
                p->in_data = false;
        p->depth--;
        return 1;
}

static int on_map_key(void *ctx, const unsigned char *key, size_t n)
{
        struct poll *p = ctx;

        if (p->depth == 1)
                p->data_key = n == 4 && memcmp(key, "data", 4) == 0;
        p->field = 0;
        if (p->in_data && p->depth == 3) {
                if (n == 4 && memcmp(key, "vmid", 4) == 0)
                        p->field = 1;
                else if (n == 3 && memcmp(key, "cpu", 3) == 0)
                        p->field = 2;
                else if (n == 3 && memcmp(key, "mem", 3) == 0)
                        p->field = 3;
        }
        return 1;
}

static int on_number(void *ctx, const char *s, size_t n)
{
        struct poll *p = ctx;
        char buf[64];

        if (!p->field || n >= sizeof(buf))
                return 1;
        memcpy(buf, s, n);
        buf[n] = '\0';
        p->checksum += strtod(buf, NULL);
        p->field = 0;
        return 1;
}

static const yajl_callbacks callbacks = {
        .yajl_number = on_number,
        .yajl_start_map = on_start_map,
        .yajl_map_key = on_map_key,
        .yajl_end_map = on_end_map,
        .yajl_start_array = on_start_array,
        .yajl_end_array = on_end_array,
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
        struct poll *p = userdata;
        size_t n = size * nmemb;

        if (!p->use_jansson) {
                if (yajl_parse(p->yajl, (const unsigned char *)data, n) != yajl_status_ok) {
                        p->failed = true;
                        return 0;
                }
                return n;
        }
        if (p->len + n > p->cap) {
                size_t cap = (p->len + n) * 2;
                char *b = realloc(p->body, cap);

                if (!b) {
                        p->failed = true;
                        return 0;
                }
                p->body = b;
                p->cap = cap;
        }
        memcpy(p->body + p->len, data, n);
        p->len += n;
        return n;
}

static int walk_tree(struct poll *p)
{
        json_error_t err;
        json_t *doc = json_loadb(p->body, p->len, 0, &err), *data, *g;
        size_t i;

        if (!doc) {
                fprintf(stderr, "floor: bad JSON: %s (line %d)\n", err.text, err.line);
                return -1;
        }
        data = json_object_get(doc, "data");
        json_array_foreach(data, i, g) {
                p->guests++;
                p->checksum += json_number_value(json_object_get(g, "vmid")) +
                               json_number_value(json_object_get(g, "cpu")) +
                               json_number_value(json_object_get(g, "mem"));
        }
        json_decref(doc);
        return 0;
}

static double cpu_seconds(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* VmHWM: getrusage()'s ru_maxrss starts from the RSS of the process that
 * forked this one (the harness). */
static long peak_rss_kib(void)
{
        FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        long kib = 0;

        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

static double monotonic(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_secret(const char *path)
{
        static char secret[256];
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f) {
                fprintf(stderr, "floor: %s: %s\n", path, strerror(errno));
                return NULL;
        }
        n = fread(secret, 1, sizeof(secret) - 1, f);
        fclose(f);
        while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == ' ' || secret[n - 1] == '\r'))
                n--;
        secret[n] = '\0';
        return secret;
}

static void usage(void)
{
        fprintf(stderr, "usage: floor --url https://HOST:PORT --token-id ID --token-file FILE "
                        "--cacert FILE --polls N --interval SECONDS [--parser yajl|jansson]\n");
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                { "url", required_argument, NULL, 'u' },   { "token-id", required_argument, NULL, 'i' },
                { "token-file", required_argument, NULL, 't' },
                { "cacert", required_argument, NULL, 'c' },
                { "polls", required_argument, NULL, 'n' }, { "interval", required_argument, NULL, 's' },
                { "parser", required_argument, NULL, 'p' }, { NULL, 0, NULL, 0 }
        };
        const char *base = NULL, *token_id = NULL, *token_file = NULL, *cacert = NULL, *secret;
        char url[1024], auth[512];
        long polls = 0, code = 0;
        double interval = -1, start;
        struct poll p = { 0 };
        struct curl_slist *headers = NULL;
        CURL *curl;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
                switch (c) {
                case 'u':
                        base = optarg;
                        break;
                case 'i':
                        token_id = optarg;
                        break;
                case 't':
                        token_file = optarg;
                        break;
                case 'c':
                        cacert = optarg;
                        break;
                case 'n':
                        polls = strtol(optarg, NULL, 10);
                        break;
                case 's':
                        interval = strtod(optarg, NULL);
                        break;
                case 'p':
                        if (strcmp(optarg, "jansson") != 0 && strcmp(optarg, "yajl") != 0) {
                                fprintf(stderr, "floor: --parser: '%s' is neither yajl nor jansson\n",
                                        optarg);
                                return 1;
                        }
                        p.use_jansson = strcmp(optarg, "jansson") == 0;
                        break;
                default:
                        usage();
                        return 1;
                }
        }
        if (!base || !token_id || !token_file || !cacert || polls < 1 || interval < 0) {
                usage();
                return 1;
        }
        secret = read_secret(token_file);
        if (!secret)
                return 1;
        snprintf(url, sizeof(url), "%s/api2/json/cluster/resources?type=vm", base);
        snprintf(auth, sizeof(auth), "Authorization: PVEAPIToken=%s=%s", token_id, secret);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl = curl_easy_init();
        headers = curl_slist_append(headers, auth);
        if (!curl || !headers) {
                fprintf(stderr, "floor: out of memory\n");
                return 1;
        }
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_CAINFO, cacert);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &p);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
        start = monotonic();
        for (long n = 1; n <= polls; n++) {
                double delay = start + (double)(n - 1) * interval - monotonic();
                CURLcode r;

                if (delay > 0) {
                        struct timespec ts = { (time_t)delay,
                                               (long)((delay - (double)(time_t)delay) * 1e9) };

                        nanosleep(&ts, NULL);
                }
                p.guests = 0;
                p.len = 0;
                p.depth = 0;
                p.in_data = p.data_key = false;
                if (!p.use_jansson) {
                        p.yajl = yajl_alloc(&callbacks, NULL, &p);
                        if (!p.yajl) {
                                fprintf(stderr, "floor: out of memory\n");
                                return 1;
                        }
                }
                r = curl_easy_perform(curl);
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
                if (r != CURLE_OK || code != 200 || p.failed) {
                        fprintf(stderr, "floor: poll %ld: %s, HTTP %ld%s\n", n, curl_easy_strerror(r),
                                code, p.failed ? ", bad JSON" : "");
                        return 1;
                }
                if (p.use_jansson) {
                        if (walk_tree(&p) < 0)
                                return 1;
                } else {
                        if (yajl_complete_parse(p.yajl) != yajl_status_ok) {
                                fprintf(stderr, "floor: poll %ld: truncated JSON\n", n);
                                return 1;
                        }
                        yajl_free(p.yajl);
                }
                printf("{\"poll\": %ld, \"cpu\": %.6f, \"guests\": %" PRIu64
                       ", \"idle\": 0, \"checksum\": %.6g}\n",
                       n, cpu_seconds(), p.guests, p.checksum);
                fflush(stdout);
        }
        printf("{\"done\": true, \"state_bytes\": 0, \"peak_rss_kib\": %ld}\n", peak_rss_kib());
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        free(p.body);
        curl_global_cleanup();
        return 0;
}
