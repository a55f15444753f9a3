#!/usr/bin/env python3
"""A tiny HTTPS server that plays scripted answers to the ARM client's
unit tests (test_arm_client) and records every request it gets.

    arm_test_server.py --cert server.pem --key server.key \
        --script script.json --log requests.jsonl [--data-dir DIR]

It listens on 127.0.0.1 on a free port and prints "ready <port>" once it
serves.  SIGTERM stops it.

The script is {"routes": [ROUTE, ...]}, with "tickets": false to issue no
TLS session tickets (every connection then verifies the certificate); a
ROUTE matches a request by "method" and either "path" (exact, without
the query) or "prefix", and holds "responses": a list played in order,
the last one repeating.  A
RESPONSE has "status" (default 200), "headers" (an object, or a list of
[name, value] pairs to repeat a header), and "body" (JSON), "body_text"
(a string) or "body_file" (under --data-dir); "delay" (seconds) before
answering; "drop": true to close the connection without an answer.  In
header values and bodies, {base} is https://127.0.0.1:<port> and
{now+N} the epoch time plus N seconds.

Each request is appended to the log as one JSON line: method, path, query,
headers (lower-case names), body, and "active", the number of requests
being served at that moment (so a test can see the client's concurrency),
"peer", the client's port (one per connection), and "resumed", whether
that connection resumed a TLS session.
"""
import argparse
import json
import os
import re
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def substitute(text, base):
    text = text.replace("{base}", base)
    return re.sub(r"\{now([+-]\d+)?\}",
                  lambda m: str(int(time.time()) + int(m.group(1) or 0)),
                  text)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, args):
        super().__init__(("127.0.0.1", 0), Handler)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(args.cert, args.key)
        with open(args.script) as f:
            script = json.load(f)
        self.routes = script["routes"]
        if script.get("tickets") is False:
            self.ctx.num_tickets = 0
            self.ctx.options |= ssl.OP_NO_TICKET
        for r in self.routes:
            r["next"] = 0
        self.data_dir = args.data_dir
        self.log = open(args.log, "a")
        self.lock = threading.Lock()
        self.active = 0
        self.base = "https://127.0.0.1:%d" % self.server_address[1]

    def handle_error(self, request, client_address):
        # Failed handshakes (the untrusted-certificate test) and clients
        # that hang up are part of the tests, not errors.
        pass

    def pick(self, method, path):
        for r in self.routes:
            if r.get("method", method) != method:
                continue
            if "path" in r and r["path"] != path:
                continue
            if "prefix" in r and not path.startswith(r["prefix"]):
                continue
            resp = r["responses"][min(r["next"], len(r["responses"]) - 1)]
            r["next"] += 1
            return resp
        return {"status": 404,
                "body": {"error": {"code": "NoScriptedRoute",
                                   "message": "%s %s" % (method, path)}}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        # The TLS handshake runs in the connection's own thread.
        self.request = self.server.ctx.wrap_socket(self.request,
                                                   server_side=True)
        super().setup()

    def log_message(self, fmt, *args):
        pass

    def serve(self):
        srv = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        with srv.lock:
            srv.active += 1
            resp = srv.pick(self.command, path)
            record = {
                "method": self.command, "path": path, "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "active": srv.active, "time": time.time(),
                "peer": self.client_address[1],
                "resumed": self.connection.session_reused,
            }
            srv.log.write(json.dumps(record) + "\n")
            srv.log.flush()
        try:
            self.answer(resp)
        finally:
            with srv.lock:
                srv.active -= 1

    def answer(self, resp):
        srv = self.server
        time.sleep(resp.get("delay", 0))
        if resp.get("drop"):
            self.close_connection = True
            self.connection.close()
            return
        if "body" in resp:
            data = json.dumps(resp["body"])
        elif "body_file" in resp:
            with open(os.path.join(srv.data_dir, resp["body_file"])) as f:
                data = f.read()
        else:
            data = resp.get("body_text", "")
        data = substitute(data, srv.base).encode()
        headers = resp.get("headers", {})
        if isinstance(headers, dict):
            headers = list(headers.items())
        self.send_response(resp.get("status", 200))
        if data:
            self.send_header("Content-Type", "application/json")
        for name, value in headers:
            self.send_header(name, substitute(str(value), srv.base))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = serve


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--script", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--data-dir", default=".")
    srv = Server(p.parse_args())
    print("ready %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
