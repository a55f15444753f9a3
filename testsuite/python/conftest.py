"""Fixtures that run a real Slurm cluster against the Azure emulator.

See README.md in this directory. Needs root.
"""

import os
import signal
import subprocess

import pytest

from lib.world import World

_worlds = []


def _sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")  # so that the world is torn down


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _sigterm)


def pytest_report_header(config):
    return [f"azt: prefix {os.environ.get('AZT_PREFIX', 'azt')}, "
            f"run dir {os.environ.get('AZT_RUNDIR', '(new temporary dir)')}"]


@pytest.fixture(scope="session")
def world():
    """The controller host with munged, slurmctld and (if built) the emulator."""
    if os.geteuid() != 0:
        pytest.skip("the cluster harness needs root")
    w = World()
    _worlds.append(w)
    w.start()
    print(f"\nazt: world {w.world_id} up, run dir {w.rundir}")
    yield w
    left = w.stop()
    assert not left, "the test world left things behind:\n" + "\n".join(left)


@pytest.fixture(scope="session")
def cloud(world):
    """The world with the emulator, whose VMs boot as hosts (default fast timings)."""
    if not world.has_emulator:
        pytest.skip(f"no emulator at {world.emulator_bin}")
    return world


@pytest.fixture(scope="session")
def run_ctl(world):
    """run_ctl(*cmd, check=True, timeout=60, env=None): a command on the controller host."""
    return world.run_ctl


@pytest.fixture(scope="session")
def emulator_admin(cloud):
    """emulator_admin(method, path, body=None): the emulator's admin API."""
    return cloud.emulator_admin


@pytest.fixture(scope="session")
def mpi_ring(world):
    """data/mpi_ring.c compiled with mpicc into the run dir; its path."""
    src = os.path.join(os.path.dirname(__file__), "data", "mpi_ring.c")
    exe = world.path("mpi", "mpi_ring")
    subprocess.run(["mpicc", "-O2", "-Wall", "-o", exe, src], check=True)
    return exe


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tails of every daemon's log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _worlds:
        w = _worlds[-1]
        for title, text in w.log_tails():
            rep.sections.append((f"azt log {title}", text))
        rep.sections.append(("azt run dir", w.rundir))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Fail the run if any world left a namespace, link, mount or process."""
    for w in _worlds:
        left = w.leftovers()
        if left:
            w.stop()  # one more try, so the machine is usable again
            print(f"\nazt: world {w.world_id} LEFT THINGS BEHIND:\n  "
                  + "\n  ".join(left))
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            print(f"\nazt: world {w.world_id} torn down, nothing left; "
                  f"logs in {w.rundir}/logs")
        if w.swept:
            print("azt: the safety net had to remove what the daemons left:\n  "
                  + "\n  ".join(w.swept))
