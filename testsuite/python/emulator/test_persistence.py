"""The world survives a restart of the emulator; SIGTERM stops it cleanly."""

import os
import signal
import socket
import subprocess

from conftest import Emulator, SUB, private_ip


def test_state_survives_a_restart(make_emulator, rg):
    emu = make_emulator({"timing": {"create": 3}})
    with open(os.path.join(emu.state_dir, "ca.pem")) as f:
        ca = f.read()
    emu.put_avset(rg, "set1")
    ppg = emu.rg_path(rg) + "/providers/Microsoft.Compute/proximityPlacementGroups/g1"
    assert emu.arm("PUT", ppg, {"location": "eastus"}).status == 201
    emu.admin("POST", "timing", {"create": 0.2})
    done = emu.create_vm(rg, "vm1", avset="set1")
    assert done.final["status"] == "Succeeded"
    emu.admin("POST", "timing", {"create": 1.5})
    emu.admin("POST", "capacity", {"availabilitySet": "set1", "remaining": 5})
    pending = emu.create_vm(rg, "vm2", avset="set1", wait=False)
    token = emu.token()
    before = emu.vms()

    emu.restart()
    with open(os.path.join(emu.state_dir, "ca.pem")) as f:
        assert f.read() == ca  # clients keep trusting the same CA
    # The old token is still valid, the operation in progress completes after the restart.
    final = emu.wait_op(pending)
    assert final["status"] == "Succeeded"
    after = emu.vms()
    assert after["vm1"] == before["vm1"]
    assert after["vm2"]["fabric"] == after["vm1"]["fabric"]
    assert emu.arm("GET", emu.avset_path(rg, "set1"), token=token).status == 200
    assert emu.arm("GET", ppg).status == 200
    nic = emu.arm("GET", emu.nic_path(rg, "vm1-nic"), api="2024-05-01")
    assert private_ip(nic.json) == before["vm1"]["privateIp"]
    # Capacity counters persist too (5 - 1 for vm2, taken before the restart).
    assert emu.admin("GET", "capacity")["availabilitySets"]["set1"] == 4
    # New addresses do not reuse old ones.
    assert private_ip(emu.put_nic(rg, "n3").json) not in \
        {before["vm1"]["privateIp"], after["vm2"]["privateIp"]}


def test_sigterm_stops_the_emulator_and_frees_the_port(tmp_path):
    emu = Emulator(str(tmp_path / "e")).start()
    vms = f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"
    assert emu.arm("GET", vms).status == 200
    emu.proc.send_signal(signal.SIGTERM)
    assert emu.proc.wait(20) == 0
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", emu.port))


def test_bad_options_exit_2(tmp_path):
    emu = Emulator(str(tmp_path / "e"),
                   args=["--netns-prefix", "toolongprefix", "--cluster-bridge", "br",
                         "--cluster-cidr", "10.9.0.0/16", "--boot-hook", "/bin/true"])
    proc = subprocess.run(emu.command(), capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and "at most 5 characters" in proc.stderr


def test_bad_scenario_is_refused(tmp_path):
    emu = Emulator(str(tmp_path / "e"), scenario={"timng": {}})
    proc = subprocess.run(emu.command(), capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and "unknown scenario keys: timng" in proc.stderr
