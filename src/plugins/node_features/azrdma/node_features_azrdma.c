/*
 * node_features_azrdma.c - node_features/azrdma: node features from
 * azrdma.conf and the OS image as a changeable feature.
 *
 * This revision exports the complete 22.05 symbol set (a missing symbol is
 * fatal to the daemon) and validates azrdma.conf at load.  It claims no
 * feature as changeable and requires nothing of power save yet, so Slurm
 * behaves as without a node_features plugin; the image features and the
 * reprovisioning path are the node_features issue's work.
 */
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "conf.h"
#include "log.h"
#include "sl_plugin.h"

/* Internal Slurm types, declared as 22.05's read_config.h has them. */
typedef struct {
	char *name;
	char *value;
} config_key_pair_t;

typedef struct {
	char *name;
	List key_pairs;
} config_plugin_params_t;

const char plugin_name[] = "azrdma node features plugin";
const char plugin_type[] = "node_features/azrdma";
const uint32_t plugin_version = SLURM_VERSION_NUMBER;

static struct azrdma_conf *_conf;

extern int init(void)
{
	sl_plugin_log_init(plugin_type);
	_conf = sl_plugin_conf_load();
	return _conf ? SLURM_SUCCESS : SLURM_ERROR;
}

extern int fini(void)
{
	conf_free(_conf);
	_conf = NULL;
	return SLURM_SUCCESS;
}

extern uint32_t node_features_p_boot_time(void)
{
	return 300;
}

extern bool node_features_p_changeable_feature(char *input)
{
	return false;
}

extern int node_features_p_get_node(char *node_list)
{
	return SLURM_SUCCESS;
}

extern int node_features_p_job_valid(char *job_features)
{
	return SLURM_SUCCESS;
}

extern char *node_features_p_job_xlate(char *job_features)
{
	return NULL;
}

extern bitstr_t *node_features_p_get_node_bitmap(void)
{
	return NULL;
}

extern int node_features_p_overlap(bitstr_t *active_bitmap)
{
	return 0;
}

extern bool node_features_p_node_power(void)
{
	return false;
}

extern int node_features_p_node_set(char *active_features)
{
	return SLURM_SUCCESS;
}

extern void node_features_p_node_state(char **avail_modes,
				       char **current_mode)
{
}

extern int node_features_p_node_update(char *active_features,
				       bitstr_t *node_bitmap)
{
	return SLURM_SUCCESS;
}

extern bool node_features_p_node_update_valid(void *node_ptr,
					      update_node_msg_t *update_node_msg)
{
	return true;
}

extern char *node_features_p_node_xlate(char *new_features,
					char *orig_features,
					char *avail_features, int node_inx)
{
	return slurm_xstrdup(new_features);
}

extern char *node_features_p_node_xlate2(char *new_features)
{
	return slurm_xstrdup(new_features);
}

extern void node_features_p_step_config(bool mem_sort, bitstr_t *numa_bitmap)
{
}

extern uint32_t node_features_p_reboot_weight(void)
{
	return INFINITE - 1;
}

extern int node_features_p_reconfig(void)
{
	struct azrdma_conf *fresh = sl_plugin_conf_load();

	if (!fresh)
		return SLURM_ERROR;
	conf_free(_conf);
	_conf = fresh;
	return SLURM_SUCCESS;
}

extern bool node_features_p_user_update(uid_t uid)
{
	return true;
}

extern void node_features_p_get_config(config_plugin_params_t *p)
{
}
