/*
 * catalog.h - the VM size catalog: what azrdma knows about each Azure size.
 *
 * The compiled-in table covers the classic RDMA sizes (A8/A9, H16r/H16mr),
 * the InfiniBand SR-IOV sizes (HC, HB, HBv2-v4, HX) and a few sizes without
 * RDMA.  azrdma.conf may add sizes or override fields with VmSize= lines; a
 * struct catalog holds the compiled-in entries plus those overrides.
 */
#ifndef AZRDMA_CATALOG_H
#define AZRDMA_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include "az_rc.h"

enum rdma_kind {
	RDMA_NONE = 0,	/* no RDMA network */
	RDMA_ND,	/* Network Direct over a second interface, DAPL */
	RDMA_IB,	/* InfiniBand SR-IOV: mlx5 verbs device in the guest */
};

struct vm_size {
	char *name;		/* ARM name, e.g. "Standard_HB120rs_v3" */
	char *feature;		/* Slurm feature, e.g. "hb120rs_v3" */
	char *family;		/* quota family, e.g. "standardHBrsv3Family" */
	unsigned vcpus;
	unsigned memory_mb;
	enum rdma_kind rdma;
	unsigned ib_rate_gbps;	/* InfiniBand link rate, 0 without RDMA */
	double max_latency_us;	/* pingpong: worst t[usec] allowed up to 512 B */
	double min_bandwidth_mbs; /* pingpong: least Mbytes/sec (10^6) at 4 MiB */
	unsigned max_per_domain;/* most VMs one placement domain may hold */
	unsigned retired_year;	/* year Azure retired the size, 0 if current */
};

struct catalog {
	struct vm_size *sizes;	/* owned */
	size_t count;
};

/* A catalog holding a copy of the compiled-in table; free with catalog_free. */
enum az_rc catalog_new(struct catalog **out);
void catalog_free(struct catalog *cat);

/*
 * Find a size by ARM name or short name, case-insensitively:
 * "Standard_A9", "a9", "HB120rs_v3", "hb120rs_v3" all work.  The result
 * belongs to cat.
 */
const struct vm_size *catalog_find(const struct catalog *cat, const char *name);

/*
 * Add a size or replace an existing one (matched as catalog_find does).
 * The catalog copies *size and its strings.
 */
enum az_rc catalog_put(struct catalog *cat, const struct vm_size *size);

const char *rdma_kind_name(enum rdma_kind kind);	/* "none", "nd", "ib" */
/* Parse "none" | "nd" | "ib" (case-insensitive); false if unknown. */
bool rdma_kind_parse(const char *s, enum rdma_kind *out);

/* The compiled-in table, for tests and documentation. */
const struct vm_size *catalog_builtin(size_t *count);

#endif
