/*
 * pingpong_core.c - sizes, rounds, verdicts and output of azrdma-pingpong.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pingpong_core.h"

/* ---- sizes ------------------------------------------------------------ */

unsigned pp_default_reps(size_t bytes)
{
	size_t reps;

	if (bytes == 0)
		return PP_MSGS_PER_SAMPLE;
	reps = PP_OVERALL_VOLUME / bytes;
	if (reps > PP_MSGS_PER_SAMPLE)
		reps = PP_MSGS_PER_SAMPLE;
	return reps ? (unsigned)reps : 1;
}

unsigned pp_warmup_reps(unsigned reps)
{
	unsigned warm = reps / 10;

	if (warm < 10)
		warm = reps < 10 ? reps : 10;
	return warm;
}

unsigned pp_calibration_reps(double round_trip_s)
{
	if (round_trip_s < 1.0 / PP_MSGS_PER_SAMPLE)
		return PP_MSGS_PER_SAMPLE;
	if (round_trip_s < 1.0)
		return (unsigned)(1.0 / round_trip_s + 0.5);
	return 1;
}

unsigned pp_dynamic_reps(unsigned reps, unsigned prev, double round_trip_s)
{
	double budget = 1.0 + PP_SECS_PER_SIZE / round_trip_s;
	unsigned n = reps < prev ? reps : prev;

	/* A round trip too short to time says nothing: keep reps. */
	if (round_trip_s <= 1e-8 || budget > (double)UINT32_MAX)
		return n;
	return (unsigned)budget < n ? (unsigned)budget : n;
}

static enum az_rc _plan_push(struct pp_plan *plan, size_t bytes, unsigned reps)
{
	struct pp_size *s =
	        realloc(plan->sizes, (plan->count + 1) * sizeof(*s));

	if (!s)
		return AZ_ENOMEM;
	plan->sizes = s;
	s[plan->count].bytes = bytes;
	s[plan->count].reps = reps;
	s[plan->count].given = false;
	plan->count++;
	return AZ_OK;
}

enum az_rc pp_plan_default(struct pp_plan *plan)
{
	enum az_rc rc = _plan_push(plan, 0, pp_default_reps(0));

	for (size_t b = 1; rc == AZ_OK && b <= PP_MAX_BYTES; b *= 2)
		rc = _plan_push(plan, b, pp_default_reps(b));
	return rc;
}

enum az_rc pp_plan_quick(struct pp_plan *plan)
{
	enum az_rc rc = _plan_push(plan, 0, 100);

	if (rc == AZ_OK)
		rc = _plan_push(plan, PP_LATENCY_MAX_BYTES, 100);
	if (rc == AZ_OK)
		rc = _plan_push(plan, PP_MAX_BYTES, 10);
	return rc;
}

/* "4000000", "64K", "4M" (binary multiples); false on anything else. */
static bool _parse_bytes(const char *s, size_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	if (*end || v > PP_MAX_SPEC_BYTES)
		return false;
	*out = (size_t)v;
	return true;
}

enum az_rc pp_plan_add_spec(struct pp_plan *plan, const char *spec, char *err,
                            size_t errlen)
{
	char buf[64], *colon;
	size_t bytes;
	unsigned reps;

	if (strlen(spec) >= sizeof(buf))
		return az_err(AZ_EINVAL, err, errlen, "-p %s: too long", spec);
	strcpy(buf, spec);
	colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	if (!_parse_bytes(buf, &bytes))
		return az_err(AZ_EINVAL, err, errlen,
		              "-p %s: the size must be a number of bytes "
		              "(K and M suffixes allowed) up to %u",
		              spec, PP_MAX_SPEC_BYTES);
	reps = pp_default_reps(bytes);
	if (colon) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(colon + 1, &end, 10);
		if (errno || *end || end == colon + 1 || v == 0
		    || v > 100000000ul)
			return az_err(AZ_EINVAL, err, errlen,
			              "-p %s: the iterations must be a "
			              "number from 1 to 100000000",
			              spec);
		reps = (unsigned)v;
	}
	if (_plan_push(plan, bytes, reps) != AZ_OK)
		return az_err(AZ_ENOMEM, err, errlen, "out of memory");
	plan->sizes[plan->count - 1].given = colon != NULL;
	return AZ_OK;
}

void pp_plan_free(struct pp_plan *plan)
{
	free(plan->sizes);
	plan->sizes = NULL;
	plan->count = 0;
}

/* ---- modes and rounds ------------------------------------------------- */

static const char *const _mode_names[] = {"pair", "all", "ring"};

bool pp_mode_parse(const char *s, enum pp_mode *out)
{
	for (size_t i = 0; i < 3; i++) {
		if (!strcmp(s, _mode_names[i])) {
			*out = (enum pp_mode)i;
			return true;
		}
	}
	return false;
}

const char *pp_mode_name(enum pp_mode mode)
{
	return mode <= PP_MODE_RING ? _mode_names[mode] : "?";
}

void pp_schedule_free(struct pp_schedule *sched)
{
	for (size_t i = 0; i < sched->count; i++)
		free(sched->rounds[i].pairs);
	free(sched->rounds);
	memset(sched, 0, sizeof(*sched));
}

static enum az_rc _round_add(struct pp_round *r, int a, int b)
{
	struct pp_pair *p = realloc(r->pairs, (r->count + 1) * sizeof(*p));

	if (!p)
		return AZ_ENOMEM;
	r->pairs = p;
	p[r->count].a = a < b ? a : b;
	p[r->count].b = a < b ? b : a;
	r->count++;
	return AZ_OK;
}

static enum az_rc _schedule_grow(struct pp_schedule *s)
{
	struct pp_round *r = realloc(s->rounds, (s->count + 1) * sizeof(*r));

	if (!r)
		return AZ_ENOMEM;
	s->rounds = r;
	memset(&r[s->count], 0, sizeof(*r));
	s->count++;
	return AZ_OK;
}

/* Circle method: rank m-1 stays put, the others rotate; m is even. */
static enum az_rc _schedule_all(int n, struct pp_schedule *s)
{
	int m = n % 2 ? n + 1 : n;

	for (int r = 0; r < m - 1; r++) {
		struct pp_round *round;

		if (_schedule_grow(s) != AZ_OK)
			return AZ_ENOMEM;
		round = &s->rounds[s->count - 1];
		for (int i = 0; i < m / 2; i++) {
			int a = (r + i) % (m - 1);
			int b = i ? (r - i + m - 1) % (m - 1) : m - 1;

			if (a >= n || b >= n)
				continue; /* the bye of odd n */
			if (_round_add(round, a, b) != AZ_OK)
				return AZ_ENOMEM;
		}
	}
	return AZ_OK;
}

/* Put each ring pair into the first round where both ranks are free. */
static enum az_rc _schedule_ring(int n, struct pp_schedule *s)
{
	int pairs = n == 2 ? 1 : n;

	for (int i = 0; i < pairs; i++) {
		int a = i, b = (i + 1) % n;
		size_t r;

		for (r = 0; r < s->count; r++)
			if (!pp_round_pair_of(&s->rounds[r], a)
			    && !pp_round_pair_of(&s->rounds[r], b))
				break;
		if (r == s->count && _schedule_grow(s) != AZ_OK)
			return AZ_ENOMEM;
		if (_round_add(&s->rounds[r], a, b) != AZ_OK)
			return AZ_ENOMEM;
	}
	return AZ_OK;
}

enum az_rc pp_schedule_build(enum pp_mode mode, int nranks,
                             struct pp_schedule *out, char *err, size_t errlen)
{
	enum az_rc rc = AZ_OK;

	memset(out, 0, sizeof(*out));
	if (nranks < 2)
		return az_err(AZ_EINVAL, err, errlen,
		              "a pingpong needs at least 2 ranks, one per "
		              "node (srun -N2 --ntasks-per-node=1), not %d",
		              nranks);
	switch (mode) {
	case PP_MODE_PAIR:
		rc = _schedule_grow(out);
		if (rc == AZ_OK)
			rc = _round_add(&out->rounds[0], 0, 1);
		break;
	case PP_MODE_ALL:
		rc = _schedule_all(nranks, out);
		break;
	case PP_MODE_RING:
		rc = _schedule_ring(nranks, out);
		break;
	}
	if (rc != AZ_OK) {
		pp_schedule_free(out);
		return az_err(rc, err, errlen, "out of memory");
	}
	for (size_t i = 0; i < out->count; i++)
		out->pair_count += out->rounds[i].count;
	return AZ_OK;
}

const struct pp_pair *pp_round_pair_of(const struct pp_round *round, int rank)
{
	for (size_t i = 0; i < round->count; i++)
		if (round->pairs[i].a == rank || round->pairs[i].b == rank)
			return &round->pairs[i];
	return NULL;
}

/* ---- verdicts ----------------------------------------------------------- */

double pp_mbytes_per_sec(size_t bytes, double t_usec)
{
	return t_usec > 0.0 ? (double)bytes / t_usec : 0.0;
}

static double _looser_max(double a, double b)
{
	if (a <= 0.0 || b <= 0.0)
		return 0.0; /* one side unchecked: unchecked */
	return a > b ? a : b;
}

static double _looser_min(double a, double b)
{
	if (a <= 0.0 || b <= 0.0)
		return 0.0;
	return a < b ? a : b;
}

struct pp_thresholds pp_thresholds_pair(const struct pp_thresholds *a,
                                        const struct pp_thresholds *b)
{
	struct pp_thresholds t = {
	        .max_latency_us =
	                _looser_max(a->max_latency_us, b->max_latency_us),
	        .min_bandwidth_mbs =
	                _looser_min(a->min_bandwidth_mbs, b->min_bandwidth_mbs),
	        .source = a->source ? a->source : b->source,
	};
	return t;
}

enum pp_verdict pp_pair_judge(struct pp_pair_result *res)
{
	const struct pp_thresholds *l = &res->limits;
	const struct pp_point *worst_lat = NULL, *worst_bw = NULL;

	res->why[0] = '\0';
	if (res->failed) {
		snprintf(res->why, sizeof(res->why), "%s",
		         res->error ? res->error : "the exchange failed");
		return res->verdict = PP_FAILED;
	}
	for (size_t i = 0; i < res->count; i++) {
		const struct pp_point *p = &res->points[i];

		if (l->max_latency_us > 0.0 && p->bytes <= PP_LATENCY_MAX_BYTES
		    && p->t_usec > l->max_latency_us
		    && (!worst_lat || p->t_usec > worst_lat->t_usec))
			worst_lat = p;
		if (l->min_bandwidth_mbs > 0.0
		    && p->bytes >= PP_BANDWIDTH_MIN_BYTES
		    && p->mbytes_per_sec < l->min_bandwidth_mbs
		    && (!worst_bw
		        || p->mbytes_per_sec < worst_bw->mbytes_per_sec))
			worst_bw = p;
	}
	if (!worst_lat && !worst_bw)
		return res->verdict = PP_PASS;
	if (worst_lat && worst_bw)
		snprintf(res->why, sizeof(res->why),
		         "t[usec] %.2f at %zu bytes > %.2f; Mbytes/sec %.2f "
		         "at %zu bytes < %.2f",
		         worst_lat->t_usec, worst_lat->bytes, l->max_latency_us,
		         worst_bw->mbytes_per_sec, worst_bw->bytes,
		         l->min_bandwidth_mbs);
	else if (worst_lat)
		snprintf(res->why, sizeof(res->why),
		         "t[usec] %.2f at %zu bytes > %.2f", worst_lat->t_usec,
		         worst_lat->bytes, l->max_latency_us);
	else
		snprintf(res->why, sizeof(res->why),
		         "Mbytes/sec %.2f at %zu bytes < %.2f",
		         worst_bw->mbytes_per_sec, worst_bw->bytes,
		         l->min_bandwidth_mbs);
	return res->verdict = PP_SLOW;
}

/* ---- output ------------------------------------------------------------- */

#define PP_RULE "#---------------------------------------------------"

void pp_print_block_header(FILE *out, const struct pp_pair_result *res,
                           size_t rounds)
{
	fprintf(out, "%s\n# Benchmarking PingPong\n# #processes = 2\n",
	        PP_RULE);
	fprintf(out, "# pair: %s <-> %s (ranks %d and %d, round %zu of %zu)\n",
	        res->host_a, res->host_b, res->a, res->b, res->round + 1,
	        rounds);
	fprintf(out, "%s\n", PP_RULE);
}

void pp_print_table_header(FILE *out)
{
	fprintf(out, "%13s%13s%13s%13s\n", "#bytes", "#repetitions", "t[usec]",
	        "Mbytes/sec");
}

void pp_print_row(FILE *out, const struct pp_point *p)
{
	fprintf(out, "%13zu%13u%13.2f%13.2f\n", p->bytes, p->reps, p->t_usec,
	        p->mbytes_per_sec);
}

static const char *_verdict_name(enum pp_verdict v)
{
	switch (v) {
	case PP_PASS:
		return "PASS";
	case PP_SLOW:
		return "SLOW";
	default:
		return "FAIL";
	}
}

struct _node_tally {
	const char *host;
	unsigned pairs, bad;
};

static struct _node_tally *_tally(struct _node_tally *t, size_t *n,
                                  const char *host)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(t[i].host, host))
			return &t[i];
	t[*n].host = host;
	t[*n].pairs = t[*n].bad = 0;
	return &t[(*n)++];
}

static int _tally_cmp(const void *x, const void *y)
{
	const struct _node_tally *a = x, *b = y;

	if (a->bad != b->bad)
		return a->bad > b->bad ? -1 : 1;
	return strcmp(a->host, b->host);
}

static void _print_limits(FILE *out, const struct pp_thresholds *l)
{
	fprintf(out, "# Thresholds");
	if (l->source)
		fprintf(out, " (%s)", l->source);
	fprintf(out, ":");
	if (l->max_latency_us > 0.0)
		fprintf(out, " t[usec] <= %.2f up to %d bytes;",
		        l->max_latency_us, PP_LATENCY_MAX_BYTES);
	else
		fprintf(out, " latency not checked;");
	if (l->min_bandwidth_mbs > 0.0)
		fprintf(out, " Mbytes/sec >= %.2f from %d bytes\n",
		        l->min_bandwidth_mbs, PP_BANDWIDTH_MIN_BYTES);
	else
		fprintf(out, " bandwidth not checked\n");
}

size_t pp_print_summary(FILE *out, struct pp_pair_result *res, size_t n,
                        bool verbose)
{
	struct _node_tally *nodes = calloc(2 * n + 1, sizeof(*nodes));
	size_t bad = 0, nnodes = 0, bad_nodes = 0;

	fprintf(out, "%s\n# Summary: %zu %s\n", PP_RULE, n,
	        n == 1 ? "pair" : "pairs");
	if (n)
		_print_limits(out, &res[0].limits);
	for (size_t i = 0; i < n; i++) {
		enum pp_verdict v = pp_pair_judge(&res[i]);

		if (v != PP_PASS)
			bad++;
		if (v != PP_PASS || verbose)
			fprintf(out, "# %-4s %s <-> %s%s%s\n", _verdict_name(v),
			        res[i].host_a, res[i].host_b,
			        res[i].why[0] ? ": " : "", res[i].why);
		if (!nodes)
			continue;
		for (int side = 0; side < 2; side++) {
			struct _node_tally *t =
			        _tally(nodes, &nnodes,
			               side ? res[i].host_b : res[i].host_a);

			t->pairs++;
			t->bad += v != PP_PASS;
		}
	}
	if (nodes && bad) {
		qsort(nodes, nnodes, sizeof(*nodes), _tally_cmp);
		fprintf(out, "# Nodes in slow or failing pairs:");
		for (size_t i = 0; i < nnodes && nodes[i].bad; i++, bad_nodes++)
			fprintf(out, " %s (%u of %u pairs)", nodes[i].host,
			        nodes[i].bad, nodes[i].pairs);
		fprintf(out, "\n");
	}
	free(nodes);
	if (bad)
		fprintf(out,
		        "# Result: FAIL (%zu of %zu pairs slow or "
		        "failing)\n",
		        bad, n);
	else
		fprintf(out, "# Result: PASS (%zu %s)\n", n,
		        n == 1 ? "pair" : "pairs");
	return bad;
}

void pp_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

void pp_print_json(FILE *out, enum pp_mode mode,
                   const struct pp_pair_result *res, size_t n)
{
	size_t bad = 0;

	fprintf(out, "{\"mode\": ");
	pp_json_string(out, pp_mode_name(mode));
	fprintf(out, ", \"pairs\": [");
	for (size_t i = 0; i < n; i++) {
		const struct pp_pair_result *r = &res[i];

		bad += r->verdict != PP_PASS;
		fprintf(out, "%s\n {\"a\": ", i ? "," : "");
		pp_json_string(out, r->host_a);
		fprintf(out, ", \"b\": ");
		pp_json_string(out, r->host_b);
		fprintf(out,
		        ", \"ranks\": [%d, %d], \"round\": %zu, "
		        "\"verdict\": ",
		        r->a, r->b, r->round + 1);
		pp_json_string(out, _verdict_name(r->verdict));
		fprintf(out, ", \"why\": ");
		pp_json_string(out, r->why);
		fprintf(out,
		        ", \"max_latency_us\": %.2f, "
		        "\"min_bandwidth_mbs\": %.2f, \"sizes\": [",
		        r->limits.max_latency_us, r->limits.min_bandwidth_mbs);
		for (size_t j = 0; !r->failed && j < r->count; j++)
			fprintf(out,
			        "%s{\"bytes\": %zu, \"repetitions\": %u, "
			        "\"t_usec\": %.2f, \"mbytes_per_sec\": %.2f}",
			        j ? ", " : "", r->points[j].bytes,
			        r->points[j].reps, r->points[j].t_usec,
			        r->points[j].mbytes_per_sec);
		fprintf(out, "]}");
	}
	fprintf(out, "\n], \"result\": \"%s\"}\n", bad ? "FAIL" : "PASS");
}
