/*
 * az_rc.h - the one result type of libazrdma.
 *
 * Every function that can fail returns an enum az_rc and, where the caller
 * passes one, writes a one-line human message (file:line, node, Azure error
 * code and message, and what to do) into a caller-provided buffer.  No
 * function both logs and returns an error: the caller decides.
 */
#ifndef AZRDMA_AZ_RC_H
#define AZRDMA_AZ_RC_H

#include <stddef.h>

/* Recommended size of the message buffers passed as (err, errlen). */
#define AZ_ERRLEN 1024

enum az_rc {
	AZ_OK = 0,
	AZ_ENOMEM,	/* out of memory */
	AZ_EINVAL,	/* bad argument or malformed input */
	AZ_ECONFIG,	/* azrdma.conf or slurm.conf is wrong */
	AZ_EIO,		/* a file or system call failed */
	AZ_EPERM,	/* unsafe or insufficient permissions */
	AZ_EPARSE,	/* malformed JSON or text from a peer */
	AZ_EHTTP,	/* transport: connect, TLS, timeout, dropped */
	AZ_EAUTH,	/* no token could be obtained, or ARM said 401 */
	AZ_EARM,	/* ARM answered with an error envelope */
	AZ_ENOTFOUND,	/* the resource does not exist (404) */
	AZ_ETHROTTLED,	/* still throttled (429) after all retries */
	AZ_ETIMEOUT,	/* an operation or wait ran out of time */
	AZ_ESLURM,	/* a libslurm call failed */
	AZ_EBUSY,	/* a lock is held by someone else */
	AZ_EUNSUPPORTED,/* not available in this build or on this node */
	AZ_RC_COUNT
};

/* Static description of rc; never NULL. */
const char *az_strerror(enum az_rc rc);

/*
 * Format a message into err (if err is not NULL and errlen > 0) and return
 * rc, so that error paths read "return az_err(AZ_EINVAL, err, errlen, ...)".
 */
enum az_rc az_err(enum az_rc rc, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
