/*
 * test_pingpong.c - azrdma-pingpong's sizes, rounds, verdicts and output
 * (the MPI-free part).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <munge.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peer_auth.h"
#include "pingpong_core.h"
#include "pingpong_fabric.h"
#include "testutil.h"

START_TEST(default_plan_is_imb_sizes_and_repetitions)
{
	struct pp_plan p = {0};

	ck_assert_int_eq(pp_plan_default(&p), AZ_OK);
	ck_assert_uint_eq(p.count, 24); /* 0, then 2^0 .. 2^22 */
	ck_assert_uint_eq(p.sizes[0].bytes, 0);
	ck_assert_uint_eq(p.sizes[0].reps, 1000);
	ck_assert_uint_eq(p.sizes[1].bytes, 1);
	ck_assert_uint_eq(p.sizes[16].bytes, 32768);
	ck_assert_uint_eq(p.sizes[16].reps, 1000);
	ck_assert_uint_eq(p.sizes[17].bytes, 65536);
	ck_assert_uint_eq(p.sizes[17].reps, 640);
	ck_assert_uint_eq(p.sizes[18].reps, 320);
	ck_assert_uint_eq(p.sizes[21].reps, 40);
	ck_assert_uint_eq(p.sizes[23].bytes, 4194304);
	ck_assert_uint_eq(p.sizes[23].reps, 10);
	pp_plan_free(&p);
}
END_TEST

START_TEST(warm_up_is_a_tenth_but_at_least_ten)
{
	ck_assert_uint_eq(pp_warmup_reps(1000), 100);
	ck_assert_uint_eq(pp_warmup_reps(640), 64);
	ck_assert_uint_eq(pp_warmup_reps(40), 10);
	ck_assert_uint_eq(pp_warmup_reps(10), 10);
	ck_assert_uint_eq(pp_warmup_reps(3), 3);
	ck_assert_uint_eq(pp_warmup_reps(100000), 10000);
}
END_TEST

START_TEST(packet_spec_takes_size_and_iterations_like_mpipingpong)
{
	struct pp_plan p = {0};
	char err[AZ_ERRLEN];

	ck_assert_int_eq(pp_plan_add_spec(&p, "1:100000", err, sizeof(err)),
	                 AZ_OK);
	ck_assert_int_eq(pp_plan_add_spec(&p, "4000000:1000", err, sizeof(err)),
	                 AZ_OK);
	ck_assert_int_eq(pp_plan_add_spec(&p, "64K", err, sizeof(err)), AZ_OK);
	ck_assert_int_eq(pp_plan_add_spec(&p, "4M", err, sizeof(err)), AZ_OK);
	ck_assert_uint_eq(p.count, 4);
	ck_assert_uint_eq(p.sizes[0].bytes, 1);
	ck_assert_uint_eq(p.sizes[0].reps, 100000);
	ck_assert_uint_eq(p.sizes[1].bytes, 4000000);
	ck_assert_uint_eq(p.sizes[1].reps, 1000);
	ck_assert_uint_eq(p.sizes[2].bytes, 65536);
	ck_assert_uint_eq(p.sizes[2].reps, 640);
	ck_assert_uint_eq(p.sizes[3].reps, 10);
	/* Only explicit iterations are kept from IMB's time budget. */
	ck_assert(p.sizes[0].given);
	ck_assert(p.sizes[1].given);
	ck_assert(!p.sizes[2].given);
	ck_assert(!p.sizes[3].given);
	pp_plan_free(&p);
}
END_TEST

START_TEST(calibration_aims_at_one_second_of_at_most_1000_round_trips)
{
	ck_assert_uint_eq(pp_calibration_reps(0.0), 1000);
	ck_assert_uint_eq(pp_calibration_reps(2e-6), 1000);
	ck_assert_uint_eq(pp_calibration_reps(0.004), 250);
	ck_assert_uint_eq(pp_calibration_reps(0.3), 3);
	ck_assert_uint_eq(pp_calibration_reps(1.5), 1);
}
END_TEST

START_TEST(dynamic_reps_keep_ten_seconds_and_never_grow)
{
	/* Fast: IMB's table stands. */
	ck_assert_uint_eq(pp_dynamic_reps(1000, 1000, 2e-6), 1000);
	ck_assert_uint_eq(pp_dynamic_reps(10, 20, 0.003), 10);
	/* 1000 round trips of 50 ms would take 50 s: 1 + 10 / 0.05. */
	ck_assert_uint_eq(pp_dynamic_reps(1000, 1000, 0.05), 201);
	/* Never more than the previous size had. */
	ck_assert_uint_eq(pp_dynamic_reps(640, 201, 0.001), 201);
	/* A time too short to mean anything leaves the repetitions. */
	ck_assert_uint_eq(pp_dynamic_reps(1000, 1000, 0.0), 1000);
}
END_TEST

START_TEST(bad_packet_specs_are_refused_with_the_spec)
{
	const char *bad[] = {"",    "x",  "-1",  "1:",  "1:0",
	                     "1:x", "2G", "12q", "1:-5"};
	struct pp_plan p = {0};
	char err[AZ_ERRLEN];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(pp_plan_add_spec(&p, bad[i], err, sizeof(err)),
		                 AZ_EINVAL);
		ck_assert_ptr_nonnull(strstr(err, bad[i]));
	}
	ck_assert_uint_eq(p.count, 0);
	pp_plan_free(&p);
}
END_TEST

START_TEST(quick_plan_covers_both_thresholds)
{
	struct pp_plan p = {0};

	ck_assert_int_eq(pp_plan_quick(&p), AZ_OK);
	ck_assert_uint_eq(p.count, 3);
	ck_assert_uint_eq(p.sizes[1].bytes, PP_LATENCY_MAX_BYTES);
	ck_assert_uint_ge(p.sizes[2].bytes, PP_BANDWIDTH_MIN_BYTES);
	pp_plan_free(&p);
}
END_TEST

/* Every pair of ranks exactly once, rounds disjoint. */
static void _check_all_pairs(int n)
{
	struct pp_schedule s;
	char err[AZ_ERRLEN];
	int *seen = calloc((size_t)(n * n), sizeof(int));

	ck_assert_int_eq(
	        pp_schedule_build(PP_MODE_ALL, n, &s, err, sizeof(err)), AZ_OK);
	ck_assert_uint_eq(s.count, (size_t)(n % 2 ? n : n - 1));
	ck_assert_uint_eq(s.pair_count, (size_t)(n * (n - 1) / 2));
	for (size_t r = 0; r < s.count; r++) {
		int *busy = calloc((size_t)n, sizeof(int));

		for (size_t k = 0; k < s.rounds[r].count; k++) {
			const struct pp_pair *p = &s.rounds[r].pairs[k];

			ck_assert_int_lt(p->a, p->b);
			ck_assert_int_eq(busy[p->a]++, 0);
			ck_assert_int_eq(busy[p->b]++, 0);
			seen[p->a * n + p->b]++;
			ck_assert_ptr_eq(pp_round_pair_of(&s.rounds[r], p->b),
			                 p);
		}
		free(busy);
	}
	for (int a = 0; a < n; a++)
		for (int b = a + 1; b < n; b++)
			ck_assert_int_eq(seen[a * n + b], 1);
	free(seen);
	pp_schedule_free(&s);
}

START_TEST(all_pairs_run_in_rounds_of_disjoint_pairs)
{
	for (int n = 2; n <= 17; n++)
		_check_all_pairs(n);
}
END_TEST

START_TEST(ring_pairs_each_node_with_the_next)
{
	struct pp_schedule s;
	char err[AZ_ERRLEN];
	int seen[5] = {0};

	ck_assert_int_eq(
	        pp_schedule_build(PP_MODE_RING, 5, &s, err, sizeof(err)),
	        AZ_OK);
	ck_assert_uint_eq(s.pair_count, 5);
	ck_assert_uint_eq(s.count, 3);
	for (size_t r = 0; r < s.count; r++)
		for (size_t k = 0; k < s.rounds[r].count; k++) {
			const struct pp_pair *p = &s.rounds[r].pairs[k];

			/* (i, i+1), and (0, 4) closes the ring */
			if (p->b == p->a + 1)
				seen[p->a]++;
			else if (p->a == 0 && p->b == 4)
				seen[4]++;
			else
				ck_abort_msg("pair %d-%d", p->a, p->b);
		}
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(seen[i], 1);
	pp_schedule_free(&s);

	ck_assert_int_eq(
	        pp_schedule_build(PP_MODE_RING, 4, &s, err, sizeof(err)),
	        AZ_OK);
	ck_assert_uint_eq(s.count, 2);
	ck_assert_uint_eq(s.pair_count, 4);
	pp_schedule_free(&s);
	ck_assert_int_eq(
	        pp_schedule_build(PP_MODE_RING, 2, &s, err, sizeof(err)),
	        AZ_OK);
	ck_assert_uint_eq(s.pair_count, 1);
	pp_schedule_free(&s);
}
END_TEST

START_TEST(pair_mode_is_ranks_0_and_1_and_one_rank_is_refused)
{
	struct pp_schedule s;
	char err[AZ_ERRLEN];
	enum pp_mode m;

	ck_assert_int_eq(
	        pp_schedule_build(PP_MODE_PAIR, 4, &s, err, sizeof(err)),
	        AZ_OK);
	ck_assert_uint_eq(s.pair_count, 1);
	ck_assert_int_eq(s.rounds[0].pairs[0].a, 0);
	ck_assert_int_eq(s.rounds[0].pairs[0].b, 1);
	ck_assert_ptr_null(pp_round_pair_of(&s.rounds[0], 2));
	pp_schedule_free(&s);
	ck_assert_int_eq(
	        pp_schedule_build(PP_MODE_ALL, 1, &s, err, sizeof(err)),
	        AZ_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "at least 2"));
	ck_assert(pp_mode_parse("ring", &m) && m == PP_MODE_RING);
	ck_assert(!pp_mode_parse("tournament", &m));
	ck_assert_str_eq(pp_mode_name(PP_MODE_ALL), "all");
}
END_TEST

START_TEST(mbytes_per_sec_is_bytes_per_microsecond)
{
	/* The A9 sample: 4194304 B in 1082.94 us is 3873 MB/s (10^6). */
	ck_assert_double_eq_tol(pp_mbytes_per_sec(4194304, 1082.94), 3873.07,
	                        0.01);
	ck_assert_double_eq_tol(pp_mbytes_per_sec(0, 2.23), 0.0, 1e-12);
	ck_assert_double_eq_tol(pp_mbytes_per_sec(10, 0.0), 0.0, 1e-12);
}
END_TEST

static struct pp_point _pts[3] = {
        {0, 1000, 2.23, 0.0},
        {512, 1000, 3.09, 165.70},
        {4194304, 10, 1082.94, 3873.07},
};

static struct pp_pair_result _pair(double lat, double bw)
{
	struct pp_pair_result r = {
	        .a = 0,
	        .b = 1,
	        .host_a = "a9-001",
	        .host_b = "a9-002",
	        .points = _pts,
	        .count = 3,
	        .limits = {.max_latency_us = lat, .min_bandwidth_mbs = bw},
	};
	return r;
}

START_TEST(seed_a9_figures_meet_the_a9_thresholds)
{
	struct pp_pair_result r = _pair(3.0, 3500.0);

	/* 3.09 us at 512 B is over the seed documents' 3 us. */
	ck_assert_int_eq(pp_pair_judge(&r), PP_SLOW);
	ck_assert_str_eq(r.why, "t[usec] 3.09 at 512 bytes > 3.00");
	r = _pair(3.1, 3500.0);
	ck_assert_int_eq(pp_pair_judge(&r), PP_PASS);
	r = _pair(3.1, 4000.0);
	ck_assert_int_eq(pp_pair_judge(&r), PP_SLOW);
	ck_assert_str_eq(r.why, "Mbytes/sec 3873.07 at 4194304 bytes < "
	                        "4000.00");
	r = _pair(1.0, 4000.0);
	ck_assert_int_eq(pp_pair_judge(&r), PP_SLOW);
	ck_assert_ptr_nonnull(strstr(r.why, "; Mbytes/sec"));
	r = _pair(0.0, 0.0);
	ck_assert_int_eq(pp_pair_judge(&r), PP_PASS);
	r.failed = true;
	r.error = "no answer";
	ck_assert_int_eq(pp_pair_judge(&r), PP_FAILED);
	ck_assert_str_eq(r.why, "no answer");
}
END_TEST

START_TEST(pair_thresholds_are_the_looser_of_the_two_nodes)
{
	struct pp_thresholds a = {2.0, 23000.0, "x"}, b = {3.0, 3500.0, NULL};
	struct pp_thresholds none = {0.0, 0.0, NULL};
	struct pp_thresholds t = pp_thresholds_pair(&a, &b);

	ck_assert_double_eq_tol(t.max_latency_us, 3.0, 1e-12);
	ck_assert_double_eq_tol(t.min_bandwidth_mbs, 3500.0, 1e-12);
	t = pp_thresholds_pair(&a, &none);
	ck_assert_double_eq_tol(t.max_latency_us, 0.0, 1e-12);
}
END_TEST

static char *_capture(void (*fn)(FILE *, void *), void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fn(f, arg);
	fclose(f);
	return buf;
}

static void _table(FILE *f, void *arg)
{
	(void)arg;
	pp_print_table_header(f);
	for (int i = 0; i < 3; i++)
		pp_print_row(f, &_pts[i]);
}

START_TEST(table_has_imb_columns_and_widths)
{
	char *out = _capture(_table, NULL);

	ck_assert_str_eq(
	        out, "       #bytes #repetitions      t[usec]   Mbytes/sec\n"
	             "            0         1000         2.23         0.00\n"
	             "          512         1000         3.09       165.70\n"
	             "      4194304           10      1082.94      3873.07\n");
	free(out);
}
END_TEST

static void _summary(FILE *f, void *arg)
{
	struct pp_pair_result *r = arg;

	pp_print_summary(f, r, 3, false);
}

START_TEST(summary_names_bad_pairs_and_the_node_they_share)
{
	struct pp_pair_result r[3] = {_pair(3.1, 3500.0), _pair(3.1, 3500.0),
	                              _pair(3.1, 3500.0)};
	char *out;

	r[1].host_a = "a9-002";
	r[1].host_b = "a9-003";
	r[1].failed = true;
	r[1].error = "no answer within 10 s";
	r[2].host_a = "a9-001";
	r[2].host_b = "a9-003";
	r[2].limits.max_latency_us = 2.0;
	out = _capture(_summary, r);
	ck_assert_ptr_null(strstr(out, "a9-001 <-> a9-002"));
	ck_assert_ptr_nonnull(strstr(out, "# FAIL a9-002 <-> a9-003: no answer "
	                                  "within 10 s\n"));
	ck_assert_ptr_nonnull(strstr(out, "# SLOW a9-001 <-> a9-003: t[usec] "
	                                  "3.09 at 512 bytes > 2.00\n"));
	ck_assert_ptr_nonnull(strstr(out, "# Nodes in slow or failing pairs: "
	                                  "a9-003 (2 of 2 pairs) a9-001 (1 of "
	                                  "2 pairs) a9-002 (1 of 2 pairs)\n"));
	ck_assert_ptr_nonnull(strstr(out, "# Result: FAIL (2 of 3 pairs"));
	free(out);
}
END_TEST

static void _json(FILE *f, void *arg)
{
	struct pp_pair_result *r = arg;

	pp_pair_judge(r);
	pp_print_json(f, PP_MODE_PAIR, r, 1);
}

START_TEST(json_holds_every_point_and_the_verdict)
{
	struct pp_pair_result r = _pair(3.1, 3500.0);
	char *out;

	r.host_b = "a9-\"002\"";
	out = _capture(_json, &r);
	ck_assert_ptr_nonnull(strstr(out, "{\"mode\": \"pair\""));
	ck_assert_ptr_nonnull(strstr(out, "\"b\": \"a9-\\\"002\\\"\""));
	ck_assert_ptr_nonnull(strstr(out, "{\"bytes\": 4194304, "
	                                  "\"repetitions\": 10, \"t_usec\": "
	                                  "1082.94, \"mbytes_per_sec\": "
	                                  "3873.07}"));
	ck_assert_ptr_nonnull(strstr(out, "\"result\": \"PASS\"}"));
	free(out);
}
END_TEST

/* ---- the Prolog's neighbour check (over loopback addresses) ------------ */

START_TEST(ring_neighbours_by_position_in_the_node_list)
{
	char *nodes[] = {"f1n1", "f1n2", "f1n3"};
	const char *next, *prev;
	char err[AZ_ERRLEN];
	bool alone;

	ck_assert_int_eq(pf_neighbours(nodes, 3, "f1n1", &next, &prev, &alone,
	                               err, sizeof(err)),
	                 AZ_OK);
	ck_assert_str_eq(next, "f1n2");
	ck_assert_str_eq(prev, "f1n3");
	ck_assert(!alone);
	ck_assert_int_eq(pf_neighbours(nodes, 3, "f1n3", &next, &prev, &alone,
	                               err, sizeof(err)),
	                 AZ_OK);
	ck_assert_str_eq(next, "f1n1");
	ck_assert_str_eq(prev, "f1n2");
	ck_assert_int_eq(pf_neighbours(nodes, 1, "f1n1", &next, &prev, &alone,
	                               err, sizeof(err)),
	                 AZ_OK);
	ck_assert(alone);
	ck_assert_int_eq(pf_neighbours(nodes, 3, "f2n1", &next, &prev, &alone,
	                               err, sizeof(err)),
	                 AZ_ENOTFOUND);
	ck_assert_str_eq(err, "this node (f2n1) is not in the job's node list");
	ck_assert_uint_eq(pf_port(1), PF_PORT_BASE + 1);
	ck_assert_uint_eq(pf_port(PF_PORT_SPAN + 7), PF_PORT_BASE + 7);
	/* Privileged, so that no user process can take it first, and below
	 * the ports that the kernel's NFS client and bindresvport() take for
	 * outgoing connections (600-1023). */
	ck_assert_uint_ge(PF_PORT_BASE, 1);
	ck_assert_uint_le(PF_PORT_BASE + PF_PORT_SPAN, 600);
}
END_TEST

/* Test "nodes" a and b: management and RDMA addresses on loopback. */
static enum az_rc _loop_resolve(void *arg, const char *node,
                                struct in_addr *out, char *err, size_t len)
{
	(void)arg;
	if (!strcmp(node, "a"))
		return inet_aton("127.0.0.2", out) ? AZ_OK : AZ_EINVAL;
	if (!strcmp(node, "b"))
		return inet_aton("127.0.0.3", out) ? AZ_OK : AZ_EINVAL;
	return az_err(AZ_ENOTFOUND, err, len, "no node %s", node);
}

/*
 * A munged of the tests' own (a fresh key in the temporary directory), as
 * every Slurm node has one: the fabric check signs and checks with it.
 */
static char _munge_socket[300];
static pid_t _munged = -1;

static void _munged_start(void)
{
	char key[300], arg[6][340];
	const char *dir = tu_tmpdir();
	unsigned char bytes[1024];
	FILE *f;

	/* munged wants its socket reachable by every user. */
	chmod(dir, 0711);
	snprintf(key, sizeof(key), "%s/munge.key", dir);
	snprintf(_munge_socket, sizeof(_munge_socket), "%s/munge.socket", dir);
	f = fopen("/dev/urandom", "rb");
	if (!f || fread(bytes, 1, sizeof(bytes), f) != sizeof(bytes)) {
		perror("/dev/urandom");
		exit(EXIT_FAILURE);
	}
	fclose(f);
	f = fopen(key, "wb");
	if (!f || fwrite(bytes, 1, sizeof(bytes), f) != sizeof(bytes)
	    || fclose(f)) {
		perror(key);
		exit(EXIT_FAILURE);
	}
	chmod(key, 0400);
	snprintf(arg[0], sizeof(arg[0]), "--socket=%s", _munge_socket);
	snprintf(arg[1], sizeof(arg[1]), "--key-file=%s", key);
	snprintf(arg[2], sizeof(arg[2]), "--pid-file=%s/munged.pid", dir);
	snprintf(arg[3], sizeof(arg[3]), "--seed-file=%s/munged.seed", dir);
	snprintf(arg[4], sizeof(arg[4]), "--log-file=%s/munged.log", dir);
	snprintf(arg[5], sizeof(arg[5]), "--origin=127.0.0.1");
	_munged = fork();
	if (_munged == 0) {
		/* It logs to its --log-file. */
		if (!freopen("/dev/null", "w", stderr))
			_exit(127);
		execl("/usr/sbin/munged", "munged", "--foreground", arg[0],
		      arg[1], arg[2], arg[3], arg[4], arg[5], (char *)NULL);
		perror("/usr/sbin/munged");
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (access(_munge_socket, F_OK) == 0)
			return;
		usleep(50000);
	}
	fprintf(stderr, "munged did not start (see %s/munged.log)\n", dir);
	exit(EXIT_FAILURE);
}

static void _munged_stop(void)
{
	if (_munged <= 0)
		return;
	kill(_munged, SIGTERM);
	waitpid(_munged, NULL, 0);
	_munged = -1;
}

/* Believing the uid the tests run as (root in CI, as the Prolog). */
static struct peer_auth *_auth(void)
{
	struct peer_auth *auth = NULL;
	char err[AZ_ERRLEN];

	ck_assert_msg(peer_auth_new(_munge_socket, getuid(), &auth, err,
	                            sizeof(err))
	                      == AZ_OK,
	              "%s", err);
	return auth;
}

struct loop_node {
	struct pf_config cfg;
	struct pf_result res;
	enum az_rc rc;
	char err[AZ_ERRLEN];
};

/* Whether port is free on addr now (another test run may hold it). */
static bool _port_free(const char *addr, unsigned short port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	bool ok;

	ck_assert_int_ge(fd, 0);
	ck_assert(inet_aton(addr, &sa.sin_addr));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* A job id whose port is free on both test addresses. */
static unsigned _free_job_id(void)
{
	unsigned job = 1000u + (unsigned)getpid() % 50000u;

	for (unsigned i = 0; i < PF_PORT_SPAN; i++, job++)
		if (_port_free("127.0.0.2", pf_port(job))
		    && _port_free("127.0.0.3", pf_port(job)))
			return job;
	ck_abort_msg("no free port from %u", PF_PORT_BASE);
	return 0;
}

static void _loop_node(struct loop_node *n, unsigned job, const char *me,
                       const char *other, const char *listen,
                       const char *rdma, double deadline)
{
	memset(n, 0, sizeof(*n));
	n->cfg.job_id = job;
	n->cfg.me = me;
	n->cfg.next = n->cfg.prev = other;
	n->cfg.port = pf_port(n->cfg.job_id);
	n->cfg.deadline_s = deadline;
	n->cfg.connect_s = 2.0;
	n->cfg.resolve = _loop_resolve;
	n->cfg.auth = _auth();
	ck_assert(inet_aton(listen, &n->cfg.listen));
	ck_assert(inet_aton(rdma, &n->cfg.rdma));
}

/* Nodes a (127.0.0.2) and b (127.0.0.3, RDMA address b_rdma), each the
 * other's neighbour, with a 10 s deadline. */
static void _loop_pair(struct loop_node *a, struct loop_node *b,
                       const char *b_rdma)
{
	unsigned job = _free_job_id();

	_loop_node(a, job, "a", "b", "127.0.0.2", "127.0.0.2", 10.0);
	_loop_node(b, job, "b", "a", "127.0.0.3", b_rdma, 10.0);
}

static void *_loop_run(void *arg)
{
	struct loop_node *n = arg;

	n->rc = pf_run(&n->cfg, &n->res, n->err, sizeof(n->err));
	peer_auth_free(n->cfg.auth);
	n->cfg.auth = NULL;
	return NULL;
}

/* Run both nodes at once: first in a thread, second after delay_us. */
static void _loop_run_both(struct loop_node *first, struct loop_node *second,
                           useconds_t delay_us)
{
	pthread_t tid;

	ck_assert_int_eq(pthread_create(&tid, NULL, _loop_run, first), 0);
	if (delay_us)
		usleep(delay_us);
	_loop_run(second);
	pthread_join(tid, NULL);
}

/* Both nodes checked the pair, and found it whole. */
static void _assert_pair_ok(const struct loop_node *a,
                            const struct loop_node *b)
{
	ck_assert_msg(a->rc == AZ_OK && a->res.ok, "a: %s %s", a->err,
	              a->res.detail);
	ck_assert_msg(b->rc == AZ_OK && b->res.ok, "b: %s %s", b->err,
	              b->res.detail);
}

START_TEST(two_nodes_reach_each_other_and_echo)
{
	struct loop_node a, b;

	_loop_pair(&a, &b, "127.0.0.3");
	_loop_run_both(&b, &a, 0);
	_assert_pair_ok(&a, &b);
	ck_assert(a.res.rtt_us > 0.0);
}
END_TEST

START_TEST(an_unreachable_rdma_address_breaks_the_pair_and_names_it)
{
	struct loop_node a, b;
	char reason[600], want[600];

	/* b tells 127.0.0.4 as its RDMA address, where nobody listens. */
	_loop_pair(&a, &b, "127.0.0.4");
	_loop_run_both(&b, &a, 0);
	ck_assert_int_eq(a.rc, AZ_OK);
	ck_assert(!a.res.ok);
	ck_assert_str_eq(a.res.detail, "no RDMA path from 127.0.0.2 to "
	                               "127.0.0.4 (b's RDMA address): "
	                               "Connection refused");
	pf_reason(&a.cfg, &a.res, reason, sizeof(reason));
	snprintf(want, sizeof(want), "azrdma-prolog: a <-> b: %s",
	         a.res.detail);
	ck_assert_str_eq(reason, want);
	/* The other way round the path works. */
	ck_assert_msg(b.res.ok, "b: %s", b.res.detail);
}
END_TEST

START_TEST(a_neighbour_without_rdma_says_so_and_is_not_a_broken_path)
{
	struct loop_node a, b;

	/* b has no RDMA interface up: its own Prolog drains it. */
	_loop_pair(&a, &b, "127.0.0.3");
	b.cfg.broken = true;
	_loop_run_both(&b, &a, 0);
	ck_assert_int_eq(a.rc, AZ_OK);
	ck_assert(!a.res.ok);
	ck_assert(a.res.peer_broken);
	ck_assert_str_eq(a.res.detail, "b has no RDMA interface up");
	/* b checked nothing but heard a's address: no path was judged. */
	ck_assert_int_eq(b.rc, AZ_OK);
	ck_assert(!b.res.peer_broken);
	ck_assert_str_eq(b.res.detail, "");
}
END_TEST

START_TEST(a_silent_neighbour_is_named_after_the_deadline)
{
	unsigned job = _free_job_id();
	struct loop_node a;
	char want[300];

	_loop_node(&a, job, "a", "b", "127.0.0.2", "127.0.0.2", 1.0);
	_loop_run(&a);
	ck_assert_int_eq(a.rc, AZ_OK);
	ck_assert(!a.res.ok);
	snprintf(want, sizeof(want),
	         "no answer from b at 127.0.0.3:%u within 1 s over the "
	         "management network (Connection refused); is its Prolog "
	         "running azrdma-pingpong?",
	         a.cfg.port);
	ck_assert_str_eq(a.res.detail, want);
}
END_TEST

START_TEST(a_taken_port_is_an_error_not_a_broken_pair)
{
	unsigned job = _free_job_id();
	struct loop_node a, a2;

	_loop_node(&a, job, "a", "b", "127.0.0.2", "127.0.0.2", 1.0);
	_loop_node(&a2, job, "a", "b", "127.0.0.2", "127.0.0.2", 1.0);
	_loop_run_both(&a, &a2, 200000);
	ck_assert_int_eq(a2.rc, AZ_EBUSY);
	ck_assert_ptr_nonnull(strstr(a2.err, "cannot listen on 127.0.0.2:"));
	ck_assert_ptr_nonnull(strstr(a2.err, "Address already in use"));
}
END_TEST

START_TEST(a_port_held_by_another_job_leaves_the_pair_unchecked)
{
	unsigned job = _free_job_id();
	struct loop_node a, b;
	char want[300];

	/* b's check is job + span's: the same port, another job. */
	_loop_node(&a, job, "a", "b", "127.0.0.2", "127.0.0.2", 2.0);
	_loop_node(&b, job + PF_PORT_SPAN, "b", "a", "127.0.0.3", "127.0.0.3",
	           2.0);
	_loop_run_both(&b, &a, 0);
	ck_assert_int_eq(a.rc, AZ_OK);
	ck_assert(!a.res.ok);
	ck_assert(a.res.other_job);
	ck_assert(!a.res.peer_broken);
	snprintf(want, sizeof(want),
	         "127.0.0.3:%u on b is held by the check of job %u", a.cfg.port,
	         job + PF_PORT_SPAN);
	ck_assert_str_eq(a.res.detail, want);
	ck_assert(b.res.other_job);
}
END_TEST

/* A connection to addr:port, waiting up to 5 s for a listener there. */
static int _dial(const char *addr, unsigned short port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(port)};
	struct timeval tv = {.tv_sec = 5};

	ck_assert(inet_aton(addr, &sa.sin_addr));
	for (int i = 0; i < 100; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		ck_assert_int_ge(fd, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
			           sizeof(tv));
			return fd;
		}
		close(fd);
		usleep(50000);
	}
	ck_abort_msg("nothing listens on %s:%u", addr, port);
	return -1;
}

/* What the peer sends until it closes (or 5 s pass), as text. */
static void _read_until_closed(int fd, char *out, size_t len)
{
	size_t n = 0;
	ssize_t got;

	while (n + 1 < len && (got = recv(fd, out + n, len - 1 - n, 0)) > 0)
		n += (size_t)got;
	out[n] = '\0';
}

/* A munge credential over words, made by uid nobody. */
static char *_cred_of_nobody(const char *words)
{
	struct passwd *pw = getpwnam("nobody");
	char cred[1024] = "";
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	ck_assert_ptr_nonnull(pw);
	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	if (pid == 0) {
		struct peer_auth *auth = NULL;
		char err[AZ_ERRLEN], *c = NULL;

		close(pipefd[0]);
		if (setgid(pw->pw_gid) || setuid(pw->pw_uid)
		    || peer_auth_new(_munge_socket, 0, &auth, err, sizeof(err))
		    || peer_auth_sign(auth, words, &c, err, sizeof(err)))
			_exit(1);
		n = write(pipefd[1], c, strlen(c));
		free(c);
		peer_auth_free(auth);
		_exit(n < 0 ? 1 : 0);
	}
	close(pipefd[1]);
	n = read(pipefd[0], cred, sizeof(cred) - 1);
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	ck_assert_msg(WIFEXITED(status) && !WEXITSTATUS(status) && n > 0,
	              "nobody could not make a credential");
	cred[n] = '\0';
	return strdup(cred);
}

static void _say(int fd, const char *line)
{
	ck_assert_int_eq(send(fd, line, strlen(line), MSG_NOSIGNAL),
	                 (ssize_t)strlen(line));
}

START_TEST(a_forged_hello_neither_answers_nor_ends_the_wait)
{
	struct loop_node a, b;
	struct peer_auth *root = _auth();
	pthread_t tid;
	char words[200], line[1400], got[4096], err[AZ_ERRLEN], *cred;
	const char *forged[3];
	char want[100];

	/* Issue 18 item 1: "AZPP1 <job> HELLO a" and a hang-up made b take
	 * a's check for done; a's real HELLO then met nobody, and a
	 * drained itself. */
	_loop_pair(&a, &b, "127.0.0.3");
	ck_assert_int_eq(pthread_create(&tid, NULL, _loop_run, &b), 0);
	snprintf(words, sizeof(words), "AZPP2 %u HELLO a b", a.cfg.job_id);
	cred = _cred_of_nobody(words);
	forged[0] = "MUNGE:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:";
	forged[1] = cred; /* the right words, but a user's */
	forged[2] = NULL; /* root's, but over other words (to c): below */
	snprintf(words, sizeof(words), "AZPP2 %u HELLO a c", a.cfg.job_id);
	{
		char *other = NULL;

		ck_assert_int_eq(peer_auth_sign(root, words, &other, err,
		                                sizeof(err)),
		                 AZ_OK);
		forged[2] = other;
	}
	snprintf(want, sizeof(want), "AZPP2 %u REFUSED\n", a.cfg.job_id);
	for (int i = 0; i < 3; i++) {
		int fd = _dial("127.0.0.3", b.cfg.port);

		snprintf(line, sizeof(line), "AZPP2 %u HELLO a b %s\n",
		         a.cfg.job_id, forged[i]);
		_say(fd, line);
		_read_until_closed(fd, got, sizeof(got));
		ck_assert_str_eq(got, want);
		close(fd);
	}
	free((char *)forged[2]);
	free(cred);
	peer_auth_free(root);
	_loop_run(&a);
	pthread_join(tid, NULL);
	_assert_pair_ok(&a, &b);
}
END_TEST

struct slow_peer {
	unsigned short port;
	int fd;
};

/* A peer that sends a line a byte at a time, one every 100 ms. */
static void *_slow_peer(void *arg)
{
	struct slow_peer *p = arg;
	const char *text = "AZPP2 1 HELLO a b MUNGE:AAAAAAAAAAAAAAAAAAAAAAAA:\n";

	for (size_t i = 0; text[i]; i++) {
		if (send(p->fd, &text[i], 1, MSG_NOSIGNAL) != 1)
			break;
		usleep(100000);
	}
	return NULL;
}

START_TEST(idle_and_slow_connections_do_not_shut_the_check_out)
{
	struct loop_node a, b;
	struct slow_peer slow;
	pthread_t tid, slow_tid;
	int idle[40], closed = 0;
	char got[64];

	/* Issue 18 item 1: 8 idle connections filled the listener's table
	 * and a slow one held its only thread: a's HELLO was never
	 * answered, and a drained itself. */
	_loop_pair(&a, &b, "127.0.0.3");
	ck_assert_int_eq(pthread_create(&tid, NULL, _loop_run, &b), 0);
	for (int i = 0; i < 40; i++)
		idle[i] = _dial("127.0.0.3", b.cfg.port);
	slow.port = b.cfg.port;
	slow.fd = _dial("127.0.0.3", b.cfg.port);
	ck_assert_int_eq(pthread_create(&slow_tid, NULL, _slow_peer, &slow),
	                 0);
	_loop_run(&a);
	pthread_join(tid, NULL);
	_assert_pair_ok(&a, &b);
	/* None was kept: each was dropped for a newer one or its deadline,
	 * the slow one included. */
	for (int i = 0; i < 40; i++) {
		if (recv(idle[i], got, sizeof(got), 0) == 0)
			closed++;
		close(idle[i]);
	}
	ck_assert_int_eq(closed, 40);
	ck_assert_int_eq(recv(slow.fd, got, sizeof(got), 0), 0);
	shutdown(slow.fd, SHUT_RDWR);
	pthread_join(slow_tid, NULL);
	close(slow.fd);
}
END_TEST

START_TEST(an_echo_needs_the_token_of_this_jobs_answer)
{
	struct loop_node a, b;
	pthread_t tid;
	char line[200], got[256];
	static char chunk[PF_CHUNK_BYTES];
	int fd;

	/* Issue 18 item 1: anyone could have the listener echo 64 KiB
	 * chunks a thousand times over. */
	_loop_pair(&a, &b, "127.0.0.3");
	b.cfg.deadline_s = 3.0;
	ck_assert_int_eq(pthread_create(&tid, NULL, _loop_run, &b), 0);
	fd = _dial("127.0.0.3", b.cfg.port);
	snprintf(line, sizeof(line),
	         "AZPP2 %u ECHO %u %u 0123456789abcdef0123456789abcdef\n",
	         b.cfg.job_id, PF_CHUNK_BYTES, PF_CHUNK_COUNT);
	_say(fd, line);
	send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
	/* Closed without a byte echoed (a reset counts as closed too). */
	ck_assert_int_le(recv(fd, got, sizeof(got), 0), 0);
	close(fd);
	pthread_join(tid, NULL);
	peer_auth_free(a.cfg.auth);
}
END_TEST

START_TEST(no_user_process_can_take_the_port_first)
{
	unsigned short port = pf_port(_free_job_id());
	struct passwd *pw = getpwnam("nobody");
	FILE *f;
	int start = 0, status;
	pid_t pid;

	/* Issue 18 item 1: a user process that listened on the job's port
	 * first made the check skip, and answered the neighbour itself. */
	if (getuid() != 0) {
		fprintf(stderr, "not root: the privileged port is not tested\n");
		return;
	}
	f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%d", &start), 1);
	fclose(f);
	ck_assert_msg(start >= PF_PORT_BASE + PF_PORT_SPAN,
	              "net.ipv4.ip_unprivileged_port_start=%d lets users "
	              "take the check's ports",
	              start);
	ck_assert_ptr_nonnull(pw);
	pid = fork();
	if (pid == 0) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_port = htons(port),
		                         .sin_addr.s_addr = htonl(INADDR_ANY)};
		int fd;

		if (setgid(pw->pw_gid) || setuid(pw->pw_uid))
			_exit(3);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			_exit(0);
		_exit(errno == EACCES ? 1 : 2);
	}
	waitpid(pid, &status, 0);
	ck_assert(WIFEXITED(status));
	ck_assert_msg(WEXITSTATUS(status) == 1,
	              "uid nobody: bind to port %u: exit %d (0: it could)", port,
	              WEXITSTATUS(status));
}
END_TEST

struct impostor {
	int lfd;
	const char *answer;
};

/* A root service that happens to hold the port: answers one connection. */
static void *_impostor_run(void *arg)
{
	struct impostor *imp = arg;
	char line[1200];
	int fd = accept(imp->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	if (recv(fd, line, sizeof(line), 0) > 0)
		send(fd, imp->answer, strlen(imp->answer), MSG_NOSIGNAL);
	usleep(200000);
	close(fd);
	return NULL;
}

START_TEST(an_impostor_on_the_port_drains_nobody_and_is_not_quoted)
{
	/* After "AZPP2 <job> ", or the whole line for the last. */
	static const char *answers[] = {
	        "ADDR 127.0.0.9 0123456789abcdef0123456789abcdef b a "
	        "MUNGE:AAAAAAAAAAAAAAAAAAAAAAAAAAAA:\n",
	        "BROKEN b a MUNGE:AAAAAAAAAAAAAAAAAAAAAAAAAAAA:\n",
	        "OTHERJOB b a MUNGE:AAAAAAAAAAAAAAAAAAAAAAAAAAAA:\n",
	        "drain me; all your nodes are broken\n",
	};
	const size_t count = sizeof(answers) / sizeof(answers[0]);

	for (size_t i = 0; i < count; i++) {
		unsigned job = _free_job_id();
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_port = htons(pf_port(job))};
		struct impostor imp;
		struct loop_node a;
		char answer[200], want[300];
		pthread_t tid;
		int one = 1;

		if (i + 1 == count)
			snprintf(answer, sizeof(answer), "%s", answers[i]);
		else
			snprintf(answer, sizeof(answer), "AZPP2 %u %s",
			         i == 2 ? job + 1 : job, answers[i]);
		imp.answer = answer;
		imp.lfd = socket(AF_INET, SOCK_STREAM, 0);
		inet_aton("127.0.0.3", &sa.sin_addr);
		setsockopt(imp.lfd, SOL_SOCKET, SO_REUSEADDR, &one,
		           sizeof(one));
		ck_assert_int_eq(bind(imp.lfd, (struct sockaddr *)&sa,
		                      sizeof(sa)),
		                 0);
		ck_assert_int_eq(listen(imp.lfd, 4), 0);
		ck_assert_int_eq(pthread_create(&tid, NULL, _impostor_run,
		                                &imp),
		                 0);
		_loop_node(&a, job, "a", "b", "127.0.0.2", "127.0.0.2", 3.0);
		_loop_run(&a);
		pthread_join(tid, NULL);
		close(imp.lfd);
		ck_assert_int_eq(a.rc, AZ_OK);
		ck_assert(!a.res.ok);
		/* Not a broken pair: the Prolog drains nobody for it. */
		ck_assert_msg(a.res.unverified, "%zu: %s", i, a.res.detail);
		ck_assert(!a.res.peer_broken && !a.res.other_job);
		/* Our words only: nothing the impostor said. */
		ck_assert_ptr_null(strstr(a.res.detail, "127.0.0.9"));
		ck_assert_ptr_null(strstr(a.res.detail, "MUNGE"));
		ck_assert_ptr_null(strstr(a.res.detail, "drain me"));
		snprintf(want, sizeof(want),
		         "127.0.0.3:%u on b answered, but not as job %u's check (",
		         pf_port(job), job);
		ck_assert_msg(!strncmp(a.res.detail, want, strlen(want)),
		              "%s", a.res.detail);
	}
}
END_TEST

START_TEST(munge_credentials_prove_uid_and_words)
{
	struct peer_auth *auth = _auth(), *other = NULL;
	char err[AZ_ERRLEN], *cred = NULL, want[100];

	ck_assert_int_eq(peer_auth_sign(auth, "AZPP2 1 HELLO a b", &cred, err,
	                                sizeof(err)),
	                 AZ_OK);
	ck_assert_ptr_null(strchr(cred, ' '));
	ck_assert_int_eq(peer_auth_check(auth, cred, "AZPP2 1 HELLO a c", err,
	                                 sizeof(err)),
	                 AZ_EPERM);
	ck_assert_str_eq(err, "credential made for another message");
	/* munged has decoded it once now: never again. */
	ck_assert_int_eq(peer_auth_check(auth, cred, "AZPP2 1 HELLO a b", err,
	                                 sizeof(err)),
	                 AZ_EPERM);
	ck_assert_msg(strstr(err, "credential refused: Replayed credential"),
	              "%s", err);
	free(cred);
	ck_assert_int_eq(peer_auth_sign(auth, "x", &cred, err, sizeof(err)),
	                 AZ_OK);
	ck_assert_int_eq(peer_auth_new(_munge_socket, getuid() + 4242, &other,
	                               err, sizeof(err)),
	                 AZ_OK);
	ck_assert_int_eq(peer_auth_check(other, cred, "x", err, sizeof(err)),
	                 AZ_EPERM);
	snprintf(want, sizeof(want), "credential of uid %u, not of uid %u",
	         (unsigned)getuid(), (unsigned)getuid() + 4242);
	ck_assert_str_eq(err, want);
	free(cred);
	ck_assert_int_eq(peer_auth_check(auth, "MUNGE:AAAA:", "x", err,
	                                 sizeof(err)),
	                 AZ_EPERM);
	ck_assert_msg(!strncmp(err, "credential refused: ", 20), "%s", err);
	peer_auth_free(other);
	peer_auth_free(auth);
}
END_TEST

START_TEST(the_munge_socket_comes_from_authinfo)
{
	char out[32], err[AZ_ERRLEN];

	ck_assert_int_eq(peer_auth_socket_from_authinfo(
	                         "cred_expire=20,socket=/run/m.sock", out,
	                         sizeof(out), err, sizeof(err)),
	                 AZ_OK);
	ck_assert_str_eq(out, "/run/m.sock");
	ck_assert_int_eq(peer_auth_socket_from_authinfo("cred_expire=20", out,
	                                                sizeof(out), err,
	                                                sizeof(err)),
	                 AZ_OK);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(peer_auth_socket_from_authinfo(NULL, out, sizeof(out),
	                                                err, sizeof(err)),
	                 AZ_OK);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(peer_auth_socket_from_authinfo(
	                         "socket=/a/very/long/path/to/munge.socket.2",
	                         out, sizeof(out), err, sizeof(err)),
	                 AZ_EINVAL);
	ck_assert_str_eq(err, "AuthInfo socket= path is longer than 31 bytes");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pingpong");
	TCase *tc = tcase_create("pingpong");
	int rc;

	tcase_add_test(tc, default_plan_is_imb_sizes_and_repetitions);
	tcase_add_test(tc, warm_up_is_a_tenth_but_at_least_ten);
	tcase_add_test(tc,
	               packet_spec_takes_size_and_iterations_like_mpipingpong);
	tcase_add_test(tc, bad_packet_specs_are_refused_with_the_spec);
	tcase_add_test(tc,
	               calibration_aims_at_one_second_of_at_most_1000_round_trips);
	tcase_add_test(tc, dynamic_reps_keep_ten_seconds_and_never_grow);
	tcase_add_test(tc, ring_neighbours_by_position_in_the_node_list);
	tcase_add_test(tc, two_nodes_reach_each_other_and_echo);
	tcase_add_test(tc,
	               an_unreachable_rdma_address_breaks_the_pair_and_names_it);
	tcase_add_test(tc,
	               a_neighbour_without_rdma_says_so_and_is_not_a_broken_path);
	tcase_add_test(tc, a_silent_neighbour_is_named_after_the_deadline);
	tcase_add_test(tc, a_taken_port_is_an_error_not_a_broken_pair);
	tcase_add_test(tc, a_port_held_by_another_job_leaves_the_pair_unchecked);
	tcase_add_test(tc, a_forged_hello_neither_answers_nor_ends_the_wait);
	tcase_add_test(tc, idle_and_slow_connections_do_not_shut_the_check_out);
	tcase_add_test(tc, an_echo_needs_the_token_of_this_jobs_answer);
	tcase_add_test(tc, no_user_process_can_take_the_port_first);
	tcase_add_test(tc, an_impostor_on_the_port_drains_nobody_and_is_not_quoted);
	tcase_add_test(tc, munge_credentials_prove_uid_and_words);
	tcase_add_test(tc, the_munge_socket_comes_from_authinfo);
	tcase_add_test(tc, quick_plan_covers_both_thresholds);
	tcase_add_test(tc, all_pairs_run_in_rounds_of_disjoint_pairs);
	tcase_add_test(tc, ring_pairs_each_node_with_the_next);
	tcase_add_test(tc, pair_mode_is_ranks_0_and_1_and_one_rank_is_refused);
	tcase_add_test(tc, mbytes_per_sec_is_bytes_per_microsecond);
	tcase_add_test(tc, seed_a9_figures_meet_the_a9_thresholds);
	tcase_add_test(tc, pair_thresholds_are_the_looser_of_the_two_nodes);
	tcase_add_test(tc, table_has_imb_columns_and_widths);
	tcase_add_test(tc, summary_names_bad_pairs_and_the_node_they_share);
	tcase_add_test(tc, json_holds_every_point_and_the_verdict);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	tu_tmpdir();
	_munged_start();
	rc = tu_run(s);
	_munged_stop();
	return rc;
}
