"""An image as a container runtime reads it: its config (Env, WorkingDir, User, Entrypoint, Cmd)
and its layers, which chart-boot stacks under a writable layer of each container's own (the
overlay a runtime's snapshotter mounts)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from risingstars.dev.images import ImageError, inspect


@dataclasses.dataclass(frozen=True)
class RunImage:
    ref: str
    env: dict[str, str]
    workdir: str
    user: tuple[int, int]
    home: str  # the user's home in the image's /etc/passwd (the runtime's HOME)
    entrypoint: list[str]
    cmd: list[str]
    layers: list[str]  # lower directories, top layer first


def _ids(layers: list[str], user: str) -> tuple[int, int, str]:
    """USER (uid[:gid] or name[:group]) resolved against the image's own /etc/passwd."""
    name, _, group = user.partition(":")
    uid, gid, home = 0, 0, "/"
    for layer in layers:  # the top layer that has the file wins
        passwd = Path(layer) / "etc" / "passwd"
        if passwd.exists():
            for line in passwd.read_text().splitlines():
                f = line.split(":")
                if len(f) >= 6 and (f[0] == name or f[2] == name):
                    uid, gid, home = int(f[2]), int(f[3]), f[5]
                    break
            else:
                if name.isdigit():
                    uid, gid = int(name), int(name)
            break
    if group.isdigit():
        gid = int(group)
    return uid, gid, home


def load(ref: str) -> RunImage:
    info = inspect(ref)
    driver = info.get("GraphDriver", {})
    if driver.get("Name") != "overlay":
        raise ImageError(f"{ref}: storage driver {driver.get('Name')}, chart-boot needs overlay")
    data = driver.get("Data", {})
    layers = [data["UpperDir"], *filter(None, data.get("LowerDir", "").split(":"))]
    config = info.get("Config", {})
    uid, gid, home = _ids(layers, config.get("User") or "0")
    env = dict(e.split("=", 1) for e in config.get("Env") or [])
    return RunImage(
        ref=ref,
        env=env,
        workdir=config.get("WorkingDir") or "/",
        user=(uid, gid),
        home=home,
        entrypoint=list(config.get("Entrypoint") or []),
        cmd=list(config.get("Cmd") or []),
        layers=layers,
    )
