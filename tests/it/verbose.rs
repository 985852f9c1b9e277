//! `-v`: one line per request on standard error, never a secret; `CMAT_LOG` for more; the
//! request log of a failed apply names the change.

use crate::harness::SimWorkspace;
use cmat_sim::{Fault, SimOptions, WriteFailure};

/// Times vary: `143ms` becomes `[MS]ms`.
fn redact_times(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            line.split(' ')
                .map(|word| match word.strip_suffix("ms") {
                    Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                        "[MS]ms".to_string()
                    }
                    _ => word.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn no_secrets(sw: &SimWorkspace, text: &str) {
    let credentials = sw.sim.credentials();
    assert!(!text.contains(&credentials.secret), "secret leaked: {text}");
    assert!(!text.contains(&credentials.integration_code), "integration code leaked: {text}");
}

#[test]
fn verbose_prints_one_line_per_request_and_never_a_secret() {
    let sw = SimWorkspace::start();
    sw.import("bill-2026-10-01.csv");
    let run = sw.cmat(&["-v", "pull", "autotask"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    no_secrets(&sw, &run.stderr);
    let requests = sw.sim.request_log().len();
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.ends_with("ms")).collect();
    assert_eq!(lines.len(), requests, "one line per request:\n{}", run.stderr);
    // The order of parallel reads varies: the shape of the lines is what is pinned.
    let mut shapes: Vec<String> = lines.iter().map(|l| redact_times(l)).collect();
    shapes.sort();
    shapes.dedup();
    insta::assert_snapshot!("verbose_pull_lines", shapes.join("\n"));

    // Without -v, no request line.
    let quiet = sw.cmat(&["pull", "autotask"]);
    assert!(!quiet.stderr.contains(" 200 "), "{}", quiet.stderr);

    // CMAT_LOG=debug: more, with levels and targets, still no secret.
    let mut env = sw.env();
    env.push(("CMAT_LOG", "debug".to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let debug = sw.ws.cmat_with_env(&["pull", "autotask"], &env);
    assert_eq!(debug.status, 0, "{}", debug.stderr);
    assert!(debug.stderr.contains("DEBUG cmat::http"), "{}", debug.stderr);
    assert!(debug.stderr.contains("INFO cmat::http"), "{}", debug.stderr);
    no_secrets(&sw, &debug.stderr);
}

#[test]
fn a_retried_request_says_why_and_a_failed_write_names_its_change() {
    let sw = SimWorkspace::start_with(SimOptions::default());
    sw.import("bill-2026-10-01.csv");
    sw.pull();
    sw.sim.inject(Fault::Burst429 { count: 1 });
    sw.sim.inject(Fault::FailWrite { nth: 1, mode: WriteFailure::Error500 });
    let run = sw.cmat(&["-v", "apply", "--auto-approve"]);
    assert_eq!(run.status, 1, "{}\n{}", run.stdout, run.stderr);
    no_secrets(&sw, &run.stderr);
    // Which read meets the 429 and which create fails first vary with the threads: the paths,
    // the change's ref and its key are redacted for the snapshot, and checked here instead.
    let word = |line: &str, n: usize| line.split(' ').nth(n).unwrap_or_default().to_string();
    let retried: Vec<String> = run
        .stderr
        .lines()
        .filter(|l| l.contains("retry:"))
        .map(|l| redact_times(&l.replacen(&word(l, 1), "[PATH]", 1)))
        .collect();
    let failed_request: Vec<String> =
        run.stderr.lines().filter(|l| l.contains(" 500 ")).map(redact_times).collect();
    let failed: Vec<String> = run
        .stderr
        .lines()
        .filter(|l| l.contains(" failed: "))
        .map(|l| {
            let (reference, key) = (word(l, 0), word(l, 3));
            assert!(reference.starts_with('c') && key.starts_with("(sku:"), "{l}");
            assert!(run.stdout.contains(&reference) || run.stderr.contains(&reference));
            l.replacen(&reference, "[REF]", 1).replacen(&key, "([KEY])", 1)
        })
        .collect();
    insta::assert_snapshot!(
        "verbose_retry_and_failed_write",
        format!("{}\n{}\n{}", retried.join("\n"), failed_request.join("\n"), failed.join("\n"))
    );
}
