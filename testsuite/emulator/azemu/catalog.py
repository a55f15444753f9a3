"""VM sizes the emulated region offers.

`series` is the hardware-cluster type: an availability set pinned to a cluster can only
take sizes of that cluster's series (constrained-core variants share their parent's
hardware). `rdma` is None, "nd" (Network Direct over an Ethernet-style NIC: eth1) or
"sriov" (InfiniBand SR-IOV: ib0). Quota is charged in `vcpus`, which for constrained-core
sizes is the parent's count; `vcpus_available` is what the guest sees.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class VmSize:
    name: str
    vcpus: int
    vcpus_available: int
    memory_gb: float
    family: str
    series: str
    rdma: str = None
    legacy: bool = False

    @property
    def rdma_interface(self):
        return {"nd": "eth1", "sriov": "ib0"}.get(self.rdma)


def _constrained(parent, name_fmt, counts, memory, family, series, rdma):
    return [VmSize(name_fmt.format(n), parent, n, memory, family, series, rdma) for n in counts]


_SIZES = [
    # Classic A8-A11: QDR InfiniBand over Network Direct on A8/A9 (retired 2021).
    VmSize("Standard_A8", 8, 8, 56, "standardA8_A11Family", "A8_A11", "nd", legacy=True),
    VmSize("Standard_A9", 16, 16, 112, "standardA8_A11Family", "A8_A11", "nd", legacy=True),
    VmSize("Standard_A10", 8, 8, 56, "standardA8_A11Family", "A8_A11", legacy=True),
    VmSize("Standard_A11", 16, 16, 112, "standardA8_A11Family", "A8_A11", legacy=True),
    # H-series: FDR InfiniBand, not SR-IOV, on the r sizes (retired 31 August 2022).
    VmSize("Standard_H8", 8, 8, 56, "standardHFamily", "H", legacy=True),
    VmSize("Standard_H8m", 8, 8, 112, "standardHFamily", "H", legacy=True),
    VmSize("Standard_H16", 16, 16, 112, "standardHFamily", "H", legacy=True),
    VmSize("Standard_H16m", 16, 16, 224, "standardHFamily", "H", legacy=True),
    VmSize("Standard_H16r", 16, 16, 112, "standardHFamily", "H", "nd", legacy=True),
    VmSize("Standard_H16mr", 16, 16, 224, "standardHFamily", "H", "nd", legacy=True),
    # SR-IOV InfiniBand sizes.
    VmSize("Standard_HC44rs", 44, 44, 352, "standardHCSFamily", "HC", "sriov"),
    *_constrained(44, "Standard_HC44-{}rs", (16, 32), 352, "standardHCSFamily", "HC", "sriov"),
    VmSize("Standard_HB60rs", 60, 60, 228, "standardHBSFamily", "HB", "sriov"),
    *_constrained(60, "Standard_HB60-{}rs", (15, 30, 45), 228, "standardHBSFamily", "HB", "sriov"),
    VmSize("Standard_HB120rs_v2", 120, 120, 456, "standardHBrsv2Family", "HBv2", "sriov"),
    *_constrained(120, "Standard_HB120-{}rs_v2", (16, 32, 64, 96), 456, "standardHBrsv2Family",
                  "HBv2", "sriov"),
    VmSize("Standard_HB120rs_v3", 120, 120, 448, "standardHBrsv3Family", "HBv3", "sriov"),
    *_constrained(120, "Standard_HB120-{}rs_v3", (16, 32, 64, 96), 448, "standardHBrsv3Family",
                  "HBv3", "sriov"),
    VmSize("Standard_HB176rs_v4", 176, 176, 688, "standardHBv4Family", "HBv4", "sriov"),
    *_constrained(176, "Standard_HB176-{}rs_v4", (24, 48, 96, 144), 688, "standardHBv4Family",
                  "HBv4", "sriov"),
    VmSize("Standard_HX176rs", 176, 176, 1408, "standardHXFamily", "HX", "sriov"),
    *_constrained(176, "Standard_HX176-{}rs", (24, 48, 96, 144), 1408, "standardHXFamily",
                  "HX", "sriov"),
    # General purpose, for controllers and login nodes.
    VmSize("Standard_D2s_v5", 2, 2, 8, "standardDSv5Family", "Dsv5"),
    VmSize("Standard_D4s_v5", 4, 4, 16, "standardDSv5Family", "Dsv5"),
    VmSize("Standard_D8s_v5", 8, 8, 32, "standardDSv5Family", "Dsv5"),
]

SIZES = {s.name.lower(): s for s in _SIZES}
NAMES = [s.name for s in _SIZES]


def lookup(name):
    """The size for an ARM vmSize (case-insensitive, as CRP accepts it), or None."""
    if not isinstance(name, str):
        return None
    return SIZES.get(name.lower())


def same_series(series):
    return [s.name for s in _SIZES if s.series == series]
