/*
 * peer_auth.c - messages between nodes signed and checked with munge.
 * See peer_auth.h.
 */
#include <munge.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "peer_auth.h"

struct peer_auth {
	pthread_mutex_t lock; /* a munge context is not for two threads */
	munge_ctx_t ctx;
	uid_t trusted_uid;
};

enum az_rc peer_auth_new(const char *socket, uid_t trusted_uid,
                         struct peer_auth **out, char *err, size_t errlen)
{
	struct peer_auth *auth = calloc(1, sizeof(*auth));

	*out = NULL;
	if (!auth || !(auth->ctx = munge_ctx_create())) {
		free(auth);
		return az_err(AZ_ENOMEM, err, errlen, "out of memory");
	}
	if (socket && *socket
	    && munge_ctx_set(auth->ctx, MUNGE_OPT_SOCKET, socket)
	               != EMUNGE_SUCCESS) {
		az_err(AZ_EINVAL, err, errlen, "munge socket %s: %s", socket,
		       munge_ctx_strerror(auth->ctx));
		munge_ctx_destroy(auth->ctx);
		free(auth);
		return AZ_EINVAL;
	}
	pthread_mutex_init(&auth->lock, NULL);
	auth->trusted_uid = trusted_uid;
	*out = auth;
	return AZ_OK;
}

void peer_auth_free(struct peer_auth *auth)
{
	if (!auth)
		return;
	munge_ctx_destroy(auth->ctx);
	pthread_mutex_destroy(&auth->lock);
	free(auth);
}

enum az_rc peer_auth_socket_from_authinfo(const char *authinfo, char *out,
                                          size_t len, char *err,
                                          size_t errlen)
{
	const char *p = authinfo;

	if (len)
		out[0] = '\0';
	/* Comma-separated key=value words; only socket= names a path. */
	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n > 7 && !strncmp(p, "socket=", 7)) {
			if (n - 7 >= len)
				return az_err(AZ_EINVAL, err, errlen,
				              "AuthInfo socket= path is longer "
				              "than %zu bytes",
				              len - 1);
			memcpy(out, p + 7, n - 7);
			out[n - 7] = '\0';
		}
		p = end ? end + 1 : NULL;
	}
	return AZ_OK;
}

enum az_rc peer_auth_sign(struct peer_auth *auth, const char *payload,
                          char **cred, char *err, size_t errlen)
{
	munge_err_t e;
	enum az_rc rc = AZ_OK;

	*cred = NULL;
	pthread_mutex_lock(&auth->lock);
	e = munge_encode(cred, auth->ctx, payload, (int)strlen(payload));
	if (e != EMUNGE_SUCCESS) {
		rc = az_err(AZ_EIO, err, errlen, "munge cannot sign: %s",
		            munge_ctx_strerror(auth->ctx));
		free(*cred);
		*cred = NULL;
	}
	pthread_mutex_unlock(&auth->lock);
	return rc;
}

enum az_rc peer_auth_check(struct peer_auth *auth, const char *cred,
                           const char *payload, char *err, size_t errlen)
{
	void *got = NULL;
	int got_len = 0;
	uid_t uid = (uid_t)-1;
	gid_t gid;
	munge_err_t e;
	enum az_rc rc = AZ_OK;

	pthread_mutex_lock(&auth->lock);
	e = munge_decode(cred, auth->ctx, &got, &got_len, &uid, &gid);
	if (e == EMUNGE_SOCKET || e == EMUNGE_NO_MEMORY || e == EMUNGE_SNAFU)
		rc = az_err(AZ_EIO, err, errlen, "munge cannot check: %s",
		            munge_ctx_strerror(auth->ctx));
	else if (e != EMUNGE_SUCCESS)
		rc = az_err(AZ_EPERM, err, errlen, "credential refused: %s",
		            munge_strerror(e));
	else if (uid != auth->trusted_uid)
		rc = az_err(AZ_EPERM, err, errlen,
		            "credential of uid %u, not of uid %u",
		            (unsigned)uid, (unsigned)auth->trusted_uid);
	else if ((size_t)got_len != strlen(payload)
	         || memcmp(got, payload, (size_t)got_len))
		rc = az_err(AZ_EPERM, err, errlen,
		            "credential made for another message");
	pthread_mutex_unlock(&auth->lock);
	free(got);
	return rc;
}
