/*
 * arm.h - the Azure Resource Manager client: tokens, requests, long-running
 * operations (LRO), retries and throttling, on one curl multi handle.
 *
 * A program makes one struct arm_client from its azrdma.conf.  Work is
 * submitted as calls (arm_submit() or the arm_*_async() helpers), each with
 * a completion callback that runs exactly once with the final result: after
 * the client got a token, retried throttled or failed attempts, polled the
 * LRO to its end and followed nextLink pages.  arm_client_run() drives all
 * calls at once, at most MaxParallelRequests transfers at a time on reused
 * connections; callbacks may submit further calls (the next step of a node)
 * and run() drives those too.  The synchronous helpers are the same
 * machinery with a private callback.
 *
 * Single-threaded: a client and its calls belong to one thread, and nothing
 * is global (the client holds the token, the throttle state and the curl
 * handles).
 */
#ifndef AZRDMA_ARM_H
#define AZRDMA_ARM_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "az_rc.h"

struct azrdma_conf;
struct arm_client;

/* The Microsoft.Compute resource SKUs api-version. */
#define ARM_SKUS_API_VERSION "2021-07-01"
/* The IMDS token api-version. */
#define ARM_IMDS_API_VERSION "2018-02-01"

enum arm_method {
	ARM_GET = 0,
	ARM_PUT,
	ARM_POST,
	ARM_PATCH,
	ARM_DELETE,
};

/* "GET", "PUT", ...; "?" for anything else. */
const char *arm_method_name(enum arm_method m);

/* Which api-version a call carries. */
enum arm_api {
	ARM_API_COMPUTE = 0, /* ComputeApiVersion of azrdma.conf */
	ARM_API_NETWORK,     /* NetworkApiVersion of azrdma.conf */
	ARM_API_SKUS,        /* ARM_SKUS_API_VERSION */
	ARM_API_CUSTOM,      /* arm_request.api_version */
	ARM_API_IN_URL,      /* the path already has it (a nextLink) */
};

/* arm_request.flags */
enum {
	/* Return the first 201/202 as it is instead of polling the LRO. */
	ARM_REQ_NO_LRO = 1u << 0,
	/*
	 * A list: follow nextLink and return one body {"value": [...]}
	 * holding the items of every page (or, with arm_request.page, hand
	 * each page to it and return no body).
	 */
	ARM_REQ_PAGED = 1u << 1,
};

/*
 * A page of a list as it arrives: items is its value[] array, which
 * belongs to the client (take a reference to keep any of it).  Runs
 * before the next page is asked for; the completion callback still runs
 * once at the end, and only then is the list known to be complete.
 */
typedef void (*arm_page_fn)(struct arm_client *c, json_object *items,
                            void *arg);

/* One call; arm_submit() copies what it needs, so all of it may be freed
 * (or put) as soon as arm_submit() returns. */
struct arm_request {
	enum arm_method method;
	/*
	 * "/subscriptions/..." relative to ArmEndpoint, or an absolute URL on
	 * ArmEndpoint's host (a nextLink).  The token is never sent anywhere
	 * else.
	 */
	const char *path;
	enum arm_api api;
	const char *api_version; /* ARM_API_CUSTOM only */
	const char *query;       /* more query, encoded, no '?': "$expand=.." */
	json_object *body;       /* request body or NULL */
	unsigned flags;
	/*
	 * ARM_REQ_PAGED only: each page to this, with the callback's arg,
	 * instead of merging them, so a long list never sits in memory
	 * whole.  For arm_submit() only (arm_call_sync() would return
	 * nothing).
	 */
	arm_page_fn page;
};

/*
 * An ARM error envelope, with or without the "error" wrapper.  When the top
 * code is a generic wrapper (ResourceOperationFailure, DeploymentFailed, ..)
 * code and message are those of the innermost first detail, which names
 * the real cause (AllocationFailed, OverconstrainedAllocationRequest).
 */
struct arm_error {
	char *code;     /* the code to act on; NULL if none */
	char *message;  /* its message; NULL if none */
	char *top_code; /* the envelope's own code */
	char **details; /* codes of the top-level details[] */
	size_t detail_count;
};

/* Free the members of e (not e itself); e is then empty again. */
void arm_error_free(struct arm_error *e);

/* The final result of one call. */
struct arm_result {
	enum az_rc rc;
	long status; /* HTTP status of the last response, 0: none */
	/*
	 * The final body: the resource (after an LRO, its final GET), the
	 * merged list, or NULL (empty body).  Belongs to the result; a
	 * callback that wants to keep it takes a reference (json_object_get)
	 * or takes it over by setting body to NULL.
	 */
	json_object *body;
	struct arm_error error; /* on AZ_EARM, AZ_ENOTFOUND, AZ_ETHROTTLED.. */
	char *request_id;       /* x-ms-request-id of the first response */
	char err[AZ_ERRLEN];    /* one line on failure: "<code>: <message>" */
};

/* Free r and everything in it. */
void arm_result_free(struct arm_result *r);

/*
 * Completion callback: runs once per call, from inside arm_client_run() or
 * arm_call_sync().  res belongs to the client and is freed when the
 * callback returns.  It may submit new calls; it must not call
 * arm_client_run() or the synchronous functions.
 */
typedef void (*arm_done_fn)(struct arm_client *c, struct arm_result *res,
                            void *arg);

/*
 * Timing and limits.  Programs keep the defaults; tests shorten them.
 */
struct arm_tuning {
	unsigned poll_interval_ms; /* LRO poll without Retry-After */
	unsigned lro_timeout_ms;   /* an LRO that runs longer fails */
	unsigned backoff_base_ms;  /* first retry delay (before jitter) */
	unsigned backoff_cap_ms;   /* no retry delay is longer (but
	                            * Retry-After wins) */
	unsigned retry_budget_ms;  /* total time one step may retry */
	unsigned max_attempts;     /* tries of one step, first included */
	unsigned connect_timeout_ms;
	unsigned transfer_timeout_ms; /* one HTTP exchange */
	/* Below these remaining counts, requests of that class are spaced. */
	unsigned low_water_reads;
	unsigned low_water_writes;
	unsigned low_water_deletes;
	unsigned low_water_resource; /* shared provider buckets */
	unsigned max_spacing_ms;     /* spacing when nothing is left */
	unsigned token_margin_s;     /* refresh this long before expiry */
	/* Random numbers in [0, 1) for jitter; NULL: the client's own. */
	double (*random)(void *arg);
	void *random_arg;
	/* The token cache is read, never written or removed (a dry run
	 * changes nothing in StateDir). */
	bool cache_read_only;
};

/* Fill t with the defaults programs use. */
void arm_tuning_default(struct arm_tuning *t);

/*
 * Make a client for conf (which may be freed afterwards: the client copies
 * what it needs).  tuning may be NULL for the defaults.  The caller frees
 * *out with arm_client_free().
 */
enum az_rc arm_client_new(const struct azrdma_conf *conf,
                          const struct arm_tuning *tuning,
                          struct arm_client **out, char *err, size_t errlen);

/*
 * Free c.  Calls still unfinished are dropped without their callbacks; run
 * the client to completion first.
 */
void arm_client_free(struct arm_client *c);

/*
 * Submit a call.  On success done(c, res, arg) runs exactly once, later,
 * from arm_client_run(); on failure (bad request, out of memory) it never
 * runs.
 */
enum az_rc arm_submit(struct arm_client *c, const struct arm_request *req,
                      arm_done_fn done, void *arg, char *err, size_t errlen);

/*
 * Drive every submitted call, and every call their callbacks submit, until
 * none is left, or until timeout_ms (< 0: no limit) has passed: then every
 * unfinished call completes with AZ_ETIMEOUT and this returns AZ_ETIMEOUT.
 */
enum az_rc arm_client_run(struct arm_client *c, long timeout_ms, char *err,
                          size_t errlen);

/* Calls submitted and not yet completed. */
size_t arm_client_pending(const struct arm_client *c);

/*
 * Runs after each round in which completion callbacks may have run, before
 * the client waits on the network again, and after a deadline failed the
 * rest.  For work that costs less in bulk than per call: one Slurm RPC for
 * the addresses of every node answered in the round, not one each.  It must
 * not run the client.
 */
typedef void (*arm_round_fn)(struct arm_client *c, void *arg);

/* Set (or with fn NULL, clear) the round hook. */
void arm_client_on_round(struct arm_client *c, arm_round_fn fn, void *arg);

/*
 * Make one call and wait for it (other submitted calls progress meanwhile).
 * Returns the result's rc; *res (if res is not NULL) gets the result, which
 * the caller frees with arm_result_free().
 */
enum az_rc arm_call_sync(struct arm_client *c, const struct arm_request *req,
                         struct arm_result **res);

/*
 * Get a token now (from the cache or the token endpoint), to check that
 * azrdma can authenticate.  The token itself is never handed out.
 */
enum az_rc arm_client_check_auth(struct arm_client *c, char *err,
                                 size_t errlen);

const char *arm_client_subscription(const struct arm_client *c);
const char *arm_client_resource_group(const struct arm_client *c);
const char *arm_client_location(const struct arm_client *c);

/* ---- resources (arm_resources.c) ------------------------------------ */

/*
 * Percent-encode s for a URL path segment or query value (everything but
 * RFC 3986 unreserved characters).  Caller frees; NULL: out of memory.
 */
char *arm_url_escape(const char *s);

/*
 * Resource paths in the client's subscription and resource group, e.g.
 * "/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/
 * virtualMachines/<name>".  Caller frees; NULL: out of memory.
 */
char *arm_vm_path(const struct arm_client *c, const char *name);
char *arm_nic_path(const struct arm_client *c, const char *name);
char *arm_avset_path(const struct arm_client *c, const char *name);
char *arm_ppg_path(const struct arm_client *c, const char *name);

/* arm_vm_get flags */
enum {
	ARM_VM_INSTANCE_VIEW = 1u << 0, /* $expand=instanceView */
};

/*
 * Synchronous helpers: each makes one call (waiting for its LRO) and
 * returns its rc; *res (if res is not NULL) gets the result, freed by the
 * caller with arm_result_free(), or NULL if the call could not even be
 * made (out of memory, no location).  The _async forms submit the same
 * call; done runs once as with arm_submit().
 */
enum az_rc arm_vm_create(struct arm_client *c, const char *name,
                         json_object *body, struct arm_result **res);
enum az_rc arm_vm_create_async(struct arm_client *c, const char *name,
                               json_object *body, arm_done_fn done, void *arg,
                               char *err, size_t errlen);
enum az_rc arm_vm_get(struct arm_client *c, const char *name, unsigned flags,
                      struct arm_result **res);
enum az_rc arm_vm_get_async(struct arm_client *c, const char *name,
                            unsigned flags, arm_done_fn done, void *arg,
                            char *err, size_t errlen);
enum az_rc arm_vm_start(struct arm_client *c, const char *name,
                        struct arm_result **res);
enum az_rc arm_vm_start_async(struct arm_client *c, const char *name,
                              arm_done_fn done, void *arg, char *err,
                              size_t errlen);
enum az_rc arm_vm_deallocate(struct arm_client *c, const char *name,
                             struct arm_result **res);
enum az_rc arm_vm_deallocate_async(struct arm_client *c, const char *name,
                                   arm_done_fn done, void *arg, char *err,
                                   size_t errlen);
enum az_rc arm_vm_power_off(struct arm_client *c, const char *name,
                            bool skip_shutdown, struct arm_result **res);
enum az_rc arm_vm_power_off_async(struct arm_client *c, const char *name,
                                  bool skip_shutdown, arm_done_fn done,
                                  void *arg, char *err, size_t errlen);
/* forceDeletion is always sent, true or false (see the 2024-11-01 note). */
enum az_rc arm_vm_delete(struct arm_client *c, const char *name, bool force,
                         struct arm_result **res);
enum az_rc arm_vm_delete_async(struct arm_client *c, const char *name,
                               bool force, arm_done_fn done, void *arg,
                               char *err, size_t errlen);
/* Every VM of the resource group: body {"value": [...]}. */
enum az_rc arm_vm_list(struct arm_client *c, struct arm_result **res);
/* The same, each page to page as it comes; done's result has no body. */
enum az_rc arm_vm_list_async(struct arm_client *c, arm_page_fn page,
                             arm_done_fn done, void *arg, char *err,
                             size_t errlen);

enum az_rc arm_nic_create(struct arm_client *c, const char *name,
                          json_object *body, struct arm_result **res);
enum az_rc arm_nic_create_async(struct arm_client *c, const char *name,
                                json_object *body, arm_done_fn done, void *arg,
                                char *err, size_t errlen);
enum az_rc arm_nic_get(struct arm_client *c, const char *name,
                       struct arm_result **res);
enum az_rc arm_nic_get_async(struct arm_client *c, const char *name,
                             arm_done_fn done, void *arg, char *err,
                             size_t errlen);
/* Every NIC of the resource group, page by page as arm_vm_list_async(). */
enum az_rc arm_nic_list_async(struct arm_client *c, arm_page_fn page,
                              arm_done_fn done, void *arg, char *err,
                              size_t errlen);
enum az_rc arm_nic_delete(struct arm_client *c, const char *name,
                          struct arm_result **res);
enum az_rc arm_nic_delete_async(struct arm_client *c, const char *name,
                                arm_done_fn done, void *arg, char *err,
                                size_t errlen);

enum az_rc arm_avset_put(struct arm_client *c, const char *name,
                         json_object *body, struct arm_result **res);
enum az_rc arm_avset_get(struct arm_client *c, const char *name,
                         struct arm_result **res);
enum az_rc arm_avset_delete(struct arm_client *c, const char *name,
                            struct arm_result **res);
/* Every availability set of the resource group: body {"value": [...]}. */
enum az_rc arm_avset_list(struct arm_client *c, struct arm_result **res);
enum az_rc arm_ppg_put(struct arm_client *c, const char *name,
                       json_object *body, struct arm_result **res);
enum az_rc arm_ppg_get(struct arm_client *c, const char *name,
                       struct arm_result **res);
enum az_rc arm_ppg_delete(struct arm_client *c, const char *name,
                          struct arm_result **res);
/* Compute resource SKUs of location (NULL: the client's Location). */
enum az_rc arm_skus_list(struct arm_client *c, const char *location,
                         struct arm_result **res);

/*
 * Readers of ARM bodies; the strings returned belong to the json object.
 *
 * arm_vm_power_state: "running", "deallocated", ... from the
 * "PowerState/<state>" status of a VM (with its instanceView) or of an
 * instanceView itself; NULL if there is none.
 */
const char *arm_vm_power_state(json_object *vm);
/* properties.provisioningState of any resource, or NULL. */
const char *arm_provisioning_state(json_object *resource);
/* The id of the VM's primary NIC (the only one if none says primary). */
const char *arm_vm_primary_nic_id(json_object *vm);
/* privateIPAddress of the NIC's primary IP configuration, or NULL. */
const char *arm_nic_private_ip(json_object *nic);

#endif
