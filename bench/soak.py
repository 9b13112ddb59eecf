#!/usr/bin/env python3
"""Mixed-load soak against a running rollcall on loopback (started by bench/soak.sh).

    python3 bench/soak.py BASE PID SECONDS ADMIN_TOKEN PERSONAL_FEED_PATH CATALOG_DIR

Threads, each on its own keep-alive connection, for SECONDS:
  feeds     public feeds and OPML, half of them as conditional polls (304)
  personal  the officer's personal feed, its 304 poll, and its media with ranges
  pages     home, theme, episode and search pages
  media     random ranges (start, middle, suffix, open-ended) and whole downloads, checked
            against Content-Length
  admin     adds an episode through the API every few seconds, and edits one back and forth
  reload    edits a notes.md on disk, which the watcher reloads

An error is any connection failure, any status outside what the request may get, or a body
whose length differs from Content-Length. Every 0.5 s it samples the server's resident memory
(VmRSS) and open file descriptors from /proc. Memory is judged by its level, the median of the
samples over a stretch of the run, because every edit swaps in a whole new catalog snapshot and
resident memory saws up and down around the level as old snapshots and compression buffers are
freed: the level over the last fifth of the run must be within 10% of the level over the fifth
after warm-up (the first third, at least 10 s: a 180 s run on the demo catalog showed memory still
climbing to its working level until about 40 s, so a warm-up of a fifth of a one- or two-minute
run compared that climb with the plateau, and CI failed on +13.7% once with a build that a
three-minute run showed flat). When the load stops and its connections close,
the server must hold no more sockets than before it, and no more files than before it plus its
open-file cache.
It prints a table and exits 1 if any check fails. Only 127.0.0.1 is ever contacted.
"""
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

BASE, PID, SECONDS, TOKEN, PERSONAL, CATALOG = sys.argv[1:7]
PID, SECONDS = int(PID), float(SECONDS)
HOST = urllib.parse.urlsplit(BASE)
assert HOST.hostname == "127.0.0.1", "loopback only"
PORT = HOST.port
deadline = time.monotonic() + SECONDS
lock = threading.Lock()
counts, errors = {}, []


def note(kind, ok, what=""):
    with lock:
        counts[kind] = counts.get(kind, 0) + 1
        if not ok:
            errors.append(f"{kind}: {what}")


class Client:
    def __init__(self):
        self.conn = None

    def request(self, method, path, headers=None, body=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # An idle keep-alive connection the server closed: reconnect once.
                self.close()
                if attempt:
                    raise

    def close(self):
        if self.conn:
            self.conn.close()
        self.conn = None


def check(kind, r, data, allowed):
    ok = r.status in allowed
    length = r.getheader("Content-Length")
    if ok and length is not None and r.status != 304 and int(length) != len(data):
        ok = False
    note(kind, ok, f"{r.status} {len(data)} bytes (Content-Length {length})")


def loop(kind, step):
    c = Client()
    state = {}
    while time.monotonic() < deadline:
        try:
            step(c, state)
        except Exception as e:  # noqa: BLE001 - every failure is an error of the soak
            note(kind, False, repr(e))
            c.close()
    c.close()


def feeds(c, st):
    path = random.choice(["/feeds/defusing-difficult-encounters.xml", "/feeds/spotlight-on-safety.xml", "/feeds.opml"])
    h = {"Accept-Encoding": random.choice(["gzip", "br", "identity"])}
    if path in st and random.random() < 0.5:
        h["If-None-Match"] = st[path]
    r, data = c.request("GET", path, h)
    check("feeds", r, data, {200, 304})
    if r.getheader("ETag") and h["Accept-Encoding"] == "identity":
        st[path] = r.getheader("ETag")


def personal(c, st):
    h = {}
    if "etag" in st and random.random() < 0.6:
        h["If-None-Match"] = st["etag"]
    r, data = c.request("GET", PERSONAL, h)
    check("personal", r, data, {200, 304})
    if r.status == 200:
        st["etag"] = r.getheader("ETag")
        text = data.decode()
        st["media"] = [urllib.parse.urlsplit(u.split('"')[0]).path for u in text.split('<enclosure url="')[1:]]
    if st.get("media"):
        r, data = c.request("GET", random.choice(st["media"]), {"Range": "bytes=0-65535"})
        check("personal", r, data, {206, 200})


def pages(c, st):
    path = random.choice(["/", "/feeds/defusing-difficult-encounters", "/episodes/defining-de-escalation",
                          "/episodes/behavioral-response-to-stress-and-fear", "/search?q=de-escalation",
                          "/search?q=soak", "/feeds/valor-members"])
    r, data = c.request("GET", path, {"Accept": "text/html", "Accept-Encoding": "gzip"})
    check("pages", r, data, {200})


def media(c, st):
    if "paths" not in st:
        r, data = c.request("GET", "/feeds/defusing-difficult-encounters.xml")
        st["paths"] = [urllib.parse.urlsplit(u.split('"')[0]).path for u in data.decode().split('<enclosure url="')[1:]]
    path = random.choice(st["paths"])
    kind = random.random()
    if kind < 0.25:
        r, data = c.request("GET", path)
        check("media", r, data, {200})
        return
    rng = random.choice(["bytes=0-1023", "bytes=4096-70000", "bytes=-8192", "bytes=100000-", "bytes=0-"])
    r, data = c.request("GET", path, {"Range": rng})
    check("media", r, data, {206, 416})
    if r.status == 404:
        st.pop("paths", None)  # replaced audio: fetch the feed again


AUDIO = open(os.path.join(CATALOG, "episodes", "defining-de-escalation", "audio.mp3"), "rb").read()


def admin(c, st):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    n = st.get("n", 0)
    st["n"] = n + 1
    # Adds grow the catalog (and so, rightly, memory): often during warm-up, then one every
    # 30 s; edits all the time.
    now = time.monotonic()
    due = now - st.get("added", 0) >= (2 if now - started < warmup else 30)
    if due:
        st["added"] = now
        boundary = f"soak{random.getrandbits(64):x}"
        meta = json.dumps({"title": f"Soak episode {n}", "published": "2016-07-01",
                           "summary": "Added by the soak test.", "feeds": ["defusing-difficult-encounters"]})
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n"
                f"Content-Type: application/json\r\n\r\n{meta}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.mp3\"\r\n"
                f"Content-Type: audio/mpeg\r\n\r\n").encode() + AUDIO + f"\r\n--{boundary}--\r\n".encode()
        h = dict(auth)
        h["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        r, data = c.request("POST", "/admin/api/episodes", h, body)
        check("admin", r, data, {201})
    else:
        title = "Defining De-Escalation" if n % 2 else "Defining De-Escalation (soak edit)"
        h = dict(auth)
        h["Content-Type"] = "application/json"
        r, data = c.request("PATCH", "/admin/api/episodes/defining-de-escalation", h,
                            json.dumps({"title": title}).encode())
        check("admin", r, data, {200})
    time.sleep(0.5)


NOTES = os.path.join(CATALOG, "episodes", "behavioral-response-to-stress-and-fear", "notes.md")
ORIGINAL = open(NOTES).read()


def reload(c, st):
    n = st.get("n", 0)
    st["n"] = n + 1
    tmp = NOTES + ".tmp"
    with open(tmp, "w") as f:
        f.write(ORIGINAL + f"\nSoak edit {n}.\n")
    os.replace(tmp, NOTES)
    note("reload", True)
    time.sleep(2)


def proc(field):
    for line in open(f"/proc/{PID}/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def fds():
    """(sockets, other descriptors, of them files in the catalog) the server holds open."""
    sockets = other = catalog = 0
    for fd in os.listdir(f"/proc/{PID}/fd"):
        try:
            target = os.readlink(f"/proc/{PID}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            sockets += 1
        else:
            other += 1
            catalog += target.startswith(os.path.realpath(CATALOG) + "/episodes/")
    return sockets, other, catalog


# The server keeps up to this many media files open (its open-file cache, src/http/media.rs).
FILE_CACHE = 1024


fds_before = fds()
rss_start = proc("VmRSS")
threads = [threading.Thread(target=loop, args=(k, f), daemon=True) for k, f in [
    ("feeds", feeds), ("feeds", feeds), ("personal", personal), ("pages", pages),
    ("media", media), ("media", media), ("admin", admin), ("reload", reload)]]
started = time.monotonic()
warmup = max(10.0, SECONDS / 3)
for t in threads:
    t.start()
samples = []
while any(t.is_alive() for t in threads):
    # Often: resident memory saws by a third between snapshots, and a median of the 6 samples
    # a fifth of a one-minute run held at 2 s apart moved by 10% between identical runs.
    time.sleep(0.5)
    at = time.monotonic() - started
    rss, fd = proc("VmRSS"), sum(fds()[:2])
    with lock:
        total = sum(counts.values())
    samples.append((at, rss, fd, total))
for t in threads:
    t.join()
time.sleep(2)  # let the server see the clients' connections close
fds_after = fds()
rss_end = proc("VmRSS")
def median(v):
    v = sorted(v)
    return v[len(v) // 2] if v else 0


span = (elapsed_total := time.monotonic() - started) / 5
after_warm = [s[1] for s in samples if s[0] >= warmup]
rss_max = max(after_warm) if after_warm else rss_end
level_warm = median([s[1] for s in samples if warmup <= s[0] < warmup + span]) or rss_end
level_end = median([s[1] for s in samples if s[0] >= elapsed_total - span]) or rss_end
elapsed = time.monotonic() - started
total = sum(counts.values())

print(f"soak: {elapsed:.0f} s, {total} requests ({total / elapsed:.0f}/s), {len(errors)} errors")
print("| kind | requests |")
print("| --- | --- |")
for k in sorted(counts):
    print(f"| {k} | {counts[k]} |")
print(f"resident memory: {rss_start} kB at start; level {level_warm} kB after warm-up ({warmup:.0f} s) and "
      f"{level_end} kB over the last fifth ({(level_end / level_warm - 1) * 100:+.1f}%); "
      f"samples after warm-up from {min(after_warm or [0])} to {rss_max} kB; {rss_end} kB once idle")
print(f"file descriptors: {fds_before[0]} sockets and {fds_before[1]} files before the load, "
      f"at most {max(s[2] for s in samples)} in all during it, "
      f"{fds_after[0]} sockets and {fds_after[1]} files after it "
      f"({fds_after[2]} of them episode files in the open-file cache, against {fds_before[2]} before)")
print("resident memory every 2 s (MB): " + " ".join(f"{s[1] / 1024:.0f}" for s in samples[3::4]))
for e in errors[:20]:
    print("error:", e)
failed = []
if errors:
    failed.append(f"{len(errors)} errors")
if level_end > level_warm * 1.10:
    failed.append("resident memory's level grew more than 10% after warm-up")
if fds_after[0] > fds_before[0]:
    failed.append(f"sockets leaked: {fds_before[0]} before, {fds_after[0]} after")
if fds_after[1] > fds_before[1] + FILE_CACHE:
    failed.append(f"file descriptors leaked past the open-file cache: {fds_before[1]} before, {fds_after[1]} after")
if failed:
    print("FAILED:", "; ".join(failed))
    sys.exit(1)
print("ok: no errors, memory's level within 10% of its level after warm-up, no descriptor leak")
