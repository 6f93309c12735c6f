"""skaffold.yaml as a fresh kind cluster needs it: the deps (PostgreSQL, LocalStack) applied and
Available before helm starts (the release's pre-install migration Jobs wait for PostgreSQL), the
artifacts named like the chart's image repositories and handed to it by skaffold's own template
names, multi-arch images for EKS; and the CI workflow deploying with `skaffold run` as the docs
say, with no step of its own in between."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SKAFFOLD = ROOT / "skaffold.yaml"
DEPS = ROOT / "k8s" / "kind" / "deps"
SERVICES = ("auth", "upload", "processor", "operator", "web")


def _config() -> dict:
    return yaml.safe_load(SKAFFOLD.read_text())


def pipelines(config: dict) -> dict[str, dict]:
    """The default pipeline and each profile's, as skaffold resolves them: a profile's section
    replaces the top-level one."""
    out = {"default": config}
    for profile in config.get("profiles", []):
        out[profile["name"]] = {**config, **{k: v for k, v in profile.items() if k != "name"}}
    return out


def dep_deployments() -> set[str]:
    kustomization = yaml.safe_load((DEPS / "kustomization.yaml").read_text())
    names = set()
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((DEPS / resource).read_text()):
            if doc and doc.get("kind") == "Deployment":
                names.add(doc["metadata"]["name"])
    return names


def deps_order_problems(pipeline: dict) -> list[str]:
    """Why helm could start before the kind deps are up in this pipeline (empty: it cannot).
    skaffold runs the helm deployer before kubectl/kustomize ones, so the deps must be applied
    and waited for in helm's hooks.before."""
    deploy = pipeline.get("deploy", {})
    releases = deploy.get("helm", {}).get("releases", [])
    if not any("values-kind.yaml" in " ".join(r.get("valuesFiles", [])) for r in releases):
        return []
    problems = []
    hooks = deploy["helm"].get("hooks", {}).get("before", [])
    scripts = [
        (ROOT / word).read_text()
        for hook in hooks
        for word in hook.get("host", {}).get("command", [])
        if (ROOT / word).is_file()
    ]
    hook_text = "\n".join(scripts) + yaml.safe_dump(hooks)
    elsewhere = yaml.safe_dump(pipeline.get("manifests") or {}) + yaml.safe_dump(
        {k: v for k, v in deploy.items() if k != "helm"}
    )
    if "k8s/kind/deps" in elsewhere or "kubectl" in deploy:
        problems.append("the kind deps are deployed by a deployer that runs after helm")
    if not re.search(r"apply -k \S*deps", hook_text):
        problems.append("helm's hooks.before does not apply k8s/kind/deps")
    for name in sorted(dep_deployments()):
        if not re.search(
            rf"wait --for=condition=Available[^\n]*(\\\n[^\n]*)*deployment/{name}\b", hook_text
        ):
            problems.append(f"helm's hooks.before does not wait for deployment/{name}")
    return problems


def test_helm_cannot_start_before_the_kind_deps_are_up() -> None:
    found = {name: deps_order_problems(p) for name, p in pipelines(_config()).items()}
    assert any(p.get("deploy", {}).get("helm") for p in pipelines(_config()).values())
    assert found == {name: [] for name in found}


def test_the_order_check_sees_the_old_layout() -> None:
    """The layout that deadlocked (deps as a kubectl deployer beside helm) is refused."""
    config = _config()
    config["manifests"] = {"kustomize": {"paths": ["k8s/kind/deps"]}}
    config["deploy"] = {**config["deploy"], "kubectl": {}}
    del config["deploy"]["helm"]["hooks"]
    problems = deps_order_problems(pipelines(config)["default"])
    assert "the kind deps are deployed by a deployer that runs after helm" in problems
    assert "helm's hooks.before does not apply k8s/kind/deps" in problems


def test_artifacts_are_the_charts_image_repositories() -> None:
    values = yaml.safe_load((ROOT / "charts" / "rising-stars" / "values.yaml").read_text())
    repositories = {values[s]["image"]["repository"] for s in SERVICES}
    for name, pipeline in pipelines(_config()).items():
        artifacts = {a["image"] for a in pipeline["build"]["artifacts"]}
        assert artifacts == repositories, name
        for release in pipeline["deploy"]["helm"]["releases"]:
            templates = release["setValueTemplates"]
            for service in SERVICES:
                key = values[service]["image"]["repository"].replace("-", "_")
                assert templates[f"{service}.image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
                assert templates[f"{service}.image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
            for template in templates.values():
                for used in re.findall(r"IMAGE_(?:REPO|TAG|DIGEST)_(\w+)", template):
                    assert used in {a.replace("-", "_") for a in artifacts}, (name, template)


def test_eks_images_run_on_x86_and_graviton_nodes() -> None:
    eks = pipelines(_config())["eks"]
    assert {"linux/amd64", "linux/arm64"} <= set(eks["build"]["platforms"])


def test_skaffold_yaml_matches_the_v4beta14_schema() -> None:
    import json

    schema = json.loads((ROOT / "charts" / "schemas" / "skaffold-v4beta14.json").read_text())
    jsonschema.validate(_config(), schema)


@pytest.fixture(scope="module")
def kind_job() -> dict:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "kubernetes.yaml").read_text())
    return workflow["jobs"]["kind-e2e"]


def test_ci_deploys_with_skaffold_run_and_no_hand_step(kind_job) -> None:
    runs = "\n".join(step.get("run", "") for step in kind_job["steps"])
    assert re.search(r"^skaffold run\b", runs, re.M), runs
    # The deps and the images are skaffold's job (hooks.before, artifacts), not CI's own.
    assert "kubectl apply -k k8s/kind/deps" not in runs
    assert "docker buildx build" not in runs and "kind load" not in runs
    assert "helm upgrade --install rising-stars" not in runs


def test_the_docs_give_the_ci_commands(kind_job) -> None:
    docs = (ROOT / "docs" / "kind.md").read_text()
    for step in kind_job["steps"]:
        for line in step.get("run", "").splitlines():
            if line.startswith("skaffold "):
                assert line.split("--")[0].strip() in docs, line
