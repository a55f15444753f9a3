/*
 * hostlist.h - Slurm hostlist expressions ("hb[000-015],a9-x"), through
 * libslurm's own parser so azrdma reads them exactly as Slurm does.
 *
 * Programs link libslurm; plugins get the same symbols from the daemon
 * that loads them.
 */
#ifndef AZRDMA_HOSTLIST_H
#define AZRDMA_HOSTLIST_H

#include <stddef.h>

#include "az_rc.h"

/*
 * Expand expr into *names (count entries, in order, duplicates kept).
 * The caller frees with hostnames_free().
 */
enum az_rc hostlist_expand(const char *expr, char ***names, size_t *count,
			   char *err, size_t errlen);
void hostnames_free(char **names, size_t count);

/* The ranged form of names ("hb[000-003]"); caller frees, NULL if no memory. */
char *hostlist_compress(char *const *names, size_t count);

#endif
