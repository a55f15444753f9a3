/*
 * azrdma-suspend - Slurm's SuspendProgram: deallocate (SuspendAction=
 * Deallocate) or delete (SuspendAction=Delete: VM, NIC and OS disk) the VMs
 * of the nodes, all at once.  A VM that is already gone is success; a VM
 * that is not provably azrdma's (power_resource_ours()) is left alone and the
 * node fails.  The nodes' NodeAddr/NodeHostName become those of a node
 * without a VM (sl_powered_down_addr()).
 *
 * Built a second time as azrdma-resume-fail (RESUME_FAIL defined): Slurm's
 * ResumeFailProgram, for nodes that missed ResumeTimeout.  It logs what
 * the VM was doing, deletes a VM whose creation failed or never finished
 * (and its NIC), and deallocates any other, so nothing bills for a node
 * Slurm has marked DOWN.
 *
 *   azrdma-suspend <hostlist>
 *   azrdma-resume-fail <hostlist>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <slurm/slurm.h>

#include "arm.h"
#include "conf.h"
#include "hostlist.h"
#include "log.h"
#include "power.h"
#include "sl_slurm.h"

#ifdef RESUME_FAIL
#define PROGRAM "azrdma-resume-fail"
#else
#define PROGRAM "azrdma-suspend"
#endif

/*
 * How long to wait for a node's lock (a resume of it may be under way):
 * SuspendTimeout, after which slurmctld counts the node powered down and
 * may give it to a newer job (whose resume then waits for us), but not
 * less than a resume's quick path takes; the state read after the wait
 * keeps a newer job's VM safe either way.  The most, and what is waited
 * when slurmctld cannot say.
 */
#define SUSPEND_LOCK_WAIT_S 600
#define SUSPEND_LOCK_WAIT_MIN_S 30

struct sp_node {
	struct sp *sp;
	char *name;
	char *nic_name;
	int lock_fd;
	bool half_made; /* the journal names a resume that never ended */
	bool in_use;    /* a newer job has it: its VM stays */
	bool ok;
	bool failed;
};

struct sp {
	struct azrdma_conf *conf;
	struct arm_client *arm;
	struct sp_node *nodes;
	size_t count;
	size_t gone, done, failed, in_use;
};

static void _fail(struct sp_node *n, struct arm_result *res, const char *what)
{
	n->failed = true;
	log_error("%s: %s: %s", n->name, what,
	          res ? res->err : "could not submit");
}

static void _nic_deleted(struct arm_client *c, struct arm_result *res,
                         void *arg)
{
	struct sp_node *n = arg;

	if (res->rc != AZ_OK && res->rc != AZ_ENOTFOUND) {
		_fail(n, res, "NIC delete");
		return;
	}
	n->ok = true;
	log_info("%s: VM and NIC deleted", n->name);
}

/* The NIC of the node's name, looked at before it is deleted: only
 * azrdma's NIC of this node in this cluster (its tags) is. */
static void _nic_known(struct arm_client *c, struct arm_result *res,
                       void *arg)
{
	struct sp_node *n = arg;
	char err[AZ_ERRLEN], why[POWER_REASON_LEN];

	if (res->rc == AZ_ENOTFOUND) {
		_nic_deleted(c, res, n); /* gone with its VM, or before */
		return;
	}
	if (res->rc != AZ_OK) {
		_fail(n, res, "NIC lookup");
		return;
	}
	if (!power_resource_ours(n->sp->conf, res->body, "NIC", n->nic_name,
	                         n->name, why, sizeof(why))) {
		/* Nothing of azrdma's is left: the node is done with. */
		n->ok = true;
		log_warn("%s: %s", n->name, why);
		return;
	}
	if (arm_nic_delete_async(c, n->nic_name, _nic_deleted, n, err,
	                         sizeof(err))
	    != AZ_OK)
		_fail(n, NULL, err);
}

static void _nic_delete(struct sp_node *n)
{
	char err[AZ_ERRLEN];

	if (arm_nic_get_async(n->sp->arm, n->nic_name, _nic_known, n, err,
	                      sizeof(err))
	    != AZ_OK)
		_fail(n, NULL, err);
}

static void _vm_deleted(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct sp_node *n = arg;

	if (res->rc != AZ_OK && res->rc != AZ_ENOTFOUND) {
		_fail(n, res, "VM delete");
		return;
	}
	if (res->rc == AZ_ENOTFOUND)
		n->sp->gone++;
	/* The OS disk went with the VM: the Default image applies again. */
	power_image_forget(n->sp->conf, n->name);
	_nic_delete(n);
}

static void _vm_delete(struct sp_node *n)
{
	char err[AZ_ERRLEN];

	if (arm_vm_delete_async(n->sp->arm, n->name, false, _vm_deleted, n, err,
	                        sizeof(err))
	    != AZ_OK)
		_fail(n, NULL, err);
}

static void _vm_deallocated(struct arm_client *c, struct arm_result *res,
                            void *arg)
{
	struct sp_node *n = arg;

	if (res->rc == AZ_ENOTFOUND) {
		/* Gone already; a resume killed after its NIC leaves that. */
		n->sp->gone++;
		power_image_forget(n->sp->conf, n->name);
		if (n->half_made) {
			_nic_delete(n);
			return;
		}
		n->ok = true;
		log_info("%s: no VM, nothing to deallocate", n->name);
		return;
	}
	if (res->rc != AZ_OK) {
		_fail(n, res, "deallocate");
		return;
	}
	n->ok = true;
	log_info("%s: VM deallocated", n->name);
}

static void _vm_deallocate(struct sp_node *n)
{
	char err[AZ_ERRLEN];

	if (arm_vm_deallocate_async(n->sp->arm, n->name, _vm_deallocated, n,
	                            err, sizeof(err))
	    != AZ_OK)
		_fail(n, NULL, err);
}

/*
 * The node's VM, looked at before anything is done to it: only azrdma's VM
 * of this node in this cluster (its tags) is deallocated or deleted.
 */
static void _vm_known(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct sp_node *n = arg;
	char why[POWER_REASON_LEN];
#ifdef RESUME_FAIL
	const char *power, *prov;
#endif

	if (res->rc == AZ_ENOTFOUND) {
#ifdef RESUME_FAIL
		log_info(
		        "%s: missed ResumeTimeout with no VM; removing its NIC",
		        n->name);
		n->sp->gone++;
		power_image_forget(n->sp->conf, n->name);
		_nic_delete(n);
#else
		if (n->sp->conf->suspend_action == SUSPEND_DELETE)
			_vm_deleted(c, res, n);
		else
			_vm_deallocated(c, res, n);
#endif
		return;
	}
	if (res->rc != AZ_OK) {
		_fail(n, res, "VM lookup");
		return;
	}
	if (!power_resource_ours(n->sp->conf, res->body, "VM", n->name,
	                         n->name, why, sizeof(why))) {
		n->failed = true;
		log_error("%s: %s", n->name, why);
		return;
	}
#ifdef RESUME_FAIL
	power = arm_vm_power_state(res->body);
	prov = arm_provisioning_state(res->body);
	log_info("%s: missed ResumeTimeout; VM provisioning %s, power %s",
	         n->name, prov ? prov : "?", power ? power : "?");
	if (n->half_made
	    || (prov
	        && (!strcasecmp(prov, "Failed")
	            || !strcasecmp(prov, "Creating"))))
		_vm_delete(n);
	else
		_vm_deallocate(n);
#else
	if (n->sp->conf->suspend_action == SUSPEND_DELETE)
		_vm_delete(n);
	else
		_vm_deallocate(n);
#endif
}

static void _node_begin(struct sp_node *n)
{
	char err[AZ_ERRLEN];
#ifdef RESUME_FAIL
	unsigned flags = ARM_VM_INSTANCE_VIEW;
#else
	unsigned flags = 0;
#endif

	if (arm_vm_get_async(n->sp->arm, n->name, flags, _vm_known, n, err,
	                     sizeof(err))
	    != AZ_OK)
		_fail(n, NULL, err);
}

/*
 * NodeAddr of the nodes that are done: what a powered-down node has on
 * this release (the name, or one that needs no lookup; sl_compat.h), and
 * NodeHostName the name.
 */
static void _reset_addrs(struct sp *sp)
{
	char **names = calloc(sp->count + 1, sizeof(*names));
	char **addrs = calloc(sp->count + 1, sizeof(*addrs));
	char err[AZ_ERRLEN];
	size_t k = 0;

	for (size_t i = 0; names && addrs && i < sp->count; i++) {
		if (!sp->nodes[i].ok)
			continue;
		names[k] = sp->nodes[i].name;
		addrs[k++] = (char *)sl_powered_down_addr(sp->nodes[i].name);
	}
	if (k && sl_nodes_set_addrs(names, addrs, k, err, sizeof(err))
	                 != AZ_OK)
		log_warn("%zu node(s) powered down, address not reset: %s", k,
		         err);
	else if (!names || !addrs)
		log_warn("address not reset: out of memory");
	free(addrs);
	free(names);
}

/* The lock wait: SuspendTimeout, within the bounds above. */
static unsigned _lock_wait_s(void)
{
#ifdef RESUME_FAIL
	return SUSPEND_LOCK_WAIT_S;
#else
	struct sl_ctl_settings ctl;
	char err[AZ_ERRLEN];
	unsigned timeout;

	if (sl_ctl_settings(&ctl, err, sizeof(err)) != AZ_OK) {
		log_warn("%s; waiting %u s at most for a node's lock", err,
		         SUSPEND_LOCK_WAIT_S);
		return SUSPEND_LOCK_WAIT_S;
	}
	timeout = ctl.suspend_timeout;
	if (timeout < SUSPEND_LOCK_WAIT_MIN_S)
		return SUSPEND_LOCK_WAIT_MIN_S;
	return timeout < SUSPEND_LOCK_WAIT_S ? timeout : SUSPEND_LOCK_WAIT_S;
#endif
}

#ifndef RESUME_FAIL
/*
 * With the locks held, read the nodes' state again: a node a newer job
 * holds (allocated, or powering up for it: slurmctld counted it powered
 * down at SuspendTimeout while we waited for a resume to let go of it)
 * keeps its VM.  If slurmctld cannot be asked, nothing is skipped: Slurm
 * asked for these nodes to go.
 */
static void _skip_nodes_in_use(struct sp *sp)
{
	struct sl_nodes nodes = {0};
	char err[AZ_ERRLEN];

	if (sl_nodes_load(&nodes, err, sizeof(err)) != AZ_OK) {
		log_warn("cannot read the nodes' state again: %s", err);
		return;
	}
	for (size_t i = 0; i < sp->count; i++) {
		struct sp_node *n = &sp->nodes[i];
		const struct sl_node *sn = sl_nodes_find(&nodes, n->name);
		char *state;

		if (n->failed || !sn || !power_node_in_use(sn->state))
			continue;
		state = sl_state_string(sn->state);
		log_info("%s: in use by a newer job (%s); its VM stays", n->name,
		         state ? state : "?");
		free(state);
		n->in_use = true;
		sp->in_use++;
	}
	sl_nodes_free(&nodes);
}
#endif

int main(int argc, char **argv)
{
	struct sp sp = {0};
	char err[AZ_ERRLEN];
	char **names = NULL;
	size_t count = 0;
	struct timespec t0, t1;
	time_t lock_deadline;
	int status = 1;

	power_stdio_init();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	sl_init();
	if (power_setup(PROGRAM, &sp.conf, err, sizeof(err)) != AZ_OK) {
		log_error("azrdma.conf: %s", err);
		goto out;
	}
	if (argc != 2) {
		log_error("usage: " PROGRAM " <hostlist>");
		goto out;
	}
	if (hostlist_expand(argv[1], &names, &count, err, sizeof(err))
	    != AZ_OK) {
		log_error("%s: %s", argv[1], err);
		goto out;
	}
#ifdef RESUME_FAIL
	log_info("clean up %s (%zu nodes): they missed ResumeTimeout", argv[1],
	         count);
#else
	log_info("%s %s (%zu nodes)",
	         sp.conf->suspend_action == SUSPEND_DELETE ? "delete"
	                                                   : "deallocate",
	         argv[1], count);
#endif
	if (arm_client_new(sp.conf, NULL, &sp.arm, err, sizeof(err)) != AZ_OK) {
		log_error("%s", err);
		goto out;
	}
	sp.nodes = calloc(count ? count : 1, sizeof(*sp.nodes));
	if (!sp.nodes)
		goto out;
	/* idle_on_node_suspend made a failed resume's node IDLE just before
	 * starting us: it goes DOWN with its reason again at once, before
	 * the scheduler gives it to the requeued job, and stays so until an
	 * admin resumes it. */
	for (size_t i = 0; i < count; i++) {
		char *reason = power_failed_take(sp.conf, names[i]);

		if (reason
		    && sl_node_set_state(names[i], NODE_STATE_DOWN, reason, err,
		                         sizeof(err))
		               != AZ_OK)
			log_error("%s: could not set DOWN again: %s", names[i],
			          err);
		free(reason);
	}
	lock_deadline = time(NULL) + _lock_wait_s();
	for (size_t i = 0; i < count; i++) {
		struct sp_node *n = &sp.nodes[sp.count++];
		time_t now = time(NULL);

		n->sp = &sp;
		n->name = names[i];
		n->nic_name = power_nic_name(names[i]);
		if (power_lock_node(sp.conf, n->name,
		                    now < lock_deadline
		                            ? (unsigned)(lock_deadline - now)
		                            : 0,
		                    &n->lock_fd, err, sizeof(err))
		    != AZ_OK)
			_fail(n, NULL, err);
	}
#ifndef RESUME_FAIL
	_skip_nodes_in_use(&sp);
#endif
	for (size_t i = 0; i < sp.count; i++) {
		struct sp_node *n = &sp.nodes[i];
		struct power_journal j;
		char *journal;

		if (n->failed || n->in_use)
			continue;
		journal = power_journal_read(sp.conf, n->name);
		n->half_made = power_journal_parse(journal, &j);
		if (n->half_made)
			log_info("%s: a resume never ended (%.*s); undoing it",
			         n->name, (int)strcspn(journal, "\n"), journal);
		free(journal);
		if (!n->nic_name)
			_fail(n, NULL, "out of memory");
		else
			_node_begin(n);
	}
	if (arm_client_run(sp.arm, -1, err, sizeof(err)) != AZ_OK)
		log_error("ARM: %s", err);
	_reset_addrs(&sp);
	for (size_t i = 0; i < sp.count; i++) {
		struct sp_node *n = &sp.nodes[i];

		if (n->ok)
			power_journal_clear(sp.conf, n->name);
		else if (!n->in_use)
			sp.failed++;
		power_unlock_node(n->lock_fd);
		free(n->nic_name);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("%s: %zu done (%zu were gone already), %zu in use by a newer "
	         "job, %zu failed, %.1f s",
	         argv[1], sp.count - sp.failed - sp.in_use, sp.gone, sp.in_use,
	         sp.failed,
	         (double)(t1.tv_sec - t0.tv_sec)
	                 + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	status = sp.failed ? 1 : 0;
out:
	free(sp.nodes);
	hostnames_free(names, count);
	arm_client_free(sp.arm);
	conf_free(sp.conf);
	sl_fini();
	log_close();
	return status;
}
