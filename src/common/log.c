/*
 * log.c - timestamps, levels, destinations and secret scrubbing.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static pthread_mutex_t _lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level _level = LOG_LVL_INFO;
static enum log_level _stderr_level = LOG_LVL_QUIET;
static FILE *_file;
static int _use_syslog;
static log_sink_fn _sink;
static char _ident[64] = "azrdma";

static const char *const _level_names[] = {
	[LOG_LVL_QUIET] = "",	     [LOG_LVL_ERROR] = "error: ",
	[LOG_LVL_WARN] = "warning: ", [LOG_LVL_INFO] = "",
	[LOG_LVL_VERBOSE] = "",	     [LOG_LVL_DEBUG] = "debug: ",
	[LOG_LVL_DEBUG2] = "debug2: ",
};

static int _syslog_priority(enum log_level level)
{
	switch (level) {
	case LOG_LVL_ERROR:
		return LOG_ERR;
	case LOG_LVL_WARN:
		return LOG_WARNING;
	case LOG_LVL_INFO:
	case LOG_LVL_VERBOSE:
		return LOG_INFO;
	default:
		return LOG_DEBUG;
	}
}

enum az_rc log_open(const char *ident, const char *logfile, char *err,
		    size_t errlen)
{
	int fd;

	pthread_mutex_lock(&_lock);
	snprintf(_ident, sizeof(_ident), "%s", ident ? ident : "azrdma");
	if (_file && _file != stderr)
		fclose(_file);
	_file = NULL;
	_use_syslog = 0;
	if (!logfile) {
		openlog(_ident, LOG_PID, LOG_DAEMON);
		_use_syslog = 1;
		pthread_mutex_unlock(&_lock);
		return AZ_OK;
	}
	if (!strcmp(logfile, "-")) {
		_file = stderr;
		pthread_mutex_unlock(&_lock);
		return AZ_OK;
	}
	/* 0640: logs never hold secrets, but they do name the subscription.
	 * Never through a symlink: whoever can write the directory would
	 * choose the file a root run appends to. */
	fd = open(logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	          0640);
	if (fd < 0 || !(_file = fdopen(fd, "a"))) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		openlog(_ident, LOG_PID, LOG_DAEMON);
		_use_syslog = 1;
		pthread_mutex_unlock(&_lock);
		return az_err(AZ_EIO, err, errlen,
			      "LogFile %s: cannot open: %s (check the directory "
			      "exists and is writable by this user)",
			      logfile, strerror(e));
	}
	setvbuf(_file, NULL, _IOLBF, 0);
	pthread_mutex_unlock(&_lock);
	return AZ_OK;
}

void log_close(void)
{
	pthread_mutex_lock(&_lock);
	if (_file && _file != stderr)
		fclose(_file);
	_file = NULL;
	if (_use_syslog)
		closelog();
	_use_syslog = 0;
	pthread_mutex_unlock(&_lock);
}

void log_set_level(enum log_level level)
{
	if (level > LOG_LVL_DEBUG2)
		level = LOG_LVL_DEBUG2;
	_level = level;
}

enum log_level log_get_level(void)
{
	return _level;
}

void log_level_from_env(void)
{
	const char *v = getenv("AZRDMA_DEBUG");
	long n;
	char *end;

	if (!v || !*v)
		return;
	n = strtol(v, &end, 10);
	if (*end || n < 0)
		n = 2; /* any non-numeric value means "debug" */
	log_set_level((enum log_level)(_level + n));
}

void log_set_sink(log_sink_fn sink)
{
	_sink = sink;
}

void log_also_stderr(enum log_level level)
{
	_stderr_level = level;
}

/* Replace the characters of one secret value, starting at p, with '*'. */
static void _mask_value(char *p)
{
	while (*p && *p != '"' && *p != '&' && *p != ',' && *p != '\''
	       && !isspace((unsigned char)*p))
		*p++ = '*';
}

void log_scrub(char *s)
{
	static const char *const keys[] = {"access_token", "client_secret",
					   "refresh_token", "client_assertion",
					   NULL};
	char *p;

	for (p = s; (p = strstr(p, "Bearer ")); p += 7)
		_mask_value(p + 7);
	for (int i = 0; keys[i]; i++) {
		size_t klen = strlen(keys[i]);

		for (p = s; (p = strstr(p, keys[i])); p += klen) {
			char *v = p + klen;

			/* JSON: "key": "value"  form: key=value */
			if (*v == '"')
				v++;
			while (*v == ' ' || *v == ':' || *v == '=')
				v++;
			if (*v == '"')
				v++;
			_mask_value(v);
		}
	}
}

static void _timestamp(char *out, size_t len)
{
	struct timeval tv;
	struct tm tm;
	size_t n;

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, len - n, ".%03ld", (long)(tv.tv_usec / 1000));
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char msg[4096];
	char ts[40];
	va_list ap;

	if (level == LOG_LVL_QUIET || (level > _level && level > _stderr_level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_scrub(msg);

	pthread_mutex_lock(&_lock);
	if (level <= _stderr_level && _file != stderr)
		fprintf(stderr, "%s: %s%s\n", _ident, _level_names[level], msg);
	if (level <= _level) {
		if (_sink) {
			_sink(level, msg);
		} else if (_file) {
			_timestamp(ts, sizeof(ts));
			fprintf(_file, "[%s] %s[%d]: %s%s\n", ts, _ident,
				(int)getpid(), _level_names[level], msg);
		} else if (_use_syslog) {
			syslog(_syslog_priority(level), "%s%s",
			       _level_names[level], msg);
		}
	}
	pthread_mutex_unlock(&_lock);
}
