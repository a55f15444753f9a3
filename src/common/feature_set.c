/*
 * feature_set.c - node features and image-feature rules.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "feature_set.h"

char *features_static(const struct conf_domain *d)
{
	struct az_buf b = {0};

	buf_printf(&b, "azure,%s,%s", d->name, d->size->feature);
	if (d->size->rdma != RDMA_NONE)
		buf_printf(&b, ",rdma,%s", rdma_kind_name(d->size->rdma));
	return b.data ? buf_steal(&b) : NULL;
}

char *feature_of_image(const struct conf_image *img)
{
	struct az_buf b = {0};

	buf_printf(&b, FEATURE_IMAGE_PREFIX "%s", img->name);
	return b.data ? buf_steal(&b) : NULL;
}

char *features_images(const struct azrdma_conf *c)
{
	struct az_buf b = {0};

	buf_puts(&b, "");
	for (size_t i = 0; i < c->image_count; i++)
		buf_printf(&b, "%s" FEATURE_IMAGE_PREFIX "%s", i ? "," : "",
			   c->images[i].name);
	return b.data ? buf_steal(&b) : NULL;
}

bool feature_is_image(const struct azrdma_conf *c, const char *f,
		      const struct conf_image **img)
{
	size_t n = strlen(FEATURE_IMAGE_PREFIX);

	if (img)
		*img = NULL;
	if (strncasecmp(f, FEATURE_IMAGE_PREFIX, n))
		return false;
	if (img)
		*img = conf_image_find(c, f + n);
	return true;
}

/* Does the comma list (of length len) hold token? */
static bool _has_token(const char *list, size_t len, const char *token,
		       size_t tlen)
{
	const char *p = list, *end = list + len;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);

		if (n == tlen && !strncmp(p, token, n))
			return true;
		p += n + 1;
	}
	return false;
}

/* Append the tokens of list that out does not hold yet, keeping order. */
static void _append_new(struct az_buf *out, const char *list,
			const struct azrdma_conf *skip_images_of)
{
	const char *p = list;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char tok[256];

		if (n && n < sizeof(tok)) {
			memcpy(tok, p, n);
			tok[n] = '\0';
			if (!(skip_images_of
			      && feature_is_image(skip_images_of, tok, NULL))
			    && !_has_token(out->data, out->len, tok, n)) {
				if (out->len)
					buf_puts(out, ",");
				buf_puts(out, tok);
			}
		}
		p = comma ? comma + 1 : NULL;
	}
}

char *features_union(const char *a, const char *b)
{
	struct az_buf out = {0};

	buf_puts(&out, "");
	_append_new(&out, a, NULL);
	_append_new(&out, b, NULL);
	return out.data ? buf_steal(&out) : NULL;
}

char *features_without_images(const struct azrdma_conf *c, const char *list)
{
	struct az_buf out = {0};

	buf_puts(&out, "");
	_append_new(&out, list, c);
	return out.data ? buf_steal(&out) : NULL;
}

static bool _is_separator(char c)
{
	return c && (strchr("&|,[]()*:!", c) || c == ' ' || c == '\t');
}

bool feature_next_name(const char *expr, const char **cursor,
		       struct feature_name *name)
{
	const char *p = *cursor;

	while (p && *p) {
		const char *start;

		while (_is_separator(*p))
			p++;
		start = p;
		while (*p && !_is_separator(*p))
			p++;
		if (p == start)
			break;
		if (start > expr && start[-1] == '*'
		    && strspn(start, "0123456789") == (size_t)(p - start))
			continue; /* a count, not a name */
		*cursor = p;
		name->s = start;
		name->len = (size_t)(p - start);
		return true;
	}
	*cursor = p;
	return false;
}

/*
 * The image an "img_..." name asks for, or NULL when no Image line has that
 * name.  A name too long to be any image's names none.
 */
static const struct conf_image *_image_named(const struct azrdma_conf *c,
					     const struct feature_name *f)
{
	size_t n = strlen(FEATURE_IMAGE_PREFIX);
	char name[128];

	if (f->len - n >= sizeof(name))
		return NULL;
	memcpy(name, f->s + n, f->len - n);
	name[f->len - n] = '\0';
	return conf_image_find(c, name);
}

enum az_rc features_job_check(const struct azrdma_conf *c, const char *expr,
			      const struct conf_image **image, char *err,
			      size_t errlen)
{
	size_t prefix = strlen(FEATURE_IMAGE_PREFIX);
	const struct conf_image *found = NULL;
	struct feature_name first = {0}, f;
	const char *cursor = expr;
	bool complex = false;
	int images = 0;

	if (image)
		*image = NULL;
	if (!expr)
		return AZ_OK;
	/* Anything but plain AND ('&' or ',') makes images ambiguous. */
	complex = strpbrk(expr, "|[]()*") != NULL;
	while (feature_next_name(expr, &cursor, &f)) {
		const struct conf_image *img;

		if (f.len < prefix
		    || strncasecmp(f.s, FEATURE_IMAGE_PREFIX, prefix))
			continue;
		img = _image_named(c, &f);
		if (!img)
			return az_err(AZ_EINVAL, err, errlen,
				      "%.*s names no image; the images are "
				      "those of azrdma.conf's Image lines "
				      "(see 'scontrol show config')",
				      (int)(f.len > 80 ? 80 : f.len), f.s);
		if (images++ == 0) {
			found = img;
			first = f;
		} else if (img != found) {
			return az_err(AZ_EINVAL, err, errlen,
				      "%.*s and %.*s: a node runs one image, so "
				      "ask for one",
				      (int)first.len, first.s, (int)f.len, f.s);
		}
	}
	if (images && complex)
		return az_err(AZ_EINVAL, err, errlen,
			      "%.*s cannot be combined with |, [], () or counts; "
			      "join it with & only, e.g. -C '%.*s&rdma'",
			      (int)first.len, first.s, (int)first.len, first.s);
	if (image)
		*image = found;
	return AZ_OK;
}
