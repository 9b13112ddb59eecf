// Small progressive enhancements over plain HTML: a player with play and pause, -15 s and
// +30 s, speed and keyboard shortcuts over each <audio> (which keeps its native controls when
// this script does not run); copying the feed URL; seeking from chapter and transcript links;
// and starting at the position in a shareable "#t=90" (seconds) or "#t=1:30" address.
"use strict";

const SPEEDS = [1, 1.25, 1.5, 2];
const BACK = 15;
const FORWARD = 30;

function clock(seconds) {
  if (!isFinite(seconds) || seconds < 0) seconds = 0;
  const s = Math.floor(seconds % 60), m = Math.floor(seconds / 60) % 60, h = Math.floor(seconds / 3600);
  const ss = String(s).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function button(label, text, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "button " + cls;
  b.setAttribute("aria-label", label);
  b.textContent = text;
  return b;
}

// The player the keyboard controls: the one last used, or the page's first.
let current = null;

function enhance(box) {
  const audio = box.querySelector("audio");
  if (!audio) return;
  const known = Number(box.dataset.duration) || 0;
  const length = () => (isFinite(audio.duration) && audio.duration > 0 ? audio.duration : known);
  const bar = document.createElement("div");
  bar.className = "controls";
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", audio.getAttribute("aria-label") || "Player");
  const play = button("Play", "Play", "play");
  const back = button(`Back ${BACK} seconds`, `−${BACK} s`, "back");
  const forward = button(`Forward ${FORWARD} seconds`, `+${FORWARD} s`, "forward");
  const speed = button("Playback speed 1×", "1×", "speed");
  const seek = document.createElement("input");
  seek.type = "range";
  seek.className = "seek";
  seek.min = "0";
  seek.step = "1";
  seek.max = String(Math.round(known));
  seek.value = "0";
  seek.setAttribute("aria-label", "Position");
  const time = document.createElement("span");
  time.className = "time";
  time.setAttribute("aria-live", "off");
  bar.append(play, back, seek, forward, speed, time);
  box.append(bar);
  audio.removeAttribute("controls");
  box.classList.add("enhanced");

  const show = () => {
    const playing = !audio.paused && !audio.ended;
    play.textContent = playing ? "Pause" : "Play";
    play.setAttribute("aria-label", playing ? "Pause" : "Play");
    play.setAttribute("aria-pressed", String(playing));
    const total = length();
    seek.max = String(Math.max(1, Math.round(total)));
    if (document.activeElement !== seek) seek.value = String(Math.floor(audio.currentTime));
    seek.setAttribute("aria-valuetext", `${clock(audio.currentTime)} of ${clock(total)}`);
    time.textContent = `${clock(audio.currentTime)} / ${clock(total)}`;
  };
  const jump = (delta) => {
    const total = length();
    let t = audio.currentTime + delta;
    if (total) t = Math.min(t, total);
    audio.currentTime = Math.max(0, t);
    current = audio;
    show();
  };
  play.addEventListener("click", () => {
    current = audio;
    if (audio.paused || audio.ended) audio.play().catch(() => {});
    else audio.pause();
  });
  back.addEventListener("click", () => jump(-BACK));
  forward.addEventListener("click", () => jump(FORWARD));
  speed.addEventListener("click", () => {
    const next = SPEEDS[(SPEEDS.indexOf(audio.playbackRate) + 1) % SPEEDS.length] || 1;
    audio.playbackRate = next;
    audio.defaultPlaybackRate = next;
  });
  audio.addEventListener("ratechange", () => {
    const r = audio.playbackRate;
    speed.textContent = `${r}×`;
    speed.setAttribute("aria-label", `Playback speed ${r}×`);
  });
  seek.addEventListener("input", () => {
    audio.currentTime = Number(seek.value);
    current = audio;
    show();
  });
  audio.addEventListener("play", () => {
    current = audio;
    // One episode at a time.
    document.querySelectorAll("audio").forEach((other) => {
      if (other !== audio) other.pause();
    });
  });
  ["play", "pause", "ended", "timeupdate", "durationchange", "loadedmetadata", "seeked"].forEach((e) =>
    audio.addEventListener(e, show)
  );
  show();
  const keys = document.createElement("p");
  keys.className = "keys meta";
  keys.textContent = `Keys: K or Space play/pause · J back ${BACK} s · L forward ${FORWARD} s`;
  box.append(keys);
}

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
  const audio = current || document.querySelector(".player audio");
  if (!audio) return;
  const key = event.key.toLowerCase();
  const box = audio.closest(".player");
  // Space is the page's own scroll key (and a focused button's click) except on the player.
  if (key === "k" || (key === " " && event.target === document.body)) {
    event.preventDefault();
    box.querySelector(".play").click();
  } else if (key === "j") {
    event.preventDefault();
    box.querySelector(".back").click();
  } else if (key === "l") {
    event.preventDefault();
    box.querySelector(".forward").click();
  }
});

function parseTime(text) {
  if (!/^\d+(:\d{1,2}){0,2}(\.\d+)?$/.test(text)) return null;
  return text.split(":").reduce((acc, part) => acc * 60 + parseFloat(part), 0);
}

function hashTime() {
  const m = /^#t=([0-9:.]+)$/.exec(location.hash);
  return m ? parseTime(m[1]) : null;
}

function seek(audio, seconds, play) {
  const apply = () => {
    audio.currentTime = seconds;
    if (play) audio.play().catch(() => {});
  };
  if (audio.readyState >= 1) apply();
  else audio.addEventListener("loadedmetadata", apply, { once: true });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-player]").forEach(enhance);
  const player = document.getElementById("player");

  document.querySelectorAll("[data-seek]").forEach((link) => {
    link.addEventListener("click", (event) => {
      const audio = player || link.closest("article")?.querySelector("audio");
      if (!audio) return;
      event.preventDefault();
      const seconds = Number(link.dataset.seek);
      history.replaceState(null, "", "#t=" + seconds);
      seek(audio, seconds, true);
    });
  });

  if (player) {
    const start = hashTime();
    if (start !== null) seek(player, start, false);
    window.addEventListener("hashchange", () => {
      const t = hashTime();
      if (t !== null) seek(player, t, true);
    });
  }

  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const input = document.querySelector(button.dataset.copy);
      const status = button.closest("section")?.querySelector(".copy-status");
      let ok = false;
      try {
        await navigator.clipboard.writeText(input.value);
        ok = true;
      } catch (_) {
        input.select();
        ok = document.execCommand && document.execCommand("copy");
      }
      if (status) status.textContent = ok ? "Feed URL copied." : "Select the URL and copy it.";
    });
  });
});
