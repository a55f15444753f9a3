"""The virtual network's name resolution (--dns-listen), as Azure's
168.63.129.16 answers it: a running VM's host name, bare or under
internal.cloudapp.net, is its primary NIC's address; an unknown name, or a
VM that does not run, is NXDOMAIN at once; every query is listed by the
admin API."""

import random
import socket
import struct
import time

import pytest


NOERROR, FORMERR, NXDOMAIN = 0, 1, 3
A, AAAA = 1, 28


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(port, name, qtype=A, raw=None):
    """(rcode, [addresses], seconds) of one query over UDP."""
    qid = random.randrange(1 << 16)
    packet = raw
    if packet is None:
        question = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
        packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) \
            + question + b"\0" + struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        t0 = time.monotonic()
        s.sendto(packet, ("127.0.0.1", port))
        reply = s.recv(512)
        took = time.monotonic() - t0
    rid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    if raw is None:
        assert rid == qid and flags & 0x8000, reply
    pos = 12
    for _ in range(qd):  # skip the echoed question
        while reply[pos]:
            pos += reply[pos] + 1
        pos += 5
    addrs = []
    for _ in range(an):
        rtype, _cls, _ttl, size = struct.unpack("!HHIH", reply[pos + 2:pos + 12])
        if rtype == A:
            addrs.append(socket.inet_ntoa(reply[pos + 12:pos + 12 + size]))
        pos += 12 + size
    return flags & 0xF, addrs, took


@pytest.fixture
def dns_emu(make_emulator):
    port = _free_udp_port()
    emu = make_emulator(args=["--dns-listen", f"127.0.0.1:{port}"])
    emu.dns_port = port
    return emu


def test_a_running_vm_resolves_to_its_nic_and_nothing_else_does(dns_emu, rg):
    emu = dns_emu
    emu.create_vm(rg, "node-a")
    ip = [v for v in emu.admin("GET", "vms") if v["name"] == "node-a"][0]["privateIp"]
    assert ip
    for name in ("node-a", "NODE-A", "node-a.internal.cloudapp.net",
                 "node-a.abcdefgh.bx.internal.cloudapp.net"):
        assert _ask(emu.dns_port, name)[:2] == (NOERROR, [ip]), name
    # A known name without an address of that type: NODATA, not NXDOMAIN.
    assert _ask(emu.dns_port, "node-a", AAAA)[:2] == (NOERROR, [])
    # Unknown names, and names outside the network's zone, fail at once.
    for name in ("node-b", "node-a.example.com"):
        rcode, addrs, took = _ask(emu.dns_port, name)
        assert (rcode, addrs) == (NXDOMAIN, []), name
        assert took < 1, took
    # A deallocated VM keeps its NIC but has no name.
    emu.vm_action(rg, "node-a", "deallocate")
    assert _ask(emu.dns_port, "node-a")[:2] == (NXDOMAIN, [])
    emu.vm_action(rg, "node-a", "start")
    assert _ask(emu.dns_port, "node-a")[:2] == (NOERROR, [ip])
    asked = emu.admin("GET", "dns")
    assert {"name": "node-b", "type": A, "answer": None} in asked, asked
    assert {"name": "node-a.internal.cloudapp.net", "type": A, "answer": ip} in asked


def test_a_malformed_query_gets_formerr_and_the_server_goes_on(dns_emu):
    emu = dns_emu
    # Two bytes of id, a response flag set: not a query.
    rcode, _, _ = _ask(emu.dns_port, None, raw=b"\x12\x34\x80\x00" + b"\0" * 8)
    assert rcode == FORMERR
    # A label running past the packet's end.
    rcode, _, _ = _ask(emu.dns_port, None,
                       raw=struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x30ab")
    assert rcode == FORMERR
    assert _ask(emu.dns_port, "nobody")[0] == NXDOMAIN


def test_without_dns_listen_the_admin_api_says_how_to_get_it(emu):
    r = emu.request("GET", "/_emulator/dns")
    assert r.status == 404 and "--dns-listen" in r.json["error"], r
