"""Each image's size and what its layers add above the base: the table the README shows."""

from __future__ import annotations

import json

from risingstars.dev.images import inspect, podman


def layers_above(ref: str, base: str) -> list[tuple[str, int]]:
    """(instruction, bytes) of the image's history entries above the base's, oldest first."""
    history = json.loads(podman("history", "--format", "json", ref))
    base_len = len(json.loads(podman("history", "--format", "json", base)))
    ours = list(reversed(history))[base_len:]
    return [(_short(h.get("createdBy", "")), int(h.get("size", 0))) for h in ours]


def _short(created_by: str) -> str:
    text = " ".join(created_by.replace("/bin/sh -c #(nop)", "").split())
    text = text.removeprefix("/bin/sh -c ").strip()
    return text if len(text) <= 70 else text[:67] + "..."


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def table(refs: list[str], base: str) -> str:
    base_size = int(inspect(base)["Size"])
    lines = [
        f"base {base}: {mb(base_size)}",
        "",
        "| image | size | above the base | largest layers above the base |",
        "|---|---|---|---|",
    ]
    for ref in refs:
        size = int(inspect(ref)["Size"])
        layers = [(what, n) for what, n in layers_above(ref, base) if n > 0]
        big = sorted(layers, key=lambda x: -x[1])[:3]
        lines.append(
            f"| {ref.split('/')[-1]} | {mb(size)} | {mb(size - base_size)} | "
            + "; ".join(f"{mb(n)} `{what}`" for what, n in big)
            + " |"
        )
    return "\n".join(lines)
