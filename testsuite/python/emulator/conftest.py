"""Fixtures for the emulator conformance tests.

Each emulator runs as its own process on a free loopback port with a temporary state
directory, and is spoken to over HTTPS with TLS verified against the ca.pem it wrote.
Booting (network namespaces) is off here; test_boot.py sets up its own controller.
"""

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "..", "..", "emulator", "azure-emulator")

SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "6a1d3f0e-0000-4000-8000-00000000c11e"
CLIENT_SECRET = "s3cr3t~value"
COMPUTE_API = "2024-11-01"
NETWORK_API = "2024-05-01"
ARM_SCOPE = "https://management.azure.com/.default"
IMAGE = {"publisher": "almalinux", "offer": "almalinux-hpc", "sku": "8_7-hpc-gen2",
         "version": "latest"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll `predicate` until it returns something truthy; fail with `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def private_ip(nic):
    """The address of a NIC body's first IP configuration."""
    return nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body) if self.body.strip() else None

    def header(self, name):
        return self.headers.get(name)

    @property
    def error(self):
        return (self.json or {}).get("error", {})

    def __repr__(self):
        return f"<Resp {self.status} {self.body[:300]!r}>"


class Emulator:
    """One emulator process and a small ARM client for it."""

    def __init__(self, state_dir, scenario=None, args=(), env=None):
        self.state_dir = state_dir
        self.scenario = scenario
        self.args = list(args)
        self.env = env
        self.port = free_port()
        self.imds_port = free_port()
        self.proc = None
        self._token = None
        self._ctx = None
        self.stderr_path = os.path.join(state_dir, "stderr.log")

    # --- process ---------------------------------------------------------------------

    def command(self):
        cmd = [EMULATOR, "--listen", f"127.0.0.1:{self.port}",
               "--imds-listen", f"127.0.0.1:{self.imds_port}", "--state-dir", self.state_dir,
               "--client-secret", f"{CLIENT_ID}={CLIENT_SECRET}"]
        if self.scenario is not None:
            os.makedirs(self.state_dir, exist_ok=True)
            path = os.path.join(self.state_dir, "scenario.json")
            with open(path, "w") as f:
                json.dump(self.scenario, f)
            cmd += ["--scenario", path]
        return cmd + self.args

    def start(self, timeout=20):
        os.makedirs(self.state_dir, exist_ok=True)
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE,
                                     stderr=open(self.stderr_path, "ab"), env=self.env)
        ready = threading.Event()
        lines = []

        def read():
            for line in self.proc.stdout:
                lines.append(line)
                if line.strip() == b"ready":
                    ready.set()
        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.stderr_path, "rb") as f:
                    err = f.read().decode(errors="replace")
                raise AssertionError(f"emulator did not become ready; stdout={lines} stderr={err}")
        assert lines == [b"ready\n"], f"stdout must be exactly one 'ready' line, got {lines}"
        self._ctx = ssl.create_default_context(cafile=os.path.join(self.state_dir, "ca.pem"))
        return self

    def stop(self, timeout=30):
        """SIGTERM, and the exit status (the emulator must stop on its own)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the emulator did not stop within 30 s of SIGTERM")

    def restart(self):
        assert self.stop() == 0
        self._token = None
        return self.start()

    # --- raw HTTP --------------------------------------------------------------------

    @property
    def base(self):
        return f"https://127.0.0.1:{self.port}"

    def request(self, method, url, body=None, headers=None, raw=None, timeout=30):
        if not url.startswith("http"):
            url = self.base + url
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        ctx = self._ctx if url.startswith("https") else None
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                return Resp(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Resp(e.code, e.headers, e.read())

    # --- tokens ----------------------------------------------------------------------

    def aad(self, form, tenant=TENANT):
        raw = urllib.parse.urlencode(form).encode()
        return self.request("POST", f"/{tenant}/oauth2/v2.0/token", raw=raw,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})

    def new_token(self):
        r = self.aad({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                      "client_secret": CLIENT_SECRET, "scope": ARM_SCOPE})
        assert r.status == 200, r
        return r.json["access_token"]

    def token(self):
        if self._token is None:
            self._token = self.new_token()
        return self._token

    def imds(self, query, headers=None):
        url = f"http://127.0.0.1:{self.imds_port}/metadata/identity/oauth2/token?"
        return self.request("GET", url + urllib.parse.urlencode(query), headers=headers)

    # --- ARM -------------------------------------------------------------------------

    def arm(self, method, path, body=None, api=COMPUTE_API, headers=None, token=None):
        """An ARM call with a valid token; api=None sends no api-version."""
        url = path
        if api is not None and "api-version=" not in path:
            url += ("&" if "?" in path else "?") + f"api-version={api}"
        hdrs = {"Authorization": f"Bearer {token or self.token()}"}
        hdrs.update(headers or {})
        return self.request(method, url, body, headers=hdrs)

    def admin(self, method, path, body=None):
        r = self.request(method, f"/_emulator/{path}", body)
        assert r.status == 200, r
        return r.json

    def wait_op(self, resp, timeout=20):
        """Follow Azure-AsyncOperation to the end; the final status body."""
        url = resp.header("Azure-AsyncOperation")
        assert url, f"no Azure-AsyncOperation header: {resp.headers}"

        def done():
            r = self.arm("GET", url)
            assert r.status == 200, r
            return r.json if r.json["status"] != "InProgress" else None
        return wait_for(done, timeout, f"operation {url}")

    # --- resources -------------------------------------------------------------------

    def rg_path(self, rg):
        return f"/subscriptions/{SUB}/resourceGroups/{rg}"

    def vm_path(self, rg, name):
        return f"{self.rg_path(rg)}/providers/Microsoft.Compute/virtualMachines/{name}"

    def avset_path(self, rg, name):
        return f"{self.rg_path(rg)}/providers/Microsoft.Compute/availabilitySets/{name}"

    def nic_path(self, rg, name):
        return f"{self.rg_path(rg)}/providers/Microsoft.Network/networkInterfaces/{name}"

    def put_avset(self, rg, name, location="eastus"):
        r = self.arm("PUT", self.avset_path(rg, name),
                     {"location": location, "sku": {"name": "Aligned"},
                      "properties": {"platformFaultDomainCount": 2,
                                     "platformUpdateDomainCount": 5}})
        assert r.status == 200, r
        return r

    def put_nic(self, rg, name, location="eastus", ip=None):
        props = {"subnet": {"id": f"{self.rg_path(rg)}/providers/Microsoft.Network/"
                                  "virtualNetworks/vnet/subnets/default"}}
        if ip:
            props.update(privateIPAllocationMethod="Static", privateIPAddress=ip)
        return self.arm("PUT", self.nic_path(rg, name),
                        {"location": location,
                         "properties": {"ipConfigurations": [{"name": "ipconfig1",
                                                              "properties": props}]}},
                        api=NETWORK_API)

    def vm_body(self, rg, name, size="Standard_HB120rs_v3", avset=None, location="eastus",
                custom_data="# azrdma:node=x\n", nic=None):
        props = {
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {"imageReference": dict(IMAGE),
                               "osDisk": {"createOption": "FromImage",
                                          "managedDisk": {"storageAccountType": "Premium_LRS"}}},
            "osProfile": {"computerName": name, "adminUsername": "azt",
                          "customData": base64.b64encode(custom_data.encode()).decode(),
                          "linuxConfiguration": {"disablePasswordAuthentication": True}},
            "networkProfile": {"networkInterfaces": [
                {"id": self.nic_path(rg, nic or f"{name}-nic"),
                 "properties": {"primary": True, "deleteOption": "Delete"}}]},
        }
        if avset:
            props["availabilitySet"] = {"id": self.avset_path(rg, avset)}
        return {"location": location, "tags": {"t": name}, "properties": props}

    def create_vm(self, rg, name, wait=True, **kw):
        """NIC + VM; returns the VM PUT response (after the operation ended if wait)."""
        nic = self.put_nic(rg, kw.get("nic") or f"{name}-nic", kw.get("location", "eastus"))
        assert nic.status in (200, 201), nic
        r = self.arm("PUT", self.vm_path(rg, name), self.vm_body(rg, name, **kw))
        if wait and r.status == 201:
            r.final = self.wait_op(r)
        return r

    def vm_action(self, rg, name, action, wait=True):
        r = self.arm("POST", f"{self.vm_path(rg, name)}/{action}")
        assert r.status == 202, r
        if wait:
            r.final = self.wait_op(r)
        return r

    def vms(self):
        return {vm["name"]: vm for vm in self.admin("GET", "vms")}

    def power(self, rg, name):
        r = self.arm("GET", self.vm_path(rg, name) + "?$expand=instanceView")
        assert r.status == 200, r
        codes = [s["code"] for s in r.json["properties"]["instanceView"]["statuses"]]
        return [c for c in codes if c.startswith("PowerState/")][0]


@pytest.fixture
def make_emulator(tmp_path):
    """make_emulator(scenario=None, args=()): a started emulator, stopped afterwards."""
    started = []

    def make(scenario=None, args=(), name=None):
        emu = Emulator(str(tmp_path / (name or f"emu{len(started)}")), scenario, args)
        started.append(emu)
        return emu.start()
    yield make
    for emu in started:
        emu.stop()


@pytest.fixture(scope="module")
def shared_emulator(tmp_path_factory):
    """One emulator per test module; tests use unique resource names and it is reset
    (faults, capacity, quota, throttle buckets) after every test."""
    emu = Emulator(str(tmp_path_factory.mktemp("emu")), scenario={"pageSize": 3})
    emu.start()
    yield emu
    assert emu.stop() == 0


@pytest.fixture
def emu(shared_emulator):
    yield shared_emulator
    shared_emulator.admin("POST", "reset")


@pytest.fixture
def rg():
    """A fresh resource group name (any name is accepted)."""
    return f"rg-{uuid.uuid4().hex[:8]}"
