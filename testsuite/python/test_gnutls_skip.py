"""The programs with the ARM client keep GnuTLS from initialising itself
(src/common/arm_gnutls_skip.c): Debian's libcurl loads GnuTLS through libldap
and librtmp, and its constructor would cost each program about 0.8 MB.

The dynamic linker says where it binds GnuTLS's call of
_gnutls_global_init_skip: to the program (the skip is in force), or to
GnuTLS's own default when the program does not define or export it. Needs no
world: the constructors run before main, so each program is run with an empty
slurm.conf (a missing one would send Slurm to DNS for its configuration), in a
network namespace of its own, and exits at once.
"""

import os
import re
import subprocess

import pytest

from lib.azrdma_world import builddir

PROGRAMS = [os.path.join("src", "power_save", p) for p in
            ("azrdma-resume", "azrdma-suspend", "azrdma-resume-fail", "azrdma-sync")] \
    + [os.path.join("src", "tools", "azrdma-config")]


def _links_gnutls(path):
    res = subprocess.run(["ldd", path], text=True, capture_output=True, timeout=30)
    return "libgnutls" in res.stdout


@pytest.mark.parametrize("rel", PROGRAMS, ids=os.path.basename)
def test_gnutls_does_not_initialise_itself(rel, tmp_path):
    path = os.path.join(builddir(), rel)
    if not os.access(path, os.X_OK):
        pytest.skip(f"{rel} is not built (set AZRDMA_BUILDDIR)")
    if not _links_gnutls(path):
        pytest.skip(f"{rel} does not load GnuTLS here: nothing to skip")
    empty = tmp_path / "slurm.conf"
    empty.write_text("")
    env = {"SLURM_CONF": str(empty), "AZRDMA_CONF": str(tmp_path / "azrdma.conf"),
           "LD_DEBUG": "bindings"}
    res = subprocess.run(["unshare", "--net", path], env=env, text=True,
                         capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    bindings = [line for line in res.stderr.splitlines()
                if "`_gnutls_global_init_skip'" in line]
    assert bindings, f"{rel}: GnuTLS never looked up _gnutls_global_init_skip:\n" \
        + res.stderr[-2000:]
    target = re.search(r" to (\S+) \[", bindings[0])
    assert target and os.path.basename(target.group(1)) == os.path.basename(rel), \
        f"{rel}: GnuTLS binds its skip hook to {target and target.group(1)}, not to the " \
        f"program (is ARM_PROGRAM_LDFLAGS in its link?): {bindings[0].strip()}"
