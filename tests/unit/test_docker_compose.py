"""docker-compose.yml cannot run here; it is kept correct by reading it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    with (ROOT / "docker-compose.yml").open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def test_compose_runs_the_same_services_from_official_images() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "kafka", "tradecore"}
    assert services["postgres"]["image"].startswith("timescale/timescaledb:")
    assert services["postgres"]["image"].endswith("-pg15")
    assert services["redis"]["image"].startswith("redis:")
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert (ROOT / "Dockerfile").exists()


def test_kafka_runs_in_kraft_mode_with_single_node_replication() -> None:
    env = compose()["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


def test_tradecore_uses_only_setting_names_the_settings_class_knows() -> None:
    tradecore = compose()["services"]["tradecore"]
    fields = {f"TRADECORE_{name.upper()}" for name in Settings.model_fields}
    assert set(tradecore["environment"]) <= fields
    assert {"TRADECORE_DATABASE_URL", "TRADECORE_REDIS_URL", "TRADECORE_KAFKA_BOOTSTRAP"} <= set(
        tradecore["environment"]
    )
    assert all(
        condition == {"condition": "service_healthy"}
        for condition in tradecore["depends_on"].values()
    )


def test_host_ports_match_the_local_stack_defaults() -> None:
    services = compose()["services"]
    defaults = Settings(env="development")

    def host_port(service: str) -> int:
        return int(services[service]["ports"][0].split(":")[1])

    assert host_port("postgres") == defaults.pg_port
    assert host_port("redis") == defaults.redis_port
    assert host_port("kafka") == defaults.kafka_port
