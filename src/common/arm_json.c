/*
 * arm_json.c - parsers of ARM, IMDS and AAD bodies.  Everything here is
 * fed peer-controlled bytes (and the fuzz target), so every lookup checks
 * the type it expects and nothing is assumed about order or presence.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arm_json.h"

/* Top-level codes that only wrap the real cause, found in details[]. */
static const char *const _generic_codes[] = {
        "ResourceOperationFailure", "ResourceDeploymentFailure",
        "DeploymentFailed", "MultipleErrorsOccurred", NULL};

/* Deeper nesting than this is not an error report but an attack. */
#define _MAX_DETAIL_DEPTH 8

json_object *arm_json_parse(const char *text, size_t len)
{
	struct json_tokener *tok;
	json_object *obj;
	size_t i, end = len;

	for (i = 0; i < len && isspace((unsigned char)text[i]); i++)
		;
	if (i == len || len > INT32_MAX)
		return NULL;
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (json_tokener_get_error(tok) == json_tokener_continue)
		/* A bare number may go on; the NUL says the input ended. */
		obj = json_tokener_parse_ex(tok, "", 1);
	else
		end = json_tokener_get_parse_end(tok);
	if (json_tokener_get_error(tok) != json_tokener_success)
		goto fail;
	/* Only whitespace may follow the value. */
	for (i = end; i < len; i++)
		if (!isspace((unsigned char)text[i]))
			goto fail;
	json_tokener_free(tok);
	return obj;
fail:
	json_object_put(obj);
	json_tokener_free(tok);
	return NULL;
}

static json_object *_get(json_object *obj, const char *key)
{
	json_object *v;

	if (!obj || !json_object_is_type(obj, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(obj, key, &v))
		return NULL;
	return v;
}

static const char *_get_str(json_object *obj, const char *key)
{
	json_object *v = _get(obj, key);

	if (!v || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

const char *arm_json_str_path(json_object *obj, ...)
{
	const char *key, *last = NULL;
	va_list ap;

	va_start(ap, obj);
	while ((key = va_arg(ap, const char *))) {
		if (last)
			obj = _get(obj, last);
		last = key;
	}
	va_end(ap);
	return last ? _get_str(obj, last) : NULL;
}

void arm_error_free(struct arm_error *e)
{
	if (!e)
		return;
	free(e->code);
	free(e->message);
	free(e->top_code);
	for (size_t i = 0; i < e->detail_count; i++)
		free(e->details[i]);
	free(e->details);
	memset(e, 0, sizeof(*e));
}

static bool _is_generic(const char *code)
{
	for (int i = 0; _generic_codes[i]; i++)
		if (!strcmp(code, _generic_codes[i]))
			return true;
	return false;
}

/* The first element of env.details[] if it is an object with a code. */
static json_object *_first_detail(json_object *env)
{
	json_object *details = _get(env, "details"), *d;

	if (!details || !json_object_is_type(details, json_type_array)
	    || json_object_array_length(details) == 0)
		return NULL;
	d = json_object_array_get_idx(details, 0);
	return _get_str(d, "code") ? d : NULL;
}

static enum az_rc _dup(char **dst, const char *s)
{
	if (!s)
		return AZ_OK;
	*dst = strdup(s);
	return *dst ? AZ_OK : AZ_ENOMEM;
}

static enum az_rc _fill_details(json_object *env, struct arm_error *out)
{
	json_object *details = _get(env, "details");
	size_t n;

	if (!details || !json_object_is_type(details, json_type_array))
		return AZ_OK;
	n = json_object_array_length(details);
	if (!n)
		return AZ_OK;
	out->details = calloc(n, sizeof(*out->details));
	if (!out->details)
		return AZ_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *code =
		        _get_str(json_object_array_get_idx(details, i), "code");

		if (!code)
			continue;
		if (_dup(&out->details[out->detail_count], code) != AZ_OK)
			return AZ_ENOMEM;
		out->detail_count++;
	}
	return AZ_OK;
}

enum az_rc arm_parse_error(json_object *body, struct arm_error *out)
{
	json_object *env = body, *wrapped = _get(body, "error"), *cur;
	const char *code;
	enum az_rc rc;

	memset(out, 0, sizeof(*out));
	if (wrapped && json_object_is_type(wrapped, json_type_string)) {
		/* AAD and IMDS: {"error": "invalid_scope",
		 * "error_description": "AADSTS70011: ..."} */
		if (_dup(&out->code, json_object_get_string(wrapped)) != AZ_OK
		    || _dup(&out->top_code, out->code) != AZ_OK
		    || _dup(&out->message, _get_str(body, "error_description"))
		               != AZ_OK)
			goto nomem;
		return AZ_OK;
	}
	if (wrapped && json_object_is_type(wrapped, json_type_object))
		env = wrapped;
	code = _get_str(env, "code");
	if (!code)
		return AZ_EPARSE;
	if (_dup(&out->top_code, code) != AZ_OK
	    || _fill_details(env, out) != AZ_OK)
		goto nomem;
	cur = env;
	for (int depth = 0; depth < _MAX_DETAIL_DEPTH; depth++) {
		json_object *d;

		if (!_is_generic(_get_str(cur, "code")))
			break;
		d = _first_detail(cur);
		if (!d)
			break;
		cur = d;
	}
	if (_dup(&out->code, _get_str(cur, "code")) != AZ_OK
	    || _dup(&out->message, _get_str(cur, "message")) != AZ_OK)
		goto nomem;
	/* A wrapper's detail without a message: keep the wrapper's. */
	if (!out->message
	    && _dup(&out->message, _get_str(env, "message")) != AZ_OK)
		goto nomem;
	return AZ_OK;
nomem:
	rc = AZ_ENOMEM;
	arm_error_free(out);
	return rc;
}

enum az_rc arm_parse_error_text(const char *text, size_t len,
                                struct arm_error *out)
{
	json_object *body = arm_json_parse(text, len);
	enum az_rc rc;

	memset(out, 0, sizeof(*out));
	if (!body)
		return AZ_EPARSE;
	rc = arm_parse_error(body, out);
	json_object_put(body);
	return rc;
}

void arm_token_free(struct arm_token *t)
{
	if (!t)
		return;
	if (t->access_token) {
		explicit_bzero(t->access_token, strlen(t->access_token));
		free(t->access_token);
	}
	memset(t, 0, sizeof(*t));
}

/*
 * A non-negative integer given as a JSON number or as a string of digits
 * (IMDS sends "3599").  false for anything else.
 */
static bool _get_seconds(json_object *obj, const char *key, int64_t *out)
{
	json_object *v = _get(obj, key);
	const char *s;
	char *end;
	long long n;

	if (!v)
		return false;
	switch (json_object_get_type(v)) {
	case json_type_int:
		*out = json_object_get_int64(v);
		return *out >= 0;
	case json_type_double: {
		double d = json_object_get_double(v);

		if (!(d >= 0 && d < 1e15))
			return false;
		*out = (int64_t)d;
		return true;
	}
	case json_type_string:
		s = json_object_get_string(v);
		if (!isdigit((unsigned char)*s))
			return false;
		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno || *end)
			return false;
		*out = n;
		return true;
	default:
		return false;
	}
}

/* First line of s, at most max bytes, into a new string. */
static char *_first_line(const char *s, size_t max)
{
	size_t n = strcspn(s, "\r\n");

	return strndup(s, n < max ? n : max);
}

/* Azure's tokens live about an hour, at most a day with CAE. */
#define ARM_TOKEN_MAX_LIFETIME 86400

enum az_rc arm_parse_token(const char *text, size_t len, time_t now,
                           struct arm_token *out, char *err, size_t errlen)
{
	json_object *body = arm_json_parse(text, len);
	const char *error, *token;
	enum az_rc rc = AZ_OK;
	int64_t secs;

	memset(out, 0, sizeof(*out));
	if (!body || !json_object_is_type(body, json_type_object)) {
		rc = az_err(AZ_EPARSE, err, errlen,
		            "token response is not a JSON object");
		goto out;
	}
	error = _get_str(body, "error");
	if (error) {
		const char *desc = _get_str(body, "error_description");
		char *line = desc ? _first_line(desc, 400) : NULL;

		rc = az_err(AZ_EAUTH, err, errlen, "%s: %s", error,
		            line ? line : "(no description)");
		free(line);
		goto out;
	}
	token = _get_str(body, "access_token");
	if (!token || !*token) {
		rc = az_err(AZ_EPARSE, err, errlen,
		            "token response has no access_token");
		goto out;
	}
	if (_get_seconds(body, "expires_in", &secs)) {
		/* No token lives beyond a day; a larger value is garbage and
		 * must not overflow the sum. */
		if (secs < 0 || secs > ARM_TOKEN_MAX_LIFETIME) {
			rc = az_err(AZ_EPARSE, err, errlen,
			            "token response has expires_in %lld, not "
			            "between 0 and %d seconds",
			            (long long)secs, ARM_TOKEN_MAX_LIFETIME);
			goto out;
		}
		out->expires_on = now + (time_t)secs;
	} else if (_get_seconds(body, "expires_on", &secs)) {
		out->expires_on = (time_t)secs;
	} else {
		rc = az_err(AZ_EPARSE, err, errlen,
		            "token response has neither expires_in nor "
		            "expires_on");
		goto out;
	}
	out->access_token = strdup(token);
	if (!out->access_token)
		rc = AZ_ENOMEM;
out:
	if (body) {
		/* The parsed copy holds the token too. */
		json_object *t = _get(body, "access_token");

		if (t && json_object_is_type(t, json_type_string))
			explicit_bzero((char *)json_object_get_string(t),
			               (size_t)json_object_get_string_len(t));
		json_object_put(body);
	}
	return rc;
}

enum arm_lro_status arm_lro_status_from_string(const char *s)
{
	if (!s)
		return ARM_LRO_IN_PROGRESS;
	if (!strcasecmp(s, "Succeeded"))
		return ARM_LRO_SUCCEEDED;
	if (!strcasecmp(s, "Failed"))
		return ARM_LRO_FAILED;
	if (!strcasecmp(s, "Canceled") || !strcasecmp(s, "Cancelled"))
		return ARM_LRO_CANCELED;
	return ARM_LRO_IN_PROGRESS;
}

enum az_rc arm_parse_lro_status(json_object *body, enum arm_lro_status *st,
                                struct arm_error *err)
{
	const char *status = _get_str(body, "status");
	enum az_rc rc;

	memset(err, 0, sizeof(*err));
	if (!status)
		return AZ_EPARSE;
	*st = arm_lro_status_from_string(status);
	if (*st != ARM_LRO_FAILED && *st != ARM_LRO_CANCELED)
		return AZ_OK;
	rc = arm_parse_error(body, err);
	if (rc == AZ_ENOMEM)
		return rc;
	if (rc == AZ_EPARSE) {
		/* Failed without an error object: name the status. */
		if (_dup(&err->code, status) != AZ_OK
		    || _dup(&err->top_code, status) != AZ_OK
		    || _dup(&err->message, "the operation ended without an "
		                           "error report")
		               != AZ_OK) {
			arm_error_free(err);
			return AZ_ENOMEM;
		}
	}
	return AZ_OK;
}

const char *arm_json_next_link(json_object *page)
{
	const char *next = _get_str(page, "nextLink");

	return next && *next ? next : NULL;
}

const char *arm_provisioning_state(json_object *resource)
{
	return arm_json_str_path(resource, "properties", "provisioningState",
	                         NULL);
}

const char *arm_vm_power_state(json_object *vm)
{
	json_object *statuses = _get(vm, "statuses");
	size_t n;

	/* A VM with $expand=instanceView, or the instanceView itself. */
	if (!statuses)
		statuses = _get(_get(_get(vm, "properties"), "instanceView"),
		                "statuses");
	if (!statuses || !json_object_is_type(statuses, json_type_array))
		return NULL;
	n = json_object_array_length(statuses);
	for (size_t i = 0; i < n; i++) {
		const char *code = _get_str(
		        json_object_array_get_idx(statuses, i), "code");

		if (code && !strncmp(code, "PowerState/", 11))
			return code + 11;
	}
	return NULL;
}

/*
 * The element of array whose properties.primary is true, else the first
 * (Azure omits "primary" when there is only one).
 */
static json_object *_primary(json_object *array)
{
	size_t n;

	if (!array || !json_object_is_type(array, json_type_array))
		return NULL;
	n = json_object_array_length(array);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(array, i);
		json_object *p = _get(_get(e, "properties"), "primary");

		if (p && json_object_is_type(p, json_type_boolean)
		    && json_object_get_boolean(p))
			return e;
	}
	return n ? json_object_array_get_idx(array, 0) : NULL;
}

const char *arm_vm_primary_nic_id(json_object *vm)
{
	json_object *nics = _get(_get(_get(vm, "properties"), "networkProfile"),
	                         "networkInterfaces");

	return _get_str(_primary(nics), "id");
}

const char *arm_nic_private_ip(json_object *nic)
{
	json_object *ipconfs =
	        _get(_get(nic, "properties"), "ipConfigurations");

	return arm_json_str_path(_primary(ipconfs), "properties",
	                         "privateIPAddress", NULL);
}
