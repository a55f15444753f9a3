/*
 * pingpong_prolog.c - azrdma-pingpong as a Slurm Prolog (PrologFlags=Alloc):
 * before the job's script or any MPI step, each node of the job checks the
 * RDMA path to the next node of the job's node list, and a node whose pair
 * is broken drains itself with a reason naming the pair, then fails the
 * Prolog so that Slurm stops the job.  See azrdma-pingpong(1), PROLOG.
 *
 * slurmd runs a Prolog as root without arguments, with SLURM_JOB_ID,
 * SLURM_NODELIST, SLURMD_NODENAME, SLURM_CONF and
 * SLURM_SCRIPT_CONTEXT=prolog_slurmd; that context selects this mode.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "conf.h"
#include "healthcheck_checks.h"
#include "hostlist.h"
#include "peer_auth.h"
#include "pingpong_fabric.h"
#include "pingpong_prolog.h"
#include "sl_slurm.h"

#define PROLOG_REASON_PREFIX "azrdma-prolog: "
/* Beyond --deadline, for talking to slurmctld (NodeAddr, the drain). */
#define PROLOG_SLACK_S 60

struct prolog_opts {
	double deadline_s, connect_s;
	bool no_drain;
	const char *conf_path;
};

bool pp_prolog_wanted(int argc, char **argv)
{
	const char *ctx = getenv("SLURM_SCRIPT_CONTEXT");

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--prolog"))
			return true;
	return argc == 1 && ctx && !strcmp(ctx, "prolog_slurmd");
}

static int _parse(int argc, char **argv, struct prolog_opts *o)
{
	static const struct option longs[] = {
	        {"prolog", no_argument, NULL, 'P'},
	        {"deadline", required_argument, NULL, 'd'},
	        {"connect-timeout", required_argument, NULL, 'c'},
	        {"no-drain", no_argument, NULL, 'N'},
	        {"conf", required_argument, NULL, 'f'},
	        {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "d:c:Nf:", longs, NULL)) != -1) {
		char *end;
		double v;

		switch (c) {
		case 'P':
			break;
		case 'd':
		case 'c':
			v = strtod(optarg, &end);
			if (*end || end == optarg || !(v > 0.0 && v <= 600.0)) {
				fprintf(stderr,
				        "azrdma-pingpong: --%s %s: expected "
				        "seconds from 0 to 600\n",
				        c == 'd' ? "deadline" : "connect-timeout",
				        optarg);
				return 2;
			}
			*(c == 'd' ? &o->deadline_s : &o->connect_s) = v;
			break;
		case 'N':
			o->no_drain = true;
			break;
		case 'f':
			o->conf_path = optarg;
			break;
		default:
			fprintf(stderr, "azrdma-pingpong: --prolog takes only "
			                "--deadline, --connect-timeout, "
			                "--no-drain and --conf\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "azrdma-pingpong: unexpected argument '%s'\n",
		        argv[optind]);
		return 2;
	}
	return 0;
}

/*
 * Slurm waits for a Prolog forever by default (PrologEpilogTimeout), and
 * the job with it.  What can hang past the deadline is slurmctld, not the
 * fabric: give up and let the job run rather than have slurmd drain the
 * node for a failed Prolog.
 */
static void _on_alarm(int sig)
{
	static const char msg[] = "azrdma-pingpong: --prolog: no end "
	                          "within --deadline + 60 s (slurmctld not "
	                          "answering?); giving up, the job runs\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(0);
	_exit(0);
}

static const char *_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/*
 * Keep only the nodes with RDMA by the VM size of their Domain.  Without
 * azrdma.conf every node stays: the RDMA interface then decides.  *mine
 * is false when this node itself has no RDMA (nothing to check here).
 * True if azrdma.conf was read.
 */
static bool _rdma_nodes(const struct prolog_opts *o, const char *me,
                        char **nodes, size_t *count, bool *mine)
{
	char *path = o->conf_path ? strdup(o->conf_path) : conf_default_path();
	struct azrdma_conf *conf = NULL;
	char err[AZ_ERRLEN];
	size_t kept = 0;

	*mine = true;
	if (!path || conf_load(path, 0, &conf, NULL, err, sizeof(err)) != AZ_OK) {
		fprintf(stderr,
		        "azrdma-pingpong: %s; checking every node of the job\n",
		        path ? err : "out of memory");
		free(path);
		return false;
	}
	for (size_t i = 0; i < *count; i++) {
		const struct conf_domain *d = domain_for_node(conf, nodes[i]);
		bool rdma = d && d->size && d->size->rdma != RDMA_NONE;

		if (!strcmp(nodes[i], me))
			*mine = rdma;
		if (rdma)
			nodes[kept++] = nodes[i];
		else
			free(nodes[i]);
	}
	*count = kept;
	conf_free(conf);
	free(path);
	return true;
}

/* NodeAddr of a node as slurmctld knows it (cloud nodes register theirs). */
static enum az_rc _resolve(void *arg, const char *node, struct in_addr *out,
                           char *err, size_t errlen)
{
	struct sl_node sn;
	struct addrinfo hints = {.ai_family = AF_INET,
	                         .ai_socktype = SOCK_STREAM},
	                *ai = NULL;
	enum az_rc rc;
	int gai;

	(void)arg;
	rc = sl_node_load(node, &sn, err, errlen);
	if (rc != AZ_OK)
		return rc;
	if (inet_aton(sn.addr ? sn.addr : node, out)) {
		sl_node_free(&sn);
		return AZ_OK;
	}
	gai = getaddrinfo(sn.addr ? sn.addr : node, NULL, &hints, &ai);
	if (gai) {
		rc = az_err(AZ_ENOTFOUND, err, errlen,
		            "NodeAddr %s does not resolve: %s",
		            sn.addr ? sn.addr : node, gai_strerror(gai));
		sl_node_free(&sn);
		return rc;
	}
	*out = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
	freeaddrinfo(ai);
	sl_node_free(&sn);
	return AZ_OK;
}

/* Drain this node with reason, unless it is drained or down for another. */
static void _drain(const char *me, const char *reason)
{
	struct sl_node sn;
	char err[AZ_ERRLEN];
	bool other;

	if (sl_node_load(me, &sn, err, sizeof(err)) != AZ_OK) {
		fprintf(stderr, "azrdma-pingpong: cannot read %s: %s\n", me,
		        err);
		return;
	}
	other = ((sn.state & NODE_STATE_DRAIN)
	         || (sn.state & NODE_STATE_BASE) == NODE_STATE_DOWN)
	        && sn.reason
	        && strncmp(sn.reason, PROLOG_REASON_PREFIX,
	                   strlen(PROLOG_REASON_PREFIX));
	if (other)
		fprintf(stderr,
		        "azrdma-pingpong: %s is already drained or down (%s); "
		        "left alone\n",
		        me, sn.reason);
	else if (sl_node_set_state(me, NODE_STATE_DRAIN, reason, err,
	                           sizeof(err))
	         != AZ_OK)
		fprintf(stderr, "azrdma-pingpong: cannot drain %s: %s\n", me,
		        err);
	sl_node_free(&sn);
}

static int _fail(const struct prolog_opts *o, const char *me,
                 const char *reason)
{
	fprintf(stderr, "%s\n", reason); /* it names the program */
	if (!o->no_drain)
		_drain(me, reason);
	return 1;
}

/*
 * munge as slurmd's node uses it (AuthInfo's socket=), believing root
 * only: slurmd runs every node's Prolog as root, and no user can.
 */
static enum az_rc _auth_new(struct peer_auth **auth, char *err,
                            size_t errlen)
{
	char *info = NULL, socket[256];
	enum az_rc rc;

	rc = sl_auth_info(&info, err, errlen);
	if (rc == AZ_OK)
		rc = peer_auth_socket_from_authinfo(info, socket,
		                                    sizeof(socket), err,
		                                    errlen);
	if (rc == AZ_OK)
		rc = peer_auth_new(socket, 0, auth, err, errlen);
	free(info);
	return rc;
}

/* This node's part, once munge and the interfaces are known. */
static int _run_pair(const struct prolog_opts *o, struct pf_config *cfg,
                     bool has_rdma, bool conf_read)
{
	struct pf_result res;
	char err[AZ_ERRLEN], reason[600];

	if (!has_rdma && !conf_read) {
		/* A Prolog runs on every node of the cluster: without
		 * azrdma.conf, no RDMA interface at all is taken for a node
		 * without RDMA, not for a broken one.  The neighbours hear
		 * so and drain nobody. */
		printf("azrdma-pingpong: %s has no RDMA interface and "
		       "azrdma.conf cannot be read: taken for a node without "
		       "RDMA, not checked\n",
		       cfg->me);
		pf_run(cfg, &res, err, sizeof(err));
		return 0;
	}
	if (cfg->broken) {
		int rc;

		snprintf(reason, sizeof(reason),
		         PROLOG_REASON_PREFIX "%s <-> %s: %s has no RDMA "
		                              "interface up with a "
		                              "172.16.0.0/16 address",
		         cfg->me, cfg->next, cfg->me);
		rc = _fail(o, cfg->me, reason);
		/* Tell the neighbours, so that they fail the job without
		 * draining themselves for it. */
		pf_run(cfg, &res, err, sizeof(err));
		return rc;
	}

	if (pf_run(cfg, &res, err, sizeof(err)) != AZ_OK) {
		/* Not the fabric's fault: never drain a node for it. */
		fprintf(stderr, "azrdma-pingpong: job %u: cannot check the "
		                "RDMA path: %s\n",
		        cfg->job_id, err);
		return 0;
	}
	if (!res.ok && (res.other_job || res.unverified)) {
		/* Two jobs' checks met on one port of the next node (its own
		 * check says it cannot run), or what answered there proved
		 * nothing: nobody is to blame for the pair. */
		fprintf(stderr, "azrdma-pingpong: job %u: cannot check the "
		                "RDMA path to %s: %s\n",
		        cfg->job_id, cfg->next, res.detail);
		return 0;
	}
	if (!res.ok && res.peer_broken) {
		/* Its own Prolog decides on it (and stops the job if it is
		 * an RDMA node): nothing wrong was found with this node. */
		printf("azrdma-pingpong: %s <-> %s: %s; not draining %s\n",
		       cfg->me, cfg->next, res.detail, cfg->me);
		return 0;
	}
	if (!res.ok) {
		pf_reason(cfg, &res, reason, sizeof(reason));
		return _fail(o, cfg->me, reason);
	}
	printf("azrdma-pingpong: %s <-> %s: RDMA path ok (%u KiB echo "
	       "round trip %.0f us)\n",
	       cfg->me, cfg->next, PF_CHUNK_BYTES / 1024, res.rtt_us);
	return 0;
}

static int _check(const struct prolog_opts *o, const char *me,
                  unsigned job_id, char **nodes, size_t count,
                  bool conf_read)
{
	struct pf_config cfg = {.job_id = job_id,
	                        .me = me,
	                        .port = pf_port(job_id),
	                        .deadline_s = o->deadline_s,
	                        .connect_s = o->connect_s,
	                        .resolve = _resolve};
	struct hc_iface *ifaces = NULL;
	struct hc_ctx ctx = {0};
	const struct hc_iface *rdma;
	char err[AZ_ERRLEN];
	bool alone, has_rdma;
	int rc;

	if (pf_neighbours(nodes, count, me, &cfg.next, &cfg.prev, &alone, err,
	                  sizeof(err))
	    != AZ_OK) {
		fprintf(stderr, "azrdma-pingpong: %s\n", err);
		return 2;
	}
	if (alone) {
		printf("azrdma-pingpong: %s has no RDMA neighbour in job %u\n",
		       me, job_id);
		return 0;
	}
	if (hc_ifaces_read(&ifaces, &ctx.iface_count, err, sizeof(err))
	    != AZ_OK) {
		fprintf(stderr, "azrdma-pingpong: %s\n", err);
		return 2;
	}
	ctx.ifaces = ifaces;
	rdma = hc_rdma_iface(&ctx);
	has_rdma = rdma != NULL;
	cfg.broken = !rdma || !rdma->up;
	if (!cfg.broken)
		cfg.rdma = rdma->addr;
	cfg.listen.s_addr = htonl(INADDR_ANY);
	free(ifaces);
	if (_auth_new(&cfg.auth, err, sizeof(err)) != AZ_OK) {
		fprintf(stderr, "azrdma-pingpong: job %u: cannot check the "
		                "RDMA path: %s\n",
		        job_id, err);
		/* Not the fabric's fault: never drain a node for it.  A
		 * node without its RDMA interface fails all the same; only
		 * its neighbours cannot hear so. */
		if (!cfg.broken)
			return 0;
	}
	rc = _run_pair(o, &cfg, has_rdma, conf_read);
	peer_auth_free(cfg.auth);
	return rc;
}


int pp_prolog_main(int argc, char **argv)
{
	struct prolog_opts o = {.deadline_s = 30.0, .connect_s = 5.0};
	const char *me = _env("SLURMD_NODENAME"), *job = _env("SLURM_JOB_ID");
	const char *list = _env("SLURM_NODELIST");
	char **nodes = NULL, err[AZ_ERRLEN], *end;
	size_t count = 0;
	unsigned long job_id;
	bool mine, conf_read;
	int rc;

	if ((rc = _parse(argc, argv, &o)))
		return rc;
	signal(SIGALRM, _on_alarm);
	alarm((unsigned)o.deadline_s + PROLOG_SLACK_S);
	if (!list)
		list = _env("SLURM_JOB_NODELIST");
	if (!me || !job || !list) {
		fprintf(stderr, "azrdma-pingpong: --prolog needs SLURMD_NODENAME, "
		                "SLURM_JOB_ID and SLURM_NODELIST, as slurmd "
		                "sets them for a Prolog\n");
		return 2;
	}
	job_id = strtoul(job, &end, 10);
	if (*end || job_id == 0 || job_id > 0xffffffffUL) {
		fprintf(stderr, "azrdma-pingpong: SLURM_JOB_ID=%s is not a job "
		                "id\n",
		        job);
		return 2;
	}
	if (hostlist_expand(list, &nodes, &count, err, sizeof(err)) != AZ_OK) {
		fprintf(stderr, "azrdma-pingpong: SLURM_NODELIST=%s: %s\n", list,
		        err);
		return 2;
	}
	conf_read = _rdma_nodes(&o, me, nodes, &count, &mine);
	sl_init();
	if (!mine)
		printf("azrdma-pingpong: %s has no RDMA by its VM size; "
		       "nothing to check\n",
		       me);
	else
		rc = _check(&o, me, (unsigned)job_id, nodes, count,
		            conf_read);
	sl_fini();
	hostnames_free(nodes, count);
	return rc;
}
