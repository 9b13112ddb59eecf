//! Operations: the `serve` command's ready line, the access log, the header-read and idle timeouts,
//! the connection limit, and graceful shutdown on SIGTERM with a deadline for in-flight downloads.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{get, Demo, Server};

fn with_server_config(demo: &Demo, server: &str) -> rollcall::config::Config {
    demo.write(
        "config.toml",
        &format!(
            "public_url = \"{}\"\n[server]\n{server}\n",
            common::PUBLIC_URL
        ),
    );
    rollcall::config::Config::load(&demo.path("config.toml")).unwrap()
}

/// Starts the real binary and waits for its `listening on` line.
fn spawn(demo: &Demo) -> (Child, SocketAddr, BufReader<std::process::ChildStdout>) {
    spawn_with(demo, Command::new(env!("CARGO_BIN_EXE_rollcall")))
}

/// [`spawn`] with the command to start it given, e.g. under `taskset`.
fn spawn_with(
    demo: &Demo,
    mut command: Command,
) -> (Child, SocketAddr, BufReader<std::process::ChildStdout>) {
    let mut child = command
        .arg("--config")
        .arg(demo.path("config.toml"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr, out)
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn access_log_has_one_line_per_request_without_secrets() {
    let demo = Demo::new();
    let (mut child, addr, _out) = spawn(&demo);
    let catalog = demo.load().unwrap();
    let audio = catalog
        .episode("defining-de-escalation")
        .unwrap()
        .audio
        .url_path
        .clone();
    let r = get(
        addr,
        &format!("{audio}?token=s3cret-value"),
        &[("Range", "bytes=0-99"), ("User-Agent", "AntennaPod/3.4.0")],
    );
    assert_eq!(r.status, 206);
    get(addr, "/feeds/nope.xml", &[]);
    get(
        addr,
        "/p/s3cret-token/feeds/defusing-difficult-encounters.xml",
        &[],
    );
    get(addr, "/p/s3cret-token", &[]);
    let feed = get(addr, "/feeds/defusing-difficult-encounters.xml", &[]);
    assert_eq!(feed.status, 200);
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    let log = common::stderr_of(&mut child);
    let line = log
        .lines()
        .find(|l| l.contains("access") && l.contains(&audio))
        .unwrap_or_else(|| panic!("no access line for the media request:\n{log}"));
    for part in [
        "client=127.0.0.1 ",
        "method=GET",
        "status=206",
        "bytes=100",
        "length=100",
        "range=\"bytes=0-99\"",
        "referer=-",
        "ms=",
        "ua=\"AntennaPod/3.4.0\"",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    assert!(
        !log.contains("s3cret-value"),
        "query strings must never be logged"
    );
    assert!(
        !log.contains("s3cret-token"),
        "personal URL tokens must never be logged"
    );
    assert!(log.contains("path=/p/*/feeds/defusing-difficult-encounters.xml status=404"));
    assert!(log
        .lines()
        .any(|l| l.contains("path=/feeds/nope.xml") && l.contains("status=404")));
    // A rendered feed announces its length too (hyper sets it from the body, not a handler).
    let n = feed.body.len();
    assert!(
        log.lines().any(
            |l| l.contains("path=/feeds/defusing-difficult-encounters.xml")
                && l.contains(&format!("bytes={n} length={n} "))
        ),
        "no feed line with bytes={n} length={n}:\n{log}"
    );
}

/// Generous bounds on waits that should end much sooner: they turn a hang into a failure, and
/// no assertion depends on them.
const HANG: Duration = Duration::from_secs(60);

/// Sends a request on an open connection and reads its response head.
fn healthz_again(s: &mut TcpStream) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A connection that sends a request every 100 ms from its own thread until told to stop;
/// returns the connection and how many requests it had served.
fn keep_busy(
    addr: SocketAddr,
) -> (
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<(TcpStream, u32)>,
) {
    let mut busy = TcpStream::connect(addr).unwrap();
    busy.set_read_timeout(Some(HANG)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let keeper = std::thread::spawn(move || {
        let mut served = 0;
        while rx.try_recv().is_err() {
            assert!(healthz_again(&mut busy).starts_with("HTTP/1.1 200"));
            served += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        (busy, served)
    });
    (tx, keeper)
}

#[test]
fn header_read_timeout_closes_slow_clients() {
    let demo = Demo::new();
    let server = Server::start_with(with_server_config(
        &demo,
        "header_read_timeout_secs = 1\nkeep_alive_timeout_secs = 600",
    ));
    // A connection that keeps sending whole requests; only the slow one may be closed.
    let (stop, keeper) = keep_busy(server.addr);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .expect("the server closes a connection whose headers never finish");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    stop.send(()).unwrap();
    let (mut busy, served) = keeper.join().unwrap();
    assert!(served > 0);
    assert!(
        healthz_again(&mut busy).starts_with("HTTP/1.1 200"),
        "a connection sending whole requests was closed with the slow one"
    );
}

#[test]
fn a_head_sent_a_byte_at_a_time_is_still_cut_off_at_the_header_read_timeout() {
    let demo = Demo::new();
    let server = Server::start_with(with_server_config(
        &demo,
        "header_read_timeout_secs = 1\nkeep_alive_timeout_secs = 600",
    ));
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    // Bytes keep moving, so the idle timeout never fires; the head just never ends. The
    // server must close the connection long before this loop runs out.
    let head = b"GET /healthz HTTP/1.1\r\nX-Slow: "
        .iter()
        .chain([b'a'; 4000].iter());
    let mut closed = false;
    let mut buf = [0u8; 512];
    for &b in head {
        if s.write_all(&[b]).is_err() {
            closed = true;
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => panic!(
                "the server answered a head that never ended: {}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {} // nothing yet
        }
    }
    assert!(
        closed,
        "a client trickling one header byte every 50 ms was never closed"
    );
}

#[test]
fn a_download_that_outlasts_the_header_read_timeout_is_not_cut() {
    let demo = Demo::new();
    let audio = demo.enlarge_audio("defining-de-escalation", 40);
    let server = Server::start_with(with_server_config(
        &demo,
        "header_read_timeout_secs = 1\nkeep_alive_timeout_secs = 600",
    ));
    let path = server.audio_path("defining-de-escalation");
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    // A connection that sends nothing is closed by the header-read timeout: that event, not a
    // clock here, says the timeout has fired while the download was in flight.
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // Read slowly until then; the header-read timeout bounds only the wait for a request head.
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the download was cut after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        match idle.read(&mut [0u8; 1]) {
            Ok(0) => break,
            Ok(_) => panic!("the server sent bytes to a connection that asked nothing"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break, // reset: closed as well
        }
        assert!(
            got.len() < audio.len(),
            "the test read the whole file before the timeout fired; enlarge it"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the download was cut after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        if got.len() - head_end == audio.len() {
            break;
        }
    }
    assert!(got[head_end..] == audio[..], "the body is not the file");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let demo = Demo::new();
    let server = Server::start_with(with_server_config(
        &demo,
        "keep_alive_timeout_secs = 1\nheader_read_timeout_secs = 30",
    ));
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    assert!(healthz_again(&mut s).starts_with("HTTP/1.1 200"));
    // A connection that keeps moving bytes outlives the idle one.
    let (stop, keeper) = keep_busy(server.addr);
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the server to close the idle connection");
    stop.send(()).unwrap();
    let (mut busy, served) = keeper.join().unwrap();
    assert!(served > 0);
    assert!(
        healthz_again(&mut busy).starts_with("HTTP/1.1 200"),
        "the busy connection was closed with the idle one"
    );
}

#[test]
fn connection_limit_queues_extra_clients() {
    let demo = Demo::new();
    let server = Server::start_with(with_server_config(&demo, "max_connections = 1"));
    let mut first = TcpStream::connect(server.addr).unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(first.read(&mut buf).unwrap() > 0);
    // The first connection is still open, so the second waits unserved.
    let mut second = TcpStream::connect(server.addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let err = second.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut all = Vec::new();
    second.read_to_end(&mut all).unwrap();
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
}

/// The real binary serving a large episode, with a download of it under way.
struct Download {
    child: Child,
    addr: SocketAddr,
    stream: TcpStream,
    /// What the client has read so far: the response head and the first bytes.
    got: Vec<u8>,
    /// The episode's whole audio.
    audio: Vec<u8>,
    _out: BufReader<std::process::ChildStdout>,
}

impl Download {
    fn start(demo: &Demo, grace_secs: u64, first_bytes: usize) -> Download {
        let audio = demo.enlarge_audio("defining-de-escalation", 120);
        with_server_config(demo, &format!("shutdown_grace_secs = {grace_secs}"));
        let (child, addr, out) = spawn(demo);
        let catalog = demo.load().unwrap();
        let path = &catalog
            .episode("defining-de-escalation")
            .unwrap()
            .audio
            .url_path;
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut got = vec![0u8; first_bytes];
        stream.read_exact(&mut got).unwrap();
        Download {
            child,
            addr,
            stream,
            got,
            audio,
            _out: out,
        }
    }
}

#[test]
fn sigterm_lets_an_in_flight_download_finish_and_refuses_new_connections() {
    let demo = Demo::new();
    let d = Download::start(&demo, 20, 16 * 1024);
    let (mut child, addr, mut s, mut got) = (d.child, d.addr, d.stream, d.got);
    sigterm(&child);
    // The listener closes while the download (which this client is not reading) is in flight.
    assert!(
        common::eventually(30, || TcpStream::connect(addr).is_err()),
        "the listener stayed open after SIGTERM"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server waits for the download"
    );
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    got.extend_from_slice(&rest);
    let resp = common::parse_response(&got, false).unwrap();
    assert_eq!(resp.body.len(), d.audio.len());
    assert!(resp.body == d.audio);
    assert!(child.wait().unwrap().success());
}

/// Restricted to one CPU (a one-core VM, a container, `taskset`), the server runs tokio's
/// single-thread scheduler, which must serve media, feeds and blocking-pool work (file opens)
/// alike and stop cleanly on SIGTERM with its access lines written.
#[test]
fn on_one_cpu_the_server_serves_on_a_single_thread_scheduler_and_stops_cleanly() {
    let demo = Demo::new();
    let mut taskset = Command::new("taskset");
    taskset
        .args(["-c", "0"])
        .arg(env!("CARGO_BIN_EXE_rollcall"));
    let (mut child, addr, _out) = spawn_with(&demo, taskset);
    let catalog = demo.load().unwrap();
    let audio = &catalog.episode("defining-de-escalation").unwrap().audio;
    let whole = std::fs::read(&audio.path).unwrap();
    let r = get(addr, &audio.url_path, &[("Range", "bytes=100-4195")]);
    assert_eq!(r.status, 206);
    assert!(r.body == whole[100..4196]);
    let feed = get(addr, "/feeds/defusing-difficult-encounters.xml", &[]);
    assert_eq!(feed.status, 200);
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    let log = common::stderr_of(&mut child);
    assert!(
        log.contains("async runtime started cpus=1 scheduler=CurrentThread"),
        "{log}"
    );
    assert_eq!(log.matches("INFO access:").count(), 2, "{log}");
}

#[test]
fn sigterm_deadline_ends_stalled_downloads() {
    let demo = Demo::new();
    let d = Download::start(&demo, 1, 1024);
    let (mut child, mut s) = (d.child, d.stream);
    // The client stops reading; the server must still exit after its grace period, cutting the
    // download off rather than waiting for it.
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let got = d.got.len() + rest.len();
    assert!(
        got < d.audio.len(),
        "the whole download ({got} bytes) arrived, so nothing was cut off"
    );
    // The cut-off download still gets its access line: the server closes the connections left
    // at the deadline and writes their lines before it exits.
    let log = common::stderr_of(&mut child);
    let line = log
        .lines()
        .find(|l| l.contains("INFO access:") && l.contains("/media/") && l.contains("status=200"))
        .unwrap_or_else(|| panic!("no access line for the cut-off download:\n{log}"));
    let bytes: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bytes="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes < d.audio.len() as u64, "{line}");
}
