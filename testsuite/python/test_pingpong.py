"""azrdma-pingpong measures the emulated RDMA network as IMB-MPI1 PingPong
does, judges pairs by the VM size catalog, and names the pairs that fail."""

import json
import os
import shutil
import subprocess

import pytest

from lib.fabric_checks import (IMB_HEADER, MPI_ENV, hold_nodes, imb_rows,
                               pingpong, tool, write_fabric_conf)

FAB1 = ["f1n1", "f1n2", "f1n3", "f1n4"]
FAB2 = "f2n2"
# veth pairs and TCP between namespaces on a loaded two-core machine: far
# slower than InfiniBand, so the test world overrides the size's thresholds.
WORLD_LATENCY_US = 20000
WORLD_BANDWIDTH_MBS = 5


def _mpirun(*args):
    """azrdma-pingpong with two local ranks, without the test world."""
    exe = tool("azrdma-pingpong")
    if not exe or not shutil.which("mpirun"):
        pytest.skip("azrdma-pingpong or mpirun is missing")
    env = dict(os.environ, OMPI_MCA_pml="ob1", OMPI_MCA_btl="self,vader",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               AZRDMA_CONF="/nonexistent/azrdma.conf")
    return subprocess.run(["mpirun", "-n", "2", "--oversubscribe", exe,
                           *args], env=env, text=True, timeout=120,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_bad_packet_spec_is_refused_before_any_message():
    res = _mpirun("-p", "4000000:0")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "-p 4000000:0: the iterations must be a number" in res.stderr


def test_without_azrdma_conf_pairs_are_measured_but_not_judged():
    res = _mpirun("-p", "1:100", "-p", "4M:2", "--verbose")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "no thresholds from the VM size catalog" in res.stderr
    assert [(r[0], r[1]) for r in imb_rows(res.stdout)] == [(1, 100),
                                                            (4194304, 2)]
    assert "latency not checked; bandwidth not checked" in res.stdout
    assert "# PASS " in res.stdout and "# Result: PASS (1 pair)" in res.stdout


def test_no_thresholds_cannot_be_combined_with_a_threshold():
    res = _mpirun("--no-thresholds", "--max-latency", "5")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "--no-thresholds and -L/-B cannot be combined" in res.stderr


@pytest.fixture(scope="module")
def held(cloud):
    """Four fab1 nodes and one fab2 node, powered up and held by a job."""
    if not tool("azrdma-pingpong"):
        pytest.skip("azrdma-pingpong is not built (no mpicc?)")
    job_id = hold_nodes(cloud, FAB1 + [FAB2])
    try:
        yield job_id
    finally:
        cloud.run_ctl("scancel", str(job_id))


@pytest.fixture(scope="module")
def world_conf(cloud):
    return write_fabric_conf(cloud, "pingpong-world", WORLD_LATENCY_US,
                             WORLD_BANDWIDTH_MBS)


@pytest.fixture(scope="module")
def catalog_conf(cloud):
    return write_fabric_conf(cloud, "pingpong-catalog")


def test_two_nodes_print_imb_pingpong_table_and_pass(cloud, held, world_conf):
    res = pingpong(cloud, held, FAB1[:2], conf=world_conf)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "# Benchmarking PingPong" in out and IMB_HEADER in out, out
    rows = imb_rows(out)
    assert [r[0] for r in rows] == [0] + [2 ** i for i in range(23)], out
    assert [r[1] for r in rows][:17] == [1000] * 17, out
    assert [r[1] for r in rows][17:] == [640, 320, 160, 80, 40, 20, 10], out
    for size, _, t_usec, mbs in rows:
        assert t_usec > 0, out
        if size:
            assert mbs == pytest.approx(size / t_usec, rel=0.01, abs=0.01)
    assert "# pair: f1n1 <-> f1n2" in out, out
    assert "# Result: PASS (1 pair)" in out, out
    assert f"t[usec] <= {WORLD_LATENCY_US:.2f} up to 512 bytes" in out, out


def test_four_nodes_all_pairs_in_rounds_pass(cloud, held, world_conf):
    res = pingpong(cloud, held, FAB1, "--mode", "all", "--quick", "--json",
                   conf=world_conf)
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    pairs = {(p["a"], p["b"]) for p in report["pairs"]}
    assert pairs == {(a, b) for i, a in enumerate(FAB1) for b in FAB1[i + 1:]}
    rounds = {}
    for p in report["pairs"]:
        rounds.setdefault(p["round"], []).extend([p["a"], p["b"]])
    assert len(rounds) == 3
    assert all(len(n) == len(set(n)) == 4 for n in rounds.values()), rounds
    assert {p["verdict"] for p in report["pairs"]} == {"PASS"}
    assert report["result"] == "PASS"
    assert all([s["bytes"] for s in p["sizes"]] == [0, 512, 4194304]
               for p in report["pairs"])


def test_four_node_ring_pairs_each_node_with_the_next(cloud, held, world_conf):
    res = pingpong(cloud, held, FAB1, "--mode", "ring", "-p", "1:1000",
                   "-p", "4000000:20", "--json", conf=world_conf)
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    pairs = [(p["a"], p["b"]) for p in report["pairs"]]
    assert sorted(pairs) == sorted([("f1n1", "f1n2"), ("f1n2", "f1n3"),
                                    ("f1n3", "f1n4"), ("f1n1", "f1n4")])
    for p in report["pairs"]:
        assert [(s["bytes"], s["repetitions"]) for s in p["sizes"]] == [
            (1, 1000), (4000000, 20)]


def test_catalog_thresholds_fail_and_name_the_slow_pairs(cloud, held,
                                                          catalog_conf):
    # HB120rs_v3: at most 2 us and at least 23000 Mbytes/sec; TCP over
    # veth is far from that, so every pair is slow and says why.
    res = pingpong(cloud, held, FAB1[:3], "--mode", "all", "--quick",
                   conf=catalog_conf)
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    assert "Thresholds (Standard_HB120rs_v3 of Domain=fab1)" in out, out
    for a, b in (("f1n1", "f1n2"), ("f1n1", "f1n3"), ("f1n2", "f1n3")):
        assert f"# SLOW {a} <-> {b}: t[usec] " in out, out
    assert "> 2.00" in out and "< 23000.00" in out, out
    assert ("# Nodes in slow or failing pairs: f1n1 (2 of 2 pairs) "
            "f1n2 (2 of 2 pairs) f1n3 (2 of 2 pairs)") in out, out
    assert "# Result: FAIL (3 of 3 pairs slow or failing)" in out, out


def test_command_line_thresholds_override_the_catalog(cloud, held,
                                                       catalog_conf):
    res = pingpong(cloud, held, FAB1[:2], "-p", "0:100", "-p", "4M:10",
                   "--max-latency", str(WORLD_LATENCY_US),
                   "--min-bandwidth", str(WORLD_BANDWIDTH_MBS),
                   conf=catalog_conf)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Thresholds (command line)" in res.stdout, res.stdout


def test_no_thresholds_measures_without_judging(cloud, held, catalog_conf):
    # The catalog's HB120rs_v3 limits fail every pair over veth (above);
    # measured only, the same pair passes and says nothing was checked.
    res = pingpong(cloud, held, FAB1[:2], "--quick", "--no-thresholds",
                   conf=catalog_conf)
    assert res.returncode == 0, res.stdout + res.stderr
    assert ("# Thresholds (none (--no-thresholds)): latency not checked; "
            "bandwidth not checked") in res.stdout, res.stdout
    assert "# Result: PASS (1 pair)" in res.stdout, res.stdout


def test_pair_across_two_fabrics_fails_and_is_named(cloud, held, world_conf):
    res = pingpong(cloud, held, [FAB1[0], FAB2], "--quick", "--timeout", "5",
                   conf=world_conf)
    assert res.returncode != 0, res.stdout + res.stderr
    assert "azrdma-pingpong: FAIL f1n1 <-> f2n2: no answer within 5 s" in (
        res.stderr), res.stderr
    assert ("# FAIL f1n1 <-> f2n2: no answer within 5 s over the MPI network: "
            "the nodes cannot reach each other") in res.stdout, res.stdout
    assert "# Result: FAIL (1 of 1 pairs slow or failing)" in res.stdout


def test_ring_through_another_fabric_names_the_node_in_every_bad_pair(
        cloud, held, world_conf):
    res = pingpong(cloud, held, FAB1[:2] + [FAB2], "--mode", "ring",
                   "--quick", "--timeout", "5", "--verbose", conf=world_conf)
    assert res.returncode != 0, res.stdout + res.stderr
    out = res.stdout
    assert "# PASS f1n1 <-> f1n2" in out, out
    assert "# FAIL f1n2 <-> f2n2: no answer" in out, out
    assert "# FAIL f1n1 <-> f2n2: no answer" in out, out
    assert ("# Nodes in slow or failing pairs: f2n2 (2 of 2 pairs) "
            "f1n1 (1 of 2 pairs) f1n2 (1 of 2 pairs)") in out, out


def test_quick_first_step_fails_a_cross_fabric_job_early(cloud, world_conf):
    """The documented first step of an MPI job: the application never runs
    on nodes that cannot reach each other, and the output names the pair."""
    if not tool("azrdma-pingpong"):
        pytest.skip("azrdma-pingpong is not built (no mpicc?)")
    script = (f"srun --mpi=pmix --ntasks-per-node=1 {tool('azrdma-pingpong')}"
              " --quick --mode ring --timeout 5 || exit 1; "
              "echo application starts")
    env = dict(MPI_ENV, AZRDMA_CONF=world_conf)
    job_id = cloud.submit("-p", "all", "-N", "2", "-w", "f1n5,f2n1",
                          wrap=script, env=env)
    cloud.wait_job(job_id, timeout=240, states=("FAILED",))
    out = cloud.job_output(job_id)
    assert "FAIL f1n5 <-> f2n1" in out, out
    assert "application starts" not in out, out
