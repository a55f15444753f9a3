/*
 * sl_slurm.c - programs' libslurm glue.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "buf.h"
#include "hostlist.h"
#include "sl_compat.h"
#include "sl_slurm.h"

/* Exported by libslurm.so.38 but not declared in slurm.h. */
extern char *slurm_node_state_string(uint32_t inx);
extern char *slurm_node_state_string_complete(uint32_t inx);
extern void slurm_xfree(void **ptr);

void sl_init(void)
{
	slurm_init(NULL);
}

void sl_fini(void)
{
	slurm_fini();
}

static char *_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

void sl_node_free(struct sl_node *n)
{
	if (!n)
		return;
	free(n->name);
	free(n->addr);
	free(n->hostname);
	free(n->reason);
	free(n->features);
	free(n->features_act);
	memset(n, 0, sizeof(*n));
}

void sl_nodes_free(struct sl_nodes *nodes)
{
	if (!nodes)
		return;
	for (size_t i = 0; i < nodes->count; i++)
		sl_node_free(&nodes->items[i]);
	free(nodes->items);
	nodes->items = NULL;
	nodes->count = 0;
}

static enum az_rc _copy(struct sl_node *out, const node_info_t *in)
{
	memset(out, 0, sizeof(*out));
	out->name = _dup(in->name);
	out->addr = _dup(in->node_addr);
	out->hostname = _dup(in->node_hostname);
	out->reason = _dup(in->reason);
	out->features = _dup(in->features);
	out->features_act = _dup(in->features_act);
	out->state = in->node_state;
	out->reason_uid = in->reason_uid;
	out->reason_time = in->reason_time;
	out->boot_time = in->boot_time;
	out->last_busy = in->last_busy;
	if (!out->name || (in->node_addr && !out->addr)
	    || (in->node_hostname && !out->hostname)
	    || (in->reason && !out->reason)
	    || (in->features && !out->features)
	    || (in->features_act && !out->features_act)) {
		sl_node_free(out);
		return AZ_ENOMEM;
	}
	return AZ_OK;
}

/* libslurm leaves its error in errno (slurm_get_errno(), gone in 24.11,
 * only ever returned it). */
/*
 * slurmctld could not be reached (restarting, network): worth a retry.  A
 * slurmctld that stops while our RPC is under way shows as the socket's
 * own errno (26.05.3 gave ECONNRESET), not as one of Slurm's codes.
 */
static bool _unreachable(int e)
{
	return e == ECONNRESET || e == ECONNREFUSED || e == ECONNABORTED
	       || e == EPIPE || e == ETIMEDOUT || e == EHOSTUNREACH
	       || e == ENETUNREACH
	       || e == SLURM_COMMUNICATIONS_CONNECTION_ERROR
	       || (e >= SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR
	           && e <= SLURMCTLD_COMMUNICATIONS_SHUTDOWN_ERROR)
	       || e == SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT
	       || e == ESLURM_IN_STANDBY_MODE || e == ESLURM_IN_STANDBY_USE_BACKUP;
}

/* AZ_EHTTP (transport) when slurmctld was not reached, else AZ_ESLURM. */
static enum az_rc _slurm_err(char *err, size_t errlen, const char *what)
{
	int e = errno;

	return az_err(_unreachable(e) ? AZ_EHTTP : AZ_ESLURM, err, errlen,
		      "%s: %s", what, slurm_strerror(e));
}

enum az_rc sl_controller_version(char *buf, size_t len, char *err,
				 size_t errlen)
{
	slurm_conf_t *conf = NULL;

	if (slurm_load_ctl_conf((time_t)0, &conf) != SLURM_SUCCESS)
		return _slurm_err(err, errlen, "asking its version");
	snprintf(buf, len, "%s", conf->version ? conf->version : "");
	sl_free_ctl_conf(conf);
	return AZ_OK;
}

enum az_rc sl_ctl_settings(struct sl_ctl_settings *out, char *err,
                           size_t errlen)
{
	slurm_conf_t *conf = NULL;

	if (slurm_load_ctl_conf((time_t)0, &conf) != SLURM_SUCCESS)
		return _slurm_err(err, errlen, "asking for its configuration");
	out->suspend_timeout = conf->suspend_timeout;
	out->slurm_user_id = conf->slurm_user_id;
	out->boot_time = conf->boot_time;
	out->resume_timeout = conf->resume_timeout;
	out->prolog_timeout = SL_CONF_PROLOG_TIMEOUT(conf) == NO_VAL16
	                              ? 0
	                              : SL_CONF_PROLOG_TIMEOUT(conf);
	sl_free_ctl_conf(conf);
	return AZ_OK;
}

enum az_rc sl_auth_info(char **out, char *err, size_t errlen)
{
	slurm_conf_t *conf = NULL;
	enum az_rc rc = AZ_OK;

	*out = NULL;
	if (slurm_load_ctl_conf((time_t)0, &conf) != SLURM_SUCCESS)
		return _slurm_err(err, errlen, "asking for its configuration");
	if (conf->authinfo && *conf->authinfo
	    && !(*out = strdup(conf->authinfo)))
		rc = az_err(AZ_ENOMEM, err, errlen, "out of memory");
	sl_free_ctl_conf(conf);
	return rc;
}

enum az_rc sl_job_requeue_configuring(uint32_t job_id, bool *done, char *err,
                                      size_t errlen)
{
	job_info_msg_t *msg = NULL;
	uint32_t state;
	uint16_t batch;
	char what[64];

	*done = false;
	if (errlen)
		err[0] = '\0';
	snprintf(what, sizeof(what), "loading job %u", job_id);
	if (sl_load_job(&msg, job_id, SHOW_ALL) != SLURM_SUCCESS)
		return _slurm_err(err, errlen, what);
	if (!msg->record_count) {
		slurm_free_job_info_msg(msg);
		return AZ_OK;
	}
	state = msg->job_array[0].job_state;
	batch = msg->job_array[0].batch_flag;
	slurm_free_job_info_msg(msg);
	if ((state & JOB_STATE_BASE) != JOB_RUNNING
	    || !(state & JOB_CONFIGURING))
		return AZ_OK;
	if (!batch) {
		snprintf(err, errlen, "job %u is not a batch job: Slurm cannot "
		         "requeue it", job_id);
		return AZ_OK;
	}
	snprintf(what, sizeof(what), "requeueing job %u", job_id);
	if (sl_requeue(job_id, 0) != SLURM_SUCCESS)
		return _slurm_err(err, errlen, what);
	*done = true;
	return AZ_OK;
}

/*
 * The job as slurmctld has it: *msg holds at least its record (free with
 * slurm_free_job_info_msg()), or AZ_ENOTFOUND when slurmctld no longer
 * knows it.
 */
static enum az_rc _job_load(uint32_t job_id, job_info_msg_t **msg, char *err,
                            size_t errlen)
{
	char what[64];

	*msg = NULL;
	snprintf(what, sizeof(what), "loading job %u", job_id);
	if (sl_load_job(msg, job_id, SHOW_ALL) != SLURM_SUCCESS) {
		if (errno == ESLURM_INVALID_JOB_ID)
			return az_err(AZ_ENOTFOUND, err, errlen,
			              "job %u is gone", job_id);
		return _slurm_err(err, errlen, what);
	}
	if (!(*msg)->record_count) {
		slurm_free_job_info_msg(*msg);
		*msg = NULL;
		return az_err(AZ_ENOTFOUND, err, errlen, "job %u is gone",
		              job_id);
	}
	return AZ_OK;
}

enum az_rc sl_job_start_time(uint32_t job_id, time_t *out, char *err,
                             size_t errlen)
{
	job_info_msg_t *msg;
	enum az_rc rc = _job_load(job_id, &msg, err, errlen);

	*out = 0;
	if (rc != AZ_OK)
		return rc;
	*out = msg->job_array[0].start_time;
	slurm_free_job_info_msg(msg);
	return AZ_OK;
}

/* Up as slurmctld sees it: registered, answering, in service. */
static bool _node_up(const node_info_t *n)
{
	uint32_t base = n->node_state & NODE_STATE_BASE;

	if (n->node_state & (NODE_STATE_POWERED_DOWN | NODE_STATE_POWERING_UP
	                     | NODE_STATE_NO_RESPOND))
		return false;
	return base != NODE_STATE_DOWN && base != NODE_STATE_FUTURE
	       && base != NODE_STATE_UNKNOWN;
}

/* The nodes, sent again by slurmctld only when they changed. */
static enum az_rc _nodes_refresh(struct sl_node_watch *w, char *err,
                                 size_t errlen)
{
	node_info_msg_t *old = w->msg, *msg = NULL;

	if (slurm_load_node(old ? old->last_update : (time_t)0, &msg, SHOW_ALL)
	    != SLURM_SUCCESS) {
		if (old && errno == SLURM_NO_CHANGE_IN_DATA)
			return AZ_OK;
		return _slurm_err(err, errlen, "loading nodes from slurmctld");
	}
	if (old)
		slurm_free_node_info_msg(old);
	w->msg = msg;
	return AZ_OK;
}

/* NodeAddr as azrdma-resume sets it: neither the name nor the address of
 * a node without a VM. */
static bool _has_addr(const node_info_t *n)
{
	return n->node_addr && *n->node_addr
	       && strcmp(n->node_addr, SL_NO_HOST_ADDR)
	       && strcmp(n->node_addr, n->name);
}

enum az_rc sl_job_boot(uint32_t job_id, struct sl_node_watch *w,
                       sl_needs_addr_fn needs_addr, void *arg,
                       enum sl_job_boot *out, char *err, size_t errlen)
{
	job_info_msg_t *job;
	node_info_msg_t *nodes;
	char **names = NULL;
	size_t count = 0, up = 0;
	uint32_t state;
	enum az_rc rc;

	*out = SL_JOB_NOT_WAITING;
	rc = _job_load(job_id, &job, err, errlen);
	if (rc == AZ_ENOTFOUND)
		return AZ_OK; /* gone: nothing waits for it */
	if (rc != AZ_OK)
		return rc;
	state = job->job_array[0].job_state;
	if ((state & JOB_STATE_BASE) != JOB_RUNNING
	    || !(state & JOB_CONFIGURING) || !job->job_array[0].nodes) {
		slurm_free_job_info_msg(job);
		return AZ_OK;
	}
	rc = hostlist_expand(job->job_array[0].nodes, &names, &count, err,
	                     errlen);
	slurm_free_job_info_msg(job);
	if (rc != AZ_OK)
		return rc;
	rc = _nodes_refresh(w, err, errlen);
	if (rc != AZ_OK) {
		hostnames_free(names, count);
		return rc;
	}
	/* A node missing from the answer (hidden while powered down) is not
	 * up: it counts as booting. */
	nodes = w->msg;
	for (size_t i = 0; i < count; i++)
		for (uint32_t k = 0; k < nodes->record_count; k++) {
			const node_info_t *n = &nodes->node_array[k];

			if (!n->name || strcmp(n->name, names[i]))
				continue;
			if (_node_up(n)
			    && (!needs_addr || !needs_addr(n->name, arg)
			        || _has_addr(n)))
				up++;
			break;
		}
	hostnames_free(names, count);
	*out = up == count ? SL_JOB_NODES_UP : SL_JOB_BOOTING;
	return AZ_OK;
}

void sl_node_watch_free(struct sl_node_watch *w)
{
	if (w->msg)
		slurm_free_node_info_msg(w->msg);
	w->msg = NULL;
}

void sl_version_string(uint32_t number, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%02u.%u", SLURM_VERSION_MAJOR(number),
		 SLURM_VERSION_MINOR(number), SLURM_VERSION_MICRO(number));
}

enum az_rc sl_nodes_load(struct sl_nodes *out, char *err, size_t errlen)
{
	node_info_msg_t *msg = NULL;
	enum az_rc rc = AZ_OK;

	out->items = NULL;
	out->count = 0;
	if (slurm_load_node((time_t)0, &msg, SHOW_ALL) != SLURM_SUCCESS)
		return _slurm_err(err, errlen, "loading nodes from slurmctld");
	out->items = calloc(msg->record_count ? msg->record_count : 1,
			    sizeof(*out->items));
	if (!out->items) {
		slurm_free_node_info_msg(msg);
		return AZ_ENOMEM;
	}
	for (uint32_t i = 0; i < msg->record_count; i++) {
		/* Hidden cloud nodes come back without a name. */
		if (!msg->node_array[i].name)
			continue;
		rc = _copy(&out->items[out->count], &msg->node_array[i]);
		if (rc != AZ_OK)
			break;
		out->count++;
	}
	slurm_free_node_info_msg(msg);
	if (rc != AZ_OK)
		sl_nodes_free(out);
	return rc;
}

enum az_rc sl_node_load(const char *name, struct sl_node *out, char *err,
			size_t errlen)
{
	node_info_msg_t *msg = NULL;
	enum az_rc rc;

	memset(out, 0, sizeof(*out));
	if (slurm_load_node_single(&msg, (char *)name, SHOW_ALL)
	    != SLURM_SUCCESS) {
		if (errno == ESLURM_INVALID_NODE_NAME)
			return az_err(AZ_ENOTFOUND, err, errlen,
				      "node %s is not in slurm.conf", name);
		return _slurm_err(err, errlen, name);
	}
	if (!msg || msg->record_count < 1 || !msg->node_array[0].name) {
		if (msg)
			slurm_free_node_info_msg(msg);
		return az_err(AZ_ENOTFOUND, err, errlen,
			      "node %s is not in slurm.conf", name);
	}
	rc = _copy(out, &msg->node_array[0]);
	slurm_free_node_info_msg(msg);
	return rc;
}

const struct sl_node *sl_nodes_find(const struct sl_nodes *nodes,
				    const char *name)
{
	for (size_t i = 0; i < nodes->count; i++)
		if (!strcmp(nodes->items[i].name, name))
			return &nodes->items[i];
	return NULL;
}

char *sl_state_string(uint32_t state)
{
	char *s = slurm_node_state_string_complete(state);

	/* _complete() returns an xmalloc()ed string; hand back our own. */
	if (s) {
		char *copy = strdup(s);

		slurm_xfree((void **)&s);
		return copy;
	}
	return strdup(slurm_node_state_string(state));
}

const char *sl_powered_down_addr(const char *name)
{
#if SL_POWERED_DOWN_NEEDS_ADDR
	(void)name;
	return SL_NO_HOST_ADDR;
#else
	return name;
#endif
}

enum az_rc sl_node_set_addr(const char *nodes, const char *addrs,
			    const char *hostnames, char *err, size_t errlen)
{
	update_node_msg_t msg;

	slurm_init_update_node_msg(&msg);
	msg.node_names = (char *)nodes;
	msg.node_addr = (char *)addrs;
	msg.node_hostname = (char *)hostnames;
	if (slurm_update_node(&msg) != SLURM_SUCCESS) {
		char what[256];

		snprintf(what, sizeof(what), "setting NodeAddr of %s", nodes);
		return _slurm_err(err, errlen, what);
	}
	return AZ_OK;
}

enum az_rc sl_nodes_set_addrs(char *const *names, char *const *addrs,
			      size_t count, char *err, size_t errlen)
{
	struct az_buf joined = {0}, sorted_names = {0}, sorted_addrs = {0};
	sl_hostlist_t hl = NULL;
	enum az_rc rc = AZ_OK;
	char *name;

	for (size_t i = 0; i < count && rc == AZ_OK; i++)
		rc = buf_printf(&joined, "%s%s", i ? "," : "", names[i]);
	if (rc != AZ_OK) {
		rc = az_err(AZ_ENOMEM, err, errlen, "out of memory");
		goto out;
	}
	hl = slurm_hostlist_create(joined.data);
	if (!hl) {
		rc = az_err(AZ_EINVAL, err, errlen, "bad node names: %s",
			    joined.data);
		goto out;
	}
	slurm_hostlist_uniq(hl);
	while ((name = slurm_hostlist_shift(hl))) {
		/* The last entry for a name is the newest address. */
		size_t i = count;

		while (i-- > 0 && strcmp(names[i], name))
			;
		if (i < count && rc == AZ_OK) {
			const char *sep = sorted_names.len ? "," : "";

			rc = buf_printf(&sorted_names, "%s%s", sep, name);
			if (rc == AZ_OK)
				rc = buf_printf(&sorted_addrs, "%s%s", sep,
						addrs[i]);
		}
		free(name);
	}
	if (rc != AZ_OK)
		rc = az_err(AZ_ENOMEM, err, errlen, "out of memory");
	else
		rc = sl_node_set_addr(sorted_names.data, sorted_addrs.data,
				      sorted_names.data, err, errlen);
out:
	if (hl)
		slurm_hostlist_destroy(hl);
	buf_free(&joined);
	buf_free(&sorted_names);
	buf_free(&sorted_addrs);
	return rc;
}

enum az_rc sl_node_set_state(const char *nodes, uint32_t state,
			     const char *reason, char *err, size_t errlen)
{
	update_node_msg_t msg;

	slurm_init_update_node_msg(&msg);
	msg.node_names = (char *)nodes;
	msg.node_state = state;
	msg.reason = (char *)reason;
#if SL_UPDATE_NODE_HAS_REASON_UID
	msg.reason_uid = (uint32_t)getuid();
#endif
	if (slurm_update_node(&msg) != SLURM_SUCCESS) {
		char what[256];

		snprintf(what, sizeof(what), "updating the state of %s",
			 nodes);
		return _slurm_err(err, errlen, what);
	}
	return AZ_OK;
}
