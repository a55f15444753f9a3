/*
 * fuzz_arm_json.c - libFuzzer target for what the ARM client reads from
 * the network: JSON bodies (error envelopes, token responses, LRO status,
 * resources, list pages) and throttle headers.
 *
 * Every input must be parsed or refused; nothing may crash, leak, read out
 * of bounds or hang.  Build (from the top of the tree):
 *
 *   clang -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined \
 *     -Isrc/common testsuite/fuzz/fuzz_arm_json.c src/common/arm_json.c \
 *     src/common/arm_throttle.c src/common/buf.c src/common/az_rc.c \
 *     $(pkg-config --cflags --libs json-c) -o fuzz_arm_json
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arm_json.h"
#include "arm_throttle.h"

/* Everything that reads a parsed body. */
static void _readers(json_object *body)
{
	enum arm_lro_status st;
	struct arm_error e;

	if (arm_parse_error(body, &e) == AZ_OK)
		arm_error_free(&e);
	if (arm_parse_lro_status(body, &st, &e) == AZ_OK)
		arm_error_free(&e);
	(void)arm_vm_power_state(body);
	(void)arm_vm_primary_nic_id(body);
	(void)arm_nic_private_ip(body);
	(void)arm_provisioning_state(body);
	(void)arm_json_next_link(body);
}

/* The input as header lines, one per '\n', as curl hands them over. */
static void _headers(const char *text, size_t size)
{
	static const unsigned low_water[ARM_RL_CLASSES] = {50, 40, 40};
	struct arm_throttle_info ti;
	struct arm_governor g;
	const char *p = text, *end = text + size;

	arm_throttle_info_init(&ti);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl + 1 : end) - p);

		arm_throttle_header(&ti, p, len, 1700000000);
		p += len;
	}
	(void)arm_throttle_shared_min(&ti);
	arm_governor_init(&g, low_water, 10, 2000);
	for (int c = 0; c < ARM_RL_CLASSES; c++) {
		(void)arm_throttle_remaining(&ti, (enum arm_rl_class)c);
		arm_governor_observe(&g, (enum arm_rl_class)c, "PUT k", &ti,
		                     429, 1000);
		arm_governor_started(&g, (enum arm_rl_class)c, "PUT k", 1000);
		(void)arm_governor_ready_at(&g, (enum arm_rl_class)c, "PUT k",
		                            1000);
	}
	arm_governor_free(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct arm_token tok;
	struct arm_error e;
	json_object *body;
	char err[AZ_ERRLEN];
	char *copy, *key;
	long ms;

	body = arm_json_parse(text, size);
	_readers(body);
	json_object_put(body);
	if (arm_parse_error_text(text, size, &e) == AZ_OK)
		arm_error_free(&e);
	if (arm_parse_token(text, size, 1700000000, &tok, err, sizeof(err))
	    == AZ_OK)
		arm_token_free(&tok);
	_headers(text, size);

	/* The NUL-terminated readers: Retry-After values and URLs. */
	copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	(void)arm_parse_retry_after(copy, 1700000000, &ms);
	key = arm_throttle_key(size ? (enum arm_method)(data[0] % 5) : ARM_GET,
	                       copy);
	free(key);
	free(copy);
	return 0;
}
