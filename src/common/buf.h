/*
 * buf.h - a growable byte string, always NUL-terminated.
 *
 * The owner of a struct az_buf frees its data with buf_free().  A zeroed
 * struct is an empty, valid buffer.
 */
#ifndef AZRDMA_BUF_H
#define AZRDMA_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "az_rc.h"

struct az_buf {
	char *data;	/* NUL-terminated when len > 0 or after any append */
	size_t len;
	size_t cap;
	/* A secret (a form with the client secret, a token response): memory
	 * it leaves, when it grows, is reset or freed, is wiped first. */
	bool wipe;
};

enum az_rc buf_append(struct az_buf *b, const void *data, size_t len);
enum az_rc buf_puts(struct az_buf *b, const char *s);
enum az_rc buf_printf(struct az_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_reset(struct az_buf *b);	/* keep the memory, empty the string */
/* Hand the string to the caller (who frees it with free(), or wipes it
 * first if it is a secret); b becomes empty. */
char *buf_steal(struct az_buf *b);
void buf_free(struct az_buf *b);

#endif
