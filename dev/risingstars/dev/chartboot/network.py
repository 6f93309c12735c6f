"""The boot's network phase: Services as cluster IPs forwarding to ready endpoints (kube-proxy),
the hosts files that name them, the externals' addresses, the Ingress router; and afterwards the
NetworkPolicies judged on every connection the boot made."""

from __future__ import annotations

import contextlib

from risingstars.dev.chartboot import netpol
from risingstars.dev.chartboot.apiserver import APIServer, chart_crds
from risingstars.dev.chartboot.kubelet import Pod
from risingstars.dev.chartboot.manifests import (
    BootFailure,
    WiringError,
    container_port,
    matches,
)
from risingstars.dev.chartboot.proxy import Forwarder, Router, check_backends, routes


class NetworkPhase:
    """The node network: Services, names, externals' addresses, the Ingress; policies judged
    (a phase of Cluster, which holds the state)."""

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
