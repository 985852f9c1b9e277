//! A small HTTP/1.1 transport on std: one thread per connection, keep-alive, Content-Length and
//! chunked bodies, `Expect: 100-continue`.
//!
//! tiny_http 0.12 was the first choice, but its internal connection pool loses wake-ups when
//! several connections arrive at once (a stale "waiting threads" count), so a burst of parallel
//! requests, exactly what the concurrency-cap tests make, could leave connections unserved
//! until the client timed out. Owning the socket also lets the "commit then drop" fault really
//! close the connection without a response.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A parsed request.
pub struct RawRequest {
    pub method: String,
    /// Path and query string, as sent.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Result<Vec<u8>, String>,
}

/// What the application answers.
pub enum Reply {
    Json(u16, String),
    /// Close the connection without sending anything.
    Drop,
}

const POLL: Duration = Duration::from_millis(100);
const IDLE_LIMIT: Duration = Duration::from_secs(60);
const READ_LIMIT: Duration = Duration::from_secs(30);
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Accepts connections until `stop`, serving each on its own thread (at most `max_connections`
/// at once; further connections wait in the listen backlog).
pub fn serve(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    max_connections: usize,
    app: Arc<dyn Fn(RawRequest) -> Reply + Send + Sync>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let active = Arc::new(AtomicUsize::new(0));
    Ok(std::thread::spawn(move || {
        let mut connections: Vec<JoinHandle<()>> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            if active.load(Ordering::SeqCst) >= max_connections.max(1) {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            match listener.accept() {
                Ok((stream, _)) => {
                    let (stop, app, active) = (stop.clone(), app.clone(), active.clone());
                    active.fetch_add(1, Ordering::SeqCst);
                    connections.retain(|c| !c.is_finished());
                    connections.push(std::thread::spawn(move || {
                        connection(stream, &stop, app.as_ref());
                        active.fetch_sub(1, Ordering::SeqCst);
                    }));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        for c in connections {
            let _ = c.join();
        }
    }))
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads up to and including `\n`, waiting through read timeouts while `keep_waiting` says so.
fn read_line(
    reader: &mut BufReader<TcpStream>,
    keep_waiting: &dyn Fn() -> bool,
) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return None,
            Ok(_) if line.ends_with(b"\n") => return Some(line),
            Ok(_) => {}
            Err(e) if timed_out(&e) && keep_waiting() => {}
            Err(_) => return None,
        }
        if line.len() > MAX_HEADER_BYTES {
            return None;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

fn connection(
    stream: TcpStream,
    stop: &AtomicBool,
    app: &(dyn Fn(RawRequest) -> Reply + Send + Sync),
) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut writer = stream;
    let mut reader = BufReader::new(read_half);
    loop {
        // Wait for a request line, closing when idle too long or stopping.
        let _ = reader.get_ref().set_read_timeout(Some(POLL));
        let idle_since = Instant::now();
        let waiting = || !stop.load(Ordering::SeqCst) && idle_since.elapsed() < IDLE_LIMIT;
        let Some(line) = read_line(&mut reader, &waiting) else {
            return;
        };
        let line = String::from_utf8_lossy(&line).trim().to_string();
        if line.is_empty() {
            continue;
        }
        let started = Instant::now();
        let reading = || !stop.load(Ordering::SeqCst) && started.elapsed() < READ_LIMIT;
        let mut parts = line.split_whitespace();
        let (Some(method), Some(url), version) = (parts.next(), parts.next(), parts.next()) else {
            write_reply(&mut writer, 400, "{\"errors\":[\"Malformed request line.\"]}", true);
            return;
        };
        let http10 = version == Some("HTTP/1.0");
        let mut headers = Vec::new();
        let mut header_bytes = 0;
        loop {
            let Some(raw) = read_line(&mut reader, &reading) else {
                return;
            };
            header_bytes += raw.len();
            if header_bytes > MAX_HEADER_BYTES {
                write_reply(&mut writer, 400, "{\"errors\":[\"Headers too large.\"]}", true);
                return;
            }
            let text = String::from_utf8_lossy(&raw).trim_end_matches(['\r', '\n']).to_string();
            if text.is_empty() {
                break;
            }
            if let Some((name, value)) = text.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        let close = match header("Connection") {
            Some(v) if v.contains("close") => true,
            Some(v) if v.contains("keep-alive") => false,
            _ => http10,
        };
        if header("Expect").is_some_and(|v| v.contains("100-continue")) {
            let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let body = if header("Transfer-Encoding").is_some_and(|v| v.contains("chunked")) {
            read_chunked(&mut reader, &reading)
        } else {
            match header("Content-Length").map(|v| v.trim().parse::<usize>()) {
                None => Ok(Vec::new()),
                Some(Ok(n)) if n <= 64 * 1024 * 1024 => read_exact(&mut reader, n, &reading),
                Some(_) => Err("Bad Content-Length.".to_string()),
            }
        };
        let broken = body.is_err();
        let request =
            RawRequest { method: method.to_string(), url: url.to_string(), headers, body };
        match app(request) {
            Reply::Json(status, text) => {
                if !write_reply(&mut writer, status, &text, close || broken) || close || broken {
                    return;
                }
            }
            Reply::Drop => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

fn read_exact(
    reader: &mut BufReader<TcpStream>,
    n: usize,
    keep_waiting: &dyn Fn() -> bool,
) -> Result<Vec<u8>, String> {
    let mut body = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        match reader.read(&mut body[filled..]) {
            Ok(0) => return Err("The connection closed before the body was complete.".into()),
            Ok(k) => filled += k,
            Err(e) if timed_out(&e) && keep_waiting() => continue,
            Err(e) => return Err(format!("The request body could not be read: {e}")),
        }
    }
    Ok(body)
}

fn read_chunked(
    reader: &mut BufReader<TcpStream>,
    keep_waiting: &dyn Fn() -> bool,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader, keep_waiting).ok_or("Incomplete chunked body.")?;
        let size_text = String::from_utf8_lossy(&line);
        let size_text = size_text.trim().split(';').next().unwrap_or("");
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| "Bad chunk size.".to_string())?;
        if size == 0 {
            // Trailers up to the blank line.
            loop {
                let trailer = read_line(reader, keep_waiting).ok_or("Incomplete chunked body.")?;
                if trailer == b"\r\n" || trailer == b"\n" {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > 64 * 1024 * 1024 {
            return Err("Body too large.".into());
        }
        body.extend(read_exact(reader, size, keep_waiting)?);
        read_line(reader, keep_waiting).ok_or("Incomplete chunked body.")?;
    }
}

fn write_reply(writer: &mut TcpStream, status: u16, body: &str, close: bool) -> bool {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n{}\r\n",
        reason(status),
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    writer.write_all(head.as_bytes()).is_ok()
        && writer.write_all(body.as_bytes()).is_ok()
        && writer.flush().is_ok()
}
