/*
 * job_submit_azrdma.c - job_submit/azrdma: keeps every RDMA job in one
 * fabric domain and gives batch jobs their MPI environment.
 *
 * This revision loads and validates azrdma.conf when slurmctld starts, so
 * a broken file stops the controller with its file:line problems instead
 * of misplacing jobs later.  The placement constraint and the environment
 * injection are the job_submit/spank issue's work and not here yet: until
 * then every job passes through unchanged.
 */
#include <inttypes.h>
#include <stdint.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "conf.h"
#include "log.h"
#include "sl_plugin.h"

/* Opaque in the public headers; only passed through here. */
typedef struct job_record job_record_t;

const char plugin_name[] = "azrdma job submit plugin";
const char plugin_type[] = "job_submit/azrdma";
const uint32_t plugin_version = SLURM_VERSION_NUMBER;

static struct azrdma_conf *_conf;

extern int init(void)
{
	sl_plugin_log_init(plugin_type);
	_conf = sl_plugin_conf_load();
	if (!_conf)
		return SLURM_ERROR;
	log_verbose("loaded %s: %zu domains, %zu images", _conf->path,
		    _conf->domain_count, _conf->image_count);
	return SLURM_SUCCESS;
}

extern int fini(void)
{
	conf_free(_conf);
	_conf = NULL;
	return SLURM_SUCCESS;
}

/* Locks: read config, job, node, partition (held by the caller). */
extern int job_submit(job_desc_msg_t *job_desc, uint32_t submit_uid,
		      char **err_msg)
{
	return SLURM_SUCCESS;
}

/* Locks: read config, job, node, partition (held by the caller). */
extern int job_modify(job_desc_msg_t *job_desc, job_record_t *job_ptr,
		      uint32_t submit_uid)
{
	return SLURM_SUCCESS;
}
