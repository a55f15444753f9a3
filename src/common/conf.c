/*
 * conf.c - read and validate azrdma.conf.
 *
 * Two passes over the lexed lines: the first reads VmSize= lines into the
 * catalog (so a Domain may use a size defined further down), the second
 * everything else.  Cross-checks (nodes in two domains, placement caps,
 * required keys, files) run last.  Every problem is collected with its
 * file:line and a fix; loading fails if any of them is an error.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "conf_lex.h"
#include "fsutil.h"
#include "hostlist.h"
#include "mpi_profile.h"

#define CONF_MAX_SIZE (1024 * 1024)

/* What the parser carries while it reads one file. */
struct parse {
	const char *path;
	struct azrdma_conf *conf;
	struct conf_diags *diags;
	int set_line[64];	/* line each global key was set on, by index */
	int last_lineno;
};

static void _err(struct parse *ps, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void _warn(struct parse *ps, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void _vdiag(struct parse *ps, bool is_error, int line, const char *fmt,
		   va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	conf_diag_add(ps->diags, is_error, ps->path, line, "%s", msg);
}

static void _err(struct parse *ps, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	_vdiag(ps, true, line, fmt, ap);
	va_end(ap);
}

static void _warn(struct parse *ps, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	_vdiag(ps, false, line, fmt, ap);
	va_end(ap);
}

/* ---- value parsers: true when the value is good ------------------------ */

static bool _parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "no") || !strcasecmp(v, "false")
		 || !strcmp(v, "0"))
		*out = false;
	else
		return false;
	return true;
}

static bool _parse_uint(const char *v, unsigned min, unsigned max,
			unsigned *out)
{
	unsigned long n;
	char *end;

	if (!isdigit((unsigned char)*v))
		return false;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n < min || n > max)
		return false;
	*out = (unsigned)n;
	return true;
}

static bool _parse_double(const char *v, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || *end || end == v || d < 0)
		return false;
	*out = d;
	return true;
}

static bool _is_guid(const char *v)
{
	static const int groups[] = {8, 4, 4, 4, 12};
	const char *p = v;

	for (int g = 0; g < 5; g++) {
		for (int i = 0; i < groups[g]; i++, p++)
			if (!isxdigit((unsigned char)*p))
				return false;
		if (g < 4 && *p++ != '-')
			return false;
	}
	return *p == '\0';
}

bool conf_is_name(const char *v, size_t max)
{
	size_t n = strlen(v);

	if (!n || n > max || !isalnum((unsigned char)v[0]))
		return false;
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-'
		    && *p != '.')
			return false;
	return true;
}

/* Azure resource group: 1-90 of letters, digits, _ - . ( ), no final '.'. */
static bool _is_resource_group(const char *v)
{
	size_t n = strlen(v);

	if (!n || n > 90 || v[n - 1] == '.')
		return false;
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_-.()", *p))
			return false;
	return true;
}

static bool _is_url(const char *v, bool allow_http)
{
	if (!strncmp(v, "https://", 8))
		return v[8] != '\0';
	return allow_http && !strncmp(v, "http://", 7) && v[7] != '\0';
}

/* /subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Network/
 * virtualNetworks/<vnet>/subnets/<subnet>, compared case-insensitively as
 * ARM does. */
static bool _is_subnet_id(const char *v)
{
	static const char *const parts[] = {
		"subscriptions", NULL, "resourceGroups", NULL, "providers",
		"Microsoft.Network", "virtualNetworks", NULL, "subnets", NULL};
	const char *p = v;

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		const char *end;
		size_t n;

		if (*p++ != '/')
			return false;
		end = strchr(p, '/');
		n = end ? (size_t)(end - p) : strlen(p);
		if (!n)
			return false;
		if (parts[i]
		    && (strlen(parts[i]) != n || strncasecmp(p, parts[i], n)))
			return false;
		p += n;
	}
	return *p == '\0';
}

static char *_strip_slash(const char *v)
{
	char *s = strdup(v);
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

/* ---- global keys -------------------------------------------------------- */

enum gkind {
	G_STRING,	/* any non-empty string */
	G_PATH,		/* absolute path */
	G_URL,		/* https:// URL, trailing '/' removed */
	G_URL_HTTP,	/* http:// or https:// (IMDS is plain HTTP) */
	G_GUID,
	G_UINT,
	G_SPECIAL,	/* parsed in _set_special() */
};

struct gkey {
	const char *name;
	enum gkind kind;
	size_t offset;		/* of the char * or unsigned in the conf */
	unsigned min, max;	/* G_UINT */
};

#define OFF(f) offsetof(struct azrdma_conf, f)

static const struct gkey _global_keys[] = {
	{"ClusterName", G_STRING, OFF(cluster_name), 0, 0},
	{"SubscriptionId", G_GUID, OFF(subscription_id), 0, 0},
	{"ResourceGroup", G_SPECIAL, OFF(resource_group), 0, 0},
	{"Location", G_SPECIAL, OFF(location), 0, 0},
	{"Cloud", G_SPECIAL, 0, 0, 0},
	{"ArmEndpoint", G_URL, OFF(arm_endpoint), 0, 0},
	{"AuthorityHost", G_URL, OFF(authority_host), 0, 0},
	{"ImdsEndpoint", G_URL_HTTP, OFF(imds_endpoint), 0, 0},
	{"ArmAudience", G_URL, OFF(arm_audience), 0, 0},
	{"Auth", G_SPECIAL, 0, 0, 0},
	{"TenantId", G_STRING, OFF(tenant_id), 0, 0},
	{"ClientId", G_GUID, OFF(client_id), 0, 0},
	{"ClientSecretFile", G_PATH, OFF(client_secret_file), 0, 0},
	{"CaBundle", G_PATH, OFF(ca_bundle), 0, 0},
	{"SubnetId", G_SPECIAL, OFF(subnet_id), 0, 0},
	{"AdminUsername", G_SPECIAL, OFF(admin_username), 0, 0},
	{"SshPublicKeyFile", G_PATH, OFF(ssh_public_key_file), 0, 0},
	{"CustomDataFile", G_PATH, OFF(custom_data_file), 0, 0},
	{"SuspendAction", G_SPECIAL, 0, 0, 0},
	{"StateDir", G_PATH, OFF(state_dir), 0, 0},
	{"LogFile", G_PATH, OFF(log_file), 0, 0},
	{"SitePrologSlurmctld", G_PATH, OFF(site_prolog_slurmctld), 0, 0},
	{"ComputeApiVersion", G_SPECIAL, OFF(compute_api_version), 0, 0},
	{"NetworkApiVersion", G_SPECIAL, OFF(network_api_version), 0, 0},
	{"MaxParallelRequests", G_UINT, OFF(max_parallel_requests), 1, 256},
	{"CapacityCooldown", G_UINT, OFF(capacity_cooldown), 0, 86400},
	{"RdmaPartitions", G_SPECIAL, 0, 0, 0},
	{"AllowUserBoot", G_SPECIAL, 0, 0, 0},
	{"Tags", G_SPECIAL, 0, 0, 0},
	{"NodeImageFile", G_PATH, OFF(node_image_file), 0, 0},
};

#define N_GLOBAL_KEYS (sizeof(_global_keys) / sizeof(_global_keys[0]))

/* Keys of the repeated lines, for "unknown key" and suggestions. */
static const char *const _image_keys[] = {"Image", "Urn", "Id", "Mpi",
					  "Default", NULL};
static const char *const _domain_keys[] = {
	"Domain", "Nodes", "VmSize", "AvailabilitySet",
	"ProximityPlacementGroup", "Image", "Priority", NULL};
static const char *const _size_keys[] = {
	"VmSize", "VCpus", "MemoryMB", "Rdma", "IbRate", "MaxLatencyUs",
	"MinBandwidthMBs", "MaxPerDomain", "Family", "Retired", NULL};
static const char *const _profile_keys[] = {"MpiProfile", "Rdma", "Set",
					    NULL};

static const char *const _cloud_names[] = {
	[CLOUD_AZURE_PUBLIC] = "AzurePublic",
	[CLOUD_AZURE_USGOV] = "AzureUSGovernment",
	[CLOUD_AZURE_CHINA] = "AzureChinaCloud",
	[CLOUD_CUSTOM] = "Custom",
};

/* Endpoints of the named clouds (Azure's ARM metadata). */
static const struct {
	const char *arm, *authority, *audience;
} _cloud_endpoints[] = {
	[CLOUD_AZURE_PUBLIC] = {"https://management.azure.com",
				"https://login.microsoftonline.com",
				"https://management.azure.com"},
	[CLOUD_AZURE_USGOV] = {"https://management.usgovcloudapi.net",
			       "https://login.microsoftonline.us",
			       "https://management.usgovcloudapi.net"},
	[CLOUD_AZURE_CHINA] = {"https://management.chinacloudapi.cn",
			       "https://login.chinacloudapi.cn",
			       "https://management.chinacloudapi.cn"},
};

#define AZURE_IMDS "http://169.254.169.254"

const char *conf_cloud_name(enum conf_cloud cloud)
{
	return _cloud_names[cloud];
}

const char *conf_auth_name(enum conf_auth auth)
{
	return auth == AUTH_SERVICE_PRINCIPAL ? "ServicePrincipal"
					      : "ManagedIdentity";
}

/* Edit distance, for "did you mean" on unknown keys. */
static size_t _distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = tolower((unsigned char)a[i - 1])
					      == tolower((unsigned char)b[j - 1])
				      ? 0
				      : 1;
			size_t best = diag + cost;

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* The closest known key to key among a NULL-terminated list, or NULL. */
static const char *_suggest(const char *key, const char *const *known)
{
	const char *best = NULL;
	size_t best_d = 3;

	for (size_t i = 0; known[i]; i++) {
		size_t d = _distance(key, known[i]);

		if (d < best_d) {
			best_d = d;
			best = known[i];
		}
	}
	return best;
}

static void _unknown_key(struct parse *ps, int line, const char *key,
			 const char *where, const char *const *known)
{
	const char *s = _suggest(key, known);

	if (s)
		_err(ps, line, "unknown key '%s' %s; did you mean '%s'?", key,
		     where, s);
	else
		_err(ps, line,
		     "unknown key '%s' %s; see azrdma.conf(5) for the keys",
		     key, where);
}

static void _unknown_global(struct parse *ps, int line, const char *key)
{
	const char *names[N_GLOBAL_KEYS + 5];
	size_t n = 0;

	for (size_t i = 0; i < N_GLOBAL_KEYS; i++)
		names[n++] = _global_keys[i].name;
	names[n++] = "Image";
	names[n++] = "Domain";
	names[n++] = "VmSize";
	names[n++] = "MpiProfile";
	names[n] = NULL;
	_unknown_key(ps, line, key, "", names);
}

static bool _in_list(const char *key, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (!strcasecmp(key, list[i]))
			return true;
	return false;
}

/* Split "a,b,c" into a new array of new strings; false if out of memory. */
static bool _split_list(const char *v, char ***out, size_t *count)
{
	char *copy = strdup(v), *save = NULL, *tok;
	char **list = NULL;
	size_t n = 0;

	if (!copy)
		return false;
	for (tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char **grown = realloc(list, (n + 1) * sizeof(*grown));

		if (!grown || !(grown[n] = strdup(tok))) {
			list = grown ? grown : list;
			hostnames_free(list, n);
			free(copy);
			return false;
		}
		list = grown;
		n++;
	}
	free(copy);
	*out = list;
	*count = n;
	return true;
}

static bool _set_string(struct parse *ps, char **slot, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return false;
	free(*slot);
	*slot = s;
	return true;
}

static bool _parse_tags(struct parse *ps, int line, const char *v)
{
	struct azrdma_conf *c = ps->conf;
	char **items = NULL;
	size_t n = 0;

	if (!_split_list(v, &items, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		char *eq = strchr(items[i], '=');
		struct conf_tag *grown;

		if (!eq || eq == items[i]) {
			_err(ps, line,
			     "Tags: '%s' is not key=value; write "
			     "Tags=team=hpc,costcenter=42",
			     items[i]);
			continue;
		}
		*eq = '\0';
		if (strpbrk(items[i], "<>%&\\?/") || strlen(items[i]) > 512) {
			_err(ps, line,
			     "Tags: Azure does not allow the tag name '%s' "
			     "(at most 512 characters, none of < > %% & \\ ? /)",
			     items[i]);
			continue;
		}
		grown = realloc(c->tags, (c->tag_count + 1) * sizeof(*grown));
		if (!grown) {
			hostnames_free(items, n);
			return false;
		}
		c->tags = grown;
		grown[c->tag_count].key = strdup(items[i]);
		grown[c->tag_count].value = strdup(eq + 1);
		c->tag_count++;
		if (!grown[c->tag_count - 1].key
		    || !grown[c->tag_count - 1].value) {
			hostnames_free(items, n);
			return false;
		}
	}
	hostnames_free(items, n);
	return true;
}

/* Keys whose values need more than a kind check. */
static bool _set_special(struct parse *ps, int line, const struct gkey *k,
			 const char *v)
{
	struct azrdma_conf *c = ps->conf;
	char **slot = k->offset ? (char **)((char *)c + k->offset) : NULL;

	if (!strcasecmp(k->name, "Cloud")) {
		for (int i = 0; i <= CLOUD_CUSTOM; i++)
			if (!strcasecmp(v, _cloud_names[i])) {
				c->cloud = (enum conf_cloud)i;
				return true;
			}
		_err(ps, line,
		     "Cloud=%s: expected AzurePublic, AzureUSGovernment, "
		     "AzureChinaCloud or Custom",
		     v);
		return true;
	}
	if (!strcasecmp(k->name, "Auth")) {
		if (!strcasecmp(v, "ManagedIdentity"))
			c->auth = AUTH_MANAGED_IDENTITY;
		else if (!strcasecmp(v, "ServicePrincipal"))
			c->auth = AUTH_SERVICE_PRINCIPAL;
		else
			_err(ps, line,
			     "Auth=%s: expected ManagedIdentity or "
			     "ServicePrincipal",
			     v);
		return true;
	}
	if (!strcasecmp(k->name, "SuspendAction")) {
		if (!strcasecmp(v, "Deallocate"))
			c->suspend_action = SUSPEND_DEALLOCATE;
		else if (!strcasecmp(v, "Delete"))
			c->suspend_action = SUSPEND_DELETE;
		else
			_err(ps, line,
			     "SuspendAction=%s: expected Deallocate or Delete",
			     v);
		return true;
	}
	if (!strcasecmp(k->name, "RdmaPartitions")) {
		hostnames_free(c->rdma_partitions, c->rdma_partition_count);
		c->rdma_partitions = NULL;
		c->rdma_partition_count = 0;
		return _split_list(v, &c->rdma_partitions,
				   &c->rdma_partition_count);
	}
	if (!strcasecmp(k->name, "AllowUserBoot")) {
		hostnames_free(c->allow_user_boot, c->allow_user_boot_count);
		c->allow_user_boot = NULL;
		c->allow_user_boot_count = 0;
		if (!_split_list(v, &c->allow_user_boot,
		                 &c->allow_user_boot_count))
			return false;
		for (size_t i = 0; i < c->allow_user_boot_count; i++) {
			const char *u = c->allow_user_boot[i];

			if (strcasecmp(u, "ALL") && !conf_is_name(u, 32))
				_err(ps, line,
				     "AllowUserBoot: '%s' is no user name; list "
				     "user names, or ALL",
				     u);
		}
		return true;
	}
	if (!strcasecmp(k->name, "Tags"))
		return _parse_tags(ps, line, v);
	if (!strcasecmp(k->name, "ResourceGroup") && !_is_resource_group(v)) {
		_err(ps, line,
		     "ResourceGroup=%s: not a valid resource group name (1-90 "
		     "letters, digits, _ - . ( ), not ending in '.')",
		     v);
		return true;
	}
	if (!strcasecmp(k->name, "Location")) {
		for (const char *p = v; *p; p++)
			if (!islower((unsigned char)*p)
			    && !isdigit((unsigned char)*p)) {
				_err(ps, line,
				     "Location=%s: expected an Azure region "
				     "name such as eastus or southcentralus "
				     "(lower case, no spaces)",
				     v);
				return true;
			}
	}
	if (!strcasecmp(k->name, "SubnetId") && !_is_subnet_id(v)) {
		_err(ps, line,
		     "SubnetId=%s: expected /subscriptions/<id>/resourceGroups/"
		     "<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/"
		     "subnets/<subnet>",
		     v);
		return true;
	}
	if (!strcasecmp(k->name, "AdminUsername")) {
		static const char *const reserved[] = {
			"root", "admin", "administrator", "user", "guest",
			"test", "adm", "sys", "support", NULL};

		if (!conf_is_name(v, 64) || _in_list(v, reserved)) {
			_err(ps, line,
			     "AdminUsername=%s: Azure does not allow this name "
			     "(1-64 letters, digits, _ - ., and not a reserved "
			     "name such as root or admin)",
			     v);
			return true;
		}
	}
	if ((!strcasecmp(k->name, "ComputeApiVersion")
	     || !strcasecmp(k->name, "NetworkApiVersion"))) {
		unsigned y, m, d;
		char tail[16] = "";

		if (sscanf(v, "%4u-%2u-%2u%15s", &y, &m, &d, tail) < 3
		    || y < 2015 || m < 1 || m > 12 || d < 1 || d > 31
		    || (tail[0] && strcmp(tail, "-preview"))) {
			_err(ps, line,
			     "%s=%s: expected an ARM api-version such as %s",
			     k->name, v,
			     !strcasecmp(k->name, "ComputeApiVersion")
				     ? CONF_DEFAULT_COMPUTE_API
				     : CONF_DEFAULT_NETWORK_API);
			return true;
		}
	}
	return _set_string(ps, slot, v);
}

static bool _set_global(struct parse *ps, int line, const char *key,
			const char *v)
{
	struct azrdma_conf *c = ps->conf;

	for (size_t i = 0; i < N_GLOBAL_KEYS; i++) {
		const struct gkey *k = &_global_keys[i];
		char **slot = (char **)((char *)c + k->offset);

		if (strcasecmp(key, k->name))
			continue;
		if (ps->set_line[i]) {
			_err(ps, line,
			     "%s is set again (first on line %d); keep one",
			     k->name, ps->set_line[i]);
			return true;
		}
		ps->set_line[i] = line;
		if (!*v) {
			_err(ps, line, "%s has an empty value", k->name);
			return true;
		}
		switch (k->kind) {
		case G_STRING:
			return _set_string(ps, slot, v);
		case G_PATH:
			if (v[0] != '/') {
				_err(ps, line,
				     "%s=%s: expected an absolute path", k->name,
				     v);
				return true;
			}
			return _set_string(ps, slot, v);
		case G_URL:
		case G_URL_HTTP:
			if (!_is_url(v, k->kind == G_URL_HTTP)) {
				_err(ps, line, "%s=%s: expected an %s URL",
				     k->name, v,
				     k->kind == G_URL ? "https://"
						      : "http:// or https://");
				return true;
			}
			free(*slot);
			*slot = _strip_slash(v);
			return *slot != NULL;
		case G_GUID:
			if (!_is_guid(v)) {
				_err(ps, line,
				     "%s=%s: expected a GUID such as "
				     "00000000-1111-2222-3333-444444444444",
				     k->name, v);
				return true;
			}
			return _set_string(ps, slot, v);
		case G_UINT: {
			unsigned *u = (unsigned *)((char *)c + k->offset);

			if (!_parse_uint(v, k->min, k->max, u))
				_err(ps, line,
				     "%s=%s: expected a whole number from %u to "
				     "%u",
				     k->name, v, k->min, k->max);
			return true;
		}
		case G_SPECIAL:
			return _set_special(ps, line, k, v);
		}
	}
	_unknown_global(ps, line, key);
	return true;
}

/* ---- repeated lines ----------------------------------------------------- */

static bool _parse_size_line(struct parse *ps, const struct conf_line *l)
{
	struct catalog *cat = ps->conf->catalog;
	const char *name = l->pairs[0].value;
	const struct vm_size *known = catalog_find(cat, name);
	struct vm_size s = {0};
	bool have_cpus = false, have_mem = false, have_rdma = false;
	unsigned retired;

	if (!conf_is_name(name, 64)) {
		_err(ps, l->lineno, "VmSize=%s: not a valid VM size name",
		     name);
		return true;
	}
	if (known)
		s = *known;
	s.name = (char *)name;
	s.feature = known ? known->feature : NULL;
	s.family = known ? known->family : NULL;
	if (!known)
		s.max_per_domain = 200;
	for (size_t i = 1; i < l->count; i++) {
		const char *k = l->pairs[i].key, *v = l->pairs[i].value;
		bool ok = true;

		if (!strcasecmp(k, "VCpus"))
			ok = have_cpus = _parse_uint(v, 1, 4096, &s.vcpus);
		else if (!strcasecmp(k, "MemoryMB"))
			ok = have_mem = _parse_uint(v, 1, UINT_MAX,
						    &s.memory_mb);
		else if (!strcasecmp(k, "Rdma"))
			ok = have_rdma = rdma_kind_parse(v, &s.rdma);
		else if (!strcasecmp(k, "IbRate"))
			ok = _parse_uint(v, 0, 10000, &s.ib_rate_gbps);
		else if (!strcasecmp(k, "MaxLatencyUs"))
			ok = _parse_double(v, &s.max_latency_us);
		else if (!strcasecmp(k, "MinBandwidthMBs"))
			ok = _parse_double(v, &s.min_bandwidth_mbs);
		else if (!strcasecmp(k, "MaxPerDomain"))
			ok = _parse_uint(v, 1, 100000, &s.max_per_domain);
		else if (!strcasecmp(k, "Family"))
			s.family = (char *)v;
		else if (!strcasecmp(k, "Retired")) {
			bool b;

			if (_parse_bool(v, &b) && !b)
				s.retired_year = 0;
			else if (_parse_uint(v, 2000, 2100, &retired))
				s.retired_year = retired;
			else
				ok = false;
		} else {
			_unknown_key(ps, l->lineno, k, "on a VmSize line",
				     _size_keys);
			continue;
		}
		if (!ok)
			_err(ps, l->lineno, "VmSize=%s: bad value %s=%s%s",
			     name, k, v,
			     !strcasecmp(k, "Rdma") ? " (expected none, nd or ib)"
			     : !strcasecmp(k, "Retired")
				     ? " (expected a year or no)"
				     : "");
	}
	if (!known && (!have_cpus || !have_mem || !have_rdma)) {
		_err(ps, l->lineno,
		     "VmSize=%s is not in the catalog, so the line must give "
		     "VCpus, MemoryMB and Rdma (none, nd or ib)",
		     name);
		return true;
	}
	return catalog_put(cat, &s) == AZ_OK;
}

static bool _parse_image_line(struct parse *ps, const struct conf_line *l)
{
	struct azrdma_conf *c = ps->conf;
	struct conf_image *img, *grown;
	const char *name = l->pairs[0].value;

	if (!conf_is_name(name, 64)) {
		_err(ps, l->lineno,
		     "Image=%s: image names are used as the Slurm feature "
		     "img_<name>, so use letters, digits, _ - . only",
		     name);
		return true;
	}
	if (conf_image_find(c, name)) {
		_err(ps, l->lineno, "Image=%s is defined twice (first on line "
		     "%d)", name, conf_image_find(c, name)->line);
		return true;
	}
	grown = realloc(c->images, (c->image_count + 1) * sizeof(*grown));
	if (!grown)
		return false;
	c->images = grown;
	img = &c->images[c->image_count++];
	memset(img, 0, sizeof(*img));
	img->line = l->lineno;
	if (!(img->name = strdup(name)))
		return false;
	for (size_t i = 1; i < l->count; i++) {
		const char *k = l->pairs[i].key, *v = l->pairs[i].value;

		if (!strcasecmp(k, "Urn")) {
			int colons = 0;

			for (const char *p = v; *p; p++)
				colons += *p == ':';
			if (colons != 3 || strstr(v, "::") || v[0] == ':'
			    || v[strlen(v) - 1] == ':')
				_err(ps, l->lineno,
				     "Image=%s: Urn=%s is not "
				     "publisher:offer:sku:version (use "
				     "'latest' for the newest version)",
				     name, v);
			else if (!_set_string(ps, &img->urn, v))
				return false;
		} else if (!strcasecmp(k, "Id")) {
			if (v[0] != '/')
				_err(ps, l->lineno,
				     "Image=%s: Id=%s is not an image resource "
				     "id (/subscriptions/.../images/<name> or a "
				     "gallery image version id)",
				     name, v);
			else if (!_set_string(ps, &img->id, v))
				return false;
		} else if (!strcasecmp(k, "Mpi")) {
			if (!_set_string(ps, &img->mpi, v))
				return false;
		} else if (!strcasecmp(k, "Default")) {
			if (!_parse_bool(v, &img->is_default))
				_err(ps, l->lineno,
				     "Image=%s: Default=%s: expected yes or no",
				     name, v);
		} else {
			_unknown_key(ps, l->lineno, k, "on an Image line",
				     _image_keys);
		}
	}
	if (!img->urn && !img->id)
		_err(ps, l->lineno,
		     "Image=%s needs Urn=publisher:offer:sku:version or "
		     "Id=<image resource id>",
		     name);
	if (img->urn && img->id)
		_err(ps, l->lineno,
		     "Image=%s has both Urn and Id; give exactly one", name);
	return true;
}

static bool _parse_profile_line(struct parse *ps, const struct conf_line *l)
{
	struct azrdma_conf *c = ps->conf;
	struct conf_mpi_profile *p, *grown;
	const char *name = l->pairs[0].value;

	if (!conf_is_name(name, 64)) {
		_err(ps, l->lineno,
		     "MpiProfile=%s: use letters, digits, _ - . only", name);
		return true;
	}
	for (size_t i = 0; i < c->mpi_profile_count; i++)
		if (!strcasecmp(c->mpi_profiles[i].name, name)
		    && c->mpi_profiles[i].line > 0) {
			_err(ps, l->lineno,
			     "MpiProfile=%s is defined twice (first on line "
			     "%d)",
			     name, c->mpi_profiles[i].line);
			return true;
		}
	grown = realloc(c->mpi_profiles,
			(c->mpi_profile_count + 1) * sizeof(*grown));
	if (!grown)
		return false;
	c->mpi_profiles = grown;
	p = &c->mpi_profiles[c->mpi_profile_count++];
	memset(p, 0, sizeof(*p));
	p->line = l->lineno;
	if (!(p->name = strdup(name)))
		return false;
	for (size_t i = 1; i < l->count; i++) {
		const char *k = l->pairs[i].key, *v = l->pairs[i].value;

		if (!strcasecmp(k, "Rdma")) {
			if (!strcasecmp(v, "any"))
				p->rdma = RDMA_NONE;
			else if (!rdma_kind_parse(v, &p->rdma))
				_err(ps, l->lineno,
				     "MpiProfile=%s: Rdma=%s: expected nd, ib "
				     "or any",
				     name, v);
		} else if (!strcasecmp(k, "Set")) {
			const char *eq = strchr(v, '=');
			char **env;

			if (!eq || eq == v) {
				_err(ps, l->lineno,
				     "MpiProfile=%s: Set=%s: expected "
				     "Set=NAME=value",
				     name, v);
				continue;
			}
			env = realloc(p->env, (p->env_count + 1) * sizeof(*env));
			if (!env)
				return false;
			p->env = env;
			if (!(env[p->env_count] = strdup(v)))
				return false;
			p->env_count++;
		} else {
			_unknown_key(ps, l->lineno, k, "on an MpiProfile line",
				     _profile_keys);
		}
	}
	if (!p->env_count)
		_err(ps, l->lineno,
		     "MpiProfile=%s sets nothing; add Set=NAME=value pairs",
		     name);
	return true;
}

static bool _parse_domain_line(struct parse *ps, const struct conf_line *l)
{
	struct azrdma_conf *c = ps->conf;
	struct conf_domain *d, *grown;
	const char *name = l->pairs[0].value;
	const char *size_name = NULL;
	char err[AZ_ERRLEN];

	if (!conf_is_name(name, 64)) {
		_err(ps, l->lineno,
		     "Domain=%s: domain names are Slurm features, so use "
		     "letters, digits, _ - . only",
		     name);
		return true;
	}
	if (conf_domain_find(c, name)) {
		_err(ps, l->lineno,
		     "Domain=%s is defined twice (first on line %d)", name,
		     conf_domain_find(c, name)->line);
		return true;
	}
	grown = realloc(c->domains, (c->domain_count + 1) * sizeof(*grown));
	if (!grown)
		return false;
	c->domains = grown;
	d = &c->domains[c->domain_count++];
	memset(d, 0, sizeof(*d));
	d->line = l->lineno;
	if (!(d->name = strdup(name)))
		return false;
	for (size_t i = 1; i < l->count; i++) {
		const char *k = l->pairs[i].key, *v = l->pairs[i].value;

		if (!strcasecmp(k, "Nodes")) {
			if (!_set_string(ps, &d->nodes, v))
				return false;
		} else if (!strcasecmp(k, "VmSize")) {
			size_name = v;
		} else if (!strcasecmp(k, "AvailabilitySet")) {
			if (!conf_is_name(v, 80))
				_err(ps, l->lineno,
				     "Domain=%s: AvailabilitySet=%s is not a "
				     "valid Azure name (1-80 letters, digits, _ "
				     "- .)",
				     name, v);
			else if (!_set_string(ps, &d->availability_set, v))
				return false;
		} else if (!strcasecmp(k, "ProximityPlacementGroup")) {
			if (!conf_is_name(v, 80))
				_err(ps, l->lineno,
				     "Domain=%s: ProximityPlacementGroup=%s is "
				     "not a valid Azure name",
				     name, v);
			else if (!_set_string(ps,
					      &d->proximity_placement_group, v))
				return false;
		} else if (!strcasecmp(k, "Image")) {
			if (!_set_string(ps, &d->image, v))
				return false;
		} else if (!strcasecmp(k, "Priority")) {
			if (!strcasecmp(v, "Regular"))
				d->priority = PRIORITY_REGULAR;
			else if (!strcasecmp(v, "Spot"))
				d->priority = PRIORITY_SPOT;
			else
				_err(ps, l->lineno,
				     "Domain=%s: Priority=%s: expected Regular "
				     "or Spot",
				     name, v);
		} else {
			_unknown_key(ps, l->lineno, k, "on a Domain line",
				     _domain_keys);
		}
	}

	if (!d->nodes) {
		_err(ps, l->lineno,
		     "Domain=%s needs Nodes=<hostlist>, e.g. Nodes=%s-[000-015]",
		     name, name);
	} else if (hostlist_expand(d->nodes, &d->node_names, &d->node_count,
				   err, sizeof(err))
		   != AZ_OK) {
		_err(ps, l->lineno, "Domain=%s: Nodes=%s: %s", name, d->nodes,
		     err);
	}

	if (!size_name) {
		_err(ps, l->lineno,
		     "Domain=%s needs VmSize=<size>, e.g. "
		     "VmSize=Standard_HB120rs_v3",
		     name);
		return true;
	}
	d->size = catalog_find(c->catalog, size_name);
	if (!d->size) {
		_err(ps, l->lineno,
		     "Domain=%s: unknown VM size %s; use a size from "
		     "'azrdma-config show', or describe it with a line "
		     "VmSize=%s VCpus=<n> MemoryMB=<n> Rdma=nd|ib",
		     name, size_name, size_name);
		return true;
	}
	if (d->size->rdma == RDMA_NONE)
		_err(ps, l->lineno,
		     "Domain=%s: %s has no RDMA network, so it cannot form a "
		     "fabric domain; use an RDMA size such as Standard_A9, "
		     "Standard_H16r or Standard_HB120rs_v3",
		     name, d->size->name);
	if (d->size->retired_year)
		_warn(ps, l->lineno,
		      "Domain=%s: Azure retired %s in %u; public Azure will "
		      "refuse to create it (fine for private clouds and the "
		      "emulator)",
		      name, d->size->name, d->size->retired_year);
	if (d->node_count > d->size->max_per_domain)
		_err(ps, l->lineno,
		     "Domain=%s has %zu nodes, but one %s placement domain "
		     "holds at most %u; split it into domains of at most %u "
		     "nodes",
		     name, d->node_count, d->size->name,
		     d->size->max_per_domain, d->size->max_per_domain);
	return true;
}

/* ---- cross-checks ------------------------------------------------------- */

static bool _fill_defaults(struct parse *ps)
{
	struct azrdma_conf *c = ps->conf;

	if (!c->cluster_name && !(c->cluster_name = strdup("azrdma")))
		return false;
	if (!c->admin_username
	    && !(c->admin_username = strdup(CONF_DEFAULT_ADMIN_USERNAME)))
		return false;
	if (!c->state_dir && !(c->state_dir = strdup(CONF_DEFAULT_STATE_DIR)))
		return false;
	if (!c->node_image_file
	    && !(c->node_image_file = strdup(CONF_DEFAULT_NODE_IMAGE_FILE)))
		return false;
	if (!c->compute_api_version
	    && !(c->compute_api_version = strdup(CONF_DEFAULT_COMPUTE_API)))
		return false;
	if (!c->network_api_version
	    && !(c->network_api_version = strdup(CONF_DEFAULT_NETWORK_API)))
		return false;
	if (!c->max_parallel_requests)
		c->max_parallel_requests = CONF_DEFAULT_MAX_PARALLEL;
	if (c->cloud != CLOUD_CUSTOM) {
		const char *arm = _cloud_endpoints[c->cloud].arm;

		if ((!c->arm_endpoint && !(c->arm_endpoint = strdup(arm)))
		    || (!c->authority_host
			&& !(c->authority_host = strdup(
				     _cloud_endpoints[c->cloud].authority)))
		    || (!c->arm_audience
			&& !(c->arm_audience = strdup(
				     _cloud_endpoints[c->cloud].audience))))
			return false;
	}
	if (!c->imds_endpoint && !(c->imds_endpoint = strdup(AZURE_IMDS)))
		return false;
	for (size_t i = 0; i < c->domain_count; i++) {
		struct conf_domain *d = &c->domains[i];
		size_t n;

		if (d->availability_set)
			continue;
		n = strlen(c->cluster_name) + strlen(d->name) + 2;
		d->availability_set = malloc(n);
		if (!d->availability_set)
			return false;
		snprintf(d->availability_set, n, "%s-%s", c->cluster_name,
			 d->name);
	}
	return true;
}

static int _key_line(struct parse *ps, const char *name)
{
	for (size_t i = 0; i < N_GLOBAL_KEYS; i++)
		if (!strcmp(_global_keys[i].name, name))
			return ps->set_line[i];
	return 0;
}

static void _require(struct parse *ps, const char *value, const char *key,
		     const char *example)
{
	/* A key set to a bad value was reported where it was set. */
	if (!value && !_key_line(ps, key))
		_err(ps, ps->last_lineno,
		     "missing required key %s; add a line %s=%s", key, key,
		     example);
}

static void _check_required(struct parse *ps)
{
	struct azrdma_conf *c = ps->conf;

	_require(ps, c->subscription_id, "SubscriptionId",
		 "<subscription GUID>");
	_require(ps, c->resource_group, "ResourceGroup", "<resource group>");
	_require(ps, c->location, "Location", "<region, e.g. eastus>");
	_require(ps, c->subnet_id, "SubnetId",
		 "/subscriptions/<id>/resourceGroups/<rg>/providers/"
		 "Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>");
	_require(ps, c->ssh_public_key_file, "SshPublicKeyFile",
		 "/etc/slurm/azrdma_id.pub");
	if (!c->domain_count)
		_err(ps, ps->last_lineno,
		     "no Domain= line: add at least one, e.g. Domain=hb0 "
		     "Nodes=hb-[000-015] VmSize=Standard_HB120rs_v3");
	if (!c->image_count)
		_err(ps, ps->last_lineno,
		     "no Image= line: add at least one, e.g. Image=alma "
		     "Urn=almalinux:almalinux-hpc:8_10-hpc-gen2:latest "
		     "Default=yes");

	if (c->cloud == CLOUD_CUSTOM) {
		_require(ps, c->arm_endpoint, "ArmEndpoint",
			 "https://<arm host>");
		_require(ps, c->arm_audience, "ArmAudience",
			 "https://<arm host>");
		if (c->auth == AUTH_SERVICE_PRINCIPAL)
			_require(ps, c->authority_host, "AuthorityHost",
				 "https://<login host>");
	} else {
		static const char *const custom_only[] = {
			"ArmEndpoint", "AuthorityHost", "ArmAudience", NULL};

		for (size_t i = 0; custom_only[i]; i++) {
			int line = _key_line(ps, custom_only[i]);

			if (line)
				_err(ps, line,
				     "%s is only used with Cloud=Custom; %s "
				     "has fixed endpoints, so remove it or set "
				     "Cloud=Custom",
				     custom_only[i], _cloud_names[c->cloud]);
		}
	}

	if (c->auth == AUTH_SERVICE_PRINCIPAL) {
		_require(ps, c->tenant_id, "TenantId", "<tenant GUID or domain>");
		_require(ps, c->client_id, "ClientId", "<application GUID>");
		_require(ps, c->client_secret_file, "ClientSecretFile",
			 "/etc/slurm/azrdma.secret");
	} else if (c->client_secret_file) {
		_err(ps, _key_line(ps, "ClientSecretFile"),
		     "ClientSecretFile is only used with Auth=ServicePrincipal; "
		     "a managed identity needs no secret, so remove it");
	}
}

static void _check_domains(struct parse *ps)
{
	struct azrdma_conf *c = ps->conf;

	for (size_t i = 0; i < c->domain_count; i++) {
		const struct conf_domain *d = &c->domains[i];

		if (d->image && !conf_image_find(c, d->image))
			_err(ps, d->line,
			     "Domain=%s: Image=%s is not defined; add an "
			     "Image=%s line or use one of the Image= names",
			     d->name, d->image, d->image);
		if (d->size && d->size->rdma != RDMA_NONE
		    && (!strcasecmp(d->name, d->size->feature)))
			_err(ps, d->line,
			     "Domain=%s: the name is also the feature of its "
			     "VM size; choose another name, e.g. %s0",
			     d->name, d->name);
		for (size_t j = 0; j < i; j++) {
			const struct conf_domain *o = &c->domains[j];

			if (d->availability_set && o->availability_set
			    && !strcasecmp(d->availability_set,
					   o->availability_set))
				_err(ps, d->line,
				     "Domain=%s uses AvailabilitySet=%s, as "
				     "does Domain=%s (line %d); each domain "
				     "needs its own availability set, one "
				     "fabric each",
				     d->name, d->availability_set, o->name,
				     o->line);
			for (size_t a = 0; a < d->node_count; a++)
				for (size_t b = 0; b < o->node_count; b++)
					if (!strcmp(d->node_names[a],
						    o->node_names[b]))
						_err(ps, d->line,
						     "node %s is in Domain=%s "
						     "and already in Domain=%s "
						     "(line %d); a node belongs "
						     "to exactly one domain",
						     d->node_names[a], d->name,
						     o->name, o->line);
		}
	}
}

static void _check_images(struct parse *ps)
{
	struct azrdma_conf *c = ps->conf;
	const struct conf_image *first_default = NULL;

	for (size_t i = 0; i < c->image_count; i++) {
		const struct conf_image *img = &c->images[i];

		if (img->mpi && !conf_mpi_profile_find(c, img->mpi))
			_err(ps, img->line,
			     "Image=%s: Mpi=%s is not a known MPI profile; "
			     "define it with an MpiProfile=%s line or use a "
			     "built-in one (see azrdma.conf(5))",
			     img->name, img->mpi, img->mpi);
		if (!img->is_default)
			continue;
		if (first_default)
			_err(ps, img->line,
			     "Image=%s is marked Default=yes, and so is "
			     "Image=%s (line %d); keep one default",
			     img->name, first_default->name,
			     first_default->line);
		else
			first_default = img;
	}
	if (c->image_count > 1 && !first_default)
		_err(ps, c->images[1].line,
		     "%zu images and none is the default; mark one with "
		     "Default=yes",
		     c->image_count);
	if (c->image_count == 1)
		c->images[0].is_default = true;
}

static void _check_files(struct parse *ps)
{
	struct azrdma_conf *c = ps->conf;
	char err[AZ_ERRLEN];

	if (c->client_secret_file
	    && fs_check_secret(c->client_secret_file, "ClientSecretFile", err,
			       sizeof(err))
		       != AZ_OK)
		_err(ps, _key_line(ps, "ClientSecretFile"), "%s", err);
	/* customData carries what a VM needs to join, e.g. the munge key. */
	if (c->custom_data_file
	    && fs_check_secret(c->custom_data_file, "CustomDataFile", err,
			       sizeof(err))
		       != AZ_OK)
		_err(ps, _key_line(ps, "CustomDataFile"), "%s", err);
	if (c->ssh_public_key_file) {
		char *key = NULL;

		if (fs_read_file(c->ssh_public_key_file, 16384, &key, NULL, err,
				 sizeof(err))
		    != AZ_OK)
			_err(ps, _key_line(ps, "SshPublicKeyFile"),
			     "SshPublicKeyFile: %s", err);
		else if (strncmp(key, "ssh-", 4) && strncmp(key, "ecdsa-", 6))
			_err(ps, _key_line(ps, "SshPublicKeyFile"),
			     "SshPublicKeyFile %s does not hold an OpenSSH "
			     "public key (ssh-rsa/ssh-ed25519/ecdsa-...); is "
			     "it the private key?",
			     c->ssh_public_key_file);
		free(key);
	}
	if (c->ca_bundle && access(c->ca_bundle, R_OK) < 0)
		_err(ps, _key_line(ps, "CaBundle"), "CaBundle %s: %s",
		     c->ca_bundle, strerror(errno));
	if (c->site_prolog_slurmctld) {
		const char *p = c->site_prolog_slurmctld;
		const char *base = strrchr(p, '/') + 1; /* G_PATH: absolute */

		if (!strcmp(base, "azrdma-prolog-slurmctld"))
			_err(ps, _key_line(ps, "SitePrologSlurmctld"),
			     "SitePrologSlurmctld=%s is azrdma's own program, "
			     "which would run itself; name the site's "
			     "PrologSlurmctld there, or remove the key", p);
		else if (access(p, X_OK) < 0)
			_err(ps, _key_line(ps, "SitePrologSlurmctld"),
			     "SitePrologSlurmctld %s: %s (it must be a program "
			     "SlurmUser can run)", p, strerror(errno));
	}
}

/* ---- loading ------------------------------------------------------------ */

char *conf_default_path(void)
{
	const char *env = getenv("AZRDMA_CONF");
	const char *slurm_conf = getenv("SLURM_CONF");
	const char *slash;
	char *path;

	if (env && *env)
		return strdup(env);
	if (!slurm_conf || !*slurm_conf || !(slash = strrchr(slurm_conf, '/')))
		return strdup("/etc/slurm/azrdma.conf");
	path = malloc((size_t)(slash - slurm_conf) + sizeof("/azrdma.conf"));
	if (!path)
		return NULL;
	memcpy(path, slurm_conf, (size_t)(slash - slurm_conf));
	strcpy(path + (slash - slurm_conf), "/azrdma.conf");
	return path;
}

static bool _dispatch(struct parse *ps, const struct conf_line *l, int pass)
{
	const char *first = l->pairs[0].key;

	if (!strcasecmp(first, "VmSize"))
		return pass == 1 ? _parse_size_line(ps, l) : true;
	if (pass == 1)
		return true;
	if (!strcasecmp(first, "Image"))
		return _parse_image_line(ps, l);
	if (!strcasecmp(first, "MpiProfile"))
		return _parse_profile_line(ps, l);
	if (!strcasecmp(first, "Domain"))
		return true; /* pass 3, once images and profiles are known */
	for (size_t i = 0; i < l->count; i++) {
		const char *k = l->pairs[i].key;

		if (!strcasecmp(k, "Image") || !strcasecmp(k, "Domain")
		    || !strcasecmp(k, "VmSize") || !strcasecmp(k, "MpiProfile")) {
			_err(ps, l->lineno,
			     "%s= must come first on its line (it starts a "
			     "line of its own), after %s=", k, first);
			continue;
		}
		if (!_set_global(ps, l->lineno, k, l->pairs[i].value))
			return false;
	}
	return true;
}

enum az_rc conf_load(const char *path, unsigned flags, struct azrdma_conf **out,
		     struct conf_diags *diags, char *err, size_t errlen)
{
	struct conf_diags local = {0};
	struct conf_text text = {0};
	struct parse ps = {0};
	struct azrdma_conf *c = NULL;
	char *data = NULL;
	enum az_rc rc;

	*out = NULL;
	if (!diags)
		diags = &local;
	rc = fs_check_not_world_writable(path, "azrdma.conf", err, errlen);
	if (rc != AZ_OK) {
		conf_diag_add(diags, true, path, 0, "%s", err);
		goto out;
	}
	rc = fs_read_file(path, CONF_MAX_SIZE, &data, NULL, err, errlen);
	if (rc != AZ_OK) {
		conf_diag_add(diags, true, path, 0, "%s", err);
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(path)) || catalog_new(&c->catalog)
	    || mpi_profiles_builtin(&c->mpi_profiles, &c->mpi_profile_count)
		       != AZ_OK) {
		rc = AZ_ENOMEM;
		goto out;
	}
	c->capacity_cooldown = CONF_DEFAULT_CAPACITY_COOLDOWN;
	rc = conf_lex(path, data, &text, diags);
	if (rc != AZ_OK)
		goto out;
	ps.path = path;
	ps.conf = c;
	ps.diags = diags;
	ps.last_lineno = text.last_lineno > 0 ? text.last_lineno : 1;

	for (int pass = 1; pass <= 3; pass++) {
		for (size_t i = 0; i < text.count; i++) {
			const struct conf_line *l = &text.lines[i];
			bool ok = pass < 3
					  ? _dispatch(&ps, l, pass)
					  : (strcasecmp(l->pairs[0].key, "Domain")
					     || _parse_domain_line(&ps, l));

			if (!ok) {
				rc = AZ_ENOMEM;
				goto out;
			}
		}
	}
	if (!_fill_defaults(&ps)) {
		rc = AZ_ENOMEM;
		goto out;
	}
	_check_required(&ps);
	_check_images(&ps);
	_check_domains(&ps);
	if (flags & CONF_CHECK_FILES)
		_check_files(&ps);

	if (diags->errors) {
		rc = AZ_ECONFIG;
		for (size_t i = 0; i < diags->count; i++)
			if (diags->items[i].is_error) {
				az_err(rc, err, errlen, "%s%s",
				       diags->items[i].message,
				       diags->errors > 1 ? " (and more)" : "");
				break;
			}
		goto out;
	}
	*out = c;
	c = NULL;
out:
	if (rc != AZ_OK && rc != AZ_ECONFIG && diags->errors == 0)
		conf_diag_add(diags, true, path, 0, "%s", az_strerror(rc));
	if (rc == AZ_ENOMEM)
		az_err(rc, err, errlen, "%s: out of memory", path);
	conf_text_free(&text);
	free(data);
	conf_free(c);
	if (diags == &local)
		conf_diags_free(&local);
	return rc;
}

void conf_diags_free(struct conf_diags *diags)
{
	if (!diags)
		return;
	for (size_t i = 0; i < diags->count; i++)
		free(diags->items[i].message);
	free(diags->items);
	memset(diags, 0, sizeof(*diags));
}

void conf_free(struct azrdma_conf *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->cluster_name);
	free(c->subscription_id);
	free(c->resource_group);
	free(c->location);
	free(c->arm_endpoint);
	free(c->authority_host);
	free(c->imds_endpoint);
	free(c->arm_audience);
	free(c->tenant_id);
	free(c->client_id);
	free(c->client_secret_file);
	free(c->ca_bundle);
	free(c->subnet_id);
	free(c->admin_username);
	free(c->ssh_public_key_file);
	free(c->custom_data_file);
	free(c->state_dir);
	free(c->log_file);
	free(c->site_prolog_slurmctld);
	free(c->node_image_file);
	free(c->compute_api_version);
	free(c->network_api_version);
	hostnames_free(c->rdma_partitions, c->rdma_partition_count);
	hostnames_free(c->allow_user_boot, c->allow_user_boot_count);
	for (size_t i = 0; i < c->tag_count; i++) {
		free(c->tags[i].key);
		free(c->tags[i].value);
	}
	free(c->tags);
	for (size_t i = 0; i < c->image_count; i++) {
		free(c->images[i].name);
		free(c->images[i].urn);
		free(c->images[i].id);
		free(c->images[i].mpi);
	}
	free(c->images);
	for (size_t i = 0; i < c->domain_count; i++) {
		struct conf_domain *d = &c->domains[i];

		free(d->name);
		free(d->nodes);
		hostnames_free(d->node_names, d->node_count);
		free(d->availability_set);
		free(d->proximity_placement_group);
		free(d->image);
	}
	free(c->domains);
	mpi_profiles_free(c->mpi_profiles, c->mpi_profile_count);
	catalog_free(c->catalog);
	free(c);
}

/* ---- lookups ------------------------------------------------------------ */

bool conf_user_may_boot(const struct azrdma_conf *c, uint32_t uid,
                        uint32_t slurm_user_id)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (uid == 0 || uid == slurm_user_id)
		return true;
	if (!c)
		return false;
	for (size_t i = 0; i < c->allow_user_boot_count; i++)
		if (!strcasecmp(c->allow_user_boot[i], "ALL"))
			return true;
	if (!c->allow_user_boot_count
	    || getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &found) != 0
	    || !found)
		return false;
	for (size_t i = 0; i < c->allow_user_boot_count; i++)
		if (!strcmp(c->allow_user_boot[i], found->pw_name))
			return true;
	return false;
}

const struct conf_domain *conf_domain_find(const struct azrdma_conf *c,
					   const char *name)
{
	for (size_t i = 0; i < c->domain_count; i++)
		if (!strcasecmp(c->domains[i].name, name))
			return &c->domains[i];
	return NULL;
}

const struct conf_domain *domain_for_node(const struct azrdma_conf *c,
					  const char *node)
{
	for (size_t i = 0; i < c->domain_count; i++)
		for (size_t j = 0; j < c->domains[i].node_count; j++)
			if (!strcmp(c->domains[i].node_names[j], node))
				return &c->domains[i];
	return NULL;
}

const struct conf_image *conf_image_find(const struct azrdma_conf *c,
					 const char *name)
{
	for (size_t i = 0; i < c->image_count; i++)
		if (!strcasecmp(c->images[i].name, name))
			return &c->images[i];
	return NULL;
}

const struct conf_image *conf_image_default(const struct azrdma_conf *c)
{
	for (size_t i = 0; i < c->image_count; i++)
		if (c->images[i].is_default)
			return &c->images[i];
	return c->image_count ? &c->images[0] : NULL;
}

const struct conf_image *conf_domain_image(const struct azrdma_conf *c,
					   const struct conf_domain *d)
{
	if (d->image)
		return conf_image_find(c, d->image);
	return conf_image_default(c);
}

const struct conf_mpi_profile *
conf_mpi_profile_find(const struct azrdma_conf *c, const char *name)
{
	/* Later definitions (azrdma.conf) override the built-in ones. */
	for (size_t i = c->mpi_profile_count; i-- > 0;)
		if (!strcasecmp(c->mpi_profiles[i].name, name))
			return &c->mpi_profiles[i];
	return NULL;
}

const struct conf_mpi_profile *
conf_domain_mpi_profile(const struct azrdma_conf *c,
			const struct conf_domain *d)
{
	const struct conf_image *img = conf_domain_image(c, d);
	const char *name = NULL;

	if (img && img->mpi)
		name = img->mpi;
	else if (d->size)
		name = mpi_profile_default_for(d->size->rdma);
	return name ? conf_mpi_profile_find(c, name) : NULL;
}
