"""The local PostgreSQL 15 server, with TimescaleDB built from Debian's source package."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cached_property
from pathlib import Path

import psycopg

from infra.stack.base import (
    Service,
    StackError,
    apt_install,
    pid_alive,
    read_pid,
    run,
    unprivileged_user,
)

PG_MAJOR = "15"
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
INSTALL_TIMESCALEDB = Path(__file__).with_name("install_timescaledb.sh")


def pg_config(key: str) -> str:
    out = subprocess.run(
        [str(PG_BIN / "pg_config"), f"--{key}"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def timescaledb_installed() -> bool:
    if not (PG_BIN / "pg_config").exists():
        return False
    return (Path(pg_config("pkglibdir")) / "timescaledb.so").exists()


class Postgres(Service):
    name = "postgres"

    @property
    def managed(self) -> bool:
        return self.settings.postgres_managed

    @property
    def address(self) -> str:
        if not self.managed:
            return self.settings.dsn.rsplit("@", 1)[-1]
        return f"{self.settings.pg_host}:{self.settings.pg_port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.pg_port]

    @cached_property
    def user(self) -> str | None:
        return unprivileged_user()

    @cached_property
    def data_dir(self) -> Path:
        """The cluster directory; outside the checkout when the server's user cannot reach it."""
        preferred = self.home / "data"
        user = self.user
        if user is None or self._reachable_by(user, self.home.parent):
            return preferred
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]
        return Path("/var/lib/tradecore") / digest / "postgres" / "data"

    @staticmethod
    def _reachable_by(user: str, path: Path) -> bool:
        path.mkdir(parents=True, exist_ok=True)
        probe = subprocess.run(
            ["runuser", "-u", user, "--", "test", "-x", str(path)], capture_output=True, check=False
        )
        return probe.returncode == 0

    @property
    def log_file(self) -> Path:
        # Beside the cluster: the server's user may not be able to write to .stack/logs.
        return self.data_dir.parent / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / "run"

    # -- install --------------------------------------------------------------------------------

    def install(self) -> bool:
        did = False
        if not (PG_BIN / "postgres").exists():
            apt_install([f"postgresql-{PG_MAJOR}"], self.report, self.log_dir / "install.log")
            did = True
        if not timescaledb_installed():
            did = True
            self._install_timescaledb()
        return did

    def _install_timescaledb(self) -> None:
        needs = [
            p
            for p, probe in (("cmake", "cmake"), ("gcc", "gcc"), ("make", "make"))
            if not shutil.which(probe)
        ]
        if not Path(f"/usr/include/postgresql/{PG_MAJOR}/server/postgres.h").exists():
            needs.append(f"postgresql-server-dev-{PG_MAJOR}")
        if needs:
            apt_install(needs, self.report, self.log_dir / "install.log")
        cache = self.settings.stack_dir / "cache" / "timescaledb"
        self.report(
            "building TimescaleDB (Apache edition) from Debian's source package "
            f"(about a minute; log: {self.log_dir / 'timescaledb-build.log'})"
        )
        try:
            run(
                ["bash", INSTALL_TIMESCALEDB, cache, PG_BIN / "pg_config"],
                what="building TimescaleDB",
                log=self.log_dir / "timescaledb-build.log",
            )
        except StackError as exc:
            self.report(
                f"WARNING: TimescaleDB could not be installed ({str(exc).splitlines()[0]}); "
                "PostgreSQL runs without it and read models fall back to plain tables."
            )

    # -- run --------------------------------------------------------------------------------------

    def pid(self) -> int | None:
        pid = read_pid(self.data_dir / "postmaster.pid")
        return pid if pid is not None and pid_alive(pid) else None

    def _prepare_dirs(self) -> None:
        for path in (self.data_dir.parent, self.socket_dir, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)
        user = self.user
        if user is not None:
            shutil.chown(self.data_dir.parent, user)
            shutil.chown(self.socket_dir, user)
            self.log_file.touch()
            shutil.chown(self.log_file, user)

    def _initdb(self) -> None:
        self.report(f"initialising a PostgreSQL cluster in {self.data_dir}")
        user = self.user
        with tempfile.NamedTemporaryFile("w", delete=False, dir=self.data_dir.parent) as pw:
            pw.write(self.settings.pg_password.get_secret_value() + "\n")
        if user is not None:
            shutil.chown(pw.name, user)
        try:
            run(
                [
                    PG_BIN / "initdb",
                    "-D",
                    self.data_dir,
                    "-U",
                    self.settings.pg_user,
                    f"--pwfile={pw.name}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                what="initdb",
                log=self.log_dir / "install.log",
                user=user,
            )
        finally:
            os.unlink(pw.name)
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\ninclude_if_exists = 'tradecore.conf'\n")

    def _write_config(self) -> None:
        lines = [
            "# Written by `tradecore stack up` on every start; edit the settings, not this file.",
            "listen_addresses = '127.0.0.1'",
            f"port = {self.settings.pg_port}",
            f"unix_socket_directories = '{self.socket_dir}'",
            "max_connections = 200",
            "shared_buffers = 512MB",
            "wal_buffers = 16MB",
            "fsync = on",
            "synchronous_commit = on",
            "max_wal_size = 4GB",
            "checkpoint_timeout = 15min",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
        ]
        if timescaledb_installed():
            lines += [
                "shared_preload_libraries = 'timescaledb'",
                "timescaledb.telemetry_level = off",
                "timescaledb.max_background_workers = 4",
            ]
        conf = self.data_dir / "tradecore.conf"
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        user = self.user
        if user is not None:
            shutil.chown(conf, user)

    def start(self) -> None:
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._write_config()
        run(
            [
                PG_BIN / "pg_ctl",
                "-D",
                self.data_dir,
                "-l",
                self.log_file,
                "-w",
                "-t",
                "60",
                "start",
            ],
            what="starting PostgreSQL",
            log=self.log_dir / "install.log",
            user=self.user,
        )
        self.wait_healthy(30)
        self._ensure_database()

    def _ensure_database(self) -> None:
        with psycopg.connect(self.settings.dsn_for("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.settings.pg_database,)
            ).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{self.settings.pg_database}"')

    def stop(self) -> None:
        if self.pid() is None:
            return
        run(
            [PG_BIN / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "-t", "60", "stop"],
            what="stopping PostgreSQL",
            log=self.log_dir / "install.log",
            user=self.user,
        )

    def probe(self) -> str:
        database = self.settings.pg_database if not self.managed else "postgres"
        dsn = self.settings.dsn if not self.managed else self.settings.dsn_for(database)
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            ext = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
            ).fetchone()
        version = f"PostgreSQL {row[0] if row else '?'}"
        return version + (f", TimescaleDB {ext[0]}" if ext else ", no TimescaleDB")
