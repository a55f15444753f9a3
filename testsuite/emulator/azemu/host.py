"""VMs booted as hosts: network, UTS and time namespaces on the controller's bridges.

Layout (testsuite/WORLD.md):
  netns <prefix>-<vm>               /run/netns, made with `ip netns add`
  veth <prefix>c<N> / eth0          cluster NIC on the cluster bridge, default route via the gateway
  bridge <prefix>f<F>               one per fabric, no address, created on first use
  veth <prefix>r<N> / eth1 or ib0   RDMA NIC on the fabric bridge, 172.16.x.y/16
  <state>/ns/<vm>/{uts,time}        persistent namespaces (bind mounts on the private
                                    mount <state>/ns)
  <state>/vms/<vm>                  AZ_VM_DIR: boot log, custom data, the hook's spool

Hosts are entered with nsenter, never `ip netns exec`, which remounts /sys.
"""

import logging
import os
import shutil
import signal
import subprocess
import threading
import time

log = logging.getLogger("azemu.host")

RDMA_PREFIXLEN = 16
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HostError(Exception):
    pass


def _run(args, check=True):
    proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise HostError(f"{' '.join(args)}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc


def _ip(*args):
    return _run(["ip", *args])


def _ip_quiet(*args):
    """Run ip, ignoring failures (teardown of what may already be gone)."""
    return _run(["ip", *args], check=False)


def _mountpoints():
    points = set()
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            # Field 5 is the mount point, with spaces etc. escaped as octal.
            point = line.split()[4]
            points.add(point.encode().decode("unicode_escape"))
    return points


def _rdma_mac(ip):
    """A locally administered MAC made from the (unique) RDMA address."""
    return "02:00:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))


def _ns_id(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


class HostManager:
    def __init__(self, boot, cluster_cidr, state_dir, timing):
        self.prefix = boot.prefix
        self.bridge = boot.bridge
        self.hook = boot.hook
        self.cidr = cluster_cidr
        self.gateway = str(next(cluster_cidr.hosts()))
        self.timing = timing
        self.ns_root = os.path.join(state_dir, "ns")
        self.vm_root = os.path.join(state_dir, "vms")
        # Serialises creating a fabric bridge + attaching to it against removing an
        # empty one, so a VM never joins a bridge that is being deleted.
        self.fabric_lock = threading.Lock()

    # --- set-up ----------------------------------------------------------------------

    def prepare(self):
        """Make <state>/ns a private mount once: binding namespace files onto a shared
        mount fails, and a private one keeps them out of other mount namespaces."""
        os.makedirs(self.ns_root, exist_ok=True)
        os.makedirs(self.vm_root, exist_ok=True)
        if self.ns_root not in _mountpoints():
            _run(["mount", "--bind", self.ns_root, self.ns_root])
        _run(["mount", "--make-private", self.ns_root])
        if _ip_quiet("link", "show", "dev", self.bridge).returncode != 0:
            raise HostError(f"cluster bridge {self.bridge} does not exist")

    def release_mount(self):
        """Undo prepare() (used when the world is torn down with --shutdown-vms)."""
        if self.ns_root in _mountpoints():
            _run(["umount", self.ns_root], check=False)

    def netns_name(self, vm_name):
        return f"{self.prefix}-{vm_name}"

    def record(self, vm_name, index, rdma_if, fabric):
        """The host record kept in the VM's state; teardown needs nothing else."""
        return {
            "netns": self.netns_name(vm_name),
            "index": index,
            "clusterVeth": f"{self.prefix}c{index}",
            "rdmaVeth": f"{self.prefix}r{index}" if rdma_if else None,
            "rdmaIf": rdma_if,
            "fabricBridge": f"{self.prefix}f{fabric}" if rdma_if else None,
            "nsDir": os.path.join(self.ns_root, vm_name),
            "vmDir": os.path.join(self.vm_root, vm_name),
        }

    # --- boot ------------------------------------------------------------------------

    def boot(self, host, vm):
        """Create the host described by `host` (see record()) and run the boot hook.

        `vm` carries name, size, image, privateIp, mac (of the cluster NIC), rdmaIp,
        customData (bytes).
        Returns the hook's exit status (None on timeout). On a set-up failure
        everything made so far is removed and HostError is raised.
        """
        try:
            self._create(host, vm)
        except Exception as e:
            self.teardown(host)
            if isinstance(e, HostError):
                raise
            raise HostError(str(e)) from e
        return self._run_hook(host, vm)

    def _create(self, host, vm):
        ns = host["netns"]
        if os.path.exists(f"/run/netns/{ns}"):
            # Left over from a crash: start from nothing.
            self.teardown(host)
        plen = self.cidr.prefixlen
        _ip("netns", "add", ns)
        # Stable MAC addresses (the NIC's, and one derived from the RDMA address), so a
        # re-created host is reachable at once through its neighbours' ARP caches.
        _ip("link", "add", host["clusterVeth"], "type", "veth", "peer", "name", "eth0",
            "address", vm["mac"], "netns", ns)
        _ip("link", "set", "dev", host["clusterVeth"], "master", self.bridge, "up")
        _ip("-n", ns, "link", "set", "dev", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{vm['privateIp']}/{plen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "dev", "eth0", "up")
        _ip("-n", ns, "route", "add", "default", "via", self.gateway)
        if host["rdmaIf"]:
            fb = host["fabricBridge"]
            with self.fabric_lock:
                if _ip_quiet("link", "show", "dev", fb).returncode != 0:
                    _ip("link", "add", fb, "type", "bridge")
                    _ip("link", "set", "dev", fb, "up")
                _ip("link", "add", host["rdmaVeth"], "type", "veth", "peer", "name",
                    host["rdmaIf"], "address", _rdma_mac(vm["rdmaIp"]), "netns", ns)
                _ip("link", "set", "dev", host["rdmaVeth"], "master", fb, "up")
            _ip("-n", ns, "addr", "add", f"{vm['rdmaIp']}/{RDMA_PREFIXLEN}", "dev", host["rdmaIf"])
            _ip("-n", ns, "link", "set", "dev", host["rdmaIf"], "up")

        # Persistent UTS and time namespaces. The offsets make the VM's clocks start at
        # (about) zero, so /proc/uptime inside reads like a machine that just booted.
        os.makedirs(host["nsDir"], exist_ok=True)
        uts, tns = self._ns_files(host)
        for path in (uts, tns):
            open(path, "a").close()
        boottime = int(time.clock_gettime(time.CLOCK_BOOTTIME))
        monotonic = int(time.clock_gettime(time.CLOCK_MONOTONIC))
        _run(["unshare", f"--uts={uts}", f"--time={tns}", f"--boottime=-{boottime}",
              f"--monotonic=-{monotonic}", "hostname", vm["name"]])

        shutil.rmtree(host["vmDir"], ignore_errors=True)
        os.makedirs(host["vmDir"])
        with open(os.path.join(host["vmDir"], "custom-data"), "wb") as f:
            f.write(vm["customData"] or b"")

    def _ns_files(self, host):
        return os.path.join(host["nsDir"], "uts"), os.path.join(host["nsDir"], "time")

    def _run_hook(self, host, vm):
        uts, tns = self._ns_files(host)
        env = {
            "PATH": os.environ.get("PATH") or DEFAULT_PATH,
            "AZ_VM_NAME": vm["name"],
            "AZ_VM_SIZE": vm["size"],
            "AZ_VM_IMAGE": vm["image"],
            "AZ_VM_PRIVATE_IP": vm["privateIp"],
            "AZ_VM_RDMA_IP": vm["rdmaIp"] or "",
            "AZ_VM_RDMA_IF": host["rdmaIf"] or "",
            "AZ_VM_CUSTOM_DATA": os.path.join(host["vmDir"], "custom-data"),
            "AZ_VM_DIR": host["vmDir"],
        }
        cmd = ["nsenter", f"--net=/run/netns/{host['netns']}", f"--uts={uts}", f"--time={tns}",
               "--", self.hook]
        with open(os.path.join(host["vmDir"], "boot.log"), "ab") as out:
            # A session of its own: the hook's daemons must not share our process group.
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=env, cwd=host["vmDir"], start_new_session=True)
        try:
            rc = proc.wait(timeout=self.timing["bootTimeout"])
        except subprocess.TimeoutExpired:
            log.warning("boot hook of %s still running after %ss; killed", vm["name"],
                        self.timing["bootTimeout"])
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            return None
        if rc != 0:
            log.warning("boot hook of %s exited with %s (see %s/boot.log)", vm["name"], rc,
                        host["vmDir"])
        return rc

    # --- state of a running host -----------------------------------------------------

    def exists(self, host):
        uts, tns = self._ns_files(host)
        mounts = _mountpoints()
        return (os.path.exists(f"/run/netns/{host['netns']}") and uts in mounts and tns in mounts
                and _ip_quiet("link", "show", "dev", host["clusterVeth"]).returncode == 0)

    def set_rdma(self, host, up):
        """Take the RDMA link down (both ends) or bring it back up."""
        if not host.get("rdmaIf"):
            raise HostError("the VM has no RDMA interface")
        state = "up" if up else "down"
        _ip("-n", host["netns"], "link", "set", "dev", host["rdmaIf"], state)
        _ip("link", "set", "dev", host["rdmaVeth"], state)

    # --- teardown --------------------------------------------------------------------

    def _members(self, host):
        """PIDs of every process in the VM's net or UTS namespace."""
        targets = set()
        for path in (f"/run/netns/{host['netns']}", self._ns_files(host)[0]):
            try:
                targets.add(_ns_id(path))
            except OSError:
                pass
        if not targets:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            for kind in ("net", "uts"):
                try:
                    if _ns_id(f"/proc/{entry}/ns/{kind}") in targets:
                        pids.append(int(entry))
                        break
                except OSError:
                    # Gone, or a zombie whose namespaces can no longer be read.
                    break
        return pids

    def _signal(self, pids, sig):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill_processes(self, host):
        pids = self._members(host)
        if not pids:
            return
        self._signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + self.timing["killGrace"]
        while time.monotonic() < deadline:
            time.sleep(0.05)
            pids = self._members(host)
            if not pids:
                return
            # Children forked while shutting down get the same request.
            self._signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            self._signal(pids, signal.SIGKILL)
            time.sleep(0.05)
            pids = self._members(host)
        if pids:
            log.warning("processes %s of %s survived SIGKILL", pids, host["netns"])

    def teardown(self, host):
        """Remove everything of the host; safe to call on a partial or absent host."""
        self.kill_processes(host)
        _ip_quiet("link", "del", "dev", host["clusterVeth"])
        if host.get("rdmaVeth"):
            _ip_quiet("link", "del", "dev", host["rdmaVeth"])
        if os.path.exists(f"/run/netns/{host['netns']}"):
            _ip_quiet("netns", "del", host["netns"])
        mounts = _mountpoints()
        for path in self._ns_files(host):
            if path in mounts:
                _run(["umount", path], check=False)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(host["nsDir"])
        except OSError:
            pass
        shutil.rmtree(host["vmDir"], ignore_errors=True)
        fb = host.get("fabricBridge")
        if fb:
            with self.fabric_lock:
                members = _ip_quiet("-o", "link", "show", "master", fb)
                if members.returncode == 0 and not members.stdout.strip():
                    _ip_quiet("link", "del", "dev", fb)

