"""The container runtime's last step, run inside the pod's network namespace by
`ip netns exec NS python -m risingstars.dev.chartboot.launch SPEC`: its own mount and UTS
namespaces, the volumes bind-mounted at their mountPaths, the root filesystem read-only when the
securityContext says so, the pod's hostname, the container's user and groups, then exec of the
container's command with exactly its environment (nothing inherited)."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import signal
import sys
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNS, _CLONE_NEWUTS = 0x00020000, 0x04000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_SLAVE = 32, 4096, 16384, 1 << 19
_MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_VIRTUAL = ("/proc", "/sys", "/dev")
_made: set[Path] = set()  # tmpfs (or new root) made for mount points


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def _new_root(stage: Path) -> None:
    """A root of our own to add top-level directories to (an image's /smoke): a tmpfs holding
    the machine's top-level entries, bind-mounted, then chroot into it."""
    root = stage / "rootfs"
    root.mkdir(exist_ok=True)
    _mount("tmpfs", str(root), "tmpfs", 0, "mode=0755,size=1m")
    for entry in Path("/").iterdir():
        new = root / entry.name
        if entry.is_symlink():
            new.symlink_to(os.readlink(entry))
        elif entry.is_dir():
            new.mkdir()
            _mount(str(entry), str(new), None, _MS_BIND | _MS_REC)
        else:
            new.touch()
            _mount(str(entry), str(new), None, _MS_BIND)
    os.chroot(root)
    os.chdir("/")


def _cover(directory: Path) -> None:
    """A tmpfs over `directory` that still shows what the directory held (each entry bound
    back from the original, reached through an open descriptor), so a mount point can be made
    in it without touching the machine and without hiding anything (the pod's own files live
    under /var/tmp: a volume at /var/spill must not hide them)."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    entries = list(os.scandir(directory))
    _mount("tmpfs", str(directory), "tmpfs", 0, "mode=0755,size=1m")
    for entry in entries:
        source, new = f"/proc/self/fd/{fd}/{entry.name}", directory / entry.name
        if entry.is_symlink():
            new.symlink_to(os.readlink(source))
        elif entry.is_dir(follow_symlinks=False):
            new.mkdir()
            _mount(source, str(new), None, _MS_BIND | _MS_REC)
        else:
            new.touch()
            _mount(source, str(new), None, _MS_BIND)
    os.close(fd)


def _mount_point(target: Path, stage: Path) -> None:
    """Make `target` exist without touching the machine's filesystem: below the deepest
    existing ancestor, a tmpfs takes its place (as an image's empty directory would)."""
    if target.is_dir():
        return
    ancestor = target
    while not ancestor.exists():
        ancestor = ancestor.parent
    ancestor = ancestor.resolve()
    # Inside a tmpfs made here (the new root's tmpfs only at its top level: below it are the
    # machine's directories): writable, and a new tmpfs would hide earlier mounts.
    if any(ancestor == t or (t != Path("/") and t in ancestor.parents) for t in _made):
        target.mkdir(parents=True)
        return
    _made.add(ancestor)
    if ancestor == Path("/"):
        _new_root(stage)
    else:
        _cover(ancestor)
    # mkdir below the new tmpfs (target may go through a symlink such as /var/run).
    target.mkdir(parents=True, exist_ok=True)


def _expose(paths: list[str], stage: Path) -> None:
    """Keep `paths` (the interpreter, the checkout) reachable by the container's user when an
    ancestor is closed to others (root's 0700 home holding pyenv): that ancestor becomes a
    tmpfs holding only the path's next component, bind-mounted back."""
    for n, raw in enumerate(paths):
        path = Path(raw).resolve()
        for ancestor in [*reversed(path.parents), path][1:]:
            if ancestor.stat().st_mode & 0o001:
                continue
            child = path.relative_to(ancestor).parts[0] if ancestor != path else None
            if child is None:
                break
            keep = stage / f"expose{n}"
            keep.mkdir()
            _mount(str(ancestor / child), str(keep), None, _MS_BIND | _MS_REC)
            _mount("tmpfs", str(ancestor), "tmpfs", 0, "mode=0755,size=1m")
            (ancestor / child).mkdir()
            _mount(str(keep), str(ancestor / child), None, _MS_BIND | _MS_REC)
            break


def _read_only_root(keep: list[str]) -> None:
    """Every mount read-only except the kernel's virtual filesystems and the volumes."""
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in mounts:
        if point.startswith(_VIRTUAL) or any(point == k or point.startswith(k + "/") for k in keep):
            continue
        try:
            _mount("none", point, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
        except FileNotFoundError:
            continue  # hidden under a mount made above (e.g. /run/netns under a new /run)


def _in_root(root: Path, path: str) -> Path:
    """`path` inside the image's root, its symlinks followed within that root (an image's
    /var/run -> /run must not lead to the machine's /run)."""
    here = root
    parts = list(Path(path).parts[1:])
    for _ in range(256):  # bounded: a symlink loop in an image ends here
        if not parts:
            return here
        part = parts.pop(0)
        nxt = here / part
        if nxt.is_symlink():
            link = os.readlink(nxt)
            base = root if link.startswith("/") else here
            parts = list(Path(link).parts[1 if link.startswith("/") else 0 :]) + parts
            here = base
            continue
        here = root if part == ".." and here == root else (here.parent if part == ".." else nxt)
    raise OSError(f"{path}: too many symlinks in the image")


def _image_root(spec: dict, stage: Path) -> list[str]:
    """The image's layers under a writable layer of this container's own (overlayfs, as a
    runtime's snapshotter mounts them), the kernel's filesystems, the pod's /etc/hosts and the
    volumes inside it; then pivot_root into it. The mount points it returns are the volumes'."""
    work = Path(spec["rootfs"]["dir"])
    root, upper, scratch = work / "root", work / "upper", work / "work"
    for d in (root, upper, scratch):
        d.mkdir(parents=True, exist_ok=True)
    lower = ":".join(spec["rootfs"]["layers"])
    _mount(
        "overlay", str(root), "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={scratch}"
    )
    _in_root(root, "/proc").mkdir(exist_ok=True)
    _mount("proc", str(_in_root(root, "/proc")), "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    dev = _in_root(root, "/dev")
    dev.mkdir(exist_ok=True)
    _mount("tmpfs", str(dev), "tmpfs", _MS_NOSUID, "mode=0755,size=64k")
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        (dev / name).touch()
        _mount(f"/dev/{name}", str(dev / name), None, _MS_BIND)
    (dev / "shm").mkdir()
    _mount("tmpfs", str(dev / "shm"), "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777,size=64m")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        (dev / name).symlink_to(target)
    (dev / "stdout").symlink_to("/proc/self/fd/1")
    (dev / "stderr").symlink_to("/proc/self/fd/2")
    sys_dir = _in_root(root, "/sys")
    sys_dir.mkdir(exist_ok=True)
    _mount("/sys", str(sys_dir), None, _MS_BIND | _MS_REC)
    # What the runtime writes for a pod: its hosts file (ip netns exec bound it over /etc/hosts
    # here) and the resolver configuration.
    files = [("/etc/hosts", "/etc/hosts", False), ("/etc/resolv.conf", "/etc/resolv.conf", False)]
    files += [(m["source"], m["target"], m["readOnly"]) for m in spec["mounts"]]
    targets = []
    for source, target, read_only in sorted(files, key=lambda f: f[1].count("/")):
        if not Path(source).exists():
            continue
        inside = _in_root(root, target)
        if Path(source).is_dir():
            inside.mkdir(parents=True, exist_ok=True)
        else:
            inside.parent.mkdir(parents=True, exist_ok=True)
            inside.touch()
        _mount(source, str(inside), None, _MS_BIND | _MS_REC)
        if read_only:
            _mount("none", str(inside), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
        targets.append("/" + str(inside.relative_to(root)))
    os.chdir(root)
    _check(_libc.syscall(_SYS_PIVOT_ROOT[platform.machine()], b".", b"."), "pivot_root")
    # The old root now sits on top of the new one: detach it, leaving the image's root.
    _check(_libc.umount2(b".", _MNT_DETACH), "umount old root")
    os.chdir("/")
    return [t for t in targets if t not in ("/etc/hosts", "/etc/resolv.conf")]


def _host_root(spec: dict, stage: Path) -> list[str]:
    """The machine's root filesystem as the container's (this checkout's code, the image's
    config read from the Dockerfile), the volumes mounted over it; their mount points."""
    _expose(spec["expose"], stage)
    targets = []
    # Sources are held open first: a mount point made below (a tmpfs over /var for /var/spill)
    # may hide the pod's own directory (under /var/tmp); /proc/self/fd still reaches it.
    held = {m["source"]: os.open(m["source"], os.O_PATH) for m in spec["mounts"]}
    is_dir = {source: Path(source).is_dir() for source in held}
    # The interpreter and the checkout must stay visible even below a volume's mount point (a
    # checkout under /tmp, where the pod mounts its emptyDir): bound back inside the volume.
    kept = {Path(p).resolve(): os.open(Path(p).resolve(), os.O_PATH) for p in spec["expose"]}
    for mount in sorted(spec["mounts"], key=lambda m: m["target"].count("/")):
        target = Path(mount["target"])
        if is_dir[mount["source"]]:
            _mount_point(target, stage)
        elif not target.exists():
            _mount_point(target.parent, stage)
            target.touch()
        _mount(f"/proc/self/fd/{held[mount['source']]}", str(target), None, _MS_BIND)
        if mount["readOnly"]:
            _mount("none", str(target), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
        targets.append(str(target.resolve()))
        for path, fd in kept.items():
            if target.resolve() in path.parents:
                path.mkdir(parents=True, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", str(path), None, _MS_BIND | _MS_REC)
    for fd in [*held.values(), *kept.values()]:
        os.close(fd)
    return targets


def main(spec_path: str) -> None:
    # Dies with the harness from the start (the harness forks without preexec_fn: threads).
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    spec = json.loads(Path(spec_path).read_text())
    # A mount namespace of our own first: nothing below may reach the machine's mounts.
    _check(_libc.unshare(_CLONE_NEWNS | _CLONE_NEWUTS), "unshare")
    _mount("none", "/", None, _MS_REC | _MS_SLAVE)
    name = spec["hostname"].encode()
    _check(_libc.sethostname(name, len(name)), "sethostname")
    stage = Path(spec_path).parent
    targets = _image_root(spec, stage) if spec.get("rootfs") else _host_root(spec, stage)
    if spec["readOnlyRootFilesystem"]:
        _read_only_root(targets)
    os.chdir(spec["workingDir"])
    if spec["noNewPrivs"]:
        _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.setgroups(spec["groups"])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    # After setuid (which clears it): the pod dies with the harness, whatever happens to it.
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    argv, env = spec["argv"], spec["env"]
    try:
        os.execvpe(argv[0], argv, env)  # noqa: S606 (the container command, as given)
    except OSError as exc:
        # What a container runtime reports for an exec it cannot start.
        print(f"exec {argv[0]!r}: {exc.strerror}", file=sys.stderr)
        os._exit(128)


if __name__ == "__main__":
    main(sys.argv[1])
