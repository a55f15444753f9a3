/*
 * arm_client.c - the ARM client's engine: calls as small state machines
 * (send, retry, poll the LRO, follow pages) driven by one curl multi
 * handle, at most MaxParallelRequests transfers at a time.
 *
 * Every call ("op") is on one list in submission order, in one of three
 * states: waiting for its time (a first send, a retry after backoff, the
 * next LRO poll, or a start the throttle governor held back), waiting for
 * a token, or in flight.  The run loop starts what is due, lets curl move
 * bytes, and hands each finished exchange to the op's current step.  The
 * token request is an op of its own, at the head of the list.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "arm_internal.h"
#include "buf.h"
#include "log.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

/* A body larger than this is not an ARM answer. */
#define _MAX_BODY (64u << 20)
/* The loop wakes at least this often (ms) to start what became due. */
#define _MAX_WAIT_MS 1000
/* IMDS is link-local: it connects at once or is not there. */
#define IMDS_CONNECT_TIMEOUT_MS 2000
#define IMDS_UNREACHABLE_TRIES 3u

enum _kind {
	_K_CALL = 0,
	_K_TOKEN,
};

enum _state {
	_S_WAIT = 0, /* until due_ms */
	_S_TOKEN,    /* until a token arrives */
	_S_ACTIVE,   /* exchange on the multi handle */
};

enum _stage {
	_ST_INITIAL = 0,   /* the call itself */
	_ST_POLL_ASYNC,    /* GET Azure-AsyncOperation */
	_ST_POLL_LOCATION, /* GET Location: 202 again, or the result */
	_ST_POLL_RESOURCE, /* GET the resource until provisioningState
	                    * is terminal (201 without poll headers) */
	_ST_FINAL_GET,     /* GET the resource after Succeeded */
	_ST_PAGE,          /* GET nextLink */
};

struct arm_op {
	struct arm_op *prev, *next;
	enum _kind kind;
	enum _state state;
	enum _stage stage;
	enum arm_method method; /* of the call */
	char *url;              /* of the call, with api-version */
	char *body;             /* request body; the token form holds the
	                         * client secret */
	unsigned flags;
	arm_done_fn done;
	void *arg;
	enum arm_peer peer;

	/* the current step: one request, retried */
	enum arm_method step_method;
	char *step_url;
	enum arm_rl_class rl_class;
	char *rl_key;
	unsigned attempt; /* retries so far */
	int64_t step_start_ms;
	int64_t due_ms;
	bool held; /* the governor held it (logged once) */
	bool auth_retried;
	unsigned token_gen; /* of the token it was sent with */

	/* long-running operation and paging */
	char *async_url;
	char *location_url;
	int64_t lro_deadline_ms;
	json_object *items; /* value[] of the pages so far */
	arm_page_fn page;   /* or each page to this */

	/* the exchange in flight */
	CURL *easy;
	struct curl_slist *headers;
	struct az_buf resp;
	bool resp_too_big;
	char *hdr_async;
	char *hdr_location;
	char *hdr_request_id;
	struct arm_throttle_info ti;
	char errbuf[CURL_ERROR_SIZE];
	int64_t sent_ms;

	struct arm_result res;
};

static int64_t _now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: jitter only needs to differ between clients. */
static double _default_random(void *arg)
{
	struct arm_client *c = arg;

	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return (double)((c->rng * 0x2545F4914F6CDD1DULL) >> 11)
	       / (double)(1ULL << 53);
}

void arm_tuning_default(struct arm_tuning *t)
{
	memset(t, 0, sizeof(*t));
	t->poll_interval_ms = 5000;
	t->lro_timeout_ms = 30 * 60 * 1000;
	t->backoff_base_ms = 1000;
	t->backoff_cap_ms = 30000;
	t->retry_budget_ms = 120000; /* IMDS may be updating for 70 s */
	t->max_attempts = 10;
	t->connect_timeout_ms = 10000;
	t->transfer_timeout_ms = 60000;
	/* Subscription buckets hold 250 reads and 200 writes/deletes and
	 * refill 25 and 10 a second: keep a reserve for other clients. */
	t->low_water_reads = 50;
	t->low_water_writes = 40;
	t->low_water_deletes = 40;
	t->low_water_resource = 10;
	t->max_spacing_ms = 2000;
	t->token_margin_s = 300;
}

static void _result_clear(struct arm_result *r)
{
	json_object_put(r->body);
	arm_error_free(&r->error);
	free(r->request_id);
	memset(r, 0, sizeof(*r));
}

void arm_result_free(struct arm_result *r)
{
	if (!r)
		return;
	_result_clear(r);
	free(r);
}

/* ---- easy handles and headers --------------------------------------- */

static CURL *_easy_get(struct arm_client *c)
{
	if (c->idle_count)
		return c->idle[--c->idle_count];
	return curl_easy_init();
}

/* Keep the handle for the next exchange (curl keeps its connection in the
 * multi handle's cache either way). */
static void _easy_put(struct arm_client *c, CURL *e)
{
	if (c->idle_count == c->idle_cap) {
		size_t cap = c->idle_cap ? c->idle_cap * 2 : 8;
		CURL **p = realloc(c->idle, cap * sizeof(*p));

		if (!p) {
			curl_easy_cleanup(e);
			return;
		}
		c->idle = p;
		c->idle_cap = cap;
	}
	curl_easy_reset(e);
	c->idle[c->idle_count++] = e;
}

/* The Authorization header lives in the list: zero it before freeing. */
static void _headers_free(struct curl_slist *h)
{
	for (struct curl_slist *p = h; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

/* Answers may hold a token or a secret's echo: op->resp wipes what it
 * leaves (buf.h). */
static void _resp_free(struct arm_op *op)
{
	buf_free(&op->resp);
}

static void _exchange_reset(struct arm_op *op)
{
	_headers_free(op->headers);
	op->headers = NULL;
	_resp_free(op);
	op->resp_too_big = false;
	free(op->hdr_async);
	free(op->hdr_location);
	free(op->hdr_request_id);
	op->hdr_async = op->hdr_location = op->hdr_request_id = NULL;
	arm_throttle_info_init(&op->ti);
	op->errbuf[0] = '\0';
}

/* ---- the op list ---------------------------------------------------- */

static void _link_tail(struct arm_client *c, struct arm_op *op)
{
	op->prev = c->tail;
	op->next = NULL;
	if (c->tail)
		c->tail->next = op;
	else
		c->head = op;
	c->tail = op;
}

static void _link_head(struct arm_client *c, struct arm_op *op)
{
	op->prev = NULL;
	op->next = c->head;
	if (c->head)
		c->head->prev = op;
	else
		c->tail = op;
	c->head = op;
}

static void _unlink(struct arm_client *c, struct arm_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		c->head = op->next;
	if (op->next)
		op->next->prev = op->prev;
	else
		c->tail = op->prev;
	op->prev = op->next = NULL;
}

/* Take the op off the multi handle if it is in flight. */
static void _detach(struct arm_client *c, struct arm_op *op)
{
	if (!op->easy)
		return;
	if (op->kind == _K_CALL)
		arm_governor_finished(&c->gov, op->rl_class, op->rl_key);
	curl_multi_remove_handle(c->multi, op->easy);
	_easy_put(c, op->easy);
	op->easy = NULL;
	c->active--;
}

static void _op_free(struct arm_client *c, struct arm_op *op)
{
	_detach(c, op);
	_exchange_reset(op);
	buf_free(&op->resp);
	free(op->url);
	arm_free_secret(op->body);
	free(op->step_url);
	free(op->rl_key);
	free(op->async_url);
	free(op->location_url);
	json_object_put(op->items);
	_result_clear(&op->res);
	free(op);
}

/* ---- URLs ----------------------------------------------------------- */

/*
 * Whether url is on ArmEndpoint's scheme, host and port: the token goes
 * with every poll and page, so it must not follow a URL elsewhere.
 */
static bool _same_origin(const struct arm_client *c, const char *url)
{
	static const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST,
	                                  CURLUPART_PORT};
	CURLU *a = curl_url(), *b = curl_url();
	bool same = false;

	if (!a || !b
	    || curl_url_set(a, CURLUPART_URL, c->arm_endpoint, 0) != CURLUE_OK
	    || curl_url_set(b, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	same = true;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && same; i++) {
		char *pa = NULL, *pb = NULL;

		if (curl_url_get(a, parts[i], &pa, CURLU_DEFAULT_PORT)
		            != CURLUE_OK
		    || curl_url_get(b, parts[i], &pb, CURLU_DEFAULT_PORT)
		               != CURLUE_OK
		    || strcasecmp(pa, pb))
			same = false;
		curl_free(pa);
		curl_free(pb);
	}
out:
	curl_url_cleanup(a);
	curl_url_cleanup(b);
	return same;
}

/* What a log line shows of a URL: the path, never the query (signed LRO
 * URLs carry signatures there). */
static int _path_len(const char *url, const char **start)
{
	const char *p = strstr(url, "://");

	p = p ? strchr(p + 3, '/') : url;
	if (!p)
		p = "/";
	*start = p;
	return (int)strcspn(p, "?#");
}

static const char *_api_version(const struct arm_client *c,
                                const struct arm_request *req)
{
	switch (req->api) {
	case ARM_API_COMPUTE:
		return c->compute_api;
	case ARM_API_NETWORK:
		return c->network_api;
	case ARM_API_SKUS:
		return ARM_SKUS_API_VERSION;
	case ARM_API_CUSTOM:
		return req->api_version;
	default:
		return NULL;
	}
}

static enum az_rc _build_url(const struct arm_client *c,
                             const struct arm_request *req, char **url,
                             char *err, size_t errlen)
{
	bool absolute = !strncasecmp(req->path, "https://", 8)
	                || !strncasecmp(req->path, "http://", 7);
	const char *ver = _api_version(c, req);
	struct az_buf b = {0};
	char sep;

	if (!absolute && req->path[0] != '/')
		return az_err(AZ_EINVAL, err, errlen,
		              "ARM path '%s' does not start with '/'",
		              req->path);
	if (absolute && !_same_origin(c, req->path))
		return az_err(AZ_EINVAL, err, errlen,
		              "URL is not on ArmEndpoint %s", c->arm_endpoint);
	if (req->api == ARM_API_CUSTOM && (!ver || !*ver))
		return az_err(AZ_EINVAL, err, errlen,
		              "ARM_API_CUSTOM without an api_version");
	sep = strchr(req->path, '?') ? '&' : '?';
	if ((!absolute && buf_puts(&b, c->arm_endpoint) != AZ_OK)
	    || buf_puts(&b, req->path) != AZ_OK
	    || (ver && buf_printf(&b, "%capi-version=%s", sep, ver) != AZ_OK)
	    || (req->query && *req->query
	        && buf_printf(&b, "%c%s", ver || sep == '&' ? '&' : '?',
	                      req->query)
	                   != AZ_OK)) {
		buf_free(&b);
		return az_err(AZ_ENOMEM, err, errlen, "out of memory");
	}
	*url = buf_steal(&b);
	return AZ_OK;
}

/* ---- curl callbacks ------------------------------------------------- */

static size_t _on_body(char *data, size_t size, size_t n, void *arg)
{
	struct arm_op *op = arg;

	if (op->resp.len + n > _MAX_BODY
	    || buf_append(&op->resp, data, n) != AZ_OK) {
		op->resp_too_big = true;
		return 0;
	}
	return n;
}

/* A copy of the header's value if line is header name, else NULL. */
static char *_header_value(const char *line, size_t len, const char *name)
{
	size_t nlen = strlen(name), vlen;
	const char *v;

	if (len <= nlen || line[nlen] != ':' || strncasecmp(line, name, nlen))
		return NULL;
	v = line + nlen + 1;
	vlen = len - nlen - 1;
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen
	       && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'
	           || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	return strndup(v, vlen);
}

static void _take_header(char **dst, char *value)
{
	if (!value)
		return;
	free(*dst);
	*dst = value;
}

static size_t _on_header(char *line, size_t size, size_t n, void *arg)
{
	struct arm_op *op = arg;

	/* A status line starts a response: forget any interim one's. */
	if (n >= 5 && !strncmp(line, "HTTP/", 5)) {
		free(op->hdr_async);
		free(op->hdr_location);
		free(op->hdr_request_id);
		op->hdr_async = op->hdr_location = op->hdr_request_id = NULL;
		arm_throttle_info_init(&op->ti);
		return n;
	}
	_take_header(&op->hdr_async,
	             _header_value(line, n, "Azure-AsyncOperation"));
	_take_header(&op->hdr_location, _header_value(line, n, "Location"));
	_take_header(&op->hdr_request_id,
	             _header_value(line, n, "x-ms-request-id"));
	arm_throttle_header(&op->ti, line, n, time(NULL));
	return n;
}

/* ---- sending -------------------------------------------------------- */

static enum az_rc _add_header(struct curl_slist **h, const char *line)
{
	struct curl_slist *n = curl_slist_append(*h, line);

	if (!n)
		return AZ_ENOMEM;
	*h = n;
	return AZ_OK;
}

static enum az_rc _build_headers(struct arm_client *c, struct arm_op *op)
{
	struct az_buf auth = {0};
	enum az_rc rc;

	/* No "Expect: 100-continue" round trip for bodies. */
	if (_add_header(&op->headers, "Expect:") != AZ_OK
	    || _add_header(&op->headers, "Accept: application/json") != AZ_OK)
		return AZ_ENOMEM;
	if (op->kind == _K_TOKEN) {
		if (op->peer == ARM_PEER_IMDS)
			return _add_header(&op->headers, "Metadata: true");
		return _add_header(&op->headers,
		                   "Content-Type: "
		                   "application/x-www-form-urlencoded");
	}
	if (op->step_method != ARM_GET && op->step_method != ARM_DELETE
	    && _add_header(&op->headers, "Content-Type: application/json")
	               != AZ_OK)
		return AZ_ENOMEM;
	rc = buf_printf(&auth, "Authorization: Bearer %s",
	                c->token.access_token);
	if (rc == AZ_OK)
		rc = _add_header(&op->headers, auth.data);
	if (auth.data)
		explicit_bzero(auth.data, auth.len);
	buf_free(&auth);
	op->token_gen = c->token_gen;
	return rc;
}

static enum az_rc _send(struct arm_client *c, struct arm_op *op, int64_t now)
{
	/* Only the IMDS token request may go over plain HTTP (the link-local
	 * endpoint speaks nothing else). */
	const char *protocols =
	        op->peer == ARM_PEER_IMDS ? "http,https" : "https";
	/* Only the call itself has a body; polls and pages are GETs. */
	const char *body = op->stage == _ST_INITIAL && op->body ? op->body : "";
	CURL *e;

	_exchange_reset(op);
	if (_build_headers(c, op) != AZ_OK)
		return AZ_ENOMEM;
	e = _easy_get(c);
	if (!e)
		return AZ_ENOMEM;
	op->easy = e;
	curl_easy_setopt(e, CURLOPT_URL, op->step_url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, op);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, _on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, op);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, _on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, op);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, op->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	                 op->peer == ARM_PEER_IMDS
	                                 && c->tuning.connect_timeout_ms
	                                            > IMDS_CONNECT_TIMEOUT_MS
	                         ? (long)IMDS_CONNECT_TIMEOUT_MS
	                         : (long)c->tuning.connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
	                 (long)c->tuning.transfer_timeout_ms);
	curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	/* Bodies are a few kB and sent from memory.  curl's default upload
	 * buffer is 64 kB per handle: allocated, mostly never touched, so
	 * this trims heap (as massif counts it) more than resident memory. */
	curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, protocols);
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS,
	                 op->peer == ARM_PEER_IMDS
	                         ? (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)
	                         : (long)CURLPROTO_HTTPS);
	(void)protocols;
#endif
	/* Peer and host verification stay on (curl's default), always.
	 * curl builds each new connection's certificate store from the CA
	 * file again, unless it may keep one store for the multi handle; it
	 * may only when no CA directory is set, and Debian's curl sets one
	 * by default (/etc/ssl/certs).  Parsing a system bundle of ~140 CAs
	 * costs ~43 ms of CPU and ~0.8 MB per connection, so the directory
	 * goes: the file alone is trusted, its store built once. */
	if (c->ca_bundle) {
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_bundle);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	}
	if (c->share)
		curl_easy_setopt(e, CURLOPT_SHARE, c->share);
	/* IMDS must be reached directly, never through a proxy. */
	if (op->peer == ARM_PEER_IMDS)
		curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	switch (op->step_method) {
	case ARM_GET:
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		break;
	case ARM_DELETE:
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
		break;
	default:
		/* POSTFIELDS does not copy: the body (maybe the secret) is
		 * the op's and outlives the exchange. */
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		if (op->step_method != ARM_POST)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
			                 arm_method_name(op->step_method));
		break;
	}
	if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
		_easy_put(c, e);
		op->easy = NULL;
		return AZ_EHTTP;
	}
	c->active++;
	op->state = _S_ACTIVE;
	op->sent_ms = now;
	return AZ_OK;
}

/* ---- finishing ------------------------------------------------------ */

/* Complete a call: its callback runs, then the op is gone. */
static void _finish(struct arm_client *c, struct arm_op *op, enum az_rc rc,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void _finish(struct arm_client *c, struct arm_op *op, enum az_rc rc,
                    const char *fmt, ...)
{
	va_list ap;

	op->res.rc = rc;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(op->res.err, sizeof(op->res.err), fmt, ap);
		va_end(ap);
		/* One line: it may become a node's reason. */
		for (char *p = op->res.err; *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' ';
	}
	_detach(c, op);
	_unlink(c, op);
	c->pending--;
	if (op->done)
		op->done(c, &op->res, op->arg);
	_op_free(c, op);
}

/* Finish with the ARM error in op->res.error. */
static void _finish_error(struct arm_client *c, struct arm_op *op,
                          enum az_rc rc)
{
	const char *p;
	int n = _path_len(op->step_url, &p);

	if (op->res.error.code)
		_finish(c, op, rc, "%s: %s", op->res.error.code,
		        op->res.error.message ? op->res.error.message
		                              : "(no message)");
	else
		_finish(c, op, rc, "%s %.*s: HTTP %ld",
		        arm_method_name(op->step_method), n, p, op->res.status);
}

/*
 * The token request ended (op, if not NULL, is done with): wake every call
 * waiting for a token, or fail them all with c->token_err.
 */
static void _token_finished(struct arm_client *c, struct arm_op *op,
                            enum az_rc rc)
{
	struct arm_op *w;

	if (op) {
		_detach(c, op);
		_unlink(c, op);
		_op_free(c, op);
	}
	c->token_op = NULL;
	if (rc == AZ_OK) {
		for (w = c->head; w; w = w->next) {
			if (w->state != _S_TOKEN)
				continue;
			w->state = _S_WAIT;
			w->due_ms = 0;
		}
		return;
	}
	/* Search afresh each time: callbacks may submit more calls. */
	for (;;) {
		for (w = c->head; w && w->state != _S_TOKEN; w = w->next)
			;
		if (!w)
			break;
		_finish(c, w, AZ_EAUTH, "%s", c->token_err);
	}
}

/* ---- stepping ------------------------------------------------------- */

static enum az_rc _set_step(struct arm_client *c, struct arm_op *op,
                            enum _stage stage, enum arm_method method,
                            const char *url, long delay_ms)
{
	char *u = strdup(url);
	char *key = arm_throttle_key(method, url);

	if (!u || !key) {
		free(u);
		free(key);
		return AZ_ENOMEM;
	}
	free(op->step_url);
	free(op->rl_key);
	op->step_url = u;
	op->rl_key = key;
	op->stage = stage;
	op->step_method = method;
	op->rl_class = arm_rl_class_of(method);
	op->attempt = 0;
	op->auth_retried = false;
	op->held = false;
	op->state = _S_WAIT;
	op->due_ms = _now_ms() + delay_ms;
	op->step_start_ms = op->due_ms;
	return AZ_OK;
}

/* Retry the current step after backoff; false when out of tries or
 * time. */
static bool _retry(struct arm_client *c, struct arm_op *op, long retry_after_ms,
                   const char *why)
{
	struct arm_backoff b = {c->tuning.backoff_base_ms,
	                        c->tuning.backoff_cap_ms, c->tuning.random,
	                        c->tuning.random_arg};
	int64_t now = _now_ms();
	long d = arm_retry_delay(&b, op->attempt, c->tuning.max_attempts,
	                         (long)(now - op->step_start_ms),
	                         (long)c->tuning.retry_budget_ms,
	                         retry_after_ms);
	const char *p;
	int n = _path_len(op->step_url, &p);

	if (d < 0) {
		log_verbose("arm: %s %.*s: %s; giving up after %u tries",
		            arm_method_name(op->step_method), n, p, why,
		            op->attempt + 1);
		return false;
	}
	log_verbose("arm: %s %.*s: %s; retry %u in %ld ms%s",
	            arm_method_name(op->step_method), n, p, why,
	            op->attempt + 1, d,
	            retry_after_ms >= 0 ? " (Retry-After)" : "");
	op->attempt++;
	op->state = _S_WAIT;
	op->due_ms = now + d;
	return true;
}

/*
 * url came from ARM (a poll URL, a nextLink): the token goes there only if
 * it is on ArmEndpoint's host; otherwise the call fails.
 */
static bool _origin_ok(struct arm_client *c, struct arm_op *op, const char *url)
{
	if (_same_origin(c, url))
		return true;
	_finish(c, op, AZ_EPARSE,
	        "ARM sent a URL that is not on ArmEndpoint %s; refusing to "
	        "send the token there",
	        c->arm_endpoint);
	return false;
}

/*
 * Poll again after Retry-After or the poll interval, within the LRO's
 * time, at the URL the last answer named if it named a new one.
 */
static void _poll_again(struct arm_client *c, struct arm_op *op,
                        const char *status)
{
	long d = op->ti.retry_after_ms >= 0 ? op->ti.retry_after_ms
	                                    : (long)c->tuning.poll_interval_ms;
	char **moved = op->stage == _ST_POLL_ASYNC      ? &op->hdr_async
	               : op->stage == _ST_POLL_LOCATION ? &op->hdr_location
	                                                : NULL;
	int64_t now = _now_ms();

	if (now + d > op->lro_deadline_ms) {
		_finish(c, op, AZ_ETIMEOUT, "operation still %s after %u s",
		        status, c->tuning.lro_timeout_ms / 1000);
		return;
	}
	if (moved && *moved && strcmp(*moved, op->step_url)) {
		if (!_origin_ok(c, op, *moved))
			return;
		free(op->step_url);
		op->step_url = *moved;
		*moved = NULL;
	}
	op->attempt = 0;
	op->state = _S_WAIT;
	op->due_ms = now + d;
	op->step_start_ms = op->due_ms;
}

static void _step_or_fail(struct arm_client *c, struct arm_op *op,
                          enum _stage stage, const char *url, long delay)
{
	if (!_origin_ok(c, op, url))
		return;
	if (_set_step(c, op, stage, ARM_GET, url, delay) != AZ_OK)
		_finish(c, op, AZ_ENOMEM, "out of memory");
}

/* The call answered 201/202 with somewhere to poll. */
static void _lro_begin(struct arm_client *c, struct arm_op *op)
{
	long d = op->ti.retry_after_ms >= 0 ? op->ti.retry_after_ms
	                                    : (long)c->tuning.poll_interval_ms;

	op->async_url = op->hdr_async;
	op->location_url = op->hdr_location;
	op->hdr_async = op->hdr_location = NULL;
	op->lro_deadline_ms = _now_ms() + c->tuning.lro_timeout_ms;
	if (op->async_url)
		_step_or_fail(c, op, _ST_POLL_ASYNC, op->async_url, d);
	else
		_step_or_fail(c, op, _ST_POLL_LOCATION, op->location_url, d);
}

/* A page's items: to op->page, or kept for the merged body. */
static enum az_rc _page_take(struct arm_client *c, struct arm_op *op,
                             json_object *value)
{
	if (op->page) {
		op->page(c, value, op->arg);
		return AZ_OK;
	}
	if (!op->items && !(op->items = json_object_new_array()))
		return AZ_ENOMEM;
	for (size_t i = 0; i < json_object_array_length(value); i++) {
		json_object *it = json_object_array_get_idx(value, i);

		if (json_object_array_add(op->items, json_object_get(it))) {
			json_object_put(it);
			return AZ_ENOMEM;
		}
	}
	return AZ_OK;
}

/* One page of a list: take its items, then the next page or the end. */
static void _page(struct arm_client *c, struct arm_op *op, json_object *body)
{
	json_object *value, *all;
	const char *next;
	bool more;

	if (!json_object_object_get_ex(body, "value", &value)
	    || !json_object_is_type(value, json_type_array)) {
		json_object_put(body);
		_finish(c, op, AZ_EPARSE, "list page without a value array");
		return;
	}
	if (_page_take(c, op, value) != AZ_OK) {
		json_object_put(body);
		_finish(c, op, AZ_ENOMEM, "out of memory");
		return;
	}
	next = arm_json_next_link(body);
	more = next != NULL;
	if (more)
		_step_or_fail(c, op, _ST_PAGE, next, 0);
	json_object_put(body); /* next pointed into it */
	if (more)
		return;
	/* The last page: the merged list, or no body after op->page. */
	if (op->items) {
		all = json_object_new_object();
		if (!all || json_object_object_add(all, "value", op->items)) {
			json_object_put(all);
			_finish(c, op, AZ_ENOMEM, "out of memory");
			return;
		}
		op->items = NULL;
		op->res.body = all;
	}
	_finish(c, op, AZ_OK, NULL);
}

/* A 2xx answer to the call itself. */
static void _initial_done(struct arm_client *c, struct arm_op *op,
                          json_object *body)
{
	long status = op->res.status;
	const char *ps;

	/* Accepted: polls and pages are GETs, so the request body (a VM's
	 * is kilobytes, held for each of hundreds of creates in flight) is
	 * not needed again. */
	arm_free_secret(op->body);
	op->body = NULL;
	if (op->flags & ARM_REQ_NO_LRO)
		goto done;
	if ((status == 201 || status == 202)
	    && (op->hdr_async || op->hdr_location)) {
		json_object_put(body);
		_lro_begin(c, op);
		return;
	}
	/* A change to an existing resource: 200 and still an operation. */
	if (status == 200 && op->hdr_async && op->method != ARM_GET) {
		json_object_put(body);
		_lro_begin(c, op);
		return;
	}
	/* 201 without headers: watch provisioningState on the resource. */
	ps = arm_provisioning_state(body);
	if (status == 201 && op->method == ARM_PUT && ps
	    && arm_lro_status_from_string(ps) == ARM_LRO_IN_PROGRESS) {
		json_object_put(body);
		op->lro_deadline_ms = _now_ms() + c->tuning.lro_timeout_ms;
		_step_or_fail(c, op, _ST_POLL_RESOURCE, op->url,
		              c->tuning.poll_interval_ms);
		return;
	}
	if ((op->flags & ARM_REQ_PAGED) && op->method == ARM_GET) {
		_page(c, op, body);
		return;
	}
done:
	op->res.body = body;
	_finish(c, op, AZ_OK, NULL);
}

/* A 2xx answer to an Azure-AsyncOperation poll. */
static void _async_done(struct arm_client *c, struct arm_op *op,
                        json_object *body)
{
	enum arm_lro_status st;
	enum az_rc rc;

	/* Accepted and nothing to say yet. */
	if (!body && op->res.status == 202) {
		_poll_again(c, op, "accepted");
		return;
	}
	rc = arm_parse_lro_status(body, &st, &op->res.error);
	if (rc != AZ_OK) {
		json_object_put(body);
		_finish(c, op, rc,
		        rc == AZ_ENOMEM ? "out of memory"
		                        : "operation status without a "
		                          "status");
		return;
	}
	switch (st) {
	case ARM_LRO_IN_PROGRESS:
		json_object_put(body);
		_poll_again(c, op, "in progress");
		return;
	case ARM_LRO_FAILED:
	case ARM_LRO_CANCELED:
		op->res.body = body;
		_finish_error(c, op, AZ_EARM);
		return;
	case ARM_LRO_SUCCEEDED:
		break;
	}
	/* The result: the resource for PUT/PATCH, the Location for POST. */
	if (op->method == ARM_PUT || op->method == ARM_PATCH) {
		json_object_put(body);
		_step_or_fail(c, op, _ST_FINAL_GET, op->url, 0);
	} else if (op->method == ARM_POST && op->location_url) {
		json_object_put(body);
		_step_or_fail(c, op, _ST_POLL_LOCATION, op->location_url, 0);
	} else {
		/* DELETE: nothing is left; POST: the status holds any
		 * output (runCommand). */
		if (op->method == ARM_DELETE) {
			json_object_put(body);
			body = NULL;
		}
		op->res.body = body;
		_finish(c, op, AZ_OK, NULL);
	}
}

/* A 2xx answer to a provisioningState poll of the resource. */
static void _resource_done(struct arm_client *c, struct arm_op *op,
                           json_object *body)
{
	const char *ps = arm_provisioning_state(body);

	switch (arm_lro_status_from_string(ps ? ps : "Succeeded")) {
	case ARM_LRO_IN_PROGRESS:
		json_object_put(body);
		_poll_again(c, op, ps);
		return;
	case ARM_LRO_SUCCEEDED:
		op->res.body = body;
		_finish(c, op, AZ_OK, NULL);
		return;
	default:
		op->res.body = body;
		_finish(c, op, AZ_EARM, "provisioningState %s", ps);
		return;
	}
}

static bool _is_auth_error(const char *code)
{
	return !code || !strcmp(code, "ExpiredAuthenticationToken")
	       || !strcmp(code, "InvalidAuthenticationToken")
	       || !strcmp(code, "AuthenticationFailed");
}

/* An answer (or a transport failure) to a call's current step. */
static void _call_step_done(struct arm_client *c, struct arm_op *op,
                            CURLcode cc, long status)
{
	json_object *body;
	enum az_rc rc;

	if (cc != CURLE_OK) {
		const char *why =
		        op->errbuf[0] ? op->errbuf : curl_easy_strerror(cc);
		const char *p;
		int n = _path_len(op->step_url, &p);

		if (op->resp_too_big) {
			_finish(c, op, AZ_EHTTP,
			        "%s %.*s: response larger than %u bytes",
			        arm_method_name(op->step_method), n, p,
			        _MAX_BODY);
			return;
		}
		if (arm_curl_retryable(cc) && _retry(c, op, -1, why))
			return;
		_finish(c, op, AZ_EHTTP, "%s %.*s: %s",
		        arm_method_name(op->step_method), n, p, why);
		return;
	}
	op->res.status = status;
	if (!op->res.request_id && op->hdr_request_id) {
		op->res.request_id = op->hdr_request_id;
		op->hdr_request_id = NULL;
	}
	body = arm_json_parse(op->resp.data, op->resp.len);
	/* Parsed: the raw answer goes now, not at the next exchange (an LRO
	 * polled every few seconds would hold it in between). */
	_resp_free(op);
	if (status < 200 || status >= 300) {
		char why[64];

		arm_error_free(&op->res.error);
		if (arm_parse_error(body, &op->res.error) == AZ_ENOMEM) {
			json_object_put(body);
			_finish(c, op, AZ_ENOMEM, "out of memory");
			return;
		}
		if (status == 401 && !op->auth_retried
		    && _is_auth_error(op->res.error.code)) {
			/* Once per step: a fresh token, then the same
			 * request again. */
			json_object_put(body);
			arm_error_free(&op->res.error);
			arm_auth_drop(c, op->token_gen);
			op->auth_retried = true;
			op->state = _S_WAIT;
			op->due_ms = 0;
			return;
		}
		snprintf(why, sizeof(why), "HTTP %ld%s%s", status,
		         op->res.error.code ? " " : "",
		         op->res.error.code ? op->res.error.code : "");
		if (arm_status_retryable(ARM_PEER_ARM, status)
		    && _retry(c, op, op->ti.retry_after_ms, why)) {
			json_object_put(body);
			arm_error_free(&op->res.error);
			return;
		}
		op->res.body = body;
		rc = status == 404   ? AZ_ENOTFOUND
		     : status == 429 ? AZ_ETHROTTLED
		     : status == 401 ? AZ_EAUTH
		                     : AZ_EARM;
		_finish_error(c, op, rc);
		return;
	}
	arm_error_free(&op->res.error);
	switch (op->stage) {
	case _ST_INITIAL:
		_initial_done(c, op, body);
		return;
	case _ST_POLL_ASYNC:
		_async_done(c, op, body);
		return;
	case _ST_POLL_LOCATION:
		if (status == 202) {
			json_object_put(body);
			_poll_again(c, op, "accepted");
			return;
		}
		break;
	case _ST_POLL_RESOURCE:
		_resource_done(c, op, body);
		return;
	case _ST_PAGE:
		_page(c, op, body);
		return;
	case _ST_FINAL_GET:
		break;
	}
	op->res.body = body;
	_finish(c, op, AZ_OK, NULL);
}

/* An answer (or a transport failure) to the token request. */
static void _token_step_done(struct arm_client *c, struct arm_op *op,
                             CURLcode cc, long status)
{
	const char *who = op->peer == ARM_PEER_IMDS ? "IMDS" : "AAD";
	struct arm_error e = {0};
	char why[AZ_ERRLEN];
	const char *p;
	int n = _path_len(op->step_url, &p);

	if (cc != CURLE_OK) {
		const char *what =
		        op->errbuf[0] ? op->errbuf : curl_easy_strerror(cc);
		/*
		 * IMDS answers within milliseconds on every Azure VM, also
		 * while it updates (with HTTP errors, retried below for the
		 * whole budget).  No answer at all means no IMDS here: a few
		 * tries, not two minutes.
		 */
		bool imds_gone = op->peer == ARM_PEER_IMDS
		                 && op->attempt + 1 >= IMDS_UNREACHABLE_TRIES;

		if (!imds_gone && arm_curl_retryable(cc)
		    && _retry(c, op, -1, what))
			return;
		if (op->peer == ARM_PEER_IMDS)
			az_err(AZ_EAUTH, c->token_err, sizeof(c->token_err),
			       "no token from IMDS (%.*s) after %u tries: %s; "
			       "Auth=ManagedIdentity needs an Azure VM with a "
			       "managed identity; elsewhere use "
			       "Auth=ServicePrincipal with TenantId, ClientId "
			       "and ClientSecretFile",
			       n, p, op->attempt + 1, what);
		else
			az_err(AZ_EAUTH, c->token_err, sizeof(c->token_err),
			       "no token from %s (%.*s): %s", who, n, p, what);
		_token_finished(c, op, AZ_EAUTH);
		return;
	}
	if (status == 200) {
		if (arm_auth_accept(c, op->resp.data ? op->resp.data : "",
		                    op->resp.len, why, sizeof(why))
		    == AZ_OK) {
			_token_finished(c, op, AZ_OK);
			return;
		}
		az_err(AZ_EAUTH, c->token_err, sizeof(c->token_err),
		       "no token from %s: %.900s", who, why);
		_token_finished(c, op, AZ_EAUTH);
		return;
	}
	snprintf(why, sizeof(why), "HTTP %ld", status);
	if (arm_status_retryable(op->peer, status)
	    && _retry(c, op, op->ti.retry_after_ms, why))
		return;
	/* AAD's and IMDS's own words: "invalid_client: AADSTS7000215..." */
	if (arm_parse_error_text(op->resp.data ? op->resp.data : "",
	                         op->resp.len, &e)
	            == AZ_OK
	    && e.code)
		az_err(AZ_EAUTH, c->token_err, sizeof(c->token_err),
		       "no token from %s: HTTP %ld: %s: %.*s", who, status,
		       e.code, (int)strcspn(e.message ? e.message : "", "\r\n"),
		       e.message ? e.message : "");
	else
		az_err(AZ_EAUTH, c->token_err, sizeof(c->token_err),
		       "no token from %s (%.*s): HTTP %ld", who, n, p, status);
	arm_error_free(&e);
	_token_finished(c, op, AZ_EAUTH);
}

static void _log_exchange(const struct arm_op *op, CURLcode cc, long status,
                          int64_t now)
{
	const char *p;
	int n = _path_len(op->step_url, &p);

	if (log_get_level() < LOG_LVL_DEBUG)
		return;
	if (cc != CURLE_OK)
		log_debug("arm: %s%s %.*s -> %s (%lld ms)",
		          op->kind == _K_TOKEN ? "token " : "",
		          arm_method_name(op->step_method), n, p,
		          op->errbuf[0] ? op->errbuf : curl_easy_strerror(cc),
		          (long long)(now - op->sent_ms));
	else
		log_debug("arm: %s%s %.*s -> %ld (request id %s, %lld ms)",
		          op->kind == _K_TOKEN ? "token " : "",
		          arm_method_name(op->step_method), n, p, status,
		          op->hdr_request_id ? op->hdr_request_id : "-",
		          (long long)(now - op->sent_ms));
}

static void _exchange_done(struct arm_client *c, CURL *e, CURLcode cc)
{
	struct arm_op *op = NULL;
	int64_t now = _now_ms();
	long status = 0;

	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&op);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (!op)
		return;
	_detach(c, op);
	_headers_free(op->headers);
	op->headers = NULL;
	op->state = _S_WAIT;
	_log_exchange(op, cc, status, now);
	if (op->kind == _K_TOKEN) {
		_token_step_done(c, op, cc, status);
		return;
	}
	/* What the answer says about throttling, for every later request.
	 * Out of memory here only costs the governor its memory. */
	if (cc == CURLE_OK)
		(void)arm_governor_observe(&c->gov, op->rl_class, op->rl_key,
		                           &op->ti, status, now);
	_call_step_done(c, op, cc, status);
}

/* ---- the loop ------------------------------------------------------- */

static enum az_rc _start_token(struct arm_client *c)
{
	struct arm_op *op;
	enum az_rc rc;

	op = calloc(1, sizeof(*op));
	if (!op)
		return az_err(AZ_ENOMEM, c->token_err, sizeof(c->token_err),
		              "out of memory");
	op->kind = _K_TOKEN;
	op->resp.wipe = true;
	rc = arm_auth_request(c, &op->url, &op->body, &op->peer, c->token_err,
	                      sizeof(c->token_err));
	if (rc == AZ_OK)
		rc = _set_step(c, op, _ST_INITIAL,
		               op->body ? ARM_POST : ARM_GET, op->url, 0);
	if (rc != AZ_OK) {
		if (rc == AZ_ENOMEM)
			az_err(rc, c->token_err, sizeof(c->token_err),
			       "out of memory");
		_op_free(c, op);
		return rc;
	}
	op->method = op->step_method;
	/* First in line: every call waits for it. */
	_link_head(c, op);
	c->token_op = op;
	return AZ_OK;
}

/*
 * Start every op that is due, as far as the parallel limit, the governor
 * and the token allow.
 */
static void _start_due(struct arm_client *c, int64_t now)
{
	struct arm_op *op, *next;
	bool need_token = false;
	enum az_rc rc;

	for (op = c->head; op && c->active < c->max_parallel; op = next) {
		next = op->next;
		if (op->state != _S_WAIT || op->due_ms > now)
			continue;
		if (op->kind == _K_CALL) {
			int64_t ready;

			if (!arm_auth_usable(c)) {
				op->state = _S_TOKEN;
				need_token = true;
				continue;
			}
			ready = arm_governor_ready_at(&c->gov, op->rl_class,
			                              op->rl_key, now);
			if (ready > now) {
				if (!op->held)
					log_verbose("arm: throttle: holding "
					            "%s for %lld ms",
					            op->rl_key,
					            (long long)(ready - now));
				op->held = true;
				op->due_ms = ready;
				continue;
			}
		}
		rc = _send(c, op, now);
		if (rc == AZ_OK) {
			/* Counted once it is in flight: _detach() ends it. */
			if (op->kind == _K_CALL) {
				arm_governor_started(&c->gov, op->rl_class,
				                     op->rl_key, now);
				op->held = false;
			}
			continue;
		}
		if (op->kind == _K_TOKEN) {
			az_err(AZ_EAUTH, c->token_err, sizeof(c->token_err),
			       "cannot start the token request: %s",
			       az_strerror(rc));
			/* Waiters may be freed: stop walking the list. */
			_token_finished(c, op, rc);
			return;
		}
		_finish(c, op, rc, "cannot start the request: %s",
		        az_strerror(rc));
	}
	if (need_token && !c->token_op && _start_token(c) != AZ_OK)
		_token_finished(c, NULL, AZ_EAUTH);
}

/* How long the loop may sleep: until the next op is due, at most
 * _MAX_WAIT_MS or until the deadline. */
static long _wait_ms(const struct arm_client *c, int64_t now, int64_t deadline)
{
	bool slots = c->active < c->max_parallel;
	int64_t w = _MAX_WAIT_MS;

	for (const struct arm_op *op = c->head; op && slots; op = op->next) {
		if (op->state != _S_WAIT)
			continue;
		if (op->due_ms - now < w)
			w = op->due_ms - now;
	}
	if (deadline >= 0 && deadline - now < w)
		w = deadline - now;
	return w < 0 ? 0 : (long)w;
}

static void _drain(struct arm_client *c)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(c->multi, &left))) {
		CURL *e = m->easy_handle;
		CURLcode cc = m->data.result;

		if (m->msg != CURLMSG_DONE)
			continue;
		/* m is invalid once the handle leaves the multi handle. */
		_exchange_done(c, e, cc);
	}
}

/* The deadline passed: every call ends now, with rc. */
static void _abort_all(struct arm_client *c, enum az_rc rc, long timeout_ms)
{
	struct arm_op *op;

	c->aborting = true;
	if (c->token_op) {
		op = c->token_op;
		_detach(c, op);
		_unlink(c, op);
		_op_free(c, op);
		c->token_op = NULL;
	}
	while ((op = c->head))
		_finish(c, op, rc, "not finished within %ld ms", timeout_ms);
	c->aborting = false;
}

static void _round_end(struct arm_client *c)
{
	if (c->round_fn)
		c->round_fn(c, c->round_arg);
}

typedef bool (*_stop_fn)(const struct arm_client *c, const void *arg);

static bool _all_done(const struct arm_client *c, const void *arg)
{
	return c->pending == 0;
}

static enum az_rc _run(struct arm_client *c, long timeout_ms, _stop_fn stop,
                       const void *arg, char *err, size_t errlen)
{
	int64_t deadline = timeout_ms < 0 ? -1 : _now_ms() + timeout_ms;
	enum az_rc rc = AZ_OK;
	int running;

	if (c->running)
		return az_err(AZ_EBUSY, err, errlen,
		              "the ARM client is already running (called "
		              "from a callback?)");
	c->running = true;
	for (;;) {
		int64_t now = _now_ms();

		_start_due(c, now);
		/* A send that failed at once ran its callback in there, and
		 * that may have submitted more: the hook sees them before
		 * curl sends anything. */
		_round_end(c);
		curl_multi_perform(c->multi, &running);
		_drain(c);
		_round_end(c);
		if (stop(c, arg))
			break;
		now = _now_ms();
		if (deadline >= 0 && now >= deadline) {
			_abort_all(c, AZ_ETIMEOUT, timeout_ms);
			_round_end(c);
			rc = az_err(AZ_ETIMEOUT, err, errlen,
			            "ARM calls not finished within %ld ms",
			            timeout_ms);
			break;
		}
		curl_multi_poll(c->multi, NULL, 0,
		                (int)_wait_ms(c, now, deadline), NULL);
	}
	c->running = false;
	return rc;
}

/* ---- the public API ------------------------------------------------- */

static char *_dup_or_null(const char *s, bool *fail)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*fail = true;
	return d;
}

/* The CA file curl trusts when told nothing, if it has one and it can be
 * read (curl 7.84 and later say which); NULL keeps curl's defaults. */
static char *_builtin_ca_bundle(bool *fail)
{
#if LIBCURL_VERSION_NUM >= 0x075400
	CURL *e = curl_easy_init();
	char *path = NULL;
	char *copy = NULL;

	if (!e) {
		*fail = true;
		return NULL;
	}
	if (curl_easy_getinfo(e, CURLINFO_CAINFO, &path) == CURLE_OK && path
	    && access(path, R_OK) == 0)
		copy = _dup_or_null(path, fail);
	curl_easy_cleanup(e);
	return copy;
#else
	(void)fail;
	return NULL;
#endif
}

/*
 * A process that holds a token or the client secret dumps no core and
 * cannot be read by a debugger of its own user: either would show them.
 * Only azrdma's programs make ARM clients, never a Slurm daemon.
 */
static void _no_core_dumps(void)
{
	struct rlimit none = {0, 0};

	if (setrlimit(RLIMIT_CORE, &none) != 0)
		log_warn("arm: core dumps stay allowed: %s", strerror(errno));
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		log_warn("arm: the process stays dumpable: %s", strerror(errno));
}

enum az_rc arm_client_new(const struct azrdma_conf *conf,
                          const struct arm_tuning *tuning,
                          struct arm_client **out, char *err, size_t errlen)
{
	struct arm_client *c;
	bool fail = false;
	enum az_rc rc;

	*out = NULL;
	if (!conf->arm_endpoint
	    || strncasecmp(conf->arm_endpoint, "https://", 8))
		return az_err(AZ_ECONFIG, err, errlen,
		              "ArmEndpoint must be an https:// URL");
	if (!conf->arm_audience || !conf->subscription_id)
		return az_err(AZ_ECONFIG, err, errlen,
		              "ArmAudience and SubscriptionId are required");
	if (conf->auth == AUTH_SERVICE_PRINCIPAL
	    && (!conf->authority_host || !conf->tenant_id || !conf->client_id
	        || !conf->client_secret_file))
		return az_err(AZ_ECONFIG, err, errlen,
		              "a service principal needs AuthorityHost, "
		              "TenantId, ClientId and ClientSecretFile");
	if (conf->auth == AUTH_MANAGED_IDENTITY && !conf->imds_endpoint)
		return az_err(AZ_ECONFIG, err, errlen,
		              "a managed identity needs ImdsEndpoint");
	_no_core_dumps();
	c = calloc(1, sizeof(*c));
	if (!c)
		return az_err(AZ_ENOMEM, err, errlen, "out of memory");
	c->arm_endpoint = _dup_or_null(conf->arm_endpoint, &fail);
	c->authority_host = _dup_or_null(conf->authority_host, &fail);
	c->imds_endpoint = _dup_or_null(conf->imds_endpoint, &fail);
	c->audience = _dup_or_null(conf->arm_audience, &fail);
	c->auth = conf->auth;
	c->tenant_id = _dup_or_null(conf->tenant_id, &fail);
	c->client_id = _dup_or_null(conf->client_id, &fail);
	c->client_secret_file = _dup_or_null(conf->client_secret_file, &fail);
	c->ca_bundle = _dup_or_null(conf->ca_bundle, &fail);
	c->state_dir = _dup_or_null(conf->state_dir, &fail);
	c->compute_api = _dup_or_null(conf->compute_api_version
	                                      ? conf->compute_api_version
	                                      : CONF_DEFAULT_COMPUTE_API,
	                              &fail);
	c->network_api = _dup_or_null(conf->network_api_version
	                                      ? conf->network_api_version
	                                      : CONF_DEFAULT_NETWORK_API,
	                              &fail);
	c->subscription = _dup_or_null(conf->subscription_id, &fail);
	c->resource_group = _dup_or_null(conf->resource_group, &fail);
	c->location = _dup_or_null(conf->location, &fail);
	c->user_agent = _dup_or_null("azrdma/" PACKAGE_VERSION, &fail);
	c->max_parallel = conf->max_parallel_requests
	                          ? conf->max_parallel_requests
	                          : CONF_DEFAULT_MAX_PARALLEL;
	if (tuning)
		c->tuning = *tuning;
	else
		arm_tuning_default(&c->tuning);
	if (!c->tuning.random) {
		c->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32)
		         ^ (uint64_t)(uintptr_t)c;
		if (!c->rng)
			c->rng = 0x9E3779B97F4A7C15ULL;
		c->tuning.random = _default_random;
		c->tuning.random_arg = c;
	}
	if (!c->tuning.max_attempts)
		c->tuning.max_attempts = 1;
	arm_governor_init(
	        &c->gov,
	        (const unsigned[ARM_RL_CLASSES]){c->tuning.low_water_reads,
	                                         c->tuning.low_water_writes,
	                                         c->tuning.low_water_deletes},
	        c->tuning.low_water_resource, c->tuning.max_spacing_ms);
	if (fail) {
		rc = az_err(AZ_ENOMEM, err, errlen, "out of memory");
		goto fail;
	}
	/* Reference counted by curl; paired with the cleanup in free. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = az_err(AZ_EHTTP, err, errlen, "cannot initialise libcurl");
		goto fail;
	}
	c->multi = curl_multi_init();
	if (!c->multi) {
		curl_global_cleanup();
		rc = az_err(AZ_ENOMEM, err, errlen, "out of memory");
		goto fail;
	}
	if (!c->ca_bundle)
		c->ca_bundle = _builtin_ca_bundle(&fail);
	/* A connection that resumes a TLS session skips the certificate
	 * chain's verification; without a share each handle keeps its own. */
	c->share = curl_share_init();
	if (fail || !c->share
	    || curl_share_setopt(c->share, CURLSHOPT_SHARE,
	                         CURL_LOCK_DATA_SSL_SESSION)
	               != CURLSHE_OK) {
		rc = az_err(AZ_ENOMEM, err, errlen, "out of memory");
		goto fail;
	}
	/* Keep a connection per parallel request alive for reuse. */
	curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS,
	                  (long)c->max_parallel + 2);
	rc = arm_auth_init(c, conf, err, errlen);
	if (rc != AZ_OK)
		goto fail;
	*out = c;
	return AZ_OK;
fail:
	arm_client_free(c);
	return rc;
}

void arm_client_free(struct arm_client *c)
{
	struct arm_op *op;

	if (!c)
		return;
	while ((op = c->head)) {
		_unlink(c, op);
		_op_free(c, op);
	}
	while (c->idle_count)
		curl_easy_cleanup(c->idle[--c->idle_count]);
	free(c->idle);
	if (c->multi) {
		curl_multi_cleanup(c->multi);
		/* After every handle that used it is gone. */
		if (c->share)
			curl_share_cleanup(c->share);
		curl_global_cleanup();
	}
	arm_governor_free(&c->gov);
	arm_auth_free(c);
	free(c->arm_endpoint);
	free(c->authority_host);
	free(c->imds_endpoint);
	free(c->audience);
	free(c->tenant_id);
	free(c->client_id);
	free(c->client_secret_file);
	free(c->ca_bundle);
	free(c->state_dir);
	free(c->compute_api);
	free(c->network_api);
	free(c->subscription);
	free(c->resource_group);
	free(c->location);
	free(c->user_agent);
	explicit_bzero(c->token_err, sizeof(c->token_err));
	free(c);
}

enum az_rc arm_submit(struct arm_client *c, const struct arm_request *req,
                      arm_done_fn done, void *arg, char *err, size_t errlen)
{
	struct arm_op *op;
	enum az_rc rc;

	if (!req || !req->path || !*req->path
	    || (unsigned)req->method > ARM_DELETE)
		return az_err(AZ_EINVAL, err, errlen, "bad ARM request");
	if (c->aborting)
		return az_err(AZ_ETIMEOUT, err, errlen,
		              "the ARM client is past its deadline");
	op = calloc(1, sizeof(*op));
	if (!op)
		return az_err(AZ_ENOMEM, err, errlen, "out of memory");
	op->kind = _K_CALL;
	op->resp.wipe = true;
	op->method = req->method;
	op->flags = req->flags;
	op->page = req->page;
	op->done = done;
	op->arg = arg;
	op->peer = ARM_PEER_ARM;
	rc = _build_url(c, req, &op->url, err, errlen);
	if (rc != AZ_OK)
		goto fail;
	if (req->body) {
		const char *s = json_object_to_json_string_ext(
		        req->body, JSON_C_TO_STRING_PLAIN);

		if (!s || !(op->body = strdup(s))) {
			rc = az_err(AZ_ENOMEM, err, errlen, "out of memory");
			goto fail;
		}
	}
	rc = _set_step(c, op, _ST_INITIAL, req->method, op->url, 0);
	if (rc != AZ_OK) {
		az_err(rc, err, errlen, "out of memory");
		goto fail;
	}
	_link_tail(c, op);
	c->pending++;
	return AZ_OK;
fail:
	_op_free(c, op);
	return rc;
}

enum az_rc arm_client_run(struct arm_client *c, long timeout_ms, char *err,
                          size_t errlen)
{
	return _run(c, timeout_ms, _all_done, NULL, err, errlen);
}

size_t arm_client_pending(const struct arm_client *c)
{
	return c->pending;
}

void arm_client_on_round(struct arm_client *c, arm_round_fn fn, void *arg)
{
	c->round_fn = fn;
	c->round_arg = arg;
}

/* arm_call_sync's callback: move the result out of the op. */
static void _sync_done(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct arm_result **dst = arg;

	**dst = *res;
	memset(res, 0, sizeof(*res));
	*dst = NULL;
}

static bool _sync_finished(const struct arm_client *c, const void *arg)
{
	struct arm_result *const *dst = arg;

	return *dst == NULL;
}

enum az_rc arm_call_sync(struct arm_client *c, const struct arm_request *req,
                         struct arm_result **res)
{
	struct arm_result *r = calloc(1, sizeof(*r)), *slot = r;
	enum az_rc rc;

	if (res)
		*res = NULL;
	if (!r)
		return AZ_ENOMEM;
	if (c->running) {
		/* The op would outlive this frame. */
		rc = r->rc = az_err(AZ_EBUSY, r->err, sizeof(r->err),
		                    "synchronous ARM call from a callback");
		goto out;
	}
	/* The page callback would get this call's private argument. */
	if (req && req->page) {
		rc = r->rc = az_err(AZ_EINVAL, r->err, sizeof(r->err),
		                    "a page callback needs arm_submit()");
		goto out;
	}
	rc = arm_submit(c, req, _sync_done, &slot, r->err, sizeof(r->err));
	if (rc != AZ_OK) {
		r->rc = rc;
		goto out;
	}
	/* Bounded without a deadline: transfers time out, retries have a
	 * budget, LROs a timeout. */
	(void)_run(c, -1, _sync_finished, &slot, NULL, 0);
	rc = r->rc;
out:
	if (res)
		*res = r;
	else
		arm_result_free(r);
	return rc;
}

static bool _token_settled(const struct arm_client *c, const void *arg)
{
	return !c->token_op;
}

enum az_rc arm_client_check_auth(struct arm_client *c, char *err, size_t errlen)
{
	if (c->running)
		return az_err(AZ_EBUSY, err, errlen,
		              "arm_client_check_auth from a callback");
	if (arm_auth_usable(c))
		return AZ_OK;
	if (!c->token_op && _start_token(c) != AZ_OK)
		return az_err(AZ_EAUTH, err, errlen, "%s", c->token_err);
	(void)_run(c, -1, _token_settled, NULL, NULL, 0);
	if (arm_auth_usable(c))
		return AZ_OK;
	return az_err(AZ_EAUTH, err, errlen, "%s", c->token_err);
}

const char *arm_client_subscription(const struct arm_client *c)
{
	return c->subscription;
}

const char *arm_client_resource_group(const struct arm_client *c)
{
	return c->resource_group;
}

const char *arm_client_location(const struct arm_client *c)
{
	return c->location;
}
