/*
 * healthcheck_checks.h - the checks of azrdma-healthcheck, one small
 * function each, and the rule that decides what happens to the node.
 *
 * Device checks read sysfs, /dev and /etc under a root directory ("/" on a
 * real node, a captured tree in tests); the RDMA interface check judges a
 * list of interfaces the caller read (getifaddrs on a node); the memlock
 * check judges a limit the caller read (getrlimit: slurmd's, inherited).
 * Every check writes one line saying what failed; none logs or exits.
 */
#ifndef AZRDMA_HEALTHCHECK_CHECKS_H
#define AZRDMA_HEALTHCHECK_CHECKS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include "az_rc.h"
#include "catalog.h"

/* Drain reasons: "azrdma: <check>: <detail>". */
#define HC_REASON_PREFIX "azrdma: "

/* One IPv4 address of a network interface. */
struct hc_iface {
	char name[32];
	struct in_addr addr;
	bool up;      /* IFF_UP */
	bool running; /* IFF_RUNNING: carrier */
};

struct hc_ctx {
	const char *root;              /* prefix of /sys, /dev, /etc */
	const struct vm_size *size;    /* the node's VM size */
	const struct hc_iface *ifaces; /* IPv4 addresses of the node */
	size_t iface_count;
	rlim_t memlock;     /* RLIMIT_MEMLOCK (soft) to judge */
	rlim_t memlock_min; /* least allowed; 0 = RLIM_INFINITY */
	bool loopback;      /* run the verbs loopback test */
};

enum hc_result {
	HC_PASS = 0,
	HC_FAIL,
	HC_SKIP, /* does not apply here (detail says why) */
};

typedef enum hc_result (*hc_check_fn)(const struct hc_ctx *ctx, char *detail,
                                      size_t len);

struct hc_check {
	const char *name; /* used in drain reasons */
	const char *what; /* one line for --list */
	unsigned kinds;   /* 1 << RDMA_ND | 1 << RDMA_IB */
	hc_check_fn fn;
};

/* Every check, in the order they run; *count gets their number. */
const struct hc_check *hc_checks(size_t *count);
/* Whether check applies to a node of this size. */
bool hc_check_applies(const struct hc_check *check, const struct vm_size *size);
/* The check named name, or NULL. */
const struct hc_check *hc_check_find(const char *name);

/* The individual checks (exposed for the unit tests). */
enum hc_result hc_nd_device(const struct hc_ctx *ctx, char *d, size_t len);
enum hc_result hc_nd_driver(const struct hc_ctx *ctx, char *d, size_t len);
enum hc_result hc_dat_conf(const struct hc_ctx *ctx, char *d, size_t len);
enum hc_result hc_ib_device(const struct hc_ctx *ctx, char *d, size_t len);
enum hc_result hc_ib_port(const struct hc_ctx *ctx, char *d, size_t len);
enum hc_result hc_ib_pkey(const struct hc_ctx *ctx, char *d, size_t len);
enum hc_result hc_rdma_interface(const struct hc_ctx *ctx, char *d, size_t len);
enum hc_result hc_memlock(const struct hc_ctx *ctx, char *d, size_t len);
enum hc_result hc_loopback(const struct hc_ctx *ctx, char *d, size_t len);

/* The first RDMA-network (172.16.0.0/16) address, or NULL. */
const struct hc_iface *hc_rdma_iface(const struct hc_ctx *ctx);

/*
 * Read the node's IPv4 addresses (getifaddrs) into *out (caller frees).
 */
enum az_rc hc_ifaces_read(struct hc_iface **out, size_t *count, char *err,
                          size_t errlen);

/* What to do with the node after the checks. */
enum hc_action {
	HC_NOTHING = 0, /* healthy and not drained by us, or already drained
	                   by us for this very reason */
	HC_DRAIN,       /* drain with the new reason */
	HC_RESUME,      /* healthy again: undo our own drain */
	HC_LEAVE_ALONE, /* unhealthy, but drained or down for another
	                   reason (an admin's): never touch */
};

/* Whether a node reason was set by azrdma-healthcheck. */
bool hc_reason_is_ours(const char *reason);

/*
 * Decide, from the node's state (NODE_STATE_* bits) and reason as
 * slurmctld reports them, and the new drain reason (NULL when every check
 * passed).
 */
enum hc_action hc_decide(uint32_t state, const char *reason,
                         const char *new_reason);
const char *hc_action_name(enum hc_action action);

#endif
