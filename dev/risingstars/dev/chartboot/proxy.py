"""The network the cluster provides, on the node namespace: Service cluster IPs forwarding to
ready endpoints (kube-proxy), external endpoints (RDS, S3/SQS) forwarding to the local
PostgreSQL and moto, and an Ingress router (the ALB or the ingress controller) built from the
rendered Ingress rules."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import http.server
import itertools
import socket
import threading
from collections.abc import Callable

from risingstars.dev.chartboot.manifests import WiringError

Backends = Callable[[], list[tuple[str, int]]]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class Forwarder:
    """A TCP listener on addr:port that splices each connection to one of `backends()`."""

    def __init__(self, addr: str, port: int, backends: Backends, label: str) -> None:
        self.label = label
        self.backends = backends
        self.sock = socket.create_server((addr, port), reuse_port=False, backlog=128)
        self._rr = itertools.count()
        self.connections: list[tuple[str, str]] = []  # (client address, backend) seen
        threading.Thread(target=self._accept, daemon=True, name=f"fwd-{label}").start()

    def _accept(self) -> None:
        while True:
            try:
                client, peer = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, peer[0]), daemon=True).start()

    def _serve(self, client: socket.socket, peer: str) -> None:
        targets = self.backends()
        if not targets:  # no ready endpoint: the connection is refused, as kube-proxy does
            client.close()
            return
        target = targets[next(self._rr) % len(targets)]
        try:
            upstream = socket.create_connection(target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self.connections.append((peer, f"{target[0]}:{target[1]}"))
        t = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        t.start()
        _pump(client, upstream)
        t.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@dataclasses.dataclass
class Route:
    host: str  # "" = any host
    path: str
    path_type: str
    service: str
    port: int | str
    ingress: str

    def matches(self, host: str, path: str) -> bool:
        if self.host:
            if self.host.startswith("*."):
                suffix = self.host[1:]
                if not host.endswith(suffix) or host[: -len(suffix)].count(".") != 0:
                    return False
            elif host != self.host:
                return False
        if self.path_type == "Exact":
            return path == self.path
        # Prefix (and ImplementationSpecific, which both ALB and Traefik treat as a prefix):
        # element-wise, so /api/videos matches /api/videos/1 but not /api/videosX.
        want = [p for p in self.path.split("/") if p]
        have = [p for p in path.split("/") if p]
        return have[: len(want)] == want


def routes(ingresses: list[dict]) -> list[Route]:
    found = []
    for ing in ingresses:
        for rule in ing["spec"].get("rules", []):
            for p in rule.get("http", {}).get("paths", []):
                svc = p["backend"]["service"]
                port = svc["port"].get("number", svc["port"].get("name"))
                found.append(
                    Route(
                        rule.get("host", ""),
                        p.get("path", "/"),
                        p["pathType"],
                        svc["name"],
                        port,
                        ing["metadata"]["name"],
                    )
                )
    return found


def pick(table: list[Route], host: str, path: str) -> Route | None:
    """The Ingress spec's precedence: exact host over wildcard, then the longest path, Exact
    before Prefix on a tie."""
    candidates = [r for r in table if r.matches(host, path)]
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda r: (
            bool(r.host) and not r.host.startswith("*"),
            len(r.path),
            r.path_type == "Exact",
        ),
    )


_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}


class Router:
    """An HTTP router on the node (ports 80 and 443: TLS is the load balancer's and is left
    out, the 443 listener only says X-Forwarded-Proto: https) routing by the Ingress rules to
    the ready endpoints of each rule's Service, as ALB ip targets and Traefik do."""

    def __init__(self, addr: str, table: list[Route], endpoints: Callable[[str, int | str], list]):
        self.table = table
        self.endpoints = endpoints
        self.log: list[dict] = []
        self._rr = itertools.count()
        self.servers = [self._listen(addr, 80, "http"), self._listen(addr, 443, "https")]

    def _listen(self, addr: str, port: int, proto: str) -> http.server.ThreadingHTTPServer:
        router = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _any(self) -> None:
                router.handle(self, proto)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

        server = http.server.ThreadingHTTPServer((addr, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name=f"router-{port}").start()
        return server

    def handle(self, req: http.server.BaseHTTPRequestHandler, proto: str) -> None:
        host = (req.headers.get("Host") or "").split(":")[0]
        path = req.path.split("?")[0]
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        route = pick(self.table, host, path)
        entry = {"method": req.command, "path": req.path, "host": host, "route": route}
        self.log.append(entry)
        if route is None:
            self._reply(req, 404, b"default backend - 404", entry)
            return
        targets = self.endpoints(route.service, route.port)
        if not targets:
            self._reply(req, 503, b"no ready endpoints", entry)
            return
        target = targets[next(self._rr) % len(targets)]
        entry["backend"] = target
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _HOP}
        prior = req.headers.get("X-Forwarded-For")
        client = req.client_address[0]
        headers["X-Forwarded-For"] = f"{prior}, {client}" if prior else client
        headers["X-Forwarded-Proto"] = proto
        headers["X-Forwarded-Port"] = "443" if proto == "https" else "80"
        entry["request"] = (req.command, req.path, dict(headers), body)
        conn = http.client.HTTPConnection(*target, timeout=120)
        try:
            conn.request(req.command, req.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            self._reply(req, 502, f"upstream {target}: {exc}".encode(), entry)
            return
        finally:
            conn.close()
        entry["status"] = resp.status
        req.send_response_only(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in _HOP and key.lower() != "content-length":
                req.send_header(key, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)

    def _reply(self, req, status: int, body: bytes, entry: dict) -> None:
        entry["status"] = status
        req.send_response_only(status)
        req.send_header("Content-Type", "text/plain")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def check_backends(table: list[Route], services: dict[str, dict]) -> None:
    """The controller's own check: every rule names an existing Service and one of its ports."""
    for r in table:
        svc = services.get(r.service)
        if svc is None:
            raise WiringError(f"Ingress/{r.ingress} {r.path}: Service {r.service} not found")
        ports = svc["spec"]["ports"]
        if not any(p["port"] == r.port or p.get("name") == r.port for p in ports):
            raise WiringError(
                f"Ingress/{r.ingress} {r.path}: Service {r.service} has no port {r.port}"
            )
