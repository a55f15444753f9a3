/*
 * job_submit_inproc.c - the cost of one job_submit/azrdma call, measured
 * in-process, for bench/job-submit.
 *
 * libslurm, loaded globally, stands in for slurmctld (allocator, logger);
 * each call gets a fresh descriptor as slurmctld unpacks it (a batch job
 * with a 50-entry environment asking for -N 2 -C rdma) and only the call
 * is timed.
 *
 * usage: job_submit_inproc PLUGIN.so CALLS PARTITION FEATURES
 *        (AZRDMA_CONF names the azrdma.conf)
 * prints: {"calls": N, "us_per_call": X}
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <slurm/slurm.h>

extern void *slurm_xcalloc(size_t, size_t, bool, bool, const char *, int,
                           const char *);
extern char *slurm_xstrdup(const char *);
extern void slurm_xfree(void **);

typedef int (*submit_fn)(job_desc_msg_t *, uint32_t, char **);

static double _now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void _free_array(char **a, uint32_t n)
{
	for (uint32_t i = 0; a && i < n; i++)
		slurm_xfree((void **)&a[i]);
	slurm_xfree((void **)&a);
}

int main(int argc, char **argv)
{
	void *h;
	int (*init)(void);
	submit_fn submit;
	long calls;
	double spent = 0;

	if (argc != 5) {
		fprintf(stderr,
		        "usage: %s PLUGIN.so CALLS PARTITION FEATURES\n",
		        argv[0]);
		return 2;
	}
	if (!dlopen("libslurm.so", RTLD_NOW | RTLD_GLOBAL)) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	init = (int (*)(void))dlsym(h, "init");
	submit = (submit_fn)dlsym(h, "job_submit");
	if (!init || !submit || init()) {
		fprintf(stderr, "%s: init failed\n", argv[1]);
		return 1;
	}
	calls = strtol(argv[2], NULL, 10);
	for (long i = 0; i < calls; i++) {
		job_desc_msg_t job;
		char *msg = NULL;
		double t0;
		int rc;

		slurm_init_job_desc_msg(&job);
		job.partition = slurm_xstrdup(argv[3]);
		job.features = argv[4][0] ? slurm_xstrdup(argv[4]) : NULL;
		job.min_nodes = job.max_nodes = 2;
		job.het_job_offset = NO_VAL; /* as slurmctld sets it */
		job.environment = slurm_xcalloc(51, sizeof(char *), true, false,
		                                __FILE__, __LINE__, __func__);
		for (int e = 0; e < 50; e++) {
			char v[48];

			snprintf(v, sizeof(v), "BENCH_VAR_%02d=value-%02d", e,
			         e);
			job.environment[e] = slurm_xstrdup(v);
		}
		job.env_size = 50;

		t0 = _now();
		rc = submit(&job, 0, &msg);
		spent += _now() - t0;
		if (rc) {
			fprintf(stderr, "job_submit: %d %s\n", rc,
			        msg ? msg : "");
			return 1;
		}
		slurm_xfree((void **)&msg);
		slurm_xfree((void **)&job.partition);
		slurm_xfree((void **)&job.features);
		_free_array(job.environment, job.env_size);
		_free_array(job.spank_job_env, job.spank_job_env_size);
	}
	printf("{\"calls\": %ld, \"us_per_call\": %.3f}\n", calls,
	       spent * 1e6 / calls);
	return 0;
}
