"""What every locally run service shares: process, port and privilege helpers, the status shape."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.settings import Settings

Report = Callable[[str], None]


class StackError(RuntimeError):
    """A service could not be installed or started; the message says what to do next."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # "running", "stopped", "external", "unreachable"
    address: str
    version: str = ""
    detail: str = ""


def is_root() -> bool:
    return os.geteuid() == 0


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not running.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def terminate(pid: int, timeout: float = 30.0, group: bool = False) -> None:
    """SIGTERM, then SIGKILL after `timeout`: the process is gone when this returns."""
    send = os.killpg if group else os.kill
    try:
        send(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if wait_until(lambda: not pid_alive(pid), timeout):
        return
    try:
        send(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_until(lambda: not pid_alive(pid), 10)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run(
    argv: Sequence[str | Path],
    *,
    what: str,
    log: Path | None = None,
    user: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a command to completion; on failure raise a StackError naming the log to read."""
    cmd = [str(a) for a in argv]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        where = f"; full log: {log}" if log is not None else ""
        output = (proc.stderr or proc.stdout).strip().splitlines()[-10:]
        raise StackError(f"{what} failed (exit {proc.returncode}){where}\n" + "\n".join(output))
    return proc.stdout


def apt_install(packages: Sequence[str], report: Report, log: Path) -> None:
    """Install Debian packages, or say exactly what to install when we are not root."""
    if not is_root():
        raise StackError(
            f"missing Debian packages: {' '.join(packages)}. Install them with "
            f"`sudo apt-get install -y {' '.join(packages)}` and run the command again."
        )
    report(f"installing Debian packages: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lists = Path("/var/lib/apt/lists")
    if not any(lists.glob("*Packages*")):
        run(["apt-get", "update", "-q"], what="apt-get update", log=log, env=env)
    try:
        run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
            what="apt-get install",
            log=log,
            env=env,
        )
    except StackError:
        run(["apt-get", "update", "-q"], what="apt-get update", log=log, env=env)
        run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
            what="apt-get install",
            log=log,
            env=env,
        )


def unprivileged_user() -> str | None:
    """The account PostgreSQL runs as when we are root (it refuses to run as root)."""
    if not is_root():
        return None
    for name in ("postgres", "tradecore"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "tradecore"],
        what="creating the unprivileged user 'tradecore'",
    )
    return "tradecore"


def which(name: str) -> str | None:
    return shutil.which(name)


class Service(ABC):
    """One locally run service: installed on demand, started on loopback, health-checked."""

    name: str

    def __init__(self, settings: Settings, report: Report) -> None:
        self.settings = settings
        self.report = report
        self.home = settings.stack_dir / self.name
        self.log_dir = settings.stack_dir / "logs"

    @property
    @abstractmethod
    def managed(self) -> bool:
        """False when the settings point at an external instance."""

    @property
    @abstractmethod
    def address(self) -> str: ...

    @property
    @abstractmethod
    def ports(self) -> list[int]: ...

    @abstractmethod
    def install(self) -> bool:
        """Install what is missing; return True when something had to be installed."""

    @abstractmethod
    def pid(self) -> int | None:
        """Our server's pid when it is alive."""

    @abstractmethod
    def start(self) -> None:
        """Start the server and return once it answers (or raise StackError)."""

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def probe(self) -> str:
        """Ask the running server for its version; raise on failure."""

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def check_ports_free(self) -> None:
        for port in self.ports:
            if port_in_use("127.0.0.1", port):
                raise StackError(
                    f"{self.name}: port {port} on 127.0.0.1 is already taken by another process. "
                    f"Stop that process or choose another port "
                    f"(see `tradecore stack --help` for the TRADECORE_*_PORT settings)."
                )

    def status(self) -> ServiceStatus:
        if not self.managed:
            try:
                return ServiceStatus(self.name, "external", self.address, self.probe())
            except Exception as exc:  # any failure means: not reachable
                return ServiceStatus(self.name, "unreachable", self.address, detail=str(exc))
        if self.pid() is None:
            return ServiceStatus(self.name, "stopped", self.address)
        try:
            return ServiceStatus(self.name, "running", self.address, self.probe())
        except Exception as exc:  # alive but not answering
            return ServiceStatus(
                self.name, "unhealthy", self.address, detail=f"{exc}; log: {self.log_file}"
            )

    def wait_healthy(self, timeout: float) -> str:
        """Poll `probe` until it answers; the version it reports is returned."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise StackError(
                    f"{self.name} exited during start-up. Last lines of {self.log_file}:\n"
                    + tail(self.log_file)
                )
            try:
                return self.probe()
            except Exception as exc:  # not ready yet
                last = exc
                time.sleep(0.25)
        raise StackError(
            f"{self.name} did not become ready within {timeout:.0f} s ({last}). "
            f"Last lines of {self.log_file}:\n{tail(self.log_file)}"
        )
