"""node_features/azrdma with the real slurmctld: features of powered-down
nodes come from azrdma.conf, images are changeable features without
duplicates, bad image requests are refused at submit, and the plugin shows
in scontrol show config."""

import contextlib
import os
import re
import shutil

import pytest

from lib import rdma_jobs
from lib.azrdma_world import node_features
from lib.wait import wait_for

PLUGIN = "node_features_azrdma.so"
IMAGES = ("alma", "sles")


def _conf_text(world):
    text = rdma_jobs.conf_text(world)
    return text + "Image=sles Urn=SUSE:SLES-HPC:15-SP5:latest\n"


@contextlib.contextmanager
def _node_features(world):
    d = os.environ.get("AZRDMA_PLUGINDIR")
    if not d or not os.path.exists(os.path.join(d, PLUGIN)):
        pytest.skip(f"AZRDMA_PLUGINDIR does not hold {PLUGIN}")
    conf = os.path.join(os.path.dirname(world.slurm_conf_path), "azrdma.conf")
    saved = None
    if os.path.exists(conf):
        saved = conf + ".saved-by-node-features"
        shutil.copy2(conf, saved)
    with open(conf, "w") as f:
        f.write(_conf_text(world))
    os.chmod(conf, 0o644)
    lines = {"NodeFeaturesPlugins": "azrdma"}
    try:
        with world.slurm_conf_changed(
                lines, restart=True,
                node_features=node_features(world, conf, lines)):
            yield world
    finally:
        if saved:
            os.replace(saved, conf)
        else:
            os.unlink(conf)


@pytest.fixture(scope="module")
def nf_world(cloud):
    with _node_features(cloud) as w:
        yield w


def _features(world, node):
    n = world.node(node)
    return (n.get("AvailableFeatures", ""), n.get("ActiveFeatures", ""))


def _published(world, node):
    avail, act = _features(world, node)
    return "img_sles" in avail.split(",") and "azure" in act.split(",")


def test_powered_down_nodes_get_domain_size_rdma_and_image_features(nf_world):
    """22.05: the plugin publishes them, the disk's image active (the
    default on a node that never ran another).  23.02 and later: slurm.conf
    (azrdma-config slurm-conf) gives them, and Slurm keeps no image active
    on a powered-down node."""
    keeps_active = not nf_world.slurm.at_least(23, 2)
    for d in nf_world.domains:
        node = nf_world.hostnames(d.hostlist)[0]
        wait_for(lambda: _published(nf_world, node), 60,
                 f"features of {node} published")
        avail, act = _features(nf_world, node)
        avail, act = avail.split(","), act.split(",")
        size = d.vm_size.split("_", 1)[1].lower()
        for f in ("azure", d.name, size, "rdma", "ib", "img_alma",
                  "img_sles"):
            assert f in avail, (node, avail)
        if keeps_active:
            assert "img_alma" in act and "img_sles" not in act, (node, act)
        else:
            assert not [f for f in act if f.startswith("img_")], (node, act)
        assert len(avail) == len(set(avail)), avail
        assert len(act) == len(set(act)), act
        assert "POWERED_DOWN" in nf_world.node(node)["State"]


def test_features_survive_a_slurmctld_restart_without_duplicates(nf_world):
    node = nf_world.hostnames(nf_world.domains[0].hostlist)[0]
    wait_for(lambda: _published(nf_world, node), 60, "features published")
    nf_world.restart_slurmctld()
    wait_for(lambda: _published(nf_world, node), 60, "features republished")
    avail, act = (f.split(",") for f in _features(nf_world, node))
    assert len(avail) == len(set(avail)), avail
    assert len(act) == len(set(act)), act


@pytest.mark.parametrize("constraint,why", [
    ("img_alma&img_sles", "two images"),
    ("img_windows", "unknown image"),
    ("img_sles|rdma", "image inside an OR"),
    ("[fab1|fab2]&img_sles", "image with matching OR"),
])
def test_bad_image_requests_are_refused_at_submit(nf_world, constraint, why):
    res = nf_world.run_ctl("sbatch", "-N1", "-C", constraint, "--wrap",
                           "true", check=False)
    assert res.returncode != 0, why
    assert "Invalid feature specification" in res.stderr, res.stderr


def test_a_valid_image_request_is_accepted_and_held(nf_world):
    res = nf_world.run_ctl("sbatch", "-N1", "-C", "img_sles&rdma", "--hold",
                           "--wrap", "true", check=False)
    assert res.returncode == 0, res.stderr
    job = re.search(r"Submitted batch job (\d+)", res.stdout).group(1)
    nf_world.run_ctl("scancel", job)


def test_show_config_lists_domains_and_images(nf_world):
    out = nf_world.scontrol("show", "config")
    assert "node_features/azrdma" in out
    assert re.search(r"Images\s*=\s*img_alma\(default\),img_sles", out), out
    for d in nf_world.domains:
        assert re.search(rf"{d.name}={re.escape(d.hostlist)}\(", out), out


def test_a_node_without_azrdma_conf_registers_and_runs_jobs(nf_world):
    """Issue 17 item 10: slurmd's node_features/azrdma on a node without
    azrdma.conf (configless Slurm does not ship it) failed its init, and
    with it slurmd; now the node registers with slurmctld's features, runs
    jobs, and slurmd says once what it does without."""
    with nf_world.node_without_azrdma_conf("f5n2") as node:
        job_id = nf_world.submit("-N", "1", "-p", "all", "-w", node,
                                 wrap="hostname")
        nf_world.wait_job(job_id, timeout=180)
        assert nf_world.job_output(job_id).strip() == node
        avail = nf_world.node(node).get("AvailableFeatures", "").split(",")
        assert "azure" in avail and "img_sles" in avail, avail
        log = open(nf_world.path("logs", f"slurmd-{node}.log")).read()
        said = "does not exist: this node reports no image"
        assert log.count(said) == 1, log[-3000:]
