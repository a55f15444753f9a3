"""Small helpers shared by the services: Azure timestamp formats, ids, key handling."""

import datetime
import time
import uuid


def now():
    return time.time()


def iso7(t):
    """Compute's timestamp form: 7 fractional digits and an explicit offset,
    e.g. 2021-10-09T06:52:21.6211301+00:00."""
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0+00:00"


def iso_z(t):
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def guid():
    return str(uuid.uuid4())


VM_TYPE = "Microsoft.Compute/virtualMachines"
AVSET_TYPE = "Microsoft.Compute/availabilitySets"
PPG_TYPE = "Microsoft.Compute/proximityPlacementGroups"
NIC_TYPE = "Microsoft.Network/networkInterfaces"


def arm_id(rtype, rec):
    """The resource id of a stored resource (which keeps the casing it was created with)."""
    return (f"/subscriptions/{rec['sub']}/resourceGroups/{rec['rg']}/providers/"
            f"{rtype}/{rec['name']}")


def upper_id(sub, rg, rtype, name):
    """CRP returns references to availability sets and their VMs with the resource group
    and name upper-cased; clients must compare ids case-insensitively."""
    return f"/subscriptions/{sub}/resourceGroups/{rg.upper()}/providers/{rtype}/{name.upper()}"


def resource_key(sub, rg, name):
    """State key of a resource: ARM names are case-insensitive, ids keep their casing."""
    return f"{sub}/{rg}/{name}".lower()


def parse_resource_id(rid, rtype):
    """Split '/subscriptions/S/resourceGroups/RG/providers/<rtype>/NAME' (case-insensitively).

    Returns (sub, rg, name) or None when `rid` is not an id of that type.
    """
    if not isinstance(rid, str):
        return None
    parts = rid.strip("/").split("/")
    want = rtype.split("/")
    if len(parts) != 6 + len(want):
        return None
    if parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups" \
            or parts[4].lower() != "providers":
        return None
    if [p.lower() for p in parts[5:5 + len(want)]] != [w.lower() for w in want]:
        return None
    return parts[1], parts[3], parts[-1]
