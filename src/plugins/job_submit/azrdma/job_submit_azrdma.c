/*
 * job_submit_azrdma.c - job_submit/azrdma: keeps every RDMA job in one
 * fabric domain and gives batch jobs their MPI environment.
 *
 * A job is an RDMA job when its constraint names the feature "rdma" or its
 * partition is one of RdmaPartitions= in azrdma.conf.  For such a job:
 *
 *  - the domains that could ever hold it are those whose VM size and name
 *    agree with the size and domain features the job asks for and that
 *    have at least its least node count of nodes (its -N, or what its
 *    task count needs at --ntasks-per-node, else at one task per
 *    --cpus-per-task vCPUs of the domain's size);
 *  - none: the job is rejected, and err_msg says what would fit;
 *  - a job that may span nodes and names no domain gets a matching-OR
 *    constraint over those domains ("[hb0|hb1]", one domain alone), joined
 *    to its own constraint with '&', so that all its nodes share a fabric
 *    (a job that also asks for an image, img_<name>, gets the first
 *    candidate alone: an image feature only goes with a plain AND);
 *    a job that names a domain is checked, not rewritten;
 *  - the MPI profile is the one the candidate domains use (the Mpi= of the
 *    image the job asks for, else of their own image, else the default for
 *    their RDMA kind) or the one asked for with --rdma-env=<profile> of
 *    spank/azrdma; a batch job's environment gets
 *    its settings, never replacing a variable the user set; the profile and
 *    the domains are recorded in spank_job_env (SPANK_AZRDMA_MPI_PROFILE,
 *    SPANK_AZRDMA_DOMAINS), logged, and told to the user in one line.
 *
 * srun and salloc jobs carry no environment here (a job_submit plugin
 * never sees it in 22.05); spank/azrdma applies the profile in their tasks.
 *
 * Everything Slurm frees later (features, environment, spank_job_env,
 * err_msg) is allocated with Slurm's allocator; working memory is malloc'ed
 * and freed before returning.  No lock is taken: the caller holds read
 * locks on config, job, node and partition, and calls are serialized.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "buf.h"
#include "conf.h"
#include "feature_set.h"
#include "log.h"
#include "mpi_profile.h"
#include "sl_plugin.h"

/* Opaque in the public headers; only passed through here. */
typedef struct job_record job_record_t;

const char plugin_name[] = "azrdma job submit plugin";
const char plugin_type[] = "job_submit/azrdma";
const uint32_t plugin_version = SLURM_VERSION_NUMBER;

#define RDMA_FEATURE "rdma"
/* Where sbatch puts spank/azrdma's --rdma-env for the job. */
#define RDMA_ENV_OPTION "_SLURM_SPANK_OPTION_azrdma_rdma_env"
/* Where spank/azrdma puts it in spank_job_env (any client). */
#define RDMA_ENV_SPANK "AZRDMA_RDMA_ENV"
#define PROFILE_VAR "AZRDMA_MPI_PROFILE"
#define SPANK_PROFILE_VAR "SPANK_AZRDMA_MPI_PROFILE"
#define SPANK_DOMAINS_VAR "SPANK_AZRDMA_DOMAINS"

static struct azrdma_conf *_conf;

/* What a job asks for, as far as placement goes. */
struct job_ask {
	char **features; /* names in its constraint (malloc'ed) */
	size_t feature_count;
	bool rdma_feature; /* "rdma" among them */
	bool names_domain; /* a domain name among them */
	bool names_size;   /* a VM size feature among them */
	bool has_brackets; /* the constraint has its own matching-OR */
	bool names_image;  /* an img_<name> feature among them */
	const struct conf_image *image; /* the image it names, or NULL */
	uint32_t nodes;                 /* least node count */
	bool may_span;                  /* may run on more than one node */
	uint32_t tasks;                 /* task count, 0 if not given */
	uint32_t tasks_per_node;        /* given, or 0 */
	uint32_t cpus_per_task;         /* at least 1 */
	bool overcommit;
};

/* The outcome for one RDMA job. */
struct placement {
	bool *candidate; /* per domain: could hold the job */
	size_t candidates;
	size_t matching; /* domains whose features agree, any size */
	const struct conf_domain *largest; /* the largest of those */
	uint32_t largest_need;             /* nodes the job needs there */
	uint32_t largest_per_node;         /* tasks per node there, 0: by -N */
	const struct conf_mpi_profile *profile;
	bool mixed_profiles; /* candidates use different profiles */
	bool narrowed;       /* cut to one domain for an image feature */
	char *domains;       /* "hb0|hb1" (malloc'ed) */
};

extern int init(void)
{
	sl_plugin_log_init(plugin_type);
	_conf = sl_plugin_conf_load();
	if (!_conf)
		return SLURM_ERROR;
	log_verbose("loaded %s: %zu domains, %zu images", _conf->path,
	            _conf->domain_count, _conf->image_count);
	return SLURM_SUCCESS;
}

extern int fini(void)
{
	conf_free(_conf);
	_conf = NULL;
	return SLURM_SUCCESS;
}

static bool _is_separator(char c)
{
	return strchr("&|,[]()*:!", c) || c == ' ' || c == '\t';
}

static void _ask_free(struct job_ask *ask)
{
	for (size_t i = 0; i < ask->feature_count; i++)
		free(ask->features[i]);
	free(ask->features);
}

/* The feature names of a constraint such as "rdma&[hb0|hb1]*2". */
static enum az_rc _split_features(const char *expr, struct job_ask *ask)
{
	const char *p = expr;

	while (p && *p) {
		const char *start;
		char **grown;
		size_t len;

		while (*p && _is_separator(*p))
			p++;
		start = p;
		while (*p && !_is_separator(*p))
			p++;
		len = (size_t)(p - start);
		if (!len)
			continue;
		if (start > expr && start[-1] == '*'
		    && strspn(start, "0123456789") == len)
			continue; /* a count, not a name */
		grown = realloc(ask->features,
		                (ask->feature_count + 1) * sizeof(char *));
		if (!grown)
			return AZ_ENOMEM;
		ask->features = grown;
		ask->features[ask->feature_count] = strndup(start, len);
		if (!ask->features[ask->feature_count])
			return AZ_ENOMEM;
		ask->feature_count++;
	}
	return AZ_OK;
}

static bool _asks_feature(const struct job_ask *ask, const char *name)
{
	for (size_t i = 0; i < ask->feature_count; i++)
		if (!strcmp(ask->features[i], name))
			return true;
	return false;
}

/* Does the job's size feature, if it names any, match domain d's size? */
static bool _size_agrees(const struct job_ask *ask, const struct conf_domain *d)
{
	if (!ask->names_size)
		return true;
	for (size_t i = 0; i < ask->feature_count; i++)
		if (catalog_find(_conf->catalog, ask->features[i]) == d->size)
			return true;
	return false;
}

static bool _set(uint32_t v)
{
	return v != NO_VAL && v != 0;
}

static enum az_rc _ask_read(const job_desc_msg_t *job, struct job_ask *ask)
{
	enum az_rc rc;

	memset(ask, 0, sizeof(*ask));
	rc = _split_features(job->features, ask);
	if (rc != AZ_OK)
		return rc;
	ask->rdma_feature = _asks_feature(ask, RDMA_FEATURE);
	ask->has_brackets = job->features && strchr(job->features, '[');
	for (size_t i = 0; i < _conf->domain_count; i++)
		if (_asks_feature(ask, _conf->domains[i].name))
			ask->names_domain = true;
	for (size_t i = 0; i < ask->feature_count; i++) {
		const struct conf_image *img = NULL;

		if (feature_is_image(_conf, ask->features[i], &img)) {
			ask->names_image = true;
			if (!ask->image)
				ask->image = img;
		} else if (!conf_domain_find(_conf, ask->features[i])
		           && catalog_find(_conf->catalog, ask->features[i])) {
			ask->names_size = true;
		}
	}
	ask->nodes = _set(job->min_nodes) ? job->min_nodes : 1;
	ask->may_span = job->max_nodes != 1;
	ask->tasks = _set(job->num_tasks) ? job->num_tasks : 0;
	if (job->ntasks_per_node != NO_VAL16)
		ask->tasks_per_node = job->ntasks_per_node;
	ask->cpus_per_task =
	        job->cpus_per_task != NO_VAL16 && job->cpus_per_task
	                ? job->cpus_per_task
	                : 1;
	ask->overcommit = job->overcommit && job->overcommit != NO_VAL8;
	return AZ_OK;
}

/*
 * Tasks of the job one node of d takes: --ntasks-per-node, else as many as
 * the size has vCPUs for (none with --overcommit).  0: not limited.
 */
static uint32_t _tasks_per_node(const struct job_ask *ask,
                                const struct conf_domain *d)
{
	if (!ask->tasks)
		return 0;
	if (ask->tasks_per_node)
		return ask->tasks_per_node;
	if (ask->overcommit)
		return 0;
	return d->size->vcpus / ask->cpus_per_task
	               ? d->size->vcpus / ask->cpus_per_task
	               : 1;
}

/* The least nodes of domain d the job needs: its -N, or its tasks' share. */
static uint32_t _least_nodes(const struct job_ask *ask,
                             const struct conf_domain *d)
{
	uint32_t per_node = _tasks_per_node(ask, d);
	uint32_t by_tasks;

	if (!per_node)
		return ask->nodes;
	by_tasks = (uint32_t)(((uint64_t)ask->tasks + per_node - 1) / per_node);
	return by_tasks > ask->nodes ? by_tasks : ask->nodes;
}

/* Is one of the job's partitions (a comma list) an RDMA partition? */
static bool _rdma_partition(const char *partitions)
{
	const char *p = partitions;

	while (p && *p) {
		size_t len = strcspn(p, ",");

		for (size_t i = 0; i < _conf->rdma_partition_count; i++)
			if (strlen(_conf->rdma_partitions[i]) == len
			    && !strncmp(_conf->rdma_partitions[i], p, len))
				return true;
		p += len;
		if (*p)
			p++;
	}
	return false;
}

/* The value of NAME in a NAME=value array of n entries, or NULL. */
static const char *_env_get(char **env, uint32_t n, const char *name)
{
	size_t len = strlen(name);

	for (uint32_t i = 0; env && i < n; i++)
		if (env[i] && !strncmp(env[i], name, len) && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

/*
 * Set NAME=value (name: its first len characters) in a Slurm-allocated
 * array of *n entries, kept NULL-terminated: replace an existing entry if
 * replace, else leave it.  Returns true if the array now holds this value.
 */
static bool _env_put_n(char ***env, uint32_t *n, const char *name, size_t len,
                       const char *value, bool replace)
{
	size_t vlen = strlen(value);
	char *entry;
	uint32_t i;

	for (i = 0; *env && i < *n; i++)
		if ((*env)[i] && !strncmp((*env)[i], name, len)
		    && (*env)[i][len] == '=')
			break;
	if (i < *n && !replace)
		return false;
	entry = slurm_xcalloc(len + vlen + 2, 1, false, false, __FILE__,
	                      __LINE__, __func__);
	memcpy(entry, name, len);
	entry[len] = '=';
	memcpy(entry + len + 1, value, vlen + 1);
	if (i < *n) {
		slurm_xfree((void **)&(*env)[i]);
	} else {
		sl_xrecalloc(*env, *n + 2, sizeof(char *));
		(*n)++;
	}
	(*env)[i] = entry;
	return true;
}

static bool _env_put(char ***env, uint32_t *n, const char *name,
                     const char *value, bool replace)
{
	return _env_put_n(env, n, name, strlen(name), value, replace);
}

/* Append line to the user message (several plugins may share it). */
static void _user_msg(char **err_msg, const char *line)
{
	struct az_buf b = {0};

	if (!err_msg)
		return;
	if (*err_msg && **err_msg)
		buf_printf(&b, "%s\n", *err_msg);
	if (buf_puts(&b, line) != AZ_OK) {
		buf_free(&b);
		return;
	}
	slurm_xfree((void **)err_msg);
	*err_msg = slurm_xstrdup(b.data);
	buf_free(&b);
}

/* "hb0 (hb120rs_v3, 100 nodes), hb1 (...)": every RDMA domain. */
static void _describe_domains(struct az_buf *b)
{
	const char *sep = "";

	for (size_t i = 0; i < _conf->domain_count; i++) {
		const struct conf_domain *d = &_conf->domains[i];

		if (d->size->rdma == RDMA_NONE)
			continue;
		buf_printf(b, "%s%s (%s, %zu nodes)", sep, d->name,
		           d->size->feature, d->node_count);
		sep = ", ";
	}
	if (!*sep)
		buf_puts(b, "none");
}

static void _placement_free(struct placement *pl)
{
	free(pl->candidate);
	free(pl->domains);
}

/* The profile of d's nodes for this job: of the image it asks, else d's. */
static const struct conf_mpi_profile *
_domain_profile(const struct job_ask *ask, const struct conf_domain *d)
{
	const char *name;

	if (!ask->image)
		return conf_domain_mpi_profile(_conf, d);
	name = ask->image->mpi ? ask->image->mpi
	                       : mpi_profile_default_for(d->size->rdma);
	return name ? conf_mpi_profile_find(_conf, name) : NULL;
}

/* Which domains could hold the job, and the profile they share. */
static enum az_rc _place(const struct job_ask *ask, struct placement *pl)
{
	struct az_buf names = {0};

	memset(pl, 0, sizeof(*pl));
	pl->candidate = calloc(_conf->domain_count + 1, sizeof(bool));
	if (!pl->candidate)
		return AZ_ENOMEM;
	for (size_t i = 0; i < _conf->domain_count; i++) {
		const struct conf_domain *d = &_conf->domains[i];
		const struct conf_mpi_profile *p;
		uint32_t need;

		if (d->size->rdma == RDMA_NONE)
			continue;
		if (ask->names_domain && !_asks_feature(ask, d->name))
			continue;
		if (!_size_agrees(ask, d))
			continue;
		pl->matching++;
		need = _least_nodes(ask, d);
		if (!pl->largest || d->node_count > pl->largest->node_count) {
			pl->largest = d;
			pl->largest_need = need;
			pl->largest_per_node =
			        need > ask->nodes ? _tasks_per_node(ask, d) : 0;
		}
		if (need > d->node_count)
			continue;
		pl->candidate[i] = true;
		if (pl->candidates)
			buf_puts(&names, "|");
		buf_puts(&names, d->name);
		p = _domain_profile(ask, d);
		if (!pl->candidates)
			pl->profile = p;
		else if (p != pl->profile)
			pl->mixed_profiles = true;
		pl->candidates++;
	}
	if (pl->mixed_profiles)
		pl->profile = NULL;
	if (pl->candidates && !names.data)
		return AZ_ENOMEM;
	pl->domains = buf_steal(&names);
	return AZ_OK;
}

/* Reject a job no domain can ever hold; *err_msg says what would fit. */
static int _reject(const job_desc_msg_t *job, const struct job_ask *ask,
                   const struct placement *pl, char **err_msg)
{
	struct az_buf b = {0};
	int rc;

	if (!pl->matching) {
		buf_printf(&b,
		           "azrdma: no RDMA domain matches the constraint "
		           "'%s'; RDMA domains: ",
		           job->features ? job->features : "");
		_describe_domains(&b);
		rc = ESLURM_INVALID_FEATURE;
	} else {
		const struct conf_domain *d = pl->largest;

		buf_printf(&b, "azrdma: %" PRIu32 " nodes", pl->largest_need);
		if (pl->largest_per_node)
			buf_printf(&b,
			           " (%" PRIu32 " tasks at %" PRIu32 " per %s "
			           "node)",
			           ask->tasks, pl->largest_per_node,
			           d->size->feature);
		buf_printf(&b,
		           " fit in no RDMA domain: an RDMA job runs inside "
		           "one domain and the largest that matches (%s) holds "
		           "%zu nodes; ask for at most %zu nodes",
		           d->name, d->node_count, d->node_count);
		if (pl->largest_per_node)
			buf_printf(&b, " or %" PRIu64 " tasks",
			           (uint64_t)d->node_count
			                   * pl->largest_per_node);
		rc = ESLURM_INVALID_NODE_COUNT;
	}
	if (b.data) {
		log_info("rejected job of uid %" PRIu32 ": %s", job->user_id,
		         b.data + strlen("azrdma: "));
		_user_msg(err_msg, b.data);
	}
	buf_free(&b);
	return rc;
}

/*
 * Keep only the first candidate.  Node features under an OR or brackets
 * cannot take an image feature (node_features/azrdma refuses them: a
 * reboot to an image needs a plain AND), so such a job gets one domain.
 */
static enum az_rc _narrow(const struct job_ask *ask, struct placement *pl)
{
	for (size_t i = 0; i < _conf->domain_count; i++) {
		if (!pl->candidate[i])
			continue;
		free(pl->domains);
		pl->domains = strdup(_conf->domains[i].name);
		if (!pl->domains)
			return AZ_ENOMEM;
		memset(pl->candidate, 0, _conf->domain_count * sizeof(bool));
		pl->candidate[i] = true;
		pl->candidates = 1;
		pl->profile = _domain_profile(ask, &_conf->domains[i]);
		pl->mixed_profiles = false;
		pl->narrowed = true;
		break;
	}
	return AZ_OK;
}

/* Keep the job's nodes in one of the candidate domains. */
static enum az_rc _constrain(job_desc_msg_t *job, const struct placement *pl)
{
	struct az_buf b = {0};
	const char *user = job->features;
	bool user_or = user && strchr(user, '|');

	if (user && *user)
		buf_printf(&b, user_or ? "(%s)&" : "%s&", user);
	if (pl->candidates > 1)
		buf_printf(&b, "[%s]", pl->domains);
	else
		buf_puts(&b, pl->domains);
	if (!b.data)
		return AZ_ENOMEM;
	slurm_xfree((void **)&job->features);
	job->features = slurm_xstrdup(b.data);
	buf_free(&b);
	return AZ_OK;
}

/*
 * The profile asked for with --rdma-env (NULL for auto); *off when it was
 * "off".  An unknown name leaves *unknown pointing at it.
 */
static const struct conf_mpi_profile *
_asked_profile(const job_desc_msg_t *job, bool *off, const char **unknown)
{
	const char *v = _env_get(job->spank_job_env, job->spank_job_env_size,
	                         RDMA_ENV_SPANK);
	const struct conf_mpi_profile *p;

	*off = false;
	*unknown = NULL;
	if (!v)
		v = _env_get(job->spank_job_env, job->spank_job_env_size,
		             "SPANK_" RDMA_ENV_SPANK);
	if (!v)
		v = _env_get(job->environment, job->env_size, RDMA_ENV_OPTION);
	if (!v || !*v || !strcmp(v, "auto"))
		return NULL;
	if (!strcmp(v, "off")) {
		*off = true;
		return NULL;
	}
	p = conf_mpi_profile_find(_conf, v);
	if (!p)
		*unknown = v;
	return p;
}

/*
 * Put profile p into a batch job's environment, never replacing what the
 * user set.  Counts what was set and what was kept.
 */
static void _inject_env(job_desc_msg_t *job, const struct conf_mpi_profile *p,
                        size_t *set, size_t *kept)
{
	*set = *kept = 0;
	/* An interactive job has no environment here; spank/azrdma's work. */
	if (!job->environment || !job->env_size)
		return;
	for (size_t i = 0; i < p->env_count; i++) {
		const char *eq = strchr(p->env[i], '=');

		if (!eq)
			continue;
		if (_env_put_n(&job->environment, &job->env_size, p->env[i],
		               (size_t)(eq - p->env[i]), eq + 1, false))
			(*set)++;
		else
			(*kept)++;
	}
	_env_put(&job->environment, &job->env_size, PROFILE_VAR, p->name,
	         false);
}

/* Locks: read config, job, node, partition (held by the caller). */
extern int job_submit(job_desc_msg_t *job_desc, uint32_t submit_uid,
                      char **err_msg)
{
	struct job_ask ask;
	struct placement pl = {0};
	const struct conf_mpi_profile *profile;
	const char *unknown, *env_what;
	struct az_buf msg = {0};
	bool off, rewrite;
	size_t set = 0, kept = 0;
	int rc = SLURM_SUCCESS;

	if (!_conf || !job_desc)
		return SLURM_SUCCESS;
	if (_ask_read(job_desc, &ask) != AZ_OK)
		goto nomem;
	if (!ask.rdma_feature && !_rdma_partition(job_desc->partition))
		goto out;

	profile = _asked_profile(job_desc, &off, &unknown);
	if (unknown) {
		buf_printf(&msg,
		           "azrdma: --rdma-env=%s: no such MPI profile; use "
		           "auto, off or a profile of azrdma.conf",
		           unknown);
		_user_msg(err_msg, msg.data);
		rc = ESLURM_NOT_SUPPORTED;
		goto out;
	}
	if (_place(&ask, &pl) != AZ_OK)
		goto nomem;
	if (!pl.candidates) {
		rc = _reject(job_desc, &ask, &pl, err_msg);
		goto out;
	}

	rewrite = ask.may_span && !ask.names_domain && !ask.has_brackets;
	if (rewrite && ask.names_image && pl.candidates > 1
	    && _narrow(&ask, &pl) != AZ_OK)
		goto nomem;
	if (rewrite && _constrain(job_desc, &pl) != AZ_OK)
		goto nomem;

	if (!off && !profile)
		profile = pl.profile;
	if (off)
		env_what = "off";
	else if (profile)
		env_what = profile->name;
	else
		env_what = "from each node's domain";
	if (profile)
		_inject_env(job_desc, profile, &set, &kept);
	_env_put(&job_desc->spank_job_env, &job_desc->spank_job_env_size,
	         SPANK_PROFILE_VAR,
	         off       ? "off"
	         : profile ? profile->name
	                   : "auto",
	         true);
	_env_put(&job_desc->spank_job_env, &job_desc->spank_job_env_size,
	         SPANK_DOMAINS_VAR, pl.domains, true);

	log_info("job '%s' of uid %" PRIu32 ": %s %s, features '%s', MPI env %s"
	         " (%zu set, %zu kept from the user)",
	         job_desc->name ? job_desc->name : "", job_desc->user_id,
	         pl.candidates > 1 ? "domains" : "domain", pl.domains,
	         job_desc->features ? job_desc->features : "", env_what, set,
	         kept);
	buf_printf(&msg, "azrdma: %s %s%s, MPI env %s",
	           pl.candidates > 1 ? "domains" : "domain", pl.domains,
	           pl.narrowed ? " (the first that fits: an image feature "
	                         "takes one domain; add -C <domain> to choose)"
	           : rewrite || !ask.may_span ? ""
	                                      : " (as asked)",
	           env_what);
	if (kept)
		buf_printf(&msg, " (%zu of your settings kept)", kept);
	if (msg.data)
		_user_msg(err_msg, msg.data);
	goto out;

nomem:
	log_error("out of memory");
	rc = SLURM_ERROR;
out:
	buf_free(&msg);
	_placement_free(&pl);
	_ask_free(&ask);
	return rc;
}

/*
 * Locks: read config, job, node, partition (held by the caller).
 * A change of a pending job's constraint is not re-placed: the job record
 * is opaque to an out-of-tree plugin, so its node count is unknown here.
 */
extern int job_modify(job_desc_msg_t *job_desc, job_record_t *job_ptr,
                      uint32_t submit_uid)
{
	return SLURM_SUCCESS;
}
