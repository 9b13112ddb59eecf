#!/usr/bin/env python3
"""Writes a synthetic Rollcall catalog for benchmarks.

usage: gen_catalog.py OUT N_EPISODES AUDIO ARTWORK [NAME=FILE ...]
       gen_catalog.py --add OUT SLUG N AUDIO

Every episode has two guests, four resources and show notes of realistic length; its audio is a
hard link to AUDIO (each episode still has its own path). NAME=FILE adds an episode NAME whose audio
is FILE, in a separate feed "big", so the "bench" feed's size depends only on N_EPISODES.
--add writes one more episode into OUT/episodes/SLUG, dated after all others (a minute ago).
"""
import datetime
import os
import shutil
import sys
import uuid

NOTES = """This briefing examines how officers can slow an encounter down, use time as an advantage and
keep assessing the scene while maintaining control. Our guest walks through episode {n}'s case
study, from the first radio call to the after-action review.

## What we cover

- Recognising the signs of stress and fear in yourself and in the person you are talking to
- Creating distance and cover so that time works for you, not against you
- Communication techniques that lower the temperature: tone, pace and listening
- When to call for a crisis intervention team, and what to tell them
- Documenting the encounter so that the next officer learns from it

> "The goal is to resolve the encounter with minimum force or no force at all."

Read the [full guide](https://www.policeforum.org/) and share this episode with your training
officer. Questions from listeners are answered at the end of the episode.
"""


def toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def episode(out, slug, n, audio, feed="bench", at=None):
    d = os.path.join(out, "episodes", slug)
    os.makedirs(d, exist_ok=True)
    guid = uuid.uuid5(uuid.NAMESPACE_URL, "rollcall-bench:" + slug)
    # One episode an hour from 2000 on: 100,000 episodes end in 2011, so every one is released
    # (an episode dated in the future would be scheduled, and withheld from the feeds).
    at = at or datetime.datetime(2000, 1, 1, 9) + datetime.timedelta(hours=n)
    with open(os.path.join(d, "episode.toml"), "w") as f:
        f.write(f"""guid = "{guid}"
title = {toml_str(f"Briefing {n}: Defusing difficult encounters, part {n % 7 + 1}")}
published = {at.strftime("%Y-%m-%dT%H:%M:00")}-05:00
summary = {toml_str(f"Episode {n} of the synthetic benchmark catalog: tactics, communication and safety.")}
feeds = ["{feed}"]

[[guests]]
name = "Jordan Example {n}"
role = "Sergeant"
affiliation = "Example County Sheriff's Office"

[[guests]]
name = "Casey Sample"
role = "Lieutenant (retired)"
affiliation = "Sample City Police Department"
link = "https://example.org/casey"

[[resources]]
title = "An Integrated Approach to De-Escalation and Minimizing Use of Force"
url = "https://www.policeforum.org/"
note = "Police Executive Research Forum report."

[[resources]]
title = "ICAT: Integrating Communications, Assessment, and Tactics"
url = "https://www.policeforum.org/"

[[resources]]
title = "Improving Police Response to Persons Affected by Mental Illness"
url = "https://www.theiacp.org/"
note = "IACP advisory group recommendations."

[[resources]]
title = "Final Report of the President's Task Force on 21st Century Policing"
url = "https://cops.usdoj.gov/"
""")
    with open(os.path.join(d, "notes.md"), "w") as f:
        f.write(NOTES.format(n=n))
    target = os.path.join(d, "audio.mp3")
    if not os.path.exists(target):
        # ext4 allows 65,000 links to one inode: each catalog links to its own copies of the audio,
        # a fresh one for every 50,000 episodes.
        source = audio
        if feed == "bench":
            source = os.path.join(out, f".audio-{n // 50_000}.mp3")
            if not os.path.exists(source):
                shutil.copyfile(audio, source)
        os.link(source, target)


FEED = """title = "{title}"
description = "A synthetic catalog for measuring Rollcall."
author = "Rollcall benchmarks"
language = "en-us"
category = "Government"
artwork = "bench.jpg"
episodes = "tagged"

[owner]
name = "Benchmarks"
email = "bench@example.org"
"""


def main():
    if sys.argv[1] == "--add":
        out, slug, n, audio = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        # Newest of all, and already released: a minute ago (local wall time, written as -05:00
        # like the others, so at most five hours earlier than now in UTC).
        now = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=-5)))
        episode(out, slug, n, audio, at=now.replace(tzinfo=None) - datetime.timedelta(minutes=1))
        return
    out, n, audio, artwork = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    bigs = [a.split("=", 1) for a in sys.argv[5:] if "=" in a]
    os.makedirs(os.path.join(out, "feeds"), exist_ok=True)
    for i in range(n):
        episode(out, f"briefing-{i:06d}", i, audio)
    for name, path in bigs:
        episode(out, name, n + 1, path, feed="big")
    art = os.path.join(out, "feeds", "bench.jpg")
    if not os.path.exists(art):
        os.link(artwork, art)
    with open(os.path.join(out, "feeds", "bench.toml"), "w") as f:
        f.write(FEED.format(title="Benchmark briefings"))
    if bigs:
        with open(os.path.join(out, "feeds", "big.toml"), "w") as f:
            f.write(FEED.format(title="Benchmark large files"))

if __name__ == "__main__":
    main()
