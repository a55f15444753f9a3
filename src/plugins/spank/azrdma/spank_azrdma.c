/*
 * spank_azrdma.c - spank/azrdma: the MPI environment in every task.
 *
 * job_submit/azrdma gives a batch job's environment its MPI profile, but a
 * job_submit plugin never sees the environment of srun and salloc jobs.
 * This plugin runs in every task of every step (slurmstepd, remote
 * context) and sets the profile's variables there, never replacing one the
 * task already has (the user's, or what job_submit put in a batch job).
 *
 * The profile is, in this order:
 *  1. --rdma-env=<profile> (off: nothing at all);
 *  2. the job's: AZRDMA_MPI_PROFILE in the task's environment (a batch job
 *     and the steps it starts), or SPANK_AZRDMA_MPI_PROFILE that
 *     job_submit/azrdma recorded in the job's spank_job_env;
 *  3. the node's own: the Mpi= of the image it runs (NodeImageFile), else
 *     of its domain's image, else the default for the RDMA kind of the
 *     domain's VM size (azrdma.conf).
 * An InfiniBand profile that names a UCX device also gets UCX_IB_PKEY, the
 * tenant partition key of that device's port, read on the node.
 * The first task of each node also warns in the job's output when its
 * memlock limit is not unlimited, which RDMA needs.
 *
 * In srun, salloc and sbatch (local and allocator contexts) the plugin only
 * registers --rdma-env and records its value for job_submit/azrdma in the
 * job's spank_job_env (AZRDMA_RDMA_ENV); no azrdma.conf is needed there.
 *
 * A node without azrdma.conf (configless Slurm ships slurm.conf and
 * plugstack.conf, not ours) runs every job's steps.  A batch job's have the
 * profile job_submit/azrdma put in its environment.  An interactive job's
 * (srun, salloc) get the profile job_submit/azrdma recorded in its
 * spank_job_env (SPANK_AZRDMA_MPI_ENV), which reaches the job prolog but
 * not the steps, and only with PrologFlags=Alloc (else the prolog runs at
 * the first step with that step's request): the job prolog (root) keeps it
 * in JOB_ENV_DIR/<job>.<node>.env and the epilog removes it.  slurmd says once
 * in its log that the node has no azrdma.conf.  A broken azrdma.conf still
 * fails the job's steps: it is an error to fix.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <slurm/spank.h>

#include "buf.h"
#include "conf.h"
#include "fsutil.h"
#include "log.h"
#include "mpi_profile.h"
#include "sl_plugin.h"

SPANK_PLUGIN(azrdma, 1);

#define SPANK_PROFILE_VAR "SPANK_AZRDMA_MPI_PROFILE"
#define RDMA_ENV_SPANK "AZRDMA_RDMA_ENV"
/* On tmpfs: gone with the VM's deallocation like the jobs themselves. */
#define JOB_ENV_DIR "/run/azrdma/jobs"

static struct azrdma_conf *_conf;
static bool _no_conf; /* this node has no azrdma.conf */
static char _rdma_env[64]; /* --rdma-env value, "" for auto */

static int _rdma_env_option(int val, const char *optarg, int remote);

/*
 * Registered from slurm_spank_init in every context: sbatch and salloc
 * ignore a spank_options table.
 */
static struct spank_option _rdma_env_opt = {
        "rdma-env",
        "auto|off|PROFILE",
        "MPI environment for RDMA in every task: auto (the job's profile, "
        "else the node's), off, or a profile of azrdma.conf",
        1,
        0,
        _rdma_env_option};

static int _rdma_env_option(int val, const char *optarg, int remote)
{
	size_t len = optarg ? strlen(optarg) : 0;

	if (!len || len >= sizeof(_rdma_env)) {
		slurm_error("azrdma: --rdma-env needs auto, off or a profile "
		            "name");
		return ESPANK_BAD_ARG;
	}
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)optarg[i])
		    && !strchr("_-.", optarg[i])) {
			slurm_error("azrdma: --rdma-env=%s: a profile name "
			            "has letters, digits, _ - . only",
			            optarg);
			return ESPANK_BAD_ARG;
		}
	snprintf(_rdma_env, sizeof(_rdma_env), "%s",
	         strcmp(optarg, "auto") ? optarg : "");
	return ESPANK_SUCCESS;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();
	char *path = NULL;

	if (ctx == S_CTX_LOCAL || ctx == S_CTX_ALLOCATOR || ctx == S_CTX_REMOTE)
		if (spank_option_register(sp, &_rdma_env_opt) != ESPANK_SUCCESS)
			slurm_error("azrdma: cannot register --rdma-env");
	/* Only where tasks run: srun, salloc and sbatch need no config. */
	if (ctx != S_CTX_REMOTE && ctx != S_CTX_SLURMD)
		return ESPANK_SUCCESS;
	sl_plugin_log_init("spank/azrdma");
	_conf = sl_plugin_conf_load_optional(&_no_conf, &path);
	if (_no_conf && ctx == S_CTX_SLURMD)
		log_info("%s does not exist: job steps on this node get "
		         "the MPI profile job_submit/azrdma chose for their "
		         "job (a batch job's environment, an interactive "
		         "job's record in " JOB_ENV_DIR " with "
		         "PrologFlags=Alloc), not the node's own; copy "
		         "azrdma.conf here for that",
		         path ? path : "azrdma.conf");
	free(path);
	if (ctx == S_CTX_SLURMD) {
		/* slurmd only says it once; each step loads its own. */
		conf_free(_conf);
		_conf = NULL;
		return ESPANK_SUCCESS;
	}
	return _conf || _no_conf ? ESPANK_SUCCESS : ESPANK_ERROR;
}

/* Record --rdma-env in the job for job_submit/azrdma. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();

	if (ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR)
		return ESPANK_SUCCESS;
	if (!_rdma_env[0])
		return ESPANK_SUCCESS;
	if (spank_job_control_setenv(sp, RDMA_ENV_SPANK, _rdma_env, 1)
	    != ESPANK_SUCCESS)
		slurm_verbose("azrdma: cannot record --rdma-env=%s in the job",
		              _rdma_env);
	return ESPANK_SUCCESS;
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	conf_free(_conf);
	_conf = NULL;
	return ESPANK_SUCCESS;
}

/* A variable of the task's environment into buf, or NULL. */
static const char *_task_getenv(spank_t sp, const char *name, char *buf,
                                int len)
{
	if (spank_getenv(sp, name, buf, len) != ESPANK_SUCCESS || !buf[0])
		return NULL;
	return buf;
}

/*
 * The image this node runs, from NodeImageFile ("%n": the node's name),
 * which the VM writes at boot; NULL if it names none azrdma.conf knows.
 * node_features/azrdma may have reprovisioned the node with an image other
 * than its domain's.
 */
static const struct conf_image *_node_image(const char *node)
{
	const struct conf_image *img = NULL;
	struct az_buf path = {0};
	char *text = NULL;

	if (!_conf->node_image_file)
		return NULL;
	for (const char *p = _conf->node_image_file; *p; p++) {
		if (p[0] == '%' && p[1] == 'n') {
			buf_puts(&path, node);
			p++;
		} else {
			buf_append(&path, p, 1);
		}
	}
	if (path.data
	    && fs_read_file(path.data, 256, &text, NULL, NULL, 0) == AZ_OK) {
		text[strcspn(text, " \t\r\n")] = '\0';
		img = conf_image_find(_conf, text);
	}
	free(text);
	buf_free(&path);
	return img;
}

/* The profile of this node: of the image it runs, else its domain's. */
static const struct conf_mpi_profile *_node_profile(const char *node)
{
	const struct conf_domain *d = domain_for_node(_conf, node);
	const struct conf_image *img;
	const char *name;

	if (!d)
		return NULL;
	img = _node_image(node);
	if (!img)
		return conf_domain_mpi_profile(_conf, d);
	name = img->mpi ? img->mpi : mpi_profile_default_for(d->size->rdma);
	return name ? conf_mpi_profile_find(_conf, name) : NULL;
}

/* The profile this task gets, or NULL for none; *why says where from. */
static const struct conf_mpi_profile *_resolve(spank_t sp, const char **why)
{
	char name[256], node[256];
	const char *v;

	*why = "--rdma-env";
	if (!strcmp(_rdma_env, "off"))
		return NULL;
	if (_rdma_env[0])
		return conf_mpi_profile_find(_conf, _rdma_env);

	*why = "the job";
	v = _task_getenv(sp, MPI_PROFILE_VAR, name, sizeof(name));
	if (!v)
		v = _task_getenv(sp, SPANK_PROFILE_VAR, name, sizeof(name));
	if (v && !strcmp(v, "off"))
		return NULL;
	if (v && strcmp(v, "auto"))
		return conf_mpi_profile_find(_conf, v);

	*why = "this node's image and domain";
	if (!_task_getenv(sp, "SLURMD_NODENAME", node, sizeof(node)))
		return NULL;
	return _node_profile(node);
}

/*
 * The tenant partition key of an InfiniBand port, for UCX_IB_PKEY: of the
 * port's two keys (pkeys/0 and pkeys/1 under <root>/sys/class/infiniband/
 * <dev>/ports/<port>) the larger is the tenant's; UCX wants it without the
 * full-membership bit.  root is "" on a real node.  Exported for the unit
 * tests only.
 */
int spank_azrdma_tenant_pkey(const char *root, const char *dev,
                             const char *port, unsigned *pkey)
{
	unsigned best = 0;

	for (int i = 0; i < 2; i++) {
		char path[512];
		unsigned v;
		FILE *f;

		snprintf(path, sizeof(path),
		         "%s/sys/class/infiniband/%s/ports/%s/pkeys/%d", root,
		         dev, port, i);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%x", &v) == 1 && v > best)
			best = v;
		fclose(f);
	}
	if (!(best & 0x7fff))
		return -1;
	*pkey = best & 0x7fff;
	return 0;
}

/* UCX_IB_PKEY from the device UCX_NET_DEVICES names ("mlx5_ib0:1"). */
static void _set_ucx_pkey(spank_t sp)
{
	char devs[256], pkey[16], *port;
	const char *root = getenv("AZRDMA_SYSFS_ROOT");
	unsigned v;

	if (_task_getenv(sp, "UCX_IB_PKEY", pkey, sizeof(pkey))
	    || !_task_getenv(sp, "UCX_NET_DEVICES", devs, sizeof(devs)))
		return;
	devs[strcspn(devs, ",")] = '\0';
	port = strchr(devs, ':');
	if (!port)
		return;
	*port++ = '\0';
	if (spank_azrdma_tenant_pkey(root ? root : "", devs, port, &v))
		return;
	snprintf(pkey, sizeof(pkey), "0x%04x", v);
	spank_setenv(sp, "UCX_IB_PKEY", pkey, 0);
}

/* Set what the task lacks; a value it already has stays.  Returns kept. */
static size_t _apply(spank_t sp, const struct conf_mpi_profile *p)
{
	size_t kept = 0;

	for (size_t i = 0; i < p->env_count; i++) {
		const char *eq = strchr(p->env[i], '=');
		char name[256];
		size_t len;

		if (!eq)
			continue;
		len = (size_t)(eq - p->env[i]);
		if (len >= sizeof(name))
			continue;
		memcpy(name, p->env[i], len);
		name[len] = '\0';
		if (spank_setenv(sp, name, eq + 1, 0) == ESPANK_ENV_EXISTS)
			kept++;
	}
	spank_setenv(sp, MPI_PROFILE_VAR, p->name, 0);
	if (p->rdma == RDMA_IB)
		_set_ucx_pkey(sp);
	return kept;
}

/*
 * The memlock limit the task will run with, in bytes: the submitter's,
 * which srun and sbatch pass in SLURM_RLIMIT_MEMLOCK ("U" first when asked
 * for with --propagate) and slurmstepd applies after this plugin's
 * task_init, else the current one.  False if unlimited.
 */
static bool _memlock_limited(spank_t sp, unsigned long long *bytes)
{
	char v[64];
	struct rlimit rl;

	if (_task_getenv(sp, "SLURM_RLIMIT_MEMLOCK", v, sizeof(v))) {
		const char *p = v[0] == 'U' ? v + 1 : v;
		char *end;

		errno = 0;
		*bytes = strtoull(p, &end, 10);
		if (!errno && end != p && !*end)
			return *bytes != (unsigned long long)RLIM_INFINITY;
	}
	if (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return false;
	*bytes = rl.rlim_cur;
	return true;
}

/* RDMA registers memory: a limited memlock breaks or slows MPI. */
static void _warn_memlock(spank_t sp)
{
	unsigned long long bytes;

	if (!_memlock_limited(sp, &bytes))
		return;
	fprintf(stderr,
	        "azrdma: warning: the memlock limit of this task is %llu KiB, "
	        "not unlimited; RDMA MPI may fail to register memory (set "
	        "memlock unlimited in limits.conf for slurmd and the users)\n",
	        bytes / 1024);
}

/*
 * JOB_ENV_DIR/<job>.<node>.env into path; false when node is not a plain
 * node name (it comes from the environment, and names a file root writes).
 */
static bool _job_env_path(uint32_t job, const char *node, char *path,
                          size_t len)
{
	if (!node || !conf_is_name(node, 64))
		return false;
	return snprintf(path, len, "%s/%u.%s.env", JOB_ENV_DIR, job, node)
	       < (int)len;
}

/* The job prolog's and epilog's file of this node, or false. */
static bool _job_script_path(spank_t sp, char *path, size_t len)
{
	uint32_t job = 0;

	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS)
		return false;
	return _job_env_path(job, getenv("SLURMD_NODENAME"), path, len);
}

/*
 * As root on each node of a job, before its first step: keep the profile
 * job_submit/azrdma recorded for an interactive job, for the steps of a
 * node without azrdma.conf.  Never fails the prolog: a node is not drained
 * for a missing MPI environment.
 */
int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	const char *text = getenv(MPI_PROFILE_RECORD_VAR);
	char path[256], err[256];

	if (!text || !*text)
		return ESPANK_SUCCESS;
	sl_plugin_log_init("spank/azrdma");
	if (!_job_script_path(sp, path, sizeof(path))) {
		log_error("job prolog: no job id or a node name that is not "
		          "one (SLURMD_NODENAME); the MPI profile is not kept");
		return ESPANK_SUCCESS;
	}
	if (mpi_profile_env_text_check(text, err, sizeof(err)) != AZ_OK) {
		log_error("%s: %s; not kept", path, err);
		return ESPANK_SUCCESS;
	}
	if (fs_mkdir_p(JOB_ENV_DIR, 0755, err, sizeof(err)) != AZ_OK
	    || fs_write_atomic_nosync(path, text, strlen(text), 0644, err,
	                              sizeof(err)) != AZ_OK)
		log_error("job prolog: %s; this job's steps get no MPI "
		          "profile on this node unless it has azrdma.conf",
		          err);
	return ESPANK_SUCCESS;
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	char path[256];

	if (!_job_script_path(sp, path, sizeof(path)))
		return ESPANK_SUCCESS;
	if (unlink(path) && errno != ENOENT) {
		sl_plugin_log_init("spank/azrdma");
		log_error("job epilog: cannot remove %s: %s", path,
		          strerror(errno));
	}
	return ESPANK_SUCCESS;
}

/* The value of AZRDMA_MPI_PROFILE in a checked record, into name. */
static void _kept_name(const char *text, char *name, size_t len)
{
	const char *key = MPI_PROFILE_VAR "=";
	const char *p = strncmp(text, key, strlen(key)) ? NULL : text;

	if (!p && (p = strstr(text, "\n" MPI_PROFILE_VAR "=")))
		p++;
	name[0] = '\0';
	if (p)
		snprintf(name, len, "%.*s", (int)strcspn(p + strlen(key), "\n"),
		         p + strlen(key));
}

/*
 * A task on a node without azrdma.conf: the profile its job's prolog kept
 * here, if any (a batch job brings its own).  Returns the profile's name
 * into name, or NULL.  A step's --rdma-env=<other profile> cannot be
 * resolved without azrdma.conf: the first task says so, and nothing is set.
 */
static const char *_apply_kept(spank_t sp, int task_id, char *name,
                               size_t len)
{
	char node[256], path[256];
	char *text = NULL;
	uint32_t job = 0;

	if (!strcmp(_rdma_env, "off")
	    || spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS
	    || !_task_getenv(sp, "SLURMD_NODENAME", node, sizeof(node))
	    || !_job_env_path(job, node, path, sizeof(path)))
		return NULL;
	if (fs_read_file(path, MPI_PROFILE_TEXT_MAX, &text, NULL, NULL, 0)
	    != AZ_OK)
		return NULL;
	if (mpi_profile_env_text_check(text, NULL, 0) != AZ_OK) {
		free(text);
		return NULL;
	}
	_kept_name(text, name, len);
	if (_rdma_env[0] && strcmp(_rdma_env, name)) {
		if (task_id == 0)
			fprintf(stderr,
			        "azrdma: --rdma-env=%s: this node has no "
			        "azrdma.conf to read that profile from; no MPI "
			        "environment set (the job's is %s)\n",
			        _rdma_env, name);
		free(text);
		return NULL;
	}
	for (char *line = text; *line;) {
		char *end = line + strcspn(line, "\n");
		char *eq = strchr(line, '=');
		bool last = !*end;

		*end = '\0';
		*eq = '\0';
		spank_setenv(sp, line, eq + 1, 0);
		if (last)
			break;
		line = end + 1;
	}
	free(text);
	_set_ucx_pkey(sp);
	return name;
}

/* In the task, as the user, before it execs. */
int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	const struct conf_mpi_profile *p;
	const char *why;
	int task_id = -1;
	size_t kept;

	if (spank_context() != S_CTX_REMOTE)
		return ESPANK_SUCCESS;
	/* Say things once per node and step: from its first task. */
	spank_get_item(sp, S_TASK_ID, &task_id);
	if (_no_conf) {
		char name[128];

		if (_apply_kept(sp, task_id, name, sizeof(name))
		    && task_id == 0)
			log_verbose("MPI profile %s from the job's record "
			            "(no azrdma.conf here)", name);
		return ESPANK_SUCCESS;
	}
	if (!_conf)
		return ESPANK_SUCCESS;
	p = _resolve(sp, &why);
	if (!p) {
		if (task_id == 0 && _rdma_env[0] && strcmp(_rdma_env, "off"))
			fprintf(stderr,
			        "azrdma: --rdma-env=%s: no such MPI profile "
			        "in azrdma.conf; no MPI environment set\n",
			        _rdma_env);
		return ESPANK_SUCCESS;
	}
	kept = _apply(sp, p);
	if (task_id != 0)
		return ESPANK_SUCCESS;
	log_verbose("MPI profile %s from %s (%zu of the task's values kept)",
	            p->name, why, kept);
	_warn_memlock(sp);
	return ESPANK_SUCCESS;
}
