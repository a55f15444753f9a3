/*
 * azrdma-resume - Slurm's ResumeProgram: turn powered-down nodes into
 * running Azure VMs in their fabric domain's availability set.
 *
 *   azrdma-resume <hostlist> [<features>]
 *
 * The image of each node: the one <features> names (Slurm 22.05 "reboots"
 * a node into a job's image that way), else the one its job's constraint
 * names in SLURM_RESUME_FILE (23.02 and later resume powered-down nodes
 * only, and say there what each job asked), else what its disk holds or
 * its domain's default (_node_image()).
 *
 * Per domain: the proximity placement group (if any) and the availability
 * set are PUT.  Per node, beside that: a running VM just gets its address
 * pushed, a stopped one is started, a missing one gets a NIC (its address
 * is pushed to slurmctld at once) and, once its domain is ready, a VM.  One
 * list of the resource group's VMs tells missing nodes from existing ones.
 * Every call runs concurrently through one ARM client.  A node that fails
 * is set DOWN with the Azure error as its reason and recycled through
 * power_down_force, its half-made VM and NIC removed; a multi-node job
 * that loses one node releases the others.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>
#include <slurm/slurm.h>

#include "arm.h"
#include "buf.h"
#include "conf.h"
#include "feature_set.h"
#include "fsutil.h"
#include "hostlist.h"
#include "jobs.h"
#include "log.h"
#include "power.h"
#include "sl_compat.h"
#include "sl_slurm.h"

/*
 * VM creates and starts in flight at once: each holds its request body
 * until it ends, and ARM's write bucket (10/s) cannot take them faster
 * anyway; 300 keeps up with that at VM creation times up to 30 s.
 */
#define RESUME_VM_INFLIGHT 300

/*
 * Nodes between their first lookup and their address, per ARM request
 * slot (MaxParallelRequests): enough to keep every slot busy, while the
 * rest wait as a flag instead of as queued requests with their bodies and
 * buffers (2.5 KB and more each, for every node of a big resume at once).
 */
#define RESUME_ADDR_WINDOW_PER_SLOT 4

/* How long to wait for a node's lock (a suspend of it may be under way). */
#define RESUME_LOCK_WAIT_S 600
/* How long addresses are sent again while slurmctld is away, and the
 * longest pause between tries. */
#define RESUME_ADDR_RETRY_S 300
#define RESUME_ADDR_RETRY_MAX_S 8

struct rs;

enum { VM_QUEUED_NONE = 0, VM_QUEUED_CREATE, VM_QUEUED_START };

/* Where a node is on its way to an address (the window above). */
enum { ADDR_NOT_YET = 0, ADDR_WAITING, ADDR_ACTIVE, ADDR_DONE };

/* The resource group's VM and NIC lists, each read once at the start. */
enum { LIST_PENDING = 0, LIST_DONE, LIST_FAILED };

/* What the NIC list said of a node's NIC (NIC_LOOKUP: ask on its own). */
enum { NIC_UNSEEN = 0, NIC_OURS, NIC_FOREIGN, NIC_LOOKUP };

/*
 * Pages of the list that nodes wait for: once a page beyond these comes,
 * they begin anyway (looked up one by one until the list is complete).  A
 * short list costs the nodes no more than the availability set they once
 * waited for; a long one never holds them up for long.
 */
#define RESUME_LIST_WAIT_PAGES 2

/* A domain's placement: a VM may be created or started in it once READY. */
enum { DOM_PENDING = 0, DOM_READY, DOM_FAILED };

/* One fabric domain with work in this run. */
struct rs_domain {
	struct rs *rs;
	const struct conf_domain *dom;
	int state;                      /* DOM_* */
	char reason[POWER_REASON_LEN];  /* when DOM_FAILED */
};

struct rs_node {
	struct rs *rs;
	char *name;
	char *nic_name;
	const struct conf_domain *dom;
	struct rs_domain *rsd; /* dom's placement in this run */
	const struct conf_image *image;
	uint32_t job_id;
	int lock_fd;
	bool failed;
	bool ok;
	bool made_nic;     /* this run PUT the NIC */
	bool made_vm;      /* this run PUT the VM */
	bool recreate;     /* delete the VM, then create it (image change) */
	bool released;     /* healthy, but its job lost another node */
	bool powered_down; /* power_down_force sent */
	bool listed;       /* its VM is in the resource group's list */
	int nic_seen;      /* NIC_*: its NIC in the resource group's list */
	char *nic_why;     /* when NIC_FOREIGN: why it is not ours */
	int vm_queued;     /* VM_QUEUED_*: create or start, after the NICs */
	int addr_phase;    /* ADDR_* */
	char reason[POWER_REASON_LEN];
};

struct rs {
	struct azrdma_conf *conf;
	struct arm_client *arm;
	struct rs_node *nodes;
	size_t count;
	struct power_jobs jobs; /* from SLURM_RESUME_FILE */
	char *custom_data;      /* CustomDataFile's text, or NULL */
	char *ssh_key;          /* SshPublicKeyFile's key, or NULL */
	const struct conf_image *want_image; /* feature reboot: img_<name> */
	size_t created, started, running, failed, released;
	size_t nics_outstanding; /* NIC PUTs (and lookups) not answered */
	size_t addr_waiting;     /* nodes with work, not begun */
	size_t addr_active;      /* nodes begun, without their address yet */
	size_t addr_window;      /* most nodes ADDR_ACTIVE at once */
	bool addr_filling;       /* inside _addr_fill() */
	size_t vms_inflight;     /* VM creates and starts not finished */
	int vm_list;             /* LIST_*: a VM not in a complete list
	                          * does not exist, and needs no lookup */
	size_t vm_list_pages;    /* pages of it seen so far */
	int nic_list;            /* LIST_*: the same for the NICs, so that a
	                          * fresh node's NIC needs no lookup either */
	size_t nic_list_pages;
	struct rs_domain *doms;  /* one per Domain= line */
	/* Addresses answered in this round of the ARM client and not yet
	 * pushed (_addr_flush()), room for every node: the nodes' names
	 * (theirs) beside copies of the addresses (ours). */
	char **addr_names;
	char **addr_ips;
	size_t addr_batched;
	/* Until when an address slurmctld cannot take (it is restarting) is
	 * sent again: a job whose nodes' addresses never arrive hangs. */
	time_t addr_deadline;
	/* slurmctld's start when this run began, 0 if it could not be
	 * asked (it was restarting): see _requeue_after_restart(). */
	time_t ctld_boot;
	bool journal_unsynced;   /* entries written since the last sync */
};

static void _vm_create(struct rs_node *n);
static void _vm_start(struct rs_node *n);
static void _vm_queue_flush(struct rs *rs);
static void _addr_end(struct rs_node *n);
static void _slurm_fail(struct rs_node *n);
static void _release_job_of(struct rs_node *n);
static void _addr_flush(struct rs *rs);

static struct rs_node *_node_find(struct rs *rs, const char *name)
{
	for (size_t i = 0; i < rs->count; i++)
		if (!strcmp(rs->nodes[i].name, name))
			return &rs->nodes[i];
	return NULL;
}

/*
 * The node is done in this run (running, or failed and cleaned up): its
 * journal entry goes and its lock is released at once, so a suspend that
 * waits for it need not wait for the other nodes.
 */
static void _node_finish(struct rs_node *n)
{
	if (n->lock_fd < 0)
		return;
	/* A suspend waiting for the lock must find the address in Slurm
	 * already, or ours would overwrite its reset. */
	_addr_flush(n->rs);
	power_journal_clear(n->rs->conf, n->name);
	power_unlock_node(n->lock_fd);
	n->lock_fd = -1;
}

/* ---- failure and cleanup ---------------------------------------------- */

static void _cleanup_done(struct arm_client *c, struct arm_result *res,
                          void *arg)
{
	struct rs_node *n = arg;

	if (res->rc != AZ_OK && res->rc != AZ_ENOTFOUND)
		log_error("%s: cleanup failed: %s", n->name, res->err);
	else
		log_verbose("%s: half-made resource removed", n->name);
}

static void _cleanup_last(struct arm_client *c, struct arm_result *res,
                          void *arg)
{
	_cleanup_done(c, res, arg);
	if (res->rc == AZ_OK || res->rc == AZ_ENOTFOUND)
		_node_finish(arg);
}

static void _cleanup_vm_done(struct arm_client *c, struct arm_result *res,
                             void *arg)
{
	struct rs_node *n = arg;
	char err[AZ_ERRLEN];

	/* The VM went with its disk: the Default image applies again. */
	if (res->rc == AZ_OK || res->rc == AZ_ENOTFOUND)
		power_image_forget(n->rs->conf, n->name);
	if (!n->made_nic) {
		_cleanup_last(c, res, arg);
		return;
	}
	_cleanup_done(c, res, arg);
	if (arm_nic_delete_async(c, n->nic_name, _cleanup_last, n, err,
	                         sizeof(err))
	    != AZ_OK)
		log_error("%s: cleanup of NIC: %s", n->name, err);
}

/*
 * Mark n failed with reason and remove what this run made for it, so no
 * VM bills for a node Slurm has given up on.
 */
static void _node_fail(struct rs_node *n, const char *reason)
{
	char err[AZ_ERRLEN];
	enum az_rc rc = AZ_OK;

	if (n->failed)
		return;
	n->failed = true;
	/* Released for a sibling, but failing on its own: it goes DOWN with
	 * its own error. */
	n->released = false;
	snprintf(n->reason, sizeof(n->reason), "%s", reason);
	power_reason_clean(n->reason, sizeof(n->reason));
	log_error("%s: %s", n->name, n->reason);
	/* Tell slurmctld now: the job requeues while we clean up. */
	_slurm_fail(n);
	_release_job_of(n);
	_addr_end(n);
	if (!n->rs->arm || (!n->made_vm && !n->made_nic)) {
		_node_finish(n);
		return;
	}
	if (n->made_vm)
		rc = arm_vm_delete_async(n->rs->arm, n->name, true,
		                         _cleanup_vm_done, n, err, sizeof(err));
	else
		rc = arm_nic_delete_async(n->rs->arm, n->nic_name,
		                          _cleanup_last, n, err, sizeof(err));
	if (rc != AZ_OK)
		log_error("%s: cleanup: %s", n->name, err);
}

static void _node_fail_res(struct rs_node *n, struct arm_result *res,
                           const char *what)
{
	char reason[POWER_REASON_LEN];

	power_reason(res, what, reason, sizeof(reason));
	if (res->error.code && power_is_capacity_error(res->error.code))
		power_cooldown_set(n->rs->conf, n->dom->name, reason);
	_node_fail(n, reason);
}

/* Submitting failed (no memory, bad name): the node fails at once. */
static void _node_fail_submit(struct rs_node *n, const char *err)
{
	char reason[POWER_REASON_LEN];

	power_reason_text(reason, sizeof(reason), err);
	_node_fail(n, reason);
}

static void _journal(struct rs_node *n, const char *step)
{
	struct power_journal j = {.resume = true,
	                          .job_id = n->job_id,
	                          .made_nic = n->made_nic,
	                          .made_vm = n->made_vm};
	char entry[256], err[AZ_ERRLEN];

	snprintf(j.step, sizeof(j.step), "%s", step);
	if (!power_journal_format(entry, sizeof(entry), &j)
	    || power_journal_write(n->rs->conf, n->name, entry, err,
	                           sizeof(err))
	               != AZ_OK)
		log_warn("%s: journal: %s", n->name, err);
	n->rs->journal_unsynced = true;
}

/*
 * The entries announce requests that were only submitted: the ARM client
 * sends them after the round ends, so one sync here puts every entry on
 * disk before its request leaves (a sync per entry cost a millisecond
 * each, in a row, for every node).
 */
static void _journal_sync(struct rs *rs)
{
	char err[AZ_ERRLEN];

	if (!rs->journal_unsynced)
		return;
	rs->journal_unsynced = false;
	if (power_journal_sync(rs->conf, err, sizeof(err)) != AZ_OK)
		log_warn("journal: %s", err);
}

/* ---- request bodies ---------------------------------------------------- */

static json_object *_tags(struct rs_node *n)
{
	const struct azrdma_conf *conf = n->rs->conf;
	json_object *tags = json_object_new_object();
	char job[16];

	for (size_t i = 0; i < conf->tag_count; i++)
		json_object_object_add(
		        tags, conf->tags[i].key,
		        json_object_new_string(conf->tags[i].value));
	snprintf(job, sizeof(job), "%u", n->job_id);
	json_object_object_add(tags, TAG_CLUSTER,
	                       json_object_new_string(conf->cluster_name));
	json_object_object_add(tags, TAG_NODE, json_object_new_string(n->name));
	json_object_object_add(tags, TAG_DOMAIN,
	                       json_object_new_string(n->dom->name));
	json_object_object_add(tags, TAG_JOB, json_object_new_string(job));
	return tags;
}

static char *_base64(const char *s, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *in = (const unsigned char *)s;
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = in[i] << 16;

		if (i + 1 < len)
			v |= in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*o++ = tab[(v >> 18) & 63];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? tab[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/*
 * CustomDataFile with @NODE@, @IMAGE@, @DOMAIN@ and @CLUSTER@ replaced,
 * followed by the marker lines the node's boot reads its identity from.
 * Base64, as ARM wants it; caller frees.
 */
static char *_custom_data(struct rs_node *n)
{
	static const char *const keys[] = {"@NODE@", "@IMAGE@", "@DOMAIN@",
	                                   "@CLUSTER@"};
	const char *vals[] = {n->name, n->image->name, n->dom->name,
	                      n->rs->conf->cluster_name};
	const char *p = n->rs->custom_data ? n->rs->custom_data : "";
	struct az_buf b = {0};
	char *out;

	while (*p) {
		size_t k;

		for (k = 0; k < 4; k++)
			if (!strncmp(p, keys[k], strlen(keys[k])))
				break;
		if (k < 4) {
			buf_puts(&b, vals[k]);
			p += strlen(keys[k]);
		} else {
			buf_append(&b, p++, 1);
		}
	}
	if (b.len && b.data[b.len - 1] != '\n')
		buf_puts(&b, "\n");
	buf_printf(&b, "# azrdma:node=%s\n# azrdma:image=%s\n", n->name,
	           n->image->name);
	out = b.data ? _base64(b.data, b.len) : NULL;
	buf_free(&b);
	return out;
}

static json_object *_image_reference(const struct conf_image *img)
{
	json_object *ref = json_object_new_object();

	if (img->id) {
		json_object_object_add(ref, "id",
		                       json_object_new_string(img->id));
	} else if (img->urn) {
		static const char *const part[] = {"publisher", "offer", "sku",
		                                   "version"};
		char *urn = strdup(img->urn), *save = NULL, *tok = urn;

		for (int i = 0; i < 4 && urn; i++, tok = NULL) {
			char *v = strtok_r(tok, ":", &save);

			if (!v)
				break;
			json_object_object_add(ref, part[i],
			                       json_object_new_string(v));
		}
		free(urn);
	}
	return ref;
}

static json_object *_nic_body(struct rs_node *n)
{
	json_object *body = json_object_new_object();
	json_object *props = json_object_new_object();
	json_object *ipcs = json_object_new_array();
	json_object *ipc = json_object_new_object();
	json_object *ipp = json_object_new_object();
	json_object *subnet = json_object_new_object();

	json_object_object_add(subnet, "id",
	                       json_object_new_string(n->rs->conf->subnet_id));
	json_object_object_add(ipp, "subnet", subnet);
	json_object_object_add(ipp, "privateIPAllocationMethod",
	                       json_object_new_string("Dynamic"));
	json_object_object_add(ipc, "name",
	                       json_object_new_string("ipconfig1"));
	json_object_object_add(ipc, "properties", ipp);
	json_object_array_add(ipcs, ipc);
	json_object_object_add(props, "ipConfigurations", ipcs);
	json_object_object_add(body, "location",
	                       json_object_new_string(n->rs->conf->location));
	json_object_object_add(body, "tags", _tags(n));
	json_object_object_add(body, "properties", props);
	return body;
}

static json_object *_id_ref(char *path)
{
	json_object *ref = json_object_new_object();

	json_object_object_add(ref, "id", json_object_new_string(path));
	free(path);
	return ref;
}

static json_object *_vm_body(struct rs_node *n)
{
	struct rs *rs = n->rs;
	json_object *body = json_object_new_object();
	json_object *props = json_object_new_object();
	json_object *hw = json_object_new_object();
	json_object *storage = json_object_new_object();
	json_object *disk = json_object_new_object();
	json_object *os = json_object_new_object();
	json_object *linux_conf = json_object_new_object();
	json_object *net = json_object_new_object();
	json_object *nics = json_object_new_array();
	json_object *nic = json_object_new_object();
	json_object *nicp = json_object_new_object();
	char *custom = _custom_data(n);
	char *nic_path = arm_nic_path(rs->arm, n->nic_name);

	json_object_object_add(hw, "vmSize",
	                       json_object_new_string(n->dom->size->name));
	json_object_object_add(props, "hardwareProfile", hw);
	json_object_object_add(
	        props, "availabilitySet",
	        _id_ref(arm_avset_path(rs->arm, n->dom->availability_set)));

	json_object_object_add(disk, "createOption",
	                       json_object_new_string("FromImage"));
	json_object_object_add(disk, "deleteOption",
	                       json_object_new_string("Delete"));
	json_object_object_add(storage, "imageReference",
	                       _image_reference(n->image));
	json_object_object_add(storage, "osDisk", disk);
	json_object_object_add(props, "storageProfile", storage);

	json_object_object_add(os, "computerName",
	                       json_object_new_string(n->name));
	json_object_object_add(
	        os, "adminUsername",
	        json_object_new_string(rs->conf->admin_username));
	if (custom)
		json_object_object_add(os, "customData",
		                       json_object_new_string(custom));
	free(custom);
	json_object_object_add(linux_conf, "disablePasswordAuthentication",
	                       json_object_new_boolean(1));
	if (rs->ssh_key) {
		json_object *ssh = json_object_new_object();
		json_object *keys = json_object_new_array();
		json_object *key = json_object_new_object();
		char path[512];

		snprintf(path, sizeof(path), "/home/%s/.ssh/authorized_keys",
		         rs->conf->admin_username);
		json_object_object_add(key, "path",
		                       json_object_new_string(path));
		json_object_object_add(key, "keyData",
		                       json_object_new_string(rs->ssh_key));
		json_object_array_add(keys, key);
		json_object_object_add(ssh, "publicKeys", keys);
		json_object_object_add(linux_conf, "ssh", ssh);
	}
	json_object_object_add(os, "linuxConfiguration", linux_conf);
	json_object_object_add(props, "osProfile", os);

	json_object_object_add(nicp, "primary", json_object_new_boolean(1));
	json_object_object_add(nicp, "deleteOption",
	                       json_object_new_string("Delete"));
	json_object_object_add(
	        nic, "id", json_object_new_string(nic_path ? nic_path : ""));
	json_object_object_add(nic, "properties", nicp);
	json_object_array_add(nics, nic);
	json_object_object_add(net, "networkInterfaces", nics);
	json_object_object_add(props, "networkProfile", net);
	if (n->dom->priority == PRIORITY_SPOT) {
		json_object_object_add(props, "priority",
		                       json_object_new_string("Spot"));
		json_object_object_add(props, "evictionPolicy",
		                       json_object_new_string("Deallocate"));
	}

	json_object_object_add(body, "location",
	                       json_object_new_string(rs->conf->location));
	json_object_object_add(body, "tags", _tags(n));
	json_object_object_add(body, "properties", props);
	free(nic_path);
	return body;
}

/* ---- the steps of one node --------------------------------------------- */

/*
 * One node's address, now.  While slurmctld cannot be reached (restarting)
 * it is sent again, 1, 2, 4, then every 8 s until rs->addr_deadline: the
 * node's lock is still held here, so a suspend cannot reset the address
 * before it arrives, and the other nodes' calls wait (slurmctld takes
 * none of theirs either).
 */
static void _push_addr_now(struct rs *rs, const char *name, const char *ip)
{
	char err[AZ_ERRLEN];
	unsigned delay = 1, tries = 1;

	for (;; tries++) {
		enum az_rc rc = sl_node_set_addr(name, ip, name, err,
		                                 sizeof(err));

		if (rc == AZ_OK)
			break;
		if (rc != AZ_EHTTP) {
			log_error("%s: NodeAddr=%s not set: %s", name, ip, err);
			return;
		}
		if (time(NULL) + (time_t)delay > rs->addr_deadline) {
			log_error("%s: NodeAddr=%s not set: %s; gave up", name,
			          ip, err);
			return;
		}
		log_warn("%s: NodeAddr=%s not set: %s; again in %u s", name, ip,
		         err, delay);
		sleep(delay);
		if (delay < RESUME_ADDR_RETRY_MAX_S)
			delay *= 2;
	}
	if (tries > 1)
		log_info("%s: NodeAddr=%s set at try %u", name, ip, tries);
	else
		log_verbose("%s: NodeAddr=%s", name, ip);
}

/*
 * Each RPC to slurmctld takes a millisecond or more, in which the ARM client
 * sends and reads nothing; a hundred NICs answering at once would wait on
 * each other.  So an address waits for the end of its round (_addr_flush).
 */
static void _push_addr(struct rs_node *n, const char *ip)
{
	struct rs *rs = n->rs;
	char *copy = strdup(ip);

	if (!copy) {
		_push_addr_now(rs, n->name, ip);
		return;
	}
	if (rs->addr_batched == rs->count) /* a node answered twice */
		_addr_flush(rs);
	rs->addr_names[rs->addr_batched] = n->name;
	rs->addr_ips[rs->addr_batched] = copy;
	rs->addr_batched++;
}

/*
 * Push the round's addresses in one slurm_update_node (slurmctld takes a
 * list of names with a list of addresses).  If that fails, each node is
 * pushed alone, so that the error names its node.
 */
static void _addr_flush(struct rs *rs)
{
	size_t count = rs->addr_batched;
	char err[AZ_ERRLEN];
	bool sent = false;

	if (!count)
		return;
	rs->addr_batched = 0;
	if (count > 1) {
		sent = sl_nodes_set_addrs(rs->addr_names, rs->addr_ips, count,
		                          err, sizeof(err))
		       == AZ_OK;
		if (!sent)
			log_warn("NodeAddr of %zu nodes at once: %s; each "
			         "alone now", count, err);
	}
	for (size_t i = 0; i < count; i++) {
		if (sent)
			log_verbose("%s: NodeAddr=%s", rs->addr_names[i],
			            rs->addr_ips[i]);
		else
			_push_addr_now(rs, rs->addr_names[i], rs->addr_ips[i]);
		free(rs->addr_ips[i]);
		rs->addr_ips[i] = NULL;
	}
}

static void _round_end(struct arm_client *c, void *arg)
{
	_addr_flush(arg);
	_journal_sync(arg);
}

static void _vm_done(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct rs_node *n = arg;

	n->rs->vms_inflight--;
	if (res->rc != AZ_OK) {
		_node_fail_res(n, res, "VM did not start");
	} else {
		n->ok = true;
		log_info("%s: VM running", n->name);
		_node_finish(n);
	}
	_vm_queue_flush(n->rs);
}

static void _vm_start(struct rs_node *n)
{
	char err[AZ_ERRLEN];

	n->rs->started++;
	if (arm_vm_start_async(n->rs->arm, n->name, _vm_done, n, err,
	                       sizeof(err))
	    != AZ_OK) {
		n->rs->vms_inflight--;
		_node_fail_submit(n, err);
	}
}

static void _vm_create(struct rs_node *n)
{
	json_object *body = _vm_body(n);
	char err[AZ_ERRLEN];

	n->made_vm = true;
	n->rs->created++;
	_journal(n, "vm");
	/* From the PUT on, a disk with this image may exist; a failed
	 * create deletes the VM and forgets the record again. */
	if (power_image_record(n->rs->conf, n->name, n->image->name, err,
	                       sizeof(err))
	    != AZ_OK)
		log_warn("%s: image record: %s", n->name, err);
	if (arm_vm_create_async(n->rs->arm, n->name, body, _vm_done, n, err,
	                        sizeof(err))
	    != AZ_OK) {
		n->rs->vms_inflight--;
		_node_fail_submit(n, err);
	}
	json_object_put(body);
}

/*
 * VM creates and starts wait until no NIC of this run is outstanding, so
 * every node gets its address before the write budget goes to VMs: with
 * ARM's write bucket the bottleneck, the last address comes N/refill
 * seconds after the start instead of 2N/refill.  Small runs see no delay.
 */
static void _vm_queue_flush(struct rs *rs)
{
	if (rs->nics_outstanding || rs->addr_waiting || rs->addr_active)
		return;
	/* Building and journalling a wave of VMs takes a while: the
	 * addresses answered so far go first. */
	_addr_flush(rs);
	for (size_t i = 0; i < rs->count; i++) {
		struct rs_node *n = &rs->nodes[i];

		if (rs->vms_inflight >= RESUME_VM_INFLIGHT)
			break;
		if (n->vm_queued == VM_QUEUED_NONE || n->failed)
			continue;
		/* Nothing is ever created or started outside its placement. */
		if (n->rsd->state == DOM_PENDING)
			continue;
		if (n->rsd->state == DOM_FAILED) {
			n->vm_queued = VM_QUEUED_NONE;
			_node_fail(n, n->rsd->reason);
			continue;
		}
		rs->vms_inflight++;
		if (n->vm_queued == VM_QUEUED_CREATE)
			_vm_create(n);
		else
			_vm_start(n);
		n->vm_queued = VM_QUEUED_NONE;
	}
}

static void _vm_queue(struct rs_node *n, int what)
{
	n->vm_queued = what;
	_vm_queue_flush(n->rs);
}

static void _nic_address(struct rs_node *n, struct arm_result *res)
{
	const char *ip = arm_nic_private_ip(res->body);

	if (!ip)
		_node_fail(n, "azrdma: NoPrivateIp: the NIC has no address");
	else
		_push_addr(n, ip);
	n->rs->nics_outstanding--;
	_addr_end(n);
	if (ip)
		_vm_queue(n, VM_QUEUED_CREATE);
	else
		_vm_queue_flush(n->rs);
}

/* The node's NIC step failed: it holds the VM creates back no more. */
static void _nic_step_failed(struct rs_node *n, struct arm_result *res,
                             const char *what)
{
	n->rs->nics_outstanding--;
	_node_fail_res(n, res, what);
	_vm_queue_flush(n->rs);
}

static void _nic_fetched(struct arm_client *c, struct arm_result *res,
                         void *arg)
{
	struct rs_node *n = arg;

	if (res->rc != AZ_OK) {
		_nic_step_failed(n, res, "NIC lookup failed");
		return;
	}
	_nic_address(n, res);
}

static void _nic_made(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct rs_node *n = arg;
	char err[AZ_ERRLEN];

	if (res->rc != AZ_OK) {
		_nic_step_failed(n, res, "NIC not created");
		return;
	}
	/* ARM assigns a dynamic address at once: the PUT's answer has it,
	 * and no LRO poll stands between the node and its address. */
	if (!arm_nic_private_ip(res->body)) {
		if (arm_nic_get_async(c, n->nic_name, _nic_fetched, n, err,
		                      sizeof(err))
		    != AZ_OK) {
			n->rs->nics_outstanding--;
			_node_fail_submit(n, err);
			_vm_queue_flush(n->rs);
		}
		return;
	}
	_nic_address(n, res);
}

static void _nic_create(struct rs_node *n)
{
	json_object *body = _nic_body(n);
	char *path = arm_nic_path(n->rs->arm, n->nic_name);
	struct arm_request req = {.method = ARM_PUT,
	                          .path = path,
	                          .api = ARM_API_NETWORK,
	                          .body = body,
	                          .flags = ARM_REQ_NO_LRO};
	char err[AZ_ERRLEN];

	/* nics_outstanding was counted by _nic_create_in_domain(). */
	n->made_nic = true;
	_journal(n, "nic");
	if (!path
	    || arm_submit(n->rs->arm, &req, _nic_made, n, err, sizeof(err))
	               != AZ_OK) {
		n->rs->nics_outstanding--;
		_node_fail_submit(n, path ? err : "out of memory");
	}
	json_object_put(body);
	free(path);
}

/* A NIC of the node's name that someone else made is never overwritten. */
static void _nic_not_ours(struct rs_node *n, const char *why)
{
	char reason[POWER_REASON_LEN];

	snprintf(reason, sizeof(reason), "azrdma: NotOurs: %s", why);
	_node_fail(n, reason);
}

/*
 * A NIC of the node's name, looked at before the PUT that would overwrite
 * it: only a missing NIC or azrdma's NIC of this node in this cluster (its
 * tags) is written.
 */
static void _nic_before_put(struct arm_client *c, struct arm_result *res,
                            void *arg)
{
	struct rs_node *n = arg;
	char why[POWER_REASON_LEN - 20];

	if (res->rc == AZ_ENOTFOUND) {
		_nic_create(n);
		return;
	}
	if (res->rc != AZ_OK) {
		_nic_step_failed(n, res, "NIC lookup failed");
		return;
	}
	if (!power_resource_ours(n->rs->conf, res->body, "NIC", n->nic_name,
	                         n->name, why, sizeof(why))) {
		n->rs->nics_outstanding--;
		_nic_not_ours(n, why);
		_vm_queue_flush(n->rs);
		return;
	}
	_nic_create(n); /* ours: the PUT is idempotent */
}

/* A node without a VM: its NIC, unless its domain can take no VM. */
static void _nic_create_in_domain(struct rs_node *n)
{
	char err[AZ_ERRLEN];

	if (n->rsd->state == DOM_FAILED) {
		_node_fail(n, n->rsd->reason);
		return;
	}
	/* A node without a VM in the complete lists kept its NIC's name: the
	 * NIC list has answered for it. */
	if (n->rs->nic_list == LIST_DONE && n->rs->vm_list == LIST_DONE
	    && !n->listed && n->nic_seen != NIC_LOOKUP) {
		if (n->nic_seen == NIC_FOREIGN) {
			_nic_not_ours(n, n->nic_why);
			return;
		}
		n->rs->nics_outstanding++;
		_nic_create(n);
		return;
	}
	n->rs->nics_outstanding++;
	if (arm_nic_get_async(n->rs->arm, n->nic_name, _nic_before_put, n, err,
	                      sizeof(err))
	    != AZ_OK) {
		n->rs->nics_outstanding--;
		_node_fail_submit(n, err);
	}
}

/* The NIC of an existing VM: push its address, then start if stopped. */
static void _nic_known(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct rs_node *n = arg;
	const char *ip =
	        res->rc == AZ_OK ? arm_nic_private_ip(res->body) : NULL;

	if (!ip) {
		_node_fail_res(n, res, "the VM's NIC has no address");
		return;
	}
	_push_addr(n, ip);
	_addr_end(n);
	if (n->ok) { /* running already */
		_node_finish(n);
		return;
	}
	_vm_queue(n, VM_QUEUED_START);
}

static void _old_vm_deleted(struct arm_client *c, struct arm_result *res,
                            void *arg)
{
	struct rs_node *n = arg;

	if (res->rc != AZ_OK && res->rc != AZ_ENOTFOUND) {
		_node_fail_res(n, res, "the old VM could not be deleted");
		return;
	}
	power_image_forget(n->rs->conf, n->name);
	/* The NIC may be there already: kept if it is ours. */
	_nic_create_in_domain(n);
}

static void _vm_known(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct rs_node *n = arg;
	const char *power, *prov, *nic_id, *slash;
	char err[AZ_ERRLEN], why[POWER_REASON_LEN - 20];

	if (res->rc == AZ_ENOTFOUND) {
		_nic_create_in_domain(n);
		return;
	}
	if (res->rc != AZ_OK) {
		_node_fail_res(n, res, "VM lookup failed");
		return;
	}
	/* Someone else's VM of that name is neither started nor deleted. */
	if (!power_resource_ours(n->rs->conf, res->body, "VM", n->name,
	                         n->name, why, sizeof(why))) {
		char reason[POWER_REASON_LEN];

		snprintf(reason, sizeof(reason), "azrdma: NotOurs: %s", why);
		_node_fail(n, reason);
		return;
	}
	power = arm_vm_power_state(res->body);
	prov = arm_provisioning_state(res->body);
	nic_id = arm_vm_primary_nic_id(res->body);
	/* A failed create (ours, killed half-way, or Azure's) or a new
	 * image: start again from a clean VM. */
	if ((prov && !strcasecmp(prov, "Failed")) || n->recreate || !nic_id) {
		if (n->rsd->state == DOM_FAILED) {
			_node_fail(n, n->rsd->reason);
			return;
		}
		log_info("%s: VM is %s%s; recreating it", n->name,
		         prov ? prov : "?", n->recreate ? " (new image)" : "");
		n->made_vm = false;
		if (arm_vm_delete_async(c, n->name, true, _old_vm_deleted, n,
		                        err, sizeof(err))
		    != AZ_OK)
			_node_fail_submit(n, err);
		return;
	}
	if (power
	    && (!strcmp(power, "running") || !strcmp(power, "starting"))) {
		n->ok = true;
		n->rs->running++;
		log_info("%s: VM already %s", n->name, power);
	}
	slash = strrchr(nic_id, '/');
	free(n->nic_name);
	n->nic_name = strdup(slash ? slash + 1 : nic_id);
	if (!n->nic_name
	    || arm_nic_get_async(c, n->nic_name, _nic_known, n, err,
	                         sizeof(err))
	               != AZ_OK)
		_node_fail_submit(n, "out of memory");
}

/*
 * Choose n's image; false (n failed) when it has none.  A VM disk gets a
 * new image only when asked: <features> on the command line always
 * (22.05 passes it only when the active image differs), a job's
 * constraint when it names an image other than the one the node's disk
 * holds (azrdma-resume's record in StateDir; no record: no proof, so a
 * new disk).  A constraint azrdma cannot read was let through by the
 * node_features plugin, so it names no image of azrdma's: the disk is
 * started as it is.
 */
static bool _node_image(struct rs_node *n, const struct power_job *job)
{
	const struct azrdma_conf *conf = n->rs->conf;
	const struct conf_image *want = n->rs->want_image;
	char err[AZ_ERRLEN];

	n->recreate = want != NULL;
	if (!want && job && job->features
	    && features_job_check(conf, job->features, &want, err,
	                          sizeof(err))
	               != AZ_OK) {
		log_warn("%s: job %u's constraint '%s': %s; no image change",
		         n->name, job->id, job->features, err);
		want = NULL;
	}
	if (want && !n->recreate) {
		char *held = power_image_recorded(conf, n->name);

		n->recreate = !held || strcmp(held, want->name) != 0;
		if (n->recreate)
			log_info("%s: job %u asks image %s, the disk holds %s",
			         n->name, job->id, want->name,
			         held ? held : "no recorded image");
		free(held);
	}
	n->image = want ? want : conf_domain_image(conf, n->dom);
	if (!n->image) {
		_node_fail(n, "azrdma: NoImage: azrdma.conf names no image "
		              "for the domain");
		return false;
	}
	return true;
}

static void _node_begin(struct rs_node *n)
{
	char err[AZ_ERRLEN];

	/* The list ran to its end without it: a fresh node, whose NIC can
	 * be made at once (and a NIC left by an earlier run is ours). */
	if (n->rs->vm_list == LIST_DONE && !n->listed) {
		log_debug("%s: no VM in the resource group", n->name);
		_nic_create_in_domain(n);
		return;
	}
	if (arm_vm_get_async(n->rs->arm, n->name, ARM_VM_INSTANCE_VIEW,
	                     _vm_known, n, err, sizeof(err))
	    != AZ_OK)
		_node_fail_submit(n, err);
}

/* Begin waiting nodes while the window has room. */
static void _addr_fill(struct rs *rs)
{
	/* A node failing at once inside _node_begin() ends up here again:
	 * the loop below goes on in its place. */
	if (rs->addr_filling)
		return;
	/* The lists answer whether each node needs lookups at all. */
	if (rs->vm_list == LIST_PENDING
	    && rs->vm_list_pages <= RESUME_LIST_WAIT_PAGES)
		return;
	if (rs->nic_list == LIST_PENDING
	    && rs->nic_list_pages <= RESUME_LIST_WAIT_PAGES)
		return;
	rs->addr_filling = true;
	for (size_t i = 0; i < rs->count && rs->addr_waiting
	                   && rs->addr_active < rs->addr_window;
	     i++) {
		struct rs_node *n = &rs->nodes[i];

		if (n->addr_phase != ADDR_WAITING)
			continue;
		n->addr_phase = ADDR_ACTIVE;
		rs->addr_waiting--;
		rs->addr_active++;
		_node_begin(n);
	}
	rs->addr_filling = false;
}

/* The node has work: it waits for a place in the window. */
static void _addr_wait(struct rs_node *n)
{
	if (n->addr_phase != ADDR_NOT_YET)
		return;
	n->addr_phase = ADDR_WAITING;
	n->rs->addr_waiting++;
}

/*
 * The node has its address, or failed: its place goes to the next one,
 * and once no node is on its way any more the VM creates may start.
 */
static void _addr_end(struct rs_node *n)
{
	struct rs *rs = n->rs;

	if (n->addr_phase == ADDR_WAITING)
		rs->addr_waiting--;
	else if (n->addr_phase == ADDR_ACTIVE)
		rs->addr_active--;
	else
		return;
	n->addr_phase = ADDR_DONE;
	_addr_fill(rs);
	_vm_queue_flush(rs);
}

/* ---- the resource group's VMs ------------------------------------------ */

/* A listed resource's name, or NULL when it has none. */
static const char *_item_name(json_object *item)
{
	json_object *name;

	if (!json_object_object_get_ex(item, "name", &name)
	    || !json_object_is_type(name, json_type_string))
		return NULL;
	return json_object_get_string(name);
}

/*
 * Which of our nodes have a VM, from one list of the resource group read
 * beside the domains' setup: a new cluster's nodes then go straight to
 * their NICs, one request each instead of a lookup and a NIC.  Nodes wait
 * for at most RESUME_LIST_WAIT_PAGES pages of it; those begun before it is
 * complete are looked up one by one as before.
 */
static void _vm_list_page(struct arm_client *c, json_object *items, void *arg)
{
	struct rs *rs = arg;

	for (size_t i = 0; i < json_object_array_length(items); i++) {
		const char *s = _item_name(json_object_array_get_idx(items, i));

		if (!s)
			continue;
		/* Azure's names ignore case: "Node1" is node1's VM. */
		for (size_t k = 0; k < rs->count; k++)
			if (!strcasecmp(rs->nodes[k].name, s))
				rs->nodes[k].listed = true;
	}
	/* A long list: the nodes go on without waiting for its end. */
	if (++rs->vm_list_pages == RESUME_LIST_WAIT_PAGES + 1)
		_addr_fill(rs);
}

/*
 * A list of the resource group ended: a failed one is not a node's failure,
 * each node (or NIC) is looked up on its own instead.
 */
static void _list_end(struct rs *rs, struct arm_result *res, int *state,
                      const char *what)
{
	if (res->rc != AZ_OK) {
		log_warn("listing the resource group's %s failed (%s); looking "
		         "each up instead",
		         what, res->err);
		*state = LIST_FAILED;
	} else {
		*state = LIST_DONE;
	}
	_addr_fill(rs);
}

static void _vm_list_done(struct arm_client *c, struct arm_result *res,
                          void *arg)
{
	struct rs *rs = arg;

	_list_end(rs, res, &rs->vm_list, "VMs");
}

/*
 * Whose each node's NIC is, from the list of the resource group's NICs
 * read beside the VMs': a fresh node's NIC is then PUT without a lookup of
 * its own, and one that is not ours is still never overwritten.
 */
static void _nic_list_page(struct arm_client *c, json_object *items,
                           void *arg)
{
	struct rs *rs = arg;

	for (size_t i = 0; i < json_object_array_length(items); i++) {
		json_object *nic = json_object_array_get_idx(items, i);
		const char *s = _item_name(nic);
		char why[POWER_REASON_LEN - 20];

		if (!s)
			continue;
		for (size_t k = 0; k < rs->count; k++) {
			struct rs_node *n = &rs->nodes[k];

			if (strcasecmp(n->nic_name, s))
				continue;
			if (power_resource_ours(rs->conf, nic, "NIC",
			                        n->nic_name, n->name, why,
			                        sizeof(why))) {
				n->nic_seen = NIC_OURS;
				continue;
			}
			free(n->nic_why);
			n->nic_why = strdup(why);
			/* Without the text, the node looks its NIC up. */
			n->nic_seen = n->nic_why ? NIC_FOREIGN : NIC_LOOKUP;
		}
	}
	if (++rs->nic_list_pages == RESUME_LIST_WAIT_PAGES + 1)
		_addr_fill(rs);
}

static void _nic_list_done(struct arm_client *c, struct arm_result *res,
                           void *arg)
{
	struct rs *rs = arg;

	_list_end(rs, res, &rs->nic_list, "NICs");
}

/* The resource group's VMs and NICs, read beside the domains' setup. */
static void _lists_begin(struct rs *rs)
{
	char err[AZ_ERRLEN];

	if (arm_vm_list_async(rs->arm, _vm_list_page, _vm_list_done, rs, err,
	                      sizeof(err))
	    != AZ_OK) {
		log_warn("listing the resource group's VMs: %s", err);
		rs->vm_list = LIST_FAILED;
	}
	if (arm_nic_list_async(rs->arm, _nic_list_page, _nic_list_done, rs,
	                       err, sizeof(err))
	    != AZ_OK) {
		log_warn("listing the resource group's NICs: %s", err);
		rs->nic_list = LIST_FAILED;
	}
}

/* ---- domains ------------------------------------------------------------ */

/*
 * The domain cannot take VMs: its nodes fail with reason, those on their
 * way to an address once their step in flight has answered (at their NIC
 * or in _vm_queue_flush), so that the cleanup never overtakes a NIC PUT.
 */
static void _domain_fail_text(struct rs_domain *d, const char *reason)
{
	struct rs *rs = d->rs;

	d->state = DOM_FAILED;
	snprintf(d->reason, sizeof(d->reason), "%s", reason);
	for (size_t i = 0; i < rs->count; i++) {
		struct rs_node *n = &rs->nodes[i];

		if (n->rsd != d || n->failed || n->ok
		    || n->addr_phase == ADDR_ACTIVE)
			continue;
		/* One that may have a VM is looked up first: a running VM
		 * needs no placement, and stays. */
		if (n->addr_phase == ADDR_WAITING
		    && !(rs->vm_list == LIST_DONE && !n->listed))
			continue;
		_node_fail(n, reason);
	}
	_vm_queue_flush(rs);
}

static void _domain_fail(struct rs_domain *d, struct arm_result *res,
                         const char *what)
{
	char reason[POWER_REASON_LEN];

	power_reason(res, what, reason, sizeof(reason));
	_domain_fail_text(d, reason);
}

static void _avset_done(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct rs_domain *d = arg;

	if (res->rc != AZ_OK) {
		_domain_fail(d, res, "availability set");
		return;
	}
	d->state = DOM_READY;
	_vm_queue_flush(d->rs);
}

static void _avset_put(struct rs_domain *d)
{
	const struct conf_domain *dom = d->dom;
	struct rs *rs = d->rs;
	json_object *body = json_object_new_object();
	json_object *props = json_object_new_object();
	json_object *sku = json_object_new_object();
	json_object *tags = json_object_new_object();
	struct arm_request req = {.method = ARM_PUT, .api = ARM_API_COMPUTE};
	char err[AZ_ERRLEN];
	char *path = arm_avset_path(rs->arm, dom->availability_set);

	json_object_object_add(sku, "name", json_object_new_string("Aligned"));
	json_object_object_add(props, "platformFaultDomainCount",
	                       json_object_new_int(1));
	json_object_object_add(props, "platformUpdateDomainCount",
	                       json_object_new_int(1));
	if (dom->proximity_placement_group)
		json_object_object_add(
		        props, "proximityPlacementGroup",
		        _id_ref(arm_ppg_path(rs->arm,
		                             dom->proximity_placement_group)));
	json_object_object_add(tags, TAG_CLUSTER,
	                       json_object_new_string(rs->conf->cluster_name));
	json_object_object_add(tags, TAG_DOMAIN,
	                       json_object_new_string(dom->name));
	json_object_object_add(body, "location",
	                       json_object_new_string(rs->conf->location));
	json_object_object_add(body, "tags", tags);
	json_object_object_add(body, "sku", sku);
	json_object_object_add(body, "properties", props);
	req.path = path;
	req.body = body;
	if (!path
	    || arm_submit(rs->arm, &req, _avset_done, d, err, sizeof(err))
	               != AZ_OK) {
		char reason[POWER_REASON_LEN];

		power_reason_text(reason, sizeof(reason),
		                  path ? err : "out of memory");
		_domain_fail_text(d, reason);
	}
	json_object_put(body);
	free(path);
}

static void _ppg_done(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct rs_domain *d = arg;

	if (res->rc != AZ_OK) {
		_domain_fail(d, res, "proximity placement group");
		return;
	}
	_avset_put(d);
}

static void _domain_begin(struct rs_domain *d)
{
	struct rs *rs = d->rs;
	json_object *body, *props;
	struct arm_request req = {.method = ARM_PUT, .api = ARM_API_COMPUTE};
	char err[AZ_ERRLEN];
	char *path;

	if (!d->dom->proximity_placement_group) {
		_avset_put(d);
		return;
	}
	path = arm_ppg_path(rs->arm, d->dom->proximity_placement_group);
	body = json_object_new_object();
	props = json_object_new_object();
	json_object_object_add(props, "proximityPlacementGroupType",
	                       json_object_new_string("Standard"));
	json_object_object_add(body, "location",
	                       json_object_new_string(rs->conf->location));
	json_object_object_add(body, "properties", props);
	req.path = path;
	req.body = body;
	if (!path
	    || arm_submit(rs->arm, &req, _ppg_done, d, err, sizeof(err))
	               != AZ_OK)
		_avset_put(d); /* the avset PUT will say what is wrong */
	json_object_put(body);
	free(path);
}

/*
 * Failed node: DOWN with the reason, so its jobs requeue now rather than
 * at ResumeTimeout, then power_down_force, so it goes through
 * SuspendProgram (which removes whatever is left and sets it DOWN again
 * with the reason kept in StateDir) and ends as down~ for an admin.
 * Released node: power_down_force only; it comes back as idle~.
 */
static void _slurm_fail(struct rs_node *n)
{
	char err[AZ_ERRLEN];

	/* Slurm hears of a node in the order things happened to it. */
	_addr_flush(n->rs);
	if (!n->released) {
		power_failed_put(n->rs->conf, n->name, n->reason);
		if (sl_node_set_state(n->name, NODE_STATE_DOWN, n->reason, err,
		                      sizeof(err))
		    != AZ_OK)
			log_error("%s: could not set DOWN: %s", n->name, err);
	}
	/* Once: a second power_down_force while the first one's suspend is
	 * under way leaves the node with a power down pending. */
	if (n->powered_down)
		return;
	n->powered_down = true;
	if (sl_node_set_state(n->name,
	                      NODE_STATE_POWER_DOWN | NODE_STATE_POWERED_DOWN,
	                      n->reason, err, sizeof(err))
	    != AZ_OK)
		log_error("%s: could not power down: %s", n->name, err);
}

/*
 * All or nothing per job: a multi-node job one of whose nodes failed gets
 * none, so it requeues at once and is placed again as a whole.  The
 * released nodes' own steps still finish; the suspend slurmctld starts for
 * them waits for their locks and then deallocates them.
 */
static void _release_job_of(struct rs_node *failed)
{
	struct rs *rs = failed->rs;
	const struct power_job *j = NULL;

	while ((j = power_jobs_next_shared(&rs->jobs, failed->name, j))) {
		for (size_t k = 0; k < j->count; k++) {
			struct rs_node *n = _node_find(rs, j->names[k]);

			if (!n || n->failed || n->released)
				continue;
			n->released = true;
			snprintf(n->reason, sizeof(n->reason),
			         "azrdma: released: job %u lost node %s", j->id,
			         failed->name);
			log_warn("%s: %s", n->name, n->reason);
			_slurm_fail(n);
		}
	}
}

/*
 * slurmctld restarted while this run booted the nodes of its jobs: before
 * 23.11.4 such a job starts without its nodes' addresses and its steps
 * fail on the node names (sl_compat.h).  A batch job still waiting for its
 * nodes is requeued, so that it is placed again with the addresses, rather
 * than left to hang; any other is named in the log.
 */
static void _requeue_after_restart(struct rs *rs)
{
	struct sl_ctl_settings ctl;
	char err[AZ_ERRLEN];

	if (!SL_RESTART_LOSES_JOB_ADDRESSES || !rs->jobs.count)
		return;
	if (sl_ctl_settings(&ctl, err, sizeof(err)) != AZ_OK) {
		log_warn("cannot tell whether slurmctld restarted: %s", err);
		return;
	}
	if (rs->ctld_boot && ctl.boot_time == rs->ctld_boot)
		return;
	for (size_t i = 0; i < rs->jobs.count; i++) {
		uint32_t id = rs->jobs.items[i].id;
		bool done;

		if (sl_job_requeue_configuring(id, &done, err, sizeof(err))
		    != AZ_OK)
			log_error("job %u: %s", id, err);
		else if (done)
			log_warn("job %u: slurmctld restarted while its nodes "
			         "booted, which loses their addresses for the "
			         "job on this Slurm: requeued", id);
		else if (err[0])
			log_error("job %u: slurmctld restarted while its nodes "
			          "booted; its steps may not find them by name: "
			          "%s", id, err);
	}
}

/* ---- main ---------------------------------------------------------------- */

static char *_read_key(const char *path)
{
	char *data = NULL, err[AZ_ERRLEN];

	if (!path)
		return NULL;
	if (fs_read_file(path, 64 * 1024, &data, NULL, err, sizeof(err))
	    != AZ_OK) {
		log_error("%s", err);
		return NULL;
	}
	data[strcspn(data, "\r\n")] = '\0';
	return data;
}

/* Every node of names DOWN with reason: nothing could even be tried. */
static void _fail_all(char **names, size_t count, const char *reason)
{
	char err[AZ_ERRLEN];
	char *list = hostlist_compress(names, count);

	if (list
	    && sl_node_set_state(list, NODE_STATE_DOWN, reason, err,
	                         sizeof(err))
	               != AZ_OK)
		log_error("%s: could not set DOWN: %s", list, err);
	free(list);
}

/* The process's resident memory, anonymous and file-backed, at debug. */
static void _log_rss(void)
{
	char line[128];
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM", 5) || !strncmp(line, "Rss", 3))
			log_verbose("memory: %.*s", (int)strcspn(line, "\n"),
			            line);
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	struct rs rs = {0};
	char err[AZ_ERRLEN], reason[POWER_REASON_LEN];
	char *resume_text = NULL, **names = NULL;
	const char *resume_file;
	size_t count = 0;
	struct timespec t0, t1;
	int status = 1;

	power_stdio_init();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rs.addr_deadline = time(NULL) + RESUME_ADDR_RETRY_S;
	/* The memfd is gone once slurmctld reaps us: read it first. */
	resume_file = getenv("SLURM_RESUME_FILE");
	if (resume_file
	    && fs_read_file(resume_file, 64 * 1024 * 1024, &resume_text, NULL,
	                    err, sizeof(err))
	               != AZ_OK)
		resume_text = NULL;
	sl_init();

	if (power_setup("azrdma-resume", &rs.conf, err, sizeof(err)) != AZ_OK)
		log_error("azrdma.conf: %s", err);
	if (argc < 2 || argc > 3) {
		log_error("usage: azrdma-resume <hostlist> [<features>]");
		goto out;
	}
	if (hostlist_expand(argv[1], &names, &count, err, sizeof(err))
	    != AZ_OK) {
		log_error("%s: %s", argv[1], err);
		goto out;
	}
	log_info("resume %s (%zu nodes)%s%s", argv[1], count,
	         argc > 2 ? " features " : "", argc > 2 ? argv[2] : "");
	if (!rs.conf) {
		power_reason_text(reason, sizeof(reason), err);
		power_reason_clean(reason, sizeof(reason));
		_fail_all(names, count, reason);
		goto out;
	}
	if (resume_text
	    && power_jobs_parse(resume_text, &rs.jobs, err, sizeof(err))
	               != AZ_OK)
		log_warn("SLURM_RESUME_FILE: %s", err);
	else if (resume_text && err[0])
		log_warn("SLURM_RESUME_FILE: %s", err);
	if (SL_RESTART_LOSES_JOB_ADDRESSES && rs.jobs.count) {
		struct sl_ctl_settings ctl;

		if (sl_ctl_settings(&ctl, err, sizeof(err)) == AZ_OK)
			rs.ctld_boot = ctl.boot_time;
	}
	/* A feature reboot: Slurm passes what job_xlate() returned. */
	if (argc > 2
	    && features_job_check(rs.conf, argv[2], &rs.want_image, err,
	                          sizeof(err))
	               != AZ_OK) {
		char text[AZ_ERRLEN + 64];

		snprintf(text, sizeof(text), "BadFeatures: %s: %s", argv[2],
		         err);
		power_reason_text(reason, sizeof(reason), text);
		_fail_all(names, count, reason);
		goto out;
	}
	if (rs.conf->custom_data_file) {
		if (fs_read_file(rs.conf->custom_data_file, 1024 * 1024,
		                 &rs.custom_data, NULL, err, sizeof(err))
		    != AZ_OK)
			log_error("CustomDataFile: %s", err);
	}
	rs.ssh_key = _read_key(rs.conf->ssh_public_key_file);

	rs.nodes = calloc(count ? count : 1, sizeof(*rs.nodes));
	rs.addr_names = calloc(count ? count : 1, sizeof(*rs.addr_names));
	rs.addr_ips = calloc(count ? count : 1, sizeof(*rs.addr_ips));
	rs.doms = calloc(rs.conf->domain_count + 1, sizeof(*rs.doms));
	if (!rs.nodes || !rs.addr_names || !rs.addr_ips || !rs.doms) {
		_fail_all(names, count, "azrdma: out of memory");
		goto out;
	}
	for (size_t d = 0; d < rs.conf->domain_count; d++) {
		rs.doms[d].rs = &rs;
		rs.doms[d].dom = &rs.conf->domains[d];
	}
	rs.addr_window =
	        RESUME_ADDR_WINDOW_PER_SLOT * rs.conf->max_parallel_requests;
	if (arm_client_new(rs.conf, NULL, &rs.arm, err, sizeof(err)) != AZ_OK) {
		power_reason_text(reason, sizeof(reason), err);
		power_reason_clean(reason, sizeof(reason));
		_fail_all(names, count, reason);
		goto out;
	}
	arm_client_on_round(rs.arm, _round_end, &rs);
	for (size_t i = 0; i < count; i++) {
		struct rs_node *n = &rs.nodes[rs.count];
		const struct power_job *job;

		if (_node_find(&rs, names[i]))
			continue;
		rs.count++;
		n->rs = &rs;
		n->lock_fd = -1;
		n->name = strdup(names[i]);
		n->nic_name = power_nic_name(names[i]);
		job = power_jobs_find(&rs.jobs, names[i]);
		n->job_id = job ? job->id : 0;
		/* A feature reboot names its job in the environment. */
		if (!n->job_id && getenv("SLURM_JOB_ID"))
			n->job_id = (uint32_t)strtoul(getenv("SLURM_JOB_ID"),
			                              NULL, 10);
		n->dom = domain_for_node(rs.conf, names[i]);
		if (!n->dom) {
			_node_fail(n, "azrdma: NoDomain: the node is in no "
			              "Domain= line of azrdma.conf");
			continue;
		}
		n->rsd = &rs.doms[n->dom - rs.conf->domains];
		if (!_node_image(n, job))
			continue;
		if (power_cooldown_get(rs.conf, n->dom->name, reason,
		                       sizeof(reason), NULL)) {
			_node_fail(n, reason);
			continue;
		}
		if (power_lock_node(rs.conf, n->name, RESUME_LOCK_WAIT_S,
		                    &n->lock_fd, err, sizeof(err))
		    != AZ_OK) {
			power_reason_text(reason, sizeof(reason), err);
			_node_fail(n, reason);
		}
	}

	/*
	 * Every node with work waits for its address step; the lists of the
	 * resource group's VMs and NICs, then the window, let them begin.  The
	 * domains' placements are set up beside them: only VM creates and
	 * starts wait for those.
	 */
	for (size_t i = 0; i < rs.count; i++)
		if (!rs.nodes[i].failed)
			_addr_wait(&rs.nodes[i]);
	if (rs.addr_waiting)
		_lists_begin(&rs);
	for (size_t d = 0; d < rs.conf->domain_count; d++)
		for (size_t i = 0; i < rs.count; i++)
			if (rs.nodes[i].rsd == &rs.doms[d]
			    && !rs.nodes[i].failed) {
				_domain_begin(&rs.doms[d]);
				break;
			}
	_addr_fill(&rs);
	_journal_sync(&rs);
	if (arm_client_run(rs.arm, -1, err, sizeof(err)) != AZ_OK)
		log_error("ARM: %s", err);
	for (size_t i = 0; i < rs.count; i++)
		if (!rs.nodes[i].ok && !rs.nodes[i].failed
		    && !rs.nodes[i].released)
			_node_fail(&rs.nodes[i], "azrdma: Incomplete: the "
			                         "resume did not finish");
	/* The cleanup of nodes failed just now. */
	if (arm_client_pending(rs.arm))
		arm_client_run(rs.arm, -1, err, sizeof(err));
	_addr_flush(&rs);
	_requeue_after_restart(&rs);
	for (size_t i = 0; i < rs.count; i++)
		if (rs.nodes[i].failed)
			rs.failed++;
		else if (rs.nodes[i].released)
			rs.released++;
	/* Whatever is still locked did not finish cleanly: its journal
	 * entry stays for the next run or sync. */
	for (size_t i = 0; i < rs.count; i++)
		power_unlock_node(rs.nodes[i].lock_fd);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("resume %s: %zu created, %zu started, %zu running already, "
	         "%zu failed, %zu released, %.1f s",
	         argv[1], rs.created, rs.started, rs.running, rs.failed,
	         rs.released,
	         (double)(t1.tv_sec - t0.tv_sec)
	                 + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	_log_rss();
	status = rs.failed || rs.released ? 1 : 0;
out:
	for (size_t i = 0; i < rs.count; i++) {
		free(rs.nodes[i].name);
		free(rs.nodes[i].nic_name);
		free(rs.nodes[i].nic_why);
	}
	free(rs.nodes);
	free(rs.addr_names);
	free(rs.addr_ips);
	free(rs.doms);
	power_jobs_free(&rs.jobs);
	hostnames_free(names, count);
	arm_client_free(rs.arm);
	free(rs.custom_data);
	free(rs.ssh_key);
	free(resume_text);
	conf_free(rs.conf);
	sl_fini();
	log_close();
	return status;
}
