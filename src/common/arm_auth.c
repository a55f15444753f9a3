/*
 * arm_auth.c - bearer tokens for ARM: from IMDS (managed identity) or from
 * AAD with client credentials (service principal), cached per identity in
 * <StateDir>/token-<hash>.json so that the short-lived power-save programs
 * do not ask for a new token on every run.
 *
 * Tokens and the client secret never reach logs, argv or a file anyone but
 * the owner can read; their bytes are zeroed before they are freed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "arm_internal.h"
#include "buf.h"
#include "fsutil.h"
#include "log.h"

#define _MAX_SECRET_SIZE 16384
#define _MAX_CACHE_SIZE 65536

void arm_free_secret(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* FNV-1a: a stable file name per identity, not a security measure. */
static uint64_t _fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

enum az_rc arm_auth_init(struct arm_client *c, const struct azrdma_conf *conf,
                         char *err, size_t errlen)
{
	struct az_buf b = {0};
	enum az_rc rc;

	if (c->auth == AUTH_SERVICE_PRINCIPAL)
		rc = buf_printf(&b, "ServicePrincipal|%s|%s|%s|%s",
		                c->authority_host, c->tenant_id, c->client_id,
		                c->audience);
	else
		rc = buf_printf(
		        &b, "ManagedIdentity|%s|%s|%s", c->imds_endpoint,
		        c->client_id ? c->client_id : "system", c->audience);
	if (rc != AZ_OK)
		goto nomem;
	c->identity = buf_steal(&b);
	if (!conf->state_dir)
		return AZ_OK;
	if (buf_printf(&b, "%s/token-%016" PRIx64 ".json", conf->state_dir,
	               _fnv1a(c->identity))
	    != AZ_OK)
		goto nomem;
	c->cache_path = buf_steal(&b);
	return AZ_OK;
nomem:
	buf_free(&b);
	return az_err(AZ_ENOMEM, err, errlen, "out of memory");
}

void arm_auth_free(struct arm_client *c)
{
	arm_token_free(&c->token);
	free(c->identity);
	free(c->cache_path);
	c->identity = c->cache_path = NULL;
}

/*
 * Good for more than the margin.  A token just issued with a lifetime
 * shorter than twice the margin is used for half its life, or it would be
 * fetched again and again.
 */
static bool _fresh(const struct arm_client *c, time_t now)
{
	time_t margin = (time_t)c->tuning.token_margin_s;

	if (!c->token.access_token)
		return false;
	if (c->token_obtained
	    && (c->token.expires_on - c->token_obtained) / 2 < margin)
		margin = (c->token.expires_on - c->token_obtained) / 2;
	return c->token.expires_on - now > margin;
}

/*
 * The cache file, if it is private, for this identity and still fresh.
 * Anything else is ignored: a token is cheap to get again.
 */
static void _load_cache(struct arm_client *c, time_t now)
{
	char *text = NULL, err[AZ_ERRLEN];
	struct arm_token tok = {0};
	json_object *obj = NULL;
	const char *id;
	size_t len;

	if (!c->cache_path || access(c->cache_path, F_OK) < 0)
		return;
	if (fs_check_secret(c->cache_path, "token cache", err, sizeof(err))
	    != AZ_OK) {
		log_warn("arm: ignoring the token cache: %s", err);
		return;
	}
	if (fs_read_file(c->cache_path, _MAX_CACHE_SIZE, &text, &len, err,
	                 sizeof(err))
	    != AZ_OK)
		return;
	obj = arm_json_parse(text, len);
	id = arm_json_str_path(obj, "identity", NULL);
	if (!id || strcmp(id, c->identity))
		goto out;
	if (arm_parse_token(text, len, now, &tok, NULL, 0) != AZ_OK)
		goto out;
	arm_token_free(&c->token);
	c->token = tok;
	c->token_obtained = 0;
	c->token_gen++;
	log_debug("arm: token from cache %s, valid for %lds", c->cache_path,
	          (long)(tok.expires_on - now));
out:
	json_object_put(obj);
	arm_free_secret(text);
}

bool arm_auth_usable(struct arm_client *c)
{
	time_t now = time(NULL);

	if (_fresh(c, now))
		return true;
	if (!c->cache_tried) {
		c->cache_tried = true;
		_load_cache(c, now);
	}
	return _fresh(c, now);
}

/* Append s percent-encoded (RFC 3986 unreserved characters pass). */
static enum az_rc _put_escaped(struct az_buf *b, const char *s)
{
	char *e = arm_url_escape(s);
	enum az_rc rc;

	if (!e)
		return AZ_ENOMEM;
	rc = buf_puts(b, e);
	arm_free_secret(e);
	return rc;
}

/* The client secret: first line of ClientSecretFile, which must be
 * private. */
static enum az_rc _read_secret(struct arm_client *c, char **secret, char *err,
                               size_t errlen)
{
	enum az_rc rc;
	size_t len;
	char *s;

	rc = fs_check_secret(c->client_secret_file, "ClientSecretFile", err,
	                     errlen);
	if (rc != AZ_OK)
		return rc;
	rc = fs_read_file(c->client_secret_file, _MAX_SECRET_SIZE, &s, &len,
	                  err, errlen);
	if (rc != AZ_OK)
		return rc;
	len = strcspn(s, "\r\n");
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	s[len] = '\0';
	if (!len) {
		arm_free_secret(s);
		return az_err(AZ_ECONFIG, err, errlen,
		              "ClientSecretFile %s is empty",
		              c->client_secret_file);
	}
	*secret = s;
	return AZ_OK;
}

/* <imds>/metadata/identity/oauth2/token?api-version=..&resource=<aud>/ */
static enum az_rc _imds_url(struct arm_client *c, struct az_buf *u)
{
	struct az_buf resource = {0};
	enum az_rc rc;

	rc = buf_printf(&resource, "%s/", c->audience);
	if (rc == AZ_OK)
		rc = buf_printf(u,
		                "%s/metadata/identity/oauth2/token"
		                "?api-version=" ARM_IMDS_API_VERSION
		                "&resource=",
		                c->imds_endpoint);
	if (rc == AZ_OK)
		rc = _put_escaped(u, resource.data);
	/* A user-assigned identity is named by its client id. */
	if (rc == AZ_OK && c->client_id) {
		rc = buf_puts(u, "&client_id=");
		if (rc == AZ_OK)
			rc = _put_escaped(u, c->client_id);
	}
	buf_free(&resource);
	return rc;
}

/* <authority>/<tenant>/oauth2/v2.0/token and its client-credentials form,
 * which holds the secret. */
static enum az_rc _aad_request(struct arm_client *c, const char *secret,
                               struct az_buf *u, struct az_buf *f)
{
	struct az_buf scope = {0};
	enum az_rc rc = AZ_ENOMEM;

	if (buf_printf(u, "%s/", c->authority_host) != AZ_OK
	    || _put_escaped(u, c->tenant_id) != AZ_OK
	    || buf_puts(u, "/oauth2/v2.0/token") != AZ_OK
	    || buf_printf(&scope, "%s/.default", c->audience) != AZ_OK
	    || buf_puts(f, "grant_type=client_credentials&client_id=") != AZ_OK
	    || _put_escaped(f, c->client_id) != AZ_OK
	    || buf_puts(f, "&client_secret=") != AZ_OK
	    || _put_escaped(f, secret) != AZ_OK
	    || buf_puts(f, "&scope=") != AZ_OK
	    || _put_escaped(f, scope.data) != AZ_OK)
		goto out;
	rc = AZ_OK;
out:
	buf_free(&scope);
	return rc;
}

enum az_rc arm_auth_request(struct arm_client *c, char **url, char **body,
                            enum arm_peer *peer, char *err, size_t errlen)
{
	struct az_buf u = {0}, f = {.wipe = true};
	char *secret = NULL;
	enum az_rc rc;

	*url = *body = NULL;
	if (c->auth == AUTH_MANAGED_IDENTITY) {
		*peer = ARM_PEER_IMDS;
		rc = _imds_url(c, &u);
	} else {
		*peer = ARM_PEER_AAD;
		rc = _read_secret(c, &secret, err, errlen);
		if (rc != AZ_OK)
			goto out;
		rc = _aad_request(c, secret, &u, &f);
	}
	if (rc != AZ_OK) {
		rc = az_err(AZ_ENOMEM, err, errlen, "out of memory");
		goto out;
	}
	*url = buf_steal(&u);
	if (f.data)
		*body = buf_steal(&f);
out:
	arm_free_secret(secret);
	buf_free(&u);
	buf_free(&f);
	return rc;
}

/* Bearer tokens are JWTs: base64url and dots.  Anything else is not
 * written into the JSON cache by hand. */
static bool _token_chars_ok(const char *t)
{
	return t[strspn(t,
	                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                "0123456789-_.~+/=")]
	       == '\0';
}

static void _save_cache(struct arm_client *c)
{
	struct az_buf b = {0};
	char err[AZ_ERRLEN];
	json_object *id;

	if (!c->cache_path || c->tuning.cache_read_only
	    || !_token_chars_ok(c->token.access_token))
		return;
	id = json_object_new_string(c->identity);
	if (!id)
		return;
	if (buf_printf(
	            &b,
	            "{\"identity\": %s, \"expires_on\": %lld, "
	            "\"access_token\": \"%s\"}\n",
	            json_object_to_json_string_ext(id, JSON_C_TO_STRING_PLAIN),
	            (long long)c->token.expires_on, c->token.access_token)
	    != AZ_OK)
		goto out;
	/* The state directory is azrdma's own; nobody else reads it. */
	if (fs_mkdir_p(c->state_dir, 0700, err, sizeof(err)) != AZ_OK
	    || fs_write_atomic(c->cache_path, b.data, b.len, 0600, err,
	                       sizeof(err))
	               != AZ_OK)
		log_warn("arm: cannot cache the token: %s", err);
out:
	json_object_put(id);
	if (b.data)
		explicit_bzero(b.data, b.len);
	buf_free(&b);
}

enum az_rc arm_auth_accept(struct arm_client *c, const char *text, size_t len,
                           char *err, size_t errlen)
{
	time_t now = time(NULL);
	struct arm_token tok;
	enum az_rc rc;

	rc = arm_parse_token(text, len, now, &tok, err, errlen);
	if (rc != AZ_OK)
		return rc;
	arm_token_free(&c->token);
	c->token = tok;
	c->token_obtained = now;
	c->token_gen++;
	c->cache_tried = true;
	log_debug("arm: new token for %s, valid for %lds",
	          c->auth == AUTH_SERVICE_PRINCIPAL ? "the service principal"
	                                            : "the managed identity",
	          (long)(tok.expires_on - now));
	_save_cache(c);
	return AZ_OK;
}

void arm_auth_drop(struct arm_client *c, unsigned gen)
{
	if (gen != c->token_gen || !c->token.access_token)
		return;
	arm_token_free(&c->token);
	/* Never read that file again: ARM has just rejected what it holds. */
	c->cache_tried = true;
	if (c->cache_path && !c->tuning.cache_read_only
	    && unlink(c->cache_path) < 0 && errno != ENOENT)
		log_warn("arm: cannot remove the token cache %s: %s",
		         c->cache_path, strerror(errno));
}
