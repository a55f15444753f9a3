"""Issue 17 item 13: testsuite/run, contribs/demo/run and the test world
refuse at once, with the reason and the fix, a checkout that SlurmUser
cannot read (a clone in root's 0700 home), instead of failing every world
test later with a plugrack fatal in slurmctld's log. No world is started."""

import os
import shutil
import subprocess

import pytest

from lib.world import REPO, World

SCRIPTS = ("testsuite/run", "testsuite/slurm-user-reads", "contribs/demo/run")
FIX = "Clone the repository where slurm can read it"


@pytest.fixture
def private_checkout(tmp_path):
    """The scripts at their places in a checkout below a 0700 directory."""
    home = tmp_path / "root-home"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o700)
    top = home / "azrdma"
    for rel in SCRIPTS:
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), top / rel)
    return top


def _run(cmd):
    return subprocess.run(cmd, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)


@pytest.mark.parametrize("script", ["testsuite/run", "contribs/demo/run"])
def test_a_checkout_slurm_cannot_read_is_refused_at_once(private_checkout, script):
    res = _run([str(private_checkout / script), "--no-deps"])
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{private_checkout}: SlurmUser slurm cannot read it" in res.stderr, res.stderr
    assert FIX in res.stderr
    # Refused before anything was built or installed.
    assert not (private_checkout / "build").exists()


def test_the_world_refuses_a_plugin_dir_slurm_cannot_read(private_checkout):
    world = World(prefix="azk", plugindir=str(private_checkout))
    with pytest.raises(RuntimeError, match="SlurmUser slurm cannot read it"):
        world.start()


def test_the_checkout_the_suite_runs_from_passes():
    res = _run([os.path.join(REPO, "testsuite/slurm-user-reads"), REPO])
    assert res.returncode == 0, res.stderr
