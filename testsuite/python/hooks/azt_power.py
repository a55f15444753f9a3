"""Test-only ResumeProgram/SuspendProgram of the harness (not azrdma's).

slurmctld runs them as SlurmUser with fds 0-2 closed and only SLURM_CONF
(and SLURM_RESUME_FILE) in the environment. They read azt-hooks.json next
to slurm.conf and talk plain ARM over HTTPS to the emulator:

  resume:  token from IMDS; per node: PUT the availability set of its fabric
           domain, PUT the NIC, push NodeAddr with scontrol, PUT the VM (or
           POST start if it exists) with customData `# azrdma:node=<node>` and
           `# azrdma:image=<image_name>`,
           wait for the long-running operation. A node that fails is set
           DOWN with the Azure error as reason.
  suspend: POST deallocate per node (a missing VM is fine), wait for it.

Everything they do goes to <run>/logs/test-power.log.
"""

import base64
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

SCONTROL = "/usr/bin/scontrol"
COMPUTE_API = "2024-11-01"
NETWORK_API = "2024-05-01"
RESOURCES_API = "2021-04-01"
ARM_RESOURCE = "https://management.azure.com/"
LRO_TIMEOUT = 120


def open_stdio():
    """slurmctld closed fds 0-2: put /dev/null there before anything opens a file."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open("/dev/null", os.O_RDWR)  # takes the lowest free fd


class ArmError(Exception):
    def __init__(self, status, code, message):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code


class Arm:
    """A minimal ARM client: IMDS token, JSON requests, LRO polling, 429 retry."""

    def __init__(self, conf, log):
        self.conf = conf
        self.log = log
        self.ctx = ssl.create_default_context(cafile=conf["ca"])
        self._token = None
        self._lock = threading.Lock()
        self.rg_path = (f"/subscriptions/{conf['subscription']}"
                        f"/resourceGroups/{conf['resource_group']}")

    def token(self, renew=False):
        with self._lock:
            if self._token is None or renew:
                query = urllib.parse.urlencode({"api-version": "2018-02-01",
                                                "resource": ARM_RESOURCE})
                req = urllib.request.Request(
                    f"{self.conf['imds']}/metadata/identity/oauth2/token?{query}",
                    headers={"Metadata": "true"})
                with urllib.request.urlopen(req, timeout=30) as resp:
                    self._token = json.load(resp)["access_token"]
            return self._token

    def call(self, method, path, body=None, api=COMPUTE_API):
        """One ARM request; returns (status, headers, decoded body or None)."""
        url = path if path.startswith("https://") else self.conf["arm"] + path
        if "api-version=" not in url:
            url += ("&" if "?" in url else "?") + f"api-version={api}"
        data = None if body is None else json.dumps(body).encode()
        renewed = False
        for attempt in range(10):
            req = urllib.request.Request(url, data=data, method=method, headers={
                "Authorization": f"Bearer {self.token()}",
                "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60, context=self.ctx) as resp:
                    raw = resp.read()
                    return resp.status, resp.headers, json.loads(raw) if raw.strip() else None
            except urllib.error.HTTPError as err:
                raw = err.read()
                if err.code == 401 and not renewed:
                    self.token(renew=True)
                    renewed = True
                    continue
                if err.code == 429 or err.code >= 500:
                    wait = min(float(err.headers.get("Retry-After") or 1), 5)
                    self.log(f"{method} {path}: HTTP {err.code}, retry in {wait}s")
                    time.sleep(wait)
                    continue
                try:
                    e = json.loads(raw).get("error", {})
                except ValueError:
                    e = {}
                raise ArmError(err.code, e.get("code", f"HTTP{err.code}"),
                               e.get("message", raw[:200].decode(errors="replace")))
        raise ArmError(429, "TooManyRetries", f"{method} {path}")

    def wait(self, headers, what):
        """Follow Azure-AsyncOperation (or Location) until the operation ends."""
        url = headers.get("Azure-AsyncOperation") or headers.get("Location")
        if not url:
            return
        deadline = time.monotonic() + LRO_TIMEOUT
        while time.monotonic() < deadline:
            status, hdrs, body = self.call("GET", url)
            state = (body or {}).get("status", "Succeeded" if status in (200, 204) else "")
            if state == "Succeeded":
                return
            if state in ("Failed", "Canceled"):
                err = (body or {}).get("error", {})
                raise ArmError(status, err.get("code", state), err.get("message", what))
            time.sleep(min(float(hdrs.get("Retry-After") or 0.2), 2))
        raise ArmError(0, "OperationTimeout", f"{what}: not done in {LRO_TIMEOUT}s")


def domain_of(conf, node):
    for name, dom in conf["domains"].items():
        if node in dom["nodes"]:
            return name, dom
    raise ArmError(0, "NoDomain", f"node {node} is in no fabric domain")


def scontrol(*args):
    res = subprocess.run([SCONTROL, *args], env={"SLURM_CONF": os.environ["SLURM_CONF"]},
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"scontrol {' '.join(args)}: {res.stdout.strip()}")
    return res.stdout


def resume_node(arm, conf, node):
    _, dom = domain_of(conf, node)
    rg, loc = arm.rg_path, conf["location"]
    aset = f"{rg}/providers/Microsoft.Compute/availabilitySets/{dom['availability_set']}"
    arm.call("PUT", aset, {"location": loc, "sku": {"name": "Aligned"},
                           "properties": {"platformFaultDomainCount": 1,
                                          "platformUpdateDomainCount": 1}})
    vm = f"{rg}/providers/Microsoft.Compute/virtualMachines/{node}"
    nic = f"{rg}/providers/Microsoft.Network/networkInterfaces/{node}-nic"
    try:
        arm.call("GET", vm)
        exists = True
    except ArmError as err:
        if err.status != 404:
            raise
        exists = False
    # azrdma's tags on the NIC as on the VM: azrdma's programs overwrite or
    # delete only a NIC that carries them.
    tags = {"azt-world": conf["world_id"], "slurm-node": node,
            "azrdma-cluster": conf["prefix"], "azrdma-node": node}
    if not exists:
        _, hdrs, _ = arm.call("PUT", nic, {
            "location": loc, "tags": tags,
            "properties": {"ipConfigurations": [{
                "name": "ipconfig1",
                "properties": {"subnet": {"id": f"{rg}/providers/Microsoft.Network"
                                          "/virtualNetworks/cluster/subnets/default"}}}]}},
            api=NETWORK_API)
        arm.wait(hdrs, f"NIC of {node}")
    _, _, body = arm.call("GET", nic, api=NETWORK_API)
    ip = body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
    scontrol("update", f"nodename={node}", f"nodeaddr={ip}", f"nodehostname={node}")
    arm.log(f"{node}: NodeAddr={ip}")
    if exists:
        _, hdrs, _ = arm.call("POST", f"{vm}/start")
    else:
        # The image line too: a VM made here may later be started by
        # azrdma-resume, whose node_features/azrdma reads the record.
        custom = (f"#cloud-config\n# azrdma:node={node}\n"
                  f"# azrdma:image={conf['image_name']}\n"
                  f"# azrdma:slurm_conf={os.environ['SLURM_CONF']}\n")
        _, hdrs, _ = arm.call("PUT", vm, {
            "location": loc,
            # And azrdma's own tags (ClusterName is the prefix in the
            # test world): azrdma's programs touch only VMs that carry them.
            "tags": tags,
            "properties": {
                "hardwareProfile": {"vmSize": dom["vm_size"]},
                "availabilitySet": {"id": aset},
                "storageProfile": {
                    "imageReference": dict(zip(("publisher", "offer", "sku", "version"),
                                               conf["image"].split(":"))),
                    "osDisk": {"createOption": "FromImage", "deleteOption": "Delete",
                               "managedDisk": {"storageAccountType": "Premium_LRS"}}},
                "osProfile": {
                    "computerName": node, "adminUsername": "azt",
                    "customData": base64.b64encode(custom.encode()).decode(),
                    "linuxConfiguration": {"disablePasswordAuthentication": True,
                                           "ssh": {"publicKeys": []}}},
                "networkProfile": {"networkInterfaces": [
                    {"id": nic, "properties": {"primary": True}}]}}})
    arm.wait(hdrs, f"{'start' if exists else 'create'} of {node}")
    arm.log(f"{node}: running")


def suspend_node(arm, conf, node):
    vm = f"{arm.rg_path}/providers/Microsoft.Compute/virtualMachines/{node}"
    try:
        _, hdrs, _ = arm.call("POST", f"{vm}/deallocate")
    except ArmError as err:
        if err.status == 404:
            arm.log(f"{node}: no VM, nothing to deallocate")
            return
        raise
    arm.wait(hdrs, f"deallocate of {node}")
    arm.log(f"{node}: deallocated")


def suspend_program_node(arm, conf, node):
    """The SuspendProgram's part for one node: as azrdma-suspend, the VM
    deallocated and the node given the address of a node without a VM."""
    suspend_node(arm, conf, node)
    addr = conf.get("powered_down_addr") or node
    scontrol("update", f"nodename={node}", f"nodeaddr={addr}",
             f"nodehostname={node}")


def main(action):
    open_stdio()
    resume_file = None
    if os.environ.get("SLURM_RESUME_FILE"):  # read at once: gone when we are reaped
        with open(os.environ["SLURM_RESUME_FILE"]) as f:
            resume_file = f.read()
    conf_dir = os.path.dirname(os.environ["SLURM_CONF"])
    with open(os.path.join(conf_dir, "azt-hooks.json")) as f:
        conf = json.load(f)
    global SCONTROL  # the world's Slurm, which need not be Debian's
    SCONTROL = os.path.join(os.path.dirname(conf.get("slurm_sbin", "/usr/sbin")),
                            "bin", "scontrol")
    log_file = open(os.path.join(conf["logs"], "test-power.log"), "a")
    log_lock = threading.Lock()

    def log(msg):
        with log_lock:
            log_file.write(f"{time.strftime('%H:%M:%S')} {action}[{os.getpid()}] {msg}\n")
            log_file.flush()

    log(f"argv={sys.argv[1:]} resume_file={resume_file}")
    nodes = scontrol("show", "hostnames", sys.argv[1]).split()
    arm = Arm(conf, log)
    work = resume_node if action == "resume" else suspend_program_node
    failed = {}

    def one(node):
        try:
            work(arm, conf, node)
        except Exception as err:  # noqa: BLE001 - reported per node
            failed[node] = f"{type(err).__name__}: {err}"
            log(f"{node}: FAILED {failed[node]}")

    threads = [threading.Thread(target=one, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if action == "resume":
        for node, why in failed.items():
            try:
                scontrol("update", f"nodename={node}", "state=down",
                         f"reason=test-resume: {why[:200]}")
            except RuntimeError as err:
                log(f"{node}: could not set DOWN: {err}")
    log(f"done, {len(failed)} of {len(nodes)} failed")
    return 1 if failed else 0
