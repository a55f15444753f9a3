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
 *   stale   powered-down node with an address: NodeAddr back to its name;
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

struct sync {
	struct azrdma_conf *conf;
	struct arm_client *arm;
	struct sl_nodes nodes;
	bool dry_run;
	unsigned grace_s;
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

static const char *_tag(json_object *res, const char *key)
{
	json_object *tags, *v;

	if (!json_object_object_get_ex(res, "tags", &tags)
	    || !json_object_object_get_ex(tags, key, &v))
		return NULL;
	return json_object_get_string(v);
}

static bool _ours(const struct sync *s, json_object *res)
{
	const char *cluster = _tag(res, TAG_CLUSTER);

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
 * How long a VM has been seen as an orphan: the first sighting is kept in
 * StateDir/orphans/<vm>; forgotten once it is no orphan any more.
 */
static long _orphan_age(struct sync *s, const char *vm, bool orphan)
{
	char path[1024], *data = NULL, stamp[32];
	long age = 0;

	snprintf(path, sizeof(path), "%s/orphans", s->conf->state_dir);
	fs_mkdir_p(path, 0700, NULL, 0);
	snprintf(path, sizeof(path), "%s/orphans/%s", s->conf->state_dir, vm);
	if (!orphan) {
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

static void _nic_delete(struct sync *s, const char *node)
{
	struct arm_result *res = NULL;
	char *nic = power_nic_name(node);
	enum az_rc rc;

	_report(s, node, "delete NIC %s of an unfinished resume", nic);
	if (!s->dry_run) {
		rc = arm_nic_delete(s->arm, nic, &res);
		if (rc != AZ_OK && rc != AZ_ENOTFOUND) {
			log_error("%s: NIC delete: %s", node,
			          res ? res->err : "");
			s->failures++;
		}
		arm_result_free(res);
	}
	free(nic);
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

static void _node_down(struct sync *s, const char *node, const char *why)
{
	char reason[POWER_REASON_LEN], text[256], err[AZ_ERRLEN];

	snprintf(text, sizeof(text), "sync: %s", why);
	power_reason_text(reason, sizeof(reason), text);
	_report(s, node, "set DOWN (%s)", why);
	if (s->dry_run)
		return;
	if (sl_node_set_state(node, NODE_STATE_DOWN, reason, err, sizeof(err))
	    != AZ_OK) {
		log_error("%s: %s", node, err);
		s->failures++;
	}
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
		node = _tag(vm, TAG_NODE) ? _tag(vm, TAG_NODE) : name;
		power = arm_vm_power_state(vm);
		/* Any VM of the resource group counts as a node's VM, ours or
		 * made by hand; only ours are ever deallocated. */
		for (size_t d = 0; d < s->nodes.count; d++)
			if (!strcmp(s->nodes.items[d].name, node)
			    && !vm_state[d])
				vm_state[d] = strdup(power ? power : "unknown");
		if (!_ours(s, vm) || !power || strcmp(power, "running"))
			continue;
		sn = sl_nodes_find(&s->nodes, node);
		if (!sn)
			why = "node unknown to Slurm";
		else if (_powered_down(sn->state))
			why = "node powered down";
		if (why
		    && power_lock_node(s->conf, node, 0, &lock, NULL, 0)
		               != AZ_OK) {
			log_verbose("%s: busy, next time", node);
			continue;
		}
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

/* Nodes of azrdma.conf: zombies, stale addresses, unfinished journals. */
static void _sync_nodes(struct sync *s, char **vm_state)
{
	for (size_t i = 0; i < s->nodes.count; i++) {
		const struct sl_node *sn = &s->nodes.items[i];
		const char *vs = vm_state[i];
		char *journal;
		char why[128];
		int lock = -1;

		if (!domain_for_node(s->conf, sn->name) || _busy(sn->state))
			continue;
		if (power_lock_node(s->conf, sn->name, 0, &lock, NULL, 0)
		    != AZ_OK)
			continue;
		journal = power_journal_read(s->conf, sn->name);
		if (_powered_down(sn->state)) {
			if (journal && !vs)
				_nic_delete(s, sn->name);
			if (journal && !s->dry_run)
				power_journal_clear(s->conf, sn->name);
			if (!vs)
				_image_forget(s, sn->name);
			if (sn->addr && strcmp(sn->addr, sn->name)) {
				_report(s, sn->name,
				        "reset NodeAddr %s of a powered-down "
				        "node",
				        sn->addr);
				if (!s->dry_run)
					sl_node_set_addr(sn->name, sn->name,
					                 sn->name, NULL, 0);
			}
		} else if ((sn->state & NODE_STATE_BASE) != NODE_STATE_DOWN
		           && (!vs || strcmp(vs, "running"))) {
			snprintf(why, sizeof(why), "VM %s while the node is up",
			         vs ? vs : "missing");
			_node_down(s, sn->name, why);
		}
		free(journal);
		power_unlock_node(lock);
	}
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

		if (!_ours(s, set)
		    || !json_object_object_get_ex(set, "name", &v))
			continue;
		name = json_object_get_string(v);
		if (json_object_object_get_ex(set, "properties", &props)
		    && json_object_object_get_ex(props, "virtualMachines",
		                                 &members)
		    && json_object_array_length(members) > 0)
			continue;
		_report(s, name, "delete empty availability set");
		if (s->dry_run)
			continue;
		if (arm_avset_delete(s->arm, name, &res) != AZ_OK) {
			log_error("%s: delete: %s", name, res ? res->err : "");
			s->failures++;
		}
		arm_result_free(res);
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
		fprintf(stderr, "azrdma-sync: azrdma.conf: %s\n", err);
		goto out;
	}
	log_also_stderr(LOG_LVL_WARN);
	for (int i = 0; i < verbose; i++)
		log_set_level(log_get_level() + 1);
	if (arm_client_new(s.conf, NULL, &s.arm, err, sizeof(err)) != AZ_OK
	    || sl_nodes_load(&s.nodes, err, sizeof(err)) != AZ_OK) {
		log_error("%s", err);
		goto out;
	}
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
