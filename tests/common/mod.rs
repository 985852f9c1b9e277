//! The one helper integration tests use: a temporary workspace and the real `cmat` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestWorkspace {
    pub dir: tempfile::TempDir,
}

impl TestWorkspace {
    pub fn new() -> Self {
        TestWorkspace {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file below the workspace, creating folders.
    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create folders");
        std::fs::write(&path, contents).expect("write file");
        path
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(relative)).expect("read file")
    }

    /// `cmat -w WORKSPACE ARGS…` with a clean environment (no credentials, no colour).
    pub fn cmat(&self, args: &[&str]) -> Run {
        self.cmat_with_env(args, &[])
    }

    pub fn cmat_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cmat"));
        command
            .arg("-w")
            .arg(self.dir.path())
            .args(args)
            .current_dir(self.dir.path());
        for (name, _) in std::env::vars() {
            if name.starts_with("CMAT_") {
                command.env_remove(name);
            }
        }
        command.env("NO_COLOR", "1");
        for (name, value) in env {
            command.env(name, value);
        }
        Run::from(command.output().expect("run cmat"), self.dir.path())
    }
}

/// A finished run, with the workspace path replaced by `[WS]` for stable snapshots.
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output, workspace: &Path) -> Self {
        let redact = |bytes: &[u8]| {
            String::from_utf8_lossy(bytes).replace(&workspace.display().to_string(), "[WS]")
        };
        Run {
            status: output.status.code().unwrap_or(-1),
            stdout: redact(&output.stdout),
            stderr: redact(&output.stderr),
        }
    }
}
