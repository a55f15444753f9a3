"""Helpers of the azrdma cluster test harness (see ../README.md)."""
