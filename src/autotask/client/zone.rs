//! The tenant's zone: looked up from the API user's name (no credentials), looked up once more
//! on a 401 (the tenant may have moved), and the one origin credentials may be sent to.

use std::sync::atomic::Ordering;
use std::time::Instant;

use reqwest::StatusCode;
use serde_json::Value;

use super::response::{interpret, read_response, Outcome};
use super::{AutotaskClient, AutotaskError, API_VERSION};
use crate::locks::{self, lock};
use crate::logging;
use crate::workspace::check_url;

/// What the client keeps of the connection besides the HTTP client.
pub(super) struct Zone {
    pub(super) base_url: String,
    /// The base came from the zone lookup (so a 401 may mean the tenant moved).
    pub(super) discovered: bool,
}

impl AutotaskClient {
    /// On a 401: looks the zone up again, once per client, if the zone was discovered.
    /// True when the base URL changed (so the request may go again).
    pub(super) fn try_rediscover(&self) -> Result<bool, AutotaskError> {
        if !locks::read(&self.zone).discovered {
            return Ok(false);
        }
        let mut done = lock(&self.rediscovered);
        if *done {
            return Ok(false);
        }
        *done = true;
        let base = self.lookup_zone()?;
        let mut zone = locks::write(&self.zone);
        if zone.base_url == base {
            return Ok(false);
        }
        zone.base_url = base;
        Ok(true)
    }

    /// `GET {lookup}v1.0/zoneInformation?user=…` (no credentials): the tenant's base URL.
    pub(super) fn lookup_zone(&self) -> Result<String, AutotaskError> {
        let lookup = &self.zone_lookup_url;
        let url = if lookup.to_ascii_lowercase().contains("zoneinformation") {
            lookup.clone()
        } else {
            format!("{}{API_VERSION}/zoneInformation", with_slash(lookup))
        };
        let request = format!("GET {url}");
        let zone_error = |message: String| AutotaskError::Zone {
            request: request.clone(),
            user: self.credentials.username.clone(),
            message,
        };
        let (status, body) = self.ask_zone(&url).map_err(zone_error)?;
        let text = self.redact(&String::from_utf8_lossy(&body));
        if status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::NOT_FOUND {
            return Err(zone_error(format!(
                "Autotask knows no zone for this user (HTTP {}); is CMAT_AUTOTASK_USERNAME the API user's name?",
                status.as_u16()
            )));
        }
        let answer =
            interpret(&request, status, &text).map_err(|err| zone_error(err.to_string()))?;
        let base = match answer.get("url") {
            Some(Value::String(url)) if !url.trim().is_empty() => url.trim().to_string(),
            _ => return Err(zone_error("the answer holds no zone `url`".into())),
        };
        check_url(&base)
            .map_err(|message| zone_error(format!("the zone URL is refused: {message}")))?;
        Ok(with_slash(&base))
    }

    /// The zone lookup's answer, asked again after a refusal (429) or a server error other
    /// than 500 (Autotask's answer for an unknown user) up to the attempts allowed; `Err` is
    /// the last failure.
    fn ask_zone(&self, url: &str) -> Result<(StatusCode, Vec<u8>), String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_zone_lookup(url) {
                Outcome::Answer { status, body, .. }
                    if !(status == StatusCode::TOO_MANY_REQUESTS
                        || status.is_server_error()
                            && status != StatusCode::INTERNAL_SERVER_ERROR) =>
                {
                    return Ok((status, body))
                }
                other if attempt >= self.options.max_attempts => {
                    return Err(match other {
                        Outcome::NotSent { message, .. } | Outcome::BodyLost { message, .. } => {
                            message
                        }
                        Outcome::Answer { status, .. } => format!("HTTP {}", status.as_u16()),
                    })
                }
                _ => self.backoff(attempt, None),
            }
        }
    }

    /// One zone lookup request, counted and logged.
    fn send_zone_lookup(&self, url: &str) -> Outcome {
        self.sent.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let result = self.http.get(url).query(&[("user", &self.credentials.username)]).send();
        let outcome = match result {
            Ok(response) => read_response(response),
            Err(err) => Outcome::NotSent {
                connect: err.is_connect(),
                message: self.describe_transport(&err),
            },
        };
        let status = match &outcome {
            Outcome::NotSent { .. } => None,
            Outcome::BodyLost { status, .. } | Outcome::Answer { status, .. } => {
                Some(status.as_u16())
            }
        };
        logging::request("GET", url, status, started.elapsed(), None);
        outcome
    }

    /// A `nextPageUrl` must point at the tenant we talk to: the credentials go with it.
    pub(super) fn check_page_url(&self, url: &str) -> Result<(), String> {
        check_url(url)?;
        let base = self.base_url();
        if origin(url).eq_ignore_ascii_case(origin(&base)) {
            Ok(())
        } else {
            Err(format!(
                "`nextPageUrl` points away from the tenant ({url}); refusing to send the credentials there"
            ))
        }
    }
}

/// `scheme://host:port` of a URL.
pub(super) fn origin(url: &str) -> &str {
    let start = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[start..].find('/') {
        Some(i) => &url[..start + i],
        None => url,
    }
}

pub(super) fn with_slash(url: &str) -> String {
    let url = url.trim();
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}
