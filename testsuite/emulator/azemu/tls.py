"""The emulator's own CA and server certificate, made with the openssl CLI.

The CA is kept across restarts so that clients holding DIR/ca.pem keep trusting the
emulator; the server certificate is re-issued whenever the wanted names change.
"""

import ipaddress
import os
import subprocess

CA_DAYS = "3650"
SERVER_DAYS = "825"


class TlsError(Exception):
    pass


def _openssl(*args, cwd):
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _san_entries(hosts):
    entries = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            entries.append(f"IP:{host}")
        except ValueError:
            entries.append(f"DNS:{host}")
    # Keep order stable but drop duplicates so the SAN file comparison is meaningful.
    return list(dict.fromkeys(entries))


def ensure_certificates(state_dir, hosts):
    """Create (or reuse) the CA and a server certificate for `hosts`.

    Returns (ca_pem, server_cert, server_key) paths. DIR/ca.pem is the public CA.
    """
    tls_dir = os.path.join(state_dir, "tls")
    os.makedirs(tls_dir, mode=0o700, exist_ok=True)
    ca_key = os.path.join(tls_dir, "ca.key")
    ca_pem = os.path.join(state_dir, "ca.pem")
    server_key = os.path.join(tls_dir, "server.key")
    server_pem = os.path.join(tls_dir, "server.pem")
    san_file = os.path.join(tls_dir, "server.san")

    if not (os.path.exists(ca_key) and os.path.exists(ca_pem)):
        # EC keys: generated in milliseconds, and every TLS stack in use accepts P-256.
        _openssl("req", "-x509", "-new", "-nodes",
                 "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-keyout", ca_key, "-out", ca_pem, "-days", CA_DAYS,
                 "-subj", "/O=azrdma test world/CN=azrdma Azure emulator CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 cwd=tls_dir)
        for stale in (server_pem, san_file):
            if os.path.exists(stale):
                os.unlink(stale)

    san = ",".join(_san_entries(hosts))
    current = None
    if os.path.exists(san_file) and os.path.exists(server_pem) and os.path.exists(server_key):
        with open(san_file, encoding="utf-8") as f:
            current = f.read()
    if current != san:
        csr = os.path.join(tls_dir, "server.csr")
        ext = os.path.join(tls_dir, "server.ext")
        with open(ext, "w", encoding="utf-8") as f:
            f.write(f"subjectAltName={san}\n"
                    "basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid,issuer\n")
        _openssl("req", "-new", "-nodes",
                 "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-keyout", server_key, "-out", csr, "-subj", "/CN=management.azure.com",
                 cwd=tls_dir)
        serial = "0x" + os.urandom(16).hex()
        _openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
                 "-set_serial", serial, "-days", SERVER_DAYS, "-sha256",
                 "-extfile", ext, "-out", server_pem, cwd=tls_dir)
        os.unlink(csr)
        with open(san_file, "w", encoding="utf-8") as f:
            f.write(san)
    return ca_pem, server_pem, server_key
