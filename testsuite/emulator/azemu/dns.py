"""Azure-provided name resolution of a virtual network (168.63.129.16).

Azure answers a VM's host name (its osProfile.computerName) with the
private address of its primary NIC while the VM runs, for the bare name and
under the network's internal.cloudapp.net suffix.  A name it does not know
gets NXDOMAIN at once: no client waits for a timeout.  Only A queries are
answered; any other type of a known name gets an empty answer (NODATA).

Every query is kept (name, type, answer), newest last, for the admin API:
the test world asks which names slurmctld looked up.
"""

import logging
import socket
import struct
import threading

log = logging.getLogger("azemu")

INTERNAL_SUFFIX = "internal.cloudapp.net"
TTL = 10
QTYPE_A = 1
QCLASS_IN = 1
RCODE_FORMERR = 1
RCODE_NXDOMAIN = 3
MAX_QUERIES_KEPT = 10000


def _parse_query(packet):
    """(id, flags, name, qtype, qclass, end of the question) or None."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels, pos = [], 12
    while True:
        if pos >= len(packet):
            return None
        size = packet[pos]
        pos += 1
        if size == 0:
            break
        if size > 63 or pos + size > len(packet):
            return None  # compression pointers do not belong in a question
        labels.append(packet[pos:pos + size].decode("ascii", "replace"))
        pos += size
    if pos + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack("!HH", packet[pos:pos + 4])
    return qid, flags, ".".join(labels), qtype, qclass, pos + 4


def host_of(name):
    """The VM host name a query asks for, or None for a name outside the
    network's zone (a.b.c that does not end in the internal suffix)."""
    name = name.rstrip(".").lower()
    if "." not in name:
        return name or None
    host, _, rest = name.partition(".")
    if rest == INTERNAL_SUFFIX or rest.endswith("." + INTERNAL_SUFFIX):
        return host
    return None


class VnetDns:
    """A UDP DNS server answering the names of the world's running VMs."""

    def __init__(self, world, address):
        self.world = world
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.queries = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._serve, name="vnet-dns",
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sock.close()

    def lookup(self, host):
        """The private address of the running VM called host, or None."""
        data = self.world.store.data
        with self.world.store.lock:
            for vm in data["vms"].values():
                if vm["computerName"].lower() == host \
                        and vm["powerState"] == "running":
                    return self.world.network.primary_ip(vm["nicKeys"])
        return None

    def answer(self, packet):
        """The reply to one packet, or None to drop it."""
        query = _parse_query(packet)
        if query is None:
            if len(packet) >= 2:
                return packet[:2] + struct.pack("!HHHHH", 0x8000 | RCODE_FORMERR,
                                                0, 0, 0, 0)
            return None
        qid, flags, name, qtype, qclass, end = query
        host = host_of(name)
        ip = self.lookup(host) if host else None
        with self.lock:
            self.queries.append({"name": name, "type": qtype,
                                 "answer": ip})
            del self.queries[:-MAX_QUERIES_KEPT]
        question = packet[12:end]
        # QR, AA, RD as asked, RA.
        out_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080
        if ip is None:
            header = struct.pack("!HHHHHH", qid, out_flags | RCODE_NXDOMAIN,
                                 1, 0, 0, 0)
            return header + question
        if qtype != QTYPE_A or qclass != QCLASS_IN:
            return struct.pack("!HHHHHH", qid, out_flags, 1, 0, 0, 0) + question
        record = struct.pack("!HHHIH", 0xC00C, QTYPE_A, QCLASS_IN, TTL, 4) \
            + socket.inet_aton(ip)
        return struct.pack("!HHHHHH", qid, out_flags, 1, 1, 0, 0) + question + record

    def _serve(self):
        while not self._stop.is_set():
            try:
                packet, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self.answer(packet)
            except Exception:  # noqa: BLE001 - one bad packet never stops it
                log.exception("vnet dns: query from %s", peer)
                continue
            if reply is not None:
                self.sock.sendto(reply, peer)

    def recorded(self):
        with self.lock:
            return list(self.queries)
