/*
 * azrdma-config - the administrator's tool for azrdma.conf.
 *
 *   azrdma-config [-f azrdma.conf] [-s slurm.conf] [-v] check
 *   azrdma-config [-f azrdma.conf] slurm-conf
 *   azrdma-config [-f azrdma.conf] show [sizes]
 *   azrdma-config [-f azrdma.conf] [-v] azure
 *
 * check validates azrdma.conf and its consistency with slurm.conf, and
 * that the azrdma plugins in PluginDir were built for the Slurm release
 * slurmctld runs, and prints each problem with its fix (exit 1 on
 * errors); slurm-conf prints
 * the slurm.conf lines azrdma.conf implies; show lists domains, sizes and
 * images; azure proves access: a token, then the resource group's VMs and
 * availability sets.  See azrdma-config(8).
 */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "arm.h"
#include "conf.h"
#include "conf_lex.h"
#include "feature_set.h"
#include "hostlist.h"
#include "log.h"
#include "sl_compat.h"
#include "sl_slurm.h"
#include "slurm_conf_read.h"

#ifndef SBINDIR
#define SBINDIR "/usr/sbin"
#endif

/* Memory Azure's guests see is a little below the size's nominal memory;
 * RealMemory is set this much lower so registration is never refused. */
#define MEMORY_MARGIN_PERCENT 5
/* A new VM: create (about 3 minutes) plus boot and cloud-init to slurmd. */
#define EXPECTED_BOOT_SECONDS 600

struct options {
	const char *conf_path;
	const char *slurm_conf_path;
	int verbose;
};

static void _usage(FILE *out)
{
	fprintf(out,
		"Usage: azrdma-config [-f azrdma.conf] [-s slurm.conf] [-v] "
		"COMMAND\n"
		"Commands:\n"
		"  check        validate azrdma.conf and its consistency with "
		"slurm.conf\n"
		"  slurm-conf   print the slurm.conf lines azrdma.conf implies\n"
		"  show [sizes] list domains, images and VM sizes\n"
		"  azure        get a token and list the resource group's VMs "
		"and\n"
		"               availability sets, proving access\n"
		"Defaults: azrdma.conf from $AZRDMA_CONF or beside $SLURM_CONF "
		"(/etc/slurm),\n"
		"slurm.conf from $SLURM_CONF or /etc/slurm/slurm.conf.\n");
}

/* Print diagnostics; returns the number of errors. */
static size_t _print_diags(const struct conf_diags *d)
{
	for (size_t i = 0; i < d->count; i++)
		printf("%s: %s\n", d->items[i].is_error ? "error" : "warning",
		       d->items[i].message);
	return d->errors;
}

static struct azrdma_conf *_load(const struct options *o, unsigned flags,
				 bool print_diags)
{
	struct conf_diags diags = {0};
	struct azrdma_conf *conf = NULL;
	char err[AZ_ERRLEN];

	conf_load(o->conf_path, flags, &conf, &diags, err, sizeof(err));
	if (print_diags || !conf)
		_print_diags(&diags);
	if (!conf)
		fprintf(stderr, "azrdma-config: %s is not usable (%zu %s)\n",
			o->conf_path, diags.errors,
			diags.errors == 1 ? "error" : "errors");
	conf_diags_free(&diags);
	return conf;
}

/* ---- check: slurm.conf consistency ------------------------------------ */

struct check {
	const struct slurm_conf *sc;
	const char *sc_path;
	struct conf_diags diags;
};

static bool _list_has(const char *list, const char *item)
{
	char *copy, *tok, *save = NULL;
	bool found = false;

	if (!list || !(copy = strdup(list)))
		return false;
	for (tok = strtok_r(copy, ",", &save); tok && !found;
	     tok = strtok_r(NULL, ",", &save)) {
		const char *slash = strchr(tok, '/');

		found = !strcasecmp(tok, item)
			|| (slash && !strcasecmp(slash + 1, item));
	}
	free(copy);
	return found;
}

static int _line_of(const struct slurm_conf *sc, const char *key,
		    const char **file)
{
	const struct slurm_conf_line *where = NULL;

	*file = sc->files[0].path;
	if (!slurm_conf_get(sc, key, &where) || !where)
		return 0;
	*file = where->file;
	return where->lineno;
}

static void _check_program(struct check *ck, const char *key,
			   const char *program)
{
	const char *file;
	const char *v = slurm_conf_get(ck->sc, key, NULL);
	int line = _line_of(ck->sc, key, &file);
	struct stat st;

	if (!v) {
		conf_diag_add(&ck->diags, true, ck->sc_path, 0,
			      "%s is not set; add %s=%s/%s", key, key, SBINDIR,
			      program);
		return;
	}
	if (v[0] != '/') {
		conf_diag_add(&ck->diags, true, file, line,
			      "%s=%s: slurmctld needs an absolute path, e.g. "
			      "%s/%s",
			      key, v, SBINDIR, program);
		return;
	}
	if (!strstr(v, program))
		conf_diag_add(&ck->diags, false, file, line,
			      "%s=%s is not %s; azrdma's nodes are powered by "
			      "%s/%s",
			      key, v, program, SBINDIR, program);
	if (stat(v, &st) < 0) {
		conf_diag_add(&ck->diags, true, file, line,
			      "%s=%s: %s; install azrdma there or fix the path",
			      key, v, strerror(errno));
		return;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		conf_diag_add(&ck->diags, true, file, line,
			      "%s=%s is group- or world-writable, so slurmctld "
			      "disables power save; run chmod go-w %s",
			      key, v, v);
}

/* Is node a State=CLOUD node in slurm.conf?  Sets *line to its line. */
static bool _cloud_node(const struct slurm_conf *sc, const char *node,
			bool *defined, const struct slurm_conf_line **line)
{
	*defined = false;
	for (size_t i = 0; i < sc->node_count; i++) {
		const struct slurm_conf_line *l = &sc->nodes[i];
		const char *names = slurm_conf_line_get(l, "NodeName");
		const char *state = slurm_conf_line_get(l, "State");
		char **list = NULL;
		size_t n = 0;
		bool hit = false;

		if (!names || !strcasecmp(names, "DEFAULT"))
			continue;
		if (hostlist_expand(names, &list, &n, NULL, 0) != AZ_OK)
			continue;
		for (size_t j = 0; j < n && !hit; j++)
			hit = !strcmp(list[j], node);
		hostnames_free(list, n);
		if (!hit)
			continue;
		*defined = true;
		*line = l;
		return state && !strcasecmp(state, "CLOUD");
	}
	return false;
}

/*
 * Does a NodeName line give its nodes an address that needs no lookup
 * (every NodeAddr entry SL_NO_HOST_ADDR)?  Only asked where Slurm would
 * look a powered-down node's name up (sl_compat.h).
 */
static bool _addr_needs_no_lookup(const struct slurm_conf_line *l)
{
	const char *addrs = slurm_conf_line_get(l, "NodeAddr");
	size_t len = strlen(SL_NO_HOST_ADDR);

	if (!addrs || !*addrs)
		return false;
	for (const char *p = addrs; *p; p += len + (p[len] == ',')) {
		if (strncmp(p, SL_NO_HOST_ADDR, len)
		    || (p[len] != ',' && p[len] != '\0'))
			return false;
	}
	return true;
}

static void _check_nodes(struct check *ck, const struct azrdma_conf *conf)
{
	for (size_t i = 0; i < conf->domain_count; i++) {
		const struct conf_domain *d = &conf->domains[i];
		size_t missing = 0, not_cloud = 0, named = 0;
		const char *first_missing = NULL, *first_not_cloud = NULL;
		const struct slurm_conf_line *where = NULL, *first_named = NULL;

		for (size_t j = 0; j < d->node_count; j++) {
			bool defined;

			if (_cloud_node(ck->sc, d->node_names[j], &defined,
					&where)) {
				if (SL_POWERED_DOWN_NEEDS_ADDR
				    && !_addr_needs_no_lookup(where)
				    && !named++)
					first_named = where;
				continue;
			}
			if (!defined) {
				if (!missing++)
					first_missing = d->node_names[j];
			} else if (!not_cloud++) {
				first_not_cloud = d->node_names[j];
			}
		}
		if (missing)
			conf_diag_add(&ck->diags, true, conf->path, d->line,
				      "Domain=%s: %zu of its nodes (e.g. %s) "
				      "are not in %s; add the NodeName lines "
				      "'azrdma-config slurm-conf' prints",
				      d->name, missing, first_missing,
				      ck->sc_path);
		if (named)
			conf_diag_add(&ck->diags, false, first_named->file,
				      first_named->lineno,
				      "Domain=%s: %zu of its nodes have no "
				      "NodeAddr=%s, so while one has no VM, "
				      "slurmctld %s looks its name up when it "
				      "cancels a job, and every other RPC waits "
				      "for DNS; add NodeAddr as 'azrdma-config "
				      "slurm-conf' prints it (one entry per node)",
				      d->name, named, SL_NO_HOST_ADDR,
				      AZRDMA_SLURM_VERSION);
		if (not_cloud)
			conf_diag_add(&ck->diags, true, conf->path, d->line,
				      "Domain=%s: %zu of its nodes (e.g. %s) "
				      "are not State=CLOUD in slurm.conf; add "
				      "State=CLOUD to their NodeName line so "
				      "power save provisions them",
				      d->name, not_cloud, first_not_cloud);
	}
}

static size_t _total_nodes(const struct azrdma_conf *conf)
{
	size_t n = 0;

	for (size_t i = 0; i < conf->domain_count; i++)
		n += conf->domains[i].node_count;
	return n;
}

/* slurm.conf list keys that must (or should) name an item. */
struct list_rule {
	const char *key;
	const char *item;
	bool is_error;
	const char *message;
};

static const struct list_rule _list_rules[] = {
	{"PrivateData", "cloud", true,
	 "PrivateData does not include cloud, so powered-down nodes are "
	 "hidden from azrdma's programs; add PrivateData=cloud"},
	{"JobSubmitPlugins", "azrdma", false,
	 "JobSubmitPlugins does not include azrdma, so nothing keeps an MPI "
	 "job inside one fabric; add JobSubmitPlugins=azrdma"},
	{"SlurmctldParameters", "idle_on_node_suspend", false,
	 "SlurmctldParameters lacks idle_on_node_suspend, so a node that "
	 "failed to resume stays down after its VM is deallocated; add it"},
#if SL_CONF_HAS_CLOUD_REG_ADDRS
	{"CommunicationParameters", "NoAddrCache", false,
	 "CommunicationParameters lacks NoAddrCache; a node that comes back "
	 "with a new address may be unreachable; add "
	 "CommunicationParameters=NoAddrCache"},
#endif
};

/*
 * cloud_reg_addrs resets a powered-down node's address to its name, which
 * slurmctld before 23.11.2 looks up when it cancels a job whose nodes are
 * still powering up (sl_compat.h); azrdma sets the addresses itself.
 */
static void _check_cloud_reg_addrs(struct check *ck)
{
	const char *file;
	int line;

	if (!SL_POWERED_DOWN_NEEDS_ADDR
	    || !_list_has(slurm_conf_get(ck->sc, "SlurmctldParameters", NULL),
	                  "cloud_reg_addrs"))
		return;
	line = _line_of(ck->sc, "SlurmctldParameters", &file);
	conf_diag_add(&ck->diags, false, file, line,
		      "SlurmctldParameters has cloud_reg_addrs, which sets a "
		      "powered-down node's NodeAddr back to its name; slurmctld "
		      "%s looks that name up when it cancels a job whose nodes "
		      "are still powering up, and every other RPC waits for DNS; "
		      "remove cloud_reg_addrs (azrdma-resume sets each node's "
		      "address)",
		      AZRDMA_SLURM_VERSION);
}

/*
 * Configless nodes get no azrdma.conf: an srun or salloc job's MPI profile
 * reaches them through spank/azrdma's job prolog, which sees the job's
 * record only when the prolog runs at allocation (Contain implies Alloc).
 */
static void _check_configless(struct check *ck)
{
	const char *file, *flags;
	int line;

	if (!_list_has(slurm_conf_get(ck->sc, "SlurmctldParameters", NULL),
	               "enable_configless"))
		return;
	flags = slurm_conf_get(ck->sc, "PrologFlags", NULL);
	if (_list_has(flags, "Alloc") || _list_has(flags, "Contain"))
		return;
	line = _line_of(ck->sc, "SlurmctldParameters", &file);
	conf_diag_add(&ck->diags, false, file, line,
		      "SlurmctldParameters has enable_configless, which ships "
		      "no azrdma.conf to the nodes, and PrologFlags has no "
		      "Alloc, so srun and salloc jobs get no MPI profile "
		      "there; add PrologFlags=Alloc (spank/azrdma's job "
		      "prolog then keeps the job's profile) or install "
		      "azrdma.conf on the nodes");
}

/*
 * PrologSlurmctld: without azrdma's, slurmctld starts a job whose nodes it
 * powered up only at its periodic check (every 30 s).  Releases before
 * 24.05 run one PrologSlurmctld (the last line); later ones run each line.
 */
static void _check_prolog_slurmctld(struct check *ck,
                                    const struct azrdma_conf *conf)
{
	const struct slurm_conf_line *ours = NULL, *site = NULL, *last = NULL;
	const char *file, *v, *site_v = NULL;
	int line;

	for (size_t i = 0; i < ck->sc->global_count; i++) {
		const struct slurm_conf_line *l = &ck->sc->globals[i];

		if (!(v = slurm_conf_line_get(l, "PrologSlurmctld")))
			continue;
		last = l;
		if (strstr(v, "azrdma-prolog-slurmctld")) {
			ours = l;
		} else {
			site = l;
			site_v = v;
		}
	}
	if (!ours) {
		conf_diag_add(&ck->diags, false,
			      site ? site->file : ck->sc_path,
			      site ? site->lineno : 0,
			      "PrologSlurmctld is not azrdma-prolog-slurmctld, so "
			      "a job whose nodes were powered down starts only at "
			      "slurmctld's periodic check, up to 30 s (15 s on "
			      "average) after its last node registered; add "
			      "PrologSlurmctld=%s/azrdma-prolog-slurmctld%s%s%s",
			      SBINDIR,
			      site ? " and move " : "", site ? site_v : "",
			      site ? " to azrdma.conf's SitePrologSlurmctld "
			             "(it runs first, and its exit status "
			             "still counts)"
			           : "");
		return;
	}
#if !SL_SLURM_AT_LEAST(24, 5)
	if (last != ours) {
		conf_diag_add(&ck->diags, false, last->file, last->lineno,
			      "PrologSlurmctld is set again after azrdma's line; "
			      "Slurm %s runs only the last one, so cold jobs wait "
			      "up to 30 s; keep azrdma's line and name the other "
			      "program in azrdma.conf's SitePrologSlurmctld",
			      AZRDMA_SLURM_VERSION);
		return;
	}
#else
	(void)last;
#endif
	if (site && conf->site_prolog_slurmctld
	    && !strcmp(site_v, conf->site_prolog_slurmctld))
		conf_diag_add(&ck->diags, false, site->file, site->lineno,
			      "PrologSlurmctld=%s is also azrdma.conf's "
			      "SitePrologSlurmctld, so it runs twice per job; "
			      "keep it in one place",
			      site_v);
	v = slurm_conf_get(ck->sc, SL_PROLOG_TIMEOUT_KEY, NULL);
	line = _line_of(ck->sc, SL_PROLOG_TIMEOUT_KEY, &file);
	if (v && strtoul(v, NULL, 10) > 0
	    && strtoul(v, NULL, 10) < EXPECTED_BOOT_SECONDS)
		conf_diag_add(&ck->diags, false, file, line,
			      "%s=%s is shorter than the %d s a VM takes to "
			      "boot, so azrdma-prolog-slurmctld stops waiting "
			      "before the nodes are up and such jobs start at "
			      "slurmctld's periodic check (up to 30 s late); "
			      "raise it above ResumeTimeout or remove it",
			      SL_PROLOG_TIMEOUT_KEY, v, EXPECTED_BOOT_SECONDS);
}

static void _check_globals(struct check *ck, const struct azrdma_conf *conf)
{
	const struct slurm_conf *sc = ck->sc;
	const char *file, *v;
	int line;

	_check_program(ck, "ResumeProgram", "azrdma-resume");
	_check_program(ck, "SuspendProgram", "azrdma-suspend");
	_check_program(ck, "ResumeFailProgram", "azrdma-resume-fail");

	v = slurm_conf_get(sc, "SuspendTime", NULL);
	line = _line_of(sc, "SuspendTime", &file);
	if (!v || !strcasecmp(v, "INFINITE") || !strcmp(v, "-1"))
		conf_diag_add(&ck->diags, true, file, line,
			      "SuspendTime is %s, so power save is off and no "
			      "VM is ever deallocated; set e.g. SuspendTime=600",
			      v ? v : "not set");

	v = slurm_conf_get(sc, "TreeWidth", NULL);
	line = _line_of(sc, "TreeWidth", &file);
	if (!v || strtoul(v, NULL, 10) < _total_nodes(conf))
		conf_diag_add(&ck->diags, true, file, line,
			      "TreeWidth is %s but cloud nodes do not know "
			      "each other's addresses, so slurmd must not "
			      "forward; set TreeWidth=65533",
			      v ? v : "not set (default 50)");

	v = slurm_conf_get(sc, "ResumeTimeout", NULL);
	line = _line_of(sc, "ResumeTimeout", &file);
	if (!v || strtoul(v, NULL, 10) < EXPECTED_BOOT_SECONDS)
		conf_diag_add(&ck->diags, false, file, line,
			      "ResumeTimeout is %s s, shorter than the %d s a "
			      "new Azure VM takes to be created and boot to "
			      "slurmd; set ResumeTimeout=%d or more",
			      v ? v : "60 (default)", EXPECTED_BOOT_SECONDS,
			      EXPECTED_BOOT_SECONDS);

	for (size_t i = 0; i < sizeof(_list_rules) / sizeof(_list_rules[0]);
	     i++) {
		const struct list_rule *r = &_list_rules[i];

		v = slurm_conf_get(sc, r->key, NULL);
		line = _line_of(sc, r->key, &file);
		if (!_list_has(v, r->item))
			conf_diag_add(&ck->diags, r->is_error, file, line, "%s",
				      r->message);
	}
	_check_cloud_reg_addrs(ck);
	_check_configless(ck);
	_check_prolog_slurmctld(ck, conf);
}

/*
 * Cloud nodes and changeable features from 23.02: a powered-down node's
 * available features are slurm.conf's, so every image must be there.
 */
static void _check_image_features(struct check *ck,
				  const struct azrdma_conf *conf)
{
#if SL_CLOUD_FEATURES_CLEARED_AT_POWER_DOWN
	for (size_t i = 0; i < conf->domain_count; i++) {
		const struct conf_domain *d = &conf->domains[i];
		const struct slurm_conf_line *where = NULL;
		const char *features;
		bool defined;

		if (!d->node_count
		    || !_cloud_node(ck->sc, d->node_names[0], &defined, &where)
		    || !where)
			continue;
		features = slurm_conf_line_get(where, "Feature");
		if (!features)
			features = slurm_conf_line_get(where, "Features");
		for (size_t j = 0; j < conf->image_count; j++) {
			char name[256];

			snprintf(name, sizeof(name), FEATURE_IMAGE_PREFIX "%s",
				 conf->images[j].name);
			if (_list_has(features, name))
				continue;
			conf_diag_add(&ck->diags, true, where->file,
				      where->lineno,
				      "the nodes of Domain=%s lack the feature %s "
				      "in Feature=; from Slurm 23.02 a "
				      "powered-down node has only the features "
				      "slurm.conf gives it, so jobs asking -C %s "
				      "are refused; use the NodeName lines "
				      "'azrdma-config slurm-conf' prints",
				      d->name, name, name);
		}
	}
#endif
}

/* ---- check: the Slurm release the plugins were built for -------------- */

static const char *const _plugin_files[] = {
	"job_submit_azrdma.so", "node_features_azrdma.so", "spank_azrdma.so"};

/* The release a plugin file was built for (its plugin_version). */
static bool _plugin_built_for(const char *path, uint32_t *number, char *err,
			      size_t errlen)
{
	/* Its Slurm functions bind lazily: nothing of it runs here. */
	void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	const uint32_t *v;

	if (!h) {
		snprintf(err, errlen, "%s", dlerror());
		return false;
	}
	v = dlsym(h, "plugin_version");
	if (v)
		*number = *v;
	else
		snprintf(err, errlen, "it has no plugin_version");
	dlclose(h);
	return v != NULL;
}

#define PLUGIN_FILE_COUNT (sizeof(_plugin_files) / sizeof(*_plugin_files))

/*
 * One azrdma plugin file, if dir has it (1, else 0): the release it was
 * built for against the release it must load into (against; whose says
 * where that comes from).
 */
static size_t _check_plugin_file(struct check *ck, const char *dir,
				 const char *file, const char *against,
				 const char *whose)
{
	char path[4096], built[32], err[AZ_ERRLEN];
	/* SPANK: major.minor ("26.05"); the others: all of it. */
	size_t cmp = strncmp(file, "spank", 5) ? sizeof(built) : 5;
	uint32_t number;
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (stat(path, &st) < 0)
		return 0;
	if (!_plugin_built_for(path, &number, err, sizeof(err))) {
		conf_diag_add(&ck->diags, true, path, 0,
			      "cannot read the Slurm release it was built "
			      "for: %s; reinstall azrdma",
			      err);
		return 1;
	}
	sl_version_string(number, built, sizeof(built));
	if (strncmp(built, against, cmp))
		conf_diag_add(&ck->diags, true, path, 0,
			      "built for Slurm %s, but %s Slurm %s: "
			      "slurmctld refuses it (\"incompatible plugin "
			      "version\"); rebuild azrdma against Slurm %s "
			      "(./configure --with-slurm=<its prefix>; make; "
			      "make install) or install the "
			      "slurm-azrdma-plugins package built for it",
			      built, whose, against, against);
	return 1;
}

/* src into dst of len bytes, cut to fit. */
static void _copy_cut(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* How long slurmctld may take to say its version. */
#define CONTROLLER_WAIT_MS 20000

/*
 * Ask the slurmctld of slurm_conf its release, in a child: libslurm exits
 * the process on a slurm.conf it cannot use, and check must go on to say
 * what is wrong with it.  false with why in err when there is no answer.
 */
static bool _controller_version(const char *slurm_conf, char *buf,
				size_t len, char *err, size_t errlen)
{
	char answer[AZ_ERRLEN + 4096];
	int fds[2], status;
	struct pollfd p;
	ssize_t n = 0;
	pid_t pid;

	/* Or the child's exit, if libslurm ends it, prints them again. */
	fflush(stdout);
	fflush(stderr);
	if (pipe(fds) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return false;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return false;
	}
	if (pid == 0) {
		char why[AZ_ERRLEN];

		close(fds[0]);
		/* libslurm's own complaints go nowhere: err says enough. */
		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(2);
		setenv("SLURM_CONF", slurm_conf, 1);
		sl_init();
		if (sl_controller_version(answer + 3, sizeof(answer) - 3, why,
					  sizeof(why))
		    == AZ_OK)
			memcpy(answer, "OK ", 3);
		else
			snprintf(answer, sizeof(answer),
				 "NO the slurmctld of %s did not answer (%s)",
				 slurm_conf, why);
		if (write(fds[1], answer, strlen(answer)) < 0)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	p.fd = fds[0];
	p.events = POLLIN;
	if (poll(&p, 1, CONTROLLER_WAIT_MS) == 1)
		n = read(fds[0], answer, sizeof(answer) - 1);
	close(fds[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	answer[n > 0 ? n : 0] = '\0';
	if (n > 3 && !strncmp(answer, "OK ", 3)) {
		_copy_cut(buf, len, answer + 3);
		return true;
	}
	_copy_cut(err, errlen,
		  n > 3 ? answer + 3
			: "slurmctld did not answer (or slurm.conf is unusable)");
	return false;
}

/*
 * Slurm loads a plugin only into the release it was built for (SPANK: the
 * same major.minor), so azrdma is rebuilt on every Slurm upgrade.  Each
 * azrdma plugin in PluginDir is compared with the release slurmctld runs,
 * or, when slurmctld does not answer, with the one these programs were
 * built for (AZRDMA_SLURM_VERSION).
 */
static void _check_slurm_release(struct check *ck)
{
	const char *conf_dirs = slurm_conf_get(ck->sc, "PluginDir", NULL);
	char running[64], err[AZ_ERRLEN], *dirs, *dir, *save = NULL;
	const char *against = AZRDMA_SLURM_VERSION;
	const char *whose = "azrdma-config was built for";
	size_t found = 0;

	if (_controller_version(ck->sc_path, running, sizeof(running), err,
				sizeof(err))) {
		against = running;
		whose = "slurmctld runs";
		if (strcmp(running, AZRDMA_SLURM_VERSION))
			conf_diag_add(&ck->diags, true, ck->sc_path, 0,
				      "slurmctld runs Slurm %s, but azrdma "
				      "was built for %s: rebuild and reinstall "
				      "azrdma against %s (./configure "
				      "--with-slurm=<its prefix>), or install "
				      "the azrdma packages built for it",
				      running, AZRDMA_SLURM_VERSION, running);
	} else {
		printf("note: %s; the plugins are compared with Slurm %s, "
		       "which azrdma was built for\n",
		       err, AZRDMA_SLURM_VERSION);
	}
	dirs = strdup(conf_dirs ? conf_dirs : AZRDMA_SLURM_PLUGINDIR);
	for (dir = dirs ? strtok_r(dirs, ":", &save) : NULL; dir;
	     dir = strtok_r(NULL, ":", &save))
		for (size_t i = 0; i < PLUGIN_FILE_COUNT; i++)
			found += _check_plugin_file(ck, dir, _plugin_files[i],
						    against, whose);
	free(dirs);
	if (!found)
		conf_diag_add(&ck->diags, false, ck->sc_path, 0,
			      "no azrdma plugin in PluginDir (%s); install "
			      "them there or set PluginDir",
			      conf_dirs ? conf_dirs : AZRDMA_SLURM_PLUGINDIR);
}

static char *_default_slurm_conf(void)
{
	const char *env = getenv("SLURM_CONF");

	return strdup(env && *env ? env : "/etc/slurm/slurm.conf");
}

static int _cmd_check(const struct options *o)
{
	struct check ck = {0};
	struct conf_diags conf_diags = {0};
	struct azrdma_conf *conf = NULL;
	struct slurm_conf *sc = NULL;
	char *sc_path = o->slurm_conf_path ? strdup(o->slurm_conf_path)
					   : _default_slurm_conf();
	char err[AZ_ERRLEN];
	size_t errors;

	conf_load(o->conf_path, CONF_CHECK_FILES, &conf, &conf_diags, err,
		  sizeof(err));
	errors = _print_diags(&conf_diags);
	conf_diags_free(&conf_diags);

	if (slurm_conf_read(sc_path, &sc, &ck.diags, err, sizeof(err))
	    != AZ_OK) {
		printf("error: %s\n", err);
		errors++;
	} else if (conf) {
		ck.sc = sc;
		ck.sc_path = sc_path;
		_check_globals(&ck, conf);
		_check_nodes(&ck, conf);
		_check_image_features(&ck, conf);
		_check_slurm_release(&ck);
	}
	errors += _print_diags(&ck.diags);
	if (!errors)
		printf("%s: OK (%zu domains, %zu nodes, %zu images)\n",
		       o->conf_path, conf->domain_count, _total_nodes(conf),
		       conf->image_count);
	conf_diags_free(&ck.diags);
	slurm_conf_free(sc);
	conf_free(conf);
	free(sc_path);
	return errors ? 1 : 0;
}

/* ---- slurm-conf ------------------------------------------------------- */

static int _cmd_slurm_conf(const struct options *o)
{
	struct azrdma_conf *conf = _load(o, 0, false);
	size_t total;
	char **all = NULL;
	char *all_list, *images = NULL;

	if (!conf)
		return 1;
	total = _total_nodes(conf);
#if SL_CLOUD_FEATURES_CLEARED_AT_POWER_DOWN
	/* A powered-down node's available features are slurm.conf's. */
	{
		char *list = features_images(conf);

		if (list && *list && asprintf(&images, ",%s", list) < 0)
			images = NULL;
		free(list);
	}
#endif
	printf("# slurm.conf lines for azrdma, from %s\n", conf->path);
	printf("ResumeProgram=%s/azrdma-resume\n", SBINDIR);
	printf("SuspendProgram=%s/azrdma-suspend\n", SBINDIR);
	printf("ResumeFailProgram=%s/azrdma-resume-fail\n", SBINDIR);
	/* A cold job starts as its last node registers, not up to 30 s
	 * later; a site's own one goes to azrdma.conf's SitePrologSlurmctld. */
	printf("PrologSlurmctld=%s/azrdma-prolog-slurmctld\n", SBINDIR);
	printf("ResumeTimeout=%d\nSuspendTime=600\nSuspendTimeout=300\n",
	       EXPECTED_BOOT_SECONDS + 300);
	printf("PrivateData=cloud\nTreeWidth=65533\n");
	/* Never cloud_reg_addrs: it resets a powered-down node's address to
	 * its name, which releases before 23.11.2 look up (sl_compat.h). */
	printf("SlurmctldParameters=idle_on_node_suspend\n");
#if SL_CONF_HAS_CLOUD_REG_ADDRS
	printf("CommunicationParameters=NoAddrCache\n");
#endif
	printf("JobSubmitPlugins=azrdma\nNodeFeaturesPlugins=azrdma\n\n");

	all = calloc(total ? total : 1, sizeof(*all));
	total = 0;
	for (size_t i = 0; i < conf->domain_count; i++) {
		const struct conf_domain *d = &conf->domains[i];
		const struct vm_size *s = d->size;
		unsigned memory = s->memory_mb
				  - s->memory_mb * MEMORY_MARGIN_PERCENT / 100;

		printf("# Domain %s: %s, %s RDMA, availability set %s\n",
		       d->name, s->name, rdma_kind_name(s->rdma),
		       d->availability_set);
		printf("NodeName=%s CPUs=%u RealMemory=%u State=CLOUD "
		       "Feature=azure,%s,%s,rdma,%s%s",
		       d->nodes, s->vcpus, memory, d->name, s->feature,
		       rdma_kind_name(s->rdma), images ? images : "");
#if SL_POWERED_DOWN_NEEDS_ADDR
		printf(" NodeAddr=");
		for (size_t j = 0; j < d->node_count; j++)
			printf("%s%s", j ? "," : "", SL_NO_HOST_ADDR);
#endif
		printf("\n");
		for (size_t j = 0; all && j < d->node_count; j++)
			all[total++] = d->node_names[j];
	}
	all_list = all ? hostlist_compress(all, total) : NULL;
	if (!all_list) {
		fprintf(stderr, "azrdma-config: out of memory\n");
		free(all);
		free(images);
		conf_free(conf);
		return 1;
	}
	printf("\n");
	if (!conf->rdma_partition_count)
		printf("PartitionName=hpc Nodes=%s Default=YES MaxTime=INFINITE "
		       "State=UP\n",
		       all_list);
	for (size_t i = 0; i < conf->rdma_partition_count; i++)
		printf("PartitionName=%s Nodes=%s%s MaxTime=INFINITE State=UP\n",
		       conf->rdma_partitions[i], all_list,
		       i == 0 ? " Default=YES" : "");
	free(all_list);
	free(all);
	free(images);
	conf_free(conf);
	return 0;
}

/* ---- show --------------------------------------------------------------- */

static void _show_sizes(const struct catalog *cat)
{
	printf("%-24s %5s %8s %4s %5s %8s %9s %6s %s\n", "SIZE", "VCPUS",
	       "MEM_GB", "RDMA", "GBPS", "LAT_US", "BW_MBS", "MAX", "RETIRED");
	for (size_t i = 0; i < cat->count; i++) {
		const struct vm_size *s = &cat->sizes[i];
		char retired[12] = "-";

		if (s->retired_year)
			snprintf(retired, sizeof(retired), "%u", s->retired_year);
		printf("%-24s %5u %8u %4s %5u %8.1f %9.0f %6u %s\n", s->name,
		       s->vcpus, s->memory_mb / 1024, rdma_kind_name(s->rdma),
		       s->ib_rate_gbps, s->max_latency_us, s->min_bandwidth_mbs,
		       s->max_per_domain, retired);
	}
}

static int _cmd_show(const struct options *o, const char *what)
{
	struct azrdma_conf *conf = _load(o, 0, false);

	if (!conf)
		return 1;
	if (what && !strcmp(what, "sizes")) {
		_show_sizes(conf->catalog);
		conf_free(conf);
		return 0;
	}
	printf("Subscription %s, resource group %s, %s (%s, %s)\n",
	       conf->subscription_id, conf->resource_group, conf->location,
	       conf_cloud_name(conf->cloud), conf_auth_name(conf->auth));
	printf("\n%-12s %-20s %-24s %-4s %-24s %s\n", "DOMAIN", "NODES",
	       "VM_SIZE", "RDMA", "AVAILABILITY_SET", "IMAGE");
	for (size_t i = 0; i < conf->domain_count; i++) {
		const struct conf_domain *d = &conf->domains[i];
		const struct conf_image *img = conf_domain_image(conf, d);

		printf("%-12s %-20s %-24s %-4s %-24s %s%s%s\n", d->name,
		       d->nodes, d->size->name, rdma_kind_name(d->size->rdma),
		       d->availability_set, img ? img->name : "-",
		       d->proximity_placement_group ? " ppg=" : "",
		       d->proximity_placement_group
			       ? d->proximity_placement_group
			       : "");
	}
	printf("\n%-12s %-8s %-16s %s\n", "IMAGE", "DEFAULT", "MPI", "SOURCE");
	for (size_t i = 0; i < conf->image_count; i++) {
		const struct conf_image *img = &conf->images[i];

		printf("%-12s %-8s %-16s %s\n", img->name,
		       img->is_default ? "yes" : "no", img->mpi ? img->mpi : "-",
		       img->urn ? img->urn : img->id);
	}
	conf_free(conf);
	return 0;
}

/* ---- azure -------------------------------------------------------------- */

static void _print_names(const char *title, struct arm_result *res,
			 bool power)
{
	json_object *value = NULL;
	size_t n;

	if (!res->body || !json_object_object_get_ex(res->body, "value", &value)
	    || !json_object_is_type(value, json_type_array)) {
		printf("%s: (no list in the response)\n", title);
		return;
	}
	n = json_object_array_length(value);
	printf("%s: %zu\n", title, n);
	for (size_t i = 0; i < n; i++) {
		json_object *item = json_object_array_get_idx(value, i);
		json_object *name = NULL;
		const char *state = power ? arm_provisioning_state(item) : NULL;

		json_object_object_get_ex(item, "name", &name);
		printf("  %s%s%s\n", name ? json_object_get_string(name) : "?",
		       state ? "  " : "", state ? state : "");
	}
}

static int _cmd_azure(const struct options *o)
{
	struct arm_tuning tuning;
	struct azrdma_conf *conf = _load(o, CONF_CHECK_FILES, false);
	struct arm_client *client = NULL;
	struct arm_result *res = NULL;
	char err[AZ_ERRLEN];
	int status = 1;

	if (!conf)
		return 1;
	/* A check changes nothing: an admin's run (root, often) leaves no
	 * token cache in SlurmUser's StateDir. */
	arm_tuning_default(&tuning);
	tuning.cache_read_only = true;
	if (arm_client_new(conf, &tuning, &client, err, sizeof(err)) != AZ_OK) {
		fprintf(stderr, "azrdma-config: %s\n", err);
		goto out;
	}
	if (arm_client_check_auth(client, err, sizeof(err)) != AZ_OK) {
		fprintf(stderr,
			"azrdma-config: cannot get a token (%s): %s\n",
			conf_auth_name(conf->auth), err);
		goto out;
	}
	printf("token: OK (%s, %s)\n", conf_auth_name(conf->auth),
	       conf->arm_endpoint);
	if (arm_vm_list(client, &res) != AZ_OK) {
		fprintf(stderr, "azrdma-config: listing VMs of %s: %s\n",
			conf->resource_group, res ? res->err : "failed");
		goto out;
	}
	_print_names("virtual machines", res, true);
	arm_result_free(res);
	res = NULL;

	if (arm_avset_list(client, &res) != AZ_OK) {
		fprintf(stderr,
			"azrdma-config: listing availability sets: %s\n",
			res ? res->err : "failed");
		goto out;
	}
	_print_names("availability sets", res, false);
	status = 0;
out:
	arm_result_free(res);
	arm_client_free(client);
	conf_free(conf);
	return status;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	char *default_conf = NULL;
	const char *cmd;
	int c, rc;

	while ((c = getopt(argc, argv, "f:s:vh")) != -1) {
		switch (c) {
		case 'f':
			o.conf_path = optarg;
			break;
		case 's':
			o.slurm_conf_path = optarg;
			break;
		case 'v':
			o.verbose++;
			break;
		case 'h':
			_usage(stdout);
			return 0;
		default:
			_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		_usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	log_open("azrdma-config", "-", NULL, 0);
	log_set_level((enum log_level)(LOG_LVL_WARN + o.verbose));
	log_level_from_env();
	if (!o.conf_path) {
		default_conf = conf_default_path();
		o.conf_path = default_conf;
	}
	if (!strcmp(cmd, "check")) {
		rc = _cmd_check(&o);
	} else if (!strcmp(cmd, "slurm-conf")) {
		rc = _cmd_slurm_conf(&o);
	} else if (!strcmp(cmd, "show")) {
		rc = _cmd_show(&o, optind + 1 < argc ? argv[optind + 1] : NULL);
	} else if (!strcmp(cmd, "azure")) {
		rc = _cmd_azure(&o);
	} else {
		fprintf(stderr, "azrdma-config: unknown command '%s'\n", cmd);
		_usage(stderr);
		rc = 2;
	}
	free(default_conf);
	log_close();
	return rc;
}
