"""Issue 17 item 2: on Slurm 22.05 node_features/azrdma publishes the
features of nodes that never registered from a thread inside slurmctld.
That thread held the plugin's lock across its RPCs to slurmctld, while
`scontrol reconfigure` has slurmctld wait for the same lock inside its
write locks: slurmctld stopped answering.  Here a world of its own with a
200-node domain is reconfigured twice and more while the publisher works
through it, and squeue must keep answering.

Later releases take cloud nodes' features from slurm.conf and run no
publisher; the module is skipped there.
"""

import os
import subprocess
import time

import pytest

from lib import rdma_jobs
from lib.wait import wait_for
from lib.world import World

PLUGIN = "node_features_azrdma.so"
NODES = [f"big{i:03d}" for i in range(1, 201)]


@pytest.fixture(scope="module")
def big_world():
    d = os.environ.get("AZRDMA_PLUGINDIR")
    if not d or not os.path.exists(os.path.join(d, PLUGIN)):
        pytest.skip(f"AZRDMA_PLUGINDIR does not hold {PLUGIN}")
    if os.geteuid() != 0:
        pytest.skip("the cluster harness needs root")
    prefix = os.environ.get("AZT_PREFIX", "azt")[:4] + "r"
    w = World(prefix=prefix,
              domains=[("big", NODES, "Standard_HB120rs_v3")])
    if w.slurm.at_least(23, 2):
        pytest.skip("no publisher after 22.05 (slurm.conf gives the features)")
    w.start()
    try:
        conf = os.path.join(os.path.dirname(w.slurm_conf_path), "azrdma.conf")
        with open(conf, "w") as f:
            f.write(rdma_jobs.conf_text(w))
        os.chmod(conf, 0o644)
        w.set_slurm_conf({"NodeFeaturesPlugins": "azrdma"}, restart=True)
        yield w
    finally:
        left = w.stop()
        assert not left, "the world left things behind:\n" + "\n".join(left)


def _published(world):
    out = world.run_ctl("scontrol", "-o", "show", "node", timeout=30).stdout
    return sum(1 for line in out.splitlines()
               if line.startswith("NodeName=big") and "img_alma" in line)


def _squeue_answers(world):
    """squeue within 10 s (MessageTimeout): True, or False if it hung."""
    try:
        world.run_ctl("squeue", "-h", timeout=10)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_reconfigures_during_a_publishing_pass_keep_slurmctld_answering(big_world):
    # Every reconfigure asks the publisher for another pass over the 200
    # nodes (two RPCs each); squeue between them must not wait on it.
    hung = 0
    for _ in range(4):
        big_world.scontrol("reconfigure")
        time.sleep(0.3)
        if not _squeue_answers(big_world):
            hung += 1
    assert hung == 0, f"squeue hung {hung} times of 4"
    wait_for(lambda: _published(big_world) == len(NODES), 120,
             "features of all 200 nodes published")
