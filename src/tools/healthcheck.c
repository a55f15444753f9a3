/*
 * azrdma-healthcheck - Slurm's HealthCheckProgram for Azure RDMA nodes.
 *
 *   azrdma-healthcheck [-n node] [-f azrdma.conf] [--root DIR]
 *                      [--timeout S] [--lock-file F] [--no-loopback]
 *                      [--no-drain] [--list]
 *
 * slurmd runs it as root with no arguments and only SLURMD_NODENAME in the
 * environment, kills it after 60 s, and starts the next run whether or not
 * the last one ended.  So: a lock skips overlapping runs, the checks run in
 * a child that a watchdog kills after --timeout (10 s), and the parent,
 * which never hangs on a device, talks to slurmctld: it drains the node
 * with "azrdma: <check>: <detail>" when a check fails, leaves a node
 * drained or down for any other reason alone, and resumes a node it
 * drained itself once every check passes.  See azrdma-healthcheck(8).
 *
 * A check stuck in the kernel (uninterruptible sleep on a hung HCA)
 * survives SIGKILL and cannot be reaped.  The parent reports and drains
 * without waiting for it, and the child keeps the run lock on purpose: the
 * lock file records the run and its stuck check, so every later run that
 * finds the lock held that long fails loudly instead of skipping.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "conf.h"
#include "healthcheck_checks.h"
#include "sl_slurm.h"

#define DEFAULT_TIMEOUT 10.0
/* In /run, which only root writes: in a world-writable /run/lock any
 * user could create the lock first and hold it, and every run would skip. */
#define DEFAULT_LOCK "/run/azrdma-healthcheck.lock"
/* Slurm kills us at 60 s; stop on our own before that, come what may. */
#define HARD_LIMIT 50
/* A lock held longer than any run lasts belongs to a stuck run. */
#define STUCK_AFTER (HARD_LIMIT + 10)
/* How long the parent gives a killed child to be reaped. */
#define REAP_WAIT_MS 1000

struct options {
	const char *node;
	const char *conf_path;
	const char *root;
	const char *lock_file;
	double timeout;
	rlim_t memlock_min; /* 0: unlimited required */
	bool no_drain, list, loopback;
};

/* The outcome of the checks. */
struct outcome {
	char failed[64]; /* first failing check, "" if none */
	char detail[512];
	pid_t stuck_pid; /* a killed child that could not be reaped, or 0 */
	char stuck[64];  /* the check it was in */
};

static void _on_alarm(int sig)
{
	static const char msg[] = "azrdma-healthcheck: hard time limit "
	                          "reached; exiting\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

static void _usage(FILE *out)
{
	fprintf(out,
	        "Usage: azrdma-healthcheck [options]\n"
	        "  -n, --node NAME      the Slurm node (default "
	        "$SLURMD_NODENAME, else the host name)\n"
	        "  -f, --conf FILE      azrdma.conf (default $AZRDMA_CONF, "
	        "beside $SLURM_CONF,\n"
	        "                       or /etc/slurm/azrdma.conf)\n"
	        "  -r, --root DIR       read /sys, /dev and /etc under DIR "
	        "(default /)\n"
	        "  -t, --timeout S      watchdog for the checks (default 10 "
	        "s)\n"
	        "  -l, --lock-file F    lock against overlapping runs "
	        "(default " DEFAULT_LOCK ")\n"
	        "  -m, --min-memlock K  accept a locked memory limit of K KiB "
	        "or more\n"
	        "                       (default: only unlimited)\n"
	        "      --no-loopback    skip the RDMA loopback test\n"
	        "  -N, --no-drain       only report; never change the node in "
	        "Slurm\n"
	        "  -L, --list           list the checks for this node and "
	        "exit\n"
	        "Exit status: 0 healthy (or skipped), 1 a check failed, 2 "
	        "setup error.\n");
}

static int _parse(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
	        {"node", required_argument, NULL, 'n'},
	        {"conf", required_argument, NULL, 'f'},
	        {"root", required_argument, NULL, 'r'},
	        {"timeout", required_argument, NULL, 't'},
	        {"lock-file", required_argument, NULL, 'l'},
	        {"min-memlock", required_argument, NULL, 'm'},
	        {"no-loopback", no_argument, NULL, 'B'},
	        {"no-drain", no_argument, NULL, 'N'},
	        {"list", no_argument, NULL, 'L'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "n:f:r:t:l:m:NLh", longs, NULL))
	       != -1) {
		switch (c) {
		case 'n':
			o->node = optarg;
			break;
		case 'f':
			o->conf_path = optarg;
			break;
		case 'r':
			o->root = optarg;
			break;
		case 't':
			o->timeout = strtod(optarg, &end);
			if (*end || end == optarg
			    || !(o->timeout > 0.0 && o->timeout <= 45.0)) {
				fprintf(stderr,
				        "azrdma-healthcheck: --timeout "
				        "%s: expected 0 < S <= 45\n",
				        optarg);
				return 2;
			}
			break;
		case 'l':
			o->lock_file = optarg;
			break;
		case 'm': {
			unsigned long long k = strtoull(optarg, &end, 10);

			if (*end || end == optarg || !k) {
				fprintf(stderr,
				        "azrdma-healthcheck: "
				        "--min-memlock %s: expected a "
				        "positive number of KiB\n",
				        optarg);
				return 2;
			}
			o->memlock_min = (rlim_t)k * 1024;
			break;
		}
		case 'B':
			o->loopback = false;
			break;
		case 'N':
			o->no_drain = true;
			break;
		case 'L':
			o->list = true;
			break;
		case 'h':
			_usage(stdout);
			return 1;
		default:
			_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
		        "azrdma-healthcheck: unexpected argument '%s'\n",
		        argv[optind]);
		return 2;
	}
	return 0;
}

static double _now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The child: run each check, one line per event on fd. */
static void _run_checks(const struct hc_ctx *ctx, int fd)
{
	size_t n;
	const struct hc_check *checks = hc_checks(&n);

	for (size_t i = 0; i < n; i++) {
		char detail[512] = "", line[700];
		enum hc_result r;
		int len;

		if (!hc_check_applies(&checks[i], ctx->size))
			continue;
		len = snprintf(line, sizeof(line), "B %s\n", checks[i].name);
		if (write(fd, line, (size_t)len) < 0)
			return;
		r = checks[i].fn(ctx, detail, sizeof(detail));
		detail[strcspn(detail, "\n")] = '\0';
		len = snprintf(line, sizeof(line), "R %s %d %s\n",
		               checks[i].name, (int)r, detail);
		if (len > (int)sizeof(line) - 1)
			len = (int)sizeof(line) - 1, line[len - 1] = '\n';
		if (write(fd, line, (size_t)len) < 0)
			return;
	}
}

/* One line from the child: print it, note the first failure. */
static void _event(char *line, char *current, size_t curlen,
                   struct outcome *out)
{
	static const char *const names[] = {"PASS", "FAIL", "SKIP"};
	char name[64];
	int res, off = 0;

	if (line[0] == 'B') {
		snprintf(current, curlen, "%.63s", line + 2);
		return;
	}
	if (sscanf(line, "R %63s %d %n", name, &res, &off) < 2 || res < 0
	    || res > 2)
		return;
	current[0] = '\0';
	printf("%s %s%s%s\n", names[res], name, line[off] ? ": " : "",
	       line + off);
	if (res == HC_FAIL && !out->failed[0]) {
		snprintf(out->failed, sizeof(out->failed), "%s", name);
		snprintf(out->detail, sizeof(out->detail), "%s", line + off);
	}
}

/* Fork the checks and watch them; a hang becomes a "watchdog" failure. */
static int _checks_with_watchdog(const struct hc_ctx *ctx, double timeout,
                                 struct outcome *out)
{
	char buf[8192], current[64] = "";
	size_t used = 0;
	double deadline = _now() + timeout;
	bool eof = false;
	int fds[2], status;
	pid_t pid;

	if (pipe(fds) != 0) {
		perror("azrdma-healthcheck: pipe");
		return -1;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("azrdma-healthcheck: fork");
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		setpgid(0, 0);
		close(fds[0]);
		/* A stuck child must not hold slurmd's output pipe open. */
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		_run_checks(ctx, fds[1]);
		_exit(0);
	}
	close(fds[1]);
	while (!eof) {
		double left = deadline - _now();
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		ssize_t got;
		char *nl;

		if (left <= 0.0)
			break;
		if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		got = read(fds[0], buf + used, sizeof(buf) - 1 - used);
		if (got <= 0) {
			eof = got == 0 || errno != EINTR;
			continue;
		}
		used += (size_t)got;
		buf[used] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			_event(buf, current, sizeof(current), out);
			memmove(buf, nl + 1, used - (size_t)(nl + 1 - buf) + 1);
			used -= (size_t)(nl + 1 - buf);
		}
		if (used == sizeof(buf) - 1)
			used = 0; /* a line that long is garbage */
	}
	close(fds[0]);
	if (eof) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return 0;
	}
	/* Report before anything else: the child may never die. */
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	snprintf(out->stuck, sizeof(out->stuck), "%s",
	         current[0] ? current : "checks");
	printf("FAIL %s: did not finish in %.0f s\n", out->stuck, timeout);
	if (!out->failed[0]) {
		snprintf(out->failed, sizeof(out->failed), "%s", out->stuck);
		snprintf(out->detail, sizeof(out->detail),
		         "did not finish in %.0f s", timeout);
	}
	for (int waited = 0; waited < REAP_WAIT_MS; waited += 20) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid || (r < 0 && errno != EINTR))
			return 0;
		usleep(20 * 1000);
	}
	/* Uninterruptible: it keeps the run lock until it ends (see top). */
	out->stuck_pid = pid;
	printf("azrdma-healthcheck: the process of check %s (pid %d) did not "
	       "die on SIGKILL; later runs fail until it ends\n",
	       out->stuck, (int)pid);
	return 0;
}

/* Drain, resume or leave the node as hc_decide says. */
static int _apply(const char *node, const struct outcome *out)
{
	struct sl_node sn;
	char err[AZ_ERRLEN], reason[700] = "";
	enum hc_action action;
	enum az_rc rc = AZ_OK;

	if (out->failed[0])
		snprintf(reason, sizeof(reason), "%s%s: %s", HC_REASON_PREFIX,
		         out->failed, out->detail);
	sl_init();
	if (sl_node_load(node, &sn, err, sizeof(err)) != AZ_OK) {
		fprintf(stderr, "azrdma-healthcheck: %s\n", err);
		sl_fini();
		return 2;
	}
	action = hc_decide(sn.state, sn.reason, reason[0] ? reason : NULL);
	switch (action) {
	case HC_DRAIN:
		rc = sl_node_set_state(node, NODE_STATE_DRAIN, reason, err,
		                       sizeof(err));
		if (rc == AZ_OK)
			printf("drained %s: %s\n", node, reason);
		break;
	case HC_RESUME:
		rc = sl_node_set_state(node, NODE_RESUME, NULL, err,
		                       sizeof(err));
		if (rc == AZ_OK)
			printf("resumed %s (was: %s)\n", node, sn.reason);
		break;
	case HC_LEAVE_ALONE:
		printf("left %s alone: it is drained or down for another "
		       "reason (%s)\n",
		       node, sn.reason ? sn.reason : "no reason");
		break;
	case HC_NOTHING:
		break;
	}
	if (rc != AZ_OK)
		fprintf(stderr, "azrdma-healthcheck: %s\n", err);
	sl_node_free(&sn);
	sl_fini();
	return rc == AZ_OK ? 0 : 2;
}

static int _lock(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	struct stat st;

	if (fd < 0) {
		fprintf(stderr, "azrdma-healthcheck: lock %s: %s\n", path,
		        errno == ELOOP ? "is a symbolic link; remove it"
		                       : strerror(errno));
		return -2;
	}
	/* A lock someone else owns could be held by them forever. */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)
	    || st.st_uid != geteuid()) {
		fprintf(stderr,
		        "azrdma-healthcheck: lock %s is not a regular file of "
		        "uid %u: whoever owns it could stop every run; remove "
		        "it, or give --lock-file in a directory only root "
		        "writes\n",
		        path, (unsigned)geteuid());
		close(fd);
		return -2;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return errno == EWOULDBLOCK ? -1 : -2;
	}
	return fd;
}

/*
 * What the lock file says of the run that holds it:
 * "pid=<parent> started=<epoch s>[ stuck=<check> child=<pid>]".
 */
struct lock_record {
	long long started;
	int pid, child;
	char stuck[64];
};

static void _lock_record_write(int fd, const struct lock_record *r)
{
	char line[160];
	int n;

	if (r->stuck[0])
		n = snprintf(line, sizeof(line),
		             "pid=%d started=%lld stuck=%s child=%d\n", r->pid,
		             r->started, r->stuck, r->child);
	else
		n = snprintf(line, sizeof(line), "pid=%d started=%lld\n",
		             r->pid, r->started);
	if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n)
		fprintf(stderr, "azrdma-healthcheck: cannot record the run in "
		                "its lock file: %s\n", strerror(errno));
}

/* Read the record of the run holding path; false if there is none. */
static bool _lock_record_read(const char *path, struct lock_record *r)
{
	char line[160] = "", *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	memset(r, 0, sizeof(*r));
	if (fd < 0)
		return false;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0)
		return false;
	line[n] = '\0';
	if (sscanf(line, "pid=%d started=%lld", &r->pid, &r->started) != 2)
		return false;
	p = strstr(line, " stuck=");
	if (p && sscanf(p, " stuck=%63s child=%d", r->stuck, &r->child) != 2)
		r->stuck[0] = '\0';
	return true;
}

/*
 * Another run holds the lock.  A run lasts HARD_LIMIT s at most, so a lock
 * held longer, or by a run whose check was stuck, is held by a check that
 * could not be killed: that is a failure of the node, never a reason to
 * skip.  Returns true (and fills out) for a stuck holder.
 */
static bool _holder_is_stuck(const char *path, double timeout,
                             struct outcome *out)
{
	struct lock_record r;
	long long age;

	if (!_lock_record_read(path, &r))
		return false;
	age = (long long)time(NULL) - r.started;
	if (!r.stuck[0] && age < STUCK_AFTER)
		return false;
	snprintf(out->failed, sizeof(out->failed), "%s",
	         r.stuck[0] ? r.stuck : "checks");
	if (r.stuck[0])
		snprintf(out->detail, sizeof(out->detail),
		         "did not finish in %.0f s and could not be killed "
		         "(pid %d, %lld s ago)",
		         timeout, r.child, age);
	else
		snprintf(out->detail, sizeof(out->detail),
		         "a run started %lld s ago (pid %d) still holds %s",
		         age, r.pid, path);
	printf("FAIL %s: %s\n", out->failed, out->detail);
	return true;
}

int main(int argc, char **argv)
{
	struct options o = {.timeout = DEFAULT_TIMEOUT,
	                    .root = "/",
	                    .lock_file = DEFAULT_LOCK,
	                    .loopback = true};
	struct azrdma_conf *conf = NULL;
	const struct conf_domain *dom;
	struct hc_iface *ifaces = NULL;
	struct outcome out = {.failed = ""};
	struct lock_record record = {0};
	struct hc_ctx ctx = {0};
	struct rlimit rl;
	char err[AZ_ERRLEN], host[256], *path = NULL;
	int rc, lock = -1;

	signal(SIGALRM, _on_alarm);
	alarm(HARD_LIMIT);
	rc = _parse(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (!o.node)
		o.node = getenv("SLURMD_NODENAME");
	if (!o.node || !*o.node) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		host[strcspn(host, ".")] = '\0';
		o.node = host;
	}

	path = o.conf_path ? strdup(o.conf_path) : conf_default_path();
	if (!path
	    || conf_load(path, 0, &conf, NULL, err, sizeof(err)) != AZ_OK) {
		fprintf(stderr, "azrdma-healthcheck: %s\n",
		        path ? err : "out of memory");
		rc = 2;
		goto out;
	}
	dom = domain_for_node(conf, o.node);
	if (!dom || !dom->size || dom->size->rdma == RDMA_NONE) {
		printf("azrdma-healthcheck: %s is in no RDMA Domain of %s; "
		       "nothing to check\n",
		       o.node, path);
		rc = 0;
		goto out;
	}
	ctx.root = o.root;
	ctx.size = dom->size;
	ctx.loopback = o.loopback;
	if (o.list) {
		size_t n;
		const struct hc_check *checks = hc_checks(&n);

		printf("# %s: Domain=%s VmSize=%s (%s)\n", o.node, dom->name,
		       dom->size->name, rdma_kind_name(dom->size->rdma));
		for (size_t i = 0; i < n; i++)
			if (hc_check_applies(&checks[i], ctx.size))
				printf("%-15s %s\n", checks[i].name,
				       checks[i].what);
		rc = 0;
		goto out;
	}

	lock = _lock(o.lock_file);
	if (lock == -1 && _holder_is_stuck(o.lock_file, o.timeout, &out)) {
		rc = 1;
		if (!o.no_drain) {
			int arc = _apply(o.node, &out);

			if (arc)
				rc = arc;
		}
		goto out;
	}
	if (lock == -1) {
		printf("azrdma-healthcheck: another run holds %s; skipping\n",
		       o.lock_file);
		rc = 0;
		goto out;
	}
	if (lock < 0) {
		rc = 2;
		goto out;
	}
	record.pid = (int)getpid();
	record.started = (long long)time(NULL);
	_lock_record_write(lock, &record);
	if (hc_ifaces_read(&ifaces, &ctx.iface_count, err, sizeof(err))
	    != AZ_OK) {
		fprintf(stderr, "azrdma-healthcheck: %s\n", err);
		rc = 2;
		goto out;
	}
	ctx.ifaces = ifaces;
	ctx.memlock = getrlimit(RLIMIT_MEMLOCK, &rl) == 0 ? rl.rlim_cur : 0;
	ctx.memlock_min = o.memlock_min;

	if (_checks_with_watchdog(&ctx, o.timeout, &out) != 0) {
		rc = 2;
		goto out;
	}
	if (out.stuck_pid) {
		snprintf(record.stuck, sizeof(record.stuck), "%s", out.stuck);
		record.child = (int)out.stuck_pid;
		_lock_record_write(lock, &record);
	}
	rc = out.failed[0] ? 1 : 0;
	if (!o.no_drain) {
		int arc = _apply(o.node, &out);

		if (arc)
			rc = arc;
	}
out:
	fflush(stdout);
	if (lock >= 0)
		close(lock);
	free(ifaces);
	conf_free(conf);
	free(path);
	return rc;
}
