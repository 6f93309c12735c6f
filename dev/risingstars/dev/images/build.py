"""`buildah bud` of services/Dockerfile for one service. RUN steps run chrooted in the build's
own root filesystem (no daemon, no cgroups needed); pip inside them reaches the package index
with the machine's pip configuration and CA bundle, mounted for the build only (never committed
to a layer). --layers keeps each step's result, so an unchanged service rebuilds in seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from risingstars.dev.images import DOCKERFILE, ROOT, ImageError, reference

# Host files a RUN step may need to reach the package index, mounted read-only when present.
BUILD_MOUNTS = ("/etc/pip.conf", "/etc/ssl/certs")


def mounts() -> list[str]:
    found = [p for p in BUILD_MOUNTS if Path(p).exists()]
    if os.environ.get("PIP_CONFIG_FILE") and Path(os.environ["PIP_CONFIG_FILE"]).exists():
        found.append(f"{os.environ['PIP_CONFIG_FILE']}:/etc/pip.conf")
    return [a for p in found for a in ("--volume", f"{p if ':' in p else p + ':' + p}:ro")]


def build(
    service: str,
    base: str,
    *,
    tag: str | None = None,
    dockerfile: Path = DOCKERFILE,
    context: Path = ROOT,
    log=print,
) -> str:
    """Build one service's image on `base`; its reference. ImageError with buildah's last
    lines when a step fails."""
    if shutil.which("buildah") is None:
        raise ImageError("buildah is not installed (bash .ci/install)")
    ref = tag or reference(service)
    args = [
        "buildah",
        "bud",
        "--isolation",
        "chroot",
        "--layers",
        # A local base exists only in this machine's store: never look for it on a registry.
        *(["--pull=never"] if base.startswith("localhost/") else []),
        "-f",
        str(dockerfile),
        "--build-arg",
        f"SERVICE={service}",
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        *mounts(),
        "-t",
        ref,
        str(context),
    ]
    start = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-25:]
        raise ImageError(f"buildah bud of {ref} failed:\n  " + "\n  ".join(tail))
    log(f"images: built {ref} in {time.monotonic() - start:.1f}s")
    return ref
