/*
 * test_log.c - levels, destinations and secret scrubbing.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "testutil.h"

static char _sunk[4096];

static void _sink(enum log_level level, const char *msg)
{
	snprintf(_sunk + strlen(_sunk), sizeof(_sunk) - strlen(_sunk),
		 "%d:%s\n", (int)level, msg);
}

START_TEST(file_log_has_timestamp_program_and_level)
{
	char path[512], err[AZ_ERRLEN];
	struct stat st;
	char *text;

	snprintf(path, sizeof(path), "%s/azrdma.log", tu_tmpdir());
	ck_assert_int_eq(log_open("azrdma-test", path, err, sizeof(err)),
			 AZ_OK);
	log_set_level(LOG_LVL_INFO);
	log_info("resuming %d nodes", 4);
	log_error("node %s: %s", "hb-001", "AllocationFailed");
	log_debug("hidden at info level");
	log_close();
	text = tu_slurp(path);
	ck_assert_ptr_nonnull(strstr(text, "azrdma-test["));
	ck_assert_ptr_nonnull(strstr(text, "]: resuming 4 nodes\n"));
	ck_assert_ptr_nonnull(strstr(text, "error: node hb-001: Allocation"));
	ck_assert_ptr_null(strstr(text, "hidden"));
	ck_assert(text[0] == '[' && text[5] == '-' && text[11] == 'T');
	free(text);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0007, 0);
}
END_TEST

START_TEST(unwritable_log_file_is_an_error_that_names_it)
{
	char err[AZ_ERRLEN];

	ck_assert_int_eq(log_open("t", "/nonexistent/dir/x.log", err,
				  sizeof(err)),
			 AZ_EIO);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/dir/x.log"));
	log_close();
}
END_TEST

/* Issue 18 item 5: whoever can write LogFile's directory could point a
 * symlink there at any file a root run would then append to. */
START_TEST(log_file_is_never_opened_through_a_symlink)
{
	char link_path[512], target[512], err[AZ_ERRLEN];
	struct stat st;

	snprintf(target, sizeof(target), "%s/victim", tu_tmpdir());
	snprintf(link_path, sizeof(link_path), "%s/linked.log", tu_tmpdir());
	tu_write("victim", "", 0600);
	ck_assert_int_eq(symlink(target, link_path), 0);
	ck_assert_int_eq(log_open("t", link_path, err, sizeof(err)), AZ_EIO);
	ck_assert_ptr_nonnull(strstr(err, link_path));
	log_error("must not reach the victim");
	log_close();
	ck_assert_int_eq(stat(target, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
}
END_TEST

START_TEST(environment_raises_the_level)
{
	log_set_level(LOG_LVL_INFO);
	setenv("AZRDMA_DEBUG", "2", 1);
	log_level_from_env();
	ck_assert_int_eq(log_get_level(), LOG_LVL_DEBUG);
	unsetenv("AZRDMA_DEBUG");
	log_set_level(LOG_LVL_INFO);
}
END_TEST

START_TEST(sink_receives_messages_for_plugins)
{
	_sunk[0] = '\0';
	log_set_sink(_sink);
	log_set_level(LOG_LVL_VERBOSE);
	log_verbose("domain %s", "hb0");
	log_debug("not shown");
	log_set_sink(NULL);
	ck_assert_str_eq(_sunk, "4:domain hb0\n");
}
END_TEST

START_TEST(secrets_are_scrubbed_from_messages)
{
	char a[] = "Authorization: Bearer eyJ0eXAiOiJKV1Q.abc.def end";
	char b[] = "{\"access_token\":\"eyJhbGciOi\",\"expires_in\":\"3599\"}";
	char c[] = "grant_type=client_credentials&client_secret=p%40ss&x=1";

	log_scrub(a);
	ck_assert_ptr_null(strstr(a, "eyJ0eXAi"));
	ck_assert_ptr_nonnull(strstr(a, "Authorization: Bearer ***"));
	ck_assert_ptr_nonnull(strstr(a, "* end"));
	log_scrub(b);
	ck_assert_ptr_null(strstr(b, "eyJhbGciOi"));
	ck_assert_ptr_nonnull(strstr(b, "\"expires_in\":\"3599\""));
	log_scrub(c);
	ck_assert_ptr_null(strstr(c, "p%40ss"));
	ck_assert_ptr_nonnull(strstr(c, "&x=1"));

	_sunk[0] = '\0';
	log_set_sink(_sink);
	log_set_level(LOG_LVL_INFO);
	log_info("token response {\"access_token\": \"SECRETTOKEN\"}");
	log_set_sink(NULL);
	ck_assert_ptr_null(strstr(_sunk, "SECRETTOKEN"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");

	tcase_add_test(tc, file_log_has_timestamp_program_and_level);
	tcase_add_test(tc, unwritable_log_file_is_an_error_that_names_it);
	tcase_add_test(tc, log_file_is_never_opened_through_a_symlink);
	tcase_add_test(tc, environment_raises_the_level);
	tcase_add_test(tc, sink_receives_messages_for_plugins);
	tcase_add_test(tc, secrets_are_scrubbed_from_messages);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
