"""Queries over rendered manifests shared by the chart tests."""

from __future__ import annotations

from collections.abc import Iterator

COMPONENT = "app.kubernetes.io/component"
WORKLOAD_KINDS = {"Deployment", "Job", "Pod"}


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def component(obj: dict) -> str | None:
    return obj["metadata"].get("labels", {}).get(COMPONENT)


def pod_spec(obj: dict) -> dict:
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def pod_labels(obj: dict) -> dict:
    if obj["kind"] == "Pod":
        return obj["metadata"].get("labels", {})
    return obj["spec"]["template"]["metadata"].get("labels", {})


def containers(obj: dict) -> Iterator[dict]:
    spec = pod_spec(obj)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def workloads(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def scalers_of(objects: list[dict], deployment: str) -> list[str]:
    """Every object that owns the replica count of a Deployment."""
    owners = []
    for obj in objects:
        if obj["kind"] in {"HorizontalPodAutoscaler", "ScaledObject", "QueueScaler"}:
            target = obj["spec"]["scaleTargetRef"]
            if target.get("kind", "Deployment") == "Deployment" and target["name"] == deployment:
                owners.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return owners


def min_replicas(objects: list[dict], deployment: dict) -> int:
    name = deployment["metadata"]["name"]
    for obj in objects:
        target = obj.get("spec", {}).get("scaleTargetRef", {})
        if target.get("name") != name:
            continue
        if obj["kind"] == "HorizontalPodAutoscaler":
            return obj["spec"].get("minReplicas", 1)
        if obj["kind"] == "ScaledObject":
            return obj["spec"].get("minReplicaCount", 0)
        if obj["kind"] == "QueueScaler":
            return obj["spec"].get("minReplicas", 1)
    return deployment["spec"].get("replicas", 1)


def env_names(container: dict) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


def env_value(container: dict, name: str) -> str | None:
    for entry in container.get("env", []):
        if entry["name"] == name:
            return entry.get("value")
    return None


def selects(policy: dict, labels: dict) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())
