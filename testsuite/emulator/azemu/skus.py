"""The Resource SKUs API (Microsoft.Compute/skus, api-version 2021-07-01)."""

import re

from . import catalog, errors
from .httpserv import json_response

_FILTER = re.compile(r"^\s*location\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def sku_record(size, location):
    """One entry of the Resource SKUs API (2021-07-01). Capability values are strings."""
    caps = [
        ("MaxResourceVolumeMB", str(int(size.memory_gb * 1024))),
        ("OSVhdSizeMB", "1047552"),
        ("vCPUs", str(size.vcpus)),
        ("MemoryPreservingMaintenanceSupported", "True"),
        ("HyperVGenerations", "V1,V2"),
        ("MemoryGB", f"{size.memory_gb:g}"),
        ("MaxDataDiskCount", "32" if size.vcpus >= 16 else "8"),
        ("CpuArchitectureType", "x64"),
        ("LowPriorityCapable", "False" if size.rdma else "True"),
        ("PremiumIO", "True"),
        ("VMDeploymentTypes", "IaaS"),
        ("vCPUsPerCore", "1"),
        ("EphemeralOSDiskSupported", "True"),
        ("AcceleratedNetworkingEnabled", "True" if not size.legacy else "False"),
        ("RdmaEnabled", "True" if size.rdma else "False"),
        ("MaxNetworkInterfaces", "8" if size.vcpus >= 8 else "2"),
    ]
    if size.vcpus_available != size.vcpus:
        caps.insert(3, ("vCPUsAvailable", str(size.vcpus_available)))
    short = size.name[len("Standard_"):]
    return {
        "resourceType": "virtualMachines",
        "name": size.name,
        "tier": "Standard",
        "size": short,
        "family": size.family,
        "locations": [location],
        "locationInfo": [{"location": location, "zones": [], "zoneDetails": []}],
        "capabilities": [{"name": n, "value": v} for n, v in caps],
        "restrictions": [],
    }


def list_skus(ctx):
    flt = ctx.request.query.get("$filter")
    locations = ctx.world.cfg.locations
    if flt:
        m = _FILTER.match(flt)
        if not m:
            raise errors.invalid_parameter(
                f"The filter '{flt}' is not supported. Only \"location eq '<location>'\" is "
                "supported.", target="$filter")
        wanted = m.group(1).replace(" ", "").lower()
        locations = [loc for loc in locations if loc == wanted]
    value = [sku_record(size, loc) for loc in locations for size in catalog.SIZES.values()]
    return json_response(200, {"value": value}, pretty=True)
