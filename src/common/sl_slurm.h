/*
 * sl_slurm.h - the programs' glue to slurmctld, through libslurm only
 * (never by running scontrol): node addresses, states and reasons, and a
 * snapshot of the nodes azrdma cares about.
 *
 * Plugins do not use this file (they run inside the daemons); the
 * power-save programs, the health check and the tools do, and link
 * libslurm.
 */
#ifndef AZRDMA_SL_SLURM_H
#define AZRDMA_SL_SLURM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "az_rc.h"

/*
 * slurm_init() with $SLURM_CONF (or Slurm's default); call once before the
 * other functions.  sl_fini() releases what libslurm holds.
 */
void sl_init(void);
void sl_fini(void);

/* One node as slurmctld reports it; strings owned by the struct. */
struct sl_node {
	char *name;
	char *addr;		/* NodeAddr */
	char *hostname;		/* NodeHostName */
	uint32_t state;		/* base state | flags (NODE_STATE_*) */
	char *reason;		/* NULL if none */
	uint32_t reason_uid;
	time_t reason_time;
	time_t boot_time;
	time_t last_busy;
	char *features;		/* AvailableFeatures */
	char *features_act;	/* ActiveFeatures */
};

struct sl_nodes {
	struct sl_node *items;
	size_t count;
};

/*
 * Load every node (powered-down cloud nodes included; they need
 * PrivateData=cloud, or they come back nameless and are skipped).
 * Free with sl_nodes_free().
 */
enum az_rc sl_nodes_load(struct sl_nodes *out, char *err, size_t errlen);
/* Load one node by name (works for hidden cloud nodes too). */
enum az_rc sl_node_load(const char *name, struct sl_node *out, char *err,
			size_t errlen);
const struct sl_node *sl_nodes_find(const struct sl_nodes *nodes,
				    const char *name);
void sl_node_free(struct sl_node *node);
void sl_nodes_free(struct sl_nodes *nodes);

/*
 * The Slurm release slurmctld runs ("26.05.3") into buf; an error with why
 * when it does not answer.  Every call here that talks to slurmctld fails
 * with AZ_EHTTP when slurmctld could not be reached (worth a retry), else
 * AZ_ESLURM.
 */
enum az_rc sl_controller_version(char *buf, size_t len, char *err,
				 size_t errlen);

/* "26.05.3" for a SLURM_VERSION_NUMBER-style number (0x1a0503). */
void sl_version_string(uint32_t number, char *buf, size_t len);

/* What azrdma's programs need of slurmctld's configuration. */
struct sl_ctl_settings {
	unsigned suspend_timeout; /* SuspendTimeout, seconds */
	uint32_t slurm_user_id;   /* SlurmUser: slurmctld's own reasons */
	time_t boot_time;         /* slurmctld's start: a restart changes it */
	unsigned resume_timeout;  /* ResumeTimeout, seconds */
	unsigned prolog_timeout;  /* PrologSlurmctld's limit, 0 if none */
};

enum az_rc sl_ctl_settings(struct sl_ctl_settings *out, char *err,
                           size_t errlen);

/* slurm.conf's AuthInfo as slurmctld has it ("socket=...,cred_expire=20"),
 * or NULL when it has none; caller frees. */
enum az_rc sl_auth_info(char **out, char *err, size_t errlen);

/*
 * Requeue a batch job whose nodes are still booting (CONFIGURING): *done
 * says whether it was.  A job that runs already, has ended or is not a
 * batch job is left alone (AZ_OK, *done false; err says why for a job
 * that cannot be requeued).
 */
enum az_rc sl_job_requeue_configuring(uint32_t job_id, bool *done, char *err,
                                      size_t errlen);

/*
 * Where a job stands with its nodes' boot: still booting (some node is
 * powered down, powering up or not responding), every node up, or the job
 * no longer waits at all (it ended, was requeued, or slurmctld already
 * finished its configuration).
 */
enum sl_job_boot { SL_JOB_BOOTING, SL_JOB_NODES_UP, SL_JOB_NOT_WAITING };

/*
 * The nodes' last snapshot between calls of sl_job_boot(): slurmctld sends
 * the nodes again only when they changed.  Zero it before the first call;
 * sl_node_watch_free() releases it.
 */
struct sl_node_watch {
	void *msg; /* node_info_msg_t */
};

/*
 * A node counts as up once it is registered and answering; one for which
 * needs_addr(name, arg) holds (a node azrdma-resume gives its address) also
 * needs its address: slurmctld launches a job at a node's NodeAddr, which
 * is the name or SL_NO_HOST_ADDR until azrdma-resume has pushed it.
 * needs_addr may be NULL.
 */
typedef bool (*sl_needs_addr_fn)(const char *name, void *arg);

enum az_rc sl_job_boot(uint32_t job_id, struct sl_node_watch *w,
                       sl_needs_addr_fn needs_addr, void *arg,
                       enum sl_job_boot *out, char *err, size_t errlen);
void sl_node_watch_free(struct sl_node_watch *w);

/* When slurmctld gave the job its nodes (its start time until it runs);
 * AZ_ENOTFOUND for a job slurmctld does not know. */
enum az_rc sl_job_start_time(uint32_t job_id, time_t *out, char *err,
                             size_t errlen);

/* "IDLE+CLOUD+POWERED_DOWN", Slurm's own spelling; caller frees. */
char *sl_state_string(uint32_t state);

/*
 * The NodeAddr of a powered-down node where Slurm would otherwise look its
 * name up (SL_POWERED_DOWN_NEEDS_ADDR): the limited broadcast address.  No
 * host has it, it needs no lookup, and a TCP connect to it fails at once
 * without a packet leaving the controller.
 */
#define SL_NO_HOST_ADDR "255.255.255.255"

/* What NodeAddr a powered-down node called name has on this release. */
const char *sl_powered_down_addr(const char *name);

/*
 * Set NodeAddr and NodeHostName of nodes (a hostlist) to addrs/hostnames
 * (hostlists with as many entries, or NULL to leave one unchanged).
 */
enum az_rc sl_node_set_addr(const char *nodes, const char *addrs,
			    const char *hostnames, char *err, size_t errlen);

/*
 * Set NodeAddr of names[i] to addrs[i] (and NodeHostName to the name) for
 * count nodes in one RPC.  They are sent in the order Slurm's hostlist
 * sorts the names: slurmctld before 22.05.8 sorted the names of such an
 * update but not its addresses (SchedMD fixed it in 22.05.8), and sorted
 * names pair the same with either.
 */
enum az_rc sl_nodes_set_addrs(char *const *names, char *const *addrs,
			      size_t count, char *err, size_t errlen);

/*
 * Set the state of nodes (a hostlist): NODE_STATE_DOWN, NODE_STATE_DRAIN,
 * NODE_RESUME, NODE_STATE_POWER_DOWN | NODE_STATE_POWERED_DOWN (power down
 * force), ... .  reason is required by Slurm for DOWN and DRAIN.
 */
enum az_rc sl_node_set_state(const char *nodes, uint32_t state,
			     const char *reason, char *err, size_t errlen);

#endif
