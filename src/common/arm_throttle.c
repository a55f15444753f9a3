/*
 * arm_throttle.c - throttle headers, backoff and the governor.
 *
 * ARM throttles per subscription and principal with token buckets (reads,
 * writes, deletes, each also as a -global- count), and the Compute
 * provider throttles per operation kind with its own buckets, reported in
 * x-ms-ratelimit-remaining-resource.  A power-save burst of a hundred
 * nodes can drain a bucket in seconds, so the governor spaces requests of
 * a class out as soon as its count runs low instead of waiting for 429s.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "arm_throttle.h"
#include "buf.h"

/* A Retry-After longer than this is nonsense; treat it as this long. */
#define _MAX_RETRY_AFTER_S (7L * 24 * 3600)
#define _DEFAULT_MEMORY_MS 60000

static const char *const _class_names[ARM_RL_CLASSES] = {
        [ARM_RL_READS] = "reads",
        [ARM_RL_WRITES] = "writes",
        [ARM_RL_DELETES] = "deletes",
};

void arm_throttle_info_init(struct arm_throttle_info *ti)
{
	memset(ti, 0, sizeof(*ti));
	ti->retry_after_ms = -1;
	for (int i = 0; i < ARM_RL_CLASSES; i++)
		ti->subscription[i] = ti->global[i] = -1;
}

/* A count: digits only, optionally quoted; -1 if malformed. */
static long _parse_count(const char *s, size_t len)
{
	long n = 0;

	if (len >= 2 && (s[0] == '"' || s[0] == '\'') && s[len - 1] == s[0]) {
		s++;
		len -= 2;
	}
	if (!len)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		if (n > (LONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (s[i] - '0');
	}
	return n;
}

/* Keep the lower of two counts, -1 meaning "none". */
static void _keep_min(long *dst, long v)
{
	if (*dst < 0 || v < *dst)
		*dst = v;
}

static void _trim(const char **s, size_t *len)
{
	while (*len && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

/* One "Provider/Bucket;count" item of x-ms-ratelimit-remaining-resource. */
static void _add_bucket(struct arm_throttle_info *ti, const char *s, size_t len)
{
	const char *semi;
	size_t nlen;
	long n;

	_trim(&s, &len);
	if (!len)
		return; /* "a,,b" or a trailing comma */
	for (semi = s + len - 1; semi > s && *semi != ';'; semi--)
		;
	if (semi == s) {
		ti->malformed++;
		return;
	}
	nlen = (size_t)(semi - s);
	n = _parse_count(semi + 1, len - nlen - 1);
	if (n < 0 || nlen >= ARM_RL_NAME_MAX || memchr(s, '\0', nlen)) {
		ti->malformed++;
		return;
	}
	for (size_t i = 0; i < ti->bucket_count; i++) {
		if (strlen(ti->buckets[i].name) == nlen
		    && !strncasecmp(ti->buckets[i].name, s, nlen)) {
			_keep_min(&ti->buckets[i].remaining, n);
			return;
		}
	}
	if (ti->bucket_count == ARM_RL_MAX_BUCKETS)
		return;
	memcpy(ti->buckets[ti->bucket_count].name, s, nlen);
	ti->buckets[ti->bucket_count].name[nlen] = '\0';
	ti->buckets[ti->bucket_count].remaining = n;
	ti->bucket_count++;
}

static bool _name_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && !strncasecmp(name, want, nlen);
}

bool arm_throttle_header(struct arm_throttle_info *ti, const char *line,
                         size_t len, time_t now)
{
	static const char sub[] = "x-ms-ratelimit-remaining-subscription-";
	const char *colon = memchr(line, ':', len), *name = line, *val;
	size_t nlen, vlen;
	char buf[64];

	if (!colon)
		return false;
	nlen = (size_t)(colon - line);
	val = colon + 1;
	vlen = len - nlen - 1;
	_trim(&name, &nlen);
	_trim(&val, &vlen);

	if (_name_is(name, nlen, "retry-after")) {
		long ms;

		if (vlen >= sizeof(buf)) {
			ti->malformed++;
			return true;
		}
		memcpy(buf, val, vlen);
		buf[vlen] = '\0';
		if (arm_parse_retry_after(buf, now, &ms) != AZ_OK)
			ti->malformed++;
		else
			ti->retry_after_ms = ms;
		return true;
	}
	if (_name_is(name, nlen, "x-ms-ratelimit-remaining-resource")) {
		const char *p = val, *end = val + vlen;

		while (p < end) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *stop = comma ? comma : end;

			_add_bucket(ti, p, (size_t)(stop - p));
			p = stop + 1;
		}
		return true;
	}
	if (nlen > sizeof(sub) - 1
	    && !strncasecmp(name, sub, sizeof(sub) - 1)) {
		const char *rest = name + sizeof(sub) - 1;
		size_t rlen = nlen - (sizeof(sub) - 1);
		long *counts = ti->subscription;
		long n;

		if (rlen > 7 && !strncasecmp(rest, "global-", 7)) {
			counts = ti->global;
			rest += 7;
			rlen -= 7;
		}
		for (int c = 0; c < ARM_RL_CLASSES; c++) {
			if (!_name_is(rest, rlen, _class_names[c]))
				continue;
			n = _parse_count(val, vlen);
			if (n < 0)
				ti->malformed++;
			else
				_keep_min(&counts[c], n);
			return true;
		}
	}
	return false;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static long _days_from_civil(long y, unsigned m, unsigned d)
{
	long era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long)doe - 719468;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT", the only date form RFC 9110 sends. */
static bool _parse_http_date(const char *s, time_t *out)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
	                                     "May", "Jun", "Jul", "Aug",
	                                     "Sep", "Oct", "Nov", "Dec"};
	char wday[4], mon[4];
	int d, y, hh, mm, ss, n = -1;
	unsigned m;

	if (sscanf(s, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", wday,
	           &d, mon, &y, &hh, &mm, &ss, &n)
	            != 7
	    || n < 0 || s[n] != '\0')
		return false;
	for (m = 0; m < 12; m++)
		if (!strcasecmp(mon, months[m]))
			break;
	if (m == 12 || d < 1 || d > 31 || y < 1970 || hh > 23 || mm > 59
	    || ss > 60 || hh < 0 || mm < 0 || ss < 0)
		return false;
	*out = (time_t)(_days_from_civil(y, m + 1, (unsigned)d) * 86400L
	                + hh * 3600L + mm * 60L + ss);
	return true;
}

enum az_rc arm_parse_retry_after(const char *value, time_t now, long *ms)
{
	size_t len = strlen(value);
	long secs = _parse_count(value, len);
	time_t when;

	if (secs < 0) {
		if (!_parse_http_date(value, &when))
			return AZ_EPARSE;
		secs = when > now ? (long)(when - now) : 0;
	}
	if (secs > _MAX_RETRY_AFTER_S)
		secs = _MAX_RETRY_AFTER_S;
	*ms = secs * 1000;
	return AZ_OK;
}

long arm_throttle_remaining(const struct arm_throttle_info *ti,
                            enum arm_rl_class cls)
{
	long n = ti->subscription[cls];

	if (ti->global[cls] >= 0)
		_keep_min(&n, ti->global[cls]);
	return n;
}

bool arm_rl_bucket_per_resource(const char *name)
{
	size_t n = strlen(name);

	return n >= 8 && !strcasecmp(name + n - 8, "Resource");
}

long arm_throttle_shared_min(const struct arm_throttle_info *ti)
{
	long n = -1;

	for (size_t i = 0; i < ti->bucket_count; i++)
		if (!arm_rl_bucket_per_resource(ti->buckets[i].name))
			_keep_min(&n, ti->buckets[i].remaining);
	return n;
}

enum arm_rl_class arm_rl_class_of(enum arm_method method)
{
	switch (method) {
	case ARM_GET:
		return ARM_RL_READS;
	case ARM_DELETE:
		return ARM_RL_DELETES;
	default:
		return ARM_RL_WRITES;
	}
}

const char *arm_method_name(enum arm_method m)
{
	static const char *const names[] = {[ARM_GET] = "GET",
	                                    [ARM_PUT] = "PUT",
	                                    [ARM_POST] = "POST",
	                                    [ARM_PATCH] = "PATCH",
	                                    [ARM_DELETE] = "DELETE"};

	return (unsigned)m < sizeof(names) / sizeof(names[0]) ? names[m] : "?";
}

char *arm_throttle_key(enum arm_method method, const char *path)
{
	const char *p = path, *s, *end, *prov = NULL;
	const char *seg[4] = {""};
	size_t segl[4] = {0}, n = 0;
	struct az_buf b = {0};
	enum az_rc rc;

	/* Drop "https://host" and the query. */
	s = strstr(p, "://");
	if (s) {
		p = strchr(s + 3, '/');
		if (!p)
			p = "";
	}
	end = p + strcspn(p, "?#");
	for (s = p; s + 11 <= end; s++)
		if (!strncmp(s, "/providers/", 11))
			prov = s + 11;
	if (!prov) {
		rc = buf_printf(&b, "%s %.*s", arm_method_name(method),
		                (int)(end - p), p);
		goto out;
	}
	/* namespace/type/name/action: the name does not matter. */
	for (s = prov; s < end && n < 4; n++) {
		const char *slash = memchr(s, '/', (size_t)(end - s));

		seg[n] = s;
		segl[n] = (size_t)((slash ? slash : end) - s);
		s += segl[n] + 1;
	}
	rc = buf_printf(&b, "%s %.*s/%.*s%s%.*s", arm_method_name(method),
	                (int)segl[0], seg[0], (int)segl[1], n > 1 ? seg[1] : "",
	                n > 3 ? "/" : "", (int)segl[3], n > 3 ? seg[3] : "");
out:
	if (rc != AZ_OK) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

/* ---- retries -------------------------------------------------------- */

bool arm_status_retryable(enum arm_peer peer, long status)
{
	if (status == 429)
		return true;
	if (status >= 500 && status <= 599)
		return status != 501 && status != 505;
	if (peer == ARM_PEER_IMDS)
		return status == 404 || status == 410;
	return false;
}

bool arm_curl_retryable(int curl_code)
{
	switch (curl_code) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

long arm_backoff_delay(const struct arm_backoff *b, unsigned attempt,
                       long retry_after_ms)
{
	double r = b->random ? b->random(b->random_arg) : 0.5;
	long d = b->base_ms;

	if (retry_after_ms >= 0)
		return retry_after_ms;
	for (unsigned i = 0; i < attempt && d < (long)b->cap_ms; i++)
		d *= 2;
	if (d > (long)b->cap_ms)
		d = b->cap_ms;
	if (!(r >= 0.0 && r < 1.0))
		r = 0.5; /* a broken source must not break the bounds */
	return d / 2 + (long)((double)(d - d / 2) * r);
}

long arm_retry_delay(const struct arm_backoff *b, unsigned attempt,
                     unsigned max_attempts, long elapsed_ms, long budget_ms,
                     long retry_after_ms)
{
	long d;

	if (attempt + 1 >= max_attempts)
		return -1;
	d = arm_backoff_delay(b, attempt, retry_after_ms);
	if (elapsed_ms + d > budget_ms)
		return -1;
	return d;
}

/* ---- the governor --------------------------------------------------- */

static void _state_init(struct arm_gov_state *s)
{
	s->remaining = -1;
	s->inflight = 0;
	s->seen_ms = -1;
	s->next_ms = 0;
	s->blocked_until_ms = 0;
}

void arm_governor_init(struct arm_governor *g,
                       const unsigned low_water[ARM_RL_CLASSES],
                       unsigned low_water_resource, unsigned max_spacing_ms)
{
	memset(g, 0, sizeof(*g));
	for (int i = 0; i < ARM_RL_CLASSES; i++) {
		g->low_water[i] = low_water[i];
		_state_init(&g->cls[i]);
	}
	g->low_water_resource = low_water_resource;
	g->max_spacing_ms = max_spacing_ms;
	g->memory_ms = _DEFAULT_MEMORY_MS;
}

void arm_governor_free(struct arm_governor *g)
{
	for (size_t i = 0; i < g->key_count; i++)
		free(g->keys[i].key);
	free(g->keys);
	g->keys = NULL;
	g->key_count = 0;
}

long arm_governor_spacing(long remaining, unsigned low_water,
                          unsigned max_spacing_ms)
{
	if (remaining < 0 || remaining >= (long)low_water)
		return 0;
	return (long)((unsigned long)max_spacing_ms
	              * (unsigned long)(low_water - remaining) / low_water);
}

static struct arm_gov_state *_key_state(const struct arm_governor *g,
                                        const char *key)
{
	if (!key)
		return NULL;
	for (size_t i = 0; i < g->key_count; i++)
		if (!strcmp(g->keys[i].key, key))
			return &g->keys[i].st;
	return NULL;
}

static enum az_rc _key_state_add(struct arm_governor *g, const char *key,
                                 struct arm_gov_state **out)
{
	struct arm_gov_key *keys;

	*out = _key_state(g, key);
	if (*out || !key)
		return AZ_OK;
	keys = realloc(g->keys, (g->key_count + 1) * sizeof(*keys));
	if (!keys)
		return AZ_ENOMEM;
	g->keys = keys;
	keys[g->key_count].key = strdup(key);
	if (!keys[g->key_count].key)
		return AZ_ENOMEM;
	_state_init(&keys[g->key_count].st);
	*out = &keys[g->key_count++].st;
	return AZ_OK;
}

static void _block(struct arm_gov_state *s, int64_t until)
{
	if (until > s->blocked_until_ms)
		s->blocked_until_ms = until;
}

/*
 * What is left, from a count an answer reported: ARM counted that request
 * when it served it, but most requests still in flight were sent after it
 * and are not in the count yet.  Taking the count as it stands would give
 * a burst back what it spent (with 60 requests in flight, 60 writes it
 * does not have), and the bucket would run dry before the spacing began.
 */
static long _left(long count, const struct arm_gov_state *s)
{
	return count > s->inflight ? count - s->inflight : 0;
}

enum az_rc arm_governor_observe(struct arm_governor *g, enum arm_rl_class cls,
                                const char *key,
                                const struct arm_throttle_info *ti, long status,
                                int64_t now_ms)
{
	struct arm_gov_state *ks;
	long n = arm_throttle_remaining(ti, cls);
	long shared = arm_throttle_shared_min(ti);

	if (n >= 0) {
		g->cls[cls].remaining = _left(n, &g->cls[cls]);
		g->cls[cls].seen_ms = now_ms;
	}
	if (_key_state_add(g, key, &ks) != AZ_OK)
		return AZ_ENOMEM;
	if (ks && shared >= 0) {
		ks->remaining = _left(shared, ks);
		ks->seen_ms = now_ms;
	}
	if (status == 429) {
		int64_t until =
		        now_ms
		        + (ti->retry_after_ms >= 0 ? ti->retry_after_ms
		                                   : (long)g->max_spacing_ms);

		if (!ti->bucket_count || !ks)
			_block(&g->cls[cls], until);
		else if (shared == 0)
			_block(ks, until);
	}
	return AZ_OK;
}

static bool _fresh(const struct arm_governor *g, const struct arm_gov_state *s,
                   int64_t now_ms)
{
	return s->seen_ms >= 0 && now_ms - s->seen_ms < (int64_t)g->memory_ms;
}

static int64_t _ready(const struct arm_governor *g,
                      const struct arm_gov_state *s, unsigned low_water,
                      int64_t t, int64_t now_ms)
{
	if (!s)
		return t;
	if (s->blocked_until_ms > t)
		t = s->blocked_until_ms;
	if (_fresh(g, s, now_ms)
	    && arm_governor_spacing(s->remaining, low_water, g->max_spacing_ms)
	    && s->next_ms > t)
		t = s->next_ms;
	return t;
}

int64_t arm_governor_ready_at(const struct arm_governor *g,
                              enum arm_rl_class cls, const char *key,
                              int64_t now_ms)
{
	int64_t t = now_ms;

	t = _ready(g, &g->cls[cls], g->low_water[cls], t, now_ms);
	return _ready(g, _key_state(g, key), g->low_water_resource, t, now_ms);
}

static void _start(const struct arm_governor *g, struct arm_gov_state *s,
                   unsigned low_water, int64_t now_ms)
{
	long sp;

	if (!s)
		return;
	s->inflight++;
	if (!_fresh(g, s, now_ms))
		return;
	/* Count the request now: a burst sees the bucket drain before any
	 * of its responses report it. */
	if (s->remaining > 0)
		s->remaining--;
	sp = arm_governor_spacing(s->remaining, low_water, g->max_spacing_ms);
	s->next_ms = (s->next_ms > now_ms ? s->next_ms : now_ms) + sp;
}

void arm_governor_started(struct arm_governor *g, enum arm_rl_class cls,
                          const char *key, int64_t now_ms)
{
	struct arm_gov_state *ks;

	_start(g, &g->cls[cls], g->low_water[cls], now_ms);
	/* The key's state exists from its first start, so that it counts
	 * what is in flight before its first answer.  Out of memory costs
	 * only that count. */
	if (_key_state_add(g, key, &ks) == AZ_OK)
		_start(g, ks, g->low_water_resource, now_ms);
}

static void _flight_end(struct arm_gov_state *s)
{
	if (s && s->inflight > 0)
		s->inflight--;
}

void arm_governor_finished(struct arm_governor *g, enum arm_rl_class cls,
                           const char *key)
{
	_flight_end(&g->cls[cls]);
	_flight_end(_key_state(g, key));
}
