/*
 * power.c - start-up, locks, journal, cooldown and reasons shared by the
 * power-save programs.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "arm.h"
#include "conf.h"
#include "fsutil.h"
#include "log.h"
#include "power.h"
#include "sl_slurm.h"

void power_stdio_init(void)
{
	struct rlimit rl;
	int fd;

	/* open() returns the lowest free fd: stop once it is past 2. */
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
	/* One lock file per node: a big resume needs many descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * StateDir (locks, journal, token cache) and LogFile are SlurmUser's, who
 * runs the programs for slurmctld: a file root made there would lock
 * SlurmUser out ("Permission denied", nodes DOWN).  So root, an admin by
 * hand, becomes SlurmUser before any file is touched, and any other user
 * is refused, told whom to run as.  The usual case, SlurmUser in its own
 * StateDir, asks slurmctld nothing.
 */
static enum az_rc _be_slurm_user(const struct azrdma_conf *conf, char *err,
                                 size_t errlen)
{
	struct sl_ctl_settings ctl;
	uid_t me = geteuid();
	struct passwd *pw;
	struct stat st;
	char why[256];

	if (me != 0 && stat(conf->state_dir, &st) == 0 && st.st_uid == me)
		return AZ_OK;
	if (sl_ctl_settings(&ctl, why, sizeof(why)) != AZ_OK)
		return az_err(AZ_EPERM, err, errlen,
		              "cannot tell who SlurmUser is (%s), and StateDir "
		              "%s is not this user's: run this as SlurmUser",
		              why, conf->state_dir);
	if (me == ctl.slurm_user_id)
		return AZ_OK;
	pw = getpwuid(ctl.slurm_user_id);
	if (me != 0)
		return az_err(AZ_EPERM, err, errlen,
		              "running as uid %u, but StateDir %s and LogFile "
		              "must stay SlurmUser's: run this as %s (uid %u), "
		              "e.g. sudo -u %s",
		              (unsigned)me, conf->state_dir,
		              pw ? pw->pw_name : "SlurmUser",
		              (unsigned)ctl.slurm_user_id,
		              pw ? pw->pw_name : "<SlurmUser>");
	if (!pw)
		return az_err(AZ_EPERM, err, errlen,
		              "SlurmUser (uid %u) is not in the user database",
		              (unsigned)ctl.slurm_user_id);
	if (initgroups(pw->pw_name, pw->pw_gid) != 0
	    || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0
	    || geteuid() != pw->pw_uid || setuid(0) == 0)
		return az_err(AZ_EPERM, err, errlen,
		              "cannot become SlurmUser %s: %s", pw->pw_name,
		              strerror(errno));
	return AZ_OK;
}

enum az_rc power_setup(const char *ident, struct azrdma_conf **conf, char *err,
                       size_t errlen)
{
	char *path = conf_default_path();
	enum az_rc rc;

	*conf = NULL;
	if (!path) {
		log_open(ident, NULL, NULL, 0);
		return az_err(AZ_ENOMEM, err, errlen, "out of memory");
	}
	rc = conf_load(path, CONF_CHECK_FILES, conf, NULL, err, errlen);
	free(path);
	if (rc == AZ_OK)
		rc = _be_slurm_user(*conf, err, errlen);
	if (rc != AZ_OK) {
		log_open(ident, NULL, NULL, 0);
		return rc;
	}
	if (log_open(ident, (*conf)->log_file, NULL, 0) != AZ_OK)
		log_open(ident, NULL, NULL, 0);
	log_level_from_env();
	return AZ_OK;
}

char *power_nic_name(const char *node)
{
	char *name;

	if (asprintf(&name, "%s-nic", node) < 0)
		return NULL;
	return name;
}

/*
 * StateDir/<sub>/<name>, with StateDir/<sub> created; caller frees.  name
 * must be a node of azrdma.conf (or, for the cooldown, a domain): names
 * also come from Azure (a VM's tags), and only ours become file names.
 */
static char *_state_path(const struct azrdma_conf *conf, const char *sub,
                         const char *name, char *err, size_t errlen)
{
	bool of_domain = !strcmp(sub, "cooldown");
	char *dir, *path = NULL;

	if (!name || (of_domain ? !conf_domain_find(conf, name)
	                        : !domain_for_node(conf, name))) {
		az_err(AZ_EINVAL, err, errlen,
		       "'%s' is no %s of %s; no state kept for it",
		       name ? name : "(none)", of_domain ? "domain" : "node",
		       conf->path ? conf->path : "azrdma.conf");
		return NULL;
	}
	if (asprintf(&dir, "%s/%s", conf->state_dir, sub) < 0) {
		az_err(AZ_ENOMEM, err, errlen, "out of memory");
		return NULL;
	}
	if (fs_mkdir_p(dir, 0700, err, errlen) == AZ_OK
	    && asprintf(&path, "%s/%s", dir, name) < 0) {
		path = NULL;
		az_err(AZ_ENOMEM, err, errlen, "out of memory");
	}
	free(dir);
	return path;
}

enum az_rc power_lock_node(const struct azrdma_conf *conf, const char *node,
                           unsigned wait_s, int *fd, char *err, size_t errlen)
{
	char *path = _state_path(conf, "locks", node, err, errlen);
	struct timespec nap = {0, 50 * 1000 * 1000};
	unsigned tries = wait_s * 20;

	*fd = -1;
	if (!path)
		return AZ_EIO;
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0) {
		az_err(AZ_EIO, err, errlen, "%s: %s", path, strerror(errno));
		free(path);
		return AZ_EIO;
	}
	free(path);
	for (;;) {
		if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
			return AZ_OK;
		if (errno != EWOULDBLOCK || tries-- == 0)
			break;
		nanosleep(&nap, NULL);
	}
	close(*fd);
	*fd = -1;
	return az_err(AZ_EBUSY, err, errlen,
	              "node %s: another azrdma program holds its lock (waited "
	              "%u s)",
	              node, wait_s);
}

bool power_node_in_use(uint32_t state)
{
	uint32_t base = state & NODE_STATE_BASE;

	if (state & (NODE_STATE_POWERING_DOWN | NODE_STATE_POWER_DOWN))
		return false;
	if (state & (NODE_STATE_POWERING_UP | NODE_STATE_POWER_UP))
		return true;
	return base == NODE_STATE_ALLOCATED || base == NODE_STATE_MIXED
	       || (state & NODE_STATE_COMPLETING);
}

void power_unlock_node(int fd)
{
	if (fd >= 0)
		close(fd);
}

enum az_rc power_journal_write(const struct azrdma_conf *conf, const char *node,
                               const char *entry, char *err, size_t errlen)
{
	char *path = _state_path(conf, "journal", node, err, errlen);
	enum az_rc rc;

	if (!path)
		return AZ_EIO;
	rc = fs_write_atomic_nosync(path, entry, strlen(entry), 0600, err,
	                            errlen);
	free(path);
	return rc;
}

enum az_rc power_journal_sync(const struct azrdma_conf *conf, char *err,
                              size_t errlen)
{
	return fs_sync_fs(conf->state_dir, err, errlen);
}

char *power_journal_read(const struct azrdma_conf *conf, const char *node)
{
	char *path = _state_path(conf, "journal", node, NULL, 0);
	char *data = NULL;

	if (path && fs_read_file(path, 4096, &data, NULL, NULL, 0) != AZ_OK)
		data = NULL;
	free(path);
	return data;
}

void power_journal_clear(const struct azrdma_conf *conf, const char *node)
{
	char *path = _state_path(conf, "journal", node, NULL, 0);

	if (path)
		unlink(path);
	free(path);
}

bool power_journal_format(char *buf, size_t len, const struct power_journal *j)
{
	int n = snprintf(buf, len, "resume job=%u step=%s nic=%s vm=%s\n",
	                 j->job_id, j->step[0] ? j->step : "-",
	                 j->made_nic ? "made" : "-", j->made_vm ? "made" : "-");

	return n > 0 && (size_t)n < len;
}

/* value of "key=value" in word, or NULL */
static const char *_word_value(const char *word, size_t wlen, const char *key,
                               size_t *vlen)
{
	size_t klen = strlen(key);

	if (wlen <= klen || strncmp(word, key, klen) || word[klen] != '=')
		return NULL;
	*vlen = wlen - klen - 1;
	return word + klen + 1;
}

bool power_journal_parse(const char *text, struct power_journal *j)
{
	const char *p = text;

	memset(j, 0, sizeof(*j));
	if (!text || strncmp(text, "resume", 6)
	    || (text[6] && !strchr(" \n", text[6])))
		return false;
	j->resume = true;
	for (p = text + 6; *p && *p != '\n';) {
		size_t wlen, vlen;
		const char *v;

		p += strspn(p, " ");
		wlen = strcspn(p, " \n");
		if ((v = _word_value(p, wlen, "job", &vlen)))
			j->job_id = (uint32_t)strtoul(v, NULL, 10);
		else if ((v = _word_value(p, wlen, "step", &vlen))
		         && vlen < sizeof(j->step) && strncmp(v, "-", vlen))
			snprintf(j->step, sizeof(j->step), "%.*s", (int)vlen,
			         v);
		else if ((v = _word_value(p, wlen, "nic", &vlen)))
			j->made_nic = vlen == 4 && !strncmp(v, "made", 4);
		else if ((v = _word_value(p, wlen, "vm", &vlen)))
			j->made_vm = vlen == 4 && !strncmp(v, "made", 4);
		p += wlen;
	}
	return true;
}

enum az_rc power_image_record(const struct azrdma_conf *conf, const char *node,
                              const char *image, char *err, size_t errlen)
{
	char *path = _state_path(conf, "images", node, err, errlen);
	char *line = NULL;
	enum az_rc rc;
	int n;

	if (!path)
		return AZ_EIO;
	n = asprintf(&line, "%s\n", image);
	if (n < 0) {
		free(path);
		return az_err(AZ_ENOMEM, err, errlen, "out of memory");
	}
	/* Readable by admins, writable by SlurmUser only. */
	rc = fs_write_atomic(path, line, (size_t)n, 0644, err, errlen);
	free(line);
	free(path);
	return rc;
}

char *power_image_recorded(const struct azrdma_conf *conf, const char *node)
{
	char *path = _state_path(conf, "images", node, NULL, 0);
	char *data = NULL;

	if (!path || fs_read_file(path, 256, &data, NULL, NULL, 0) != AZ_OK) {
		free(path);
		return NULL;
	}
	free(path);
	data[strcspn(data, " \t\r\n")] = '\0';
	return data;
}

void power_image_forget(const struct azrdma_conf *conf, const char *node)
{
	char *path = _state_path(conf, "images", node, NULL, 0);

	if (path && unlink(path) == 0)
		log_verbose("%s: image record removed (no disk any more)",
		            node);
	free(path);
}

void power_failed_put(const struct azrdma_conf *conf, const char *node,
                      const char *reason)
{
	char *path = _state_path(conf, "failed", node, NULL, 0);

	if (path)
		fs_write_atomic(path, reason, strlen(reason), 0600, NULL, 0);
	free(path);
}

char *power_failed_take(const struct azrdma_conf *conf, const char *node)
{
	char *path = _state_path(conf, "failed", node, NULL, 0);
	char *data = NULL;

	if (path && fs_read_file(path, 4096, &data, NULL, NULL, 0) == AZ_OK)
		unlink(path);
	else
		data = NULL;
	free(path);
	return data;
}

bool power_cooldown_get(const struct azrdma_conf *conf, const char *domain,
                        char *reason, size_t len, time_t *until)
{
	char *path = _state_path(conf, "cooldown", domain, NULL, 0);
	char *data = NULL, *sp;
	long long end;
	bool on = false;

	if (!path || fs_read_file(path, 4096, &data, NULL, NULL, 0) != AZ_OK)
		goto out;
	end = strtoll(data, &sp, 10);
	if (sp == data || *sp != ' ' || end <= (long long)time(NULL))
		goto out;
	if (until)
		*until = (time_t)end;
	/* The file ends in a newline that is no part of the reason. */
	snprintf(reason, len, "%.*s", (int)strcspn(sp + 1, "\n"), sp + 1);
	power_reason_clean(reason, len);
	on = true;
out:
	free(data);
	free(path);
	return on;
}

void power_cooldown_set(const struct azrdma_conf *conf, const char *domain,
                        const char *reason)
{
	char *path, *data;
	int n;

	if (!conf->capacity_cooldown)
		return;
	path = _state_path(conf, "cooldown", domain, NULL, 0);
	n = asprintf(&data, "%lld %s\n",
	             (long long)time(NULL) + conf->capacity_cooldown, reason);
	if (path && n > 0)
		fs_write_atomic(path, data, (size_t)n, 0600, NULL, 0);
	if (n > 0)
		free(data);
	free(path);
}

const char *power_tag(json_object *res, const char *key)
{
	json_object *tags, *v;

	if (!res || !json_object_object_get_ex(res, "tags", &tags)
	    || !json_object_object_get_ex(tags, key, &v)
	    || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

bool power_resource_ours(const struct azrdma_conf *conf, json_object *res,
                         const char *kind, const char *name,
                         const char *node, char *why, size_t len)
{
	const char *cluster = power_tag(res, TAG_CLUSTER);
	const char *owner = power_tag(res, TAG_NODE);

	if (cluster && owner && !strcmp(cluster, conf->cluster_name)
	    && !strcmp(owner, node))
		return true;
	snprintf(why, len,
	         "%s %s is not azrdma's: its tags %s=%.40s %s=%.40s are not "
	         "%s and %s; left alone (delete it, or tag it so, for azrdma "
	         "to use it)",
	         kind, name, TAG_CLUSTER, cluster ? cluster : "(none)",
	         TAG_NODE, owner ? owner : "(none)", conf->cluster_name, node);
	power_reason_clean(why, len);
	return false;
}

bool power_is_capacity_error(const char *code)
{
	static const char *const capacity[] = {
	        "AllocationFailed",
	        "OverconstrainedAllocationRequest",
	        "ZonalAllocationFailed",
	        "AllocationTimedOut",
	        "OverconstrainedZonalAllocationRequest",
	        NULL};

	for (size_t i = 0; code && capacity[i]; i++)
		if (!strcasecmp(code, capacity[i]))
			return true;
	return false;
}

void power_reason_clean(char *reason, size_t len)
{
	size_t n = strnlen(reason, len ? len - 1 : 0);

	reason[n] = '\0';
	for (char *p = reason; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t' || *p == '"')
			*p = ' ';
	/* A shortened message ends in "..." so nobody takes it as whole. */
	if (n == len - 1 && len > 4)
		memcpy(reason + len - 4, "...", 3);
}

void power_reason(const struct arm_result *res, const char *what, char *reason,
                  size_t len)
{
	if (res && res->error.code)
		snprintf(reason, len, "azrdma: %s: %s", res->error.code,
		         res->error.message ? res->error.message : what);
	else if (res && res->err[0])
		snprintf(reason, len, "azrdma: %s: %s", az_strerror(res->rc),
		         res->err);
	else
		snprintf(reason, len, "azrdma: %s",
		         what ? what : "unknown error");
	power_reason_clean(reason, len);
}

void power_reason_text(char *reason, size_t len, const char *text)
{
	size_t n;

	if (!len)
		return;
	n = (size_t)snprintf(reason, len, "azrdma: ");
	if (n < len)
		strncat(reason, text ? text : "unknown error", len - n - 1);
	power_reason_clean(reason, len);
}
