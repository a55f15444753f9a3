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
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peer_auth.h"
#include "pingpong_fabric.h"

#define PF_MAGIC "AZPP2"
#define PF_LINE 1024      /* a line with a munge credential fits */
#define PF_CRED 900       /* the longest credential believed */
#define PF_NAME 64        /* a node name, with its NUL */
#define PF_TOKEN 33       /* the echo token: 32 hex digits and NUL */
/*
 * What one listener serves at once, and what one source address may hold
 * of it before its oldest connection that has proved nothing is dropped:
 * idle or slow connections cannot shut the node before this one out.
 */
#define PF_MAX_CONNS 32
#define PF_MAX_PER_SOURCE 4
#define PF_LINE_S 2.0     /* a connection's first line comes whole in it */

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

/* ---- names and credentials ---------------------------------------------- */

/* A node name as Slurm spells one: what we put in a reason or a payload. */
static bool _node_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (!n || n >= PF_NAME)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		      || (c >= '0' && c <= '9') || c == '-' || c == '_'
		      || c == '.'))
			return false;
	}
	return true;
}

/* Send words followed by a credential over exactly them. */
static bool _send_signed(int fd, struct peer_auth *auth, const char *words)
{
	char err[AZ_ERRLEN], *cred = NULL;
	bool ok;

	if (peer_auth_sign(auth, words, &cred, err, sizeof(err)) != AZ_OK) {
		fprintf(stderr, "azrdma-pingpong: %s\n", err);
		return false;
	}
	ok = _send_line(fd, "%s %s", words, cred);
	free(cred);
	return ok;
}

/* ---- the listener: answers the node before this one --------------------- */

enum conn_state {
	CS_FREE,
	CS_LINE,    /* nothing proved yet: its first line is due */
	CS_PREV,    /* the node before this one, proved: DONE is due */
	CS_ECHO_IN, /* an echo with the token: reading a chunk */
	CS_ECHO_OUT /* ... and sending it back */
};

struct conn {
	enum conn_state state;
	int fd;
	struct in_addr source;
	double since, deadline;
	char line[PF_LINE];
	size_t len;             /* bytes in line */
	unsigned char *chunk;   /* echo: one chunk */
	size_t chunk_bytes, at; /* its size; bytes read or sent of it */
	unsigned chunks_left;
};

struct server {
	const struct pf_config *cfg;
	int lfd;
	double deadline;
	bool prev_done;
	char token[PF_TOKEN]; /* the echo's, told only to the node before */
	bool token_used;
	struct conn conns[PF_MAX_CONNS];
};

static void _conn_close(struct server *s, struct conn *c)
{
	if (c->state == CS_PREV)
		s->prev_done = true; /* DONE, or it hung up: either way */
	close(c->fd);
	free(c->chunk);
	memset(c, 0, sizeof(*c));
	c->state = CS_FREE;
	c->fd = -1;
}

/* What a HELLO of another job, a node that is not the one before this
 * one, or a forgery gets: an answer that proves who says it, or nothing. */
static void _server_hello(struct server *s, struct conn *c, unsigned job,
                          const char *from, const char *cred)
{
	const struct pf_config *cfg = s->cfg;
	char words[PF_LINE], err[AZ_ERRLEN];
	char ip[INET_ADDRSTRLEN];

	snprintf(words, sizeof(words), PF_MAGIC " %u HELLO %s %s", job, from,
	         cfg->me);
	if (peer_auth_check(cfg->auth, cred, words, err, sizeof(err))
	    != AZ_OK) {
		/* Fixed words: the asker may be honest and misconfigured. */
		_send_line(c->fd, PF_MAGIC " %u REFUSED", cfg->job_id);
		_conn_close(s, c);
		return;
	}
	if (job != cfg->job_id) {
		snprintf(words, sizeof(words), PF_MAGIC " %u OTHERJOB %s %s",
		         cfg->job_id, cfg->me, from);
		_send_signed(c->fd, cfg->auth, words);
		_conn_close(s, c);
		return;
	}
	if (strcmp(from, cfg->prev)) {
		/* Only the node before this one checks it. */
		_conn_close(s, c);
		return;
	}
	c->state = CS_PREV;
	c->deadline = s->deadline;
	if (cfg->broken) {
		/* No RDMA address to give: the asker must not take its
		 * silence for a broken path of its own. */
		snprintf(words, sizeof(words), PF_MAGIC " %u BROKEN %s %s", job,
		         cfg->me, from);
		_send_signed(c->fd, cfg->auth, words);
		_conn_close(s, c);
		return;
	}
	inet_ntop(AF_INET, &cfg->rdma, ip, sizeof(ip));
	snprintf(words, sizeof(words), PF_MAGIC " %u ADDR %s %s %s %s", job, ip,
	         s->token, cfg->me, from);
	if (!_send_signed(c->fd, cfg->auth, words))
		_conn_close(s, c);
}

/* An echo: only with the token of this job's ADDR answer, once, and no
 * more than the check itself sends. */
static void _server_echo(struct server *s, struct conn *c, size_t bytes,
                         unsigned count, const char *token)
{
	if (s->token_used || strcmp(token, s->token) || !bytes
	    || bytes > PF_CHUNK_BYTES || !count || count > PF_CHUNK_COUNT
	    || !(c->chunk = malloc(bytes))) {
		_conn_close(s, c);
		return;
	}
	s->token_used = true;
	c->state = CS_ECHO_IN;
	c->chunk_bytes = bytes;
	c->chunks_left = count;
	c->at = 0;
	c->deadline = _now() + 4.0 * s->cfg->connect_s;
	if (c->deadline > s->deadline)
		c->deadline = s->deadline;
	/* Bytes of the first chunk that came with the line. */
	if (c->len) {
		size_t n = c->len < bytes ? c->len : bytes;

		memcpy(c->chunk, c->line, n);
		c->at = n;
		c->len = 0;
		if (c->at == bytes) {
			c->state = CS_ECHO_OUT;
			c->at = 0;
		}
	}
}

/* The first line of a connection, without its "\n". */
static void _server_line(struct server *s, struct conn *c, const char *line)
{
	char word[16], from[PF_NAME], to[PF_NAME], cred[PF_CRED];
	char token[PF_TOKEN], tail;
	unsigned job, count;
	size_t bytes;

	if (sscanf(line, PF_MAGIC " %u %15s", &job, word) != 2) {
		_conn_close(s, c);
		return;
	}
	if (!strcmp(word, "HELLO")
	    && sscanf(line, PF_MAGIC " %*u HELLO %63s %63s %899s %c", from, to,
	              cred, &tail)
	               == 3
	    && _node_name_ok(from) && !strcmp(to, s->cfg->me)) {
		_server_hello(s, c, job, from, cred);
		return;
	}
	if (!strcmp(word, "ECHO") && job == s->cfg->job_id
	    && sscanf(line, PF_MAGIC " %*u ECHO %zu %u %32s %c", &bytes,
	              &count, token, &tail)
	               == 3) {
		_server_echo(s, c, bytes, count, token);
		return;
	}
	_conn_close(s, c);
}

/*
 * Move what can move now on c without waiting: the bytes moved, 0 when
 * none can yet, -1 when c is closed (end, error).
 */
static ssize_t _conn_move(struct server *s, struct conn *c, void *buf,
                          size_t len, bool sending)
{
	ssize_t n = sending ? send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL)
	                    : recv(c->fd, buf, len, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		_conn_close(s, c);
		return -1;
	}
	return n;
}

/* A line is coming: act once it is whole. */
static void _conn_line_in(struct server *s, struct conn *c)
{
	char line[PF_LINE], *nl;
	ssize_t n = _conn_move(s, c, c->line + c->len,
	                       sizeof(c->line) - 1 - c->len, false);
	size_t rest;

	if (n <= 0)
		return;
	c->len += (size_t)n;
	c->line[c->len] = '\0';
	nl = memchr(c->line, '\n', c->len);
	if (!nl) {
		if (c->len + 1 >= sizeof(c->line))
			_conn_close(s, c); /* no line is this long */
		return;
	}
	if (c->state == CS_PREV) {
		/* DONE or anything else: this conversation is over. */
		_conn_close(s, c);
		return;
	}
	/* What follows the line (the echo's first bytes) stays in c. */
	*nl = '\0';
	rest = c->len - (size_t)(nl + 1 - c->line);
	memcpy(line, c->line, (size_t)(nl - c->line) + 1);
	memmove(c->line, nl + 1, rest);
	c->len = rest;
	_server_line(s, c, line);
}

/* Readable (or, echoing out, writable): move what can move now. */
static void _conn_io(struct server *s, struct conn *c)
{
	bool out = c->state == CS_ECHO_OUT;
	ssize_t n;

	if (c->state == CS_LINE || c->state == CS_PREV) {
		_conn_line_in(s, c);
		return;
	}
	if (!out && c->state != CS_ECHO_IN)
		return;
	n = _conn_move(s, c, c->chunk + c->at, c->chunk_bytes - c->at, out);
	if (n <= 0)
		return;
	c->at += (size_t)n;
	if (c->at < c->chunk_bytes)
		return;
	c->at = 0;
	if (!out)
		c->state = CS_ECHO_OUT;
	else if (--c->chunks_left)
		c->state = CS_ECHO_IN;
	else
		_conn_close(s, c); /* all echoed: done */
}

/*
 * A slot for a new connection from source: a free one, else that of the
 * oldest connection that has proved nothing, of source if it holds its
 * share already, else of anyone; -1 when all are proved (cannot be: a
 * node has one node before it).
 */
static int _server_slot(struct server *s, struct in_addr source)
{
	int free_slot = -1, oldest = -1, oldest_mine = -1, mine = 0;

	for (int i = 0; i < PF_MAX_CONNS; i++) {
		struct conn *c = &s->conns[i];

		if (c->state == CS_FREE) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (c->state != CS_LINE)
			continue;
		if (oldest < 0 || c->since < s->conns[oldest].since)
			oldest = i;
		if (c->source.s_addr != source.s_addr)
			continue;
		mine++;
		if (oldest_mine < 0 || c->since < s->conns[oldest_mine].since)
			oldest_mine = i;
	}
	if (mine >= PF_MAX_PER_SOURCE) {
		_conn_close(s, &s->conns[oldest_mine]);
		return oldest_mine;
	}
	if (free_slot >= 0)
		return free_slot;
	if (oldest >= 0)
		_conn_close(s, &s->conns[oldest]);
	return oldest;
}

static void _server_accept(struct server *s)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = accept(s->lfd, (struct sockaddr *)&sa, &sl), i;

	if (fd < 0)
		return;
	i = _server_slot(s, sa.sin_addr);
	if (i < 0) {
		close(fd);
		return;
	}
	s->conns[i] = (struct conn){.state = CS_LINE,
	                            .fd = fd,
	                            .source = sa.sin_addr,
	                            .since = _now()};
	s->conns[i].deadline = s->conns[i].since + PF_LINE_S;
	_set_timeout(fd, 1.0); /* its one answer line never waits longer */
}

static void *_server_run(void *arg)
{
	struct server *s = arg;

	while (!s->prev_done && _now() < s->deadline) {
		struct pollfd p[PF_MAX_CONNS + 1];
		int map[PF_MAX_CONNS + 1], n = 0;
		double now;

		p[n].fd = s->lfd;
		p[n].events = POLLIN;
		map[n++] = -1;
		for (int i = 0; i < PF_MAX_CONNS; i++) {
			struct conn *c = &s->conns[i];

			if (c->state == CS_FREE)
				continue;
			p[n].fd = c->fd;
			p[n].events = c->state == CS_ECHO_OUT ? POLLOUT : POLLIN;
			map[n++] = i;
		}
		if (poll(p, (nfds_t)n, 50) < 0)
			continue;
		/* Connections first: a line that came is answered before a
		 * newcomer can take its slot. */
		for (int k = 1; k < n; k++)
			if (p[k].revents && s->conns[map[k]].state != CS_FREE)
				_conn_io(s, &s->conns[map[k]]);
		now = _now();
		for (int i = 0; i < PF_MAX_CONNS; i++)
			if (s->conns[i].state != CS_FREE
			    && now >= s->conns[i].deadline)
				_conn_close(s, &s->conns[i]);
		if (p[0].revents)
			_server_accept(s);
	}
	for (int i = 0; i < PF_MAX_CONNS; i++)
		if (s->conns[i].state != CS_FREE)
			_conn_close(s, &s->conns[i]);
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

/* What the next node's port said to HELLO. */
enum answer {
	ANS_ADDR,      /* its RDMA address and the echo token, proved */
	ANS_BROKEN,    /* no RDMA interface up there, proved */
	ANS_OTHERJOB,  /* another job's check holds the port, proved */
	ANS_REFUSED,   /* it did not believe this node's credential */
	ANS_UNVERIFIED /* anything else: believed in no part */
};

static enum answer _client_answer(const struct pf_config *cfg,
                                  const char *line, struct in_addr *peer,
                                  char *token, unsigned *other_job,
                                  char *why, size_t whylen)
{
	char word[16], ip[INET_ADDRSTRLEN + 1], cred[PF_CRED], words[PF_LINE];
	char from[PF_NAME], to[PF_NAME], tail;
	unsigned job;
	enum answer ans;

	snprintf(why, whylen, "not in the words of azrdma's check");
	if (sscanf(line, PF_MAGIC " %u %15s", &job, word) != 2)
		return ANS_UNVERIFIED;
	if (!strcmp(word, "REFUSED"))
		return ANS_REFUSED;
	if (!strcmp(word, "ADDR") && job == cfg->job_id
	    && sscanf(line, PF_MAGIC " %*u ADDR %16s %32s %63s %63s %899s %c",
	              ip, token, from, to, cred, &tail)
	               == 5
	    && strlen(token) == PF_TOKEN - 1
	    && inet_pton(AF_INET, ip, peer) == 1) {
		snprintf(words, sizeof(words), PF_MAGIC " %u ADDR %s %s %s %s",
		         job, ip, token, cfg->next, cfg->me);
		ans = ANS_ADDR;
	} else if (!strcmp(word, "BROKEN") && job == cfg->job_id
	           && sscanf(line, PF_MAGIC " %*u BROKEN %63s %63s %899s %c",
	                     from, to, cred, &tail)
	                      == 3) {
		snprintf(words, sizeof(words), PF_MAGIC " %u BROKEN %s %s", job,
		         cfg->next, cfg->me);
		ans = ANS_BROKEN;
	} else if (!strcmp(word, "OTHERJOB") && job != cfg->job_id
	           && sscanf(line, PF_MAGIC " %*u OTHERJOB %63s %63s %899s %c",
	                     from, to, cred, &tail)
	                      == 3) {
		snprintf(words, sizeof(words), PF_MAGIC " %u OTHERJOB %s %s",
		         job, cfg->next, cfg->me);
		*other_job = job;
		ans = ANS_OTHERJOB;
	} else {
		return ANS_UNVERIFIED;
	}
	/* The names on the line must be the pair's, and the credential
	 * must be root's over exactly these words. */
	if (strcmp(from, cfg->next) || strcmp(to, cfg->me))
		return ANS_UNVERIFIED;
	if (peer_auth_check(cfg->auth, cred, words, why, whylen) != AZ_OK)
		return ANS_UNVERIFIED;
	return ans;
}

/* One HELLO on a connected fd; false if the answer did not come (the
 * listener dropped the connection or said nothing: ask again). */
static bool _client_ask(const struct pf_config *cfg, int fd, double deadline,
                        char *line, size_t len, struct pf_result *res)
{
	char words[PF_LINE], err[AZ_ERRLEN], *cred = NULL;
	double wait = deadline - _now();
	bool sent;

	snprintf(words, sizeof(words), PF_MAGIC " %u HELLO %s %s", cfg->job_id,
	         cfg->me, cfg->next);
	if (peer_auth_sign(cfg->auth, words, &cred, err, sizeof(err))
	    != AZ_OK) {
		_broken(res, "this node cannot sign its HELLO: %s", err);
		res->unverified = true;
		return true;
	}
	_set_timeout(fd, wait < 2 * PF_LINE_S ? wait : 2 * PF_LINE_S);
	sent = _send_line(fd, "%s %s", words, cred);
	free(cred);
	return sent && _read_line(fd, line, len);
}

/* Connect to next over the management network and learn its RDMA
 * address, asking again until deadline (its Prolog may start a little
 * later than this one, or a stranger's connection may have been
 * preferred).  The connection, or -1 with res saying why. */
static int _client_hello(const struct pf_config *cfg, double deadline,
                         struct pf_result *res, struct in_addr *peer_rdma,
                         char *token)
{
	struct in_addr mgmt;
	char err[AZ_ERRLEN], line[PF_LINE], at[INET_ADDRSTRLEN + 8], why[256];
	bool connected = false, refused = false;
	unsigned other = 0;
	int fd = -1, e = 0;

	if (cfg->resolve(cfg->resolve_arg, cfg->next, &mgmt, err, sizeof(err))
	    != AZ_OK) {
		_broken(res, "cannot find the address of %s: %s", cfg->next,
		        err);
		return -1;
	}
	snprintf(at, sizeof(at), "%s:%u", inet_ntoa(mgmt), cfg->port);
	while (_now() < deadline) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			break;
		e = _connect(fd, mgmt, cfg->port, deadline - _now());
		if (e) {
			close(fd);
			fd = -1;
			usleep(200000);
			continue;
		}
		connected = true;
		if (!_client_ask(cfg, fd, deadline, line, sizeof(line), res)) {
			close(fd);
			fd = -1;
			usleep(100000);
			continue;
		}
		if (res->unverified) {
			close(fd);
			return -1;
		}
		switch (_client_answer(cfg, line, peer_rdma, token, &other, why,
		                       sizeof(why))) {
		case ANS_ADDR:
			return fd;
		case ANS_BROKEN:
			_broken(res, "%s has no RDMA interface up", cfg->next);
			res->peer_broken = true;
			break;
		case ANS_OTHERJOB:
			/* The next node's check could not listen: nothing
			 * is known about the pair, and nobody is to blame. */
			_broken(res, "%s on %s is held by the check of job %u",
			        at, cfg->next, other);
			res->other_job = true;
			break;
		case ANS_REFUSED:
			refused = true;
			/* fall through */
		case ANS_UNVERIFIED:
			if (refused)
				_broken(res, "%s on %s did not believe this "
				        "node's munge credential (are munge's "
				        "key and the clocks the same on both?)",
				        at, cfg->next);
			else
				_broken(res, "%s on %s answered, but not as "
				        "job %u's check (%s)",
				        at, cfg->next, cfg->job_id, why);
			res->unverified = true;
			break;
		}
		close(fd);
		return -1;
	}
	if (!connected)
		_broken(res,
		        "no answer from %s at %s within %.0f s over the "
		        "management network (%s); is its Prolog running "
		        "azrdma-pingpong?",
		        cfg->next, at, cfg->deadline_s,
		        strerror(e ? e : ETIMEDOUT));
	else
		_broken(res, "%s at %s did not tell its RDMA address within "
		        "%.0f s",
		        cfg->next, at, cfg->deadline_s);
	return -1;
}

/* Echo PF_CHUNK_COUNT chunks over the RDMA network; true if all came back. */
static bool _client_echo(const struct pf_config *cfg, double deadline,
                         struct in_addr peer, const char *token,
                         struct pf_result *res)
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
	if (!_send_line(fd, PF_MAGIC " %u ECHO %u %u %s", cfg->job_id,
	                PF_CHUNK_BYTES, PF_CHUNK_COUNT, token)) {
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
	char token[PF_TOKEN];
	int mgmt = _client_hello(cfg, deadline, res, &peer, token);

	if (mgmt < 0)
		return;
	if (!cfg->broken)
		_client_echo(cfg, deadline, peer, token, res);
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
	unsigned char nonce[(PF_TOKEN - 1) / 2];
	pthread_t tid;
	int one = 1;

	memset(res, 0, sizeof(*res));
	if (!_node_name_ok(cfg->me) || !_node_name_ok(cfg->next)
	    || !_node_name_ok(cfg->prev))
		return az_err(AZ_EINVAL, err, errlen,
		              "a node name of the job is not one Slurm would "
		              "give");
	if (!cfg->auth)
		return az_err(AZ_EINVAL, err, errlen,
		              "no munge context to prove who talks");
	for (int i = 0; i < PF_MAX_CONNS; i++)
		s.conns[i].fd = -1;
	if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
		return az_err(AZ_EIO, err, errlen, "getrandom: %s",
		              strerror(errno));
	for (size_t i = 0; i < sizeof(nonce); i++)
		snprintf(&s.token[2 * i], 3, "%02x", nonce[i]);
	s.deadline = start + cfg->deadline_s;
	s.lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (s.lfd < 0)
		return az_err(AZ_EIO, err, errlen, "socket: %s",
		              strerror(errno));
	setsockopt(s.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s.lfd, (struct sockaddr *)&sa, sizeof(sa))
	    || listen(s.lfd, 64)) {
		int e = errno;

		close(s.lfd);
		return az_err(e == EADDRINUSE ? AZ_EBUSY : AZ_EIO, err, errlen,
		              "cannot listen on %s:%u: %s%s",
		              inet_ntoa(cfg->listen), cfg->port, strerror(e),
		              e == EACCES ? " (a privileged port: run as root, "
		                            "as slurmd runs a Prolog)"
		                          : "");
	}
	/* A connection gone between poll() and accept() must not block. */
	fcntl(s.lfd, F_SETFL, fcntl(s.lfd, F_GETFL) | O_NONBLOCK);
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
