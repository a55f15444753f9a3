/*
 * azrdma-pingpong - IMB-style PingPong between the nodes of a job.
 *
 *   srun --mpi=pmix --ntasks-per-node=1 azrdma-pingpong [-m pair|all|ring]
 *        [-p size[:iterations]]... [--quick] [--max-latency US]
 *        [--min-bandwidth MBS] [--timeout S] [--json] [-v]
 *
 * One rank per node.  Pairs of a round run at once; within a pair the first
 * rank sends and waits for the echo, the second echoes.  Rank 0 prints each
 * pair's IMB-MPI1 PingPong table, then a summary naming slow or failing
 * pairs and nodes, and exits 1 unless every pair met its thresholds.
 *
 * A pair that cannot reach each other (nodes of two fabrics) must not hang
 * the job: a pair's first contact, the round barriers and the collection of
 * results all run with deadlines; a rank that gives up names its pair on
 * stderr.  An alarm bounds the whole run.  See azrdma-pingpong(1).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "conf.h"
#include "hostlist.h"
#include "pingpong_core.h"
#include "pingpong_prolog.h"

#define NAME_LEN 64
#define TAG_SYNC 11
#define TAG_DATA 12
#define TAG_TIME 13
#define TAG_REPORT 14
#define DEFAULT_TIMEOUT 10.0
#define DEFAULT_TIME_LIMIT 900
#define QUICK_TIME_LIMIT 60

struct options {
	enum pp_mode mode;
	struct pp_plan plan;
	bool quick, json, verbose;
	bool no_thresholds; /* measure only: every measured pair passes */
	double max_latency, min_bandwidth;
	double timeout;
	unsigned time_limit;
	const char *conf_path;
};

static int _rank, _nranks;
static char (*_names)[NAME_LEN];
/* What this rank is doing, for the watchdog's last words. */
static char _doing[256] = "starting";

static void _on_alarm(int sig)
{
	char msg[400];
	int n = snprintf(msg, sizeof(msg),
	                 "azrdma-pingpong: rank %d: run time limit reached "
	                 "while %s; giving up\n",
	                 _rank, _doing);

	(void)sig;
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
		_exit(3);
	_exit(3);
}

static void _usage(FILE *out)
{
	fprintf(out,
	        "Usage: srun --mpi=pmix --ntasks-per-node=1 azrdma-pingpong "
	        "[options]\n"
	        "  -m, --mode pair|all|ring   ranks 0 and 1 (default), every "
	        "pair of nodes\n"
	        "                             in rounds of disjoint pairs, or "
	        "each node with\n"
	        "                             the next\n"
	        "  -p, --packet SIZE[:ITERS]  measure only this size (K, M "
	        "suffixes); repeat\n"
	        "                             for more sizes (default 0 B .. 4 "
	        "MiB, IMB's\n"
	        "                             repetitions)\n"
	        "  -q, --quick                0 B, 512 B and 4 MiB with few "
	        "repetitions\n"
	        "  -L, --max-latency US       largest t[usec] allowed up to "
	        "512 "
	        "bytes\n"
	        "  -B, --min-bandwidth MBS    least Mbytes/sec (10^6 B/s) from "
	        "4000000 bytes\n"
	        "                             (default for both: the VM size "
	        "of the node's\n"
	        "                             Domain in azrdma.conf)\n"
	        "      --no-thresholds        measure only: judge no pair "
	        "by its figures\n"
	        "  -f, --conf FILE            azrdma.conf (default "
	        "$AZRDMA_CONF, or beside\n"
	        "                             $SLURM_CONF)\n"
	        "  -t, --timeout S            give up on a peer after S "
	        "seconds (default 10)\n"
	        "  -T, --time-limit S         give up on the whole run after S "
	        "seconds\n"
	        "  -j, --json                 print one JSON object instead of "
	        "tables\n"
	        "  -v, --verbose              list passing pairs in the "
	        "summary too\n"
	        "Exit status: 0 every pair met the thresholds, 1 a pair was "
	        "slow or failed,\n"
	        "2 usage or setup error, 3 the time limit was reached.\n"
	        "As a Slurm Prolog (PrologFlags=Alloc), without MPI: "
	        "azrdma-pingpong --prolog\n"
	        "[--deadline S] [--connect-timeout S] [--no-drain] [--conf "
	        "FILE]; see azrdma-pingpong(1).\n");
}

static int _parse(int argc, char **argv, struct options *o, char *err,
                  size_t errlen)
{
	static const struct option longs[] = {
	        {"mode", required_argument, NULL, 'm'},
	        {"packet", required_argument, NULL, 'p'},
	        {"quick", no_argument, NULL, 'q'},
	        {"max-latency", required_argument, NULL, 'L'},
	        {"min-bandwidth", required_argument, NULL, 'B'},
	        {"no-thresholds", no_argument, NULL, 'N'},
	        {"conf", required_argument, NULL, 'f'},
	        {"timeout", required_argument, NULL, 't'},
	        {"time-limit", required_argument, NULL, 'T'},
	        {"json", no_argument, NULL, 'j'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;
	char *end;

	while ((c = getopt_long(argc, argv, "m:p:qL:B:f:t:T:jvh", longs, NULL))
	       != -1) {
		switch (c) {
		case 'm':
			if (!pp_mode_parse(optarg, &o->mode)) {
				az_err(AZ_EINVAL, err, errlen,
				       "--mode %s: expected pair, all or ring",
				       optarg);
				return 2;
			}
			break;
		case 'p':
			if (pp_plan_add_spec(&o->plan, optarg, err, errlen)
			    != AZ_OK)
				return 2;
			break;
		case 'q':
			o->quick = true;
			break;
		case 'L':
		case 'B':
		case 't':
		case 'T': {
			double v = strtod(optarg, &end);

			/* Also refuses nan and inf (--time-limit is cast). */
			if (*end || end == optarg || !(v > 0.0 && v <= 1e9)) {
				az_err(AZ_EINVAL, err, errlen,
				       "-%c %s: expected a positive number "
				       "up to 1e9",
				       c, optarg);
				return 2;
			}
			if (c == 'L')
				o->max_latency = v;
			else if (c == 'B')
				o->min_bandwidth = v;
			else if (c == 't')
				o->timeout = v;
			else
				o->time_limit = (unsigned)v;
			break;
		}
		case 'N':
			o->no_thresholds = true;
			break;
		case 'f':
			o->conf_path = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			return 1;
		default:
			az_err(AZ_EINVAL, err, errlen,
			       "unknown option; see --help");
			return 2;
		}
	}
	if (optind < argc) {
		az_err(AZ_EINVAL, err, errlen, "unexpected argument '%s'",
		       argv[optind]);
		return 2;
	}
	if (o->no_thresholds && (o->max_latency || o->min_bandwidth)) {
		az_err(AZ_EINVAL, err, errlen,
		       "--no-thresholds and -L/-B cannot be combined");
		return 2;
	}
	if (o->quick && o->plan.count) {
		az_err(AZ_EINVAL, err, errlen,
		       "--quick and -p cannot be combined");
		return 2;
	}
	if (!o->plan.count
	    && (o->quick ? pp_plan_quick(&o->plan) : pp_plan_default(&o->plan))
	               != AZ_OK) {
		az_err(AZ_ENOMEM, err, errlen, "out of memory");
		return 2;
	}
	if (!o->time_limit)
		o->time_limit =
		        o->quick ? QUICK_TIME_LIMIT : DEFAULT_TIME_LIMIT;
	return 0;
}

/* ---- communication with deadlines -------------------------------------- */

/* Wait for reqs until the deadline; true if all completed without error. */
static bool _wait_until(MPI_Request *reqs, int n, double deadline)
{
	int done = 0;

	while (MPI_Wtime() < deadline) {
		if (MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE)
		    != MPI_SUCCESS)
			return false;
		if (done)
			return true;
		usleep(200);
	}
	/* A receive that never came can be withdrawn; a send cannot. */
	for (int i = 0; i < n; i++)
		if (reqs[i] != MPI_REQUEST_NULL)
			MPI_Cancel(&reqs[i]);
	return false;
}

/* First contact with peer: a byte each way, within timeout seconds. */
static bool _contact(int peer, double timeout)
{
	char out = 1, in = 0;
	MPI_Request r[2];

	MPI_Irecv(&in, 1, MPI_CHAR, peer, TAG_SYNC, MPI_COMM_WORLD, &r[0]);
	MPI_Isend(&out, 1, MPI_CHAR, peer, TAG_SYNC, MPI_COMM_WORLD, &r[1]);
	return _wait_until(r, 2, MPI_Wtime() + timeout);
}

static bool _barrier(double timeout)
{
	MPI_Request r;

	MPI_Ibarrier(MPI_COMM_WORLD, &r);
	return _wait_until(&r, 1, MPI_Wtime() + timeout);
}

/* ---- the measurement ---------------------------------------------------- */

/* The send and the receive buffer of every exchange, as IMB keeps them. */
struct pp_buffers {
	char *send, *recv;
	size_t len; /* bytes each holds */
};

static bool _buffers_fit(struct pp_buffers *b, size_t bytes);

/* Two zero-byte exchanges with peer: IMB's N_BARR barriers, for a pair. */
static void _pair_sync(int peer)
{
	for (int i = 0; i < 2; i++)
		MPI_Sendrecv(NULL, 0, MPI_BYTE, peer, TAG_SYNC, NULL, 0,
		             MPI_BYTE, peer, TAG_SYNC, MPI_COMM_WORLD,
		             MPI_STATUS_IGNORE);
}

/*
 * reps round trips of bytes between this rank and peer, after the pair's
 * synchronisation; seconds per round trip, the slower rank's (as IMB
 * takes the largest time of the ranks).  As IMB's PingPong: MPI_Send from
 * the send buffer, MPI_Recv into the receive buffer from that very peer
 * with any tag.
 */
static double _exchange(const struct pp_buffers *b, size_t bytes,
                        unsigned reps, int peer, bool first)
{
	double t, other;
	int n = (int)bytes;

	_pair_sync(peer);
	t = -MPI_Wtime();
	for (unsigned i = 0; i < reps; i++) {
		if (first) {
			MPI_Send(b->send, n, MPI_BYTE, peer, TAG_DATA,
			         MPI_COMM_WORLD);
			MPI_Recv(b->recv, n, MPI_BYTE, peer, MPI_ANY_TAG,
			         MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		} else {
			MPI_Recv(b->recv, n, MPI_BYTE, peer, MPI_ANY_TAG,
			         MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			MPI_Send(b->send, n, MPI_BYTE, peer, TAG_DATA,
			         MPI_COMM_WORLD);
		}
	}
	t = (t + MPI_Wtime()) / reps;
	MPI_Sendrecv(&t, 1, MPI_DOUBLE, peer, TAG_TIME, &other, 1, MPI_DOUBLE,
	             peer, TAG_TIME, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	return t > other ? t : other;
}

/*
 * Measure every size of the plan with peer, the way IMB-MPI1 PingPong
 * does: its calibration (one round trip, then up to a second's worth,
 * which fixes the repetitions of a default size), a warm-up of a tenth,
 * then the timed run.  Both ranks see the same times, so they agree on
 * the repetitions.  On the pair's first rank, points gets the results.
 */
static void _measure_pair(const struct options *o, struct pp_buffers *b,
                          int peer, bool first, struct pp_point *points)
{
	unsigned prev = PP_MSGS_PER_SAMPLE;

	for (size_t i = 0; i < o->plan.count; i++) {
		const struct pp_size *s = &o->plan.sizes[i];
		unsigned reps = s->reps, calib;
		double rt;

		snprintf(_doing, sizeof(_doing),
		         "measuring %zu bytes with rank %d (%s)", s->bytes,
		         peer, _names[peer]);
		/* The peer is waiting for this size: no way to skip it. */
		if (!_buffers_fit(b, s->bytes)) {
			fprintf(stderr,
			        "azrdma-pingpong: rank %d: out of memory for "
			        "%zu-byte buffers\n",
			        _rank, s->bytes);
			MPI_Abort(MPI_COMM_WORLD, 2);
		}
		rt = _exchange(b, s->bytes, 1, peer, first);
		calib = pp_calibration_reps(rt);
		if (calib > reps)
			calib = reps;
		if (calib > 1)
			rt = _exchange(b, s->bytes, calib, peer, first);
		if (!s->given) {
			reps = pp_dynamic_reps(reps, prev, rt);
			prev = reps;
		}
		_exchange(b, s->bytes, pp_warmup_reps(reps), peer, first);
		rt = _exchange(b, s->bytes, reps, peer, first);
		if (first) {
			points[i].bytes = s->bytes;
			points[i].reps = reps;
			points[i].t_usec = rt * 1e6 / 2.0;
			points[i].mbytes_per_sec =
			        pp_mbytes_per_sec(s->bytes, points[i].t_usec);
		}
	}
}

static void _buffers_free(struct pp_buffers *b)
{
	if (b->send)
		MPI_Free_mem(b->send);
	if (b->recv)
		MPI_Free_mem(b->recv);
	b->send = b->recv = NULL;
	b->len = 0;
}

/*
 * Buffers for bytes: as IMB's IMB_alloc_buf() does, both are allocated
 * anew (MPI_Alloc_mem) when a size outgrows them, so each large size runs
 * on memory of its own size as IMB's does; filled at once, so no page
 * fault is timed; smaller sizes reuse them.
 */
static bool _buffers_fit(struct pp_buffers *b, size_t bytes)
{
	size_t len = bytes ? bytes : 1;

	if (len <= b->len)
		return true;
	_buffers_free(b);
	if (MPI_Alloc_mem((MPI_Aint)len, MPI_INFO_NULL, &b->send)
	            != MPI_SUCCESS
	    || MPI_Alloc_mem((MPI_Aint)len, MPI_INFO_NULL, &b->recv)
	               != MPI_SUCCESS) {
		_buffers_free(b);
		return false;
	}
	memset(b->send, 'a', len);
	memset(b->recv, 0, len);
	b->len = len;
	return true;
}

/* Whether buffers for bytes can be had at all, without touching them. */
static bool _buffers_possible(size_t bytes)
{
	struct pp_buffers b = {0};
	MPI_Aint len = (MPI_Aint)(bytes ? bytes : 1);
	bool ok = MPI_Alloc_mem(len, MPI_INFO_NULL, &b.send) == MPI_SUCCESS
	          && MPI_Alloc_mem(len, MPI_INFO_NULL, &b.recv) == MPI_SUCCESS;

	_buffers_free(&b);
	return ok;
}

/* ---- node names and thresholds ------------------------------------------ */

static void _my_name(char *name, size_t len)
{
	const char *n = getenv("SLURMD_NODENAME");

	if (n && *n)
		snprintf(name, len, "%s", n);
	else if (gethostname(name, len) != 0)
		snprintf(name, len, "rank%d", _rank);
	name[len - 1] = '\0';
}

/*
 * Every rank's node name.  Under srun with one task per node the step's
 * node list gives them without any message (which matters when some ranks
 * cannot reach others); otherwise an allgather within the timeout.
 */
static bool _gather_names(double timeout)
{
	const char *nodes = getenv("SLURM_STEP_NODELIST");
	const char *ntasks = getenv("SLURM_STEP_NUM_TASKS");
	char mine[NAME_LEN], err[AZ_ERRLEN];
	char **list = NULL;
	size_t count = 0;
	MPI_Request r;

	_names = calloc((size_t)_nranks, NAME_LEN);
	if (!_names)
		return false;
	_my_name(mine, sizeof(mine));
	/* Every rank sees the same variables, so all take the same path. */
	if (nodes && ntasks && atoi(ntasks) == _nranks
	    && hostlist_expand(nodes, &list, &count, err, sizeof(err)) == AZ_OK
	    && count == (size_t)_nranks) {
		for (size_t i = 0; i < count; i++)
			snprintf(_names[i], NAME_LEN, "%s", list[i]);
		hostnames_free(list, count);
		if (strcmp(_names[_rank], mine)) {
			fprintf(stderr,
			        "azrdma-pingpong: rank %d runs on %s, not %s: "
			        "use block distribution, one task per node\n",
			        _rank, mine, _names[_rank]);
			snprintf(_names[_rank], NAME_LEN, "%s", mine);
		}
		return true;
	}
	if (list)
		hostnames_free(list, count);
	MPI_Iallgather(mine, NAME_LEN, MPI_CHAR, _names, NAME_LEN, MPI_CHAR,
	               MPI_COMM_WORLD, &r);
	if (_wait_until(&r, 1, MPI_Wtime() + timeout))
		return true;
	for (int i = 0; i < _nranks; i++)
		snprintf(_names[i], NAME_LEN, "rank%d", i);
	snprintf(_names[_rank], NAME_LEN, "%s", mine);
	return false;
}

/* Thresholds of each rank's node: the options, else the catalog. */
static struct pp_thresholds *_thresholds(const struct options *o,
                                         char **sources)
{
	struct pp_thresholds *t = calloc((size_t)_nranks, sizeof(*t));
	struct azrdma_conf *conf = NULL;
	char *path = NULL, err[AZ_ERRLEN] = "";

	if (!t)
		return NULL;
	*sources = NULL;
	/* All zero: nothing is checked, only an exchange that fails. */
	if (o->no_thresholds) {
		*sources = strdup("none (--no-thresholds)");
		for (int i = 0; i < _nranks; i++)
			t[i].source = *sources;
		return t;
	}
	if (!o->max_latency || !o->min_bandwidth) {
		path = o->conf_path ? strdup(o->conf_path)
		                    : conf_default_path();
		if (path
		    && conf_load(path, 0, &conf, NULL, err, sizeof(err))
		               != AZ_OK)
			fprintf(stderr,
			        "azrdma-pingpong: no thresholds from the VM "
			        "size catalog: %s\n",
			        err);
	}
	for (int i = 0; i < _nranks; i++) {
		const struct conf_domain *d =
		        conf ? domain_for_node(conf, _names[i]) : NULL;

		if (d && d->size) {
			t[i].max_latency_us = d->size->max_latency_us;
			t[i].min_bandwidth_mbs = d->size->min_bandwidth_mbs;
			if (!*sources
			    && asprintf(sources, "%s of Domain=%s",
			                d->size->name, d->name)
			               < 0)
				*sources = NULL;
		} else if (conf && !o->max_latency && !o->min_bandwidth) {
			fprintf(stderr,
			        "azrdma-pingpong: node %s is in no Domain of "
			        "%s; its pairs are not checked against the "
			        "catalog\n",
			        _names[i], path);
		}
		if (o->max_latency)
			t[i].max_latency_us = o->max_latency;
		if (o->min_bandwidth)
			t[i].min_bandwidth_mbs = o->min_bandwidth;
		t[i].source = *sources;
	}
	if (o->max_latency && o->min_bandwidth) {
		free(*sources);
		*sources = strdup("command line");
		for (int i = 0; i < _nranks; i++)
			t[i].source = *sources;
	}
	conf_free(conf);
	free(path);
	return t;
}

/* Two ranks on one node measure the node's memory, not the fabric. */
static void _warn_shared_nodes(void)
{
	for (int i = 0; i < _nranks; i++)
		for (int j = i + 1; j < _nranks; j++)
			if (!strcmp(_names[i], _names[j])) {
				fprintf(stderr,
				        "azrdma-pingpong: ranks %d and %d both "
				        "run on %s; run one task per node "
				        "(--ntasks-per-node=1)\n",
				        i, j, _names[i]);
				return;
			}
}

/* ---- results ------------------------------------------------------------ */

struct run {
	struct pp_schedule sched;
	struct pp_pair_result *res; /* sched.pair_count */
	struct pp_point *points;    /* pair_count * plan.count */
	char (*errors)[160];        /* pair_count */
};

/*
 * Rank 0 collects the results of pairs whose first rank is another one:
 * [failed flag, then t and repetitions of
 * every size], within the timeout.
 */
static void _collect(const struct options *o, struct run *run)
{
	size_t np = run->sched.pair_count, n = o->plan.count;
	size_t w = 2 * n + 1; /* doubles per pair */
	double *buf = calloc(np * w, sizeof(double));
	MPI_Request *reqs = calloc(np, sizeof(*reqs));

	if (!buf || !reqs) {
		free(buf);
		free(reqs);
		return;
	}
	for (size_t i = 0; i < np; i++) {
		struct pp_pair_result *r = &run->res[i];

		reqs[i] = MPI_REQUEST_NULL;
		if (_rank == 0 && r->a != 0)
			MPI_Irecv(&buf[i * w], (int)w, MPI_DOUBLE,
			          r->a, TAG_REPORT + (int)i, MPI_COMM_WORLD,
			          &reqs[i]);
		else if (_rank != 0 && r->a == _rank) {
			double *mine = &buf[i * w];

			mine[0] = r->failed;
			for (size_t j = 0; j < n; j++) {
				mine[2 * j + 1] = r->points[j].t_usec;
				mine[2 * j + 2] = r->points[j].reps;
			}
			MPI_Isend(mine, (int)w, MPI_DOUBLE, 0,
			          TAG_REPORT + (int)i, MPI_COMM_WORLD,
			          &reqs[i]);
		}
	}
	snprintf(_doing, sizeof(_doing), "collecting results on rank 0");
	_wait_until(reqs, (int)np, MPI_Wtime() + o->timeout);
	for (size_t i = 0; _rank == 0 && i < np; i++) {
		struct pp_pair_result *r = &run->res[i];
		int done = 0;

		if (r->a == 0)
			continue;
		if (reqs[i] != MPI_REQUEST_NULL)
			MPI_Test(&reqs[i], &done, MPI_STATUS_IGNORE);
		else
			done = 1;
		if (!done || reqs[i] != MPI_REQUEST_NULL) {
			r->failed = true;
			snprintf(run->errors[i], sizeof(run->errors[i]),
			         "no report from %s within %.0f s (rank 0 "
			         "cannot reach it)",
			         r->host_a, o->timeout);
			r->error = run->errors[i];
			continue;
		}
		r->failed = buf[i * w] != 0.0;
		if (r->failed) {
			snprintf(run->errors[i], sizeof(run->errors[i]),
			         "no answer within %.0f s over the MPI "
			         "network: the nodes cannot reach each other",
			         o->timeout);
			r->error = run->errors[i];
		}
		for (size_t j = 0; j < n; j++) {
			r->points[j].bytes = o->plan.sizes[j].bytes;
			r->points[j].t_usec = buf[i * w + 2 * j + 1];
			r->points[j].reps = (unsigned)buf[i * w + 2 * j + 2];
			r->points[j].mbytes_per_sec = pp_mbytes_per_sec(
			        r->points[j].bytes, r->points[j].t_usec);
		}
	}
	free(buf);
	free(reqs);
}

static void _print(const struct options *o, struct run *run, size_t *bad)
{
	size_t np = run->sched.pair_count;

	if (o->json) {
		for (size_t i = 0; i < np; i++)
			pp_pair_judge(&run->res[i]);
		pp_print_json(stdout, o->mode, run->res, np);
		*bad = pp_print_summary(stderr, run->res, np, o->verbose);
		return;
	}
	for (size_t i = 0; i < np; i++) {
		struct pp_pair_result *r = &run->res[i];

		pp_print_block_header(stdout, r, run->sched.count);
		if (r->failed) {
			printf("# FAILED: %s\n\n", r->error);
			continue;
		}
		pp_print_table_header(stdout);
		for (size_t j = 0; j < r->count; j++)
			pp_print_row(stdout, &r->points[j]);
		printf("\n");
	}
	*bad = pp_print_summary(stdout, run->res, np, o->verbose);
}

static int _run(const struct options *o)
{
	struct run run = {0};
	struct pp_thresholds *limits = NULL;
	char err[AZ_ERRLEN], *sources = NULL;
	struct pp_buffers bufs = {NULL, NULL, 0};
	bool have_bufs;
	size_t maxbytes = 1, np, idx = 0, bad = 0;
	bool local_fail = false, synced = true;
	int rc = 2;

	if (pp_schedule_build(o->mode, _nranks, &run.sched, err, sizeof(err))
	    != AZ_OK) {
		if (_rank == 0)
			fprintf(stderr, "azrdma-pingpong: %s\n", err);
		return 2;
	}
	np = run.sched.pair_count;
	/* Each round may wait a timeout for an unreachable peer. */
	alarm(o->time_limit
	      + (unsigned)((double)(run.sched.count + 3) * o->timeout));
	for (size_t i = 0; i < o->plan.count; i++)
		if (o->plan.sizes[i].bytes > maxbytes)
			maxbytes = o->plan.sizes[i].bytes;
	run.res = calloc(np, sizeof(*run.res));
	run.points = calloc(np * o->plan.count, sizeof(*run.points));
	run.errors = calloc(np, sizeof(*run.errors));
	/* The largest size must be possible before any message; the sizes
	 * then grow their own buffers as IMB's do. */
	have_bufs = _buffers_possible(maxbytes);
	if (_rank == 0) {
		limits = _thresholds(o, &sources);
		_warn_shared_nodes();
	}
	if (!run.res || !run.points || !run.errors || !have_bufs
	    || (_rank == 0 && !limits)) {
		fprintf(stderr, "azrdma-pingpong: out of memory\n");
		goto out;
	}

	for (size_t r = 0; r < run.sched.count; r++) {
		const struct pp_round *round = &run.sched.rounds[r];
		const struct pp_pair *mine = pp_round_pair_of(round, _rank);

		for (size_t k = 0; k < round->count; k++, idx++) {
			struct pp_pair_result *res = &run.res[idx];

			res->a = round->pairs[k].a;
			res->b = round->pairs[k].b;
			res->host_a = _names[res->a];
			res->host_b = _names[res->b];
			res->round = r;
			res->points = &run.points[idx * o->plan.count];
			res->count = o->plan.count;
			if (limits)
				res->limits = pp_thresholds_pair(
				        &limits[res->a], &limits[res->b]);
			if (mine == &round->pairs[k]) {
				int peer = mine->a == _rank ? mine->b : mine->a;

				snprintf(_doing, sizeof(_doing),
				         "contacting rank %d (%s)", peer,
				         _names[peer]);
				if (!_contact(peer, o->timeout)) {
					fprintf(stderr,
					        "azrdma-pingpong: FAIL %s <-> "
					        "%s: no answer within %.0f s "
					        "over the MPI network\n",
					        res->host_a, res->host_b,
					        o->timeout);
					res->failed = true;
					snprintf(run.errors[idx],
					         sizeof(run.errors[idx]),
					         "no answer within %.0f s over "
					         "the MPI network: the nodes "
					         "cannot reach each other",
					         o->timeout);
					res->error = run.errors[idx];
					local_fail = true;
					continue;
				}
				_measure_pair(o, &bufs, peer, mine->a == _rank,
				              res->points);
			}
		}
		/* Rounds start together while every rank answers. */
		snprintf(_doing, sizeof(_doing),
		         "at the barrier after round "
		         "%zu",
		         r + 1);
		if (synced && !_barrier(o->timeout))
			synced = false;
	}

	_collect(o, &run);
	if (_rank == 0)
		_print(o, &run, &bad);
	fflush(stdout);
	fflush(stderr);
	rc = bad || local_fail ? 1 : 0;
	if (!synced || local_fail) {
		/*
		 * Some rank cannot reach another: MPI_Finalize could wait
		 * for it forever.  Rank 0 has printed; end the whole step.
		 */
		if (_rank != 0)
			sleep((unsigned)(2 * o->timeout) + 10);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	/* Every rank ends with rank 0's verdict, so no task looks "bad"
	 * before the others have finished. */
	{
		MPI_Request r;
		int verdict = rc;

		MPI_Ibcast(&verdict, 1, MPI_INT, 0, MPI_COMM_WORLD, &r);
		if (_wait_until(&r, 1, MPI_Wtime() + o->timeout))
			rc = verdict;
	}
out:
	_buffers_free(&bufs);
	free(run.res);
	free(run.points);
	free(run.errors);
	free(limits);
	free(sources);
	pp_schedule_free(&run.sched);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = {.timeout = DEFAULT_TIMEOUT};
	char err[AZ_ERRLEN] = "";
	int prc, rc;

	/* A Prolog runs before any MPI step: that mode never starts MPI. */
	if (pp_prolog_wanted(argc, argv))
		return pp_prolog_main(argc, argv);
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &_rank);
	MPI_Comm_size(MPI_COMM_WORLD, &_nranks);
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);

	prc = _parse(argc, argv, &o, err, sizeof(err));
	if (prc) {
		if (_rank == 0) {
			if (prc == 1)
				_usage(stdout);
			else
				fprintf(stderr, "azrdma-pingpong: %s\n", err);
		}
		pp_plan_free(&o.plan);
		MPI_Finalize();
		return prc == 1 ? 0 : 2;
	}
	signal(SIGALRM, _on_alarm);
	alarm(o.time_limit + (unsigned)(3 * o.timeout));
	snprintf(_doing, sizeof(_doing), "learning the node names");
	if (!_gather_names(o.timeout) && _rank == 0)
		fprintf(stderr, "azrdma-pingpong: some ranks did not tell "
		                "their node name within the timeout\n");
	rc = _run(&o);
	pp_plan_free(&o.plan);
	free(_names);
	MPI_Finalize();
	return rc;
}
