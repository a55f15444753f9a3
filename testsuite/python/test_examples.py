"""The production examples of etc/: every example azrdma.conf passes
`azrdma-config check` against a slurm.conf made of its slurm.conf lines, the
slurm.conf fragment is what `azrdma-config slurm-conf` prints, and the
cloud-init template joins a VM as the node its customData names.

No namespaces or daemons: the files the examples name are made in a
temporary directory.
"""

import os
import re
import shutil
import stat
import subprocess

import pytest

from lib.fabric_checks import tool
from lib.slurm import SlurmInstall
from lib.world import REPO

ETC = os.path.join(REPO, "etc")
AZRDMA_CONFS = ("azrdma.conf.example", "azrdma.conf.hbv3.example",
                "azrdma.conf.a8-a9-h16r.example")
FRAGMENT = "slurm.conf.fragment.example"
FRAGMENT_FOR = "azrdma.conf.hbv3.example"
CLOUD_INIT = "cloud-init.yaml.example"
PATH_KEYS = ("SshPublicKeyFile", "CustomDataFile", "StateDir", "LogFile",
             "ClientSecretFile", "CaBundle")
BASE_SLURM_CONF = """\
ClusterName=hpc
SlurmctldHost=hpc-controller
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
"""

pytestmark = pytest.mark.skipif(not tool("azrdma-config"),
                                reason="azrdma-config is not built")


def _config(*args):
    return subprocess.run([tool("azrdma-config"), *args], text=True, timeout=60,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={"PATH": "/usr/bin:/bin"})


def _program(name):
    """The build tree's program for an installed /usr/sbin path."""
    for sub in ("power_save", "tools"):
        path = os.path.join(os.path.dirname(os.path.dirname(tool("azrdma-config"))),
                            sub, name)
        if os.access(path, os.X_OK):
            return path
    raise AssertionError(f"{name} is not built")


def _with_built_programs(text):
    return re.sub(r"/\S*/(azrdma-[a-z-]+)\b",
                  lambda m: _program(m.group(1)), text)


def _sandbox(tmp_path, example):
    """The example with its absolute paths moved below tmp_path and the
    files they name made as an administrator would; its path."""
    with open(os.path.join(ETC, example)) as f:
        lines = f.read().splitlines()
    made = []

    def _move(m):
        key, path = m.group(1), m.group(2)
        moved = str(tmp_path / "root") + path
        os.makedirs(os.path.dirname(moved), exist_ok=True)
        if key == "SshPublicKeyFile":
            shutil.copy(os.path.join(REPO, "testsuite", "data", "id_test.pub"),
                        moved)
        elif key == "CustomDataFile":
            shutil.copy(os.path.join(ETC, CLOUD_INIT), moved)
            os.chmod(moved, 0o600)
        elif key == "StateDir":
            os.makedirs(moved, mode=0o700, exist_ok=True)
        made.append(key)
        return f"{key}={moved}"

    keys = "|".join(PATH_KEYS)
    out = [line if line.lstrip().startswith("#")
           else re.sub(rf"\b({keys})=(/\S+)", _move, line) for line in lines]
    assert {"SshPublicKeyFile", "CustomDataFile"} <= set(made), made
    conf = tmp_path / "azrdma.conf"
    conf.write_text("\n".join(out) + "\n")
    conf.chmod(0o644)
    return str(conf)


@pytest.mark.parametrize("example", AZRDMA_CONFS)
def test_example_passes_azrdma_config_check(tmp_path, example):
    conf = _sandbox(tmp_path, example)
    if example == FRAGMENT_FOR:
        with open(os.path.join(ETC, FRAGMENT)) as f:
            lines = f.read()
        if SlurmInstall().at_least(23, 2):
            # As its header says: from 23.02 the images join each Feature=.
            images = "".join(f",img_{name}" for name in re.findall(
                r"^Image=(\S+)", open(conf).read(), re.M))
            lines = re.sub(r"^(NodeName=.*Feature=\S+)", rf"\g<1>{images}",
                           lines, flags=re.M)
    else:
        res = _config("-f", conf, "slurm-conf")
        assert res.returncode == 0, res.stdout
        lines = res.stdout
    slurm_conf = tmp_path / "slurm.conf"
    # check also reads the release the plugins were built for.
    plugins = os.environ.get("AZRDMA_PLUGINDIR")
    plugindir = f"PluginDir={os.path.abspath(plugins)}\n" if plugins else ""
    slurm_conf.write_text(BASE_SLURM_CONF + plugindir
                          + _with_built_programs(lines))
    res = _config("-f", conf, "-s", str(slurm_conf), "check")
    assert res.returncode == 0, res.stdout
    assert not re.search(r"^error:", res.stdout, re.M), res.stdout
    assert re.search(r": OK \(\d+ domains, \d+ nodes", res.stdout), res.stdout
    # No warning but one per domain of a size Azure retired.
    warnings = re.findall(r"^warning: .*", res.stdout, re.M)
    retired = 4 if example == "azrdma.conf.a8-a9-h16r.example" else 0
    assert len(warnings) == retired, res.stdout
    assert all("Azure retired" in w for w in warnings), warnings


def test_fragment_is_what_slurm_conf_prints(tmp_path):
    conf = _sandbox(tmp_path, FRAGMENT_FOR)
    res = _config("-f", conf, "slurm-conf")
    assert res.returncode == 0, res.stdout
    with open(os.path.join(ETC, FRAGMENT)) as f:
        fragment = f.read().splitlines()
    printed = [line for line in res.stdout.splitlines()[1:] if line.strip()]
    images = ",".join(f"img_{name}" for name in re.findall(
        r"^Image=(\S+)", open(conf).read(), re.M))
    # The fragment's NodeName lines are 22.05's, with the address of a
    # node without a VM; from 23.11.2 slurm-conf prints none (sl_compat.h).
    no_addr = re.compile(r" NodeAddr=(\S+)")
    want = SlurmInstall().powered_down_addr(None)
    node_lines = [x for x in fragment if x.startswith("NodeName=")]
    assert node_lines and all(no_addr.search(x) for x in node_lines), node_lines
    fragment = [no_addr.sub("", x) for x in fragment]
    for line in printed:
        key, _, value = line.partition("=")
        if key == "NodeName":
            m = no_addr.search(line)
            if want:
                # One entry per node, or slurmctld refuses the line.
                lo, hi = re.match(r"NodeName=\S*\[(\d+)-(\d+)\]", line).groups()
                assert m and m.group(1).split(",") == \
                    [want] * (int(hi) - int(lo) + 1), line
            else:
                assert not m, line
            line = no_addr.sub("", line)
        if key == "NodeName" and SlurmInstall().at_least(23, 2):
            # The fragment is Slurm 22.05's (Debian's); from 23.02 a cloud
            # node's images are in its Feature= list, and nothing else
            # differs.
            assert line.endswith("," + images), (line, images)
            line = line[:-len(images) - 1]
        if key in ("ResumeProgram", "SuspendProgram", "ResumeFailProgram",
                   "PrologSlurmctld"):
            line = f"{key}=/usr/sbin/{os.path.basename(value)}"
        if key == "SlurmctldParameters":
            ours = [x for x in fragment if x.startswith(key + "=")]
            assert len(ours) == 1, ours
            assert set(value.split(",")) <= set(ours[0].split("=", 1)[1].split(","))
            continue
        assert line in fragment, line


def _cloud_init():
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(ETC, CLOUD_INIT)) as f:
        text = f.read()
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def _written(doc, path):
    found = [w for w in doc["write_files"] if w["path"] == path]
    assert len(found) == 1, path
    return found[0]


def test_cloud_init_writes_munge_key_for_munge_only(tmp_path):
    doc = _cloud_init()
    key = _written(doc, "/etc/munge/munge.key")
    assert key["permissions"] == "0400" and key["owner"] == "munge:munge"
    assert key["defer"] is True  # after the munge user exists
    assert key["encoding"] == "b64"


def test_cloud_init_lifts_the_memlock_limit():
    doc = _cloud_init()
    limits = _written(doc, "/etc/security/limits.d/90-azrdma-memlock.conf")
    assert re.search(r"^\*\s+hard\s+memlock\s+unlimited$", limits["content"], re.M)
    unit = _written(doc, "/etc/systemd/system/slurmd.service.d/azrdma.conf")
    assert "LimitMEMLOCK=infinity" in unit["content"].splitlines()


def _join(tmp_path, user_data, key_mode=0o400, dir_mode=0o700):
    """azrdma-join of the template, run against files below tmp_path with
    a systemctl that only logs and a munge key of key_mode in an /etc/munge
    of dir_mode; returns (result, root)."""
    doc = _cloud_init()
    script = _written(doc, "/usr/local/sbin/azrdma-join")["content"]
    assert doc["runcmd"] == [["/usr/local/sbin/azrdma-join"]]
    root = tmp_path / "vm"
    for d in ("var/lib/cloud/instance", "etc/default", "etc/munge", "bin"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/cloud/instance/user-data.txt").write_text(user_data)
    key = root / "etc/munge/munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(key_mode)
    (root / "etc/munge").chmod(dir_mode)
    for path in ("/var/lib/cloud/", "/var/lib/azrdma", "/etc/default/",
                 "/etc/sysconfig", "/etc/munge"):
        script = script.replace(path, f"{root}{path}")
    systemctl = root / "bin" / "systemctl"
    systemctl.write_text(f"#!/bin/sh\necho \"$*\" >> {root}/systemctl.log\n")
    systemctl.chmod(stat.S_IRWXU)
    res = subprocess.run(["/bin/sh", "-c", script], text=True, timeout=30,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env={"PATH": f"{root}/bin:/usr/bin:/bin"})
    return res, root


def test_cloud_init_starts_slurmd_as_the_node_named_in_custom_data(tmp_path):
    with open(os.path.join(ETC, CLOUD_INIT)) as f:
        rendered = f.read() + "# azrdma:node=hbv3-007\n# azrdma:image=almahpc\n"
    res, root = _join(tmp_path, rendered)
    assert res.returncode == 0, res.stdout
    options = (root / "etc/default/slurmd").read_text()
    assert options == 'SLURMD_OPTIONS="-N hbv3-007 --conf-server hpc-controller"\n'
    assert (root / "var/lib/azrdma/image").read_text() == "almahpc\n"
    calls = (root / "systemctl.log").read_text().splitlines()
    assert calls[-1] == "enable --now slurmd", calls
    assert "enable --now munge" in calls


def test_cloud_init_without_node_line_starts_nothing(tmp_path):
    with open(os.path.join(ETC, CLOUD_INIT)) as f:
        res, root = _join(tmp_path, f.read())
    assert res.returncode == 1
    assert "no '# azrdma:node=' line" in res.stdout
    assert not (root / "systemctl.log").exists()
    assert not (root / "etc/default/slurmd").exists()


@pytest.mark.parametrize("key_mode,dir_mode", [(0o440, 0o700), (0o404, 0o700),
                                               (0o400, 0o755)])
def test_cloud_init_refuses_a_munge_key_others_can_read(tmp_path, key_mode,
                                                        dir_mode):
    with open(os.path.join(ETC, CLOUD_INIT)) as f:
        rendered = f.read() + "# azrdma:node=hbv3-007\n"
    res, root = _join(tmp_path, rendered, key_mode, dir_mode)
    assert res.returncode == 1, res.stdout
    assert "munge.key is missing, empty or readable by others" in res.stdout
    assert not (root / "systemctl.log").exists()
    assert not (root / "etc/default/slurmd").exists()
