"""The controller host alone: namespaces, munged, slurmctld, slurm.conf."""

import os


def test_controller_host_has_its_own_hostname_and_cluster_address(world):
    assert world.run_ctl("hostname").stdout.strip() == f"{world.prefix}ctl"
    addrs = world.run_ctl("ip", "-o", "-4", "addr", "show",
                          f"{world.prefix}br0").stdout
    assert "10.123.0.1/16" in addrs


def test_munge_credentials_round_trip_through_the_world_socket(world):
    cred = world.run_ctl("munge", "-n", "-S", world.munge_socket).stdout
    res = world.run_ctl("unmunge", "-S", world.munge_socket, input=cred)
    assert "STATUS:          Success" in res.stdout


def test_every_cloud_node_starts_powered_down(world):
    nodes = world.nodes()
    expected = {n for d in world.domains for n in d.nodes}
    assert set(nodes) == expected
    for name, node in nodes.items():
        assert node["State"] == "IDLE+CLOUD+POWERED_DOWN", (name, node["State"])


def test_partitions_follow_the_fabric_domains(world):
    out = world.run_ctl("sinfo", "-h", "-o", "%R %N").stdout.split("\n")
    parts = dict(line.split(" ", 1) for line in out if line.strip())
    assert parts["fab1"] == "f1n[1-6]"
    assert parts["fab2"] == "f2n[1-2]"


def test_slurm_conf_overrides_apply_and_are_restored(world):
    with world.slurm_conf_changed({"MaxJobCount": "1234"}):
        assert "MaxJobCount             = 1234" in world.scontrol("show", "config")
    assert "MaxJobCount             = 10000" in world.scontrol("show", "config")


def test_power_save_programs_are_valid_for_slurmctld(world):
    for key in ("ResumeProgram", "SuspendProgram", "ResumeFailProgram"):
        prog = world.slurm_params()[key]
        mode = os.stat(prog).st_mode
        assert mode & 0o022 == 0, f"{prog} is group/world writable"
    with open(world.path("logs", "slurmctld.log")) as f:
        assert "power_save module disabled" not in f.read()


def test_slurm_conf_overrides_can_restart_slurmctld(world):
    old_pid = world.procs["slurmctld"].pid
    with world.slurm_conf_changed({"SlurmctldDebug": "verbose"}, restart=True):
        assert world.procs["slurmctld"].pid != old_pid
        assert "SlurmctldDebug          = verbose" in world.scontrol("show", "config")
    assert "SlurmctldDebug          = debug" in world.scontrol("show", "config")
    assert set(world.nodes()) == {n for d in world.domains for n in d.nodes}
