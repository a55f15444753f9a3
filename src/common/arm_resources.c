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
	json_object *body;
	unsigned flags;
};

/*
 * Run (done == NULL: synchronously, into *res) or submit call on the
 * resource name.
 */
static enum az_rc _do(struct arm_client *c, const char *name,
                      const struct _call *call, struct arm_result **res,
                      arm_done_fn done, void *arg, char *err, size_t errlen)
{
	struct arm_request req = {
	        .method = call->method,
	        .api = call->api,
	        .query = call->query,
	        .body = call->body,
	        .flags = call->flags,
	};
	char *base = call->path(c, name), *path = NULL;
	enum az_rc rc = AZ_ENOMEM;

	if (base && call->suffix) {
		path = malloc(strlen(base) + strlen(call->suffix) + 1);
		if (path)
			sprintf(path, "%s%s", base, call->suffix);
	} else {
		path = base;
		base = NULL;
	}
	if (!path) {
		if (res)
			*res = NULL;
		az_err(rc, err, errlen, "out of memory");
		goto out;
	}
	req.path = path;
	if (done)
		rc = arm_submit(c, &req, done, arg, err, errlen);
	else
		rc = arm_call_sync(c, &req, res);
out:
	free(base);
	free(path);
	return rc;
}

#define _SYNC(c, name, call, res) _do(c, name, call, res, NULL, NULL, NULL, 0)

enum az_rc arm_vm_create(struct arm_client *c, const char *name,
                         json_object *body, struct arm_result **res)
{
	struct _call call = {arm_vm_path, NULL, ARM_PUT, ARM_API_COMPUTE,
	                     NULL,        body, 0};

	return _SYNC(c, name, &call, res);
}

enum az_rc arm_vm_create_async(struct arm_client *c, const char *name,
                               json_object *body, arm_done_fn done, void *arg,
                               char *err, size_t errlen)
{
	struct _call call = {arm_vm_path, NULL, ARM_PUT, ARM_API_COMPUTE,
	                     NULL,        body, 0};

	return _do(c, name, &call, NULL, done, arg, err, errlen);
}

static void _vm_get_call(struct _call *call, unsigned flags)
{
	*call = (struct _call){arm_vm_path, NULL, ARM_GET, ARM_API_COMPUTE,
	                       NULL,        NULL, 0};
	if (flags & ARM_VM_INSTANCE_VIEW)
		call->query = "$expand=instanceView";
}

enum az_rc arm_vm_get(struct arm_client *c, const char *name, unsigned flags,
                      struct arm_result **res)
{
	struct _call call;

	_vm_get_call(&call, flags);
	return _SYNC(c, name, &call, res);
}

enum az_rc arm_vm_get_async(struct arm_client *c, const char *name,
                            unsigned flags, arm_done_fn done, void *arg,
                            char *err, size_t errlen)
{
	struct _call call;

	_vm_get_call(&call, flags);
	return _do(c, name, &call, NULL, done, arg, err, errlen);
}

static const struct _call _vm_start = {
        arm_vm_path, "/start", ARM_POST, ARM_API_COMPUTE, NULL, NULL, 0};

enum az_rc arm_vm_start(struct arm_client *c, const char *name,
                        struct arm_result **res)
{
	return _SYNC(c, name, &_vm_start, res);
}

enum az_rc arm_vm_start_async(struct arm_client *c, const char *name,
                              arm_done_fn done, void *arg, char *err,
                              size_t errlen)
{
	return _do(c, name, &_vm_start, NULL, done, arg, err, errlen);
}

static const struct _call _vm_deallocate = {
        arm_vm_path, "/deallocate", ARM_POST, ARM_API_COMPUTE, NULL, NULL, 0};

enum az_rc arm_vm_deallocate(struct arm_client *c, const char *name,
                             struct arm_result **res)
{
	return _SYNC(c, name, &_vm_deallocate, res);
}

enum az_rc arm_vm_deallocate_async(struct arm_client *c, const char *name,
                                   arm_done_fn done, void *arg, char *err,
                                   size_t errlen)
{
	return _do(c, name, &_vm_deallocate, NULL, done, arg, err, errlen);
}

static void _vm_power_off_call(struct _call *call, bool skip_shutdown)
{
	*call = (struct _call){arm_vm_path,
	                       "/powerOff",
	                       ARM_POST,
	                       ARM_API_COMPUTE,
	                       skip_shutdown ? "skipShutdown=true" : NULL,
	                       NULL,
	                       0};
}

enum az_rc arm_vm_power_off(struct arm_client *c, const char *name,
                            bool skip_shutdown, struct arm_result **res)
{
	struct _call call;

	_vm_power_off_call(&call, skip_shutdown);
	return _SYNC(c, name, &call, res);
}

enum az_rc arm_vm_power_off_async(struct arm_client *c, const char *name,
                                  bool skip_shutdown, arm_done_fn done,
                                  void *arg, char *err, size_t errlen)
{
	struct _call call;

	_vm_power_off_call(&call, skip_shutdown);
	return _do(c, name, &call, NULL, done, arg, err, errlen);
}

/*
 * forceDeletion is always explicit: since 2024-11-01 leaving it out may
 * mean force-delete.
 */
static void _vm_delete_call(struct _call *call, bool force)
{
	*call = (struct _call){arm_vm_path,
	                       NULL,
	                       ARM_DELETE,
	                       ARM_API_COMPUTE,
	                       force ? "forceDeletion=true"
	                             : "forceDeletion=false",
	                       NULL,
	                       0};
}

enum az_rc arm_vm_delete(struct arm_client *c, const char *name, bool force,
                         struct arm_result **res)
{
	struct _call call;

	_vm_delete_call(&call, force);
	return _SYNC(c, name, &call, res);
}

enum az_rc arm_vm_delete_async(struct arm_client *c, const char *name,
                               bool force, arm_done_fn done, void *arg,
                               char *err, size_t errlen)
{
	struct _call call;

	_vm_delete_call(&call, force);
	return _do(c, name, &call, NULL, done, arg, err, errlen);
}

/* The VM collection: the path of a VM named "" without the slash. */
static char *_vm_collection(const struct arm_client *c, const char *unused)
{
	char *p = arm_vm_path(c, "");

	if (p)
		p[strlen(p) - 1] = '\0';
	return p;
}

enum az_rc arm_vm_list(struct arm_client *c, struct arm_result **res)
{
	struct _call call = {_vm_collection,  NULL, ARM_GET,
	                     ARM_API_COMPUTE, NULL, NULL,
	                     ARM_REQ_PAGED};

	return _SYNC(c, "", &call, res);
}

enum az_rc arm_nic_create(struct arm_client *c, const char *name,
                          json_object *body, struct arm_result **res)
{
	struct _call call = {arm_nic_path, NULL, ARM_PUT, ARM_API_NETWORK,
	                     NULL,         body, 0};

	return _SYNC(c, name, &call, res);
}

enum az_rc arm_nic_create_async(struct arm_client *c, const char *name,
                                json_object *body, arm_done_fn done, void *arg,
                                char *err, size_t errlen)
{
	struct _call call = {arm_nic_path, NULL, ARM_PUT, ARM_API_NETWORK,
	                     NULL,         body, 0};

	return _do(c, name, &call, NULL, done, arg, err, errlen);
}

static const struct _call _nic_get = {
        arm_nic_path, NULL, ARM_GET, ARM_API_NETWORK, NULL, NULL, 0};

enum az_rc arm_nic_get(struct arm_client *c, const char *name,
                       struct arm_result **res)
{
	return _SYNC(c, name, &_nic_get, res);
}

enum az_rc arm_nic_get_async(struct arm_client *c, const char *name,
                             arm_done_fn done, void *arg, char *err,
                             size_t errlen)
{
	return _do(c, name, &_nic_get, NULL, done, arg, err, errlen);
}

static const struct _call _nic_delete = {
        arm_nic_path, NULL, ARM_DELETE, ARM_API_NETWORK, NULL, NULL, 0};

enum az_rc arm_nic_delete(struct arm_client *c, const char *name,
                          struct arm_result **res)
{
	return _SYNC(c, name, &_nic_delete, res);
}

enum az_rc arm_nic_delete_async(struct arm_client *c, const char *name,
                                arm_done_fn done, void *arg, char *err,
                                size_t errlen)
{
	return _do(c, name, &_nic_delete, NULL, done, arg, err, errlen);
}

enum az_rc arm_avset_put(struct arm_client *c, const char *name,
                         json_object *body, struct arm_result **res)
{
	struct _call call = {arm_avset_path, NULL, ARM_PUT, ARM_API_COMPUTE,
	                     NULL,           body, 0};

	return _SYNC(c, name, &call, res);
}

enum az_rc arm_avset_get(struct arm_client *c, const char *name,
                         struct arm_result **res)
{
	struct _call call = {arm_avset_path, NULL, ARM_GET, ARM_API_COMPUTE,
	                     NULL,           NULL, 0};

	return _SYNC(c, name, &call, res);
}

enum az_rc arm_avset_delete(struct arm_client *c, const char *name,
                            struct arm_result **res)
{
	struct _call call = {arm_avset_path, NULL, ARM_DELETE, ARM_API_COMPUTE,
	                     NULL,           NULL, 0};

	return _SYNC(c, name, &call, res);
}

enum az_rc arm_ppg_put(struct arm_client *c, const char *name,
                       json_object *body, struct arm_result **res)
{
	struct _call call = {arm_ppg_path, NULL, ARM_PUT, ARM_API_COMPUTE,
	                     NULL,         body, 0};

	return _SYNC(c, name, &call, res);
}

enum az_rc arm_ppg_get(struct arm_client *c, const char *name,
                       struct arm_result **res)
{
	struct _call call = {arm_ppg_path, NULL, ARM_GET, ARM_API_COMPUTE,
	                     NULL,         NULL, 0};

	return _SYNC(c, name, &call, res);
}

enum az_rc arm_ppg_delete(struct arm_client *c, const char *name,
                          struct arm_result **res)
{
	struct _call call = {arm_ppg_path, NULL, ARM_DELETE, ARM_API_COMPUTE,
	                     NULL,         NULL, 0};

	return _SYNC(c, name, &call, res);
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
	struct _call call = {_skus_path, NULL, ARM_GET,      ARM_API_SKUS,
	                     NULL,       NULL, ARM_REQ_PAGED};
	struct az_buf q = {0};
	char *loc;
	enum az_rc rc;

	if (!location)
		location = c->location;
	if (res)
		*res = NULL;
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
	call.query = q.data;
	rc = _SYNC(c, "", &call, res);
	free(loc);
	buf_free(&q);
	return rc;
}
