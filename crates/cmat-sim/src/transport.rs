//! The HTTP/1.1 transport: hyper on a tokio runtime of the simulator's own, on its own thread,
//! so blocking callers (tests, the blocking reqwest client in cmat) never run inside it.
//!
//! - `SimOptions::workers` bounds the connections served at once (a semaphore taken before
//!   `accept`, so further connections wait in the listen backlog, as before); the runtime has
//!   at most as many worker threads as the machine has cores (at most 4).
//! - A request the application answers with [`Reply::Drop`] makes the service return an error,
//!   which hyper answers by closing the connection with no HTTP response.
//! - Stopping stops accepting, closes the listener, lets in-flight requests finish (idle
//!   keep-alive connections close at once) and waits at most [`STOP_GRACE`] for them.

#[cfg(not(feature = "faults"))]
use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{oneshot, Semaphore};

/// A request as the application sees it.
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
    /// Any body with its content type, and a `Retry-After` (seconds) when given.
    Raw {
        status: u16,
        text: String,
        content_type: &'static str,
        retry_after: Option<u64>,
    },
    /// Close the connection without sending anything.
    #[cfg(feature = "faults")]
    Drop,
}

/// The application: a request in, a reply out (it may sleep, holding its concurrency slot).
pub type App = Arc<
    dyn Fn(RawRequest) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>
        + Send
        + Sync,
>;

/// A connection waiting this long for a request's head (idle keep-alive included) is closed.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Request bodies larger than this are refused (400).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How long a stop waits for in-flight requests before closing their connections.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The running server: stops (and waits for its thread) when [`Server::stop`] is called.
pub struct Server {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `listener` with `app` until stopped, at most `max_connections` connections at once.
pub fn serve(listener: TcpListener, max_connections: usize, app: App) -> std::io::Result<Server> {
    listener.set_nonblocking(true)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.min(max_connections).clamp(1, 4))
        .thread_name("cmat-sim")
        .enable_io()
        .enable_time()
        .build()?;
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("cmat-sim-server".into())
        .spawn(move || runtime.block_on(run(listener, max_connections, app, stopped)))?;
    Ok(Server { stop: Some(stop), thread: Some(thread) })
}

/// Accepts until stopped (or the handle is gone), then closes the listener and shuts the
/// connections down gracefully.
async fn run(
    listener: TcpListener,
    max_connections: usize,
    app: App,
    stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let graceful = Arc::new(GracefulShutdown::new());
    let accepting = tokio::spawn(accept(listener, max_connections, app, graceful.clone()));
    let _ = stopped.await;
    accepting.abort();
    let _ = accepting.await;
    if let Ok(graceful) = Arc::try_unwrap(graceful) {
        let _ = tokio::time::timeout(STOP_GRACE, graceful.shutdown()).await;
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    max_connections: usize,
    app: App,
    graceful: Arc<GracefulShutdown>,
) {
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: try again shortly.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |request| respond(app.clone(), request));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(IDLE_LIMIT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
}

/// The service's error: the application asked to close the connection without a response.
#[cfg(feature = "faults")]
#[derive(Debug)]
struct Dropped;

#[cfg(feature = "faults")]
type ServiceError = Dropped;
/// Without fault injection every request is answered.
#[cfg(not(feature = "faults"))]
type ServiceError = Infallible;

#[cfg(feature = "faults")]
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection is closed without a response")
    }
}

#[cfg(feature = "faults")]
impl std::error::Error for Dropped {}

async fn respond(
    app: App,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ServiceError> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(e) => Err(format!("The request body could not be read: {e}")),
    };
    let request = RawRequest {
        method: parts.method.as_str().to_string(),
        url: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body,
    };
    match app(request).await {
        Reply::Json(status, text) => Ok(json_response(status, text)),
        Reply::Raw { status, text, content_type, retry_after } => {
            let mut response = json_response(status, text);
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(hyper::header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            Ok(response)
        }
        #[cfg(feature = "faults")]
        Reply::Drop => Err(Dropped),
    }
}

fn json_response(status: u16, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}
