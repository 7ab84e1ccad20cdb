/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The journal and restore commands of proxreap (the CLI only).
 * Exit status: 0 success, 1 failure, 2 usage.
 */
#ifndef PROXREAP_PROXREAP_OPS_H
#define PROXREAP_PROXREAP_OPS_H

#include "config.h"
#include "pve.h"

/* argv[0] = "journal", argv[1] = list|show|verify. */
int cmd_journal(const struct config *c, int argc, char **argv);
/* argv[0] = "restore". */
int cmd_restore(const struct config *c, struct pve *p, int argc, char **argv);
/* proxreap archives [--json]: every reap the archives on the archive
 * storage tell of (their notes), from any node. */
int cmd_archives(const struct config *c, struct pve *p, int argc, char **argv);
/* proxreap abort ID|VMID|NAME: a reap under way called off before its destroy. */
int cmd_abort(const struct config *c, struct pve *p, int argc, char **argv);

#endif
