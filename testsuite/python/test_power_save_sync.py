"""azrdma-sync: orphans deallocated after the grace period (and only reported
with --dry-run), zombies set DOWN with a reason, stale addresses reset, and
empty availability sets of the cluster deleted."""

import glob
import json
import os
import pwd
import re
import shutil
import signal
import subprocess

import pytest

from lib.azrdma_world import (HB120_FAMILY, azrdma_power_save, have_programs,
                              program)
from lib.wait import wait_for
from lib.world import HOOKS, SUSPEND_TIMEOUT

pytestmark = pytest.mark.skipif(
    not have_programs() or not program("azrdma-sync"),
    reason="azrdma power-save programs not built (set AZRDMA_BUILDDIR)")

ORPHAN = "spare2"   # its node was taken out of slurm.conf, its VM runs on
STALE = "f3n5"
ZOMBIE = "f3n3"
# A resume killed after its NIC, before its VM: a node no module gives a VM
# (test_power_save's quota node, test_power_save_faults' killed resume).
HALFWAY = "f3n5"
SUSPENDED = "f3n8"  # suspended by Slurm while sync looked
# A domain only azrdma.conf knows: its set must end up empty.
GHOST_DOMAIN = "Domain=fab8 Nodes=spare[1-2] VmSize=Standard_HB120rs_v3"


@pytest.fixture(scope="module")
def azrdma(cloud):
    extra = GHOST_DOMAIN + f" AvailabilitySet={cloud.prefix}-fab8\n"
    with azrdma_power_save(cloud, extra_conf=extra) as setup:
        yield setup


def _as_slurm(world, name, *args, check=True):
    """Run a power-save program by hand, as SlurmUser, on the controller."""
    return world.run_ctl("setpriv", "--reuid=slurm", "--regid=slurm",
                         "--init-groups", program(name), *args, check=check,
                         timeout=180)


def _deallocate_behind_slurms_back(world, node):
    """POST .../deallocate to ARM from the controller host, as the test
    hooks' ARM client does (lib: hooks/azt_power.py)."""
    world.run_ctl("/usr/bin/python3", "-B", "-c", (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import azt_power as p; "
        "conf = json.load(open(sys.argv[2])); "
        "p.suspend_node(p.Arm(conf, print), conf, sys.argv[3])"),
        HOOKS, world.hooks_conf_path, node, timeout=120)


def _sync(world, *args):
    res = _as_slurm(world, "azrdma-sync", *args, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_sync_deletes_an_empty_availability_set_of_the_cluster(cloud, azrdma):
    avset = f"{cloud.prefix}-fab8"
    cloud.emulator_admin("POST", "quota", {"family": HB120_FAMILY, "limit": 0})
    try:
        res = _as_slurm(cloud, "azrdma-resume", "spare1", check=False)
        assert res.returncode != 0
    finally:
        cloud.emulator_admin("POST", "reset")
    assert "spare1" not in cloud.vms()
    out = _sync(cloud, "--dry-run")
    assert f"would {avset}: delete empty availability set" in out, out
    # Issue 17 item 4: a resume makes the set before its VMs, holding its
    # nodes' locks; while one is held the empty set may be about to fill.
    with azrdma.node_lock_held("spare2"):
        out = _sync(cloud)
    assert f"{avset}: delete" not in out, out
    assert f"{avset}: spare2 is busy" in azrdma.log_text()
    out = _sync(cloud)
    assert f"{avset}: delete empty availability set" in out, out
    deletes = [e for e in cloud.emulator_admin("GET", "log")
               if e["method"] == "DELETE"
               and e["path"].lower().endswith(f"/availabilitysets/{avset}")]
    assert deletes and deletes[-1]["status"] < 300, deletes
    # The set of fab3 holds (deallocated) VMs and stays.
    assert f"{cloud.prefix}-fab3: delete" not in out


@pytest.fixture(scope="module")
def orphan(cloud, azrdma):
    """A VM of the cluster running for a node Slurm does not know."""
    _as_slurm(cloud, "azrdma-resume", ORPHAN, check=False)
    assert cloud.vm_power(ORPHAN) == "running"
    return ORPHAN


def test_sync_leaves_an_orphan_alone_within_the_grace_period(cloud, orphan):
    out = _sync(cloud, "--grace", "3600")
    assert "deallocate" not in out, out
    assert cloud.vm_power(orphan) == "running"


def test_sync_dry_run_reports_the_orphan_and_changes_nothing(cloud, orphan):
    out = _sync(cloud, "--dry-run", "--grace", "0")
    assert re.search(rf"^would {orphan}: deallocate VM \(node unknown to Slurm",
                     out, re.M), out
    assert "(dry run)" in out
    assert cloud.vm_power(orphan) == "running"


def test_sync_deallocates_the_orphan(cloud, orphan):
    out = _sync(cloud, "--grace", "0")
    assert re.search(rf"^{orphan}: deallocate VM", out, re.M), out
    assert cloud.vm_power(orphan) == "deallocated"


ROGUE = "rogue1"


def _put_tagged_vm(world, name, tags):
    """A running VM (and its NIC) with these tags, made by someone else
    through ARM from the controller host (the test hooks' ARM client)."""
    world.run_ctl("/usr/bin/python3", "-B", "-c", (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import azt_power as p; "
        "conf = json.load(open(sys.argv[2])); arm = p.Arm(conf, print); "
        "rg = arm.rg_path; name = sys.argv[3]; tags = json.loads(sys.argv[4]); "
        "nic = f'{rg}/providers/Microsoft.Network/networkInterfaces/{name}-nic'; "
        "sub = f'{rg}/providers/Microsoft.Network/virtualNetworks/cluster/subnets/default'; "
        "_, h, _ = arm.call('PUT', nic, {'location': 'eastus', 'properties': "
        "{'ipConfigurations': [{'name': 'ipconfig1', 'properties': "
        "{'subnet': {'id': sub}}}]}}, api=p.NETWORK_API); arm.wait(h, 'nic'); "
        "_, h, _ = arm.call('PUT', f'{rg}/providers/Microsoft.Compute/virtualMachines/{name}', "
        "{'location': 'eastus', 'tags': tags, 'properties': {"
        "'hardwareProfile': {'vmSize': 'Standard_HB120rs_v3'}, "
        "'storageProfile': {'imageReference': {'publisher': 'almalinux', "
        "'offer': 'almalinux-hpc', 'sku': '8_7-hpc-gen2', 'version': 'latest'}}, "
        "'osProfile': {'computerName': name, 'adminUsername': 'azt', "
        "'linuxConfiguration': {'disablePasswordAuthentication': True, "
        "'ssh': {'publicKeys': []}}}, "
        "'networkProfile': {'networkInterfaces': [{'id': nic}]}}}); arm.wait(h, 'vm')"),
        HOOKS, world.hooks_conf_path, name, json.dumps(tags), timeout=120)


def test_sync_leaves_a_vm_whose_node_tag_names_no_node_of_azrdma_conf(cloud, azrdma):
    """Issue 18 item 4: the azrdma-node tag is anyone's to write, and sync
    used it as a lock file name.  A VM of the cluster whose tag names no
    node of azrdma.conf is reported and left alone; no file is made for it."""
    escape = os.path.join(os.path.dirname(azrdma.state_dir), "escaped")
    hostile = os.path.relpath(escape, os.path.join(azrdma.state_dir, "locks"))
    assert hostile.startswith("../"), hostile
    _put_tagged_vm(cloud, ROGUE, {"azrdma-cluster": cloud.prefix,
                                  "azrdma-node": hostile})
    out = _sync(cloud, "--grace", "0")
    assert ROGUE not in out, out
    assert not os.path.exists(escape)
    assert cloud.vm_power(ROGUE) == "running"
    assert re.search(rf"{ROGUE}: VM left alone: its tag azrdma-node="
                     rf"{re.escape(hostile)} names no node of \S+azrdma.conf",
                     azrdma.log_text()), azrdma.log_text()[-2000:]
    for sub in ("locks", "orphans", "journal", "images"):
        d = os.path.join(azrdma.state_dir, sub)
        if os.path.isdir(d):
            assert not [f for f in os.listdir(d) if "escaped" in f or ROGUE in f], \
                (sub, os.listdir(d))


FOREIGN = "f3n7"


def _delete_vm_and_nic(world, name):
    """Someone else deletes a VM and its NIC through ARM (404s are fine)."""
    world.run_ctl("/usr/bin/python3", "-B", "-c", (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import azt_power as p; "
        "conf = json.load(open(sys.argv[2])); arm = p.Arm(conf, print); "
        "rg = arm.rg_path; name = sys.argv[3]\n"
        "for path, api in ((f'{rg}/providers/Microsoft.Compute/virtualMachines/{name}', "
        "p.COMPUTE_API), (f'{rg}/providers/Microsoft.Network/networkInterfaces/{name}-nic', "
        "p.NETWORK_API)):\n"
        "    try:\n"
        "        _, h, _ = arm.call('DELETE', path, api=api); arm.wait(h, 'delete')\n"
        "    except p.ArmError as e:\n"
        "        assert e.status == 404, e"),
        HOOKS, world.hooks_conf_path, name, timeout=120)


def _a_job_finds_it_not_ours(cloud, azrdma, kind, path, looked_up=None):
    """A job on FOREIGN: its resume fails the node with "NotOurs" for the
    kind of resource, and calls ARM for path with nothing but GET (and
    with a GET of its own, or none, as looked_up says when not None)."""
    seen = max((e["seq"] for e in cloud.emulator_admin("GET", "log")), default=0)
    job_id = cloud.submit("-N", "1", "-p", "fab3", "-w", FOREIGN, wrap="true")
    try:
        cloud.wait_nodes([FOREIGN], lambda f: "DOWN" in f, 120, "the node DOWN")
        azrdma.wait_programs_done()
        assert re.search(rf"azrdma: NotOurs: {kind} \S+ is not azrdma's",
                         cloud.node(FOREIGN)["Reason"]), cloud.node(FOREIGN)
        calls = [e for e in cloud.emulator_admin("GET", "log")
                 if e["seq"] > seen and path in e["path"].lower()]
        acted = [e for e in calls if e["method"] != "GET"]
        assert not acted, acted
        if looked_up is not None:
            assert bool(calls) == looked_up, calls
    finally:
        cloud.run_ctl("scancel", str(job_id), check=False)


def _give_foreign_back(cloud, azrdma):
    """FOREIGN without a VM or NIC, powered down and not DOWN, for the
    tests after.  A node whose resume failed is powered down by slurmctld,
    and azrdma-suspend sets it DOWN again with its reason: wait for that
    before an admin's resume, or the resume is undone."""
    _delete_vm_and_nic(cloud, FOREIGN)
    _powered_down_in_service(cloud, azrdma)


def _powered_down_in_service(cloud, azrdma):
    cloud.wait_nodes([FOREIGN], lambda f: "POWERED_DOWN" in f
                     and not f & {"POWERING_DOWN", "POWER_DOWN"},
                     SUSPEND_TIMEOUT + 60, "powered down")
    azrdma.wait_programs_done()
    if "DOWN" in cloud.node_flags(FOREIGN):
        cloud.resume_down_node(FOREIGN)


def test_no_program_touches_a_vm_that_is_not_azrdmas(cloud, azrdma):
    """Issue 18 item 3: suspend, resume-fail and resume's re-create acted
    on any VM named after the node.  A VM without azrdma's tags for this
    cluster and node is reported and left alone by each of them."""
    cloud.wait_powered_down([FOREIGN])
    azrdma.wait_programs_done()
    _delete_vm_and_nic(cloud, FOREIGN)
    _put_tagged_vm(cloud, FOREIGN, {"owner": "someone-else"})
    refused = (rf"{FOREIGN}: VM {FOREIGN} is not azrdma's: its tags "
               rf"azrdma-cluster=\(none\) azrdma-node=\(none\) are not "
               rf"{cloud.prefix} and {FOREIGN}; left alone")
    try:
        for prog in ("azrdma-suspend", "azrdma-resume-fail"):
            before = len(re.findall(refused, azrdma.log_text()))
            _as_slurm(cloud, prog, FOREIGN, check=False)
            assert cloud.vm_power(FOREIGN) == "running", prog
            assert FOREIGN in cloud.vms(), prog
            assert len(re.findall(refused, azrdma.log_text())) == before + 1, \
                (prog, azrdma.log_text()[-2000:])
        # A job on the node: its resume neither starts nor re-creates the
        # VM (here deallocated by its owner), the node fails with the reason.
        _deallocate_behind_slurms_back(cloud, FOREIGN)
        cloud.scontrol("update", f"nodename={FOREIGN}", "state=power_down_force")
        cloud.wait_powered_down([FOREIGN])
        _a_job_finds_it_not_ours(cloud, azrdma, "VM",
                                 f"/virtualmachines/{FOREIGN}")
        assert cloud.vm_power(FOREIGN) == "deallocated"
    finally:
        _give_foreign_back(cloud, azrdma)


def _foreign_nic(world, name, tags=None):
    """Someone else's NIC <name>-nic: PUT with tags (tags given), or its
    tags as ARM has them (None: no such NIC)."""
    res = world.run_ctl("/usr/bin/python3", "-B", "-c", (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import azt_power as p; "
        "conf = json.load(open(sys.argv[2])); arm = p.Arm(conf, print); "
        "rg = arm.rg_path; name = sys.argv[3]; tags = json.loads(sys.argv[4]); "
        "nic = f'{rg}/providers/Microsoft.Network/networkInterfaces/{name}-nic'; "
        "sub = f'{rg}/providers/Microsoft.Network/virtualNetworks/cluster/subnets/default'\n"
        "if tags is not None:\n"
        "    _, h, _ = arm.call('PUT', nic, {'location': 'eastus', 'tags': tags, "
        "'properties': {'ipConfigurations': [{'name': 'ipconfig1', 'properties': "
        "{'subnet': {'id': sub}}}]}}, api=p.NETWORK_API); arm.wait(h, 'nic')\n"
        "try:\n"
        "    print(json.dumps(arm.call('GET', nic, api=p.NETWORK_API)[2].get('tags', {})))\n"
        "except p.ArmError as e:\n"
        "    assert e.status == 404, e; print('null')"),
        HOOKS, world.hooks_conf_path, name, json.dumps(tags), timeout=120)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_no_program_touches_a_nic_that_is_not_azrdmas(cloud, azrdma):
    """Issue 18 item 3, the NIC: resume-fail and suspend deleted the NIC
    named after the node whoever owned it, and resume overwrote it with a
    PUT.  A NIC without azrdma's tags for this cluster and node is now
    reported and left alone."""
    cloud.wait_powered_down([FOREIGN])
    azrdma.wait_programs_done()
    _delete_vm_and_nic(cloud, FOREIGN)
    theirs = {"owner": "someone-else"}
    assert _foreign_nic(cloud, FOREIGN, theirs) == theirs
    refused = (rf"NIC {FOREIGN}-nic is not azrdma's: its tags "
               rf"azrdma-cluster=\(none\) azrdma-node=\(none\) are not "
               rf"{cloud.prefix} and {FOREIGN}; left alone")
    try:
        # No VM: resume-fail goes for the NIC, and leaves this one.
        before = len(re.findall(refused, azrdma.log_text()))
        _as_slurm(cloud, "azrdma-resume-fail", FOREIGN, check=False)
        assert _foreign_nic(cloud, FOREIGN) == theirs
        assert len(re.findall(refused, azrdma.log_text())) == before + 1, \
            azrdma.log_text()[-2000:]
        # A job on the node: its resume does not overwrite the NIC, told
        # whose it is by the list of the resource group's NICs ...
        nic = f"/networkinterfaces/{FOREIGN}-nic"
        _a_job_finds_it_not_ours(cloud, azrdma, "NIC", nic, looked_up=False)
        # ... or, that list failing, by a lookup of its own.
        _powered_down_in_service(cloud, azrdma)
        cloud.emulator_admin("POST", "faults", {
            "method": "GET", "path": r"/networkInterfaces$", "count": 1,
            "status": 403, "code": "AuthorizationFailed",
            "message": "injected: the NIC list is refused"})
        _a_job_finds_it_not_ours(cloud, azrdma, "NIC", nic, looked_up=True)
        assert "injected: the NIC list is refused" in azrdma.log_text()
        assert _foreign_nic(cloud, FOREIGN) == theirs
        assert FOREIGN not in cloud.vms()
    finally:
        _give_foreign_back(cloud, azrdma)


def _forget_made_files(azrdma):
    """What a run makes when it is missing: lock files, orphan stamps and
    the token cache (no program runs now)."""
    azrdma.wait_programs_done()
    for sub in ("locks", "orphans"):
        shutil.rmtree(os.path.join(azrdma.state_dir, sub), ignore_errors=True)
    for path in glob.glob(os.path.join(azrdma.state_dir, "token-*.json")):
        os.unlink(path)


def test_sync_dry_run_changes_nothing_in_state_dir(cloud, azrdma):
    """Issue 18 item 5: --dry-run made lock files, the orphans directory
    and the token cache.  It now changes nothing at all."""
    _forget_made_files(azrdma)
    before, after, out = azrdma.state_around(
        lambda: _sync(cloud, "--dry-run", "--grace", "0"))
    assert "(dry run)" in out, out
    assert after == before


def test_programs_keep_state_dir_slurm_users_whoever_runs_them(cloud, azrdma):
    """Issue 18 item 5: run by root, azrdma-sync made StateDir files (lock
    files, the token cache) SlurmUser could not use later: its nodes went
    DOWN with "Permission denied".  Root now runs as SlurmUser; any other
    user is refused and told whom to run as."""
    slurm = pwd.getpwnam("slurm").pw_uid
    _forget_made_files(azrdma)
    res = cloud.run_ctl(program("azrdma-sync"), check=False, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    made = azrdma.state_files()
    assert any("/locks/" in p for p in made), made
    assert any("/token-" in p for p in made), made
    assert {p: u for p, (u, _) in made.items() if u != slurm} == {}
    assert os.stat(azrdma.log_path).st_uid == slurm
    # Not root, not SlurmUser: refused before anything is touched.
    before, after, res = azrdma.state_around(lambda: cloud.run_ctl(
        "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
        program("azrdma-sync"), "--dry-run", check=False, timeout=180))
    assert res.returncode != 0
    assert re.search(r"running as uid \d+, but StateDir \S+ and LogFile must "
                     r"stay SlurmUser's: run this as slurm \(uid \d+\), "
                     r"e.g. sudo -u slurm", res.stderr + res.stdout), \
        res.stderr + res.stdout
    assert after == before
    # SlurmUser goes on as before in what root left.
    assert "Permission denied" not in _sync(cloud)


def test_sync_resets_the_address_of_a_powered_down_node(cloud, azrdma):
    cloud.wait_powered_down([STALE])
    cloud.scontrol("update", f"nodename={STALE}", "nodeaddr=10.123.250.250")
    out = _sync(cloud)
    want = cloud.slurm.powered_down_addr(STALE)
    assert f"{STALE}: reset NodeAddr 10.123.250.250 of a powered-down node to {want}" \
        in out, out
    assert cloud.node(STALE)["NodeAddr"] == want
    # And a name, on a release that would look it up (an admin's update,
    # or cloud_reg_addrs at power down).
    cloud.scontrol("update", f"nodename={STALE}", f"nodeaddr={STALE}")
    out = _sync(cloud)
    if want == STALE:
        assert f"{STALE}: reset NodeAddr" not in out, out
    else:
        assert f"{STALE}: reset NodeAddr {STALE} of a powered-down node to {want}" \
            in out, out
    assert cloud.node(STALE)["NodeAddr"] == want


def test_sync_downs_a_node_whose_vm_went_away_behind_slurms_back(cloud, azrdma):
    cloud.wait_powered_down([ZOMBIE])
    job_id = cloud.submit("-N", "1", "-p", "fab3", "-w", ZOMBIE, wrap="sleep 300")
    try:
        cloud.wait_job_running(job_id, timeout=120)
        # The job runs as the node registers: the resume may still wait
        # for Azure to say the VM is made, its lock held (sync skips the
        # node meanwhile).
        azrdma.wait_programs_done()
        # azrdma-suspend leaves a node a job holds alone (see
        # test_power_save_faults.py): deallocate as a user in the portal.
        _deallocate_behind_slurms_back(cloud, ZOMBIE)
        assert cloud.vm_power(ZOMBIE) == "deallocated"
        out = _sync(cloud)
        assert f"{ZOMBIE}: set DOWN (VM deallocated while the node is up)" in out
        rec = cloud.node(ZOMBIE)
        assert "DOWN" in rec["State"]
        assert rec["Reason"].startswith("azrdma: sync: VM deallocated")
    finally:
        cloud.run_ctl("scancel", str(job_id))
        cloud.wait_nodes([ZOMBIE], lambda f: "POWERING_DOWN" not in f, 90,
                         "not powering down")
        azrdma.wait_programs_done()
        if "DOWN" in cloud.node_flags(ZOMBIE):
            cloud.scontrol("update", f"nodename={ZOMBIE}", "state=power_down_force")
            cloud.wait_nodes([ZOMBIE], lambda f: "POWERED_DOWN" in f, 90,
                             "powered down")
            azrdma.wait_programs_done()
            if "DOWN" in cloud.node_flags(ZOMBIE):
                cloud.resume_down_node(ZOMBIE)




def _nics(world):
    return {n["name"] for n in world.emulator_admin("GET", "nics")}


def test_sync_keeps_the_journal_until_the_nic_of_a_killed_resume_is_gone(
        cloud, azrdma):
    """Issue 17 item 5: a failed NIC delete left the journal cleared and
    the NIC (and its address) leaked; the entry stays until the NIC is
    gone, and the next sync deletes it."""
    nic = f"{HALFWAY}-nic"
    cloud.wait_powered_down([HALFWAY])
    assert HALFWAY not in cloud.vms() and nic not in _nics(cloud), \
        f"{HALFWAY} has a VM or NIC from an earlier test: pick another node"
    # The VM's creation fails slowly: the resume is killed while it waits,
    # with its NIC made and no VM.
    cloud.emulator_admin("POST", "faults", {
        "method": "PUT", "path": rf"/virtualMachines/{HALFWAY}$", "count": 1,
        "status": 500, "seconds": 60})
    resume = cloud.ctl.popen(["setpriv", "--reuid=slurm", "--regid=slurm",
                              "--init-groups", program("azrdma-resume"), HALFWAY],
                             env=cloud._env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "step=vm" in (azrdma.journal(HALFWAY) or ""), 60,
                 f"{HALFWAY}: resume at its VM")
    finally:
        os.kill(resume.pid, signal.SIGKILL)
        resume.wait(30)
    cloud.emulator_admin("DELETE", "faults")
    assert nic in _nics(cloud)
    assert "nic=made" in azrdma.journal(HALFWAY)
    cloud.emulator_admin("POST", "faults", {
        "method": "DELETE", "path": rf"/networkInterfaces/{nic}$", "count": 20,
        "status": 409, "code": "Conflict", "message": "Injected: NIC in use."})
    try:
        res = _as_slurm(cloud, "azrdma-sync", check=False)
        assert f"{HALFWAY}: delete NIC {nic}" in res.stdout, res.stdout
        assert res.returncode == 1, res.stdout + res.stderr
    finally:
        cloud.emulator_admin("DELETE", "faults")
    assert nic in _nics(cloud)
    assert "nic=made" in (azrdma.journal(HALFWAY) or ""), \
        "the journal was cleared though the NIC is still there"
    out = _sync(cloud)
    assert f"{HALFWAY}: delete NIC {nic}" in out, out
    assert nic not in _nics(cloud)
    assert azrdma.journal(HALFWAY) is None


def test_sync_reads_a_node_again_before_setting_it_down(cloud, azrdma):
    """Issue 17 item 4: sync read Slurm's nodes, then the VMs; a node Slurm
    suspended in between (VM deallocated, node powered down) looked like a
    node up without its VM and was set DOWN.  With the node's lock held,
    sync reads its state and its VM again."""
    cloud.wait_powered_down([SUSPENDED])
    job_id = cloud.submit("-N", "1", "-p", "fab3", "-w", SUSPENDED, wrap="true")
    cloud.wait_job(job_id, timeout=180)
    # The VM list answers late: Slurm suspends the idle node meanwhile.
    cloud.emulator_admin("POST", "faults", {
        "method": "GET", "count": 1, "action": "delay", "seconds": 40,
        "path": r"^/subscriptions/[^/]+/providers/Microsoft.Compute/virtualMachines$"})
    try:
        sync = cloud.ctl.popen(["setpriv", "--reuid=slurm", "--regid=slurm",
                                "--init-groups", program("azrdma-sync")],
                               env=cloud._env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        out, _ = sync.communicate(timeout=180)
    finally:
        cloud.emulator_admin("DELETE", "faults")
    assert cloud.vm_power(SUSPENDED) == "deallocated", \
        "Slurm did not suspend the node while sync waited: the test proves nothing"
    assert f"{SUSPENDED}: set DOWN" not in out, out
    assert "DOWN" not in cloud.node_flags(SUSPENDED), cloud.node(SUSPENDED)
    assert f"{SUSPENDED}: changed while sync looked (powered down)" in azrdma.log_text()
