/*
 * catalog.c - the compiled-in VM size table and its lookups.
 *
 * Figures: vCPUs and memory from Azure's size pages; InfiniBand rates and
 * pingpong thresholds from reference/rdma-mpi-healthcheck.md:
 *  - A8/A9 (QDR, Network Direct over DAPL): at most 3.0 us up to 512 B, as
 *    the classic RDMA cluster guide expects, and at least 3.5 GB/s at 4 MiB
 *    (the guide's IMB run shows 3.87 GB/s in 10^6 B/s units).
 *  - H16r/H16mr (FDR 56 Gb/s, Network Direct): no published pingpong
 *    figure; the same 3.0 us latency bound and 5.0 GB/s, about 70% of the
 *    FDR line rate (an assumption, documented in azrdma.conf(5)).
 *  - HC44rs and HB60rs (EDR): < 2 us, > 11.5 GB/s; HB120rs_v2/v3 (HDR):
 *    < 2 us, > 23.0 GB/s (Microsoft Learn HPC VM health check values).
 *  - HB176rs_v4, HX176rs (NDR 400 Gb/s): < 2 us ("< 2 microseconds" in
 *    the HBv4 performance page) and 45 GB/s, 90% of the NDR line rate.
 * Placement caps: an availability set holds at most 200 VMs; the classic
 * A8/A9 RDMA network spanned at most 50 VMs (one cloud service).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "catalog.h"

#define AVSET_MAX 200
#define CLASSIC_MAX 50

/* Sizes without RDMA carry no thresholds. */
#define NO_RDMA RDMA_NONE, 0, 0.0, 0.0

static const struct vm_size _builtin[] = {
	/* name, feature, family, vcpus, memory_mb, rdma, rate, lat, bw, cap, retired */
	{"Standard_A8", "a8", "standardA8_A11Family", 8, 57344, RDMA_ND, 40, 3.0, 3500.0, CLASSIC_MAX, 2021},
	{"Standard_A9", "a9", "standardA8_A11Family", 16, 114688, RDMA_ND, 40, 3.0, 3500.0, CLASSIC_MAX, 2021},
	{"Standard_A10", "a10", "standardA8_A11Family", 8, 57344, NO_RDMA, AVSET_MAX, 2021},
	{"Standard_A11", "a11", "standardA8_A11Family", 16, 114688, NO_RDMA, AVSET_MAX, 2021},
	{"Standard_H8", "h8", "standardHFamily", 8, 57344, NO_RDMA, AVSET_MAX, 2022},
	{"Standard_H8m", "h8m", "standardHFamily", 8, 114688, NO_RDMA, AVSET_MAX, 2022},
	{"Standard_H16", "h16", "standardHFamily", 16, 114688, NO_RDMA, AVSET_MAX, 2022},
	{"Standard_H16m", "h16m", "standardHFamily", 16, 229376, NO_RDMA, AVSET_MAX, 2022},
	{"Standard_H16r", "h16r", "standardHFamily", 16, 114688, RDMA_ND, 56, 3.0, 5000.0, AVSET_MAX, 2022},
	{"Standard_H16mr", "h16mr", "standardHFamily", 16, 229376, RDMA_ND, 56, 3.0, 5000.0, AVSET_MAX, 2022},
	{"Standard_HC44rs", "hc44rs", "standardHCSFamily", 44, 360448, RDMA_IB, 100, 2.0, 11500.0, AVSET_MAX, 0},
	{"Standard_HC44-16rs", "hc44-16rs", "standardHCSFamily", 16, 360448, RDMA_IB, 100, 2.0, 11500.0, AVSET_MAX, 0},
	{"Standard_HC44-32rs", "hc44-32rs", "standardHCSFamily", 32, 360448, RDMA_IB, 100, 2.0, 11500.0, AVSET_MAX, 0},
	{"Standard_HB60rs", "hb60rs", "standardHBSFamily", 60, 233472, RDMA_IB, 100, 2.0, 11500.0, AVSET_MAX, 0},
	{"Standard_HB120rs_v2", "hb120rs_v2", "standardHBrsv2Family", 120, 466944, RDMA_IB, 200, 2.0, 23000.0, AVSET_MAX, 0},
	{"Standard_HB120rs_v3", "hb120rs_v3", "standardHBrsv3Family", 120, 458752, RDMA_IB, 200, 2.0, 23000.0, AVSET_MAX, 0},
	{"Standard_HB120-96rs_v3", "hb120-96rs_v3", "standardHBrsv3Family", 96, 458752, RDMA_IB, 200, 2.0, 23000.0, AVSET_MAX, 0},
	{"Standard_HB120-64rs_v3", "hb120-64rs_v3", "standardHBrsv3Family", 64, 458752, RDMA_IB, 200, 2.0, 23000.0, AVSET_MAX, 0},
	{"Standard_HB120-32rs_v3", "hb120-32rs_v3", "standardHBrsv3Family", 32, 458752, RDMA_IB, 200, 2.0, 23000.0, AVSET_MAX, 0},
	{"Standard_HB120-16rs_v3", "hb120-16rs_v3", "standardHBrsv3Family", 16, 458752, RDMA_IB, 200, 2.0, 23000.0, AVSET_MAX, 0},
	{"Standard_HB176rs_v4", "hb176rs_v4", "standardHBv4Family", 176, 786432, RDMA_IB, 400, 2.0, 45000.0, AVSET_MAX, 0},
	{"Standard_HB176-144rs_v4", "hb176-144rs_v4", "standardHBv4Family", 144, 786432, RDMA_IB, 400, 2.0, 45000.0, AVSET_MAX, 0},
	{"Standard_HB176-96rs_v4", "hb176-96rs_v4", "standardHBv4Family", 96, 786432, RDMA_IB, 400, 2.0, 45000.0, AVSET_MAX, 0},
	{"Standard_HB176-48rs_v4", "hb176-48rs_v4", "standardHBv4Family", 48, 786432, RDMA_IB, 400, 2.0, 45000.0, AVSET_MAX, 0},
	{"Standard_HB176-24rs_v4", "hb176-24rs_v4", "standardHBv4Family", 24, 786432, RDMA_IB, 400, 2.0, 45000.0, AVSET_MAX, 0},
	{"Standard_HX176rs", "hx176rs", "standardHXFamily", 176, 1441792, RDMA_IB, 400, 2.0, 45000.0, AVSET_MAX, 0},
	{"Standard_HX176-144rs", "hx176-144rs", "standardHXFamily", 144, 1441792, RDMA_IB, 400, 2.0, 45000.0, AVSET_MAX, 0},
	{"Standard_HX176-96rs", "hx176-96rs", "standardHXFamily", 96, 1441792, RDMA_IB, 400, 2.0, 45000.0, AVSET_MAX, 0},
	{"Standard_HX176-48rs", "hx176-48rs", "standardHXFamily", 48, 1441792, RDMA_IB, 400, 2.0, 45000.0, AVSET_MAX, 0},
	{"Standard_HX176-24rs", "hx176-24rs", "standardHXFamily", 24, 1441792, RDMA_IB, 400, 2.0, 45000.0, AVSET_MAX, 0},
	{"Standard_D2s_v5", "d2s_v5", "standardDSv5Family", 2, 8192, NO_RDMA, AVSET_MAX, 0},
};

const struct vm_size *catalog_builtin(size_t *count)
{
	*count = sizeof(_builtin) / sizeof(_builtin[0]);
	return _builtin;
}

const char *rdma_kind_name(enum rdma_kind kind)
{
	switch (kind) {
	case RDMA_ND:
		return "nd";
	case RDMA_IB:
		return "ib";
	default:
		return "none";
	}
}

bool rdma_kind_parse(const char *s, enum rdma_kind *out)
{
	if (!strcasecmp(s, "none") || !strcasecmp(s, "no"))
		*out = RDMA_NONE;
	else if (!strcasecmp(s, "nd"))
		*out = RDMA_ND;
	else if (!strcasecmp(s, "ib"))
		*out = RDMA_IB;
	else
		return false;
	return true;
}

/* "Standard_HB120rs_v3" -> "HB120rs_v3"; other names unchanged. */
static const char *_short_name(const char *name)
{
	if (!strncasecmp(name, "Standard_", 9))
		return name + 9;
	return name;
}

static void _size_free_strings(struct vm_size *s)
{
	free(s->name);
	free(s->feature);
	free(s->family);
}

/* Copy src into dst with strings of its own; the feature is derived if unset. */
static enum az_rc _size_copy(struct vm_size *dst, const struct vm_size *src)
{
	const char *short_name = _short_name(src->name);

	*dst = *src;
	dst->feature = NULL;
	dst->family = NULL;
	if (strncasecmp(src->name, "Standard_", 9))
		dst->name = malloc(strlen(src->name) + 10);
	else
		dst->name = malloc(strlen(src->name) + 1);
	if (!dst->name)
		return AZ_ENOMEM;
	if (strncasecmp(src->name, "Standard_", 9))
		sprintf(dst->name, "Standard_%s", src->name);
	else
		strcpy(dst->name, src->name);

	dst->feature = strdup(src->feature ? src->feature : short_name);
	dst->family = src->family ? strdup(src->family) : NULL;
	if (!dst->feature || (src->family && !dst->family)) {
		_size_free_strings(dst);
		return AZ_ENOMEM;
	}
	for (char *p = dst->feature; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return AZ_OK;
}

enum az_rc catalog_new(struct catalog **out)
{
	size_t n;
	const struct vm_size *sizes = catalog_builtin(&n);
	struct catalog *cat = calloc(1, sizeof(*cat));

	*out = NULL;
	if (!cat)
		return AZ_ENOMEM;
	cat->sizes = calloc(n, sizeof(*cat->sizes));
	if (!cat->sizes) {
		free(cat);
		return AZ_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (_size_copy(&cat->sizes[i], &sizes[i]) != AZ_OK) {
			catalog_free(cat);
			return AZ_ENOMEM;
		}
		cat->count++;
	}
	*out = cat;
	return AZ_OK;
}

void catalog_free(struct catalog *cat)
{
	if (!cat)
		return;
	for (size_t i = 0; i < cat->count; i++)
		_size_free_strings(&cat->sizes[i]);
	free(cat->sizes);
	free(cat);
}

const struct vm_size *catalog_find(const struct catalog *cat, const char *name)
{
	const char *want = _short_name(name);

	for (size_t i = 0; i < cat->count; i++) {
		if (!strcasecmp(_short_name(cat->sizes[i].name), want))
			return &cat->sizes[i];
	}
	return NULL;
}

enum az_rc catalog_put(struct catalog *cat, const struct vm_size *size)
{
	struct vm_size copy;
	struct vm_size *grown;
	struct vm_size *old = (struct vm_size *)catalog_find(cat, size->name);

	if (_size_copy(&copy, size) != AZ_OK)
		return AZ_ENOMEM;
	if (old) {
		_size_free_strings(old);
		*old = copy;
		return AZ_OK;
	}
	grown = realloc(cat->sizes, (cat->count + 1) * sizeof(*grown));
	if (!grown) {
		_size_free_strings(&copy);
		return AZ_ENOMEM;
	}
	cat->sizes = grown;
	cat->sizes[cat->count++] = copy;
	return AZ_OK;
}
