// Small progressive enhancements: copy the feed URL, seek the player from chapter and transcript
// links, and start at the position in a shareable "#t=90" (seconds) or "#t=1:30" address.
"use strict";

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
