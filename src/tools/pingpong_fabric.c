/*
 * pingpong_fabric.c - the MPI-free neighbour check of azrdma-pingpong
 * --prolog: a listener that answers the node before this one, and a client
 * that checks the RDMA path to the node after it.  See pingpong_fabric.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pingpong_fabric.h"

#define PF_MAGIC "AZPP1"
#define PF_LINE 160
#define PF_MAX_CONNS 8

static double _now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

unsigned short pf_port(unsigned job_id)
{
	return (unsigned short)(PF_PORT_BASE + job_id % PF_PORT_SPAN);
}

enum az_rc pf_neighbours(char *const *nodes, size_t count, const char *me,
                         const char **next, const char **prev, bool *alone,
                         char *err, size_t errlen)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(nodes[i], me))
			continue;
		*alone = count < 2;
		*next = nodes[(i + 1) % count];
		*prev = nodes[(i + count - 1) % count];
		return AZ_OK;
	}
	return az_err(AZ_ENOTFOUND, err, errlen,
	              "this node (%s) is not in the job's node list", me);
}

/* ---- sockets with deadlines --------------------------------------------- */

static void _set_timeout(int fd, double seconds)
{
	struct timeval tv;

	if (seconds < 0.001)
		seconds = 0.001;
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* 0, or the errno of the failed connect (ETIMEDOUT after timeout). */
static int _connect(int fd, struct in_addr addr, unsigned short port,
                    double timeout)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(port),
	                         .sin_addr = addr};
	int flags = fcntl(fd, F_GETFL), soerr = 0, rc = 0;
	socklen_t sl = sizeof(soerr);
	struct pollfd p = {.fd = fd, .events = POLLOUT};

	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		rc = 0;
	else if (errno != EINPROGRESS)
		rc = errno;
	else if (timeout <= 0.0
	         || poll(&p, 1, (int)(timeout * 1000) + 1) <= 0)
		rc = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
		rc = errno;
	else
		rc = soerr;
	fcntl(fd, F_SETFL, flags);
	return rc;
}

/* Send (sending) or receive exactly len bytes; false on EOF, error or
 * timeout. */
static bool _transfer(int fd, void *buf, size_t len, bool sending)
{
	char *p = buf;

	while (len) {
		ssize_t n = sending ? send(fd, p, len, MSG_NOSIGNAL)
		                    : recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool _write_all(int fd, const void *buf, size_t len)
{
	return _transfer(fd, (void *)buf, len, true);
}

static bool _read_all(int fd, void *buf, size_t len)
{
	return _transfer(fd, buf, len, false);
}

/* One "\n"-terminated line (without it); false on EOF, error or timeout. */
static bool _read_line(int fd, char *line, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		ssize_t got = recv(fd, &line[n], 1, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return false;
		if (line[n] == '\n') {
			line[n] = '\0';
			return true;
		}
		n++;
	}
	return false; /* longer than any line of the protocol */
}

static bool _send_line(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool _send_line(int fd, const char *fmt, ...)
{
	char line[PF_LINE];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		return false;
	line[n] = '\n';
	return _write_all(fd, line, (size_t)n + 1);
}

/* The byte at offset i of echo chunk k: differs by chunk and offset. */
static unsigned char _pattern(unsigned k, size_t i)
{
	return (unsigned char)(k * 131u + i * 7u + (i >> 8));
}

/* ---- the listener: answers the node before this one --------------------- */

struct server {
	const struct pf_config *cfg;
	int lfd;
	double deadline;
	bool prev_done;
	int fds[PF_MAX_CONNS];
	char from[PF_MAX_CONNS][64]; /* who said HELLO on it, "" if none */
};

static void _server_close(struct server *s, int i)
{
	if (s->from[i][0] && !strcmp(s->from[i], s->cfg->prev))
		s->prev_done = true;
	close(s->fds[i]);
	s->fds[i] = -1;
	s->from[i][0] = '\0';
}

/* Echo count chunks of bytes back on fd, then close it. */
static void _server_echo(struct server *s, int i, size_t bytes,
                         unsigned count)
{
	char *buf = malloc(bytes);

	_set_timeout(s->fds[i], s->cfg->connect_s);
	for (unsigned k = 0; buf && k < count; k++)
		if (!_read_all(s->fds[i], buf, bytes)
		    || !_write_all(s->fds[i], buf, bytes))
			break;
	free(buf);
	_server_close(s, i);
}

/* A line arrived on connection i. */
static void _server_line(struct server *s, int i)
{
	char line[PF_LINE], word[16], arg[64];
	unsigned job, count;
	size_t bytes;
	int fd = s->fds[i];

	if (!_read_line(fd, line, sizeof(line))
	    || sscanf(line, PF_MAGIC " %u %15s", &job, word) != 2) {
		_server_close(s, i);
		return;
	}
	if (job != s->cfg->job_id) {
		_send_line(fd, PF_MAGIC " %u OTHERJOB", s->cfg->job_id);
		_server_close(s, i);
	} else if (!strcmp(word, "HELLO")
	           && sscanf(line, PF_MAGIC " %*u HELLO %63s", arg) == 1) {
		snprintf(s->from[i], sizeof(s->from[i]), "%s", arg);
		if (s->cfg->broken) {
			/* No RDMA address to give: the asker must not take
			 * its silence for a broken path of its own. */
			_send_line(fd, PF_MAGIC " %u BROKEN", job);
			_server_close(s, i);
		} else if (!_send_line(fd, PF_MAGIC " %u ADDR %s", job,
		                       inet_ntoa(s->cfg->rdma))) {
			_server_close(s, i);
		}
	} else if (!strcmp(word, "ECHO")
	           && sscanf(line, PF_MAGIC " %*u ECHO %zu %u", &bytes,
	                     &count)
	                      == 2
	           && bytes && bytes <= PF_CHUNK_BYTES && count
	           && count <= 1000) {
		_server_echo(s, i, bytes, count);
	} else {
		/* DONE, or anything else: this conversation is over. */
		_server_close(s, i);
	}
}

static void _server_accept(struct server *s)
{
	int fd = accept(s->lfd, NULL, NULL);

	if (fd < 0)
		return;
	for (int i = 0; i < PF_MAX_CONNS; i++) {
		if (s->fds[i] < 0) {
			s->fds[i] = fd;
			s->from[i][0] = '\0';
			_set_timeout(fd, 2.0); /* a line comes whole */
			return;
		}
	}
	close(fd); /* more talkers than a ring has: not ours */
}

static void *_server_run(void *arg)
{
	struct server *s = arg;

	while (!s->prev_done && _now() < s->deadline) {
		struct pollfd p[PF_MAX_CONNS + 1];
		int map[PF_MAX_CONNS + 1], n = 0;

		p[n].fd = s->lfd;
		p[n].events = POLLIN;
		map[n++] = -1;
		for (int i = 0; i < PF_MAX_CONNS; i++) {
			if (s->fds[i] < 0)
				continue;
			p[n].fd = s->fds[i];
			p[n].events = POLLIN;
			map[n++] = i;
		}
		if (poll(p, (nfds_t)n, 100) <= 0)
			continue;
		for (int k = 0; k < n; k++) {
			if (!p[k].revents)
				continue;
			if (map[k] < 0)
				_server_accept(s);
			else if (s->fds[map[k]] >= 0)
				_server_line(s, map[k]);
		}
	}
	for (int i = 0; i < PF_MAX_CONNS; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	return NULL;
}

/* ---- the client: checks the pair with the next node --------------------- */

static bool _broken(struct pf_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool _broken(struct pf_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
	va_end(ap);
	res->ok = false;
	return false;
}

/* Connect to next over the management network, retrying until deadline
 * (its Prolog may start a little later than this one). */
static int _client_hello(const struct pf_config *cfg, double deadline,
                         struct pf_result *res, struct in_addr *peer_rdma)
{
	struct in_addr mgmt;
	char err[AZ_ERRLEN], line[PF_LINE], ip[32], broken[PF_LINE], word[16];
	unsigned job;
	int fd = -1, e = 0;

	if (cfg->resolve(cfg->resolve_arg, cfg->next, &mgmt, err, sizeof(err))
	    != AZ_OK) {
		_broken(res, "cannot find the address of %s: %s", cfg->next,
		        err);
		return -1;
	}
	while (_now() < deadline) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			break;
		e = _connect(fd, mgmt, cfg->port, deadline - _now());
		if (!e)
			break;
		close(fd);
		fd = -1;
		usleep(200000);
	}
	if (fd < 0) {
		_broken(res,
		        "no answer from %s at %s:%u within %.0f s over the "
		        "management network (%s); is its Prolog running "
		        "azrdma-pingpong?",
		        cfg->next, inet_ntoa(mgmt), cfg->port, cfg->deadline_s,
		        strerror(e ? e : ETIMEDOUT));
		return -1;
	}
	_set_timeout(fd, deadline - _now());
	if (!_send_line(fd, PF_MAGIC " %u HELLO %s", cfg->job_id, cfg->me)
	    || !_read_line(fd, line, sizeof(line))) {
		_broken(res, "%s at %s:%u did not tell its RDMA address",
		        cfg->next, inet_ntoa(mgmt), cfg->port);
		close(fd);
		return -1;
	}
	snprintf(broken, sizeof(broken), PF_MAGIC " %u BROKEN", cfg->job_id);
	if (!strcmp(line, broken)) {
		_broken(res, "%s has no RDMA interface up", cfg->next);
		res->peer_broken = true;
		close(fd);
		return -1;
	}
	/* The next node's check could not listen: nothing is known about
	 * the pair, and nobody is to blame for it. */
	if (sscanf(line, PF_MAGIC " %u %15s", &job, word) == 2
	    && !strcmp(word, "OTHERJOB") && job != cfg->job_id) {
		_broken(res, "%s:%u on %s is held by the check of job %u",
		        inet_ntoa(mgmt), cfg->port, cfg->next, job);
		res->other_job = true;
		close(fd);
		return -1;
	}
	if (sscanf(line, PF_MAGIC " %u ADDR %31s", &job, ip) != 2
	    || job != cfg->job_id || !inet_aton(ip, peer_rdma)) {
		_broken(res, "%s:%u on %s answered '%.60s', not job %u's "
		        "check", inet_ntoa(mgmt), cfg->port, cfg->next, line,
		        cfg->job_id);
		close(fd);
		return -1;
	}
	return fd;
}

/* Echo PF_CHUNK_COUNT chunks over the RDMA network; true if all came back. */
static bool _client_echo(const struct pf_config *cfg, double deadline,
                         struct in_addr peer, struct pf_result *res)
{
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr = cfg->rdma};
	char from[32], to[32];
	unsigned char *out = malloc(PF_CHUNK_BYTES), *in = malloc(PF_CHUNK_BYTES);
	double left = deadline - _now(), t0;
	int fd = socket(AF_INET, SOCK_STREAM, 0), e;
	bool ok = false;

	snprintf(from, sizeof(from), "%s", inet_ntoa(cfg->rdma));
	snprintf(to, sizeof(to), "%s", inet_ntoa(peer));
	if (!out || !in || fd < 0) {
		_broken(res, "out of memory or sockets");
		goto out;
	}
	/* From this node's RDMA address, so the path is the RDMA network. */
	if (bind(fd, (struct sockaddr *)&me, sizeof(me))) {
		_broken(res, "cannot use this node's RDMA address %s: %s", from,
		        strerror(errno));
		goto out;
	}
	e = _connect(fd, peer, cfg->port,
	             left < cfg->connect_s ? left : cfg->connect_s);
	if (e) {
		_broken(res, "no RDMA path from %s to %s (%s's RDMA address): %s",
		        from, to, cfg->next,
		        e == ETIMEDOUT ? "no answer within the connect timeout"
		                       : strerror(e));
		goto out;
	}
	_set_timeout(fd, cfg->connect_s);
	if (!_send_line(fd, PF_MAGIC " %u ECHO %u %u", cfg->job_id,
	                PF_CHUNK_BYTES, PF_CHUNK_COUNT)) {
		_broken(res, "the RDMA connection %s -> %s broke", from, to);
		goto out;
	}
	t0 = _now();
	for (unsigned k = 0; k < PF_CHUNK_COUNT; k++) {
		for (size_t i = 0; i < PF_CHUNK_BYTES; i++)
			out[i] = _pattern(k, i);
		if (!_write_all(fd, out, PF_CHUNK_BYTES)
		    || !_read_all(fd, in, PF_CHUNK_BYTES)) {
			_broken(res, "the echo over RDMA %s -> %s stopped at "
			        "chunk %u of %u",
			        from, to, k + 1, PF_CHUNK_COUNT);
			goto out;
		}
		if (memcmp(in, out, PF_CHUNK_BYTES)) {
			_broken(res, "the echo over RDMA %s -> %s came back "
			        "corrupted (chunk %u)",
			        from, to, k + 1);
			goto out;
		}
	}
	res->rtt_us = (_now() - t0) * 1e6 / PF_CHUNK_COUNT;
	res->ok = ok = true;
out:
	if (fd >= 0)
		close(fd);
	free(out);
	free(in);
	return ok;
}

static void _client_run(const struct pf_config *cfg, double deadline,
                        struct pf_result *res)
{
	struct in_addr peer;
	int mgmt = _client_hello(cfg, deadline, res, &peer);

	if (mgmt < 0)
		return;
	if (!cfg->broken)
		_client_echo(cfg, deadline, peer, res);
	_send_line(mgmt, PF_MAGIC " %u DONE", cfg->job_id);
	close(mgmt);
}

/* ---- the whole check ---------------------------------------------------- */

enum az_rc pf_run(const struct pf_config *cfg, struct pf_result *res,
                  char *err, size_t errlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(cfg->port),
	                         .sin_addr = cfg->listen};
	struct server s = {.cfg = cfg};
	double start = _now();
	pthread_t tid;
	int one = 1;

	memset(res, 0, sizeof(*res));
	for (int i = 0; i < PF_MAX_CONNS; i++)
		s.fds[i] = -1;
	s.deadline = start + cfg->deadline_s;
	s.lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (s.lfd < 0)
		return az_err(AZ_EIO, err, errlen, "socket: %s",
		              strerror(errno));
	setsockopt(s.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s.lfd, (struct sockaddr *)&sa, sizeof(sa))
	    || listen(s.lfd, 16)) {
		int e = errno;

		close(s.lfd);
		return az_err(e == EADDRINUSE ? AZ_EBUSY : AZ_EIO, err, errlen,
		              "cannot listen on %s:%u: %s",
		              inet_ntoa(cfg->listen), cfg->port, strerror(e));
	}
	if (pthread_create(&tid, NULL, _server_run, &s)) {
		close(s.lfd);
		return az_err(AZ_EIO, err, errlen, "cannot start a thread");
	}
	_client_run(cfg, start + cfg->deadline_s, res);
	pthread_join(tid, NULL);
	close(s.lfd);
	return AZ_OK;
}

void pf_reason(const struct pf_config *cfg, const struct pf_result *res,
               char *out, size_t len)
{
	snprintf(out, len, "azrdma-prolog: %s <-> %s: %s", cfg->me, cfg->next,
	         res->detail);
}
