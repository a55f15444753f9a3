/*
 * test_power_state.c - what the power-save programs keep in StateDir:
 * per-node locks, the operation journal, failed reasons, capacity
 * cooldowns and the image record node_features/azrdma reads.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "conf.h"
#include "fsutil.h"
#include "power.h"
#include "testutil.h"

/*
 * A configuration with only what the StateDir helpers read: the state
 * directory and the domains, fab1 with hb1 and fab2 with hb2.
 */
static struct azrdma_conf _conf(const char *sub, unsigned cooldown)
{
	static char dir[512];
	static char *fab1_nodes[] = {"hb1"}, *fab2_nodes[] = {"hb2"};
	static struct conf_domain domains[2];
	struct azrdma_conf c;

	memset(&c, 0, sizeof(c));
	snprintf(dir, sizeof(dir), "%s/%s", tu_tmpdir(), sub);
	domains[0].name = "fab1";
	domains[0].node_names = fab1_nodes;
	domains[0].node_count = 1;
	domains[1].name = "fab2";
	domains[1].node_names = fab2_nodes;
	domains[1].node_count = 1;
	c.path = "/etc/slurm/azrdma.conf";
	c.domains = domains;
	c.domain_count = 2;
	c.state_dir = dir;
	c.capacity_cooldown = cooldown;
	return c;
}

static char *_state_file(const struct azrdma_conf *c, const char *sub,
                         const char *node)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s/%s", c->state_dir, sub, node);
	return tu_slurp(path);
}

START_TEST(second_lock_on_a_node_is_refused_until_the_first_is_released)
{
	struct azrdma_conf c = _conf("locks", 0);
	char err[AZ_ERRLEN];
	int first, second, other;

	ck_assert_int_eq(
	        power_lock_node(&c, "hb1", 0, &first, err, sizeof(err)), AZ_OK);
	ck_assert_int_ge(first, 0);
	/* flock() conflicts between open files even in one process. */
	ck_assert_int_eq(
	        power_lock_node(&c, "hb1", 0, &second, err, sizeof(err)),
	        AZ_EBUSY);
	ck_assert_int_eq(second, -1);
	ck_assert_ptr_nonnull(strstr(err, "node hb1"));
	/* Another node is independent. */
	ck_assert_int_eq(
	        power_lock_node(&c, "hb2", 0, &other, err, sizeof(err)), AZ_OK);
	power_unlock_node(first);
	ck_assert_int_eq(
	        power_lock_node(&c, "hb1", 0, &second, err, sizeof(err)),
	        AZ_OK);
	power_unlock_node(second);
	power_unlock_node(other);
	power_unlock_node(-1); /* no lock: nothing to do */
}
END_TEST

START_TEST(lock_waits_for_a_holder_that_lets_go)
{
	struct azrdma_conf c = _conf("lockwait", 0);
	char err[AZ_ERRLEN];
	struct timespec t0, t1;
	int held, fd;
	pid_t pid;

	ck_assert_int_eq(power_lock_node(&c, "hb1", 0, &held, err, sizeof(err)),
	                 AZ_OK);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct timespec nap = {0, 300 * 1000 * 1000};

		nanosleep(&nap, NULL);
		_exit(0);
	}
	/* The child shares the lock's open file: it goes when both close. */
	power_unlock_node(held);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(power_lock_node(&c, "hb1", 5, &fd, err, sizeof(err)),
	                 AZ_OK);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_ge((t1.tv_sec - t0.tv_sec) * 1000
	                         + (t1.tv_nsec - t0.tv_nsec) / 1000000,
	                 200);
	power_unlock_node(fd);
	waitpid(pid, NULL, 0);
}
END_TEST

START_TEST(lock_in_an_unusable_state_dir_names_the_path)
{
	struct azrdma_conf c = _conf("file-not-dir", 0);
	char err[AZ_ERRLEN];
	int fd;

	tu_write("file-not-dir", "x", 0600);
	ck_assert_int_eq(power_lock_node(&c, "hb1", 0, &fd, err, sizeof(err)),
	                 AZ_EIO);
	ck_assert_int_eq(fd, -1);
	ck_assert_ptr_nonnull(strstr(err, "file-not-dir"));
}
END_TEST

/*
 * Names also come from Azure (a VM's azrdma-node tag): only a node (or,
 * for the cooldown, a domain) of azrdma.conf becomes a file name.
 */
START_TEST(state_files_are_kept_only_for_nodes_and_domains_of_azrdma_conf)
{
	struct azrdma_conf c = _conf("names", 60);
	static const char *const hostile[] = {
	        "../../escape", "hb1/../../escape", "", "hb3", "fab1", "/tmp/x"};
	char err[256], path[1024], reason[POWER_REASON_LEN];
	struct stat st;
	int fd;

	for (size_t i = 0; i < sizeof(hostile) / sizeof(*hostile); i++) {
		const char *name = hostile[i];

		err[0] = '\0';
		ck_assert_int_ne(power_lock_node(&c, name, 0, &fd, err,
		                                 sizeof(err)),
		                 AZ_OK);
		ck_assert_int_eq(fd, -1);
		ck_assert_msg(strstr(err, "no node of /etc/slurm/azrdma.conf"),
		              "%s: %s", name, err);
		ck_assert_int_ne(power_journal_write(&c, name, "resume job=1",
		                                     err, sizeof(err)),
		                 AZ_OK);
		ck_assert_int_ne(power_image_record(&c, name, "alma", err,
		                                    sizeof(err)),
		                 AZ_OK);
		power_failed_put(&c, name, "azrdma: x");
		ck_assert_ptr_null(power_failed_take(&c, name));
		ck_assert_ptr_null(power_journal_read(&c, name));
	}
	/* A node name is no domain, nor a domain name a node. */
	power_cooldown_set(&c, "hb1", "azrdma: AllocationFailed: x");
	ck_assert(!power_cooldown_get(&c, "hb1", reason, sizeof(reason), NULL));
	snprintf(path, sizeof(path), "%s/escape", tu_tmpdir());
	ck_assert_int_ne(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/names/locks/hb3", tu_tmpdir());
	ck_assert_int_ne(stat(path, &st), 0);
	/* The nodes and domains of azrdma.conf keep theirs. */
	ck_assert_int_eq(power_lock_node(&c, "hb2", 0, &fd, err, sizeof(err)),
	                 AZ_OK);
	power_unlock_node(fd);
	power_cooldown_set(&c, "fab2", "azrdma: AllocationFailed: x");
	ck_assert(power_cooldown_get(&c, "fab2", reason, sizeof(reason), NULL));
}
END_TEST

START_TEST(journal_entry_round_trips_and_clears)
{
	struct azrdma_conf c = _conf("journal", 0);
	struct power_journal in = {.resume = true,
	                           .job_id = 4242,
	                           .made_nic = true,
	                           .made_vm = false};
	struct power_journal out;
	char entry[128], err[AZ_ERRLEN], *text;

	snprintf(in.step, sizeof(in.step), "vm");
	ck_assert(power_journal_format(entry, sizeof(entry), &in));
	ck_assert_str_eq(entry, "resume job=4242 step=vm nic=made vm=-\n");
	ck_assert_int_eq(
	        power_journal_write(&c, "hb1", entry, err, sizeof(err)), AZ_OK);
	ck_assert_int_eq(power_journal_sync(&c, err, sizeof(err)), AZ_OK);
	text = power_journal_read(&c, "hb1");
	ck_assert_ptr_nonnull(text);
	ck_assert(power_journal_parse(text, &out));
	free(text);
	ck_assert(out.resume);
	ck_assert_uint_eq(out.job_id, 4242);
	ck_assert_str_eq(out.step, "vm");
	ck_assert(out.made_nic);
	ck_assert(!out.made_vm);
	power_journal_clear(&c, "hb1");
	ck_assert_ptr_null(power_journal_read(&c, "hb1"));
	/* A buffer too small is refused, not cut. */
	ck_assert(!power_journal_format(entry, 10, &in));
}
END_TEST

START_TEST(journal_parse_accepts_what_older_and_newer_writers_wrote)
{
	struct power_journal j;

	/* An entry of the first version: no step. */
	ck_assert(power_journal_parse("resume job=7 nic=made vm=made\n", &j));
	ck_assert_uint_eq(j.job_id, 7);
	ck_assert_str_eq(j.step, "");
	ck_assert(j.made_nic && j.made_vm);
	/* Unknown words are skipped; a dash is no step. */
	ck_assert(power_journal_parse("resume zone=2 step=- vm=made", &j));
	ck_assert_str_eq(j.step, "");
	ck_assert(j.made_vm && !j.made_nic && j.job_id == 0);
	ck_assert(power_journal_parse("resume", &j));
	/* Not a resume's entry. */
	ck_assert(!power_journal_parse("resumed job=1", &j));
	ck_assert(!power_journal_parse("suspend job=1", &j));
	ck_assert(!power_journal_parse("", &j));
	ck_assert(!power_journal_parse(NULL, &j));
	ck_assert(!j.resume);
}
END_TEST

START_TEST(failed_reason_is_taken_once)
{
	struct azrdma_conf c = _conf("failed", 0);
	char *reason;

	ck_assert_ptr_null(power_failed_take(&c, "hb1"));
	power_failed_put(&c, "hb1", "azrdma: QuotaExceeded: no cores");
	reason = power_failed_take(&c, "hb1");
	ck_assert_ptr_nonnull(reason);
	ck_assert_str_eq(reason, "azrdma: QuotaExceeded: no cores");
	free(reason);
	ck_assert_ptr_null(power_failed_take(&c, "hb1"));
}
END_TEST

START_TEST(cooldown_holds_its_reason_until_it_expires)
{
	struct azrdma_conf c = _conf("cooldown", 60);
	char reason[POWER_REASON_LEN], *text, path[1024];
	long long until;

	ck_assert(!power_cooldown_get(&c, "fab1", reason, sizeof(reason), NULL));
	power_cooldown_set(&c, "fab1", "azrdma: AllocationFailed: no room");
	ck_assert(power_cooldown_get(&c, "fab1", reason, sizeof(reason), NULL));
	ck_assert_str_eq(reason, "azrdma: AllocationFailed: no room");
	ck_assert(!power_cooldown_get(&c, "fab2", reason, sizeof(reason), NULL));
	/* The file says until when, in seconds since the epoch. */
	text = _state_file(&c, "cooldown", "fab1");
	until = strtoll(text, NULL, 10);
	free(text);
	ck_assert_int_ge(until, (long long)time(NULL) + 55);
	ck_assert_int_le(until, (long long)time(NULL) + 60);

	/* Expired, or unreadable: no cooldown. */
	snprintf(path, sizeof(path), "%s/cooldown/fab1", c.state_dir);
	ck_assert_int_eq(fs_write_atomic(path, "1000 old\n", 9, 0600, NULL, 0),
	                 AZ_OK);
	ck_assert(!power_cooldown_get(&c, "fab1", reason, sizeof(reason), NULL));
	ck_assert_int_eq(
	        fs_write_atomic(path, "soon reason\n", 12, 0600, NULL, 0),
	        AZ_OK);
	ck_assert(!power_cooldown_get(&c, "fab1", reason, sizeof(reason), NULL));
}
END_TEST

START_TEST(cooldown_of_zero_seconds_is_never_set)
{
	struct azrdma_conf c = _conf("nocooldown", 0);
	char reason[POWER_REASON_LEN];

	power_cooldown_set(&c, "fab1", "azrdma: AllocationFailed: x");
	ck_assert(!power_cooldown_get(&c, "fab1", reason, sizeof(reason), NULL));
}
END_TEST

START_TEST(cooldown_reason_is_cleaned_and_fits_the_buffer)
{
	struct azrdma_conf c = _conf("cooldown-long", 60);
	char reason[16];

	power_cooldown_set(&c, "fab1", "azrdma: \"Alloc\"\tationFailed");
	ck_assert(power_cooldown_get(&c, "fab1", reason, sizeof(reason), NULL));
	ck_assert_uint_eq(strlen(reason), sizeof(reason) - 1);
	ck_assert_str_eq(reason, "azrdma:  All...");
}
END_TEST

START_TEST(image_record_is_what_node_features_reads_and_not_world_writable)
{
	struct azrdma_conf c = _conf("images", 0);
	char err[AZ_ERRLEN], path[1024], *text;
	struct stat st;

	ck_assert_ptr_null(power_image_recorded(&c, "hb1"));
	ck_assert_int_eq(
	        power_image_record(&c, "hb1", "sles", err, sizeof(err)), AZ_OK);
	/* node_features/azrdma reads <StateDir>/images/<node>: the name,
	 * up to the first blank or newline. */
	text = _state_file(&c, "images", "hb1");
	ck_assert_str_eq(text, "sles\n");
	free(text);
	snprintf(path, sizeof(path), "%s/images/hb1", c.state_dir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0022, 0);
	text = power_image_recorded(&c, "hb1");
	ck_assert_str_eq(text, "sles");
	free(text);
	/* A new VM replaces the record. */
	ck_assert_int_eq(
	        power_image_record(&c, "hb1", "alma", err, sizeof(err)), AZ_OK);
	text = power_image_recorded(&c, "hb1");
	ck_assert_str_eq(text, "alma");
	free(text);
	power_image_forget(&c, "hb1");
	ck_assert_ptr_null(power_image_recorded(&c, "hb1"));
	power_image_forget(&c, "hb1"); /* twice is fine */
}
END_TEST

/* Issue 17 item 3: what a suspend that got its lock late leaves alone. */
START_TEST(a_node_a_newer_job_holds_is_in_use_unless_powering_down)
{
	ck_assert(power_node_in_use(NODE_STATE_ALLOCATED));
	ck_assert(power_node_in_use(NODE_STATE_MIXED));
	ck_assert(power_node_in_use(NODE_STATE_IDLE | NODE_STATE_POWERING_UP));
	ck_assert(power_node_in_use(NODE_STATE_ALLOCATED | NODE_STATE_POWERING_UP
	                            | NODE_STATE_POWERED_DOWN));
	ck_assert(power_node_in_use(NODE_STATE_IDLE | NODE_STATE_COMPLETING));
	/* What Slurm suspends: powering down, powered down, idle, down. */
	ck_assert(!power_node_in_use(NODE_STATE_IDLE | NODE_STATE_POWERING_DOWN));
	ck_assert(!power_node_in_use(NODE_STATE_IDLE | NODE_STATE_POWER_DOWN));
	ck_assert(!power_node_in_use(NODE_STATE_IDLE | NODE_STATE_POWERED_DOWN));
	ck_assert(!power_node_in_use(NODE_STATE_IDLE));
	ck_assert(!power_node_in_use(NODE_STATE_DOWN | NODE_STATE_POWERING_DOWN));
}
END_TEST

static Suite *_suite(void)
{
	Suite *s = suite_create("power_state");
	TCase *tc = tcase_create("state");

	tcase_add_test(
	        tc,
	        second_lock_on_a_node_is_refused_until_the_first_is_released);
	tcase_add_test(tc, lock_waits_for_a_holder_that_lets_go);
	tcase_add_test(tc, lock_in_an_unusable_state_dir_names_the_path);
	tcase_add_test(tc, state_files_are_kept_only_for_nodes_and_domains_of_azrdma_conf);
	tcase_add_test(tc, journal_entry_round_trips_and_clears);
	tcase_add_test(
	        tc, journal_parse_accepts_what_older_and_newer_writers_wrote);
	tcase_add_test(tc, failed_reason_is_taken_once);
	tcase_add_test(tc, cooldown_holds_its_reason_until_it_expires);
	tcase_add_test(tc, cooldown_of_zero_seconds_is_never_set);
	tcase_add_test(tc, cooldown_reason_is_cleaned_and_fits_the_buffer);
	tcase_add_test(
	        tc,
	        image_record_is_what_node_features_reads_and_not_world_writable);
	tcase_add_test(tc,
	               a_node_a_newer_job_holds_is_in_use_unless_powering_down);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(_suite());
}
