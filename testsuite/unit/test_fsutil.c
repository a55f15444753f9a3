/*
 * test_fsutil.c - file reads, atomic private writes, permission rules.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "testutil.h"

START_TEST(atomic_write_creates_file_with_exact_mode)
{
	char path[512], err[AZ_ERRLEN];
	struct stat st;
	char *data;
	size_t len;

	snprintf(path, sizeof(path), "%s/token.json", tu_tmpdir());
	ck_assert_int_eq(fs_write_atomic(path, "{\"a\":1}", 7, 0600, err,
					 sizeof(err)),
			 AZ_OK);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(fs_read_file(path, 100, &data, &len, err,
				      sizeof(err)),
			 AZ_OK);
	ck_assert_uint_eq(len, 7);
	ck_assert_str_eq(data, "{\"a\":1}");
	free(data);
	/* Overwriting replaces the content and keeps the mode. */
	ck_assert_int_eq(fs_write_atomic(path, "x", 1, 0600, err, sizeof(err)),
			 AZ_OK);
	data = tu_slurp(path);
	ck_assert_str_eq(data, "x");
	free(data);
}
END_TEST

START_TEST(unsynced_write_is_whole_and_sync_names_a_missing_path)
{
	char path[512], err[AZ_ERRLEN];
	struct stat st;
	char *data;

	snprintf(path, sizeof(path), "%s/journal-entry", tu_tmpdir());
	ck_assert_int_eq(fs_write_atomic_nosync(path, "step=nic\n", 9, 0600,
						err, sizeof(err)),
			 AZ_OK);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	data = tu_slurp(path);
	ck_assert_str_eq(data, "step=nic\n");
	free(data);
	ck_assert_int_eq(fs_sync_fs(tu_tmpdir(), err, sizeof(err)), AZ_OK);
	ck_assert_int_eq(fs_sync_fs("/nonexistent/azrdma", err, sizeof(err)),
			 AZ_EIO);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/azrdma"));
}
END_TEST

START_TEST(read_refuses_files_over_the_limit_and_names_missing_ones)
{
	char err[AZ_ERRLEN];
	char *data = NULL;
	const char *path = tu_write("big", "0123456789", 0644);

	ck_assert_int_eq(fs_read_file(path, 5, &data, NULL, err, sizeof(err)),
			 AZ_EINVAL);
	ck_assert_ptr_null(data);
	ck_assert_int_eq(fs_read_file("/nonexistent/x", 5, &data, NULL, err,
				      sizeof(err)),
			 AZ_EIO);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x"));
}
END_TEST

START_TEST(secret_rules)
{
	char err[AZ_ERRLEN];

	ck_assert_int_eq(fs_check_secret(tu_write("s1", "x", 0600), "Secret",
					 err, sizeof(err)),
			 AZ_OK);
	ck_assert_int_eq(fs_check_secret(tu_write("s2", "x", 0400), "Secret",
					 err, sizeof(err)),
			 AZ_OK);
	ck_assert_int_eq(fs_check_secret(tu_write("s3", "x", 0640), "Secret",
					 err, sizeof(err)),
			 AZ_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "mode 0640"));
	ck_assert_int_eq(fs_check_secret(tu_write("s4", "x", 0604), "Secret",
					 err, sizeof(err)),
			 AZ_EPERM);
	ck_assert_int_eq(fs_check_secret(tu_tmpdir(), "Secret", err,
					 sizeof(err)),
			 AZ_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
}
END_TEST

START_TEST(world_writable_rule)
{
	char err[AZ_ERRLEN];
	const char *path = tu_write("w", "x", 0644);

	ck_assert_int_eq(fs_check_not_world_writable(path, "F", err,
						     sizeof(err)),
			 AZ_OK);
	chmod(path, 0646);
	ck_assert_int_eq(fs_check_not_world_writable(path, "F", err,
						     sizeof(err)),
			 AZ_EPERM);
}
END_TEST

START_TEST(mkdir_p_makes_every_level)
{
	char path[512], err[AZ_ERRLEN];
	struct stat st;

	snprintf(path, sizeof(path), "%s/a/b/c", tu_tmpdir());
	ck_assert_int_eq(fs_mkdir_p(path, 0700, err, sizeof(err)), AZ_OK);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(fs_mkdir_p(path, 0700, err, sizeof(err)), AZ_OK);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fsutil");
	TCase *tc = tcase_create("fsutil");

	tcase_add_test(tc, atomic_write_creates_file_with_exact_mode);
	tcase_add_test(tc, unsynced_write_is_whole_and_sync_names_a_missing_path);
	tcase_add_test(tc,
		       read_refuses_files_over_the_limit_and_names_missing_ones);
	tcase_add_test(tc, secret_rules);
	tcase_add_test(tc, world_writable_rule);
	tcase_add_test(tc, mkdir_p_makes_every_level);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
