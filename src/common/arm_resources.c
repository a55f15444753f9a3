/*
 * arm_resources.c - the ARM resources azrdma uses: virtual machines, NICs,
 * availability sets, proximity placement groups and resource SKUs.  Thin:
 * a path, a verb and an api-version per operation; the engine does the
 * rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arm_internal.h"
#include "buf.h"

char *arm_url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	struct az_buf b = {0};

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
		enum az_rc rc;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')
		    || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'
		    || ch == '_' || ch == '~')
			rc = buf_append(&b, s, 1);
		else
			rc = buf_append(&b, enc, 3);
		if (rc != AZ_OK) {
			buf_free(&b);
			return NULL;
		}
	}
	return buf_steal(&b);
}

/* /subscriptions/<sub>/resourceGroups/<rg>/providers/<type>/<name> */
static char *_path(const struct arm_client *c, const char *type,
                   const char *name)
{
	char *sub = arm_url_escape(c->subscription);
	char *rg = arm_url_escape(c->resource_group ? c->resource_group : "");
	char *n = arm_url_escape(name);
	struct az_buf b = {0};
	char *path = NULL;

	if (sub && rg && n
	    && buf_printf(&b,
	                  "/subscriptions/%s/resourceGroups/%s/providers/%s/%s",
	                  sub, rg, type, n)
	               == AZ_OK)
		path = buf_steal(&b);
	buf_free(&b);
	free(sub);
	free(rg);
	free(n);
	return path;
}

char *arm_vm_path(const struct arm_client *c, const char *name)
{
	return _path(c, "Microsoft.Compute/virtualMachines", name);
}

char *arm_nic_path(const struct arm_client *c, const char *name)
{
	return _path(c, "Microsoft.Network/networkInterfaces", name);
}

char *arm_avset_path(const struct arm_client *c, const char *name)
{
	return _path(c, "Microsoft.Compute/availabilitySets", name);
}

char *arm_ppg_path(const struct arm_client *c, const char *name)
{
	return _path(c, "Microsoft.Compute/proximityPlacementGroups", name);
}

/* One operation on a resource: what to call, and on what. */
struct _call {
	char *(*path)(const struct arm_client *c, const char *name);
	const char *suffix; /* "/start", or NULL */
	enum arm_method method;
	enum arm_api api;
	const char *query;
	unsigned flags;
};

/*
 * Submit call on the resource name with body (done != NULL), or make it
 * and wait, into *res.
 */
static enum az_rc _do(struct arm_client *c, const char *name,
                      const struct _call *call, json_object *body,
                      struct arm_result **res, arm_page_fn page,
                      arm_done_fn done, void *arg, char *err, size_t errlen)
{
	struct arm_request req = {
	        .method = call->method,
	        .api = call->api,
	        .query = call->query,
	        .body = body,
	        .flags = call->flags,
	        .page = page,
	};
	struct az_buf path = {0};
	char *base = call->path(c, name);
	enum az_rc rc;

	if (res)
		*res = NULL;
	if (!base || buf_puts(&path, base) != AZ_OK
	    || (call->suffix && buf_puts(&path, call->suffix) != AZ_OK)) {
		rc = az_err(AZ_ENOMEM, err, errlen, "out of memory");
		goto out;
	}
	req.path = path.data;
	if (done)
		rc = arm_submit(c, &req, done, arg, err, errlen);
	else
		rc = arm_call_sync(c, &req, res);
out:
	free(base);
	buf_free(&path);
	return rc;
}

static enum az_rc _sync(struct arm_client *c, const char *name,
                        const struct _call *call, json_object *body,
                        struct arm_result **res)
{
	return _do(c, name, call, body, res, NULL, NULL, NULL, NULL, 0);
}

static enum az_rc _async(struct arm_client *c, const char *name,
                         const struct _call *call, json_object *body,
                         arm_done_fn done, void *arg, char *err, size_t errlen)
{
	return _do(c, name, call, body, NULL, NULL, done, arg, err, errlen);
}

static const struct _call _vm_put = {.path = arm_vm_path, .method = ARM_PUT};
static const struct _call _vm_get = {.path = arm_vm_path, .method = ARM_GET};
static const struct _call _vm_get_iv = {.path = arm_vm_path,
                                        .method = ARM_GET,
                                        .query = "$expand=instanceView"};
static const struct _call _vm_start = {
        .path = arm_vm_path, .suffix = "/start", .method = ARM_POST};
static const struct _call _vm_deallocate = {
        .path = arm_vm_path, .suffix = "/deallocate", .method = ARM_POST};
static const struct _call _vm_power_off = {
        .path = arm_vm_path, .suffix = "/powerOff", .method = ARM_POST};
static const struct _call _vm_power_off_now = {.path = arm_vm_path,
                                               .suffix = "/powerOff",
                                               .method = ARM_POST,
                                               .query = "skipShutdown=true"};
/* forceDeletion is always explicit: since 2024-11-01 leaving it out may
 * mean force-delete. */
static const struct _call _vm_delete = {.path = arm_vm_path,
                                        .method = ARM_DELETE,
                                        .query = "forceDeletion=false"};
static const struct _call _vm_delete_force = {.path = arm_vm_path,
                                              .method = ARM_DELETE,
                                              .query = "forceDeletion=true"};
static const struct _call _nic_put = {
        .path = arm_nic_path, .method = ARM_PUT, .api = ARM_API_NETWORK};
static const struct _call _nic_get = {
        .path = arm_nic_path, .method = ARM_GET, .api = ARM_API_NETWORK};
static const struct _call _nic_delete = {
        .path = arm_nic_path, .method = ARM_DELETE, .api = ARM_API_NETWORK};
static const struct _call _avset_put = {.path = arm_avset_path,
                                        .method = ARM_PUT};
static const struct _call _avset_get = {.path = arm_avset_path,
                                        .method = ARM_GET};
static const struct _call _avset_delete = {.path = arm_avset_path,
                                           .method = ARM_DELETE};
static const struct _call _ppg_put = {.path = arm_ppg_path, .method = ARM_PUT};
static const struct _call _ppg_get = {.path = arm_ppg_path, .method = ARM_GET};
static const struct _call _ppg_delete = {.path = arm_ppg_path,
                                         .method = ARM_DELETE};

enum az_rc arm_vm_create(struct arm_client *c, const char *name,
                         json_object *body, struct arm_result **res)
{
	return _sync(c, name, &_vm_put, body, res);
}

enum az_rc arm_vm_create_async(struct arm_client *c, const char *name,
                               json_object *body, arm_done_fn done, void *arg,
                               char *err, size_t errlen)
{
	return _async(c, name, &_vm_put, body, done, arg, err, errlen);
}

enum az_rc arm_vm_get(struct arm_client *c, const char *name, unsigned flags,
                      struct arm_result **res)
{
	return _sync(c, name,
	             flags & ARM_VM_INSTANCE_VIEW ? &_vm_get_iv : &_vm_get,
	             NULL, res);
}

enum az_rc arm_vm_get_async(struct arm_client *c, const char *name,
                            unsigned flags, arm_done_fn done, void *arg,
                            char *err, size_t errlen)
{
	return _async(c, name,
	              flags & ARM_VM_INSTANCE_VIEW ? &_vm_get_iv : &_vm_get,
	              NULL, done, arg, err, errlen);
}

enum az_rc arm_vm_start(struct arm_client *c, const char *name,
                        struct arm_result **res)
{
	return _sync(c, name, &_vm_start, NULL, res);
}

enum az_rc arm_vm_start_async(struct arm_client *c, const char *name,
                              arm_done_fn done, void *arg, char *err,
                              size_t errlen)
{
	return _async(c, name, &_vm_start, NULL, done, arg, err, errlen);
}

enum az_rc arm_vm_deallocate(struct arm_client *c, const char *name,
                             struct arm_result **res)
{
	return _sync(c, name, &_vm_deallocate, NULL, res);
}

enum az_rc arm_vm_deallocate_async(struct arm_client *c, const char *name,
                                   arm_done_fn done, void *arg, char *err,
                                   size_t errlen)
{
	return _async(c, name, &_vm_deallocate, NULL, done, arg, err, errlen);
}

enum az_rc arm_vm_power_off(struct arm_client *c, const char *name,
                            bool skip_shutdown, struct arm_result **res)
{
	return _sync(c, name,
	             skip_shutdown ? &_vm_power_off_now : &_vm_power_off, NULL,
	             res);
}

enum az_rc arm_vm_power_off_async(struct arm_client *c, const char *name,
                                  bool skip_shutdown, arm_done_fn done,
                                  void *arg, char *err, size_t errlen)
{
	return _async(c, name,
	              skip_shutdown ? &_vm_power_off_now : &_vm_power_off, NULL,
	              done, arg, err, errlen);
}

enum az_rc arm_vm_delete(struct arm_client *c, const char *name, bool force,
                         struct arm_result **res)
{
	return _sync(c, name, force ? &_vm_delete_force : &_vm_delete, NULL,
	             res);
}

enum az_rc arm_vm_delete_async(struct arm_client *c, const char *name,
                               bool force, arm_done_fn done, void *arg,
                               char *err, size_t errlen)
{
	return _async(c, name, force ? &_vm_delete_force : &_vm_delete, NULL,
	              done, arg, err, errlen);
}

/*
 * A collection of the resource group: the path of a resource named "" of
 * type, without the slash.  Used as a _call's path with the type passed
 * as the name.
 */
static char *_collection(const struct arm_client *c, const char *type)
{
	char *p = _path(c, type, "");

	if (p)
		p[strlen(p) - 1] = '\0';
	return p;
}

static const struct _call _list = {.path = _collection,
                                   .method = ARM_GET,
                                   .flags = ARM_REQ_PAGED};

enum az_rc arm_vm_list(struct arm_client *c, struct arm_result **res)
{
	return _sync(c, "Microsoft.Compute/virtualMachines", &_list, NULL, res);
}

enum az_rc arm_vm_list_async(struct arm_client *c, arm_page_fn page,
                             arm_done_fn done, void *arg, char *err,
                             size_t errlen)
{
	return _do(c, "Microsoft.Compute/virtualMachines", &_list, NULL, NULL,
	           page, done, arg, err, errlen);
}

static const struct _call _nic_list = {.path = _collection,
                                       .method = ARM_GET,
                                       .api = ARM_API_NETWORK,
                                       .flags = ARM_REQ_PAGED};

enum az_rc arm_nic_list_async(struct arm_client *c, arm_page_fn page,
                              arm_done_fn done, void *arg, char *err,
                              size_t errlen)
{
	return _do(c, "Microsoft.Network/networkInterfaces", &_nic_list, NULL,
	           NULL, page, done, arg, err, errlen);
}

enum az_rc arm_avset_list(struct arm_client *c, struct arm_result **res)
{
	return _sync(c, "Microsoft.Compute/availabilitySets", &_list, NULL,
	             res);
}

enum az_rc arm_nic_create(struct arm_client *c, const char *name,
                          json_object *body, struct arm_result **res)
{
	return _sync(c, name, &_nic_put, body, res);
}

enum az_rc arm_nic_create_async(struct arm_client *c, const char *name,
                                json_object *body, arm_done_fn done, void *arg,
                                char *err, size_t errlen)
{
	return _async(c, name, &_nic_put, body, done, arg, err, errlen);
}

enum az_rc arm_nic_get(struct arm_client *c, const char *name,
                       struct arm_result **res)
{
	return _sync(c, name, &_nic_get, NULL, res);
}

enum az_rc arm_nic_get_async(struct arm_client *c, const char *name,
                             arm_done_fn done, void *arg, char *err,
                             size_t errlen)
{
	return _async(c, name, &_nic_get, NULL, done, arg, err, errlen);
}

enum az_rc arm_nic_delete(struct arm_client *c, const char *name,
                          struct arm_result **res)
{
	return _sync(c, name, &_nic_delete, NULL, res);
}

enum az_rc arm_nic_delete_async(struct arm_client *c, const char *name,
                                arm_done_fn done, void *arg, char *err,
                                size_t errlen)
{
	return _async(c, name, &_nic_delete, NULL, done, arg, err, errlen);
}

enum az_rc arm_avset_put(struct arm_client *c, const char *name,
                         json_object *body, struct arm_result **res)
{
	return _sync(c, name, &_avset_put, body, res);
}

enum az_rc arm_avset_get(struct arm_client *c, const char *name,
                         struct arm_result **res)
{
	return _sync(c, name, &_avset_get, NULL, res);
}

enum az_rc arm_avset_delete(struct arm_client *c, const char *name,
                            struct arm_result **res)
{
	return _sync(c, name, &_avset_delete, NULL, res);
}

enum az_rc arm_ppg_put(struct arm_client *c, const char *name,
                       json_object *body, struct arm_result **res)
{
	return _sync(c, name, &_ppg_put, body, res);
}

enum az_rc arm_ppg_get(struct arm_client *c, const char *name,
                       struct arm_result **res)
{
	return _sync(c, name, &_ppg_get, NULL, res);
}

enum az_rc arm_ppg_delete(struct arm_client *c, const char *name,
                          struct arm_result **res)
{
	return _sync(c, name, &_ppg_delete, NULL, res);
}

/* /subscriptions/<sub>/providers/Microsoft.Compute/skus */
static char *_skus_path(const struct arm_client *c, const char *unused)
{
	char *sub = arm_url_escape(c->subscription);
	struct az_buf b = {0};
	char *path = NULL;

	if (sub
	    && buf_printf(&b,
	                  "/subscriptions/%s/providers/Microsoft.Compute/skus",
	                  sub)
	               == AZ_OK)
		path = buf_steal(&b);
	buf_free(&b);
	free(sub);
	return path;
}

enum az_rc arm_skus_list(struct arm_client *c, const char *location,
                         struct arm_result **res)
{
	struct _call list = {.path = _skus_path,
	                     .method = ARM_GET,
	                     .api = ARM_API_SKUS,
	                     .flags = ARM_REQ_PAGED};
	struct az_buf q = {0};
	char *loc;
	enum az_rc rc;

	if (res)
		*res = NULL;
	if (!location)
		location = c->location;
	if (!location)
		return AZ_EINVAL;
	/* $filter=location eq '<location>' */
	loc = arm_url_escape(location);
	if (!loc
	    || buf_printf(&q, "$filter=location%%20eq%%20%%27%s%%27", loc)
	               != AZ_OK) {
		free(loc);
		buf_free(&q);
		return AZ_ENOMEM;
	}
	list.query = q.data;
	rc = _sync(c, "", &list, NULL, res);
	free(loc);
	buf_free(&q);
	return rc;
}
