"""The local stand-in for the public base image (python 3.11 on Debian bookworm, slim): Debian's
own python3 from debootstrap's minimal variant, without apt's lists and archives, docs or
locales, imported into podman's store. Its tag is a digest of the recipe, so it is made once per
machine and reused by every later build."""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from risingstars.dev.images import ImageError, exists

SUITE = "bookworm"
# python-is-python3: the Dockerfile runs `python`, as the public image names it; python3-venv:
# the builder stage makes a virtualenv (the public image ships ensurepip as well).
PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
# What a slim image leaves out; none of it is read at run time.
PRUNE = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
# As the public image sets them (the Dockerfile extends PATH).
CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
# Beside the image store it guards (machine-wide, like the store).
LOCK = Path("/var/lib/containers/rising-stars-base.lock")


def mirror() -> str:
    """The machine's own Debian mirror (deb822 or one-line sources), else Debian's."""
    for path in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        found = re.search(r"^URIs:\s*(\S+)", path.read_text(), re.M)
        if found:
            return found.group(1)
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        found = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE, legacy.read_text(), re.M)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def reference() -> str:
    recipe = repr((SUITE, PACKAGES, PRUNE, CHANGES)).encode()
    return f"localhost/rising-stars-base:{SUITE}-{hashlib.sha256(recipe).hexdigest()[:12]}"


def ensure(log=print) -> str:
    """The local base's reference, made first if this machine has none (about a minute)."""
    ref = reference()
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    LOCK.touch()
    with LOCK.open() as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker at a time; the others reuse its result
        if exists(ref):
            return ref
        if shutil.which("debootstrap") is None:
            raise ImageError("debootstrap is not installed (bash .ci/install)")
        log(f"images: making the local base {ref} with debootstrap from {mirror()}")
        with tempfile.TemporaryDirectory(prefix="rising-stars-base-", dir="/var/tmp") as tmp:
            rootfs = Path(tmp) / "rootfs"
            done = subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(PACKAGES)}",
                    SUITE,
                    str(rootfs),
                    mirror(),
                ],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise ImageError(f"debootstrap failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
            for path in PRUNE:
                shutil.rmtree(rootfs / path, ignore_errors=True)
                (rootfs / path).mkdir(parents=True, exist_ok=True)
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            changes = [a for c in CHANGES for a in ("--change", c)]
            imported = subprocess.run(
                ["podman", "import", *changes, "-", ref],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
            )
            tar.stdout.close()
            if tar.wait() != 0 or imported.returncode != 0:
                raise ImageError(f"podman import of the base failed: {imported.stderr.strip()}")
    return ref
