/*
 * test_spank.c - the parts of spank/azrdma that run without slurmstepd:
 * the module loads as a SPANK plugin, and the tenant partition key for
 * UCX_IB_PKEY is read from a port's two keys as Azure documents.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

typedef int (*pkey_fn)(const char *, const char *, const char *, unsigned *);

static void *_module;
static pkey_fn _pkey;

static void _setup(void)
{
	char path[1024];

	if (!dlopen("libslurm.so", RTLD_NOW | RTLD_GLOBAL))
		ck_abort_msg("dlopen libslurm.so: %s", dlerror());
	snprintf(path, sizeof(path),
	         "%s/src/plugins/spank/azrdma/.libs/spank_azrdma.so",
	         TEST_BUILD_DIR);
	_module = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	ck_assert_msg(_module != NULL, "dlopen %s: %s", path, dlerror());
	_pkey = (pkey_fn)dlsym(_module, "spank_azrdma_tenant_pkey");
	ck_assert_ptr_nonnull(_pkey);
}

static void _teardown(void)
{
	dlclose(_module);
}

/* <tmp>/<root>/sys/class/infiniband/<dev>/ports/1/pkeys/{0,1}. */
static const char *_port(const char *root, const char *dev, const char *k0,
                         const char *k1)
{
	static char base[512];
	char dir[768], file[800];
	const char *parts[] = {"sys",   "class", "infiniband", dev,
	                       "ports", "1",     "pkeys",      NULL};
	FILE *f;

	snprintf(base, sizeof(base), "%s/%s", tu_tmpdir(), root);
	snprintf(dir, sizeof(dir), "%s", base);
	mkdir(dir, 0755);
	for (int i = 0; parts[i]; i++) {
		strncat(dir, "/", sizeof(dir) - strlen(dir) - 1);
		strncat(dir, parts[i], sizeof(dir) - strlen(dir) - 1);
		mkdir(dir, 0755);
	}
	for (int i = 0; i < 2; i++) {
		const char *k = i ? k1 : k0;

		if (!k)
			continue;
		snprintf(file, sizeof(file), "%s/%d", dir, i);
		f = fopen(file, "w");
		ck_assert_ptr_nonnull(f);
		fprintf(f, "%s\n", k);
		fclose(f);
	}
	return base;
}

START_TEST(tenant_pkey_is_the_larger_key_without_the_membership_bit)
{
	const char *root = _port("a", "mlx5_ib0", "0x7fff", "0x800b");
	unsigned pkey = 0;

	ck_assert_int_eq(_pkey(root, "mlx5_ib0", "1", &pkey), 0);
	ck_assert_uint_eq(pkey, 0x000b);
}
END_TEST

START_TEST(tenant_pkey_works_whichever_slot_holds_it)
{
	const char *root = _port("b", "mlx5_ib0", "0x8003", "0x7fff");
	unsigned pkey = 0;

	ck_assert_int_eq(_pkey(root, "mlx5_ib0", "1", &pkey), 0);
	ck_assert_uint_eq(pkey, 0x0003);
}
END_TEST

START_TEST(no_device_or_only_empty_keys_give_no_pkey)
{
	const char *root = _port("c", "mlx5_ib0", "0x0000", NULL);
	unsigned pkey = 42;

	ck_assert_int_ne(_pkey(root, "mlx5_ib0", "1", &pkey), 0);
	ck_assert_int_ne(_pkey(root, "mlx5_ib7", "1", &pkey), 0);
	ck_assert_uint_eq(pkey, 42);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("spank");
	TCase *tc = tcase_create("spank");

	tcase_add_checked_fixture(tc, _setup, _teardown);
	tcase_add_test(
	        tc, tenant_pkey_is_the_larger_key_without_the_membership_bit);
	tcase_add_test(tc, tenant_pkey_works_whichever_slot_holds_it);
	tcase_add_test(tc, no_device_or_only_empty_keys_give_no_pkey);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
