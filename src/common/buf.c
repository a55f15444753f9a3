/*
 * buf.c - growable byte strings.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static enum az_rc _reserve(struct az_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	size_t cap;
	char *p;

	if (need <= b->cap)
		return AZ_OK;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	if (!b->wipe) {
		p = realloc(b->data, cap);
		if (!p)
			return AZ_ENOMEM;
	} else {
		/* realloc() may move the bytes and free the old copy as is. */
		p = malloc(cap);
		if (!p)
			return AZ_ENOMEM;
		if (b->data) {
			memcpy(p, b->data, b->len + 1);
			explicit_bzero(b->data, b->cap);
			free(b->data);
		}
	}
	b->data = p;
	b->cap = cap;
	return AZ_OK;
}

enum az_rc buf_append(struct az_buf *b, const void *data, size_t len)
{
	if (_reserve(b, len) != AZ_OK)
		return AZ_ENOMEM;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return AZ_OK;
}

enum az_rc buf_puts(struct az_buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

enum az_rc buf_printf(struct az_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return AZ_EINVAL;
	if (_reserve(b, (size_t)n) != AZ_OK)
		return AZ_ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return AZ_OK;
}

void buf_reset(struct az_buf *b)
{
	if (b->data && b->wipe)
		explicit_bzero(b->data, b->cap);
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *buf_steal(struct az_buf *b)
{
	char *s = b->data;

	if (!s)
		s = calloc(1, 1);
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}

void buf_free(struct az_buf *b)
{
	if (b->data && b->wipe)
		explicit_bzero(b->data, b->cap);
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
