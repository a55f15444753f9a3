"""An Open MPI job under `srun --mpi=pmix` talks over the RDMA network."""

import ipaddress
import re

RDMA_NET = ipaddress.ip_network("172.16.0.0/16")
MPI_ENV = {
    "OMPI_MCA_pml": "ob1",
    "OMPI_MCA_btl": "self,tcp",
    "OMPI_MCA_btl_tcp_if_include": str(RDMA_NET),
    "OMPI_MCA_oob_tcp_if_include": "10.123.0.0/16",
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
}
LINE = re.compile(r"^mpi_ring rank=(\d+) size=(\d+) host=(\S+) rdma=(\S+) "
                  r"status=(\S+) tcp=(\S*)$", re.M)


def test_two_node_mpi_ring_uses_the_rdma_network(cloud, mpi_ring):
    job_id = cloud.submit("-N", "2", "--ntasks-per-node=1", "-p", "fab1",
                          "-w", "f1n3,f1n4", wrap=f"srun --mpi=pmix --kill-on-bad-exit=1 {mpi_ring}",
                          env=MPI_ENV)
    cloud.wait_job(job_id, timeout=180)
    out = cloud.job_output(job_id)
    ranks = {int(m[0]): m for m in LINE.findall(out)}
    assert sorted(ranks) == [0, 1], out
    vms = cloud.vms()
    for rank, (_, size, host, rdma, status, tcp) in ranks.items():
        peer = ranks[1 - rank]
        assert (size, status) == ("2", "ok"), out
        assert host != peer[2], "both ranks ran on one host"
        assert rdma == vms[host]["rdmaIp"], (host, rdma, vms[host])
        remotes = [ipaddress.ip_address(c.split("->")[1].rsplit(":", 1)[0])
                   for c in tcp.split(",") if c]
        off_host = [a for a in remotes if not a.is_loopback]
        assert ipaddress.ip_address(peer[3]) in off_host, (
            f"rank {rank} has no connection to its peer's RDMA address: {tcp}")
        assert all(a in RDMA_NET for a in off_host), (
            f"rank {rank} talks to a peer outside {RDMA_NET}: {tcp}")
