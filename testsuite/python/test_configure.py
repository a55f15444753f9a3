"""configure against a Slurm azrdma cannot support names the release it
found and what to do: older than 22.05, newer than 26.05 (unless asked to
try), and a --with-slurm that holds no Slurm.  No world: configure runs in
temporary build directories against Slurm trees made of Debian's headers
with another slurm_version.h."""

import os
import shutil
import subprocess

import pytest

from lib.world import REPO

CONFIGURE = os.path.join(REPO, "configure")

pytestmark = pytest.mark.skipif(
    not os.access(CONFIGURE, os.X_OK) or not os.path.exists(
        "/usr/include/slurm/slurm.h"),
    reason="no generated configure (autoreconf -fi) or no libslurm-dev")


def _tree(tmp_path, number):
    """A configured-tree layout (DIR/slurm/*.h) claiming release number."""
    tree = tmp_path / "slurm-tree"
    shutil.copytree("/usr/include/slurm", tree / "slurm")
    version = tree / "slurm" / "slurm_version.h"
    text = version.read_text()
    old = next(line for line in text.splitlines()
               if line.startswith("#define SLURM_VERSION_NUMBER "))
    version.write_text(text.replace(old, f"#define SLURM_VERSION_NUMBER {number:#x}"))
    return tree


def _configure(tmp_path, *args):
    build = tmp_path / "build"
    build.mkdir()
    return subprocess.run([CONFIGURE, "-q", *args], cwd=build, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=300)


def test_an_older_slurm_is_refused_with_its_version(tmp_path):
    res = _configure(tmp_path, f"--with-slurm={_tree(tmp_path, 0x150808)}")
    assert res.returncode != 0
    assert "Slurm 21.08.8 is older than 22.05, the oldest release azrdma " \
           "supports" in res.stdout, res.stdout


def test_a_newer_slurm_is_refused_unless_asked_to_try(tmp_path):
    res = _configure(tmp_path, f"--with-slurm={_tree(tmp_path, 0x1b0500)}")
    assert res.returncode != 0
    assert "Slurm 27.05.0 is newer than 26.05" in res.stdout, res.stdout
    assert "--enable-untested-slurm" in res.stdout, res.stdout


def test_a_directory_without_slurm_names_what_is_missing(tmp_path):
    empty = tmp_path / "not-slurm"
    empty.mkdir()
    res = _configure(tmp_path, f"--with-slurm={empty}")
    assert res.returncode != 0
    assert f"Slurm headers not found under {empty}" in res.stdout, res.stdout
