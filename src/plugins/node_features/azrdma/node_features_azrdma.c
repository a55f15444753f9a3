/*
 * node_features_azrdma.c - node_features/azrdma: node features from
 * azrdma.conf, and the OS image as a changeable feature.
 *
 * Every node of a domain has "azure,<domain>,<size>,rdma,<nd|ib>" and, as
 * changeable features, "img_<name>" for each Image line, one of them
 * active.  A job asking -C img_X on nodes whose active image differs is
 * rebooted by Slurm through power save: ResumeProgram <nodes> img_X, which
 * reprovisions the VMs with image X in their availability set.
 *
 * On a running VM slurmd reports the image it runs through node_state(),
 * read from NodeImageFile.  What a powered-down node has depends on the
 * release (sl_compat.h, SL_CLOUD_FEATURES_CLEARED_AT_POWER_DOWN):
 *
 *  - 22.05: it keeps active features slurmctld never hears from slurmd, so
 *    after slurmctld starts (and on reconfigure) a thread of this plugin
 *    publishes them with slurm_update_node(), as an administrator would
 *    with scontrol: every image available, the disk's image active.  A job
 *    asking another image gets ResumeProgram <nodes> img_<name>.
 *  - 23.02 and later: it has no active image (slurmctld clears changeable
 *    features at power down) and its available ones are slurm.conf's
 *    Feature= (azrdma-config slurm-conf lists the images there), so there
 *    is nothing to publish.  A job asking an image is given powered-down
 *    nodes only, and azrdma-resume reads the image from the job's features
 *    in SLURM_RESUME_FILE.
 *
 * The plugin is loaded by slurmctld and slurmd alike, so it uses only
 * symbols of libslurmfull (reference/slurm-22.05-contracts.md 2.2, 2.7).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "buf.h"
#include "conf.h"
#include "feature_set.h"
#include "fsutil.h"
#include "hostlist.h"
#include "log.h"
#include "sl_compat.h"
#include "sl_plugin.h"

/* Internal Slurm types, as every release's read_config.h has them. */
typedef struct {
	char *name;
	char *value;
} config_key_pair_t;

typedef struct {
	char *name;
	sl_list_t key_pairs;
} config_plugin_params_t;

/* libslurmfull functions without a public declaration. */
extern int node_name2bitmap(char *node_names, bool best_effort,
			    bitstr_t **bitmap);
extern bitstr_t *slurm_bit_copy(bitstr_t *b);
extern void slurm_bit_and(bitstr_t *b1, bitstr_t *b2);
extern int32_t slurm_bit_set_count(bitstr_t *b);
extern int64_t slurm_bit_size(bitstr_t *b);
extern void slurm_bit_free(bitstr_t **b);
extern void *slurm_xcalloc(size_t count, size_t size, bool clear,
			   bool try, const char *file, int line,
			   const char *func);
extern void _xstrcat(char **str1, const char *str2);

const char plugin_name[] = "azrdma node features plugin";
const char plugin_type[] = "node_features/azrdma";
const uint32_t plugin_version = SLURM_VERSION_NUMBER;

/* A VM is created and boots to slurmd in about this long. */
#define BOOT_TIME_SECONDS 600
/* How long the publisher waits for slurmctld to answer RPCs. */
#define PUBLISH_WAIT_SECONDS 300

static struct azrdma_conf *_conf;
#if SL_NF_HAS_RECONFIG
/* Reconfig swaps _conf under it; no RPC is ever made holding it. */
static pthread_mutex_t _lock = PTHREAD_MUTEX_INITIALIZER;
#endif

static void _forget_domain_bitmap(void);
static void _stop_publisher(void);

/*
 * slurmd on a node without azrdma.conf (configless Slurm does not ship it)
 * works on: the node reports no image, and slurmctld, whose azrdma.conf
 * decides everything, knows the node's features anyway.  slurmctld
 * itself cannot work without the file.
 */
extern int init(void)
{
	bool absent = false;
	char *path = NULL;

	sl_plugin_log_init(plugin_type);
	_conf = sl_plugin_conf_load_optional(&absent, &path);
	if (absent && strcmp(program_invocation_short_name, "slurmctld"))
		log_info("%s does not exist: this node reports no image; "
			 "slurmctld's azrdma.conf decides its features",
			 path ? path : "azrdma.conf");
	else if (absent)
		log_error("%s does not exist: slurmctld needs it (see "
			  "azrdma.conf(5) and 'azrdma-config check')",
			  path ? path : "azrdma.conf");
	free(path);
	if (absent && strcmp(program_invocation_short_name, "slurmctld"))
		return SLURM_SUCCESS;
	return _conf ? SLURM_SUCCESS : SLURM_ERROR;
}

extern int fini(void)
{
	_stop_publisher();
	_forget_domain_bitmap();
	conf_free(_conf);
	_conf = NULL;
	return SLURM_SUCCESS;
}

/* A malloc()ed string handed to Slurm as an xmalloc()ed one. */
static char *_to_xstr(char *s)
{
	char *x = s ? slurm_xstrdup(s) : NULL;

	free(s);
	return x;
}

/* ---- publishing features of nodes that never registered ------------- */

#if !SL_CLOUD_FEATURES_CLEARED_AT_POWER_DOWN
static pthread_t _publisher;
static bool _publisher_started;
static volatile bool _stopping;
static volatile bool _republish;

/*
 * The image a node's VM disk holds: azrdma-resume records it in
 * <StateDir>/images/<node> when it creates the VM; else the default.
 */
static const struct conf_image *_recorded_image(const struct azrdma_conf *c,
					       const char *node)
{
	char path[1024], *text = NULL;
	const struct conf_image *img = NULL;

	snprintf(path, sizeof(path), "%s/images/%s", c->state_dir, node);
	if (fs_read_file(path, 256, &text, NULL, NULL, 0) == AZ_OK) {
		text[strcspn(text, " \t\r\n")] = '\0';
		img = conf_image_find(c, text);
	}
	free(text);
	return img ? img : conf_image_default(c);
}

/*
 * The image a node's active features name, if they name exactly one known
 * image (a node's list is a constraint of ANDs, so the job rules apply).
 */
static const struct conf_image *_active_image(const struct azrdma_conf *c,
					     const char *list)
{
	const struct conf_image *img = NULL;

	if (features_job_check(c, list, &img, NULL, 0) != AZ_OK)
		return NULL;
	return img;
}

/* Publish one node's features if slurmctld lacks any; false: retry later. */
static bool _publish_node(const struct azrdma_conf *c,
			  const struct conf_domain *d, const char *node)
{
	node_info_msg_t *msg = NULL;
	update_node_msg_t upd;
	char *stat = NULL, *images = NULL, *avail = NULL, *act = NULL;
	char *img_feature = NULL, *base = NULL;
	const node_info_t *ni;
	bool ok = false;

	if (slurm_load_node_single(&msg, (char *)node, SHOW_ALL)
	    != SLURM_SUCCESS)
		return false;
	if (!msg->record_count || !msg->node_array[0].name) {
		log_warn("node %s of domain %s is not in slurm.conf", node,
			 d->name);
		slurm_free_node_info_msg(msg);
		return true;
	}
	ni = &msg->node_array[0];
	stat = features_static(d);
	images = features_images(c);
	base = features_union(ni->features, stat);
	avail = base ? features_union(base, images) : NULL;
	free(base);
	base = NULL;
	if (_active_image(c, ni->features_act)) {
		act = features_union(ni->features_act, stat);
	} else {
		/* None, or a stale one: the disk's image replaces them. */
		char *kept = features_without_images(c, ni->features_act);

		img_feature = feature_of_image(_recorded_image(c, node));
		base = kept ? features_union(kept, stat) : NULL;
		act = base ? features_union(base, img_feature) : NULL;
		free(kept);
	}
	if (!stat || !images || !avail || !act) {
		log_error("out of memory publishing features of %s", node);
		goto out;
	}
	if (ni->features && !strcmp(ni->features, avail) && ni->features_act
	    && !strcmp(ni->features_act, act)) {
		ok = true;
		goto out;
	}
	slurm_init_update_node_msg(&upd);
	upd.node_names = (char *)node;
	upd.features = avail;
	upd.features_act = act;
	if (slurm_update_node(&upd) != SLURM_SUCCESS) {
		log_verbose("publishing features of %s: %s", node,
			    slurm_strerror(errno));
		goto out;
	}
	log_verbose("%s: AvailableFeatures=%s ActiveFeatures=%s", node, avail,
		    act);
	ok = true;
out:
	free(stat);
	free(images);
	free(avail);
	free(act);
	free(img_feature);
	free(base);
	slurm_free_node_info_msg(msg);
	return ok;
}

static bool _publish_all(const struct azrdma_conf *c)
{
	bool ok = true;

	for (size_t i = 0; i < c->domain_count && !_stopping; i++) {
		const struct conf_domain *d = &c->domains[i];

		for (size_t j = 0; j < d->node_count && !_stopping; j++)
			if (!_publish_node(c, d, d->node_names[j]))
				ok = false;
	}
	return ok;
}

/*
 * Runs inside slurmctld.  It is started while slurmctld reads its
 * configuration, before it answers RPCs, so it retries until they work.
 *
 * Each pass works on an azrdma.conf of its own, loaded for it, and holds
 * no lock of the plugin: its RPCs wait for slurmctld's locks, and
 * slurmctld calls reconfig (which swaps _conf under _lock) with its write
 * locks held, so a lock held across an RPC would stop slurmctld.  A
 * reconfigure during a pass asks for another pass, which loads the new
 * file.
 */
static void *_publish_thread(void *arg)
{
	for (unsigned waited = 0; !_stopping && waited < PUBLISH_WAIT_SECONDS;
	     waited++) {
		struct azrdma_conf *c;
		size_t domains;
		bool done;

		sleep(1);
		_republish = false;
		c = sl_plugin_conf_load();
		if (!c)
			continue;
		done = _publish_all(c);
		domains = c->domain_count;
		conf_free(c);
		if (done && !_republish) {
			log_info("features published for %zu domains", domains);
			return NULL;
		}
	}
	if (!_stopping)
		log_error("could not publish node features within %d s; "
			  "jobs asking for img_ features may be refused",
			  PUBLISH_WAIT_SECONDS);
	return NULL;
}

static void _start_publisher(void)
{
	if (_publisher_started) {
		void *ret;

		/* A reconfigure while it runs: let it go round again. */
		if (pthread_tryjoin_np(_publisher, &ret) != 0) {
			_republish = true;
			return;
		}
		_publisher_started = false;
	}
	_stopping = false;
	if (pthread_create(&_publisher, NULL, _publish_thread, NULL) == 0)
		_publisher_started = true;
	else
		log_error("cannot start the feature publisher thread");
}

static void _stop_publisher(void)
{
	if (!_publisher_started)
		return;
	_stopping = true;
	pthread_join(_publisher, NULL);
	_publisher_started = false;
}
#else
/* Powered-down nodes have no active image; slurm.conf gives the rest. */
static void _stop_publisher(void)
{
}
#endif

/* ---- the node_features API ------------------------------------------ */

extern uint32_t node_features_p_boot_time(void)
{
	return BOOT_TIME_SECONDS;
}

/* One feature name: is it ours to change (an image)? */
extern bool node_features_p_changeable_feature(char *input)
{
	const struct conf_image *img;

	return _conf && input && feature_is_image(_conf, input, &img) && img;
}

#if SL_NF_HAS_GET_NODE
/* slurmctld: at start-up, reconfigure and after a node rebooted. */
extern int node_features_p_get_node(char *node_list)
{
#if !SL_CLOUD_FEATURES_CLEARED_AT_POWER_DOWN
	if (!node_list)
		_start_publisher();
#endif
	return SLURM_SUCCESS;
}
#endif

#if SL_NF_JOB_HAS_FEATURE_LIST
extern int node_features_p_job_valid(char *job_features,
				     sl_list_t feature_list)
#else
extern int node_features_p_job_valid(char *job_features)
#endif
{
	char err[AZ_ERRLEN];

	if (_conf
	    && features_job_check(_conf, job_features, NULL, err, sizeof(err))
	               != AZ_OK) {
		log_info("refusing constraint '%s': %s", job_features, err);
		return ESLURM_INVALID_FEATURE;
	}
	return SLURM_SUCCESS;
}

/* The features that must be active after the reboot: the image asked. */
#if SL_NF_JOB_HAS_FEATURE_LIST
extern char *node_features_p_job_xlate(char *job_features,
				       sl_list_t feature_list,
				       bitstr_t *job_node_bitmap)
#else
extern char *node_features_p_job_xlate(char *job_features)
#endif
{
	const struct conf_image *img = NULL;

	if (!_conf
	    || features_job_check(_conf, job_features, &img, NULL, 0) != AZ_OK
	    || !img)
		return NULL;
	return _to_xstr(feature_of_image(img));
}

/*
 * The nodes of every domain as a bitmap of slurmctld's node table.  The
 * scheduler and backfill ask for it on every pass, so it is built once
 * and kept until the configuration or the node table changes.  Its own
 * mutex, held only around the bitmap: these calls come from slurmctld with
 * its locks held.
 */
static pthread_mutex_t _bitmap_lock = PTHREAD_MUTEX_INITIALIZER;
static bitstr_t *_domain_bitmap;

static bitstr_t *_build_domain_bitmap(void)
{
	bitstr_t *bitmap = NULL;
	char *all;
	size_t n = 0, k = 0;
	char **names;

	if (!_conf)
		return NULL;

	for (size_t i = 0; i < _conf->domain_count; i++)
		n += _conf->domains[i].node_count;
	names = calloc(n ? n : 1, sizeof(*names));
	if (!names)
		return NULL;
	for (size_t i = 0; i < _conf->domain_count; i++)
		for (size_t j = 0; j < _conf->domains[i].node_count; j++)
			names[k++] = _conf->domains[i].node_names[j];
	all = hostlist_compress(names, k);
	free(names);
	if (all)
		node_name2bitmap(all, true, &bitmap);
	free(all);
	return bitmap;
}

static void _forget_domain_bitmap(void)
{
	pthread_mutex_lock(&_bitmap_lock);
	if (_domain_bitmap)
		slurm_bit_free(&_domain_bitmap);
	pthread_mutex_unlock(&_bitmap_lock);
}

/* Call with _bitmap_lock held; size: the node table's, 0 if unknown. */
static bitstr_t *_domain_bitmap_held(int64_t size)
{
	if (_domain_bitmap && size && slurm_bit_size(_domain_bitmap) != size)
		slurm_bit_free(&_domain_bitmap);	/* nodes added */
	if (!_domain_bitmap)
		_domain_bitmap = _build_domain_bitmap();
	return _domain_bitmap;
}

/* Every node of every domain; the caller frees the bitmap. */
extern bitstr_t *node_features_p_get_node_bitmap(void)
{
	bitstr_t *copy = NULL;

	pthread_mutex_lock(&_bitmap_lock);
	if (_domain_bitmap_held(0))
		copy = slurm_bit_copy(_domain_bitmap);
	pthread_mutex_unlock(&_bitmap_lock);
	return copy;
}

extern int node_features_p_overlap(bitstr_t *active_bitmap)
{
	bitstr_t *ours, *both;
	int count = 0;

	if (!active_bitmap)
		return 0;
	pthread_mutex_lock(&_bitmap_lock);
	ours = _domain_bitmap_held(slurm_bit_size(active_bitmap));
	if (ours && slurm_bit_size(ours) == slurm_bit_size(active_bitmap)) {
		both = slurm_bit_copy(active_bitmap);
		slurm_bit_and(both, ours);
		count = slurm_bit_set_count(both);
		slurm_bit_free(&both);
	}
	pthread_mutex_unlock(&_bitmap_lock);
	return count;
}

#if SL_NF_HAS_GET_NODE
/* Images change through power save, so Slurm must have it configured. */
extern bool node_features_p_node_power(void)
{
	return true;
}
#endif

/*
 * slurmd, only for a reboot with features, which Slurm never asks of a
 * cloud node: azrdma reprovisions through power save.  A reboot stays
 * needed (need_reboot is left as Slurm set it).
 */
#if SL_NF_NODE_SET_HAS_NEED_REBOOT
extern int node_features_p_node_set(char *active_features, bool *need_reboot)
#else
extern int node_features_p_node_set(char *active_features)
#endif
{
	return SLURM_SUCCESS;
}

/*
 * 26.05: whether a node must reboot to get these features.  An image is a
 * new VM disk, which for a cloud node Slurm gets through power save alone.
 */
extern bool node_features_p_job_features_need_reboot(char *features)
{
	return true;
}

/*
 * slurmd: every image is available, the active one is what NodeImageFile
 * ("%n" = this host's short name, which azrdma makes the node name) says.
 */
extern void node_features_p_node_state(char **avail_modes,
				       char **current_mode)
{
	char host[256], path[1024], *text = NULL, *images;
	const struct conf_image *img = NULL;
	struct az_buf b = {0};

	if (!_conf)
		return;
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	host[strcspn(host, ".")] = '\0';
	for (const char *p = _conf->node_image_file; *p; p++) {
		if (p[0] == '%' && p[1] == 'n') {
			buf_puts(&b, host);
			p++;
		} else {
			buf_append(&b, p, 1);
		}
	}
	if (b.data && fs_read_file(b.data, 256, &text, NULL, NULL, 0) == AZ_OK) {
		text[strcspn(text, " \t\r\n")] = '\0';
		img = conf_image_find(_conf, text);
		if (!img)
			log_warn("%s names image '%s', which azrdma.conf does "
				 "not define",
				 b.data, text);
	}
	snprintf(path, sizeof(path), "%s", b.data ? b.data : "");
	buf_free(&b);
	free(text);

	images = features_images(_conf);
	if (images && *images) {
		if (*avail_modes && **avail_modes)
			_xstrcat(avail_modes, ",");
		_xstrcat(avail_modes, images);
	}
	free(images);
	if (img) {
		char *f = feature_of_image(img);

		if (*current_mode && **current_mode)
			_xstrcat(current_mode, ",");
		_xstrcat(current_mode, f);
		free(f);
	} else {
		log_verbose("no image recorded in %s", path);
	}
}

#if SL_NF_HAS_GET_NODE
extern int node_features_p_node_update(char *active_features,
				       bitstr_t *node_bitmap)
{
	return SLURM_SUCCESS;
}

/* Refuse a new active set that names an unknown image or two images. */
extern bool node_features_p_node_update_valid(void *node_ptr,
					      update_node_msg_t *msg)
{
	char err[AZ_ERRLEN];

	if (!msg->features_act || !_conf)
		return true;
	if (features_job_check(_conf, msg->features_act, NULL, err,
			       sizeof(err)) != AZ_OK) {
		log_info("refusing node update ActiveFeatures=%s: %s",
			 msg->features_act, err);
		return false;
	}
	return true;
}
#endif

/* new_features plus the non-image features of orig, without duplicates. */
extern char *node_features_p_node_xlate(char *new_features,
					char *orig_features,
					char *avail_features, int node_inx)
{
	char *kept = _conf ? features_without_images(_conf, orig_features)
			   : features_union(orig_features, NULL);
	char *merged = kept ? features_union(new_features, kept) : NULL;

	free(kept);
	return _to_xstr(merged);
}

extern char *node_features_p_node_xlate2(char *new_features)
{
	return _to_xstr(features_union(new_features, NULL));
}

#if SL_NF_HAS_GET_NODE
extern void node_features_p_step_config(bool mem_sort, bitstr_t *numa_bitmap)
{
}
#endif

#if SL_NF_HAS_REBOOT_WEIGHT
extern uint32_t node_features_p_reboot_weight(void)
{
	return INFINITE - 1;
}
#endif

#if SL_NF_HAS_RECONFIG
extern int node_features_p_reconfig(void)
{
	bool absent = false;
	struct azrdma_conf *fresh = sl_plugin_conf_load_optional(&absent, NULL);

	if (!fresh && !(absent && !_conf))
		return SLURM_ERROR;
	pthread_mutex_lock(&_lock);
	conf_free(_conf);
	_conf = fresh;
	pthread_mutex_unlock(&_lock);
	_forget_domain_bitmap();
	return SLURM_SUCCESS;
}
#endif

/*
 * Who may have nodes rebooted (their VMs re-created) into another image:
 * root, SlurmUser (whom slurmctld runs as) and AllowUserBoot's users.
 * job_submit/azrdma refuses the others' image features at submit.
 */
extern bool node_features_p_user_update(uid_t uid)
{
	return conf_user_may_boot(_conf, (uint32_t)uid, (uint32_t)geteuid());
}

static void _add_pair(config_plugin_params_t *p, const char *name,
		      const char *value)
{
	config_key_pair_t *kp = slurm_xcalloc(1, sizeof(*kp), true, false,
					      __FILE__, __LINE__, __func__);

	kp->name = slurm_xstrdup(name);
	kp->value = slurm_xstrdup(value);
	slurm_list_append(p->key_pairs, kp);
}

/* scontrol show config: the domains and the images. */
extern void node_features_p_get_config(config_plugin_params_t *p)
{
	struct az_buf b = {0};

	p->name = slurm_xstrdup(plugin_type);
	if (!_conf)
		return;
	for (size_t i = 0; i < _conf->domain_count; i++) {
		const struct conf_domain *d = &_conf->domains[i];

		buf_printf(&b, "%s%s=%s(%s,%s)", i ? " " : "", d->name,
			   d->nodes, d->size->name, d->availability_set);
	}
	_add_pair(p, "Domains", b.data ? b.data : "");
	buf_reset(&b);
	for (size_t i = 0; i < _conf->image_count; i++)
		buf_printf(&b, "%s" FEATURE_IMAGE_PREFIX "%s%s", i ? "," : "",
			   _conf->images[i].name,
			   _conf->images[i].is_default ? "(default)" : "");
	_add_pair(p, "Images", b.data ? b.data : "");
	_add_pair(p, "NodeImageFile", _conf->node_image_file);
	buf_free(&b);
}
