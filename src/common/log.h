/*
 * log.h - the logger every azrdma program and plugin uses.
 *
 * Programs log to LogFile (azrdma.conf) or else syslog, with Slurm-like
 * timestamps and levels.  Plugins route messages into Slurm's own log with
 * log_set_sink().  The level starts at INFO and is raised by -v (once per
 * flag) or by AZRDMA_DEBUG=<n> in the environment.
 *
 * Never pass a token or secret to these functions: the logger scrubs the
 * obvious forms (Bearer tokens, access_token, client_secret) as a second
 * line of defence, not as the first.
 */
#ifndef AZRDMA_LOG_H
#define AZRDMA_LOG_H

#include <stddef.h>

#include "az_rc.h"

enum log_level {
	LOG_LVL_QUIET = 0,
	LOG_LVL_ERROR,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_VERBOSE,
	LOG_LVL_DEBUG,
	LOG_LVL_DEBUG2,
};

typedef void (*log_sink_fn)(enum log_level level, const char *msg);

/*
 * Open the log for program ident.  logfile: a path (opened for append, mode
 * 0640), "-" for stderr, or NULL for syslog (facility daemon).
 */
enum az_rc log_open(const char *ident, const char *logfile, char *err,
		    size_t errlen);
void log_close(void);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Raise the level by AZRDMA_DEBUG (a number of -v steps) if it is set. */
void log_level_from_env(void);
/* Send every message to sink instead of a file or syslog (plugins). */
void log_set_sink(log_sink_fn sink);
/* Also copy messages at or above level to stderr (interactive tools). */
void log_also_stderr(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_verbose(...) log_msg(LOG_LVL_VERBOSE, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_debug2(...) log_msg(LOG_LVL_DEBUG2, __VA_ARGS__)

/*
 * Mask secrets in s in place: the value after "Bearer ", and the values of
 * access_token / client_secret / refresh_token / client_assertion keys in
 * JSON or form encoding.  Exposed for tests and for callers that format
 * peer-supplied text.
 */
void log_scrub(char *s);

#endif
