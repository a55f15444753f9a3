/*
 * pingpong_core.h - the MPI-free half of azrdma-pingpong: which message
 * sizes are sent how often, which ranks pair up in which round, how a
 * pair's figures are judged against the thresholds, and how results are
 * printed (IMB-MPI1 PingPong's table, a summary, JSON).
 *
 * Methodology (IMB-MPI1 PingPong, reference/rdma-mpi-healthcheck.md 2.1):
 * sizes 0, 1, 2, 4 ... 4 MiB; 1000 repetitions, fewer for large messages so
 * that a size moves at most 40 MiB (640 at 64 KiB down to 10 at 4 MiB); a
 * warm-up of a tenth of the repetitions (at least 10) before each size;
 * t[usec] is half a round trip, the larger of the two ranks' figures;
 * Mbytes/sec is bytes / t[usec], i.e. 10^6 bytes per second.
 */
#ifndef AZRDMA_PINGPONG_CORE_H
#define AZRDMA_PINGPONG_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "az_rc.h"

#define PP_MAX_BYTES (4u << 20)        /* largest default size, 4 MiB */
#define PP_MAX_SPEC_BYTES (1u << 30)   /* largest size -p accepts */
#define PP_MSGS_PER_SAMPLE 1000u       /* repetitions of small sizes */
#define PP_OVERALL_VOLUME (40u << 20)  /* bytes one size moves at most */
#define PP_SECS_PER_SIZE 10.0          /* IMB's time budget of one size */
#define PP_LATENCY_MAX_BYTES 512       /* latency threshold: sizes up to */
#define PP_BANDWIDTH_MIN_BYTES 4000000 /* bandwidth threshold: sizes from */

/* One message size of a run. */
struct pp_size {
	size_t bytes;
	unsigned reps;
	bool given; /* reps set by -p size:iterations; never lowered */
};

/* The sizes of a run, in the order they are measured. */
struct pp_plan {
	struct pp_size *sizes; /* owned */
	size_t count;
};

/* IMB's repetitions for a size: 1000, or fewer so that at most 40 MiB move. */
unsigned pp_default_reps(size_t bytes);
/* Warm-up exchanges before a size: a tenth of reps, at least 10 (or reps). */
unsigned pp_warmup_reps(unsigned reps);
/*
 * IMB's calibration of a size (its "dynamic" iteration policy), which also
 * warms the path up: after one round trip of round_trip_s seconds (the
 * slower rank's), how many round trips take about a second, at most 1000.
 */
unsigned pp_calibration_reps(double round_trip_s);
/*
 * Then, with round_trip_s measured over that many round trips: the
 * repetitions of the size, reps lowered so that the size takes about
 * PP_SECS_PER_SIZE seconds at most, and never more than the previous
 * size's (prev), as IMB does.
 */
unsigned pp_dynamic_reps(unsigned reps, unsigned prev, double round_trip_s);

/* 0 B .. 4 MiB with IMB's repetitions.  Free with pp_plan_free. */
enum az_rc pp_plan_default(struct pp_plan *plan);
/*
 * --quick: 0 and 512 B (the latency bound) and 4 MiB (the bandwidth
 * bound), with few repetitions, for a Prolog or a job's first step.
 */
enum az_rc pp_plan_quick(struct pp_plan *plan);
/*
 * Append "size[:iterations]" (mpipingpong's -p): "1:100000", "4000000:1000",
 * "4M", "64K".  Without iterations, IMB's repetitions for the size.
 */
enum az_rc pp_plan_add_spec(struct pp_plan *plan, const char *spec, char *err,
                            size_t errlen);
void pp_plan_free(struct pp_plan *plan);

enum pp_mode {
	PP_MODE_PAIR = 0, /* ranks 0 and 1 */
	PP_MODE_ALL,      /* every rank with every other */
	PP_MODE_RING,     /* rank i with rank i+1 (mod n) */
};

bool pp_mode_parse(const char *s, enum pp_mode *out);
const char *pp_mode_name(enum pp_mode mode);

struct pp_pair {
	int a, b; /* ranks; a sends first */
};

/* Pairs measured at the same time; no rank is in two of them. */
struct pp_round {
	struct pp_pair *pairs; /* owned */
	size_t count;
};

struct pp_schedule {
	struct pp_round *rounds; /* owned */
	size_t count;
	size_t pair_count; /* over all rounds */
};

/*
 * The rounds of mode over nranks ranks (at least 2).  ALL uses the circle
 * method: n-1 rounds (n rounds for odd n) of disjoint pairs that together
 * hold every pair once.  RING runs its n pairs (1 for n = 2) in two or three
 * rounds of disjoint pairs.  Free with pp_schedule_free.
 */
enum az_rc pp_schedule_build(enum pp_mode mode, int nranks,
                             struct pp_schedule *out, char *err, size_t errlen);
void pp_schedule_free(struct pp_schedule *sched);
/* The pair rank is in during round, or NULL if it sits the round out. */
const struct pp_pair *pp_round_pair_of(const struct pp_round *round, int rank);

/* bytes / t[usec] (10^6 bytes per second); 0 when t_usec is not positive. */
double pp_mbytes_per_sec(size_t bytes, double t_usec);

/* Limits a pair must meet; a value of 0 means "not checked". */
struct pp_thresholds {
	double max_latency_us;    /* largest t[usec] for sizes <= 512 B */
	double min_bandwidth_mbs; /* least Mbytes/sec for sizes >= 4000000 B */
	const char *source;       /* where they came from, for the summary */
};

/* One measured size of one pair. */
struct pp_point {
	size_t bytes;
	unsigned reps;
	double t_usec;
	double mbytes_per_sec;
};

enum pp_verdict {
	PP_PASS = 0,
	PP_SLOW,   /* measured, but a threshold was missed */
	PP_FAILED, /* the exchange itself failed or timed out */
};

struct pp_pair_result {
	int a, b;
	const char *host_a, *host_b; /* not owned */
	size_t round;
	struct pp_point *points; /* not owned; count of the plan */
	size_t count;
	bool failed;
	const char *error; /* not owned; when failed */
	struct pp_thresholds limits;
	/* Filled in by pp_pair_judge. */
	enum pp_verdict verdict;
	char why[256];
};

/* Judge a pair against its limits; sets verdict and why, returns verdict. */
enum pp_verdict pp_pair_judge(struct pp_pair_result *res);

/* The thresholds that bind a pair of two nodes: the looser of each. */
struct pp_thresholds pp_thresholds_pair(const struct pp_thresholds *a,
                                        const struct pp_thresholds *b);

/* IMB's block header for one pair ("# Benchmarking PingPong" ...). */
void pp_print_block_header(FILE *out, const struct pp_pair_result *res,
                           size_t rounds);
/* IMB's column header: #bytes #repetitions t[usec] Mbytes/sec. */
void pp_print_table_header(FILE *out);
void pp_print_row(FILE *out, const struct pp_point *p);

/*
 * The summary: one line per pair that is not PASS (all pairs with
 * verbose), the nodes found in bad pairs with how many of their pairs
 * were bad, and a final "# Result: PASS|FAIL" line.  Judges every pair.
 * Returns the number of bad pairs.
 */
size_t pp_print_summary(FILE *out, struct pp_pair_result *res, size_t n,
                        bool verbose);

/* Everything as one JSON object (mode, pairs, points, verdicts). */
void pp_print_json(FILE *out, enum pp_mode mode,
                   const struct pp_pair_result *res, size_t n);

/* Write s as a JSON string literal, quotes included. */
void pp_json_string(FILE *out, const char *s);

#endif
