// Rollcall admin: repeatable rows, a Markdown preview, and uploads with a progress bar.
// Without this script every form still works as a plain HTML form.
"use strict";
(function () {
  const form = document.getElementById("episode-form");
  if (!form) return;

  for (const button of form.querySelectorAll("button[data-add]")) {
    button.addEventListener("click", () => {
      const template = document.getElementById(button.dataset.add);
      const row = template.content.firstElementChild.cloneNode(true);
      button.before(row);
      const first = row.querySelector("input");
      if (first) first.focus();
    });
  }

  const csrf = form.querySelector("input[name=csrf]").value;
  const preview = document.getElementById("preview");
  document.getElementById("preview-button").addEventListener("click", async () => {
    const body = new FormData();
    body.append("csrf", csrf);
    body.append("notes", document.getElementById("notes").value);
    const response = await fetch("/admin/preview", { method: "POST", body: new URLSearchParams(body), credentials: "same-origin" });
    // The server renders Markdown with raw HTML escaped and unsafe links removed.
    preview.innerHTML = response.ok ? await response.text() : "";
    if (!response.ok) preview.textContent = "The preview failed: " + (await response.text());
  });

  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      progress.hidden = false;
      progress.value = Math.round((e.loaded / e.total) * 100);
      status.textContent = "Uploading: " + progress.value + "%";
    });
    xhr.addEventListener("load", () => {
      let reply = {};
      try { reply = JSON.parse(xhr.responseText); } catch (_) { reply = { error: xhr.responseText }; }
      if (xhr.status < 300 && reply.location) {
        window.location.assign(reply.location);
      } else {
        progress.hidden = true;
        status.setAttribute("role", "alert");
        status.textContent = reply.error || ("The server answered " + xhr.status);
      }
    });
    xhr.addEventListener("error", () => {
      progress.hidden = true;
      status.textContent = "The upload was cut off; nothing was changed. Try again.";
    });
    status.textContent = "Uploading…";
    xhr.send(new FormData(form));
  });
})();
