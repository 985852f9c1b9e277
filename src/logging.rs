//! Diagnosable runs: `-v/--verbose` prints one line per HTTP request on standard error, and
//! `CMAT_LOG` (an `EnvFilter` spec: `debug`, `cmat::http=debug`, …) gives more.
//!
//! Both HTTP clients (Autotask and Cloudmore) report each request through [`request`], a
//! `tracing` event on the fixed target [`HTTP_TARGET`]; apply reports a failed write, naming the
//! plan change, on [`APPLY_TARGET`]. Nothing here ever sees a header: credentials travel only in
//! headers, and a line holds the method, the path without its query string, the status, the
//! time and the retry reason.

use std::time::{Duration, Instant};

/// The target of the request lines (`-v` shows it at info level).
pub const HTTP_TARGET: &str = "cmat::http";
/// The target of apply's lines (a failed write, naming the change).
pub const APPLY_TARGET: &str = "cmat::apply";

/// Reports one HTTP request: `PATCH Contracts/4410/Services 200 143ms`, or with a retry reason
/// `POST Contracts/query 429 12ms retry: thread threshold`. `status` is None when no answer
/// came (the connection failed). `path` may be a full URL: only its path is shown.
pub fn request(
    method: &str,
    path: &str,
    status: Option<u16>,
    elapsed: Duration,
    retry: Option<&str>,
) {
    tracing::info!(target: HTTP_TARGET, "{}", request_line(method, path, status, elapsed, retry));
}

/// [`request`] for an answer that came: `started` is when the request was sent.
pub fn answered(
    method: &reqwest::Method,
    url: &str,
    status: reqwest::StatusCode,
    started: Instant,
) {
    request(method.as_str(), url, Some(status.as_u16()), started.elapsed(), None);
}

/// The text of a request line (see [`request`]).
pub fn request_line(
    method: &str,
    path: &str,
    status: Option<u16>,
    elapsed: Duration,
    retry: Option<&str>,
) -> String {
    let status = status.map_or_else(|| "-".to_string(), |s| s.to_string());
    let mut line = format!("{method} {} {status} {}ms", display_path(path), elapsed.as_millis());
    if let Some(reason) = retry {
        line.push_str(" retry: ");
        line.push_str(reason);
    }
    line
}

/// A path as a request line shows it: no scheme or host, no query string (a page token or a
/// user name may travel there), and for Autotask nothing before the entity (`…/v1.0/`).
pub fn display_path(path_or_url: &str) -> &str {
    let without_query = path_or_url.split(['?', '#']).next().unwrap_or_default();
    let path = match without_query.find("://") {
        Some(i) => {
            let rest = &without_query[i + 3..];
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        None => without_query,
    };
    let lower = path.to_ascii_lowercase();
    match lower.find("/v1.0/") {
        Some(i) => &path[i + "/v1.0/".len()..],
        None => path,
    }
}

/// Installs the subscriber for a command: `verbose` shows the request lines (and apply's) as
/// bare lines; `CMAT_LOG`, when set, is a filter spec and lines carry time, level and target.
/// Without either, nothing is installed and nothing is printed.
pub fn install(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let spec = std::env::var("CMAT_LOG").ok().filter(|spec| !spec.trim().is_empty());
    if !verbose && spec.is_none() {
        return;
    }
    let mut filter = EnvFilter::builder()
        .with_default_directive(tracing::level_filters::LevelFilter::OFF.into())
        .parse_lossy(spec.as_deref().unwrap_or(""));
    if verbose {
        for directive in [format!("{HTTP_TARGET}=info"), format!("{APPLY_TARGET}=info")] {
            if let Ok(directive) = directive.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // A second install (tests calling `main` twice) keeps the first: `try_init` errors are fine.
    let _ = if spec.is_some() {
        builder.try_init()
    } else {
        builder.without_time().with_level(false).with_target(false).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_holds_method_path_status_time_and_retry_reason() {
        let ms = Duration::from_millis;
        assert_eq!(
            request_line("PATCH", "Contracts/4410/Services", Some(200), ms(143), None),
            "PATCH Contracts/4410/Services 200 143ms"
        );
        assert_eq!(
            request_line(
                "POST",
                "https://webservices5.autotask.net/atservicesrest/v1.0/Contracts/query?paging=abc",
                Some(429),
                ms(12),
                Some("thread threshold")
            ),
            "POST Contracts/query 429 12ms retry: thread threshold"
        );
        assert_eq!(
            request_line(
                "GET",
                "/api/resellers/r1/organizations",
                None,
                ms(5),
                Some("connection failed")
            ),
            "GET /api/resellers/r1/organizations - 5ms retry: connection failed"
        );
        assert_eq!(display_path("http://h:1/x/v1.0/zoneInformation?user=a@b"), "zoneInformation");
        assert_eq!(display_path("https://cm.example/result?sig=SECRET"), "/result");
        assert_eq!(display_path("https://cm.example"), "/");
    }
}
