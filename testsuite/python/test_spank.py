"""spank/azrdma on the VM hosts: srun and salloc jobs, whose environment
job_submit/azrdma never sees, get the MPI profile in every task; the
user's values stay; --rdma-env=auto|off|<profile>; the memlock warning.

Jobs run on f4n1..f4n4 (domain fab4), shared with test_job_submit.py.
"""

import contextlib
import os
import re

import pytest

from lib.rdma_jobs import (NODES, PROFILE, PROFILE_ENV, RDMA_PARTITION,
                           azrdma_job_plugins, per_node_env)
from lib.wait import wait_for

TASK_ENV = ["bash", "-c", 'env | sed "s/^/$(hostname): /"; '
            'echo "$(hostname): MEMLOCK=$(ulimit -l)"']


# A second image whose profile differs; NodeImageFile where the boot hook
# records the image a VM runs.
EXTRA_CONF = "Image=alt Urn=a:b:c:latest Mpi=openmpi-ucx\n"


@pytest.fixture(scope="module", autouse=True)
def plugins(cloud):
    extra = EXTRA_CONF + f"NodeImageFile={cloud.path('vms')}/%n/image\n"
    with azrdma_job_plugins(cloud, extra_conf=extra):
        yield cloud
        # Leave the nodes as found, for the modules that follow.
        cloud.wait_powered_down(list(NODES))


def _domains_for(world, nodes):
    return "|".join(d.name for d in world.domains if len(d.nodes) >= nodes)


def _srun(world, *args, env=None, check=True):
    return world.run_ctl("srun", "-p", "all", *args, *TASK_ENV, env=env,
                         check=check, timeout=180)


def _assert_profile(env, host, keep=()):
    for name, value in PROFILE_ENV.items():
        if name not in keep:
            assert env.get(name) == value, (host, name, env)
    assert env.get("AZRDMA_MPI_PROFILE") == PROFILE, (host, env)


def test_srun_job_gets_one_domain_and_the_profile_on_every_node(plugins):
    r = _srun(plugins, "-N", "2", "-C", "rdma", "-w", "f4n1,f4n2")
    domains = _domains_for(plugins, 2)
    assert f"srun: azrdma: domains {domains}, MPI env {PROFILE}" in r.stderr, r.stderr
    hosts = per_node_env(r.stdout)
    assert sorted(hosts) == ["f4n1", "f4n2"], r.stdout
    for host in hosts:
        _assert_profile(hosts[host], host)
    job_id = hosts["f4n1"]["SLURM_JOB_ID"]
    assert plugins.job(job_id)["Features"] == f"rdma&[{domains}]"


def test_memlock_below_unlimited_is_warned_in_the_job_output(plugins):
    r = _srun(plugins, "-N", "1", "-C", "rdma", "-w", "f4n1")
    limit = per_node_env(r.stdout)["f4n1"]["MEMLOCK"]
    warned = "azrdma: warning: the memlock limit of this task is" in r.stderr
    assert warned == (limit != "unlimited"), (limit, r.stderr)


def test_memlock_warning_names_the_limit(plugins):
    r = plugins.run_ctl("bash", "-c", "ulimit -l 1024 && exec srun -p all -N 1 "
                        "-C rdma -w f4n1 true", timeout=180)
    assert ("azrdma: warning: the memlock limit of this task is 1024 KiB, "
            "not unlimited") in r.stderr, r.stderr


def test_memlock_warning_comes_once_per_node_and_step_not_per_task(plugins):
    """Issue 17 item 11: with many tasks per node the warning is printed by
    the first task of each node, once per step, not by every task."""
    r = plugins.run_ctl("bash", "-c", "ulimit -l 1024 && exec srun -p all -N 2 "
                        "-n 8 --overcommit -C rdma -w f4n1,f4n2 true", timeout=180)
    warning = "azrdma: warning: the memlock limit of this task is 1024 KiB"
    assert r.stderr.count(warning) == 2, r.stderr
    r = plugins.run_ctl("bash", "-c", "ulimit -l 1024 && exec salloc -p all -N 2 "
                        "-C rdma -w f4n1,f4n2 bash -c 'srun -n 6 -O true; "
                        "srun -n 6 -O true'", timeout=180)
    assert r.stderr.count(warning) == 4, r.stderr


NO_CONF_NODE = "f4n3"


def test_a_node_without_azrdma_conf_runs_every_job_step(plugins):
    """Issue 17 item 10: a node without azrdma.conf (configless Slurm ships
    slurm.conf and plugstack.conf, not ours) lost every job step to the
    required spank plugin's failed init.  Now every step runs; a batch job
    keeps the profile job_submit/azrdma put in its environment; with
    PrologFlags=Alloc an srun or salloc job gets the profile
    job_submit/azrdma recorded, which the job prolog keeps on the node until
    the epilog (without it the prolog sees srun's request, not the job
    record, and such a job gets none); slurmd says once what the node does
    without."""
    with plugins.node_without_azrdma_conf(NO_CONF_NODE) as node:
        kept = plugins.path("vms", node, "run-azrdma", "jobs")
        # The node's log from here on: its boots without azrdma.conf (an
        # earlier module may have booted it with the file).
        log_path = plugins.path("logs", f"slurmd-{node}.log")
        log_from = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        r = plugins.run_ctl("srun", "-p", "all", "-N", "1", "-w", node, "true",
                            check=False, timeout=180)
        assert r.returncode == 0, r.stderr
        r = _srun(plugins, "-N", "1", "-C", "rdma", "-w", node, check=False)
        assert r.returncode == 0, r.stderr
        assert "AZRDMA_MPI_PROFILE" not in per_node_env(r.stdout)[node]
        r = plugins.run_ctl("sbatch", "--parsable", "-p", "all", "-N", "1",
                            "-C", "rdma", "-w", node,
                            f"--output={plugins.path('jobs', '%j.out')}",
                            "--wrap", "srun " + " ".join(
                                f"'{a}'" for a in TASK_ENV))
        job_id = int(r.stdout.strip().split(";")[0])
        plugins.wait_job(job_id, timeout=180)
        env = per_node_env(plugins.job_output(job_id))[node]
        _assert_profile(env, node)
        with plugins.slurm_conf_changed({"PrologFlags": "Alloc"}):
            # srun: the profile reaches the step, and the node keeps it no
            # longer than the job lasts.
            r = _srun(plugins, "-N", "1", "-C", "rdma", "-w", node)
            _assert_profile(per_node_env(r.stdout)[node], node)
            wait_for(lambda: not os.listdir(kept), 30,
                     f"the epilog to remove the job's profile from {kept}")
            # --rdma-env=off still means nothing at all.
            r = _srun(plugins, "-N", "1", "-C", "rdma", "-w", node,
                      "--rdma-env=off")
            assert "AZRDMA_MPI_PROFILE" not in per_node_env(r.stdout)[node]
            # salloc: every step of the allocation.
            step = "srun bash -c 'env | sed \"s/^/$(hostname): /\"'"
            r = plugins.run_ctl("salloc", "-p", "all", "-N", "1", "-C", "rdma",
                                "-w", node, "bash", "-c", f"{step}; {step}",
                                timeout=180)
            lines = [ln for ln in r.stdout.splitlines()
                     if ln.startswith(f"{node}: AZRDMA_MPI_PROFILE=")]
            assert lines == [f"{node}: AZRDMA_MPI_PROFILE={PROFILE}"] * 2, \
                r.stdout
        # Once per slurmd start (from 23.11 a reconfigure re-executes slurmd).
        with open(log_path) as f:
            f.seek(log_from)
            log = f.read()
        said = "does not exist: job steps on this node get the MPI profile"
        starts = len(re.findall(r"\] slurmd version \S+ started", log))
        assert starts and log.count(said) == starts, log[-3000:]


def test_a_users_value_survives_in_an_srun_job(plugins):
    r = _srun(plugins, "-N", "1", "-C", "rdma", "-w", "f4n2",
              env={"OMPI_MCA_pml": "cm"})
    env = per_node_env(r.stdout)["f4n2"]
    assert env["OMPI_MCA_pml"] == "cm", env
    _assert_profile(env, "f4n2", keep=("OMPI_MCA_pml",))


def test_salloc_job_gets_the_profile_in_every_step(plugins):
    step = "srun bash -c 'env | sed \"s/^/$(hostname): /\"'"
    r = plugins.run_ctl("salloc", "-p", "all", "-N", "2", "-C", "rdma",
                        "-w", "f4n1,f4n2", "bash", "-c", f"{step}; {step}",
                        timeout=180)
    assert f"salloc: azrdma: domains {_domains_for(plugins, 2)}" in r.stderr, r.stderr
    hosts = per_node_env(r.stdout)
    assert sorted(hosts) == ["f4n1", "f4n2"], r.stdout
    for host, env in hosts.items():
        _assert_profile(env, host)
        # Two steps, each with the profile.
        assert r.stdout.count(f"{host}: AZRDMA_MPI_PROFILE={PROFILE}\n") == 2, r.stdout


def test_an_rdma_partition_is_rdma_intent(plugins):
    r = plugins.run_ctl("srun", "-p", RDMA_PARTITION, "-N", "2", *TASK_ENV,
                        timeout=180)
    assert f"srun: azrdma: domains {_domains_for(plugins, 2)}" in r.stderr, r.stderr
    for host, env in per_node_env(r.stdout).items():
        _assert_profile(env, host)


def test_rdma_env_off_sets_nothing(plugins):
    r = _srun(plugins, "--rdma-env=off", "-N", "1", "-C", "rdma", "-w", "f4n1")
    assert "MPI env off" in r.stderr, r.stderr
    env = per_node_env(r.stdout)["f4n1"]
    assert not {"AZRDMA_MPI_PROFILE", *PROFILE_ENV} & set(env), env


def test_rdma_env_off_in_a_batch_job_reaches_its_steps(plugins):
    job_id = plugins.submit("--rdma-env=off", "-p", "all", "-N", "1", "-C", "rdma",
                            "-w", "f4n1",
                            wrap="srun bash -c 'env | sed \"s/^/$(hostname): /\"'")
    plugins.wait_job(job_id, timeout=180)
    env = per_node_env(plugins.job_output(job_id))["f4n1"]
    assert not {"AZRDMA_MPI_PROFILE", *PROFILE_ENV} & set(env), env


def test_rdma_env_names_another_profile(plugins):
    r = _srun(plugins, "--rdma-env=openmpi-ucx", "-N", "1", "-C", "rdma",
              "-w", "f4n1")
    assert "MPI env openmpi-ucx" in r.stderr, r.stderr
    env = per_node_env(r.stdout)["f4n1"]
    assert env.get("OMPI_MCA_pml") == "ucx", env
    assert env.get("UCX_NET_DEVICES") == "mlx5_ib0:1", env
    assert env.get("AZRDMA_MPI_PROFILE") == "openmpi-ucx", env


def test_an_unknown_rdma_env_profile_is_rejected_at_submit(plugins):
    r = _srun(plugins, "--rdma-env=nompi", "-N", "1", "-C", "rdma", "-w", "f4n1",
              check=False)
    assert r.returncode == 1, r
    assert "srun: error: azrdma: --rdma-env=nompi: no such MPI profile" in r.stderr, \
        r.stderr


def test_a_malformed_rdma_env_is_refused_by_the_client(plugins):
    r = _srun(plugins, "--rdma-env=a/b", "-N", "1", "-w", "f4n1", check=False)
    assert r.returncode != 0, r
    assert "--rdma-env=a/b: a profile name has letters" in r.stderr, r.stderr


def test_rdma_env_off_in_salloc_reaches_its_steps(plugins):
    r = plugins.run_ctl("salloc", "--rdma-env=off", "-p", "all", "-N", "1",
                        "-C", "rdma", "-w", "f4n2", "srun", *TASK_ENV, timeout=180)
    assert "MPI env off" in r.stderr, r.stderr
    env = per_node_env(r.stdout)["f4n2"]
    assert not {"AZRDMA_MPI_PROFILE", *PROFILE_ENV} & set(env), env


def test_a_node_running_another_image_gets_that_images_profile(plugins):
    _srun(plugins, "-N", "1", "-C", "rdma", "-w", "f4n3")  # boots f4n3
    path = plugins.path("vms", "f4n3", "image")
    with open(path, "w") as f:
        f.write("alt\n")
    try:
        r = _srun(plugins, "-N", "1", "-C", "rdma", "-w", "f4n3")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    env = per_node_env(r.stdout)["f4n3"]
    assert env.get("AZRDMA_MPI_PROFILE") == "openmpi-ucx", env
    assert env.get("OMPI_MCA_pml") == "ucx", env
