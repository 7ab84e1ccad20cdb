/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * statedir: files in directories that another user may write: the state
 * directory (/var/lib/proxreap) and the runtime directory (/run/proxreap)
 * belong to the service user, and whatever runs as that user (a
 * compromised daemon) can plant links there for root's proxreap to follow.
 *
 * So a file there is opened relative to its directory, never through a
 * link (O_NOFOLLOW), and checked with fstat: a regular file with one name
 * (no hard link to a file elsewhere), owned by the directory's owner or by
 * this process. Only a file this process has just created may be given
 * another owner, and only a file this process owns, in a directory it
 * owns, may be truncated. On the way to the directory a symbolic link is
 * followed only where root or this process made it, in a directory of
 * theirs.
 */
#ifndef PROXREAP_STATEDIR_H
#define PROXREAP_STATEDIR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct statedir_file {
        int dirfd; /* its directory */
        int fd; /* -1: it does not exist (a reader's missing file) */
        char name[NAME_MAX + 1]; /* within the directory */
        struct stat dir; /* the directory, when it was opened */
        bool created; /* this process created it just now */
};

enum statedir_mode {
        STATEDIR_READ, /* O_RDONLY; a missing file or directory is no error (fd -1) */
        STATEDIR_APPEND, /* O_RDWR | O_APPEND, created (0640) when missing */
};

/* Opens path as described above. A file that fails the checks, or a way
 * through another user's link, is refused with -EPERM (err names it and
 * why). */
int statedir_open(const char *path, enum statedir_mode mode, struct statedir_file *ret,
                  char *err, size_t errsz);
void statedir_close(struct statedir_file *f);

/* The file is still the one at its name (not replaced or removed). */
bool statedir_same(const struct statedir_file *f);
/* May this process truncate it (it created it, or owns it and its
 * directory)? */
bool statedir_may_truncate(const struct statedir_file *f);
/* A file this process just created gets the owner of its directory: root
 * (the CLI) writing the daemon's journal keeps it the daemon's. */
int statedir_own_like_dir(const struct statedir_file *f);

/* A new file named name in dirfd, exclusively (O_CREAT | O_EXCL |
 * O_NOFOLLOW): a link planted at that name makes it fail. */
int statedir_create(int dirfd, const char *name, mode_t mode);
/* A temporary beside name ("name.XXXXXX", exclusive), its name in tmp. */
int statedir_create_temp(int dirfd, const char *name, mode_t mode, char *tmp, size_t tmpsz);
/* The directory of path (O_DIRECTORY), and the last component in name;
 * -EPERM: the way there passes another user's symbolic link. */
int statedir_open_dir(const char *path, char *name, size_t namesz);

#endif
