"""The boot's flow phase: the product's flow through the Ingress as a user runs it, the
controllers' status, and every pod deleted with a request in flight."""

from __future__ import annotations

from risingstars.dev.chartboot import termination
from risingstars.dev.chartboot.apiserver import chart_crds
from risingstars.dev.chartboot.client import Client, FlowError, check_web_app, run_flow
from risingstars.dev.chartboot.kubelet import Pod
from risingstars.dev.chartboot.manifests import (
    BootFailure,
    matches,
)


class FlowPhase:
    """The user's flow, the controllers' work, pod deletion (a phase of Cluster, which holds
    the state)."""

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
