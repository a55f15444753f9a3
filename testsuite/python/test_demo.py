"""contribs/demo/run in a world of its own: every stage it prints really
happened (checked in Slurm, the emulator and the logs while its cluster is
still up), and --down leaves nothing behind.

The demo uses the build tree of AZRDMA_BUILDDIR (--no-deps --no-build: the
suite has installed and built) and the prefix <AZT_PREFIX>d, so that it runs
beside the suite's own world.
"""

import importlib.util
import json
import os
import re
import subprocess

import pytest

from lib import netns
from lib.azrdma_world import builddir, have_programs
from lib.fabric_checks import imb_rows
from lib.rdma_jobs import PROFILE_ENV, per_node_env
from lib.world import REPO, World

RUN = os.path.join(REPO, "contribs", "demo", "run")
PREFIX = os.environ.get("AZT_PREFIX", "azt")[:4] + "d"
NODES = ["hb1", "hb2", "hb3", "hb4"]
PLUGINS = ("job_submit_azrdma.so", "spank_azrdma.so", "node_features_azrdma.so")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the demo needs root"),
    pytest.mark.skipif(not have_programs(), reason="azrdma not built "
                       "(set AZRDMA_BUILDDIR)"),
    pytest.mark.skipif(not all(os.path.exists(os.path.join(builddir(), "plugins", p))
                               for p in PLUGINS),
                       reason="<AZRDMA_BUILDDIR>/plugins lacks the plugins"),
]


def _demo_module():
    spec = importlib.util.spec_from_file_location(
        "azrdma_demo", os.path.join(REPO, "contribs", "demo", "demo.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(*args, timeout):
    return subprocess.run([RUN, "--prefix", PREFIX, *args], text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout)


@pytest.fixture(scope="module")
def demo():
    """The demo run to its end, its cluster still up; torn down after."""
    res = _run("--no-deps", "--no-build", "--builddir", builddir(), timeout=900)
    mod = _demo_module()
    try:
        assert res.returncode == 0, res.stdout[-6000:]
        world = World.attach(mod.rundir_of(PREFIX))
        assert [d.name for d in world.domains] == ["hbfab", "a9fab"]
        with open(world.path("demo-summary.json")) as f:
            summary = json.load(f)
        yield {"out": res.stdout, "world": world, "summary": summary,
               "rundir": mod.rundir_of(PREFIX)}
    finally:
        if os.path.exists(mod.rundir_of(PREFIX)):
            _run("--down", timeout=180)


def test_every_stage_is_announced_and_the_summary_says_how_to_tear_down(demo):
    out = demo["out"]
    stages = re.findall(r"^==> \[(\d)/7\] ", out, re.M)
    assert stages == [str(i) for i in range(1, 8)], out[-3000:]
    assert "==> summary" in out
    assert f"./contribs/demo/run --down --prefix {PREFIX}" in out


def test_azrdma_conf_has_two_fabric_domains_and_passes_check(demo):
    world = demo["world"]
    text = open(world.path("etc", "azrdma.conf")).read()
    domains = re.findall(r"^Domain=(\S+) .*VmSize=(\S+)", text, re.M)
    assert domains == [("hbfab", "Standard_HB120rs_v3"),
                       ("a9fab", "Standard_A9")], text
    assert re.search(r"azrdma-config check \(exit 0\)", demo["out"])
    conf = world.scontrol("show", "config")
    assert re.search(r"^JobSubmitPlugins\s*=\s*azrdma", conf, re.M), conf
    assert re.search(r"^ResumeProgram\s*=\s*\S*/azrdma-resume$", conf, re.M)


def test_rdma_job_powered_up_four_vms_in_one_availability_set(demo):
    world, summary = demo["world"], demo["summary"]
    job = world.job(summary["job_id"])
    assert world.hostnames(job["NodeList"]) == NODES
    assert job["Features"] == "rdma&[hbfab|a9fab]", job
    assert job["JobState"] == "CANCELLED", job  # the demo ends it
    vms = world.vms()
    assert sorted(vms) == NODES, sorted(vms)  # nothing in the A9 domain
    for node in NODES:
        vm = vms[node]
        assert vm["availabilitySet"].lower() == f"{PREFIX}-hbfab"
        assert vm["vmSize"] == "Standard_HB120rs_v3"
        assert vm["tags"]["azrdma-job"] == str(summary["job_id"])
    # While they ran (the fabric is released on deallocation):
    fabrics = {summary["vms"][n]["fabric"] for n in NODES}
    assert len(fabrics) == 1 and None not in fabrics, summary["vms"]
    puts = [e["path"] for e in world.emulator_admin("GET", "log")
            if e["method"] == "PUT" and "/virtualMachines/" in e["path"]]
    assert sorted(p.rsplit("/", 1)[1] for p in puts) == NODES, puts


def test_job_no_domain_can_hold_was_refused_with_what_fits(demo):
    world, summary = demo["world"], demo["summary"]
    assert ("azrdma: 5 nodes fit in no RDMA domain" in demo["out"]
            and "ask for at most 4 nodes" in demo["out"]), demo["out"][:4000]
    jobs = re.findall(r"^JobId=(\d+) ", world.scontrol("show", "job", "-o"), re.M)
    assert jobs == [str(summary["job_id"])], jobs  # the refused one never existed


def test_every_node_got_the_mpi_profile(demo):
    world, summary = demo["world"], demo["summary"]
    hosts = per_node_env(world.job_output(summary["job_id"]))
    assert sorted(hosts) == NODES, world.job_output(summary["job_id"])
    for host, env in hosts.items():
        for name, value in PROFILE_ENV.items():
            assert env.get(name) == value, (host, name, env.get(name))
    assert "sbatch: azrdma: domains hbfab|a9fab" in demo["out"]


def test_pingpong_printed_a_full_table_and_judged_every_pair(demo):
    summary = demo["summary"]
    rows = imb_rows(summary["pingpong_pair"])
    assert [r[0] for r in rows] == [0] + [2 ** i for i in range(23)]
    assert "# Result: PASS (1 pair)" in summary["pingpong_pair"]
    pairs = re.findall(r"^# pair: (\S+) <-> (\S+)", summary["pingpong_all"], re.M)
    assert sorted(tuple(sorted(p)) for p in pairs) == sorted(
        (a, b) for i, a in enumerate(NODES) for b in NODES[i + 1:])
    assert "# Result: PASS (6 pairs)" in summary["pingpong_all"]
    shown = "\n".join(line[8:] if line.startswith(" " * 8) else line
                      for line in demo["out"].splitlines())
    assert summary["pingpong_pair"].rstrip("\n") in shown


def test_health_check_drained_the_faulty_node_and_resumed_it(demo):
    world, summary = demo["world"], demo["summary"]
    node = summary["drained_node"]
    rdma_ip = world.vms()[node]["rdmaIp"]
    assert summary["drain_reason"].startswith(
        f"azrdma: rdma_interface: ib0 ({rdma_ip}) is down"), summary
    with open(world.path("logs", f"healthcheck-{node}.log")) as f:
        runs = re.findall(r"^=== \S+ rc=(\d+) .*?\n(.*?)(?=^=== |\Z)", f.read(),
                          re.M | re.S)
    failed = [i for i, (rc, out) in enumerate(runs)
              if rc == "1" and "FAIL rdma_interface" in out]
    assert failed, runs
    assert any(rc == "0" for rc, _ in runs[failed[0] + 1:]), runs
    assert "DRAIN" not in world.node(node)["State"]


def test_idle_vms_were_deallocated(demo):
    world = demo["world"]
    vms = world.vms()
    for node in NODES:
        assert vms[node]["powerState"].split("/")[-1] == "deallocated", vms[node]
        assert not world.vm_host_exists(node)
        assert "POWERED_DOWN" in world.node_flags(node)
    deallocs = [e["path"] for e in world.emulator_admin("GET", "log")
                if e["method"] == "POST" and e["path"].endswith("/deallocate")]
    assert sorted(p.split("/")[-2] for p in deallocs) == NODES, deallocs


def test_down_removes_every_namespace_process_bridge_and_file(demo):
    world = demo["world"]
    res = _run("--down", timeout=180)
    assert res.returncode == 0, res.stdout
    assert netns.prefix_netns(PREFIX) == []
    assert netns.prefix_links(PREFIX) == []
    assert netns.world_processes(demo["rundir"], world.world_id) == {}
    assert netns.mounts_under(demo["rundir"]) == []
    assert not os.path.exists(demo["rundir"])
    again = _run("--down", timeout=60)
    assert again.returncode == 0 and "no demo" in again.stdout, again.stdout
