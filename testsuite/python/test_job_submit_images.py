"""job_submit/azrdma beside node_features/azrdma: the constraint it writes
passes the image rules of node_features/azrdma, and a job asking for an
image (a changeable feature, which takes no brackets) gets one domain.
Jobs are held: nothing is booted or reprovisioned here.
"""

import os

import pytest

from lib.rdma_jobs import azrdma_job_plugins
from lib.wait import wait_for

NODE_FEATURES = "node_features_azrdma.so"


@pytest.fixture(scope="module", autouse=True)
def plugins(cloud):
    d = os.environ.get("AZRDMA_PLUGINDIR")
    if not d or not os.path.exists(os.path.join(d, NODE_FEATURES)):
        pytest.skip(f"AZRDMA_PLUGINDIR does not hold {NODE_FEATURES}")
    with azrdma_job_plugins(cloud, {"NodeFeaturesPlugins": "azrdma"}):
        node = cloud.hostnames(cloud.domains[0].hostlist)[0]
        wait_for(lambda: "img_alma" in cloud.node(node).get("AvailableFeatures", ""),
                 60, f"image features of {node} published")
        yield cloud


def _held(world, constraint):
    r = world.run_ctl("sbatch", "--parsable", "--hold", "-p", "all", "-N", "2",
                      "-C", constraint, "--output=/dev/null", "--wrap", "true")
    job_id = int(r.stdout.strip().split(";")[0])
    try:
        return world.job(job_id)["Features"], r.stderr
    finally:
        world.run_ctl("scancel", str(job_id))


def test_the_matching_or_passes_node_features(plugins):
    domains = "|".join(d.name for d in plugins.domains if len(d.nodes) >= 2)
    features, _ = _held(plugins, "rdma")
    assert features == f"rdma&[{domains}]"


def test_a_job_asking_an_image_gets_the_first_domain_that_fits(plugins):
    first = next(d.name for d in plugins.domains if len(d.nodes) >= 2)
    features, err = _held(plugins, "rdma&img_alma")
    assert features == f"rdma&img_alma&{first}"
    assert (f"sbatch: azrdma: domain {first} (the first that fits: an image "
            "feature takes one domain") in err, err


def _as_nobody(world, *cmd):
    return world.run_ctl("setpriv", "--reuid=nobody", "--regid=nogroup",
                         "--clear-groups", *cmd, check=False)


def test_a_user_azrdma_conf_does_not_allow_is_refused_an_image(plugins):
    """Issue 18 item 2: any user could have idle nodes deleted and re-created
    by alternating -C img_a and -C img_b.  Only root, SlurmUser and
    AllowUserBoot's users may ask an image; others are refused at submit,
    and when they update their job to one."""
    msg = ("azrdma: image alma is asked (-C img_...), and only root, SlurmUser "
           "and the users AllowUserBoot of azrdma.conf names may have nodes "
           "booted into another image")
    for constraint in ("rdma&img_alma", "img_alma"):
        r = _as_nobody(plugins, "sbatch", "--parsable", "--hold", "-p", "all",
                       "-N", "2", "-C", constraint, "--chdir=/tmp",
                       "--output=/dev/null", "--wrap", "true")
        assert r.returncode != 0, r.stdout
        assert msg in r.stderr, r.stderr
    # Their own job, updated to an image: refused the same way.
    r = _as_nobody(plugins, "sbatch", "--parsable", "--hold", "-p", "all",
                   "-N", "2", "-C", "rdma", "--chdir=/tmp",
                   "--output=/dev/null", "--wrap", "true")
    assert r.returncode == 0, r.stderr
    job_id = int(r.stdout.strip().split(";")[0])
    try:
        r = _as_nobody(plugins, "scontrol", "update", f"jobid={job_id}",
                       "features=rdma&img_alma")
        assert r.returncode != 0, r.stdout
        assert "img_alma" not in plugins.job(job_id)["Features"]
    finally:
        plugins.run_ctl("scancel", str(job_id))
