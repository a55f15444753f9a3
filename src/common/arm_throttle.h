/*
 * arm_throttle.h - reading ARM's throttle headers, the retry and backoff
 * schedule, and the governor that slows requests down before ARM answers
 * 429.
 *
 * All pure: time and randomness come in as arguments, so the unit tests
 * (and the fuzz target) drive them deterministically.  The client feeds
 * them real headers, the monotonic clock and its random source.
 */
#ifndef AZRDMA_ARM_THROTTLE_H
#define AZRDMA_ARM_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "arm.h"

/* ARM counts subscription requests in these classes. */
enum arm_rl_class {
	ARM_RL_READS = 0, /* GET */
	ARM_RL_WRITES,    /* PUT, PATCH, POST */
	ARM_RL_DELETES,   /* DELETE */
	ARM_RL_CLASSES
};

#define ARM_RL_MAX_BUCKETS 16
#define ARM_RL_NAME_MAX 96

/* One resource provider bucket: "Microsoft.Compute/PutVM3Min;745". */
struct arm_rl_bucket {
	char name[ARM_RL_NAME_MAX];
	long remaining;
};

/* The throttle facts of one response. */
struct arm_throttle_info {
	long retry_after_ms;               /* -1: no valid Retry-After */
	long subscription[ARM_RL_CLASSES]; /* -1: header absent */
	long global[ARM_RL_CLASSES];       /* the -global- forms */
	struct arm_rl_bucket buckets[ARM_RL_MAX_BUCKETS];
	size_t bucket_count;
	unsigned malformed; /* throttle header values not understood */
};

void arm_throttle_info_init(struct arm_throttle_info *ti);

/*
 * Feed one response header line ("Name: value", CRLF optional, as curl
 * hands them over; len bytes, need not be NUL-terminated).  Repeated
 * headers and comma lists accumulate; a count seen twice keeps the lower.
 * now is the wall clock, for a Retry-After given as an HTTP date.
 * Returns true if the line was one of the throttle headers.
 */
bool arm_throttle_header(struct arm_throttle_info *ti, const char *line,
                         size_t len, time_t now);

/*
 * Retry-After: delta seconds or an HTTP date (IMF-fixdate); *ms is how
 * long from now (0 for a date in the past).  AZ_EPARSE for anything else.
 */
enum az_rc arm_parse_retry_after(const char *value, time_t now, long *ms);

/* Remaining requests of cls: the lower of the subscription and global
 * counts, -1 if neither was sent. */
long arm_throttle_remaining(const struct arm_throttle_info *ti,
                            enum arm_rl_class cls);
/*
 * Whether a bucket counts calls on one resource only: the 2025 names end
 * in "Resource" ("Microsoft.Compute/PutVMResource;11" is what is left for
 * that one VM), while the others ("PutVM3Min", "PutVMSubscriptionMaximum",
 * "HighCostGet") are shared by every such call of the subscription.
 */
bool arm_rl_bucket_per_resource(const char *name);
/* The lowest count of the shared buckets, -1 if none was sent. */
long arm_throttle_shared_min(const struct arm_throttle_info *ti);

enum arm_rl_class arm_rl_class_of(enum arm_method method);

/*
 * The request kind resource buckets are charged by: method, provider
 * namespace, resource type and action, e.g.
 * "POST Microsoft.Compute/virtualMachines/deallocate".  path may be an
 * absolute URL; the query is ignored.  Caller frees; NULL: out of memory.
 */
char *arm_throttle_key(enum arm_method method, const char *path);

/* ---- retries -------------------------------------------------------- */

/* Who answered: IMDS also retries 404 and 410 (it is updating). */
enum arm_peer {
	ARM_PEER_ARM = 0,
	ARM_PEER_AAD,
	ARM_PEER_IMDS,
};

/* Whether an HTTP status is worth another try: 429 and 5xx (not 501 or
 * 505), and for IMDS 404 and 410.  Other 4xx never are. */
bool arm_status_retryable(enum arm_peer peer, long status);
/* Whether a curl transport error is worth another try: connection, send,
 * receive and timeout errors are; TLS verification and usage errors are
 * not. */
bool arm_curl_retryable(int curl_code);

struct arm_backoff {
	unsigned base_ms;
	unsigned cap_ms;
	double (*random)(void *arg); /* [0, 1) */
	void *random_arg;
};

/*
 * The delay before retry number attempt (0 for the first retry):
 * retry_after_ms if it is >= 0 (the server knows best), else
 * d = min(cap, base * 2^attempt) with jitter: uniformly in [d/2, d].
 */
long arm_backoff_delay(const struct arm_backoff *b, unsigned attempt,
                       long retry_after_ms);

/*
 * Whether to retry, and after how long: the delay in ms, or -1 to give up
 * because max_attempts tries were made (attempt retries so far, plus the
 * first) or because waiting would pass budget_ms since the step started
 * (elapsed_ms ago).
 */
long arm_retry_delay(const struct arm_backoff *b, unsigned attempt,
                     unsigned max_attempts, long elapsed_ms, long budget_ms,
                     long retry_after_ms);

/* ---- the governor --------------------------------------------------- */

struct arm_gov_state {
	long remaining;           /* last count seen, less requests since */
	long inflight;            /* started and not yet answered */
	int64_t seen_ms;          /* when it was seen; -1: never */
	int64_t next_ms;          /* earliest start of the next request */
	int64_t blocked_until_ms; /* after a 429 */
};

struct arm_gov_key {
	char *key; /* arm_throttle_key() */
	struct arm_gov_state st;
};

struct arm_governor {
	unsigned low_water[ARM_RL_CLASSES];
	unsigned low_water_resource;
	unsigned max_spacing_ms;
	unsigned memory_ms; /* older counts are stale: buckets refill */
	struct arm_gov_state cls[ARM_RL_CLASSES];
	struct arm_gov_key *keys;
	size_t key_count;
};

/* An empty governor; free its keys with arm_governor_free(). */
void arm_governor_init(struct arm_governor *g,
                       const unsigned low_water[ARM_RL_CLASSES],
                       unsigned low_water_resource, unsigned max_spacing_ms);
void arm_governor_free(struct arm_governor *g);

/*
 * Spacing between requests when remaining are left: 0 at or above
 * low_water, growing linearly to max_spacing_ms at 0.
 */
long arm_governor_spacing(long remaining, unsigned low_water,
                          unsigned max_spacing_ms);

/*
 * Learn from one response to a request of cls and key (key may be NULL).
 * A 429 blocks until Retry-After (or max_spacing_ms) has passed: the whole
 * class when it names no provider bucket (ARM throttled the subscription),
 * the key when a shared bucket ran out (the provider throttles that kind
 * of request), nothing more when only the one resource's bucket ran out
 * (the call itself waits for its retry).
 */
enum az_rc arm_governor_observe(struct arm_governor *g, enum arm_rl_class cls,
                                const char *key,
                                const struct arm_throttle_info *ti, long status,
                                int64_t now_ms);

/* The earliest time (>= now_ms) a request of cls and key may start. */
int64_t arm_governor_ready_at(const struct arm_governor *g,
                              enum arm_rl_class cls, const char *key,
                              int64_t now_ms);

/*
 * A request of cls and key starts at now_ms: count it against what is
 * left and push the next start out by the spacing.  Pair every start with
 * arm_governor_finished() once its exchange ends, answered or not.
 */
void arm_governor_started(struct arm_governor *g, enum arm_rl_class cls,
                          const char *key, int64_t now_ms);

/*
 * A started request's exchange ended (before its answer is observed): it
 * is no longer in flight.
 */
void arm_governor_finished(struct arm_governor *g, enum arm_rl_class cls,
                           const char *key);

#endif
