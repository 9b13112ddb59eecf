//! The admin API's request parsing, reached through axum's extractor and a running server.

use super::*;

/// Reads `multipart/form-data` bodies with axum's extractor, as the admin does.
pub struct MultipartDrain {
    runtime: tokio::runtime::Runtime,
}

/// The boundary [`MultipartDrain::drain`] declares.
pub const BOUNDARY: &str = "FUZZBOUNDARY";

/// One part [`MultipartDrain::drain`] read: its name, file name and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: Option<String>,
    pub file_name: Option<String>,
    pub len: usize,
}

impl Default for MultipartDrain {
    fn default() -> MultipartDrain {
        MultipartDrain {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime starts"),
        }
    }
}

impl MultipartDrain {
    /// Reads every part of `body`, sent as `multipart/form-data; boundary=FUZZBOUNDARY`.
    pub fn drain(&self, body: &[u8]) -> Result<Vec<Part>, String> {
        use axum::extract::FromRequest;
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/admin/api/episodes")
            .header(
                axum::http::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(axum::body::Body::from(body.to_vec()))
            .expect("a valid request");
        self.runtime.block_on(async move {
            let mut multipart = axum::extract::Multipart::from_request(request, &())
                .await
                .map_err(|e| e.to_string())?;
            let mut parts = Vec::new();
            while let Some(mut field) = multipart.next_field().await.map_err(|e| e.to_string())? {
                let mut part = Part {
                    name: field.name().map(str::to_owned),
                    file_name: field.file_name().map(str::to_owned),
                    len: 0,
                };
                while let Some(chunk) = field.chunk().await.map_err(|e| e.to_string())? {
                    part.len += chunk.len();
                }
                parts.push(part);
            }
            Ok(parts)
        })
    }
}

/// A running server over a [`TempCatalog`], with an admin account and its API token, that
/// answers requests sent with [`AdminServer::send`] on one kept-alive connection.
pub struct AdminServer {
    addr: SocketAddr,
    token: String,
    connection: Mutex<Option<TcpStream>>,
    /// Kept for its folder, which the server uses.
    _catalog: TempCatalog,
}

/// A response: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl AdminServer {
    /// Starts the server on 127.0.0.1 in a thread of its own; it runs until the process exits.
    pub fn start(audio: &[u8], artwork: &[u8]) -> AdminServer {
        let catalog = TempCatalog::new(audio, artwork);
        let mut config = crate::config::Config::for_root(catalog.root(), PUBLIC_URL);
        config.measurement.enabled = false;
        let store = crate::store::Store::open(&config.database).expect("the store opens");
        let hash = crate::access::new_account("fuzz-admin", "fuzz admin password")
            .expect("a valid account");
        store
            .add_user("fuzz-admin", crate::access::Role::Admin, &hash)
            .expect("the account is added");
        let token = crate::access::Secret::generate();
        store
            .add_api_token("fuzz-admin", &token.hash())
            .expect("the token is added");
        drop(store);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime starts");
            let options = crate::Options {
                listen: "127.0.0.1:0".parse().expect("an address"),
                access_log: None,
            };
            runtime
                .block_on(crate::serve(
                    config,
                    options,
                    std::future::pending(),
                    |ready| {
                        let _ = ready_tx.send(ready.addr);
                    },
                ))
                .expect("the server runs");
        });
        let addr = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server starts");
        AdminServer {
            addr,
            token: token.expose().to_owned(),
            connection: Mutex::new(None),
            _catalog: catalog,
        }
    }

    /// Sends one request with the admin's token and returns the response. Panics if the server
    /// does not answer within 10 seconds.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n",
            self.token,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        // A kept-alive connection the server has closed fails at once: try a fresh one.
        for attempt in 0..2 {
            let stream = match connection.take() {
                Some(s) if attempt == 0 => s,
                _ => {
                    let s = TcpStream::connect(self.addr).expect("the server accepts");
                    s.set_read_timeout(Some(Duration::from_secs(10)))
                        .expect("a socket option");
                    s
                }
            };
            match exchange(stream, &request) {
                Ok((reply, Some(stream))) => {
                    *connection = Some(stream);
                    return reply;
                }
                Ok((reply, None)) => return reply,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    panic!("no response within 10 s to {method} {path}")
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    panic!("no response within 10 s to {method} {path}")
                }
                Err(_) => {}
            }
        }
        panic!("the server closed two connections without answering {method} {path}");
    }
}

/// Writes `request` and reads one response; returns the stream too if it stays open.
fn exchange(mut stream: TcpStream, request: &[u8]) -> std::io::Result<(Reply, Option<TcpStream>)> {
    use std::io::{Error, ErrorKind};
    stream.write_all(request)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                "closed before a response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, what.to_owned());
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let mut rest = buf[head_end..].to_vec();
    let mut fill = |rest: &mut Vec<u8>, want: usize| -> std::io::Result<()> {
        while rest.len() < want {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "body cut off"));
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    };
    let body = if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        fill(&mut rest, len)?;
        rest[..len].to_vec()
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let line_end = loop {
                if let Some(i) = rest[at..].windows(2).position(|w| w == b"\r\n") {
                    break at + i;
                }
                let want = rest.len() + 1;
                fill(&mut rest, want)?;
            };
            let size_text = String::from_utf8_lossy(&rest[at..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            at = line_end + 2;
            fill(&mut rest, at + size + 2)?;
            body.extend_from_slice(&rest[at..at + size]);
            at += size + 2;
            if size == 0 {
                break;
            }
        }
        body
    } else if status == 204 || status == 304 {
        Vec::new()
    } else {
        stream.read_to_end(&mut rest)?;
        return Ok((Reply { status, body: rest }, None));
    };
    let open = !header("connection").is_some_and(|v| v.contains("close"));
    Ok((Reply { status, body }, open.then_some(stream)))
}
