"""The rendered chart as the cluster would read it: objects by kind and name, the install order
of hooks, the pods each workload makes, and each container's environment and volumes resolved
the way the kubelet resolves them (failing with the kubelet's own reasons)."""

from __future__ import annotations

import base64
import dataclasses
import math
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from risingstars.dev import charttools

ROOT = Path(__file__).resolve().parents[4]
CHART = ROOT / "charts" / "rising-stars"


class WiringError(Exception):
    """The rendered manifests cannot run as written: the message names the object and why."""


class BootFailure(AssertionError):
    """The chart did not boot or the flow failed: the message says where and why."""


def render(
    values: Iterable[Path], *, release: str, namespace: str, chart: Path = CHART
) -> list[dict]:
    args = [str(charttools.helm()), "template", release, str(chart), "--namespace", namespace]
    for path in values:
        args += ["-f", str(path)]
    out = subprocess.run(args, check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise WiringError(f"helm template failed: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kustomize(path: Path) -> list[dict]:
    kubectl = charttools.bin_dir() / "kubectl"
    out = subprocess.run(
        [str(kubectl), "kustomize", str(path)], check=True, capture_output=True, text=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _name(obj: dict) -> str:
    return obj["metadata"]["name"]


def hook(obj: dict) -> set[str]:
    value = obj["metadata"].get("annotations", {}).get("helm.sh/hook", "")
    return {h.strip() for h in value.split(",") if h.strip()}


def hook_weight(obj: dict) -> int:
    return int(obj["metadata"].get("annotations", {}).get("helm.sh/hook-weight", "0"))


def matches(selector: dict, labels: dict) -> bool:
    if not selector:
        return False
    for key, value in selector.get("matchLabels", selector).items():
        if key in ("matchLabels", "matchExpressions"):
            continue
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        op = expr["operator"]
        if (
            (op == "In" and value not in expr["values"])
            or (op == "NotIn" and present and value in expr["values"])
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


@dataclasses.dataclass
class PodSpec:
    """One pod to run: which object made it, its name, labels and spec."""

    owner: str  # e.g. "Deployment/rising-stars-auth"
    name: str
    labels: dict
    spec: dict
    kind: str  # Deployment | Job | TestPod

    @property
    def containers(self) -> list[dict]:
        return self.spec.get("containers", [])


class Manifests:
    """Rendered objects plus the ones that exist before the release (created by an admin or
    other manifests, e.g. k8s/kind/deps or `kubectl create secret`)."""

    def __init__(self, objects: list[dict], namespace: str, existing: Iterable[dict] = ()):
        self.namespace = namespace
        self.objects = objects
        self.existing = list(existing)

    def of(self, kind: str, *, hooks: bool | None = None) -> list[dict]:
        found = [o for o in self.objects if o.get("kind") == kind]
        if hooks is not None:
            found = [o for o in found if bool(hook(o)) == hooks]
        return found

    def get(self, kind: str, name: str) -> dict | None:
        for obj in [*self.objects, *self.existing]:
            if obj.get("kind") == kind and _name(obj) == name:
                return obj
        return None

    # --- workloads -------------------------------------------------------------------------

    def install_jobs(self) -> list[dict]:
        """pre-install hook Jobs in helm's order (weight, then name)."""
        jobs = [o for o in self.of("Job") if "pre-install" in hook(o)]
        return sorted(jobs, key=lambda o: (hook_weight(o), _name(o)))

    def test_pods(self) -> list[dict]:
        pods = [o for o in self.of("Pod") if hook(o) & {"test", "test-success"}]
        return sorted(pods, key=lambda o: (hook_weight(o), _name(o)))

    def deployments(self) -> list[dict]:
        return self.of("Deployment", hooks=False)

    def replicas(self, deployment: dict, cap: int) -> int:
        """spec.replicas, else what the autoscaler that owns it starts with (its minimum),
        else Kubernetes' default of 1; at most `cap` (CPU is scarce here), at least 1."""
        count = deployment["spec"].get("replicas")
        if count is None:
            count = 1
            for hpa in self.of("HorizontalPodAutoscaler"):
                ref = hpa["spec"]["scaleTargetRef"]
                if ref["kind"] == "Deployment" and ref["name"] == _name(deployment):
                    count = hpa["spec"].get("minReplicas", 1)
        return max(1, min(int(count), cap))

    def pods_of(self, obj: dict, index: int = 0) -> PodSpec:
        kind = obj["kind"]
        if kind == "Pod":
            meta, spec, owner_kind = obj["metadata"], obj["spec"], "TestPod"
        else:
            meta, spec = (
                obj["spec"]["template"].get("metadata", {}),
                obj["spec"]["template"]["spec"],
            )
            owner_kind = kind
        suffix = "" if kind == "Pod" else f"-{index}"
        return PodSpec(
            owner=f"{kind}/{_name(obj)}",
            name=f"{_name(obj)}{suffix}",
            labels=dict(meta.get("labels", {})),
            spec=spec,
            kind=owner_kind,
        )

    def service_account(self, pod: PodSpec) -> dict:
        name = pod.spec.get("serviceAccountName") or "default"
        return self.get("ServiceAccount", name) or {"metadata": {"name": name}}

    # --- data sources ----------------------------------------------------------------------

    def secret_data(self, name: str, *, optional: bool = False, who: str) -> dict[str, bytes]:
        secret = self.get("Secret", name)
        if secret is None:
            if optional:
                return {}
            raise WiringError(f"{who}: secret {self.namespace}/{name} not found")
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        data.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
        return data

    def configmap_data(self, name: str, *, optional: bool = False, who: str) -> dict[str, bytes]:
        cm = self.get("ConfigMap", name)
        if cm is None:
            if optional:
                return {}
            raise WiringError(f"{who}: configmap {self.namespace}/{name} not found")
        data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data


# --- the kubelet's view of a container ----------------------------------------------------

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, others stay."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, value)


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(text: str | int | float) -> float:
    m = _QUANTITY.match(str(text))
    if not m or m.group(2) not in _SUFFIX:
        raise WiringError(f"unparseable quantity {text!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def field_ref(path: str, pod: PodSpec, ip: str, node: str, namespace: str) -> str:
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": namespace,
        "metadata.uid": f"uid-{pod.name}",
        "spec.nodeName": node,
        "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
        "status.podIP": ip,
        "status.podIPs": ip,
        "status.hostIP": ip,
    }
    if path in simple:
        return simple[path]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str(pod.labels.get(m.group(2), "")) if m.group(1) == "labels" else ""
    raise WiringError(f"{pod.owner}: unsupported fieldRef {path}")


def resource_ref(ref: dict, container: dict, who: str) -> str:
    resource = ref["resource"]
    kind, _, name = resource.partition(".")
    amounts = container.get("resources", {}).get(kind, {})
    if name not in amounts:
        raise WiringError(f"{who}: resourceFieldRef {resource} is not set")
    value = quantity(amounts[name]) / quantity(ref.get("divisor", "1"))
    return str(math.ceil(value))


def container_env(
    m: Manifests, pod: PodSpec, container: dict, *, ip: str, node: str
) -> dict[str, str]:
    """The container's environment exactly as the kubelet builds it: envFrom first, then env in
    order with $(VAR) expansion against what is already defined. Missing objects or keys fail
    as the kubelet fails them (CreateContainerConfigError)."""
    who = f"{pod.owner} container {container['name']}"
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            ref = source["secretRef"]
            data = m.secret_data(ref["name"], optional=ref.get("optional", False), who=who)
        else:
            ref = source["configMapRef"]
            data = m.configmap_data(ref["name"], optional=ref.get("optional", False), who=who)
        env.update({prefix + k: v.decode() for k, v in data.items()})
    for item in container.get("env", []):
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source or "configMapKeyRef" in source:
            is_secret = "secretKeyRef" in source
            ref = source["secretKeyRef" if is_secret else "configMapKeyRef"]
            optional = ref.get("optional", False)
            loader = m.secret_data if is_secret else m.configmap_data
            data = loader(ref["name"], optional=optional, who=who)
            if ref["key"] not in data:
                if optional:
                    continue
                what = "Secret" if is_secret else "ConfigMap"
                raise WiringError(
                    f"{who}: env {name}: couldn't find key {ref['key']} in {what} "
                    f"{m.namespace}/{ref['name']}"
                )
            env[name] = data[ref["key"]].decode()
        elif "fieldRef" in source:
            env[name] = field_ref(source["fieldRef"]["fieldPath"], pod, ip, node, m.namespace)
        elif "resourceFieldRef" in source:
            env[name] = resource_ref(source["resourceFieldRef"], container, who)
        else:
            raise WiringError(f"{who}: env {name}: unsupported valueFrom {sorted(source)}")
    return env


@dataclasses.dataclass
class VolumeFile:
    path: str  # relative to the volume's root
    data: bytes
    mode: int


@dataclasses.dataclass
class Volume:
    name: str
    kind: str  # emptyDir | files
    files: list[VolumeFile]


def _key_files(
    data: dict[str, bytes], items: list | None, mode: int, who: str, what: str
) -> list[VolumeFile]:
    if items is None:
        return [VolumeFile(k, v, mode) for k, v in sorted(data.items())]
    files = []
    for item in items:
        if item["key"] not in data:
            raise WiringError(f"{who}: couldn't find key {item['key']} in {what}")
        files.append(VolumeFile(item["path"], data[item["key"]], item.get("mode", mode)))
    return files


def volumes(m: Manifests, pod: PodSpec, *, token: bytes, ip: str, node: str) -> list[Volume]:
    """Every volume of the pod with the files the kubelet would write into it."""
    who = pod.owner
    out = []
    for vol in pod.spec.get("volumes", []):
        name = vol["name"]
        if "emptyDir" in vol:
            out.append(Volume(name, "emptyDir", []))
        elif "secret" in vol or "configMap" in vol:
            is_secret = "secret" in vol
            src = vol["secret" if is_secret else "configMap"]
            ref = src["secretName" if is_secret else "name"]
            loader = m.secret_data if is_secret else m.configmap_data
            data = loader(ref, optional=src.get("optional", False), who=who)
            what = f"{'Secret' if is_secret else 'ConfigMap'} {m.namespace}/{ref} (volume {name})"
            mode = src.get("defaultMode", 0o644)
            out.append(Volume(name, "files", _key_files(data, src.get("items"), mode, who, what)))
        elif "projected" in vol:
            mode = vol["projected"].get("defaultMode", 0o644)
            files: list[VolumeFile] = []
            for source in vol["projected"]["sources"]:
                if "serviceAccountToken" in source:
                    files.append(VolumeFile(source["serviceAccountToken"]["path"], token, mode))
                elif "secret" in source or "configMap" in source:
                    is_secret = "secret" in source
                    src = source["secret" if is_secret else "configMap"]
                    loader = m.secret_data if is_secret else m.configmap_data
                    data = loader(src["name"], optional=src.get("optional", False), who=who)
                    what = f"{'Secret' if is_secret else 'ConfigMap'} {src['name']}"
                    files += _key_files(data, src.get("items"), mode, who, what)
                elif "downwardAPI" in source:
                    for item in source["downwardAPI"]["items"]:
                        value = field_ref(item["fieldRef"]["fieldPath"], pod, ip, node, m.namespace)
                        files.append(VolumeFile(item["path"], value.encode(), mode))
                else:
                    raise WiringError(f"{who}: volume {name}: unsupported projection {source}")
            out.append(Volume(name, "files", files))
        else:
            kinds = sorted(set(vol) - {"name"})
            raise WiringError(f"{who}: volume {name}: unsupported volume type {kinds}")
    return out


def container_port(container: dict, port: Any, who: str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise WiringError(f"{who}: no container port named {port!r}")


def by_key(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{_name(o)}": o for o in objects}
