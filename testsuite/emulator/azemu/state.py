"""The persistent world: one JSON document in the state directory, guarded by one lock.

Every mutation happens under `Store.lock` and ends with `save()`. One writer thread then
replaces the file atomically within SAVE_DELAY, with every change made until then, so a
crash or SIGKILL leaves a whole world, never half of one (at most SAVE_DELAY old), and a
clean stop (`flush()`) loses nothing. Writing on every change instead serialised all
requests behind a dump of the whole world: milliseconds each with a hundred VMs, a limit
Azure does not have. (No fsync: the emulator must survive its own death, not the
machine's.)
Slow work (booting hosts, sleeping for latency) is done outside the lock.
"""

import json
import os
import threading
import time

STATE_VERSION = 1
# How long the writer waits after a change, so that a burst of changes is one write.
SAVE_DELAY = 0.02


def _empty():
    return {
        "version": STATE_VERSION,
        "vms": {},
        "nics": {},
        # OS disks a deleted VM left behind (its osDisk.deleteOption was Detach).
        "disks": {},
        "availabilitySets": {},
        "ppgs": {},
        "ops": {},
        "counters": {"fabric": 0, "host": 0},
        "clusterIps": {},
        "rdmaIps": {},
        "tokens": {},
        # Capacity left (AllocationFailed past it): per availability-set name and per
        # "region|vmsize"; quota overrides per "region|family" ("*|family" for every region).
        "capacity": {"availabilitySets": {}, "regions": {}},
        "quota": {},
        "seeded": False,
    }


class Store:
    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, "state.json")
        self.lock = threading.RLock()
        self.data = self._load()
        self._dirty = threading.Event()
        self._write_lock = threading.Lock()
        threading.Thread(target=self._writer, name="state-writer", daemon=True).start()

    def _load(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return _empty()
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"{self.path}: unsupported state version {data.get('version')!r}")
        # Tolerate state written before a section existed.
        for key, value in _empty().items():
            data.setdefault(key, value)
        return data

    def save(self):
        """Note a change (under the lock): the writer thread writes it soon."""
        self._dirty.set()

    def flush(self):
        """Write every change now (at stop). Not under the lock."""
        self._dirty.clear()
        self._write()

    def _write(self):
        # One write at a time, each with the world as it is when it starts, so an older
        # world never replaces a newer one.
        with self._write_lock:
            with self.lock:
                # Compact: only then does json use its C encoder.
                text = json.dumps(self.data, sort_keys=True, separators=(",", ":"))
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.path)

    def _writer(self):
        while True:
            self._dirty.wait()
            time.sleep(SAVE_DELAY)
            # Cleared before the dump: a change made during it is written next time.
            self._dirty.clear()
            self._write()

    def next_counter(self, name):
        with self.lock:
            self.data["counters"][name] = self.data["counters"].get(name, 0) + 1
            return self.data["counters"][name]
