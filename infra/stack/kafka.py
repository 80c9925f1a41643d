"""The local Apache Kafka broker: one KRaft node, jars from Maven Central, the system JDK."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import os
import subprocess
import uuid
from pathlib import Path

from infra.stack.base import (
    Service,
    StackError,
    apt_install,
    pid_alive,
    port_in_use,
    read_pid,
    run,
    terminate,
    which,
)

KAFKA_VERSION = "3.9.1"
FILES = Path(__file__).with_name("files")


def _probe_broker(servers: str) -> None:
    """Fetch cluster metadata: succeeds only once the broker and its controller serve requests."""
    from aiokafka.admin import AIOKafkaAdminClient

    host, _, port = servers.split(",")[0].rpartition(":")
    if not port_in_use(host, int(port)):
        raise ConnectionError(f"nothing listens on {host}:{port}")
    # aiokafka logs every refused connection at ERROR while the broker boots; not news here.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def ask() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=3000)
        await admin.start()
        try:
            await admin.list_topics()
        finally:
            await admin.close()

    asyncio.run(ask())


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64, never starting with "-" (the
    storage tool would read it as an option: 1 start in 64 failed). Kafka's own
    ``Uuid.randomUuid`` skips such ids the same way."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Kafka(Service):
    name = "kafka"

    @property
    def managed(self) -> bool:
        return self.settings.kafka_managed

    @property
    def address(self) -> str:
        return self.settings.kafka_servers

    @property
    def ports(self) -> list[int]:
        return [self.settings.kafka_port, self.settings.kafka_controller_port]

    @property
    def libs(self) -> Path:
        return self.home / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def pidfile(self) -> Path:
        return self.home / "kafka.pid"

    def install(self) -> bool:
        did = False
        if not which("java") or not which("mvn"):
            apt_install(
                ["openjdk-17-jre-headless", "maven"], self.report, self.log_dir / "install.log"
            )
            did = True
        if (self.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            return did
        self.report(
            f"resolving Apache Kafka {KAFKA_VERSION} broker jars from Maven Central "
            f"(about 30 s; log: {self.log_dir / 'install.log'})"
        )
        partial = self.libs.with_name("libs.partial")
        run(
            [
                "mvn",
                "-B",
                "-q",
                "-f",
                FILES / "kafka-pom.xml",
                f"-Dkafka.version={KAFKA_VERSION}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}",
                "-DincludeScope=runtime",
            ],
            what="resolving Kafka with Maven",
            log=self.log_dir / "install.log",
        )
        partial.rename(self.libs)
        return True

    def pid(self) -> int | None:
        pid = read_pid(self.pidfile)
        return pid if pid is not None and pid_alive(pid) else None

    def _java(self, main: str, *args: str | Path, heap: str) -> list[str]:
        return [
            "java",
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{FILES / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.log_dir / 'kafka-server'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *[str(a) for a in args],
        ]

    def _write_config(self) -> Path:
        s = self.settings
        data = self.home / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{s.kafka_controller_port}",
            "listeners": (
                f"PLAINTEXT://{s.kafka_host}:{s.kafka_port},"
                f"CONTROLLER://127.0.0.1:{s.kafka_controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{s.kafka_host}:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "3",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.cleaner.dedupe.buffer.size": "4194304",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
        }
        path = self.home / "server.properties"
        path.write_text(
            "# Written by `tradecore stack up` on every start.\n"
            + "".join(f"{k}={v}\n" for k, v in props.items()),
            encoding="utf-8",
        )
        return path

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / "kafka-server").mkdir(exist_ok=True)
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = new_cluster_id()
            self.report("formatting Kafka's KRaft storage")
            run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    config,
                    "--ignore-formatted",
                    heap="128m",
                ),
                what="formatting Kafka storage",
                log=self.log_dir / "install.log",
            )
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                self._java("kafka.Kafka", config, heap=self.settings.kafka_heap),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.home,
            )
        self.pidfile.write_text(f"{proc.pid}\n", encoding="utf-8")
        try:
            self.wait_healthy(90)
        except StackError:
            self.stop()
            raise

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout=45, group=os.getpgid(pid) == pid)
        self.pidfile.unlink(missing_ok=True)

    def probe(self) -> str:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(_probe_broker, self.settings.kafka_servers).result(timeout=15)
        return f"Apache Kafka {KAFKA_VERSION} (KRaft)" if self.managed else "Apache Kafka"
