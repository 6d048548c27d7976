"""``/docs`` and ``/redoc`` work on a host without internet access: every script, style and icon
the pages load comes from the API itself, and each one answers with its content."""

from __future__ import annotations

import re

import pytest

ASSET = re.compile(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]|url:\s*['"]([^'"]+)['"]|['"](/docs-assets/[^'"]+)['"]""")


def _references(html: str) -> set[str]:
    return {next(g for g in match.groups() if g) for match in ASSET.finditer(html)}


@pytest.mark.parametrize(("page", "kinds"), [("/docs", {".js", ".css", ".png"}), ("/redoc", {".js", ".png"})])
def test_the_docs_pages_load_everything_from_the_api(client, page, kinds):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.findall(r"https?://[^\s'\"<>]+", html), "a docs page loads something from another host"
    references = _references(html)
    assets = {ref for ref in references if ref.startswith("/docs-assets/")}
    assert {ref[ref.rfind("."):] for ref in assets} >= kinds, references
    for ref in assets:
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 1000, (ref, asset.status_code)
    spec = "/openapi.json"
    assert spec in html and client.get(spec).json()["info"]["title"] == "mlservice"


def test_the_oauth2_redirect_page_is_served(client):
    response = client.get("/docs/oauth2-redirect")
    assert response.status_code == 200 and "oauth2" in response.text.lower()
