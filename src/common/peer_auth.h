/*
 * peer_auth.h - who is at the other end of a connection between two
 * nodes, proven with munge, which every Slurm node runs.
 *
 * A sender signs the exact words of a message (who it is, whom it talks
 * to, the job, what it says); the receiver believes the message only when
 * its local munged decodes a credential of the trusted uid (root: slurmd
 * runs Prologs as root) whose payload is word for word what it expected.
 * munged refuses a credential it has decoded before, so a message seen on
 * the wire cannot be played again to the same node.
 */
#ifndef AZRDMA_PEER_AUTH_H
#define AZRDMA_PEER_AUTH_H

#include <stddef.h>
#include <sys/types.h>

#include "az_rc.h"

struct peer_auth;

/*
 * A signer and checker talking to munged at socket (NULL or "": munge's
 * default), believing credentials of trusted_uid only.  Caller frees with
 * peer_auth_free().  Safe to use from two threads.
 */
enum az_rc peer_auth_new(const char *socket, uid_t trusted_uid,
                         struct peer_auth **out, char *err, size_t errlen);
void peer_auth_free(struct peer_auth *auth);

/*
 * The munge socket named by a Slurm AuthInfo value ("socket=/run/x,
 * cred_expire=20") into out; "" when AuthInfo names none (munge's
 * default).  AZ_EINVAL when the path does not fit.
 */
enum az_rc peer_auth_socket_from_authinfo(const char *authinfo, char *out,
                                          size_t len, char *err,
                                          size_t errlen);

/*
 * A credential for payload, as one word of base64 text (no spaces);
 * caller frees.  AZ_EIO with munged's words when it cannot be made.
 */
enum az_rc peer_auth_sign(struct peer_auth *auth, const char *payload,
                          char **cred, char *err, size_t errlen);

/*
 * AZ_OK when cred was made by the trusted uid for exactly payload and
 * munged had not seen it before; AZ_EPERM (forged, replayed, expired,
 * another uid, other words) or AZ_EIO (munged not answering) with why.
 */
enum az_rc peer_auth_check(struct peer_auth *auth, const char *cred,
                           const char *payload, char *err, size_t errlen);

#endif
