"""Entry point: parse options, make certificates, start the world and the servers, print
`ready`, and on SIGTERM/SIGINT stop cleanly."""

import logging
import os
import signal
import sys
import threading

from .config import ConfigError, build_config
from .dns import VnetDns
from .host import HostError
from .httpserv import Server, tls_context
from .tls import TlsError, ensure_certificates
from .world import World

log = logging.getLogger("azemu")


def _setup_logging(state_dir):
    root = logging.getLogger("azemu")
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    to_file = logging.FileHandler(os.path.join(state_dir, "emulator.log"))
    to_file.setFormatter(fmt)
    root.addHandler(to_file)
    # stdout carries only `ready`; problems also go to stderr.
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.WARNING)
    to_stderr.setFormatter(fmt)
    root.addHandler(to_stderr)


def _serve(server, name):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name=name, daemon=True)
    thread.start()
    return thread


def main(argv=None):
    try:
        cfg = build_config(sys.argv[1:] if argv is None else argv)
    except ConfigError as e:
        print(f"azure-emulator: {e}", file=sys.stderr)
        return 2
    os.makedirs(cfg.state_dir, exist_ok=True)
    _setup_logging(cfg.state_dir)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    names = ["127.0.0.1", "localhost", cfg.listen[0], *cfg.cert_hosts]
    try:
        _, cert, key = ensure_certificates(cfg.state_dir, names)
        world = World(cfg)
        https = Server(cfg.listen, world.https_app, tls_context(cert, key))
        imds = Server(cfg.imds_listen, world.imds_app) if cfg.imds_listen else None
        if cfg.dns_listen:
            world.dns = VnetDns(world, cfg.dns_listen)
        world.start()
    except (TlsError, HostError, OSError, ValueError) as e:
        log.error("cannot start: %s", e)
        return 1

    if world.dns is not None:
        world.dns.start()
        log.info("serving the VNet's name resolution on udp %s:%d", *world.dns.address)
    servers = [(https, _serve(https, "https"))]
    if imds is not None:
        servers.append((imds, _serve(imds, "imds")))
    log.info("serving ARM on https://%s:%d%s", *cfg.listen,
             f", IMDS on http://{cfg.imds_listen[0]}:{cfg.imds_listen[1]}" if imds else "")
    print("ready", flush=True)

    while not stop.wait(0.5):
        pass
    log.info("stopping")
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()
    if world.dns is not None:
        world.dns.stop()
    world.stop()
    log.info("stopped")
    return 0
