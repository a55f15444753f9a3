/*
 * test_power_reason.c - the node reasons azrdma writes: "azrdma: <code>:
 * <message>", shortened to fit with a visible "...", without characters
 * Slurm's reason field or sinfo mangle; and which ARM codes are capacity.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "arm.h"
#include "power.h"
#include "testutil.h"

START_TEST(arm_error_gives_code_and_message)
{
	struct arm_result res;
	char reason[POWER_REASON_LEN];

	memset(&res, 0, sizeof(res));
	res.rc = AZ_EARM;
	res.error.code = "OperationNotAllowed";
	res.error.message = "Operation could not be completed as it results "
	                    "in exceeding approved standardHBrsv3Family "
	                    "Cores quota.";
	power_reason(&res, "VM did not start", reason, sizeof(reason));
	ck_assert_str_eq(reason,
	                 "azrdma: OperationNotAllowed: Operation could not be "
	                 "completed as it results in exceeding approved "
	                 "standardHBrsv3Family Cores quota.");
	/* A code without a message: what was being done stands in. */
	res.error.message = NULL;
	power_reason(&res, "NIC not created", reason, sizeof(reason));
	ck_assert_str_eq(reason,
	                 "azrdma: OperationNotAllowed: NIC not created");
}
END_TEST

START_TEST(transport_error_gives_the_rc_and_the_detail)
{
	struct arm_result res;
	char reason[POWER_REASON_LEN];

	memset(&res, 0, sizeof(res));
	res.rc = AZ_ETIMEOUT;
	strcpy(res.err, "PUT .../virtualMachines/hb1: no answer in 120 s");
	power_reason(&res, "VM did not start", reason, sizeof(reason));
	ck_assert_ptr_nonnull(strstr(reason, "no answer in 120 s"));
	ck_assert(!strncmp(reason, "azrdma: ", 8));
	ck_assert_ptr_nonnull(strstr(reason, az_strerror(AZ_ETIMEOUT)));
	power_reason(NULL, NULL, reason, sizeof(reason));
	ck_assert_str_eq(reason, "azrdma: unknown error");
}
END_TEST

START_TEST(long_message_is_cut_to_fit_and_ends_in_dots)
{
	struct arm_result res;
	char reason[POWER_REASON_LEN], message[1000];

	memset(message, 'x', sizeof(message) - 1);
	message[sizeof(message) - 1] = '\0';
	memset(&res, 0, sizeof(res));
	res.rc = AZ_EARM;
	res.error.code = "AllocationFailed";
	res.error.message = message;
	power_reason(&res, NULL, reason, sizeof(reason));
	ck_assert_uint_eq(strlen(reason), POWER_REASON_LEN - 1);
	ck_assert(!strncmp(reason, "azrdma: AllocationFailed: xxx", 29));
	ck_assert_str_eq(reason + POWER_REASON_LEN - 4, "...");
}
END_TEST

START_TEST(newlines_tabs_and_quotes_become_spaces)
{
	char reason[64];

	power_reason_text(reason, sizeof(reason),
	                  "line one\nline \"two\"\r\tend");
	ck_assert_str_eq(reason, "azrdma: line one line  two   end");
	/* A short reason is not marked as cut. */
	power_reason_text(reason, sizeof(reason), "ok");
	ck_assert_str_eq(reason, "azrdma: ok");
	power_reason_text(reason, sizeof(reason), NULL);
	ck_assert_str_eq(reason, "azrdma: unknown error");
}
END_TEST

START_TEST(tiny_buffers_stay_terminated)
{
	char reason[6];

	power_reason_text(reason, sizeof(reason), "whatever");
	ck_assert_uint_eq(strlen(reason), 5);
	ck_assert_str_eq(reason, "az...");
	power_reason_text(reason, 0, "nothing written");
	ck_assert_str_eq(reason, "az...");
}
END_TEST

START_TEST(capacity_codes_are_recognised_in_any_case)
{
	ck_assert(power_is_capacity_error("AllocationFailed"));
	ck_assert(power_is_capacity_error("allocationfailed"));
	ck_assert(power_is_capacity_error("ZonalAllocationFailed"));
	ck_assert(power_is_capacity_error("OverconstrainedAllocationRequest"));
	ck_assert(!power_is_capacity_error("OperationNotAllowed"));
	ck_assert(!power_is_capacity_error("SkuNotAvailable"));
	ck_assert(!power_is_capacity_error(NULL));
}
END_TEST

START_TEST(nic_name_follows_the_node)
{
	char *nic = power_nic_name("hb-007");

	ck_assert_str_eq(nic, "hb-007-nic");
	free(nic);
}
END_TEST

static Suite *_suite(void)
{
	Suite *s = suite_create("power_reason");
	TCase *tc = tcase_create("reason");

	tcase_add_test(tc, arm_error_gives_code_and_message);
	tcase_add_test(tc, transport_error_gives_the_rc_and_the_detail);
	tcase_add_test(tc, long_message_is_cut_to_fit_and_ends_in_dots);
	tcase_add_test(tc, newlines_tabs_and_quotes_become_spaces);
	tcase_add_test(tc, tiny_buffers_stay_terminated);
	tcase_add_test(tc, capacity_codes_are_recognised_in_any_case);
	tcase_add_test(tc, nic_name_follows_the_node);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(_suite());
}
