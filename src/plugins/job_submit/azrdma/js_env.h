/*
 * js_env.h - NAME=value arrays that slurmctld owns (a job's environment,
 * its spank_job_env), edited in place with Slurm's allocator.
 *
 * Built for the submit path: one pass over the array for any number of
 * variables, one growth of the array, one allocation per entry written.
 */
#ifndef AZRDMA_JS_ENV_H
#define AZRDMA_JS_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One variable to write: the first name_len characters of name. */
struct js_var {
	const char *name;
	size_t name_len;
	const char *value;
};

/* The value of NAME in an array of n entries, or NULL. */
const char *js_env_get(char **env, uint32_t n, const char *name);

/*
 * Write vars[0..count) into the Slurm-allocated array *env of *n entries
 * (kept NULL-terminated).  A variable already present is replaced if
 * replace, else left as it is.  Returns how many were written; wrote, if
 * not NULL, gets per variable whether it was.
 */
size_t js_env_merge(char ***env, uint32_t *n, const struct js_var *vars,
                    size_t count, bool replace, bool *wrote);

/* A Slurm-allocated string of the concatenation of parts[0..count). */
char *js_xconcat(const char *const *parts, size_t count);

#endif
