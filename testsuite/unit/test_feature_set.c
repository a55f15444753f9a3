/*
 * test_feature_set.c - node features from azrdma.conf and the rules for
 * image features in a job's constraint.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "feature_set.h"
#include "testutil.h"

static struct azrdma_conf *_conf(void)
{
	struct azrdma_conf *c = NULL;
	char err[AZ_ERRLEN];
	char text[2048];

	snprintf(text, sizeof(text),
		 "SubscriptionId=00000000-1111-2222-3333-444444444444\n"
		 "ResourceGroup=rg Location=eastus\n"
		 "SubnetId=/subscriptions/x/resourceGroups/rg/providers/"
		 "Microsoft.Network/virtualNetworks/v/subnets/s\n"
		 "SshPublicKeyFile=%s/id_test.pub\n"
		 "Image=alma Urn=a:b:c:d Default=yes\n"
		 "Image=sles Urn=SUSE:SLES-HPC:12-SP5:latest\n"
		 "Domain=hb0 Nodes=hb[0-3] VmSize=HB120rs_v3\n"
		 "Domain=cls0 Nodes=a9-[0-3] VmSize=A9\n",
		 TEST_DATA_DIR);
	ck_assert_msg(conf_load(tu_write("f.conf", text, 0644), 0, &c, NULL,
				err, sizeof(err))
			      == AZ_OK,
		      "%s", err);
	return c;
}

START_TEST(static_features_name_domain_size_and_rdma_kind)
{
	struct azrdma_conf *c = _conf();
	char *s = features_static(conf_domain_find(c, "hb0"));

	ck_assert_str_eq(s, "azure,hb0,hb120rs_v3,rdma,ib");
	free(s);
	s = features_static(conf_domain_find(c, "cls0"));
	ck_assert_str_eq(s, "azure,cls0,a9,rdma,nd");
	free(s);
	s = features_images(c);
	ck_assert_str_eq(s, "img_alma,img_sles");
	free(s);
	conf_free(c);
}
END_TEST

START_TEST(union_keeps_order_and_drops_duplicates)
{
	char *s = features_union("azure,hb0,img_alma", "hb0,rdma,azure,ib");

	ck_assert_str_eq(s, "azure,hb0,img_alma,rdma,ib");
	free(s);
	s = features_union(NULL, "a,a,b");
	ck_assert_str_eq(s, "a,b");
	free(s);
	s = features_union(NULL, NULL);
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

START_TEST(images_are_recognised_and_removed)
{
	struct azrdma_conf *c = _conf();
	const struct conf_image *img;
	char *s;

	ck_assert(feature_is_image(c, "img_sles", &img));
	ck_assert_str_eq(img->name, "sles");
	ck_assert(feature_is_image(c, "img_nope", &img));
	ck_assert_ptr_null(img);
	ck_assert(!feature_is_image(c, "rdma", &img));
	s = features_without_images(c, "azure,img_alma,hb0,img_sles");
	ck_assert_str_eq(s, "azure,hb0");
	free(s);
	conf_free(c);
}
END_TEST

START_TEST(job_check_accepts_one_known_image_anded)
{
	struct azrdma_conf *c = _conf();
	const struct conf_image *img = NULL;
	char err[AZ_ERRLEN];

	ck_assert_int_eq(features_job_check(c, "rdma&img_sles", &img, err,
					    sizeof(err)),
			 AZ_OK);
	ck_assert_str_eq(img->name, "sles");
	ck_assert_int_eq(features_job_check(c, "img_alma,hb0", &img, err,
					    sizeof(err)),
			 AZ_OK);
	ck_assert_str_eq(img->name, "alma");
	ck_assert_int_eq(features_job_check(c, "[hb0|hb1]&rdma", &img, err,
					    sizeof(err)),
			 AZ_OK);
	ck_assert_ptr_null(img);
	ck_assert_int_eq(features_job_check(c, NULL, &img, err, sizeof(err)),
			 AZ_OK);
	conf_free(c);
}
END_TEST

START_TEST(job_check_refuses_two_unknown_and_mixed_images)
{
	struct azrdma_conf *c = _conf();
	char err[AZ_ERRLEN];

	ck_assert_int_eq(features_job_check(c, "img_alma&img_sles", NULL, err,
					    sizeof(err)),
			 AZ_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "a node runs one image"));
	ck_assert_int_eq(features_job_check(c, "img_windows", NULL, err,
					    sizeof(err)),
			 AZ_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "img_windows names no image"));
	ck_assert_int_eq(features_job_check(c, "img_alma|hb0", NULL, err,
					    sizeof(err)),
			 AZ_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "cannot be combined with |"));
	ck_assert_int_eq(features_job_check(c, "[hb0|hb1]&img_sles", NULL, err,
					    sizeof(err)),
			 AZ_EINVAL);
	ck_assert_int_eq(features_job_check(c, "img_sles*2", NULL, err,
					    sizeof(err)),
			 AZ_EINVAL);
	/* The same image twice is one image. */
	ck_assert_int_eq(features_job_check(c, "img_sles&img_sles", NULL, err,
					    sizeof(err)),
			 AZ_OK);
	conf_free(c);
}
END_TEST

/*
 * Issue 17 item 12: a name longer than the old 127-character buffer was cut
 * and its tail read as a name of its own, and the check split names unlike
 * the job_submit plugin (which also separates at ':', '!' and blanks).
 */
START_TEST(job_check_reads_long_names_whole_and_splits_like_job_submit)
{
	struct azrdma_conf *c = _conf();
	const struct conf_image *img = NULL;
	char err[AZ_ERRLEN], expr[400];

	/* 127 characters, then what would read as an unknown image. */
	memset(expr, 'a', 127);
	snprintf(expr + 127, sizeof(expr) - 127, "img_windows&img_sles");
	ck_assert_int_eq(features_job_check(c, expr, &img, err, sizeof(err)),
			 AZ_OK);
	ck_assert_str_eq(img->name, "sles");
	/* A long image name names no image, and says which. */
	memset(expr, 0, sizeof(expr));
	strcpy(expr, "rdma&img_");
	memset(expr + 9, 's', 300);
	ck_assert_int_eq(features_job_check(c, expr, &img, err, sizeof(err)),
			 AZ_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "names no image"));
	/* ':' '!' and blanks separate names, as in job_submit. */
	ck_assert_int_eq(features_job_check(c, "img_alma!img_sles", NULL, err,
					    sizeof(err)),
			 AZ_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "img_alma and img_sles"));
	ck_assert_int_eq(features_job_check(c, "rdma img_alma", &img, err,
					    sizeof(err)),
			 AZ_OK);
	ck_assert_str_eq(img->name, "alma");
	conf_free(c);
}
END_TEST

/* The one reader of constraint names: operators, counts, long names. */
START_TEST(next_name_skips_operators_and_counts)
{
	const char *expr = "rdma&[hb0|hb1]*2,x*y:12 !z", *cur = expr;
	const char *want[] = {"rdma", "hb0", "hb1", "x", "y", "12", "z"};
	struct feature_name f;
	size_t i = 0;

	while (feature_next_name(expr, &cur, &f)) {
		ck_assert_uint_lt(i, sizeof(want) / sizeof(want[0]));
		ck_assert_uint_eq(f.len, strlen(want[i]));
		ck_assert(!strncmp(f.s, want[i], f.len));
		i++;
	}
	ck_assert_uint_eq(i, sizeof(want) / sizeof(want[0]));
	cur = NULL;
	ck_assert(!feature_next_name(NULL, &cur, &f));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("feature_set");
	TCase *tc = tcase_create("feature_set");

	tcase_add_test(tc, static_features_name_domain_size_and_rdma_kind);
	tcase_add_test(tc, job_check_reads_long_names_whole_and_splits_like_job_submit);
	tcase_add_test(tc, next_name_skips_operators_and_counts);
	tcase_add_test(tc, union_keeps_order_and_drops_duplicates);
	tcase_add_test(tc, images_are_recognised_and_removed);
	tcase_add_test(tc, job_check_accepts_one_known_image_anded);
	tcase_add_test(tc, job_check_refuses_two_unknown_and_mixed_images);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
