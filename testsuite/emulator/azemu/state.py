"""The persistent world: one JSON document in the state directory, guarded by one lock.

Every mutation happens under `Store.lock` and ends with `save()`, which replaces the file
atomically, so a crash or SIGKILL leaves either the old or the new world, never half of one.
(No fsync: the emulator must survive its own death, not the machine's.)
Slow work (booting hosts, sleeping for latency) is done outside the lock.
"""

import json
import os
import threading

STATE_VERSION = 1


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
        tmp = self.path + ".tmp"
        with self.lock:
            text = json.dumps(self.data, indent=1, sort_keys=True)
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.path)

    def next_counter(self, name):
        with self.lock:
            self.data["counters"][name] = self.data["counters"].get(name, 0) + 1
            return self.data["counters"][name]
