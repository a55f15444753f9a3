/*
 * test_conf.c - azrdma.conf: every valid and invalid case, each reported
 * with file:line and a fix.
 */
#include <check.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "mpi_profile.h"
#include "testutil.h"

#define SUB "00000000-1111-2222-3333-444444444444"
#define SUBNET                                                                \
	"/subscriptions/" SUB "/resourceGroups/rg/providers/"                \
	"Microsoft.Network/virtualNetworks/vnet/subnets/compute"

/* A minimal valid file; tests append (or prepend) the lines they study. */
static const char *_with(const char *extra)
{
	static char text[8192];

	snprintf(text, sizeof(text),
		 "SubscriptionId=" SUB "\n"
		 "ResourceGroup=rg\n"
		 "Location=eastus\n"
		 "SubnetId=" SUBNET "\n"
		 "SshPublicKeyFile=%s/id_test.pub\n"
		 "Image=alma Urn=almalinux:almalinux-hpc:8_10-hpc-gen2:latest\n"
		 "%s",
		 TEST_DATA_DIR, extra);
	return text;
}

static const char *_domain_line =
	"Domain=hb0 Nodes=hb-[000-003] VmSize=Standard_HB120rs_v3\n";

struct result {
	enum az_rc rc;
	struct azrdma_conf *conf;
	struct conf_diags diags;
	char err[AZ_ERRLEN];
	const char *path;
};

static void _load_file(struct result *r, const char *path, unsigned flags)
{
	memset(r, 0, sizeof(*r));
	r->path = path;
	r->rc = conf_load(path, flags, &r->conf, &r->diags, r->err,
			  sizeof(r->err));
}

static void _load(struct result *r, const char *text, unsigned flags)
{
	_load_file(r, tu_write("azrdma.conf", text, 0644), flags);
}

static void _release(struct result *r)
{
	conf_free(r->conf);
	conf_diags_free(&r->diags);
}

/* The diagnostic that contains needle, or fail listing what there was. */
static const struct conf_diag *_find(const struct result *r,
				     const char *needle)
{
	for (size_t i = 0; i < r->diags.count; i++)
		if (strstr(r->diags.items[i].message, needle))
			return &r->diags.items[i];
	for (size_t i = 0; i < r->diags.count; i++)
		fprintf(stderr, "  diag: %s\n", r->diags.items[i].message);
	ck_abort_msg("no diagnostic contains '%s'", needle);
	return NULL;
}

/* Assert an error that names path:line and contains each needle. */
static void _expect_error(const struct result *r, int line, const char *n1,
			  const char *n2)
{
	char where[600];
	const struct conf_diag *d = _find(r, n1);

	ck_assert_int_eq(r->rc, AZ_ECONFIG);
	ck_assert_ptr_null(r->conf);
	ck_assert(d->is_error);
	snprintf(where, sizeof(where), "%s:%d: ", r->path, line);
	ck_assert_msg(!strncmp(d->message, where, strlen(where)),
		      "'%s' does not start with '%s'", d->message, where);
	if (n2)
		ck_assert_msg(strstr(d->message, n2), "'%s' lacks '%s'",
			      d->message, n2);
}

START_TEST(valid_hbv3_file_loads_domains_images_and_defaults)
{
	struct result r;
	const struct conf_domain *d;

	_load_file(&r, tu_fixture("conf/valid-hbv3.conf", "hbv3.conf"),
		   CONF_CHECK_FILES);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	ck_assert_uint_eq(r.diags.count, 0);
	ck_assert_str_eq(r.conf->cluster_name, "hpc");
	ck_assert_str_eq(r.conf->arm_endpoint, "https://management.azure.com");
	ck_assert_str_eq(r.conf->authority_host,
			 "https://login.microsoftonline.com");
	ck_assert_str_eq(r.conf->imds_endpoint, "http://169.254.169.254");
	ck_assert_str_eq(r.conf->compute_api_version, CONF_DEFAULT_COMPUTE_API);
	ck_assert_str_eq(r.conf->network_api_version, CONF_DEFAULT_NETWORK_API);
	ck_assert_uint_eq(r.conf->max_parallel_requests, 32);
	ck_assert_uint_eq(r.conf->rdma_partition_count, 2);
	ck_assert_str_eq(r.conf->rdma_partitions[1], "mpi");
	ck_assert_uint_eq(r.conf->tag_count, 2);
	ck_assert_str_eq(r.conf->tags[1].key, "costcenter");
	ck_assert_str_eq(r.conf->tags[1].value, "42");

	ck_assert_uint_eq(r.conf->domain_count, 2);
	d = conf_domain_find(r.conf, "hb0");
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(d->node_count, 100);
	ck_assert_str_eq(d->node_names[0], "hb-000");
	ck_assert_str_eq(d->node_names[99], "hb-099");
	ck_assert_str_eq(d->size->name, "Standard_HB120rs_v3");
	ck_assert_str_eq(d->availability_set, "hpc-hb0");
	ck_assert_str_eq(conf_domain_image(r.conf, d)->name, "alma");

	d = domain_for_node(r.conf, "hb-150");
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(d->name, "hb1");
	ck_assert_str_eq(d->availability_set, "hpc-fabric-b");
	ck_assert_str_eq(d->proximity_placement_group, "hpc-ppg");
	ck_assert_str_eq(conf_domain_image(r.conf, d)->name, "ubuntu");
	ck_assert_str_eq(conf_domain_image(r.conf, d)->urn,
			 "microsoft-dsvm:ubuntu-hpc:2204:latest");
	ck_assert_ptr_null(domain_for_node(r.conf, "hb-200"));
	_release(&r);
}
END_TEST

START_TEST(service_principal_with_private_secret_loads_and_warns_retired_size)
{
	struct result r;
	const struct conf_diag *d;

	tu_write("secret", "s3cr3t\n", 0600);
	_load_file(&r, tu_fixture("conf/valid-a9.conf", "a9.conf"),
		   CONF_CHECK_FILES);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	ck_assert_int_eq(r.conf->auth, AUTH_SERVICE_PRINCIPAL);
	ck_assert_int_eq(r.conf->suspend_action, SUSPEND_DELETE);
	ck_assert_str_eq(r.conf->tenant_id, "contoso.onmicrosoft.com");
	d = _find(&r, "retired Standard_A9 in 2021");
	ck_assert(!d->is_error);
	ck_assert_str_eq(r.conf->images[0].mpi, "intelmpi-dapl");
	ck_assert(r.conf->images[0].is_default);
	_release(&r);
}
END_TEST

START_TEST(keys_are_case_insensitive)
{
	struct result r;

	_load(&r,
	      "subscriptionid=" SUB " RESOURCEGROUP=rg location=eastus\n"
	      "subnetID=" SUBNET "\nsshpublickeyfile=" TEST_DATA_DIR
	      "/id_test.pub\nimage=x urn=a:b:c:d\n"
	      "domain=d0 nodes=n[1-2] vmsize=standard_hc44rs\n",
	      0);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	ck_assert_str_eq(r.conf->domains[0].size->name, "Standard_HC44rs");
	_release(&r);
}
END_TEST

START_TEST(unknown_key_names_line_and_suggests_the_right_one)
{
	struct result r;

	_load(&r, _with("MaxParalelRequests=4\n"), 0);
	_expect_error(&r, 7, "unknown key 'MaxParalelRequests'",
		      "did you mean 'MaxParallelRequests'");
	_release(&r);

	_load(&r, _with("Domain=hb0 Nodes=hb[1-2] VmSize=HB60rs Zone=1\n"), 0);
	_expect_error(&r, 7, "unknown key 'Zone' on a Domain line", NULL);
	_release(&r);
}
END_TEST

START_TEST(bad_enum_value_lists_the_accepted_values)
{
	struct result r;

	_load(&r, _with("Cloud=Azure\nSuspendAction=Stop\n"), 0);
	_expect_error(&r, 7, "Cloud=Azure",
		      "AzurePublic, AzureUSGovernment, AzureChinaCloud or "
		      "Custom");
	_expect_error(&r, 8, "SuspendAction=Stop", "Deallocate or Delete");
	_release(&r);
}
END_TEST

/* Issue 18 item 2: who may have nodes booted into another image. */
START_TEST(allow_user_boot_names_who_may_change_an_image)
{
	struct passwd *nobody = getpwnam("nobody");
	struct result r;

	ck_assert_ptr_nonnull(nobody);
	/* Without azrdma.conf, and by default, root and SlurmUser only. */
	ck_assert(conf_user_may_boot(NULL, 0, 990));
	ck_assert(conf_user_may_boot(NULL, 990, 990));
	ck_assert(!conf_user_may_boot(NULL, nobody->pw_uid, 990));
	_load(&r, _with(_domain_line), 0);
	ck_assert_int_eq(r.rc, AZ_OK);
	ck_assert(conf_user_may_boot(r.conf, 0, 990));
	ck_assert(conf_user_may_boot(r.conf, 990, 990));
	ck_assert(!conf_user_may_boot(r.conf, nobody->pw_uid, 990));
	_release(&r);

	_load(&r, _with("AllowUserBoot=alice,nobody\n"
	                "Domain=hb0 Nodes=hb-[000-003] VmSize=HB120rs_v3\n"),
	      0);
	ck_assert_int_eq(r.rc, AZ_OK);
	ck_assert(conf_user_may_boot(r.conf, nobody->pw_uid, 990));
	ck_assert(!conf_user_may_boot(r.conf, 4242424, 990));
	_release(&r);

	_load(&r, _with("AllowUserBoot=ALL\n"
	                "Domain=hb0 Nodes=hb-[000-003] VmSize=HB120rs_v3\n"),
	      0);
	ck_assert_int_eq(r.rc, AZ_OK);
	ck_assert(conf_user_may_boot(r.conf, 4242424, 990));
	_release(&r);

	_load(&r, _with("AllowUserBoot=alice,-rf\n"), 0);
	_expect_error(&r, 7, "AllowUserBoot: '-rf' is no user name",
	              "user names, or ALL");
	_release(&r);
}
END_TEST

START_TEST(bad_scalar_values_say_what_is_expected)
{
	struct result r;

	_load(&r,
	      "SubscriptionId=my-subscription\n"
	      "ResourceGroup=rg.\nLocation=East US\n"
	      "SubnetId=/subscriptions/x/virtualNetworks/v\n"
	      "SshPublicKeyFile=relative/key.pub\n"
	      "MaxParallelRequests=0\nAdminUsername=root\n"
	      "ComputeApiVersion=latest\nArmEndpoint=http://arm\n",
	      0);
	_expect_error(&r, 1, "SubscriptionId=my-subscription", "GUID");
	_expect_error(&r, 2, "ResourceGroup=rg.", "not ending in '.'");
	_expect_error(&r, 3, "Location=East", NULL);
	_expect_error(&r, 4, "SubnetId=", "virtualNetworks/<vnet>/subnets");
	_expect_error(&r, 5, "SshPublicKeyFile=relative/key.pub",
		      "absolute path");
	_expect_error(&r, 6, "MaxParallelRequests=0", "from 1 to 256");
	_expect_error(&r, 7, "AdminUsername=root", "reserved");
	_expect_error(&r, 8, "ComputeApiVersion=latest", "2024-11-01");
	_expect_error(&r, 9, "ArmEndpoint=http://arm", "https://");
	_release(&r);
}
END_TEST

START_TEST(node_in_two_domains_names_both_lines)
{
	struct result r;

	_load(&r,
	      _with("Domain=hb0 Nodes=hb-[000-010] VmSize=HB120rs_v3\n"
		    "Domain=hb1 Nodes=hb-[010-020] VmSize=HB120rs_v3\n"),
	      0);
	_expect_error(&r, 8, "node hb-010 is in Domain=hb1",
		      "already in Domain=hb0 (line 7)");
	_release(&r);
}
END_TEST

START_TEST(domain_larger_than_placement_cap_is_refused_with_split_advice)
{
	struct result r;

	_load(&r, _with("Domain=big Nodes=hb-[000-249] VmSize=HB120rs_v3\n"),
	      0);
	_expect_error(&r, 7, "Domain=big has 250 nodes",
		      "at most 200; split it");
	_release(&r);

	/* The classic A8/A9 RDMA network spans at most 50 VMs. */
	_load(&r, _with("Domain=cls Nodes=a9-[00-50] VmSize=A9\n"), 0);
	_expect_error(&r, 7, "Domain=cls has 51 nodes", "at most 50");
	_release(&r);
}
END_TEST

START_TEST(unknown_vm_size_says_how_to_describe_it)
{
	struct result r;

	_load(&r, _with("Domain=x0 Nodes=x[1-2] VmSize=Standard_ND96asr_v9\n"),
	      0);
	_expect_error(&r, 7, "unknown VM size Standard_ND96asr_v9",
		      "VmSize=Standard_ND96asr_v9 VCpus=<n> MemoryMB=<n> "
		      "Rdma=nd|ib");
	_release(&r);
}
END_TEST

START_TEST(domain_of_a_size_without_rdma_is_refused)
{
	struct result r;

	_load(&r, _with("Domain=plain Nodes=p[1-4] VmSize=Standard_A10\n"), 0);
	_expect_error(&r, 7, "Standard_A10 has no RDMA network",
		      "use an RDMA size");
	_release(&r);
}
END_TEST

START_TEST(missing_required_keys_are_each_reported)
{
	struct result r;

	_load(&r, "# nothing but a comment\nLocation=eastus\n", 0);
	_expect_error(&r, 2, "missing required key SubscriptionId",
		      "add a line SubscriptionId=");
	_expect_error(&r, 2, "missing required key ResourceGroup", NULL);
	_expect_error(&r, 2, "missing required key SubnetId", NULL);
	_expect_error(&r, 2, "missing required key SshPublicKeyFile", NULL);
	_expect_error(&r, 2, "no Domain= line", "Domain=hb0");
	_expect_error(&r, 2, "no Image= line", "Image=");
	ck_assert_uint_ge(r.diags.errors, 6);
	_release(&r);
}
END_TEST

START_TEST(service_principal_needs_tenant_client_and_secret)
{
	struct result r;

	_load(&r, _with("Auth=ServicePrincipal\n"), 0);
	_expect_error(&r, 7, "missing required key TenantId", NULL);
	_expect_error(&r, 7, "missing required key ClientId", NULL);
	_expect_error(&r, 7, "missing required key ClientSecretFile", NULL);
	_release(&r);

	_load(&r, _with("ClientSecretFile=/etc/slurm/x\n"), 0);
	_expect_error(&r, 7, "ClientSecretFile is only used with "
		      "Auth=ServicePrincipal", NULL);
	_release(&r);
}
END_TEST

START_TEST(secret_file_readable_by_group_or_others_is_refused)
{
	struct result r;
	const char *secret = tu_write("leaky-secret", "s3cr3t\n", 0640);
	char text[2048];

	snprintf(text, sizeof(text),
		 "Auth=ServicePrincipal TenantId=t ClientId="
		 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n"
		 "ClientSecretFile=%s\n%s",
		 secret, _domain_line);
	_load(&r, _with(text), CONF_CHECK_FILES);
	_expect_error(&r, 8, "ClientSecretFile", "chmod 600");
	_release(&r);

	/* Without CONF_CHECK_FILES (plugins on compute nodes) it is not read. */
	_load(&r, _with(text), 0);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	_release(&r);
}
END_TEST

START_TEST(custom_data_file_is_a_secret_too)
{
	struct result r;
	char text[1024];

	snprintf(text, sizeof(text), "CustomDataFile=%s\n%s",
		 tu_write("cloud-init.yaml", "#cloud-config\n", 0644),
		 _domain_line);
	_load(&r, _with(text), CONF_CHECK_FILES);
	_expect_error(&r, 7, "CustomDataFile", "mode 0644");
	_release(&r);
}
END_TEST

START_TEST(private_key_given_as_ssh_public_key_is_refused)
{
	struct result r;
	char text[1024];

	snprintf(text, sizeof(text),
		 "SubscriptionId=" SUB " ResourceGroup=rg Location=eastus\n"
		 "SubnetId=" SUBNET "\nSshPublicKeyFile=%s\n"
		 "Image=a Urn=a:b:c:d\n%s",
		 tu_write("id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\n",
			  0600),
		 _domain_line);
	_load(&r, text, CONF_CHECK_FILES);
	_expect_error(&r, 3, "does not hold an OpenSSH public key",
		      "private key");
	_release(&r);
}
END_TEST

START_TEST(world_writable_conf_is_refused)
{
	struct result r;
	const char *path = tu_write("open.conf", _with(_domain_line), 0644);

	chmod(path, 0666);
	_load_file(&r, path, 0);
	ck_assert_int_eq(r.rc, AZ_EPERM);
	ck_assert_ptr_null(r.conf);
	ck_assert_ptr_nonnull(strstr(r.err, "world-writable"));
	ck_assert_ptr_nonnull(strstr(r.err, "chmod o-w"));
	_release(&r);
}
END_TEST

START_TEST(every_error_is_reported_not_just_the_first)
{
	struct result r;

	_load(&r,
	      _with("Cloud=Moon\n"
		    "Domain=a Nodes=n[1-2] VmSize=Nope\n"
		    "Domain=b Nodes=n[2-3] VmSize=A10\n"),
	      0);
	ck_assert_uint_ge(r.diags.errors, 3);
	_find(&r, "Cloud=Moon");
	_find(&r, "unknown VM size Nope");
	_find(&r, "Standard_A10 has no RDMA");
	ck_assert_ptr_nonnull(strstr(r.err, "(and more)"));
	_release(&r);
}
END_TEST

START_TEST(vm_size_line_defines_a_size_a_domain_above_it_uses)
{
	struct result r;
	const struct vm_size *s;

	_load(&r,
	      _with("Domain=nd0 Nodes=nd[01-08] VmSize=Standard_ND40rs_v2\n"
		    "VmSize=Standard_ND40rs_v2 VCpus=40 MemoryMB=688128 Rdma=ib "
		    "IbRate=100 MaxLatencyUs=2.5 MinBandwidthMBs=11000 "
		    "MaxPerDomain=100\n"),
	      0);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	s = r.conf->domains[0].size;
	ck_assert_str_eq(s->name, "Standard_ND40rs_v2");
	ck_assert_str_eq(s->feature, "nd40rs_v2");
	ck_assert_uint_eq(s->vcpus, 40);
	ck_assert_int_eq(s->rdma, RDMA_IB);
	ck_assert_double_eq_tol(s->max_latency_us, 2.5, 1e-9);
	ck_assert_uint_eq(s->max_per_domain, 100);
	_release(&r);
}
END_TEST

START_TEST(vm_size_line_overrides_one_field_of_a_catalog_size)
{
	struct result r;
	const struct vm_size *s;

	_load(&r,
	      _with("VmSize=Standard_HB120rs_v3 MaxLatencyUs=1.5\n"
		    "VmSize=A9 Retired=no\n"
		    "Domain=cls0 Nodes=c[1-2] VmSize=A9\n"
		    "Domain=hb0 Nodes=h[1-2] VmSize=HB120rs_v3\n"),
	      0);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	s = catalog_find(r.conf->catalog, "hb120rs_v3");
	ck_assert_double_eq_tol(s->max_latency_us, 1.5, 1e-9);
	ck_assert_uint_eq(s->vcpus, 120); /* untouched */
	ck_assert_uint_eq(catalog_find(r.conf->catalog, "A9")->retired_year, 0);
	ck_assert_uint_eq(r.diags.count, 0); /* no retired-size warning */
	_release(&r);
}
END_TEST

START_TEST(new_vm_size_without_its_basics_is_refused)
{
	struct result r;

	_load(&r, _with("VmSize=Standard_X1 VCpus=4\n" "VmSize=HB60rs Rdma=fast\n"),
	      0);
	_expect_error(&r, 7, "VmSize=Standard_X1 is not in the catalog",
		      "VCpus, MemoryMB and Rdma");
	_expect_error(&r, 8, "bad value Rdma=fast", "none, nd or ib");
	_release(&r);
}
END_TEST

START_TEST(custom_cloud_requires_its_endpoints)
{
	struct result r;

	_load(&r, _with("Cloud=Custom\n"), 0);
	_expect_error(&r, 7, "missing required key ArmEndpoint", NULL);
	_expect_error(&r, 7, "missing required key ArmAudience", NULL);
	_release(&r);

	_load(&r,
	      _with("Cloud=Custom ArmEndpoint=https://127.0.0.1:8443/ "
		    "ArmAudience=https://management.azure.com/ "
		    "ImdsEndpoint=http://127.0.0.1:8080\n"
		    "Domain=hb0 Nodes=h[1-2] VmSize=HB60rs\n"),
	      0);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	ck_assert_str_eq(r.conf->arm_endpoint, "https://127.0.0.1:8443");
	ck_assert_str_eq(r.conf->arm_audience, "https://management.azure.com");
	ck_assert_str_eq(r.conf->imds_endpoint, "http://127.0.0.1:8080");
	_release(&r);
}
END_TEST

START_TEST(sovereign_cloud_gets_its_endpoints_and_refuses_overrides)
{
	struct result r;

	_load(&r, _with("Cloud=AzureUSGovernment\n" "Domain=hb0 Nodes=h1 VmSize=HB60rs\n"),
	      0);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	ck_assert_str_eq(r.conf->arm_endpoint,
			 "https://management.usgovcloudapi.net");
	ck_assert_str_eq(r.conf->authority_host,
			 "https://login.microsoftonline.us");
	_release(&r);

	_load(&r, _with("Cloud=AzureChinaCloud ArmEndpoint=https://x\n"), 0);
	_expect_error(&r, 7, "ArmEndpoint is only used with Cloud=Custom",
		      "AzureChinaCloud");
	_release(&r);
}
END_TEST

START_TEST(images_need_exactly_one_source_and_one_default)
{
	struct result r;

	_load(&r,
	      _with("Image=empty\n"
		    "Image=both Urn=a:b:c:d Id=/subscriptions/x/images/y\n"
		    "Image=badurn Urn=a:b:c\n"
		    "Image=alma Urn=a:b:c:d\n"),
	      0);
	_expect_error(&r, 7, "Image=empty needs Urn=", NULL);
	_expect_error(&r, 8, "Image=both has both Urn and Id", NULL);
	_expect_error(&r, 9, "Urn=a:b:c is not publisher:offer:sku:version",
		      NULL);
	_expect_error(&r, 10, "Image=alma is defined twice (first on line 6)",
		      NULL);
	_expect_error(&r, 7, "none is the default", "Default=yes");
	_release(&r);

	_load(&r,
	      _with("Image=b Urn=a:b:c:e Default=yes\n"
		    "Image=c Id=/subscriptions/x/images/c Default=yes\n"),
	      0);
	_expect_error(&r, 8, "Image=c is marked Default=yes",
		      "and so is Image=b (line 7)");
	_release(&r);
}
END_TEST

START_TEST(domain_image_and_mpi_profile_must_exist)
{
	struct result r;

	_load(&r,
	      _with("Image=other Urn=a:b:c:d Mpi=nompi\n"
		    "Domain=hb0 Nodes=h[1-2] VmSize=HB60rs Image=missing\n"),
	      0);
	_expect_error(&r, 7, "Mpi=nompi is not a known MPI profile",
		      "MpiProfile=nompi");
	_expect_error(&r, 8, "Image=missing is not defined", NULL);
	_release(&r);
}
END_TEST

START_TEST(mpi_profile_lines_add_and_override_profiles)
{
#define profiles                                                              \
	"MpiProfile=testworld Rdma=nd Set=OMPI_MCA_btl=self,tcp "             \
	"Set=OMPI_MCA_btl_tcp_if_include=172.16.0.0/16\n"                     \
	"MpiProfile=openmpi-ucx Rdma=ib Set=OMPI_MCA_pml=ucx\n"               \
	"Image=tw Urn=a:b:c:e Mpi=testworld Default=yes\n"
	struct result r;
	const struct conf_mpi_profile *p;

	_load(&r, _with(profiles "MpiProfile=empty\n" "MpiProfile=bad Set=NOEQUALS\n"),
	      0);
	_expect_error(&r, 10, "MpiProfile=empty sets nothing", NULL);
	_expect_error(&r, 11, "Set=NOEQUALS", "Set=NAME=value");
	_release(&r);

	_load(&r, _with(profiles "Domain=hb0 Nodes=h[1-2] VmSize=HB60rs\n"), 0);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	p = conf_mpi_profile_find(r.conf, "testworld");
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->env_count, 2);
	ck_assert_str_eq(p->env[0], "OMPI_MCA_btl=self,tcp");
	p = conf_mpi_profile_find(r.conf, "openmpi-ucx");
	ck_assert_uint_eq(p->env_count, 1);	/* the override wins */
	p = conf_mpi_profile_find(r.conf, "intelmpi-dapl");
	ck_assert_uint_eq(p->env_count, 3);	/* built-in still there */
	ck_assert_str_eq(p->env[1], "I_MPI_DAPL_PROVIDER=ofa-v2-ib0");
	_release(&r);
#undef profiles
}
END_TEST

/* What an interactive job carries to a node without azrdma.conf. */
START_TEST(mpi_profile_text_round_trips_and_refuses_what_is_not_name_value)
{
	struct conf_mpi_profile *list;
	size_t n;
	char err[256], *text, *big;
	const char *bad[] = {"=x\n", "1A=x\n", "A B=x\n", "A\n", "A=1\n\n",
	                     "A=1\nrm -rf /\n"};

	ck_assert_int_eq(mpi_profiles_builtin(&list, &n), AZ_OK);
	text = mpi_profile_env_text(&list[0]);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(strstr(text, list[0].env[0]) == text, "%s", text);
	ck_assert_ptr_nonnull(strstr(text, "\nAZRDMA_MPI_PROFILE="));
	ck_assert_int_eq(mpi_profile_env_text_check(text, err, sizeof(err)),
	                 AZ_OK);
	ck_assert_int_eq(mpi_profile_env_text_check("A=1\nB_2=x=y z", err,
	                                            sizeof(err)),
	                 AZ_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mpi_profile_env_text_check(bad[i], err,
		                                         sizeof(err))
		                      == AZ_EINVAL,
		              "accepted %s", bad[i]);
	ck_assert_ptr_nonnull(strstr(err, "line 2"));
	big = malloc(MPI_PROFILE_TEXT_MAX + 8);
	memset(big, 'A', MPI_PROFILE_TEXT_MAX + 7);
	big[1] = '=';
	big[MPI_PROFILE_TEXT_MAX + 7] = '\0';
	ck_assert_int_eq(mpi_profile_env_text_check(big, err, sizeof(err)),
	                 AZ_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "larger"));
	free(big);
	free(text);
	mpi_profiles_free(list, n);
}
END_TEST

START_TEST(domain_mpi_profile_is_the_images_else_the_sizes_default)
{
	struct result r;

	_load_file(&r, tu_fixture("conf/valid-hbv3.conf", "hbv3.conf"), 0);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	/* hb0: default image alma, Mpi=openmpi-ucx. */
	ck_assert_str_eq(conf_domain_mpi_profile(
				 r.conf, conf_domain_find(r.conf, "hb0"))
				 ->name,
			 "openmpi-ucx");
	/* hb1: image ubuntu names none; the IB default applies. */
	ck_assert_str_eq(conf_domain_mpi_profile(
				 r.conf, conf_domain_find(r.conf, "hb1"))
				 ->name,
			 "openmpi-ucx");
	_release(&r);

	_load(&r, _with("Domain=nd Nodes=a[1-2] VmSize=A9\n"), 0);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	ck_assert_str_eq(conf_domain_mpi_profile(
				 r.conf, conf_domain_find(r.conf, "nd"))
				 ->name,
			 "intelmpi-dapl");
	_release(&r);
}
END_TEST

START_TEST(global_key_set_twice_names_the_first_line)
{
	struct result r;

	_load(&r, _with("Location=westus\n"), 0);
	_expect_error(&r, 7, "Location is set again (first on line 3)", NULL);
	_release(&r);
}
END_TEST

START_TEST(two_domains_sharing_an_availability_set_are_refused)
{
	struct result r;

	_load(&r,
	      _with("Domain=a0 Nodes=a[1-2] VmSize=HB60rs AvailabilitySet=s\n"
		    "Domain=b0 Nodes=b[1-2] VmSize=HB60rs AvailabilitySet=s\n"),
	      0);
	_expect_error(&r, 8, "Domain=b0 uses AvailabilitySet=s",
		      "Domain=a0 (line 7)");
	_release(&r);
}
END_TEST

START_TEST(domain_named_like_its_size_feature_is_refused)
{
	struct result r;

	_load(&r, _with("Domain=a9 Nodes=a9-[1-2] VmSize=A9\n"), 0);
	_expect_error(&r, 7, "also the feature of its VM size", NULL);
	_release(&r);
}
END_TEST

START_TEST(domain_needs_nodes_and_size_and_valid_hostlist)
{
	struct result r;

	_load(&r,
	      _with("Domain=a0 VmSize=HB60rs\nDomain=b0 Nodes=b[1-2]\n"
		    "Domain=c0 Nodes=c[1-2 VmSize=HB60rs\n"),
	      0);
	_expect_error(&r, 7, "Domain=a0 needs Nodes=", NULL);
	_expect_error(&r, 8, "Domain=b0 needs VmSize=", NULL);
	_expect_error(&r, 9, "Nodes=c[1-2", "not a valid hostlist");
	_release(&r);
}
END_TEST

START_TEST(object_key_not_first_on_its_line_is_explained)
{
	struct result r;

	_load(&r, _with("Nodes=x[1-2] Domain=x0 VmSize=HB60rs\n"), 0);
	_expect_error(&r, 7, "Domain= must come first on its line", NULL);
	_release(&r);
}
END_TEST

START_TEST(token_without_equals_sign_is_reported)
{
	struct result r;

	_load(&r, _with("ResumeTimeout 600\n"), 0);
	_expect_error(&r, 7, "'ResumeTimeout' is not a Key=Value pair", NULL);
	_release(&r);
}
END_TEST

START_TEST(continuation_quotes_and_comments)
{
	struct result r;

	_load(&r,
	      _with("# a comment line\n"
		    "Domain=hb0 \\\n"
		    "   Nodes=h[1-2] \\\n"
		    "   VmSize=HB60rs   # trailing comment\n"
		    "Tags=\"note=has # hash\"\n"),
	      0);
	ck_assert_msg(r.rc == AZ_OK, "%s", r.err);
	ck_assert_uint_eq(r.conf->domains[0].node_count, 2);
	ck_assert_int_eq(r.conf->domains[0].line, 8);
	ck_assert_str_eq(r.conf->tags[0].value, "has # hash");
	_release(&r);
}
END_TEST

START_TEST(default_path_follows_azrdma_conf_then_slurm_conf)
{
	char *p;

	setenv("AZRDMA_CONF", "/opt/x/azrdma.conf", 1);
	setenv("SLURM_CONF", "/etc/slurm-test/slurm.conf", 1);
	p = conf_default_path();
	ck_assert_str_eq(p, "/opt/x/azrdma.conf");
	free(p);
	unsetenv("AZRDMA_CONF");
	p = conf_default_path();
	ck_assert_str_eq(p, "/etc/slurm-test/azrdma.conf");
	free(p);
	unsetenv("SLURM_CONF");
	p = conf_default_path();
	ck_assert_str_eq(p, "/etc/slurm/azrdma.conf");
	free(p);
}
END_TEST

START_TEST(missing_file_is_an_io_error_naming_it)
{
	struct result r;

	_load_file(&r, "/nonexistent/azrdma.conf", 0);
	ck_assert_int_eq(r.rc, AZ_EIO);
	ck_assert_ptr_nonnull(strstr(r.err, "/nonexistent/azrdma.conf"));
	_release(&r);
}
END_TEST

static Suite *_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("conf");

	tcase_add_test(tc, valid_hbv3_file_loads_domains_images_and_defaults);
	tcase_add_test(
		tc,
		service_principal_with_private_secret_loads_and_warns_retired_size);
	tcase_add_test(tc, keys_are_case_insensitive);
	tcase_add_test(tc, unknown_key_names_line_and_suggests_the_right_one);
	tcase_add_test(tc, bad_enum_value_lists_the_accepted_values);
	tcase_add_test(tc, bad_scalar_values_say_what_is_expected);
	tcase_add_test(tc, allow_user_boot_names_who_may_change_an_image);
	tcase_add_test(tc, node_in_two_domains_names_both_lines);
	tcase_add_test(
		tc,
		domain_larger_than_placement_cap_is_refused_with_split_advice);
	tcase_add_test(tc, unknown_vm_size_says_how_to_describe_it);
	tcase_add_test(tc, domain_of_a_size_without_rdma_is_refused);
	tcase_add_test(tc, missing_required_keys_are_each_reported);
	tcase_add_test(tc, service_principal_needs_tenant_client_and_secret);
	tcase_add_test(tc, secret_file_readable_by_group_or_others_is_refused);
	tcase_add_test(tc, custom_data_file_is_a_secret_too);
	tcase_add_test(tc, private_key_given_as_ssh_public_key_is_refused);
	tcase_add_test(tc, world_writable_conf_is_refused);
	tcase_add_test(tc, every_error_is_reported_not_just_the_first);
	tcase_add_test(tc, vm_size_line_defines_a_size_a_domain_above_it_uses);
	tcase_add_test(tc, vm_size_line_overrides_one_field_of_a_catalog_size);
	tcase_add_test(tc, new_vm_size_without_its_basics_is_refused);
	tcase_add_test(tc, custom_cloud_requires_its_endpoints);
	tcase_add_test(tc,
		       sovereign_cloud_gets_its_endpoints_and_refuses_overrides);
	tcase_add_test(tc, images_need_exactly_one_source_and_one_default);
	tcase_add_test(tc, domain_image_and_mpi_profile_must_exist);
	tcase_add_test(tc, mpi_profile_lines_add_and_override_profiles);
	tcase_add_test(tc, global_key_set_twice_names_the_first_line);
	tcase_add_test(tc, two_domains_sharing_an_availability_set_are_refused);
	tcase_add_test(tc, domain_named_like_its_size_feature_is_refused);
	tcase_add_test(tc, domain_needs_nodes_and_size_and_valid_hostlist);
	tcase_add_test(tc, object_key_not_first_on_its_line_is_explained);
	tcase_add_test(tc, token_without_equals_sign_is_reported);
	tcase_add_test(tc, continuation_quotes_and_comments);
	tcase_add_test(tc, default_path_follows_azrdma_conf_then_slurm_conf);
	tcase_add_test(tc, missing_file_is_an_io_error_naming_it);
	tcase_add_test(tc, domain_mpi_profile_is_the_images_else_the_sizes_default);
	tcase_add_test(tc, mpi_profile_text_round_trips_and_refuses_what_is_not_name_value);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(_suite());
}
