/*
 * js_env.c - NAME=value arrays that slurmctld owns; see js_env.h.
 */
#include <string.h>

#include "js_env.h"
#include "sl_plugin.h"

/* Variables merged per pass; a profile with more takes several passes. */
#define MERGE_BATCH 64

const char *js_env_get(char **env, uint32_t n, const char *name)
{
	size_t len = strlen(name);

	for (uint32_t i = 0; env && i < n; i++)
		if (env[i] && env[i][0] == name[0]
		    && !strncmp(env[i], name, len) && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

static char *_entry(const struct js_var *v)
{
	size_t vlen = strlen(v->value);
	char *e = slurm_xcalloc(v->name_len + vlen + 2, 1, false, false,
	                        __FILE__, __LINE__, __func__);

	memcpy(e, v->name, v->name_len);
	e[v->name_len] = '=';
	memcpy(e + v->name_len + 1, v->value, vlen + 1);
	return e;
}

static size_t _merge_batch(char ***env, uint32_t *n, const struct js_var *vars,
                           size_t count, bool replace, bool *wrote)
{
	bool present[MERGE_BATCH] = {false};
	/* First characters of the names: most entries stop at this test. */
	uint64_t first[4] = {0};
	size_t missing = count, written = 0;

	for (size_t k = 0; k < count; k++) {
		unsigned char c = (unsigned char)vars[k].name[0];

		first[c >> 6] |= UINT64_C(1) << (c & 63);
	}
	for (uint32_t i = 0; *env && i < *n && missing; i++) {
		const char *e = (*env)[i];
		unsigned char c;

		if (!e)
			continue;
		c = (unsigned char)e[0];
		if (!(first[c >> 6] & (UINT64_C(1) << (c & 63))))
			continue;
		for (size_t k = 0; k < count; k++) {
			const struct js_var *v = &vars[k];

			if (present[k] || e[0] != v->name[0]
			    || strncmp(e, v->name, v->name_len)
			    || e[v->name_len] != '=')
				continue;
			present[k] = true;
			missing--;
			if (replace) {
				slurm_xfree((void **)&(*env)[i]);
				(*env)[i] = _entry(v);
				written++;
				if (wrote)
					wrote[k] = true;
			}
			break;
		}
	}
	if (wrote)
		for (size_t k = 0; k < count; k++)
			if (present[k] && !replace)
				wrote[k] = false;
	if (!missing)
		return written;
	sl_xrecalloc(*env, *n + missing + 1, sizeof(char *));
	for (size_t k = 0; k < count; k++) {
		if (present[k])
			continue;
		(*env)[(*n)++] = _entry(&vars[k]);
		written++;
		if (wrote)
			wrote[k] = true;
	}
	return written;
}

size_t js_env_merge(char ***env, uint32_t *n, const struct js_var *vars,
                    size_t count, bool replace, bool *wrote)
{
	size_t written = 0;

	for (size_t at = 0; at < count; at += MERGE_BATCH) {
		size_t batch = count - at < MERGE_BATCH ? count - at
		                                        : MERGE_BATCH;

		written += _merge_batch(env, n, vars + at, batch, replace,
		                        wrote ? wrote + at : NULL);
	}
	return written;
}

char *js_xconcat(const char *const *parts, size_t count)
{
	size_t len = 0;
	char *s, *p;

	for (size_t i = 0; i < count; i++)
		len += strlen(parts[i]);
	s = slurm_xcalloc(len + 1, 1, false, false, __FILE__, __LINE__,
	                  __func__);
	p = s;
	for (size_t i = 0; i < count; i++) {
		size_t l = strlen(parts[i]);

		memcpy(p, parts[i], l);
		p += l;
	}
	*p = '\0';
	return s;
}
