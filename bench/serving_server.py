"""The server side of bench/serving.py: one process, uvicorn on uvloop, running build_gateway.

Started by bench/serving.py as `python -m bench.serving_server DSN PREFIX PORT ...`; it prints
``ready`` once uvicorn listens, and stops on SIGINT/SIGTERM like any uvicorn server.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import json
import os
import resource
from collections.abc import Callable
from typing import Any

import uvicorn
from argon2 import PasswordHasher

from gateway.services import GatewayConfig
from infra.settings import Settings
from tradecore.bootstrap import build_gateway, build_market_data, reuse_port_socket

# Log-ins are not what is measured; the production argon2 cost would only slow set-up.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def raise_nofile() -> int:
    """Lift the soft open-files limit to the hard one (10,000 sockets need it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def http_implementation() -> str:
    """What uvicorn's `http="auto"` picks: httptools when installed, else the pure-Python h11."""
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dsn")
    parser.add_argument("prefix")
    parser.add_argument("port", type=int)
    parser.add_argument("--rate-limit", type=int, default=10_000_000)
    parser.add_argument("--snapshot-every", type=int, default=50_000)
    parser.add_argument("--stats", help="write the core's and the hub's counters here, 2/s")
    parser.add_argument(
        "--market-data", action="store_true",
        help="a market-data process (build_market_data: /ws without a core) on a shared port",
    )  # fmt: skip
    args = parser.parse_args()
    nofile = raise_nofile()
    settings = Settings(
        env="test", demo_market=False, read_side=False, snapshot_every=args.snapshot_every
    )
    if args.market_data:
        serve_market_data_process(settings, args, nofile)
        return
    app = build_gateway(
        settings,
        dsn=args.dsn,
        redis_prefix=args.prefix,
        config=GatewayConfig(rate_limit=args.rate_limit, rate_window_s=1, login_limit=100_000),
        hasher=FAST_HASHER,
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        lifespan="on",
        log_level="warning",
        backlog=4096,
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)

    async def write_stats(path: str) -> None:
        core, hub = app.state.services.core, app.state.live
        while True:
            stats: dict[str, Any] = dataclasses.asdict(core.stats)
            stats["connections"] = hub.stats.connections
            stats["slow_disconnects"] = hub.stats.slow_disconnects
            with open(path + ".tmp", "w") as f:
                json.dump(stats, f)
            os.replace(path + ".tmp", path)
            await asyncio.sleep(0.5)

    background: set[asyncio.Task[None]] = set()

    def started() -> None:
        if args.stats:
            background.add(asyncio.get_running_loop().create_task(write_stats(args.stats)))

    say_ready_once_started(server, f"ready http={http_implementation()} nofile={nofile}", started)
    server.run()


def say_ready_once_started(
    server: uvicorn.Server, line: str, started: Callable[[], None] = lambda: None
) -> None:
    """Print `line` (what bench/serving.py waits for) once uvicorn listens, after `started`."""
    startup = server.startup

    async def startup_then_say_ready(sockets: object = None) -> None:
        await startup(sockets)  # type: ignore[arg-type]
        started()
        print(line, flush=True)

    server.startup = startup_then_say_ready  # type: ignore[method-assign]


def serve_market_data_process(settings: Settings, args: argparse.Namespace, nofile: int) -> None:
    app = build_market_data(
        settings,
        dsn=args.dsn,
        redis_prefix=args.prefix,
        config=GatewayConfig(rate_limit=args.rate_limit, rate_window_s=1),
    )
    sock = reuse_port_socket("127.0.0.1", args.port)
    config = uvicorn.Config(app, loop="uvloop", lifespan="on", log_level="warning", backlog=4096)
    server = uvicorn.Server(config)
    say_ready_once_started(server, f"ready market-data nofile={nofile}")
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
