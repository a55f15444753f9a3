"""Microsoft.Compute availability sets and proximity placement groups (both synchronous)."""

from . import errors
from .httpserv import Response, json_response
from .util import AVSET_TYPE, PPG_TYPE, VM_TYPE, arm_id, resource_key, upper_id


class Groups:
    def __init__(self, world):
        self.world = world
        self.data = world.store.data

    # --- availability sets -----------------------------------------------------------

    def render_avset(self, s):
        members = sorted((v for v in self.data["vms"].values()
                          if v.get("avsetKey") == resource_key(s["sub"], s["rg"], s["name"])),
                         key=lambda v: v["name"].lower())
        props = dict(s["spec"])
        props.update({"platformUpdateDomainCount": s["updateDomains"],
                      "platformFaultDomainCount": s["faultDomains"],
                      "virtualMachines": [{"id": upper_id(v["sub"], v["rg"], VM_TYPE, v["name"])}
                                          for v in members]})
        out = {"name": s["name"], "id": arm_id(AVSET_TYPE, s), "type": AVSET_TYPE,
               "location": s["location"]}
        if s["tags"]:
            out["tags"] = s["tags"]
        out["properties"] = props
        out["sku"] = {"name": s["sku"]}
        return out

    def put_avset(self, ctx):
        p = ctx.params
        body = ctx.body_json()
        location = ctx.location_of(body, AVSET_TYPE)
        props = body.get("properties") or {}
        sku = (body.get("sku") or {}).get("name")
        if sku is not None and str(sku).lower() not in ("aligned", "classic"):
            raise errors.invalid_parameter(f"The value '{sku}' of parameter 'sku.name' is invalid.",
                                           target="sku.name")
        fds = int(props.get("platformFaultDomainCount", 2))
        uds = int(props.get("platformUpdateDomainCount", 5))
        if not 1 <= fds <= 3:
            raise errors.fault_domain_range(fds, 1, 3)
        if not 1 <= uds <= 20:
            raise errors.update_domain_range(uds, 1, 20)
        key = resource_key(p["sub"], p["rg"], p["name"])
        spec = {k: v for k, v in props.items()
                if k in ("proximityPlacementGroup", "scheduledEventsPolicy")}
        with self.world.store.lock:
            s = self.data["availabilitySets"].get(key)
            # Without a sku a new set is Classic; an existing one keeps its own.
            sku = str(sku).capitalize() if sku else (s["sku"] if s else "Classic")
            if s is not None:
                if s["location"] != location:
                    raise errors.invalid_resource_location(p["name"], p["rg"], s["location"],
                                                           location)
                if s["sku"] == "Aligned" and sku == "Classic":
                    raise errors.sku_change_not_allowed()
                if fds != s["faultDomains"]:
                    raise errors.property_change_not_allowed("platformFaultDomainCount")
                s.update({"tags": body.get("tags") or {}, "sku": sku, "updateDomains": uds,
                          "spec": spec})
            else:
                s = {"sub": p["sub"], "rg": p["rg"], "name": p["name"], "location": location,
                     "tags": body.get("tags") or {}, "sku": sku, "faultDomains": fds,
                     "updateDomains": uds, "spec": spec, "fabric": None, "series": None,
                     "joined": 0}
                self.data["availabilitySets"][key] = s
            self.world.store.save()
            # Synchronous: 200 on create and update, no async headers.
            return json_response(200, self.render_avset(s), pretty=True)

    def get_avset(self, ctx):
        p = ctx.params
        with self.world.store.lock:
            s = self.data["availabilitySets"].get(resource_key(p["sub"], p["rg"], p["name"]))
            if s is None:
                raise errors.resource_not_found(AVSET_TYPE, p["name"], p["rg"])
            return json_response(200, self.render_avset(s), pretty=True)

    def list_avsets(self, ctx):
        p = ctx.params
        with self.world.store.lock:
            sets = [s for s in self.data["availabilitySets"].values()
                    if s["sub"].lower() == p["sub"].lower()
                    and ("rg" not in p or s["rg"].lower() == p["rg"].lower())]
            return ctx.page(sets, self.render_avset)

    def delete_avset(self, ctx):
        p = ctx.params
        key = resource_key(p["sub"], p["rg"], p["name"])
        with self.world.store.lock:
            s = self.data["availabilitySets"].get(key)
            if s is None:
                return Response(204)
            if any(v.get("avsetKey") == key for v in self.data["vms"].values()):
                raise errors.availability_set_in_use(s["name"])
            del self.data["availabilitySets"][key]
            self.world.store.save()
            return Response(200)

    # --- proximity placement groups --------------------------------------------------

    def _ppg_members(self, g):
        gid = arm_id(PPG_TYPE, g).lower()

        def refers(spec):
            return ((spec.get("proximityPlacementGroup") or {}).get("id") or "").lower() == gid
        vms = [v for v in self.data["vms"].values() if refers(v["spec"])]
        sets = [s for s in self.data["availabilitySets"].values() if refers(s["spec"])]
        return vms, sets

    def render_ppg(self, g, colocation=False):
        vms, sets = self._ppg_members(g)
        props = dict(g["spec"])
        props["proximityPlacementGroupType"] = g["ppgType"]
        props["virtualMachines"] = [{"id": arm_id(VM_TYPE, v)} for v in vms]
        props["virtualMachineScaleSets"] = []
        props["availabilitySets"] = [{"id": arm_id(AVSET_TYPE, s)} for s in sets]
        if colocation:
            props["colocationStatus"] = {
                "code": "ColocationStatus/Aligned", "level": "Info", "displayStatus": "Aligned",
                "message": "All resources in the proximity placement group are aligned."}
        out = {"name": g["name"], "id": arm_id(PPG_TYPE, g), "type": PPG_TYPE,
               "location": g["location"]}
        if g["tags"]:
            out["tags"] = g["tags"]
        if g.get("zones"):
            out["zones"] = g["zones"]
        out["properties"] = props
        return out

    def put_ppg(self, ctx):
        p = ctx.params
        body = ctx.body_json()
        location = ctx.location_of(body, PPG_TYPE)
        props = body.get("properties") or {}
        key = resource_key(p["sub"], p["rg"], p["name"])
        with self.world.store.lock:
            g = self.data["ppgs"].get(key)
            created = g is None
            if g is not None and g["location"] != location:
                raise errors.invalid_resource_location(p["name"], p["rg"], g["location"], location)
            if created:
                g = {"sub": p["sub"], "rg": p["rg"], "name": p["name"], "location": location}
                self.data["ppgs"][key] = g
            g.update({"tags": body.get("tags") or {}, "zones": body.get("zones"),
                      "ppgType": props.get("proximityPlacementGroupType") or "Standard",
                      "spec": {k: v for k, v in props.items() if k == "intent"}})
            self.world.store.save()
            return json_response(201 if created else 200, self.render_ppg(g), pretty=True)

    def get_ppg(self, ctx):
        p = ctx.params
        colocation = ctx.request.query.get("includecolocationstatus", "").lower() == "true"
        with self.world.store.lock:
            g = self.data["ppgs"].get(resource_key(p["sub"], p["rg"], p["name"]))
            if g is None:
                raise errors.resource_not_found(PPG_TYPE, p["name"], p["rg"])
            return json_response(200, self.render_ppg(g, colocation), pretty=True)

    def list_ppgs(self, ctx):
        p = ctx.params
        with self.world.store.lock:
            groups = [g for g in self.data["ppgs"].values()
                      if g["sub"].lower() == p["sub"].lower()
                      and ("rg" not in p or g["rg"].lower() == p["rg"].lower())]
            return ctx.page(groups, self.render_ppg)

    def delete_ppg(self, ctx):
        p = ctx.params
        key = resource_key(p["sub"], p["rg"], p["name"])
        with self.world.store.lock:
            g = self.data["ppgs"].get(key)
            if g is None:
                return Response(204)
            vms, sets = self._ppg_members(g)
            if vms or sets:
                raise errors.ppg_in_use(g["name"])
            del self.data["ppgs"][key]
            self.world.store.save()
            return Response(200)
