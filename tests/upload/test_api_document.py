"""The public API's one document (/api/openapi.json) and its docs page (/api/docs): up to date
with the code, covering every route and status code of the client's contract, and served
without any outside asset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from risingstars.dev import openapi

CONTRACT = Path(__file__).resolve().parents[2] / "docs/api-contract.md"
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`(?: \(ours\))? \|(.*)$")


def contract_rows() -> list[tuple[str, str, list[set[str]]]]:
    """(method, path, statuses): each a set of alternatives (`**200** or **204**`)."""
    rows = []
    for line in CONTRACT.read_text().splitlines():
        match = ROW.match(line)
        if match:
            method, path, rest = match.groups()
            groups = re.findall(r"\*\*\d{3}\*\*(?:(?: or |/)\*\*\d{3}\*\*)*", rest)
            statuses = [set(re.findall(r"\d{3}", group)) for group in groups]
            rows.append((method.lower(), path, statuses))
    return rows


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(openapi.OUTPUT.read_text())


def test_the_committed_document_is_what_the_code_declares(document) -> None:
    assert openapi.render(openapi.merged()) == openapi.OUTPUT.read_text(), (
        "services/upload/risingstars/upload/openapi.json is stale: run `make openapi`"
    )


def test_every_route_of_the_contract_is_documented_with_its_status_codes(document) -> None:
    rows = contract_rows()
    assert len(rows) >= 13  # every table row of docs/api-contract.md was read
    for method, path, statuses in rows:
        operation = document["paths"].get(path, {}).get(method)
        assert operation is not None, f"{method.upper()} {path} is not in the document"
        missing = [s for s in statuses if not s & set(operation["responses"])]
        assert not missing, f"{method.upper()} {path} does not document {missing}"


def test_requests_and_errors_have_schemas(document) -> None:
    paths = document["paths"]
    assert "multipart/form-data" in paths["/api/videos/upload"]["post"]["requestBody"]["content"]
    assert "application/json" in paths["/api/auth/signup"]["post"]["requestBody"]["content"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], f"{method} {path}: the API answers 400"
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)


def test_routes_that_need_a_token_say_so(document) -> None:
    paths = document["paths"]
    assert paths["/api/videos"]["get"]["security"] == [{"bearerAuth": []}]
    assert paths["/api/public/videos/{video_id}/vote"]["post"]["security"]
    assert "security" not in paths["/api/public/rankings"]["get"]
    assert "security" not in paths["/api/auth/login"]["post"]


async def test_the_document_and_the_docs_page_are_served_from_here(svc, document) -> None:
    served = await svc.client.get("/api/openapi.json")
    assert served.status_code == 200 and served.json() == document
    page = await svc.client.get("/api/docs")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/api/docs/") for a in assets), assets
    for asset in assets:
        response = await svc.client.get(asset)
        assert response.status_code == 200 and response.content, asset
