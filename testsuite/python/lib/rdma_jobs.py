"""job_submit/azrdma and spank/azrdma in the test world.

    with azrdma_job_plugins(world):   # azrdma.conf, plugstack.conf, slurm.conf lines
        ...

The plugins come from AZRDMA_PLUGINDIR (the integrator's testsuite/run sets
it; the harness appends it to PluginDir). azrdma.conf goes beside slurm.conf,
where slurmctld and every slurmstepd look for it, written by
lib/azrdma_world.py's AzrdmaSetup with the lines the job plugins need
(the plugins never talk to Azure and load it without file checks). Its one image uses the MPI profile of the test world: Open MPI over
TCP on the emulated RDMA network, which is what the RDMA kind of the VM size
would be on Azure.
"""

import contextlib
import os
import re
import shutil

import pytest

from .azrdma_world import AzrdmaSetup, node_features

PLUGINS = ("job_submit_azrdma.so", "spank_azrdma.so")
PROFILE = "testworld"
RDMA_NET = "172.16.0.0/16"
CLUSTER_NET = "10.123.0.0/16"
PROFILE_ENV = {
    "OMPI_MCA_pml": "ob1",
    "OMPI_MCA_btl": "self,vader,tcp",
    "OMPI_MCA_btl_tcp_if_include": RDMA_NET,
    "OMPI_MCA_oob_tcp_if_include": CLUSTER_NET,
}
# Nodes of test_job_submit*.py and test_spank*.py (domain fab4).
NODES = ("f4n1", "f4n2", "f4n3", "f4n4")
RDMA_PARTITION = "fab4"


def plugindir():
    """AZRDMA_PLUGINDIR if it holds both plugins, else None."""
    d = os.environ.get("AZRDMA_PLUGINDIR")
    if d and all(os.path.exists(os.path.join(d, p)) for p in PLUGINS):
        return os.path.abspath(d)
    return None


def conf_text(world, extra="", rdma_partitions=RDMA_PARTITION):
    """azrdma.conf of lib/azrdma_world.py with the lines the job plugins
    need (RdmaPartitions, the test world's MPI profile on the default
    image), then extra."""
    sets = " ".join(f"Set={k}={v}" for k, v in PROFILE_ENV.items())
    lines = (f"RdmaPartitions={rdma_partitions}\n"
             f"MpiProfile={PROFILE} {sets}\n")
    return AzrdmaSetup(world).conf_text(lines + extra, image_mpi=PROFILE)


def write_conf(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@contextlib.contextmanager
def azrdma_job_plugins(world, overrides=None, extra_conf=""):
    """Run a block with JobSubmitPlugins=azrdma and spank/azrdma in
    PlugStackConfig (plus other slurm.conf overrides), azrdma.conf (plus
    extra_conf lines) beside slurm.conf; restore after."""
    d = plugindir()
    if not d:
        pytest.skip("AZRDMA_PLUGINDIR does not hold " + " and ".join(PLUGINS))
    conf = os.path.join(os.path.dirname(world.slurm_conf_path), "azrdma.conf")
    plugstack = world.path("etc", "plugstack-azrdma.conf")
    saved = None
    if os.path.exists(conf):
        saved = conf + ".saved-by-rdma-jobs"
        shutil.copy2(conf, saved)
    write_conf(conf, conf_text(world, extra_conf))
    write_conf(plugstack, f"required {os.path.join(d, 'spank_azrdma.so')}\n")
    lines = {"JobSubmitPlugins": "azrdma", "PlugStackConfig": plugstack}
    lines.update(overrides or {})
    try:
        with world.slurm_conf_changed(
                lines, restart=True,
                node_features=node_features(world, conf, lines)):
            yield world
    finally:
        if saved:
            os.replace(saved, conf)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(conf)


def env_of(text):
    """`env` output -> {name: value} (lines without '=' are skipped)."""
    out = {}
    for line in text.splitlines():
        name, eq, value = line.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            out[name] = value
    return out


def per_node_env(text):
    """Output of `srun -l ... env` style lines "<host>: NAME=value" per host."""
    hosts = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+?): ([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if m:
            hosts.setdefault(m.group(1), {})[m.group(2)] = m.group(3)
    return hosts


# A step that prints each task's host and environment as "<host>: NAME=value".
ENV_STEP = "srun bash -c 'env | sed \"s/^/$(hostname): /\"'"
