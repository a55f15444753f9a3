/*
 * hostlist.c - hostlist expressions through libslurm.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hostlist.h"
#include "sl_compat.h"

/*
 * libslurm reads an unbalanced "hb[1-" as the host "hb]" rather than
 * refusing it, so brackets are checked here first.
 */
static bool _balanced(const char *expr)
{
	int depth = 0;

	for (const char *p = expr; *p; p++) {
		if (*p == '[' && ++depth > 1)
			return false;
		if (*p == ']' && --depth < 0)
			return false;
	}
	return depth == 0;
}

enum az_rc hostlist_expand(const char *expr, char ***names, size_t *count,
			   char *err, size_t errlen)
{
	sl_hostlist_t hl;
	char **out = NULL;
	size_t n = 0;
	char *host;
	int total;

	*names = NULL;
	*count = 0;
	if (!expr || !*expr)
		return az_err(AZ_EINVAL, err, errlen, "empty hostlist");
	hl = _balanced(expr) ? slurm_hostlist_create(expr) : NULL;
	if (!hl)
		return az_err(AZ_EINVAL, err, errlen,
			      "'%s' is not a valid hostlist expression "
			      "(e.g. hb[000-015],hb-x)", expr);
	total = slurm_hostlist_count(hl);
	if (total <= 0) {
		slurm_hostlist_destroy(hl);
		return az_err(AZ_EINVAL, err, errlen,
			      "'%s' names no hosts", expr);
	}
	out = calloc((size_t)total, sizeof(*out));
	if (!out) {
		slurm_hostlist_destroy(hl);
		return AZ_ENOMEM;
	}
	while ((host = slurm_hostlist_shift(hl))) {
		/* slurm_hostlist_shift() results are malloc()ed: ours now. */
		if (n < (size_t)total)
			out[n++] = host;
		else
			free(host);
	}
	slurm_hostlist_destroy(hl);
	*names = out;
	*count = n;
	return AZ_OK;
}

void hostnames_free(char **names, size_t count)
{
	if (!names)
		return;
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

char *hostlist_compress(char *const *names, size_t count)
{
	sl_hostlist_t hl = slurm_hostlist_create(NULL);
	size_t size = 256;
	char *s = NULL;

	if (!hl)
		return NULL;
	for (size_t i = 0; i < count; i++)
		slurm_hostlist_push_host(hl, names[i]);
	/*
	 * slurm_hostlist_ranged_string() is in every release (its _malloc
	 * twin left libslurm in 23.11); it says -1 when buf is too small.
	 */
	for (;;) {
		char *bigger = realloc(s, size);

		if (!bigger) {
			free(s);
			s = NULL;
			break;
		}
		s = bigger;
		if (slurm_hostlist_ranged_string(hl, size, s) >= 0)
			break;
		size *= 2;
	}
	slurm_hostlist_destroy(hl);
	return s;
}
