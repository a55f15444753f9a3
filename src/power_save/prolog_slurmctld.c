/*
 * azrdma-prolog-slurmctld - slurm.conf's PrologSlurmctld: a job whose
 * nodes are booting starts the moment the last of them registers.
 *
 * slurmctld starts a job whose nodes it powered up only at its periodic
 * check (every 30 s), unless a PrologSlurmctld is running: when that ends
 * and the job's nodes are up, slurmctld finishes the job's configuration
 * and launches it at once (prolog_running_decr()).  This program is such a
 * prolog: it runs the site's own PrologSlurmctld first (SitePrologSlurmctld
 * in azrdma.conf; its exit status is ours), then waits until every node of
 * the job is up (registered, and for azrdma's nodes with the address that
 * azrdma-resume pushes, which slurmctld launches the job at), and exits 0.
 *
 * It never fails a job of its own accord: a job slurmctld stops waiting
 * for (cancelled, requeued at ResumeTimeout) ends the wait, and so does
 * the end of ResumeTimeout or of slurmctld's limit on this prolog; the job
 * then goes on as it would without us.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "power.h"
#include "sl_compat.h"
#include "sl_slurm.h"

#define PROGRAM "azrdma-prolog-slurmctld"

/* Between looks at the job's nodes: half of it is the mean delay a
 * registration waits for us.  Each look is one small RPC (and the nodes
 * only when they changed). */
#define PROLOG_POLL_MS 200
/* Stop this long before slurmctld's own limit would kill us: a killed
 * PrologSlurmctld counts as a failed one. */
#define PROLOG_LIMIT_MARGIN_S 5
/* Past ResumeTimeout slurmctld requeues the job itself. */
#define PROLOG_RESUME_MARGIN_S 30

static double _now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void _sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The job slurmctld runs us for; 0 (and why in err) when there is none. */
static uint32_t _job_id(char *err, size_t errlen)
{
	const char *s = getenv("SLURM_JOB_ID");
	char *end;
	unsigned long v;

	if (!s || !*s) {
		snprintf(err, errlen, "SLURM_JOB_ID is not set: slurmctld "
		         "runs this program as PrologSlurmctld");
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > UINT32_MAX) {
		snprintf(err, errlen, "SLURM_JOB_ID=%s is not a job id", s);
		return 0;
	}
	return (uint32_t)v;
}

/*
 * The site's PrologSlurmctld, with our environment (slurmctld's for the
 * job) and no arguments, as slurmctld would run it; its exit status, or 1
 * when it could not run or was killed.
 */
static int _run_site_prolog(const char *path, uint32_t job_id)
{
	pid_t pid, w;
	int status;

	pid = fork();
	if (pid < 0) {
		log_error("job %" PRIu32 ": cannot run SitePrologSlurmctld "
		          "%s: fork: %s", job_id, path, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		execl(path, path, (char *)NULL);
		/* The log is not ours to write from here; stderr goes to
		 * slurmctld's script log. */
		fprintf(stderr, PROGRAM ": exec %s: %s\n", path,
		        strerror(errno));
		_exit(127);
	}
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (w < 0) {
		log_error("job %" PRIu32 ": SitePrologSlurmctld %s: waitpid: %s",
		          job_id, path, strerror(errno));
		return 1;
	}
	if (WIFSIGNALED(status)) {
		log_error("job %" PRIu32 ": SitePrologSlurmctld %s was killed "
		          "by signal %d; the job fails its prolog",
		          job_id, path, WTERMSIG(status));
		return 1;
	}
	if (WEXITSTATUS(status)) {
		log_error("job %" PRIu32 ": SitePrologSlurmctld %s exited %d; "
		          "the job fails its prolog",
		          job_id, path, WEXITSTATUS(status));
		return WEXITSTATUS(status);
	}
	return 0;
}

/* How long the wait may last: short of slurmctld's limit on this prolog,
 * and not beyond ResumeTimeout.  NULL s: slurmctld did not answer. */
static double _wait_limit(const struct sl_ctl_settings *s)
{
	double limit;

	if (!s)
		return 60; /* slurmctld is restarting: its defaults */
	limit = (double)s->resume_timeout + PROLOG_RESUME_MARGIN_S;
	if (s->prolog_timeout) {
		double cap = (double)s->prolog_timeout - PROLOG_LIMIT_MARGIN_S;

		if (cap < limit)
			limit = cap > 0 ? cap : 0;
	}
	return limit;
}

/*
 * Before 23.11.4 a job that slurmctld recovered across its restart while
 * its nodes booted has lost their addresses (sl_compat.h): its steps would
 * hang on the names.  Such a job (slurmctld runs this prolog again for it)
 * is requeued, as azrdma-resume does for it without this prolog, instead
 * of being started the moment its nodes are up.  True if it was.
 */
static bool _requeued_after_restart(uint32_t job_id,
                                    const struct sl_ctl_settings *s)
{
	char err[AZ_ERRLEN];
	time_t start;
	bool done;

	if (!SL_RESTART_LOSES_JOB_ADDRESSES || !s)
		return false;
	if (sl_job_start_time(job_id, &start, err, sizeof(err)) != AZ_OK
	    || start >= s->boot_time)
		return false;
	if (sl_job_requeue_configuring(job_id, &done, err, sizeof(err))
	    != AZ_OK) {
		log_error("job %" PRIu32 ": %s", job_id, err);
		return false;
	}
	if (done)
		log_warn("job %" PRIu32 ": slurmctld restarted while its nodes "
		         "booted, which loses their addresses for the job on "
		         "this Slurm: requeued", job_id);
	else if (err[0])
		log_error("job %" PRIu32 ": slurmctld restarted while its "
		          "nodes booted; its steps may not find them by name: "
		          "%s", job_id, err);
	return done;
}

/* azrdma's nodes get their addresses from azrdma-resume, which may still
 * be sending them (slurmctld restarted) when slurmd has registered. */
static bool _azrdma_node(const char *name, void *arg)
{
	return domain_for_node(arg, name) != NULL;
}

/* Until the job's nodes are all up, or the job waits no more. */
static void _wait_for_nodes(const struct azrdma_conf *conf, uint32_t job_id)
{
	struct sl_node_watch watch = {0};
	enum sl_job_boot boot = SL_JOB_BOOTING;
	struct sl_ctl_settings ctl;
	bool have_ctl, booted = false, warned = false;
	double t0 = _now(), limit;
	char err[AZ_ERRLEN];

	have_ctl = sl_ctl_settings(&ctl, err, sizeof(err)) == AZ_OK;
	if (!have_ctl)
		log_warn("job %" PRIu32 ": %s; waiting at most 60 s", job_id,
		         err);
	limit = _wait_limit(have_ctl ? &ctl : NULL);
	if (_requeued_after_restart(job_id, have_ctl ? &ctl : NULL))
		return;
	for (;;) {
		if (sl_job_boot(job_id, &watch, _azrdma_node, (void *)conf,
		                &boot, err, sizeof(err))
		    != AZ_OK) {
			/* slurmctld restarting, or busy: look again. */
			if (!warned)
				log_warn("job %" PRIu32 ": %s; trying again",
				         job_id, err);
			warned = true;
			boot = SL_JOB_BOOTING;
		}
		if (boot != SL_JOB_BOOTING)
			break;
		booted = true;
		if (_now() - t0 >= limit) {
			log_warn("job %" PRIu32 ": nodes not up after %.0f s; "
			         "slurmctld's periodic check starts the job "
			         "once they are",
			         job_id, limit);
			break;
		}
		_sleep_ms(PROLOG_POLL_MS);
	}
	if (booted && boot == SL_JOB_NODES_UP)
		log_info("job %" PRIu32 ": nodes up after %.1f s; starting it",
		         job_id, _now() - t0);
	sl_node_watch_free(&watch);
}

int main(int argc, char **argv)
{
	struct azrdma_conf *conf = NULL;
	char err[AZ_ERRLEN];
	uint32_t job_id;
	int status = 1;

	(void)argv;
	power_stdio_init();
	sl_init();
	if (power_setup(PROGRAM, &conf, err, sizeof(err)) != AZ_OK) {
		/* The site's prolog cannot be found: fail loudly rather than
		 * run the job without it. */
		log_error("azrdma.conf: %s", err);
		goto out;
	}
	if (argc != 1) {
		log_error("usage: " PROGRAM " (slurm.conf's PrologSlurmctld; "
		          "takes no arguments)");
		goto out;
	}
	if (!(job_id = _job_id(err, sizeof(err)))) {
		log_error("%s", err);
		goto out;
	}
	if (conf->site_prolog_slurmctld) {
		status = _run_site_prolog(conf->site_prolog_slurmctld, job_id);
		if (status)
			goto out;
	}
	_wait_for_nodes(conf, job_id);
	status = 0;
out:
	conf_free(conf);
	sl_fini();
	log_close();
	return status;
}
