"""Configuration: command line, scenario file and the defaults behind them.

Precedence, lowest first: built-in defaults, --realistic, the scenario file, explicit
command-line options. The scenario format is documented in testsuite/emulator/README.md.
"""

import argparse
import copy
import ipaddress
import json
import os
from dataclasses import dataclass, field

# api-versions ARM accepts, per provider. Newest stable versions come from the
# azure-rest-api-specs repository; the older ones are what deployed tools still send.
API_VERSIONS = {
    "compute": ["2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-04-01", "2025-11-01"],
    "network": ["2023-09-01", "2024-05-01", "2025-05-01", "2025-07-01"],
    "skus": ["2021-07-01"],
    "resources": ["2021-04-01", "2022-09-01", "2024-03-01", "2024-07-01", "2024-11-01",
                  "2025-04-01"],
}

# Short timings keep the conformance run fast; --realistic is for benchmarks.
DEFAULT_TIMING = {
    "latency": 0.0,      # added to every ARM call
    "create": 0.2,       # VM PUT (new VM) until running
    "start": 0.2,        # start and restart
    "deallocate": 0.2,
    "powerOff": 0.2,
    "delete": 0.2,
    "update": 0.0,       # PUT/PATCH on an existing VM
    "nic": 0.0,          # NIC create/delete
    "bootTimeout": 60.0,  # how long the boot hook may run
    "killGrace": 3.0,    # SIGTERM -> SIGKILL delay when a host goes down
}
REALISTIC_TIMING = {
    "latency": 0.15, "create": 60.0, "start": 45.0, "deallocate": 30.0,
    "powerOff": 20.0, "delete": 20.0, "update": 2.0, "nic": 2.0,
}

# ARM token buckets (2024 migration): per subscription and principal ("actor"),
# with a global bucket 15 times larger across principals.
DEFAULT_ARM_THROTTLE = {
    "reads": {"burst": 250, "refill": 25.0},
    "writes": {"burst": 200, "refill": 10.0},
    "deletes": {"burst": 200, "refill": 10.0},
    "globalFactor": 15,
}

# Compute (CRP) per-operation-group buckets. "subscription" is the
# <Group>SubscriptionMaximum bucket, "resource" the per-resource <Group>Resource one.
DEFAULT_COMPUTE_THROTTLE = {
    "PutVM": {"subscription": {"burst": 1500, "refill": 1500 / 180.0},
              "resource": {"burst": 12, "refill": 12 / 60.0}},
    "DeleteVM": {"subscription": {"burst": 1500, "refill": 1500 / 180.0},
                 "resource": {"burst": 12, "refill": 12 / 60.0}},
    "GetOperation": {"subscription": {"burst": 15000, "refill": 15000 / 180.0},
                     "resource": {"burst": 45, "refill": 45 / 60.0}},
    "LowCostGet": {"subscription": {"burst": 24000, "refill": 24000 / 180.0},
                   "resource": {"burst": 33, "refill": 33 / 60.0}},
    "HighCostGet": {"subscription": {"burst": 900, "refill": 900 / 180.0}},
    "PutDeletePPG": {"subscription": {"burst": 120, "refill": 120 / 180.0}},
}

DEFAULT_LOCATIONS = [
    "eastus", "eastus2", "southcentralus", "westus2", "westus3", "centralus",
    "northeurope", "westeurope", "uksouth", "swedencentral", "germanywestcentral",
    "japaneast", "australiaeast", "southeastasia", "centralindia",
]

# Used only when neither the scenario nor --client-secret names a service principal,
# so that a bare emulator still accepts one well-known client.
DEFAULT_CLIENT_ID = "00000000-0000-0000-0000-0000000a2d4a"
DEFAULT_CLIENT_SECRET = "azrdma-emulator-secret"

DEFAULT_CLUSTER_CIDR = "10.0.0.0/16"


class ConfigError(Exception):
    pass


@dataclass
class BootConfig:
    prefix: str
    bridge: str
    hook: str


@dataclass
class Config:
    listen: tuple
    state_dir: str
    imds_listen: tuple = None
    dns_listen: tuple = None
    scenario_path: str = None
    boot: BootConfig = None
    cluster_cidr: ipaddress.IPv4Network = None
    shutdown_vms: bool = False
    cert_hosts: list = field(default_factory=list)
    timing: dict = field(default_factory=lambda: dict(DEFAULT_TIMING))
    page_size: int = 50
    tenant: str = None
    clients: dict = field(default_factory=dict)
    managed_identities: list = None  # None: any client_id is a valid identity
    token_lifetime: int = 3599
    arm_throttle: dict = field(default_factory=lambda: copy.deepcopy(DEFAULT_ARM_THROTTLE))
    compute_throttle: dict = field(default_factory=lambda: copy.deepcopy(DEFAULT_COMPUTE_THROTTLE))
    quota_default: int = 10000
    quota_total_regional: int = 100000
    quota_families: dict = field(default_factory=dict)
    capacity_per_set: int = 200
    capacity_sets: dict = field(default_factory=dict)
    capacity_regions: list = field(default_factory=list)
    faults: list = field(default_factory=list)
    locations: list = field(default_factory=lambda: list(DEFAULT_LOCATIONS))
    api_versions: dict = field(default_factory=lambda: copy.deepcopy(API_VERSIONS))


def _hostport(text, what):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{what}: expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def _keyvalue(text, what):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"{what}: expected KEY=VALUE, got {text!r}")
    return key, value


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="azure-emulator",
        description="Local Azure (ARM, AAD token endpoint, IMDS) for the azrdma test world.")
    p.add_argument("--listen", required=True, help="HTTPS HOST:PORT for ARM, AAD and /_emulator/")
    p.add_argument("--state-dir", required=True,
                   help="directory for ca.pem and the persistent state")
    p.add_argument("--imds-listen", help="plain-HTTP HOST:PORT for IMDS")
    p.add_argument("--dns-listen",
                   help="UDP HOST:PORT for the virtual network's name resolution "
                        "(Azure's 168.63.129.16): running VMs' host names")
    p.add_argument("--scenario", help="JSON scenario file (see README.md)")
    p.add_argument("--netns-prefix", help="boot VMs as network-namespace hosts with this prefix")
    p.add_argument("--cluster-bridge", help="bridge of the cluster network (exists already)")
    p.add_argument("--cluster-cidr",
                   help=f"cluster subnet for NIC addresses (default {DEFAULT_CLUSTER_CIDR})")
    p.add_argument("--boot-hook", help="program run inside each VM once it is running")
    p.add_argument("--shutdown-vms", action="store_true",
                   help="on SIGTERM tear every VM host down and record the VMs deallocated")
    p.add_argument("--cert-host", action="append", default=[],
                   help="extra DNS name or IP for the server certificate (repeatable)")
    p.add_argument("--client-secret", action="append", default=[], metavar="ID=SECRET",
                   help="accepted service principal for the AAD token endpoint (repeatable)")
    p.add_argument("--tenant",
                   help="only this tenant id is accepted by the AAD endpoint (default: any)")
    p.add_argument("--token-lifetime", type=int, help="token lifetime in seconds (default 3599)")
    p.add_argument("--page-size", type=int, help="list page size before nextLink (default 50)")
    p.add_argument("--realistic", action="store_true",
                   help="Azure-like latency and operation durations (for benchmarks)")
    p.add_argument("--timing", action="append", default=[], metavar="KEY=SECONDS",
                   help=f"override one timing ({', '.join(DEFAULT_TIMING)}); repeatable")
    return p.parse_args(argv)


def build_config(argv):
    args = parse_args(argv)
    cfg = Config(listen=_hostport(args.listen, "--listen"),
                 state_dir=os.path.abspath(args.state_dir))
    if args.imds_listen:
        cfg.imds_listen = _hostport(args.imds_listen, "--imds-listen")
    if args.dns_listen:
        cfg.dns_listen = _hostport(args.dns_listen, "--dns-listen")
    if args.realistic:
        cfg.timing.update(REALISTIC_TIMING)
    if args.scenario:
        cfg.scenario_path = os.path.abspath(args.scenario)
        try:
            with open(args.scenario, encoding="utf-8") as f:
                apply_scenario(cfg, json.load(f))
        except (OSError, ValueError) as e:
            raise ConfigError(f"--scenario {args.scenario}: {e}") from e

    boot_opts = [args.netns_prefix, args.cluster_bridge, args.boot_hook]
    if any(boot_opts) and not all(boot_opts + [args.cluster_cidr]):
        raise ConfigError("--netns-prefix, --cluster-bridge, --cluster-cidr and --boot-hook "
                          "go together")
    if args.netns_prefix:
        if len(args.netns_prefix) > 5:
            raise ConfigError("--netns-prefix: at most 5 characters "
                              "(interface names stay under 15)")
        cfg.boot = BootConfig(prefix=args.netns_prefix, bridge=args.cluster_bridge,
                              hook=os.path.abspath(args.boot_hook))
    try:
        cfg.cluster_cidr = ipaddress.IPv4Network(args.cluster_cidr or DEFAULT_CLUSTER_CIDR)
    except ValueError as e:
        raise ConfigError(f"--cluster-cidr: {e}") from e
    if cfg.cluster_cidr.num_addresses < 8:
        raise ConfigError("--cluster-cidr: the subnet is too small "
                          "(Azure reserves .0-.3 and the last address)")

    cfg.shutdown_vms = args.shutdown_vms
    cfg.cert_hosts = list(args.cert_host)
    for item in args.client_secret:
        cid, secret = _keyvalue(item, "--client-secret")
        cfg.clients[cid] = secret
    if not cfg.clients:
        cfg.clients[DEFAULT_CLIENT_ID] = DEFAULT_CLIENT_SECRET
    if args.tenant:
        cfg.tenant = args.tenant
    if args.token_lifetime is not None:
        cfg.token_lifetime = args.token_lifetime
    if args.page_size is not None:
        cfg.page_size = args.page_size
    for item in args.timing:
        key, value = _keyvalue(item, "--timing")
        set_timing(cfg.timing, {key: value})
    if cfg.page_size < 1:
        raise ConfigError("page size must be at least 1")
    return cfg


def set_timing(timing, changes):
    """Validate and apply timing changes (from CLI, scenario or the admin API); nothing
    is applied unless every change is valid."""
    checked = {}
    for key, value in changes.items():
        if key not in DEFAULT_TIMING:
            raise ConfigError(f"unknown timing {key!r}; known: {', '.join(DEFAULT_TIMING)}")
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"timing {key}: not a number: {value!r}") from None
        if seconds < 0:
            raise ConfigError(f"timing {key}: must not be negative")
        checked[key] = seconds
    timing.update(checked)


def _bucket(spec, where):
    if not isinstance(spec, dict) or "burst" not in spec or "refill" not in spec:
        raise ConfigError(f"{where}: expected {{\"burst\": N, \"refill\": per_second}}")
    return {"burst": float(spec["burst"]), "refill": float(spec["refill"])}


def apply_scenario(cfg, sc):
    """Merge a parsed scenario document into cfg. Unknown top-level keys are errors,
    so a typo in a test scenario fails loudly instead of being ignored."""
    if not isinstance(sc, dict):
        raise ConfigError("the scenario must be a JSON object")
    known = {"timing", "pageSize", "auth", "throttle", "quota", "capacity", "faults",
             "locations", "apiVersions", "comment"}
    unknown = set(sc) - known
    if unknown:
        raise ConfigError(f"unknown scenario keys: {', '.join(sorted(unknown))}")
    if "timing" in sc:
        set_timing(cfg.timing, sc["timing"])
    if "pageSize" in sc:
        cfg.page_size = int(sc["pageSize"])
    auth = sc.get("auth", {})
    if "clients" in auth:
        cfg.clients.update({str(k): str(v) for k, v in auth["clients"].items()})
    if "tenant" in auth:
        cfg.tenant = auth["tenant"]
    if "tokenLifetime" in auth:
        cfg.token_lifetime = int(auth["tokenLifetime"])
    if "managedIdentities" in auth:
        cfg.managed_identities = [str(x) for x in auth["managedIdentities"]]
    throttle = sc.get("throttle", {})
    for kind, spec in throttle.get("arm", {}).items():
        if kind == "globalFactor":
            cfg.arm_throttle["globalFactor"] = float(spec)
        elif kind in ("reads", "writes", "deletes"):
            cfg.arm_throttle[kind] = _bucket(spec, f"throttle.arm.{kind}")
        else:
            raise ConfigError(f"throttle.arm: unknown bucket {kind!r}")
    for group, spec in throttle.get("compute", {}).items():
        if group not in DEFAULT_COMPUTE_THROTTLE:
            raise ConfigError(f"throttle.compute: unknown operation group {group!r}; "
                              f"known: {', '.join(DEFAULT_COMPUTE_THROTTLE)}")
        for scope, bspec in spec.items():
            if scope not in ("subscription", "resource"):
                raise ConfigError(f"throttle.compute.{group}: unknown scope {scope!r}")
            cfg.compute_throttle[group][scope] = _bucket(bspec, f"throttle.compute.{group}.{scope}")
    quota = sc.get("quota", {})
    if "default" in quota:
        cfg.quota_default = int(quota["default"])
    if "totalRegional" in quota:
        cfg.quota_total_regional = int(quota["totalRegional"])
    cfg.quota_families.update({k: int(v) for k, v in quota.get("families", {}).items()})
    cap = sc.get("capacity", {})
    if "perSet" in cap:
        cfg.capacity_per_set = int(cap["perSet"])
    for name, remaining in cap.get("availabilitySets", {}).items():
        cfg.capacity_sets[name.lower()] = int(remaining)
    for entry in cap.get("regions", []):
        cfg.capacity_regions.append({"region": entry["region"], "vmSize": entry["vmSize"],
                                     "remaining": int(entry["remaining"])})
    if "faults" in sc:
        if not isinstance(sc["faults"], list):
            raise ConfigError("faults: expected a list")
        cfg.faults.extend(sc["faults"])
    if "locations" in sc:
        cfg.locations = [str(x).lower() for x in sc["locations"]]
    for provider, versions in sc.get("apiVersions", {}).items():
        if provider not in cfg.api_versions:
            raise ConfigError(f"apiVersions: unknown provider {provider!r}")
        cfg.api_versions[provider] = [str(v) for v in versions]
