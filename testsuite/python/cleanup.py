#!/usr/bin/python3 -B
"""Remove what a killed test run left behind: sudo ./cleanup.py [-q] [PREFIX...]

Kills the processes of every world of each PREFIX (default $AZT_PREFIX or
azt), unmounts its namespace files and deletes its namespaces and
interfaces, as the session teardown would have. Do not run it while a run
with the same prefix is going on (testsuite/run holds a lock for its whole
run and calls this first). With -q it prints only the prefixes that had
leftovers.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import netns  # noqa: E402


def clean_prefix(prefix, quiet):
    """Remove a prefix's worlds; 0 when nothing is left, else 1."""
    worlds = netns.stale_worlds(prefix)
    if not worlds and not netns.prefix_netns(prefix) and not netns.prefix_links(prefix):
        if not quiet:
            print(f"{prefix}: nothing left behind")
        return 0
    for rundir, world_id in (worlds or {None: None}).items():
        inodes = netns.destroy_world(prefix, rundir, world_id)
        left = netns.leftovers(prefix, rundir, world_id, inodes) if rundir else (
            [f"netns {n}" for n in netns.prefix_netns(prefix)]
            + [f"link {link}" for link in netns.prefix_links(prefix)])
        print(f"{prefix}: removed the leftovers of {rundir or 'a world without run dir'}: "
              + ("clean" if not left else "LEFT: " + ", ".join(left)))
        if left:
            return 1
    return 0


def main():
    args = sys.argv[1:]
    quiet = "-q" in args
    prefixes = [a for a in args if a != "-q"] or [os.environ.get("AZT_PREFIX", "azt")]
    rc = 0
    for prefix in prefixes:
        rc |= clean_prefix(prefix, quiet)
    return rc


if __name__ == "__main__":
    sys.exit(main())
