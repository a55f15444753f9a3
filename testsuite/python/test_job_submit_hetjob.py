"""job_submit/azrdma and heterogeneous jobs with the real slurmctld: the
RDMA components of a hetjob are pinned to one fabric domain, the largest
that holds the first; a component that domain can no longer hold refuses
the whole hetjob with the reason.

Hetjobs need sched/backfill, which this module turns on. Uses no nodes:
the jobs are held and cancelled.
"""

import os

import pytest

from lib.rdma_jobs import azrdma_job_plugins
from lib.slurm import parse_oneliner


@pytest.fixture(scope="module", autouse=True)
def plugins(cloud):
    with azrdma_job_plugins(cloud, overrides={"SchedulerType": "sched/backfill"}):
        yield cloud


def _script(world, first, second):
    """A batch script of two components, split by '#SBATCH hetjob'."""
    path = world.path("jobs", "hetjob.sh")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                f"#SBATCH -p all --hold {first}\n"
                "#SBATCH hetjob\n"
                f"#SBATCH -p all --hold {second}\n"
                "true\n")
    return path


def _components(world, job):
    out = world.scontrol("show", "job", "-o", str(job))
    return [parse_oneliner(line) for line in out.splitlines() if line.strip()]


def _largest(world):
    return max(world.domains, key=lambda d: len(d.nodes))


def test_hetjob_components_get_the_same_domain(plugins):
    big = _largest(plugins)
    r = plugins.run_ctl("sbatch", "--parsable", "--output=/dev/null",
                        _script(plugins, "-N 2 -C rdma", "-N 2 -C rdma"))
    job = int(r.stdout.strip().split(";")[0])
    try:
        assert ("0: azrdma: domain {0} (one domain for every RDMA component of "
                "the hetjob)".format(big.name)) in r.stderr, r.stderr
        assert "1: azrdma: domain " + big.name in r.stderr, r.stderr
        parts = _components(plugins, job)
        assert [p["HetJobOffset"] for p in parts] == ["0", "1"], parts
        assert [p["Features"] for p in parts] == [f"rdma&{big.name}"] * 2, parts
    finally:
        plugins.run_ctl("scancel", str(job))


def test_a_hetjob_one_domain_cannot_hold_is_refused(plugins):
    big = _largest(plugins)
    n = len(big.nodes)
    first = n // 2 + 1
    r = plugins.run_ctl("sbatch", "--parsable", "--output=/dev/null",
                        _script(plugins, f"-N {first} -C rdma",
                                f"-N {first} -C rdma"), check=False)
    assert r.returncode == 1, r
    assert (f"1: azrdma: hetjob component 1 needs {first} nodes of domain "
            f"{big.name}, where the components before it leave {n - first} of "
            f"its {n} nodes") in r.stderr, r.stderr
