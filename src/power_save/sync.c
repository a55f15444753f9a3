/*
 * azrdma-sync - reconcile Azure with Slurm, from a systemd timer or by
 * hand.
 *
 *   azrdma-sync [--dry-run] [--grace SECONDS] [-v]
 *
 * Looks at every VM tagged with this cluster and every node of azrdma.conf:
 *   orphan  VM running while its node is powered down, or unknown to Slurm,
 *           for longer than the grace period: deallocated;
 *   zombie  node up in Slurm (not powering up or down) whose VM is gone or
 *           not running: DOWN with reason "azrdma: sync: ...";
 *   stale   powered-down node with another address: NodeAddr back to its
 *           name (before 23.11.2 to one that needs no lookup);
 *   journal entry left by a program killed half-way: undone (NIC of a VM
 *           that never came, VM deallocated);
 *   empty   availability set azrdma created that holds no VM: deleted.
 * A node whose lock another program holds is left alone this time.  Every
 * action (or, with --dry-run, every action it would take) is printed on
 * stdout, one line each, and logged.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <slurm/slurm.h>

#include "arm.h"
#include "conf.h"
#include "fsutil.h"
#include "hostlist.h"
#include "log.h"
#include "power.h"
#include "sl_slurm.h"

#define SYNC_DEFAULT_GRACE_S 300
/* How a failed node's reason says when it is tried again. */
#define RETRY_NOTE "; back to idle~ after "

struct sync {
	struct azrdma_conf *conf;
	struct arm_client *arm;
	struct sl_nodes nodes;
	bool dry_run;
	unsigned grace_s;
	uint32_t slurm_user_id; /* whose reasons are Slurm's or ours */
	unsigned actions, failures;
};

/* One line on stdout and in the log for each action. */
static void _report(struct sync *s, const char *node, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void _report(struct sync *s, const char *node, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	printf("%s%s: %s\n", s->dry_run ? "would " : "", node, line);
	fflush(stdout);
	log_info("%s%s: %s", s->dry_run ? "would " : "", node, line);
	s->actions++;
}

static bool _ours(const struct sync *s, json_object *res)
{
	const char *cluster = power_tag(res, TAG_CLUSTER);

	return cluster && !strcmp(cluster, s->conf->cluster_name);
}

static bool _in_rg(const struct sync *s, json_object *vm)
{
	json_object *id;
	char needle[512];

	if (!json_object_object_get_ex(vm, "id", &id))
		return false;
	snprintf(needle, sizeof(needle), "/resourceGroups/%s/",
	         s->conf->resource_group);
	return strcasestr(json_object_get_string(id), needle) != NULL;
}

/*
 * A node's lock, as the power-save programs take it.  A dry run changes
 * nothing, so it needs none, and makes no lock file either.
 */
static bool _lock_node(struct sync *s, const char *node, int *fd)
{
	*fd = -1;
	if (s->dry_run)
		return true;
	return power_lock_node(s->conf, node, 0, fd, NULL, 0) == AZ_OK;
}

/*
 * How long a VM has been seen as an orphan: the first sighting is kept in
 * StateDir/orphans/<vm>; forgotten once it is no orphan any more.
 */
static long _orphan_age(struct sync *s, const char *vm, bool orphan)
{
	char path[1024], *data = NULL, stamp[32];
	long age = 0;

	snprintf(path, sizeof(path), "%s/orphans", s->conf->state_dir);
	if (!s->dry_run)
		fs_mkdir_p(path, 0700, NULL, 0);
	snprintf(path, sizeof(path), "%s/orphans/%s", s->conf->state_dir, vm);
	if (!orphan) {
		if (!s->dry_run)
			unlink(path);
		return 0;
	}
	if (fs_read_file(path, 64, &data, NULL, NULL, 0) == AZ_OK) {
		age = (long)(time(NULL) - strtoll(data, NULL, 10));
		free(data);
		return age;
	}
	if (!s->dry_run) {
		int n = snprintf(stamp, sizeof(stamp), "%lld\n",
		                 (long long)time(NULL));

		fs_write_atomic(path, stamp, (size_t)n, 0600, NULL, 0);
	}
	return 0;
}

static bool _powered_down(uint32_t state)
{
	return (state & NODE_STATE_POWERED_DOWN)
	       && !(state & (NODE_STATE_POWERING_UP | NODE_STATE_POWER_UP));
}

static bool _busy(uint32_t state)
{
	return state
	       & (NODE_STATE_POWERING_UP | NODE_STATE_POWERING_DOWN
	          | NODE_STATE_POWER_UP | NODE_STATE_POWER_DOWN);
}

/*
 * A powered-down node that RESUME took out of DOWN (an admin's scontrol
 * update state=resume) is NOT_RESPONDING until slurmd registers, which a
 * powered-down node never does: after slurmctld's next restart it is never
 * scheduled again.  A power down clears the mark.
 */
static bool _not_responding_powered_down(uint32_t state)
{
	return (state & NODE_STATE_BASE) == NODE_STATE_IDLE
	       && (state & NODE_STATE_NO_RESPOND)
	       && !(state & (NODE_STATE_DRAIN | NODE_STATE_FAIL));
}

static void _deallocate(struct sync *s, const char *vm, const char *why)
{
	struct arm_result *res = NULL;
	enum az_rc rc;

	_report(s, vm, "deallocate VM (%s)", why);
	if (s->dry_run)
		return;
	rc = arm_vm_deallocate(s->arm, vm, &res);
	if (rc != AZ_OK && rc != AZ_ENOTFOUND) {
		log_error("%s: deallocate: %s", vm, res ? res->err : "");
		s->failures++;
	}
	arm_result_free(res);
}

/* Delete the NIC an unfinished resume left; true once it is gone. */
static bool _nic_delete(struct sync *s, const char *node)
{
	struct arm_result *res = NULL;
	char *nic = power_nic_name(node), why[POWER_REASON_LEN];
	enum az_rc rc;
	bool gone = true;

	/* Only azrdma's NIC of this node is deleted (its tags). */
	rc = arm_nic_get(s->arm, nic, &res);
	if (rc == AZ_ENOTFOUND) {
		arm_result_free(res);
		free(nic);
		return true;
	}
	if (rc != AZ_OK) {
		log_error("%s: NIC lookup: %s; its journal entry stays for the "
		          "next run",
		          node, res ? res->err : "");
		s->failures++;
		arm_result_free(res);
		free(nic);
		return false;
	}
	if (!power_resource_ours(s->conf, res->body, "NIC", nic, node, why,
	                         sizeof(why))) {
		/* azrdma made no NIC there: nothing of its own is left. */
		log_warn("%s: %s", node, why);
		arm_result_free(res);
		free(nic);
		return true;
	}
	arm_result_free(res);
	res = NULL;
	_report(s, node, "delete NIC %s of an unfinished resume", nic);
	if (!s->dry_run) {
		rc = arm_nic_delete(s->arm, nic, &res);
		if (rc != AZ_OK && rc != AZ_ENOTFOUND) {
			log_error("%s: NIC delete: %s; its journal entry stays "
			          "for the next run",
			          node, res ? res->err : "");
			s->failures++;
			gone = false;
		}
		arm_result_free(res);
	}
	free(nic);
	return gone;
}

/* A node without a VM has no disk: its image record goes. */
static void _image_forget(struct sync *s, const char *node)
{
	char *image = power_image_recorded(s->conf, node);

	if (!image)
		return;
	_report(s, node, "forget image %s: the VM and its disk are gone",
	        image);
	if (!s->dry_run)
		power_image_forget(s->conf, node);
	free(image);
}

/* Tell slurmctld (state NO_VAL: the reason only); reported beforehand. */
static void _node_update(struct sync *s, const char *node, uint32_t state,
                         const char *reason)
{
	char err[AZ_ERRLEN];

	if (s->dry_run)
		return;
	if (sl_node_set_state(node, state, reason, err, sizeof(err))
	    != AZ_OK) {
		log_error("%s: %s", node, err);
		s->failures++;
	}
}

static void _node_down(struct sync *s, const char *node, const char *why)
{
	char reason[POWER_REASON_LEN], text[256];

	snprintf(text, sizeof(text), "sync: %s", why);
	power_reason_text(reason, sizeof(reason), text);
	_report(s, node, "set DOWN (%s)", why);
	_node_update(s, node, NODE_STATE_DOWN, reason);
}

static json_object *_list(struct sync *s, const char *path, const char *query)
{
	struct arm_request req = {.method = ARM_GET,
	                          .path = path,
	                          .api = ARM_API_COMPUTE,
	                          .query = query,
	                          .flags = ARM_REQ_PAGED};
	struct arm_result *res = NULL;
	json_object *value = NULL, *body = NULL;

	if (arm_call_sync(s->arm, &req, &res) != AZ_OK) {
		log_error("GET %s: %s", path, res ? res->err : "failed");
		s->failures++;
	} else if (res->body
	           && json_object_object_get_ex(res->body, "value", &value)) {
		body = json_object_get(value);
	}
	arm_result_free(res);
	return body;
}

/*
 * The VM's power state now (its instance view), malloc()ed; NULL with
 * *gone when there is no VM, NULL alone when ARM could not say.  The list
 * sync starts from may be minutes old by the time a node's lock is free.
 */
static char *_vm_power_now(struct sync *s, const char *vm, bool *gone)
{
	struct arm_result *res = NULL;
	enum az_rc rc = arm_vm_get(s->arm, vm, ARM_VM_INSTANCE_VIEW, &res);
	const char *power;
	char *out = NULL;

	*gone = rc == AZ_ENOTFOUND;
	if (rc == AZ_OK && res && res->body
	    && (power = arm_vm_power_state(res->body)))
		out = strdup(power);
	else if (rc != AZ_OK && !*gone)
		log_error("%s: reading its VM: %s", vm, res ? res->err : "");
	arm_result_free(res);
	return out;
}

/*
 * The node as slurmctld has it now, with its lock held; false if it cannot
 * be read.  *unknown: slurmctld does not know the name (out stays empty).
 * Free out with sl_node_free().
 */
static bool _node_now(const char *node, struct sl_node *out, bool *unknown)
{
	char err[AZ_ERRLEN];
	enum az_rc rc = sl_node_load(node, out, err, sizeof(err));

	*unknown = rc == AZ_ENOTFOUND;
	if (rc != AZ_OK && !*unknown)
		log_error("%s: %s", node, err);
	return rc == AZ_OK || *unknown;
}

static bool _node_state_now(const char *node, uint32_t *state, bool *unknown)
{
	struct sl_node sn;

	if (!_node_now(node, &sn, unknown))
		return false;
	*state = sn.state;
	sl_node_free(&sn);
	return true;
}

/*
 * With the node's lock held: is the VM still an orphan?  A resume may
 * have reused it (node powering up, VM running for it) or a suspend
 * deallocated it since the list was read.  Returns why, or NULL.
 */
static const char *_still_orphan(struct sync *s, const char *vm,
                                 const char *node, bool known)
{
	uint32_t state = 0;
	bool unknown, gone;
	char *power;
	const char *why = NULL;

	if (!_node_state_now(node, &state, &unknown))
		return NULL; /* cannot tell: next time */
	if (unknown)
		why = "node unknown to Slurm";
	else if (_powered_down(state))
		why = "node powered down";
	else if (!known)
		why = NULL; /* slurmctld knows it now */
	if (!why) {
		log_info("%s: no orphan any more (node %s is in use)", vm, node);
		return NULL;
	}
	power = _vm_power_now(s, vm, &gone);
	if (!power || strcmp(power, "running")) {
		log_info("%s: no orphan any more (VM %s)", vm,
		         gone ? "gone" : power ? power : "state unknown");
		why = NULL;
	}
	free(power);
	return why;
}

/* VMs: orphans, and the VM state of each node for the zombie check. */
static void _sync_vms(struct sync *s, json_object *vms, char **vm_state)
{
	size_t n = vms ? json_object_array_length(vms) : 0;

	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i), *v;
		const char *name, *node, *power;
		const struct sl_node *sn;
		const char *why = NULL;
		char whybuf[128];
		int lock = -1;
		long age;

		if (!_in_rg(s, vm)
		    || !json_object_object_get_ex(vm, "name", &v))
			continue;
		name = json_object_get_string(v);
		node = power_tag(vm, TAG_NODE) ? power_tag(vm, TAG_NODE) : name;
		power = arm_vm_power_state(vm);
		/* Any VM of the resource group counts as a node's VM, ours or
		 * made by hand; only ours are ever deallocated. */
		for (size_t d = 0; d < s->nodes.count; d++)
			if (!strcmp(s->nodes.items[d].name, node)
			    && !vm_state[d])
				vm_state[d] = strdup(power ? power : "unknown");
		if (!power_resource_ours(s->conf, vm, "VM", node, node, whybuf,
		                         sizeof(whybuf))
		    || !power || strcmp(power, "running"))
			continue;
		/* Tags are anyone's to write: a node name becomes a lock and
		 * state file name only once azrdma.conf has that node. */
		if (!domain_for_node(s->conf, node)) {
			char shown[72];

			snprintf(shown, sizeof(shown), "%s", node);
			power_reason_clean(shown, sizeof(shown));
			log_warn("%s: VM left alone: its tag %s=%s names no "
			         "node of %s (delete or retag it by hand)",
			         name, TAG_NODE, shown, s->conf->path);
			continue;
		}
		sn = sl_nodes_find(&s->nodes, node);
		if (!sn)
			why = "node unknown to Slurm";
		else if (_powered_down(sn->state))
			why = "node powered down";
		if (why
		    && !_lock_node(s, node, &lock)) {
			log_verbose("%s: busy, next time", node);
			continue;
		}
		if (why)
			why = _still_orphan(s, name, node, sn != NULL);
		age = _orphan_age(s, name, why != NULL);
		if (why && age >= (long)s->grace_s) {
			snprintf(whybuf, sizeof(whybuf), "%s, orphan for %lds",
			         why, age);
			_deallocate(s, name, whybuf);
		} else if (why) {
			log_info("%s: orphan (%s) for %lds, grace %us", name,
			         why, age, s->grace_s);
		}
		power_unlock_node(lock);
	}
}

/*
 * A node azrdma or slurmctld set DOWN because its resume failed (azrdma's
 * "azrdma: <code>: ..." reasons, Slurm's "ResumeTimeout reached"), set by
 * SlurmUser, never drained: what an admin set DOWN or DRAIN, or any reason
 * of someone else, is theirs to resume.
 */
static bool _failed_resume(const struct sync *s, const struct sl_node *n)
{
	if ((n->state & NODE_STATE_BASE) != NODE_STATE_DOWN
	    || (n->state & NODE_STATE_DRAIN) || !n->reason
	    || n->reason_uid != s->slurm_user_id)
		return false;
	return !strncmp(n->reason, "azrdma: ", 8)
	       || !strncmp(n->reason, "ResumeTimeout reached", 21);
}

/*
 * While the cooldown keeps a failed node DOWN, its reason says when it is
 * tried again, so that `sinfo -R` answers an admin's first question.  An
 * earlier note is replaced, not added to.  Only as SlurmUser: the reason's
 * user is what tells a failed resume from an admin's DOWN.
 */
static void _note_retry(struct sync *s, const struct sl_node *n, time_t until)
{
	char reason[POWER_REASON_LEN], when[32];
	const char *old = strstr(n->reason, RETRY_NOTE);
	int keep = old ? (int)(old - n->reason) : (int)strlen(n->reason);
	struct tm tm;

	if (getuid() != s->slurm_user_id)
		return;
	localtime_r(&until, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	/* The note is what must fit: the failure's own words give way. */
	if (keep > (int)(sizeof(reason) - sizeof(RETRY_NOTE) - sizeof(when)))
		keep = (int)(sizeof(reason) - sizeof(RETRY_NOTE) - sizeof(when));
	snprintf(reason, sizeof(reason), "%.*s%s%s", keep, n->reason,
	         RETRY_NOTE, when);
	if (!strcmp(reason, n->reason))
		return;
	_report(s, n->name, "note in its reason: back to idle~ after %s "
	        "(the domain's capacity cooldown)", when);
	_node_update(s, n->name, NO_VAL, reason);
}

/*
 * A powered-down node whose resume failed, its VM cleaned up (gone or
 * deallocated, no NIC left of an unfinished resume): back to idle~ once
 * its domain's capacity cooldown is over, so that transient faults do not
 * shrink the cluster until an admin looks (the next job powers it up as
 * any other).  While the cooldown holds, the reason says until when, and
 * a later run does it.
 */
static void _return_to_service(struct sync *s, const struct sl_node *n)
{
	const struct conf_domain *d = domain_for_node(s->conf, n->name);
	char cooldown[POWER_REASON_LEN];
	time_t until;

	if (!d || !_failed_resume(s, n))
		return;
	if (power_cooldown_get(s->conf, d->name, cooldown, sizeof(cooldown),
	                       &until)) {
		log_info("%s: failed resume (%s); back to idle~ once domain "
		         "%s's cooldown ends",
		         n->name, n->reason, d->name);
		_note_retry(s, n, until);
		return;
	}
	_report(s, n->name, "return to idle~ (its resume failed: %s; the VM "
	        "is cleaned up)", n->reason);
	/*
	 * IDLE, not RESUME: RESUME also marks the node NOT_RESPONDING until
	 * slurmd registers, which a powered-down node never does; slurmctld
	 * overlooks that until it restarts, and from then on never schedules
	 * the node again.
	 */
	_node_update(s, n->name, NODE_STATE_IDLE, NULL);
}

/*
 * A powered-down node keeps no VM's address: one that would go to whatever
 * has it now.  Before 23.11.2 neither may it keep its name, which Slurm
 * would look up (sl_compat.h): slurm.conf's address, or a suspend's, was
 * lost, e.g. to cloud_reg_addrs or an admin's update.
 */
static void _reset_addr(struct sync *s, const struct sl_node *sn)
{
	const char *want = sl_powered_down_addr(sn->name);
	char err[AZ_ERRLEN];

	if (!sn->addr || !strcmp(sn->addr, want))
		return;
	_report(s, sn->name, "reset NodeAddr %s of a powered-down node to %s",
	        sn->addr, want);
	if (!s->dry_run
	    && sl_node_set_addr(sn->name, want, sn->name, err, sizeof(err))
	               != AZ_OK)
		log_warn("%s: %s", sn->name, err);
}

/* Nodes of azrdma.conf: zombies, stale addresses, unfinished journals. */
static void _sync_nodes(struct sync *s, char **vm_state)
{
	for (size_t i = 0; i < s->nodes.count; i++) {
		const struct sl_node *sn = &s->nodes.items[i];
		const char *vs = vm_state[i];
		char *journal;
		char why[128];
		int lock = -1;
		uint32_t state = 0;
		struct sl_node now = {0};
		bool unknown;

		if (!domain_for_node(s->conf, sn->name) || _busy(sn->state))
			continue;
		if (!_lock_node(s, sn->name, &lock))
			continue;
		/* What another program did before the lock was free counts:
		 * read the node again, and its VM before acting on it. */
		if (!_node_now(sn->name, &now, &unknown) || unknown
		    || _busy(now.state)) {
			sl_node_free(&now);
			power_unlock_node(lock);
			continue;
		}
		state = now.state;
		if (_powered_down(state) != _powered_down(sn->state)) {
			log_info("%s: changed while sync looked (%s); next time",
			         sn->name, _powered_down(state) ? "powered down"
			                                        : "powered up");
			sl_node_free(&now);
			power_unlock_node(lock);
			continue;
		}
		journal = power_journal_read(s->conf, sn->name);
		if (_powered_down(state)) {
			bool nic_gone = true;

			if (journal && !vs)
				nic_gone = _nic_delete(s, sn->name);
			/* The entry is all that remembers the NIC (and its
			 * address): it goes with the NIC, not before. */
			if (journal && nic_gone && !s->dry_run)
				power_journal_clear(s->conf, sn->name);
			if (!vs)
				_image_forget(s, sn->name);
			if (nic_gone && (!vs || !strcmp(vs, "deallocated")))
				_return_to_service(s, &now);
			if (_not_responding_powered_down(state)) {
				_report(s, sn->name,
				        "power down again (powered down, but "
				        "NOT_RESPONDING since a resume: Slurm "
				        "would not schedule it after a restart)");
				_node_update(s, sn->name,
				             NODE_STATE_POWER_DOWN
				                     | NODE_STATE_POWERED_DOWN,
				             NULL);
			}
			_reset_addr(s, sn);
		} else if ((state & NODE_STATE_BASE) != NODE_STATE_DOWN
		           && (!vs || strcmp(vs, "running"))) {
			bool gone;
			char *power = _vm_power_now(s, sn->name, &gone);

			if (power && !strcmp(power, "running")) {
				log_info("%s: VM running again; not a zombie",
				         sn->name);
			} else if (power || gone) {
				snprintf(why, sizeof(why),
				         "VM %s while the node is up",
				         power ? power : "missing");
				_node_down(s, sn->name, why);
			}
			free(power);
		}
		free(journal);
		sl_node_free(&now);
		power_unlock_node(lock);
	}
}

/*
 * The locks of every node of the domain whose availability set is name:
 * a resume creates the set before it creates the VMs, holding the locks of
 * its nodes, so a set whose domain's locks are all ours is not about to be
 * filled.  Returns false (nothing held) if a lock is busy; *fds (count
 * entries, -1 for none) go back with _domain_unlock().
 */
static bool _domain_lock(struct sync *s, const char *avset, int **fds,
                         size_t *count)
{
	const struct conf_domain *d = NULL;

	*fds = NULL;
	*count = 0;
	for (size_t i = 0; i < s->conf->domain_count && !d; i++)
		if (s->conf->domains[i].availability_set
		    && !strcasecmp(s->conf->domains[i].availability_set, avset))
			d = &s->conf->domains[i];
	if (!d || !d->node_count)
		return true;
	*fds = malloc(d->node_count * sizeof(**fds));
	if (!*fds)
		return false;
	for (size_t j = 0; j < d->node_count; j++) {
		if (power_lock_node(s->conf, d->node_names[j], 0,
		                    &(*fds)[j], NULL, 0)
		    == AZ_OK)
			continue;
		log_info("%s: %s is busy (a resume may be filling the set); "
		         "next time",
		         avset, d->node_names[j]);
		for (size_t k = 0; k < j; k++)
			power_unlock_node((*fds)[k]);
		free(*fds);
		*fds = NULL;
		return false;
	}
	*count = d->node_count;
	return true;
}

/* With its domain's locks held: does the set still hold no VM? */
static bool _avset_still_empty(struct sync *s, const char *name)
{
	struct arm_result *res = NULL;
	json_object *props, *members;
	enum az_rc rc = arm_avset_get(s->arm, name, &res);
	bool empty = rc == AZ_OK;

	if (rc == AZ_OK && res && res->body
	    && json_object_object_get_ex(res->body, "properties", &props)
	    && json_object_object_get_ex(props, "virtualMachines", &members)
	    && json_object_array_length(members) > 0)
		empty = false;
	if (rc != AZ_OK && rc != AZ_ENOTFOUND) {
		log_error("%s: reading it again: %s", name, res ? res->err : "");
		s->failures++;
	}
	if (!empty && rc == AZ_OK)
		log_info("%s: holds VMs again; kept", name);
	arm_result_free(res);
	return empty;
}

static void _domain_unlock(int *fds, size_t count)
{
	for (size_t i = 0; i < count; i++)
		power_unlock_node(fds[i]);
	free(fds);
}

/* Availability sets this cluster made that hold no VM any more. */
static void _sync_avsets(struct sync *s)
{
	struct arm_result *list = NULL;
	json_object *sets = NULL;
	size_t n;

	if (arm_avset_list(s->arm, &list) != AZ_OK) {
		log_error("listing availability sets: %s",
		          list ? list->err : "failed");
		s->failures++;
		arm_result_free(list);
		return;
	}
	if (list->body)
		json_object_object_get_ex(list->body, "value", &sets);
	n = sets ? json_object_array_length(sets) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *set = json_object_array_get_idx(sets, i);
		json_object *props, *members, *v;
		struct arm_result *res = NULL;
		const char *name;
		int *fds = NULL;
		size_t nfds = 0;

		if (!_ours(s, set)
		    || !json_object_object_get_ex(set, "name", &v))
			continue;
		name = json_object_get_string(v);
		if (json_object_object_get_ex(set, "properties", &props)
		    && json_object_object_get_ex(props, "virtualMachines",
		                                 &members)
		    && json_object_array_length(members) > 0)
			continue;
		if (!s->dry_run && !_domain_lock(s, name, &fds, &nfds))
			continue;
		if (!s->dry_run && !_avset_still_empty(s, name)) {
			_domain_unlock(fds, nfds);
			continue;
		}
		_report(s, name, "delete empty availability set");
		if (s->dry_run)
			continue;
		if (arm_avset_delete(s->arm, name, &res) != AZ_OK) {
			log_error("%s: delete: %s", name, res ? res->err : "");
			s->failures++;
		}
		arm_result_free(res);
		_domain_unlock(fds, nfds);
	}
	arm_result_free(list);
}

static void _usage(FILE *f)
{
	fprintf(f, "usage: azrdma-sync [--dry-run] [--grace SECONDS] [-v]\n"
	           "Reconcile this cluster's Azure VMs with Slurm's nodes.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"dry-run", no_argument, NULL, 'n'},
	        {"grace", required_argument, NULL, 'g'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0}};
	struct sync s = {.grace_s = SYNC_DEFAULT_GRACE_S};
	struct sl_ctl_settings ctl;
	struct arm_tuning tuning;
	char err[AZ_ERRLEN], *path = NULL, **vm_state = NULL;
	json_object *vms = NULL;
	int verbose = 0, c, status = 1;

	power_stdio_init();
	while ((c = getopt_long(argc, argv, "ng:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			s.dry_run = true;
			break;
		case 'g':
			s.grace_s = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			_usage(stdout);
			return 0;
		default:
			_usage(stderr);
			return 2;
		}
	}
	sl_init();
	if (power_setup("azrdma-sync", &s.conf, err, sizeof(err)) != AZ_OK) {
		fprintf(stderr, "azrdma-sync: %s\n", err);
		goto out;
	}
	log_also_stderr(LOG_LVL_WARN);
	for (int i = 0; i < verbose; i++)
		log_set_level(log_get_level() + 1);
	arm_tuning_default(&tuning);
	tuning.cache_read_only = s.dry_run;
	if (arm_client_new(s.conf, &tuning, &s.arm, err, sizeof(err)) != AZ_OK
	    || sl_nodes_load(&s.nodes, err, sizeof(err)) != AZ_OK) {
		log_error("%s", err);
		goto out;
	}
	if (sl_ctl_settings(&ctl, err, sizeof(err)) != AZ_OK) {
		log_error("%s", err);
		goto out;
	}
	s.slurm_user_id = ctl.slurm_user_id;
	vm_state = calloc(s.nodes.count + 1, sizeof(*vm_state));
	if (!vm_state
	    || asprintf(&path,
	                "/subscriptions/%s/providers/Microsoft.Compute/"
	                "virtualMachines",
	                s.conf->subscription_id)
	               < 0)
		goto out;
	vms = _list(&s, path, "statusOnly=true");
	if (!vms) {
		log_error("could not list the VMs; nothing done");
		goto out;
	}
	_sync_vms(&s, vms, vm_state);
	_sync_nodes(&s, vm_state);
	_sync_avsets(&s);
	printf("azrdma-sync: %u action%s%s, %u failed\n", s.actions,
	       s.actions == 1 ? "" : "s", s.dry_run ? " (dry run)" : "",
	       s.failures);
	status = s.failures ? 1 : 0;
out:
	for (size_t i = 0; vm_state && i < s.nodes.count; i++)
		free(vm_state[i]);
	free(vm_state);
	free(path);
	json_object_put(vms);
	sl_nodes_free(&s.nodes);
	arm_client_free(s.arm);
	conf_free(s.conf);
	sl_fini();
	log_close();
	return status;
}
