"""The ARM front door: what every management request goes through before a provider sees it.

Order, as on Azure: injected fault, latency, authentication (401), subscription
throttling (429), routing (404/400), api-version (400), Compute throttling (429), the
provider's handler. Every answer carries the request and correlation ids; answers that
passed the throttle carry the x-ms-ratelimit-remaining-* headers.
"""

import base64
import re
import threading
import time
import urllib.parse

from . import errors, skus
from .httpserv import DROP, Response, json_response
from .util import guid, iso_z

SUB = r"/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourceGroups/(?P<rg>[^/]+)"
COMPUTE = "/providers/Microsoft.Compute"
NETWORK = "/providers/Microsoft.Network"
NAME = r"(?P<name>[^/]+)"
OP = r"/locations/(?P<loc>[^/]+)/{}/(?P<opid>[^/]+)"

_SUB_RE = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
_PROVIDER_RE = re.compile(r"^/subscriptions/[^/]+(?:/resourceGroups/[^/]+)?/providers/"
                          r"(?P<ns>[^/]+)/(?P<rest>.+)$", re.IGNORECASE)
_SUBRESOURCE_RE = re.compile(r"/(start|deallocate|powerOff|restart|instanceView)$", re.IGNORECASE)
_KNOWN_NAMESPACES = {"microsoft.compute", "microsoft.network", "microsoft.resources"}


def _throttled_resource(request, params):
    """What a per-resource Compute bucket counts: the operation, or the resource itself
    (a VM's actions and instance view are charged to the VM)."""
    if params.get("opid"):
        return params["opid"]
    if "name" not in params:
        return None  # a list
    return _SUBRESOURCE_RE.sub("", request.path.rstrip("/"))


def _power_group(params):
    return "PutVM" if params["action"].lower() in ("start", "restart") else "DeleteVM"


class Route:
    def __init__(self, pattern, provider, methods):
        self.regex = re.compile("^" + pattern + "/?$", re.IGNORECASE)
        self.provider = provider
        # method -> (handler, compute throttle group or callable(params) or None)
        self.methods = methods


class Context:
    """What a handler gets: the request, its path parameters, and helpers."""

    def __init__(self, world, request, params, api_version):
        self.world = world
        self.request = request
        self.params = params
        self.api_version = api_version
        # Polling URLs and nextLinks point back at the host the client used.
        self.base = f"https://{request.host}"

    def body_json(self):
        try:
            body = self.request.json()
        except ValueError as e:
            raise errors.invalid_request_content(str(e)) from None
        if not isinstance(body, dict):
            raise errors.invalid_request_content("the request body must be a JSON object")
        return body

    def location_of(self, body, rtype):
        location = body.get("location")
        if not location:
            raise errors.location_required()
        norm = str(location).replace(" ", "").lower()
        if norm not in self.world.cfg.locations:
            raise errors.location_not_available(location, rtype, self.world.cfg.locations)
        return norm

    def page(self, items, render):
        """One page of a list, with nextLink when more remain. The skip token is the sort
        key of the last item returned, so deletions between pages neither skip nor repeat
        items. Items sort by name, then resource group (names repeat across groups)."""
        def order(r):
            return f"{r['name']}\0{r['rg']}".lower()
        items = sorted(items, key=order)
        token = self.request.query.get("$skiptoken")
        if token:
            try:
                after = base64.urlsafe_b64decode(token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise errors.invalid_parameter(f"The value '{token}' of parameter '$skiptoken' "
                                               "is invalid.", target="$skiptoken") from None
            items = [r for r in items if order(r) > after]
        size = self.world.cfg.page_size
        body = {"value": [render(r) for r in items[:size]]}
        if len(items) > size:
            last = order(items[size - 1])
            query = [(k, v) for k, v in urllib.parse.parse_qsl(self.request.raw_query,
                                                               keep_blank_values=True)
                     if k.lower() != "$skiptoken"]
            query.append(("$skiptoken", base64.urlsafe_b64encode(last.encode()).decode()))
            body["nextLink"] = (f"{self.base}{urllib.parse.quote(self.request.path)}?"
                                + urllib.parse.urlencode(query, safe="$'"))
        return json_response(200, body, pretty=True)

    def find_op(self, provider):
        p = self.params
        with self.world.store.lock:
            op = self.world.store.data["ops"].get(p["opid"])
            if op is None or op["provider"] != provider or op["sub"].lower() != p["sub"].lower():
                raise errors.ArmError(404, "NotFound",
                                      f"The operation '{p['opid']}' could not be found.")
            return dict(op)


class FrontDoor:
    def __init__(self, world):
        self.world = world
        self.cfg = world.cfg
        self.log = []
        self.log_lock = threading.Lock()
        c, g, n = world.compute, world.groups, world.network
        self.routes = [
            Route(RG + COMPUTE + "/virtualMachines", "compute",
                  {"GET": (c.list_vms, "HighCostGet")}),
            Route(SUB + COMPUTE + "/virtualMachines", "compute",
                  {"GET": (c.list_vms, "HighCostGet")}),
            Route(RG + COMPUTE + "/virtualMachines/" + NAME, "compute", {
                "GET": (c.get_vm, "LowCostGet"), "PUT": (c.put_vm, "PutVM"),
                "PATCH": (c.patch_vm, "PutVM"), "DELETE": (c.delete_vm, "DeleteVM")}),
            Route(RG + COMPUTE + "/virtualMachines/" + NAME + "/instanceView", "compute",
                  {"GET": (c.get_instance_view, "LowCostGet")}),
            Route(RG + COMPUTE + "/virtualMachines/" + NAME
                  + "/(?P<action>start|deallocate|powerOff|restart)", "compute",
                  {"POST": (c.action, _power_group)}),
            Route(RG + COMPUTE + "/availabilitySets", "compute",
                  {"GET": (g.list_avsets, "HighCostGet")}),
            Route(SUB + COMPUTE + "/availabilitySets", "compute",
                  {"GET": (g.list_avsets, "HighCostGet")}),
            Route(RG + COMPUTE + "/availabilitySets/" + NAME, "compute", {
                "GET": (g.get_avset, "LowCostGet"), "PUT": (g.put_avset, "PutVM"),
                "DELETE": (g.delete_avset, "PutVM")}),
            Route(RG + COMPUTE + "/proximityPlacementGroups", "compute",
                  {"GET": (g.list_ppgs, "HighCostGet")}),
            Route(SUB + COMPUTE + "/proximityPlacementGroups", "compute",
                  {"GET": (g.list_ppgs, "HighCostGet")}),
            Route(RG + COMPUTE + "/proximityPlacementGroups/" + NAME, "compute", {
                "GET": (g.get_ppg, "LowCostGet"), "PUT": (g.put_ppg, "PutDeletePPG"),
                "DELETE": (g.delete_ppg, "PutDeletePPG")}),
            Route(SUB + COMPUTE + "/skus", "skus", {"GET": (skus.list_skus, None)}),
            Route(SUB + COMPUTE + OP.format("operations"), "compute",
                  {"GET": (c.operation, "GetOperation")}),
            Route(RG + NETWORK + "/networkInterfaces", "network", {"GET": (n.list, None)}),
            Route(SUB + NETWORK + "/networkInterfaces", "network", {"GET": (n.list, None)}),
            Route(RG + NETWORK + "/networkInterfaces/" + NAME, "network", {
                "GET": (n.get, None), "PUT": (n.put, None), "DELETE": (n.delete, None)}),
            Route(SUB + NETWORK + OP.format("operations"), "network", {"GET": (n.operation, None)}),
            Route(SUB + NETWORK + OP.format("operationResults"), "network",
                  {"GET": (n.operation_result, None)}),
            Route(RG, "resources", {"GET": (self._resource_group, None),
                                    "HEAD": (self._resource_group_exists, None),
                                    "PUT": (self._resource_group, None)}),
        ]

    # --- the pipeline ----------------------------------------------------------------

    def __call__(self, request):
        request_id = guid()
        correlation = request.header("x-ms-correlation-request-id") or request_id
        stamp = iso_z(time.time()).replace("-", "").replace(":", "")
        headers = {
            "Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "-1",
            "x-ms-request-id": request_id, "x-ms-correlation-request-id": correlation,
            "x-ms-routing-request-id": f"EASTUS:{stamp}:{correlation}",
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
            "X-Content-Type-Options": "nosniff",
        }
        client_request = request.header("x-ms-client-request-id")
        if client_request:
            headers["x-ms-client-request-id"] = client_request

        fault = self.world.faults.take(request.method, request.path)
        if fault is not None and fault.seconds > 0:
            time.sleep(fault.seconds)
        if fault is not None and fault.action == "drop":
            self._record(request, 0, request_id)
            return DROP
        if fault is not None and fault.action == "delay":
            fault = None
        if self.cfg.timing["latency"] > 0:
            time.sleep(self.cfg.timing["latency"])

        if fault is not None:
            err = errors.ArmError(fault.status, fault.code, fault.message)
            if fault.status in (429, 503):
                err.headers["Retry-After"] = str(fault.retry_after or 1)
            response = json_response(err.status, err.body(), err.headers, pretty=True)
        else:
            response = self._serve(request, headers)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        self._record(request, response.status, request_id)
        return response

    def _serve(self, request, headers):
        try:
            principal = self.world.tokens.authenticate(request)
            m = _SUB_RE.match(request.path)
            sub = m.group(1) if m else "-"
            kind = {"GET": "reads", "HEAD": "reads",
                    "DELETE": "deletes"}.get(request.method, "writes")
            headers.update(self.world.arm_throttle.charge(sub, principal.client, kind))
            route, params = self._match(request)
            entry = route.methods.get(request.method)
            if entry is None:
                raise errors.method_not_allowed(request.method)
            handler, group = entry
            version = request.query.get("api-version")
            if not version:
                raise errors.missing_api_version()
            if version not in self.cfg.api_versions[route.provider]:
                raise errors.invalid_api_version(version, self.cfg.api_versions[route.provider])
            if callable(group):
                group = group(params)
            if group is not None:
                resource = _throttled_resource(request, params)
                headers["x-ms-ratelimit-remaining-resource"] = \
                    self.world.compute_throttle.charge(sub, group, resource)
            return handler(Context(self.world, request, params, version))
        except errors.ArmError as e:
            return json_response(e.status, e.body(), e.headers, pretty=True)

    def _match(self, request):
        for route in self.routes:
            m = route.regex.match(request.path)
            if m:
                return route, m.groupdict()
        m = _PROVIDER_RE.match(request.path)
        if m and m.group("ns").lower() in _KNOWN_NAMESPACES:
            rest = m.group("rest").split("/")
            rtype = "/".join(rest[0::2])  # drop the resource names between the types
            raise errors.invalid_resource_type(m.group("ns"), rtype,
                                               request.query.get("api-version", ""))
        if m:
            raise errors.invalid_namespace(m.group("ns"))
        raise errors.ArmError(404, "NotFound",
                              f"The requested path '{request.path}' does not exist.")

    # --- resource groups: every one exists -------------------------------------------

    def _resource_group(self, ctx):
        p = ctx.params
        location = "eastus"
        if ctx.request.method == "PUT":
            location = ctx.location_of(ctx.body_json(), "resourceGroups")
        return json_response(200, {
            "id": f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}", "name": p["rg"],
            "type": "Microsoft.Resources/resourceGroups", "location": location,
            "properties": {"provisioningState": "Succeeded"}}, pretty=True)

    def _resource_group_exists(self, ctx):
        return Response(204)

    # --- the request log -------------------------------------------------------------

    def _record(self, request, status, request_id, service="arm"):
        """Status 0 stands for a dropped connection."""
        with self.log_lock:
            self.log.append({"seq": len(self.log), "method": request.method,
                             "path": request.path, "query": request.raw_query, "status": status,
                             "time": time.time(), "requestId": request_id, "service": service})

    def record_other(self, request, status, service):
        self._record(request, status, guid(), service=service)

    def entries(self, since=0, include_all=False):
        """ARM requests (every service with include_all), from sequence number `since`."""
        with self.log_lock:
            rows = self.log[since:]
        return [r for r in rows if include_all or r["service"] == "arm"]
