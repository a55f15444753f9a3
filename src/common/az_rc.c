/*
 * az_rc.c - descriptions of the libazrdma result codes.
 */
#include <stdarg.h>
#include <stdio.h>

#include "az_rc.h"

static const char *const _descriptions[AZ_RC_COUNT] = {
	[AZ_OK] = "success",
	[AZ_ENOMEM] = "out of memory",
	[AZ_EINVAL] = "invalid argument or input",
	[AZ_ECONFIG] = "configuration error",
	[AZ_EIO] = "I/O error",
	[AZ_EPERM] = "unsafe or insufficient permissions",
	[AZ_EPARSE] = "malformed response",
	[AZ_EHTTP] = "HTTP transport error",
	[AZ_EAUTH] = "authentication failed",
	[AZ_EARM] = "Azure Resource Manager error",
	[AZ_ENOTFOUND] = "resource not found",
	[AZ_ETHROTTLED] = "throttled by Azure",
	[AZ_ETIMEOUT] = "timed out",
	[AZ_ESLURM] = "Slurm API error",
	[AZ_EBUSY] = "busy: held by another process",
	[AZ_EUNSUPPORTED] = "not supported here",
};

const char *az_strerror(enum az_rc rc)
{
	if ((int)rc < 0 || rc >= AZ_RC_COUNT || !_descriptions[rc])
		return "unknown error";
	return _descriptions[rc];
}

enum az_rc az_err(enum az_rc rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return rc;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}
