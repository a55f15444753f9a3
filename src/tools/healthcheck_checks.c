/*
 * healthcheck_checks.c - the checks of azrdma-healthcheck and the drain
 * rule (NHC's: a prefix marks our own reasons; anything else is an
 * administrator's and is left alone).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <slurm/slurm.h>

#ifdef HAVE_IBVERBS
#include <infiniband/verbs.h>
#endif

#include "healthcheck_checks.h"

#define ND_DEVICE "/dev/hvnd_rdma"
#define ND_MODULE "/sys/module/hv_network_direct"
#define IB_CLASS "/sys/class/infiniband"
#define VERBS_CLASS "/sys/class/infiniband_verbs"
#define DAPL_PROVIDER "ofa-v2-ib0"
#define RDMA_NET 0xac100000u /* 172.16.0.0/16 */
#define RDMA_MASK 0xffff0000u
#define PKEY_DEFAULT 0x7fffu /* the default partition, not a tenant's */

/* ---- files under the root ------------------------------------------------ */

static void _path(const struct hc_ctx *ctx, char *buf, size_t len,
                  const char *rel)
{
	const char *root = ctx->root && *ctx->root ? ctx->root : "/";
	size_t rl = strlen(root);

	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	if (rl == 1 && root[0] == '/')
		rl = 0;
	snprintf(buf, len, "%.*s%s", (int)rl, root, rel);
}

static bool _exists(const struct hc_ctx *ctx, const char *rel, bool dir)
{
	char p[4096];
	struct stat st;

	_path(ctx, p, sizeof(p), rel);
	if (stat(p, &st) != 0)
		return false;
	return dir ? S_ISDIR(st.st_mode) : !S_ISDIR(st.st_mode);
}

/* First line of a sysfs file under the root, without its newline. */
static bool _read_line(const struct hc_ctx *ctx, const char *rel, char *buf,
                       size_t len)
{
	char p[4096];
	FILE *f;
	bool ok;

	_path(ctx, p, sizeof(p), rel);
	if (!(f = fopen(p, "r")))
		return false;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = '\0';
	return ok;
}

/* Sorted names in a directory under the root (no dot entries). */
static int _list(const struct hc_ctx *ctx, const char *rel,
                 struct dirent ***out)
{
	char p[4096];

	_path(ctx, p, sizeof(p), rel);
	return scandir(p, out, NULL, alphasort);
}

static bool _dot(const char *name)
{
	return name[0] == '.';
}

static void _list_free(struct dirent **list, int n)
{
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* ---- Network Direct (A8/A9, H16r) ---------------------------------------- */

enum hc_result hc_nd_device(const struct hc_ctx *ctx, char *d, size_t len)
{
	if (_exists(ctx, ND_DEVICE, false))
		return HC_PASS;
	snprintf(d, len, "%s is missing (Network Direct device)", ND_DEVICE);
	return HC_FAIL;
}

enum hc_result hc_nd_driver(const struct hc_ctx *ctx, char *d, size_t len)
{
	if (_exists(ctx, ND_MODULE, true))
		return HC_PASS;
	snprintf(d, len,
	         "driver hv_network_direct is not loaded (no %s); is "
	         "OS.EnableRDMA=y in waagent.conf?",
	         ND_MODULE);
	return HC_FAIL;
}

const struct hc_iface *hc_rdma_iface(const struct hc_ctx *ctx)
{
	for (size_t i = 0; i < ctx->iface_count; i++)
		if ((ntohl(ctx->ifaces[i].addr.s_addr) & RDMA_MASK) == RDMA_NET)
			return &ctx->ifaces[i];
	return NULL;
}

/*
 * The ofa-v2-ib0 line of a dat.conf: its device field ("ib0 0" or, as the
 * Azure agent writes it, "<rdma address> 0") goes to dev.
 */
static bool _dat_entry(FILE *f, char *dev, size_t len)
{
	char line[1024];

	while (fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t"), *q;

		if (strncmp(p, DAPL_PROVIDER, strlen(DAPL_PROVIDER))
		    || !strchr(" \t", p[strlen(DAPL_PROVIDER)]))
			continue;
		dev[0] = '\0';
		if ((q = strchr(p, '"')) && strchr(q + 1, '"')) {
			size_t n = (size_t)(strchr(q + 1, '"') - q - 1);

			snprintf(dev, len, "%.*s", (int)n, q + 1);
		}
		return true;
	}
	return false;
}

enum hc_result hc_dat_conf(const struct hc_ctx *ctx, char *d, size_t len)
{
	static const char *const files[] = {"/etc/dat.conf",
	                                    "/etc/rdma/dat.conf", NULL};
	const struct hc_iface *rdma = hc_rdma_iface(ctx);
	bool seen = false;

	for (size_t i = 0; files[i]; i++) {
		char p[4096], dev[256], addr[64];
		struct in_addr in;
		FILE *f;
		bool found;

		_path(ctx, p, sizeof(p), files[i]);
		if (!(f = fopen(p, "r")))
			continue;
		seen = true;
		found = _dat_entry(f, dev, sizeof(dev));
		fclose(f);
		if (!found)
			continue;
		/* An address that is not the interface's is stale. */
		dev[strcspn(dev, " \t")] = '\0';
		if (rdma && inet_pton(AF_INET, dev, &in) == 1
		    && in.s_addr != rdma->addr.s_addr) {
			inet_ntop(AF_INET, &rdma->addr, addr, sizeof(addr));
			snprintf(d, len, "%s: %s names %s, but %s has %s",
			         files[i], DAPL_PROVIDER, dev, rdma->name,
			         addr);
			return HC_FAIL;
		}
		return HC_PASS;
	}
	if (seen)
		snprintf(d, len,
		         "no %s entry in /etc/dat.conf or "
		         "/etc/rdma/dat.conf (DAPL provider)",
		         DAPL_PROVIDER);
	else
		snprintf(d, len,
		         "no /etc/dat.conf (DAPL provider %s); "
		         "install the dapl package",
		         DAPL_PROVIDER);
	return HC_FAIL;
}

/* ---- InfiniBand SR-IOV (HB, HC, HX) -------------------------------------- */

/* Whether some /sys/class/infiniband_verbs/uverbsN/ibdev names dev. */
static bool _has_verbs(const struct hc_ctx *ctx, const char *dev)
{
	struct dirent **list = NULL;
	int n = _list(ctx, VERBS_CLASS, &list);
	bool found = false;

	for (int i = 0; i < n && !found; i++) {
		char rel[256], line[128];

		if (_dot(list[i]->d_name))
			continue;
		snprintf(rel, sizeof(rel), "%s/%.63s/ibdev", VERBS_CLASS,
		         list[i]->d_name);
		found = _read_line(ctx, rel, line, sizeof(line))
		        && !strcmp(line, dev);
	}
	if (n > 0)
		_list_free(list, n);
	return found;
}

enum hc_result hc_ib_device(const struct hc_ctx *ctx, char *d, size_t len)
{
	struct dirent **list = NULL;
	int n = _list(ctx, IB_CLASS, &list);
	char first[64] = "";
	bool verbs = false;

	for (int i = 0; i < n && !verbs; i++) {
		char rel[256], layer[32];

		if (_dot(list[i]->d_name))
			continue;
		/* The accelerated networking NIC is Ethernet: not the fabric.
		 */
		snprintf(rel, sizeof(rel), "%s/%.63s/ports/1/link_layer",
		         IB_CLASS, list[i]->d_name);
		if (_read_line(ctx, rel, layer, sizeof(layer))
		    && !strcmp(layer, "Ethernet"))
			continue;
		if (!first[0])
			snprintf(first, sizeof(first), "%.63s",
			         list[i]->d_name);
		verbs = _has_verbs(ctx, list[i]->d_name);
	}
	if (n > 0)
		_list_free(list, n);
	if (verbs)
		return HC_PASS;
	if (first[0])
		snprintf(d, len,
		         "%s has no user verbs device in %s (ib_uverbs not "
		         "loaded?)",
		         first, VERBS_CLASS);
	else
		snprintf(d, len,
		         "no InfiniBand device in %s (mlx5_ib driver not "
		         "loaded?)",
		         IB_CLASS);
	return HC_FAIL;
}

struct _port {
	char dev[64];
	unsigned num;
	char state[32]; /* "ACTIVE" */
	char phys[32];  /* "LinkUp" */
	unsigned rate;  /* Gb/s */
	bool ethernet;  /* link_layer Ethernet (the AN NIC) */
};

/* "4: ACTIVE" -> "ACTIVE" */
static void _after_colon(const char *s, char *out, size_t len)
{
	const char *c = strchr(s, ':');

	c = c ? c + 1 : s;
	c += strspn(c, " \t");
	snprintf(out, len, "%.31s", c);
}

static void _port_file(const struct hc_ctx *ctx, const struct _port *p,
                       const char *file, char *line, size_t len)
{
	char rel[256];

	line[0] = '\0';
	snprintf(rel, sizeof(rel), "%s/%.63s/ports/%u/%.31s", IB_CLASS, p->dev,
	         p->num, file);
	if (!_read_line(ctx, rel, line, len))
		line[0] = '\0';
}

static void _port_read(const struct hc_ctx *ctx, const char *dev,
                       const char *port, struct _port *p)
{
	char line[128];

	memset(p, 0, sizeof(*p));
	snprintf(p->dev, sizeof(p->dev), "%.63s", dev);
	p->num = (unsigned)atoi(port);
	_port_file(ctx, p, "state", line, sizeof(line));
	_after_colon(line, p->state, sizeof(p->state));
	_port_file(ctx, p, "phys_state", line, sizeof(line));
	_after_colon(line, p->phys, sizeof(p->phys));
	_port_file(ctx, p, "rate", line, sizeof(line));
	p->rate = (unsigned)atoi(line);
	_port_file(ctx, p, "link_layer", line, sizeof(line));
	p->ethernet = !strcmp(line, "Ethernet");
}

/*
 * The InfiniBand ports of the node; calls fn for each until it returns
 * true.  Returns the number of ports seen.
 */
static int _ports(const struct hc_ctx *ctx,
                  bool (*fn)(const struct _port *p, void *arg), void *arg)
{
	struct dirent **devs = NULL;
	int nd = _list(ctx, IB_CLASS, &devs), seen = 0;
	bool stop = false;

	for (int i = 0; i < nd && !stop; i++) {
		struct dirent **ports = NULL;
		char rel[512];
		int np;

		if (_dot(devs[i]->d_name))
			continue;
		snprintf(rel, sizeof(rel), "%s/%.63s/ports", IB_CLASS,
		         devs[i]->d_name);
		np = _list(ctx, rel, &ports);
		for (int j = 0; j < np && !stop; j++) {
			struct _port p;

			if (_dot(ports[j]->d_name))
				continue;
			_port_read(ctx, devs[i]->d_name, ports[j]->d_name, &p);
			if (p.ethernet)
				continue;
			seen++;
			stop = fn(&p, arg);
		}
		if (np > 0)
			_list_free(ports, np);
	}
	if (nd > 0)
		_list_free(devs, nd);
	return seen;
}

struct _port_search {
	unsigned rate; /* wanted, 0 = any */
	bool found;
	struct _port first;  /* first port seen, for the message */
	struct _port active; /* first ACTIVE/LinkUp port */
	bool have_first, have_active;
};

static bool _port_visit(const struct _port *p, void *arg)
{
	struct _port_search *s = arg;
	bool up = !strcmp(p->state, "ACTIVE") && !strcmp(p->phys, "LinkUp");

	if (!s->have_first) {
		s->first = *p;
		s->have_first = true;
	}
	if (up && !s->have_active) {
		s->active = *p;
		s->have_active = true;
	}
	if (up && (!s->rate || p->rate == s->rate))
		s->found = true;
	return s->found;
}

enum hc_result hc_ib_port(const struct hc_ctx *ctx, char *d, size_t len)
{
	struct _port_search s = {.rate = ctx->size ? ctx->size->ib_rate_gbps
	                                           : 0};

	_ports(ctx, _port_visit, &s);
	if (s.found)
		return HC_PASS;
	if (!s.have_first)
		snprintf(d, len, "no InfiniBand port in %s", IB_CLASS);
	else if (!s.have_active)
		snprintf(d, len,
		         "no port is ACTIVE (LinkUp): %s port %u is "
		         "%s (%s)",
		         s.first.dev, s.first.num,
		         s.first.state[0] ? s.first.state : "unknown",
		         s.first.phys[0] ? s.first.phys : "unknown");
	else
		snprintf(d, len, "%s port %u runs at %u Gb/sec, %s needs %u",
		         s.active.dev, s.active.num, s.active.rate,
		         ctx->size->name, s.rate);
	return HC_FAIL;
}

struct _pkey_search {
	bool tenant;
	char seen[128];
};

static bool _pkey_visit_port(const struct hc_ctx *ctx, const struct _port *p,
                             struct _pkey_search *s)
{
	for (int i = 0; i < 2 && !s->tenant; i++) {
		char file[16], line[64];
		unsigned long v;
		size_t l = strlen(s->seen);

		snprintf(file, sizeof(file), "pkeys/%d", i);
		_port_file(ctx, p, file, line, sizeof(line));
		if (!line[0])
			continue;
		v = strtoul(line, NULL, 16);
		snprintf(s->seen + l, sizeof(s->seen) - l, "%s0x%04lx",
		         l ? ", " : "", v);
		if ((v & PKEY_DEFAULT) && (v & PKEY_DEFAULT) != PKEY_DEFAULT)
			s->tenant = true;
	}
	return s->tenant;
}

struct _pkey_walk {
	const struct hc_ctx *ctx;
	struct _pkey_search s;
	struct _port port;
	bool have_port;
};

static bool _pkey_visit(const struct _port *p, void *arg)
{
	struct _pkey_walk *w = arg;

	if (!w->have_port) {
		w->port = *p;
		w->have_port = true;
	}
	return _pkey_visit_port(w->ctx, p, &w->s);
}

enum hc_result hc_ib_pkey(const struct hc_ctx *ctx, char *d, size_t len)
{
	struct _pkey_walk w = {.ctx = ctx};

	_ports(ctx, _pkey_visit, &w);
	if (w.s.tenant)
		return HC_PASS;
	if (!w.have_port)
		snprintf(d, len,
		         "no InfiniBand port to read a partition key "
		         "from");
	else
		snprintf(d, len,
		         "no tenant partition key on %s port %u (pkeys: %s)",
		         w.port.dev, w.port.num,
		         w.s.seen[0] ? w.s.seen : "none readable");
	return HC_FAIL;
}

/* ---- both kinds ------------------------------------------------------------
 */

enum hc_result hc_rdma_interface(const struct hc_ctx *ctx, char *d, size_t len)
{
	const struct hc_iface *i = hc_rdma_iface(ctx);
	char addr[64];

	if (!i) {
		snprintf(d, len,
		         "no interface has an address in "
		         "172.16.0.0/16 (the RDMA network)");
		return HC_FAIL;
	}
	inet_ntop(AF_INET, &i->addr, addr, sizeof(addr));
	if (!i->up) {
		snprintf(d, len, "%s (%s) is down", i->name, addr);
		return HC_FAIL;
	}
	if (!i->running) {
		snprintf(d, len, "%s (%s) has no carrier", i->name, addr);
		return HC_FAIL;
	}
	return HC_PASS;
}

enum hc_result hc_memlock(const struct hc_ctx *ctx, char *d, size_t len)
{
	rlim_t min = ctx->memlock_min ? ctx->memlock_min : RLIM_INFINITY;

	if (ctx->memlock == RLIM_INFINITY
	    || (min != RLIM_INFINITY && ctx->memlock >= min))
		return HC_PASS;
	if (min == RLIM_INFINITY)
		snprintf(d, len,
		         "locked memory limit of slurmd is %llu KiB, not "
		         "unlimited (LimitMEMLOCK=infinity in slurmd.service)",
		         (unsigned long long)ctx->memlock / 1024);
	else
		snprintf(d, len,
		         "locked memory limit of slurmd is %llu KiB, less than "
		         "%llu KiB",
		         (unsigned long long)ctx->memlock / 1024,
		         (unsigned long long)min / 1024);
	return HC_FAIL;
}

#ifdef HAVE_IBVERBS
#define LB_BYTES (1u << 20)
#define LB_ITERS 64
#define LB_DEADLINE_NS 2000000000LL

static long long _now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The first ACTIVE InfiniBand port of an open device, or 0. */
static uint8_t _active_port(struct ibv_context *c, struct ibv_port_attr *pa)
{
	struct ibv_device_attr da;

	if (ibv_query_device(c, &da))
		return 0;
	for (uint8_t p = 1; p <= da.phys_port_cnt; p++)
		if (!ibv_query_port(c, p, pa) && pa->state == IBV_PORT_ACTIVE
		    && pa->link_layer != IBV_LINK_LAYER_ETHERNET)
			return p;
	return 0;
}

/* Connect qp to itself through the port, then make it ready to send. */
static int _qp_self_connect(struct ibv_qp *qp, uint8_t port,
                            const struct ibv_port_attr *pa)
{
	struct ibv_qp_attr a;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = port;
	a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE;
	if (ibv_modify_qp(qp, &a,
	                  IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT
	                          | IBV_QP_ACCESS_FLAGS))
		return -1;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = pa->active_mtu;
	a.dest_qp_num = qp->qp_num;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.dlid = pa->lid;
	a.ah_attr.port_num = port;
	if (ibv_modify_qp(qp, &a,
	                  IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU
	                          | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN
	                          | IBV_QP_MAX_DEST_RD_ATOMIC
	                          | IBV_QP_MIN_RNR_TIMER))
		return -1;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	return ibv_modify_qp(qp, &a,
	                     IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT
	                             | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN
	                             | IBV_QP_MAX_QP_RD_ATOMIC);
}

/*
 * RDMA writes from one buffer to another through the HCA (a QP connected
 * to itself); the bandwidth in 10^6 B/s, or a negative value with d set.
 */
static double _loopback_bw(struct ibv_context *c, uint8_t port,
                           const struct ibv_port_attr *pa, char *d, size_t len)
{
	struct ibv_pd *pd = NULL;
	struct ibv_mr *mr = NULL;
	struct ibv_cq *cq = NULL;
	struct ibv_qp *qp = NULL;
	char *buf = NULL;
	double bw = -1.0;
	long long t0, t1;

	buf = calloc(2, LB_BYTES);
	if (!buf || !(pd = ibv_alloc_pd(c))) {
		snprintf(d, len, "cannot allocate a protection domain");
		goto out;
	}
	mr = ibv_reg_mr(pd, buf, 2 * LB_BYTES,
	                IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!mr) {
		snprintf(d, len, "cannot register %u bytes: %s (memlock?)",
		         2 * LB_BYTES, strerror(errno));
		goto out;
	}
	cq = ibv_create_cq(c, 4, NULL, NULL, 0);
	if (cq) {
		struct ibv_qp_init_attr qa = {
		        .send_cq = cq,
		        .recv_cq = cq,
		        .qp_type = IBV_QPT_RC,
		        .cap = {.max_send_wr = 2,
		                .max_recv_wr = 1,
		                .max_send_sge = 1,
		                .max_recv_sge = 1},
		};

		qp = ibv_create_qp(pd, &qa);
	}
	if (!qp || _qp_self_connect(qp, port, pa)) {
		snprintf(d, len, "cannot set up a loopback queue pair: %s",
		         strerror(errno));
		goto out;
	}
	t0 = _now_ns();
	for (int i = 0; i < LB_ITERS; i++) {
		struct ibv_sge sge = {.addr = (uintptr_t)buf,
		                      .length = LB_BYTES,
		                      .lkey = mr->lkey};
		struct ibv_send_wr wr = {.sg_list = &sge,
		                         .num_sge = 1,
		                         .opcode = IBV_WR_RDMA_WRITE,
		                         .send_flags = IBV_SEND_SIGNALED},
		                   *bad;
		struct ibv_wc wc;
		int got = 0;

		wr.wr.rdma.remote_addr = (uintptr_t)(buf + LB_BYTES);
		wr.wr.rdma.rkey = mr->rkey;
		if (ibv_post_send(qp, &wr, &bad)) {
			snprintf(d, len, "ibv_post_send failed");
			goto out;
		}
		while (!got) {
			got = ibv_poll_cq(cq, 1, &wc);
			if (got < 0 || (got && wc.status != IBV_WC_SUCCESS)) {
				snprintf(
				        d, len, "RDMA write failed: %s",
				        got < 0 ? "poll error"
				                : ibv_wc_status_str(wc.status));
				goto out;
			}
			if (_now_ns() - t0 > LB_DEADLINE_NS) {
				snprintf(d, len,
				         "RDMA write did not complete "
				         "within 2 s");
				goto out;
			}
		}
	}
	t1 = _now_ns();
	bw = (double)LB_BYTES * LB_ITERS / ((double)(t1 - t0) / 1e3);
out:
	if (qp)
		ibv_destroy_qp(qp);
	if (cq)
		ibv_destroy_cq(cq);
	if (mr)
		ibv_dereg_mr(mr);
	if (pd)
		ibv_dealloc_pd(pd);
	free(buf);
	return bw;
}

/* Append name to a ", "-separated list in buf. */
static void _name_add(char *buf, size_t len, const char *name)
{
	size_t used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
}

static enum hc_result _verbs_loopback(const struct hc_ctx *ctx, char *d,
                                      size_t len)
{
	struct ibv_device **list;
	enum hc_result res = HC_FAIL;
	char closed[256] = "", inactive[256] = "";
	bool measured = false;
	int n = 0;

	errno = 0;
	list = ibv_get_device_list(&n);
	if (!list) {
		if (errno == ENOSYS) {
			snprintf(d, len, "no kernel RDMA support");
			return HC_SKIP;
		}
		snprintf(d, len, "libibverbs cannot list devices: %s",
		         strerror(errno));
		return HC_FAIL;
	}
	for (int i = 0; i < n && !measured; i++) {
		struct ibv_context *c = ibv_open_device(list[i]);
		const char *name = ibv_get_device_name(list[i]);
		struct ibv_port_attr pa;
		uint8_t port;
		double bw;

		if (!c) {
			_name_add(closed, sizeof(closed), name);
			continue;
		}
		port = _active_port(c, &pa);
		if (port) {
			double min =
			        ctx->size ? ctx->size->min_bandwidth_mbs : 0.0;

			measured = true;
			bw = _loopback_bw(c, port, &pa, d, len);
			if (bw >= 0.0 && bw < min)
				snprintf(d, len,
				         "loopback RDMA write on %s port %u: "
				         "%.0f Mbytes/sec < %.0f",
				         name, (unsigned)port, bw, min);
			else if (bw >= 0.0)
				res = HC_PASS;
		} else {
			_name_add(inactive, sizeof(inactive), name);
		}
		ibv_close_device(c);
	}
	if (!measured && n == 0)
		snprintf(d, len, "libibverbs finds no RDMA device");
	else if (!measured && !inactive[0])
		snprintf(d, len,
		         "libibverbs lists %s but can open none of them "
		         "(no kernel driver behind /dev/infiniband?)",
		         closed);
	else if (!measured)
		snprintf(d, len, "no ACTIVE InfiniBand port on %s%s%s",
		         inactive, closed[0] ? "; cannot open " : "", closed);
	ibv_free_device_list(list);
	return res;
}
#endif

enum hc_result hc_loopback(const struct hc_ctx *ctx, char *d, size_t len)
{
	if (!ctx->loopback) {
		snprintf(d, len, "turned off");
		return HC_SKIP;
	}
	if (ctx->root && strcmp(ctx->root, "/")) {
		snprintf(d, len,
		         "the device tree under %s is not the live "
		         "system",
		         ctx->root);
		return HC_SKIP;
	}
#ifdef HAVE_IBVERBS
	return _verbs_loopback(ctx, d, len);
#else
	snprintf(d, len, "built without libibverbs");
	return HC_SKIP;
#endif
}

/* ---- the list of checks ---------------------------------------------------
 */

#define ND (1u << RDMA_ND)
#define IB (1u << RDMA_IB)

static const struct hc_check _checks[] = {
        {"nd_device", "Network Direct device " ND_DEVICE, ND, hc_nd_device},
        {"nd_driver", "driver hv_network_direct loaded", ND, hc_nd_driver},
        {"ib_device", "InfiniBand device with its verbs interface", IB,
         hc_ib_device},
        {"ib_port", "a port ACTIVE and LinkUp at the size's rate", IB,
         hc_ib_port},
        {"ib_pkey", "a tenant partition key on the port", IB, hc_ib_pkey},
        {"rdma_interface", "an interface up with a 172.16.0.0/16 address",
         ND | IB, hc_rdma_interface},
        {"dat_conf", "/etc/dat.conf has the " DAPL_PROVIDER " provider", ND,
         hc_dat_conf},
        {"memlock", "locked memory unlimited for slurmd", ND | IB, hc_memlock},
        {"loopback",
         "RDMA write loopback through the HCA at the size's "
         "bandwidth",
         IB, hc_loopback},
};

const struct hc_check *hc_checks(size_t *count)
{
	*count = sizeof(_checks) / sizeof(_checks[0]);
	return _checks;
}

bool hc_check_applies(const struct hc_check *check, const struct vm_size *size)
{
	return size && size->rdma != RDMA_NONE
	       && (check->kinds & (1u << size->rdma));
}

const struct hc_check *hc_check_find(const char *name)
{
	for (size_t i = 0; i < sizeof(_checks) / sizeof(_checks[0]); i++)
		if (!strcmp(_checks[i].name, name))
			return &_checks[i];
	return NULL;
}

enum az_rc hc_ifaces_read(struct hc_iface **out, size_t *count, char *err,
                          size_t errlen)
{
	struct ifaddrs *ifs, *i;
	struct hc_iface *v = NULL;
	size_t n = 0;

	*out = NULL;
	*count = 0;
	if (getifaddrs(&ifs) != 0)
		return az_err(AZ_EIO, err, errlen, "getifaddrs: %s",
		              strerror(errno));
	for (i = ifs; i; i = i->ifa_next) {
		struct hc_iface *grown;

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		grown = realloc(v, (n + 1) * sizeof(*v));
		if (!grown) {
			free(v);
			freeifaddrs(ifs);
			return az_err(AZ_ENOMEM, err, errlen, "out of memory");
		}
		v = grown;
		memset(&v[n], 0, sizeof(v[n]));
		snprintf(v[n].name, sizeof(v[n].name), "%s", i->ifa_name);
		v[n].addr =
		        ((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr;
		v[n].up = i->ifa_flags & IFF_UP;
		v[n].running = i->ifa_flags & IFF_RUNNING;
		n++;
	}
	freeifaddrs(ifs);
	*out = v;
	*count = n;
	return AZ_OK;
}

/* ---- what to do with the node ----------------------------------------------
 */

bool hc_reason_is_ours(const char *reason)
{
	size_t pl = strlen(HC_REASON_PREFIX);
	char name[64];
	size_t n;

	if (!reason || strncmp(reason, HC_REASON_PREFIX, pl))
		return false;
	reason += pl;
	n = strcspn(reason, ":");
	if (!reason[n] || n >= sizeof(name))
		return false;
	snprintf(name, sizeof(name), "%.*s", (int)n, reason);
	return hc_check_find(name) || !strcmp(name, "watchdog");
}

enum hc_action hc_decide(uint32_t state, const char *reason,
                         const char *new_reason)
{
	bool drained = state & NODE_STATE_DRAIN;
	bool down = (state & NODE_STATE_BASE) == NODE_STATE_DOWN
	            || (state & NODE_STATE_FAIL);
	bool ours = hc_reason_is_ours(reason);

	if (!new_reason)
		return drained && ours && !down ? HC_RESUME : HC_NOTHING;
	if (down || (drained && !ours))
		return HC_LEAVE_ALONE;
	if (drained && ours && reason && !strcmp(reason, new_reason))
		return HC_NOTHING;
	return HC_DRAIN;
}

const char *hc_action_name(enum hc_action action)
{
	static const char *const names[] = {"nothing", "drain", "resume",
	                                    "leave alone"};

	return action <= HC_LEAVE_ALONE ? names[action] : "?";
}
