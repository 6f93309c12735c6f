"""The operator's test bench: kopf running for real against kmock's Kubernetes emulator, moto's
SQS (tests/conftest.py), processor pods' /metrics endpoints served on loopback addresses, a TCP
proxy in front of moto to cut SQS off, and the chart's Role rendered by helm.

Every request the operator sends to the emulator is checked against that Role when a test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import pytest
import yaml
from aiobotocore.session import get_session
from polling import eventually
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest

from risingstars.dev import charttools, kube_api
from risingstars.dev.kube_api import DEPLOYMENTS, EVENTS, PODS, QUEUESCALERS, Emulator
from risingstars.operator import app
from risingstars.operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "rising-stars"
RELEASE = "rs"
TARGET = f"{RELEASE}-rising-stars-processor"  # the processor Deployment the chart's Role names
POD_LABELS = {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/component": "processor"}
QS = QUEUESCALERS
# The operator's two clients (kopf's and its own); the tests' requests come from kmock's client.
OPERATOR_AGENTS = ("kopf/", "risingstars-operator")


async def wait_for(
    predicate: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.05
) -> Any:
    return await eventually(predicate, timeout=timeout, what=what, interval=interval)


# --- the Kubernetes API (risingstars.dev.kube_api) -----------------------------------------


class Cluster:
    """The emulated API server, as the tests (not the operator) see it."""

    def __init__(self, api: kmock.KubernetesEmulator) -> None:
        self.api = api

    async def create(self, path: str, body: dict[str, Any]) -> None:
        meta = body.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        meta.setdefault("resourceVersion", "1")
        meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        response = await self.api.post(path, json=body)
        assert response.status < 300, await response.text()

    async def deployment(
        self, ns: str, *, name: str = TARGET, replicas: int = 1, grace: int = 30
    ) -> None:
        await self.create(
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns, "labels": dict(POD_LABELS)},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": dict(POD_LABELS)},
                    "template": {
                        "metadata": {"labels": dict(POD_LABELS)},
                        "spec": {"terminationGracePeriodSeconds": grace, "containers": []},
                    },
                },
            },
        )

    async def pod(self, ns: str, name: str, ip: str) -> None:
        await self.create(
            f"/api/v1/namespaces/{ns}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": dict(POD_LABELS)},
                "spec": {"containers": []},
                "status": {"phase": "Running", "podIP": ip},
            },
        )

    async def queuescaler(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        await self.create(
            f"/apis/risingstars.io/v1alpha1/namespaces/{ns}/queuescalers",
            {
                "apiVersion": "risingstars.io/v1alpha1",
                "kind": "QueueScaler",
                "metadata": {"name": name, "namespace": ns},
                "spec": spec,
            },
        )

    async def delete_queuescaler(self, ns: str, name: str) -> None:
        response = await self.api.delete(
            f"/apis/risingstars.io/v1alpha1/namespaces/{ns}/queuescalers/{name}"
        )
        assert response.status < 300, await response.text()

    async def delete_pod(self, ns: str, name: str) -> None:
        """What the ReplicaSet controller does with the pod it picked (no controller runs here)."""
        response = await self.api.delete(f"/api/v1/namespaces/{ns}/pods/{name}")
        assert response.status < 300, await response.text()

    def get(self, resource: str, ns: str, name: str) -> dict[str, Any] | None:
        if (kmock.resource(resource), ns, name) not in set(self.api.objects.keys()):
            return None
        obj = self.api.objects[resource, ns, name]
        return None if obj.deleted else dict(obj.raw)

    def replicas(self, ns: str, name: str = TARGET) -> int:
        return self.get(DEPLOYMENTS, ns, name)["spec"]["replicas"]

    def replica_history(self, ns: str, name: str = TARGET) -> list[int]:
        history = self.api.objects[DEPLOYMENTS, ns, name, :]
        values = [v["spec"]["replicas"] for v in history if v is not None]
        return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]

    def status(self, ns: str, name: str) -> dict[str, Any]:
        obj = self.get(QS, ns, name)
        return dict((obj or {}).get("status") or {})

    def condition(self, ns: str, name: str, kind: str) -> dict[str, Any] | None:
        conditions = self.status(ns, name).get("conditions") or []
        return next((c for c in conditions if c.get("type") == kind), None)

    def pod_annotations(self, ns: str, name: str) -> dict[str, str]:
        return dict((self.get(PODS, ns, name) or {}).get("metadata", {}).get("annotations") or {})

    def events(self, ns: str, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for (resource, namespace, _), obj in self.api.objects.items():
            if resource == kmock.resource(EVENTS) and namespace == ns and not obj.deleted:
                raw = dict(obj.raw)
                if name is None or raw.get("involvedObject", {}).get("name") == name:
                    found.append(raw)
        return found

    def operator_requests(self) -> list[kmock.Request]:
        return [r for r in self.api if r.headers.get("User-Agent", "").startswith(OPERATOR_AGENTS)]


# --- the chart's Role, and the check of every request against it --------------------------


def render_operator_chart(namespace: str) -> list[dict[str, Any]]:
    """The chart's objects in mode operator, rendered by helm for `namespace`."""
    rendered = subprocess.run(
        [
            str(charttools.helm()),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            namespace,
            "--set",
            "processor.autoscaling.mode=operator",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


_rules_cache: dict[str, list[dict[str, Any]]] = {}


def chart_rbac(namespace: str) -> list[dict[str, Any]]:
    """[{namespace or None (cluster), rules}] of every Role/ClusterRole bound to the operator."""
    if namespace not in _rules_cache:
        docs = render_operator_chart(namespace)
        roles = {
            (d["kind"], d["metadata"]["name"]): d
            for d in docs
            if d["kind"] in {"Role", "ClusterRole"}
        }
        grants = []
        for binding in docs:
            if binding["kind"] not in {"RoleBinding", "ClusterRoleBinding"}:
                continue
            if not any(
                s.get("kind") == "ServiceAccount" and s["name"].endswith("-operator")
                for s in binding.get("subjects") or []
            ):
                continue
            role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
            scope = (
                binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
            )
            grants.append({"namespace": scope, "rules": role.get("rules") or []})
        _rules_cache[namespace] = grants
    return _rules_cache[namespace]


VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


def rbac_attributes(request: kmock.Request) -> tuple[str, str, str, str | None, str | None] | None:
    """(verb, group, resource[/subresource], namespace, name) as the API server's authorizer
    sees the request; None for discovery (non-resource URLs every client may read)."""
    path = urllib.parse.urlsplit(str(request.url)).path.strip("/").split("/")
    if path[0] == "api" and len(path) >= 2:
        group, rest = "", path[2:]
    elif path[0] == "apis" and len(path) >= 3:
        group, rest = path[1], path[3:]
    else:
        return None
    if not rest:
        return None  # /api/v1, /apis/g/v: discovery
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else None
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    method = str(request.method.value if hasattr(request.method, "value") else request.method)
    verb = VERBS[method.upper()]
    if verb == "get" and name is None:
        verb = "watch" if request.params.get("watch") in {"true", "1"} else "list"
    return verb, group, resource, namespace, name


def allowed(attrs: tuple[str, str, str, str | None, str | None], grants: list[dict]) -> bool:
    verb, group, resource, namespace, name = attrs
    for grant in grants:
        if grant["namespace"] is not None and grant["namespace"] != namespace:
            continue
        for rule in grant["rules"]:
            if group not in rule.get("apiGroups", []) and "*" not in rule.get("apiGroups", []):
                continue
            if resource not in rule.get("resources", []) and "*" not in rule.get("resources", []):
                continue
            if verb not in rule.get("verbs", []) and "*" not in rule.get("verbs", []):
                continue
            names = rule.get("resourceNames")
            if names and name not in names:
                continue
            return True
    return False


def denied_requests(cluster: Cluster, namespaces: Iterable[str]) -> list[str]:
    grants = [g for ns in namespaces for g in chart_rbac(ns)]
    problems = []
    for request in cluster.operator_requests():
        attrs = rbac_attributes(request)
        if attrs is not None and not allowed(attrs, grants):
            problems.append(f"{request.method} {request.url} -> {attrs}")
    return problems


# --- the operator --------------------------------------------------------------------------


class RunningOperator:
    """The operator in a thread with its own event loop, as in a pod: kopf treats every task
    of its loop as its own and cancels them when it stops."""

    def __init__(self, cfg: Settings) -> None:
        self.namespaces = cfg.watch_namespaces
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(cfg,), name="operator")
        self.thread.start()

    def _run(self, cfg: Settings) -> None:
        try:
            asyncio.run(app.operator(cfg, stop_flag=self.stop, ready_flag=self.ready))
        except BaseException as exc:
            self.error = exc

    async def shutdown(self) -> None:
        self.stop.set()
        await wait_for(lambda: not self.thread.is_alive(), "the operator to stop", timeout=30)
        if self.error is not None:
            raise self.error


class JobsQueue:
    """The test's jobs queue on moto (the `aws` fixture's), and a QueueScaler spec for it."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url

    async def send(self, count: int, **kw: Any) -> None:
        for start in range(0, count, 10):
            ids = range(start, min(start + 10, count))
            entries = [{"Id": str(i), "MessageBody": "{}", **kw} for i in ids]
            await self.client.send_message_batch(QueueUrl=self.url, Entries=entries)

    async def purge(self) -> None:
        await self.client.purge_queue(QueueUrl=self.url)

    def spec(self, **overrides: Any) -> dict[str, Any]:
        return queue_spec(self.url, **overrides)


class TcpProxy:
    """A TCP relay to moto that the test can cut (connections refused) and restore."""

    def __init__(self, target_url: str) -> None:
        parsed = urllib.parse.urlsplit(target_url)
        self.target = (parsed.hostname, parsed.port)
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


# --- processor pods' metrics -------------------------------------------------------------


class PodMetrics:
    """Processor pods' /metrics on 127.0.0.x (the pods' IPs), one shared port, each with its
    own processor_jobs_in_flight gauge in the Prometheus text format."""

    def __init__(self) -> None:
        self.port = 0
        self.gauges: dict[str, Gauge] = {}
        self._runners: list[aiohttp.web.AppRunner] = []

    async def add(self, ip: str, in_flight: int = 0) -> None:
        registry = CollectorRegistry()
        gauge = Gauge("processor_jobs_in_flight", "Jobs being processed", registry=registry)
        gauge.set(in_flight)

        async def metrics(_: aiohttp.web.Request) -> aiohttp.web.Response:
            return aiohttp.web.Response(body=generate_latest(registry), content_type="text/plain")

        web = aiohttp.web.Application()
        web.router.add_get("/metrics", metrics)
        runner = aiohttp.web.AppRunner(web, access_log=None)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, ip, self.port)
        await site.start()
        if not self.port:
            self.port = runner.addresses[0][1]
        self._runners.append(runner)
        self.gauges[ip] = gauge

    def set(self, ip: str, in_flight: int) -> None:
        self.gauges[ip].set(in_flight)

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


def metric(name: str, **labels: str) -> float:
    """A sample of the operator's metrics (the process's default Prometheus registry)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def queue_spec(queue_url: str, **overrides: Any) -> dict[str, Any]:
    spec = {
        "scaleTargetRef": {"name": TARGET},
        "queue": {"url": queue_url},
        "targetBacklogPerReplica": 5,
        "minReplicas": 1,
        "maxReplicas": 10,
        "pollingIntervalSeconds": 1,
        "scaleDownStabilizationSeconds": 3,
        "cooldownSeconds": 1,
    }
    spec.update(overrides)
    return spec


# --- fixtures ---


@pytest.fixture
async def k8s() -> AsyncIterator[Emulator]:
    async with Emulator() as api, kmock.Server(api):
        kube_api.declare(api)
        yield api


@pytest.fixture
def cluster(k8s: Emulator) -> Cluster:
    return Cluster(k8s)


@pytest.fixture
def kubeconfig(k8s: Emulator, tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": str(k8s.url).rstrip("/")}}],
                "users": [{"name": "operator", "user": {"token": "operator-token"}}],
                "contexts": [
                    {"name": "kmock", "context": {"cluster": "kmock", "user": "operator"}}
                ],
                "current-context": "kmock",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
async def start_operator(
    cluster: Cluster, kubeconfig: Path, moto_url: str
) -> AsyncIterator[Callable[..., Awaitable[RunningOperator]]]:
    running: list[RunningOperator] = []

    async def start(*namespaces: str) -> RunningOperator:
        cfg = Settings(aws_endpoint_url=moto_url, watch_namespaces=namespaces)
        op = RunningOperator(cfg)
        running.append(op)
        await wait_for(
            lambda: op.ready.is_set() or not op.thread.is_alive(), "the operator to start"
        )
        if op.error is not None:
            raise op.error
        return op

    yield start

    for op in running:
        await op.shutdown()
    # Every request the operator made is one the chart's Role allows.
    namespaces = {ns for op in running for ns in op.namespaces}
    assert denied_requests(cluster, namespaces) == []


@pytest.fixture
async def jobs(moto_url: str, aws: Any) -> AsyncIterator[JobsQueue]:
    session = get_session()
    async with session.create_client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        yield JobsQueue(client, aws.jobs_queue_url)


@pytest.fixture
async def sqs_proxy(moto_url: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(moto_url)
    await proxy.start()
    yield proxy
    if proxy._server is not None:
        await proxy.cut()


@pytest.fixture
async def pod_metrics() -> AsyncIterator[PodMetrics]:
    servers = PodMetrics()
    yield servers
    await servers.close()


class ChartRBAC:
    """The chart's operator RBAC, as the tests use it."""

    render = staticmethod(render_operator_chart)
    grants = staticmethod(chart_rbac)
    attributes = staticmethod(rbac_attributes)
    denied = staticmethod(denied_requests)

    @staticmethod
    def granted(namespace: str) -> set[tuple[str, str, str]]:
        """(verb, group, resource) triples the chart grants the operator in `namespace`."""
        return {
            (verb, group, resource)
            for grant in chart_rbac(namespace)
            for rule in grant["rules"]
            for verb in rule["verbs"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
        }


@pytest.fixture
def chart() -> type[ChartRBAC]:
    return ChartRBAC


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Awaitable[Any]]:
    return wait_for


@pytest.fixture(name="metric")
def metric_fixture() -> Callable[..., float]:
    return metric


@pytest.fixture
def namespace() -> str:
    return f"ns-{uuid.uuid4().hex[:8]}"
