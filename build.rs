//! Names the commit `cmat --version` was built from (`CMAT_GIT_COMMIT`). A build outside a
//! git checkout (a source tarball, `cargo install` from crates.io) has none and says so; a
//! packager can set `CMAT_GIT_COMMIT` themselves.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CMAT_GIT_COMMIT");
    if let Ok(commit) = std::env::var("CMAT_GIT_COMMIT") {
        println!("cargo:rustc-env=CMAT_GIT_COMMIT={commit}");
        return;
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CMAT_GIT_COMMIT={commit}");
    // Built again when HEAD moves: a commit or a checkout writes HEAD's log. Uncommitted edits
    // are not told apart (the script would have to run on every change of every file).
    for dir in [git(&["rev-parse", "--git-dir"]), git(&["rev-parse", "--git-common-dir"])]
        .into_iter()
        .flatten()
    {
        let dir = PathBuf::from(dir);
        for file in ["HEAD", "logs/HEAD", "packed-refs"] {
            if dir.join(file).exists() {
                println!("cargo:rerun-if-changed={}", dir.join(file).display());
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// A git command's trimmed output, or None when git or the repository is missing.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}
