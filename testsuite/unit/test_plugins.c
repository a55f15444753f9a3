/*
 * test_plugins.c - the built plugin modules load as Slurm would load them:
 * right names, plugin_version equal to the headers' SLURM_VERSION_NUMBER,
 * every symbol the plugin type of the headers' release requires, and an
 * init() that accepts a valid azrdma.conf and refuses a broken one.
 * (testsuite/run's versions layer also checks the node_features symbols
 * against the list in each release's own source.)
 */
#include <check.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "sl_compat.h"
#include "testutil.h"

static void *_open(const char *type)
{
	char path[1024];
	void *h;

	/*
	 * Inside a daemon the plugins' Slurm symbols resolve from
	 * libslurmfull; here libslurm, loaded globally, stands in for it.
	 */
	if (!dlopen("libslurm.so", RTLD_NOW | RTLD_GLOBAL))
		ck_abort_msg("dlopen libslurm.so: %s", dlerror());

	snprintf(path, sizeof(path), "%s/src/plugins/%s/azrdma/.libs/%s_azrdma.so",
		 TEST_BUILD_DIR, type, type);
	/* As Slurm's plugin loader does: functions bind at first call. */
	h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	ck_assert_msg(h != NULL, "dlopen %s: %s", path, dlerror());
	return h;
}

static void _check_metadata(void *h, const char *type)
{
	const uint32_t *version = dlsym(h, "plugin_version");
	const char *ptype = dlsym(h, "plugin_type");

	ck_assert_ptr_nonnull(dlsym(h, "plugin_name"));
	ck_assert_ptr_nonnull(ptype);
	ck_assert_str_eq(ptype, type);
	ck_assert_ptr_nonnull(version);
	ck_assert_uint_eq(*version, SLURM_VERSION_NUMBER);
}

static void _use_conf(const char *fixture)
{
	setenv("AZRDMA_CONF", tu_fixture(fixture, "plugin.conf"), 1);
}

START_TEST(job_submit_module_has_metadata_and_symbols)
{
	void *h = _open("job_submit");
	int (*init)(void) = (int (*)(void))dlsym(h, "init");
	int (*fini)(void) = (int (*)(void))dlsym(h, "fini");

	_check_metadata(h, "job_submit/azrdma");
	ck_assert_ptr_nonnull(dlsym(h, "job_submit"));
	ck_assert_ptr_nonnull(dlsym(h, "job_modify"));
	_use_conf("conf/valid-hbv3.conf");
	ck_assert_int_eq(init(), SLURM_SUCCESS);
	ck_assert_int_eq(fini(), SLURM_SUCCESS);
	dlclose(h);
}
END_TEST

START_TEST(node_features_module_exports_every_symbol_its_release_requires)
{
	static const char *const syms[] = {
		"node_features_p_boot_time", "node_features_p_changeable_feature",
		"node_features_p_job_valid", "node_features_p_job_xlate",
		"node_features_p_get_node_bitmap", "node_features_p_overlap",
		"node_features_p_node_set", "node_features_p_node_state",
		"node_features_p_node_xlate", "node_features_p_node_xlate2",
		"node_features_p_user_update", "node_features_p_get_config",
		"node_features_p_job_features_need_reboot",
#if SL_NF_HAS_GET_NODE
		"node_features_p_get_node", "node_features_p_node_power",
		"node_features_p_node_update",
		"node_features_p_node_update_valid",
		"node_features_p_step_config",
#endif
#if SL_NF_HAS_REBOOT_WEIGHT
		"node_features_p_reboot_weight",
#endif
#if SL_NF_HAS_RECONFIG
		"node_features_p_reconfig",
#endif
		NULL};
	void *h = _open("node_features");

	_check_metadata(h, "node_features/azrdma");
	for (size_t i = 0; syms[i]; i++)
		ck_assert_msg(dlsym(h, syms[i]) != NULL, "missing %s", syms[i]);
#if !SL_NF_HAS_GET_NODE
	/* Nothing may hang on a hook this release never calls. */
	ck_assert_ptr_null(dlsym(h, "node_features_p_get_node"));
#endif
	dlclose(h);
}
END_TEST

/* Slurm's xfree for the strings the plugin hands back. */
extern void slurm_xfree(void **p);

START_TEST(node_features_entry_points_follow_the_image_rules)
{
	void *h = _open("node_features");
	int (*init)(void) = (int (*)(void))dlsym(h, "init");
	int (*fini)(void) = (int (*)(void))dlsym(h, "fini");
	bool (*changeable)(char *) =
		(bool (*)(char *))dlsym(h, "node_features_p_changeable_feature");
#if SL_NF_JOB_HAS_FEATURE_LIST
	int (*job_valid_fn)(char *, sl_list_t) =
		(int (*)(char *, sl_list_t))dlsym(h,
						   "node_features_p_job_valid");
	char *(*job_xlate_fn)(char *, sl_list_t, bitstr_t *) =
		(char *(*)(char *, sl_list_t, bitstr_t *))dlsym(
			h, "node_features_p_job_xlate");
#define job_valid(f) job_valid_fn((f), NULL)
#define job_xlate(f) job_xlate_fn((f), NULL, NULL)
#else
	int (*job_valid)(char *) =
		(int (*)(char *))dlsym(h, "node_features_p_job_valid");
	char *(*job_xlate)(char *) =
		(char *(*)(char *))dlsym(h, "node_features_p_job_xlate");
#endif
	char *(*xlate)(char *, char *, char *, int) =
		(char *(*)(char *, char *, char *, int))dlsym(
			h, "node_features_p_node_xlate");
	bool (*need_reboot)(char *) = (bool (*)(char *))dlsym(
		h, "node_features_p_job_features_need_reboot");
	char *s;

	_use_conf("conf/valid-hbv3.conf");
	ck_assert_int_eq(init(), SLURM_SUCCESS);
	ck_assert(changeable("img_alma"));
	ck_assert(changeable("img_ubuntu"));
	ck_assert(!changeable("img_centos"));
	ck_assert(!changeable("hb0"));
	/* A new image is a new disk: never without a (power-save) boot. */
	ck_assert(need_reboot("img_ubuntu"));
	ck_assert_int_eq(job_valid("rdma&img_ubuntu"), SLURM_SUCCESS);
	ck_assert_int_eq(job_valid("[hb0|hb1]"), SLURM_SUCCESS);
	ck_assert_int_eq(job_valid("img_alma&img_ubuntu"),
			 ESLURM_INVALID_FEATURE);
	ck_assert_int_eq(job_valid("img_centos"), ESLURM_INVALID_FEATURE);
	ck_assert_int_eq(job_valid("img_alma|rdma"), ESLURM_INVALID_FEATURE);

	s = job_xlate("rdma&img_ubuntu");
	ck_assert_str_eq(s, "img_ubuntu");
	slurm_xfree((void **)&s);
	ck_assert_ptr_null(job_xlate("rdma"));

	/* new active image + the old non-image features, no duplicates */
	s = xlate("img_ubuntu,hb0", "azure,hb0,hb120rs_v3,rdma,ib,img_alma",
		  "azure,hb0,img_alma,img_ubuntu", 0);
	ck_assert_str_eq(s, "img_ubuntu,hb0,azure,hb120rs_v3,rdma,ib");
	slurm_xfree((void **)&s);

	ck_assert_int_eq(fini(), SLURM_SUCCESS);
	dlclose(h);
}
END_TEST

#if SL_NF_HAS_GET_NODE
START_TEST(node_features_refuses_two_active_images_where_slurm_asks)
{
	void *h = _open("node_features");
	int (*init)(void) = (int (*)(void))dlsym(h, "init");
	int (*fini)(void) = (int (*)(void))dlsym(h, "fini");
	bool (*power)(void) =
		(bool (*)(void))dlsym(h, "node_features_p_node_power");
	bool (*update_valid)(void *, update_node_msg_t *) =
		(bool (*)(void *, update_node_msg_t *))dlsym(
			h, "node_features_p_node_update_valid");
	update_node_msg_t upd = {0};

	_use_conf("conf/valid-hbv3.conf");
	ck_assert_int_eq(init(), SLURM_SUCCESS);
	ck_assert(power());
	/* scontrol update node ActiveFeatures=: one known image at most */
	ck_assert(update_valid(NULL, &upd));
	upd.features_act = "azure,hb0,img_alma";
	ck_assert(update_valid(NULL, &upd));
	upd.features_act = "img_alma,img_ubuntu";
	ck_assert(!update_valid(NULL, &upd));
	upd.features_act = "hb0,img_centos";
	ck_assert(!update_valid(NULL, &upd));
	ck_assert_int_eq(fini(), SLURM_SUCCESS);
	dlclose(h);
}
END_TEST
#endif

START_TEST(plugin_init_refuses_a_broken_azrdma_conf)
{
	void *h = _open("job_submit");
	int (*init)(void) = (int (*)(void))dlsym(h, "init");

	setenv("AZRDMA_CONF",
	       tu_write("broken.conf", "Cloud=Moon\n", 0644), 1);
	ck_assert_int_eq(init(), SLURM_ERROR);
	dlclose(h);
}
END_TEST

START_TEST(spank_module_is_a_spank_plugin)
{
	void *h = _open("spank");
	const char *name = dlsym(h, "plugin_name");
	const uint32_t *version = dlsym(h, "plugin_version");

	ck_assert_ptr_nonnull(name);
	ck_assert_str_eq(name, "azrdma");
	ck_assert_ptr_nonnull(version);
	/* spank plugins must match major.minor only; ours match exactly. */
	ck_assert_uint_eq(*version, SLURM_VERSION_NUMBER);
	ck_assert_ptr_nonnull(dlsym(h, "slurm_spank_init"));
	dlclose(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("plugins");
	TCase *tc = tcase_create("plugins");

	tcase_add_test(tc, job_submit_module_has_metadata_and_symbols);
	tcase_add_test(
		tc, node_features_module_exports_every_symbol_its_release_requires);
	tcase_add_test(tc, node_features_entry_points_follow_the_image_rules);
#if SL_NF_HAS_GET_NODE
	tcase_add_test(tc,
		       node_features_refuses_two_active_images_where_slurm_asks);
#endif
	tcase_add_test(tc, plugin_init_refuses_a_broken_azrdma_conf);
	tcase_add_test(tc, spank_module_is_a_spank_plugin);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
