// Real-browser end-to-end test of the website: Debian's chromium, driven by playwright-core, against
// the real `rollcall serve` binary on a temporary copy of the demo catalog. It plays an episode on a
// theme page, seeks to 60% and checks the server answered with 206, downloads an episode and
// compares the bytes, drives the player's own controls and keyboard shortcuts (and checks the bare
// player without JavaScript), reads the link-preview tags, searches, downloads a poster, follows a
// shareable "#t=" link, pages through a long theme, and saves screenshots of every page at desktop
// and 360 px widths under target/browser-artifacts/.
//
// Run: cargo build && (cd tests/browser && npm ci && node --test)
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
const THEME = "/feeds/defusing-difficult-encounters";
const SLUG = "defining-de-escalation";
const LONG_SECS = 1200;
// Older episodes added to the theme, which with the demo's two make a second page of 2.
const OLDER = 50;

let root; // temporary catalog
let server; // the rollcall child process
let serverLog = "";
let base; // http://127.0.0.1:PORT, also the catalog's public_url
let context; // playwright persistent context with a fresh profile
let profile; // that profile's folder

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

/** Starts the server and resolves once it prints its address. */
function startServer(config) {
  server = spawn(bin, ["--config", config, "serve"], {
    env: { ...process.env, RUST_LOG: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stderr.on("data", (d) => (serverLog += d));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.once("exit", (code) => reject(new Error(`rollcall exited with ${code}:\n${serverLog}`)));
    const lines = createInterface({ input: server.stdout });
    lines.once("line", (line) => resolve(line.trim()));
  });
}

async function screenshot(page, name) {
  for (const [label, width] of [["desktop", 1280], ["360px", 360]]) {
    await page.setViewportSize({ width, height: 800 });
    await page.screenshot({ path: path.join(artifacts, `${name}-${label}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

/** Polls `fn` in the page until it returns a truthy value. */
function until(page, fn, arg, timeout = 15000) {
  return page.waitForFunction(fn, arg, { timeout, polling: 50 });
}

before(async () => {
  assert.ok(fs.existsSync(bin), `build the server first (cargo build): ${bin} is missing`);
  assert.ok(fs.existsSync(executablePath), `install chromium (apt-get install chromium): ${executablePath}`);
  fs.mkdirSync(artifacts, { recursive: true });
  root = fs.mkdtempSync(path.join(os.tmpdir(), "rollcall-browser-"));
  fs.cpSync(path.join(repo, "episodes"), path.join(root, "episodes"), { recursive: true });
  fs.cpSync(path.join(repo, "feeds"), path.join(root, "feeds"), { recursive: true });
  // A 20-minute episode (about 19 MB): long enough that the browser cannot have buffered the
  // point it seeks to, so the seek must be answered by a new range request.
  const made = spawnSync("ffmpeg", [
    "-v", "error", "-y", "-f", "lavfi", "-i", `sine=frequency=220:duration=${LONG_SECS}`,
    "-ac", "1", "-c:a", "libmp3lame", "-b:a", "128k", path.join(root, "episodes", SLUG, "audio.mp3"),
  ]);
  assert.equal(made.status, 0, `ffmpeg (apt-get install ffmpeg) failed: ${made.stderr}`);
  fs.writeFileSync(
    path.join(root, "episodes", SLUG, "chapters.json"),
    JSON.stringify({ version: "1.2.0", chapters: [{ startTime: 0, title: "Introduction" }, { startTime: 10, title: "Strategy" }] }),
  );
  // Older copies of an episode, so the theme has a second page while the demo's episodes stay on
  // the first.
  const src = path.join(root, "episodes", "behavioral-response-to-stress-and-fear");
  const toml = fs.readFileSync(path.join(src, "episode.toml"), "utf8");
  const pad = (n) => String(n).padStart(2, "0");
  for (let i = 0; i < OLDER; i++) {
    const n = pad(i);
    const dir = path.join(root, "episodes", `older-${n}`);
    fs.mkdirSync(dir);
    fs.linkSync(path.join(src, "audio.mp3"), path.join(dir, "audio.mp3"));
    fs.copyFileSync(path.join(src, "notes.md"), path.join(dir, "notes.md"));
    const copy = toml
      .replace(/^guid = .*$/m, `guid = "00000000-0000-4000-8000-0000000000${n}"`)
      .replace(/^title = .*$/m, `title = "Older episode ${n}"`)
      .replace(/^published = .*$/m, `published = 2010-${pad(Math.floor(i / 28) + 1)}-${pad((i % 28) + 1)}T09:00:00-05:00`);
    assert.notEqual(copy, toml);
    fs.writeFileSync(path.join(dir, "episode.toml"), copy);
  }
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const config = path.join(root, "config.toml");
  // The demo's own [site]: its title, programme and logo.
  const site = fs.readFileSync(path.join(repo, "config.toml"), "utf8").split(/^\[site\]$/m)[1];
  assert.ok(site && site.includes("logo ="), "config.toml has a [site] section with a logo");
  fs.writeFileSync(config, `public_url = "${base}"\nlisten = "127.0.0.1:${port}"\n[site]${site}`);
  assert.equal(await startServer(config), `listening on ${base}`);

  profile = fs.mkdtempSync(path.join(os.tmpdir(), "rollcall-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 800 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      "--mute-audio",
    ],
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
  fs.writeFileSync(path.join(artifacts, "server.log"), serverLog);
});

test("home page lists the themes", async () => {
  const page = await context.newPage();
  const res = await page.goto(base + "/");
  assert.equal(res.status(), 200);
  assert.equal(await page.title(), "Spotlight on Safety");
  const themes = await page.locator("main h3 a").allTextContents();
  assert.deepEqual(themes, ["Spotlight on Safety: Defusing Difficult Encounters", "Spotlight on Safety", "Spotlight on Safety: Members"]);
  // Artwork loaded (the browser decoded it). The cards' images are loading="lazy", which does not
  // hold up the page's load event, so wait until each one has finished before reading its size.
  await until(page, () => [...document.querySelectorAll("main img")].every((i) => i.complete));
  const widths = await page.locator("main img").evaluateAll((imgs) => imgs.map((i) => i.naturalWidth));
  // The members feed is a teaser: its artwork is a members file, so its card has none.
  assert.ok(widths.length === 2 && widths.every((w) => w > 0), `artwork widths ${widths}`);
  // The programme's logo and name in the header.
  const logo = page.locator("header.site .brand img");
  assert.ok((await logo.evaluate((i) => i.naturalWidth)) > 0, "the logo loaded");
  assert.equal(await page.locator("header.site .programme").textContent(), "VALOR Initiative (demo)");
  await screenshot(page, "home");
  await page.close();
});

test("theme page plays, seeks with a 206, and downloads the exact file", async () => {
  const page = await context.newPage();
  const media = [];
  page.on("response", (r) => {
    if (r.url().includes("/media/")) {
      media.push({ url: r.url(), status: r.status(), range: r.request().headers()["range"] || null });
    }
  });
  const res = await page.goto(base + THEME);
  assert.equal(res.status(), 200);
  await screenshot(page, "theme");

  const article = page.locator(`article#${SLUG}`);
  const audio = article.locator("audio");
  const src = await audio.evaluate((a) => a.currentSrc);
  assert.match(src, new RegExp(`^${base}/media/${SLUG}/[0-9a-f]+/${SLUG}\\.mp3$`));

  // Start playback and wait until it is really playing.
  await audio.evaluate((a) => a.play());
  await until(page, (sel) => {
    const a = document.querySelector(sel);
    return !a.paused && a.currentTime > 0 && a.duration > 0;
  }, `article#${SLUG} audio`);
  const duration = await audio.evaluate((a) => a.duration);
  assert.ok(Math.abs(duration - LONG_SECS) < 2, `the episode lasts ${LONG_SECS} s, got ${duration}`);

  // Seek to 60% and check the position moved there.
  const target = duration * 0.6;
  const requestsBeforeSeek = media.length;
  const landed = await audio.evaluate(
    (a, t) =>
      new Promise((resolve) => {
        a.addEventListener("seeked", () => resolve(a.currentTime), { once: true });
        a.currentTime = t;
      }),
    target,
  );
  assert.ok(Math.abs(landed - target) < 1, `seeked to ${landed}, wanted ${target}`);
  await page.waitForTimeout(500);
  const now = await audio.evaluate((a) => a.currentTime);
  assert.ok(now >= target - 0.5 && now < duration, `position ${now} after seeking to ${target}`);

  // The media element streams with Range requests, and the server answers them with 206.
  const ranged = media.filter((m) => m.url === src && m.range);
  assert.ok(ranged.length > 0, `no Range request for ${src}: ${JSON.stringify(media)}`);
  assert.ok(ranged.every((m) => m.status === 206), JSON.stringify(ranged));
  // The seek itself: a new request starting past half the file, answered with 206.
  const size = fs.statSync(path.join(root, "episodes", SLUG, "audio.mp3")).size;
  const seekRequests = media.slice(requestsBeforeSeek).filter((m) => {
    const start = Number(/^bytes=(\d+)-/.exec(m.range || "")?.[1]);
    return m.url === src && start > size / 2;
  });
  assert.ok(seekRequests.length > 0, `no range request for the seek: ${JSON.stringify(media)}`);
  assert.ok(seekRequests.every((m) => m.status === 206), JSON.stringify(seekRequests));
  assert.match(serverLog, new RegExp(`method=GET path=/media/${SLUG}/[0-9a-f]+/${SLUG}\\.mp3 status=206`));

  // Download: the attachment link delivers exactly the file on disk.
  const [download] = await Promise.all([page.waitForEvent("download"), article.getByRole("link", { name: /^Download/ }).click()]);
  assert.equal(download.suggestedFilename(), `${SLUG}.mp3`);
  const received = fs.readFileSync(await download.path());
  const original = fs.readFileSync(path.join(root, "episodes", SLUG, "audio.mp3"));
  assert.equal(received.length, original.length);
  assert.ok(received.equals(original), "downloaded bytes differ from the file");
  await page.close();
});

test("episode page starts at #t= and chapter links seek the player", async () => {
  const page = await context.newPage();
  const res = await page.goto(`${base}/episodes/${SLUG}#t=15`);
  assert.equal(res.status(), 200);
  await until(page, () => {
    const a = document.getElementById("player");
    return a.readyState >= 1 && Math.abs(a.currentTime - 15) < 0.5;
  });
  await page.getByRole("link", { name: /Strategy/ }).click();
  await until(page, () => {
    const a = document.getElementById("player");
    return !a.paused && a.currentTime >= 10 && a.currentTime < 13;
  });
  assert.equal(new URL(page.url()).hash, "#t=10");
  await page.evaluate(() => document.getElementById("player").pause());
  await screenshot(page, "episode");
  await page.close();
});

test("unknown pages show the styled 404 page", async () => {
  const page = await context.newPage();
  const res = await page.goto(base + "/episodes/no-such-episode");
  assert.equal(res.status(), 404);
  assert.equal(await page.locator("h1").textContent(), "Page not found");
  // Styled: the site stylesheet applied (the header has the brand background).
  const bg = await page.locator("header.site").evaluate((h) => getComputedStyle(h).backgroundColor);
  assert.equal(bg, "rgb(11, 61, 110)");
  await screenshot(page, "not-found");
  await page.close();
});

test("the feed URL copies from the keyboard", async () => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  await page.goto(base + THEME);
  // Keyboard only: tab from the feed URL field to its labelled button and press Enter.
  await page.getByLabel("Feed URL", { exact: true }).focus();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Copy feed URL");
  await page.keyboard.press("Enter");
  await until(page, () => document.querySelector(".copy-status").textContent === "Feed URL copied.");
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, `${base}/feeds/defusing-difficult-encounters.xml`);
  await page.close();
});

test("a theme page prints as a handout", async () => {
  const page = await context.newPage();
  await page.goto(base + THEME);
  await page.emulateMedia({ media: "print" });
  const shown = (sel) => page.locator(sel).first().evaluate((e) => getComputedStyle(e).display !== "none");
  assert.equal(await shown(".listen"), false, "players are hidden on paper");
  assert.equal(await shown(".subscribe-body"), false, "subscribe buttons are hidden on paper");
  assert.equal(await shown(".print-only"), true, "the feed URL is printed");
  const after = await page
    .locator(".resources a")
    .first()
    .evaluate((a) => getComputedStyle(a, "::after").content);
  assert.equal(after, '" (https://www.policeforum.org/)"');
  await page.screenshot({ path: path.join(artifacts, "theme-print.png"), fullPage: true });
  await page.close();
});

test("a long theme pages through its episodes from the keyboard", async () => {
  const page = await context.newPage();
  await page.goto(base + THEME);
  const nav = page.getByRole("navigation", { name: "Pagination" });
  assert.equal(await page.locator("article.episode").count(), 50);
  assert.equal(await nav.getByRole("link", { name: "Newer episodes" }).count(), 0);
  await nav.getByRole("link", { name: "Older episodes" }).focus();
  await Promise.all([page.waitForURL(`${base}${THEME}?page=2`), page.keyboard.press("Enter")]);
  const titles = await page.locator("article.episode h3").allTextContents();
  assert.deepEqual(titles, ["Older episode 01", "Older episode 00"]);
  assert.equal(await nav.getByRole("link", { name: "Older episodes" }).count(), 0);
  await screenshot(page, "theme-page-2");
  // The subscribe controls are on every page; the page links are not printed.
  assert.equal(await page.getByLabel("Feed URL", { exact: true }).inputValue(), `${base}/feeds/defusing-difficult-encounters.xml`);
  await page.emulateMedia({ media: "print" });
  // Hidden elements leave the accessibility tree, so find the nav by its class here.
  assert.equal(await page.locator("nav.pagination").evaluate((e) => getComputedStyle(e).display), "none");
  await page.emulateMedia({ media: "screen" });
  await nav.getByRole("link", { name: "Newer episodes" }).click();
  await page.waitForURL(base + THEME);
  await page.close();
});

test("pages fit a 360 px screen without sideways scrolling", async () => {
  const page = await context.newPage();
  await page.setViewportSize({ width: 360, height: 740 });
  for (const p of ["/", THEME, `${THEME}?page=2`, `/episodes/${SLUG}`]) {
    await page.goto(base + p);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${p} is ${overflow} px wider than the screen`);
  }
  await page.close();
});

test("the player plays, skips, changes speed and answers the keyboard", async () => {
  const page = await context.newPage();
  await page.goto(`${base}/episodes/${SLUG}`);
  const box = page.locator(".player");
  const audio = page.locator("#player");
  // The script replaced the browser's own controls with its own.
  assert.equal(await audio.evaluate((a) => a.hasAttribute("controls")), false);
  const controls = box.getByRole("group");
  const play = controls.getByRole("button", { name: "Play", exact: true });
  await play.click();
  await until(page, () => !document.getElementById("player").paused && document.getElementById("player").currentTime > 0);
  assert.equal(await controls.getByRole("button", { name: "Pause", exact: true }).getAttribute("aria-pressed"), "true");
  const at = () => audio.evaluate((a) => a.currentTime);
  const t0 = await at();
  await controls.getByRole("button", { name: "Forward 30 seconds" }).click();
  const t1 = await at();
  assert.ok(t1 - t0 >= 29.5 && t1 - t0 < 32, `+30 s went from ${t0} to ${t1}`);
  await controls.getByRole("button", { name: "Back 15 seconds" }).click();
  const t2 = await at();
  assert.ok(t1 - t2 >= 13 && t1 - t2 <= 15.5, `-15 s went from ${t1} to ${t2}`);
  // Speed: 1 → 1.25 → 1.5 → 2 → 1.
  const speed = controls.getByRole("button", { name: /^Playback speed/ });
  const rates = [];
  for (let i = 0; i < 4; i++) {
    await speed.click();
    rates.push(await audio.evaluate((a) => a.playbackRate));
  }
  assert.deepEqual(rates, [1.25, 1.5, 2, 1]);
  // The label follows the "ratechange" event, which is queued after the rate is set: wait for it.
  await until(page, () =>
    [...document.querySelectorAll(".player button")].some((b) => b.textContent === "1×"),
  );
  assert.equal(await speed.textContent(), "1×");
  // Keyboard: K pauses and plays, L skips forward, J back; typing in the search box does not.
  await page.locator("body").click({ position: { x: 5, y: 300 } });
  await page.keyboard.press("k");
  await until(page, () => document.getElementById("player").paused);
  const t3 = await at();
  await page.keyboard.press("l");
  assert.ok((await at()) - t3 >= 29.5, "L skips forward 30 s");
  await page.keyboard.press("j");
  const t4 = await at();
  assert.ok(Math.abs(t4 - (t3 + 15)) < 1, `J went back to ${t4}`);
  await page.keyboard.press("k");
  await until(page, () => !document.getElementById("player").paused);
  await page.keyboard.press("k");
  await until(page, () => document.getElementById("player").paused);
  // The position display follows the audio.
  const time = await box.locator(".time").textContent();
  assert.match(time, /^\d+:\d\d \/ 20:00$/);
  await page.close();
});

test("without JavaScript the player is the browser's own", async () => {
  // A second browser profile with scripts off.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rollcall-nojs-"));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath,
    headless: true,
    javaScriptEnabled: false,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--mute-audio", "--no-first-run"],
  });
  try {
    const page = await ctx.newPage();
    await page.goto(`${base}/episodes/${SLUG}`);
    assert.equal(await page.locator("#player").evaluate((a) => a.hasAttribute("controls")), true);
    assert.equal(await page.locator(".player .controls").count(), 0);
    // The download link and the search form work as plain HTML.
    assert.equal(await page.getByRole("link", { name: "Download" }).count(), 1);
    await page.goto(`${base}/`);
    await page.getByLabel("Search episodes").fill("Pisconski");
    await Promise.all([page.waitForURL(/\/search\?q=Pisconski$/), page.getByRole("button", { name: "Search" }).click()]);
    // The guest's episode, and the members teaser that names him (its page is public).
    assert.deepEqual(await page.locator(".result h2 a").allTextContents(), [
      "Defining De-Escalation",
      "Roll-Call Briefing: Defusing Difficult Encounters",
    ]);
    await page.close();
  } finally {
    await ctx.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("link previews carry OpenGraph and Twitter tags, with og:audio only for public audio", async () => {
  const page = await context.newPage();
  await page.goto(`${base}/episodes/${SLUG}`);
  const meta = (sel) => page.locator(sel).getAttribute("content");
  assert.equal(await meta('meta[property="og:title"]'), "Defining De-Escalation");
  assert.equal(await meta('meta[property="og:site_name"]'), "Spotlight on Safety");
  assert.equal(await meta('meta[property="og:url"]'), `${base}/episodes/${SLUG}`);
  assert.equal(await meta('meta[name="twitter:card"]'), "summary");
  const audioUrl = await meta('meta[property="og:audio"]');
  assert.equal(audioUrl, await page.locator("#player").evaluate((a) => a.currentSrc));
  assert.equal(await meta('meta[property="og:audio:type"]'), "audio/mpeg");
  // The preview image is the episode's own artwork, and it loads.
  const image = await meta('meta[property="og:image"]');
  assert.match(image, new RegExp(`^${base}/media/${SLUG}/[0-9a-f]+/cover\\.jpg$`));
  assert.equal(await meta('meta[name="twitter:image"]'), image);
  const res = await page.request.get(image);
  assert.equal(res.status(), 200);
  assert.equal(res.headers()["content-type"], "image/jpeg");
  // A members-only teaser previews its title, but no audio or image.
  await page.goto(`${base}/episodes/roll-call-briefing-defusing-difficult-encounters`);
  assert.equal(await meta('meta[property="og:title"]'), "Roll-Call Briefing: Defusing Difficult Encounters");
  assert.equal(await page.locator('meta[property="og:audio"]').count(), 0);
  assert.equal(await page.locator('meta[property="og:image"]').count(), 0);
  assert.equal(await page.getByRole("link", { name: "Sign in to listen" }).count(), 1);
  await screenshot(page, "episode-teaser");
  await page.goto(`${base}/feeds/valor-members`);
  await screenshot(page, "theme-teaser");
  await page.close();
});

test("search finds episodes from the home page", async () => {
  const page = await context.newPage();
  await page.goto(base + "/");
  await page.getByLabel("Search episodes").fill("Travis County");
  await page.keyboard.press("Enter");
  await page.waitForURL(`${base}/search?q=Travis+County`);
  // The episode itself, then this test's 50 older copies of it; the page shows the first 50.
  const titles = await page.locator(".result h2 a").allTextContents();
  assert.equal(titles[0], "Behavioral Response to Stress and Fear");
  assert.equal(titles.length, 50);
  assert.ok(titles.slice(1).every((t) => t.startsWith("Older episode ")), titles.join());
  assert.equal(await page.getByRole("status").textContent(), "51 episodes match “Travis County”; the first 50 are shown.");
  assert.deepEqual(await page.locator(".result").first().locator("mark").allTextContents(), ["Travis", "County"]);
  assert.equal(await page.getByLabel("Search episodes").inputValue(), "Travis County");
  await screenshot(page, "search");
  await page.close();
});

test("a poster downloads as a file, with its thumbnail shown", async () => {
  const page = await context.newPage();
  await page.goto(base + THEME);
  const list = page.locator(".printables li");
  assert.equal(await list.count(), 3);
  // Thumbnails load lazily: scroll to them, then wait for all three.
  await page.locator(".printables").scrollIntoViewIfNeeded();
  await until(page, () => [...document.querySelectorAll(".printables img")].every((i) => i.complete && i.naturalWidth > 0));
  await screenshot(page, "theme-printables");
  const widths = await page.locator(".printables img").evaluateAll((imgs) => imgs.map((i) => i.naturalWidth));
  assert.ok(widths.every((w) => w > 100), `thumbnails ${widths}`);
  const link = page.getByRole("link", { name: /Keep Calm and De-Escalate/ });
  const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
  assert.equal(download.suggestedFilename(), "keep-calm-and-de-escalate.pdf");
  const received = fs.readFileSync(await download.path());
  const original = fs.readFileSync(path.join(root, "feeds/defusing-difficult-encounters/keep-calm-and-de-escalate.pdf"));
  assert.ok(received.equals(original), "the poster's bytes");
  // The theme's own resources, and the directory links beside the subscribe buttons.
  assert.equal(await page.getByRole("heading", { name: "Resources Available" }).count(), 1);
  assert.equal(await page.locator(".resources.available li").count(), 6);
  assert.equal(await page.locator(".subscribe .directories a").count(), 3);
  await page.close();
});
