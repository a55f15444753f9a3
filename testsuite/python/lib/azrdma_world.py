"""azrdma's own programs in the test world: azrdma.conf for the emulator and
the power-save programs of the build tree as slurmctld's programs.

    with azrdma_power_save(world):        # azrdma.conf + slurm.conf lines
        ...

AZRDMA_BUILDDIR names the build tree (the integrator's testsuite/run sets
it); without it the programs are looked for in build/ of the repository.
"""

import contextlib
import fcntl
import glob
import os
import pwd
import re
import shutil
import subprocess

from .wait import wait_for
from .world import ARM_PORT, IMDS_PORT, REPO, SLURM_USER

PROGRAMS = ("azrdma-resume", "azrdma-suspend", "azrdma-resume-fail",
            "azrdma-prolog-slurmctld")
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
IMAGE_URN = "almalinux:almalinux-hpc:8_7-hpc-gen2:latest"
SSH_KEY = os.path.join(REPO, "testsuite", "data", "id_test.pub")
# Cores per VM of the test size, for quota arithmetic in tests.
HB120_FAMILY = "standardHBrsv3Family"
HB120_CORES = 120


def builddir():
    return os.environ.get("AZRDMA_BUILDDIR") or os.path.join(REPO, "build")


def program(name):
    """Absolute path of a power-save program of the build tree, or None."""
    path = os.path.abspath(os.path.join(builddir(), "src", "power_save", name))
    return path if os.access(path, os.X_OK) else None


def have_programs():
    return all(program(p) for p in PROGRAMS)


def _slurm_owned(path, mode):
    slurm = pwd.getpwnam(SLURM_USER)
    os.chown(path, slurm.pw_uid, slurm.pw_gid)
    os.chmod(path, mode)


class AzrdmaSetup:
    """Paths of one azrdma configuration in a world's run dir."""

    def __init__(self, world):
        self.world = world
        self.conf_path = world.path("etc", "azrdma.conf")
        self.state_dir = world.path("azrdma")
        self.log_path = world.path("logs", "azrdma.log")
        self.custom_data = world.path("etc", "azrdma-cloud-init")
        self.resource_group = f"{world.prefix}-rg"
        # The emulator's CA alone; bench/resume trusts a system-sized bundle instead.
        self.ca_bundle = os.path.join(world.emulator_dir, "ca.pem")

    def conf_text(self, extra="", image_mpi=None):
        """azrdma.conf for this world, then the lines of extra; image_mpi
        names the MPI profile (Mpi=) of the default image."""
        w = self.world
        subnet = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{self.resource_group}"
                  "/providers/Microsoft.Network/virtualNetworks/cluster/subnets/default")
        lines = [
            "# written by testsuite/python/lib/azrdma_world.py",
            f"ClusterName={w.prefix}",
            f"SubscriptionId={SUBSCRIPTION}",
            f"ResourceGroup={self.resource_group}",
            "Location=eastus",
            f"Cloud=Custom ArmEndpoint=https://127.0.0.1:{ARM_PORT}"
            " ArmAudience=https://management.azure.com"
            f" AuthorityHost=https://127.0.0.1:{ARM_PORT}"
            f" ImdsEndpoint=http://127.0.0.1:{IMDS_PORT}",
            f"CaBundle={self.ca_bundle}",
            "Auth=ManagedIdentity",
            f"SubnetId={subnet}",
            f"SshPublicKeyFile={SSH_KEY}",
            f"CustomDataFile={self.custom_data}",
            f"StateDir={self.state_dir}",
            f"LogFile={self.log_path}",
            "CapacityCooldown=60",
            f"Image=alma Urn={IMAGE_URN} Default=yes"
            + (f" Mpi={image_mpi}" if image_mpi else ""),
        ]
        for d in w.domains:
            lines.append(f"Domain={d.name} Nodes={d.hostlist} VmSize={d.vm_size}"
                         f" AvailabilitySet={d.availability_set}")
        return "\n".join(lines) + "\n" + extra

    def write(self, extra=""):
        os.makedirs(self.state_dir, exist_ok=True)
        _slurm_owned(self.state_dir, 0o700)
        with open(self.custom_data, "w") as f:
            # The boot hook reads `# azrdma:key=value` lines; azrdma-resume
            # adds node= and image=, the template carries the rest.
            f.write("#cloud-config\n"
                    f"# azrdma:slurm_conf={self.world.slurm_conf_path}\n"
                    "# azrdma:rendered_for=@NODE@\n")
        _slurm_owned(self.custom_data, 0o600)
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.conf_text(extra))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.conf_path)

    def clear_cooldowns(self):
        """Forget every domain's capacity cooldown."""
        for path in glob.glob(os.path.join(self.state_dir, "cooldown", "*")):
            os.unlink(path)

    def cooldown_until(self, domain):
        """When the domain's capacity cooldown ends (epoch seconds), or None."""
        try:
            with open(os.path.join(self.state_dir, "cooldown", domain)) as f:
                return int(f.read().split(" ", 1)[0])
        except FileNotFoundError:
            return None

    def running_programs(self):
        """[(pid, argv)] of azrdma's power-save programs running now."""
        paths = {os.path.realpath(program(p)) for p in PROGRAMS}
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if exe in paths:
                found.append((int(pid), [a.decode() for a in argv if a]))
        return found

    def wait_programs_done(self, timeout=120):
        wait_for(lambda: not self.running_programs(), timeout,
                 "azrdma's power-save programs to finish", interval=0.5)

    @contextlib.contextmanager
    def node_lock_held(self, node):
        """Hold a node's lock (StateDir/locks/<node>) as another azrdma
        program would, for the block."""
        slurm = pwd.getpwnam(SLURM_USER)
        locks = os.path.join(self.state_dir, "locks")
        if not os.path.isdir(locks):  # as the programs make it
            os.makedirs(locks, mode=0o700)
            os.chown(locks, slurm.pw_uid, slurm.pw_gid)
        lock = os.path.join(locks, node)
        with open(lock, "a") as held:
            os.chown(lock, slurm.pw_uid, slurm.pw_gid)
            fcntl.flock(held, fcntl.LOCK_EX)
            yield

    def journal(self, node):
        """The node's operation journal entry, or None."""
        try:
            with open(os.path.join(self.state_dir, "journal", node)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def log_text(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def state_files(self):
        """{path: (uid, mtime_ns)} of everything below StateDir."""
        out = {}
        for root, dirs, files in os.walk(self.state_dir):
            for name in dirs + files:
                path = os.path.join(root, name)
                st = os.lstat(path)
                out[path] = (st.st_uid, st.st_mtime_ns)
        return out

    def state_around(self, action, tries=4):
        """(StateDir before, StateDir after, what action() returned), from
        a try in which none of slurmctld's power-save programs ran: a
        suspend slurmctld starts for an idle node meanwhile changes StateDir
        too, and must not count as action's doing."""
        for _ in range(tries):
            self.wait_programs_done()
            start = len(self.log_text())
            before = self.state_files()
            result = action()
            self.wait_programs_done()
            after = self.state_files()
            logged = self.log_text()[start:]
            if not re.search(r"\] (%s)\[" % "|".join(PROGRAMS), logged):
                return before, after, result
        raise AssertionError(f"slurmctld ran power-save programs during each of "
                             f"{tries} tries; last:\n{logged}")


def _check_program_modes():
    """slurmctld refuses group/world-writable programs; the build may make them so."""
    for name in PROGRAMS:
        path = program(name)
        mode = os.stat(path).st_mode & 0o7777
        if mode & 0o022:
            os.chmod(path, mode & ~0o022)


def _prolog_slurmctld(world):
    """slurmctld runs PrologSlurmctld with the job's environment only, so
    azrdma-prolog-slurmctld finds slurm.conf where libslurm looks by default;
    this world's is elsewhere, as at a site that starts slurmctld with
    SLURM_CONF: such a site, like this world, runs it through a wrapper."""
    return world.write_wrapper("azrdma-prolog-slurmctld",
                               "PrologSlurmctld of this test world",
                               "SLURM_CONF", program("azrdma-prolog-slurmctld"))


def _power_save_overrides(world, slurm_overrides):
    """azrdma's programs as slurmctld's power-save programs, plus
    slurm_overrides."""
    _check_program_modes()
    overrides = {"ResumeProgram": program("azrdma-resume"),
                 "SuspendProgram": program("azrdma-suspend"),
                 "ResumeFailProgram": program("azrdma-resume-fail"),
                 # A cold job starts as its last node registers, not at
                 # slurmctld's next 30 s check (issue 19).
                 "PrologSlurmctld": _prolog_slurmctld(world)}
    overrides.update(slurm_overrides or {})
    return overrides


def node_features(world, conf_path, overrides):
    """{domain: [features]} of the NodeName lines `azrdma-config
    slurm-conf` prints for azrdma.conf at conf_path, where
    node_features/azrdma is on (in overrides) and the release takes a cloud
    node's features from slurm.conf (23.02 and later); else None: the
    plugin publishes them (22.05)."""
    if (overrides or {}).get("NodeFeaturesPlugins") != "azrdma" \
            or not world.slurm.at_least(23, 2):
        return None
    tool = os.path.join(builddir(), "src", "tools", "azrdma-config")
    out = subprocess.run([tool, "-f", conf_path, "slurm-conf"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    by_hostlist = dict(re.findall(r"^NodeName=(\S+) .*\bFeature=(\S+)", out,
                                  re.M))
    return {d.name: by_hostlist[d.hostlist].split(",")
            for d in world.domains if d.hostlist in by_hostlist}


def azrdma_power_save_on(world, extra_conf="", slurm_overrides=None):
    """What azrdma_power_save() sets up, for good: nothing is restored (a
    world left up on purpose, as contribs/demo leaves its cluster)."""
    setup = AzrdmaSetup(world)
    setup.write(extra_conf)
    setup.clear_cooldowns()
    overrides = _power_save_overrides(world, slurm_overrides)
    world.set_slurm_conf(overrides, restart=True, node_features=node_features(
        world, setup.conf_path, overrides))
    return setup


@contextlib.contextmanager
def azrdma_power_save(world, extra_conf="", slurm_overrides=None):
    """Run a block with azrdma.conf written and azrdma's programs as
    ResumeProgram, SuspendProgram and ResumeFailProgram (plus
    slurm_overrides, e.g. a shorter ResumeTimeout); restore after."""
    setup = AzrdmaSetup(world)
    saved = None
    if os.path.exists(setup.conf_path):
        saved = setup.conf_path + ".saved-by-azrdma-world"
        shutil.copy2(setup.conf_path, saved)
    setup.write(extra_conf)
    # StateDir outlives a module: no module inherits another's cooldown.
    setup.clear_cooldowns()
    overrides = _power_save_overrides(world, slurm_overrides)
    features = node_features(world, setup.conf_path, overrides)
    try:
        with world.slurm_conf_changed(overrides, restart=True,
                                      node_features=features):
            try:
                yield setup
            finally:
                # A suspend started last must not outlive its slurmctld.
                setup.wait_programs_done()
                setup.clear_cooldowns()
    finally:
        if saved:
            os.replace(saved, setup.conf_path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(setup.conf_path)
