"""One boot of the rendered chart: the node network, the external endpoints (PostgreSQL and
moto standing in for RDS, S3 and SQS), Services, the Ingress router, then the release as helm
and the cluster would run it: pre-install hook Jobs by weight, Deployments until their probes
pass, the `helm test` pods; then the flow through the Ingress, and pod deletion."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from risingstars.dev import infra
from risingstars.dev.chartboot import netns, netpol, termination
from risingstars.dev.chartboot.apiserver import APIServer, chart_crds
from risingstars.dev.chartboot.client import Client, FlowError, check_web_app, run_flow
from risingstars.dev.chartboot.kubelet import Image, Pod, read_dockerfile
from risingstars.dev.chartboot.manifests import (
    Manifests,
    WiringError,
    container_port,
    matches,
    render,
)
from risingstars.dev.chartboot.proxy import Forwarder, Router, check_backends, routes

NODE_NAME = "chartboot-node"
# Longest wait for a boot's pods (helm install --wait's default is 5 minutes).
BOOT_TIMEOUT = 240
IRSA_TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount"  # noqa: S105
SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # noqa: S105


class BootFailure(AssertionError):
    """The chart did not boot or the flow failed: the message says where and why."""


@dataclasses.dataclass
class External:
    """A name outside the cluster (RDS, the AWS endpoint) or a pre-existing Service (k8s/kind
    deps) served by one of the local servers: "postgres" or "moto"."""

    names: list[str]
    port: int
    server: str
    service: str | None = None  # a Service name, when it stands in for one
    real_port: int | None = None  # the real endpoint's port, when the values redirect it
    address: str | None = None  # where it stands, when the values place it (RDS in its subnet)


@dataclasses.dataclass
class Overlay:
    """One boot: values files, what exists before the release, how the client reaches it."""

    name: str
    values: list[Path]
    externals: list[External]
    existing: Callable[[], list[dict]]  # objects in the namespace before the install
    database_sql: list[tuple[str, str]]  # (database, statement) run before the install
    terminate: bool = False  # delete every pod at the end, checking in-flight requests
    replicas_cap: int = 2  # at most this many pods per Deployment (CPU is scarce here)
    # The pods' network (on EKS: the VPC's CIDR, which the NetworkPolicies name).
    subnet: str = "10.77.0.0/16"
    # Where the ingress controller's connections come from, for the NetworkPolicies: a
    # namespace (Traefik's), or None for the load balancer itself (ALB ip targets: the node).
    ingress_namespace: str | None = None


class Cluster:
    def __init__(self, overlay: Overlay, *, workdir: Path):
        self.overlay = overlay
        self.dir = workdir
        self.cap = overlay.replicas_cap
        self.namespace = "rising-stars"
        self.release = "rising-stars"
        self.node_name = NODE_NAME
        self.image: Image = read_dockerfile()
        self.net = netns.Network(overlay.name, overlay.subnet)
        self.pods: list[Pod] = []
        self.forwarders: list[Forwarder] = []
        self._external_peers: dict[Forwarder, tuple[netpol.Peer, int]] = {}
        self.services: dict[str, dict] = {}
        self.cluster_ips: dict[str, str] = {}
        self.hosts: list[tuple[str, list[str]]] = []
        self.router: Router | None = None
        self.apiserver: APIServer | None = None
        self.manifests: Manifests | None = None
        self.servers: dict[str, object] = {}
        self.report: dict = {"overlay": overlay.name, "steps": []}
        self.focus: set[str] | None = None
        self._t0 = time.monotonic()

    def step(self, text: str) -> None:
        elapsed = time.monotonic() - self._t0
        self.report["steps"].append(f"{elapsed:6.1f}s {text}")
        print(f"chart-boot [{self.overlay.name}] {elapsed:6.1f}s {text}", flush=True)

    # --- what the cluster adds to pods ------------------------------------------------------

    def image_bin(self, service: str) -> Path:
        """The image's launcher script (CMD), as the Dockerfile writes it, for `service`."""
        bindir = self.dir / "images" / service
        script = bindir / self.image.launcher
        if not script.exists():
            bindir.mkdir(parents=True, exist_ok=True)
            script.write_text(f'#!/bin/sh\nexec python -m risingstars.{service} "$@"\n')
            script.chmod(0o755)
            bindir.chmod(0o755)
        return bindir

    def image_etc(self) -> list[dict]:
        """/etc/passwd and /etc/group with the image's own user (kopf, getpass need it)."""
        etc = self.dir / "images" / "etc"
        if not etc.exists():
            etc.mkdir(parents=True)
            for name, extra in (("passwd", self.image.passwd), ("group", self.image.group)):
                text = Path("/etc", name).read_text().rstrip("\n") + "\n" + "\n".join(extra) + "\n"
                (etc / name).write_text(text)
                (etc / name).chmod(0o644)
            for p in (etc, etc.parent):
                p.chmod(0o755)
        return [
            {"source": str(etc / name), "target": f"/etc/{name}", "readOnly": True}
            for name in ("passwd", "group")
        ]

    def kubelet_env(self, pod) -> dict[str, str]:
        api = self.cluster_ips.get("kubernetes", "")
        return {
            "HOSTNAME": pod.name,
            "KUBERNETES_SERVICE_HOST": api,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "KUBERNETES_PORT": f"tcp://{api}:443",
            "KUBERNETES_PORT_443_TCP": f"tcp://{api}:443",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_PORT": "443",
            "KUBERNETES_PORT_443_TCP_ADDR": api,
        }

    def admission(self, pod, sa: dict, podir: Path, token: bytes) -> tuple[dict, list]:
        """What admission adds: the service account token (automount) and, for a
        ServiceAccount with an IAM role annotation, EKS's pod identity webhook (IRSA)."""
        env, mounts = {}, []
        automount = pod.spec.get(
            "automountServiceAccountToken", sa.get("automountServiceAccountToken", True)
        )
        if automount:
            path = podir / "sa-token"
            path.mkdir(parents=True)
            (path / "token").write_bytes(token)
            (path / "namespace").write_text(self.namespace)
            (path / "ca.crt").write_bytes(self.apiserver.cert.read_bytes())
            for f in path.iterdir():
                f.chmod(0o644)
            path.chmod(0o755)
            mounts.append({"source": str(path), "target": SA_TOKEN_DIR, "readOnly": True})
        role = sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn")
        if role:
            path = podir / "irsa-token"
            path.mkdir(parents=True)
            (path / "token").write_bytes(token)
            (path / "token").chmod(0o644)
            path.chmod(0o755)
            mounts.append({"source": str(path), "target": IRSA_TOKEN_DIR, "readOnly": True})
            env.update(
                AWS_ROLE_ARN=role,
                AWS_WEB_IDENTITY_TOKEN_FILE=f"{IRSA_TOKEN_DIR}/token",
                AWS_STS_REGIONAL_ENDPOINTS="regional",
            )
        return env, mounts

    # --- network ----------------------------------------------------------------------------

    def endpoints(self, service: str, port: int | str) -> list[tuple[str, int]]:
        """Ready, not terminating pods selected by the Service, on the port's targetPort."""
        found = []
        for pod in self.pods:
            if pod.kind_is_run_to_completion or not pod.ready or pod.terminating:
                continue
            if not matches(self.services[service]["spec"].get("selector", {}), pod.spec.labels):
                continue
            target = self._pod_port(pod, service, port)
            if target is not None:
                found.append((pod.ip, target))
        return found

    def hosts_file(self, pod_name: str, ip: str) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost", f"{ip}\t{pod_name}"]
        lines += [f"{addr}\t{' '.join(names)}" for addr, names in self.hosts]
        return "\n".join(lines) + "\n"

    def _service_names(self, name: str) -> list[str]:
        ns = self.namespace
        return [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]

    def _network(self, externals: dict[str, tuple[str, int]]) -> None:
        m = self.manifests
        for svc in m.of("Service", hooks=False):
            self.services[svc["metadata"]["name"]] = svc
        ext_by_service = {e.service: e for e in self.overlay.externals if e.service}
        for svc in m.existing:
            if svc.get("kind") == "Service":
                self.services[svc["metadata"]["name"]] = svc
        # The API server's Service (no API server runs here: its address refuses connections).
        self.cluster_ips["kubernetes"] = self.net.node_address()
        api_names = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        self.hosts.append((self.cluster_ips["kubernetes"], api_names))
        self.apiserver = APIServer(
            self.cluster_ips["kubernetes"], api_names, self.dir, self.namespace
        )
        # What `helm install` creates in it that a controller among the pods may read.
        crd_kinds = {c["spec"]["names"]["kind"] for c in chart_crds()}
        for obj in m.of("Deployment", hooks=False) + [
            o for o in m.objects if o["kind"] in crd_kinds
        ]:
            self.apiserver.create(obj)
        for name, svc in self.services.items():
            addr = self.net.node_address()
            self.cluster_ips[name] = addr
            self.hosts.append((addr, self._service_names(name)))
            ext = ext_by_service.get(name)
            for p in svc["spec"]["ports"]:
                if ext is not None:
                    backend = externals[ext.server]
                    backends = lambda b=backend: [b]  # noqa: E731
                else:
                    backends = lambda n=name, port=p["port"]: self.endpoints(n, port)  # noqa: E731
                fwd = Forwarder(addr, p["port"], backends, f"svc/{name}:{p['port']}")
                self.forwarders.append(fwd)
                if ext is not None:
                    labels = tuple(sorted(svc["spec"].get("selector", {}).items()))
                    self._external_peers[fwd] = (
                        netpol.Peer(f"Service {name}", addr, self.namespace, labels),
                        ext.real_port or p["port"],
                    )
        for ext in self.overlay.externals:
            if ext.service:
                continue
            addr = self.net.node_address(ext.address)
            self.hosts.append((addr, ext.names))
            backend = externals[ext.server]
            fwd = Forwarder(addr, ext.port, lambda b=backend: [b], ext.names[0])
            self.forwarders.append(fwd)
            self._external_peers[fwd] = (
                netpol.Peer(ext.names[0], addr),
                ext.real_port or ext.port,
            )
        table = routes(m.of("Ingress"))
        check_backends(table, self.services)
        self.router = Router(self.net.node_ip, table, self.endpoints)
        self.step(
            f"network: {len(self.services)} Services, {len(table)} ingress rules, "
            f"externals {[e.names[0] for e in self.overlay.externals]}"
        )

    def resolve(self, host: str, port: int) -> tuple[str, int]:
        """A user's view: ingress hosts (and the node address) reach the router; a Service name
        is a `kubectl port-forward`; an external endpoint name is that endpoint."""
        ingress_hosts = {r.host for r in self.router.table} | {self.net.node_ip, ""}
        if host in ingress_hosts:
            return self.net.node_ip, port
        for addr, names in self.hosts:
            if host in names:
                return addr, port
        raise BootFailure(f"the link host {host!r} resolves nowhere a user can reach")

    # --- pods -------------------------------------------------------------------------------

    def new_pod(self, obj: dict, index: int = 0) -> Pod:
        spec = self.manifests.pods_of(obj, index)
        short = f"p{len(self.pods)}"
        podir = self.dir / "pods" / spec.name
        podir.mkdir(parents=True)
        podir.chmod(0o755)
        ip = self.net.address()
        ns = self.net.pod(short, ip, self.hosts_file(spec.name, ip))
        pod = Pod(self, spec, ns, ip, podir)
        self.pods.append(pod)
        return pod

    def run_to_completion(self, obj: dict, what: str) -> Pod:
        pod = self.new_pod(obj)
        pod.start(pod.prepare())
        deadline = obj["spec"].get("activeDeadlineSeconds", 300)
        code = pod.wait_done(min(deadline, 300))
        if code != 0:
            raise BootFailure(
                f"{what} {pod.spec.owner} failed (exit {code}); its log:\n{pod.log()}"
            )
        self.step(f"{what} {pod.spec.owner} completed")
        return pod

    def install(self) -> None:
        m = self.manifests
        for job in m.install_jobs():
            self.run_to_completion(job, "hook")
        pods = []
        for dep in m.deployments():
            if self.focus is not None and dep["metadata"]["name"] not in self.focus:
                continue
            for i in range(m.replicas(dep, self.cap)):
                pods.append(self.new_pod(dep, i))
        launches = [pod.prepare() for pod in pods]  # every wiring error before any start
        for pod, launch in zip(pods, launches, strict=True):
            pod.start(launch)
            pod.run_probes()
            self.apiserver.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod.name, "labels": pod.spec.labels},
                    "spec": pod.spec.spec,
                    "status": {"phase": "Running", "podIP": pod.ip},
                }
            )
        self.wait_ready(pods)
        self.step(f"{len(pods)} pods of {len(m.deployments())} Deployments ready")

    def helm_test(self) -> None:
        for test in self.manifests.test_pods():
            self.run_to_completion(test, "helm test")

    def wait_ready(self, pods: list[Pod]) -> None:
        """Until every pod is Ready. A failed startup or liveness threshold, or a crash, ends
        it at once (the kubelet would restart the container); a pod that has started but
        stays unready for its readiness window (failureThreshold x periodSeconds, at least
        READY_MARGIN seconds) fails it too: `helm install --wait` would time out on it."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            self.check_alive()
            if all(pod.ready for pod in pods):
                return
            now = time.monotonic()
            late = [p for p in pods if not p.ready and p.unready_since(now) > p.ready_window()]
            if late or now > deadline:
                waiting = late or [p for p in pods if not p.ready]
                detail = "; ".join(f"{p.name}: {self._last_probe(p)}" for p in waiting)
                raise BootFailure(
                    f"not Ready: {detail}\nlog of {waiting[0].name}:\n{waiting[0].log()}"
                )
            time.sleep(0.1)

    def _last_probe(self, pod: Pod) -> str:
        details = []
        for c in pod.spec.containers:
            probe = c.get("readinessProbe")
            if probe:
                details.append(pod.probe(c, probe)[1])
        return ", ".join(details) or "no readiness probe"

    def check_alive(self) -> None:
        for pod in self.pods:
            if pod.fatal and not pod.terminating:
                raise BootFailure(f"{pod.fatal}\nits log:\n{pod.log()}")

    # --- the whole boot --------------------------------------------------------------------

    def boot(
        self, flow_clip: bytes | None, mutate: Callable[[list[dict]], set[str] | None] | None = None
    ) -> dict:
        objects = render(self.overlay.values, release=self.release, namespace=self.namespace)
        # A mutation (failure tests) may name the only Deployments worth booting.
        self.focus = mutate(objects) if mutate else None
        preflight(Manifests(objects, self.namespace, self.overlay.existing()))
        self.step("preflight: every pod's environment and volumes resolve")
        self.net.up()
        with netns.entered(self.net.node):
            self._start_servers()
            self.manifests = Manifests(objects, self.namespace, self.overlay.existing())
            self._create_aws_resources()
            externals = {
                "postgres": ("127.0.0.1", self.servers["postgres"].port),
                "moto": ("127.0.0.1", self.servers["moto"].port),
            }
            self._network(externals)
            self.install()
            if flow_clip is not None:
                self.flow(flow_clip)
            # After the flow (as a user runs `helm test` after installing): its rankings
            # request would otherwise fill the rankings cache before the flow's vote.
            if self.focus is None:  # the test pods and controllers need the whole release
                self.helm_test()
            self.audit_network_policies()
            if self.focus is None:
                self.check_controllers()
            if self.overlay.terminate:
                self.delete_all()
        return self.report

    def _start_servers(self) -> None:
        pgdir = self.dir / "pg"
        self.servers["postgres"] = infra.start_postgres(pgdir, log_path=self.dir / "pg.log")
        # moto reads a bucket name from any dotted host it does not know as an S3 endpoint
        # (aws.chartboot.test -> bucket "aws"); the overlay's endpoint names are path-style.
        endpoints = ",".join(
            f"http://{n}:{e.port}" for e in self.overlay.externals for n in e.names
        )
        with _environ(MOTO_S3_CUSTOM_ENDPOINTS=endpoints):
            self.servers["moto"] = infra.start_moto(log_path=self.dir / "moto.log")
        pg = self.servers["postgres"]
        # As the deploy guide prepares the database (roles, schemas) before the install.
        for database, sql in self.overlay.database_sql:
            infra.psql(pg, sql, database)

    def _create_aws_resources(self) -> None:
        """The bucket and queues the rendered containers are told to use, as the deploy guide
        asks an operator to create them (the jobs queue with its dead-letter queue)."""
        import boto3

        env = {}
        for obj in [*self.manifests.deployments(), *self.manifests.install_jobs()]:
            for c in obj["spec"]["template"]["spec"]["containers"]:
                env.update({e["name"]: e.get("value") for e in c.get("env", []) if "value" in e})
        kw = {
            "endpoint_url": self.servers["moto"].url,
            "region_name": env.get("AWS_REGION", "us-east-1"),
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }
        s3, sqs = boto3.client("s3", **kw), boto3.client("sqs", **kw)
        if env.get("S3_BUCKET"):
            s3.create_bucket(Bucket=env["S3_BUCKET"])
        names = {
            urllib.parse.urlsplit(v).path.rsplit("/", 1)[-1]
            for k, v in env.items()
            if k.endswith("QUEUE_URL") and v
        }
        for name in sorted(names, key=lambda n: not n.endswith("-dlq")):
            attrs = {}
            if f"{name}-dlq" in names:
                dlq = sqs.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
                arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
                attrs["RedrivePolicy"] = json.dumps(
                    {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "5"}
                )
            sqs.create_queue(QueueName=name, Attributes=attrs)
        self.step(f"AWS resources: bucket {env.get('S3_BUCKET')}, queues {sorted(names)}")

    def client(self) -> Client:
        table = self.router.table
        host = next((r.host for r in table if r.host), "")
        tls = any(ing["spec"].get("tls") for ing in self.manifests.of("Ingress"))
        alb_https = any(
            "HTTPS"
            in ing["metadata"]
            .get("annotations", {})
            .get("alb.ingress.kubernetes.io/listen-ports", "")
            for ing in self.manifests.of("Ingress")
        )
        scheme = "https" if (tls or alb_https) else "http"
        return Client(self.resolve, f"{scheme}://{host or self.net.node_ip}")

    def flow(self, clip: bytes) -> None:
        c = self.client()
        self.step(f"flow through the Ingress at {c.base}")
        try:
            result = run_flow(c, clip, log=self.step)
            check_web_app(c, log=self.step)
        except FlowError as exc:
            raise BootFailure(f"{exc}\n  routed: {self._last_route()}") from None
        self.check_alive()
        self.report["flow"] = {k: v for k, v in result.items() if k != "token"}
        self._token = result["token"]

    def check_controllers(self) -> None:
        """Every custom resource of the release got a status from its controller (the
        operator logged in to the API server, read its queue and reconciled)."""
        crd_kinds = {c["spec"]["names"]["kind"] for c in chart_crds()}
        for obj in [o for o in self.manifests.objects if o["kind"] in crd_kinds]:
            who = f"{obj['kind']}/{obj['metadata']['name']}"
            status = (self.apiserver.get(obj) or {}).get("status")
            if not status:
                raise BootFailure(f"{who}: no controller wrote its status")
            conditions = {c["type"]: c for c in status.get("conditions", [])}
            self.report.setdefault("controllers", {})[who] = {
                k: f"{c['status']} {c.get('reason', '')}" for k, c in conditions.items()
            }
            error = conditions.get("Error", {})
            if error.get("status") == "True":
                raise BootFailure(f"{who}: Error condition: {error.get('message')}")
            self.step(f"{who} reconciled: {self.report['controllers'][who]}")

    # --- NetworkPolicies ----------------------------------------------------------------------

    def _pod_peer(self, ip: str) -> netpol.Peer | None:
        for pod in self.pods:
            if pod.ip == ip:
                ports = tuple(
                    (p["name"], int(p["containerPort"]))
                    for c in pod.spec.containers
                    for p in c.get("ports", [])
                    if "name" in p
                )
                labels = tuple(sorted(pod.spec.labels.items()))
                return netpol.Peer(pod.name, ip, self.namespace, labels, ports)
        return None

    def flows(self) -> set[tuple[netpol.Peer, netpol.Peer, int]]:
        """Every connection the boot made: (source, destination, destination port)."""
        found = set()
        for fwd in self.forwarders:
            for client, backend in fwd.connections:
                src = self._pod_peer(client)
                if src is None:
                    continue
                if fwd in self._external_peers:
                    dst, port = self._external_peers[fwd]
                else:
                    ip, port = backend.rsplit(":", 1)
                    dst, port = self._pod_peer(ip), int(port)
                if dst is not None:
                    found.add((src, dst, port))
        ns = self.overlay.ingress_namespace
        controller = netpol.Peer(
            f"ingress controller ({ns})" if ns else "load balancer", self.net.node_ip, ns
        )
        for entry in self.router.log:
            if entry.get("backend"):
                dst = self._pod_peer(entry["backend"][0])
                if dst is not None:
                    found.add((controller, dst, entry["backend"][1]))
        return found

    def audit_network_policies(self) -> None:
        # The release's policies and those already in the namespace (k8s/kind/deps).
        policies = [
            *self.manifests.of("NetworkPolicy"),
            *(o for o in self.manifests.existing if o.get("kind") == "NetworkPolicy"),
        ]
        flows = self.flows()
        self.report["connections"] = sorted(f"{s.name} -> {d.name}:{p}" for s, d, p in flows)
        problems = sorted(
            f"{src.name} -> {dst.name}:{port}: {why}"
            for src, dst, port in flows
            if (why := netpol.denied(policies, src, dst, port))
        )
        if problems:
            raise BootFailure(
                "NetworkPolicies would drop connections the flow needs:\n  " + "\n  ".join(problems)
            )
        self.step(f"NetworkPolicies: {len(policies)} allow all {len(flows)} connections made")

    # --- deletion -----------------------------------------------------------------------------

    def delete_all(self) -> None:
        """Delete every running pod at once (as a rollout or uninstall would), each with a
        request in flight that must complete (termination.py)."""
        running = [p for p in self.pods if not p.kind_is_run_to_completion and not p.terminating]
        results, problems = termination.delete_all(running, self._replay_for)
        self.report["termination"] = results
        if problems:
            raise BootFailure("pod deletion: " + "; ".join(problems))
        self.step(
            "deleted "
            + ", ".join(
                f"{n}: {r['term']['containers']} in-flight {r.get('inflight', 'none')}"
                for n, r in results.items()
            )
        )

    def _last_route(self) -> str:
        """How the router handled the last request: Ingress rule, Service, pod."""
        if not self.router.log:
            return "nothing reached the Ingress"
        e = self.router.log[-1]
        r = e.get("route")
        if r is None:
            return f"{e['method']} {e['host']}{e['path']} matched no Ingress rule"
        return (
            f"{e['method']} {e['path']} -> Ingress {r.ingress} rule {r.path} ({r.path_type}) -> "
            f"Service {r.service}:{r.port} -> pod {e.get('backend')} -> HTTP {e.get('status')}"
        )

    def _replay_for(self, pod: Pod):
        """The request with the largest body the router sent to this pod's Service, to send
        again to this pod: an upload for the upload API, a signup for auth."""
        best = None
        for entry in self.router.log:
            route, request = entry.get("route"), entry.get("request")
            if not request or not route or entry.get("status", 500) >= 500:
                continue
            svc = self.services.get(route.service)
            if svc is None or not matches(svc["spec"].get("selector", {}), pod.spec.labels):
                continue
            if best is None or len(request[3]) > len(best[0][3]):
                port = self._pod_port(pod, route.service, route.port)
                if port:
                    best = (request, (pod.ip, port))
        return best

    def _pod_port(self, pod: Pod, service: str, port: int | str) -> int | None:
        """The pod's port behind the Service's `port` (its targetPort, named or numbered)."""
        spec_port = next(
            (
                p
                for p in self.services[service]["spec"]["ports"]
                if port in (p["port"], p.get("name"))
            ),
            None,
        )
        if spec_port is None:
            return None
        target = spec_port.get("targetPort", spec_port["port"])
        for container in pod.spec.containers:
            with contextlib.suppress(WiringError):
                return container_port(container, target, pod.name)
        return None

    def teardown(self) -> None:
        for pod in self.pods:
            pod.kill()
        for f in self.forwarders:
            f.close()
        if self.router:
            self.router.close()
        if self.apiserver:
            self.apiserver.close()
        for server in self.servers.values():
            # Fast shutdown: the servers' data is thrown away with the namespace.
            server.proc.send_signal(signal.SIGINT)
            infra.stop(server.proc)
        self.servers.clear()
        self.net.down()
        self.step("torn down")


@contextlib.contextmanager
def _environ(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_live: list[Cluster] = []


def _teardown_all() -> None:
    for cluster in list(_live):
        with contextlib.suppress(Exception):
            cluster.teardown()


atexit.register(_teardown_all)


@contextlib.contextmanager
def booted(overlay: Overlay, *, keep: bool = False):
    netns.clean_stale()
    # Not under /tmp: pods mount their own /tmp over it, which would hide their volumes.
    workdir = Path(tempfile.mkdtemp(prefix=f"{netns.PREFIX}-{os.getpid()}-", dir=netns.WORK_ROOT))
    workdir.chmod(0o755)
    cluster = Cluster(overlay, workdir=workdir)
    _live.append(cluster)
    try:
        yield cluster
    finally:
        cluster.teardown()
        _live.remove(cluster)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


@dataclasses.dataclass
class Result:
    overlay: str
    passed: bool
    error: str
    report: dict


def run(
    overlays: list[Overlay],
    clip: bytes | None,
    *,
    mutate: dict[str, Callable[[list[dict]], set[str] | None]] | None = None,
    keep: bool = False,
) -> dict[str, Result]:
    """Boot each overlay, all at once (each in its own node network, driven by its own
    thread): most of a boot is waiting on probes, queues and polls, not CPU."""
    netns.clean_stale()
    results: dict[str, Result] = {}

    def one(overlay: Overlay) -> None:
        report: dict = {}
        try:
            with booted(overlay, keep=keep) as cluster:
                report = cluster.report
                cluster.boot(clip, (mutate or {}).get(overlay.name))
            results[overlay.name] = Result(overlay.name, True, "", report)
        except (AssertionError, WiringError) as exc:
            results[overlay.name] = Result(overlay.name, False, str(exc), report)
        except Exception as exc:  # a harness fault: reported, never hidden
            results[overlay.name] = Result(overlay.name, False, f"harness error: {exc!r}", report)

    # Daemon threads: on an interrupt the interpreter goes straight to the atexit teardown.
    threads = [
        threading.Thread(target=one, args=(o,), name=f"boot-{o.name}", daemon=True)
        for o in overlays
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def preflight(m: Manifests) -> None:
    """What the kubelet would refuse (CreateContainerConfigError) for any pod of the release,
    found before anything starts: missing Secrets, ConfigMaps or keys, unknown port names,
    images with no local service, volumes that do not exist."""
    from risingstars.dev.chartboot.kubelet import image_service
    from risingstars.dev.chartboot.manifests import container_env, volumes

    for obj in [*m.install_jobs(), *m.deployments(), *m.test_pods()]:
        pod = m.pods_of(obj)
        volumes(m, pod, token=b"", ip="0.0.0.0", node=NODE_NAME)
        names = {v["name"] for v in pod.spec.get("volumes", [])}
        for c in pod.containers:
            image_service(c["image"])
            container_env(m, pod, c, ip="0.0.0.0", node=NODE_NAME)
            for vm in c.get("volumeMounts", []):
                if vm["name"] not in names:
                    raise WiringError(
                        f"{pod.owner} container {c['name']}: "
                        f"volumeMount {vm['name']} names no volume"
                    )
            for kind in ("startup", "readiness", "liveness"):
                probe = c.get(f"{kind}Probe", {})
                for action in ("httpGet", "tcpSocket"):
                    if action in probe:
                        who = f"{pod.owner} container {c['name']} {kind}Probe"
                        container_port(c, probe[action]["port"], who)
