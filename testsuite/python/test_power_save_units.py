"""The azrdma-sync systemd units as `make install` puts them: systemd-analyze
verify accepts the service and its timer, with ExecStart naming the
installed azrdma-sync (bound at its install path in a private mount
namespace, so nothing outside the test changes). Needs no world."""

import configparser
import glob
import os
import shutil
import subprocess

import pytest

from lib.azrdma_world import builddir

UNITS = ("azrdma-sync.service", "azrdma-sync.timer")

pytestmark = pytest.mark.skipif(
    not shutil.which("systemd-analyze")
    or not os.path.exists(os.path.join(builddir(), "etc", "Makefile")),
    reason="needs systemd-analyze and a configured build tree (AZRDMA_BUILDDIR)")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """DESTDIR with the units and the programs installed; the unit dir."""
    dest = str(tmp_path_factory.mktemp("destdir"))
    for sub, target in (("etc", "install"),
                        (os.path.join("src", "power_save"), "install-sbinPROGRAMS")):
        subprocess.run(["make", "-s", "-C", os.path.join(builddir(), sub), target,
                        f"DESTDIR={dest}"], check=True, capture_output=True, timeout=120)
    found = glob.glob(os.path.join(dest, "**", "systemd", "system", UNITS[0]),
                      recursive=True)
    assert len(found) == 1, f"{UNITS[0]} installed {len(found)} times under {dest}"
    return dest, os.path.dirname(found[0])


def _exec_start(unit_dir):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(os.path.join(unit_dir, UNITS[0]))
    return parser["Service"]["ExecStart"].split()


def _verify(dest, unit_dir, units):
    """systemd-analyze verify with DESTDIR's sbindir bound where the unit says."""
    sbindir = os.path.dirname(_exec_start(unit_dir)[0])
    script = ('set -e; mount --bind "$1$2" "$2"; shift 2; '
              'exec systemd-analyze verify --man=no "$@"')
    return subprocess.run(["unshare", "--mount", "--propagation", "private",
                           "sh", "-c", script, "sh", dest, sbindir, *units],
                          capture_output=True, text=True, timeout=120)


def test_service_runs_the_installed_azrdma_sync_as_slurm_user(installed):
    dest, unit_dir = installed
    argv = _exec_start(unit_dir)
    assert os.path.isabs(argv[0]) and os.path.basename(argv[0]) == "azrdma-sync", argv
    assert os.access(dest + argv[0], os.X_OK), f"{dest + argv[0]} not installed"
    assert "@" not in " ".join(argv), argv   # configure substituted every @var@
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(os.path.join(unit_dir, UNITS[0]))
    assert parser["Service"]["Type"] == "oneshot"
    assert parser["Service"]["User"] == "slurm"


def test_systemd_analyze_verify_accepts_the_installed_units(installed):
    dest, unit_dir = installed
    if not os.path.isdir(os.path.dirname(_exec_start(unit_dir)[0])):
        pytest.skip("the install sbindir does not exist here to bind over")
    res = _verify(dest, unit_dir, [os.path.join(unit_dir, u) for u in UNITS])
    ours = [line for line in res.stderr.splitlines() if "azrdma" in line]
    assert res.returncode == 0 and not ours, res.stderr


def test_verify_would_catch_a_broken_unit(installed, tmp_path):
    """The check above can fail: a unit whose ExecStart is not executable."""
    dest, unit_dir = installed
    if not os.path.isdir(os.path.dirname(_exec_start(unit_dir)[0])):
        pytest.skip("the install sbindir does not exist here to bind over")
    broken = tmp_path / UNITS[0]
    with open(os.path.join(unit_dir, UNITS[0])) as f:
        text = f.read()
    broken.write_text(text.replace("/azrdma-sync", "/azrdma-sync-missing"))
    res = _verify(dest, unit_dir, [str(broken)])
    assert res.returncode != 0 and "azrdma-sync-missing" in res.stderr, res.stderr
