"""GET /health: 200 when every component is up, 503 with the failing one named otherwise."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.health import ComponentHealth


class FakeProbe:
    def __init__(self, components: list[ComponentHealth]) -> None:
        self.components = components

    async def check(self) -> list[ComponentHealth]:
        return self.components


def test_health_is_ok_when_every_service_is_up() -> None:
    probe = FakeProbe([ComponentHealth(name="postgres", kind="service", state="up")])
    response = TestClient(create_app(probe, "9.9.9")).get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert [c["name"] for c in response.json()["components"]] == ["gateway", "postgres"]


def test_health_is_503_and_names_the_service_that_is_down() -> None:
    probe = FakeProbe(
        [
            ComponentHealth(name="postgres", kind="service", state="up"),
            ComponentHealth(
                name="kafka", kind="service", state="down", detail="connection refused"
            ),
        ]
    )
    response = TestClient(create_app(probe, "9.9.9")).get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert [c for c in body["components"] if c["state"] != "up"] == [
        {
            "name": "kafka",
            "kind": "service",
            "state": "down",
            "address": "",
            "version": "",
            "detail": "connection refused",
        }
    ]
