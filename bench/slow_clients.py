#!/usr/bin/env python3
"""Holds N slow, mid-download range requests open against one server, for memory measurements.

usage: slow_clients.py HOST PORT PATH FILE_SIZE N HOLD_SECONDS

Each client asks for `Range: bytes=X-` from a random offset, reads the response head and a few KB,
then stops reading while keeping the connection open, as a stalled podcast app would. Prints how many
connections got a 206. Loopback only; bounded in count and time.
"""
import asyncio
import random
import socket
import sys


async def client(host, port, path, size, hold, results, started):
    offset = random.randrange(0, max(1, size - 10_000_000))
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        results["refused"] += 1
        return
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nRange: bytes={offset}-\r\n\r\n".encode())
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if b" 206 " in head.split(b"\r\n", 1)[0]:
            results["206"] += 1
        await reader.read(4096)
    except Exception:
        results["failed"] += 1
    started.release()
    await asyncio.sleep(hold)
    writer.close()


async def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    size, n, hold = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    results = {"206": 0, "failed": 0, "refused": 0}
    started = asyncio.Semaphore(0)
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(client(host, port, path, size, hold, results, started)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)
    for _ in range(n):
        await started.acquire()
    print(f"ready {results['206']} {results['failed']} {results['refused']}", flush=True)
    await asyncio.gather(*tasks)


asyncio.run(main())
