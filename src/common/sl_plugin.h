/*
 * sl_plugin.h - glue between libazrdma and the Slurm daemon a plugin is
 * loaded into.
 *
 * Plugins are not linked with libslurm: the symbols below resolve at
 * dlopen() time from slurmctld, slurmd, srun or slurmstepd (libslurmfull).
 * Only symbols present in all of them are used, so the same module loads
 * everywhere (reference/slurm-22.05-contracts.md 2.5, 2.7).
 */
#ifndef AZRDMA_SL_PLUGIN_H
#define AZRDMA_SL_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

/*
 * Slurm's logger (slurm_info, slurm_error, slurm_verbose, slurm_debug,
 * slurm_debug2) as spank.h declares it, and its allocator, all exported by
 * libslurmfull.
 */
#include <slurm/spank.h>

extern char *slurm_xstrdup(const char *str);
extern void slurm_xfree(void **ptr);
extern void *slurm_xcalloc(size_t count, size_t size, bool clear, bool try_,
			   const char *file, int line, const char *func);
extern void *slurm_xrecalloc(void **item, size_t count, size_t size,
			     bool clear, bool try_, const char *file, int line,
			     const char *func);

/* Grow a Slurm-allocated array to count zeroed-on-growth elements. */
#define sl_xrecalloc(ptr, count, size)                                         \
	slurm_xrecalloc((void **)&(ptr), (count), (size), true, false,         \
			__FILE__, __LINE__, __func__)

/* Route libazrdma's log into Slurm's log, each line prefixed by prefix. */
void sl_plugin_log_init(const char *prefix);
/* Log at the daemon's current level (it may change while it runs). */
void sl_plugin_log_sync(void);

/*
 * Load azrdma.conf for a plugin (files it names are not checked: on a
 * compute node they do not exist).  Logs every warning and error through
 * Slurm with its file:line; returns NULL if the file is unusable.  Free
 * with conf_free().
 */
struct azrdma_conf *sl_plugin_conf_load(void);

/*
 * The same, for a plugin that can work on a node without azrdma.conf (a
 * compute node of configless Slurm, or one it was never copied to): when
 * there is no file, NULL with *absent true and nothing logged (the caller
 * says once what it does without); an unusable file is an error as above.
 * *path (if not NULL) gets the path looked at, malloc()ed.
 */
struct azrdma_conf *sl_plugin_conf_load_optional(bool *absent, char **path);

#endif
