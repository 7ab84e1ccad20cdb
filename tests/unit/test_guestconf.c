/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of guestconf: every volume key of qemu and lxc classified by
 * vzdump's rules, the archive's configuration text read back, field by
 * field comparison (both ways, numbers as numbers), the archive check,
 * telling a new guest under an old vmid from an edited one, and the facts
 * policy judges with.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "guestconf.h"
#include "testutil.h"

#define GIB (UINT64_C(1) << 30)

/* A qemu VM as GET .../config?current=1 answers: typed values. */
static json_t *qemu_json(void)
{
        return json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:i, s:s, s:s}",
                         "name", "thesis-2023", "cores", 2, "memory", "2048", "scsi0",
                         "local-lvm:vm-201-disk-0,iothread=1,size=32G", "ide2",
                         "local:iso/debian-12.iso,media=cdrom", "net0",
                         "virtio=BC:24:11:AA:BB:01,bridge=vmbr0,firewall=1", "smbios1",
                         "uuid=5f6a4b1c-1d2e-4f30-a1b2-c3d4e5f60708", "meta",
                         "creation-qemu=9.2.0,ctime=1700000201", "vmgenid",
                         "0b4d3c2a-1f0e-4d9c-8b7a-695847362514", "cpuunits_share", 0.5,
                         "onboot", 1, "description", "Olga's thesis: keep\nuntil 2027\n",
                         "digest", "0123456789abcdef0123456789abcdef01234567");
}

/* The same VM as vzdump's qemu-server.conf holds it. */
static const char *const QEMU_TEXT =
        "#Olga's thesis%3A keep\n"
        "#until 2027\n"
        "cores: 2\n"
        "cpuunits_share: 0.5\n"
        "ide2: local:iso/debian-12.iso,media=cdrom\n"
        "memory: 2048\n"
        "meta: creation-qemu=9.2.0,ctime=1700000201\n"
        "name: thesis-2023\n"
        "net0: virtio=BC:24:11:AA:BB:01,bridge=vmbr0,firewall=1\n"
        "onboot: 1\n"
        "scsi0: local-lvm:vm-201-disk-0,iothread=1,size=32G\n"
        "smbios1: uuid=5f6a4b1c-1d2e-4f30-a1b2-c3d4e5f60708\n"
        "vmgenid: 0b4d3c2a-1f0e-4d9c-8b7a-695847362514\n"
        "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n";

static void from_json(enum guest_type t, json_t *j, struct guest_conf *c)
{
        char err[256] = "";
        int r = guestconf_from_json(t, j, c, err, sizeof(err));

        json_decref(j);
        if (r < 0)
                fail_msg("guestconf_from_json: %d: %s", r, err);
}

static void from_text(enum guest_type t, const char *text, struct guest_conf *c)
{
        char err[256] = "";
        int r = guestconf_from_text(t, text, c, err, sizeof(err));

        if (r < 0)
                fail_msg("guestconf_from_text: %d: %s", r, err);
}

/* The reason of the first volume an archive would not hold ("" if none). */
static void unarchived(const struct guest_conf *c, char *buf, size_t size)
{
        const struct guest_volume *v = guestconf_unarchived(c);

        buf[0] = '\0';
        if (v)
                guestconf_volume_reason(c, v, buf, size);
}

/* One volume line added to the VM: what guestconf says of it. */
static void qemu_with(const char *key, const char *value, const char *extra_key,
                      const char *extra_value, char *buf, size_t size)
{
        json_t *j = qemu_json();
        struct guest_conf c;

        json_object_set_new(j, key, json_string(value));
        if (extra_key)
                json_object_set_new(j, extra_key, json_string(extra_value));
        from_json(GUEST_QEMU, j, &c);
        unarchived(&c, buf, size);
        guestconf_done(&c);
}

/* One volume line added to the VM (and one more key): the reason an
 * archive would not hold it, "" when it would (or it is no volume). */
struct qemu_case {
        const char *key, *value, *extra_key, *extra_value, *why;
};

static const struct qemu_case QEMU_CASES[] = {
        { "scsi1", "local-lvm:vm-201-disk-1,backup=0,size=500G", NULL, NULL,
          "disk scsi1 (local-lvm:vm-201-disk-1, 500G) is excluded from backup (backup=0)" },
        { "virtio3", "file=ceph:vm-201-disk-4,backup=no,size=1T", NULL, NULL,
          "disk virtio3 (ceph:vm-201-disk-4, 1T) is excluded from backup (backup=0)" },
        { "sata5", "local-lvm:vm-201-disk-2,backup=1,size=8G", NULL, NULL, "" },
        { "unused0", "local-lvm:vm-201-disk-3", NULL, NULL,
          "unused volume unused0 (local-lvm:vm-201-disk-3) is not in any archive: vzdump never archives unused volumes" },
        { "efidisk0", "local-lvm:vm-201-disk-5,efitype=4m,size=4M", NULL, NULL,
          "disk efidisk0 (local-lvm:vm-201-disk-5, 4M) is not backed up (an efidisk without bios 'ovmf')" },
        { "efidisk0", "local-lvm:vm-201-disk-5,efitype=4m,size=4M", "bios", "ovmf", "" },
        { "tpmstate0", "local-lvm:vm-201-disk-6,size=4M,version=v2.0", NULL, NULL, "" },
        { "scsi2", "/dev/disk/by-id/ata-WDC_WD40", NULL, NULL,
          "disk scsi2 (/dev/disk/by-id/ata-WDC_WD40) is a host device: proxreap cannot restore it" },
        { "vmstate", "local-lvm:vm-201-state-suspend", NULL, NULL,
          "saved memory vmstate (local-lvm:vm-201-state-suspend) is not in any archive: vzdump leaves out a hibernated guest's memory" },
        /* Cloud-init drives are generated again; an empty drive is none. */
        { "ide0", "local-lvm:vm-201-cloudinit,media=cdrom,size=4M", NULL, NULL, "" },
        { "ide3", "none,media=cdrom", NULL, NULL, "" },
        /* Only the keys of real buses are volumes. */
        { "scsi31", "local-lvm:x,backup=0", NULL, NULL, "" },
        { "ide4", "local-lvm:x,backup=0", NULL, NULL, "" },
        { "scsi07", "local-lvm:x,backup=0", NULL, NULL, "" },
        { "virtio15", "local-lvm:x,backup=0", NULL, NULL,
          "disk virtio15 (local-lvm:x) is excluded from backup (backup=0)" },
};

static void test_qemu_volumes(void **state)
{
        struct guest_conf c;
        char why[300];

        (void)state;
        from_json(GUEST_QEMU, qemu_json(), &c);
        /* The cd-rom is not the guest's data: only scsi0 is a volume. */
        assert_int_equal(c.n_volumes, 1);
        assert_string_equal(c.volumes[0].key, "scsi0");
        assert_string_equal(c.volumes[0].volid, "local-lvm:vm-201-disk-0");
        assert_int_equal(c.volumes[0].size, 32 * GIB);
        assert_true(c.volumes[0].archived);
        assert_null(guestconf_unarchived(&c));
        guestconf_done(&c);

        for (size_t i = 0; i < sizeof(QEMU_CASES) / sizeof(QEMU_CASES[0]); i++) {
                const struct qemu_case *k = &QEMU_CASES[i];

                qemu_with(k->key, k->value, k->extra_key, k->extra_value, why, sizeof(why));
                if (strcmp(why, k->why) != 0)
                        fail_msg("%s: %s: '%s', expected '%s'", k->key, k->value, why, k->why);
        }
}

/* A volume line proxreap cannot read is no volume it can vouch for. */
static void test_unparsable_volumes(void **state)
{
        static const char *const bad[] = { "local-lvm:a,backup=maybe", "local-lvm:a,size=12X",
                                           "local-lvm:a,file=local-lvm:b", "size=4G", "",
                                           "local-lvm:a,backup=" };
        char why[300], *long_vol = malloc(400);
        struct guest_conf c;
        char err[256];

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                qemu_with("scsi1", bad[i], NULL, NULL, why, sizeof(why));
                assert_contains(why, "disk scsi1 (");
                assert_contains(why, ") cannot be read by proxreap, so it cannot tell whether an archive holds it");
        }
        /* PVE takes a mount point path of any length. */
        memset(long_vol, 'a', 399);
        long_vol[0] = '/';
        long_vol[399] = '\0';
        qemu_with("scsi1", long_vol, NULL, NULL, why, sizeof(why));
        assert_contains(why, "cannot be read by proxreap");
        free(long_vol);
        assert_int_equal(guestconf_from_json(GUEST_QEMU, NULL, &c, err, sizeof(err)), -EBADMSG);
        assert_string_equal(err, "the configuration is not an object");
}

static void test_lxc_volumes(void **state)
{
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "hostname", "ct-lab",
                              "rootfs", "local-lvm:vm-301-disk-0,size=8G", "mp0",
                              "local-lvm:vm-301-disk-1,mp=/data,size=100G", "mp1",
                              "local-lvm:vm-301-disk-2,mp=/srv,backup=1,size=10G", "mp2",
                              "/mnt/host,mp=/host", "mp3", "/dev/sdb1,mp=/dev-data",
                              "unused0", "local-lvm:vm-301-disk-3", "memory", 512);
        struct guest_conf c;
        char why[300];
        const char *want[][2] = {
                { "mp0", "mount point mp0 (local-lvm:vm-301-disk-1, 100G) is excluded from backup (backup=1 is not set)" },
                { "mp1", NULL },
                { "mp2", "mount point mp2 (/mnt/host) is a bind mount, which vzdump leaves out" },
                { "mp3", "mount point mp3 (/dev/sdb1) is a device mount point, which vzdump leaves out" },
                { "rootfs", NULL },
                { "unused0", "unused volume unused0 (local-lvm:vm-301-disk-3) is not in any archive: vzdump never archives unused volumes" },
        };

        (void)state;
        from_json(GUEST_LXC, j, &c);
        assert_int_equal(c.n_volumes, 6);
        for (size_t i = 0; i < c.n_volumes; i++) {
                assert_string_equal(c.volumes[i].key, want[i][0]);
                assert_int_equal(c.volumes[i].archived, want[i][1] == NULL);
                if (want[i][1]) {
                        guestconf_volume_reason(&c, &c.volumes[i], why, sizeof(why));
                        assert_string_equal(why, want[i][1]);
                }
        }
        assert_int_equal(c.volumes[4].size, 8 * GIB);
        guestconf_done(&c);
}

static void test_archive_text(void **state)
{
        struct guest_conf c;
        char err[256] = "";

        (void)state;
        from_text(GUEST_QEMU, QEMU_TEXT, &c);
        assert_string_equal(guestconf_field(&c, "name"), "thesis-2023");
        assert_string_equal(guestconf_field(&c, "description"), "Olga's thesis: keep\nuntil 2027");
        assert_true(json_is_true(json_object_get(c.map, "scsi0")));
        assert_int_equal(json_object_size(c.map), 1);
        assert_int_equal(c.n_volumes, 1);
        guestconf_done(&c);

        /* Sections after the guest's own (snapshots, pending) are not its
         * configuration; raw lxc keys are not compared. */
        from_text(GUEST_LXC,
                  "arch: amd64\nhostname: ct\nrootfs: local:301/vm-301-disk-0.raw,size=8G\n"
                  "lxc.apparmor.profile: unconfined\n\n[before-upgrade]\nhostname: old\n",
                  &c);
        assert_string_equal(guestconf_field(&c, "hostname"), "ct");
        assert_null(guestconf_field(&c, "lxc.apparmor.profile"));
        assert_null(c.map);
        guestconf_done(&c);

        assert_int_equal(guestconf_from_text(GUEST_QEMU, "name: a\nthis is no line\n", &c, err,
                                             sizeof(err)),
                         -EBADMSG);
        assert_string_equal(err, "line 2 of the archived configuration cannot be parsed");
        from_text(GUEST_LXC, "hostname: a\nlxc.cgroup2.devices.allow: c 10:200 rwm\n", &c);
        assert_true(c.raw_lxc);
        guestconf_done(&c);
}

static void test_compare(void **state)
{
        struct guest_conf live, arch, other;
        json_t *j;
        char why[300];

        (void)state;
        from_json(GUEST_QEMU, qemu_json(), &live);
        from_text(GUEST_QEMU, QEMU_TEXT, &arch);
        /* Integers, reals and the description as the file writes them. */
        assert_int_equal(guestconf_compare(&live, "now", &arch, "in the archive", why, sizeof(why)), 0);
        assert_int_equal(guestconf_compare(&arch, "in the archive", &live, "now", why, sizeof(why)), 0);
        /* lock, parent and digest are not the guest's description. */
        j = qemu_json();
        json_object_set_new(j, "lock", json_string("backup"));
        json_object_set_new(j, "parent", json_string("proxreap-20261207T010203Z"));
        from_json(GUEST_QEMU, j, &other);
        assert_int_equal(guestconf_compare(&other, "now", &arch, "in the archive", why, sizeof(why)), 0);
        guestconf_done(&other);

        j = qemu_json();
        json_object_set_new(j, "memory", json_string("4096"));
        from_json(GUEST_QEMU, j, &other);
        assert_int_equal(guestconf_compare(&arch, "in the archive", &other, "now", why, sizeof(why)), 1);
        assert_string_equal(why, "'memory' is '2048' in the archive and '4096' now");
        guestconf_done(&other);

        /* A key on one side only, whichever side. */
        j = qemu_json();
        json_object_set_new(j, "scsi1", json_string("local-lvm:vm-201-disk-1,size=8G"));
        from_json(GUEST_QEMU, j, &other);
        assert_int_equal(guestconf_compare(&arch, "in the archive", &other, "now", why, sizeof(why)), 1);
        assert_string_equal(why, "'scsi1' is 'local-lvm:vm-201-disk-1,size=8G' now and not set in the archive");
        assert_int_equal(guestconf_compare(&other, "now", &arch, "in the archive", why, sizeof(why)), 1);
        guestconf_done(&other);

        from_text(GUEST_LXC, "hostname: thesis-2023\n", &other);
        assert_int_equal(guestconf_compare(&live, "now", &other, "in the archive", why, sizeof(why)), 1);
        assert_string_equal(why, "it is a qemu now and a lxc in the archive");
        guestconf_done(&other);
        guestconf_done(&live);
        guestconf_done(&arch);
}

static void test_check_archive(void **state)
{
        struct guest_conf pin, arch;
        char why[400], *text;

        (void)state;
        from_json(GUEST_QEMU, qemu_json(), &pin);
        from_text(GUEST_QEMU, QEMU_TEXT, &arch);
        assert_int_equal(guestconf_check_archive(&pin, &arch, why, sizeof(why)), 0);
        guestconf_done(&arch);

        /* The same configuration, but the disk is not in the archive. */
        text = strdup(QEMU_TEXT);
        *strstr(text, "#qmdump#map") = '\0';
        from_text(GUEST_QEMU, text, &arch);
        free(text);
        assert_int_equal(guestconf_check_archive(&pin, &arch, why, sizeof(why)), 1);
        assert_string_equal(why, "the archive does not hold disk scsi0 (local-lvm:vm-201-disk-0)");
        guestconf_done(&arch);

        /* Another guest's configuration. */
        from_text(GUEST_QEMU,
                  "cores: 2\nmemory: 2048\nname: other-vm\n"
                  "scsi0: local-lvm:vm-202-disk-0,size=32G\n"
                  "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n",
                  &arch);
        assert_int_equal(guestconf_check_archive(&pin, &arch, why, sizeof(why)), 1);
        assert_contains(why, "the archive holds another configuration: ");
        guestconf_done(&arch);
        guestconf_done(&pin);

        /* lxc: the archive holds what its own rules archive. */
        from_json(GUEST_LXC,
                  json_pack("{s:s, s:s, s:s}", "hostname", "ct", "rootfs",
                            "local-lvm:vm-301-disk-0,size=8G", "mp0",
                            "local-lvm:vm-301-disk-1,mp=/data,backup=1,size=10G"),
                  &pin);
        from_text(GUEST_LXC,
                  "hostname: ct\nmp0: local-lvm:vm-301-disk-1,mp=/data,backup=1,size=10G\n"
                  "rootfs: local-lvm:vm-301-disk-0,size=8G\n",
                  &arch);
        assert_int_equal(guestconf_check_archive(&pin, &arch, why, sizeof(why)), 0);
        guestconf_done(&arch);
        from_text(GUEST_LXC,
                  "hostname: ct\nmp0: local-lvm:vm-301-disk-1,mp=/data,backup=1,size=12G\n"
                  "rootfs: local-lvm:vm-301-disk-0,size=8G\n",
                  &arch);
        assert_int_equal(guestconf_check_archive(&pin, &arch, why, sizeof(why)), 1);
        assert_string_equal(why, "the archive holds another configuration: 'mp0' is "
                                 "'local-lvm:vm-301-disk-1,mp=/data,backup=1,size=10G' in the guest "
                                 "and 'local-lvm:vm-301-disk-1,mp=/data,backup=1,size=12G' in the archive");
        guestconf_done(&arch);
        guestconf_done(&pin);
}

static void test_identity(void **state)
{
        static const char *const keys[][2] = {
                { "smbios1", "uuid=00000000-1d2e-4f30-a1b2-c3d4e5f60708" },
                { "vmgenid", "ffffffff-1f0e-4d9c-8b7a-695847362514" },
                { "meta", "creation-qemu=9.2.0,ctime=1800000000" },
                { "net0", "virtio=BC:24:11:00:00:99,bridge=vmbr0,firewall=1" },
        };
        struct guest_conf pin, now;
        json_t *j;

        (void)state;
        from_json(GUEST_QEMU, qemu_json(), &pin);
        /* An edit keeps the identity. */
        j = qemu_json();
        json_object_set_new(j, "memory", json_string("8192"));
        json_object_set_new(j, "net1", json_string("virtio=BC:24:11:00:00:77,bridge=vmbr1"));
        json_object_set_new(j, "name", json_string("renamed"));
        from_json(GUEST_QEMU, j, &now);
        assert_int_equal(guestconf_identity(&pin, &now), IDENTITY_SAME);
        guestconf_done(&now);
        /* A new guest differs in any of these. */
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                j = qemu_json();
                json_object_set_new(j, keys[i][0], json_string(keys[i][1]));
                from_json(GUEST_QEMU, j, &now);
                if (guestconf_identity(&pin, &now) != IDENTITY_OTHER)
                        fail_msg("a different %s is not another guest", keys[i][0]);
                guestconf_done(&now);
        }
        guestconf_done(&pin);

        from_json(GUEST_LXC, json_pack("{s:s, s:s}", "hostname", "ct", "net0", "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:12:34:56,type=veth"), &pin);
        from_json(GUEST_LXC, json_pack("{s:s, s:s}", "hostname", "ct", "net0", "name=eth0,bridge=vmbr0,hwaddr=bc:24:11:12:34:56,ip=dhcp,type=veth"), &now);
        assert_int_equal(guestconf_identity(&pin, &now), IDENTITY_SAME);
        guestconf_done(&now);
        from_json(GUEST_LXC, json_pack("{s:s, s:s}", "hostname", "ct", "net0", "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:65:43:21,type=veth"), &now);
        assert_int_equal(guestconf_identity(&pin, &now), IDENTITY_OTHER);
        guestconf_done(&now);
        /* The same MAC (a restore without unique, or a rename) under another
         * name: not sure. */
        from_json(GUEST_LXC, json_pack("{s:s, s:s}", "hostname", "someone-elses", "net0", "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:12:34:56,type=veth"), &now);
        assert_int_equal(guestconf_identity(&pin, &now), IDENTITY_UNSURE);
        guestconf_done(&now);
        /* Nothing to tell by: not the same for sure. */
        from_json(GUEST_LXC, json_pack("{s:s, s:i}", "hostname", "ct", "memory", 1024), &now);
        assert_int_equal(guestconf_identity(&pin, &now), IDENTITY_UNSURE);
        guestconf_done(&now);
        guestconf_done(&pin);
}

static void test_facts(void **state)
{
        json_t *snaps = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "name",
                                  "before-upgrade", "description", "", "name",
                                  "proxreap-20261201T000000Z", "description",
                                  "taken by proxreap before reap R-000004", "name",
                                  "proxreap-mine", "description", "a user's own", "name",
                                  "current", "description", "You are here!");
        struct guest_conf cur, pend;
        struct conf_facts f;
        json_t *j = qemu_json();

        (void)state;
        json_object_set_new(j, "protection", json_integer(1));
        json_object_set_new(j, "unused0", json_string("local-lvm:vm-201-disk-9"));
        from_json(GUEST_QEMU, j, &cur);
        j = qemu_json();
        json_object_set_new(j, "protection", json_integer(1));
        json_object_set_new(j, "unused0", json_string("local-lvm:vm-201-disk-9"));
        from_json(GUEST_QEMU, j, &pend);
        guestconf_facts(&cur, &pend, snaps, &f);
        assert_true(f.protection);
        assert_false(f.pending);
        /* proxreap's own snapshot is not the guest's; a user's
         * "proxreap-" name without our description is. */
        assert_int_equal(f.snapshots, 2);
        assert_string_equal(f.snapshot_names, "before-upgrade, proxreap-mine");
        assert_contains(f.unkept, "unused volume unused0");
        guestconf_done(&pend);

        j = qemu_json();
        json_object_set_new(j, "memory", json_string("4096"));
        from_json(GUEST_QEMU, j, &pend);
        guestconf_facts(&cur, &pend, NULL, &f);
        assert_true(f.pending);
        assert_int_equal(f.snapshots, 0);
        guestconf_done(&pend);
        guestconf_done(&cur);

        /* The snapshot that tells proxreap's guest apart: its name with
         * proxreap's description, nothing else. */
        struct guest_reading rd = { .snapshots = snaps };
        assert_true(guest_reading_has_our_snapshot(&rd, "proxreap-20261201T000000Z"));
        assert_false(guest_reading_has_our_snapshot(&rd, "proxreap-mine"));
        assert_false(guest_reading_has_our_snapshot(&rd, "proxreap-20261202T000000Z"));
        assert_false(guest_reading_has_our_snapshot(&rd, ""));
        rd.snapshots = NULL;
        assert_false(guest_reading_has_our_snapshot(&rd, "proxreap-20261201T000000Z"));
        json_decref(snaps);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_qemu_volumes),   cmocka_unit_test(test_unparsable_volumes),
                cmocka_unit_test(test_lxc_volumes),    cmocka_unit_test(test_archive_text),
                cmocka_unit_test(test_compare),        cmocka_unit_test(test_check_archive),
                cmocka_unit_test(test_identity),       cmocka_unit_test(test_facts),
        };

        return cmocka_run_group_tests_name("guestconf", tests, NULL, NULL);
}
