"""Loaded only by the soak (`make soak` puts this directory on the services' PYTHONPATH): a daemon
thread writes the process's live asyncio task count to $SOAK_TASKS_DIR/<pid> every few seconds.
Nothing in the services' own code knows about it; no endpoint is added."""

import os
import threading
import time


def _count() -> int:
    import asyncio.tasks

    for _ in range(10):  # the set may change while another thread copies it
        try:
            return sum(1 for t in list(asyncio.tasks._all_tasks) if not t.done())
        except RuntimeError:
            continue
    return -1


def _report(path: str) -> None:
    while True:
        time.sleep(5)
        try:
            with open(path + ".tmp", "w") as f:
                f.write(str(_count()))
            os.replace(path + ".tmp", path)
        except OSError:
            return


if os.environ.get("SOAK_TASKS_DIR"):
    _path = os.path.join(os.environ["SOAK_TASKS_DIR"], str(os.getpid()))
    threading.Thread(target=_report, args=(_path,), daemon=True, name="soak-tasks").start()
