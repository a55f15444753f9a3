/*
 * conf.h - azrdma.conf: the one configuration file of azrdma.
 *
 * Slurm-style lines of Key=Value pairs, case-insensitive keys, '#' comments,
 * double-quoted values, '\' line continuation.  A line whose first key is
 * Image, Domain, VmSize or MpiProfile describes one such object; any other
 * line sets global keys.  See azrdma.conf(5).
 *
 * conf_load() reports every problem it finds, each as "file:line: what is
 * wrong; how to fix it", not just the first.
 */
#ifndef AZRDMA_CONF_H
#define AZRDMA_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "az_rc.h"
#include "catalog.h"

#define CONF_DEFAULT_COMPUTE_API "2024-11-01"
#define CONF_DEFAULT_NETWORK_API "2025-07-01"
#define CONF_DEFAULT_STATE_DIR "/var/lib/azrdma"
#define CONF_DEFAULT_MAX_PARALLEL 16
#define CONF_DEFAULT_CAPACITY_COOLDOWN 300
#define CONF_DEFAULT_ADMIN_USERNAME "azureuser"
#define CONF_DEFAULT_NODE_IMAGE_FILE "/var/lib/azrdma/image"

enum conf_cloud {
	CLOUD_AZURE_PUBLIC = 0,
	CLOUD_AZURE_USGOV,
	CLOUD_AZURE_CHINA,
	CLOUD_CUSTOM,
};

enum conf_auth {
	AUTH_MANAGED_IDENTITY = 0,
	AUTH_SERVICE_PRINCIPAL,
};

enum conf_suspend_action {
	SUSPEND_DEALLOCATE = 0,
	SUSPEND_DELETE,
};

enum conf_priority {
	PRIORITY_REGULAR = 0,
	PRIORITY_SPOT,
};

struct conf_image {
	char *name;
	char *urn;		/* publisher:offer:sku:version, or NULL */
	char *id;		/* image resource id, or NULL */
	char *mpi;		/* MPI profile name, or NULL (from the size) */
	bool is_default;
	int line;
};

struct conf_domain {
	char *name;
	char *nodes;		/* hostlist expression as written */
	char **node_names;	/* expanded, node_count entries */
	size_t node_count;
	const struct vm_size *size;	/* belongs to the conf's catalog */
	char *availability_set;	/* defaults to "<ClusterName>-<domain>" */
	char *proximity_placement_group; /* or NULL */
	char *image;		/* image name, or NULL for the default image */
	enum conf_priority priority;
	int line;
};

struct conf_mpi_profile {
	char *name;
	enum rdma_kind rdma;	/* the kind it is meant for; RDMA_NONE = any */
	char **env;		/* "NAME=value" strings, env_count entries */
	size_t env_count;
	int line;
};

struct conf_tag {
	char *key;
	char *value;
};

struct azrdma_conf {
	char *path;		/* the file this was read from */

	char *cluster_name;
	char *subscription_id;
	char *resource_group;
	char *location;

	enum conf_cloud cloud;
	char *arm_endpoint;	/* no trailing slash */
	char *authority_host;	/* no trailing slash */
	char *imds_endpoint;	/* no trailing slash */
	char *arm_audience;	/* resource / scope base, no trailing slash */

	enum conf_auth auth;
	char *tenant_id;
	char *client_id;	/* SP app id, or user-assigned identity */
	char *client_secret_file;

	char *ca_bundle;
	char *subnet_id;
	char *admin_username;
	char *ssh_public_key_file;
	char *custom_data_file;
	enum conf_suspend_action suspend_action;
	char *state_dir;
	char *log_file;
	/* The site's own PrologSlurmctld, run by azrdma-prolog-slurmctld. */
	char *site_prolog_slurmctld;
	/*
	 * On a compute node, the file naming the image the VM runs (written
	 * at boot from its customData); "%n" stands for the node name.
	 */
	char *node_image_file;
	char *compute_api_version;
	char *network_api_version;
	unsigned max_parallel_requests;
	unsigned capacity_cooldown;	/* seconds */
	char **rdma_partitions;
	size_t rdma_partition_count;
	/*
	 * AllowUserBoot: users (names, or ALL) who may have nodes booted into
	 * another image (a job's -C img_<name>) besides root and SlurmUser.
	 */
	char **allow_user_boot;
	size_t allow_user_boot_count;
	struct conf_tag *tags;
	size_t tag_count;

	struct catalog *catalog;	/* built-in sizes plus VmSize= lines */
	struct conf_image *images;
	size_t image_count;
	struct conf_domain *domains;
	size_t domain_count;
	struct conf_mpi_profile *mpi_profiles;
	size_t mpi_profile_count;
};

/* One problem found while loading; message is "file:line: ...". */
struct conf_diag {
	bool is_error;		/* false: a warning (e.g. a retired size) */
	char *message;
};

struct conf_diags {
	struct conf_diag *items;
	size_t count;
	size_t errors;
};

/* Flags for conf_load. */
enum {
	/*
	 * Check the files the config names (secret files not readable by
	 * group or others, SSH key readable).  Programs that talk to Azure
	 * set it; plugins on compute nodes, where those files do not exist,
	 * do not.
	 */
	CONF_CHECK_FILES = 1 << 0,
};

/*
 * The path of azrdma.conf: $AZRDMA_CONF if set, else azrdma.conf in the
 * directory of $SLURM_CONF, else /etc/slurm/azrdma.conf.  Caller frees.
 */
char *conf_default_path(void);

/*
 * Read and validate path.  On success *out is a new config (conf_free) and
 * diags holds any warnings.  On failure *out is NULL, diags holds every
 * problem (at least one error), and err the first error.  diags may be NULL;
 * the caller frees a non-NULL diags with conf_diags_free.
 */
enum az_rc conf_load(const char *path, unsigned flags, struct azrdma_conf **out,
		     struct conf_diags *diags, char *err, size_t errlen);
void conf_free(struct azrdma_conf *conf);
void conf_diags_free(struct conf_diags *diags);

/*
 * Slurm feature and node names and our object names: 1..max letters,
 * digits, '_', '-', '.', a letter or digit first.  Also checks a name that
 * will name a file.
 */
bool conf_is_name(const char *v, size_t max);

/* Lookups; the results belong to conf. */
const struct conf_domain *conf_domain_find(const struct azrdma_conf *conf,
					   const char *name);
const struct conf_domain *domain_for_node(const struct azrdma_conf *conf,
					  const char *node);
const struct conf_image *conf_image_find(const struct azrdma_conf *conf,
					 const char *name);
const struct conf_image *conf_image_default(const struct azrdma_conf *conf);
/* The image a domain uses: its Image=, else the default image. */
const struct conf_image *conf_domain_image(const struct azrdma_conf *conf,
					   const struct conf_domain *domain);
const struct conf_mpi_profile *
conf_mpi_profile_find(const struct azrdma_conf *conf, const char *name);
/*
 * The MPI profile a domain's nodes use: the Mpi= of the domain's image,
 * else the built-in default for the RDMA kind of its VM size.  NULL if
 * neither names a profile (a size without RDMA).
 */
const struct conf_mpi_profile *
conf_domain_mpi_profile(const struct azrdma_conf *conf,
			const struct conf_domain *domain);

/*
 * May uid have nodes booted into another image (AllowUserBoot)?  root and
 * slurm_user_id always may, and nobody else without conf (NULL).  Names
 * are looked up now, not at load.
 */
bool conf_user_may_boot(const struct azrdma_conf *conf, uint32_t uid,
                        uint32_t slurm_user_id);

const char *conf_cloud_name(enum conf_cloud cloud);
const char *conf_auth_name(enum conf_auth auth);

#endif
