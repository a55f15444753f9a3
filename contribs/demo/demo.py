#!/usr/bin/python3 -B
"""The azrdma demo's driver; contribs/demo/run installs, builds and calls it.

It brings up the test suite's world (testsuite/python/lib: controller
namespace, munged, slurmctld, the Azure emulator whose VMs boot as namespace
hosts running slurmd) with two fabric domains of its own, configures
azrdma's plugins and power-save programs, and walks through one RDMA job.
The world stays up afterwards; --down tears it down. What the demo saw is
written to <run dir>/demo-summary.json, which testsuite/python/test_demo.py
checks against Slurm and the emulator.
"""

import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "testsuite", "python"))

from lib import netns  # noqa: E402
from lib.azrdma_world import azrdma_power_save_on  # noqa: E402
from lib.fabric_checks import (health_checks, pingpong, sysfs_tree,  # noqa: E402
                               write_fabric_conf)
from lib.rdma_jobs import ENV_STEP, PROFILE_ENV, per_node_env  # noqa: E402
from lib.slurm import node_flags  # noqa: E402
from lib.wait import wait_for  # noqa: E402
from lib.world import SUSPEND_TIME, World  # noqa: E402

# The demo cluster: two fabric domains, one availability set each. The first
# is the default partition, so `sbatch -N 4 -C rdma` lands there.
DOMAINS = (("hbfab", [f"hb{i}" for i in range(1, 5)], "Standard_HB120rs_v3"),
           ("a9fab", [f"a9n{i}" for i in range(1, 5)], "Standard_A9"))
JOB_NODES = 4
# Thresholds of the emulated fabric (TCP over veth on a busy machine), as
# test_pingpong.py uses them; the catalog's figures are for real InfiniBand.
LATENCY_US = 20000
BANDWIDTH_MBS = 5
# The profile spank/azrdma gives the nodes of an InfiniBand size.
MPI_PROFILE = "openmpi-ucx"
PLUGINS = ("job_submit_azrdma.so", "spank_azrdma.so", "node_features_azrdma.so")


def rundir_of(prefix):
    return f"/var/tmp/azrdma-demo-{prefix}"


# -- output ------------------------------------------------------------------

class Progress:
    """Numbered stages and time-stamped lines, flushed as they happen."""

    def __init__(self, stages):
        self.stages = stages
        self.number = 0
        self.start = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.start

    def stage(self, title):
        self.number += 1
        print(f"\n==> [{self.number}/{self.stages}] {title}", flush=True)

    def say(self, text=""):
        for line in str(text).splitlines() or [""]:
            print(f"[{self.elapsed():5.0f}s] {line}", flush=True)

    def block(self, text):
        """Program output, indented, as it came."""
        for line in text.rstrip("\n").splitlines():
            print(f"        {line}", flush=True)


# -- the world ---------------------------------------------------------------

def mpi_profile_line():
    """The built-in profile of InfiniBand sizes, replaced for the emulator.

    The emulated RDMA network is TCP over veth, so Open MPI's ob1/tcp on
    172.16/16 stands in for UCX on InfiniBand (the test world's profile). A
    profile line with a built-in name replaces it (azrdma.conf(5))."""
    sets = " ".join(f"Set={k}={v}" for k, v in PROFILE_ENV.items())
    return ("# The emulated RDMA network is TCP over veth: Open MPI over TCP "
            "stands in for UCX.\n"
            f"MpiProfile={MPI_PROFILE} Rdma=ib {sets}\n")


def new_world(prefix, builddir):
    return World(prefix=prefix, rundir=rundir_of(prefix),
                 plugindir=os.path.join(builddir, "plugins"), domains=DOMAINS)


def down(prefix):
    """Stop the demo's daemons in order, then sweep and check as the suite does."""
    rundir = rundir_of(prefix)
    if not os.path.exists(os.path.join(rundir, "etc", "azt-hooks.json")):
        left = netns.prefix_netns(prefix) + netns.prefix_links(prefix)
        if left:
            print(f"no demo state in {rundir}, but {', '.join(left)} exist: "
                  f"testsuite/python/cleanup.py {prefix} removes them")
            return 1
        print(f"no demo with prefix {prefix} is up")
        return 0
    world = World.attach(rundir)
    print(f"==> tearing down the demo {prefix} ({rundir})")
    left = world.stop()
    for line in world.swept:
        print(f"swept: {line}")
    if left:
        print("LEFT BEHIND:\n  " + "\n  ".join(left))
        return 1
    shutil.rmtree(rundir)
    print(f"removed every namespace, daemon, bridge and interface of {prefix}, "
          f"and {rundir}")
    return 0


# -- the walk-through ----------------------------------------------------------

def _ctl_cmd(world, *cmd):
    return world.run_ctl(*cmd, check=False).stdout


def _sinfo(world):
    return _ctl_cmd(world, "sinfo", "-o", "%10P %6D %10T %-12N %f")


def bring_up(world, p):
    p.stage("the cluster: munged, slurmctld and the local Azure emulator in "
            "network namespaces")
    world.start()
    p.say(f"controller host netns {world.prefix}ctl (bridge {world.prefix}br0, "
          "10.123.0.1/16); run dir " + world.rundir)
    p.say(f"munged, slurmctld and azure-emulator are up; VMs boot as namespace "
          f"hosts {world.prefix}-<vm> running slurmd")


def configure(world, builddir, p):
    p.stage("azrdma: two fabric domains, plugins and power-save programs")
    missing = [so for so in PLUGINS
               if not os.path.exists(os.path.join(world.plugindir, so))]
    if missing:
        raise RuntimeError(f"{world.plugindir} lacks {', '.join(missing)}")
    plugstack = world.path("etc", "plugstack.conf")
    with open(plugstack, "w") as f:
        f.write(f"required {os.path.join(world.plugindir, 'spank_azrdma.so')}\n")
    os.chmod(plugstack, 0o644)
    os.environ["AZRDMA_BUILDDIR"] = builddir  # lib.azrdma_world finds the programs
    # For good, not for a block: the demo's cluster stays configured.
    setup = azrdma_power_save_on(
        world, mpi_profile_line(),
        {"JobSubmitPlugins": "azrdma", "NodeFeaturesPlugins": "azrdma",
         "PlugStackConfig": plugstack})
    p.say(f"{setup.conf_path}:")
    p.block("\n".join(line for line in open(setup.conf_path).read().splitlines()
                      if line.startswith(("Domain=", "Image=", "MpiProfile="))))
    config = os.path.join(builddir, "src", "tools", "azrdma-config")
    res = world.run_ctl(config, "show", check=False)
    p.say("azrdma-config show:")
    p.block(res.stdout + res.stderr)
    res = world.run_ctl(config, "check", check=False)
    p.say(f"azrdma-config check (exit {res.returncode}):")
    p.block(res.stdout + res.stderr)
    p.say("slurm.conf: JobSubmitPlugins=azrdma, NodeFeaturesPlugins=azrdma, "
          "spank_azrdma.so in plugstack.conf, ResumeProgram=azrdma-resume, "
          f"SuspendProgram=azrdma-suspend, SuspendTime={SUSPEND_TIME}, "
          "PrologSlurmctld=azrdma-prolog-slurmctld (a job starts as its last "
          "node registers)")
    p.say("sinfo: every node is a powered-down CLOUD node (idle~):")
    p.block(_sinfo(world))
    return setup


def _watch_power_up(world, job_id, p):
    """Print each change of the job's nodes and VMs until the job runs."""
    seen = {}
    nodes = []

    def _changed():
        nonlocal nodes
        job = world.job(job_id)
        if not nodes and job.get("NodeList") not in (None, "", "(null)"):
            nodes = world.hostnames(job["NodeList"])
            p.say(f"job {job_id} got nodes {job['NodeList']} "
                  f"(features {job.get('Features')}); slurmctld runs azrdma-resume")
        vms = world.vms() if nodes else {}
        all_nodes = world.nodes() if nodes else {}
        for node in nodes:
            vm = vms.get(node)
            vm_state = (f"{vm['provisioningState']}, "
                        f"{vm['powerState'].split('/')[-1]}") if vm else "no VM yet"
            state = all_nodes[node]["State"]
            if seen.get(node) != (state, vm_state):
                seen[node] = (state, vm_state)
                p.say(f"  {node:6} Slurm {state:34} Azure VM {vm_state}")
        return job["JobState"] == "RUNNING" and job
    return wait_for(_changed, 240, f"job {job_id} to run", interval=1)


def rdma_job(world, p):
    p.stage(f"sbatch -N {JOB_NODES} -C rdma: four VMs power up in one "
            "availability set")
    too_big = JOB_NODES + 1
    res = world.run_ctl("sbatch", "-N", str(too_big), "-C", "rdma", "--wrap", "true",
                        check=False)
    p.say(f"$ sbatch -N {too_big} -C rdma ...   (no domain holds {too_big} nodes)")
    p.block(res.stdout + res.stderr)
    if res.returncode == 0:
        raise RuntimeError(f"job_submit/azrdma accepted a {too_big}-node RDMA job")
    script = f"{ENV_STEP}; sleep 1800"
    res = world.run_ctl("sbatch", "--parsable", "-N", str(JOB_NODES), "-C", "rdma",
                        f"--output={world.path('jobs', '%j.out')}",
                        "--wrap", script)
    job_id = int(res.stdout.strip().split(";")[0])
    p.say(f"$ sbatch -N {JOB_NODES} -C rdma --wrap '<env per node>; sleep 1800'")
    p.block(res.stdout + res.stderr)
    job = _watch_power_up(world, job_id, p)
    nodes = world.hostnames(job["NodeList"])
    p.say(f"job {job_id} is RUNNING on {job['NodeList']} (azrdma-prolog-slurmctld "
          "let slurmctld start it as its last node registered, not at its 30 s "
          "periodic check)")
    world.wait_up(nodes)
    vms = world.vms()
    p.say("the VMs in the emulator:")
    p.block(f"{'vm':6} {'size':20} {'availability set':16} {'power':12} "
            f"{'cluster IP':12} {'RDMA IP':14} fabric")
    for node in nodes:
        vm = vms[node]
        p.block(f"{node:6} {vm['vmSize']:20} {vm['availabilitySet']:16} "
                f"{vm['powerState'].split('/')[-1]:12} {vm['privateIp']:12} "
                f"{vm['rdmaIp'] + ' (' + vm['rdmaIf'] + ')':14} {vm['fabric']}")
    return job_id, nodes, {n: vms[n] for n in nodes}


def mpi_environment(world, job_id, nodes, p):
    p.stage("the MPI environment azrdma injected (job_submit/azrdma and "
            "spank/azrdma)")
    def _every_node():
        hosts = per_node_env(world.job_output(job_id))
        return hosts if sorted(hosts) == sorted(nodes) else None
    hosts = wait_for(_every_node, 60,
                     f"job {job_id} to print the environment of every node")
    for host in sorted(hosts):
        env = hosts[host]
        shown = " ".join(f"{k}={env.get(k, '(unset)')}" for k in PROFILE_ENV)
        p.say(f"  {host}: {shown}")
    return {h: {k: hosts[h].get(k) for k in PROFILE_ENV} for h in hosts}


def fabric_pingpong(world, job_id, nodes, conf, p):
    p.stage(f"azrdma-pingpong between the {len(nodes)} nodes (IMB PingPong "
            "methodology)")
    p.say("the first pair's full table, over the emulated RDMA network:")
    res = pingpong(world, job_id, nodes[:2], conf=conf)
    p.block(res.stdout)
    if res.returncode != 0:
        raise RuntimeError(f"azrdma-pingpong failed (exit {res.returncode}): "
                           f"{res.stderr}")
    p.say("every pair of the four, in rounds (--mode all --quick):")
    quick = pingpong(world, job_id, nodes, "--mode", "all", "--quick", conf=conf)
    p.block(quick.stdout)
    if quick.returncode != 0:
        raise RuntimeError(f"azrdma-pingpong --mode all failed (exit "
                           f"{quick.returncode}): {quick.stderr}")
    return res.stdout, quick.stdout


def health_check(world, nodes, conf, p):
    p.stage("azrdma-healthcheck: an RDMA link fault drains the node, repair "
            "resumes it")
    node = nodes[0]
    with health_checks(world, conf, sysfs_tree("ib-healthy")) as hc:
        p.say("HealthCheckProgram=azrdma-healthcheck every "
              f"{hc.interval} s (with a captured HBv3 device tree: the machine "
              "has no InfiniBand)")
        rc, _, _, out = hc.wait_runs(node, 1)
        p.say(f"{node}: a run passed (exit {rc}):")
        p.block(out)
        rdma_ip = world.vms()[node]["rdmaIp"]
        p.say(f"emulator fault: the RDMA interface of {node} goes down")
        world.emulator_admin("POST", f"vms/{node}/rdma", {"up": False})

        def _drained():
            rec = world.node(node)
            return rec if "DRAIN" in node_flags(rec["State"]) and \
                rec.get("Reason", "").startswith("azrdma: ") else None
        rec = wait_for(_drained, hc.interval * 6 + 30, f"{node} drained")
        p.say(f"{node} drained: State={rec['State']} Reason={rec['Reason']}")
        p.say("$ sinfo -R")
        p.block(_ctl_cmd(world, "sinfo", "-R"))
        drained_reason = rec["Reason"]
        p.say(f"emulator: the RDMA interface of {node} ({rdma_ip}) is back")
        world.emulator_admin("POST", f"vms/{node}/rdma", {"up": True})
        def _resumed():
            rec = world.node(node)
            flags = node_flags(rec["State"])
            return rec if not flags & {"DRAIN", "NOT_RESPONDING"} else None
        rec = wait_for(_resumed, hc.interval * 6 + 90, f"{node} resumed")
        p.say(f"{node} is back in service: State={rec['State']}")
    return node, drained_reason


def idle_deallocate(world, job_id, nodes, p):
    p.stage(f"the job ends; after SuspendTime={SUSPEND_TIME} s the VMs are "
            "deallocated")
    world.run_ctl("scancel", str(job_id))
    p.say(f"$ scancel {job_id}")
    seen = {}

    def _all_down():
        vms = world.vms()
        states = world.nodes()
        for node in nodes:
            now = (states[node]["State"],
                   vms[node]["powerState"].split("/")[-1])
            if seen.get(node) != now:
                seen[node] = now
                p.say(f"  {node:6} Slurm {now[0]:34} Azure VM {now[1]}")
        return all({"IDLE", "POWERED_DOWN"} <= node_flags(states[n]["State"])
                   and "POWERING_DOWN" not in node_flags(states[n]["State"])
                   and vms[n]["powerState"].endswith("deallocated")
                   and not world.vm_host_exists(n) for n in nodes)
    wait_for(_all_down, SUSPEND_TIME + 120, "the job's VMs to be deallocated",
             interval=1)
    p.say("every VM is deallocated (disk kept, so the next job only starts "
          "them) and its namespace host is gone")


def walk_through(prefix, builddir):
    p = Progress(stages=7)
    world = new_world(prefix, builddir)
    summary = {"prefix": prefix, "rundir": world.rundir}
    try:
        bring_up(world, p)
        setup = configure(world, builddir, p)
        summary["azrdma_conf"] = setup.conf_path
        job_id, nodes, vms = rdma_job(world, p)
        summary.update(job_id=job_id, nodes=nodes, vms=vms,
                       availability_sets=sorted({v["availabilitySet"]
                                                 for v in vms.values()}),
                       seconds_to_running=round(p.elapsed()))
        summary["mpi_env"] = mpi_environment(world, job_id, nodes, p)
        conf = write_fabric_conf(world, "demo-fabric", LATENCY_US, BANDWIDTH_MBS)
        pair, every = fabric_pingpong(world, job_id, nodes, conf, p)
        summary.update(pingpong_pair=pair, pingpong_all=every)
        node, reason = health_check(world, nodes, conf, p)
        summary.update(drained_node=node, drain_reason=reason)
        idle_deallocate(world, job_id, nodes, p)
    except BaseException:
        print("\nthe demo FAILED; the last lines of each log:", flush=True)
        for title, text in world.log_tails(15):
            print(f"--- {title}\n{text}")
        print(f"\ntearing down (logs stay in {world.rundir}/logs)")
        world.stop()
        raise
    summary["seconds"] = round(p.elapsed())
    path = world.path("demo-summary.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)
    _print_summary(world, summary, setup)
    # The daemons run on in their own sessions.
    return 0


def _print_summary(world, s, setup):
    ctl = (f"nsenter --net=/run/netns/{world.prefix}ctl "
           f"--uts={world.path('ns', 'ctl.uts')} "
           f"env SLURM_CONF={world.slurm_conf_path}")
    print(f"""
==> summary ({s['seconds']} s)
  - slurmctld, munged and the Azure emulator ran in netns {world.prefix}ctl;
    azrdma.conf ({setup.conf_path}) has two fabric domains:
    hbfab (Standard_HB120rs_v3, availability set {world.prefix}-hbfab) and
    a9fab (Standard_A9, availability set {world.prefix}-a9fab).
  - sbatch -N {JOB_NODES} -C rdma became job {s['job_id']}: azrdma-resume
    created {', '.join(s['nodes'])} in one availability set
    ({', '.join(s['availability_sets'])}); it ran after {s['seconds_to_running']} s.
  - Every task got the {MPI_PROFILE} MPI profile from azrdma (redefined for
    the emulated fabric: Open MPI over TCP on 172.16/16).
  - azrdma-pingpong measured every pair and passed the thresholds of this
    emulated fabric (TCP over veth).
  - azrdma-healthcheck drained {s['drained_node']} ("{s['drain_reason']}")
    when its RDMA link went down, and resumed it after repair.
  - After the job, azrdma-suspend deallocated the four VMs.

The cluster is still up. Look around:
  sudo {ctl} sinfo
  sudo {ctl} sbatch -N 2 -C rdma -o {world.path('jobs', '%j.out')} --wrap 'srun hostname'
  logs: {world.rundir}/logs   (azrdma.log: the power-save programs)
Tear it down (every namespace, daemon, bridge and file of the demo):
  sudo ./contribs/demo/run --down{'' if world.prefix == 'demo' else ' --prefix ' + world.prefix}
""", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefix", default="demo")
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--down", action="store_true")
    args = ap.parse_args()
    if args.down:
        return down(args.prefix)
    if os.path.exists(os.path.join(rundir_of(args.prefix), "etc",
                                   "azt-hooks.json")):
        print(f"==> an earlier demo with prefix {args.prefix} is up: taking it "
              "down first")
        if down(args.prefix) != 0:
            return 1
    os.makedirs(rundir_of(args.prefix), exist_ok=True)
    try:
        return walk_through(args.prefix, os.path.abspath(args.builddir))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - reported, then the exit status
        print(f"\ncontribs/demo/run: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
