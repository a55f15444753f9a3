/*
 * test_hostlist.c - hostlist expressions go through libslurm's parser.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "hostlist.h"
#include "testutil.h"

START_TEST(ranges_and_lists_expand_in_order)
{
	char **names;
	size_t n;
	char err[AZ_ERRLEN];

	ck_assert_int_eq(hostlist_expand("hb-[000-002,010],a9x", &names, &n,
					 err, sizeof(err)),
			 AZ_OK);
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(names[0], "hb-000");
	ck_assert_str_eq(names[2], "hb-002");
	ck_assert_str_eq(names[3], "hb-010");
	ck_assert_str_eq(names[4], "a9x");
	hostnames_free(names, n);
}
END_TEST

START_TEST(large_range_expands_fully)
{
	char **names;
	size_t n;
	char err[AZ_ERRLEN];

	ck_assert_int_eq(hostlist_expand("n[0000-4999]", &names, &n, err,
					 sizeof(err)),
			 AZ_OK);
	ck_assert_uint_eq(n, 5000);
	ck_assert_str_eq(names[4999], "n4999");
	hostnames_free(names, n);
}
END_TEST

START_TEST(bad_expressions_are_refused_with_an_example)
{
	char **names;
	size_t n;
	char err[AZ_ERRLEN];

	ck_assert_int_eq(hostlist_expand("hb[1-", &names, &n, err,
					 sizeof(err)),
			 AZ_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not a valid hostlist"));
	ck_assert_int_eq(hostlist_expand("a]b[", &names, &n, err,
					 sizeof(err)),
			 AZ_EINVAL);
	ck_assert_int_eq(hostlist_expand("x[3-1]", &names, &n, err,
					 sizeof(err)),
			 AZ_EINVAL);
	ck_assert_int_eq(hostlist_expand("", &names, &n, err, sizeof(err)),
			 AZ_EINVAL);
}
END_TEST

START_TEST(compress_gives_the_ranged_form)
{
	char *const names[] = {"hb-001", "hb-000", "hb-002", "x"};
	char *s = hostlist_compress(names, 4);

	ck_assert_ptr_nonnull(s);
	/* libslurm keeps insertion order between ranges. */
	ck_assert_ptr_nonnull(strstr(s, "hb-"));
	ck_assert_ptr_nonnull(strstr(s, "x"));
	free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostlist");
	TCase *tc = tcase_create("hostlist");

	tcase_add_test(tc, ranges_and_lists_expand_in_order);
	tcase_add_test(tc, large_range_expands_fully);
	tcase_add_test(tc, bad_expressions_are_refused_with_an_example);
	tcase_add_test(tc, compress_gives_the_ranged_form);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
