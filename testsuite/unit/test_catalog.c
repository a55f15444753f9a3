/*
 * test_catalog.c - the VM size catalog.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "testutil.h"

static struct catalog *_cat(void)
{
	struct catalog *cat;

	ck_assert_int_eq(catalog_new(&cat), AZ_OK);
	return cat;
}

START_TEST(lookup_accepts_arm_and_short_names_in_any_case)
{
	struct catalog *cat = _cat();
	const struct vm_size *a = catalog_find(cat, "Standard_HB120rs_v3");

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_eq(catalog_find(cat, "hb120rs_v3"), a);
	ck_assert_ptr_eq(catalog_find(cat, "STANDARD_HB120RS_V3"), a);
	ck_assert_ptr_null(catalog_find(cat, "HB120rs_v9"));
	ck_assert_str_eq(a->feature, "hb120rs_v3");
	catalog_free(cat);
}
END_TEST

START_TEST(classic_sizes_meet_the_seed_documents)
{
	struct catalog *cat = _cat();
	const char *nd[] = {"A8", "A9", "H16r", "H16mr"};

	for (size_t i = 0; i < 4; i++) {
		const struct vm_size *s = catalog_find(cat, nd[i]);

		ck_assert_ptr_nonnull(s);
		ck_assert_int_eq(s->rdma, RDMA_ND);
		ck_assert_double_le(s->max_latency_us, 3.0);
		ck_assert_uint_ne(s->retired_year, 0);
	}
	/* A8/A9: <= 3 us up to 512 B, >= 3.5 GB/s at 4 MiB, 50 per network. */
	ck_assert_double_eq_tol(catalog_find(cat, "A9")->min_bandwidth_mbs,
				3500.0, 1e-9);
	ck_assert_uint_eq(catalog_find(cat, "A8")->max_per_domain, 50);
	ck_assert_uint_eq(catalog_find(cat, "A9")->vcpus, 16);
	ck_assert_uint_eq(catalog_find(cat, "A8")->retired_year, 2021);
	ck_assert_uint_eq(catalog_find(cat, "H16r")->retired_year, 2022);
	catalog_free(cat);
}
END_TEST

START_TEST(infiniband_sizes_carry_rate_and_thresholds)
{
	struct catalog *cat = _cat();
	const char *ib[] = {"HC44rs", "HB60rs", "HB120rs_v2", "HB120rs_v3",
			    "HB120-16rs_v3", "HB176rs_v4", "HX176rs"};

	for (size_t i = 0; i < sizeof(ib) / sizeof(ib[0]); i++) {
		const struct vm_size *s = catalog_find(cat, ib[i]);

		ck_assert_msg(s != NULL, "%s missing", ib[i]);
		ck_assert_int_eq(s->rdma, RDMA_IB);
		ck_assert_uint_ge(s->ib_rate_gbps, 100);
		ck_assert_double_le(s->max_latency_us, 2.0);
		ck_assert_double_gt(s->min_bandwidth_mbs, 10000.0);
		ck_assert_uint_eq(s->max_per_domain, 200);
		ck_assert_uint_eq(s->retired_year, 0);
	}
	ck_assert_uint_eq(catalog_find(cat, "HB120rs_v2")->ib_rate_gbps, 200);
	ck_assert_double_eq_tol(
		catalog_find(cat, "HB120rs_v2")->min_bandwidth_mbs, 23000.0,
		1e-9);
	ck_assert_uint_eq(catalog_find(cat, "HB120-16rs_v3")->vcpus, 16);
	catalog_free(cat);
}
END_TEST

START_TEST(sizes_without_rdma_are_marked_so)
{
	struct catalog *cat = _cat();

	ck_assert_int_eq(catalog_find(cat, "A10")->rdma, RDMA_NONE);
	ck_assert_int_eq(catalog_find(cat, "A11")->rdma, RDMA_NONE);
	ck_assert_int_eq(catalog_find(cat, "H16")->rdma, RDMA_NONE);
	ck_assert_double_eq(catalog_find(cat, "H16")->max_latency_us, 0.0);
	catalog_free(cat);
}
END_TEST

START_TEST(put_adds_and_replaces_entries)
{
	struct catalog *cat = _cat();
	struct vm_size s = {.name = "ND40rs_v2", .vcpus = 40,
			    .memory_mb = 688128, .rdma = RDMA_IB,
			    .max_per_domain = 100};
	size_t before = cat->count;
	const struct vm_size *got;

	ck_assert_int_eq(catalog_put(cat, &s), AZ_OK);
	ck_assert_uint_eq(cat->count, before + 1);
	got = catalog_find(cat, "Standard_ND40rs_v2");
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got->name, "Standard_ND40rs_v2");
	ck_assert_str_eq(got->feature, "nd40rs_v2");

	s.vcpus = 20;
	ck_assert_int_eq(catalog_put(cat, &s), AZ_OK);
	ck_assert_uint_eq(cat->count, before + 1);
	ck_assert_uint_eq(catalog_find(cat, "nd40rs_v2")->vcpus, 20);
	catalog_free(cat);
}
END_TEST

START_TEST(rdma_kind_names_round_trip)
{
	enum rdma_kind k;

	ck_assert(rdma_kind_parse("ND", &k));
	ck_assert_int_eq(k, RDMA_ND);
	ck_assert_str_eq(rdma_kind_name(k), "nd");
	ck_assert(rdma_kind_parse("ib", &k));
	ck_assert_str_eq(rdma_kind_name(k), "ib");
	ck_assert(rdma_kind_parse("none", &k));
	ck_assert(!rdma_kind_parse("roce", &k));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("catalog");
	TCase *tc = tcase_create("catalog");

	tcase_add_test(tc, lookup_accepts_arm_and_short_names_in_any_case);
	tcase_add_test(tc, classic_sizes_meet_the_seed_documents);
	tcase_add_test(tc, infiniband_sizes_carry_rate_and_thresholds);
	tcase_add_test(tc, sizes_without_rdma_are_marked_so);
	tcase_add_test(tc, put_adds_and_replaces_entries);
	tcase_add_test(tc, rdma_kind_names_round_trip);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
