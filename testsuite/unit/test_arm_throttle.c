/*
 * test_arm_throttle.c - throttle headers in every form ARM and the Compute
 * provider send, the retry schedule with injected randomness, and the
 * governor's decisions, all on a fake clock.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "arm_throttle.h"
#include "testutil.h"

/* Feed header lines (NULL-terminated) as curl would, CRLF included. */
static struct arm_throttle_info _feed(const char *const *lines, time_t now)
{
	struct arm_throttle_info ti;

	arm_throttle_info_init(&ti);
	for (int i = 0; lines[i]; i++) {
		char line[512];

		snprintf(line, sizeof(line), "%s\r\n", lines[i]);
		arm_throttle_header(&ti, line, strlen(line), now);
	}
	return ti;
}

START_TEST(subscription_counts_single_and_global)
{
	const char *const lines[] = {
	        "x-ms-ratelimit-remaining-subscription-reads: 11999",
	        "x-ms-ratelimit-remaining-subscription-global-reads: 3749",
	        "X-MS-RateLimit-Remaining-Subscription-Writes:199",
	        "x-ms-ratelimit-remaining-subscription-global-writes: 2999",
	        "x-ms-ratelimit-remaining-subscription-deletes: 199",
	        "x-ms-ratelimit-remaining-subscription-global-deletes: 2999",
	        NULL};
	struct arm_throttle_info ti = _feed(lines, 0);

	ck_assert_int_eq(ti.subscription[ARM_RL_READS], 11999);
	ck_assert_int_eq(ti.global[ARM_RL_READS], 3749);
	ck_assert_int_eq(ti.subscription[ARM_RL_WRITES], 199);
	ck_assert_int_eq(ti.global[ARM_RL_DELETES], 2999);
	/* The lower of the two is what is left. */
	ck_assert_int_eq(arm_throttle_remaining(&ti, ARM_RL_READS), 3749);
	ck_assert_int_eq(arm_throttle_remaining(&ti, ARM_RL_WRITES), 199);
	ck_assert_int_eq(arm_throttle_remaining(&ti, ARM_RL_DELETES), 199);
	ck_assert_uint_eq(ti.malformed, 0);
	ck_assert_int_eq(ti.retry_after_ms, -1);
}
END_TEST

START_TEST(only_the_global_count_is_enough)
{
	const char *const lines[] = {
	        "x-ms-ratelimit-remaining-subscription-global-writes: 12",
	        NULL};
	struct arm_throttle_info ti = _feed(lines, 0);

	ck_assert_int_eq(arm_throttle_remaining(&ti, ARM_RL_WRITES), 12);
	ck_assert_int_eq(arm_throttle_remaining(&ti, ARM_RL_READS), -1);
}
END_TEST

START_TEST(resource_buckets_2021_comma_list)
{
	const char *const lines[] = {
	        "x-ms-ratelimit-remaining-resource: "
	        "Microsoft.Compute/PutVM3Min;745,Microsoft.Compute/"
	        "PutVM30Min;3729",
	        NULL};
	struct arm_throttle_info ti = _feed(lines, 0);

	ck_assert_uint_eq(ti.bucket_count, 2);
	ck_assert_str_eq(ti.buckets[0].name, "Microsoft.Compute/PutVM3Min");
	ck_assert_int_eq(ti.buckets[0].remaining, 745);
	ck_assert_str_eq(ti.buckets[1].name, "Microsoft.Compute/PutVM30Min");
	ck_assert_int_eq(ti.buckets[1].remaining, 3729);
	ck_assert_int_eq(arm_throttle_shared_min(&ti), 745);
	ck_assert_uint_eq(ti.malformed, 0);
}
END_TEST

START_TEST(resource_buckets_2025_form)
{
	const char *const lines[] = {
	        "x-ms-ratelimit-remaining-resource: "
	        "Microsoft.Compute/PutVMSubscriptionMaximum;1499,"
	        "Microsoft.Compute/PutVMResource;11",
	        NULL};
	struct arm_throttle_info ti = _feed(lines, 0);

	ck_assert_uint_eq(ti.bucket_count, 2);
	ck_assert_str_eq(ti.buckets[1].name, "Microsoft.Compute/PutVMResource");
	/* PutVMResource counts calls on this one VM, not on all of them. */
	ck_assert(arm_rl_bucket_per_resource(ti.buckets[1].name));
	ck_assert(!arm_rl_bucket_per_resource(ti.buckets[0].name));
	ck_assert_int_eq(arm_throttle_shared_min(&ti), 1499);
}
END_TEST

START_TEST(resource_header_repeated_accumulates)
{
	const char *const lines[] = {
	        "x-ms-ratelimit-remaining-resource: "
	        "Microsoft.Compute/HighCostGet3Min;0",
	        "x-ms-ratelimit-remaining-resource: "
	        "Microsoft.Compute/HighCostGet30Min;12",
	        /* The same bucket again: the lower count stands. */
	        "x-ms-ratelimit-remaining-resource: "
	        "Microsoft.Compute/HighCostGet30Min;40",
	        "x-ms-ratelimit-remaining-resource: "
	        " Microsoft.Compute/GetOperation3Min;14999 , "
	        "Microsoft.Compute/GetOperation30Min;29993 ",
	        NULL};
	struct arm_throttle_info ti = _feed(lines, 0);

	ck_assert_uint_eq(ti.bucket_count, 4);
	ck_assert_int_eq(ti.buckets[1].remaining, 12);
	ck_assert_str_eq(ti.buckets[2].name,
	                 "Microsoft.Compute/GetOperation3Min");
	ck_assert_int_eq(ti.buckets[3].remaining, 29993);
	ck_assert_int_eq(arm_throttle_shared_min(&ti), 0);
}
END_TEST

START_TEST(malformed_values_are_counted_and_ignored)
{
	char longname[200];
	const char *lines[] = {
	        "x-ms-ratelimit-remaining-resource: "
	        "Microsoft.Compute/PutVM3Min;abc,;5,NoSemicolon,x;,,"
	        "Microsoft.Compute/Ok;7,y;-1,z;99999999999999999999999",
	        "x-ms-ratelimit-remaining-subscription-reads: lots",
	        "x-ms-ratelimit-remaining-subscription-writes: -3",
	        "x-ms-ratelimit-remaining-subscription-writes:",
	        "x-ms-ratelimit-remaining-subscription-bogus: 5",
	        "Retry-After: soon",
	        NULL,
	        NULL};
	struct arm_throttle_info ti;
	char line[300];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	snprintf(line, sizeof(line), "x-ms-ratelimit-remaining-resource: %s;1",
	         longname);
	lines[6] = line;
	ti = _feed(lines, 0);
	ck_assert_uint_eq(ti.bucket_count, 1);
	ck_assert_str_eq(ti.buckets[0].name, "Microsoft.Compute/Ok");
	/* abc, ;5, NoSemicolon, x;, y;-1, the overflow, lots, -3, empty,
	 * soon, the long name. */
	ck_assert_uint_eq(ti.malformed, 11);
	ck_assert_int_eq(ti.subscription[ARM_RL_READS], -1);
	ck_assert_int_eq(ti.subscription[ARM_RL_WRITES], -1);
	ck_assert_int_eq(ti.retry_after_ms, -1);
}
END_TEST

START_TEST(quoted_counts_as_recordings_show_them)
{
	const char *const lines[] = {
	        "x-ms-ratelimit-remaining-subscription-global-reads: '3749'",
	        NULL};
	struct arm_throttle_info ti = _feed(lines, 0);

	ck_assert_int_eq(ti.global[ARM_RL_READS], 3749);
}
END_TEST

START_TEST(other_headers_are_not_throttle_headers)
{
	struct arm_throttle_info ti;
	static const char *const other[] = {
	        "Content-Type: application/json\r\n",
	        "x-ms-request-id: 1234\r\n",
	        "x-ms-ratelimit-remaining-subscription-: 5\r\n",
	        "no colon here\r\n", NULL};

	arm_throttle_info_init(&ti);
	for (int i = 0; other[i]; i++)
		ck_assert(!arm_throttle_header(&ti, other[i], strlen(other[i]),
		                               0));
	ck_assert(arm_throttle_header(&ti, "retry-after: 3", 14, 0));
	ck_assert_int_eq(ti.retry_after_ms, 3000);
}
END_TEST

START_TEST(retry_after_seconds_and_http_dates)
{
	/* Sun, 06 Nov 1994 08:49:37 GMT */
	const time_t t0 = 784111777;
	long ms;

	ck_assert_int_eq(arm_parse_retry_after("0", t0, &ms), AZ_OK);
	ck_assert_int_eq(ms, 0);
	ck_assert_int_eq(arm_parse_retry_after("1200", t0, &ms), AZ_OK);
	ck_assert_int_eq(ms, 1200000);
	ck_assert_int_eq(
	        arm_parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", t0, &ms),
	        AZ_OK);
	ck_assert_int_eq(ms, 10000);
	/* A date in the past means now. */
	ck_assert_int_eq(
	        arm_parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", t0, &ms),
	        AZ_OK);
	ck_assert_int_eq(ms, 0);
	/* Leap years: 29 Feb 2024 00:00:00 is 1709164800. */
	ck_assert_int_eq(arm_parse_retry_after("Thu, 29 Feb 2024 00:00:05 GMT",
	                                       1709164800, &ms),
	                 AZ_OK);
	ck_assert_int_eq(ms, 5000);
	/* Absurd values are capped at a week. */
	ck_assert_int_eq(arm_parse_retry_after("99999999999", t0, &ms), AZ_OK);
	ck_assert_int_eq(ms, 7L * 24 * 3600 * 1000);
	ck_assert_int_eq(arm_parse_retry_after("", t0, &ms), AZ_EPARSE);
	ck_assert_int_eq(arm_parse_retry_after("-1", t0, &ms), AZ_EPARSE);
	ck_assert_int_eq(arm_parse_retry_after("1.5", t0, &ms), AZ_EPARSE);
	ck_assert_int_eq(
	        arm_parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", t0, &ms),
	        AZ_EPARSE);
	ck_assert_int_eq(
	        arm_parse_retry_after("Sun, 06 Nov 1994 25:49:37 GMT", t0, &ms),
	        AZ_EPARSE);
	ck_assert_int_eq(
	        arm_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT extra", t0,
	                              &ms),
	        AZ_EPARSE);
}
END_TEST

START_TEST(request_kinds_for_resource_buckets)
{
	static const struct {
		enum arm_method m;
		const char *path, *key;
	} cases[] = {
	        {ARM_PUT,
	         "/subscriptions/s/resourceGroups/rg/providers/"
	         "Microsoft.Compute/virtualMachines/hb-000?api-version=x",
	         "PUT Microsoft.Compute/virtualMachines"},
	        {ARM_POST,
	         "https://management.azure.com/subscriptions/s/resourceGroups/"
	         "rg/providers/Microsoft.Compute/virtualMachines/hb-001/"
	         "deallocate?api-version=x",
	         "POST Microsoft.Compute/virtualMachines/deallocate"},
	        {ARM_GET,
	         "https://management.azure.com/subscriptions/s/providers/"
	         "Microsoft.Compute/locations/eastus/operations/abc?p=1&"
	         "api-version=2024-11-01",
	         "GET Microsoft.Compute/locations/operations"},
	        {ARM_GET,
	         "/subscriptions/s/resourceGroups/rg/providers/"
	         "Microsoft.Compute/virtualMachines",
	         "GET Microsoft.Compute/virtualMachines"},
	        {ARM_DELETE,
	         "/subscriptions/s/resourceGroups/rg?x=/providers/a",
	         "DELETE /subscriptions/s/resourceGroups/rg"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *key = arm_throttle_key(cases[i].m, cases[i].path);

		ck_assert_str_eq(key, cases[i].key);
		free(key);
	}
	ck_assert_int_eq(arm_rl_class_of(ARM_GET), ARM_RL_READS);
	ck_assert_int_eq(arm_rl_class_of(ARM_POST), ARM_RL_WRITES);
	ck_assert_int_eq(arm_rl_class_of(ARM_PUT), ARM_RL_WRITES);
	ck_assert_int_eq(arm_rl_class_of(ARM_DELETE), ARM_RL_DELETES);
}
END_TEST

/* ---- retries -------------------------------------------------------- */

static double _fixed(void *arg)
{
	return *(const double *)arg;
}

START_TEST(backoff_doubles_up_to_the_cap)
{
	double r = 0.0;
	struct arm_backoff b = {1000, 30000, _fixed, &r};

	/* r = 0: the lower bound, half the step. */
	ck_assert_int_eq(arm_backoff_delay(&b, 0, -1), 500);
	ck_assert_int_eq(arm_backoff_delay(&b, 1, -1), 1000);
	ck_assert_int_eq(arm_backoff_delay(&b, 4, -1), 8000);
	ck_assert_int_eq(arm_backoff_delay(&b, 5, -1), 15000);
	ck_assert_int_eq(arm_backoff_delay(&b, 6, -1), 15000);
	ck_assert_int_eq(arm_backoff_delay(&b, 1000, -1), 15000);
	/* r -> 1: the upper bound, the whole step. */
	r = 0.999999;
	ck_assert_int_eq(arm_backoff_delay(&b, 0, -1), 999);
	ck_assert_int_eq(arm_backoff_delay(&b, 30, -1), 29999);
}
END_TEST

/* A deterministic sequence covering [0, 1). */
static double _sweep(void *arg)
{
	unsigned *i = arg;

	return (double)((*i)++ % 1000) / 1000.0;
}

START_TEST(jitter_stays_within_half_to_full_step)
{
	unsigned i = 0;
	struct arm_backoff b = {200, 5000, _sweep, &i};

	for (unsigned attempt = 0; attempt < 8; attempt++) {
		long step = 200L << attempt, lo = LONG_MAX, hi = 0;

		if (step > 5000)
			step = 5000;
		for (int k = 0; k < 1000; k++) {
			long d = arm_backoff_delay(&b, attempt, -1);

			ck_assert_int_ge(d, step / 2);
			ck_assert_int_le(d, step);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		/* The whole range is used, not a single value. */
		ck_assert_int_eq(lo, step / 2);
		ck_assert_int_ge(hi, step - step / 500 - 1);
	}
}
END_TEST

static double _broken(void *arg)
{
	return *(const double *)arg;
}

START_TEST(broken_random_source_keeps_bounds)
{
	double r = NAN;
	struct arm_backoff b = {1000, 30000, _broken, &r};

	ck_assert_int_eq(arm_backoff_delay(&b, 0, -1), 750);
	r = 7.0;
	ck_assert_int_eq(arm_backoff_delay(&b, 0, -1), 750);
	r = -1.0;
	ck_assert_int_eq(arm_backoff_delay(&b, 0, -1), 750);
}
END_TEST

START_TEST(retry_after_wins_over_the_schedule)
{
	double r = 0.0;
	struct arm_backoff b = {1000, 30000, _fixed, &r};

	ck_assert_int_eq(arm_backoff_delay(&b, 0, 1200000), 1200000);
	ck_assert_int_eq(arm_backoff_delay(&b, 9, 0), 0);
	ck_assert_int_eq(arm_retry_delay(&b, 0, 10, 0, 120000, 7000), 7000);
	/* ... but not over the budget: then it gives up. */
	ck_assert_int_eq(arm_retry_delay(&b, 0, 10, 0, 120000, 1200000), -1);
}
END_TEST

START_TEST(retries_are_bounded_by_attempts_and_time)
{
	double r = 0.0;
	struct arm_backoff b = {1000, 30000, _fixed, &r};
	long total = 0, d;
	unsigned n = 0;

	/* Out of attempts: 3 tries means 2 retries. */
	ck_assert_int_eq(arm_retry_delay(&b, 0, 3, 0, 120000, -1), 500);
	ck_assert_int_eq(arm_retry_delay(&b, 1, 3, 0, 120000, -1), 1000);
	ck_assert_int_eq(arm_retry_delay(&b, 2, 3, 0, 120000, -1), -1);
	ck_assert_int_eq(arm_retry_delay(&b, 0, 1, 0, 120000, -1), -1);
	/* Out of time. */
	ck_assert_int_eq(arm_retry_delay(&b, 0, 10, 119600, 120000, -1), -1);
	/* The whole schedule never passes the budget. */
	while ((d = arm_retry_delay(&b, n, 100, total, 60000, -1)) >= 0) {
		total += d;
		n++;
	}
	ck_assert_int_le(total, 60000);
	ck_assert_uint_gt(n, 3);
}
END_TEST

START_TEST(which_statuses_are_retried)
{
	static const long yes[] = {429, 500, 502, 503, 504, 599};
	static const long no[] = {200, 201, 202, 204, 301, 400, 401, 403,
	                          404, 409, 410, 412, 422, 501, 505};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		ck_assert_msg(arm_status_retryable(ARM_PEER_ARM, yes[i]), "%ld",
		              yes[i]);
		ck_assert(arm_status_retryable(ARM_PEER_AAD, yes[i]));
		ck_assert(arm_status_retryable(ARM_PEER_IMDS, yes[i]));
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		ck_assert_msg(!arm_status_retryable(ARM_PEER_ARM, no[i]), "%ld",
		              no[i]);
		ck_assert(!arm_status_retryable(ARM_PEER_AAD, no[i]));
	}
	/* IMDS: not there yet (404) or updating (410). */
	ck_assert(arm_status_retryable(ARM_PEER_IMDS, 404));
	ck_assert(arm_status_retryable(ARM_PEER_IMDS, 410));
	ck_assert(!arm_status_retryable(ARM_PEER_IMDS, 400));
	ck_assert(!arm_status_retryable(ARM_PEER_IMDS, 403));
}
END_TEST

START_TEST(which_transport_errors_are_retried)
{
	ck_assert(arm_curl_retryable(CURLE_COULDNT_CONNECT));
	ck_assert(arm_curl_retryable(CURLE_GOT_NOTHING));
	ck_assert(arm_curl_retryable(CURLE_RECV_ERROR));
	ck_assert(arm_curl_retryable(CURLE_SEND_ERROR));
	ck_assert(arm_curl_retryable(CURLE_OPERATION_TIMEDOUT));
	/* A certificate that does not verify never gets better. */
	ck_assert(!arm_curl_retryable(CURLE_PEER_FAILED_VERIFICATION));
	ck_assert(!arm_curl_retryable(CURLE_SSL_CACERT_BADFILE));
	ck_assert(!arm_curl_retryable(CURLE_URL_MALFORMAT));
	ck_assert(!arm_curl_retryable(CURLE_UNSUPPORTED_PROTOCOL));
	ck_assert(!arm_curl_retryable(CURLE_OK));
}
END_TEST

/* ---- the governor --------------------------------------------------- */

static void _gov(struct arm_governor *g)
{
	const unsigned lw[ARM_RL_CLASSES] = {50, 40, 40};

	arm_governor_init(g, lw, 10, 2000);
}

static struct arm_throttle_info _writes_left(long n)
{
	struct arm_throttle_info ti;

	arm_throttle_info_init(&ti);
	ti.subscription[ARM_RL_WRITES] = n;
	return ti;
}

START_TEST(spacing_grows_as_the_bucket_drains)
{
	ck_assert_int_eq(arm_governor_spacing(-1, 40, 2000), 0);
	ck_assert_int_eq(arm_governor_spacing(199, 40, 2000), 0);
	ck_assert_int_eq(arm_governor_spacing(40, 40, 2000), 0);
	ck_assert_int_eq(arm_governor_spacing(30, 40, 2000), 500);
	ck_assert_int_eq(arm_governor_spacing(20, 40, 2000), 1000);
	ck_assert_int_eq(arm_governor_spacing(1, 40, 2000), 1950);
	ck_assert_int_eq(arm_governor_spacing(0, 40, 2000), 2000);
	ck_assert_int_eq(arm_governor_spacing(0, 0, 2000), 0);
}
END_TEST

START_TEST(plenty_left_means_no_waiting)
{
	struct arm_governor g;
	struct arm_throttle_info ti = _writes_left(199);

	_gov(&g);
	ck_assert_int_eq(arm_governor_observe(&g, ARM_RL_WRITES, "PUT x", &ti,
	                                      200, 1000),
	                 AZ_OK);
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(
		        arm_governor_ready_at(&g, ARM_RL_WRITES, "PUT x", 1000),
		        1000);
		arm_governor_started(&g, ARM_RL_WRITES, "PUT x", 1000);
	}
	arm_governor_free(&g);
}
END_TEST

START_TEST(low_writes_space_out_writes_before_any_429)
{
	struct arm_governor g;
	struct arm_throttle_info ti = _writes_left(20);
	int64_t t = 5000, prev;

	_gov(&g);
	arm_governor_observe(&g, ARM_RL_WRITES, "PUT a", &ti, 201, t);
	/* The first may go now; each start pushes the next one out. */
	ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_WRITES, "PUT a", t),
	                 t);
	arm_governor_started(&g, ARM_RL_WRITES, "PUT a", t);
	prev = t;
	for (int i = 0; i < 5; i++) {
		int64_t r =
		        arm_governor_ready_at(&g, ARM_RL_WRITES, "PUT b", prev);

		/* 19, 18, ... left: about a second apart, and growing. */
		ck_assert_int_gt(r - prev, 1000);
		arm_governor_started(&g, ARM_RL_WRITES, "PUT b", r);
		prev = r;
	}
	/* Reads are another bucket. */
	ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_READS, "GET a", t),
	                 t);
	arm_governor_free(&g);
}
END_TEST

START_TEST(a_burst_is_counted_before_the_answers_come)
{
	struct arm_governor g;
	struct arm_throttle_info ti = _writes_left(45);
	int held = 0;

	_gov(&g);
	arm_governor_observe(&g, ARM_RL_WRITES, NULL, &ti, 201, 0);
	/* 45 left, low water 40: the sixth start of a burst is held. */
	for (int i = 0; i < 10; i++) {
		if (arm_governor_ready_at(&g, ARM_RL_WRITES, NULL, 10) > 10) {
			held = i;
			break;
		}
		arm_governor_started(&g, ARM_RL_WRITES, NULL, 10);
	}
	ck_assert_int_eq(held, 6);
	arm_governor_free(&g);
}
END_TEST

/*
 * Answers to a burst report counts taken before the rest of the burst
 * reached ARM: they must not give back the writes still in flight.
 */
START_TEST(answers_do_not_give_back_what_is_in_flight)
{
	struct arm_governor g;
	struct arm_throttle_info ti = _writes_left(199);
	const char *key = "PUT Microsoft.Network/networkInterfaces";
	long left = 199;

	_gov(&g);
	arm_governor_observe(&g, ARM_RL_WRITES, key, &ti, 201, 0);
	/* 160 starts bring the count below low water (40) only with the
	 * last one: none of them is spaced. */
	for (int i = 0; i < 160; i++) {
		ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_WRITES, key,
		                                       10),
		                 10);
		arm_governor_started(&g, ARM_RL_WRITES, key, 10);
	}
	/* The first ten answer, in the order ARM served them: each counted
	 * only itself and those before it.  150 are still on their way. */
	for (int i = 0; i < 10; i++) {
		ti = _writes_left(--left);
		arm_governor_finished(&g, ARM_RL_WRITES, key);
		arm_governor_observe(&g, ARM_RL_WRITES, key, &ti, 201, 20);
	}
	/* 39 are left for real: the next write is spaced, not sent at once
	 * as 189 left would have it. */
	ck_assert_int_gt(arm_governor_ready_at(&g, ARM_RL_WRITES, key, 20), 20);
	/* The rest answer: the count is ARM's own again. */
	for (int i = 0; i < 150; i++) {
		ti = _writes_left(--left);
		arm_governor_finished(&g, ARM_RL_WRITES, key);
		arm_governor_observe(&g, ARM_RL_WRITES, key, &ti, 201, 30);
	}
	ck_assert_int_eq(g.cls[ARM_RL_WRITES].remaining, 39);
	ck_assert_int_eq(g.cls[ARM_RL_WRITES].inflight, 0);
	arm_governor_free(&g);
}
END_TEST

START_TEST(shared_bucket_spaces_only_its_kind)
{
	struct arm_governor g;
	struct arm_throttle_info ti;
	const char *const lines[] = {
	        "x-ms-ratelimit-remaining-resource: "
	        "Microsoft.Compute/PutVM3Min;2,Microsoft.Compute/"
	        "PutVM30Min;3000",
	        "x-ms-ratelimit-remaining-subscription-writes: 199", NULL};
	const char *vm = "PUT Microsoft.Compute/virtualMachines";
	const char *nic = "PUT Microsoft.Network/networkInterfaces";

	_gov(&g);
	ti = _feed(lines, 0);
	arm_governor_observe(&g, ARM_RL_WRITES, vm, &ti, 201, 100);
	arm_governor_started(&g, ARM_RL_WRITES, vm, 100);
	ck_assert_int_gt(arm_governor_ready_at(&g, ARM_RL_WRITES, vm, 100),
	                 100);
	ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_WRITES, nic, 100),
	                 100);
	arm_governor_free(&g);
}
END_TEST

START_TEST(one_vms_own_bucket_does_not_slow_the_others)
{
	struct arm_governor g;
	struct arm_throttle_info ti;
	const char *const lines[] = {
	        "x-ms-ratelimit-remaining-resource: "
	        "Microsoft.Compute/PutVMSubscriptionMaximum;1499,"
	        "Microsoft.Compute/PutVMResource;0",
	        "Retry-After: 30", NULL};
	const char *vm = "PUT Microsoft.Compute/virtualMachines";

	_gov(&g);
	ti = _feed(lines, 0);
	arm_governor_observe(&g, ARM_RL_WRITES, vm, &ti, 201, 100);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(
		        arm_governor_ready_at(&g, ARM_RL_WRITES, vm, 100), 100);
		arm_governor_started(&g, ARM_RL_WRITES, vm, 100);
	}
	/* Even its 429 holds back only that VM's own retry. */
	arm_governor_observe(&g, ARM_RL_WRITES, vm, &ti, 429, 100);
	ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_WRITES, vm, 100),
	                 100);
	arm_governor_free(&g);
}
END_TEST

START_TEST(arm_429_blocks_the_class_until_retry_after)
{
	struct arm_governor g;
	struct arm_throttle_info ti;

	_gov(&g);
	arm_throttle_info_init(&ti);
	ti.retry_after_ms = 3000;
	arm_governor_observe(&g, ARM_RL_READS, "GET a", &ti, 429, 1000);
	ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_READS, "GET b", 1000),
	                 4000);
	ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_READS, "GET a", 2000),
	                 4000);
	ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_READS, "GET a", 4500),
	                 4500);
	ck_assert_int_eq(
	        arm_governor_ready_at(&g, ARM_RL_WRITES, "PUT a", 1000), 1000);
	/* Without Retry-After: the longest spacing. */
	arm_throttle_info_init(&ti);
	arm_governor_observe(&g, ARM_RL_DELETES, NULL, &ti, 429, 1000);
	ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_DELETES, NULL, 1000),
	                 3000);
	arm_governor_free(&g);
}
END_TEST

START_TEST(crp_429_blocks_only_that_kind_of_request)
{
	struct arm_governor g;
	struct arm_throttle_info ti;
	const char *const lines[] = {"x-ms-ratelimit-remaining-resource: "
	                             "Microsoft.Compute/HighCostGet;0",
	                             "Retry-After: 1200", NULL};

	_gov(&g);
	ti = _feed(lines, 0);
	arm_governor_observe(&g, ARM_RL_READS,
	                     "GET Microsoft.Compute/virtualMachines", &ti, 429,
	                     0);
	ck_assert_int_eq(arm_governor_ready_at(
	                         &g, ARM_RL_READS,
	                         "GET Microsoft.Compute/virtualMachines", 0),
	                 1200000);
	ck_assert_int_eq(arm_governor_ready_at(
	                         &g, ARM_RL_READS,
	                         "GET Microsoft.Network/networkInterfaces", 0),
	                 0);
	arm_governor_free(&g);
}
END_TEST

START_TEST(old_counts_are_forgotten)
{
	struct arm_governor g;
	struct arm_throttle_info ti = _writes_left(0);

	_gov(&g);
	arm_governor_observe(&g, ARM_RL_WRITES, NULL, &ti, 200, 0);
	arm_governor_started(&g, ARM_RL_WRITES, NULL, 0);
	ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_WRITES, NULL, 0),
	                 2000);
	/* A minute later the buckets have refilled. */
	ck_assert_int_eq(arm_governor_ready_at(&g, ARM_RL_WRITES, NULL, 61000),
	                 61000);
	arm_governor_free(&g);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("arm_throttle");
	TCase *h = tcase_create("headers");
	TCase *r = tcase_create("retries");
	TCase *g = tcase_create("governor");

	tcase_add_test(h, subscription_counts_single_and_global);
	tcase_add_test(h, only_the_global_count_is_enough);
	tcase_add_test(h, resource_buckets_2021_comma_list);
	tcase_add_test(h, resource_buckets_2025_form);
	tcase_add_test(h, resource_header_repeated_accumulates);
	tcase_add_test(h, malformed_values_are_counted_and_ignored);
	tcase_add_test(h, quoted_counts_as_recordings_show_them);
	tcase_add_test(h, other_headers_are_not_throttle_headers);
	tcase_add_test(h, retry_after_seconds_and_http_dates);
	tcase_add_test(h, request_kinds_for_resource_buckets);
	tcase_add_test(r, backoff_doubles_up_to_the_cap);
	tcase_add_test(r, jitter_stays_within_half_to_full_step);
	tcase_add_test(r, broken_random_source_keeps_bounds);
	tcase_add_test(r, retry_after_wins_over_the_schedule);
	tcase_add_test(r, retries_are_bounded_by_attempts_and_time);
	tcase_add_test(r, which_statuses_are_retried);
	tcase_add_test(r, which_transport_errors_are_retried);
	tcase_add_test(g, spacing_grows_as_the_bucket_drains);
	tcase_add_test(g, plenty_left_means_no_waiting);
	tcase_add_test(g, low_writes_space_out_writes_before_any_429);
	tcase_add_test(g, a_burst_is_counted_before_the_answers_come);
	tcase_add_test(g, answers_do_not_give_back_what_is_in_flight);
	tcase_add_test(g, shared_bucket_spaces_only_its_kind);
	tcase_add_test(g, one_vms_own_bucket_does_not_slow_the_others);
	tcase_add_test(g, arm_429_blocks_the_class_until_retry_after);
	tcase_add_test(g, crp_429_blocks_only_that_kind_of_request);
	tcase_add_test(g, old_counts_are_forgotten);
	suite_add_tcase(s, h);
	suite_add_tcase(s, r);
	suite_add_tcase(s, g);
	return tu_run(s);
}
