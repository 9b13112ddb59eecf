#!/usr/bin/env python3
# Sender CPU of sendfile(2) from a memfd against an O_TMPFILE on the repo's filesystem, 21 MB x 20 to a
# loopback socket (sender on CPU 0, reader on CPU 1), four rounds. Usage: python3 bench/sendfile_source.py
import os, socket, time, threading, resource, sys
N = 21_000_000
data = os.urandom(1<<20) * 20 + os.urandom(N - 20*(1<<20))
def mk(kind):
    if kind == "memfd":
        fd = os.memfd_create("x")
    else:
        fd = os.open(os.path.dirname(os.path.abspath(__file__)), os.O_TMPFILE | os.O_RDWR, 0o600)
    os.write(fd, data)
    return fd
def sink(port, total):
    c = socket.create_connection(("127.0.0.1", port))
    os.sched_setaffinity(0, {1})
    got = 0
    while got < total:
        b = c.recv(1<<20)
        if not b: break
        got += len(b)
def run(kind, reps=20):
    fd = mk(kind)
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
    port = srv.getsockname()[1]
    t = threading.Thread(target=sink, args=(port, N*reps)); t.start()
    conn, _ = srv.accept()
    r0 = resource.getrusage(resource.RUSAGE_THREAD)
    for _ in range(reps):
        off = 0
        while off < N:
            off += os.sendfile(conn.fileno(), fd, off, min(1<<20, N-off))
    r1 = resource.getrusage(resource.RUSAGE_THREAD)
    t.join(); conn.close(); srv.close(); os.close(fd)
    return ((r1.ru_utime-r0.ru_utime)+(r1.ru_stime-r0.ru_stime))/reps*1000
os.sched_setaffinity(0, {0})
for i in range(4):
    for k in ("memfd", "tmpfile"):
        print(k, "%.2f ms CPU per 21 MB" % run(k))
