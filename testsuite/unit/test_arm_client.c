/*
 * test_arm_client.c - the ARM client against a local HTTPS server playing
 * canned exchanges (arm_test_server.py, scenarios under
 * testsuite/data/arm/scenarios/): tokens and their cache, 401 refresh,
 * LROs both ways, retries and the lack of them, TLS verification,
 * concurrency and paging.  The server records every request, so the tests
 * check what went over the wire, not just what came back.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arm.h"
#include "buf.h"
#include "conf.h"
#include "log.h"
#include "testutil.h"

#define SUB "/subscriptions/00000000-0000-0000-0000-000000000000"
#define RG SUB "/resourceGroups/azrdma-rg"
#define VM RG "/providers/Microsoft.Compute/virtualMachines/hb-000"
#define NIC RG "/providers/Microsoft.Network/networkInterfaces/hb-000-nic"
#define AVSET RG "/providers/Microsoft.Compute/availabilitySets/AZRDMA-FABRIC1"
#define PPG                                                                    \
	RG "/providers/Microsoft.Compute/proximityPlacementGroups/fabric1-ppg"
#define OPS SUB "/providers/Microsoft.Compute/locations/eastus/operations"
#define IMDS_PATH "/metadata/identity/oauth2/token"
#define SECRET "s3cr&t+/=value"

/* ---- the server ----------------------------------------------------- */

struct srv {
	pid_t pid;
	char base[64];
	char log[512];
	json_object *reqs; /* the recorded requests, after _srv_stop */
};

static int _seq;

/* A unique path under the temporary directory. */
static void _tmp(char *out, size_t len, const char *what)
{
	snprintf(out, len, "%s/%s-%d-%d", tu_tmpdir(), what, (int)getpid(),
	         ++_seq);
}

/*
 * Start the server on scenarios/<name>.json, with every "@LONG@" in it
 * replaced by long (may be NULL).
 */
static void _srv_start(struct srv *s, const char *name, const char *long_)
{
	char src[512], script[512], errlog[512], server[512], line[128];
	char *text;
	struct az_buf b = {0};
	int pfd[2];
	struct pollfd p;
	ssize_t n = 0;
	int port = 0;

	memset(s, 0, sizeof(*s));
	snprintf(src, sizeof(src), "%s/arm/scenarios/%s.json", TEST_DATA_DIR,
	         name);
	text = tu_slurp(src);
	for (char *t = text, *hit;; t = hit + 6) {
		hit = strstr(t, "@LONG@");
		if (!hit || !long_) {
			buf_puts(&b, t);
			break;
		}
		buf_append(&b, t, (size_t)(hit - t));
		buf_puts(&b, long_);
	}
	free(text);
	_tmp(script, sizeof(script), "script");
	_tmp(s->log, sizeof(s->log), "requests");
	_tmp(errlog, sizeof(errlog), "server-stderr");
	tu_write(strrchr(script, '/') + 1, b.data, 0644);
	buf_free(&b);
	snprintf(server, sizeof(server), "%s/../unit/arm_test_server.py",
	         TEST_DATA_DIR);
	ck_assert_int_eq(pipe(pfd), 0);
	s->pid = fork();
	ck_assert_int_ge(s->pid, 0);
	if (s->pid == 0) {
		char cert[512], key[512], data[512];
		int fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		/* Never outlive the test, even one that fails. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(pfd[1], STDOUT_FILENO);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		close(pfd[0]);
		snprintf(cert, sizeof(cert), "%s/arm/server.pem",
		         TEST_DATA_DIR);
		snprintf(key, sizeof(key), "%s/arm/server.key", TEST_DATA_DIR);
		snprintf(data, sizeof(data), "%s/arm", TEST_DATA_DIR);
		execlp("python3", "python3", server, "--cert", cert, "--key",
		       key, "--script", script, "--log", s->log, "--data-dir",
		       data, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	p.fd = pfd[0];
	p.events = POLLIN;
	/* "ready <port>\n" */
	while ((size_t)n < sizeof(line) - 1 && poll(&p, 1, 15000) > 0) {
		ssize_t r = read(pfd[0], line + n, sizeof(line) - 1 - n);

		if (r <= 0)
			break;
		n += r;
		line[n] = '\0';
		if (strchr(line, '\n'))
			break;
	}
	close(pfd[0]);
	line[n > 0 ? n : 0] = '\0';
	ck_assert_msg(sscanf(line, "ready %d", &port) == 1,
	              "test server did not start (see %s)", errlog);
	snprintf(s->base, sizeof(s->base), "https://127.0.0.1:%d", port);
}

/* Stop the server and read what it recorded into s->reqs. */
static void _srv_stop(struct srv *s)
{
	char *text, *line, *save = NULL;

	kill(s->pid, SIGTERM);
	waitpid(s->pid, NULL, 0);
	s->reqs = json_object_new_array();
	text = tu_slurp(s->log);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		json_object_array_add(s->reqs, json_tokener_parse(line));
	free(text);
}

static void _srv_free(struct srv *s)
{
	json_object_put(s->reqs);
	s->reqs = NULL;
}

static size_t _nreq(const struct srv *s)
{
	return json_object_array_length(s->reqs);
}

static json_object *_req(const struct srv *s, size_t i)
{
	ck_assert_uint_lt(i, _nreq(s));
	return json_object_array_get_idx(s->reqs, i);
}

static const char *_field(json_object *req, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(req, key, &v))
		return NULL;
	return json_object_get_string(v);
}

static const char *_header(json_object *req, const char *name)
{
	json_object *h, *v;

	if (!json_object_object_get_ex(req, "headers", &h)
	    || !json_object_object_get_ex(h, name, &v))
		return NULL;
	return json_object_get_string(v);
}

/* How many requests of method to path. */
static int _count(const struct srv *s, const char *method, const char *path)
{
	int n = 0;

	for (size_t i = 0; i < _nreq(s); i++)
		if (!strcmp(_field(_req(s, i), "method"), method)
		    && !strcmp(_field(_req(s, i), "path"), path))
			n++;
	return n;
}

static void _assert_request(const struct srv *s, size_t i, const char *method,
                            const char *path)
{
	json_object *r = _req(s, i);

	ck_assert_str_eq(_field(r, "method"), method);
	ck_assert_str_eq(_field(r, "path"), path);
}

/* ---- the client ----------------------------------------------------- */

struct fixture {
	struct azrdma_conf conf;
	struct arm_tuning tuning;
	char state_dir[512];
	char ca[512];
	char secret[512];
};

static double _half(void *arg)
{
	return 0.5;
}

/* A managed-identity config for the server at base, short timings. */
static void _fixture(struct fixture *f, const struct srv *s)
{
	memset(f, 0, sizeof(*f));
	_tmp(f->state_dir, sizeof(f->state_dir), "state");
	snprintf(f->ca, sizeof(f->ca), "%s/arm/ca.pem", TEST_DATA_DIR);
	f->conf.subscription_id = "00000000-0000-0000-0000-000000000000";
	f->conf.resource_group = "azrdma-rg";
	f->conf.location = "eastus";
	f->conf.arm_endpoint = (char *)s->base;
	f->conf.authority_host = (char *)s->base;
	f->conf.imds_endpoint = (char *)s->base;
	f->conf.arm_audience = "https://management.azure.com";
	f->conf.auth = AUTH_MANAGED_IDENTITY;
	f->conf.ca_bundle = f->ca;
	f->conf.state_dir = f->state_dir;
	f->conf.compute_api_version = "2024-11-01";
	f->conf.network_api_version = "2025-07-01";
	f->conf.max_parallel_requests = 4;
	arm_tuning_default(&f->tuning);
	f->tuning.poll_interval_ms = 20;
	f->tuning.backoff_base_ms = 10;
	f->tuning.backoff_cap_ms = 100;
	f->tuning.retry_budget_ms = 10000;
	f->tuning.max_attempts = 5;
	f->tuning.connect_timeout_ms = 5000;
	f->tuning.transfer_timeout_ms = 10000;
	f->tuning.random = _half;
}

static void _service_principal(struct fixture *f, mode_t mode)
{
	f->conf.auth = AUTH_SERVICE_PRINCIPAL;
	f->conf.tenant_id = "tenant-x";
	f->conf.client_id = "app-id";
	_tmp(f->secret, sizeof(f->secret), "secret");
	tu_write(strrchr(f->secret, '/') + 1, SECRET "\n", mode);
	f->conf.client_secret_file = f->secret;
}

static struct arm_client *_client(struct fixture *f)
{
	struct arm_client *c = NULL;
	char err[AZ_ERRLEN];

	ck_assert_msg(arm_client_new(&f->conf, &f->tuning, &c, err, sizeof(err))
	                      == AZ_OK,
	              "%s", err);
	return c;
}

static int64_t _ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The token cache file of the fixture's state directory. */
static void _cache_file(const struct fixture *f, char *out, size_t len)
{
	char pattern[600];
	glob_t g;

	snprintf(pattern, sizeof(pattern), "%s/token-*.json", f->state_dir);
	ck_assert_int_eq(glob(pattern, 0, NULL, &g), 0);
	ck_assert_uint_eq(g.gl_pathc, 1);
	snprintf(out, len, "%s", g.gl_pathv[0]);
	globfree(&g);
}

/* ---- tokens --------------------------------------------------------- */

START_TEST(imds_token_is_cached_privately_and_reused)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;
	char cache[700];
	struct stat st;
	json_object *r;

	_srv_start(&s, "imds-get-vm", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, &res), AZ_OK);
	ck_assert_int_eq(res->status, 200);
	ck_assert_str_eq(arm_vm_power_state(res->body), "running");
	ck_assert_str_eq(res->request_id,
	                 "5b0a1c2d-0000-4000-8000-000000000001");
	arm_result_free(res);
	arm_client_free(c);

	_cache_file(&f, cache, sizeof(cache));
	ck_assert_int_eq(stat(cache, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);

	/* A second program run: the cached token, no IMDS request. */
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);

	ck_assert_uint_eq(_nreq(&s), 3);
	r = _req(&s, 0);
	_assert_request(&s, 0, "GET", IMDS_PATH);
	ck_assert_str_eq(_header(r, "metadata"), "true");
	ck_assert_ptr_null(_header(r, "authorization"));
	ck_assert_str_eq(_field(r, "query"),
	                 "api-version=2018-02-01&resource="
	                 "https%3A%2F%2Fmanagement.azure.com%2F");
	for (int i = 1; i <= 2; i++) {
		r = _req(&s, i);
		_assert_request(&s, i, "GET", VM);
		ck_assert_str_eq(_field(r, "query"), "api-version=2024-11-01");
		ck_assert_ptr_nonnull(_header(r, "authorization"));
		ck_assert(!strncmp(_header(r, "authorization"),
		                   "Bearer eyJ0eXAi", 15));
		ck_assert_ptr_null(_header(r, "metadata"));
	}
	_srv_free(&s);
}
END_TEST

START_TEST(token_near_expiry_is_refreshed)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;

	_srv_start(&s, "imds-short-then-long", NULL);
	_fixture(&f, &s);
	/* A user-assigned identity. */
	f.conf.client_id = "11111111-2222-3333-4444-555555555555";
	c = _client(&f);
	/* 200 s is short of the 5 minute margin, but it is all IMDS gave. */
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	arm_client_free(c);
	/* The next run finds it in the cache, too close to expiry. */
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	ck_assert_int_eq(arm_client_check_auth(c, NULL, 0), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);

	ck_assert_uint_eq(_nreq(&s), 4);
	ck_assert_ptr_nonnull(strstr(_field(_req(&s, 0), "query"),
	                             "&client_id=11111111-2222-3333-4444-"
	                             "555555555555"));
	ck_assert_str_eq(_header(_req(&s, 1), "authorization"),
	                 "Bearer tok-short");
	_assert_request(&s, 2, "GET", IMDS_PATH);
	ck_assert_str_eq(_header(_req(&s, 3), "authorization"),
	                 "Bearer tok-long");
	_srv_free(&s);
}
END_TEST

START_TEST(imds_updating_and_throttling_are_retried)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;

	_srv_start(&s, "imds-updating", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_client_check_auth(c, NULL, 0), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_int_eq(_count(&s, "GET", IMDS_PATH), 3);
	_srv_free(&s);
}
END_TEST

/* A local port nobody listens on: connections to it are refused. */
static int _closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

START_TEST(unreachable_imds_fails_after_a_few_tries_with_the_fix)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	char url[64], err[AZ_ERRLEN];

	_srv_start(&s, "imds-get-vm", NULL);
	_fixture(&f, &s);
	/* The whole budget would be two minutes of retries. */
	f.tuning.retry_budget_ms = 120000;
	f.tuning.max_attempts = 50;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", _closed_port());
	f.conf.imds_endpoint = url;
	c = _client(&f);
	ck_assert_int_eq(arm_client_check_auth(c, err, sizeof(err)),
	                 AZ_EAUTH);
	arm_client_free(c);
	ck_assert_msg(strstr(err, "after 3 tries"), "%s", err);
	ck_assert_msg(strstr(err, "Auth=ServicePrincipal"), "%s", err);
	_srv_stop(&s);
	ck_assert_int_eq(_count(&s, "GET", IMDS_PATH), 0);
	_srv_free(&s);
}
END_TEST

START_TEST(service_principal_secret_goes_only_in_the_post_body)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	json_object *r;
	const char *body;

	_srv_start(&s, "sp-get-vm", NULL);
	_fixture(&f, &s);
	_service_principal(&f, 0600);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);

	ck_assert_uint_eq(_nreq(&s), 2);
	r = _req(&s, 0);
	_assert_request(&s, 0, "POST", "/tenant-x/oauth2/v2.0/token");
	ck_assert_str_eq(_header(r, "content-type"),
	                 "application/x-www-form-urlencoded");
	body = _field(r, "body");
	ck_assert_str_eq(body, "grant_type=client_credentials"
	                       "&client_id=app-id"
	                       "&client_secret=s3cr%26t%2B%2F%3Dvalue"
	                       "&scope=https%3A%2F%2Fmanagement.azure.com%2F"
	                       ".default");
	ck_assert_str_eq(_header(_req(&s, 1), "authorization"),
	                 "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9."
	                 "eyJhcHBpZCI6InNwIn0.c2ln");
	/* The secret is in no query, header or other body. */
	for (size_t i = 0; i < _nreq(&s); i++) {
		const char *text = json_object_to_json_string(_req(&s, i));
		const char *hit = strstr(text, "s3cr");

		ck_assert_msg(!hit
		                      || (i == 0
		                          && strstr(text, "s3cr%26t") == hit
		                          && !strstr(hit + 1, "s3cr")),
		              "secret leaked in request %zu", i);
		ck_assert_ptr_null(
		        strstr(_field(_req(&s, i), "query"), "secret"));
	}
	_srv_free(&s);
}
END_TEST

START_TEST(nothing_secret_reaches_the_log)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	char path[512], err[AZ_ERRLEN], *text;

	_tmp(path, sizeof(path), "log");
	ck_assert_int_eq(log_open("test_arm_client", path, err, sizeof(err)),
	                 AZ_OK);
	log_set_level(LOG_LVL_DEBUG2);
	_srv_start(&s, "sp-get-vm", NULL);
	_fixture(&f, &s);
	_service_principal(&f, 0600);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);
	log_close();
	log_set_level(LOG_LVL_INFO);

	text = tu_slurp(path);
	/* Method, path, status, request id and time of every exchange... */
	ck_assert_ptr_nonnull(strstr(text,
	                             "arm: token POST "
	                             "/tenant-x/oauth2/v2.0/token -> 200"));
	ck_assert_ptr_nonnull(strstr(text, "arm: GET " VM " -> 200 (request id "
	                                   "5b0a1c2d-0000-4000-8000-"
	                                   "000000000001, "));
	/* ...and neither the secret nor the token nor a query. */
	ck_assert_ptr_null(strstr(text, "s3cr"));
	ck_assert_ptr_null(strstr(text, "eyJ"));
	ck_assert_ptr_null(strstr(text, "Bearer"));
	ck_assert_ptr_null(strstr(text, "api-version"));
	free(text);
	_srv_free(&s);
}
END_TEST

START_TEST(readable_secret_file_is_refused)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;

	_srv_start(&s, "sp-get-vm", NULL);
	_fixture(&f, &s);
	_service_principal(&f, 0644);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, &res), AZ_EAUTH);
	ck_assert_ptr_nonnull(strstr(res->err, "ClientSecretFile"));
	ck_assert_ptr_nonnull(strstr(res->err, "chmod 600"));
	arm_result_free(res);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_uint_eq(_nreq(&s), 0);
	_srv_free(&s);
}
END_TEST

START_TEST(aad_error_fails_the_call_with_its_description)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;
	char err[AZ_ERRLEN];

	_srv_start(&s, "sp-aad-error", NULL);
	_fixture(&f, &s);
	_service_principal(&f, 0600);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, &res), AZ_EAUTH);
	ck_assert_ptr_nonnull(strstr(res->err, "invalid_scope: AADSTS70011"));
	ck_assert_ptr_null(strstr(res->err, "Trace ID"));
	arm_result_free(res);
	ck_assert_int_eq(arm_client_check_auth(c, err, sizeof(err)), AZ_EAUTH);
	ck_assert_ptr_nonnull(strstr(err, "AADSTS70011"));
	arm_client_free(c);
	_srv_stop(&s);
	/* A 400 from AAD is not retried; no ARM request was made. */
	ck_assert_int_eq(_count(&s, "POST", "/tenant-x/oauth2/v2.0/token"), 2);
	ck_assert_int_eq(_count(&s, "GET", VM), 0);
	_srv_free(&s);
}
END_TEST

START_TEST(arm_401_gets_a_fresh_token_and_one_retry)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;
	char cache[700], *text;

	_srv_start(&s, "arm-401-once", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_uint_eq(_nreq(&s), 4);
	_assert_request(&s, 0, "GET", IMDS_PATH);
	ck_assert_str_eq(_header(_req(&s, 1), "authorization"), "Bearer tok-a");
	_assert_request(&s, 2, "GET", IMDS_PATH);
	ck_assert_str_eq(_header(_req(&s, 3), "authorization"), "Bearer tok-b");
	/* The cache holds the new token. */
	_cache_file(&f, cache, sizeof(cache));
	text = tu_slurp(cache);
	ck_assert_ptr_nonnull(strstr(text, "tok-b"));
	free(text);
	_srv_free(&s);

	/* Rejected again: once is enough, the call fails. */
	_srv_start(&s, "arm-401-always", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, &res), AZ_EAUTH);
	ck_assert_int_eq(res->status, 401);
	ck_assert_str_eq(res->error.code, "InvalidAuthenticationToken");
	arm_result_free(res);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_int_eq(_count(&s, "GET", VM), 2);
	ck_assert_int_eq(_count(&s, "GET", IMDS_PATH), 2);
	_srv_free(&s);
}
END_TEST

/* ---- long-running operations ---------------------------------------- */

START_TEST(lro_polls_azure_asyncoperation_then_gets_the_vm)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;
	json_object *body = json_object_new_object();
	json_object *r;

	json_object_object_add(body, "location",
	                       json_object_new_string("eastus"));
	_srv_start(&s, "lro-async", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_create(c, "hb-000", body, &res), AZ_OK);
	ck_assert_int_eq(res->status, 200);
	ck_assert_str_eq(arm_provisioning_state(res->body), "Succeeded");
	arm_result_free(res);
	json_object_put(body);
	arm_client_free(c);
	_srv_stop(&s);

	ck_assert_uint_eq(_nreq(&s), 5);
	r = _req(&s, 1);
	_assert_request(&s, 1, "PUT", VM);
	ck_assert_str_eq(_field(r, "body"), "{\"location\":\"eastus\"}");
	ck_assert_str_eq(_header(r, "content-type"), "application/json");
	ck_assert_str_eq(_field(r, "query"), "api-version=2024-11-01");
	_assert_request(&s, 2, "GET", OPS "/op-1");
	ck_assert_str_eq(_field(_req(&s, 2), "query"),
	                 "p=8a9b0c1d&api-version=2024-11-01");
	ck_assert_ptr_nonnull(_header(_req(&s, 2), "authorization"));
	_assert_request(&s, 3, "GET", OPS "/op-1");
	_assert_request(&s, 4, "GET", VM);
	_srv_free(&s);
}
END_TEST

START_TEST(lro_polls_a_long_location_honouring_retry_after)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;
	char *sig = malloc(4601);
	int64_t t0;

	/* Signed status URLs run to kilobytes; no buffer may cut them. */
	for (int i = 0; i < 4600; i++)
		sig[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		         "0123456789-_"[i % 64];
	sig[4600] = '\0';
	_srv_start(&s, "lro-location", sig);
	_fixture(&f, &s);
	c = _client(&f);
	t0 = _ms();
	ck_assert_int_eq(arm_vm_deallocate(c, "hb-000", &res), AZ_OK);
	ck_assert_int_ge(_ms() - t0, 1000);
	ck_assert_int_eq(res->status, 200);
	ck_assert_ptr_null(res->body);
	arm_result_free(res);
	arm_client_free(c);
	_srv_stop(&s);

	ck_assert_uint_eq(_nreq(&s), 5);
	_assert_request(&s, 1, "POST", VM "/deallocate");
	ck_assert_str_eq(_field(_req(&s, 1), "body"), "");
	for (int i = 2; i <= 4; i++) {
		const char *q = _field(_req(&s, i), "query");

		/* The first poll's answer moved the operation. */
		_assert_request(&s, i, "GET",
		                i == 2 ? OPS "/op-2" : OPS "/op-2b");
		ck_assert_uint_gt(strlen(q), 4600);
		ck_assert_ptr_nonnull(strstr(q, sig));
	}
	/* The second poll waited for Retry-After: 1. */
	ck_assert_double_ge(
	        json_object_get_double(
	                json_object_object_get(_req(&s, 3), "time"))
	                - json_object_get_double(
	                        json_object_object_get(_req(&s, 2), "time")),
	        0.95);
	free(sig);
	_srv_free(&s);
}
END_TEST

START_TEST(post_lro_ends_with_a_get_on_location)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;

	_srv_start(&s, "lro-async-then-location", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_start(c, "hb-000", NULL), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);
	/* 202 without a body, InProgress, Succeeded, then Location. */
	ck_assert_uint_eq(_nreq(&s), 6);
	ck_assert_str_eq(_field(_req(&s, 2), "query"),
	                 "p=77&api-version=2024-11-01");
	ck_assert_str_eq(_field(_req(&s, 4), "query"),
	                 "p=77&api-version=2024-11-01");
	ck_assert_str_eq(_field(_req(&s, 5), "query"),
	                 "p=77&monitor=true&api-version=2024-11-01");
	_srv_free(&s);
}
END_TEST

START_TEST(failed_lro_names_the_nested_cause)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;

	_srv_start(&s, "lro-failed", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_create(c, "hb-000", NULL, &res), AZ_EARM);
	ck_assert_str_eq(res->error.code, "OverconstrainedAllocationRequest");
	ck_assert_str_eq(res->error.top_code, "ResourceOperationFailure");
	/* The message lists constraints on lines of their own; err is one. */
	ck_assert_ptr_nonnull(strchr(res->error.message, '\n'));
	ck_assert_ptr_null(strchr(res->err, '\n'));
	ck_assert_ptr_nonnull(strstr(res->err, "Availability Set"));
	ck_assert(!strncmp(res->err,
	                   "OverconstrainedAllocationRequest: Allocation "
	                   "failed.",
	                   50));
	arm_result_free(res);
	arm_client_free(c);
	_srv_stop(&s);
	/* No final GET of a VM that failed. */
	ck_assert_int_eq(_count(&s, "GET", VM), 0);
	_srv_free(&s);
}
END_TEST

START_TEST(created_without_poll_headers_watches_provisioning_state)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;
	const char *ppg = RG "/providers/Microsoft.Compute/"
	                     "proximityPlacementGroups/fabric1-ppg";

	_srv_start(&s, "lro-poll-resource", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_ppg_put(c, "fabric1-ppg", NULL, &res), AZ_OK);
	ck_assert_str_eq(arm_provisioning_state(res->body), "Succeeded");
	arm_result_free(res);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_int_eq(_count(&s, "GET", ppg), 2);
	_srv_free(&s);
}
END_TEST

/* ---- retries -------------------------------------------------------- */

START_TEST(throttled_429_waits_for_retry_after)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	int64_t t0;

	_srv_start(&s, "throttle-429", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	t0 = _ms();
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	ck_assert_int_ge(_ms() - t0, 1000);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_int_eq(_count(&s, "GET", VM), 2);
	_srv_free(&s);
}
END_TEST

START_TEST(server_errors_are_retried)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;

	_srv_start(&s, "server-errors", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_int_eq(_count(&s, "GET", VM), 3);
	_srv_free(&s);
}
END_TEST

START_TEST(client_errors_are_never_retried)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;

	_srv_start(&s, "client-errors", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_create(c, "hb-000", NULL, &res), AZ_EARM);
	ck_assert_int_eq(res->status, 409);
	ck_assert_str_eq(res->error.code, "OperationNotAllowed");
	ck_assert_ptr_nonnull(strstr(res->err, "OperationNotAllowed: "
	                                       "Operation could not be "
	                                       "completed"));
	arm_result_free(res);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, &res), AZ_ENOTFOUND);
	ck_assert_str_eq(res->error.code, "ResourceNotFound");
	arm_result_free(res);
	ck_assert_int_eq(arm_vm_delete(c, "hb-000", false, &res), AZ_EARM);
	ck_assert_str_eq(res->error.code, "InvalidParameter");
	arm_result_free(res);
	ck_assert_int_eq(arm_vm_start(c, "hb-000", &res), AZ_EARM);
	ck_assert_str_eq(res->error.code, "AuthorizationFailed");
	arm_result_free(res);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_int_eq(_count(&s, "PUT", VM), 1);
	ck_assert_int_eq(_count(&s, "GET", VM), 1);
	ck_assert_int_eq(_count(&s, "DELETE", VM), 1);
	ck_assert_int_eq(_count(&s, "POST", VM "/start"), 1);
	ck_assert_str_eq(_field(_req(&s, 3), "query"),
	                 "api-version=2024-11-01&forceDeletion=false");
	_srv_free(&s);
}
END_TEST

START_TEST(retries_stop_after_max_attempts)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;

	_srv_start(&s, "always-failing", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, &res), AZ_EARM);
	ck_assert_int_eq(res->status, 503);
	ck_assert_str_eq(res->error.code, "ServiceUnavailable");
	arm_result_free(res);
	ck_assert_int_eq(arm_nic_get(c, "hb-000-nic", &res), AZ_ETHROTTLED);
	ck_assert_str_eq(res->error.code,
	                 "RetryableErrorDueToAnotherOperation");
	arm_result_free(res);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_int_eq(_count(&s, "GET", VM), 5);
	ck_assert_int_eq(_count(&s, "GET", NIC), 5);
	_srv_free(&s);
}
END_TEST

START_TEST(dropped_connections_are_retried)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;

	_srv_start(&s, "dropped", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_int_ge(_count(&s, "GET", VM), 3);
	_srv_free(&s);
}
END_TEST

/* ---- TLS ------------------------------------------------------------ */

START_TEST(tls_verification_is_always_on)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;
	char other[512];

	_srv_start(&s, "imds-get-vm", NULL);
	_fixture(&f, &s);
	/* A CaBundle that did not sign the server's certificate. */
	snprintf(other, sizeof(other), "%s/arm/other-ca.pem", TEST_DATA_DIR);
	f.conf.ca_bundle = other;
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, &res), AZ_EAUTH);
	ck_assert_msg(strstr(res->err, "certificate"), "%s", res->err);
	arm_result_free(res);
	arm_client_free(c);
	/* No CaBundle: the system's CAs do not know the test CA either. */
	f.conf.ca_bundle = NULL;
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_EAUTH);
	arm_client_free(c);
	/* The right CaBundle works. */
	f.conf.ca_bundle = f.ca;
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);
	/* Not one request got through an unverified handshake. */
	ck_assert_uint_eq(_nreq(&s), 2);
	_srv_free(&s);
}
END_TEST

/* ---- concurrency, paging, chaining ---------------------------------- */

struct tally {
	int ok;
	int failed;
	enum az_rc last;
};

static void _count_done(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct tally *t = arg;

	if (res->rc == AZ_OK)
		t->ok++;
	else
		t->failed++;
	t->last = res->rc;
}

/* The distinct client ports (connections) of the server's log; counts
 * those that resumed a TLS session into *resumed. */
static int _connections(const struct srv *s, int *resumed)
{
	int peers[64], npeers = 0;

	*resumed = 0;
	for (size_t i = 0; i < _nreq(s); i++) {
		json_object *r = _req(s, i);
		int p = json_object_get_int(json_object_object_get(r, "peer"));
		int k;

		for (k = 0; k < npeers && peers[k] != p; k++)
			;
		if (k < npeers || npeers == 64)
			continue;
		peers[npeers++] = p;
		if (json_object_get_boolean(json_object_object_get(r, "resumed")))
			(*resumed)++;
	}
	return npeers;
}

/* Submits GETs of VMs hb-<first> .. hb-<first+n-1>, tallied in t. */
static void _get_many(struct arm_client *c, int first, int n, struct tally *t)
{
	char err[AZ_ERRLEN];

	for (int i = first; i < first + n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "hb-%03d", i);
		ck_assert_int_eq(arm_vm_get_async(c, name, 0, _count_done, t,
		                                  err, sizeof(err)),
		                 AZ_OK);
	}
}

START_TEST(concurrency_is_bounded_by_max_parallel_requests)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct tally t = {0};
	char err[AZ_ERRLEN];
	int max_active = 0, resumed;
	int64_t t0;

	_srv_start(&s, "many", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	_get_many(c, 0, 20, &t);
	ck_assert_uint_eq(arm_client_pending(c), 20);
	t0 = _ms();
	ck_assert_int_eq(arm_client_run(c, 20000, err, sizeof(err)), AZ_OK);
	/* Five rounds of four, not twenty one after another. */
	ck_assert_int_lt(_ms() - t0, 4000);
	ck_assert_int_eq(t.ok, 20);
	ck_assert_uint_eq(arm_client_pending(c), 0);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_uint_eq(_nreq(&s), 21);
	for (size_t i = 0; i < _nreq(&s); i++) {
		int a = json_object_get_int(
		        json_object_object_get(_req(&s, i), "active"));

		max_active = a > max_active ? a : max_active;
	}
	ck_assert_int_eq(max_active, 4);
	/* Connections are reused: at most one per parallel request. */
	ck_assert_int_le(_connections(&s, &resumed), 4);
	_srv_free(&s);
}
END_TEST

/* One request, then eight more four at a time, so that new connections
 * open after the first; the CA bundle is swapped for another CA's between
 * them when swap is set. */
static void _first_then_eight(struct srv *s, const char *scenario, bool swap)
{
	struct fixture f;
	struct arm_client *c;
	struct tally t = {0};
	char err[AZ_ERRLEN], bundle[512], other_ca[512];
	char *text;

	_srv_start(s, scenario, NULL);
	_fixture(&f, s);
	text = tu_slurp(f.ca);
	snprintf(bundle, sizeof(bundle), "%s",
	         tu_write("bundle.pem", text, 0644));
	free(text);
	f.conf.ca_bundle = bundle;
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", 0, NULL), AZ_OK);
	if (swap) {
		snprintf(other_ca, sizeof(other_ca), "%s/arm/other-ca.pem",
		         TEST_DATA_DIR);
		text = tu_slurp(other_ca);
		tu_write("bundle.pem", text, 0644);
		free(text);
	}
	_get_many(c, 1, 8, &t);
	ck_assert_int_eq(arm_client_run(c, 20000, err, sizeof(err)), AZ_OK);
	ck_assert_int_eq(t.ok, 8);
	arm_client_free(c);
	_srv_stop(s);
}

/* The CA file is read into one store per client, not once per connection
 * (with a system bundle each reading costs ~43 ms and 0.8 MB): connections
 * opened after the file changed, without a session to resume, verify the
 * server against what it held when the client first read it. */
START_TEST(the_ca_bundle_is_read_once_per_client)
{
	struct srv s;
	int resumed;

	_first_then_eight(&s, "many-no-tickets", true);
	ck_assert_int_ge(_connections(&s, &resumed), 3);
	ck_assert_int_eq(resumed, 0);
	_srv_free(&s);
}
END_TEST

/* Transfers share TLS sessions: a new connection resumes one, which spares
 * both ends the certificate chain. */
START_TEST(new_connections_resume_a_tls_session)
{
	struct srv s;
	int resumed, connections;

	_first_then_eight(&s, "many", false);
	connections = _connections(&s, &resumed);
	ck_assert_int_ge(connections, 3);
	/* Which of them resume depends on when each handshake starts against
	 * the server's session tickets (under ASan one in three may miss);
	 * without a shared session cache none does. */
	ck_assert_int_ge(resumed, 1);
	_srv_free(&s);
}
END_TEST

START_TEST(next_link_pages_are_merged)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;
	json_object *value;

	_srv_start(&s, "paging", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_list(c, &res), AZ_OK);
	ck_assert(json_object_object_get_ex(res->body, "value", &value));
	ck_assert_uint_eq(json_object_array_length(value), 3);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(
	                         json_object_array_get_idx(value, 2), "name")),
	                 "hb-002");
	arm_result_free(res);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_uint_eq(_nreq(&s), 3);
	ck_assert_str_eq(_field(_req(&s, 1), "query"),
	                 "api-version=2024-11-01");
	/* The nextLink as given: api-version once, the skip token kept. */
	ck_assert_str_eq(_field(_req(&s, 2), "query"),
	                 "api-version=2024-11-01&%24skiptoken="
	                 "Mnw4MDAwfGh1Yi0wMDE%3D");
	_srv_free(&s);
}
END_TEST

/* What a page callback saw, in order. */
struct pages_seen {
	int pages;
	int items;
	char names[4][16];
	int done;
	bool done_body;
	enum az_rc rc;
};

static void _page_seen(struct arm_client *c, json_object *items, void *arg)
{
	struct pages_seen *p = arg;

	p->pages++;
	for (size_t i = 0; i < json_object_array_length(items); i++) {
		json_object *it = json_object_array_get_idx(items, i);

		if (p->items < 4)
			snprintf(p->names[p->items], sizeof(p->names[0]), "%s",
			         json_object_get_string(
			                 json_object_object_get(it, "name")));
		p->items++;
	}
}

static void _pages_done(struct arm_client *c, struct arm_result *res,
                        void *arg)
{
	struct pages_seen *p = arg;

	p->done++;
	p->done_body = res->body != NULL;
	p->rc = res->rc;
}

START_TEST(next_link_pages_one_by_one)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct pages_seen seen = {0};
	char err[AZ_ERRLEN];

	_srv_start(&s, "paging", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_list_async(c, _page_seen, _pages_done, &seen,
	                                   err, sizeof(err)),
	                 AZ_OK);
	ck_assert_int_eq(arm_client_run(c, 20000, err, sizeof(err)), AZ_OK);
	arm_client_free(c);
	_srv_stop(&s);
	/* Two pages (two items, then one), nothing merged, done once. */
	ck_assert_int_eq(seen.pages, 2);
	ck_assert_int_eq(seen.items, 3);
	ck_assert_str_eq(seen.names[2], "hb-002");
	ck_assert_int_eq(seen.done, 1);
	ck_assert_int_eq(seen.rc, AZ_OK);
	ck_assert(!seen.done_body);
	_srv_free(&s);
}
END_TEST

START_TEST(token_never_follows_a_link_to_another_host)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;

	_srv_start(&s, "paging-elsewhere", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_list(c, &res), AZ_EPARSE);
	ck_assert_ptr_nonnull(strstr(res->err, "not on ArmEndpoint"));
	arm_result_free(res);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_uint_eq(_nreq(&s), 2);
	_srv_free(&s);
}
END_TEST

START_TEST(run_deadline_fails_what_is_left)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct tally t = {0};
	char err[AZ_ERRLEN];

	_srv_start(&s, "slow", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_get_async(c, "hb-000", 0, _count_done, &t, err,
	                                  sizeof(err)),
	                 AZ_OK);
	ck_assert_int_eq(arm_client_run(c, 300, err, sizeof(err)), AZ_ETIMEOUT);
	ck_assert_int_eq(t.failed, 1);
	ck_assert_int_eq(t.last, AZ_ETIMEOUT);
	ck_assert_uint_eq(arm_client_pending(c), 0);
	arm_client_free(c);
	_srv_stop(&s);
	_srv_free(&s);
}
END_TEST

START_TEST(network_and_sku_calls_carry_their_api_versions)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct arm_result *res;

	_srv_start(&s, "network-and-skus", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_nic_create(c, "hb-000-nic", NULL, &res), AZ_OK);
	ck_assert_str_eq(arm_nic_private_ip(res->body), "10.0.0.4");
	arm_result_free(res);
	ck_assert_int_eq(arm_skus_list(c, NULL, &res), AZ_OK);
	arm_result_free(res);
	ck_assert_int_eq(arm_vm_delete(c, "hb-000", true, &res), AZ_OK);
	ck_assert_ptr_null(res->body);
	arm_result_free(res);
	arm_client_free(c);
	_srv_stop(&s);
	_assert_request(&s, 1, "PUT", NIC);
	ck_assert_str_eq(_field(_req(&s, 1), "query"),
	                 "api-version=2025-07-01");
	_assert_request(&s, 3, "GET", NIC);
	_assert_request(&s, 4, "GET", SUB "/providers/Microsoft.Compute/skus");
	ck_assert_str_eq(_field(_req(&s, 4), "query"),
	                 "api-version=2021-07-01"
	                 "&$filter=location%20eq%20%27eastus%27");
	_assert_request(&s, 5, "DELETE", VM);
	ck_assert_str_eq(_field(_req(&s, 5), "query"),
	                 "api-version=2024-11-01&forceDeletion=true");
	/* DELETE ends at Succeeded: no GET of what is gone. */
	ck_assert_uint_eq(_nreq(&s), 7);
	_srv_free(&s);
}
END_TEST

struct node {
	struct tally t;
	char ip[64];
};

static void _vm_done(struct arm_client *c, struct arm_result *res, void *arg)
{
	_count_done(c, res, &((struct node *)arg)->t);
}

/* NIC done: the next step of the node, submitted from the callback. */
static void _nic_done(struct arm_client *c, struct arm_result *res, void *arg)
{
	struct node *n = arg;
	json_object *body, *tags;
	const char *ip = arm_nic_private_ip(res->body);

	if (res->rc != AZ_OK || !ip) {
		n->t.failed++;
		return;
	}
	snprintf(n->ip, sizeof(n->ip), "%s", ip);
	body = json_object_new_object();
	tags = json_object_new_object();
	json_object_object_add(tags, "azrdma-ip", json_object_new_string(ip));
	json_object_object_add(body, "tags", tags);
	ck_assert_int_eq(
	        arm_vm_create_async(c, "hb-000", body, _vm_done, n, NULL, 0),
	        AZ_OK);
	/* The client copied the body. */
	json_object_put(body);
}

START_TEST(callbacks_chain_the_steps_of_a_node)
{
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct node n = {0};
	char err[AZ_ERRLEN];

	_srv_start(&s, "chain", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_nic_create_async(c, "hb-000-nic", NULL, _nic_done,
	                                      &n, err, sizeof(err)),
	                 AZ_OK);
	ck_assert_int_eq(arm_client_run(c, 20000, err, sizeof(err)), AZ_OK);
	ck_assert_int_eq(n.t.ok, 1);
	ck_assert_str_eq(n.ip, "10.0.0.4");
	arm_client_free(c);
	_srv_stop(&s);
	_assert_request(&s, 2, "PUT", VM);
	ck_assert_str_eq(_field(_req(&s, 2), "body"),
	                 "{\"tags\":{\"azrdma-ip\":\"10.0.0.4\"}}");
	_srv_free(&s);
}
END_TEST

/* Each helper's verb, path and query, as one table. */
START_TEST(helpers_call_the_documented_operations)
{
	static const struct {
		const char *method, *path, *query;
	} want[] = {
	        {"POST", VM "/powerOff",
	         "api-version=2024-11-01&skipShutdown=true"},
	        {"POST", VM "/powerOff", "api-version=2024-11-01"},
	        {"POST", VM "/start", "api-version=2024-11-01"},
	        {"POST", VM "/deallocate", "api-version=2024-11-01"},
	        {"GET", VM, "api-version=2024-11-01&$expand=instanceView"},
	        {"PUT", AVSET, "api-version=2024-11-01"},
	        {"GET", AVSET, "api-version=2024-11-01"},
	        {"DELETE", AVSET, "api-version=2024-11-01"},
	        {"GET", PPG, "api-version=2024-11-01"},
	        {"DELETE", PPG, "api-version=2024-11-01"},
	        {"DELETE", NIC, "api-version=2025-07-01"},
	};
	struct srv s;
	struct fixture f;
	struct arm_client *c;
	struct tally t = {0};
	json_object *body = json_object_new_object();

	_srv_start(&s, "helpers", NULL);
	_fixture(&f, &s);
	c = _client(&f);
	ck_assert_int_eq(arm_vm_power_off(c, "hb-000", true, NULL), AZ_OK);
	ck_assert_int_eq(arm_vm_power_off_async(c, "hb-000", false, _count_done,
	                                        &t, NULL, 0),
	                 AZ_OK);
	ck_assert_int_eq(arm_client_run(c, 10000, NULL, 0), AZ_OK);
	ck_assert_int_eq(
	        arm_vm_start_async(c, "hb-000", _count_done, &t, NULL, 0),
	        AZ_OK);
	ck_assert_int_eq(arm_client_run(c, 10000, NULL, 0), AZ_OK);
	ck_assert_int_eq(
	        arm_vm_deallocate_async(c, "hb-000", _count_done, &t, NULL, 0),
	        AZ_OK);
	ck_assert_int_eq(arm_client_run(c, 10000, NULL, 0), AZ_OK);
	ck_assert_int_eq(arm_vm_get(c, "hb-000", ARM_VM_INSTANCE_VIEW, NULL),
	                 AZ_OK);
	ck_assert_int_eq(arm_avset_put(c, "AZRDMA-FABRIC1", body, NULL), AZ_OK);
	ck_assert_int_eq(arm_avset_get(c, "AZRDMA-FABRIC1", NULL), AZ_OK);
	ck_assert_int_eq(arm_avset_delete(c, "AZRDMA-FABRIC1", NULL), AZ_OK);
	ck_assert_int_eq(arm_ppg_get(c, "fabric1-ppg", NULL), AZ_OK);
	ck_assert_int_eq(arm_ppg_delete(c, "fabric1-ppg", NULL), AZ_OK);
	ck_assert_int_eq(
	        arm_nic_delete_async(c, "hb-000-nic", _count_done, &t, NULL, 0),
	        AZ_OK);
	ck_assert_int_eq(arm_client_run(c, 10000, NULL, 0), AZ_OK);
	ck_assert_int_eq(t.ok, 4);
	json_object_put(body);
	arm_client_free(c);
	_srv_stop(&s);
	ck_assert_uint_eq(_nreq(&s), 1 + sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		_assert_request(&s, i + 1, want[i].method, want[i].path);
		ck_assert_str_eq(_field(_req(&s, i + 1), "query"),
		                 want[i].query);
	}
	_srv_free(&s);
}
END_TEST

START_TEST(paths_and_bad_requests)
{
	struct srv s = {.base = "https://127.0.0.1:1"};
	struct fixture f;
	struct arm_client *c;
	struct arm_request req = {.method = ARM_GET, .path = "no-slash"};
	char err[AZ_ERRLEN];
	char *p;

	_fixture(&f, &s);
	c = _client(&f);
	p = arm_vm_path(c, "hb 000");
	ck_assert_str_eq(p, RG "/providers/Microsoft.Compute/virtualMachines/"
	                       "hb%20000");
	free(p);
	p = arm_avset_path(c, "AZRDMA-FABRIC1");
	ck_assert_str_eq(p, RG "/providers/Microsoft.Compute/"
	                       "availabilitySets/AZRDMA-FABRIC1");
	free(p);
	ck_assert_int_eq(arm_submit(c, &req, NULL, NULL, err, sizeof(err)),
	                 AZ_EINVAL);
	req.path = "https://elsewhere.invalid/x";
	ck_assert_int_eq(arm_submit(c, &req, NULL, NULL, err, sizeof(err)),
	                 AZ_EINVAL);
	req.path = "/x";
	req.api = ARM_API_CUSTOM;
	ck_assert_int_eq(arm_submit(c, &req, NULL, NULL, err, sizeof(err)),
	                 AZ_EINVAL);
	ck_assert_uint_eq(arm_client_pending(c), 0);
	arm_client_free(c);
	/* ArmEndpoint must be https. */
	f.conf.arm_endpoint = "http://127.0.0.1:1";
	ck_assert_int_eq(arm_client_new(&f.conf, NULL, &c, err, sizeof(err)),
	                 AZ_ECONFIG);
}
END_TEST

/*
 * Issue 18 item 6: a process that holds a token or the client secret
 * dumps no core and is not dumpable (no debugger of its own user).  Checked
 * in a child, which may change its own limits without the others'.
 */
START_TEST(a_process_with_an_arm_client_dumps_no_core)
{
	struct srv s = {.base = "https://127.0.0.1:1"};
	struct fixture f;
	pid_t pid;
	int status;

	_fixture(&f, &s);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit some = {1 << 20, 1 << 20}, now;
		struct arm_client *c;

		setrlimit(RLIMIT_CORE, &some);
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		c = _client(&f);
		getrlimit(RLIMIT_CORE, &now);
		_exit(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 && now.rlim_cur == 0
		              && now.rlim_max == 0 && c
		      ? 0
		      : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	              "still dumpable, or core dumps allowed");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("arm_client");
	TCase *tok = tcase_create("tokens");
	TCase *lro = tcase_create("lro");
	TCase *retry = tcase_create("retries");
	TCase *eng = tcase_create("engine");

	/* Python server start-up per test; valgrind makes it slower. */
	tcase_set_timeout(tok, 120);
	tcase_set_timeout(lro, 120);
	tcase_set_timeout(retry, 120);
	tcase_set_timeout(eng, 120);
	tcase_add_test(tok, imds_token_is_cached_privately_and_reused);
	tcase_add_test(tok, token_near_expiry_is_refreshed);
	tcase_add_test(tok, imds_updating_and_throttling_are_retried);
	tcase_add_test(tok, unreachable_imds_fails_after_a_few_tries_with_the_fix);
	tcase_add_test(tok,
	               service_principal_secret_goes_only_in_the_post_body);
	tcase_add_test(tok, nothing_secret_reaches_the_log);
	tcase_add_test(tok, readable_secret_file_is_refused);
	tcase_add_test(tok, aad_error_fails_the_call_with_its_description);
	tcase_add_test(tok, arm_401_gets_a_fresh_token_and_one_retry);
	tcase_add_test(lro, lro_polls_azure_asyncoperation_then_gets_the_vm);
	tcase_add_test(lro, lro_polls_a_long_location_honouring_retry_after);
	tcase_add_test(lro, post_lro_ends_with_a_get_on_location);
	tcase_add_test(lro, failed_lro_names_the_nested_cause);
	tcase_add_test(lro,
	               created_without_poll_headers_watches_provisioning_state);
	tcase_add_test(retry, throttled_429_waits_for_retry_after);
	tcase_add_test(retry, server_errors_are_retried);
	tcase_add_test(retry, client_errors_are_never_retried);
	tcase_add_test(retry, retries_stop_after_max_attempts);
	tcase_add_test(retry, dropped_connections_are_retried);
	tcase_add_test(eng, tls_verification_is_always_on);
	tcase_add_test(eng, the_ca_bundle_is_read_once_per_client);
	tcase_add_test(eng, new_connections_resume_a_tls_session);
	tcase_add_test(eng, concurrency_is_bounded_by_max_parallel_requests);
	tcase_add_test(eng, next_link_pages_are_merged);
	tcase_add_test(eng, next_link_pages_one_by_one);
	tcase_add_test(eng, token_never_follows_a_link_to_another_host);
	tcase_add_test(eng, run_deadline_fails_what_is_left);
	tcase_add_test(eng, network_and_sku_calls_carry_their_api_versions);
	tcase_add_test(eng, callbacks_chain_the_steps_of_a_node);
	tcase_add_test(eng, helpers_call_the_documented_operations);
	tcase_add_test(eng, paths_and_bad_requests);
	tcase_add_test(eng, a_process_with_an_arm_client_dumps_no_core);
	suite_add_tcase(s, tok);
	suite_add_tcase(s, lro);
	suite_add_tcase(s, retry);
	suite_add_tcase(s, eng);
	return tu_run(s);
}
