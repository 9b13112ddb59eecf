// Real-browser test of the admin: Debian's chromium, driven by playwright-core, against the real
// `rollcall serve` binary on a temporary copy of the demo catalog with one admin made by
// `rollcall user add`. It signs in through the form, adds an episode with the add form (a guest
// row, an added resource row, a feed, Markdown notes with a preview, and an audio file uploaded
// with the progress bar), lands on the episode list, and checks the feed carries the new episode
// with its measured duration. It also checks that a wrong password is refused on the page. Then
// an officer's whole journey: signs in from a members teaser, copies the personal feed URL, plays
// a members-only episode in the page, gPodder subscribes with the URL and downloads it, and once
// the admin revokes the URL in the officers page, the next refresh and media request fail while
// another officer's URL keeps working. Last, the downloads page: charts, the members-only episode's
// officers, the admin's own listening left out, and a filter the CSV export follows.
//
// Run: cargo build && (cd tests/browser && npm ci && node --test admin.test.mjs)
// Env: ROLLCALL_BIN (default target/debug/rollcall), CHROMIUM (default /usr/bin/chromium).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.ROLLCALL_BIN || path.join(repo, "target/debug/rollcall");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const artifacts = path.join(repo, "target/browser-artifacts");
const PASSWORD = "a long admin password";
const AUDIO_SECS = 60;

let root;
let server;
let serverLog = "";
let base;
let context;
let profile;
let audio;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `fn` in the page until it returns a truthy value. */
function until(page, fn, arg, timeout = 15000) {
  return page.waitForFunction(fn, arg, { timeout, polling: 50 });
}

before(async () => {
  assert.ok(fs.existsSync(bin), `build the server first (cargo build): ${bin} is missing`);
  assert.ok(fs.existsSync(executablePath), `install chromium (apt-get install chromium): ${executablePath}`);
  fs.mkdirSync(artifacts, { recursive: true });
  root = fs.mkdtempSync(path.join(os.tmpdir(), "rollcall-admin-"));
  fs.cpSync(path.join(repo, "episodes"), path.join(root, "episodes"), { recursive: true });
  fs.cpSync(path.join(repo, "feeds"), path.join(root, "feeds"), { recursive: true });
  // A few MB at a high bitrate, so the upload takes long enough to report progress.
  audio = path.join(root, "briefing.mp3");
  const made = spawnSync("ffmpeg", [
    "-v", "error", "-y", "-f", "lavfi", "-i", `sine=frequency=330:duration=${AUDIO_SECS}`,
    "-ac", "2", "-c:a", "libmp3lame", "-b:a", "320k", audio,
  ]);
  assert.equal(made.status, 0, `ffmpeg failed: ${made.stderr}`);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const config = path.join(root, "config.toml");
  fs.writeFileSync(config, `public_url = "${base}"\nlisten = "127.0.0.1:${port}"\n`);
  const added = spawnSync(bin, ["--config", config, "user", "add", "chief", "--role", "admin", "--password-stdin"], {
    input: `${PASSWORD}\n`,
  });
  assert.equal(added.status, 0, `user add failed: ${added.stderr}`);

  server = spawn(bin, ["--config", config, "serve"], {
    env: { ...process.env, RUST_LOG: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stderr.on("data", (d) => (serverLog += d));
  const line = await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.once("exit", (code) => reject(new Error(`rollcall exited with ${code}:\n${serverLog}`)));
    createInterface({ input: server.stdout }).once("line", (l) => resolve(l.trim()));
  });
  assert.equal(line, `listening on ${base}`);

  profile = fs.mkdtempSync(path.join(os.tmpdir(), "rollcall-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
  });
});

after(async () => {
  await context?.close();
  if (server && server.exitCode === null) {
    server.removeAllListeners("exit");
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  for (const dir of [root, profile]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  fs.writeFileSync(path.join(artifacts, "admin-server.log"), serverLog);
});

test("a wrong password is refused on the sign-in page", async () => {
  const page = await context.newPage();
  await page.goto(`${base}/admin`);
  assert.equal(new URL(page.url()).pathname, "/admin/sign-in", "signed out, /admin asks to sign in");
  await page.fill("#name", "chief");
  await page.fill("#password", "not the password");
  await page.click("button[type=submit]");
  await page.waitForSelector("p.error");
  assert.match(await page.textContent("p.error"), /do not match/);
  await page.screenshot({ path: path.join(artifacts, "admin-sign-in-refused.png"), fullPage: true });
  await page.close();
});

test("an admin signs in and adds an episode with the form; the feed has it at once", async () => {
  const page = await context.newPage();
  await page.goto(`${base}/admin/sign-in`);
  await page.fill("#name", "chief");
  await page.fill("#password", PASSWORD);
  await Promise.all([page.waitForURL(`${base}/admin`), page.click("button[type=submit]")]);
  assert.ok(await page.isVisible("text=Defining De-Escalation"), "the episode list shows the demo");

  await page.click("text=Add an episode");
  await page.waitForURL(`${base}/admin/episodes/new`);
  await page.fill("#title", "Officer Wellness Briefing");
  await page.fill("#published", "2016-07-07T09:00:00-04:00");
  await page.fill("#summary", "How officers stay well on the job.");
  await page.fill("input[name=guest_name]", "Ann Lee");
  await page.fill("input[name=guest_role]", "Lieutenant");
  // The first resource row is there; a second one is added with the button.
  await page.fill("input[name=resource_title]", "VALOR Initiative");
  await page.fill("input[name=resource_url]", "https://www.valorforblue.org/");
  await page.click("button[data-add=resource-row]");
  const rows = page.locator("#resources .row.resource");
  assert.equal(await rows.count(), 2);
  await rows.nth(1).locator("input[name=resource_title]").fill("BJA");
  await rows.nth(1).locator("input[name=resource_url]").fill("https://bja.ojp.gov/");
  await page.check("input[name=feed][value=defusing-difficult-encounters]");
  await page.fill("#notes", "Stress **builds** over a career.\n\n<script>alert(1)</script>");
  await page.click("#preview-button");
  await page.waitForSelector("#preview strong");
  assert.equal(await page.textContent("#preview strong"), "builds");
  assert.equal(await page.locator("#preview script").count(), 0, "raw HTML is shown as text");
  await page.setInputFiles("#audio", audio);
  await page.screenshot({ path: path.join(artifacts, "admin-add-form.png"), fullPage: true });

  // Watch the progress bar; sessionStorage keeps what was seen across the navigation after.
  await page.evaluate(() => {
    sessionStorage.setItem("progress", "[]");
    const bar = document.getElementById("upload-progress");
    new MutationObserver(() => {
      const seen = JSON.parse(sessionStorage.getItem("progress"));
      seen.push(Number(bar.value));
      sessionStorage.setItem("progress", JSON.stringify(seen));
    }).observe(bar, { attributes: true });
  });
  await Promise.all([page.waitForURL(/\/admin\?done=/), page.click("#episode-form button[type=submit]")]);
  const progress = JSON.parse(await page.evaluate(() => sessionStorage.getItem("progress")));
  assert.ok(progress.some((v) => v > 0), `the progress bar moved: ${JSON.stringify(progress)}`);
  assert.equal(Math.max(...progress), 100, "and reached 100%");
  assert.match(await page.textContent("p.notice"), /added officer-wellness-briefing/);
  const row = page.locator("tr[data-slug=officer-wellness-briefing]");
  assert.equal(await row.count(), 1);
  assert.match(await row.textContent(), /published/);
  await page.screenshot({ path: path.join(artifacts, "admin-list.png"), fullPage: true });

  const feed = await (await fetch(`${base}/feeds/defusing-difficult-encounters.xml`)).text();
  assert.match(feed, /<title>Officer Wellness Briefing<\/title>/);
  assert.match(feed, new RegExp(`<itunes:duration>${AUDIO_SECS}</itunes:duration>`));
  const toml = fs.readFileSync(path.join(root, "episodes/officer-wellness-briefing/episode.toml"), "utf8");
  assert.match(toml, /url = "https:\/\/bja.ojp.gov\/"/);
  await page.close();
});

test("an officer signs in, copies the personal URL, gPodder subscribes, and revoking ends it", async () => {
  const config = path.join(root, "config.toml");
  const cli = (args, input) => {
    const r = spawnSync(bin, ["--config", config, ...args], { input: input ?? "" });
    assert.equal(r.status, 0, `rollcall ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.toString();
  };
  for (const name of ["patrol", "sergeant"]) {
    cli(["user", "add", name, "--role", "officer", "--password-stdin"], "officer password 1\n");
  }
  const otherUrl = cli(["user", "token", "sergeant"]).trim().split("\n").find((l) => l.endsWith("/feeds/valor-members.xml"));

  // The officer, in a browser of their own.
  const officerProfile = fs.mkdtempSync(path.join(os.tmpdir(), "rollcall-officer-"));
  const officer = await chromium.launchPersistentContext(officerProfile, {
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
  });
  try {
    await officer.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    const page = await officer.newPage();
    await page.goto(`${base}/feeds/valor-members`);
    assert.match(await page.textContent("main"), /Sign in to listen/, "signed out: the teaser");
    await page.click("text=Sign in to listen >> nth=0");
    await page.fill("#name", "patrol");
    await page.fill("#password", "officer password 1");
    await Promise.all([page.waitForURL(`${base}/`), page.click("button[type=submit]")]);
    await page.goto(`${base}/feeds/valor-members`);
    await page.getByLabel("Feed URL", { exact: true }).focus();
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await until(page, () => document.querySelector(".copy-status").textContent === "Feed URL copied.");
    const feedUrl = await page.evaluate(() => navigator.clipboard.readText());
    assert.match(feedUrl, new RegExp(`^${base}/p/[0-9a-f]{64}/feeds/valor-members\\.xml$`));
    // The members-only briefing plays in the page: the session authorizes its media.
    const audio = page.locator("article#roll-call-briefing-defusing-difficult-encounters audio");
    await audio.evaluate((a) => a.play());
    await until(page, () => {
      const a = document.querySelector("article#roll-call-briefing-defusing-difficult-encounters audio");
      return a.currentTime > 0.5;
    });
    await page.screenshot({ path: path.join(artifacts, "members-theme-signed-in.png"), fullPage: true });

    // gPodder subscribes with the copied URL and downloads the briefing.
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "rollcall-gpo-"));
    const gpo = (...args) => spawnSync("gpo", args, { env: { ...process.env, GPODDER_HOME: home, GPODDER_DOWNLOAD_DIR: path.join(home, "downloads") } });
    assert.equal(gpo("subscribe", feedUrl).status, 0);
    assert.equal(gpo("download").status, 0);
    const downloaded = fs.readdirSync(path.join(home, "downloads"), { recursive: true }).map(String);
    assert.ok(downloaded.some((f) => f.endsWith("roll-call-briefing-defusing-difficult-encounters.mp3")), downloaded.join(", "));
    const xml = await (await fetch(feedUrl)).text();
    const media = xml.match(/<enclosure url="([^"]+)"/)[1];
    assert.equal((await fetch(media, { headers: { Range: "bytes=0-9" } })).status, 206);

    // The admin revokes the officer's URL in the admin's own browser.
    const admin = await context.newPage();
    await admin.goto(`${base}/admin/officers`);
    await Promise.all([
      admin.waitForURL(/\/admin\/officers\?done=/),
      admin.click("tr[data-user=patrol] >> text=Revoke URL"),
    ]);
    assert.match(await admin.textContent("p.notice"), /revoked the personal URL of patrol/);
    await admin.screenshot({ path: path.join(artifacts, "admin-officers.png"), fullPage: true });
    await admin.close();
    assert.equal((await fetch(feedUrl)).status, 404, "the next feed refresh fails");
    assert.equal((await fetch(media)).status, 404, "and the next media request");
    const update = gpo("update");
    assert.match(update.stdout.toString() + update.stderr.toString(), /\[FAIL\]/);
    assert.equal((await fetch(otherUrl)).status, 200, "another officer is unaffected");
    fs.rmSync(home, { recursive: true, force: true });
  } finally {
    await officer.close();
    fs.rmSync(officerProfile, { recursive: true, force: true });
  }
});

test("the downloads page charts what was listened to, and leaves the admin's own listening out", async () => {
  const page = await context.newPage();
  // The admin, signed in, listens to a public episode on its page: recorded, never a download.
  await page.goto(`${base}/episodes/defining-de-escalation`);
  await page.locator("audio").first().evaluate((a) => { a.muted = true; return a.play(); });
  await until(page, () => document.querySelector("audio").currentTime > 0.3);

  // Events reach the store within about a second; reload until the admin's requests show.
  let seen = false;
  for (let i = 0; i < 40 && !seen; i++) {
    await page.goto(`${base}/admin/stats`);
    seen = (await page.locator("tr[data-verdict=admin]").count()) > 0;
    if (!seen) await page.waitForTimeout(250);
  }
  assert.ok(seen, "the admin's own listening is recorded as 'admin'");
  // The officer's in-page play and gPodder's download of the members-only briefing.
  const briefing = page.locator("#members tr[data-episode=roll-call-briefing-defusing-difficult-encounters]");
  assert.equal(await briefing.count(), 1);
  assert.equal(await briefing.locator("td.officers").textContent(), "1", "one officer, however many apps");
  const briefingDownloads = Number(await briefing.locator("td").nth(1).textContent());
  assert.ok(briefingDownloads >= 1, `the briefing was downloaded: ${briefingDownloads}`);
  const total = Number(await page.textContent("#total"));
  assert.ok(total >= briefingDownloads);

  // The charts are drawn: inline SVG with a visible bar per episode and per app.
  for (const chart of ["episodes", "apps"]) {
    const bars = page.locator(`#chart-${chart} svg rect`);
    assert.ok((await bars.count()) >= 1, `${chart} has bars`);
    const box = await bars.first().boundingBox();
    assert.ok(box && box.width > 0 && box.height > 0, `${chart}'s first bar is visible: ${JSON.stringify(box)}`);
  }
  await page.screenshot({ path: path.join(artifacts, "admin-stats.png"), fullPage: true });

  // Filtering by episode shows that episode's figure alone, and the exports follow the filter.
  await page.selectOption("#episode", "roll-call-briefing-defusing-difficult-encounters");
  await Promise.all([page.waitForURL(/episode=roll-call-briefing/), page.click(".stats-filter button[type=submit]")]);
  assert.equal(Number(await page.textContent("#total")), briefingDownloads);
  const csvHref = await page.getAttribute("a[href^='/admin/stats.csv']", "href");
  assert.match(csvHref, /episode=roll-call-briefing-defusing-difficult-encounters/);
  const csv = await page.evaluate(async (href) => (await fetch(href)).text(), csvHref);
  assert.match(csv, new RegExp(`^total,downloads,${briefingDownloads},`, "m"));
  await page.close();
});
