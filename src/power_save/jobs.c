/*
 * jobs.c - SLURM_RESUME_FILE's jobs and the lookups the resume needs.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "hostlist.h"
#include "jobs.h"

static bool _names(const struct power_job *j, const char *node)
{
	for (size_t k = 0; k < j->count; k++)
		if (!strcmp(j->names[k], node))
			return true;
	return false;
}

enum az_rc power_jobs_parse(const char *text, struct power_jobs *jobs,
                            char *err, size_t errlen)
{
	json_object *root, *list;
	size_t n;

	memset(jobs, 0, sizeof(*jobs));
	if (err && errlen)
		err[0] = '\0';
	root = text ? json_tokener_parse(text) : NULL;
	if (!root || !json_object_object_get_ex(root, "jobs", &list)
	    || !json_object_is_type(list, json_type_array)) {
		json_object_put(root);
		return az_err(AZ_EINVAL, err, errlen, "no jobs list in %.200s",
		              text ? text : "(nothing)");
	}
	n = json_object_array_length(list);
	jobs->items = calloc(n ? n : 1, sizeof(*jobs->items));
	if (!jobs->items) {
		json_object_put(root);
		return az_err(AZ_ENOMEM, err, errlen, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		json_object *job = json_object_array_get_idx(list, i), *v;
		struct power_job *j = &jobs->items[jobs->count];
		char why[AZ_ERRLEN];

		if (!json_object_object_get_ex(job, "job_id", &v)) {
			az_err(AZ_EINVAL, err, errlen, "jobs[%zu]: no job_id",
			       i);
			continue;
		}
		j->id = (uint32_t)json_object_get_int64(v);
		/* 23.02 renamed "nodes"; a file has one or the other. */
		if ((!json_object_object_get_ex(job, "nodes_resume", &v)
		     && !json_object_object_get_ex(job, "nodes", &v))
		    || hostlist_expand(json_object_get_string(v), &j->names,
		                       &j->count, why, sizeof(why))
		               != AZ_OK) {
			az_err(AZ_EINVAL, err, errlen,
			       "job %u: no usable nodes_resume or nodes list",
			       j->id);
			j->names = NULL;
			j->count = 0;
			continue;
		}
		if (json_object_object_get_ex(job, "features", &v)
		    && json_object_is_type(v, json_type_string)
		    && *json_object_get_string(v)
		    && !(j->features = strdup(json_object_get_string(v)))) {
			hostnames_free(j->names, j->count);
			json_object_put(root);
			power_jobs_free(jobs);
			return az_err(AZ_ENOMEM, err, errlen, "out of memory");
		}
		jobs->count++;
	}
	json_object_put(root);
	return AZ_OK;
}

const struct power_job *power_jobs_find(const struct power_jobs *jobs,
                                        const char *node)
{
	for (size_t i = 0; i < jobs->count; i++)
		if (_names(&jobs->items[i], node))
			return &jobs->items[i];
	return NULL;
}

uint32_t power_jobs_job_of(const struct power_jobs *jobs, const char *node)
{
	const struct power_job *j = power_jobs_find(jobs, node);

	return j ? j->id : 0;
}

const struct power_job *power_jobs_next_shared(const struct power_jobs *jobs,
                                               const char *node,
                                               const struct power_job *after)
{
	size_t i = after ? (size_t)(after - jobs->items) + 1 : 0;

	for (; i < jobs->count; i++)
		if (jobs->items[i].count > 1 && _names(&jobs->items[i], node))
			return &jobs->items[i];
	return NULL;
}

void power_jobs_free(struct power_jobs *jobs)
{
	for (size_t i = 0; i < jobs->count; i++) {
		hostnames_free(jobs->items[i].names, jobs->items[i].count);
		free(jobs->items[i].features);
	}
	free(jobs->items);
	memset(jobs, 0, sizeof(*jobs));
}
