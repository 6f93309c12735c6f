"""Mount targets inside an image's root follow the image's symlinks within that root: an image's
absolute /var/run -> /run must never lead a volume mount to the machine's /run."""

from __future__ import annotations

import os

from risingstars.dev.chartboot.launch import _in_root


def test_absolute_and_relative_links_stay_inside_the_image(tmp_path) -> None:
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    (root / "var").mkdir()
    os.symlink("/run", root / "var" / "run")
    os.symlink("../run", root / "var" / "lock")
    os.symlink("/../../../etc", root / "escape")
    target = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert _in_root(root, target) == root / "run/secrets/kubernetes.io/serviceaccount"
    assert _in_root(root, "/var/lock/x") == root / "run/x"
    assert _in_root(root, "/escape/hosts") == root / "etc/hosts"
    assert _in_root(root, "/tmp") == root / "tmp"
