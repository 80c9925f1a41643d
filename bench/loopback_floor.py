"""The floor under the fan-out: what one TCP write to a subscriber costs on this machine,
with no Tradecore code at all.

A server process (uvloop, like the gateway) writes one 304-byte WebSocket text frame to
each of `--sockets` loopback connections, `--rate` times a second; a client process reads
them with plain non-blocking sockets and `selectors`. Both report CPU seconds per write or
read. Every delivery of a live message to a subscriber costs at least one such write and
one such read, whatever the server is written in, so

    cores needed >= deliveries/s x (server us per write + client us per read) / 1e6

is a lower bound for `bench.serving`'s `fanout` and `held` phases when the subscribers run
on the same machine (as the issue asks: "measure with a separate client process").

    .venv/bin/python -m bench.loopback_floor                   # 10,000 sockets x 10/s, 5 s
    .venv/bin/python -m bench.loopback_floor --sockets 1000 --rate 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import socket
import time

import uvloop

FRAME = b"\x81\x7e\x01\x2c" + b"x" * 300  # a 300-byte text frame, about one trade message


def _client(port: int, sockets: int, seconds: float, report: int) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(sockets)]
    selector = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
    received = reads = 0
    started = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in selector.select(0.5):
            try:
                data = key.fileobj.recv(65_536)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            received += len(data)
            reads += 1
    cpu = time.process_time() - started
    os.write(report, f"{reads} {received} {cpu}".encode())
    os._exit(0)


async def _server(sockets: int, rate: float, seconds: float) -> None:
    transports: list[asyncio.Transport] = []

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transports.append(transport)  # type: ignore[arg-type]

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Accept, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    read_end, write_end = os.pipe()
    rounds = max(1, int(rate * seconds))
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _client(port, sockets, rounds / rate + 3.0, write_end)
    os.close(write_end)
    while len(transports) < sockets:
        await asyncio.sleep(0.05)
    print(f"{sockets:,} loopback connections; {rounds} rounds of one {len(FRAME)}-byte write each")
    writes = 0
    cpu = time.process_time()
    wall = time.monotonic()
    for r in range(rounds):
        for transport in transports:
            transport.write(FRAME)
        writes += len(transports)
        await asyncio.sleep(max(0.0, wall + (r + 1) / rate - time.monotonic()))
    server_cpu = time.process_time() - cpu
    os.waitpid(pid, 0)
    reads, received, client_cpu = os.read(read_end, 200).decode().split()
    per_write = server_cpu / writes * 1e6
    per_read = float(client_cpu) / max(1, int(reads)) * 1e6
    print(f"server: {writes:,} writes, {server_cpu:.2f} s CPU = {per_write:.2f} us per write")
    print(
        f"client: {int(reads):,} reads ({int(received):,} bytes), {float(client_cpu):.2f} s CPU"
        f" = {per_read:.2f} us per read"
    )
    for deliveries in (100_000, 1_000_000):
        cores = deliveries * (per_write + per_read) / 1e6
        print(f"  {deliveries:>9,} deliveries/s, one write each: at least {cores:.2f} cores")
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=10.0, help="rounds of writes per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    uvloop.run(_server(args.sockets, args.rate, args.seconds))


if __name__ == "__main__":
    main()
