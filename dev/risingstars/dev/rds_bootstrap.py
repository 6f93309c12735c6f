"""deploy/rds-bootstrap.sql as (database, statement) pairs, for harnesses that run statements
one at a time (chart-boot) rather than through `psql -f` as the deploy guide does. Knows only
what the file uses: `--` comment lines, `\\connect DB`, statements ending in `;` at the end of
a line, and psql's `:'name'` variables."""

from __future__ import annotations

import re
from pathlib import Path

FILE = Path(__file__).resolve().parents[3] / "deploy" / "rds-bootstrap.sql"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def statements(variables: dict[str, str], path: Path = FILE) -> list[tuple[str, str]]:
    database, pending, out = "postgres", [], []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        if stripped.startswith("\\connect ") or stripped.startswith("\\c "):
            database = stripped.split()[1]
            continue
        pending.append(re.sub(r":'(\w+)'", lambda m: _literal(variables[m[1]]), line))
        if stripped.endswith(";"):
            out.append((database, "\n".join(pending).strip().removesuffix(";")))
            pending = []
    if pending:
        raise ValueError(f"{path}: statement without a final ';'")
    return out
