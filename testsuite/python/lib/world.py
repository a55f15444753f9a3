"""The test world: controller host, munged, slurmctld, the Azure emulator.

One World is brought up per pytest session (conftest.py). Everything it
creates is named with its prefix and lives under its run dir, so that
stop() can remove all of it and prove that nothing is left behind.
"""

import contextlib
import http.client
import json
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import threading
import uuid

from . import netns
from .slurm import (Domain, SlurmInstall, node_flags, parse_oneliner,
                    slurm_conf)
from .wait import GiveUp, WaitTimeout, wait_for

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(HERE))
HOOKS = os.path.join(HERE, "hooks")

ARM_PORT = 8443
IMDS_PORT = 8080
# The controller host's address on the cluster bridge.
CTL_ADDR = netns.CLUSTER_ADDR.split("/")[0]
SLURM_USER = "slurm"

# Fabric domains of the test cluster: nodes f1n1..f1n6 share availability set
# <prefix>-fab1, f2n1..f2n2 share <prefix>-fab2. Test modules use nodes of
# their own (with sbatch -w), so that each sees its nodes power up.
# f3n1..f3n8 (fab3, set <prefix>-fab3) belong to test_power_save*.py.
# f4n1..f4n4 (fab4, set <prefix>-fab4) belong to test_job_submit*.py and
# test_spank*.py. f5n1..f5n2 (fab5) belong to test_node_features*.py.
DOMAINS = (("fab1", [f"f1n{i}" for i in range(1, 7)], "Standard_HB120rs_v3"),
           ("fab2", ["f2n1", "f2n2"], "Standard_HB120rs_v3"),
           ("fab3", [f"f3n{i}" for i in range(1, 9)], "Standard_HB120rs_v3"),
           ("fab4", [f"f4n{i}" for i in range(1, 5)], "Standard_HB120rs_v3"),
           ("fab5", ["f5n1", "f5n2"], "Standard_HB120rs_v3"))

# Timings of the power-save cycle, short so that the suite is fast.
SUSPEND_TIME = 10
SUSPEND_TIMEOUT = 5
RESUME_TIMEOUT = 60
VM_BOOT_SECONDS = 3


class World:
    """A running test world; see WORLD.md for what it is made of."""

    def __init__(self, prefix=None, rundir=None, plugindir=None,
                 emulator=None, domains=None, slurm=None):
        """domains: (name, nodes, vm size) of each fabric domain, one
        partition each (the first the default); DOMAINS by default.
        slurm: the SlurmInstall to run (AZT_SLURM's by default)."""
        self.slurm = slurm or SlurmInstall()
        self.prefix = prefix or os.environ.get("AZT_PREFIX", "azt")
        if len(self.prefix) > 5:
            raise ValueError(f"AZT_PREFIX {self.prefix!r}: at most 5 characters")
        self.rundir = os.path.abspath(
            rundir or os.environ.get("AZT_RUNDIR")
            or tempfile.mkdtemp(prefix=f"{self.prefix}-run-"))
        self.plugindir = plugindir or os.environ.get("AZRDMA_PLUGINDIR")
        self.emulator_bin = emulator or os.environ.get(
            "AZT_EMULATOR", os.path.join(REPO, "testsuite/emulator/azure-emulator"))
        self.world_id = f"{self.prefix}-{uuid.uuid4().hex[:12]}"
        self.ctl = None
        self.procs = {}
        self.ns_inodes = set()
        self.swept = []
        self.conf_overrides = {}
        self.node_features = {}
        self.domains = [Domain(name, nodes, f"{self.prefix}-{name}", size)
                        for name, nodes, size in domains or DOMAINS]
        self.attached = False
        self._ssl = None

    @classmethod
    def attach(cls, rundir):
        """The World whose daemons run on from an earlier process (a world
        left up on purpose, as contribs/demo leaves its cluster), read from
        its run dir's etc/azt-hooks.json; stop() takes it down."""
        with open(os.path.join(rundir, "etc", "azt-hooks.json")) as f:
            hooks = json.load(f)
        world = cls(prefix=hooks["prefix"], rundir=rundir,
                    domains=[(name, d["nodes"], d["vm_size"])
                             for name, d in hooks["domains"].items()])
        world.world_id = hooks["world_id"]
        name = f"{world.prefix}ctl"
        world.ctl = netns.Host(name, netns.netns_path(name),
                               uts=world.path("ns", "ctl.uts"))
        world.attached = True
        return world

    # -- paths ------------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.rundir, *parts)

    @property
    def slurm_conf_path(self):
        return self.path("etc", "slurm.conf")

    @property
    def hooks_conf_path(self):
        return self.path("etc", "azt-hooks.json")

    @property
    def munge_socket(self):
        return self.path("munge", "munge.socket.2")

    @property
    def emulator_dir(self):
        return self.path("emulator")

    @property
    def has_emulator(self):
        return "emulator" in self.procs

    # -- bring up / tear down ----------------------------------------------

    def _check_slurm_user_reads(self):
        """Refuse at once what SlurmUser cannot load from (a checkout in a
        0700 home): slurmctld would die of a plugrack fatal later."""
        paths = [os.path.abspath(p) for p in
                 (self.plugindir, os.environ.get("AZRDMA_BUILDDIR")) if p]
        if not paths:
            return
        res = subprocess.run([os.path.join(REPO, "testsuite", "slurm-user-reads"),
                              *paths], stderr=subprocess.PIPE, text=True)
        if res.returncode != 0:
            raise RuntimeError(res.stderr.strip())

    def start(self):
        """Bring the world up; on any failure tear down what was started."""
        self._check_slurm_user_reads()
        stale = netns.prefix_netns(self.prefix) + netns.prefix_links(self.prefix)
        if stale:
            raise RuntimeError(
                f"prefix {self.prefix!r} is in use ({', '.join(stale)}): another "
                "run, or a killed one (cleanup.py removes its leftovers)")
        self._clear_rundir()
        try:
            self._make_dirs()
            self.ctl = netns.create_controller(self.prefix, self.path("ns"))
            self._start_munged()
            self._write_hooks_conf()
            self.write_slurm_conf()
            if os.access(self.emulator_bin, os.X_OK):
                self._start_emulator()
            self._start_slurmctld()
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Tear everything down; return what could not be removed."""
        # slurmctld first, so that no power-save program starts any more;
        # the emulator's --shutdown-vms then takes every VM host (and its
        # slurmd) down.
        for name, grace in (("slurmctld", 15), ("emulator", 60), ("munged", 15)):
            proc = self.procs.pop(name, None)
            if proc:
                _terminate(proc, grace)
            elif self.attached:
                self._stop_attached(name, grace)
        self.swept = self._unswept()
        self.ns_inodes |= netns.destroy_world(self.prefix, self.rundir,
                                              self.world_id)
        self.ns_inodes.discard(None)
        return self.leftovers()

    def _stop_attached(self, name, grace):
        """SIGTERM (then SIGKILL) a daemon this process did not start, found
        by its pid file or command line among the world's processes only: a
        pid file may outlive its daemon, and its pid be someone else's."""
        ours = netns.world_processes(self.rundir, self.world_id)
        pidfile = {"slurmctld": self.path("ctld", "slurmctld.pid"),
                   "munged": self.path("munge", "munged.pid")}.get(name)
        if pidfile:
            pids = [_pid_in(pidfile)]
        else:
            pids = [pid for pid, desc in ours.items()
                    if f"{os.path.basename(self.emulator_bin)} --listen" in desc]
        pids = [pid for pid in pids if pid in ours]
        if pids:
            netns.kill_processes(pids, grace=grace)

    def _unswept(self):
        """What the daemons left for the safety net (they should leave nothing)."""
        ctl = f"{self.prefix}ctl"
        names = netns.prefix_netns(self.prefix)
        found = [f"netns {n}" for n in names if n != ctl]
        if ctl in names:
            found += [f"link {link} in {ctl}"
                      for link in netns.prefix_links(self.prefix, ctl)
                      if link != f"{self.prefix}br0"]
        inodes = {netns.ns_inode(netns.netns_path(n)) for n in names} - {None}
        found += [f"process {d}" for d in netns.world_processes(
            self.rundir, self.world_id, inodes).values()]
        return found

    def leftovers(self):
        return netns.leftovers(self.prefix, self.rundir, self.world_id,
                               self.ns_inodes)

    def _clear_rundir(self):
        """Empty a reused AZT_RUNDIR of an earlier run (never any other dir)."""
        if not os.listdir(self.rundir):
            return
        if not os.path.exists(self.hooks_conf_path):
            raise RuntimeError(f"run dir {self.rundir} is not empty and holds no "
                               "earlier run (etc/azt-hooks.json); not touching it")
        mounts = netns.mounts_under(self.rundir)
        if mounts:
            raise RuntimeError(f"run dir {self.rundir} still has mounts "
                               f"({', '.join(mounts)}): run cleanup.py first")
        for entry in os.listdir(self.rundir):
            path = self.path(entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    def _make_dirs(self):
        slurm = pwd.getpwnam(SLURM_USER)
        for d in ("etc", "munge", "ns", "emulator", "vms", "jobs", "bin", "mpi"):
            os.makedirs(self.path(d), exist_ok=True)
        for d in ("logs", "ctld", "ctld/state"):
            os.makedirs(self.path(d), exist_ok=True)
            os.chown(self.path(d), slurm.pw_uid, slurm.pw_gid)
        for d in ("", "etc", "munge", "logs", "vms", "bin", "mpi"):
            os.chmod(self.path(d), 0o755)
        os.chmod(self.path("jobs"), 0o1777)
        # The boot hook's default slurm.conf (WORLD.md passes no argument).
        self.write_wrapper("vm-boot", "the boot hook of this test world",
                           "AZT_SLURM_CONF", os.path.join(HOOKS, "vm-boot"))

    def write_wrapper(self, name, what, var, program):
        """bin/<name>: runs program with var set to this world's slurm.conf
        (and its arguments); returns its path."""
        wrapper = self.path("bin", name)
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\n# generated: {what}\n"
                    f"{var}='{self.slurm_conf_path}' exec '{program}' \"$@\"\n")
        os.chmod(wrapper, 0o755)
        return wrapper

    def _env(self, extra=None):
        env = {"PATH": self.slurm.path, "HOME": "/root", "LANG": "C.UTF-8",
               "SLURM_CONF": self.slurm_conf_path,
               "AZT_WORLD_ID": self.world_id}
        env.update(extra or {})
        return env

    def _spawn(self, name, cmd, stdout=None):
        """Start a daemon of the controller host, logging to logs/<name>.*"""
        with open(self.path("logs", f"{name}.stderr"), "ab") as err, \
                open(self.path("logs", f"{name}.stdout"), "ab") as out:
            proc = self.ctl.popen(cmd, stdout=stdout or out, stderr=err,
                                  env=self._env(), start_new_session=True)
        self.procs[name] = proc
        return proc

    def _start_munged(self):
        key = self.path("munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        proc = self._spawn("munged", [
            "/usr/sbin/munged", "--foreground", f"--socket={self.munge_socket}",
            f"--key-file={key}", f"--pid-file={self.path('munge', 'munged.pid')}",
            f"--seed-file={self.path('munge', 'munged.seed')}",
            f"--log-file={self.path('logs', 'munged.log')}",
            f"--origin={netns.CLUSTER_ADDR.split('/')[0]}"])

        def _up():
            _check_alive(proc, "munged", self.path("logs", "munged.stderr"))
            return self.ctl.run(["/usr/bin/munge", "-n", "-S", self.munge_socket],
                                check=False).returncode == 0
        wait_for(_up, 20, "munged to answer")

    def _start_slurmctld(self):
        slurm = pwd.getpwnam(SLURM_USER)
        log = self.path("logs", "slurmctld.log")
        if not os.path.exists(log):
            open(log, "a").close()
            os.chown(log, slurm.pw_uid, slurm.pw_gid)
        resolv = self.path("ctld", "resolv.conf")
        if not os.path.exists(resolv):
            self.set_controller_dns(None)
        # In a mount namespace of its own, where /etc/resolv.conf is the
        # controller host's (set_controller_dns), as a VM's slurmd has its own.
        proc = self._spawn("slurmctld", [
            "/usr/bin/unshare", "--mount", "--propagation", "private",
            "/bin/sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
            resolv, self.slurm.sbin_path("slurmctld"), "-D", "-i",
            "-f", self.slurm_conf_path])

        def _up():
            _check_alive(proc, "slurmctld", self.path("logs", "slurmctld.stderr"))
            res = self.run_ctl("scontrol", "ping", check=False, timeout=10)
            return "is UP" in res.stdout
        wait_for(_up, 30, "slurmctld to answer scontrol ping")

    def set_controller_dns(self, server, options=""):
        """The name server slurmctld asks (read again at its next lookup):
        None, none that answers (a lookup fails at once, as on the VMs);
        "vnet", the emulator's VNet name resolution, as Azure's DNS; or an
        address of the controller host, a site's own DNS server."""
        if server is None:
            server, options = "127.0.0.1", options or "timeout:1 attempts:1"
        elif server == "vnet":
            server = CTL_ADDR
        text = f"# test world: slurmctld's name server\nnameserver {server}\n"
        if options:
            text += f"options {options}\n"
        path = self.path("ctld", "resolv.conf")
        # In place: the file is bind-mounted by inode into slurmctld's view.
        with open(path, "a+") as f:
            f.seek(0)
            f.truncate()
            f.write(text)
        os.chmod(path, 0o644)

    def dns_queries(self):
        """The queries the emulator's VNet DNS answered, oldest first."""
        return self.emulator_admin("GET", "dns")

    def _start_emulator(self):
        hook = self.path("bin", "vm-boot")
        ready = threading.Event()
        out_log = open(self.path("logs", "emulator.stdout"), "ab")
        proc = self._spawn("emulator", [
            self.emulator_bin, "--listen", f"127.0.0.1:{ARM_PORT}",
            "--imds-listen", f"127.0.0.1:{IMDS_PORT}",
            "--state-dir", self.emulator_dir,
            "--netns-prefix", self.prefix,
            "--cluster-bridge", f"{self.prefix}br0",
            "--cluster-cidr", "10.123.0.0/16",
            # Azure's own name resolution of the VNet, on the controller's
            # bridge address; who uses it is each host's resolv.conf.
            "--dns-listen", f"{CTL_ADDR}:53",
            "--boot-hook", hook, "--shutdown-vms"], stdout=subprocess.PIPE)

        def _pump():
            for line in proc.stdout:
                out_log.write(line)
                out_log.flush()
                if line.strip() == b"ready":
                    ready.set()
        threading.Thread(target=_pump, name="emulator-stdout", daemon=True).start()

        def _ready():
            _check_alive(proc, "azure-emulator", self.path("logs", "emulator.stderr"))
            return ready.is_set()
        wait_for(_ready, 30, "the emulator's ready line")
        # slurmctld takes a node as booted only if its boot time (now minus
        # the uptime slurmd reports) is not before the second of the resume
        # request; otherwise the node waits for ResumeTimeout. A VM's uptime
        # starts at up to 1 s (the emulator's whole-second time namespace
        # offset) and sysinfo() rounds it up, so a VM must take more than 2 s
        # to boot. Real ones take minutes.
        self.emulator_admin("POST", "timing", {"create": VM_BOOT_SECONDS,
                                               "start": VM_BOOT_SECONDS})

    # -- configuration -------------------------------------------------------

    def slurm_params(self):
        """The slurm.conf parameters (before the overrides of a test module)."""
        plugindir = self.slurm.plugindir
        if self.plugindir:
            plugindir += ":" + os.path.abspath(self.plugindir)
        return {
            "ClusterName": f"{self.prefix}cluster",
            "SlurmctldHost": f"{self.prefix}ctl(10.123.0.1)",
            "SlurmUser": SLURM_USER,
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            # cred_expire: a requeued job is held for the credential's
            # lifetime (120 s by default) before it may start again; 20 s
            # still outlasts any launch here, and the requeue tests wait less.
            "AuthInfo": f"socket={self.munge_socket},cred_expire=20",
            "CredType": "cred/munge",
            "PluginDir": plugindir,
            "StateSaveLocation": self.path("ctld", "state"),
            "SlurmctldPidFile": self.path("ctld", "slurmctld.pid"),
            "SlurmctldLogFile": self.path("logs", "slurmctld.log"),
            "SlurmctldDebug": "debug",
            # %n: per node. vms/<node> is a symlink to the VM's AZ_VM_DIR,
            # made by the boot hook; the log stays when the VM goes away.
            "SlurmdSpoolDir": self.path("vms", "%n", "spool"),
            "SlurmdPidFile": self.path("vms", "%n", "slurmd.pid"),
            "SlurmdLogFile": self.path("logs", "slurmd-%n.log"),
            # Each VM has a /tmp of its own (PMIx puts per-step dirs there).
            "TmpFS": self.path("vms", "%n", "tmp"),
            "SlurmdDebug": "debug",
            "SlurmdParameters": "config_overrides",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "MpiDefault": "none",
            "JobCompType": "jobcomp/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "SwitchType": "switch/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_CPU",
            "SchedulerType": "sched/builtin",
            # No "defer" here: jobs are tried at submit time.
            "SchedulerParameters": "sched_interval=1",
            "ReturnToService": "2",
            "PrivateData": "cloud",
            "TreeWidth": "65533",
            "CommunicationParameters": "NoAddrCache",
            # No cloud_reg_addrs, as azrdma-config slurm-conf prints it:
            # before 23.11.2 it resets a powered-down node's address to
            # the name, which slurmctld then looks up (sl_compat.h).
            "SlurmctldParameters": "idle_on_node_suspend,"
                                   "power_save_interval=1,power_save_min_interval=0",
            "ResumeProgram": os.path.join(HOOKS, "test-resume"),
            "SuspendProgram": os.path.join(HOOKS, "test-suspend"),
            "ResumeFailProgram": os.path.join(HOOKS, "test-suspend"),
            "SuspendTime": str(SUSPEND_TIME),
            "SuspendTimeout": str(SUSPEND_TIMEOUT),
            "ResumeTimeout": str(RESUME_TIMEOUT),
            "ResumeRate": "0",
            "SuspendRate": "0",
            "BatchStartTimeout": "30",
            "MessageTimeout": "10",
            "SlurmdTimeout": "60",
            "InactiveLimit": "0",
            "KillWait": "2",
            "MinJobAge": "600",
            "Waittime": "0",
            "MailProg": "/bin/true",
        }

    def write_slurm_conf(self):
        params = self.slurm_params()
        for key, value in self.conf_overrides.items():
            params.pop(key, None)  # an override also moves to the end
            params[key] = value
        params = self.slurm.accepts(params)
        every = ",".join(d.hostlist for d in self.domains)
        partitions = [(d.name, d.hostlist,
                       {"Default": "YES" if i == 0 else "NO", "MaxTime": "30",
                        "State": "UP"})
                      for i, d in enumerate(self.domains)]
        partitions.append(("all", every, {"MaxTime": "30", "State": "UP"}))
        no_name = self.slurm.powered_down_addr(None)
        text = slurm_conf(params, self.domains, partitions, self.node_features,
                          powered_down_addr=no_name)
        tmp = self.slurm_conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.slurm_conf_path)

    def _write_hooks_conf(self):
        """Settings of the test power-save and boot hooks (see README.md)."""
        conf = {
            "world_id": self.world_id,
            "prefix": self.prefix,
            "rundir": self.rundir,
            "munge_dir": self.path("munge"),
            "slurm_sbin": self.slurm.sbin,
            "slurm_path": self.slurm.path,
            "logs": self.path("logs"),
            "vms": self.path("vms"),
            "arm": f"https://127.0.0.1:{ARM_PORT}",
            "imds": f"http://127.0.0.1:{IMDS_PORT}",
            "ca": os.path.join(self.emulator_dir, "ca.pem"),
            "subscription": "00000000-0000-0000-0000-000000000000",
            "resource_group": f"{self.prefix}-rg",
            "location": "eastus",
            "image": "almalinux:almalinux-hpc:8_7-hpc-gen2:latest",
            # Its name in azrdma.conf (lib/azrdma_world.py), which the VMs
            # the test power programs make record as cloud-init would.
            "image_name": "alma",
            # What a powered-down node's NodeAddr is (None: its name).
            "powered_down_addr": self.slurm.powered_down_addr(None),
            "domains": {d.name: {"nodes": d.nodes,
                                 "availability_set": d.availability_set,
                                 "vm_size": d.vm_size}
                        for d in self.domains},
        }
        with open(self.hooks_conf_path, "w") as f:
            json.dump(conf, f, indent=1)
        os.chmod(self.hooks_conf_path, 0o644)

    def hooks_conf(self):
        with open(self.hooks_conf_path) as f:
            return json.load(f)

    @contextlib.contextmanager
    def node_without_azrdma_conf(self, node):
        """For the block, the node boots without azrdma.conf (as under
        configless Slurm); powered down afterwards, so that its next boot
        has the file again."""
        self.wait_powered_down([node])
        self.set_hooks_conf("no_azrdma_conf", [node])
        try:
            yield node
        finally:
            self.set_hooks_conf("no_azrdma_conf", None)
            self.scontrol("update", f"nodename={node}", "state=power_down_force")
            self.wait_powered_down([node], timeout=120)

    def set_hooks_conf(self, key, value):
        """Change one setting of the hooks (read at each VM boot); None
        removes it."""
        conf = self.hooks_conf()
        if value is None:
            conf.pop(key, None)
        else:
            conf[key] = value
        tmp = self.hooks_conf_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(conf, f, indent=1)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.hooks_conf_path)

    @contextlib.contextmanager
    def slurm_conf_changed(self, overrides, restart=False, node_features=None):
        """Run a block with slurm.conf lines added or replaced, then restore.

        overrides: {key: value}, value None removes the key. restart=True
        restarts slurmctld (for parameters `scontrol reconfigure` cannot
        change), otherwise the cluster is reconfigured. node_features:
        {domain: [features]} of the NodeName lines for the block.
        """
        saved = dict(self.conf_overrides)
        saved_features = dict(self.node_features)
        self.conf_overrides.update(overrides)
        if node_features is not None:
            self.node_features = dict(node_features)
        apply = self.restart_slurmctld if restart else self.reconfigure
        self.write_slurm_conf()
        apply()
        try:
            yield self
        finally:
            self.conf_overrides = saved
            self.node_features = saved_features
            self.write_slurm_conf()
            apply()

    def set_slurm_conf(self, overrides, restart=False, node_features=None):
        """slurm_conf_changed() for good: the lines stay after this process
        (a world left up on purpose)."""
        self.conf_overrides.update(overrides)
        if node_features is not None:
            self.node_features = dict(node_features)
        self.write_slurm_conf()
        (self.restart_slurmctld if restart else self.reconfigure)()

    def reconfigure(self):
        self.run_ctl("scontrol", "reconfigure")

    def restart_slurmctld(self):
        proc = self.procs.pop("slurmctld")
        _terminate(proc, 30)
        self._start_slurmctld()

    # -- commands ----------------------------------------------------------

    def run_ctl(self, *cmd, check=True, timeout=60, env=None, input=None):
        """Run a client command (sbatch, srun, scontrol, ...) on the controller host."""
        return self.ctl.run(list(cmd), check=check, timeout=timeout,
                            env=self._env(env), input=input)

    def scontrol(self, *args):
        return self.run_ctl("scontrol", *args).stdout

    def hostnames(self, expr):
        """Expand a Slurm hostlist expression ("f1n[1-2]" -> ["f1n1", "f1n2"])."""
        return self.scontrol("show", "hostnames", expr).split()

    # -- nodes -------------------------------------------------------------

    def nodes(self):
        """{node name: scontrol fields} of every node."""
        out = self.scontrol("show", "node", "-o")
        recs = (parse_oneliner(line) for line in out.splitlines() if line.strip())
        return {r["NodeName"]: r for r in recs if "NodeName" in r}

    def node(self, name):
        out = self.scontrol("show", "node", "-o", name)
        return parse_oneliner(out.splitlines()[0])

    def node_flags(self, name):
        return node_flags(self.node(name)["State"])

    def wait_nodes(self, names, predicate, timeout, what):
        """Wait until predicate(flags) holds for every node in names."""
        def _all():
            nodes = self.nodes()
            return all(predicate(node_flags(nodes[n]["State"])) for n in names)
        return wait_for(_all, timeout, f"{','.join(names)}: {what}", interval=0.5)

    def wait_powered_down(self, names, timeout=None):
        timeout = timeout or SUSPEND_TIME + SUSPEND_TIMEOUT + 30
        return self.wait_nodes(
            names, lambda f: {"IDLE", "POWERED_DOWN"} <= f and "POWERING_DOWN" not in f,
            timeout, "powered down (idle~)")

    def resume_down_node(self, node):
        """What an admin does for a DOWN node: scontrol update state=resume.
        A powered-down node is then NOT_RESPONDING until slurmd registers,
        which it never does, and after slurmctld's next restart it is never
        scheduled again; so it is powered down again, as azrdma-sync does
        (a power down clears the mark)."""
        self.scontrol("update", f"nodename={node}", "state=resume")
        if {"POWERED_DOWN", "NOT_RESPONDING"} <= self.node_flags(node):
            self.scontrol("update", f"nodename={node}", "state=power_down_force")
            self.wait_nodes(
                [node], lambda f: "POWERED_DOWN" in f and not f & {
                    "NOT_RESPONDING", "POWER_DOWN", "POWERING_DOWN", "DOWN"},
                SUSPEND_TIMEOUT + 60, "powered down again, responding")

    def wait_up(self, names, timeout=RESUME_TIMEOUT):
        """Wait until the nodes are powered up and responding."""
        return self.wait_nodes(
            names, lambda f: not f & {"POWERED_DOWN", "POWERING_UP", "POWERING_DOWN",
                                      "NOT_RESPONDING", "DOWN"},
            timeout, "up and responding")

    # -- jobs --------------------------------------------------------------

    def submit(self, *args, wrap=None, env=None):
        """sbatch; output to jobs/<id>.out unless args say otherwise. Returns the id."""
        cmd = ["sbatch", "--parsable"]
        if not any(a.startswith(("-o", "--output")) for a in args):
            cmd.append(f"--output={self.path('jobs', '%j.out')}")
        cmd += list(args)
        if wrap is not None:
            cmd += ["--wrap", wrap]
        out = self.run_ctl(*cmd, env=env).stdout.strip()
        return int(out.split(";")[0])

    def job(self, job_id):
        out = self.scontrol("show", "job", "-o", str(job_id))
        return parse_oneliner(out.splitlines()[0])

    def wait_job(self, job_id, timeout=120, states=("COMPLETED",)):
        """Wait until the job has ended; assert it ended in one of `states`."""
        ended = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                 "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}

        def _done():
            job = self.job(job_id)
            return job if job["JobState"] in ended else None
        job = self._wait_or_cancel(job_id, _done, timeout, "to end")
        assert job["JobState"] in states, (
            f"job {job_id} ended {job['JobState']} ({job.get('Reason')}), "
            f"expected {states}; output:\n{self.job_output(job_id)}")
        return job

    def wait_job_running(self, job_id, timeout=90):
        return self._wait_or_cancel(
            job_id, lambda: self.job(job_id)["JobState"] == "RUNNING",
            timeout, "to run")

    def _wait_or_cancel(self, job_id, condition, timeout, what):
        """wait_for() on a job; if it times out, cancel the job so that it
        does not hold or take the nodes of the tests after this one, and
        say in the failure what the job printed."""
        try:
            return wait_for(condition, timeout, f"job {job_id} {what}",
                            interval=0.5)
        except WaitTimeout as exc:
            self.run_ctl("scancel", str(job_id), check=False)
            raise WaitTimeout(f"{exc}; cancelled it; its output:\n"
                              f"{self.job_output(job_id)}") from None

    def job_output(self, job_id):
        try:
            with open(self.path("jobs", f"{job_id}.out")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # -- emulator and VM hosts -----------------------------------------------

    def _ssl_context(self):
        if self._ssl is None:
            self._ssl = ssl.create_default_context(
                cafile=os.path.join(self.emulator_dir, "ca.pem"))
        return self._ssl

    def https(self, method, path, body=None, headers=None, timeout=30):
        """HTTPS request to the emulator (ca.pem verified); returns (status, headers, bytes)."""
        ctl = self.ctl

        class _Conn(http.client.HTTPSConnection):
            def connect(self):
                sock = ctl.connect(self.host, self.port, self.timeout)
                self.sock = self._context.wrap_socket(sock, server_hostname=self.host)

        conn = _Conn("127.0.0.1", ARM_PORT, context=self._ssl_context(),
                     timeout=timeout)
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def emulator_admin(self, method, path, body=None):
        """Call the admin API (`/_emulator/<path>`); returns the decoded JSON."""
        if not path.startswith("/"):
            path = "/" + path
        if not path.startswith("/_emulator/"):
            path = "/_emulator" + path
        status, _, data = self.https(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {data[:500]!r}")
        return json.loads(data) if data.strip() else None

    def vms(self):
        """{vm name: record} from the emulator's admin API."""
        return {vm["name"]: vm for vm in self.emulator_admin("GET", "vms")}

    def vm_power(self, vm):
        """The VM's power state without the "PowerState/" prefix; None if no VM."""
        rec = self.vms().get(vm)
        return rec and rec["powerState"].split("/")[-1].lower()

    def wait_vm_running(self, vm, timeout=30):
        """Wait for the VM's start to settle. The emulator boots the host (so slurmd may
        register) a moment before it records the VM running, as Azure's start operation
        completes after the guest is already booting."""
        return wait_for(lambda: self.vm_power(vm) == "running", timeout,
                        f"VM {vm} running")

    def vm_host_exists(self, vm):
        return os.path.exists(netns.netns_path(f"{self.prefix}-{vm}"))

    def vm_can_connect(self, vm, addr, port=6818, timeout=3):
        """Whether a TCP connection from inside VM host `vm` to addr:port succeeds."""
        probe = ("import socket, sys\n"
                 "socket.create_connection((sys.argv[1], int(sys.argv[2])), "
                 "float(sys.argv[3])).close()\n")
        res = self.vm_host(vm).run(["/usr/bin/python3", "-c", probe, addr, str(port),
                                    str(timeout)], check=False, timeout=timeout + 30,
                                   env=self._env())
        return res.returncode == 0

    def vm_host(self, vm):
        """The host of a running VM, to run commands in (see WORLD.md)."""
        rec = self.vms()[vm]
        ns = os.path.join(self.emulator_dir, "ns", vm)
        return netns.Host(vm, netns.netns_path(rec.get("netns") or f"{self.prefix}-{vm}"),
                          uts=os.path.join(ns, "uts"),
                          time_ns=os.path.join(ns, "time"))

    # -- logs --------------------------------------------------------------

    def log_files(self):
        """Every log of the world: logs/* and the emulator's own log."""
        logs = self.path("logs")
        try:
            names = sorted(os.listdir(logs))
        except FileNotFoundError:
            names = []
        return ([os.path.join(logs, n) for n in names]
                + [os.path.join(self.emulator_dir, "emulator.log")])

    def log_tails(self, lines=40):
        """[(title, text)]: the last lines of every log of the world.

        X.stderr is left out when there is an X.log (slurmctld -D copies its
        log to stderr).
        """
        tails = []
        for path in self.log_files():
            base, ext = os.path.splitext(path)
            if ext == ".stderr" and os.path.exists(base + ".log"):
                continue
            text = _tail(path, lines)
            if text.strip():
                tails.append((os.path.relpath(path, self.rundir), text))
        return tails


def _tail(path, lines):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 200 * lines))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _pid_in(path):
    """The pid a pid file holds, or None."""
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _check_alive(proc, what, stderr_path):
    if proc.poll() is not None:
        raise GiveUp(f"{what} exited with status {proc.returncode}:\n"
                           + _tail(stderr_path, 20))


def _terminate(proc, timeout):
    """SIGTERM the nsenter'd daemon's process group; SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(10)

