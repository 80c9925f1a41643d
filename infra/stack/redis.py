"""The local Redis server (Debian's `redis-server`)."""

from __future__ import annotations

from pathlib import Path

import redis

from infra.stack.base import (
    Service,
    apt_install,
    pid_alive,
    read_pid,
    run,
    terminate,
    wait_until,
    which,
)


class Redis(Service):
    name = "redis"

    @property
    def managed(self) -> bool:
        return self.settings.redis_managed

    @property
    def address(self) -> str:
        if not self.managed:
            return self.settings.redis_dsn.rsplit("@", 1)[-1]
        return f"{self.settings.redis_host}:{self.settings.redis_port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.redis_port]

    @property
    def pidfile(self) -> Path:
        return self.home / "redis.pid"

    def install(self) -> bool:
        if which("redis-server"):
            return False
        apt_install(["redis-server"], self.report, self.log_dir / "install.log")
        return True

    def pid(self) -> int | None:
        pid = read_pid(self.pidfile)
        return pid if pid is not None and pid_alive(pid) else None

    def start(self) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        conf = self.home / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "# Written by `tradecore stack up` on every start.",
                    f"bind {self.settings.redis_host}",
                    f"port {self.settings.redis_port}",
                    "protected-mode yes",
                    "daemonize yes",
                    f"pidfile {self.pidfile}",
                    f"logfile {self.log_file}",
                    f"dir {self.home / 'data'}",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "maxclients 20000",
                    "client-output-buffer-limit pubsub 64mb 16mb 60",
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        run(["redis-server", conf], what="starting Redis", log=self.log_dir / "install.log")
        # The daemonised server writes its pidfile a moment after the launcher returns.
        wait_until(lambda: self.pid() is not None, 10)
        self.wait_healthy(20)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout=20)
        self.pidfile.unlink(missing_ok=True)

    def probe(self) -> str:
        client = redis.Redis.from_url(self.settings.redis_dsn, socket_timeout=2)
        try:
            info = client.info("server")
        finally:
            client.close()
        return f"Redis {info['redis_version']}"
