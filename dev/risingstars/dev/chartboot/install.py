"""The boot's install phase: what the cluster adds to a pod (kubelet environment, admission:
service account token, IRSA), pre-install hook Jobs in order, Deployments until Ready, the
`helm test` pods."""

from __future__ import annotations

import time
from pathlib import Path

from risingstars.dev.chartboot.kubelet import Pod
from risingstars.dev.chartboot.manifests import (
    BootFailure,
)

NODE_NAME = "chartboot-node"
# Longest wait for a boot's pods (helm install --wait's default is 5 minutes).
BOOT_TIMEOUT = 240
IRSA_TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount"  # noqa: S105
SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # noqa: S105


class InstallPhase:
    """Hook Jobs, Deployments' pods until Ready, helm test pods (a phase of Cluster, which holds
    the state)."""

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
        if self.report.get("images"):
            refs = sorted(set(self.report["images"].values()))
            self.step(f"{len(self.report['images'])} containers ran from the images {refs}")

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
