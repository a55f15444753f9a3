"""Hosts made of namespaces: the controller host, entering VM hosts, cleanup.

A host is a set of namespace files entered with nsenter(1). Never with
`ip netns exec`: that remounts /sys, and slurmd then finds no cgroups.
"""

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

NSENTER = "/usr/bin/nsenter"
IP = "/usr/sbin/ip"
NETNS_DIR = "/run/netns"
CLUSTER_ADDR = "10.123.0.1/16"
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def sh(cmd, check=True, **kw):
    """Run a command in the harness's own namespaces; output captured as text."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("stdin", subprocess.DEVNULL)
    res = subprocess.run(cmd, text=True, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {res.returncode}: "
                           f"{res.stderr.strip() or res.stdout.strip()}")
    return res


class Host:
    """A host made of a net namespace and optional uts/time namespace files."""

    def __init__(self, name, net, uts=None, time_ns=None):
        self.name = name
        self.net = net
        self.uts = uts
        self.time_ns = time_ns

    def argv(self, cmd):
        """The nsenter command line that runs `cmd` inside this host."""
        args = [NSENTER, f"--net={self.net}"]
        if self.uts:
            args.append(f"--uts={self.uts}")
        if self.time_ns:
            args.append(f"--time={self.time_ns}")
        return args + ["--"] + [str(c) for c in cmd]

    def run(self, cmd, check=True, timeout=60, env=None, input=None):
        """Run `cmd` in this host and wait; returns CompletedProcess (text)."""
        res = subprocess.run(self.argv(cmd), text=True, env=env, input=input,
                             stdin=None if input is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"[{self.name}] {' '.join(map(str, cmd))}: exit "
                               f"{res.returncode}\nstdout: {res.stdout}\n"
                               f"stderr: {res.stderr}")
        return res

    def popen(self, cmd, **kw):
        """Start `cmd` in this host; the caller owns the Popen."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.argv(cmd), **kw)

    def connect(self, host, port, timeout=5.0):
        """A TCP socket connected from inside this host's net namespace."""
        return self._socket_in_ns(
            lambda: socket.create_connection((host, port), timeout))

    def bind_udp(self, host, port):
        """A UDP socket bound to host:port inside this host's net namespace."""
        def _bind():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((host, port))
            return sock
        return self._socket_in_ns(_bind)

    def _socket_in_ns(self, make):
        """make()'s socket, made by a short-lived thread that setns()es into
        the namespace; a socket keeps the namespace it was created in."""
        result = {}

        def _in_ns():
            try:
                fd = os.open(self.net, os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err), self.net)
                finally:
                    os.close(fd)
                result["sock"] = make()
            except Exception as exc:  # noqa: BLE001 - re-raised below
                result["error"] = exc

        thread = threading.Thread(target=_in_ns, name=f"connect-{self.name}")
        thread.start()
        thread.join()
        if "error" in result:
            raise result["error"]
        return result["sock"]


def netns_path(name):
    return os.path.join(NETNS_DIR, name)


def create_controller(prefix, ns_dir):
    """Create the controller host of WORLD.md and return it.

    netns <prefix>ctl with lo up and bridge <prefix>br0 = 10.123.0.1/16, and a
    persistent UTS namespace (hostname <prefix>ctl) bound to ns_dir/ctl.uts.
    ns_dir becomes a private bind mount so the namespace file can live there.
    """
    name = f"{prefix}ctl"
    os.makedirs(ns_dir, exist_ok=True)
    sh(["mount", "--bind", ns_dir, ns_dir])
    sh(["mount", "--make-private", ns_dir])
    uts = os.path.join(ns_dir, "ctl.uts")
    open(uts, "w").close()
    sh(["unshare", f"--uts={uts}", "hostname", name])
    sh([IP, "netns", "add", name])
    bridge = f"{prefix}br0"
    for cmd in (["link", "set", "lo", "up"],
                ["link", "add", bridge, "type", "bridge"],
                ["addr", "add", CLUSTER_ADDR, "dev", bridge],
                ["link", "set", bridge, "up"]):
        sh([IP, "-n", name] + cmd)
    return Host(name, netns_path(name), uts=uts)


def prefix_netns(prefix):
    """Names of the net namespaces that belong to `prefix`."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names
                  if n == f"{prefix}ctl" or n.startswith(f"{prefix}-"))


def prefix_links(prefix, netns=None):
    """Interfaces named like WORLD.md's (<prefix>br0, <prefix>c3, ...)."""
    cmd = [IP, "-o", "link", "show"]
    if netns:
        cmd = [IP, "-n", netns, "-o", "link", "show"]
    res = sh(cmd, check=False)
    pat = re.compile(rf"^\d+:\s+({re.escape(prefix)}(?:br|c|r|f)\d+)[@:]")
    return [m.group(1) for m in map(pat.match, res.stdout.splitlines()) if m]


def ns_inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _ancestors():
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
        try:
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (IndexError, ValueError):
            break
    return pids


def world_processes(rundir, world_id, ns_inodes=()):
    """Processes that belong to one test world, as {pid: description}.

    A process belongs to the world if it runs in one of its net namespaces
    (ns_inodes), carries AZT_WORLD_ID=<world_id> in its environment (every
    process the harness starts does, and Slurm passes it on to jobs), or names
    the run dir on its command line. The harness itself and its parents never
    count.
    """
    mine = _ancestors()
    marker = world_id and f"AZT_WORLD_ID={world_id}".encode()
    rundir_b = rundir and rundir.rstrip("/").encode() + b"/"
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine:
            continue
        pid = int(entry)
        cmdline = _read(f"/proc/{pid}/cmdline")
        if not cmdline:
            continue  # kernel thread or gone
        why = None
        if ns_inodes and ns_inode(f"/proc/{pid}/ns/net") in ns_inodes:
            why = "in a world netns"
        elif marker and marker in _read(f"/proc/{pid}/environ").split(b"\0"):
            why = "AZT_WORLD_ID"
        elif rundir_b and rundir_b in cmdline:
            why = "run dir on command line"
        if why:
            args = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            found[pid] = f"{pid} ({why}): {args}"
    return found


def kill_processes(pids, grace=3.0):
    """SIGTERM, then SIGKILL what is still there after `grace` seconds."""
    pids = set(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = {p for p in pids if _alive(p)}
            if pids:
                time.sleep(0.05)
        if not pids:
            return


def _alive(pid):
    stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
    if not stat:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own children
    except ChildProcessError:
        pass
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def mounts_under(path):
    """Mount points at or below `path`, deepest first."""
    path = path.rstrip("/")
    points = []
    for line in _read("/proc/self/mountinfo").decode().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == path or point.startswith(path + "/"):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def destroy_world(prefix, rundir, world_id):
    """Safety net: remove everything of a world, whatever state it is in.

    Kills every process of the world (see world_processes), unmounts every
    namespace file below rundir, deletes the prefix's net namespaces and any
    prefix-named interface left in the root namespace. Returns the inodes of
    the net namespaces it deleted, for leftovers().
    """
    names = prefix_netns(prefix)
    inodes = {ns_inode(netns_path(n)) for n in names} - {None}
    for _ in range(3):  # a dying slurmd may still fork a step
        procs = world_processes(rundir, world_id, inodes)
        if not procs:
            break
        kill_processes(procs)
    for point in mounts_under(rundir) if rundir else ():
        sh(["umount", "-l", point], check=False)
    for name in names:
        sh([IP, "netns", "del", name], check=False)
    for link in prefix_links(prefix):
        sh([IP, "link", "del", link], check=False)
    return inodes


def stale_worlds(prefix):
    """{run dir: world id} of worlds of `prefix` that still have mounts.

    A run dir is recognised by its etc/azt-hooks.json, which names the prefix.
    """
    found = {}
    for line in _read("/proc/self/mountinfo").decode().splitlines():
        path = line.split()[4].encode().decode("unicode_escape")
        while path not in ("/", ""):
            path = os.path.dirname(path)
            try:
                with open(os.path.join(path, "etc", "azt-hooks.json")) as f:
                    conf = json.load(f)
            except (OSError, ValueError):
                continue
            if conf.get("prefix") == prefix:
                found[path] = conf.get("world_id")
            break
    return found


def leftovers(prefix, rundir, world_id, ns_inodes=()):
    """What of a world still exists: a list of human-readable lines."""
    left = [f"netns {n}" for n in prefix_netns(prefix)]
    left += [f"link {link} in the root netns" for link in prefix_links(prefix)]
    left += [f"mount {m}" for m in mounts_under(rundir)]
    left += [f"process {d}"
             for d in world_processes(rundir, world_id, set(ns_inodes)).values()]
    return left
