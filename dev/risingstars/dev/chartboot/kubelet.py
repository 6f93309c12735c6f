"""Runs pods as the kubelet would: the image mapped to the local install of its service, the
container's command/args with exactly its environment, its volumes written into a per-pod
directory and mounted at their paths, probes with the manifest's timings and thresholds, and
termination with preStop and terminationGracePeriodSeconds."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import importlib.util
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from risingstars.dev.chartboot.manifests import (
    ROOT,
    Manifests,
    PodSpec,
    WiringError,
    container_env,
    container_port,
    expand,
    volumes,
)

DOCKERFILE = ROOT / "services" / "Dockerfile"
# python:3.11-slim's PATH, which the Dockerfile's ENV PATH extends.
# The least time a started pod gets to become Ready (slow readiness checks on a busy machine).
READY_MARGIN = 20.0
_BASE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclasses.dataclass(frozen=True)
class Image:
    """The runtime stage of services/Dockerfile, with its paths mapped to this checkout."""

    env: dict[str, str]
    workdir: str
    user: tuple[int, int]
    entrypoint: list[str]
    cmd: list[str]
    launcher: str  # the script the builder stage writes (`service`)
    passwd: list[str]  # the image's own users and groups (useradd/groupadd)
    group: list[str]


def read_dockerfile(path: Path = DOCKERFILE) -> Image:
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip()[0] != "#"]
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        elif stages:
            stages[-1].append(line)
    env, workdir, user, entrypoint, cmd = {}, "/", (0, 0), [], []
    for line in stages[-1]:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value.replace("$PATH", _BASE_PATH)
        elif word == "WORKDIR":
            workdir = rest.strip()
        elif word == "USER":
            uid, _, gid = rest.strip().partition(":")
            user = (int(uid), int(gid or uid))
        elif word == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif word == "CMD":
            cmd = json.loads(rest)
    launcher = re.search(r"> /opt/venv/bin/(\w+)", text)
    if not launcher:
        raise WiringError(f"{path}: no launcher script written to /opt/venv/bin")
    final = "\n".join(stages[-1])
    group = [
        f"{m.group(2)}:x:{m.group(1)}:"
        for m in re.finditer(r"groupadd\b[^&;]*?--gid (\d+)[^&;]*? (\w+)\s*(?:&&|$)", final)
    ]
    passwd = []
    for m in re.finditer(r"useradd\b([^&;]*?) (\w+)\s*(?:&&|$)", final, re.M):
        opts = dict(re.findall(r"--([a-z-]+) ([^-\s]\S*)", m.group(1)))
        passwd.append(
            f"{m.group(2)}:x:{opts.get('uid')}:{opts.get('gid')}::"
            f"{opts.get('home-dir', '/')}:{opts.get('shell', '/bin/sh')}"
        )
    return Image(env, workdir, user, entrypoint, cmd, launcher.group(1), passwd, group)


def image_service(image: str) -> str:
    """rising-stars-<service>[:tag|@digest] from any registry -> <service>, which must be a
    package of this checkout with a __main__."""
    repo = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    service = repo.removeprefix("rising-stars-")
    if not re.fullmatch(r"[a-z]+", service) or not importlib.util.find_spec(
        f"risingstars.{service}.__main__"
    ):
        raise WiringError(f"image {image} maps to no local service (risingstars.<name>)")
    return service


@dataclasses.dataclass
class Probe:
    kind: str  # startup | readiness | liveness
    spec: dict
    failures: int = 0
    successes: int = 0
    last: str = ""


class Pod:
    """One running pod (one or more containers) in its own network namespace."""

    def __init__(self, cluster, spec: PodSpec, ns: str, ip: str, workdir: Path) -> None:
        self.cluster = cluster
        self.spec = spec
        self.ns = ns
        self.ip = ip
        self.dir = workdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.started: dict[str, float] = {}
        self.started_up: dict[str, float] = {}  # when each container's startup probe passed
        self.ready = False
        self.terminating = False
        self.kind_is_run_to_completion = spec.kind != "Deployment"
        self.fatal: str | None = None
        self.exit_codes: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def name(self) -> str:
        return self.spec.name

    def log(self, container: str | None = None, tail: int = 3000) -> str:
        container = container or self.spec.containers[0]["name"]
        path = self.dir / f"{container}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    # --- start -----------------------------------------------------------------------------

    def prepare(self) -> list[dict]:
        """Everything the kubelet resolves before starting containers; WiringError if the
        manifests do not allow it (missing Secret, key, ConfigMap, port name...)."""
        m: Manifests = self.cluster.manifests
        image_cfg: Image = self.cluster.image
        pod_sc = self.spec.spec.get("securityContext", {})
        sa = m.service_account(self.spec)
        token = f"token-for-{sa['metadata']['name']}".encode()
        vols = {
            v.name: v
            for v in volumes(m, self.spec, token=token, ip=self.ip, node=self.cluster.node_name)
        }
        extra_env, extra_mounts = self.cluster.admission(self.spec, sa, self.dir, token)
        fs_group = pod_sc.get("fsGroup")
        vol_dirs = {}
        for vol in vols.values():
            path = self.dir / "volumes" / vol.name
            path.mkdir(parents=True)
            if vol.kind == "emptyDir":
                path.chmod(0o777)  # the kubelet's emptyDir mode
            else:
                path.chmod(0o755)
                for f in vol.files:
                    target = path / f.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(f.data)
                    os.chown(target, 0, fs_group if fs_group is not None else 0)
                    mode = f.mode | (0o040 if fs_group is not None else 0)
                    target.chmod(mode)
            vol_dirs[vol.name] = path
        launches = []
        for container in self.spec.containers:
            who = f"{self.spec.owner} container {container['name']}"
            service = image_service(container["image"])
            built = (self.cluster.images or {}).get(service)
            if built is not None:
                # The built image: its own config, its layers as the root filesystem.
                env = {**built.env, "HOME": built.home}
                entrypoint, cmd, workdir, user = (
                    built.entrypoint,
                    built.cmd,
                    built.workdir,
                    built.user,
                )
                mounts = list(extra_mounts)
                self.cluster.report.setdefault("images", {})[f"{self.name}/{container['name']}"] = (
                    built.ref
                )
            else:
                env = dict(image_cfg.env)
                bindir = self.cluster.image_bin(service)
                env["PATH"] = env["PATH"].replace(
                    "/opt/venv/bin", f"{bindir}:{Path(sys.prefix)}/bin"
                )
                env["HOME"] = "/nonexistent"  # the image user's home (useradd --home-dir)
                entrypoint, cmd, workdir, user = (
                    image_cfg.entrypoint,
                    image_cfg.cmd,
                    image_cfg.workdir,
                    image_cfg.user,
                )
                mounts = [*self.cluster.image_etc(), *extra_mounts]
            env.update(self.cluster.kubelet_env(self.spec))
            env.update(extra_env)
            env.update(
                container_env(m, self.spec, container, ip=self.ip, node=self.cluster.node_name)
            )
            command = container.get("command")
            args = container.get("args")
            # Kubernetes' rule: command replaces ENTRYPOINT (and drops CMD); args replace CMD.
            argv = list(command) if command is not None else list(entrypoint)
            argv += list(args) if args is not None else ([] if command else list(cmd))
            argv = [expand(str(a), env) for a in argv]
            if not argv:
                raise WiringError(f"{who}: no command")
            for vm in container.get("volumeMounts", []):
                if vm["name"] not in vol_dirs:
                    raise WiringError(f"{who}: volumeMount {vm['name']} names no pod volume")
                source = vol_dirs[vm["name"]] / vm.get("subPath", "")
                mounts.append(
                    {
                        "source": str(source),
                        "target": vm["mountPath"],
                        "readOnly": bool(vm.get("readOnly", False)),
                    }
                )
            sc = {**pod_sc, **container.get("securityContext", {})}
            uid = sc.get("runAsUser", user[0])
            gid = sc.get("runAsGroup", user[1])
            if sc.get("runAsNonRoot") and uid == 0:
                raise WiringError(f"{who}: runAsNonRoot but the user is root")
            groups = [g for g in [fs_group, *pod_sc.get("supplementalGroups", [])] if g is not None]
            launches.append(
                {
                    "name": container["name"],
                    "hostname": self.name,
                    "mounts": mounts,
                    "readOnlyRootFilesystem": bool(sc.get("readOnlyRootFilesystem", False)),
                    "workingDir": container.get("workingDir", workdir),
                    "noNewPrivs": sc.get("allowPrivilegeEscalation") is False,
                    "uid": uid,
                    "gid": gid,
                    "groups": groups,
                    "argv": argv,
                    "env": env,
                    "expose": [] if built else [sys.base_prefix, sys.prefix, str(ROOT)],
                    "rootfs": (
                        {
                            "layers": built.layers,
                            "dir": str(self.dir / f"rootfs-{container['name']}"),
                        }
                        if built
                        else None
                    ),
                }
            )
        return launches

    def start(self, launches: list[dict]) -> None:
        for launch in launches:
            spec_path = self.dir / f"{launch['name']}.json"
            spec_path.write_text(json.dumps(launch))
            spec_path.chmod(0o600)
            log = open(self.dir / f"{launch['name']}.log", "wb")  # noqa: SIM115
            proc = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns,
                    sys.executable,
                    "-m",
                    "risingstars.dev.chartboot.launch",
                    str(spec_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", _BASE_PATH)},
                # No preexec_fn (threads run here): the launcher sets its parent-death signal.
                start_new_session=True,
            )
            log.close()
            self.procs[launch["name"]] = proc
            self.started[launch["name"]] = time.monotonic()
        self._launches = {launch["name"]: launch for launch in launches}

    # --- probes ----------------------------------------------------------------------------

    def unready_since(self, now: float) -> float:
        """Seconds since every container started up while the pod is still not Ready."""
        if len(self.started_up) < len(self.spec.containers):
            return 0.0
        return now - max(self.started_up.values())

    def ready_window(self) -> float:
        window = READY_MARGIN
        for c in self.spec.containers:
            r = c.get("readinessProbe") or {}
            period = r.get("periodSeconds", 10)
            window = max(
                window, r.get("initialDelaySeconds", 0) + period * r.get("failureThreshold", 3)
            )
        return window

    def run_probes(self) -> None:
        """One prober thread per container, for the pod's lifetime."""
        for container in self.spec.containers:
            t = threading.Thread(
                target=self._prober,
                args=(container,),
                name=f"probe-{self.name}-{container['name']}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)

    def _prober(self, container: dict) -> None:
        name = container["name"]
        who = f"{self.name}/{name}"
        probes = {
            kind: Probe(kind, container[f"{kind}Probe"])
            for kind in ("startup", "readiness", "liveness")
            if f"{kind}Probe" in container
        }
        started = self.started[name]
        next_at = {k: started + p.spec.get("initialDelaySeconds", 0) for k, p in probes.items()}
        startup_done = "startup" not in probes
        if startup_done:
            self.started_up[name] = started
        if not probes:
            self.ready = True
        while not self._stop.is_set():
            proc = self.procs[name]
            if proc.poll() is not None:
                if not self.terminating and self.fatal is None:
                    self.fatal = f"{who}: container exited with code {proc.returncode}"
                self.ready = False
                return
            now = time.monotonic()
            for kind, probe in probes.items():
                if (kind == "startup") == startup_done or now < next_at[kind] or self.terminating:
                    continue
                next_at[kind] = now + probe.spec.get("periodSeconds", 10)
                ok, detail = self.probe(container, probe.spec)
                probe.last = detail
                if ok:
                    probe.failures = 0
                    probe.successes += 1
                    if kind == "startup":
                        startup_done = True
                        self.started_up[name] = now
                        # Readiness and liveness start once the startup probe succeeded.
                        for other in probes:
                            if other != "startup":
                                next_at[other] = now
                    elif kind == "readiness" and probe.successes >= probe.spec.get(
                        "successThreshold", 1
                    ):
                        self.ready = True
                    continue
                probe.successes = 0
                probe.failures += 1
                if probe.failures < probe.spec.get("failureThreshold", 3):
                    continue
                if kind == "readiness":
                    self.ready = False
                elif self.fatal is None:
                    self.fatal = (
                        f"{who}: {kind}Probe failed {probe.failures} times "
                        f"({_describe(probe.spec)}): {detail}; the kubelet would kill it"
                    )
                    return
            self._stop.wait(0.05)

    def probe(self, container: dict, spec: dict) -> tuple[bool, str]:
        who = f"{self.name}/{container['name']}"
        timeout = spec.get("timeoutSeconds", 1)
        if "httpGet" in spec:
            get = spec["httpGet"]
            port = container_port(container, get["port"], who)
            host = get.get("host", self.ip)
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                headers = {"User-Agent": "kube-probe/1.31", "Accept": "*/*"}
                headers.update({h["name"]: h["value"] for h in get.get("httpHeaders", [])})
                conn.request("GET", get.get("path", "/"), headers=headers)
                status = conn.getresponse().status
            except OSError as exc:
                return False, f"GET {get.get('path', '/')} on :{port}: {exc}"
            finally:
                conn.close()
            return 200 <= status < 400, f"GET {get.get('path', '/')} on :{port} -> HTTP {status}"
        if "tcpSocket" in spec:
            port = container_port(container, spec["tcpSocket"]["port"], who)
            try:
                socket.create_connection((self.ip, port), timeout=timeout).close()
            except OSError as exc:
                return False, f"tcp :{port}: {exc}"
            return True, f"tcp :{port} open"
        if "exec" in spec:
            code = self.exec_in(container["name"], spec["exec"]["command"], timeout)
            return code == 0, f"exec {spec['exec']['command']} -> exit {code}"
        raise WiringError(f"{who}: unsupported probe {sorted(spec)}")

    def exec_in(self, container: str, command: list[str], timeout: float) -> int:
        """Run a command in the container's namespaces, as its user, with its environment."""
        proc, launch = self.procs[container], self._launches[container]
        # The launcher exec'ed into the container's process: its pid is the container's.
        args = ["nsenter", "-t", str(proc.pid), "-m", "-u", "-n"]
        args += ["-S", str(launch["uid"]), "-G", str(launch["gid"]), "--wd=" + launch["workingDir"]]
        try:
            return subprocess.run(
                [*args, *command], env=launch["env"], timeout=timeout, capture_output=True
            ).returncode
        except subprocess.TimeoutExpired:
            return -1

    # --- termination ----------------------------------------------------------------------

    def terminate(self, grace_override: float | None = None) -> dict:
        """Delete the pod: out of the Service endpoints at once, preStop hooks, SIGTERM, and
        SIGKILL when terminationGracePeriodSeconds (counted from the start) runs out."""
        self.terminating = True
        self.ready = False
        grace = self.spec.spec.get("terminationGracePeriodSeconds", 30)
        if grace_override is not None:
            grace = grace_override
        deadline = time.monotonic() + grace
        report = {"pod": self.name, "grace": grace, "containers": {}}
        hooks = []
        for container in self.spec.containers:
            pre = container.get("lifecycle", {}).get("preStop")
            t = threading.Thread(target=self._pre_stop, args=(container, pre, deadline))
            t.start()
            hooks.append((container["name"], t))
        for name, t in hooks:
            t.join()
            proc = self.procs.get(name)
            if proc is None:
                continue
            sent = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(max(0.0, deadline - time.monotonic()))
                killed = False
            except subprocess.TimeoutExpired:
                proc.kill()
                code, killed = proc.wait(), True
            report["containers"][name] = {
                "exit": code,
                "killed": killed,
                "sigterm_to_exit": round(time.monotonic() - sent, 2),
            }
            self.exit_codes[name] = code
        self._stop.set()
        return report

    def _pre_stop(self, container: dict, pre: dict | None, deadline: float) -> None:
        if not pre:
            return
        left = max(0.0, deadline - time.monotonic())
        if "sleep" in pre:
            self._stop.wait(min(left, pre["sleep"]["seconds"]))
        elif "exec" in pre:
            self.exec_in(container["name"], pre["exec"]["command"], left)
        elif "httpGet" in pre:
            self.probe(container, {"httpGet": pre["httpGet"], "timeoutSeconds": left})

    def kill(self) -> None:
        self.terminating = True
        self._stop.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def wait_done(self, timeout: float) -> int:
        """A run-to-completion pod (Job, test): the exit code of its (first) container."""
        proc = next(iter(self.procs.values()))
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9


def _describe(spec: dict) -> str:
    if "httpGet" in spec:
        return f"httpGet {spec['httpGet'].get('path', '/')} port {spec['httpGet']['port']}"
    if "tcpSocket" in spec:
        return f"tcpSocket port {spec['tcpSocket']['port']}"
    return "exec"
