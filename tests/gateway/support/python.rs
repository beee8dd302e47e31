//! The Python venv of the independent checkers (contrib/*.py): `$SMSGW_PYENV` or
//! `target/pyenv`, as `.ci/run` makes it from contrib/requirements-test.txt. Without it
//! a test says why and passes, except under `CI=true`, where it fails.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The venv's interpreter, or `None` (after saying why) when there is none outside CI.
pub(crate) fn python(check: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("SMSGW_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyenv"));
    let python = venv.join("bin/python");
    if python.exists() {
        return Some(python);
    }
    let why = format!(
        "no Python venv at {} (make it as .ci/run does, from contrib/requirements-test.txt)",
        venv.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    // Straight to stderr: the test harness would hide eprintln! output of a passing test.
    let _ = writeln!(std::io::stderr(), "skipping {check}: {why}");
    None
}

/// Runs `contrib/<script>` with `input` on its standard input; its standard output.
pub(crate) fn run(python: &PathBuf, script: &str, input: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib").join(script);
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write to the script");
    drop(stdin);
    let output = child.wait_with_output().expect("the script's output");
    assert!(
        output.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}
