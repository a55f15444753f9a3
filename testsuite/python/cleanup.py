#!/usr/bin/python3 -B
"""Remove what a killed test run left behind: sudo ./cleanup.py [PREFIX]

Kills the processes of every world of PREFIX (default $AZT_PREFIX or azt),
unmounts its namespace files and deletes its namespaces and interfaces, as
the session teardown would have. Do not run it while a run with the same
prefix is going on.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import netns  # noqa: E402


def main():
    prefix = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AZT_PREFIX", "azt")
    worlds = netns.stale_worlds(prefix) or {None: None}
    for rundir, world_id in worlds.items():
        inodes = netns.destroy_world(prefix, rundir, world_id)
        left = netns.leftovers(prefix, rundir, world_id, inodes) if rundir else (
            [f"netns {n}" for n in netns.prefix_netns(prefix)]
            + [f"link {link}" for link in netns.prefix_links(prefix)])
        print(f"{prefix}: {rundir or 'no run dir found'}: "
              + ("clean" if not left else "LEFT: " + ", ".join(left)))
        if left:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
