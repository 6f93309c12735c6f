"""One boot of the rendered chart, phase by phase: the node network (network.py), the external
endpoints, PostgreSQL and moto standing in for RDS, S3 and SQS (externals.py), the release as helm
and the cluster would run it: pre-install hook Jobs by weight, Deployments until their probes
pass, the `helm test` pods (install.py); then the flow through the Ingress, and pod deletion
(flow.py). Cluster holds the state they share; run() boots several overlays at once."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from risingstars.dev import infra
from risingstars.dev.chartboot import netns, netpol
from risingstars.dev.chartboot.apiserver import APIServer
from risingstars.dev.chartboot.externals import External, ExternalsPhase
from risingstars.dev.chartboot.flow import FlowPhase
from risingstars.dev.chartboot.install import NODE_NAME, InstallPhase
from risingstars.dev.chartboot.kubelet import Image, Pod, read_dockerfile
from risingstars.dev.chartboot.manifests import (
    BootFailure,
    Manifests,
    WiringError,
    container_port,
    render,
)
from risingstars.dev.chartboot.network import NetworkPhase
from risingstars.dev.chartboot.proxy import Forwarder, Router

__all__ = ["BootFailure", "External", "Overlay", "Result", "booted", "preflight", "run"]


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


class Cluster(NetworkPhase, ExternalsPhase, InstallPhase, FlowPhase):
    """One boot: the state every phase reads and writes, and the order of the phases."""

    def __init__(self, overlay: Overlay, *, workdir: Path, images: dict | None = None):
        self.overlay = overlay
        self.dir = workdir
        self.cap = overlay.replicas_cap
        self.namespace = "rising-stars"
        self.release = "rising-stars"
        self.node_name = NODE_NAME
        self.image: Image = read_dockerfile()
        # service -> RunImage: pods of these services run from the built image's root
        # filesystem; the others from this checkout.
        self.images = images or {}
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


_live: list[Cluster] = []


def _teardown_all() -> None:
    for cluster in list(_live):
        with contextlib.suppress(Exception):
            cluster.teardown()


atexit.register(_teardown_all)


@contextlib.contextmanager
def booted(overlay: Overlay, *, keep: bool = False, images: dict | None = None):
    netns.clean_stale()
    # Not under /tmp: pods mount their own /tmp over it, which would hide their volumes.
    workdir = Path(tempfile.mkdtemp(prefix=f"{netns.PREFIX}-{os.getpid()}-", dir=netns.WORK_ROOT))
    workdir.chmod(0o755)
    cluster = Cluster(overlay, workdir=workdir, images=images)
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
    images: dict[str, dict] | None = None,
) -> dict[str, Result]:
    """Boot each overlay, all at once (each in its own node network, driven by its own
    thread): most of a boot is waiting on probes, queues and polls, not CPU. `images` maps an
    overlay's name to the built images its pods run from ({service: RunImage})."""
    netns.clean_stale()
    results: dict[str, Result] = {}

    def one(overlay: Overlay) -> None:
        report: dict = {}
        try:
            with booted(overlay, keep=keep, images=(images or {}).get(overlay.name)) as cluster:
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
