//! The workspace a user keeps in version control: `cmat.toml`, `mappings/`, `.cmat/state.db`.
//! Reads the connection settings and the credentials (from the environment only).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const CONFIG_FILE: &str = "cmat.toml";
pub use cmat_mapping::MAPPINGS_DIR;
pub const STATE_DIR: &str = ".cmat";
pub const STATE_DB: &str = "state.db";

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Config { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment variable {name} is not set (hint: {hint})")]
    MissingCredential { name: &'static str, hint: &'static str },
}

/// A workspace folder. Paths are derived, never stored twice.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Workspace { root: root.into() }
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    pub fn mappings_dir(&self) -> PathBuf {
        self.root.join(MAPPINGS_DIR)
    }
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }
    pub fn state_db(&self) -> PathBuf {
        self.state_dir().join(STATE_DB)
    }
    /// The Autotask slot delay learned from refusals, kept for the next run (`pacing.rs`).
    pub fn autotask_pacing(&self) -> PathBuf {
        self.state_dir().join("autotask-pacing.json")
    }

    /// Reads `cmat.toml`; a missing file is an empty configuration.
    pub fn config(&self) -> Result<Config, WorkspaceError> {
        let path = self.config_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&path, &text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(WorkspaceError::Read { path, source }),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub autotask: AutotaskConfig,
    #[serde(default)]
    pub cloudmore: CloudmoreConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub apply: ApplyConfig,
}

/// `[apply]`: the four-eyes rule (issue 29).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// `apply` and `sync` write only a saved plan a person approved (`cmat approve`).
    #[serde(default)]
    pub require_approval: bool,
    /// The approver must not be the plan's author (`CMAT_USER` when it was made).
    #[serde(default)]
    pub require_distinct_approver: bool,
}

/// `[sync]`: how the daily job behaves.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// When a bill looks incomplete (dated before the 8th without the NCE lines the month
    /// before had), write nothing and let the next sync try again, instead of posting half a
    /// month. Default false: the warning alone.
    #[serde(default)]
    pub wait_for_nce_data: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AutotaskConfig {
    /// Tenant base URL such as `https://webservices5.autotask.net/atservicesrest/`; looked up
    /// from the user name when absent.
    pub base_url: Option<String>,
    /// Zone lookup service; only tests and the demo change it.
    pub zone_lookup_url: Option<String>,
    /// Share of the hourly request threshold cmat may use before it stops (default 0.5).
    pub max_hourly_share: Option<rust_decimal::Decimal>,
    /// Seconds to let writes of a run that died land before re-reading (default 15).
    pub settle_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloudmoreConfig {
    pub base_url: Option<String>,
    pub reseller_id: Option<String>,
    /// The longest wait for Cloudmore's report task, in seconds (default 900): a task that has
    /// not finished by then is an error, not a pull that hangs a scheduled job.
    pub report_wait_seconds: Option<u64>,
}

impl Config {
    pub fn parse(path: &Path, text: &str) -> Result<Config, WorkspaceError> {
        let config: Config = toml::from_str(text).map_err(|err| {
            let (line, column) =
                err.span().map(|span| line_column(text, span.start)).unwrap_or((1, 1));
            WorkspaceError::Config {
                path: path.to_path_buf(),
                line,
                column,
                message: err.message().to_string(),
            }
        })?;
        for url in [
            &config.autotask.base_url,
            &config.autotask.zone_lookup_url,
            &config.cloudmore.base_url,
        ]
        .into_iter()
        .flatten()
        {
            check_url(url).map_err(|message| match text.find(url.as_str()) {
                // The URL as written (no escapes in it): point at it.
                Some(offset) => {
                    let (line, column) = line_column(text, offset);
                    WorkspaceError::Config { path: path.to_path_buf(), line, column, message }
                }
                None => WorkspaceError::Invalid { path: path.to_path_buf(), message },
            })?;
        }
        Ok(config)
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: a crash
/// leaves the old file or the new one, never half of one (saved plans, CSVs, kept state).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp-cmat");
    let written =
        std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Plain `http://` only to loopback: credentials must never cross a network in clear text.
///
/// The URL is read by the same parser the HTTP client uses, so the host checked is the host
/// connected to: `http://localhost:80@example.com/` is example.com (user info "localhost:80").
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| format!("{url}: not an http(s) URL"))?;
    match parsed.scheme() {
        "https" if parsed.host_str().is_some() => Ok(()),
        "http" if parsed.host_str().is_some_and(is_loopback_host) => Ok(()),
        "http" => Err(format!("{url}: plain http:// is refused except to loopback; use https://")),
        _ => Err(format!("{url}: not an http(s) URL")),
    }
}

/// `localhost`, `127.0.0.0/8` or `[::1]`, as the URL parser normalised them.
fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A secret read from the environment. Its Debug and Display never show the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The only way to the value: call sites are few and easy to audit.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct AutotaskCredentials {
    pub username: String,
    pub secret: Secret,
    pub integration_code: Secret,
}

#[derive(Debug, Clone)]
pub struct CloudmoreCredentials {
    pub username: String,
    pub password: Secret,
    pub client_secret: Secret,
}

fn env_var(name: &'static str, hint: &'static str) -> Result<String, WorkspaceError> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => Err(WorkspaceError::MissingCredential { name, hint }),
    }
}

impl AutotaskCredentials {
    pub fn from_env() -> Result<Self, WorkspaceError> {
        const HINT: &str = "create an API user in Autotask (Admin > Resources > API user) and export its credentials";
        Ok(AutotaskCredentials {
            username: env_var("CMAT_AUTOTASK_USERNAME", HINT)?,
            secret: Secret(env_var("CMAT_AUTOTASK_SECRET", HINT)?),
            integration_code: Secret(env_var("CMAT_AUTOTASK_INTEGRATION_CODE", HINT)?),
        })
    }

    /// True when any of the Autotask variables is set (so `init` may look ids up).
    pub fn present_in_env() -> bool {
        ["CMAT_AUTOTASK_USERNAME", "CMAT_AUTOTASK_SECRET", "CMAT_AUTOTASK_INTEGRATION_CODE"]
            .iter()
            .any(|name| std::env::var_os(name).is_some())
    }
}

impl CloudmoreCredentials {
    pub fn from_env() -> Result<Self, WorkspaceError> {
        const HINT: &str = "use the Cloudmore API user of your reseller account";
        Ok(CloudmoreCredentials {
            username: env_var("CMAT_CLOUDMORE_USERNAME", HINT)?,
            password: Secret(env_var("CMAT_CLOUDMORE_PASSWORD", HINT)?),
            client_secret: Secret(env_var("CMAT_CLOUDMORE_CLIENT_SECRET", HINT)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_refused_except_to_loopback() {
        assert!(check_url("https://webservices5.autotask.net/atservicesrest/").is_ok());
        assert!(check_url("http://127.0.0.1:8080/").is_ok());
        assert!(check_url("http://localhost/").is_ok());
        assert!(check_url("http://[::1]:9/").is_ok());
        assert!(check_url("http://10.0.0.1/").is_err());
        assert!(check_url("http://example.com/").is_err());
        assert!(check_url("ftp://example.com/").is_err());
        // The host is what the HTTP client connects to, not the text before the first ':'.
        assert!(check_url("http://localhost:80@example.com/").is_err());
        assert!(check_url("http://127.0.0.1:1@example.com/").is_err());
        assert!(check_url("http://0.0.0.0:8080/").is_err());
        assert!(check_url("http://127.1:8080/").is_ok());
    }

    #[test]
    fn config_errors_name_line_and_column() {
        let err = Config::parse(Path::new("cmat.toml"), "[autotask]\nbase_url = 3\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cmat.toml:2:"), "{text}");
        let err = Config::parse(
            Path::new("cmat.toml"),
            "[autotask]\n\nbase_url = \"http://example.com/\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("cmat.toml:3:13: "), "{err}");
        let err = Config::parse(Path::new("cmat.toml"), "[autotask]\nbogus = 1\n").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret} {secret:?}"), "*** Secret(***)");
    }
}
