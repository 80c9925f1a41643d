"""`tradecore stack up|down|status` on a stack of its own: idempotent, clear, no leftovers."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import Settings
from infra.stack import Stack, StackError
from tests.conftest import free_port

TRADECORE = str(Path(sys.executable).with_name("tradecore"))
ROOT = Path(__file__).resolve().parents[2]


def isolated_settings(stack_dir: Path) -> Settings:
    return Settings(
        env="test",
        stack_dir=stack_dir,
        pg_port=free_port(),
        redis_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_heap="256m",
    )


def as_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "TRADECORE_ENV": "test",
        "TRADECORE_STACK_DIR": str(settings.stack_dir),
        "TRADECORE_PG_PORT": str(settings.pg_port),
        "TRADECORE_REDIS_PORT": str(settings.redis_port),
        "TRADECORE_KAFKA_PORT": str(settings.kafka_port),
        "TRADECORE_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "TRADECORE_KAFKA_HEAP": "256m",
    }


def process_exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture
def own_stack(tmp_path: Path, stack: Stack) -> Iterator[Settings]:
    # The shared stack is up first, so every package is installed and this test measures starts.
    settings = isolated_settings(tmp_path / "stack")
    try:
        yield settings
    finally:
        Stack(settings, report=lambda _: None).down()
        pg_data = Stack(settings, report=lambda _: None).services[0]
        shutil.rmtree(pg_data.data_dir.parent, ignore_errors=True)  # type: ignore[attr-defined]


def test_up_twice_then_down_leaves_no_process_behind(own_stack: Settings) -> None:
    env = as_env(own_stack)
    first = subprocess.run([TRADECORE, "stack", "up"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    pids = {s.name: s.pid() for s in Stack(own_stack, lambda _: None).services}
    assert all(pid is not None for pid in pids.values()), pids

    second = subprocess.run([TRADECORE, "stack", "up"], env=env, capture_output=True, text=True)
    status = subprocess.run([TRADECORE, "stack", "status"], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "nothing to install or start" in second.stdout
    assert {s.name: s.pid() for s in Stack(own_stack, lambda _: None).services} == pids
    assert status.returncode == 0
    assert "TimescaleDB 2." in status.stdout and "Redis 7" in status.stdout
    assert "Apache Kafka 3." in status.stdout

    down = subprocess.run([TRADECORE, "stack", "down"], env=env, capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert not [name for name, pid in pids.items() if pid is not None and process_exists(pid)]
    ours = subprocess.run(
        ["pgrep", "-af", str(own_stack.stack_dir)], capture_output=True, text=True
    ).stdout
    assert ours == ""
    after = subprocess.run([TRADECORE, "stack", "status"], env=env, capture_output=True, text=True)
    assert after.returncode == 1
    assert after.stdout.count("stopped") == 3


def test_a_taken_port_gives_a_clear_error_and_starts_nothing(own_stack: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", own_stack.redis_port))
        squatter.listen()
        messages: list[str] = []
        with pytest.raises(
            StackError, match=rf"redis: port {own_stack.redis_port} .* already taken"
        ):
            Stack(own_stack, messages.append, only=["redis"]).up()
    assert Stack(own_stack, lambda _: None, only=["redis"]).services[0].pid() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an ordinary user")
def test_an_ordinary_user_can_run_the_stack(tmp_path: Path, stack: Stack) -> None:
    user = "tradecore-ci"
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--create-home", user], check=True)
    home = Path(pwd.getpwnam(user).pw_dir)
    settings = isolated_settings(home / f"stack-{tmp_path.name}")
    settings.stack_dir.mkdir(parents=True)
    shutil.chown(settings.stack_dir, user)
    env = {**as_env(settings), "HOME": str(home)}
    # The Kafka jars are already resolved in the shared stack; lend them instead of
    # resolving them again as that user.
    shared_kafka = Stack(Settings(env="test"), lambda _: None).services[2]
    own_kafka = Stack(settings, lambda _: None).services[2]
    own_kafka.libs.parent.mkdir(parents=True)  # type: ignore[attr-defined]
    shutil.copytree(shared_kafka.libs, own_kafka.libs)  # type: ignore[attr-defined]
    subprocess.run(["chown", "-R", user, str(settings.stack_dir)], check=True)

    # Our interpreter may live under /root, closed to that user: run the same packages with
    # Debian's Python of the same minor version instead.
    site = next(p for p in sys.path if p.endswith("site-packages") and sys.prefix in p)
    env["PYTHONPATH"] = f"{ROOT}:{site}"
    command = ["/usr/bin/python3", "-c", "from tradecore.cli import app; app()"]
    readable = subprocess.run(
        ["runuser", "-u", user, "--", *command, "--help"], env=env, capture_output=True, cwd=home
    )
    if readable.returncode != 0:
        pytest.skip(f"{user} cannot read this checkout or its packages: {readable.stderr[-200:]!r}")

    def as_user(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", user, "--", *command, *args],
            env=env,
            capture_output=True,
            text=True,
            cwd=home,
        )

    try:
        up = as_user("stack", "up")
        status = as_user("stack", "status")
        assert up.returncode == 0, up.stdout + up.stderr
        assert status.returncode == 0, status.stdout
        owners = {
            pwd.getpwuid(os.stat(f"/proc/{s.pid()}").st_uid).pw_name
            for s in Stack(settings, lambda _: None).services
        }
        assert owners == {user}
    finally:
        down = as_user("stack", "down")
        shutil.rmtree(settings.stack_dir, ignore_errors=True)
    assert down.returncode == 0, down.stderr
