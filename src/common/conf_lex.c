/*
 * conf_lex.c - the Key=Value lexer and the diagnostics list.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf_lex.h"

enum az_rc conf_diag_add(struct conf_diags *diags, bool is_error,
			 const char *path, int line, const char *fmt, ...)
{
	struct conf_diag *items;
	struct az_buf b = {0};
	va_list ap;
	char msg[1024];

	if (!diags)
		return AZ_OK;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		buf_printf(&b, "%s:%d: %s", path, line, msg);
	else
		buf_printf(&b, "%s: %s", path, msg);
	if (!b.data)
		return AZ_ENOMEM;
	items = realloc(diags->items, (diags->count + 1) * sizeof(*items));
	if (!items) {
		buf_free(&b);
		return AZ_ENOMEM;
	}
	diags->items = items;
	items[diags->count].is_error = is_error;
	items[diags->count].message = buf_steal(&b);
	diags->count++;
	if (is_error)
		diags->errors++;
	return AZ_OK;
}

static enum az_rc _push_pair(struct conf_line *l, char *key, char *value)
{
	struct conf_pair *p = realloc(l->pairs, (l->count + 1) * sizeof(*p));

	if (!p)
		return AZ_ENOMEM;
	l->pairs = p;
	p[l->count].key = key;
	p[l->count].value = value;
	l->count++;
	return AZ_OK;
}

static enum az_rc _push_line(struct conf_text *t, struct conf_line *l)
{
	struct conf_line *lines;

	if (!l->count)
		return AZ_OK;
	lines = realloc(t->lines, (t->count + 1) * sizeof(*lines));
	if (!lines)
		return AZ_ENOMEM;
	t->lines = lines;
	lines[t->count++] = *l;
	memset(l, 0, sizeof(*l));
	return AZ_OK;
}

/*
 * Join physical lines into one logical line: strip comments, honour a
 * trailing backslash.  Returns the logical text (caller frees) and advances
 * *pos and *lineno past what it consumed.
 */
static char *_logical_line(const char **pos, int *lineno)
{
	struct az_buf b = {0};
	const char *p = *pos;
	bool quoted = false;

	buf_puts(&b, "");
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		const char *next = eol ? eol + 1 : p + n;
		size_t keep = 0;
		bool comment = false;

		(*lineno)++;
		for (size_t i = 0; i < n; i++) {
			if (p[i] == '"')
				quoted = !quoted;
			if (p[i] == '#' && !quoted) {
				comment = true;
				break;
			}
			keep = i + 1;
		}
		while (keep && isspace((unsigned char)p[keep - 1]))
			keep--;
		/* A comment ends the logical line, even after a backslash. */
		if (!comment && keep && p[keep - 1] == '\\') {
			buf_append(&b, p, keep - 1);
			buf_puts(&b, " ");
			p = next;
			continue;
		}
		buf_append(&b, p, keep);
		p = next;
		break;
	}
	*pos = p;
	return buf_steal(&b);
}

enum az_rc conf_lex(const char *path, const char *text, struct conf_text *out,
		    struct conf_diags *diags)
{
	const char *pos = text;
	int lineno = 0;

	memset(out, 0, sizeof(*out));
	out->path = path;
	while (*pos) {
		struct conf_line line = {0};
		int first = lineno + 1;
		char *logical = _logical_line(&pos, &lineno);
		char *p = logical;

		if (!logical)
			return AZ_ENOMEM;
		line.lineno = first;
		for (;;) {
			struct az_buf key = {0}, val = {0};
			char *start;

			while (isspace((unsigned char)*p))
				p++;
			if (!*p)
				break;
			start = p;
			while (*p && *p != '=' && !isspace((unsigned char)*p))
				p++;
			if (*p != '=' || p == start) {
				while (*p && !isspace((unsigned char)*p))
					p++;
				conf_diag_add(diags, true, path, first,
					      "'%.*s' is not a Key=Value pair; "
					      "write it as Key=Value, and quote "
					      "values that hold spaces",
					      (int)(p - start), start);
				continue;
			}
			buf_append(&key, start, (size_t)(p - start));
			p++; /* '=' */
			buf_puts(&val, "");
			while (*p && !isspace((unsigned char)*p)) {
				if (*p == '"') {
					char *q = strchr(p + 1, '"');

					if (!q) {
						conf_diag_add(diags, true, path,
							      first,
							      "unterminated "
							      "quote in value "
							      "of %s",
							      key.data);
						q = p + strlen(p);
						buf_puts(&val, p + 1);
						p = q;
						break;
					}
					buf_append(&val, p + 1,
						   (size_t)(q - p - 1));
					p = q + 1;
					continue;
				}
				buf_append(&val, p, 1);
				p++;
			}
			if (!key.data || !val.data
			    || _push_pair(&line, key.data, val.data) != AZ_OK) {
				buf_free(&key);
				buf_free(&val);
				free(logical);
				return AZ_ENOMEM;
			}
		}
		free(logical);
		if (_push_line(out, &line) != AZ_OK)
			return AZ_ENOMEM;
	}
	out->last_lineno = lineno;
	return AZ_OK;
}

void conf_text_free(struct conf_text *t)
{
	for (size_t i = 0; i < t->count; i++) {
		for (size_t j = 0; j < t->lines[i].count; j++) {
			free(t->lines[i].pairs[j].key);
			free(t->lines[i].pairs[j].value);
		}
		free(t->lines[i].pairs);
	}
	free(t->lines);
	t->lines = NULL;
	t->count = 0;
}
