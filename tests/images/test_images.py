"""The service images, built here with buildah (one image inside `make test`: auth, on the
cached local base; `make images` builds all four): fit to ship (non-root, no compiler, no pip
cache, no sources or tests), and booted by chart-boot from their own root filesystem. A
deliberately broken image (a wrong entrypoint, a runtime package missing) fails the boot with
the reason a user can act on."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from risingstars.dev.chartboot import cluster, netns, overlays
from risingstars.dev.chartboot.clip import clip_bytes
from risingstars.dev.images import audit, base, build, podman, runtime

_REASON = netns.available()
pytestmark = [
    # Root only, as chart-boot (ip netns, mounts); buildah and debootstrap come from .ci/install.
    pytest.mark.skipif(_REASON is not None, reason=f"images: {_REASON}"),
    pytest.mark.timeout(900),
]

AUTH = "rising-stars-auth"
BROKEN = {
    # The launcher renamed: the entrypoint names a file the image does not have.
    "wrong-entrypoint": 'ENTRYPOINT ["/opt/venv/bin/servic"]\n',
    # A runtime dependency the image forgot (as a pip install missing one requirement would).
    "missing-package": "USER 0\nRUN rm -rf /opt/venv/lib/python3*/site-packages/uvicorn\n"
    "USER 10001:10001\n",
}


def _derived(tmp: Path, name: str, body: str, image: str) -> str:
    """An image made from `image` by a small Dockerfile (the build's base argument is the image
    being changed)."""
    context = tmp / name
    context.mkdir()
    (context / "Dockerfile").write_text(f"ARG PYTHON_IMAGE\nFROM ${{PYTHON_IMAGE}}\n{body}")
    return build.build(
        "auth",
        image,
        tag=f"localhost/rising-stars-test-{name}:{TAG}",
        dockerfile=context / "Dockerfile",
        context=context,
    )


# Tags of this run's own (the store is the machine's: another checkout's run must not swap an
# image under this one); the layers stay cached for the next run.
TAG = f"test-{os.getpid()}"


@pytest.fixture(scope="module")
def auth_image():
    ref = build.build("auth", base.ensure(), tag=f"localhost/rising-stars-auth:{TAG}")
    yield ref
    for made in podman("images", "--format", "{{.Repository}}:{{.Tag}}").split():
        if made.endswith(f":{TAG}"):
            podman("rmi", made, check=False)


def test_the_image_runs_as_non_root_with_nothing_it_does_not_run(auth_image) -> None:
    assert audit.audit(auth_image) == []
    image = runtime.load(auth_image)
    assert image.user == (10001, 10001)
    assert image.cmd == ["service"]


def test_the_audit_refuses_root_compilers_pip_caches_and_sources(auth_image, tmp_path) -> None:
    bad = _derived(
        tmp_path,
        "audit",
        "USER 0\nRUN mkdir -p /root/.cache/pip/http /src && ln -s /bin/true /usr/bin/gcc\n",
        auth_image,
    )
    assert audit.audit(bad) == [
        "runs as root (USER 0)",
        "carries a compiler: /usr/bin/gcc",
        "carries a pip cache: /root/.cache/pip",
        "carries the build's sources: /src",
    ]


@pytest.fixture(scope="module")
def boots(auth_image, tmp_path_factory) -> dict[str, cluster.Result]:
    """kind's overlay with the auth pods and its migration Job from the image (the rest from
    the checkout), the whole flow through it; and each broken image in the production-shaped
    overlay, only the auth Deployment booted. All at once, each in its own network."""
    tmp = tmp_path_factory.mktemp("broken")
    images = {"kind": {"auth": runtime.load(auth_image)}}
    runs = [overlays.ALL["kind"]()]
    for name, body in BROKEN.items():
        images[name] = {"auth": runtime.load(_derived(tmp, name, body, auth_image))}
        runs.append(
            dataclasses.replace(overlays.boot(), name=name, replicas_cap=1, terminate=False)
        )
    focus = {name: (lambda objects: {AUTH}) for name in BROKEN}
    # The good image with a command that writes to its root first: the manifest says the root
    # filesystem is read-only, so the container must stop there.
    images["read-only-root"] = images["kind"]
    runs.append(
        dataclasses.replace(overlays.boot(), name="read-only-root", replicas_cap=1, terminate=False)
    )
    focus["read-only-root"] = _write_to_root
    return cluster.run(runs, clip_bytes(), mutate=focus, images=images)


def _write_to_root(objects: list[dict]) -> set[str]:
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == AUTH:
            container = obj["spec"]["template"]["spec"]["containers"][0]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            container["command"] = ["sh", "-c", "touch /written && exec service"]
    return {AUTH}


def test_a_pod_runs_from_its_image_and_serves_the_flow(boots, auth_image) -> None:
    result = boots["kind"]
    assert result.passed, result.error + "\n" + "\n".join(result.report.get("steps", []))
    ran = result.report["images"]
    assert any(pod.startswith(f"{AUTH}-") for pod in ran), ran
    assert set(ran.values()) == {auth_image}
    assert set(result.report["flow"]["downloads"]) == {"processed_url", "original_url"}


def test_a_wrong_entrypoint_fails_the_boot_with_the_exec_error(boots) -> None:
    result = boots["wrong-entrypoint"]
    assert not result.passed
    assert "container exited with code 128" in result.error, result.error
    assert "exec '/opt/venv/bin/servic': No such file or directory" in result.error, result.error


def test_the_root_filesystem_is_read_only_as_the_manifest_says(boots) -> None:
    result = boots["read-only-root"]
    assert not result.passed
    assert "touch: cannot touch '/written': Read-only file system" in result.error, result.error


def test_a_missing_runtime_package_fails_the_boot_with_the_import_error(boots) -> None:
    result = boots["missing-package"]
    assert not result.passed
    assert "No module named 'uvicorn'" in result.error, result.error
