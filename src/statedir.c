/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define MAX_LINKS 40

static int walk(int at, const char *path, unsigned *links);

static bool trusted_uid(uid_t uid)
{
        return uid == 0 || uid == geteuid();
}

/* The link name (lstat: link) in the directory dirfd, followed only where
 * root or this process made it, in a directory of theirs: a link another
 * user made (even in a sticky directory like /tmp) could send root into a
 * directory of that user's choosing. */
static int follow(int dirfd, const char *name, const struct stat *link, unsigned *links)
{
        char target[PATH_MAX];
        struct stat st;
        ssize_t n;

        if (++*links > MAX_LINKS)
                return -ELOOP;
        if (fstat(dirfd, &st) < 0)
                return -errno;
        if (!trusted_uid(st.st_uid) || !trusted_uid(link->st_uid))
                return -EPERM;
        n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n < 0)
                return -errno;
        target[n] = '\0';
        return walk(dirfd, target, links);
}

/* One component c of a walk from the directory fd: an O_PATH fd of it. */
static int step(int fd, const char *c, unsigned *links)
{
        struct stat st;
        int next;

        if (fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (S_ISLNK(st.st_mode))
                return follow(fd, c, &st, links);
        next = openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
                return -errno;
        return next;
}

/* The directory at path (relative to at unless absolute), one component
 * at a time: an O_PATH fd, or -errno (-EPERM: a link follow() refuses). */
static int walk(int at, const char *path, unsigned *links)
{
        char *copy = strdup(path), *save = NULL, *c;
        int fd = copy ? openat(at, path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC)
                      : -1;
        int r = fd < 0 ? (copy ? -errno : -ENOMEM) : 0;

        for (c = r < 0 ? NULL : strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                int next = step(fd, c, links);

                close(fd);
                fd = next;
                if (fd < 0) {
                        r = fd;
                        break;
                }
        }
        free(copy);
        return r < 0 ? r : fd;
}

int statedir_open_dir(const char *path, char *name, size_t namesz)
{
        const char *slash = strrchr(path, '/');
        unsigned links = 0;
        char *dir;
        int at, fd;

        if (!*path || (slash && !slash[1]))
                return -EISDIR;
        if (snprintf(name, namesz, "%s", slash ? slash + 1 : path) >= (int)namesz)
                return -ENAMETOOLONG;
        dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
        if (!dir)
                return -ENOMEM;
        at = walk(AT_FDCWD, dir, &links);
        free(dir);
        if (at < 0)
                return at;
        /* Readable (fsync, a listing) where the walk held a mere path. */
        fd = openat(at, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        close(at);
        if (fd < 0)
                return -errno;
        return fd;
}

/* The checks on an opened file (see the header). */
static int check_file(const struct statedir_file *f, const struct stat *st, const char *path,
                      char *err, size_t errsz)
{
        const char *problem = NULL;
        char buf[128];

        if (!S_ISREG(st->st_mode))
                problem = "is not a regular file";
        else if (st->st_nlink != 1) {
                snprintf(buf, sizeof(buf), "has %lu names (a hard link to a file elsewhere?)",
                         (unsigned long)st->st_nlink);
                problem = buf;
        } else if (st->st_uid != f->dir.st_uid && st->st_uid != geteuid()) {
                snprintf(buf, sizeof(buf), "belongs to uid %u, not to %u (the owner of its directory)",
                         (unsigned)st->st_uid, (unsigned)f->dir.st_uid);
                problem = buf;
        }
        if (!problem)
                return 0;
        snprintf(err, errsz, "'%s' %s: refusing to use it", path, problem);
        return -EPERM;
}

static int open_existing(struct statedir_file *f, enum statedir_mode mode)
{
        int flags = O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;

        flags |= mode == STATEDIR_APPEND ? O_RDWR | O_APPEND : O_RDONLY;
        return openat(f->dirfd, f->name, flags);
}

/* Opens it, creating it when missing (mode APPEND). */
static int open_or_create(struct statedir_file *f, enum statedir_mode mode)
{
        for (int tries = 0; tries < 3; tries++) {
                int fd = open_existing(f, mode);

                if (fd >= 0 || errno != ENOENT || mode != STATEDIR_APPEND)
                        return fd < 0 ? -errno : fd;
                fd = statedir_create(f->dirfd, f->name, 0640);
                if (fd >= 0) {
                        f->created = true;
                        /* Every writer appends: a record never lands over
                         * another's. */
                        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_APPEND) < 0) {
                                int r = -errno;

                                close(fd);
                                return r;
                        }
                        return fd;
                }
                if (fd != -EEXIST)
                        return fd;
                /* Created by someone else meanwhile: open that one. */
        }
        return -EAGAIN;
}

int statedir_open(const char *path, enum statedir_mode mode, struct statedir_file *ret,
                  char *err, size_t errsz)
{
        struct statedir_file f = { .fd = -1 };
        struct stat st;
        int r;

        f.dirfd = statedir_open_dir(path, f.name, sizeof(f.name));
        if (f.dirfd == -ENOENT && mode == STATEDIR_READ) {
                f.dirfd = -1;
                *ret = f; /* no directory, no file: a reader's empty */
                return 0;
        }
        if (f.dirfd == -EPERM) {
                snprintf(err, errsz,
                         "the way to '%s' passes a symbolic link in a directory of another user: refusing to follow it",
                         path);
                return f.dirfd;
        }
        if (f.dirfd < 0) {
                snprintf(err, errsz, "cannot open the directory of '%s': %s", path,
                         strerror(-f.dirfd));
                return f.dirfd;
        }
        if (fstat(f.dirfd, &f.dir) < 0) {
                r = -errno;
                snprintf(err, errsz, "cannot stat the directory of '%s': %s", path, strerror(-r));
                goto fail;
        }
        r = open_or_create(&f, mode);
        if (r == -ENOENT && mode == STATEDIR_READ) {
                *ret = f; /* a reader's missing file: empty */
                return 0;
        }
        if (r < 0) {
                snprintf(err, errsz, "cannot open '%s': %s%s", path, strerror(-r),
                         r == -ELOOP ? " (it is a symbolic link: refusing to follow it)" : "");
                goto fail;
        }
        f.fd = r;
        /* O_NONBLOCK only kept a planted FIFO from blocking the open. */
        (void)fcntl(f.fd, F_SETFL, fcntl(f.fd, F_GETFL) & ~O_NONBLOCK);
        if (fstat(f.fd, &st) < 0)
                r = -errno;
        else
                r = check_file(&f, &st, path, err, errsz);
        if (r < 0)
                goto fail;
        *ret = f;
        return 0;
fail:
        statedir_close(&f);
        return r;
}

void statedir_close(struct statedir_file *f)
{
        if (f->fd >= 0)
                close(f->fd);
        if (f->dirfd >= 0)
                close(f->dirfd);
        f->fd = f->dirfd = -1;
}

bool statedir_same(const struct statedir_file *f)
{
        struct stat a, b;

        return fstat(f->fd, &a) == 0 && fstatat(f->dirfd, f->name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
               a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

bool statedir_may_truncate(const struct statedir_file *f)
{
        struct stat st;

        /* Its own file in its own directory: the daemon's journal for the
         * daemon; never the daemon's file for root. */
        return f->created ||
               (fstat(f->fd, &st) == 0 && st.st_uid == geteuid() && f->dir.st_uid == geteuid());
}

int statedir_own_like_dir(const struct statedir_file *f)
{
        struct stat st;

        if (!f->created || geteuid() != 0)
                return 0;
        if (fstat(f->fd, &st) < 0)
                return -errno;
        if (st.st_uid == f->dir.st_uid && st.st_gid == f->dir.st_gid)
                return 0;
        return fchown(f->fd, f->dir.st_uid, f->dir.st_gid) < 0 ? -errno : 0;
}

int statedir_create(int dirfd, const char *name, mode_t mode)
{
        int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);

        if (fd < 0)
                return -errno;
        return fd;
}

int statedir_create_temp(int dirfd, const char *name, mode_t mode, char *tmp, size_t tmpsz)
{
        static const char letters[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        uint64_t seed = now_monotonic_usec() ^ ((uint64_t)getpid() << 32);

        for (int tries = 0; tries < 100; tries++) {
                char suffix[7];
                int fd;

                for (size_t i = 0; i < 6; i++) {
                        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                        suffix[i] = letters[(seed >> 33) % (sizeof(letters) - 1)];
                }
                suffix[6] = '\0';
                if (snprintf(tmp, tmpsz, "%s.%s", name, suffix) >= (int)tmpsz)
                        return -ENAMETOOLONG;
                fd = statedir_create(dirfd, tmp, mode);
                if (fd != -EEXIST)
                        return fd;
        }
        return -EEXIST;
}
