/*
 * sl_plugin.c - plugin-side Slurm glue: logging and config loading.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "sl_plugin.h"

static char _prefix[64] = "azrdma";

static void _slurm_sink(enum log_level level, const char *msg)
{
	switch (level) {
	case LOG_LVL_ERROR:
		slurm_error("%s: %s", _prefix, msg);
		break;
	case LOG_LVL_WARN:
	case LOG_LVL_INFO:
		slurm_info("%s: %s", _prefix, msg);
		break;
	case LOG_LVL_VERBOSE:
		slurm_verbose("%s: %s", _prefix, msg);
		break;
	case LOG_LVL_DEBUG:
		slurm_debug("%s: %s", _prefix, msg);
		break;
	default:
		slurm_debug2("%s: %s", _prefix, msg);
		break;
	}
}

void sl_plugin_log_init(const char *prefix)
{
	snprintf(_prefix, sizeof(_prefix), "%s", prefix);
	log_set_sink(_slurm_sink);
	sl_plugin_log_sync();
}

/*
 * Format no message Slurm would drop: follow the daemon's level
 * (SlurmctldDebug, SlurmdDebug, scontrol setdebug).  Slurm's levels from
 * INFO up have the numbers of ours; below INFO only errors pass either
 * way.  Looked up at run time: not every loader need export it, and
 * without it everything is passed on for Slurm to filter.
 */
void sl_plugin_log_sync(void)
{
	static int (*slurm_level)(void);
	static bool looked_up;
	int level = LOG_LVL_DEBUG2;

	if (!looked_up) {
		slurm_level = (int (*)(void))dlsym(RTLD_DEFAULT,
						   "slurm_get_log_level");
		looked_up = true;
	}
	if (slurm_level) {
		level = slurm_level();
		if (level < LOG_LVL_INFO)
			level = LOG_LVL_WARN;
		if (level > LOG_LVL_DEBUG2)
			level = LOG_LVL_DEBUG2;
	}
	log_set_level((enum log_level)level);
}

struct azrdma_conf *sl_plugin_conf_load(void)
{
	struct conf_diags diags = {0};
	struct azrdma_conf *conf = NULL;
	char err[AZ_ERRLEN];
	char *path = conf_default_path();

	if (!path) {
		log_error("out of memory");
		return NULL;
	}
	conf_load(path, 0, &conf, &diags, err, sizeof(err));
	for (size_t i = 0; i < diags.count; i++)
		log_msg(diags.items[i].is_error ? LOG_LVL_ERROR : LOG_LVL_WARN,
			"%s", diags.items[i].message);
	if (!conf)
		log_error("%s is unusable; run 'azrdma-config check' for "
			  "every problem and its fix",
			  path);
	conf_diags_free(&diags);
	free(path);
	return conf;
}

struct azrdma_conf *sl_plugin_conf_load_optional(bool *absent, char **path)
{
	char *where = conf_default_path();
	struct stat st;

	*absent = false;
	if (path)
		*path = where ? strdup(where) : NULL;
	if (where && stat(where, &st) != 0 && errno == ENOENT) {
		*absent = true;
		free(where);
		return NULL;
	}
	free(where);
	return sl_plugin_conf_load();
}
