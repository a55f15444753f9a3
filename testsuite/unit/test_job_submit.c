/*
 * test_job_submit.c - job_submit/azrdma, loaded as slurmctld loads it and
 * called with crafted job descriptors.
 *
 * libslurm, loaded globally, stands in for the daemon: it provides the
 * allocator (slurm_xcalloc, slurm_xfree, ...) and the logger the module
 * resolves at load time.  Each descriptor is freed with slurm_xfree as
 * slurmctld frees it, so a block the plugin allocated with the wrong
 * allocator, or leaked, shows up under valgrind and ASan.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "mpi_profile.h"
#include "sl_compat.h"
#include "sl_plugin.h"
#include "testutil.h"

typedef int (*submit_fn)(job_desc_msg_t *, uint32_t, char **);
#if SL_JOB_MODIFY_HAS_ERR_MSG
typedef int (*modify_fn)(job_desc_msg_t *, void *, uint32_t, char **);
#else
typedef int (*modify_fn)(job_desc_msg_t *, void *, uint32_t);
#endif

/*
 * hb0: 100 HBv3 nodes, default image (Mpi=openmpi-ucx); hb1: 50 HBv3 nodes,
 * image without Mpi= (the InfiniBand default, openmpi-ucx too); nd0: 16 A9
 * nodes whose image asks for msmpi.
 */
static const char *_conf_text =
        "SubscriptionId=00000000-1111-2222-3333-444444444444\n"
        "ResourceGroup=rg\n"
        "Location=eastus\n"
        "SubnetId=/subscriptions/00000000-1111-2222-3333-444444444444/"
        "resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/"
        "subnets/s\n"
        "SshPublicKeyFile=/nonexistent/id.pub\n"
        "RdmaPartitions=hpc\n"
        "MpiProfile=testworld Set=OMPI_MCA_btl=self,vader,tcp "
        "Set=OMPI_MCA_pml=ob1\n"
        "Image=alma Urn=almalinux:almalinux-hpc:8_10-hpc-gen2:latest "
        "Mpi=openmpi-ucx Default=yes\n"
        "Image=ubuntu Urn=microsoft-dsvm:ubuntu-hpc:2204:latest\n"
        "Image=legacy Urn=OpenLogic:CentOS-HPC:7.4:latest Mpi=msmpi\n"
        "Domain=hb0 Nodes=hb-[000-099] VmSize=Standard_HB120rs_v3\n"
        "Domain=hb1 Nodes=hb-[100-149] VmSize=HB120rs_v3 Image=ubuntu\n"
        "Domain=nd0 Nodes=a-[00-15] VmSize=Standard_A9 Image=legacy\n";

/*
 * slurmctld's default partition (slurm.conf's Default=YES), which the plugin
 * reads from the process it runs in; this program stands in for slurmctld
 * and exports it (-export-dynamic).
 */
char *default_part_name;

static void *_module;
static submit_fn _submit;
static int (*_fini)(void);

static void _setup(void)
{
	char path[1024];
	int (*init)(void);

	if (!dlopen("libslurm.so", RTLD_NOW | RTLD_GLOBAL))
		ck_abort_msg("dlopen libslurm.so: %s", dlerror());
	snprintf(path, sizeof(path),
	         "%s/src/plugins/job_submit/azrdma/.libs/job_submit_azrdma.so",
	         TEST_BUILD_DIR);
	_module = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	ck_assert_msg(_module != NULL, "dlopen %s: %s", path, dlerror());
	setenv("AZRDMA_CONF", tu_write("js.conf", _conf_text, 0644), 1);
	init = (int (*)(void))dlsym(_module, "init");
	_submit = (submit_fn)dlsym(_module, "job_submit");
	_fini = (int (*)(void))dlsym(_module, "fini");
	ck_assert_int_eq(init(), SLURM_SUCCESS);
}

static void _teardown(void)
{
	_fini();
	dlclose(_module);
}

/* A descriptor as slurmctld unpacks it: everything Slurm-allocated. */
static job_desc_msg_t *_job(const char *features, uint32_t min_nodes,
                            uint32_t max_nodes)
{
	job_desc_msg_t *job = slurm_xcalloc(1, sizeof(*job), true, false,
	                                    __FILE__, __LINE__, __func__);

	slurm_init_job_desc_msg(job);
	job->features = features ? slurm_xstrdup(features) : NULL;
	job->min_nodes = min_nodes;
	job->max_nodes = max_nodes;
	job->user_id = 1000;
	/* slurmctld marks a job that is not a hetjob component so. */
	job->het_job_offset = NO_VAL;
	return job;
}

static void _xfree_array(char ***array, uint32_t n)
{
	for (uint32_t i = 0; *array && i < n; i++)
		slurm_xfree((void **)&(*array)[i]);
	slurm_xfree((void **)array);
}

/*
 * Free what these tests and the plugin put in a descriptor, as
 * slurm_free_job_desc_msg() would (which needs a loaded select plugin).
 */
static void _job_free(job_desc_msg_t *job)
{
	slurm_xfree((void **)&job->features);
	slurm_xfree((void **)&job->partition);
	slurm_xfree((void **)&job->job_id_str);
	_xfree_array(&job->environment, job->env_size);
	_xfree_array(&job->spank_job_env, job->spank_job_env_size);
	slurm_xfree((void **)&job);
}

/* Give job a batch environment of NULL-terminated entries. */
static void _batch_env(job_desc_msg_t *job, const char *const *entries)
{
	uint32_t n = 0;

	while (entries[n])
		n++;
	job->environment = slurm_xcalloc(n + 1, sizeof(char *), true, false,
	                                 __FILE__, __LINE__, __func__);
	for (uint32_t i = 0; i < n; i++)
		job->environment[i] = slurm_xstrdup(entries[i]);
	job->env_size = n;
}

/* Exactly size entries, not NULL-terminated, as srun sends it. */
static void _spank_env(job_desc_msg_t *job, const char *entry)
{
	job->spank_job_env = slurm_xcalloc(1, sizeof(char *), true, false,
	                                   __FILE__, __LINE__, __func__);
	job->spank_job_env[0] = slurm_xstrdup(entry);
	job->spank_job_env_size = 1;
}

static const char *_get(char **env, uint32_t n, const char *name)
{
	size_t len = strlen(name);

	for (uint32_t i = 0; env && i < n; i++)
		if (!strncmp(env[i], name, len) && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

#define env_of(job, name) _get((job)->environment, (job)->env_size, name)
#define spank_of(job, name)                                                    \
	_get((job)->spank_job_env, (job)->spank_job_env_size, name)

static const char *const _user_env[] = {"PATH=/usr/bin", "HOME=/home/u", NULL};

START_TEST(job_without_rdma_intent_passes_unchanged)
{
	job_desc_msg_t *job = _job("bigmem", 4, 4);
	char *msg = NULL;

	job->partition = slurm_xstrdup("debug");
	_batch_env(job, _user_env);
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "bigmem");
	ck_assert_uint_eq(job->env_size, 2);
	ck_assert_ptr_null(job->spank_job_env);
	ck_assert_ptr_null(msg);
	_job_free(job);
}
END_TEST

START_TEST(rdma_job_gets_a_matching_or_over_the_domains_that_fit)
{
	job_desc_msg_t *job = _job("rdma", 20, 20);
	char *msg = NULL;

	_batch_env(job, _user_env);
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	/* nd0 holds 16 nodes: not a candidate for 20. */
	ck_assert_str_eq(job->features, "rdma&[hb0|hb1]");
	ck_assert_str_eq(env_of(job, "OMPI_MCA_pml"), "ucx");
	ck_assert_str_eq(env_of(job, "UCX_NET_DEVICES"), "mlx5_ib0:1");
	ck_assert_str_eq(env_of(job, "AZRDMA_MPI_PROFILE"), "openmpi-ucx");
	ck_assert_str_eq(env_of(job, "PATH"), "/usr/bin");
	ck_assert_ptr_null(job->environment[job->env_size]);
	ck_assert_str_eq(spank_of(job, "SPANK_AZRDMA_MPI_PROFILE"),
	                 "openmpi-ucx");
	ck_assert_str_eq(spank_of(job, "SPANK_AZRDMA_DOMAINS"), "hb0|hb1");
	ck_assert_str_eq(msg, "azrdma: domains hb0|hb1, MPI env openmpi-ucx");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(rdma_partition_alone_makes_an_rdma_job_and_one_domain_is_plain)
{
	job_desc_msg_t *job = _job(NULL, 60, NO_VAL);
	char *msg = NULL;

	job->partition = slurm_xstrdup("debug,hpc");
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "hb0");
	ck_assert_str_eq(msg, "azrdma: domain hb0, MPI env openmpi-ucx");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

/*
 * Issue 17 item 9: a job without -p goes to slurmctld's default partition;
 * when RdmaPartitions names it, the job is an RDMA job as with -p.
 */
START_TEST(a_job_without_partition_is_judged_by_the_default_partition)
{
	job_desc_msg_t *job = _job(NULL, 60, NO_VAL);
	char *msg = NULL;

	default_part_name = "hpc";
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "hb0");
	ck_assert_str_eq(msg, "azrdma: domain hb0, MPI env openmpi-ucx");
	slurm_xfree((void **)&msg);
	_job_free(job);

	/* Another default partition: not an RDMA job. */
	default_part_name = "debug";
	job = _job(NULL, 60, NO_VAL);
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_ptr_null(job->features);
	ck_assert_ptr_null(msg);
	_job_free(job);

	/* A partition the user names wins over the default. */
	default_part_name = "hpc";
	job = _job(NULL, 60, NO_VAL);
	job->partition = slurm_xstrdup("debug");
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_ptr_null(job->features);
	_job_free(job);
	default_part_name = NULL;
}
END_TEST

START_TEST(a_users_or_constraint_is_grouped_before_the_join)
{
	job_desc_msg_t *job = _job("rdma|fast", 2, NO_VAL);

	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "(rdma|fast)&[hb0|hb1|nd0]");
	_job_free(job);
}
END_TEST

START_TEST(size_feature_narrows_the_domains_and_picks_their_profile)
{
	job_desc_msg_t *job = _job("rdma&a9", 4, 4);
	char *msg = NULL;

	_batch_env(job, _user_env);
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&a9&nd0");
	ck_assert_str_eq(env_of(job, "MSMPI_DISABLE_SOCK"), "1");
	ck_assert_str_eq(env_of(job, "MPICH_NETMASK"),
	                 "172.16.0.0/255.255.0.0");
	ck_assert_ptr_null(env_of(job, "OMPI_MCA_pml"));
	ck_assert_str_eq(msg, "azrdma: domain nd0, MPI env msmpi");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(an_image_feature_gets_one_domain_and_the_images_profile)
{
	job_desc_msg_t *job = _job("rdma&img_ubuntu", 4, 4);
	char *msg = NULL;

	/* Jobs of SlurmUser (whom slurmctld, here this program, runs as):
	 * others may not ask an image (the test below). */
	job->user_id = (uint32_t)geteuid();
	_batch_env(job, _user_env);
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	/* Brackets and img_ do not mix: the first domain that fits. */
	ck_assert_str_eq(job->features, "rdma&img_ubuntu&hb0");
	ck_assert_str_eq(env_of(job, "OMPI_MCA_pml"), "ucx");
	ck_assert_str_eq(msg, "azrdma: domain hb0 (the first that fits: an "
	                      "image feature takes one domain; add -C <domain> "
	                      "to choose), MPI env openmpi-ucx");
	slurm_xfree((void **)&msg);
	_job_free(job);

	/* The image's Mpi= wins over the domain's own image. */
	job = _job("rdma&img_legacy&a9", 4, 4);
	job->user_id = (uint32_t)geteuid();
	_batch_env(job, _user_env);
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&img_legacy&a9&nd0");
	ck_assert_str_eq(env_of(job, "MSMPI_PRECONNECT"), "all");
	_job_free(job);

	job = _job("rdma&img_ubuntu&a9", 4, 4);
	job->user_id = 0;
	_batch_env(job, _user_env);
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(env_of(job, "I_MPI_FABRICS"), "shm:dapl");
	_job_free(job);
}
END_TEST

/*
 * Issue 18 item 2: an image feature can have idle VMs deleted and
 * re-created; a user AllowUserBoot does not name is refused at submit,
 * RDMA job or not, and nothing of the job is changed.
 */
START_TEST(an_image_feature_of_a_user_who_may_not_boot_is_refused)
{
	static const char *const features[] = {"rdma&img_ubuntu", "img_legacy"};

	for (size_t i = 0; i < 2; i++) {
		job_desc_msg_t *job = _job(features[i], 2, 2);
		char *msg = NULL;

		_batch_env(job, _user_env);
		ck_assert_int_eq(_submit(job, 1000, &msg), ESLURM_ACCESS_DENIED);
		ck_assert_str_eq(job->features, features[i]);
		ck_assert_ptr_null(env_of(job, "OMPI_MCA_pml"));
		ck_assert_msg(msg && strstr(msg, "azrdma: image ") &&
		                      strstr(msg, " is asked (-C img_...), and "
		                                  "only root, SlurmUser and the "
		                                  "users AllowUserBoot of "
		                                  "azrdma.conf names may"),
		              "%s", msg ? msg : "(no message)");
		slurm_xfree((void **)&msg);
		_job_free(job);
	}
	/* Without an image feature the same user is placed as ever. */
	{
		job_desc_msg_t *job = _job("rdma", 2, 2);

		_batch_env(job, _user_env);
		ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
		_job_free(job);
	}
}
END_TEST

START_TEST(a_job_naming_its_domain_is_checked_not_rewritten)
{
	job_desc_msg_t *job = _job("rdma&hb1", 10, 10);
	char *msg = NULL;

	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&hb1");
	ck_assert_str_eq(spank_of(job, "SPANK_AZRDMA_DOMAINS"), "hb1");
	ck_assert_str_eq(msg,
	                 "azrdma: domain hb1 (as asked), MPI env openmpi-ucx");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(named_domain_too_small_is_rejected_with_what_fits)
{
	job_desc_msg_t *job = _job("rdma&hb1", 60, 60);
	char *msg = NULL;

	ck_assert_int_eq(_submit(job, 1000, &msg), ESLURM_INVALID_NODE_COUNT);
	ck_assert_str_eq(job->features, "rdma&hb1");
	ck_assert_ptr_nonnull(strstr(msg, "60 nodes fit in no RDMA domain"));
	ck_assert_ptr_nonnull(strstr(msg, "(hb1) holds 50 nodes"));
	ck_assert_ptr_nonnull(strstr(msg, "ask for at most 50 nodes"));
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(more_nodes_than_any_domain_holds_is_rejected_at_submit)
{
	job_desc_msg_t *job = _job("rdma", 300, 300);
	char *msg = NULL;

	_batch_env(job, _user_env);
	ck_assert_int_eq(_submit(job, 1000, &msg), ESLURM_INVALID_NODE_COUNT);
	ck_assert_str_eq(msg,
	                 "azrdma: 300 nodes fit in no RDMA domain: an RDMA job "
	                 "runs inside one domain and the largest that matches "
	                 "(hb0) holds 100 nodes; ask for at most 100 nodes");
	ck_assert_uint_eq(job->env_size, 2);
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(more_tasks_than_any_domain_holds_is_rejected_naming_the_tasks)
{
	job_desc_msg_t *job = _job("rdma", NO_VAL, NO_VAL);
	char *msg = NULL;

	job->num_tasks = 13000; /* 120 per HBv3 node: 109 nodes */
	ck_assert_int_eq(_submit(job, 1000, &msg), ESLURM_INVALID_NODE_COUNT);
	ck_assert_str_eq(msg, "azrdma: 109 nodes (13000 tasks at 120 per "
	                      "hb120rs_v3 node) fit in no RDMA domain: an RDMA "
	                      "job runs inside one domain and the largest that "
	                      "matches (hb0) holds 100 nodes; ask for at most "
	                      "100 nodes or 12000 tasks");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(a_task_count_narrows_the_domains_by_their_vcpus)
{
	job_desc_msg_t *job = _job("rdma", NO_VAL, NO_VAL);

	job->num_tasks = 6500; /* 55 HBv3 nodes: only hb0 holds them */
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&hb0");
	_job_free(job);
}
END_TEST

START_TEST(tasks_per_node_and_cpus_per_task_set_the_nodes_needed)
{
	job_desc_msg_t *job = _job("rdma", NO_VAL, NO_VAL);

	job->num_tasks = 64;
	job->ntasks_per_node = 2; /* 32 nodes: not nd0's 16 */
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&[hb0|hb1]");
	_job_free(job);

	job = _job("rdma", NO_VAL, NO_VAL);
	job->num_tasks = 1200;
	job->cpus_per_task = 60; /* 2 per HBv3 node: 600 nodes */
	ck_assert_int_eq(_submit(job, 1000, NULL), ESLURM_INVALID_NODE_COUNT);
	_job_free(job);
}
END_TEST

START_TEST(an_overcommitted_task_count_needs_no_more_nodes)
{
	job_desc_msg_t *job = _job("rdma", NO_VAL, NO_VAL);

	job->num_tasks = 13000;
	job->overcommit = 1;
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&[hb0|hb1|nd0]");
	_job_free(job);
}
END_TEST

START_TEST(a_size_no_domain_has_is_an_invalid_feature_listing_the_domains)
{
	job_desc_msg_t *job = _job("rdma&hb176rs_v4", 2, 2);
	char *msg = NULL;

	ck_assert_int_eq(_submit(job, 1000, &msg), ESLURM_INVALID_FEATURE);
	ck_assert_str_eq(msg,
	                 "azrdma: no RDMA domain matches the constraint "
	                 "'rdma&hb176rs_v4'; RDMA domains: hb0 (hb120rs_v3, "
	                 "100 nodes), hb1 (hb120rs_v3, 50 nodes), nd0 (a9, 16 "
	                 "nodes)");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(a_named_domain_of_another_size_is_an_invalid_feature)
{
	job_desc_msg_t *job = _job("rdma&nd0&hb120rs_v3", 2, 2);
	char *msg = NULL;

	ck_assert_int_eq(_submit(job, 1000, &msg), ESLURM_INVALID_FEATURE);
	ck_assert_ptr_nonnull(strstr(msg, "no RDMA domain matches"));
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(a_variable_the_user_set_is_never_overwritten)
{
	static const char *const env[] = {"PATH=/usr/bin", "OMPI_MCA_pml=ob1",
	                                  NULL};
	job_desc_msg_t *job = _job("rdma", 20, 20);
	char *msg = NULL;

	_batch_env(job, env);
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_str_eq(env_of(job, "OMPI_MCA_pml"), "ob1");
	ck_assert_str_eq(env_of(job, "OMPI_MCA_osc"), "ucx");
	ck_assert_str_eq(msg, "azrdma: domains hb0|hb1, MPI env openmpi-ucx "
	                      "(1 of your settings kept)");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(a_single_node_job_is_not_constrained_but_gets_its_env)
{
	job_desc_msg_t *job = _job("rdma&hb120rs_v3", 1, 1);

	_batch_env(job, _user_env);
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&hb120rs_v3");
	ck_assert_str_eq(env_of(job, "OMPI_MCA_pml"), "ucx");
	_job_free(job);
}
END_TEST

START_TEST(domains_with_different_profiles_leave_the_env_to_the_nodes)
{
	job_desc_msg_t *job = _job("rdma", 2, NO_VAL);
	char *msg = NULL;

	_batch_env(job, _user_env);
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&[hb0|hb1|nd0]");
	ck_assert_uint_eq(job->env_size, 2);
	ck_assert_str_eq(spank_of(job, "SPANK_AZRDMA_MPI_PROFILE"), "auto");
	ck_assert_str_eq(msg, "azrdma: domains hb0|hb1|nd0, MPI env from "
	                      "each node's domain");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(an_interactive_job_is_placed_and_recorded_without_env)
{
	job_desc_msg_t *job = _job("rdma", 2, 2);

	_spank_env(job, "OTHER_PLUGIN=1");
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&[hb0|hb1|nd0]");
	ck_assert_ptr_null(job->environment);
	ck_assert_uint_eq(job->env_size, 0);
	ck_assert_uint_eq(job->spank_job_env_size, 4);
	ck_assert_str_eq(spank_of(job, "OTHER_PLUGIN"), "1");
	ck_assert_str_eq(spank_of(job, "SPANK_AZRDMA_DOMAINS"), "hb0|hb1|nd0");
	/* Each node's domain decides: no profile to carry to the nodes. */
	ck_assert_str_eq(spank_of(job, "SPANK_AZRDMA_MPI_ENV"), "");
	_job_free(job);
}
END_TEST

START_TEST(rdma_env_off_from_sbatch_injects_nothing)
{
	static const char *const env[] = {
	        "PATH=/usr/bin", "_SLURM_SPANK_OPTION_azrdma_rdma_env=off",
	        NULL};
	job_desc_msg_t *job = _job("rdma", 20, 20);
	char *msg = NULL;

	_batch_env(job, env);
	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_uint_eq(job->env_size, 2);
	ck_assert_str_eq(job->features, "rdma&[hb0|hb1]");
	ck_assert_str_eq(spank_of(job, "SPANK_AZRDMA_MPI_PROFILE"), "off");
	ck_assert_str_eq(msg, "azrdma: domains hb0|hb1, MPI env off");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(rdma_env_profile_from_spank_replaces_the_domains_profile)
{
	job_desc_msg_t *job = _job("rdma", 20, 20);

	_batch_env(job, _user_env);
	_spank_env(job, "AZRDMA_RDMA_ENV=testworld");
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(env_of(job, "OMPI_MCA_btl"), "self,vader,tcp");
	ck_assert_str_eq(env_of(job, "OMPI_MCA_pml"), "ob1");
	ck_assert_str_eq(env_of(job, "AZRDMA_MPI_PROFILE"), "testworld");
	ck_assert_str_eq(spank_of(job, "SPANK_AZRDMA_MPI_PROFILE"),
	                 "testworld");
	_job_free(job);
}
END_TEST

START_TEST(an_unknown_rdma_env_profile_is_rejected)
{
	job_desc_msg_t *job = _job("rdma", 2, 2);
	char *msg = NULL;

	_spank_env(job, "SPANK_AZRDMA_RDMA_ENV=mvapich");
	ck_assert_int_eq(_submit(job, 1000, &msg), ESLURM_NOT_SUPPORTED);
	ck_assert_ptr_nonnull(strstr(msg, "--rdma-env=mvapich: no such MPI"));
	ck_assert_str_eq(job->features, "rdma");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(the_message_is_appended_to_another_plugins_message)
{
	job_desc_msg_t *job = _job("rdma", 20, 20);
	char *msg = slurm_xstrdup("other: hello");

	ck_assert_int_eq(_submit(job, 1000, &msg), SLURM_SUCCESS);
	ck_assert_str_eq(msg, "other: hello\nazrdma: domains hb0|hb1, MPI env "
	                      "openmpi-ucx");
	slurm_xfree((void **)&msg);
	_job_free(job);
}
END_TEST

START_TEST(a_users_own_matching_or_is_kept)
{
	job_desc_msg_t *job = _job("rdma&[rack1|rack2]*4", 8, 8);

	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&[rack1|rack2]*4");
	_job_free(job);
}
END_TEST

START_TEST(a_replaced_record_is_not_duplicated)
{
	job_desc_msg_t *job = _job("rdma", 20, 20);

	_spank_env(job, "SPANK_AZRDMA_DOMAINS=stale");
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_uint_eq(job->spank_job_env_size, 3);
	ck_assert_str_eq(spank_of(job, "SPANK_AZRDMA_DOMAINS"), "hb0|hb1");
	_job_free(job);
}
END_TEST

/* What the job prolog of a node without azrdma.conf keeps for the steps. */
START_TEST(an_interactive_job_carries_its_profile_and_a_forged_one_is_replaced)
{
	job_desc_msg_t *job = _job("rdma", 20, 20);
	const char *text;

	_spank_env(job, "SPANK_AZRDMA_MPI_ENV=LD_PRELOAD=/tmp/x.so");
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	text = spank_of(job, "SPANK_AZRDMA_MPI_ENV");
	ck_assert_ptr_nonnull(strstr(text, "OMPI_MCA_pml=ucx\n"));
	ck_assert_ptr_null(strstr(text, "LD_PRELOAD"));
	ck_assert_ptr_nonnull(strstr(text, "\nAZRDMA_MPI_PROFILE=openmpi-ucx\n"));
	ck_assert_int_eq(mpi_profile_env_text_check(text, NULL, 0), AZ_OK);
	_job_free(job);
}
END_TEST

START_TEST(a_batch_job_carries_no_profile_record)
{
	job_desc_msg_t *job = _job("rdma", 20, 20);

	_batch_env(job, _user_env);
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(spank_of(job, "SPANK_AZRDMA_MPI_ENV"), "");
	_job_free(job);
}
END_TEST

/* An update as scontrol sends it: only what it changes is set. */
static job_desc_msg_t *_update(const char *features, uint32_t min_nodes)
{
	job_desc_msg_t *u = _job(features, min_nodes, NO_VAL);

	u->job_id_str = slurm_xstrdup("42");
	return u;
}

/*
 * job_modify() as the headers' Slurm calls it; *msg (if msg) is what the
 * user is told, always NULL where the release gives job_modify no err_msg.
 */
static int _modify(job_desc_msg_t *u, void *record, char **msg)
{
	modify_fn fn = (modify_fn)dlsym(_module, "job_modify");
	char *told = NULL;
	int rc;

	ck_assert_ptr_nonnull(fn);
#if SL_JOB_MODIFY_HAS_ERR_MSG
	rc = fn(u, record, 0, &told);
#else
	rc = fn(u, record, 0);
#endif
	if (msg)
		*msg = told;
	else
		slurm_xfree((void **)&told);
	return rc;
}

START_TEST(job_modify_rechecks_an_update_that_names_its_constraint)
{
	job_desc_msg_t *u = _update("rdma", 300);
	char *msg = NULL;

	/* No job record here: the update is checked alone. */
	ck_assert_int_eq(_modify(u, NULL, &msg), ESLURM_INVALID_NODE_COUNT);
	ck_assert_str_eq(u->features, "rdma");
#if SL_JOB_MODIFY_HAS_ERR_MSG
	/* The user reads why, as at submit. */
	ck_assert_ptr_nonnull(msg);
	ck_assert_msg(strstr(msg, "azrdma: ") == msg && strstr(msg, "300"),
	              "err_msg: %s", msg);
	slurm_xfree((void **)&msg);
#else
	ck_assert_ptr_null(msg);
#endif
	_job_free(u);

	u = _update("rdma&hb176rs_v4", NO_VAL);
	ck_assert_int_eq(_modify(u, NULL, NULL), ESLURM_INVALID_FEATURE);
	_job_free(u);

	/* A new constraint gets the domains again, as at submit. */
	u = _update("rdma", 20);
	ck_assert_int_eq(_modify(u, NULL, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(u->features, "rdma&[hb0|hb1]");
	_job_free(u);

	u = _update(NULL, NO_VAL);
	u->partition = slurm_xstrdup("hpc");
	u->min_nodes = 120;
	ck_assert_int_eq(_modify(u, NULL, NULL), ESLURM_INVALID_NODE_COUNT);
	_job_free(u);
}
END_TEST

START_TEST(job_modify_lets_pass_what_it_cannot_judge_or_does_not_place)
{
	job_desc_msg_t *u = _update(NULL, 300);

	/* Node count alone, no record to tell an RDMA job: not judged. */
	ck_assert_int_eq(_modify(u, NULL, NULL), SLURM_SUCCESS);
	_job_free(u);

	u = _update(NULL, NO_VAL);
	u->priority = 0; /* a hold */
	ck_assert_int_eq(_modify(u, NULL, NULL), SLURM_SUCCESS);
	_job_free(u);

	u = _update("bigmem", 300);
	ck_assert_int_eq(_modify(u, NULL, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(u->features, "bigmem");
	_job_free(u);
}
END_TEST

/*
 * The job record as slurmctld's copy_job_record_to_job_desc() would give
 * it; slurmctld is not here, so the test hands the plugin this reader.
 */
static job_desc_msg_t *_record;
static int _reads, _frees;

static job_desc_msg_t *_read_record(void *job_ptr)
{
	ck_assert_ptr_eq(job_ptr, (void *)&_record);
	_reads++;
	return _record;
}

static void _free_record(job_desc_msg_t *job)
{
	ck_assert_ptr_eq(job, _record);
	_frees++;
	_job_free(job);
	_record = NULL;
}

static void _use_record(const char *features, uint32_t nodes)
{
	void (*set)(job_desc_msg_t *(*)(void *), void (*)(job_desc_msg_t *)) =
	        (void (*)(job_desc_msg_t * (*)(void *),
	                  void (*)(job_desc_msg_t *)))
	                dlsym(_module, "azrdma_job_submit_set_job_reader");

	ck_assert_ptr_nonnull(set);
	set(_read_record, _free_record);
	_record = _job(features, nodes, nodes);
#if SL_JOB_DESC_ID_IN_STEP_ID
	_record->step_id.job_id = 7;
#else
	_record->job_id = 7;
#endif
}

START_TEST(job_modify_checks_the_update_over_the_job_record)
{
	job_desc_msg_t *u;

	/* The record carries the domains job_submit added. */
	_use_record("rdma&[hb0|hb1]", 2);
	u = _update(NULL, 300);
	ck_assert_int_eq(_modify(u, (void *)&_record, NULL),
	                 ESLURM_INVALID_NODE_COUNT);
	ck_assert_int_eq(_reads, 1);
	ck_assert_int_eq(_frees, 1);
	ck_assert_ptr_null(u->features);
	_job_free(u);

	_use_record("rdma&[hb0|hb1]", 2);
	u = _update(NULL, 40);
	ck_assert_int_eq(_modify(u, (void *)&_record, NULL), SLURM_SUCCESS);
	ck_assert_ptr_null(u->features);
	_job_free(u);

	/* 2000 tasks at 120 per node: 17 nodes, more than nd0 holds. */
	_use_record("rdma&nd0", 2);
	u = _update(NULL, NO_VAL);
	u->num_tasks = 2000;
	u->ntasks_per_node = 120;
	ck_assert_int_eq(_modify(u, (void *)&_record, NULL),
	                 ESLURM_INVALID_NODE_COUNT);
	_job_free(u);

	/* A job without RDMA intent may grow as it likes. */
	_use_record("bigmem", 2);
	u = _update(NULL, 300);
	ck_assert_int_eq(_modify(u, (void *)&_record, NULL), SLURM_SUCCESS);
	_job_free(u);
	ck_assert_int_eq(_reads, 4);
	ck_assert_int_eq(_frees, 4);
}
END_TEST

/* Hetjob component offset of a submission, as slurmctld sets it. */
static job_desc_msg_t *_component(const char *features, uint32_t nodes,
                                  uint32_t offset)
{
	job_desc_msg_t *job = _job(features, nodes, nodes);

	job->het_job_offset = offset;
	return job;
}

START_TEST(hetjob_rdma_components_share_the_largest_domain_that_holds_them)
{
	job_desc_msg_t *c0 = _component("rdma", 20, 0);
	job_desc_msg_t *c1 = _component("rdma", 50, 1);
	job_desc_msg_t *c2 = _component("rdma", 40, 2);
	char *msg = NULL;

	ck_assert_int_eq(_submit(c0, 1000, &msg), SLURM_SUCCESS);
	ck_assert_str_eq(c0->features, "rdma&hb0");
	ck_assert_str_eq(spank_of(c0, "SPANK_AZRDMA_DOMAINS"), "hb0");
	ck_assert_str_eq(msg, "azrdma: domain hb0 (one domain for every RDMA "
	                      "component of the hetjob), MPI env openmpi-ucx");
	slurm_xfree((void **)&msg);
	ck_assert_int_eq(_submit(c1, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(c1->features, "rdma&hb0");
	/* 20 + 50 of hb0's 100 are taken: 40 more do not fit. */
	ck_assert_int_eq(_submit(c2, 1000, &msg), ESLURM_INVALID_NODE_COUNT);
	ck_assert_str_eq(msg, "azrdma: hetjob component 2 needs 40 nodes of "
	                      "domain hb0, where the components before it "
	                      "leave 30 of its 100 nodes; the RDMA components "
	                      "of a hetjob run in one domain, so ask for at "
	                      "most 30 nodes in all");
	ck_assert_str_eq(c2->features, "rdma");
	slurm_xfree((void **)&msg);
	_job_free(c0);
	_job_free(c1);
	_job_free(c2);

	/* Offset 0 starts a new hetjob: hb0 is free again. */
	c0 = _component("rdma", 90, 0);
	ck_assert_int_eq(_submit(c0, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(c0->features, "rdma&hb0");
	_job_free(c0);
}
END_TEST

START_TEST(hetjob_components_naming_other_domains_are_refused)
{
	job_desc_msg_t *c0 = _component("bigmem", 1, 0);
	job_desc_msg_t *c1 = _component("rdma&hb1", 10, 1);
	job_desc_msg_t *c2 = _component("rdma&nd0", 2, 2);
	char *msg = NULL;

	/* A component without RDMA intent is left alone. */
	ck_assert_int_eq(_submit(c0, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(c0->features, "bigmem");
	ck_assert_int_eq(_submit(c1, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(c1->features, "rdma&hb1");
	ck_assert_int_eq(_submit(c2, 1000, &msg), ESLURM_INVALID_FEATURE);
	ck_assert_str_eq(msg, "azrdma: hetjob component 2 asks for "
	                      "'rdma&nd0', which domain hb1 of component 1 "
	                      "does not match; the RDMA components of a hetjob "
	                      "run in one domain");
	slurm_xfree((void **)&msg);
	_job_free(c0);
	_job_free(c1);
	_job_free(c2);
}
END_TEST

/* The plugin looks at azrdma.conf once a second at most: let one pass. */
static void _next_second(void)
{
	time_t now = time(NULL);

	while (time(NULL) == now)
		usleep(20000);
}

START_TEST(a_changed_conf_is_reloaded_and_a_broken_one_is_not)
{
	char *conf = strdup(getenv("AZRDMA_CONF"));
	char *text;
	job_desc_msg_t *job;
	FILE *f;

	ck_assert_int_ge(asprintf(&text, "%sDomain=hb2 Nodes=hc-[000-199] "
	                                 "VmSize=HB120rs_v3\n",
	                          _conf_text),
	                 0);
	f = fopen(conf, "w");
	fputs(text, f);
	fclose(f);
	_next_second();
	job = _job("rdma", 150, 150);
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&hb2");
	_job_free(job);

	f = fopen(conf, "w");
	fputs("Domain=broken\n", f);
	fclose(f);
	_next_second();
	job = _job("rdma", 150, 150);
	ck_assert_int_eq(_submit(job, 1000, NULL), SLURM_SUCCESS);
	ck_assert_str_eq(job->features, "rdma&hb2");
	_job_free(job);
	free(text);
	free(conf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("job_submit");
	TCase *tc = tcase_create("job_submit");

	tcase_add_checked_fixture(tc, _setup, _teardown);
	/* The reload test waits for the clock; valgrind is slow. */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, job_without_rdma_intent_passes_unchanged);
	tcase_add_test(tc,
	               rdma_job_gets_a_matching_or_over_the_domains_that_fit);
	tcase_add_test(
	        tc,
	        rdma_partition_alone_makes_an_rdma_job_and_one_domain_is_plain);
	tcase_add_test(tc,
	        a_job_without_partition_is_judged_by_the_default_partition);
	tcase_add_test(tc, a_users_or_constraint_is_grouped_before_the_join);
	tcase_add_test(
	        tc, size_feature_narrows_the_domains_and_picks_their_profile);
	tcase_add_test(tc, a_job_naming_its_domain_is_checked_not_rewritten);
	tcase_add_test(tc,
	               an_image_feature_gets_one_domain_and_the_images_profile);
	tcase_add_test(tc, an_image_feature_of_a_user_who_may_not_boot_is_refused);
	tcase_add_test(tc, named_domain_too_small_is_rejected_with_what_fits);
	tcase_add_test(tc,
	               more_nodes_than_any_domain_holds_is_rejected_at_submit);
	tcase_add_test(
	        tc,
	        a_size_no_domain_has_is_an_invalid_feature_listing_the_domains);
	tcase_add_test(tc,
	               a_named_domain_of_another_size_is_an_invalid_feature);
	tcase_add_test(
	        tc,
	        more_tasks_than_any_domain_holds_is_rejected_naming_the_tasks);
	tcase_add_test(tc, a_task_count_narrows_the_domains_by_their_vcpus);
	tcase_add_test(tc,
	               tasks_per_node_and_cpus_per_task_set_the_nodes_needed);
	tcase_add_test(tc, an_overcommitted_task_count_needs_no_more_nodes);
	tcase_add_test(tc, a_variable_the_user_set_is_never_overwritten);
	tcase_add_test(tc,
	               a_single_node_job_is_not_constrained_but_gets_its_env);
	tcase_add_test(
	        tc, domains_with_different_profiles_leave_the_env_to_the_nodes);
	tcase_add_test(tc,
	               an_interactive_job_is_placed_and_recorded_without_env);
	tcase_add_test(tc, rdma_env_off_from_sbatch_injects_nothing);
	tcase_add_test(
	        tc, rdma_env_profile_from_spank_replaces_the_domains_profile);
	tcase_add_test(tc, an_unknown_rdma_env_profile_is_rejected);
	tcase_add_test(tc, the_message_is_appended_to_another_plugins_message);
	tcase_add_test(tc, a_users_own_matching_or_is_kept);
	tcase_add_test(tc, a_replaced_record_is_not_duplicated);
	tcase_add_test(tc, an_interactive_job_carries_its_profile_and_a_forged_one_is_replaced);
	tcase_add_test(tc, a_batch_job_carries_no_profile_record);
	tcase_add_test(tc,
	               job_modify_rechecks_an_update_that_names_its_constraint);
	tcase_add_test(
	        tc, job_modify_lets_pass_what_it_cannot_judge_or_does_not_place);
	tcase_add_test(tc, job_modify_checks_the_update_over_the_job_record);
	tcase_add_test(
	        tc,
	        hetjob_rdma_components_share_the_largest_domain_that_holds_them);
	tcase_add_test(tc, hetjob_components_naming_other_domains_are_refused);
	tcase_add_test(tc, a_changed_conf_is_reloaded_and_a_broken_one_is_not);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
