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
 *    SPANK_AZRDMA_DOMAINS; an interactive job's profile variables too, in
 *    SPANK_AZRDMA_MPI_ENV), logged, and told to the user in one line.
 *
 * The RDMA components of a heterogeneous job share one domain (see
 * struct het_state).  job_modify checks an update that changes placement
 * with the same rules, on the job record with the update over it.
 *
 * srun and salloc jobs carry no environment here (a job_submit plugin
 * never sees it in 22.05); spank/azrdma applies the profile in their tasks.
 *
 * The submit path is kept cheap: what azrdma.conf gives is computed once
 * per load (azrdma.conf is reloaded when it changes), a call allocates
 * only what Slurm frees later (features, environment, spank_job_env,
 * err_msg, with Slurm's allocator), and nothing is formatted for a log
 * level Slurm drops.  No lock is taken: the caller holds read locks on
 * config, job, node and partition, and calls are serialized.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "buf.h"
#include "conf.h"
#include "feature_set.h"
#include "js_env.h"
#include "log.h"
#include "mpi_profile.h"
#include "sl_compat.h"
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
#define SPANK_PROFILE_VAR "SPANK_AZRDMA_MPI_PROFILE"
#define SPANK_DOMAINS_VAR "SPANK_AZRDMA_DOMAINS"

/* Feature names one constraint may hold; more is refused, not truncated. */
#define MAX_NAMES 64
/* Longer names are none of azrdma's (domain, size, image) features. */
#define NAME_LEN 128
#define NO_DOMAIN ((size_t)-1)

/*
 * The loaded azrdma.conf and what the submit path needs of it, computed
 * once per load so that a call allocates nothing of its own.  The scratch
 * parts serve one call at a time: slurmctld serializes job_submit and
 * job_modify calls under its plugin context lock.
 */
struct js_state {
	struct azrdma_conf *conf;
	const struct conf_mpi_profile **profile; /* per domain, its image's */
	bool *candidate;                         /* per domain (scratch) */
	char *names;                             /* "hb0|hb1" (scratch) */
	struct stat file;  /* azrdma.conf when it was loaded */
	time_t checked;    /* last second the file was looked at */
	unsigned generation;
};

static struct js_state _st;

/*
 * Slurmctld's own copy of a job record into a job descriptor (exported by
 * the daemon; see job_modify).  NULL where the daemon does not export it.
 */
typedef job_desc_msg_t *(*job_reader_fn)(job_record_t *);
typedef void (*job_desc_free_fn)(job_desc_msg_t *);
static job_reader_fn _read_job;
static job_desc_free_fn _free_job_desc;

/* One feature name of a constraint, and what it is to azrdma. */
struct name_ref {
	const char *s; /* into the constraint, not NUL-terminated */
	size_t len;
	size_t domain; /* index of the domain of this name, or NO_DOMAIN */
	const struct vm_size *size; /* the VM size it names, or NULL */
};

/* What a job asks for, as far as placement goes. */
struct job_ask {
	struct name_ref names[MAX_NAMES];
	size_t count;
	bool too_many;     /* more than MAX_NAMES names */
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

/* The fields of a job descriptor placement reads. */
struct job_view {
	const char *features;
	const char *partition;
	uint32_t min_nodes, max_nodes, num_tasks;
	uint16_t ntasks_per_node, cpus_per_task;
	uint8_t overcommit;
};

/* The outcome for one RDMA job. */
struct placement {
	size_t candidates;
	size_t matching; /* domains whose features agree, any size */
	const struct conf_domain *largest; /* the largest of those */
	uint32_t largest_need;             /* nodes the job needs there */
	uint32_t largest_per_node;         /* tasks per node there, 0: by -N */
	size_t first;   /* the first candidate */
	size_t biggest; /* the candidate with the most nodes */
	const struct conf_mpi_profile *profile;
	bool mixed_profiles; /* candidates use different profiles */
	bool narrowed;       /* cut to one domain */
	const char *domains; /* "hb0|hb1": the scratch or a domain's name */
};

/*
 * The RDMA components of a heterogeneous job share one domain.  slurmctld
 * runs job_submit for a hetjob's components in order (het_job_offset 0,
 * 1, ...) in the one thread serving the submit RPC, so that thread keeps
 * the domain chosen for the first RDMA component and the nodes the
 * components so far take there.  Offset 0 starts afresh.
 */
struct het_state {
	bool pinned;
	unsigned generation; /* of _st when pinned */
	size_t domain;
	uint32_t used;
	uint32_t first_offset; /* the component that chose the domain */
};

static __thread struct het_state _het;

static void _state_clear(void)
{
	conf_free(_st.conf);
	free(_st.profile);
	free(_st.candidate);
	free(_st.names);
	_st.conf = NULL;
	_st.profile = NULL;
	_st.candidate = NULL;
	_st.names = NULL;
}

/* Take conf (owned from now on) as the configuration in use. */
static bool _state_set(struct azrdma_conf *conf, const struct stat *file)
{
	size_t n = conf->domain_count, names = 1;
	const struct conf_mpi_profile **profile = calloc(n + 1, sizeof(*profile));
	bool *candidate = calloc(n + 1, sizeof(bool));
	char *buf;

	for (size_t i = 0; i < n; i++)
		names += strlen(conf->domains[i].name) + 1;
	buf = malloc(names);
	if (!profile || !candidate || !buf) {
		free(profile);
		free(candidate);
		free(buf);
		conf_free(conf);
		log_error("out of memory");
		return false;
	}
	for (size_t i = 0; i < n; i++)
		profile[i] = conf_domain_mpi_profile(conf, &conf->domains[i]);
	_state_clear();
	_st.conf = conf;
	_st.profile = profile;
	_st.candidate = candidate;
	_st.names = buf;
	if (file)
		_st.file = *file;
	else
		memset(&_st.file, 0, sizeof(_st.file));
	_st.generation++;
	return true;
}

static bool _same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev
	       && a->st_size == b->st_size
	       && a->st_mtim.tv_sec == b->st_mtim.tv_sec
	       && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * Reload azrdma.conf when it changed (looked at once a second at most):
 * slurmctld reloads a job_submit plugin only when JobSubmitPlugins changes.
 * An unusable new file leaves the one loaded before in use.
 */
static void _reload_if_changed(void)
{
	struct stat file;
	struct azrdma_conf *conf;

	if (stat(_st.conf->path, &file) || _same_file(&file, &_st.file))
		return;
	conf = sl_plugin_conf_load();
	if (!conf) {
		log_error("%s changed and is unusable; the configuration loaded "
		          "before stays in use",
		          _st.conf->path);
		_st.file = file;
		return;
	}
	if (_state_set(conf, &file))
		log_info("reloaded %s: %zu domains, %zu images", conf->path,
		         conf->domain_count, conf->image_count);
}

/* Once a second at most: the log level, and azrdma.conf if it changed. */
static void _tick(void)
{
	time_t now = time(NULL);

	if (now == _st.checked)
		return;
	_st.checked = now;
	sl_plugin_log_sync();
	_reload_if_changed();
}

extern int init(void)
{
	struct azrdma_conf *conf;
	struct stat file;

	sl_plugin_log_init(plugin_type);
	conf = sl_plugin_conf_load();
	if (!conf)
		return SLURM_ERROR;
	if (!_state_set(conf, stat(conf->path, &file) ? NULL : &file))
		return SLURM_ERROR;
	_st.checked = time(NULL);
	_read_job = (job_reader_fn)dlsym(RTLD_DEFAULT,
	                                 "copy_job_record_to_job_desc");
	_free_job_desc = (job_desc_free_fn)dlsym(RTLD_DEFAULT,
	                                         "slurm_free_job_desc_msg");
	if (!_read_job || !_free_job_desc)
		_read_job = NULL;
	log_verbose("loaded %s: %zu domains, %zu images%s", conf->path,
	            conf->domain_count, conf->image_count,
	            _read_job ? "" : "; job records unreadable here, so "
	                             "job_modify checks updates alone");
	return SLURM_SUCCESS;
}

extern int fini(void)
{
	_state_clear();
	return SLURM_SUCCESS;
}

/*
 * For the unit tests, which run without slurmctld: how job_modify reads a
 * job record.  Not part of the plugin API; slurmctld never calls it.
 */
extern void azrdma_job_submit_set_job_reader(job_reader_fn reader,
                                             job_desc_free_fn free_fn)
{
	_read_job = reader;
	_free_job_desc = free_fn;
}

/* What one feature name is to azrdma; NAME_LEN-long names are nothing. */
static void _classify(struct job_ask *ask, struct name_ref *r)
{
	const struct azrdma_conf *c = _st.conf;
	const struct conf_image *img = NULL;
	char name[NAME_LEN];

	r->domain = NO_DOMAIN;
	r->size = NULL;
	if (r->len >= sizeof(name))
		return;
	memcpy(name, r->s, r->len);
	name[r->len] = '\0';
	if (!strcmp(name, RDMA_FEATURE)) {
		ask->rdma_feature = true;
		return;
	}
	for (size_t i = 0; i < c->domain_count; i++)
		if (!strcmp(c->domains[i].name, name)) {
			r->domain = i;
			ask->names_domain = true;
			break;
		}
	if (feature_is_image(c, name, &img)) {
		ask->names_image = true;
		if (!ask->image)
			ask->image = img;
	} else if (!conf_domain_find(c, name)) {
		r->size = catalog_find(c->catalog, name);
		if (r->size)
			ask->names_size = true;
	}
}

/* The feature names of a constraint such as "rdma&[hb0|hb1]*2". */
static void _split_features(const char *expr, struct job_ask *ask)
{
	const char *cursor = expr;
	struct feature_name f;

	while (feature_next_name(expr, &cursor, &f)) {
		if (ask->count == MAX_NAMES) {
			ask->too_many = true;
			return;
		}
		ask->names[ask->count] = (struct name_ref){.s = f.s,
		                                           .len = f.len};
		_classify(ask, &ask->names[ask->count]);
		ask->count++;
	}
}

static bool _asks_domain(const struct job_ask *ask, size_t d)
{
	for (size_t i = 0; i < ask->count; i++)
		if (ask->names[i].domain == d)
			return true;
	return false;
}

/* Does the job's size feature, if it names any, match domain d's size? */
static bool _size_agrees(const struct job_ask *ask, const struct conf_domain *d)
{
	if (!ask->names_size)
		return true;
	for (size_t i = 0; i < ask->count; i++)
		if (ask->names[i].size == d->size)
			return true;
	return false;
}

static bool _set(uint32_t v)
{
	return v != NO_VAL && v != 0;
}

static struct job_view _view_of(const job_desc_msg_t *job)
{
	return (struct job_view){
	        .features = job->features,
	        .partition = job->partition,
	        .min_nodes = job->min_nodes,
	        .max_nodes = job->max_nodes,
	        .num_tasks = job->num_tasks,
	        .ntasks_per_node = job->ntasks_per_node,
	        .cpus_per_task = job->cpus_per_task,
	        .overcommit = job->overcommit,
	};
}

static void _ask_read(const struct job_view *job, struct job_ask *ask)
{
	ask->count = 0;
	ask->too_many = ask->rdma_feature = ask->names_domain = false;
	ask->names_size = ask->names_image = false;
	ask->image = NULL;
	_split_features(job->features, ask);
	ask->has_brackets = job->features && strchr(job->features, '[');
	ask->nodes = _set(job->min_nodes) ? job->min_nodes : 1;
	ask->may_span = job->max_nodes != 1;
	ask->tasks = _set(job->num_tasks) ? job->num_tasks : 0;
	ask->tasks_per_node =
	        job->ntasks_per_node != NO_VAL16 ? job->ntasks_per_node : 0;
	ask->cpus_per_task =
	        job->cpus_per_task != NO_VAL16 && job->cpus_per_task
	                ? job->cpus_per_task
	                : 1;
	ask->overcommit = job->overcommit && job->overcommit != NO_VAL8;
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
	const struct azrdma_conf *c = _st.conf;
	const char *p = partitions;

	if (!c->rdma_partition_count)
		return false;
	while (p && *p) {
		size_t len = strcspn(p, ",");

		for (size_t i = 0; i < c->rdma_partition_count; i++)
			if (!strncmp(c->rdma_partitions[i], p, len)
			    && c->rdma_partitions[i][len] == '\0')
				return true;
		p += len;
		if (*p)
			p++;
	}
	return false;
}

/*
 * The partition slurmctld gives a job that names none: its default
 * partition, slurm.conf's Default=YES (NULL when there is none).  A site's
 * users mostly give no -p, so RdmaPartitions= naming the default partition
 * must see them.  job_submit runs inside slurmctld with the partition read
 * lock held, which guards default_part_name (an exported global of every
 * release 22.05 .. 26.05); it is looked up at run time so that the plugin
 * loads in any process.
 */
static const char *_default_partition(void)
{
	char **name = (char **)dlsym(RTLD_DEFAULT, "default_part_name");

	return name ? *name : NULL;
}

/*
 * Append line to the user message (several plugins may share it): the
 * concatenation of parts, one Slurm allocation.
 */
static void _user_msg(char **err_msg, const char *const *parts, size_t count)
{
	const char *all[16];
	size_t n = 0;

	if (!err_msg || count > 14)
		return;
	if (*err_msg && **err_msg) {
		all[n++] = *err_msg;
		all[n++] = "\n";
	}
	for (size_t i = 0; i < count; i++)
		all[n++] = parts[i];
	{
		char *joined = js_xconcat(all, n);

		slurm_xfree((void **)err_msg);
		*err_msg = joined;
	}
}

static void _user_line(char **err_msg, const char *line)
{
	_user_msg(err_msg, &line, 1);
}

/* "hb0 (hb120rs_v3, 100 nodes), hb1 (...)": every RDMA domain. */
static void _describe_domains(struct az_buf *b)
{
	const struct azrdma_conf *c = _st.conf;
	const char *sep = "";

	for (size_t i = 0; i < c->domain_count; i++) {
		const struct conf_domain *d = &c->domains[i];

		if (d->size->rdma == RDMA_NONE)
			continue;
		buf_printf(b, "%s%s (%s, %zu nodes)", sep, d->name,
		           d->size->feature, d->node_count);
		sep = ", ";
	}
	if (!*sep)
		buf_puts(b, "none");
}

/* The profile of d's nodes for this job: of the image it asks, else d's. */
static const struct conf_mpi_profile *_domain_profile(const struct job_ask *ask,
                                                      size_t d)
{
	const char *name;

	if (!ask->image)
		return _st.profile[d];
	name = ask->image->mpi
	               ? ask->image->mpi
	               : mpi_profile_default_for(_st.conf->domains[d].size->rdma);
	return name ? conf_mpi_profile_find(_st.conf, name) : NULL;
}

/*
 * Which domains could hold the job, and the profile they share.  With
 * only != NO_DOMAIN, that domain alone, of which used nodes are taken.
 */
static void _place(const struct job_ask *ask, size_t only, uint32_t used,
                   struct placement *pl)
{
	const struct azrdma_conf *c = _st.conf;
	char *names = _st.names;

	memset(pl, 0, sizeof(*pl));
	pl->first = pl->biggest = NO_DOMAIN;
	for (size_t i = 0; i < c->domain_count; i++) {
		const struct conf_domain *d = &c->domains[i];
		const struct conf_mpi_profile *p;
		uint32_t need;
		size_t len;

		_st.candidate[i] = false;
		if (d->size->rdma == RDMA_NONE)
			continue;
		if (only != NO_DOMAIN && i != only)
			continue;
		if (ask->names_domain && !_asks_domain(ask, i))
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
		if ((uint64_t)need + used > d->node_count)
			continue;
		_st.candidate[i] = true;
		if (pl->candidates)
			*names++ = '|';
		len = strlen(d->name);
		memcpy(names, d->name, len);
		names += len;
		p = _domain_profile(ask, i);
		if (!pl->candidates) {
			pl->profile = p;
			pl->first = i;
		} else if (p != pl->profile) {
			pl->mixed_profiles = true;
		}
		if (pl->biggest == NO_DOMAIN
		    || d->node_count > c->domains[pl->biggest].node_count)
			pl->biggest = i;
		pl->candidates++;
	}
	*names = '\0';
	if (pl->mixed_profiles)
		pl->profile = NULL;
	pl->domains = _st.names;
}

/* Keep only candidate d (its name becomes the domains). */
static void _narrow(const struct job_ask *ask, struct placement *pl, size_t d)
{
	pl->domains = _st.conf->domains[d].name;
	pl->candidates = 1;
	pl->first = pl->biggest = d;
	pl->profile = _domain_profile(ask, d);
	pl->mixed_profiles = false;
	pl->narrowed = true;
}

/*
 * Why no domain can ever hold the job, with what would fit; *code gets
 * the Slurm error.  NULL when out of memory.  Free with free().
 */
static char *_why_not(const struct job_view *job, const struct job_ask *ask,
                      const struct placement *pl, int *code)
{
	struct az_buf b = {0};

	if (ask->too_many) {
		buf_printf(&b,
		           "azrdma: the constraint names more than %d "
		           "features; azrdma places constraints of at most %d",
		           MAX_NAMES, MAX_NAMES);
		*code = ESLURM_INVALID_FEATURE;
	} else if (!pl->matching) {
		buf_printf(&b,
		           "azrdma: no RDMA domain matches the constraint "
		           "'%s'; RDMA domains: ",
		           job->features ? job->features : "");
		_describe_domains(&b);
		*code = ESLURM_INVALID_FEATURE;
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
		*code = ESLURM_INVALID_NODE_COUNT;
	}
	return buf_steal(&b);
}

/* The same for a hetjob component that does not fit the pinned domain. */
static char *_why_not_het(const job_desc_msg_t *job, const struct job_ask *ask,
                          const struct placement *pl, int *code)
{
	const struct conf_domain *d = &_st.conf->domains[_het.domain];
	struct az_buf b = {0};

	if (ask->too_many || !pl->matching) {
		buf_printf(&b,
		           "azrdma: hetjob component %" PRIu32 " asks for '%s', "
		           "which domain %s of component %" PRIu32
		           " does not match; the RDMA components of a hetjob "
		           "run in one domain",
		           job->het_job_offset,
		           job->features ? job->features : "", d->name,
		           _het.first_offset);
		*code = ESLURM_INVALID_FEATURE;
	} else {
		uint32_t left = d->node_count > _het.used
		                        ? (uint32_t)d->node_count - _het.used
		                        : 0;

		buf_printf(&b,
		           "azrdma: hetjob component %" PRIu32 " needs %" PRIu32
		           " nodes of domain %s, where the components before it "
		           "leave %" PRIu32 " of its %zu nodes; the RDMA "
		           "components of a hetjob run in one domain, so ask for "
		           "at most %" PRIu32 " nodes in all",
		           job->het_job_offset, pl->largest_need, d->name, left,
		           d->node_count, left);
		*code = ESLURM_INVALID_NODE_COUNT;
	}
	return buf_steal(&b);
}

/* Keep the job's nodes in the candidate domains: "user&[hb0|hb1]". */
static void _constrain(job_desc_msg_t *job, const struct placement *pl)
{
	const char *user = job->features;
	const char *parts[6];
	size_t n = 0;
	char *joined;

	if (user && *user) {
		bool user_or = strchr(user, '|');

		if (user_or)
			parts[n++] = "(";
		parts[n++] = user;
		parts[n++] = user_or ? ")&" : "&";
	}
	if (pl->candidates > 1) {
		parts[n++] = "[";
		parts[n++] = pl->domains;
		parts[n++] = "]";
	} else {
		parts[n++] = pl->domains;
	}
	joined = js_xconcat(parts, n);
	slurm_xfree((void **)&job->features);
	job->features = joined;
}

/*
 * The profile asked for with --rdma-env (NULL for auto); *off when it was
 * "off".  An unknown name leaves *unknown pointing at it.
 */
static const struct conf_mpi_profile *
_asked_profile(const job_desc_msg_t *job, bool *off, const char **unknown)
{
	const char *v = NULL;
	const struct conf_mpi_profile *p;

	*off = false;
	*unknown = NULL;
	if (job->spank_job_env_size) {
		v = js_env_get(job->spank_job_env, job->spank_job_env_size,
		               RDMA_ENV_SPANK);
		if (!v)
			v = js_env_get(job->spank_job_env,
			               job->spank_job_env_size,
			               "SPANK_" RDMA_ENV_SPANK);
	}
	if (!v)
		v = js_env_get(job->environment, job->env_size,
		               RDMA_ENV_OPTION);
	if (!v || !*v || !strcmp(v, "auto"))
		return NULL;
	if (!strcmp(v, "off")) {
		*off = true;
		return NULL;
	}
	p = conf_mpi_profile_find(_st.conf, v);
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
	/* The profile's variables, then its name; one pass per 32. */
	struct js_var vars[32];
	bool wrote[32];
	size_t n = 0;

	*set = *kept = 0;
	/* An interactive job has no environment here; spank/azrdma's work. */
	if (!job->environment || !job->env_size)
		return;
	for (size_t i = 0; i <= p->env_count; i++) {
		const char *eq = i < p->env_count ? strchr(p->env[i], '=')
		                                  : NULL;

		if (eq)
			vars[n++] = (struct js_var){p->env[i],
			                            (size_t)(eq - p->env[i]),
			                            eq + 1};
		if (i == p->env_count)
			vars[n++] = (struct js_var){MPI_PROFILE_VAR,
			                            strlen(MPI_PROFILE_VAR),
			                            p->name};
		if (n == sizeof(vars) / sizeof(vars[0]) || i == p->env_count) {
			js_env_merge(&job->environment, &job->env_size, vars,
			             n, false, wrote);
			for (size_t k = 0; k < n; k++) {
				if (i == p->env_count && k == n - 1)
					break; /* the name is not counted */
				if (wrote[k])
					(*set)++;
				else
					(*kept)++;
			}
			n = 0;
		}
	}
}

/*
 * Record the profile and the domains in the job for spank/azrdma.  An
 * interactive job also gets the profile's variables: on a node without
 * azrdma.conf (configless Slurm) spank/azrdma's job prolog keeps them for
 * the steps, which see nothing of spank_job_env themselves.  A batch job's
 * steps inherit them from its environment.  "" replaces whatever a job
 * brought under that name.
 */
static void _record(job_desc_msg_t *job, const char *profile,
                    const char *domains, const struct conf_mpi_profile *p)
{
	/* Interactive: no environment, as _inject_env() tells them apart. */
	bool interactive = !job->environment || !job->env_size;
	char *text = p && interactive ? mpi_profile_env_text(p) : NULL;
	const struct js_var vars[3] = {
	        {SPANK_PROFILE_VAR, strlen(SPANK_PROFILE_VAR), profile},
	        {SPANK_DOMAINS_VAR, strlen(SPANK_DOMAINS_VAR), domains},
	        {MPI_PROFILE_RECORD_VAR, strlen(MPI_PROFILE_RECORD_VAR), text ? text : ""},
	};

	js_env_merge(&job->spank_job_env, &job->spank_job_env_size, vars, 3,
	             true, NULL);
	free(text);
}

/* Refuse with why; for job_submit the user is told (err_msg). */
static int _refuse(char *why, int code, const char *what, uint32_t uid,
                   char **err_msg)
{
	if (!why) {
		log_error("out of memory");
		return SLURM_ERROR;
	}
	log_info("%s of uid %" PRIu32 " refused: %s", what, uid,
	         why + strlen("azrdma: "));
	_user_line(err_msg, why);
	free(why);
	return code;
}

/*
 * An image feature can have idle nodes' VMs deleted and re-created: only
 * root, SlurmUser (whom slurmctld runs as) and AllowUserBoot's users may
 * ask one, whatever the partition; node_features/azrdma answers Slurm the
 * same.  Returns 0, or the Slurm error with the user told why.
 */
static int _image_allowed(const struct job_ask *ask, uint32_t owner,
                          const char *what, char **err_msg)
{
	char *why;

	if (!ask->names_image
	    || conf_user_may_boot(_st.conf, owner, (uint32_t)geteuid()))
		return 0;
	if (asprintf(&why,
	             "azrdma: image %s is asked (-C img_...), and only root, "
	             "SlurmUser and the users AllowUserBoot of azrdma.conf "
	             "names may have nodes booted into another image; submit "
	             "without the img_ feature (the nodes keep their image), "
	             "or ask an administrator",
	             ask->image ? ask->image->name : "(unknown)")
	    < 0)
		why = NULL;
	return _refuse(why, ESLURM_ACCESS_DENIED, what, owner, err_msg);
}

/*
 * A hetjob component with RDMA intent: the first goes to the candidate
 * with the most nodes (room for the components after it), the others to
 * that domain if it still holds them.  Returns 0 or the Slurm error.
 */
static int _place_het(job_desc_msg_t *job, const struct job_ask *ask,
                      struct placement *pl, char **err_msg)
{
	char *why;
	int code;

	if (_het.pinned && _het.generation != _st.generation) {
		/* azrdma.conf was reloaded between two components. */
		log_warn("hetjob component %" PRIu32 " of uid %" PRIu32
		         ": azrdma.conf changed since component %" PRIu32
		         "; placing it on its own",
		         job->het_job_offset, job->user_id, _het.first_offset);
		_het.pinned = false;
	}
	if (!_het.pinned) {
		_place(ask, NO_DOMAIN, 0, pl);
		if (!pl->candidates) {
			int rc;

			why = _why_not(&(struct job_view){.features = job->features},
			               ask, pl, &code);
			rc = _refuse(why, code, "job", job->user_id, err_msg);
			return rc;
		}
		_narrow(ask, pl, pl->biggest);
		_het = (struct het_state){
		        .pinned = true,
		        .generation = _st.generation,
		        .domain = pl->biggest,
		        .used = _least_nodes(ask, &_st.conf->domains[pl->biggest]),
		        .first_offset = job->het_job_offset,
		};
		return 0;
	}
	_place(ask, _het.domain, _het.used, pl);
	if (!pl->candidates) {
		why = _why_not_het(job, ask, pl, &code);
		return _refuse(why, code, "hetjob", job->user_id, err_msg);
	}
	_narrow(ask, pl, _het.domain);
	_het.used += _least_nodes(ask, &_st.conf->domains[_het.domain]);
	return 0;
}

/* Locks: read config, job, node, partition (held by the caller). */
extern int job_submit(job_desc_msg_t *job_desc, uint32_t submit_uid,
                      char **err_msg)
{
	struct job_ask ask;
	struct job_view view;
	struct placement pl;
	const struct conf_mpi_profile *profile;
	const char *unknown, *env_what, *suffix = "";
	char kept_note[64] = "";
	bool off, rewrite, het;
	size_t set = 0, kept = 0;

	if (!_st.conf || !job_desc)
		return SLURM_SUCCESS;
	_tick();
	het = job_desc->het_job_offset != NO_VAL;
	if (het && job_desc->het_job_offset == 0)
		memset(&_het, 0, sizeof(_het));
	view = _view_of(job_desc);
	_ask_read(&view, &ask);
	if (_image_allowed(&ask, job_desc->user_id, "job", err_msg))
		return ESLURM_ACCESS_DENIED;
	if (!ask.rdma_feature
	    && !_rdma_partition(job_desc->partition ? job_desc->partition
	                                            : _default_partition()))
		return SLURM_SUCCESS;

	profile = _asked_profile(job_desc, &off, &unknown);
	if (unknown) {
		const char *parts[] = {"azrdma: --rdma-env=", unknown,
		                       ": no such MPI profile; use auto, off or "
		                       "a profile of azrdma.conf"};

		_user_msg(err_msg, parts, 3);
		return ESLURM_NOT_SUPPORTED;
	}
	if (ask.too_many) {
		int code;
		char *why = _why_not(&view, &ask, NULL, &code);

		return _refuse(why, code, "job", job_desc->user_id, err_msg);
	}

	if (het) {
		int rc = _place_het(job_desc, &ask, &pl, err_msg);

		if (rc)
			return rc;
		rewrite = !ask.names_domain || ask.has_brackets;
		suffix = " (one domain for every RDMA component of the hetjob)";
	} else {
		_place(&ask, NO_DOMAIN, 0, &pl);
		if (!pl.candidates) {
			int code;
			char *why = _why_not(&view, &ask, &pl, &code);

			return _refuse(why, code, "job", job_desc->user_id,
			               err_msg);
		}
		rewrite = ask.may_span && !ask.names_domain
		          && !ask.has_brackets;
		if (rewrite && ask.names_image && pl.candidates > 1)
			_narrow(&ask, &pl, pl.first);
		if (pl.narrowed)
			suffix = " (the first that fits: an image feature "
			         "takes one domain; add -C <domain> to choose)";
		else if (!rewrite && ask.may_span)
			suffix = " (as asked)";
	}
	if (rewrite)
		_constrain(job_desc, &pl);

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
	_record(job_desc,
	        off       ? "off"
	        : profile ? profile->name
	                  : "auto",
	        pl.domains, off ? NULL : profile);

	/*
	 * Routine, and one more line per job than Slurm's own: at verbose
	 * (SlurmctldDebug=verbose), so that at info nothing is formatted.
	 * The user is told in any case, and spank_job_env records it.
	 */
	log_verbose("job '%s' of uid %" PRIu32 ": %s %s, features '%s', MPI env %s"
	         " (%zu set, %zu kept from the user)",
	         job_desc->name ? job_desc->name : "", job_desc->user_id,
	         pl.candidates > 1 ? "domains" : "domain", pl.domains,
	         job_desc->features ? job_desc->features : "", env_what, set,
	         kept);
	if (kept)
		snprintf(kept_note, sizeof(kept_note),
		         " (%zu of your settings kept)", kept);
	{
		const char *parts[] = {
		        "azrdma: ",
		        pl.candidates > 1 ? "domains " : "domain ",
		        pl.domains,
		        suffix,
		        ", MPI env ",
		        env_what,
		        kept_note,
		};

		_user_msg(err_msg, parts, sizeof(parts) / sizeof(parts[0]));
	}
	return SLURM_SUCCESS;
}

/*
 * Free what copy_job_record_to_job_desc() made.  Its environment is one
 * block, read from the job's file, with the array pointing into it: free
 * the block and the array, then the rest as any descriptor (slurmctld's
 * own caller, in fed_mgr.c, does the same).
 */
static void _free_read_job(job_desc_msg_t *job)
{
	if (job->environment) {
		slurm_xfree((void **)&job->environment[0]);
		slurm_xfree((void **)&job->environment);
	}
	job->env_size = 0;
	_free_job_desc(job);
}

/* Does an update touch what placement reads? */
static bool _update_places(const job_desc_msg_t *u)
{
	return u->features || u->partition || u->min_nodes != NO_VAL
	       || u->max_nodes != NO_VAL || u->num_tasks != NO_VAL
	       || u->ntasks_per_node != NO_VAL16
	       || u->cpus_per_task != NO_VAL16;
}

/* The job as it will be after update u: its record, then u's fields. */
static struct job_view _view_updated(const job_desc_msg_t *cur,
                                     const job_desc_msg_t *u)
{
	struct job_view v = cur ? _view_of(cur)
	                        : (struct job_view){
	                                  .min_nodes = NO_VAL,
	                                  .max_nodes = NO_VAL,
	                                  .num_tasks = NO_VAL,
	                                  .ntasks_per_node = NO_VAL16,
	                                  .cpus_per_task = NO_VAL16,
	                                  .overcommit = NO_VAL8,
	                          };

	if (u->features)
		v.features = u->features;
	if (u->partition)
		v.partition = u->partition;
	if (u->min_nodes != NO_VAL)
		v.min_nodes = u->min_nodes;
	if (u->max_nodes != NO_VAL)
		v.max_nodes = u->max_nodes;
	if (u->num_tasks != NO_VAL)
		v.num_tasks = u->num_tasks;
	if (u->ntasks_per_node != NO_VAL16)
		v.ntasks_per_node = u->ntasks_per_node;
	if (u->cpus_per_task != NO_VAL16)
		v.cpus_per_task = u->cpus_per_task;
	return v;
}

/*
 * Locks: read config, job, node, partition (held by the caller).
 *
 * An update that changes what placement reads (constraint, node or task
 * counts, partition) is checked with the rules of job_submit, on the job
 * as it will be: its record, read through slurmctld's exported
 * copy_job_record_to_job_desc() (job_record_t is opaque here), with the
 * update's fields over it.  Where the record cannot be read, the update
 * is checked alone, which needs it to name the constraint or partition.
 * A new constraint gets the domains again, as at submit.  The user is
 * told why in err_msg where the release has it (23.02 and later); 22.05
 * has none, so there the reason goes to slurmctld's log and the user gets
 * the error code's text.
 */
static int _modify(job_desc_msg_t *job_desc, job_record_t *job_ptr,
                   uint32_t submit_uid, char **err_msg)
{
	struct job_ask ask;
	struct job_view view;
	struct placement pl;
	job_desc_msg_t *cur = NULL;
	char what[64];
	int rc = SLURM_SUCCESS;

	if (!_st.conf || !job_desc || !_update_places(job_desc))
		return SLURM_SUCCESS;
	_tick();
	if (job_ptr && _read_job)
		cur = _read_job(job_ptr);
	if (!cur && !job_desc->features && !job_desc->partition) {
		log_debug("update of job %s: its record is unreadable here and "
		          "the update names no constraint or partition; not "
		          "checked",
		          job_desc->job_id_str ? job_desc->job_id_str : "?");
		return SLURM_SUCCESS;
	}
	view = _view_updated(cur, job_desc);
	_ask_read(&view, &ask);
	/* scontrol names the job by job_id_str; the record has its id. */
	if (cur)
		snprintf(what, sizeof(what), "update of job %" PRIu32,
		         sl_job_desc_id(cur));
	else
		snprintf(what, sizeof(what), "update of job %s",
		         job_desc->job_id_str ? job_desc->job_id_str : "?");
	/* The job's owner, as Slurm asks node_features about (no record
	 * here: who updates it). */
	rc = _image_allowed(&ask, cur ? cur->user_id : submit_uid, what,
	                    err_msg);
	if (rc)
		goto out;
	if (!ask.rdma_feature && !_rdma_partition(view.partition))
		goto out;
	if (!ask.too_many)
		_place(&ask, NO_DOMAIN, 0, &pl);
	if (ask.too_many || !pl.candidates) {
		int code;
		char *why = _why_not(&view, &ask, ask.too_many ? NULL : &pl,
		                     &code);

		rc = _refuse(why, code, what, submit_uid, err_msg);
		goto out;
	}
	if (job_desc->features && ask.may_span && !ask.names_domain
	    && !ask.has_brackets) {
		if (ask.names_image && pl.candidates > 1)
			_narrow(&ask, &pl, pl.first);
		_constrain(job_desc, &pl);
		log_info("%s: features '%s'", what, job_desc->features);
	}
out:
	if (cur)
		_free_read_job(cur);
	return rc;
}

#if SL_JOB_MODIFY_HAS_ERR_MSG
extern int job_modify(job_desc_msg_t *job_desc, job_record_t *job_ptr,
                      uint32_t submit_uid, char **err_msg)
{
	return _modify(job_desc, job_ptr, submit_uid, err_msg);
}
#else
extern int job_modify(job_desc_msg_t *job_desc, job_record_t *job_ptr,
                      uint32_t submit_uid)
{
	return _modify(job_desc, job_ptr, submit_uid, NULL);
}
#endif
