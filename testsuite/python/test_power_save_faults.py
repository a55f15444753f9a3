"""azrdma's power-save programs under Azure's failures: a 429 storm, 5xx
answers, dropped connections and an expired token cost time, not nodes; a
resume killed with SIGKILL half-way is cleaned up by azrdma-resume-fail at
ResumeTimeout; a suspend racing a resume on one node waits for it; a resume
outlives a slurmctld restart."""

import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from lib.azrdma_world import azrdma_power_save, have_programs, program
from lib import world as world_mod
from lib.wait import wait_for

pytestmark = pytest.mark.skipif(
    not have_programs(), reason="azrdma power-save programs not built "
    "(set AZRDMA_BUILDDIR)")

# Short, so that the killed resume is found soon; long enough for a VM
# create and boot on a 2-core machine that runs two worlds and builds at
# once (testsuite/run).
RESUME_TIMEOUT = 45
GHOST_DOMAIN = "Domain=fab9 Nodes=ghost[1-2] VmSize=Standard_HB120rs_v3"

# node -> (what goes wrong, faults); every fault matches the node's own
# requests only, so the four jobs run at once.
TRANSIENT = {
    "f3n1": ("429 storm", [
        {"method": "*", "path": r"/virtualMachines/f3n1(/start)?$", "count": 6,
         "status": 429, "retryAfter": 1}]),
    "f3n2": ("5xx", [
        {"method": "*", "path": r"/virtualMachines/f3n2(/start)?$", "count": 2,
         "status": 500},
        {"method": "*", "path": r"/virtualMachines/f3n2(/start)?$", "count": 1,
         "status": 503}]),
    "f3n3": ("dropped connections", [
        {"method": "*", "path": r"/virtualMachines/f3n3(/start)?$", "count": 3,
         "action": "drop"}]),
}
TOKEN_NODE = "f3n4"
KILLED = "f3n5"
RESTARTED = "f3n2"
RACED = "ghost1"
OTHER_IMAGE = "alma9"
OTHER_URN = "almalinux:almalinux-hpc:9-hpc-gen2:latest"


@pytest.fixture(scope="module")
def azrdma(cloud):
    extra = (GHOST_DOMAIN + f" AvailabilitySet={cloud.prefix}-fab9\n"
             f"Image={OTHER_IMAGE} Urn={OTHER_URN}\n")
    with azrdma_power_save(cloud, extra_conf=extra,
                           slurm_overrides={"ResumeTimeout": str(RESUME_TIMEOUT)}) \
            as setup:
        yield setup
        cloud.emulator_admin("POST", "reset")


def _requests(world, pattern):
    pat = re.compile(pattern)
    return [e for e in world.emulator_admin("GET", "log") if pat.search(e["path"])]


@pytest.fixture(scope="module")
def transient_jobs(cloud, azrdma):
    """One job per faulted node, all at once; {node: finished job}."""
    nodes = list(TRANSIENT)
    cloud.wait_powered_down(nodes)
    for _, faults in TRANSIENT.values():
        for fault in faults:
            cloud.emulator_admin("POST", "faults", fault)
    jobs = {n: cloud.submit("-N", "1", "-p", "fab3", "-w", n, wrap="hostname")
            for n in nodes}
    done = {n: cloud.wait_job(j, timeout=180) for n, j in jobs.items()}
    left = [f for f in cloud.emulator_admin("GET", "faults") if f.get("remaining")]
    assert not left, f"faults never hit: {left}"
    return {n: (jobs[n], done[n]) for n in nodes}


@pytest.mark.parametrize("node", list(TRANSIENT))
def test_transient_arm_failures_cost_time_not_the_node(cloud, transient_jobs, node):
    job_id, job = transient_jobs[node]
    assert job["JobState"] == "COMPLETED"
    assert cloud.job_output(job_id).split() == [node]
    statuses = [e["status"] for e in _requests(cloud, rf"/virtualMachines/{node}")]
    what = TRANSIENT[node][0]
    if what == "429 storm":
        assert statuses.count(429) == 6, statuses
    elif what == "5xx":
        assert statuses.count(500) == 2 and statuses.count(503) == 1, statuses
    assert "DOWN" not in cloud.node_flags(node)


def test_expired_token_is_renewed(cloud, azrdma):
    cloud.wait_powered_down([TOKEN_NODE])
    # A first resume fills the token cache; then every token expires.
    seen = len(cloud.emulator_admin("GET", "log"))
    cloud.emulator_admin("POST", "tokens/expire")
    job_id = cloud.submit("-N", "1", "-p", "fab3", "-w", TOKEN_NODE, wrap="hostname")
    cloud.wait_job(job_id, timeout=180)
    assert "DOWN" not in cloud.node_flags(TOKEN_NODE)
    after = cloud.emulator_admin("GET", "log")[seen:]
    assert any(e["status"] == 401 for e in after), \
        "the cached token was never refused: the test proves nothing"


def _resume_pids(azrdma, node):
    return [pid for pid, argv in azrdma.running_programs()
            if os.path.basename(argv[0]) == "azrdma-resume" and node in argv[1:]]


def test_resume_killed_half_way_is_cleaned_up_at_resume_timeout(cloud, azrdma):
    cloud.wait_powered_down([KILLED])
    cloud.emulator_admin("POST", "faults", {
        "method": "PUT", "path": rf"/networkInterfaces/{KILLED}-nic$", "count": 1,
        "action": "delay", "seconds": 4})
    cloud.scontrol("update", f"nodename={KILLED}", "state=power_up")
    wait_for(lambda: "step=nic" in (azrdma.journal(KILLED) or ""), 30,
             f"{KILLED}: resume at its NIC")
    pids = wait_for(lambda: _resume_pids(azrdma, KILLED), 10, "the resume's pid")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    # Nothing tells slurmctld; ResumeTimeout does, and ResumeFailProgram
    # removes the NIC the killed resume left.
    def _down():
        rec = cloud.node(KILLED)
        return rec if "DOWN" in rec["State"] else None
    rec = wait_for(_down, RESUME_TIMEOUT + 30, f"{KILLED} DOWN at ResumeTimeout",
                   interval=0.5)
    assert "ResumeTimeout" in rec.get("Reason", ""), rec
    wait_for(lambda: f"{KILLED}: missed ResumeTimeout" in azrdma.log_text(), 30,
             "azrdma-resume-fail to run")
    azrdma.wait_programs_done()
    deletes = [e for e in _requests(cloud, rf"/networkInterfaces/{KILLED}-nic$")
               if e["status"] < 300 and e["method"] == "DELETE"]
    assert deletes, "the NIC of the killed resume was left behind"
    assert KILLED not in cloud.vms()
    assert azrdma.journal(KILLED) is None
    cloud.resume_down_node(KILLED)
    cloud.wait_powered_down([KILLED], timeout=60)


def test_suspend_racing_a_resume_waits_for_it(cloud, azrdma):
    cloud.emulator_admin("POST", "faults", {
        "method": "PUT", "path": rf"/virtualMachines/{RACED}$", "count": 1,
        "action": "delay", "seconds": 3})
    cmd = ["setpriv", "--reuid=slurm", "--regid=slurm", "--init-groups"]
    resume = cloud.ctl.popen(cmd + [program("azrdma-resume"), RACED],
                             env=cloud._env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    wait_for(lambda: "step=vm" in (azrdma.journal(RACED) or ""), 30,
             f"{RACED}: resume at its VM")
    suspend = cloud.ctl.popen(cmd + [program("azrdma-suspend"), RACED],
                              env=cloud._env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    resume.wait(120)
    suspend.wait(120)
    assert suspend.returncode == 0
    log = azrdma.log_text()
    running = log.index(f"{RACED}: VM running")
    deallocated = log.index(f"{RACED}: VM deallocated")
    assert running < deallocated, log[-3000:]
    assert cloud.vm_power(RACED) == "deallocated"
    assert azrdma.journal(RACED) is None


IN_USE = "f3n7"


def _suspend_by_hand(world, node):
    return world.run_ctl("setpriv", "--reuid=slurm", "--regid=slurm",
                         "--init-groups", program("azrdma-suspend"), node,
                         check=False, timeout=180)


def test_suspend_leaves_the_vm_of_a_node_a_newer_job_holds(cloud, azrdma):
    """Issue 17 item 3: a suspend that got a node's lock late (after a
    resume held it past SuspendTimeout) deallocated the VM a newer job was
    starting on; it reads the node's state again once it holds the lock."""
    cloud.wait_powered_down([IN_USE])
    job_id = cloud.submit("-N", "1", "-p", "fab3", "-w", IN_USE, wrap="sleep 120")
    try:
        cloud.wait_job_running(job_id, timeout=120)
        res = _suspend_by_hand(cloud, IN_USE)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"{IN_USE}: in use by a newer job" in azrdma.log_text()
        assert cloud.vm_power(IN_USE) == "running"
        assert cloud.job(job_id)["JobState"] == "RUNNING"
    finally:
        cloud.run_ctl("scancel", str(job_id))
        cloud.wait_powered_down([IN_USE], timeout=120)


def test_suspend_waits_for_a_lock_no_longer_than_suspend_timeout(cloud, azrdma):
    """Issue 17 item 3: the lock wait (600 s) outlived SuspendTimeout, after
    which slurmctld gives the node to newer jobs."""
    with azrdma.node_lock_held("ghost2"):
        res = _suspend_by_hand(cloud, "ghost2")
    assert res.returncode == 1, res.stdout + res.stderr
    # SuspendTimeout is 5 s here, so the floor of 30 s; the wait was 600 s
    # whatever SuspendTimeout was.
    assert "ghost2: another azrdma program holds its lock (waited 30 s)" \
        in azrdma.log_text()


def test_resume_survives_a_slurmctld_restart(cloud, azrdma):
    cloud.wait_powered_down([RESTARTED])
    cloud.emulator_admin("POST", "faults", {
        "method": "*", "path": rf"/virtualMachines/{RESTARTED}(/start)?$", "count": 1,
        "action": "delay", "seconds": 5})
    job_id = cloud.submit("-N", "1", "-p", "fab3", "-w", RESTARTED, wrap="hostname")
    wait_for(lambda: _resume_pids(azrdma, RESTARTED), 60,
             f"{RESTARTED}: resume running")
    cloud.restart_slurmctld()
    cloud.wait_job(job_id, timeout=180)
    assert cloud.job_output(job_id).split() == [RESTARTED]
    assert cloud.vm_power(RESTARTED) == "running" or \
        cloud.vm_power(RESTARTED) == "deallocated"


ADDR_NODES = ["f3n6", "f3n8"]


def test_addresses_reach_slurmctld_across_its_restart(cloud, azrdma):
    """Issue 17 item 6: slurmctld was away when the resume sent the nodes'
    addresses ("Unable to contact slurm controller") and the resume never
    sent them again.  It now sends them until slurmctld takes them, its
    node locks held meanwhile.  And the job recovered across the restart
    runs: before Slurm 23.11.4 it would start without its nodes' addresses
    (its srun hung on the names), so the resume requeues it."""
    cloud.wait_powered_down(ADDR_NODES)
    cloud.emulator_admin("POST", "faults", {
        "method": "PUT", "path": r"/networkInterfaces/f3n[68]-nic$", "count": 2,
        "action": "delay", "seconds": 6})
    job_id = cloud.submit("-N", "2", "-p", "fab3", "-w", ",".join(ADDR_NODES),
                          wrap="srun hostname")
    try:
        wait_for(lambda: _resume_pids(azrdma, "f3n[6,8]"), 60, "the resume running")
        ctld = cloud.procs.pop("slurmctld")
        world_mod._terminate(ctld, 30)
        # The resume meets slurmctld going away: a node's push fails and is
        # tried again, or (26.05) slurmctld resets the two nodes' push and
        # takes each alone while it stops.
        try:
            wait_for(lambda: ("not set" in azrdma.log_text()
                              and "again in" in azrdma.log_text())
                     or "each alone now" in azrdma.log_text(), 60,
                     "the resume to find slurmctld away")
        finally:
            cloud._start_slurmctld()
        azrdma.wait_programs_done()
        assert "gave up" not in azrdma.log_text()
        # What counts: the restarted slurmctld has both addresses (while the
        # job holds the nodes; a requeued job's nodes may power down).
        if f"job {job_id}: slurmctld restarted" not in azrdma.log_text():
            vms = cloud.vms()
            for node in ADDR_NODES:
                assert cloud.node(node)["NodeAddr"] == vms[node]["privateIp"], \
                    (cloud.node(node), vms[node], azrdma.log_text()[-3000:])
        # A requeued job waits for its credential's lifetime (AuthInfo's
        # cred_expire, 20 s in the test world).
        job = cloud.wait_job(job_id, timeout=420)
        out = cloud.job_output(job_id)
        assert sorted(w for w in out.split() if w in ADDR_NODES) == ADDR_NODES, out
        if f"job {job_id}: slurmctld restarted" in azrdma.log_text():
            assert int(job["Restarts"]) >= 1, job
    finally:
        cloud.run_ctl("scancel", str(job_id))
        azrdma.wait_programs_done()
        cloud.wait_powered_down(ADDR_NODES, timeout=120)


class SiteDns:
    """A site's own DNS server on the controller host (127.0.0.53) that
    cannot resolve the VMs' names: it never answers a query for one of
    nodes (its upstream does not), and every other query (the controller's
    own reverse lookups among them) at once with NXDOMAIN.  It records the
    names it is asked."""

    ADDR = "127.0.0.53"

    def __init__(self, host, nodes):
        self.nodes = set(nodes)
        self.sock = host.bind_udp(self.ADDR, 53)
        self.sock.settimeout(0.2)
        self.names = []
        self._stop = False
        self._thread = threading.Thread(target=self._listen, name="site-dns",
                                        daemon=True)
        self._thread.start()

    def _listen(self):
        while not self._stop:
            try:
                packet, peer = self.sock.recvfrom(512)
            except (socket.timeout, OSError):
                continue
            labels, pos = [], 12
            while pos < len(packet) and packet[pos]:
                labels.append(packet[pos + 1:pos + 1 + packet[pos]].decode(
                    "ascii", "replace"))
                pos += 1 + packet[pos]
            name = ".".join(labels)
            self.names.append(name)
            if len(packet) < pos + 5 or name.split(".")[0].lower() in self.nodes:
                continue
            # NXDOMAIN: the id, QR|RD|RA and rcode 3, the question echoed.
            flags = 0x8000 | (packet[2] << 8 & 0x0100) | 0x0080 | 3
            reply = packet[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) \
                + packet[12:pos + 5]
            self.sock.sendto(reply, peer)

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


def _looked_up(names, nodes):
    return [n for n in names if n.split(".")[0].lower() in nodes]


@pytest.mark.parametrize("dns", ["site", "vnet"])
def test_a_job_cancelled_before_its_addresses_makes_slurmctld_look_up_no_node(
        cloud, azrdma, dns):
    """Issue 17 item 7: cancelling a job whose nodes were still powering up
    stalled slurmctld (Slurm before 23.11.2 sends them the kill and looked
    their names up, every other RPC waiting for DNS).  Slurm must never
    have to resolve a name azrdma has given no address: with a site's DNS
    that does not answer, and with Azure's VNet DNS, which knows the names
    of running VMs only, slurmctld asks neither for the nodes."""
    nodes = ADDR_NODES
    cloud.wait_powered_down(nodes)
    for node in nodes:
        assert cloud.node(node)["NodeAddr"] == cloud.slurm.powered_down_addr(node)
    site = None
    if dns == "site":
        site = SiteDns(cloud.ctl, nodes)
        # A resolver's defaults: 5 s a try, two tries.
        cloud.set_controller_dns(SiteDns.ADDR, "timeout:5 attempts:2")
    else:
        cloud.set_controller_dns("vnet")
    vnet_before = len(cloud.dns_queries())
    log = cloud.path("logs", "slurmctld.log")
    start = os.path.getsize(log)
    # The resume holds at the NICs (a new one's PUT, or an existing VM's
    # NIC GET), before it knows the addresses.
    cloud.emulator_admin("POST", "faults", {
        "method": "*", "path": r"/networkInterfaces/f3n[68]-nic$", "count": 2,
        "action": "delay", "seconds": 8})
    job_id = cloud.submit("-N", "2", "-p", "fab3", "-w", ",".join(nodes),
                          wrap="srun hostname")
    try:
        wait_for(lambda: _resume_pids(azrdma, "f3n[6,8]"), 60, "the resume running")
        # Cancelled while the nodes have no address of a VM yet.
        addrs = {n: cloud.node(n)["NodeAddr"] for n in nodes}
        cloud.run_ctl("scancel", str(job_id))
        assert addrs == {n: cloud.slurm.powered_down_addr(n) for n in nodes}, addrs
        # slurmctld answers at once, the kill sent (before 23.11.2) or not.
        t0 = time.monotonic()
        for _ in range(5):
            cloud.run_ctl("scontrol", "ping", timeout=30)
            cloud.run_ctl("squeue", "-h", timeout=30)
        answered = time.monotonic() - t0
        cloud.wait_job(job_id, timeout=60, states=("CANCELLED",))
        azrdma.wait_programs_done()
        # The resume went on: the nodes are up (or already powering down
        # again), none DOWN.
        for node in nodes:
            state = cloud.node(node)["State"]
            assert "DOWN" not in state.split("+")[0] and "FAIL" not in state, \
                (node, state, azrdma.log_text()[-2000:])
        with open(log, errors="replace") as f:
            f.seek(start)
            text = f.read()
        asked = _looked_up(site.names if site else
                           [q["name"] for q in cloud.dns_queries()[vnet_before:]],
                           nodes)
        assert not asked, (asked, answered)
        for node in nodes:
            assert f'Unable to resolve "{node}"' not in text, text[-3000:]
            assert f"can't find address for host {node}" not in text, text[-3000:]
    finally:
        cloud.set_controller_dns(None)
        if site:
            site.close()
        cloud.run_ctl("scancel", str(job_id), check=False)
        azrdma.wait_programs_done()
        cloud.wait_powered_down(nodes, timeout=120)


def test_feature_reboot_recreates_the_vm_with_the_requested_image(cloud, azrdma):
    """ResumeProgram <nodes> <features> with SLURM_JOB_ID (a feature reboot)."""
    node = RACED
    assert node in cloud.vms(), "needs the VM of the race test"
    puts = len(_requests(cloud, rf"/virtualMachines/{node}$"))
    res = cloud.run_ctl("setpriv", "--reuid=slurm", "--regid=slurm", "--init-groups",
                        program("azrdma-resume"), node, f"rdma,img_{OTHER_IMAGE}",
                        env={"SLURM_JOB_ID": "77"}, check=False, timeout=180)
    vm = cloud.vms()[node]
    assert "9-hpc-gen2" in vm["image"], vm
    assert vm["tags"]["azrdma-job"] == "77"
    calls = _requests(cloud, rf"/virtualMachines/{node}$")
    assert any(e["method"] == "DELETE" for e in calls[puts:]), "VM not recreated"
    assert res.returncode == 0, azrdma.log_text()[-2000:]
    _as = ["setpriv", "--reuid=slurm", "--regid=slurm", "--init-groups"]
    cloud.run_ctl(*_as, program("azrdma-suspend"), node, timeout=180)


def test_failed_availability_set_fails_the_node_and_removes_its_nic(cloud, azrdma):
    """A NIC no longer waits for its domain's availability set: when the set
    fails while the NIC PUT is still under way, the node fails with the
    set's error once the NIC has answered, and its NIC is removed.  (ghost2
    is in azrdma.conf only, not in Slurm: the program is run by hand.)  The
    set fails after 1.5 s, so the resource group's VM list has answered and
    the NIC PUT is under way; it answers after 4 s."""
    node = "ghost2"
    assert node not in cloud.vms()
    cloud.emulator_admin("POST", "faults", [
        {"method": "PUT", "path": rf"/availabilitySets/{cloud.prefix}-fab9$",
         "count": 1, "status": 400, "code": "InvalidParameter",
         "message": "injected: the availability set cannot be made", "seconds": 1.5},
        {"method": "PUT", "path": rf"/networkInterfaces/{node}-nic$",
         "count": 1, "action": "delay", "seconds": 4}])
    res = cloud.run_ctl("setpriv", "--reuid=slurm", "--regid=slurm",
                        "--init-groups", program("azrdma-resume"), node,
                        check=False, timeout=120)
    log = azrdma.log_text()
    assert res.returncode == 1, log[-2000:]
    assert re.search(rf"error: {node}: azrdma: InvalidParameter: .*injected", log), \
        log[-2000:]
    nic = [e for e in _requests(cloud, rf"/networkInterfaces/{node}-nic$")
           if e["status"] < 300]
    assert [e["method"] for e in nic] == ["PUT", "DELETE"], nic
    assert node not in cloud.vms()
    assert node not in [n["name"] for n in cloud.emulator_admin("GET", "nics")]
    assert azrdma.journal(node) is None


def test_availability_set_failing_before_the_vm_list_sends_no_nic(cloud, azrdma):
    """The other order: the set fails while the resource group's VM list is
    still under way, so the node fails with the set's error and no NIC is
    ever made for it."""
    node = "ghost2"
    assert node not in cloud.vms()
    log_before = len(azrdma.log_text())
    seen = len(_requests(cloud, rf"/networkInterfaces/{node}-nic$"))
    cloud.emulator_admin("POST", "faults", [
        {"method": "PUT", "path": rf"/availabilitySets/{cloud.prefix}-fab9$",
         "count": 1, "status": 400, "code": "InvalidParameter",
         "message": "injected: the set fails first"},
        {"method": "GET", "path": r"/providers/Microsoft\.Compute/virtualMachines$",
         "count": 1, "action": "delay", "seconds": 1.5}])
    res = cloud.run_ctl("setpriv", "--reuid=slurm", "--regid=slurm",
                        "--init-groups", program("azrdma-resume"), node,
                        check=False, timeout=120)
    log = azrdma.log_text()[log_before:]
    assert res.returncode == 1, log[-2000:]
    assert re.search(rf"error: {node}: azrdma: InvalidParameter: injected: the set fails "
                     r"first", log), log[-2000:]
    assert _requests(cloud, rf"/networkInterfaces/{node}-nic$")[seen:] == []
    assert node not in cloud.vms()
    assert azrdma.journal(node) is None


def test_addresses_slurm_refuses_are_each_reported(cloud, azrdma):
    """Neither ghost is a Slurm node, so slurmctld refuses their addresses,
    whether they are pushed together or alone: each is reported under its
    own name, and the resume goes on to make both VMs."""
    nodes = ["ghost1", "ghost2"]
    log_before = len(azrdma.log_text())
    _as = ["setpriv", "--reuid=slurm", "--regid=slurm", "--init-groups"]
    res = cloud.run_ctl(*_as, program("azrdma-resume"), "ghost[1-2]",
                        check=False, timeout=180)
    log = azrdma.log_text()[log_before:]
    try:
        for node in nodes:
            assert re.search(rf"error: {node}: NodeAddr=[0-9.]+ not set: .*Invalid node",
                             log), log[-3000:]
            assert cloud.vm_power(node) == "running", log[-3000:]
        assert res.returncode == 0, log[-3000:]
    finally:
        cloud.run_ctl(*_as, program("azrdma-suspend"), "ghost[1-2]", timeout=180)
    assert all(cloud.vm_power(n) == "deallocated" for n in nodes)
