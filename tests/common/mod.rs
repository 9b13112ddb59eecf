//! Shared test helpers: temporary copies of the demo catalog, and a raw HTTP/1.1 client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rollcall::catalog::{self, Catalog, MeasureCache, Problems, Source};
use rollcall::config::Config;

pub const PUBLIC_URL: &str = "https://podcasts.example.org";

/// The repository root, where the demo catalog lives.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// A temporary copy of the demo catalog (episodes/, feeds/ and config.toml) that a test may edit.
pub struct Demo {
    pub dir: tempfile::TempDir,
}

impl Demo {
    pub fn new() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("episodes"), &dir.path().join("episodes"));
        copy_dir(&repo().join("feeds"), &dir.path().join("feeds"));
        std::fs::write(
            dir.path().join("config.toml"),
            format!("public_url = \"{PUBLIC_URL}\"\n"),
        )
        .unwrap();
        Demo { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Replaces the first occurrence of `from` in a file, failing if it is absent.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// Makes an episode's audio `times` times longer (MP3 frames concatenate), so a response
    /// outlasts the socket buffers; returns the new bytes.
    pub fn enlarge_audio(&self, slug: &str, times: usize) -> Vec<u8> {
        let path = self.path(&format!("episodes/{slug}/audio.mp3"));
        let one = std::fs::read(&path).unwrap();
        let big: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * times)
            .collect();
        std::fs::write(&path, &big).unwrap();
        big
    }

    /// Runs the `rollcall` binary on this catalog's config with `args`.
    pub fn run(&self, args: &[&std::ffi::OsStr]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Creates an account through the real CLI.
    pub fn add_user(&self, name: &str, role: &str, password: &str) {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(["user", "add", name, "--role", role, "--password-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An API token for an existing account, made by the real CLI.
    pub fn api_token(&self, name: &str) -> String {
        let out = self.run(&[
            "token".as_ref(),
            "create".as_ref(),
            "--user".as_ref(),
            name.as_ref(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn config(&self) -> Config {
        Config::for_root(self.root(), PUBLIC_URL)
    }

    pub fn load(&self) -> Result<Catalog, Problems> {
        catalog::load(&Source::from(&self.config()), &MeasureCache::default())
    }

    /// Every problem line, for exact comparisons.
    pub fn problems(&self) -> Vec<String> {
        match self.load() {
            Ok(_) => panic!("expected the catalog to have problems"),
            Err(p) => p.0.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// Everything an exited child process wrote to its piped stderr.
pub fn stderr_of(child: &mut std::process::Child) -> String {
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    log
}

/// Runs ffmpeg with `args`, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (bash .ci/run installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a spoken-length tone of `secs` seconds as MP3 at `path`.
pub fn tone_mp3(path: &Path, secs: f64) {
    tone_mp3_at(path, secs, 32);
}

/// [`tone_mp3`] at `kbps` kbit/s, for a file of a chosen size (`secs * kbps / 8` kB).
pub fn tone_mp3_at(path: &Path, secs: f64, kbps: u32) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={secs}"),
        "-ac",
        "1",
        "-c:a",
        "libmp3lame",
        "-b:a",
        &format!("{kbps}k"),
        path.to_str().unwrap(),
    ]);
}

/// The first line a child process writes to its piped stdout (a server's `listening on …`).
pub fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout is piped")),
        &mut line,
    )
    .unwrap();
    line
}

// ---------------------------------------------------------------------------------------------
// A real server on 127.0.0.1:0, and a raw HTTP/1.1 client that shows exactly what was sent.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A running in-process server; shuts down when dropped.
pub struct Server {
    pub addr: SocketAddr,
    /// Every response's delivery record.
    pub deliveries: std::sync::Arc<rollcall::stats::Deliveries>,
    pub live: std::sync::Arc<rollcall::snapshot::Live>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(demo: &Demo) -> Server {
        Server::start_with(demo.config())
    }

    pub fn start_with(config: Config) -> Server {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listen = "127.0.0.1:0".parse().unwrap();
                let stop = async {
                    let _ = stop_rx.await;
                };
                let options = rollcall::Options {
                    listen,
                    access_log: None,
                };
                rollcall::serve(config, options, stop, |ready| addr_tx.send(ready).unwrap())
                    .await
                    .unwrap();
            });
        });
        let ready = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server started");
        Server {
            addr: ready.addr,
            deliveries: ready.deliveries,
            live: ready.live,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Server {
    /// The URL path of `slug`'s audio in the server's current catalog.
    pub fn audio_path(&self, slug: &str) -> String {
        let snapshot = self.live.snapshot();
        let ep = snapshot
            .catalog
            .episode(slug)
            .expect("an episode of the catalog");
        ep.audio.url_path.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Headers without `date`, for comparing two responses.
    pub fn stable_headers(&self) -> Vec<(String, String)> {
        let mut h: Vec<_> = self
            .headers
            .iter()
            .filter(|(k, _)| k != "date")
            .cloned()
            .collect();
        h.sort();
        h
    }
}

/// Sends raw request bytes on a new connection and reads the response until the server closes.
pub fn raw(addr: SocketAddr, request: &[u8], head: bool) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    parse_response(&buf, head).unwrap_or_else(|| {
        panic!(
            "no HTTP response to {:?}: got {:?}",
            String::from_utf8_lossy(request),
            String::from_utf8_lossy(&buf)
        )
    })
}

pub fn parse_response(buf: &[u8], head: bool) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if head {
        assert!(body.is_empty(), "HEAD response carried a body");
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        b = &b[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// A GET (or other method) with `Host` and `Connection: close` plus `extra` headers.
pub fn request(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)]) -> Resp {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: podcasts.example.org\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes(), method == "HEAD")
}

pub fn get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Resp {
    request(addr, "GET", path, extra)
}

/// Polls `cond` every 50 ms for up to `secs` seconds.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// The path part of an absolute URL from the feeds.
pub fn path_of(url: &str) -> String {
    url.strip_prefix(PUBLIC_URL)
        .expect("URL under public_url")
        .to_owned()
}

/// Drops a file's pages from the page cache, so the next read comes from disk, and checks with
/// util-linux's `fincore` that none stayed (pages still under writeback are not dropped, so it
/// tries again for a while). A test of the disk path must not pass or fail on a cached file.
pub fn evict(path: &std::path::Path) {
    let f = std::fs::File::open(path).unwrap();
    for _ in 0..40 {
        f.sync_all().unwrap();
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        match resident_pages(path) {
            Some(0) => return,
            Some(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            None => panic!(
                "fincore (util-linux) is needed to check the eviction: bash .ci/run installs it"
            ),
        }
    }
    panic!(
        "{} stays in the page cache after fadvise(DONTNEED): the disk path cannot be tested",
        path.display()
    );
}

/// Pages of `path` in the page cache, from `fincore`; `None` if it cannot be run.
fn resident_pages(path: &std::path::Path) -> Option<u64> {
    let out = std::process::Command::new("fincore")
        .args(["--noheadings", "--raw", "--output", "PAGES"])
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Splits pipelined responses by their Content-Length.
pub fn split_responses(mut buf: &[u8], heads: &[bool]) -> Vec<Resp> {
    let mut out = Vec::new();
    for &head in heads {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let r = parse_response(&buf[..end], true).unwrap();
        let len: usize = if head || r.status == 304 {
            0
        } else {
            r.header("content-length").unwrap().parse().unwrap()
        };
        let mut r = r;
        r.body = buf[end..end + len].to_vec();
        out.push(r);
        buf = &buf[end + len..];
    }
    assert!(
        buf.is_empty(),
        "{} stray bytes after the last response",
        buf.len()
    );
    out
}

// ---------------------------------------------------------------------------------------------
// A browser-like HTTP client (curl with a cookie jar), for the admin's pages and forms.

/// A curl session with its own cookie jar.
pub struct Browser {
    pub base: String,
    jar: std::path::PathBuf,
}

/// A response: status, headers (lowercase names) and body.
pub struct Got {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first form's CSRF token on the page.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        self.body[at + 19..at + 19 + 64].to_owned()
    }
}

impl Browser {
    pub fn new(server: &Server, dir: &std::path::Path, name: &str) -> Browser {
        Browser {
            base: format!("http://{}", server.addr),
            jar: dir.join(format!("{name}.jar")),
        }
    }

    pub fn run(&self, args: &[&str]) -> Got {
        let out = std::process::Command::new("curl")
            .args(["-s", "-S", "-i", "-c"])
            .arg(&self.jar)
            .arg("-b")
            .arg(&self.jar)
            .args(args)
            .output()
            .expect("curl must be installed (bash .ci/run installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Got {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    pub fn get(&self, path: &str) -> Got {
        self.run(&[&format!("{}{path}", self.base)])
    }

    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Got {
        let mut args: Vec<String> = Vec::new();
        for (k, v) in form {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        args.push(format!("{}{path}", self.base));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs)
    }

    pub fn sign_in(&self, name: &str, password: &str) -> Got {
        let form = self.get("/admin/sign-in");
        assert_eq!(form.status, 200);
        self.post(
            "/admin/sign-in",
            &[
                ("csrf", &form.csrf()),
                ("name", name),
                ("password", password),
            ],
        )
    }

    pub fn session_cookie(&self) -> Option<String> {
        let jar = std::fs::read_to_string(&self.jar).ok()?;
        jar.lines()
            .filter(|l| l.contains("rollcall_session"))
            .filter_map(|l| l.split('\t').nth(6))
            .find(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

/// The real `rollcall serve` binary on a free port; killed when dropped.
pub struct Running {
    child: std::process::Child,
    pub base: String,
}

impl Running {
    /// Starts `rollcall serve` with public_url equal to the address it listens on, as a real
    /// deployment would have, so clients can follow the feed's absolute URLs.
    pub fn start(demo: &Demo) -> Running {
        Running::start_with(demo, "")
    }

    /// [`Running::start`] with `extra` lines in its config.toml.
    pub fn start_with(demo: &Demo, extra: &str) -> Running {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        demo.write(
            "config.toml",
            &format!("public_url = \"{base}\"\nlisten = \"127.0.0.1:{port}\"\n{extra}"),
        );
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .arg("--config")
            .arg(demo.path("config.toml"))
            .arg("serve")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let line = first_line(&mut child);
        assert_eq!(line.trim(), format!("listening on {base}"));
        Running { child, base }
    }

    /// Stops the server and returns its log.
    pub fn stop(mut self) -> String {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
        stderr_of(&mut self.child)
    }
}

/// A test that fails midway still stops its server.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
