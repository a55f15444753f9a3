/*
 * test_healthcheck.c - azrdma-healthcheck's checks on the captured device
 * trees of testsuite/data/sysfs, and its drain rule.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "catalog.h"
#include "healthcheck_checks.h"
#include "testutil.h"

#define TREE(name) TEST_DATA_DIR "/sysfs/" name

static struct catalog *_cat;
static char _detail[512];

static void _setup(void)
{
	ck_assert_int_eq(catalog_new(&_cat), AZ_OK);
	_detail[0] = '\0';
}

static void _teardown(void)
{
	catalog_free(_cat);
}

static struct hc_iface _iface(const char *name, const char *addr, bool up,
                              bool running)
{
	struct hc_iface i = {.up = up, .running = running};

	snprintf(i.name, sizeof(i.name), "%s", name);
	ck_assert_int_eq(inet_pton(AF_INET, addr, &i.addr), 1);
	return i;
}

/* A node of size under tree, with eth0 and a healthy RDMA interface. */
static struct hc_ctx _ctx(const char *tree, const char *size,
                          struct hc_iface *ifaces)
{
	struct hc_ctx ctx = {.root = tree,
	                     .size = catalog_find(_cat, size),
	                     .ifaces = ifaces,
	                     .iface_count = 2,
	                     .memlock = RLIM_INFINITY};

	ck_assert_ptr_nonnull(ctx.size);
	ifaces[0] = _iface("eth0", "10.123.0.4", true, true);
	ifaces[1] = _iface(ctx.size->rdma == RDMA_ND ? "eth1" : "ib0",
	                   "172.16.1.3", true, true);
	return ctx;
}

/* Run every check that applies; the first failure's name, or NULL. */
static const char *_first_failure(const struct hc_ctx *ctx)
{
	size_t n;
	const struct hc_check *c = hc_checks(&n);

	for (size_t i = 0; i < n; i++) {
		if (!hc_check_applies(&c[i], ctx->size))
			continue;
		_detail[0] = '\0';
		if (c[i].fn(ctx, _detail, sizeof(_detail)) == HC_FAIL)
			return c[i].name;
	}
	return NULL;
}

START_TEST(healthy_hbv3_passes_every_check)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("ib-healthy"), "HB120rs_v3", ifs);

	ck_assert_ptr_null(_first_failure(&ctx));
	ck_assert_int_eq(hc_ib_port(&ctx, _detail, sizeof(_detail)), HC_PASS);
	ck_assert_int_eq(hc_ib_pkey(&ctx, _detail, sizeof(_detail)), HC_PASS);
}
END_TEST

START_TEST(port_down_names_the_port_and_its_state)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("ib-port-down"), "HB120rs_v3", ifs);

	ck_assert_str_eq(_first_failure(&ctx), "ib_port");
	ck_assert_str_eq(_detail, "no port is ACTIVE (LinkUp): mlx5_ib0 "
	                          "port 1 is DOWN (Polling)");
}
END_TEST

START_TEST(wrong_rate_names_the_rate_the_size_needs)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("ib-wrong-rate"), "HB120rs_v3", ifs);

	ck_assert_str_eq(_first_failure(&ctx), "ib_port");
	ck_assert_str_eq(_detail, "mlx5_ib0 port 1 runs at 100 Gb/sec, "
	                          "Standard_HB120rs_v3 needs 200");
	/* The same port is right for an EDR size. */
	ctx.size = catalog_find(_cat, "HC44rs");
	ck_assert_int_eq(hc_ib_port(&ctx, _detail, sizeof(_detail)), HC_PASS);
}
END_TEST

START_TEST(ethernet_port_of_the_an_nic_does_not_count)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("ib-port-down"), "HB120rs_v3", ifs);

	/* mlx5_an0 is ACTIVE at 40 Gb/sec but Ethernet: still no IB port. */
	ctx.size = catalog_find(_cat, "HB120rs_v3");
	ck_assert_int_eq(hc_ib_port(&ctx, _detail, sizeof(_detail)), HC_FAIL);
	ck_assert_ptr_null(strstr(_detail, "mlx5_an0"));
}
END_TEST

START_TEST(no_device_fails_the_device_check_first)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("ib-no-device"), "HB120rs_v3", ifs);

	ck_assert_str_eq(_first_failure(&ctx), "ib_device");
	ck_assert_ptr_nonnull(strstr(_detail, "no InfiniBand device"));
	ck_assert_int_eq(hc_ib_port(&ctx, _detail, sizeof(_detail)), HC_FAIL);
	ck_assert_str_eq(_detail, "no InfiniBand port in "
	                          "/sys/class/infiniband");
}
END_TEST

START_TEST(device_without_verbs_interface_fails)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("ib-no-verbs"), "HB120rs_v3", ifs);

	/* Only the AN NIC (Ethernet) has a verbs device; mlx5_ib0 none. */
	ck_assert_str_eq(_first_failure(&ctx), "ib_device");
	ck_assert_str_eq(_detail, "mlx5_ib0 has no user verbs device in "
	                          "/sys/class/infiniband_verbs (ib_uverbs not "
	                          "loaded?)");
}
END_TEST

START_TEST(missing_root_counts_as_no_device)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("does-not-exist"), "HB120rs_v3", ifs);

	ck_assert_str_eq(_first_failure(&ctx), "ib_device");
}
END_TEST

START_TEST(default_partition_alone_is_no_tenant_pkey)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("ib-no-pkey"), "HB120rs_v3", ifs);

	ck_assert_str_eq(_first_failure(&ctx), "ib_pkey");
	ck_assert_str_eq(_detail, "no tenant partition key on mlx5_ib0 port 1 "
	                          "(pkeys: 0x7fff, 0x0000)");
}
END_TEST

START_TEST(healthy_nd_node_passes_every_check)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("nd-healthy"), "A9", ifs);

	ck_assert_ptr_null(_first_failure(&ctx));
	/* IB checks do not apply to Network Direct sizes, and vice versa. */
	ck_assert(!hc_check_applies(hc_check_find("ib_port"), ctx.size));
	ck_assert(hc_check_applies(hc_check_find("dat_conf"), ctx.size));
	ctx.size = catalog_find(_cat, "HB120rs_v3");
	ck_assert(!hc_check_applies(hc_check_find("dat_conf"), ctx.size));
	ctx.size = catalog_find(_cat, "D2s_v5");
	ck_assert(!hc_check_applies(hc_check_find("memlock"), ctx.size));
}
END_TEST

START_TEST(nd_without_device_names_dev_hvnd_rdma)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("nd-no-device"), "H16r", ifs);

	ck_assert_str_eq(_first_failure(&ctx), "nd_device");
	ck_assert_str_eq(_detail, "/dev/hvnd_rdma is missing (Network Direct "
	                          "device)");
	ck_assert_int_eq(hc_nd_driver(&ctx, _detail, sizeof(_detail)), HC_FAIL);
	ck_assert_ptr_nonnull(strstr(_detail, "hv_network_direct"));
}
END_TEST

START_TEST(dat_conf_without_ofa_v2_ib0_fails)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("nd-no-dat-entry"), "A8", ifs);

	ck_assert_str_eq(_first_failure(&ctx), "dat_conf");
	ck_assert_str_eq(_detail, "no ofa-v2-ib0 entry in /etc/dat.conf or "
	                          "/etc/rdma/dat.conf (DAPL provider)");
	ctx.root = TREE("ib-healthy");
	ck_assert_int_eq(hc_dat_conf(&ctx, _detail, sizeof(_detail)), HC_FAIL);
	ck_assert_ptr_nonnull(strstr(_detail, "no /etc/dat.conf"));
}
END_TEST

START_TEST(dat_conf_naming_another_address_is_stale)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("nd-healthy"), "A9", ifs);

	ifs[1] = _iface("eth1", "172.16.2.9", true, true);
	ck_assert_int_eq(hc_dat_conf(&ctx, _detail, sizeof(_detail)), HC_FAIL);
	ck_assert_str_eq(_detail, "/etc/dat.conf: ofa-v2-ib0 names 172.16.1.3, "
	                          "but eth1 has 172.16.2.9");
}
END_TEST

START_TEST(rdma_interface_down_or_missing_is_named)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("ib-healthy"), "HB120rs_v3", ifs);

	ifs[1].up = false;
	ck_assert_str_eq(_first_failure(&ctx), "rdma_interface");
	ck_assert_str_eq(_detail, "ib0 (172.16.1.3) is down");
	ifs[1].up = true;
	ifs[1].running = false;
	ck_assert_int_eq(hc_rdma_interface(&ctx, _detail, sizeof(_detail)),
	                 HC_FAIL);
	ck_assert_str_eq(_detail, "ib0 (172.16.1.3) has no carrier");
	ctx.iface_count = 1;
	ck_assert_int_eq(hc_rdma_interface(&ctx, _detail, sizeof(_detail)),
	                 HC_FAIL);
	ck_assert_ptr_nonnull(strstr(_detail, "172.16.0.0/16"));
	/* 172.17/16 is not the RDMA network. */
	ifs[1] = _iface("ib0", "172.17.1.3", true, true);
	ctx.iface_count = 2;
	ck_assert_int_eq(hc_rdma_interface(&ctx, _detail, sizeof(_detail)),
	                 HC_FAIL);
}
END_TEST

START_TEST(memlock_must_be_unlimited)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("ib-healthy"), "HB120rs_v3", ifs);

	ctx.memlock = 8u << 20;
	ck_assert_str_eq(_first_failure(&ctx), "memlock");
	ck_assert_ptr_nonnull(strstr(_detail, "8192 KiB, not unlimited"));
	/* --min-memlock: a finite limit at or above it is enough. */
	ctx.memlock_min = 8u << 20;
	ck_assert_int_eq(hc_memlock(&ctx, _detail, sizeof(_detail)), HC_PASS);
	ctx.memlock_min = 16u << 20;
	ck_assert_int_eq(hc_memlock(&ctx, _detail, sizeof(_detail)), HC_FAIL);
	ck_assert_str_eq(_detail, "locked memory limit of slurmd is 8192 KiB, "
	                          "less than 16384 KiB");
	ctx.memlock = RLIM_INFINITY;
	ck_assert_int_eq(hc_memlock(&ctx, _detail, sizeof(_detail)), HC_PASS);
}
END_TEST

START_TEST(loopback_is_skipped_on_a_captured_tree)
{
	struct hc_iface ifs[2];
	struct hc_ctx ctx = _ctx(TREE("ib-healthy"), "HB120rs_v3", ifs);

	ck_assert_int_eq(hc_loopback(&ctx, _detail, sizeof(_detail)), HC_SKIP);
	ctx.loopback = true;
	ck_assert_int_eq(hc_loopback(&ctx, _detail, sizeof(_detail)), HC_SKIP);
	ck_assert_ptr_nonnull(strstr(_detail, "not the live system"));
}
END_TEST

/*
 * The verbs loopback against the real libibverbs, which reads sysfs under
 * $SYSFS_PATH and opens /dev/infiniband/uverbsN.  In a child (libibverbs
 * keeps its first sysfs path for the life of a process, and CK_FORK=no runs
 * every test in one) with a private mount namespace whose /dev is an empty
 * tmpfs: with_nodes adds uverbs0 and uverbs1 as the tree's "dev" files name
 * them (231:192, 231:193).  Returns false, with why in detail, when this
 * machine cannot make that namespace (not root).
 */
static bool _loopback_in_child(const char *sysfs, bool with_nodes,
                               enum hc_result *res, char *detail, size_t len)
{
	int fds[2];
	pid_t pid;
	ssize_t got;
	char buf[600];

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct hc_ctx ctx = {.root = "/", .loopback = true};
		char out[600], d[512] = "";
		enum hc_result r;
		int n;

		close(fds[0]);
		if (unshare(CLONE_NEWNS)
		    || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL)
		    || mount("tmpfs", "/dev", "tmpfs", 0, "mode=0755")
		    || mknod("/dev/null", S_IFCHR | 0666, makedev(1, 3))
		    || (with_nodes
		        && (mkdir("/dev/infiniband", 0755)
		            || mknod("/dev/infiniband/uverbs0", S_IFCHR | 0666,
		                     makedev(231, 192))
		            || mknod("/dev/infiniband/uverbs1", S_IFCHR | 0666,
		                     makedev(231, 193))))) {
			n = snprintf(out, sizeof(out),
			             "S no private /dev here: %m");
		} else {
			setenv("SYSFS_PATH", sysfs, 1);
			r = hc_loopback(&ctx, d, sizeof(d));
			n = snprintf(out, sizeof(out), "%d %s", (int)r, d);
		}
		if (write(fds[1], out, (size_t)n) != n)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	got = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	ck_assert_int_gt(got, 2);
	buf[got] = '\0';
	snprintf(detail, len, "%.500s", buf + 2);
	if (buf[0] == 'S')
		return false;
	*res = (enum hc_result)(buf[0] - '0');
	return true;
}

START_TEST(loopback_with_devices_listed_but_no_device_nodes)
{
	enum hc_result r;
	char d[512];

	/* The HB120rs_v3 tree, its /dev/infiniband missing. */
	if (!_loopback_in_child(TREE("ib-healthy/sys"), false, &r, d,
	                        sizeof(d))) {
		fprintf(stderr, "skipped: %s\n", d);
		return;
	}
	ck_assert_int_eq(r, HC_FAIL);
	ck_assert_str_eq(d, "libibverbs finds no RDMA device");
}
END_TEST

START_TEST(loopback_with_device_nodes_but_no_kernel_driver)
{
	enum hc_result r;
	char d[512];

	/* Only where the kernel has no verbs at all can 231:19x lead
	 * nowhere; on an RDMA machine they are its real devices. */
	if (access("/sys/class/infiniband_verbs", F_OK) == 0) {
		fprintf(stderr, "skipped: this kernel has verbs devices\n");
		return;
	}
	if (!_loopback_in_child(TREE("ib-healthy/sys"), true, &r, d,
	                        sizeof(d))) {
		fprintf(stderr, "skipped: %s\n", d);
		return;
	}
	/* The mlx5 provider claims both devices; open(2) finds no driver. */
	ck_assert_int_eq(r, HC_FAIL);
	ck_assert_str_eq(d, "libibverbs lists mlx5_an0, mlx5_ib0 but can open "
	                    "none of them (no kernel driver behind "
	                    "/dev/infiniband?)");
}
END_TEST

/* Whether sysfs shows an ACTIVE InfiniBand port (what the loopback needs). */
static bool _sysfs_has_active_ib_port(void)
{
	DIR *dir = opendir("/sys/class/infiniband");
	struct dirent *e;
	bool found = false;

	while (dir && !found && (e = readdir(dir))) {
		char path[512], state[64] = "", layer[64] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path),
		         "/sys/class/infiniband/%s/ports/1/state", e->d_name);
		if ((f = fopen(path, "r"))) {
			if (!fgets(state, sizeof(state), f))
				state[0] = '\0';
			fclose(f);
		}
		snprintf(path, sizeof(path),
		         "/sys/class/infiniband/%s/ports/1/link_layer",
		         e->d_name);
		if ((f = fopen(path, "r"))) {
			if (!fgets(layer, sizeof(layer), f))
				layer[0] = '\0';
			fclose(f);
		}
		found = strstr(state, "ACTIVE") && !strstr(layer, "Ethernet");
	}
	if (dir)
		closedir(dir);
	return found;
}

START_TEST(loopback_on_this_machine_follows_its_kernel)
{
	struct hc_ctx ctx = {.root = "/", .loopback = true};
	enum hc_result r = hc_loopback(&ctx, _detail, sizeof(_detail));

	if (access("/sys/class/infiniband_verbs/abi_version", R_OK) != 0) {
		/* No ib_uverbs (this build machine: no CONFIG_INFINIBAND). */
		ck_assert_int_eq(r, HC_SKIP);
		ck_assert_str_eq(_detail, "no kernel RDMA support");
	} else if (_sysfs_has_active_ib_port()) {
		/* A real HCA: the RDMA write loopback must work (no size, so
		 * no bandwidth bound). */
		ck_assert_msg(r == HC_PASS, "%s", _detail);
	} else {
		ck_assert_int_eq(r, HC_FAIL);
	}
}
END_TEST

START_TEST(reason_prefix_marks_only_our_checks)
{
	ck_assert(hc_reason_is_ours("azrdma: ib_port: mlx5_ib0 down"));
	ck_assert(hc_reason_is_ours("azrdma: watchdog: ib_port hung"));
	ck_assert(!hc_reason_is_ours("azrdma: AllocationFailed: no room"));
	ck_assert(!hc_reason_is_ours("NHC: check_hw_ib: no port"));
	ck_assert(!hc_reason_is_ours("admin maintenance"));
	/* azrdma-pingpong's Prolog drains: a pair, not a local check. */
	ck_assert(!hc_reason_is_ours("azrdma-prolog: f1n6 <-> f2n1: no RDMA "
	                             "path from 172.16.0.4 to 172.16.0.6"));
	ck_assert(!hc_reason_is_ours("azrdma: ib_port"));
	ck_assert(!hc_reason_is_ours(NULL));
}
END_TEST

START_TEST(failure_drains_a_healthy_looking_node)
{
	const char *r = "azrdma: rdma_interface: ib0 (172.16.1.3) is down";

	ck_assert_int_eq(hc_decide(NODE_STATE_IDLE, NULL, r), HC_DRAIN);
	ck_assert_int_eq(hc_decide(NODE_STATE_ALLOCATED, NULL, r), HC_DRAIN);
	/* Our own drain for another check gets the new reason. */
	ck_assert_int_eq(hc_decide(NODE_STATE_IDLE | NODE_STATE_DRAIN,
	                           "azrdma: memlock: low", r),
	                 HC_DRAIN);
	/* The same reason again: nothing to do. */
	ck_assert_int_eq(hc_decide(NODE_STATE_IDLE | NODE_STATE_DRAIN, r, r),
	                 HC_NOTHING);
}
END_TEST

START_TEST(admin_drain_and_down_nodes_are_left_alone)
{
	const char *r = "azrdma: ib_port: down";

	ck_assert_int_eq(hc_decide(NODE_STATE_IDLE | NODE_STATE_DRAIN,
	                           "admin maintenance", r),
	                 HC_LEAVE_ALONE);
	ck_assert_int_eq(hc_decide(NODE_STATE_IDLE | NODE_STATE_DRAIN, NULL, r),
	                 HC_LEAVE_ALONE);
	ck_assert_int_eq(hc_decide(NODE_STATE_DOWN, "Not responding", r),
	                 HC_LEAVE_ALONE);
	/* Healthy again, but the drain is not ours: still not resumed. */
	ck_assert_int_eq(hc_decide(NODE_STATE_IDLE | NODE_STATE_DRAIN,
	                           "admin maintenance", NULL),
	                 HC_NOTHING);
}
END_TEST

START_TEST(healthy_again_resumes_only_our_drain)
{
	ck_assert_int_eq(hc_decide(NODE_STATE_IDLE | NODE_STATE_DRAIN,
	                           "azrdma: ib_port: down", NULL),
	                 HC_RESUME);
	ck_assert_int_eq(hc_decide(NODE_STATE_IDLE, NULL, NULL), HC_NOTHING);
	ck_assert_int_eq(hc_decide(NODE_STATE_DOWN | NODE_STATE_DRAIN,
	                           "azrdma: ib_port: down", NULL),
	                 HC_NOTHING);
}
END_TEST

START_TEST(every_check_has_a_name_and_a_line)
{
	size_t n;
	const struct hc_check *c = hc_checks(&n);

	ck_assert_uint_ge(n, 9);
	for (size_t i = 0; i < n; i++) {
		ck_assert_ptr_eq(hc_check_find(c[i].name), &c[i]);
		ck_assert_uint_gt(strlen(c[i].what), 10);
		ck_assert_ptr_null(strchr(c[i].name, ':'));
	}
	ck_assert_ptr_null(hc_check_find("nope"));
}
END_TEST

START_TEST(ifaces_read_lists_loopback)
{
	struct hc_iface *ifs = NULL;
	size_t n = 0;
	char err[AZ_ERRLEN];
	bool lo = false;

	ck_assert_int_eq(hc_ifaces_read(&ifs, &n, err, sizeof(err)), AZ_OK);
	for (size_t i = 0; i < n; i++)
		lo |= ntohl(ifs[i].addr.s_addr) == 0x7f000001u && ifs[i].up;
	ck_assert(lo);
	free(ifs);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("healthcheck");
	TCase *tc = tcase_create("healthcheck");

	tcase_add_checked_fixture(tc, _setup, _teardown);
	tcase_add_test(tc, healthy_hbv3_passes_every_check);
	tcase_add_test(tc, port_down_names_the_port_and_its_state);
	tcase_add_test(tc, wrong_rate_names_the_rate_the_size_needs);
	tcase_add_test(tc, ethernet_port_of_the_an_nic_does_not_count);
	tcase_add_test(tc, no_device_fails_the_device_check_first);
	tcase_add_test(tc, missing_root_counts_as_no_device);
	tcase_add_test(tc, device_without_verbs_interface_fails);
	tcase_add_test(tc, default_partition_alone_is_no_tenant_pkey);
	tcase_add_test(tc, healthy_nd_node_passes_every_check);
	tcase_add_test(tc, nd_without_device_names_dev_hvnd_rdma);
	tcase_add_test(tc, dat_conf_without_ofa_v2_ib0_fails);
	tcase_add_test(tc, dat_conf_naming_another_address_is_stale);
	tcase_add_test(tc, rdma_interface_down_or_missing_is_named);
	tcase_add_test(tc, memlock_must_be_unlimited);
	tcase_add_test(tc, loopback_is_skipped_on_a_captured_tree);
	/* The children first: no test before them may start libibverbs
	 * in this process (CK_FORK=no). */
	tcase_add_test(tc, loopback_with_devices_listed_but_no_device_nodes);
	tcase_add_test(tc, loopback_with_device_nodes_but_no_kernel_driver);
	tcase_add_test(tc, loopback_on_this_machine_follows_its_kernel);
	tcase_add_test(tc, reason_prefix_marks_only_our_checks);
	tcase_add_test(tc, failure_drains_a_healthy_looking_node);
	tcase_add_test(tc, admin_drain_and_down_nodes_are_left_alone);
	tcase_add_test(tc, healthy_again_resumes_only_our_drain);
	tcase_add_test(tc, every_check_has_a_name_and_a_line);
	tcase_add_test(tc, ifaces_read_lists_loopback);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
