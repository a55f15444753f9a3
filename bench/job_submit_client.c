/*
 * job_submit_client.c - submit N held batch jobs through the Slurm API and
 * print the wall time they took, for bench/job-submit.
 *
 * One process, one descriptor, N slurm_submit_batch_job() calls: what is
 * timed is the controller's submit path (RPC, auth, job_submit plugins,
 * job record), not the start-up of N sbatch processes.
 *
 * usage: job_submit_client JOBS PARTITION FEATURES   (SLURM_CONF set)
 * prints: {"jobs": N, "seconds": S, "median_us": M, "p10_us": P,
 *          "first_job": ID, "last_job": ID}
 * median_us and p10_us are the median and the 10th percentile of the time
 * of one submission: a burst of load from elsewhere on the machine moves
 * the mean, hardly these; the 10th percentile is what a submission takes
 * when nothing else is in its way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

extern char **environ;

static int _cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double _now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	job_desc_msg_t desc;
	submit_response_msg_t *resp = NULL;
	char *env[64];
	uint32_t n = 0, first = 0, last = 0;
	long jobs;
	double t0, *lat;

	if (argc != 4) {
		fprintf(stderr, "usage: %s JOBS PARTITION FEATURES\n", argv[0]);
		return 2;
	}
	jobs = strtol(argv[1], NULL, 10);
	if (jobs < 1 || !(lat = calloc((size_t)jobs, sizeof(double)))) {
		fprintf(stderr, "%s: bad JOBS or out of memory\n", argv[0]);
		return 2;
	}
	slurm_init(NULL);
	/* A batch job's environment as sbatch sends it, about 50 entries. */
	for (char **e = environ; *e && n < 24; e++)
		env[n++] = *e;
	for (int i = 0; n < 50; i++) {
		static char fill[32][48];

		snprintf(fill[i], sizeof(fill[i]), "BENCH_VAR_%02d=value-%02d",
		         i, i);
		env[n++] = fill[i];
	}
	env[n] = NULL;

	slurm_init_job_desc_msg(&desc);
	desc.name = "bench";
	desc.script = "#!/bin/sh\ntrue\n";
	desc.partition = argv[2];
	desc.features = argv[3][0] ? argv[3] : NULL;
	desc.min_nodes = 2;
	desc.max_nodes = 2;
	desc.priority = 0; /* held: never scheduled */
	desc.user_id = getuid();
	desc.group_id = getgid();
	desc.work_dir = "/tmp";
	desc.std_out = "/dev/null";
	desc.environment = env;
	desc.env_size = n;

	t0 = _now();
	for (long i = 0; i < jobs; i++) {
		double t1 = _now();

		if (slurm_submit_batch_job(&desc, &resp)) {
			fprintf(stderr, "submit %ld: %s\n", i,
			        slurm_strerror(errno));
			return 1;
		}
		if (!i)
			first = resp->job_id;
		last = resp->job_id;
		slurm_free_submit_response_response_msg(resp);
		lat[i] = _now() - t1;
	}
	t0 = _now() - t0;
	qsort(lat, (size_t)jobs, sizeof(double), _cmp);
	printf("{\"jobs\": %ld, \"seconds\": %.6f, \"median_us\": %.1f, "
	       "\"p10_us\": %.1f, \"first_job\": %u, \"last_job\": %u}\n",
	       jobs, t0, lat[jobs / 2] * 1e6, lat[jobs / 10] * 1e6, first,
	       last);
	free(lat);
	return 0;
}
