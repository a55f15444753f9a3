"""job_submit/azrdma's job_modify with the real slurmctld: an update to a
held RDMA job is re-checked against the fabric domains, over the job's
record (read through slurmctld's copy_job_record_to_job_desc), and refused
when no domain can hold the job it would make.

Uses no nodes: the jobs are held and cancelled.
"""

import pytest

from lib.rdma_jobs import azrdma_job_plugins


@pytest.fixture(scope="module", autouse=True)
def plugins(cloud):
    with azrdma_job_plugins(cloud):
        yield cloud


def _held(world, *args):
    r = world.run_ctl("sbatch", "--parsable", "--hold", "-p", "all",
                      "--output=/dev/null", *args, "--wrap", "true")
    return int(r.stdout.strip().split(";")[0])


def _ctl_log(world):
    with open(world.path("logs", "slurmctld.log"), errors="replace") as f:
        return f.read()


def _domains_for(world, nodes):
    return "|".join(d.name for d in world.domains if len(d.nodes) >= nodes)


def test_updates_a_domain_cannot_hold_are_refused_and_others_replaced(plugins):
    largest = max(len(d.nodes) for d in plugins.domains)
    job = _held(plugins, "-N", "2", "-C", "rdma")
    try:
        assert plugins.job(job)["Features"] == f"rdma&[{_domains_for(plugins, 2)}]"

        # The node count alone: the constraint comes from the job record.
        r = plugins.run_ctl("scontrol", "update", f"job={job}", "NumNodes=300",
                            check=False)
        assert r.returncode != 0, r
        assert "Node count specification invalid" in r.stderr, r.stderr
        assert (f"job_submit/azrdma: update of job {job} of uid 0 refused: "
                "300 nodes fit in no RDMA domain: an RDMA job runs inside one "
                f"domain and the largest that matches (fab3) holds {largest} "
                f"nodes; ask for at most {largest} nodes") in _ctl_log(plugins)
        assert plugins.job(job)["NumNodes"].startswith("2"), plugins.job(job)

        r = plugins.run_ctl("scontrol", "update", f"job={job}",
                            "Features=rdma&hb176rs_v4", check=False)
        assert r.returncode != 0, r
        assert "Invalid feature specification" in r.stderr, r.stderr
        assert (f"update of job {job} of uid 0 refused: no RDMA domain matches "
                "the constraint 'rdma&hb176rs_v4'") in _ctl_log(plugins)

        # An update that fits: a new constraint is placed again, for the
        # record's node count.
        plugins.run_ctl("scontrol", "update", f"job={job}", "Features=rdma")
        info = plugins.job(job)
        assert info["Features"] == f"rdma&[{_domains_for(plugins, 2)}]", info
        assert (f"job_submit/azrdma: update of job {job}: features "
                f"'rdma&[{_domains_for(plugins, 2)}]'") in _ctl_log(plugins)
    finally:
        plugins.run_ctl("scancel", str(job))
