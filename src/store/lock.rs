//! One writer per workspace: `.cmat/lock`.
//!
//! A writer holds an OS advisory lock on the file (std's `File::try_lock`, `flock` on Linux) for
//! as long as its `Store` lives, and writes into it who it is: pid, command line, when it
//! started. The lock, not the file, is what counts: the OS drops it when the process ends, however
//! it ends (a crash, SIGKILL), so a lock left by a dead process is taken over with no pid check
//! and no race (no "is the pid alive, then delete the file" window in which two could both take
//! it, and no pid reused by another program that would keep the workspace locked forever). The
//! holder's details are there for the message a second writer prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{io_error, StoreError};

/// Who holds (or last held) a workspace's lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    /// The command line, with URLs left out (a webhook URL may carry a token).
    pub command: String,
    pub started_at: DateTime<Utc>,
}

impl LockHolder {
    /// This process.
    pub fn current() -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            command: command_line(std::env::args()),
            started_at: Utc::now(),
        }
    }

    /// The lock file's text (TOML).
    pub fn to_text(&self) -> String {
        format!(
            "pid = {}\ncommand = {}\nstarted_at = \"{}\"\n",
            self.pid,
            toml::Value::String(self.command.clone()),
            self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }

    pub fn from_text(text: &str) -> Option<LockHolder> {
        toml::from_str(text).ok()
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {}, `{}`, since {}",
            self.pid,
            self.command,
            self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

/// `cmat` and its arguments; an argument that is or holds a URL becomes `[URL]`, the workspace
/// stays (it names the folder, and is no secret).
fn command_line(args: impl Iterator<Item = String>) -> String {
    let mut words = Vec::new();
    for (index, arg) in args.enumerate() {
        if index == 0 {
            let name = Path::new(&arg).file_name().map(|n| n.to_string_lossy().into_owned());
            words.push(name.unwrap_or_else(|| "cmat".into()));
        } else if arg.contains("://") {
            match arg.split_once('=') {
                Some((flag, _)) if flag.starts_with("--") => words.push(format!("{flag}=[URL]")),
                _ => words.push("[URL]".into()),
            }
        } else {
            words.push(arg);
        }
    }
    words.join(" ")
}

/// Takes the workspace lock and writes who we are into the lock file, or reports the holder.
pub(super) fn take_lock(lock_path: &Path, db_display: &str) -> Result<File, StoreError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file =
        options.open(lock_path).map_err(io_error(lock_path, "cannot open the lock file"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            // The lock is advisory: the holder's details stay readable.
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(StoreError::Busy {
                holder: LockHolder::from_text(&text),
                path: db_display.to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(err)) => {
            return Err(io_error(lock_path, "cannot lock")(err));
        }
    }
    // Ours now; whatever a dead holder left in the file is replaced.
    let record = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(LockHolder::current().to_text().as_bytes())?;
        file.flush()
    };
    record(&mut file).map_err(io_error(lock_path, "cannot write the lock file"))?;
    Ok(file)
}

/// "pid 1234, `cmat apply`, since …", or what is known when the file could not be read (the
/// holder may be between taking the lock and writing its details).
pub(super) fn describe(holder: &Option<LockHolder>) -> String {
    match holder {
        Some(holder) => holder.to_string(),
        None => "a process whose details are not written yet".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_round_trips_through_the_file_and_urls_are_left_out() {
        let holder = LockHolder {
            pid: 4242,
            command: command_line(
                [
                    "/usr/local/bin/cmat",
                    "sync",
                    "--notify",
                    "https://hooks.example/T0/B0/s3cr3t",
                    "--report=x.html",
                    "--notify=https://hooks.example/s3cr3t",
                ]
                .into_iter()
                .map(String::from),
            ),
            started_at: "2026-11-29T03:18:35Z".parse().unwrap(),
        };
        assert_eq!(holder.command, "cmat sync --notify [URL] --report=x.html --notify=[URL]");
        assert_eq!(LockHolder::from_text(&holder.to_text()), Some(holder.clone()));
        assert_eq!(
            holder.to_string(),
            "pid 4242, `cmat sync --notify [URL] --report=x.html --notify=[URL]`, since 2026-11-29T03:18:35Z"
        );
        assert_eq!(LockHolder::from_text("1234\n"), None, "an old lock file holds a bare pid");
    }
}
