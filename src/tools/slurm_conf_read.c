/*
 * slurm_conf_read.c - read slurm.conf for consistency checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsutil.h"
#include "slurm_conf_read.h"

#define MAX_INCLUDE_DEPTH 8

static enum az_rc _push(struct slurm_conf_line **list, size_t *count,
			const char *file, const struct conf_line *l)
{
	struct slurm_conf_line *grown =
		realloc(*list, (*count + 1) * sizeof(*grown));

	if (!grown)
		return AZ_ENOMEM;
	*list = grown;
	grown[*count].file = file;
	grown[*count].lineno = l->lineno;
	grown[*count].line = l;
	(*count)++;
	return AZ_OK;
}

/* Include paths are relative to the including file's directory. */
static char *_include_path(const char *from, const char *inc)
{
	const char *slash = strrchr(from, '/');
	char *p;

	if (inc[0] == '/' || !slash)
		return strdup(inc);
	p = malloc((size_t)(slash - from) + strlen(inc) + 2);
	if (!p)
		return NULL;
	sprintf(p, "%.*s/%s", (int)(slash - from), from, inc);
	return p;
}

static enum az_rc _read(struct slurm_conf *sc, const char *path, int depth,
			struct conf_diags *diags, char *err, size_t errlen)
{
	struct slurm_conf_file *files, *f;
	enum az_rc rc;
	size_t idx;

	if (depth > MAX_INCLUDE_DEPTH)
		return az_err(AZ_ECONFIG, err, errlen,
			      "%s: Include nested deeper than %d", path,
			      MAX_INCLUDE_DEPTH);
	files = realloc(sc->files, (sc->file_count + 1) * sizeof(*files));
	if (!files)
		return AZ_ENOMEM;
	sc->files = files;
	idx = sc->file_count++;
	f = &sc->files[idx];
	memset(f, 0, sizeof(*f));
	if (!(f->path = strdup(path)))
		return AZ_ENOMEM;
	rc = fs_read_file(path, 16 << 20, &f->text, NULL, err, errlen);
	if (rc != AZ_OK)
		return rc;
	rc = conf_lex(f->path, f->text, &f->lexed, diags);
	if (rc != AZ_OK)
		return rc;
	for (size_t i = 0; i < sc->files[idx].lexed.count; i++) {
		/* sc->files may move while Includes are read: index again. */
		const struct conf_line *l = &sc->files[idx].lexed.lines[i];
		const char *file = sc->files[idx].path;
		const char *first = l->pairs[0].key;

		if (!strcasecmp(first, "Include")) {
			char *inc = _include_path(file, l->pairs[0].value);

			if (!inc)
				return AZ_ENOMEM;
			rc = _read(sc, inc, depth + 1, diags, err, errlen);
			free(inc);
			if (rc != AZ_OK)
				return rc;
			continue;
		}
		if (!strcasecmp(first, "NodeName"))
			rc = _push(&sc->nodes, &sc->node_count, file, l);
		else if (!strcasecmp(first, "PartitionName"))
			rc = _push(&sc->partitions, &sc->partition_count, file,
				   l);
		else if (!strcasecmp(first, "NodeSet")
			 || !strcasecmp(first, "FrontendName")
			 || !strcasecmp(first, "DownNodes"))
			rc = AZ_OK;
		else
			rc = _push(&sc->globals, &sc->global_count, file, l);
		if (rc != AZ_OK)
			return rc;
	}
	return AZ_OK;
}

enum az_rc slurm_conf_read(const char *path, struct slurm_conf **out,
			   struct conf_diags *diags, char *err, size_t errlen)
{
	struct slurm_conf *sc = calloc(1, sizeof(*sc));
	enum az_rc rc;

	*out = NULL;
	if (!sc)
		return AZ_ENOMEM;
	rc = _read(sc, path, 0, diags, err, errlen);
	if (rc != AZ_OK) {
		slurm_conf_free(sc);
		return rc;
	}
	*out = sc;
	return AZ_OK;
}

void slurm_conf_free(struct slurm_conf *sc)
{
	if (!sc)
		return;
	for (size_t i = 0; i < sc->file_count; i++) {
		conf_text_free(&sc->files[i].lexed);
		free(sc->files[i].text);
		free(sc->files[i].path);
	}
	free(sc->files);
	free(sc->globals);
	free(sc->nodes);
	free(sc->partitions);
	free(sc);
}

const char *slurm_conf_line_get(const struct slurm_conf_line *l,
				const char *key)
{
	const char *v = NULL;

	/* sc->files may have moved since the line was recorded; the line
	 * pointer is into lexed.lines, which itself never moves. */
	for (size_t i = 0; i < l->line->count; i++)
		if (!strcasecmp(l->line->pairs[i].key, key))
			v = l->line->pairs[i].value;
	return v;
}

const char *slurm_conf_get(const struct slurm_conf *sc, const char *key,
			   const struct slurm_conf_line **where)
{
	const char *v = NULL;

	for (size_t i = 0; i < sc->global_count; i++) {
		const char *x = slurm_conf_line_get(&sc->globals[i], key);

		if (x) {
			v = x;
			if (where)
				*where = &sc->globals[i];
		}
	}
	return v;
}
