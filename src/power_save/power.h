/*
 * power.h - what azrdma-resume, -suspend and -resume-fail share: start-up
 * as a Slurm power-save program, per-node locks and journal entries in
 * StateDir, the capacity cooldown of a domain, and node reasons.
 */
#ifndef AZRDMA_POWER_H
#define AZRDMA_POWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

#include "az_rc.h"

struct azrdma_conf;
struct arm_result;

/* Tags every VM and NIC azrdma creates carries. */
#define TAG_CLUSTER "azrdma-cluster"
#define TAG_NODE "azrdma-node"
#define TAG_DOMAIN "azrdma-domain"
#define TAG_JOB "azrdma-job"

/* The value of tag key of an ARM resource (a VM's JSON), or NULL. */
const char *power_tag(json_object *res, const char *key);

/*
 * Is res (its ARM JSON; kind "VM" or "NIC", named name) provably azrdma's
 * resource of node in this cluster: tags azrdma-cluster = ClusterName and
 * azrdma-node = node?  Only such a VM is started, deallocated or deleted
 * for a node, and only such a NIC overwritten or deleted.  If not, why says
 * what its tags are (printable, bounded).
 */
bool power_resource_ours(const struct azrdma_conf *conf, json_object *res,
                         const char *kind, const char *name,
                         const char *node, char *why, size_t len);

/* Longest node reason azrdma writes (Slurm keeps longer ones, sinfo not). */
#define POWER_REASON_LEN 200

/*
 * slurmctld starts the programs with fds 0-2 closed: put /dev/null there
 * before anything opens a file, so no log or socket becomes "stdout".
 */
void power_stdio_init(void);

/*
 * Load azrdma.conf and open the log as ident.  On failure the log is
 * syslog and err says why.  The caller frees *conf with conf_free().
 */
enum az_rc power_setup(const char *ident, struct azrdma_conf **conf, char *err,
                       size_t errlen);

/*
 * The name of the NIC azrdma makes for node's VM.  Caller frees.
 */
char *power_nic_name(const char *node);

/*
 * Per-node locks: an flock()ed file StateDir/locks/<node>, held until
 * power_unlock_node() or exit, so resume, suspend and sync never work on
 * one node at once.  Waits at most wait_s seconds; AZ_EBUSY after that.
 * Returns the lock's fd in *fd.
 */
enum az_rc power_lock_node(const struct azrdma_conf *conf, const char *node,
                           unsigned wait_s, int *fd, char *err, size_t errlen);
void power_unlock_node(int fd);

/*
 * Is a node in this Slurm state (base | flags) in use by a job or being
 * powered up for one, and not being powered down?  A SuspendProgram that
 * got the node's lock late (after a resume held it) must then leave the
 * VM alone: a newer job has it.
 */
bool power_node_in_use(uint32_t state);

/*
 * The operation journal: StateDir/journal/<node> names the operation under
 * way on node ("resume job=12 created=nic,vm"), so a run killed half-way
 * is completed or undone by the next one (or by sync).
 */
enum az_rc power_journal_write(const struct azrdma_conf *conf, const char *node,
                               const char *entry, char *err, size_t errlen);
/*
 * power_journal_write() replaces the entry atomically for every reader, but
 * it is on disk (survives a crash of the machine) only after this: one
 * sync for all the entries written before the requests they announce go.
 */
enum az_rc power_journal_sync(const struct azrdma_conf *conf, char *err,
                              size_t errlen);
/* The node's entry (caller frees), or NULL if it has none. */
char *power_journal_read(const struct azrdma_conf *conf, const char *node);
void power_journal_clear(const struct azrdma_conf *conf, const char *node);

/* A resume's journal entry, as power_journal_format() writes it. */
struct power_journal {
	bool resume;     /* "resume ...": a resume never ended */
	uint32_t job_id; /* 0 when not named */
	char step[16];   /* "nic", "vm", ... or "" */
	bool made_nic;   /* that resume PUT the NIC */
	bool made_vm;    /* that resume PUT the VM */
};

/*
 * "resume job=12 step=vm nic=made vm=-\n" into buf (len bytes); false if
 * it does not fit.
 */
bool power_journal_format(char *buf, size_t len, const struct power_journal *j);

/*
 * Parse an entry written by power_journal_format().  Unknown words are
 * skipped (a newer writer may add some); false if text is no resume entry.
 */
bool power_journal_parse(const char *text, struct power_journal *j);

/*
 * The image a node's OS disk holds: StateDir/images/<node> holds the
 * image's name (node_features/azrdma reads it for a powered-down node).
 * Written before azrdma-resume creates the VM, removed whenever the VM
 * (and with it its disk) is deleted or found gone, so a missing record
 * means the Default image.
 */
enum az_rc power_image_record(const struct azrdma_conf *conf, const char *node,
                              const char *image, char *err, size_t errlen);
/* The recorded image name (caller frees), or NULL if there is none. */
char *power_image_recorded(const struct azrdma_conf *conf, const char *node);
void power_image_forget(const struct azrdma_conf *conf, const char *node);

/*
 * A failed node's reason, kept in StateDir/failed/<node> by the resume
 * until the suspend that recycles the node sets it DOWN again (slurmctld's
 * idle_on_node_suspend makes a node IDLE when the suspend starts).
 * power_failed_take() returns it (caller frees) and forgets it.
 */
void power_failed_put(const struct azrdma_conf *conf, const char *node,
                      const char *reason);
char *power_failed_take(const struct azrdma_conf *conf, const char *node);

/*
 * Capacity cooldown of a domain: after a capacity error, resumes in the
 * domain fail at once with the same reason for CapacityCooldown seconds.
 * power_cooldown_get() copies the reason into reason, and the time it
 * ends into *until unless until is NULL, and returns true while one is in
 * force.
 */
bool power_cooldown_get(const struct azrdma_conf *conf, const char *domain,
                        char *reason, size_t len, time_t *until);
void power_cooldown_set(const struct azrdma_conf *conf, const char *domain,
                        const char *reason);
/* Whether an ARM error code means Azure has no capacity for the request. */
bool power_is_capacity_error(const char *code);

/*
 * "azrdma: <ArmCode>: <message>" for a failed call, shortened to fit
 * POWER_REASON_LEN and without characters Slurm's reason field dislikes.
 */
void power_reason(const struct arm_result *res, const char *what, char *reason,
                  size_t len);

/* "azrdma: <text>", shortened and cleaned like power_reason(). */
void power_reason_text(char *reason, size_t len, const char *text);

/* Make reason safe as a Slurm reason and at most len-1 bytes. */
void power_reason_clean(char *reason, size_t len);

#endif
