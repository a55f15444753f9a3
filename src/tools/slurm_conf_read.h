/*
 * slurm_conf_read.h - just enough of slurm.conf for azrdma-config check:
 * the global keys, the NodeName and PartitionName lines, following
 * Include lines.  Keys compare case-insensitively, as Slurm's do.
 */
#ifndef AZRDMA_SLURM_CONF_READ_H
#define AZRDMA_SLURM_CONF_READ_H

#include <stddef.h>

#include "az_rc.h"
#include "conf_lex.h"

struct slurm_conf_line {
	const char *file;	/* belongs to struct slurm_conf_file */
	int lineno;
	const struct conf_line *line;	/* belongs to struct slurm_conf_file */
};

struct slurm_conf_file {
	char *path;
	char *text;
	struct conf_text lexed;
};

struct slurm_conf {
	struct slurm_conf_file *files;
	size_t file_count;
	struct slurm_conf_line *globals;	/* lines of global keys */
	size_t global_count;
	struct slurm_conf_line *nodes;		/* NodeName= lines */
	size_t node_count;
	struct slurm_conf_line *partitions;	/* PartitionName= lines */
	size_t partition_count;
};

/*
 * Read path (and what it includes).  Problems (unreadable files, lexer
 * errors) go to diags; the caller frees *out with slurm_conf_free().
 */
enum az_rc slurm_conf_read(const char *path, struct slurm_conf **out,
			   struct conf_diags *diags, char *err, size_t errlen);
void slurm_conf_free(struct slurm_conf *sc);

/* The value of global key (the last one set), or NULL; *where gets its
 * line if where is not NULL. */
const char *slurm_conf_get(const struct slurm_conf *sc, const char *key,
			   const struct slurm_conf_line **where);

/* The value of key on one line, or NULL. */
const char *slurm_conf_line_get(const struct slurm_conf_line *l,
				const char *key);

#endif
