/*
 * conf_lex.h - split a Slurm-style configuration text into logical lines of
 * Key=Value pairs.  Internal to the config parser (conf.c) and azrdma-config,
 * which reads slurm.conf with the same rules.
 *
 * Rules: '#' starts a comment outside double quotes; a '\' at the end of a
 * line continues it; values may be double-quoted to hold spaces or '#';
 * pairs are separated by white space.
 */
#ifndef AZRDMA_CONF_LEX_H
#define AZRDMA_CONF_LEX_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "az_rc.h"
#include "conf.h"

struct conf_pair {
	char *key;
	char *value;
};

struct conf_line {
	int lineno;		/* first physical line of the logical line */
	struct conf_pair *pairs;
	size_t count;
};

struct conf_text {
	const char *path;	/* for messages; not owned */
	struct conf_line *lines;
	size_t count;
	int last_lineno;	/* number of physical lines */
};

/*
 * Lex text.  Tokens that are not Key=Value are reported into diags as
 * errors ("path:line: ...") and skipped.  The caller frees *out's contents
 * with conf_text_free().
 */
enum az_rc conf_lex(const char *path, const char *text, struct conf_text *out,
		    struct conf_diags *diags);
void conf_text_free(struct conf_text *t);

/* Append a diagnostic "path:line: <fmt>" (line <= 0: "path: <fmt>"). */
enum az_rc conf_diag_add(struct conf_diags *diags, bool is_error,
			 const char *path, int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif
