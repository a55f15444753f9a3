"""Packaging: the release tarball (`make dist` of AZRDMA_BUILDDIR) builds
into the Debian packages of contribs/debian and the RPMs of
contribs/rpm/azrdma.spec, and each holds everything `make install` installs,
split into azrdma (programs, man pages, examples, systemd units) and
slurm-azrdma-plugins (the plugins, in Slurm's plugin directory).

No namespaces or daemons: plain builds in temporary directories.
"""

import glob
import os
import re
import shutil
import subprocess

import pytest

from lib.azrdma_world import builddir
from lib.slurm import SlurmInstall
from lib.world import REPO

MULTIARCH = "x86_64-linux-gnu"
DEB_PLUGINDIR = f"usr/lib/{MULTIARCH}/slurm-wlm"
# The Slurm of this run: Debian's, or one installed under a prefix (then
# the RPMs are built against it with slurm_prefix, and the .debs, which
# build against Debian's libslurm-dev, are not built).
SLURM = SlurmInstall()
ON_DEBIAN_SLURM = SLURM.prefix == "/usr"
RPM_PLUGINDIR = ("usr/lib64/slurm" if ON_DEBIAN_SLURM
                 else os.path.join(SLURM.prefix, "lib", "slurm").lstrip("/"))
PLUGIN_MAN_PAGES = ("azrdma_plugins.8", "azrdma_node_features.8")

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(builddir(), "Makefile")),
    reason="no configured build tree (set AZRDMA_BUILDDIR)")


def _run(cmd, cwd=None, env=None, timeout=600):
    res = subprocess.run(cmd, cwd=cwd, env=env, text=True, timeout=timeout,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert res.returncode == 0, f"{' '.join(cmd)}: exit {res.returncode}\n" \
        + res.stdout[-4000:]
    return res.stdout


def _files(root):
    """Every file and symlink below root, as paths relative to it."""
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("packaging")


@pytest.fixture(scope="module")
def tarball(work):
    """The release tarball, made by `make dist` in the build tree."""
    out = _run(["make", "-s", "dist-gzip"], cwd=builddir())
    made = sorted(glob.glob(os.path.join(builddir(), "azrdma-*.tar.gz")),
                  key=os.path.getmtime)
    assert made, out
    dest = os.path.join(work, os.path.basename(made[-1]))
    shutil.move(made[-1], dest)
    return dest


@pytest.fixture(scope="module")
def version(tarball):
    return re.fullmatch(r"azrdma-(.+)\.tar\.gz", os.path.basename(tarball))[1]


@pytest.fixture(scope="module")
def installed(work):
    """What `make install` installs, by kind: {kind: set of file names}."""
    dest = os.path.join(work, "make-install")
    _run(["make", "-s", "install", f"DESTDIR={dest}"], cwd=builddir())
    kinds = {"programs": set(), "plugins": set(), "man": set(),
             "examples": set(), "units": set()}
    for rel in _files(dest):
        name = os.path.basename(rel)
        if re.search(r"/s?bin/", "/" + rel):
            kinds["programs"].add(name)
        elif name.endswith(".so"):
            kinds["plugins"].add(name)
        elif re.search(r"/man/man\d/", rel):
            kinds["man"].add(name)
        elif "/examples/" in rel:
            kinds["examples"].add(name)
        elif "/systemd/system/" in rel:
            kinds["units"].add(name)
    assert all(kinds.values()), kinds
    pages = {n for n in os.listdir(os.path.join(REPO, "doc", "man"))
             if re.search(r"\.\d$", n)}
    assert kinds["man"] == pages, "doc/man/Makefile.am installs " \
        f"{sorted(kinds['man'])}, doc/man has {sorted(pages)}"
    examples = {n for n in os.listdir(os.path.join(REPO, "etc"))
                if n.endswith(".example")}
    assert kinds["examples"] == examples, "etc/Makefile.am installs " \
        f"{sorted(kinds['examples'])}, etc/ has {sorted(examples)}"
    return kinds


@pytest.fixture(scope="module")
def debs(work, tarball, version):
    """{package: unpacked root} of the .debs dpkg-buildpackage made."""
    if not shutil.which("dpkg-buildpackage"):
        pytest.skip("dpkg-buildpackage is not installed (dpkg-dev)")
    if not ON_DEBIAN_SLURM:
        pytest.skip(f"the .debs build against Debian's libslurm-dev, not "
                    f"this run's Slurm {SLURM.version_string}")
    top = os.path.join(work, "deb")
    os.makedirs(top)
    _run(["tar", "xzf", tarball, "-C", top])
    src = os.path.join(top, f"azrdma-{version}")
    shutil.copytree(os.path.join(src, "contribs", "debian"),
                    os.path.join(src, "debian"))
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2")
    _run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
         timeout=900)
    roots = {}
    for deb in glob.glob(os.path.join(top, "*.deb")):
        package = _run(["dpkg-deb", "-f", deb, "Package"]).strip()
        if package.endswith("-dbgsym"):
            continue
        root = os.path.join(top, "root-" + package)
        _run(["dpkg", "-x", deb, root])
        roots[package] = {"root": root, "deb": deb}
    assert sorted(roots) == ["azrdma", "slurm-azrdma-plugins"], roots
    return roots


def test_versions_agree_with_configure(version):
    with open(os.path.join(REPO, "contribs", "debian", "changelog")) as f:
        first = f.readline()
    assert re.match(rf"azrdma \({re.escape(version)}-\d+\) ", first), first
    with open(os.path.join(REPO, "contribs", "rpm", "azrdma.spec")) as f:
        spec = f.read()
    assert re.search(rf"^Version:\s+{re.escape(version)}$", spec, re.M)


def test_azrdma_deb_holds_programs_man_pages_examples_and_units(debs, installed):
    files = _files(debs["azrdma"]["root"])
    for prog in installed["programs"]:
        assert {f"usr/bin/{prog}", f"usr/sbin/{prog}"} & files, prog
    for page in set(installed["man"]) - set(PLUGIN_MAN_PAGES):
        section = page.rsplit(".", 1)[1]
        assert f"usr/share/man/man{section}/{page}.gz" in files, page
    for example in installed["examples"]:
        assert f"usr/share/doc/azrdma/examples/{example}" in files, example
    for unit in installed["units"]:
        assert f"usr/lib/systemd/system/{unit}" in files, unit
    assert not [f for f in files if f.endswith((".so", ".la"))], files


def test_plugins_deb_holds_the_plugins_in_slurms_plugin_dir(debs, installed):
    root = debs["slurm-azrdma-plugins"]["root"]
    files = _files(root)
    so = {f for f in files if f.endswith(".so")}
    assert so == {f"{DEB_PLUGINDIR}/{p}" for p in installed["plugins"]}, files
    for page in PLUGIN_MAN_PAGES:
        assert f"usr/share/man/man8/{page}.gz" in files, files
    for path in so:
        symbols = _run(["nm", "-D", "--defined-only", os.path.join(root, path)])
        assert re.search(r" plugin_type$", symbols, re.M), path
        assert re.search(r" plugin_version$", symbols, re.M), path
    assert not [f for f in files if f.endswith(".la")], files


def test_plugins_deb_depends_on_the_slurm_it_was_built_against(debs):
    built = _run(["dpkg-query", "-W", "-f=${Version}", "libslurm-dev"])
    upstream = re.sub(r"-[^-]*$", "", re.sub(r"^\d+:", "", built))
    depends = _run(["dpkg-deb", "-f", debs["slurm-azrdma-plugins"]["deb"],
                    "Depends"])
    assert f"slurm-wlm-basic-plugins (>= {upstream})" in depends, depends
    assert f"slurm-wlm-basic-plugins (<< {upstream}.~)" in depends, depends
    # Both packages' versions say which Slurm they are for.
    for package in ("azrdma", "slurm-azrdma-plugins"):
        v = _run(["dpkg-deb", "-f", debs[package]["deb"], "Version"]).strip()
        assert re.fullmatch(rf"[^+]+-\d+\+slurm{re.escape(upstream)}", v), v


def test_packaged_azrdma_config_runs(debs, tmp_path):
    exe = os.path.join(debs["azrdma"]["root"], "usr", "sbin", "azrdma-config")
    example = os.path.join(debs["azrdma"]["root"], "usr", "share", "doc", "azrdma",
                           "examples", "azrdma.conf.example")
    res = subprocess.run([exe, "-f", example, "show"], text=True, timeout=60,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert res.returncode == 0, res.stdout
    assert "DOMAIN" in res.stdout, res.stdout


@pytest.fixture(scope="module")
def rpms(work, tarball):
    """{package: file list} of the RPMs rpmbuild made from the spec; the
    packages' Requires in its "requires" entry."""
    if not shutil.which("rpmbuild"):
        pytest.skip("rpmbuild is not installed (rpm)")
    top = os.path.join(work, "rpm")
    os.makedirs(os.path.join(top, "SOURCES"))
    shutil.copy(tarball, os.path.join(top, "SOURCES"))
    prefix = [] if ON_DEBIAN_SLURM else ["--define", f"slurm_prefix {SLURM.prefix}"]
    _run(["rpmbuild", "-bb", "--nodeps", "--nocheck", "--define", f"_topdir {top}",
          *prefix, os.path.join(REPO, "contribs", "rpm", "azrdma.spec")],
         timeout=900)
    lists, requires, release = {}, {}, {}
    for rpm in glob.glob(os.path.join(top, "RPMS", "*", "*.rpm")):
        name = _run(["rpm", "-qp", "--qf", "%{NAME}", rpm]).strip()
        if name.endswith(("-debuginfo", "-debugsource")):
            continue
        lists[name] = set(_run(["rpm", "-qlp", rpm]).split())
        requires[name] = _run(["rpm", "-qp", "--requires", rpm]).splitlines()
        release[name] = _run(["rpm", "-qp", "--qf", "%{RELEASE}", rpm]).strip()
    assert sorted(lists) == ["azrdma", "slurm-azrdma-plugins"], lists
    lists["requires"] = requires
    lists["release"] = release
    return lists


def test_plugins_rpm_requires_the_slurm_it_was_built_against(rpms):
    with open(os.path.join(SLURM.prefix, "include/slurm/slurm_version.h")) as f:
        number = int(re.search(r"^#define SLURM_VERSION_NUMBER (0x[0-9a-fA-F]+)$",
                               f.read(), re.M).group(1), 16)
    built = f"{number >> 16}.{number >> 8 & 255:02d}.{number & 255}"
    isa = _run(["rpm", "--eval", "%{?_isa}"]).strip()
    requires = rpms["requires"]["slurm-azrdma-plugins"]
    if ON_DEBIAN_SLURM:
        assert f"slurm{isa} = {built}" in requires, requires
    else:
        # A Slurm installed from source is no package to require.
        assert not [r for r in requires if r.startswith("slurm")], requires
    # Both packages' releases say which Slurm they are for.
    for package in ("azrdma", "slurm-azrdma-plugins"):
        release = rpms["release"][package]
        assert re.match(rf"\d+\.slurm{re.escape(built)}(\.|$)", release), release


def test_rpms_hold_what_make_install_installs(rpms, installed):
    programs = rpms["azrdma"]
    for prog in installed["programs"]:
        assert {f"/usr/bin/{prog}", f"/usr/sbin/{prog}"} & programs, prog
    for page in installed["man"]:
        section = page.rsplit(".", 1)[1]
        package = "slurm-azrdma-plugins" if page in PLUGIN_MAN_PAGES else "azrdma"
        assert any(re.fullmatch(rf"/usr/share/man/man{section}/"
                                rf"{re.escape(page)}(\.gz|\.bz2|\.xz)?", f)
                   for f in rpms[package]), (page, rpms[package])
    for example in installed["examples"]:
        assert f"/usr/share/doc/azrdma/examples/{example}" in programs, example
    for unit in installed["units"]:
        assert f"/usr/lib/systemd/system/{unit}" in programs, unit
    plugins = {f for f in rpms["slurm-azrdma-plugins"] if f.endswith(".so")}
    assert plugins == {f"/{RPM_PLUGINDIR}/{p}" for p in installed["plugins"]}


def test_every_path_the_examples_name_is_in_a_package(debs):
    """slurm.conf.fragment.example and plugstack.conf.example name the
    programs and the plugin where the packages put them."""
    files = {"/" + f for d in debs.values() for f in _files(d["root"])}
    named = set()
    for example in ("slurm.conf.fragment.example", "plugstack.conf.example"):
        with open(os.path.join(REPO, "etc", example)) as f:
            for line in f:
                if not line.lstrip().startswith("#"):
                    named |= set(re.findall(r"/usr/\S+", line))
    assert len(named) >= 5, named
    assert named <= files, sorted(named - files)
