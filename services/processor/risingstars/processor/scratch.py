"""Per-job scratch directories under WORK_DIR, and the sweep that removes what a killed process
left behind (a container restarted in the same pod keeps its emptyDir)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

log = logging.getLogger("risingstars.processor.scratch")

_PREFIX = "rsproc-"
# Tells this process's directories from those of an earlier process that had the same pid.
_INSTANCE = uuid.uuid4().hex[:8]


def job_dir(root: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-{_INSTANCE}-", dir=root))


def free_bytes(root: str) -> int:
    stat = os.statvfs(root)
    return stat.f_bavail * stat.f_frsize


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(root: str) -> list[Path]:
    """Remove job directories whose process is gone; return them."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in Path(root).iterdir():
            if not entry.name.startswith(_PREFIX) or not entry.is_dir():
                continue
            pid_text, _, rest = entry.name[len(_PREFIX) :].partition("-")
            instance = rest.partition("-")[0]
            if not pid_text.isdigit():
                continue
            pid = int(pid_text)
            mine = pid == os.getpid() and instance == _INSTANCE
            if mine or (pid != os.getpid() and _alive(pid)):
                continue
            remove(entry)
            removed.append(entry)
    if removed:
        log.info("removed scratch left by a stopped process", extra={"count": len(removed)})
    return removed
