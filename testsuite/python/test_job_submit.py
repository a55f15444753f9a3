"""job_submit/azrdma in the real slurmctld: one fabric domain per RDMA job,
rejections that say what would fit, and the MPI environment of batch jobs.

Jobs run on f4n1..f4n4 (domain fab4), which belong to this module and to
test_spank.py.
"""

import ipaddress
import os
import re
import time

import pytest

from lib.rdma_jobs import (ENV_STEP, NODES, PROFILE, PROFILE_ENV, RDMA_NET,
                           RDMA_PARTITION, azrdma_job_plugins, conf_text,
                           per_node_env, write_conf)

RING = re.compile(r"^mpi_ring rank=(\d+) size=(\d+) host=(\S+) rdma=(\S+) "
                  r"status=(\S+) tcp=(\S*)$", re.M)


@pytest.fixture(scope="module", autouse=True)
def plugins(cloud):
    with azrdma_job_plugins(cloud):
        yield cloud
        # Leave the nodes as found, for the modules that follow.
        cloud.wait_powered_down(list(NODES))


def _domains_for(world, nodes):
    return "|".join(d.name for d in world.domains if len(d.nodes) >= nodes)


def _sbatch(world, *args, wrap, env=None):
    """sbatch; (job id, stderr)."""
    r = world.run_ctl("sbatch", "--parsable",
                      f"--output={world.path('jobs', '%j.out')}", *args,
                      "--wrap", wrap, env=env)
    return int(r.stdout.strip().split(";")[0]), r.stderr


@pytest.mark.parametrize("client", ["sbatch", "srun", "salloc"])
def test_more_nodes_than_any_domain_holds_is_rejected_with_what_fits(
        plugins, client):
    largest = max(len(d.nodes) for d in plugins.domains)
    r = plugins.run_ctl(client, "-N", "300", "-C", "rdma",
                        *(["--wrap", "true"] if client == "sbatch" else ["true"]),
                        check=False)
    assert r.returncode == 1, r
    assert (f"{client}: error: azrdma: 300 nodes fit in no RDMA domain: "
            "an RDMA job runs inside one domain") in r.stderr, r.stderr
    assert f"ask for at most {largest} nodes" in r.stderr, r.stderr
    assert "Node count specification invalid" in r.stderr, r.stderr


def test_more_tasks_than_a_domain_holds_is_rejected_naming_the_tasks(plugins):
    largest = max(len(d.nodes) for d in plugins.domains)
    r = plugins.run_ctl("sbatch", "-n", "2000", "-C", "rdma", "--wrap", "true",
                        check=False)
    assert r.returncode == 1, r
    assert ("(2000 tasks at 120 per hb120rs_v3 node) fit in no RDMA domain"
            in r.stderr), r.stderr
    assert (f"ask for at most {largest} nodes or {largest * 120} tasks"
            in r.stderr), r.stderr


def test_a_named_domain_too_small_is_rejected(plugins):
    r = plugins.run_ctl("sbatch", "-N", "3", "-C", "rdma&fab2", "--wrap", "true",
                        check=False)
    assert r.returncode == 1, r
    assert ("sbatch: error: azrdma: 3 nodes fit in no RDMA domain" in r.stderr
            and "(fab2) holds 2 nodes; ask for at most 2 nodes" in r.stderr), r.stderr


def test_a_size_no_domain_has_is_an_invalid_feature(plugins):
    r = plugins.run_ctl("sbatch", "-N", "2", "-C", "rdma&hb176rs_v4",
                        "--wrap", "true", check=False)
    assert r.returncode == 1, r
    assert ("sbatch: error: azrdma: no RDMA domain matches the constraint "
            "'rdma&hb176rs_v4'; RDMA domains: fab1 (hb120rs_v3, 6 nodes)"
            in r.stderr), r.stderr
    assert "Invalid feature specification" in r.stderr, r.stderr


def test_a_job_without_rdma_intent_is_left_alone(plugins):
    job_id, err = _sbatch(plugins, "-N", "1", "-p", "fab2", "--hold", wrap="true")
    try:
        assert "azrdma" not in err
        assert plugins.job(job_id)["Features"] == "(null)"
    finally:
        plugins.run_ctl("scancel", str(job_id))


def test_a_job_without_partition_is_placed_when_the_default_partition_is_rdma(
        plugins):
    """Issue 17 item 9: no -p means slurmctld's default partition (fab1,
    Default=YES); with RdmaPartitions naming it the job is an RDMA job,
    and with RdmaPartitions not naming it the job is left alone."""
    default = plugins.domains[0].name
    conf = os.path.join(os.path.dirname(plugins.slurm_conf_path), "azrdma.conf")
    saved = open(conf).read()
    write_conf(conf, conf_text(plugins, rdma_partitions=f"{RDMA_PARTITION},{default}"))
    time.sleep(1.1)  # the plugin looks at its azrdma.conf once a second
    try:
        job_id, err = _sbatch(plugins, "-N", "2", "--hold", wrap="true")
        try:
            job = plugins.job(job_id)
            assert job["Partition"] == default, job
            assert "sbatch: azrdma: domain" in err, err
            assert job["Features"] != "(null)", job
        finally:
            plugins.run_ctl("scancel", str(job_id))
    finally:
        write_conf(conf, saved)
    time.sleep(1.1)
    job_id, err = _sbatch(plugins, "-N", "2", "--hold", wrap="true")
    try:
        assert "azrdma" not in err, err
        assert plugins.job(job_id)["Features"] == "(null)"
    finally:
        plugins.run_ctl("scancel", str(job_id))


def test_a_users_or_constraint_is_grouped_and_accepted(plugins):
    job_id, err = _sbatch(plugins, "-N", "2", "-C", "rdma|rdma", "-p", "all",
                          "--hold", wrap="true")
    try:
        assert (plugins.job(job_id)["Features"]
                == f"(rdma|rdma)&[{_domains_for(plugins, 2)}]"), err
    finally:
        plugins.run_ctl("scancel", str(job_id))


def test_batch_job_stays_in_one_domain_with_the_profile_and_the_users_value(
        plugins):
    domains = _domains_for(plugins, 2)
    job_id, err = _sbatch(plugins, "-N", "2", "-C", "rdma", "-p", "all", "-w", "f4n1,f4n2",
                          wrap=ENV_STEP, env={"OMPI_MCA_btl": "self,tcp"})
    assert (f"sbatch: azrdma: domains {domains}, MPI env {PROFILE} "
            "(1 of your settings kept)") in err, err
    assert plugins.job(job_id)["Features"] == f"rdma&[{domains}]"
    plugins.wait_job(job_id, timeout=180)
    hosts = per_node_env(plugins.job_output(job_id))
    assert sorted(hosts) == ["f4n1", "f4n2"], plugins.job_output(job_id)
    for host, env in hosts.items():
        assert env["OMPI_MCA_btl"] == "self,tcp", (host, env)  # the user's
        for name in ("OMPI_MCA_pml", "OMPI_MCA_btl_tcp_if_include",
                     "OMPI_MCA_oob_tcp_if_include"):
            assert env.get(name) == PROFILE_ENV[name], (host, name, env)
        assert env.get("AZRDMA_MPI_PROFILE") == PROFILE, (host, env)


def test_two_node_open_mpi_job_runs_on_the_injected_environment(plugins, mpi_ring):
    # Only what any user would set as root; the MPI settings come from azrdma.
    env = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    job_id, err = _sbatch(plugins, "-N", "2", "--ntasks-per-node=1", "-C", "rdma", "-p", "all",
                          "-w", "f4n3,f4n4",
                          wrap=f"srun --mpi=pmix --kill-on-bad-exit=1 {mpi_ring}",
                          env=env)
    assert f"MPI env {PROFILE}" in err, err
    plugins.wait_job(job_id, timeout=180)
    out = plugins.job_output(job_id)
    ranks = {int(m[0]): m for m in RING.findall(out)}
    assert sorted(ranks) == [0, 1], out
    vms = plugins.vms()
    net = ipaddress.ip_network(RDMA_NET)
    for rank, (_, size, host, rdma, status, tcp) in ranks.items():
        peer = ranks[1 - rank]
        assert (size, status) == ("2", "ok"), out
        assert host != peer[2], "both ranks ran on one host"
        assert rdma == vms[host]["rdmaIp"], (host, rdma, vms[host])
        remotes = [ipaddress.ip_address(c.split("->")[1].rsplit(":", 1)[0])
                   for c in tcp.split(",") if c]
        off_host = [a for a in remotes if not a.is_loopback]
        assert ipaddress.ip_address(peer[3]) in off_host, (rank, tcp)
        assert all(a in net for a in off_host), (rank, tcp)
