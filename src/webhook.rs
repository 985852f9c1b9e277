//! The webhook client (`sync --notify`): one POST of the run's summary to a Slack or Teams
//! incoming webhook, beside the Autotask and Cloudmore clients. The URL carries the webhook's
//! secret token, so nothing here ever shows more of it than scheme and host.

/// The URL without its path and query (where webhook secrets live), for messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!("{}://{}/…", parsed.scheme(), parsed.host_str().unwrap_or("?")),
        Err(_) => "(not a URL)".into(),
    }
}

/// POSTs `{"text": …}`, the shape Slack and Teams incoming webhooks both accept.
pub fn post(url: &str, text: &str) -> Result<(), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .connect_timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cmat/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| format!("HTTP client: {err}"))?;
    let body = serde_json::json!({ "text": text });
    // The URL carries the webhook's secret token: errors are shown without it.
    let response = client
        .post(url)
        .json(&body)
        .send()
        .map_err(|err| format!("{}: {}", redact_url(url), err.without_url()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("{} answered HTTP {}", redact_url(url), response.status().as_u16()))
    }
}
