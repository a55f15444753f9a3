/*
 * arm_json.h - pure parsers of what ARM, IMDS and AAD answer: error
 * envelopes, token responses, LRO status bodies, list pages.
 *
 * No I/O, no clock (the caller passes "now"), no logging: the client uses
 * them, the unit tests and the fuzz target call them directly.
 */
#ifndef AZRDMA_ARM_JSON_H
#define AZRDMA_ARM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "arm.h"

/*
 * Parse text (len bytes, need not be NUL-terminated) as one JSON value.
 * Returns a new object (caller puts it), or NULL for an empty body,
 * whitespace only, or anything that is not exactly one JSON value.
 */
json_object *arm_json_parse(const char *text, size_t len);

/*
 * Read an error envelope: {"error": {"code", "message", "details"}}, the
 * same without the wrapper (CRP throttling), or the AAD/IMDS form
 * {"error": "<code>", "error_description": "..."}.  AZ_OK fills out (freed
 * with arm_error_free); AZ_EPARSE: body holds no error code (out is left
 * empty); AZ_ENOMEM.
 */
enum az_rc arm_parse_error(json_object *body, struct arm_error *out);
/* The same from raw text; AZ_EPARSE for text that is not JSON. */
enum az_rc arm_parse_error_text(const char *text, size_t len,
                                struct arm_error *out);

/* A bearer token and when it expires (seconds since the epoch). */
struct arm_token {
	char *access_token;
	time_t expires_on;
};

/* Zero the token's bytes and free them; t is then empty. */
void arm_token_free(struct arm_token *t);

/*
 * Read a token response of IMDS (every value a string) or AAD v2.0
 * (expires_in a number), or azrdma's own cache file ({access_token,
 * expires_on}).  expires_in (from now) is preferred over expires_on, which
 * would suffer from clock skew.  AZ_EAUTH with "<error>: <description>"
 * for an AAD/IMDS error body, AZ_EPARSE for anything else unusable.
 */
enum az_rc arm_parse_token(const char *text, size_t len, time_t now,
                           struct arm_token *out, char *err, size_t errlen);

enum arm_lro_status {
	ARM_LRO_IN_PROGRESS = 0, /* any non-terminal status */
	ARM_LRO_SUCCEEDED,
	ARM_LRO_FAILED,
	ARM_LRO_CANCELED,
};

/*
 * Read an Azure-AsyncOperation status body.  For Failed and Canceled, err
 * gets the operation's error (code "Failed"/"Canceled" if it carries none).
 * AZ_EPARSE: no "status" string.
 */
enum az_rc arm_parse_lro_status(json_object *body, enum arm_lro_status *st,
                                struct arm_error *err);

/*
 * Map a provisioningState ("Succeeded", "Failed", "Canceled", or
 * non-terminal "Creating", "Updating", ...) like a status.
 */
enum arm_lro_status arm_lro_status_from_string(const char *s);

/* nextLink of a list page, or NULL when it is the last page. */
const char *arm_json_next_link(json_object *page);

/* The string at obj.k1.k2... (NULL-terminated keys), or NULL. */
const char *arm_json_str_path(json_object *obj, ...) __attribute__((sentinel));

#endif
