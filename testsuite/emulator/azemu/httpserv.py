"""HTTP plumbing: a threading server (optionally TLS), and the Request/Response types the
services work with. Services never touch sockets; they return a Response or DROP."""

import http.server
import json
import logging
import socket
import ssl
import urllib.parse

log = logging.getLogger("azemu.http")

# Returned by an app to close the connection without answering (fault injection "drop").
DROP = object()


class Request:
    def __init__(self, method, target, headers, body):
        self.method = method
        split = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(split.path)
        self.raw_query = split.query
        # ARM query parameter names are matched case-insensitively; the last one wins.
        self.query = {k.lower(): v for k, v in
                      urllib.parse.parse_qsl(split.query, keep_blank_values=True)}
        self.headers = headers
        self.body = body
        self.host = headers.get("Host") or "127.0.0.1"

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def json(self):
        """The body as JSON; raises ValueError with a readable reason."""
        if not self.body:
            raise ValueError("the request body is empty")
        try:
            return json.loads(self.body.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"the request body is not UTF-8: {e}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{e.msg} at line {e.lineno}, position {e.colno}") from None

    def form(self):
        return dict(urllib.parse.parse_qsl(self.body.decode("utf-8", "replace"),
                                           keep_blank_values=True))


class Response:
    def __init__(self, status, body=b"", headers=None, content_type=None):
        self.status = status
        self.headers = dict(headers or {})
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.body = body
        if content_type and body:
            self.headers.setdefault("Content-Type", content_type)


def json_response(status, obj, headers=None, pretty=False):
    """Compute and Network pretty-print their bodies with CRLF line ends; AAD, IMDS and
    the admin API answer compactly."""
    if pretty:
        text = json.dumps(obj, indent=2).replace("\n", "\r\n")
    else:
        text = json.dumps(obj, separators=(",", ":"))
    return Response(status, text, headers, content_type="application/json; charset=utf-8")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 120
    # An answer is written as headers, then body. With Nagle's algorithm the body waits
    # for the client's ACK of the headers, and the client delays that ACK (40 to 200 ms
    # on Linux): a stall on some answers that Azure's front ends do not have.
    disable_nagle_algorithm = True

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self):
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        request = Request(self.command, self.path, self.headers, body)
        try:
            response = self.server.app(request)
        except Exception:  # a bug must not kill the connection thread silently
            log.exception("unhandled error serving %s %s", self.command, self.path)
            response = json_response(500, {"error": {
                "code": "InternalServerError",
                "message": "The server encountered an internal error. Please retry the request."}})
        if response is DROP:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        log.debug("%s %s", self.address_string(), fmt % args)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a client that opens
    # dozens of connections at once, and each dropped SYN costs it a 1 s
    # retransmission: an artefact Azure's front ends do not have.
    request_queue_size = 1024

    def __init__(self, address, app, ssl_context=None):
        self.app = app
        self.ssl_context = ssl_context
        super().__init__(address, _Handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # The TLS handshake runs lazily in the connection's own thread, so one slow
            # client cannot stall accept().
            sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
