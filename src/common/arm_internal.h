/*
 * arm_internal.h - what the ARM client's own files share: the client
 * structure and the token functions of arm_auth.c.  Not for callers.
 */
#ifndef AZRDMA_ARM_INTERNAL_H
#define AZRDMA_ARM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "arm.h"
#include "arm_json.h"
#include "arm_throttle.h"
#include "conf.h"

struct arm_op;

struct arm_client {
	/* from azrdma.conf, copied */
	char *arm_endpoint; /* no trailing slash */
	char *authority_host;
	char *imds_endpoint;
	char *audience; /* no trailing slash */
	enum conf_auth auth;
	char *tenant_id;
	char *client_id;
	char *client_secret_file;
	/* The CA file every transfer trusts: CaBundle, else curl's built-in
	 * bundle; NULL leaves curl's defaults alone. */
	char *ca_bundle;
	char *state_dir;
	char *compute_api;
	char *network_api;
	char *subscription;
	char *resource_group;
	char *location;
	unsigned max_parallel;
	struct arm_tuning tuning;
	uint64_t rng; /* state of the default random source */
	char *user_agent;

	/* the engine */
	CURLM *multi;
	/* TLS sessions, shared so that a new connection resumes one. */
	CURLSH *share;
	CURL **idle; /* reset easy handles ready for reuse */
	size_t idle_count;
	size_t idle_cap;
	struct arm_op *head; /* every op, in submission order */
	struct arm_op *tail;
	size_t active;  /* transfers on the multi handle */
	size_t pending; /* calls not yet completed */
	bool running;   /* inside arm_client_run / arm_call_sync */
	bool aborting;  /* failing everything at the deadline */
	arm_round_fn round_fn; /* arm_client_on_round() */
	void *round_arg;
	struct arm_governor gov;

	/* the token (arm_auth.c) */
	struct arm_token token;
	time_t token_obtained;     /* when the endpoint issued it; 0: cache */
	unsigned token_gen;        /* bumped for every new token */
	bool cache_tried;          /* the cache file was read (or dropped) */
	char *identity;            /* who the token is for, never secret */
	char *cache_path;          /* <StateDir>/token-<hash>.json, or NULL */
	struct arm_op *token_op;   /* the token request under way, or NULL */
	char token_err[AZ_ERRLEN]; /* why the last token request failed */
};

/* Set up identity and cache path from conf (arm_client_new). */
enum az_rc arm_auth_init(struct arm_client *c, const struct azrdma_conf *conf,
                         char *err, size_t errlen);
void arm_auth_free(struct arm_client *c);

/*
 * Whether a token good for at least TokenMargin more seconds is at hand;
 * reads the cache file the first time it is asked.
 */
bool arm_auth_usable(struct arm_client *c);

/*
 * The token request: *url (caller frees) and, for a service principal,
 * the form *body with the client secret (caller zeroes and frees it);
 * *peer says whether IMDS or AAD answers.
 */
enum az_rc arm_auth_request(struct arm_client *c, char **url, char **body,
                            enum arm_peer *peer, char *err, size_t errlen);

/* Take the token response text: keep the token and cache it. */
enum az_rc arm_auth_accept(struct arm_client *c, const char *text, size_t len,
                           char *err, size_t errlen);

/*
 * ARM rejected token generation gen: forget it and its cache file, unless
 * a newer token has already replaced it.
 */
void arm_auth_drop(struct arm_client *c, unsigned gen);

/* Zero s (the secret bytes) and free it. */
void arm_free_secret(char *s);

#endif
