"""azrdma-config: check reports each problem with file:line and its fix;
slurm-conf prints lines that check accepts; azure proves access against the
local Azure over verified TLS."""

import os
import re
import shutil
import subprocess

import pytest

BUILDDIR = os.environ.get("AZRDMA_BUILDDIR", "")
TOOL = os.path.join(BUILDDIR, "src", "tools", "azrdma-config")
DATA = os.path.join(os.path.dirname(__file__), "..", "data")
SUB = "00000000-1111-2222-3333-444444444444"
SUBNET = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
          "Microsoft.Network/virtualNetworks/vnet/subnets/compute")

pytestmark = pytest.mark.skipif(
    not os.access(TOOL, os.X_OK),
    reason="azrdma-config not built (set AZRDMA_BUILDDIR)")


def _conf(tmp_path, body, name="azrdma.conf"):
    path = tmp_path / name
    path.write_text(
        f"SubscriptionId={SUB}\nResourceGroup=rg\nLocation=eastus\n"
        f"SubnetId={SUBNET}\n"
        f"SshPublicKeyFile={os.path.abspath(DATA)}/id_test.pub\n"
        "Image=alma Urn=almalinux:almalinux-hpc:8_10-hpc-gen2:latest\n"
        + body)
    path.chmod(0o644)
    return path


def _run(*args, env=None):
    return subprocess.run([TOOL, *args], capture_output=True, text=True,
                          env=env, timeout=120)


def _programs(tmp_path):
    """Stand-in power-save programs: check looks at their path and mode."""
    sbin = tmp_path / "sbin"
    sbin.mkdir(exist_ok=True)
    for prog in ("azrdma-resume", "azrdma-suspend", "azrdma-resume-fail"):
        p = sbin / prog
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(0o755)
    return sbin


def _slurm_conf(tmp_path, tool_lines):
    sbin = _programs(tmp_path)
    text = tool_lines.replace("/usr/local/sbin", str(sbin)).replace(
        "/usr/sbin", str(sbin))
    path = tmp_path / "slurm.conf"
    path.write_text("ClusterName=test\nSlurmctldHost=ctl\n" + text)
    return path


def test_check_reports_each_invalid_case_with_file_line_and_fix(tmp_path):
    conf = _conf(tmp_path,
                 "Domain=hb0 Nodes=hb-[000-009] VmSize=HB120rs_v3\n"
                 "Domain=hb1 Nodes=hb-[009-012] VmSize=HB120rs_v3\n"
                 "Domain=big Nodes=x[000-250] VmSize=HB60rs\n"
                 "Domain=plain Nodes=p[1-2] VmSize=Standard_A10\n"
                 "Domain=odd Nodes=o[1-2] VmSize=Standard_Q9\n"
                 "MaxParalelRequests=8\n"
                 "Cloud=Azure\n")
    res = _run("-f", str(conf), "-s", "/nonexistent/slurm.conf", "check")
    assert res.returncode == 1
    out = res.stdout
    expected = [
        (8, "node hb-009 is in Domain=hb1", "a node belongs to exactly one"),
        (9, "Domain=big has 251 nodes", "split it"),
        (10, "Standard_A10 has no RDMA network", "use an RDMA size"),
        (11, "unknown VM size Standard_Q9", "VmSize=Standard_Q9 VCpus="),
        (12, "unknown key 'MaxParalelRequests'", "MaxParallelRequests"),
        (13, "Cloud=Azure", "AzurePublic"),
    ]
    for line, what, fix in expected:
        pattern = re.escape(f"error: {conf}:{line}: ") + r".*" + re.escape(what)
        found = [l for l in out.splitlines() if re.search(pattern, l)]
        assert found, f"no error for line {line} ({what}) in:\n{out}"
        assert fix in found[0], found[0]
    assert "/nonexistent/slurm.conf" in out


def test_check_refuses_group_readable_secret_and_world_writable_conf(tmp_path):
    secret = tmp_path / "sp.secret"
    secret.write_text("s3cr3t\n")
    secret.chmod(0o644)
    conf = _conf(tmp_path,
                 "Auth=ServicePrincipal TenantId=contoso "
                 "ClientId=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n"
                 f"ClientSecretFile={secret}\n"
                 "Domain=hb0 Nodes=hb-[000-003] VmSize=HB60rs\n")
    res = _run("-f", str(conf), "check")
    assert res.returncode == 1
    assert re.search(re.escape(f"{conf}:8: ClientSecretFile {secret}")
                     + ".*chmod 600", res.stdout), res.stdout
    assert "s3cr3t" not in res.stdout + res.stderr

    conf.chmod(0o666)
    res = _run("-f", str(conf), "check")
    assert res.returncode == 1
    assert "world-writable" in res.stdout and "chmod o-w" in res.stdout


def test_slurm_conf_output_passes_check(tmp_path):
    conf = _conf(tmp_path,
                 "RdmaPartitions=mpi\n"
                 "Domain=hb0 Nodes=hb-[000-015] VmSize=HB120rs_v3\n"
                 "Domain=cls0 Nodes=a9-[00-07] VmSize=A9\n")
    res = _run("-f", str(conf), "slurm-conf")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout
    # CPUs from the catalog, RealMemory below the nominal memory.
    m = re.search(r"^NodeName=hb-\[000-015\] CPUs=120 RealMemory=(\d+) "
                  r"State=CLOUD", lines, re.M)
    assert m and int(m.group(1)) < 448 * 1024
    assert re.search(r"^NodeName=a9-\[00-07\] CPUs=16 .*State=CLOUD", lines,
                     re.M)
    assert "PartitionName=mpi Nodes=a9-[00-07],hb-[000-015]" in lines \
        or "PartitionName=mpi Nodes=hb-[000-015],a9-[00-07]" in lines

    slurm_conf = _slurm_conf(tmp_path, lines)
    res = _run("-f", str(conf), "-s", str(slurm_conf), "check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK (2 domains, 24 nodes, 1 images)" in res.stdout
    # The retired A9 is a warning, never an error.
    assert re.search(r"warning: .*retired Standard_A9 in 2021", res.stdout)


def test_check_finds_slurm_conf_inconsistencies(tmp_path):
    conf = _conf(tmp_path, "Domain=hb0 Nodes=hb-[000-003] VmSize=HB60rs\n")
    sbin = _programs(tmp_path)
    (sbin / "azrdma-suspend").chmod(0o777)
    slurm_conf = tmp_path / "slurm.conf"
    slurm_conf.write_text(
        f"ResumeProgram={sbin}/azrdma-resume\n"
        f"SuspendProgram={sbin}/azrdma-suspend\n"
        "ResumeFailProgram=azrdma-resume-fail\n"
        "ResumeTimeout=60\n"
        "NodeName=hb-[000-001] CPUs=60 State=CLOUD\n"
        "NodeName=hb-002 CPUs=60\n")
    res = _run("-f", str(conf), "-s", str(slurm_conf), "check")
    assert res.returncode == 1
    out = res.stdout
    assert re.search(rf"{slurm_conf}:2: SuspendProgram=.*world-writable.*"
                     r"chmod go-w", out), out
    assert re.search(rf"{slurm_conf}:3: ResumeFailProgram=azrdma-resume-fail:"
                     r" slurmctld needs an absolute path", out), out
    assert re.search(r"warning: .*ResumeTimeout is 60 s", out), out
    assert "SuspendTime is not set" in out
    assert "PrivateData does not include cloud" in out
    assert "TreeWidth is not set" in out
    assert re.search(rf"{conf}:7: Domain=hb0: 1 of its nodes \(e.g. hb-003\) "
                     "are not in", out), out
    assert re.search(rf"{conf}:7: Domain=hb0: 1 of its nodes \(e.g. hb-002\) "
                     "are not State=CLOUD", out), out
    assert "enable_configless" not in out


def test_check_names_configless_nodes_without_prolog_alloc(tmp_path):
    """Configless nodes have no azrdma.conf: srun and salloc jobs get their
    MPI profile there only through the job prolog at allocation."""
    conf = _conf(tmp_path, "Domain=hb0 Nodes=hb-[000-003] VmSize=HB60rs\n")
    slurm_conf = tmp_path / "slurm.conf"
    base = "SlurmctldParameters=idle_on_node_suspend,enable_configless\n"
    for flags, warned in (("", True), ("PrologFlags=Serial\n", True),
                          ("PrologFlags=Alloc\n", False),
                          ("PrologFlags=Contain,X11\n", False)):
        slurm_conf.write_text(base + flags)
        out = _run("-f", str(conf), "-s", str(slurm_conf), "check").stdout
        found = re.search(rf"{slurm_conf}:1: .*enable_configless.*no Alloc"
                          r".*add PrologFlags=Alloc", out)
        assert bool(found) == warned, (flags, out)


def test_check_wants_no_lookup_of_a_node_without_vm_before_23_11_2(tmp_path):
    """Before 23.11.2 slurmctld looks up a node's name when it cancels a job
    whose nodes are still powering up: a node without a VM must have an
    address that needs no lookup, and cloud_reg_addrs gives it its name."""
    from lib.slurm import NO_HOST_ADDR, SlurmInstall
    older = SlurmInstall().powered_down_addr(None) is not None
    conf = _conf(tmp_path, "Domain=hb0 Nodes=hb-[000-003] VmSize=HB60rs\n")
    slurm_conf = tmp_path / "slurm.conf"
    node = "NodeName=hb-[000-003] CPUs=60 State=CLOUD"
    fours = ",".join([NO_HOST_ADDR] * 4)
    for params, addrs, warned_params, warned_addrs in (
            ("idle_on_node_suspend,cloud_reg_addrs", fours, older, False),
            ("idle_on_node_suspend", "", False, older),
            ("idle_on_node_suspend", " NodeAddr=hb-[000-003]", False, older),
            ("idle_on_node_suspend", " NodeAddr=" + fours, False, False)):
        slurm_conf.write_text(f"SlurmctldParameters={params}\n{node}"
                              + (addrs if addrs.startswith(" ")
                                 else f" NodeAddr={addrs}" if addrs else "")
                              + "\n")
        out = _run("-f", str(conf), "-s", str(slurm_conf), "check").stdout
        found = re.search(rf"warning: {slurm_conf}:1: .*cloud_reg_addrs.*"
                          r"looks that name up.*remove cloud_reg_addrs", out)
        assert bool(found) == warned_params, (params, out)
        found = re.search(rf"warning: {slurm_conf}:2: Domain=hb0: 4 of its "
                          rf"nodes have no NodeAddr={re.escape(NO_HOST_ADDR)}"
                          r".*add NodeAddr", out)
        assert bool(found) == warned_addrs, (addrs, out)


def _emulator_conf(world, tmp_path, auth_lines, ca=True):
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    ca_line = f"CaBundle={world.emulator_dir}/ca.pem\n" if ca else ""
    return _conf(tmp_path,
                 "Cloud=Custom ArmEndpoint=https://127.0.0.1:8443 "
                 "ArmAudience=https://management.azure.com "
                 "AuthorityHost=https://127.0.0.1:8443 "
                 "ImdsEndpoint=http://127.0.0.1:8080\n"
                 + ca_line + f"StateDir={state}\n" + auth_lines
                 + "Domain=hb0 Nodes=hb-[000-003] VmSize=HB60rs\n",
                 name="azure.conf")


def test_azure_lists_vms_with_a_managed_identity(cloud, run_ctl, tmp_path):
    conf = _emulator_conf(cloud, tmp_path, "Auth=ManagedIdentity\n")
    res = run_ctl(TOOL, "-f", str(conf), "azure", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "token: OK (ManagedIdentity, https://127.0.0.1:8443)" in res.stdout
    assert re.search(r"^virtual machines: \d+", res.stdout, re.M)
    assert re.search(r"^availability sets: \d+", res.stdout, re.M)
    # A check changes nothing (issue 18 item 5): no token cache is left in
    # StateDir, which is SlurmUser's while an admin runs this as root.  And
    # the token (a JWT) is never printed.
    assert not list((tmp_path / "state").glob("token-*"))
    assert not re.search(r"[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}\.", res.stdout)


def test_azure_reports_a_wrong_service_principal_secret(cloud, run_ctl,
                                                         tmp_path):
    secret = tmp_path / "sp.secret"
    secret.write_text("not-the-secret\n")
    secret.chmod(0o600)
    conf = _emulator_conf(
        cloud, tmp_path,
        "Auth=ServicePrincipal TenantId=contoso "
        "ClientId=00000000-0000-0000-0000-0000000a2d4a\n"
        f"ClientSecretFile={secret}\n")
    res = run_ctl(TOOL, "-f", str(conf), "azure", check=False)
    assert res.returncode == 1
    assert "cannot get a token (ServicePrincipal)" in res.stderr
    assert "AADSTS7000215" in res.stderr
    assert "not-the-secret" not in res.stdout + res.stderr

    secret.write_text("azrdma-emulator-secret\n")
    res = run_ctl(TOOL, "-f", str(conf), "azure", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "token: OK (ServicePrincipal" in res.stdout


def test_azure_refuses_an_untrusted_certificate(cloud, run_ctl, tmp_path):
    """Without the emulator's CA the TLS handshake must fail: never unverified."""
    secret = tmp_path / "sp.secret"
    secret.write_text("azrdma-emulator-secret\n")
    secret.chmod(0o600)
    conf = _emulator_conf(
        cloud, tmp_path,
        "Auth=ServicePrincipal TenantId=contoso "
        "ClientId=00000000-0000-0000-0000-0000000a2d4a\n"
        f"ClientSecretFile={secret}\n", ca=False)
    res = run_ctl(TOOL, "-f", str(conf), "azure", check=False, timeout=300)
    assert res.returncode == 1
    assert re.search(r"certificate|SSL|TLS", res.stderr, re.I), res.stderr


def _plugindir_conf(world, tmp_path, plugindir):
    """A copy of the world's slurm.conf whose PluginDir is plugindir
    first: check reads the plugins there and asks the world's slurmctld."""
    text = open(world.slurm_conf_path).read()
    text = re.sub(r"^PluginDir=", f"PluginDir={plugindir}:", text, flags=re.M)
    path = tmp_path / "slurm.conf"
    path.write_text(text)
    return path


def _release_lines(out):
    return [line for line in out.splitlines() if "built for Slurm" in line]


def test_check_accepts_plugins_built_for_the_running_slurmctld(
        world, run_ctl, tmp_path):
    plugins = os.environ.get("AZRDMA_PLUGINDIR")
    if not plugins:
        pytest.skip("AZRDMA_PLUGINDIR not set")
    conf = _conf(tmp_path, "Domain=hb0 Nodes=hb-[000-003] VmSize=HB60rs\n")
    slurm_conf = _plugindir_conf(world, tmp_path, os.path.abspath(plugins))
    res = run_ctl(TOOL, "-f", str(conf), "-s", str(slurm_conf), "check",
                  check=False)
    assert "note:" not in res.stdout, res.stdout  # slurmctld answered
    assert _release_lines(res.stdout) == [], res.stdout


def test_check_names_a_plugin_built_for_another_slurm_and_the_rebuild(
        world, run_ctl, tmp_path):
    """A plugin of another release in PluginDir: Slurm would only log
    "incompatible plugin version"; check says which releases and what to
    rebuild.  AZRDMA_OTHER_PLUGINDIR (testsuite/run sets it) holds azrdma's
    plugins built against another Slurm."""
    other = os.environ.get("AZRDMA_OTHER_PLUGINDIR")
    if not other or not os.path.exists(
            os.path.join(other, "job_submit_azrdma.so")):
        pytest.skip("AZRDMA_OTHER_PLUGINDIR holds no plugin of another Slurm")
    mixed = tmp_path / "plugins"
    mixed.mkdir()
    shutil.copy(os.path.join(other, "job_submit_azrdma.so"), mixed)
    conf = _conf(tmp_path, "Domain=hb0 Nodes=hb-[000-003] VmSize=HB60rs\n")
    slurm_conf = _plugindir_conf(world, tmp_path, str(mixed))
    res = run_ctl(TOOL, "-f", str(conf), "-s", str(slurm_conf), "check",
                  check=False)
    assert res.returncode == 1
    running = world.slurm.version_string
    lines = _release_lines(res.stdout)
    assert len(lines) == 1, res.stdout
    m = re.search(rf"{mixed}/job_submit_azrdma.so: built for Slurm "
                  r"(\d+\.\d+\.\d+), but slurmctld runs Slurm (\S+): "
                  r"slurmctld refuses it .*rebuild azrdma against Slurm "
                  r"(\S+)", lines[0])
    assert m, lines[0]
    assert m.group(1) != running and m.group(2) == running == m.group(3)


def test_check_names_the_wait_without_azrdmas_prolog_slurmctld(tmp_path):
    """Issue 19: without azrdma-prolog-slurmctld a cold job starts at
    slurmctld's periodic check; check says so, and how to keep a site's
    own PrologSlurmctld."""
    site = tmp_path / "site-prolog"
    site.write_text("#!/bin/sh\nexit 0\n")
    site.chmod(0o755)
    conf = _conf(tmp_path, "Domain=hb0 Nodes=hb-[000-003] VmSize=HB60rs\n")
    slurm_conf = tmp_path / "slurm.conf"
    ours = "PrologSlurmctld=/usr/sbin/azrdma-prolog-slurmctld\n"
    cost = r"up to 30 s \(15 s on average\) after its last node registered"
    for text, want in (
            ("", rf"{slurm_conf}: .*is not azrdma-prolog-slurmctld.*{cost}; "
                 r"add PrologSlurmctld=\S+/azrdma-prolog-slurmctld$"),
            (f"PrologSlurmctld={site}\n",
             rf"{slurm_conf}:1: .*{cost}; add PrologSlurmctld=\S+/azrdma-"
             rf"prolog-slurmctld and move {site} to azrdma.conf's "
             r"SitePrologSlurmctld"),
            (ours + "PrologEpilogTimeout=60\nPrologTimeout=60\n",
             r"Timeout=60 is shorter than the 600 s a VM takes to boot"),
            (ours, None)):
        slurm_conf.write_text(text)
        out = _run("-f", str(conf), "-s", str(slurm_conf), "check").stdout
        if want:
            assert re.search(want, out, re.M), (text, out)
        else:
            assert "azrdma-prolog-slurmctld" not in out, out
            assert "a VM takes to boot" not in out, out

    # The site's own program goes to azrdma.conf; azrdma's own, or one
    # SlurmUser cannot run, is refused there with its line.
    for value, want in ((site, None),
                        ("/usr/sbin/azrdma-prolog-slurmctld", "would run itself"),
                        (tmp_path / "missing", "No such file")):
        conf = _conf(tmp_path, f"SitePrologSlurmctld={value}\n"
                     "Domain=hb0 Nodes=hb-[000-003] VmSize=HB60rs\n")
        res = _run("-f", str(conf), "-s", str(slurm_conf), "check")
        if want is None:
            assert "SitePrologSlurmctld" not in res.stdout, res.stdout
        else:
            assert res.returncode == 1, res.stdout
            assert re.search(rf"{conf}:\d+: SitePrologSlurmctld.*{want}",
                             res.stdout), res.stdout
