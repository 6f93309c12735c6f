"""What an image holds, judged on its root filesystem and its config: it must run as a fixed
non-root user and carry nothing a container does not run (compilers, pip and its caches, the
build's sources and tests)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from risingstars.dev.images import inspect, podman

COMPILERS = ("gcc", "cc", "g++", "c++", "clang", "cpp")
_BIN_DIRS = ("usr/bin", "usr/local/bin", "bin", "opt/venv/bin")
# Triplet-prefixed and versioned compilers (x86_64-linux-gnu-gcc-12, gcc-12).
_COMPILER = re.compile(r"^(?:[\w]+-linux-gnu-)?(?:gcc|g\+\+|c\+\+|cc|clang)(?:-[\d.]+)?$")


@contextlib.contextmanager
def mounted(ref: str) -> Iterator[Path]:
    """The image's root filesystem, read-only, for as long as the block runs."""
    path = Path(podman("image", "mount", ref).strip())
    try:
        yield path
    finally:
        podman("image", "unmount", ref, check=False)


def user_problem(config: dict) -> str | None:
    user = (config.get("User") or "").strip()
    uid = user.split(":")[0]
    if uid in ("", "0", "root"):
        return f"runs as root (USER {user or 'unset'})"
    if not uid.isdigit():
        # runAsNonRoot can only verify a numeric user.
        return f"USER {user} is not numeric: the kubelet cannot check runAsNonRoot"
    return None


def rootfs_problems(root: Path) -> list[str]:
    problems = []
    for d in _BIN_DIRS:
        # A merged-/usr image links /bin to /usr/bin: each directory once.
        if (root / d).is_dir() and not (root / d).is_symlink():
            for entry in sorted((root / d).iterdir()):
                if _COMPILER.match(entry.name):
                    problems.append(f"carries a compiler: /{d}/{entry.name}")
    for cache in [*root.glob("root/.cache/pip"), *root.glob("home/*/.cache/pip")]:
        problems.append(f"carries a pip cache: /{cache.relative_to(root)}")
    for pip in root.glob("opt/venv/lib/python*/site-packages/pip"):
        problems.append(f"carries an installer: /{pip.relative_to(root)}")
    if (root / "src").exists():
        problems.append("carries the build's sources: /src")
    for site in root.glob("opt/venv/lib/python*/site-packages/risingstars"):
        for tests in sorted(site.glob("**/tests")):
            problems.append(f"carries tests: /{tests.relative_to(root)}")
    return problems


def audit(ref: str) -> list[str]:
    """Every reason the image is unfit to ship (empty when it is fit)."""
    config = inspect(ref).get("Config", {})
    problems = [p for p in [user_problem(config)] if p]
    with mounted(ref) as root:
        problems += rootfs_problems(root)
    return problems
