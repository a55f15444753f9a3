"""VMs that boot as network-namespace hosts (testsuite/WORLD.md), with a throwaway
controller namespace and a trivial boot hook. Needs root, ip, nsenter and unshare.

Everything the tests create carries the prefix (AZT_PREFIX, default "aze"), and the
fixture removes every namespace, bridge, mount and process even when a test fails.
"""

import concurrent.futures
import ctypes
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import Emulator, wait_for

PREFIX = os.environ.get("AZT_PREFIX", "aze")
CTL = f"{PREFIX}ctl"
BRIDGE = f"{PREFIX}br0"
CIDR = "10.123.0.0/16"
GATEWAY = "10.123.0.1"
CLONE_NEWNET = 0x40000000

HOOK = """#!/bin/sh
# Trivial boot hook: record what the VM looks like, start a detached daemon.
# A VM whose custom data says "# hang" gets a hook that never returns.
grep -q '^# hang' "$AZ_VM_CUSTOM_DATA" && exec sleep 100000
env > "$AZ_VM_DIR/env"
hostname > "$AZ_VM_DIR/hostname"
cat /proc/uptime > "$AZ_VM_DIR/uptime"
setsid sleep 100000 </dev/null >/dev/null 2>&1 &
echo $! > "$AZ_VM_DIR/daemon.pid"
echo booted
"""

# ping without the ping binary: one ICMP echo over a raw socket.
PING = r"""
import os, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
dst, ident = sys.argv[1], os.getpid() & 0xffff
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
hdr = struct.pack('!BBHHH', 8, 0, 0, ident, 1) + b'azemu-ping'
sock.sendto(struct.pack('!BBHHH', 8, 0, csum(hdr), ident, 1) + b'azemu-ping', (dst, 0))
end = time.time() + float(sys.argv[2])
while time.time() < end:
    sock.settimeout(max(0.01, end - time.time()))
    try:
        data, addr = sock.recvfrom(2048)
    except socket.timeout:
        break
    icmp = data[(data[0] & 0x0f) * 4:]
    if addr[0] == dst and icmp[0] == 0 and struct.unpack('!H', icmp[4:6])[0] == ident:
        sys.exit(0)
sys.exit(1)
"""


def _have_tools():
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("ip", "nsenter", "unshare", "mount"))


pytestmark = pytest.mark.skipif(not _have_tools(), reason="needs root, ip, nsenter and unshare")


def sh(*args, check=True, timeout=30):
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


def _setns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


class ControllerEmulator(Emulator):
    """The emulator run inside the controller namespace; its HTTP calls are made from a
    thread that has entered that namespace (127.0.0.1 there is not ours)."""

    def __init__(self, state_dir, hook, **kw):
        super().__init__(state_dir, args=["--netns-prefix", PREFIX, "--cluster-bridge", BRIDGE,
                                          "--cluster-cidr", CIDR, "--boot-hook", hook], **kw)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, initializer=_setns, initargs=(f"/run/netns/{CTL}",))

    def command(self):
        return ["nsenter", f"--net=/run/netns/{CTL}", "--"] + super().command()

    def request(self, *args, **kw):
        return self.pool.submit(super().request, *args, **kw).result()

    # --- looking into VMs ------------------------------------------------------------

    def in_vm(self, vm, *cmd, check=True, timeout=30):
        ns = os.path.join(self.state_dir, "ns", vm)
        return sh("nsenter", f"--net=/run/netns/{PREFIX}-{vm}", f"--uts={ns}/uts",
                  f"--time={ns}/time", "--", *cmd, check=check, timeout=timeout)

    def ping(self, vm, addr, timeout=1.5):
        res = self.in_vm(vm, "python3", "-c", PING, addr, str(timeout), check=False)
        return res.returncode == 0

    def in_ctl(self, *cmd, check=True):
        return sh("ip", "-n", CTL, *cmd, check=check)


def _netns_list():
    out = sh("ip", "netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _ns_pids(ns_path):
    """PIDs whose network namespace is the one bound at ns_path."""
    try:
        st = os.stat(ns_path)
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                s = os.stat(f"/proc/{entry}/ns/net")
            except OSError:
                continue
            if (s.st_dev, s.st_ino) == (st.st_dev, st.st_ino):
                pids.append(int(entry))
    return pids


def _force_cleanup(state_dir):
    """Remove whatever a failed run left: VM namespaces, their processes, mounts, the
    controller namespace (with every bridge and veth in it)."""
    for ns in _netns_list():
        if ns.startswith(f"{PREFIX}-") or ns == CTL:
            for pid in _ns_pids(f"/run/netns/{ns}"):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            sh("ip", "netns", "del", ns, check=False)
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for point in sorted((m for m in mounts if m.startswith(state_dir)), key=len, reverse=True):
        sh("umount", "-l", point, check=False)


def _leftovers(state_dir):
    left = [ns for ns in _netns_list() if ns.startswith(f"{PREFIX}-")]
    with open("/proc/self/mountinfo") as f:
        left += [line.split()[4] for line in f if line.split()[4].startswith(state_dir)]
    return left


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    base = tmp_path_factory.mktemp("boot")
    state_dir = str(base / "emulator")
    if CTL in _netns_list() or any(ns.startswith(f"{PREFIX}-") for ns in _netns_list()):
        pytest.skip(f"namespaces with prefix {PREFIX} exist already (another run?)")
    hook = str(base / "vm-boot")
    with open(hook, "w") as f:
        f.write(HOOK)
    os.chmod(hook, 0o755)
    emu = None
    try:
        sh("ip", "netns", "add", CTL)
        sh("ip", "-n", CTL, "link", "set", "lo", "up")
        sh("ip", "-n", CTL, "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "-n", CTL, "addr", "add", f"{GATEWAY}/16", "dev", BRIDGE)
        sh("ip", "-n", CTL, "link", "set", BRIDGE, "up")
        emu = ControllerEmulator(state_dir, hook)
        emu.start()
        yield emu
        # A plain stop leaves running VMs running; with --shutdown-vms, SIGTERM takes every
        # VM host down and records the VMs deallocated.
        assert emu.stop() == 0
        emu.args.append("--shutdown-vms")
        emu.start()
        assert emu.stop() == 0
        with open(os.path.join(state_dir, "state.json")) as f:
            assert {v["powerState"] for v in json.load(f)["vms"].values()} <= {"deallocated"}
        left = _leftovers(state_dir)
        assert not left, f"the emulator left behind: {left}"
        links = emu_links()
        assert links == [BRIDGE], f"links left in the controller: {links}"
    finally:
        if emu is not None:
            if emu.proc and emu.proc.poll() is None:
                emu.proc.kill()
                emu.proc.wait()
            emu.pool.shutdown()
        _force_cleanup(state_dir)
        assert CTL not in _netns_list()


def emu_links():
    out = sh("ip", "-n", CTL, "-o", "link", "show").stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
                  if line.split(":")[1].strip() != "lo")


@pytest.fixture(scope="module")
def booted(cloud):
    """Two VMs in set A, one in set B, one H16r (ND: eth1) without a set."""
    rg = "boot-rg"
    cloud.put_avset(rg, "A")
    cloud.put_avset(rg, "B")
    created = [cloud.create_vm(rg, name, wait=False, avset=avset, size=size,
                               custom_data=f"# azrdma:node={name}\n")
               for name, avset, size in (("a1", "A", "Standard_HB120rs_v3"),
                                         ("a2", "A", "Standard_HB120rs_v3"),
                                         ("b1", "B", "Standard_HB120rs_v3"),
                                         ("nd1", None, "Standard_H16r"))]
    for r in created:
        assert r.status == 201, r
        assert cloud.wait_op(r, timeout=60)["status"] == "Succeeded"
    return rg


def test_vm_hosts_have_hostname_and_fresh_uptime(cloud, booted):
    vms = cloud.vms()
    for name in ("a1", "a2", "b1", "nd1"):
        assert vms[name]["netns"] == f"{PREFIX}-{name}"
        assert cloud.in_vm(name, "hostname").stdout.strip() == name
        uptime = float(cloud.in_vm(name, "cat", "/proc/uptime").stdout.split()[0])
        assert uptime < 60, f"{name} uptime {uptime}"
    with open("/proc/uptime") as f:
        assert float(f.read().split()[0]) > 0  # sanity: the host's own clock is untouched


def test_boot_hook_ran_inside_the_vm_with_its_environment(cloud, booted):
    vms = cloud.vms()
    vm_dir = os.path.join(cloud.state_dir, "vms", "a1")
    with open(os.path.join(vm_dir, "env")) as f:
        env = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
    assert env["AZ_VM_NAME"] == "a1"
    assert env["AZ_VM_SIZE"] == "Standard_HB120rs_v3"
    assert env["AZ_VM_IMAGE"] == "almalinux:almalinux-hpc:8_7-hpc-gen2:latest"
    assert env["AZ_VM_PRIVATE_IP"] == vms["a1"]["privateIp"]
    assert env["AZ_VM_RDMA_IP"] == vms["a1"]["rdmaIp"]
    assert env["AZ_VM_RDMA_IF"] == "ib0"
    assert env["AZ_VM_DIR"] == vm_dir
    with open(env["AZ_VM_CUSTOM_DATA"]) as f:
        assert f.read() == "# azrdma:node=a1\n"
    shell = {"PWD", "SHLVL", "_", "OLDPWD"}  # what sh itself adds
    extra = {k for k in env if not k.startswith("AZ_VM_")} - {"PATH"} - shell
    assert not extra, f"unexpected environment: {extra}"
    with open(os.path.join(vm_dir, "hostname")) as f:
        assert f.read().strip() == "a1"
    with open(os.path.join(vm_dir, "uptime")) as f:
        assert float(f.read().split()[0]) < 10  # boot time = now
    assert open(os.path.join(vm_dir, "boot.log")).read().strip() == "booted"


def test_cluster_nic_address_and_route(cloud, booted):
    vms = cloud.vms()
    addr = cloud.in_vm("a1", "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert f"inet {vms['a1']['privateIp']}/16" in addr
    assert vms["a1"]["privateIp"].startswith("10.123.")
    route = cloud.in_vm("a1", "ip", "route", "show", "default").stdout
    assert f"default via {GATEWAY} dev eth0" in route
    assert cloud.ping("a1", GATEWAY)
    assert cloud.ping("b1", vms["a1"]["privateIp"])  # every VM reaches every VM over 10.123/16


def test_rdma_nic_names_and_addresses(cloud, booted):
    vms = cloud.vms()
    assert vms["nd1"]["rdmaIf"] == "eth1"
    nd = cloud.in_vm("nd1", "ip", "-4", "-o", "addr", "show", "dev", "eth1").stdout
    assert f"inet {vms['nd1']['rdmaIp']}/16" in nd
    ib = cloud.in_vm("a1", "ip", "-4", "-o", "addr", "show", "dev", "ib0").stdout
    assert f"inet {vms['a1']['rdmaIp']}/16" in ib
    assert cloud.in_vm("a1", "ip", "link", "show", "lo").stdout.count("UP") >= 1
    fabric = f"{PREFIX}f{vms['a1']['fabric']}"
    assert vms["a1"]["fabric"] == vms["a2"]["fabric"] != vms["b1"]["fabric"]
    ctl = cloud.in_ctl("-o", "addr", "show", "dev", fabric).stdout
    assert "inet " not in ctl  # fabric bridges carry no address


def test_rdma_network_connects_a_set_and_isolates_sets(cloud, booted):
    vms = cloud.vms()
    assert cloud.ping("a1", vms["a2"]["rdmaIp"])
    assert cloud.ping("a2", vms["a1"]["rdmaIp"])
    assert not cloud.ping("a1", vms["b1"]["rdmaIp"], timeout=1)
    assert not cloud.ping("nd1", vms["a1"]["rdmaIp"], timeout=1)


def test_rdma_link_down_fault(cloud, booted):
    vms = cloud.vms()
    r = cloud.request("POST", "/_emulator/vms/a2/rdma", {"up": False})
    assert r.status == 200
    assert "state DOWN" in cloud.in_vm("a2", "ip", "link", "show", "ib0").stdout
    assert not cloud.ping("a1", vms["a2"]["rdmaIp"], timeout=1)
    assert cloud.vms()["a2"]["rdmaUp"] is False
    assert cloud.request("POST", "/_emulator/vms/a2/rdma", {"up": True}).status == 200
    wait_for(lambda: cloud.ping("a1", vms["a2"]["rdmaIp"]), 10, "the RDMA link to come back")


def test_deallocate_removes_the_host(cloud, booted):
    rg = booted
    vms = cloud.vms()
    with open(os.path.join(cloud.state_dir, "vms", "a1", "daemon.pid")) as f:
        daemon = int(f.read())
    os.kill(daemon, 0)  # alive
    fabric = f"{PREFIX}f{vms['a1']['fabric']}"
    links_before = emu_links()
    cloud.vm_action(rg, "a1", "deallocate")
    assert f"{PREFIX}-a1" not in _netns_list()
    assert not os.path.exists(os.path.join(cloud.state_dir, "vms", "a1"))
    assert not os.path.exists(os.path.join(cloud.state_dir, "ns", "a1"))
    wait_for(lambda: not os.path.exists(f"/proc/{daemon}") or
             open(f"/proc/{daemon}/stat").read().split()[2] == "Z", 10, "the VM's daemon to die")
    links_after = emu_links()
    assert len(links_before) - len(links_after) == 2  # its cluster and RDMA veths
    assert fabric in links_after  # a2 still uses the fabric
    assert cloud.vms()["a1"]["netns"] is None

    cloud.vm_action(rg, "a2", "deallocate")
    assert fabric not in emu_links()  # an empty fabric bridge is removed

    # Started again, both come back on one (new) fabric and reach each other.
    cloud.vm_action(rg, "a1", "start")
    cloud.vm_action(rg, "a2", "start")
    vms = cloud.vms()
    assert vms["a1"]["fabric"] == vms["a2"]["fabric"]
    assert cloud.in_vm("a1", "hostname").stdout.strip() == "a1"
    assert cloud.ping("a1", vms["a2"]["rdmaIp"])


def test_power_off_and_delete_remove_the_host(cloud, booted):
    rg = booted
    cloud.vm_action(rg, "nd1", "powerOff")
    assert f"{PREFIX}-nd1" not in _netns_list()
    assert cloud.vms()["nd1"]["powerState"] == "stopped"
    cloud.vm_action(rg, "nd1", "start")
    assert cloud.in_vm("nd1", "hostname").stdout.strip() == "nd1"
    r = cloud.arm("DELETE", cloud.vm_path(rg, "nd1"))
    assert cloud.wait_op(r)["status"] == "Succeeded"
    assert f"{PREFIX}-nd1" not in _netns_list()
    assert "nd1" not in cloud.vms()


def test_hosts_outlive_an_emulator_restart_and_lost_ones_come_back(cloud, booted):
    vms = cloud.vms()
    with open(os.path.join(cloud.state_dir, "vms", "b1", "daemon.pid")) as f:
        daemon = int(f.read())
    assert cloud.stop() == 0
    assert f"{PREFIX}-b1" in _netns_list()
    os.kill(daemon, 0)  # VMs keep running while the emulator is down
    # Lose a2's host entirely, as a crash would.
    for pid in _ns_pids(f"/run/netns/{PREFIX}-a2"):
        os.kill(pid, 9)
    sh("ip", "-n", CTL, "link", "del", f"{PREFIX}c{_host_index(cloud, 'a2')}", check=False)
    sh("ip", "netns", "del", f"{PREFIX}-a2")
    cloud.start()
    after = cloud.vms()
    assert after["b1"]["netns"] == f"{PREFIX}-b1"
    os.kill(daemon, 0)  # b1 was left alone
    assert f"{PREFIX}-a2" in _netns_list()
    assert cloud.in_vm("a2", "hostname").stdout.strip() == "a2"
    assert cloud.ping("a1", vms["a2"]["rdmaIp"])


def _host_index(cloud, vm):
    with open(os.path.join(cloud.state_dir, "state.json")) as f:
        state = json.load(f)
    return next(v["host"]["index"] for v in state["vms"].values() if v["name"] == vm)


def test_custom_data_reaches_the_hook_as_a_file(cloud, booted):
    rg = booted
    cloud.put_avset(rg, "C")
    data = "#cloud-config\n# azrdma:node=hb-007\n# azrdma:image=alma87\n"
    r = cloud.create_vm(rg, "c1", avset="C", size="Standard_HB176-24rs_v4", custom_data=data)
    assert r.final["status"] == "Succeeded"
    with open(os.path.join(cloud.state_dir, "vms", "c1", "custom-data")) as f:
        assert f.read() == data
    cloud.wait_op(cloud.arm("DELETE", cloud.vm_path(rg, "c1")))
    assert f"{PREFIX}-c1" not in _netns_list()


def test_a_hanging_boot_hook_is_killed_after_the_boot_timeout(cloud, booted):
    rg = booted
    cloud.admin("POST", "timing", {"bootTimeout": 1})
    try:
        started = time.monotonic()
        r = cloud.create_vm(rg, "hang1", size="Standard_D2s_v5", custom_data="# hang\n")
        assert r.final["status"] == "Succeeded"  # the guest's trouble is not the platform's
        assert 1 <= time.monotonic() - started < 10
        assert cloud.in_vm("hang1", "hostname").stdout.strip() == "hang1"
        assert not _ns_pids(f"/run/netns/{PREFIX}-hang1")  # the hook was killed
    finally:
        cloud.admin("POST", "timing", {"bootTimeout": 60})
    cloud.wait_op(cloud.arm("DELETE", cloud.vm_path(rg, "hang1")))
