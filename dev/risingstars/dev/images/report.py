"""Each image's size and what its layers add above the base: the table the README shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

from risingstars.dev.images import inspect, podman
from risingstars.dev.images.audit import mounted


def layers_above(ref: str, base: str) -> list[tuple[str, int]]:
    """(instruction, bytes) of the image's history entries above the base's, oldest first."""
    history = json.loads(podman("history", "--format", "json", ref))
    base_len = len(json.loads(podman("history", "--format", "json", base)))
    ours = list(reversed(history))[base_len:]
    return [(_short(h.get("CreatedBy", "")), int(h.get("size", 0))) for h in ours]


def _short(created_by: str) -> str:
    text = " ".join(created_by.replace("/bin/sh -c #(nop)", "").split())
    text = re.sub(r"(dir|file):[0-9a-f]{64}", r"\1", text.removeprefix("/bin/sh -c ").strip())
    return text if len(text) <= 70 else text[:67] + "..."


def largest_packages(ref: str, count: int = 4) -> list[tuple[str, int]]:
    """The biggest distributions in the image's virtualenv (what the COPY of /opt/venv adds)."""
    sizes = {}
    with mounted(ref) as root:
        for site in root.glob("opt/venv/lib/python*/site-packages"):
            for entry in site.iterdir():
                if entry.name.endswith((".dist-info", "__pycache__")):
                    continue
                files = [entry] if entry.is_file() else entry.rglob("*")
                sizes[entry.name] = sum(f.stat().st_size for f in files if _regular(f))
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:count]


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def table(refs: list[str], base: str) -> str:
    base_size = int(inspect(base)["Size"])
    lines = [
        f"base {base}: {mb(base_size)}",
        "",
        "| image | size | above the base | layers above the base | largest packages |",
        "|---|---|---|---|---|",
    ]
    for ref in refs:
        size = int(inspect(ref)["Size"])
        layers = [(what, n) for what, n in layers_above(ref, base) if n >= 100_000]
        big = sorted(layers, key=lambda x: -x[1])[:3]
        packages = ", ".join(f"{name} {mb(n)}" for name, n in largest_packages(ref))
        lines.append(
            f"| {ref.split('/')[-1]} | {mb(size)} | {mb(size - base_size)} | "
            + "; ".join(f"`{what}` {mb(n)}" for what, n in big)
            + f" | {packages} |"
        )
    return "\n".join(lines)
