"""azrdma-healthcheck as HealthCheckProgram: a broken RDMA interface drains
the node with the check's reason, repair resumes it, an administrator's
drain is never touched; and the program itself stays within its budget."""

import fcntl
import os
import shutil
import subprocess
import time

import pytest

from lib.fabric_checks import (health_checks, hold_nodes, sysfs_tree, tool,
                               write_fabric_conf)
from lib.wait import wait_for

NODES = ["f1n5", "f1n6"]
DOMAIN_CONF = """\
SubscriptionId=00000000-0000-0000-0000-000000000000
ResourceGroup=rg
Location=eastus
SubnetId=/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s
SshPublicKeyFile=/nonexistent.pub
Image=alma Urn=almalinux:almalinux-hpc:8_7-hpc-gen2:latest Default=yes
Domain=hb Nodes=hb[1-4] VmSize=Standard_HB120rs_v3
Domain=nd Nodes=a9-[1-2] VmSize=Standard_A9
"""


@pytest.fixture
def healthcheck(tmp_path):
    """Run the built azrdma-healthcheck against a local azrdma.conf."""
    exe = tool("azrdma-healthcheck")
    if not exe:
        pytest.skip("azrdma-healthcheck is not built")
    conf = tmp_path / "azrdma.conf"
    conf.write_text(DOMAIN_CONF)

    def run(*args, root=None, env=None):
        cmd = [exe, "-f", str(conf), "--lock-file", str(tmp_path / "lock"),
               "--no-drain"]
        if root:
            cmd += ["--root", str(root)]
        return subprocess.run(cmd + list(args), text=True, timeout=60,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={"PATH": "/usr/bin:/bin", **(env or {})})
    return run


def _hung_port_tree(tmp_path):
    """ib-healthy with a port state that blocks its reader, like a wedged
    driver."""
    root = tmp_path / "root"
    shutil.copytree(sysfs_tree("ib-healthy"), root)
    state = root / "sys/class/infiniband/mlx5_ib0/ports/1/state"
    state.unlink()
    os.mkfifo(state)
    return root


# kill() that does nothing: the watchdog's SIGKILL never arrives, as it
# never takes effect on a process in uninterruptible sleep (D state), which
# a test cannot put a process in without a broken device.
NO_KILL_C = """
#include <sys/types.h>
int kill(pid_t pid, int sig) { (void)pid; (void)sig; return 0; }
"""


def test_list_names_the_checks_of_the_nodes_size(healthcheck):
    res = healthcheck("--list", "-n", "hb2")
    names = [line.split()[0] for line in res.stdout.splitlines()
             if not line.startswith("#")]
    assert names == ["ib_device", "ib_port", "ib_pkey", "rdma_interface",
                     "memlock", "loopback"], res.stdout
    res = healthcheck("--list", "-n", "a9-1")
    names = [line.split()[0] for line in res.stdout.splitlines()
             if not line.startswith("#")]
    assert names == ["nd_device", "nd_driver", "rdma_interface", "dat_conf",
                     "memlock"], res.stdout


def test_node_outside_every_domain_has_nothing_to_check(healthcheck):
    res = healthcheck("-n", "login1")
    assert res.returncode == 0 and "nothing to check" in res.stdout


def test_each_check_reports_one_line(healthcheck):
    res = healthcheck("-n", "hb1", root=sysfs_tree("ib-port-down"))
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert "PASS ib_device" in lines, res.stdout
    assert ("FAIL ib_port: no port is ACTIVE (LinkUp): mlx5_ib0 port 1 is "
            "DOWN (Polling)") in lines, res.stdout
    assert any(line.startswith("SKIP loopback: ") for line in lines)


def test_hung_check_is_killed_by_the_watchdog(healthcheck, tmp_path):
    root = _hung_port_tree(tmp_path)
    res = healthcheck("-n", "hb1", "--timeout", "1", root=root)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAIL ib_port: did not finish in 1 s" in res.stdout
    # Killed and reaped: the lock is free for the next run.
    res = healthcheck("-n", "hb1", root=sysfs_tree("ib-healthy"))
    assert "another run holds" not in res.stdout, res.stdout


def test_a_check_that_survives_its_kill_fails_this_run_and_every_later_one(
        healthcheck, tmp_path):
    """Issue 17 item 1: a child that outlives SIGKILL used to keep the
    parent in waitpid until its 50 s alarm (exit 3, nothing reported) and
    kept the lock, so every later run skipped with exit 0."""
    shim = tmp_path / "nokill.so"
    src = tmp_path / "nokill.c"
    src.write_text(NO_KILL_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shim), str(src)],
                   check=True)
    root = _hung_port_tree(tmp_path)
    child = None
    try:
        res = healthcheck("-n", "hb1", "--timeout", "1", root=root,
                          env={"LD_PRELOAD": str(shim)})
        assert res.returncode == 1, res.stdout + res.stderr
        assert "FAIL ib_port: did not finish in 1 s" in res.stdout, res.stdout
        assert "did not die on SIGKILL" in res.stdout, res.stdout
        record = (tmp_path / "lock").read_text()
        assert " stuck=ib_port child=" in record, record
        child = int(record.split("child=")[1])
        os.kill(child, 0)  # still there, holding the lock
        # Later runs (no shim: they could kill) fail loudly, not skip.
        for _ in range(2):
            res = healthcheck("-n", "hb1", root=sysfs_tree("ib-healthy"))
            assert res.returncode == 1, res.stdout + res.stderr
            assert "skipping" not in res.stdout, res.stdout
            assert (f"FAIL ib_port: did not finish in 10 s and could not be "
                    f"killed (pid {child}") in res.stdout, res.stdout
    finally:
        if child:
            os.kill(child, 9)
            wait_for(lambda: not os.path.exists(f"/proc/{child}")
                     or open(f"/proc/{child}/stat").read().split()[2] == "Z",
                     10, "the stuck child to die")
    # It ended: the lock is free and the checks run again.
    res = wait_for(lambda: (lambda r: r if "PASS ib_port" in r.stdout else None)(
        healthcheck("-n", "hb1", root=sysfs_tree("ib-healthy"))), 10,
        "a run of the checks")
    assert "did not finish" not in res.stdout, res.stdout


def test_a_lock_held_longer_than_any_run_lasts_fails_the_run(healthcheck, tmp_path):
    with open(tmp_path / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid=1 started=%d\n" % (time.time() - 120))
        held.flush()
        res = healthcheck("-n", "hb1", root=sysfs_tree("ib-healthy"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAIL checks: a run started 1" in res.stdout, res.stdout


def test_overlapping_run_is_skipped(healthcheck, tmp_path):
    with open(tmp_path / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = healthcheck("-n", "hb1", root=sysfs_tree("ib-healthy"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "another run holds" in res.stdout


def test_a_lock_another_user_could_hold_is_refused(healthcheck, tmp_path):
    """Someone who owns the lock file could hold it and stop every run."""
    lock = tmp_path / "lock"
    lock.write_text("")
    os.chown(lock, 65534, 65534)  # nobody's, as if made in /run/lock
    res = healthcheck("-n", "hb1", root=sysfs_tree("ib-healthy"))
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"lock {lock} is not a regular file of uid {os.geteuid()}" \
        in res.stderr
    lock.unlink()
    lock.symlink_to(tmp_path / "elsewhere")
    res = healthcheck("-n", "hb1", root=sysfs_tree("ib-healthy"))
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"lock {lock}: is a symbolic link; remove it" in res.stderr
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("value", ["nan", "", "0", "46"])
def test_a_timeout_outside_0_to_45_s_is_refused(healthcheck, value):
    res = healthcheck("-n", "hb1", "--timeout", value)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"--timeout {value}: expected 0 < S <= 45" in res.stderr


# ---- in the test world ------------------------------------------------------


@pytest.fixture(scope="module")
def hc(cloud):
    """azrdma-healthcheck every 5 s on every node, with the healthy HBv3
    device tree (the world has no InfiniBand device) and the VMs' real
    RDMA interfaces; NODES held up by a job."""
    if not tool("azrdma-healthcheck"):
        pytest.skip("azrdma-healthcheck is not built")
    conf = write_fabric_conf(cloud, "healthcheck")
    with health_checks(cloud, conf, sysfs_tree("ib-healthy")) as checks:
        job_id = hold_nodes(cloud, NODES, partition="fab1")
        try:
            yield checks
        finally:
            for node in NODES:
                cloud.emulator_admin("POST", f"vms/{node}/rdma", {"up": True})
                # A failed test must not leave its drain to later modules.
                if cloud.node(node).get("Reason", "").startswith("azrdma: "):
                    cloud.scontrol("update", f"nodename={node}",
                                   "state=resume")
            cloud.run_ctl("scancel", str(job_id))


def _drained(cloud, node):
    return "DRAIN" in cloud.node_flags(node)


def test_healthy_nodes_pass_and_stay_in_service(cloud, hc):
    for node in NODES:
        rc, _, _, out = hc.wait_runs(node, 1)
        assert rc == 0, out
        assert "PASS rdma_interface" in out and "PASS ib_port" in out, out
        assert not _drained(cloud, node)


def test_rdma_interface_down_drains_and_repair_resumes(cloud, hc):
    node = NODES[0]
    rdma_ip = cloud.vms()[node]["rdmaIp"]
    before = len(hc.runs(node))
    cloud.emulator_admin("POST", f"vms/{node}/rdma", {"up": False})
    reason = f"azrdma: rdma_interface: ib0 ({rdma_ip}) is down"
    wait_for(lambda: _drained(cloud, node)
             and cloud.node(node).get("Reason", "").startswith(reason),
             hc.interval * 6 + 30, f"{node} drained with '{reason}'")
    cloud.emulator_admin("POST", f"vms/{node}/rdma", {"up": True})
    wait_for(lambda: not _drained(cloud, node), hc.interval * 6 + 30,
             f"{node} resumed after repair")
    # The run that resumed it writes its record after slurmctld has the
    # resume: wait for the record, which must name the resume.
    wait_for(lambda: any(f"resumed {node}" in run[3]
                         for run in hc.runs(node)[before:]),
             hc.interval * 2 + 30, f"the run that resumed {node} recorded")


def test_admin_drain_is_left_alone(cloud, hc):
    node = NODES[1]
    cloud.scontrol("update", f"nodename={node}", "state=drain",
                   "reason=admin maintenance")
    try:
        cloud.emulator_admin("POST", f"vms/{node}/rdma", {"up": False})
        rc, _, _, out = hc.wait_runs(node, 2)
        assert rc == 1 and f"left {node} alone" in out, out
        assert cloud.node(node)["Reason"].startswith("admin maintenance")
        cloud.emulator_admin("POST", f"vms/{node}/rdma", {"up": True})
        rc, _, _, out = hc.wait_runs(node, 2)
        assert rc == 0, out
        assert _drained(cloud, node)
        assert cloud.node(node)["Reason"].startswith("admin maintenance")
    finally:
        cloud.scontrol("update", f"nodename={node}", "state=resume")


def test_no_run_comes_near_slurms_60_s_limit(cloud, hc):
    for node in NODES:
        runs = hc.runs(node)
        assert runs
        assert all(rc in (0, 1) for rc, _, _, _ in runs), runs
        with open(cloud.path("logs", f"slurmd-{node}.log"),
                  errors="replace") as f:
            assert "health_check poll timeout" not in f.read()
