/*
 * test_arm_json.c - the parsers of ARM, IMDS and AAD bodies, fed the
 * recorded shapes under testsuite/data/arm/.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arm_json.h"
#include "testutil.h"

/* The text of testsuite/data/arm/<name>; caller frees. */
static char *_text(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/arm/%s", TEST_DATA_DIR, name);
	return tu_slurp(path);
}

/* testsuite/data/arm/<name> parsed; caller puts. */
static json_object *_json(const char *name)
{
	char *text = _text(name);
	json_object *obj = arm_json_parse(text, strlen(text));

	ck_assert_msg(obj != NULL, "%s does not parse", name);
	free(text);
	return obj;
}

/* s, a NUL-terminated literal, parsed; caller puts. */
static json_object *_parse(const char *s)
{
	return arm_json_parse(s, strlen(s));
}

static void _error_of(const char *name, struct arm_error *e)
{
	json_object *body = _json(name);

	ck_assert_int_eq(arm_parse_error(body, e), AZ_OK);
	json_object_put(body);
}

START_TEST(parse_accepts_one_value_and_rejects_the_rest)
{
	json_object *o;

	o = arm_json_parse("  {\"a\": 1}\r\n", 12);
	ck_assert_ptr_nonnull(o);
	json_object_put(o);
	/* A bare number at the very end still parses. */
	o = arm_json_parse("3599", 4);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(json_object_get_int(o), 3599);
	json_object_put(o);
	ck_assert_ptr_null(arm_json_parse("", 0));
	ck_assert_ptr_null(arm_json_parse(" \r\n", 3));
	ck_assert_ptr_null(arm_json_parse("{\"a\": 1", 7));
	ck_assert_ptr_null(arm_json_parse("{\"a\": 1} trailing", 17));
	ck_assert_ptr_null(arm_json_parse("{} {}", 5));
	/* Length is honoured: the closing brace is outside it. */
	ck_assert_ptr_null(arm_json_parse("{\"a\": 1}", 7));
}
END_TEST

START_TEST(error_with_wrapper_gives_code_and_message)
{
	struct arm_error e;

	_error_of("error-resource-not-found.json", &e);
	ck_assert_str_eq(e.code, "ResourceNotFound");
	ck_assert_str_eq(e.top_code, "ResourceNotFound");
	ck_assert_ptr_nonnull(strstr(e.message, "VM-Public"));
	ck_assert_uint_eq(e.detail_count, 0);
	arm_error_free(&e);

	_error_of("error-quota.json", &e);
	ck_assert_str_eq(e.code, "OperationNotAllowed");
	ck_assert_ptr_nonnull(strstr(e.message, "Total Regional Cores quota"));
	arm_error_free(&e);

	_error_of("error-sku-not-available.json", &e);
	ck_assert_str_eq(e.code, "SkuNotAvailable");
	arm_error_free(&e);
}
END_TEST

START_TEST(error_without_wrapper_keeps_its_specific_top_code)
{
	struct arm_error e;

	/* The CRP throttling doc example has no "error" wrapper. */
	_error_of("error-crp-throttle-unwrapped.json", &e);
	ck_assert_str_eq(e.code, "OperationNotAllowed");
	ck_assert_ptr_nonnull(strstr(e.message, "too many requests"));
	ck_assert_uint_eq(e.detail_count, 1);
	ck_assert_str_eq(e.details[0], "TooManyRequests");
	arm_error_free(&e);
}
END_TEST

START_TEST(generic_top_code_gives_way_to_the_nested_detail)
{
	struct arm_error e;

	_error_of("error-nested-allocation.json", &e);
	ck_assert_str_eq(e.top_code, "ResourceOperationFailure");
	ck_assert_str_eq(e.code, "AllocationFailed");
	ck_assert_ptr_nonnull(strstr(e.message, "sufficient capacity"));
	ck_assert_uint_eq(e.detail_count, 1);
	ck_assert_str_eq(e.details[0], "AllocationFailed");
	arm_error_free(&e);

	/* Two wrappers deep: DeploymentFailed > ResourceDeploymentFailure. */
	_error_of("error-deployment-overconstrained.json", &e);
	ck_assert_str_eq(e.top_code, "DeploymentFailed");
	ck_assert_str_eq(e.code, "OverconstrainedAllocationRequest");
	ck_assert_ptr_nonnull(strstr(e.message, "Availability Zone"));
	ck_assert_str_eq(e.details[0], "ResourceDeploymentFailure");
	arm_error_free(&e);
}
END_TEST

START_TEST(aad_error_form_is_an_error_too)
{
	struct arm_error e;

	_error_of("token-aad-error.json", &e);
	ck_assert_str_eq(e.code, "invalid_scope");
	ck_assert_ptr_nonnull(strstr(e.message, "AADSTS70011"));
	arm_error_free(&e);
}
END_TEST

START_TEST(garbage_is_no_error_envelope)
{
	struct arm_error e;
	char *html = _text("error-garbage.html");
	json_object *o;

	ck_assert_int_eq(arm_parse_error_text(html, strlen(html), &e),
	                 AZ_EPARSE);
	ck_assert_ptr_null(e.code);
	free(html);
	ck_assert_int_eq(arm_parse_error_text("", 0, &e), AZ_EPARSE);
	ck_assert_int_eq(arm_parse_error(NULL, &e), AZ_EPARSE);
	/* JSON, but no code, or a code of the wrong type. */
	o = _parse("{\"error\": {\"message\": \"x\"}}");
	ck_assert_int_eq(arm_parse_error(o, &e), AZ_EPARSE);
	json_object_put(o);
	o = _parse("{\"code\": 42, \"details\": 7}");
	ck_assert_int_eq(arm_parse_error(o, &e), AZ_EPARSE);
	json_object_put(o);
	o = _parse("[1, 2]");
	ck_assert_int_eq(arm_parse_error(o, &e), AZ_EPARSE);
	json_object_put(o);
	/* A generic code whose details are not objects stays as it is. */
	o = _parse("{\"code\": \"DeploymentFailed\", "
	           "\"details\": [\"x\", {\"message\": \"m\"}]}");
	ck_assert_int_eq(arm_parse_error(o, &e), AZ_OK);
	ck_assert_str_eq(e.code, "DeploymentFailed");
	ck_assert_uint_eq(e.detail_count, 0);
	arm_error_free(&e);
	json_object_put(o);
}
END_TEST

START_TEST(imds_token_with_string_expiry)
{
	char *text = _text("token-imds.json"), err[AZ_ERRLEN];
	struct arm_token t;

	ck_assert_int_eq(
	        arm_parse_token(text, strlen(text), 1000, &t, err, sizeof(err)),
	        AZ_OK);
	/* expires_in beats expires_on (which is in 2017). */
	ck_assert_int_eq(t.expires_on, 1000 + 3599);
	ck_assert_ptr_nonnull(strstr(t.access_token, "eyJ0eXAi"));
	arm_token_free(&t);
	ck_assert_ptr_null(t.access_token);
	free(text);
}
END_TEST

START_TEST(aad_token_with_number_expiry)
{
	char *text = _text("token-aad.json"), err[AZ_ERRLEN];
	struct arm_token t;

	ck_assert_int_eq(
	        arm_parse_token(text, strlen(text), 50, &t, err, sizeof(err)),
	        AZ_OK);
	ck_assert_int_eq(t.expires_on, 50 + 3599);
	arm_token_free(&t);
	free(text);
}
END_TEST

START_TEST(token_with_only_expires_on)
{
	char *text = _text("token-expires-on-only.json"), err[AZ_ERRLEN];
	struct arm_token t;

	ck_assert_int_eq(
	        arm_parse_token(text, strlen(text), 50, &t, err, sizeof(err)),
	        AZ_OK);
	ck_assert_int_eq(t.expires_on, 1506484173);
	arm_token_free(&t);
	free(text);
}
END_TEST

START_TEST(aad_error_becomes_eauth_with_the_description)
{
	char *text = _text("token-aad-error.json"), err[AZ_ERRLEN];
	struct arm_token t;

	ck_assert_int_eq(
	        arm_parse_token(text, strlen(text), 0, &t, err, sizeof(err)),
	        AZ_EAUTH);
	ck_assert_ptr_null(t.access_token);
	ck_assert_ptr_nonnull(strstr(err, "invalid_scope: AADSTS70011"));
	/* Only the first line: no trace ids in a node reason. */
	ck_assert_ptr_null(strstr(err, "Trace ID"));
	free(text);

	text = _text("token-imds-error.json");
	ck_assert_int_eq(
	        arm_parse_token(text, strlen(text), 0, &t, err, sizeof(err)),
	        AZ_EAUTH);
	ck_assert_str_eq(err, "bad_request_102: Required metadata header not "
	                      "specified");
	free(text);
}
END_TEST

START_TEST(unusable_token_bodies_are_parse_errors)
{
	static const char *const bad[] = {
	        "not json",
	        "[]",
	        "{\"expires_in\": 3599}",
	        "{\"access_token\": \"\", \"expires_in\": 3599}",
	        "{\"access_token\": 7, \"expires_in\": 3599}",
	        "{\"access_token\": \"t\"}",
	        "{\"access_token\": \"t\", \"expires_in\": \"soon\"}",
	        "{\"access_token\": \"t\", \"expires_in\": -5}",
	        "{\"access_token\": \"t\", \"expires_in\": \"12x\"}",
	        /* Found by fuzz_arm_json: now + expires_in overflowed. */
	        "{\"access_token\": \"t\", \"expires_in\": 9223372036854775807}",
	        "{\"access_token\": \"t\", \"expires_in\": "
	        "55555555555555555555555555555555555553599}",
	        "{\"access_token\": \"t\", \"expires_in\": \"86401\"}",
	        "{\"access_token\": \"t\", \"expires_on\": \"09/14/2017\"}",
	        NULL,
	};
	char err[AZ_ERRLEN];
	struct arm_token t;

	for (int i = 0; bad[i]; i++)
		ck_assert_msg(arm_parse_token(bad[i], strlen(bad[i]), 0, &t,
		                              err, sizeof(err))
		                      == AZ_EPARSE,
		              "accepted %s", bad[i]);
}
END_TEST

static enum arm_lro_status _status_of(const char *name, struct arm_error *e)
{
	json_object *body = _json(name);
	enum arm_lro_status st;

	ck_assert_int_eq(arm_parse_lro_status(body, &st, e), AZ_OK);
	json_object_put(body);
	return st;
}

START_TEST(lro_status_bodies)
{
	struct arm_error e;
	json_object *o;
	enum arm_lro_status st;

	ck_assert_int_eq(_status_of("lro-compute-inprogress.json", &e),
	                 ARM_LRO_IN_PROGRESS);
	ck_assert_ptr_null(e.code);
	ck_assert_int_eq(_status_of("lro-compute-succeeded.json", &e),
	                 ARM_LRO_SUCCEEDED);
	ck_assert_int_eq(_status_of("lro-network-succeeded.json", &e),
	                 ARM_LRO_SUCCEEDED);
	/* Deployments say Running; any unknown status is still going. */
	ck_assert_int_eq(_status_of("lro-deployment-running.json", &e),
	                 ARM_LRO_IN_PROGRESS);

	ck_assert_int_eq(_status_of("lro-failed-allocation.json", &e),
	                 ARM_LRO_FAILED);
	ck_assert_str_eq(e.code, "OverconstrainedAllocationRequest");
	ck_assert_str_eq(e.top_code, "ResourceOperationFailure");
	arm_error_free(&e);

	ck_assert_int_eq(_status_of("lro-canceled.json", &e), ARM_LRO_CANCELED);
	ck_assert_str_eq(e.code, "OperationPreempted");
	arm_error_free(&e);

	ck_assert_int_eq(_status_of("lro-failed-bare.json", &e),
	                 ARM_LRO_FAILED);
	ck_assert_str_eq(e.code, "Failed");
	arm_error_free(&e);

	o = _json("lro-no-status.json");
	ck_assert_int_eq(arm_parse_lro_status(o, &st, &e), AZ_EPARSE);
	json_object_put(o);
}
END_TEST

START_TEST(nic_private_ip_of_the_primary_ip_configuration)
{
	json_object *nic = _json("nic-create-response.json");

	ck_assert_str_eq(arm_nic_private_ip(nic), "10.0.0.4");
	ck_assert_str_eq(arm_provisioning_state(nic), "Succeeded");
	json_object_put(nic);
	/* The primary one, not the first. */
	nic = _json("nic-two-ipconfigs.json");
	ck_assert_str_eq(arm_nic_private_ip(nic), "10.0.0.5");
	json_object_put(nic);
	nic = _parse("{\"properties\": {}}");
	ck_assert_ptr_null(arm_nic_private_ip(nic));
	json_object_put(nic);
	ck_assert_ptr_null(arm_nic_private_ip(NULL));
}
END_TEST

START_TEST(power_state_from_vm_or_instance_view)
{
	json_object *vm = _json("vm-get-instanceview.json");

	ck_assert_str_eq(arm_vm_power_state(vm), "running");
	ck_assert_str_eq(arm_vm_primary_nic_id(vm),
	                 "/subscriptions/00000000-0000-0000-0000-000000000000/"
	                 "resourceGroups/azrdma-rg/providers/"
	                 "Microsoft.Network/networkInterfaces/hb-000-nic");
	json_object_put(vm);
	vm = _json("vm-instanceview-deallocated.json");
	ck_assert_str_eq(arm_vm_power_state(vm), "deallocated");
	json_object_put(vm);
	/* Without $expand=instanceView there is no power state. */
	vm = _json("vm-create-response.json");
	ck_assert_ptr_null(arm_vm_power_state(vm));
	ck_assert_str_eq(arm_provisioning_state(vm), "Creating");
	json_object_put(vm);
}
END_TEST

START_TEST(vm_list_pages)
{
	json_object *p1 = _json("vm-list-page1.json");
	json_object *p2 = _json("vm-list-page2.json");
	json_object *value;

	ck_assert_ptr_nonnull(strstr(arm_json_next_link(p1),
	                             "virtualMachines?api-version=2024-11-01"
	                             "&%24skiptoken="));
	ck_assert_ptr_null(arm_json_next_link(p2));
	ck_assert(json_object_object_get_ex(p1, "value", &value));
	ck_assert_uint_eq(json_object_array_length(value), 2);
	json_object_put(p1);
	json_object_put(p2);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("arm_json");
	TCase *tc = tcase_create("arm_json");

	tcase_add_test(tc, parse_accepts_one_value_and_rejects_the_rest);
	tcase_add_test(tc, error_with_wrapper_gives_code_and_message);
	tcase_add_test(tc, error_without_wrapper_keeps_its_specific_top_code);
	tcase_add_test(tc, generic_top_code_gives_way_to_the_nested_detail);
	tcase_add_test(tc, aad_error_form_is_an_error_too);
	tcase_add_test(tc, garbage_is_no_error_envelope);
	tcase_add_test(tc, imds_token_with_string_expiry);
	tcase_add_test(tc, aad_token_with_number_expiry);
	tcase_add_test(tc, token_with_only_expires_on);
	tcase_add_test(tc, aad_error_becomes_eauth_with_the_description);
	tcase_add_test(tc, unusable_token_bodies_are_parse_errors);
	tcase_add_test(tc, lro_status_bodies);
	tcase_add_test(tc, nic_private_ip_of_the_primary_ip_configuration);
	tcase_add_test(tc, power_state_from_vm_or_instance_view);
	tcase_add_test(tc, vm_list_pages);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
