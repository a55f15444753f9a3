/*
 * test_power_jobs.c - SLURM_RESUME_FILE's jobs: which job each node is
 * resumed for, and which jobs a node's failure releases (all or nothing
 * for multi-node jobs only).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "testutil.h"

/* Three jobs, as slurmctld 22.05 writes them (its field names). */
#define RESUME_FILE                                                            \
	"{\"all_nodes\":\"hb[1-5],solo\",\"jobs\":["                              \
	"{\"job_id\":12,\"nodes\":\"hb[1-3]\"},"                                \
	"{\"job_id\":13,\"nodes\":\"solo\"},"                                  \
	"{\"job_id\":14,\"nodes\":\"hb[3-5]\"}]}"

START_TEST(jobs_and_their_nodes_are_read)
{
	struct power_jobs jobs;
	char err[AZ_ERRLEN];

	ck_assert_int_eq(power_jobs_parse(RESUME_FILE, &jobs, err, sizeof(err)),
	                 AZ_OK);
	ck_assert_str_eq(err, "");
	ck_assert_uint_eq(jobs.count, 3);
	ck_assert_uint_eq(jobs.items[0].id, 12);
	ck_assert_uint_eq(jobs.items[0].count, 3);
	ck_assert_str_eq(jobs.items[0].names[2], "hb3");
	ck_assert_uint_eq(power_jobs_job_of(&jobs, "hb2"), 12);
	ck_assert_uint_eq(power_jobs_job_of(&jobs, "solo"), 13);
	ck_assert_uint_eq(power_jobs_job_of(&jobs, "hb5"), 14);
	/* The first job that names it. */
	ck_assert_uint_eq(power_jobs_job_of(&jobs, "hb3"), 12);
	ck_assert_uint_eq(power_jobs_job_of(&jobs, "other"), 0);
	power_jobs_free(&jobs);
	ck_assert_uint_eq(jobs.count, 0);
}
END_TEST

START_TEST(a_failure_releases_the_multi_node_jobs_it_is_in)
{
	struct power_jobs jobs;
	const struct power_job *j;

	ck_assert_int_eq(power_jobs_parse(RESUME_FILE, &jobs, NULL, 0), AZ_OK);
	/* hb3 is in two multi-node jobs: both go. */
	j = power_jobs_next_shared(&jobs, "hb3", NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(j->id, 12);
	j = power_jobs_next_shared(&jobs, "hb3", j);
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(j->id, 14);
	ck_assert_ptr_null(power_jobs_next_shared(&jobs, "hb3", j));
	/* A single-node job has nobody to release. */
	ck_assert_ptr_null(power_jobs_next_shared(&jobs, "solo", NULL));
	ck_assert_ptr_null(power_jobs_next_shared(&jobs, "nobody", NULL));
	power_jobs_free(&jobs);
}
END_TEST

START_TEST(bad_entries_are_skipped_and_named)
{
	struct power_jobs jobs;
	char err[AZ_ERRLEN];

	ck_assert_int_eq(
	        power_jobs_parse("{\"jobs\":[{\"nodes\":\"a1\"},"
	                         "{\"job_id\":5,\"nodes\":\"b[1-\"},"
	                         "{\"job_id\":6,\"nodes\":\"c[1-2]\"}]}",
	                         &jobs, err, sizeof(err)),
	        AZ_OK);
	ck_assert_uint_eq(jobs.count, 1);
	ck_assert_uint_eq(jobs.items[0].id, 6);
	ck_assert_ptr_nonnull(strstr(err, "job 5"));
	power_jobs_free(&jobs);
}
END_TEST

START_TEST(text_without_a_jobs_list_is_refused)
{
	struct power_jobs jobs;
	char err[AZ_ERRLEN];

	ck_assert_int_eq(power_jobs_parse("not json", &jobs, err, sizeof(err)),
	                 AZ_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no jobs list"));
	ck_assert_uint_eq(jobs.count, 0);
	ck_assert_int_eq(
	        power_jobs_parse("{\"jobs\":{}}", &jobs, err, sizeof(err)),
	        AZ_EINVAL);
	ck_assert_int_eq(power_jobs_parse(NULL, &jobs, err, sizeof(err)),
	                 AZ_EINVAL);
	/* An empty list is fine: nothing to group. */
	ck_assert_int_eq(
	        power_jobs_parse("{\"jobs\":[]}", &jobs, err, sizeof(err)),
	        AZ_OK);
	ck_assert_uint_eq(jobs.count, 0);
	power_jobs_free(&jobs);
}
END_TEST

/* The files real slurmctlds wrote (testsuite/data/resume/README). */
static struct power_jobs _parse_fixture(const char *name)
{
	struct power_jobs jobs;
	char err[AZ_ERRLEN], *text;

	text = tu_slurp(tu_fixture(name, "resume.json"));
	ck_assert_int_eq(power_jobs_parse(text, &jobs, err, sizeof(err)),
	                 AZ_OK);
	ck_assert_msg(err[0] == '\0', "%s: %s", name, err);
	free(text);
	return jobs;
}

START_TEST(the_22_05_file_gives_each_jobs_nodes_without_features)
{
	struct power_jobs jobs = _parse_fixture("resume/slurm-22.05.json");
	const struct power_job *j;

	ck_assert_uint_eq(jobs.count, 2);
	j = power_jobs_find(&jobs, "f3n2");
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(j->count, 2);
	ck_assert_ptr_null(j->features);
	ck_assert_ptr_nonnull(power_jobs_next_shared(&jobs, "f3n1", NULL));
	power_jobs_free(&jobs);
}
END_TEST

START_TEST(the_26_05_file_gives_each_jobs_nodes_resume_and_features)
{
	struct power_jobs jobs = _parse_fixture("resume/slurm-26.05.json");
	const struct power_job *j;

	ck_assert_uint_eq(jobs.count, 2);
	/* nodes_resume, not nodes_alloc: only those being resumed. */
	j = power_jobs_find(&jobs, "f3n2");
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(j->count, 2);
	ck_assert_str_eq(j->features, "rdma&fab3");
	ck_assert_ptr_nonnull(power_jobs_next_shared(&jobs, "f3n1", NULL));
	j = power_jobs_find(&jobs, "f5n1");
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(j->features, "img_sles");
	power_jobs_free(&jobs);
}
END_TEST

static Suite *_suite(void)
{
	Suite *s = suite_create("power_jobs");
	TCase *tc = tcase_create("jobs");

	tcase_add_test(tc, jobs_and_their_nodes_are_read);
	tcase_add_test(tc, a_failure_releases_the_multi_node_jobs_it_is_in);
	tcase_add_test(tc, bad_entries_are_skipped_and_named);
	tcase_add_test(tc, text_without_a_jobs_list_is_refused);
	tcase_add_test(tc,
	               the_22_05_file_gives_each_jobs_nodes_without_features);
	tcase_add_test(tc,
	               the_26_05_file_gives_each_jobs_nodes_resume_and_features);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(_suite());
}
