"""gateway.web: the built UI at /, the SPA fallback, and the page shown when it is not built."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.errors import install_error_handlers
from gateway.web import mount_web


def _app(dist: Path) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/instruments")
    async def instruments() -> list[str]:
        return ["BTC-USD"]

    @app.get("/reports/daily")
    async def report() -> dict[str, str]:
        return {"ok": "yes"}

    mount_web(app, dist)
    return app


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><div id=root></div>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    (tmp_path.parent / "secret.txt").write_text("not for the web")
    return tmp_path


def test_the_app_is_served_at_the_root(dist: Path) -> None:
    response = TestClient(_app(dist)).get("/")
    assert response.status_code == 200
    assert "id=root" in response.text
    assert response.headers["cache-control"] == "no-cache"


def test_hashed_assets_are_served_with_a_long_cache(dist: Path) -> None:
    client = TestClient(_app(dist))
    response = client.get("/assets/index-abc123.js")
    assert response.status_code == 200 and response.text == "console.log(1)"
    assert "immutable" in response.headers["cache-control"]
    assert client.get("/favicon.svg").text == "<svg/>"


def test_unknown_app_paths_fall_back_to_index_html(dist: Path) -> None:
    response = TestClient(_app(dist)).get("/markets/BTC-USD", headers={"Accept": "text/html"})
    assert response.status_code == 200 and "id=root" in response.text


def test_api_routes_still_answer_and_unknown_api_paths_are_json_404s(dist: Path) -> None:
    client = TestClient(_app(dist))
    assert client.get("/instruments").json() == ["BTC-USD"]
    assert client.get("/reports/daily").json() == {"ok": "yes"}
    for path in ("/accounts/x/nothing", "/graphql/nope", "/reports/weekly", "/assets/gone.js"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_paths_cannot_escape_the_build_directory(dist: Path) -> None:
    client = TestClient(_app(dist))
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/../../secret.txt"):
        assert "not for the web" not in client.get(path).text


def test_a_missing_build_gives_a_page_saying_how_to_build_it(tmp_path: Path) -> None:
    client = TestClient(_app(tmp_path / "dist"))
    response = client.get("/")
    assert response.status_code == 503
    assert "text/html" in response.headers["content-type"]
    assert "make web" in response.text and "npm ci" in response.text
    assert client.get("/instruments").status_code == 200


def test_posts_to_unknown_paths_are_not_answered_with_the_app(dist: Path) -> None:
    assert TestClient(_app(dist)).post("/somewhere").status_code in (404, 405)
