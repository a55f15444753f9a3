/*
 * sl_compat.h - where Slurm's releases differ for azrdma, and nowhere else.
 *
 * azrdma builds against every Slurm major from 22.05 to 26.05.  What changed
 * between them in the headers and in the plugin contracts is decided here,
 * at build time, from SLURM_VERSION_NUMBER; plugins and programs use the
 * names below and never compare versions themselves.  Contracts that are
 * data (SLURM_RESUME_FILE's field names) are read as the file has them, at
 * run time (src/power_save/jobs.c), not here.
 *
 * Each name says what a release does, not which release it is, and the
 * comment beside it says where the difference comes from, so that the next
 * release's change lands as one more line here.
 */
#ifndef AZRDMA_SL_COMPAT_H
#define AZRDMA_SL_COMPAT_H

#include <stdint.h>

#include <slurm/slurm.h>
#include <slurm/slurm_version.h>

#define SL_SLURM_AT_LEAST(major, minor)                                        \
	(SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(major, minor, 0))

/* configure refuses these first, with the version it found. */
#if !SL_SLURM_AT_LEAST(22, 5)
#error "azrdma needs Slurm 22.05 or later (these headers are older)"
#endif

/*
 * hostlist_t was a pointer type up to 23.02; from 23.11 it is the struct
 * and the API takes hostlist_t *.  A handle is what the API takes.
 */
#if SL_SLURM_AT_LEAST(23, 11)
typedef hostlist_t *sl_hostlist_t;
#else
typedef hostlist_t sl_hostlist_t;
#endif

/* list_t * arrived in 23.02 beside List, which 24.11 removed. */
#if SL_SLURM_AT_LEAST(23, 2)
typedef list_t *sl_list_t;
#else
typedef List sl_list_t;
#endif

/* job_desc_msg_t.job_id became step_id.job_id in 25.11. */
#define SL_JOB_DESC_ID_IN_STEP_ID SL_SLURM_AT_LEAST(25, 11)

static inline uint32_t sl_job_desc_id(const job_desc_msg_t *desc)
{
#if SL_JOB_DESC_ID_IN_STEP_ID
	return desc->step_id.job_id;
#else
	return desc->job_id;
#endif
}

/*
 * update_node_msg_t.reason_uid left in 26.05: slurmctld takes the uid of
 * the request's sender.
 */
#define SL_UPDATE_NODE_HAS_REASON_UID (!SL_SLURM_AT_LEAST(26, 5))

/* slurm_free_ctl_conf() is called slurm_free_conf() from 26.05. */
static inline void sl_free_ctl_conf(slurm_conf_t *conf)
{
#if SL_SLURM_AT_LEAST(26, 5)
	slurm_free_conf(conf);
#else
	slurm_free_ctl_conf(conf);
#endif
}

/* ---- job_submit plugins ---------------------------------------------- */

/* job_modify() gained char **err_msg, shown to the user, in 23.02. */
#define SL_JOB_MODIFY_HAS_ERR_MSG SL_SLURM_AT_LEAST(23, 2)

/* ---- node_features plugins ------------------------------------------- */

/*
 * job_valid(features, feature_list) and job_xlate(features, feature_list,
 * job_node_bitmap) from 23.02; before, the features string alone.
 */
#define SL_NF_JOB_HAS_FEATURE_LIST SL_SLURM_AT_LEAST(23, 2)

/* reboot_weight() was dropped from the plugin API in 23.02. */
#define SL_NF_HAS_REBOOT_WEIGHT (!SL_SLURM_AT_LEAST(23, 2))

/*
 * Cloud nodes and changeable features (23.02 release notes): a powered-down
 * node has no active changeable feature (they are cleared at power down),
 * its available ones come from slurm.conf's Feature=, and a powered-up
 * cloud node is never rebooted into new features: it must be powered down
 * and resumed, and the job's features reach ResumeProgram in
 * SLURM_RESUME_FILE.  Before, a powered-down node kept active features
 * that slurmctld never learned from slurmd (the plugin publishes them),
 * and a powered-up one was "rebooted" by ResumeProgram <nodes> <features>.
 */
#define SL_CLOUD_FEATURES_CLEARED_AT_POWER_DOWN SL_SLURM_AT_LEAST(23, 2)

/* node_set() gained bool *need_reboot in 24.05. */
#define SL_NF_NODE_SET_HAS_NEED_REBOOT SL_SLURM_AT_LEAST(24, 5)

/* reconfig() was dropped in 24.05: slurmctld re-executes on reconfigure. */
#define SL_NF_HAS_RECONFIG (!SL_SLURM_AT_LEAST(24, 5))

/*
 * get_node(), node_power(), node_update(), node_update_valid() and
 * step_config() are no longer part of the API from 25.11 (never called).
 */
#define SL_NF_HAS_GET_NODE (!SL_SLURM_AT_LEAST(25, 11))

/*
 * 26.05 requires job_features_need_reboot(); older releases ignore it, so
 * it is always defined.
 */

/*
 * How long slurmctld lets PrologSlurmctld run: PrologEpilogTimeout up to
 * 24.11, PrologTimeout from 25.05 (0 or NO_VAL16: no limit).
 */
#if SL_SLURM_AT_LEAST(25, 5)
#define SL_CONF_PROLOG_TIMEOUT(c) ((c)->prolog_timeout)
#define SL_PROLOG_TIMEOUT_KEY "PrologTimeout"
#else
#define SL_CONF_PROLOG_TIMEOUT(c) ((c)->prolog_epilog_timeout)
#define SL_PROLOG_TIMEOUT_KEY "PrologEpilogTimeout"
#endif

/* slurm_load_job() and slurm_requeue() take a slurm_step_id_t from 26.05. */
#define SL_JOB_CALLS_TAKE_STEP_ID SL_SLURM_AT_LEAST(26, 5)

static inline int sl_load_job(job_info_msg_t **resp, uint32_t job_id,
                              uint16_t show_flags)
{
#if SL_JOB_CALLS_TAKE_STEP_ID
	slurm_step_id_t id = SLURM_STEP_ID_INITIALIZER;

	id.job_id = job_id;
	return slurm_load_job(resp, id, show_flags);
#else
	return slurm_load_job(resp, job_id, show_flags);
#endif
}

static inline int sl_requeue(uint32_t job_id, uint32_t flags)
{
#if SL_JOB_CALLS_TAKE_STEP_ID
	slurm_step_id_t id = SLURM_STEP_ID_INITIALIZER;

	id.job_id = job_id;
	return slurm_requeue(id, flags);
#else
	return slurm_requeue(job_id, flags);
#endif
}

/*
 * A job whose nodes were still booting when slurmctld restarted starts
 * without their addresses before 23.11.4: the job's address list
 * (SLURM_NODE_ALIASES) is not kept across the restart, so its steps look
 * the node names up, which only DNS that knows them answers.  SchedMD
 * rebuilds the list at recovery from 23.11.4.
 */
#define SL_RESTART_LOSES_JOB_ADDRESSES                                         \
	(SLURM_VERSION_NUMBER < SLURM_VERSION_NUM(23, 11, 4))

/*
 * Before 23.11.2 slurmctld sends a cancelled job's kill to its nodes still
 * powering up (SchedMD bug 18458) and looks up each one's address under
 * the lock that node updates and registrations wait for: a node name no
 * DNS answers stalls slurmctld for the resolver's timeouts, once per node.
 * On these releases a powered-down node keeps an address that needs no
 * lookup (sl_powered_down_addr()): in slurm.conf, after each suspend, and
 * without cloud_reg_addrs, which would reset it to the name at power down.
 * From 23.11.2 no message goes to a node that has no VM.
 */
#define SL_POWERED_DOWN_NEEDS_ADDR                                             \
	(SLURM_VERSION_NUMBER < SLURM_VERSION_NUM(23, 11, 2))

/* ---- slurm.conf ------------------------------------------------------ */

/*
 * SlurmctldParameters=cloud_reg_addrs and CommunicationParameters=
 * NoAddrCache were removed in 23.11 (their behaviour is the default).
 */
#define SL_CONF_HAS_CLOUD_REG_ADDRS (!SL_SLURM_AT_LEAST(23, 11))

#endif
