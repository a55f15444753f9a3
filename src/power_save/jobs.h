/*
 * jobs.h - the jobs of a resume: which job each node is powered up for,
 * from SLURM_RESUME_FILE, so that a multi-node job is resumed all or
 * nothing.
 */
#ifndef AZRDMA_POWER_JOBS_H
#define AZRDMA_POWER_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "az_rc.h"

struct power_job {
	uint32_t id;
	char **names;   /* its nodes in this resume, expanded */
	size_t count;
	char *features; /* its constraint (23.02 and later), or NULL */
};

struct power_jobs {
	struct power_job *items;
	size_t count;
};

/*
 * Parse SLURM_RESUME_FILE's text into jobs (emptied first; free with
 * power_jobs_free()).  The file says which nodes each job is resumed for
 * under the name its slurmctld uses, read as the file has it:
 *   22.05:        {"jobs":[{"job_id":4,"nodes":"cloud[1-2]"}],
 *                  "all_nodes":"cloud[1-2]"}
 *   23.02 and on: {"jobs":[{"job_id":4,"features":"img_x",
 *                  "nodes_alloc":"cloud[1-3]","nodes_resume":"cloud[1-2]",
 *                  ...}],"all_nodes_resume":"cloud[1-2]"}
 * A job entry without job_id, or with neither nodes list or a bad one, is
 * skipped and named in err; the others are kept.  AZ_EINVAL if text has no
 * jobs list at all (err says why), AZ_OK otherwise, even with skipped
 * entries (err then non-empty).
 */
enum az_rc power_jobs_parse(const char *text, struct power_jobs *jobs,
                            char *err, size_t errlen);

/* The first job that names node, or 0. */
uint32_t power_jobs_job_of(const struct power_jobs *jobs, const char *node);

/* That job's entry, or NULL. */
const struct power_job *power_jobs_find(const struct power_jobs *jobs,
                                        const char *node);

/*
 * The next job after *after (NULL: the first) that names node and has
 * other nodes too: the jobs node's failure releases.  NULL at the end.
 */
const struct power_job *power_jobs_next_shared(const struct power_jobs *jobs,
                                               const char *node,
                                               const struct power_job *after);

void power_jobs_free(struct power_jobs *jobs);

#endif
