"""docs/deploy.md as a checked walkthrough: every shell block marked `runs in
tests/deploy/test_deploy_guide.py` runs here, verbatim and in the guide's order, against what
stands in for the real thing: moto with the stack deployed (AWS), the throwaway PostgreSQL
with an RDS-like master (RDS), kmock's emulator prepared as the prerequisites say (EKS)."""

from __future__ import annotations

import os
import re
import subprocess

from chart.rendering import ROOT
from deploy.conftest_helpers import kubeconfig, prepare
from deploy.rds import MASTER, PASSWORDS, create_master, drop_everything

from risingstars.dev import infra

MARK = "<!-- runs in tests/deploy/test_deploy_guide.py -->\n```sh\n"


def guide_blocks() -> list[str]:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    return re.findall(re.escape(MARK) + r"(.*?)```", doc, re.S)


def _workdir(tmp_path):
    """The checkout as the reader's current directory, without writing into it: a directory of
    links to its entries, where the guide's own files (values-stack.yaml) land."""
    work = tmp_path / "checkout"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {"values-stack.yaml"}:
            (work / entry.name).symlink_to(entry)
    return work


def test_the_guide_marks_the_steps_that_can_run_here():
    blocks = guide_blocks()
    joined = "\n".join(blocks)
    for step in ("aws_stack check", "cfn-lint", "rds-bootstrap.sql", "helm template", "preflight"):
        assert step in joined, step


def test_every_runnable_block_of_the_guide_succeeds_in_order(
    pg, stack, kube_emulator, tool_bin, tmp_path
):
    api, url = kube_emulator
    prepare(api, url)
    drop_everything(pg)
    create_master(pg)
    work = _workdir(tmp_path)
    env = {
        **os.environ,
        "PATH": os.pathsep.join(
            [
                str(ROOT / ".venv" / "bin"),
                str(tool_bin),
                str(infra.postgres_bindir()),
                "/usr/bin",
                "/bin",
            ]
        ),
        "AWS_DEFAULT_REGION": "us-east-1",
        "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", url)),
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg.port),
        "PGUSER": MASTER,
        "AUTH_PASSWORD": PASSWORDS["auth_password"],
        "UPLOAD_PASSWORD": PASSWORDS["upload_password"],
    }
    try:
        for block in guide_blocks():
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
    finally:
        drop_everything(pg)
    assert (work / "values-stack.yaml").is_file()
