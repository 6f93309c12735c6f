"""The service images, built here without a container daemon: buildah builds
services/Dockerfile (`--isolation chroot`) on a base given as a build argument: a digest-pinned
public image for real builds, or for local builds an equivalent base made from Debian's packages
(base.py). podman's image store holds the results; chart-boot runs pods from them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
DOCKERFILE = ROOT / "services" / "Dockerfile"
SERVICES = ("auth", "upload", "processor", "operator", "web")
TAG = "local"


class ImageError(Exception):
    """An image could not be built, found or read: the message says which and why."""


def reference(service: str, tag: str = TAG) -> str:
    """The chart's repository name for a service (rising-stars-<service>), in the local store."""
    return f"localhost/rising-stars-{service}:{tag}"


def podman(*args: str, check: bool = True) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise ImageError(f"podman {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def exists(ref: str) -> bool:
    return subprocess.run(["podman", "image", "exists", ref]).returncode == 0


def inspect(ref: str) -> dict:
    if not exists(ref):
        raise ImageError(f"image {ref} is not built (make images)")
    return json.loads(podman("image", "inspect", ref))[0]
