/*
 * pingpong_fabric.h - the RDMA path between a node and its neighbour in a
 * job's node list, checked without MPI (azrdma-pingpong --prolog).
 *
 * A Prolog runs before any MPI step exists, so the check brings its own
 * tiny protocol over TCP.  Every node of the job listens on one port (the
 * same on all nodes, from the job id) and checks the pair it forms with the
 * next node of the list (the last with the first):
 *
 *   1. over the management network it asks the neighbour for its RDMA
 *      address ("AZPP2 <job> HELLO <me> <next> <cred>" -> "AZPP2 <job>
 *      ADDR <ip> <token> <next> <me> <cred>");
 *   2. from its own RDMA address it connects to that one and echoes a few
 *      chunks ("AZPP2 <job> ECHO <bytes> <count> <token>"), checking every
 *      byte;
 *   3. it says "AZPP2 <job> DONE" on the management connection.
 *
 * Any process of any node can connect to the port, so nothing a peer says
 * is believed on its word: HELLO and every answer carry a munge credential
 * (peer_auth.h) of root over the exact words, both node names included; the
 * echo needs the one-time token of the ADDR answer; each connection has a
 * deadline and a bound on what it can make the listener do; the listener
 * never waits on one connection.  Reasons are built from our own words and
 * the names of azrdma.conf, never from what a peer sent.  The port is a
 * privileged one, so no user process can hold it before the check.
 *
 * A node without an RDMA interface up (it drains itself, or is taken for
 * a node without RDMA) still takes part on the management network: it
 * answers HELLO with "AZPP2 <job> BROKEN <node> <asker> <cred>", so that the node before
 * it does not drain itself for a path it cannot tell from a silent
 * neighbour, and it says HELLO and DONE to the node after it, which then
 * need not wait out its deadline.
 *
 * Each node keeps answering until the node before it has said DONE (or
 * hung up), or the deadline passes.  A pair is broken when the neighbour's
 * RDMA address cannot be reached or the echo fails; that is the fabric
 * problem MPI would meet, named before the job's script runs.
 */
#ifndef AZRDMA_PINGPONG_FABRIC_H
#define AZRDMA_PINGPONG_FABRIC_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include "az_rc.h"

/*
 * The listen port is base + job id % span: a privileged port, which only
 * root (the Prolog) can listen on, below the ports the kernel's NFS client
 * and bindresvport() take for their own connections (600-1023).
 */
#define PF_PORT_BASE 300
#define PF_PORT_SPAN 250
#define PF_CHUNK_BYTES 65536 /* echoed chunk */
#define PF_CHUNK_COUNT 16

struct peer_auth;

/* Where a node is reached over the management network (NodeAddr). */
typedef enum az_rc (*pf_resolve_fn)(void *arg, const char *node,
                                    struct in_addr *out, char *err,
                                    size_t errlen);

struct pf_config {
	unsigned job_id;
	const char *me;          /* this node's name */
	const char *next;        /* the node this one checks */
	const char *prev;        /* the node that checks this one */
	struct in_addr listen;   /* INADDR_ANY on a node; tests pick one */
	struct in_addr rdma;     /* this node's RDMA address */
	unsigned short port;     /* the same on every node of the job */
	double deadline_s;       /* the whole check, from start */
	double connect_s;        /* one connect over the RDMA network */
	bool broken;             /* no RDMA interface up: answer BROKEN,
	                            check nothing (rdma unused) */
	struct peer_auth *auth;  /* signs and checks what nodes say */
	pf_resolve_fn resolve;   /* management address of a node */
	void *resolve_arg;
};

struct pf_result {
	bool ok;
	bool peer_broken;  /* not ok because next said BROKEN */
	bool other_job;    /* not checked: next's port is held by the check
	                      of another job (ids the same modulo the span) */
	bool unverified;   /* not checked: what answered on next's port
	                      could not prove it is job's check there */
	double rtt_us;     /* one echo round trip of a chunk, when ok */
	char detail[512];  /* why the pair is broken */
};

/* The listen port of a job: the same on every node. */
unsigned short pf_port(unsigned job_id);

/*
 * This node's neighbours in the job's node list: next (checked by this
 * node) and prev (checks this node).  AZ_ENOTFOUND if me is not in the
 * list; *alone when the list has only this node (nothing to check).
 */
enum az_rc pf_neighbours(char *const *nodes, size_t count, const char *me,
                         const char **next, const char **prev, bool *alone,
                         char *err, size_t errlen);

/*
 * Run this node's part: answer the neighbours and check the pair with
 * cfg->next.  AZ_OK with res filled (ok or broken); another code when the
 * check itself could not run (the port is taken, ...), with err.
 */
enum az_rc pf_run(const struct pf_config *cfg, struct pf_result *res,
                  char *err, size_t errlen);

/*
 * The drain reason of a broken pair: "azrdma-prolog: a <-> b: detail",
 * cut to fit len.
 */
void pf_reason(const struct pf_config *cfg, const struct pf_result *res,
               char *out, size_t len);

#endif
