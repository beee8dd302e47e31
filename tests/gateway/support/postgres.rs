//! A PostgreSQL server for the store's PostgreSQL backend: `$SMSGW_TEST_POSTGRES`, such as
//! `.ci/run` starts (contrib/postgres/throwaway), where each test gets a fresh database.
//! Without it a test says why and passes, except under `CI=true`, where it fails.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The URL of a new, empty database on the server, or `None` (said once) when there is
/// no server outside CI.
pub(crate) fn database() -> Option<String> {
    let server = server()?;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "smsgw_e2e_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    // One left by an earlier process of the same id (a server that outlived its run)
    // goes first. Two -c: CREATE DATABASE may not share a transaction.
    let output = Command::new(psql())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &server])
        .args(["-c", &format!("DROP DATABASE IF EXISTS {name}")])
        .args(["-c", &format!("CREATE DATABASE {name}")])
        .output()
        .unwrap_or_else(|e| panic!("run psql (the PostgreSQL client): {e}"));
    assert!(
        output.status.success(),
        "create database {name} on {server}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(with_database(&server, &name))
}

/// `$SMSGW_TEST_POSTGRES`, or `None` (said once) when there is none outside CI: whether
/// this machine runs the PostgreSQL tests at all (a test that starts a server of its
/// own asks too).
pub(crate) fn server() -> Option<String> {
    let Ok(server) = std::env::var("SMSGW_TEST_POSTGRES") else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("no SMSGW_TEST_POSTGRES: CI must start PostgreSQL (.ci/run does)");
        }
        static SAID: Once = Once::new();
        // Straight to stderr: the test harness would hide eprintln! output of a passing test.
        SAID.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: no PostgreSQL (set SMSGW_TEST_POSTGRES=postgres://…, or run .ci/run, which starts one)"
            );
        });
        return None;
    };
    Some(server)
}

/// Runs `sql` on the database at `url` with psql: its rows, unaligned (`|` between
/// columns), one a line. For what a test must see at once, without the CLI's listing.
pub(crate) fn query(url: &str, sql: &str) -> String {
    let output = Command::new(psql())
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("run psql (the PostgreSQL client): {e}"));
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The newest server's own psql, else the one on `PATH`.
fn psql() -> PathBuf {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            let psql = entry.path().join("bin/psql");
            psql.exists().then_some((version, psql))
        })
        .collect();
    found.sort();
    found.pop().map_or_else(|| PathBuf::from("psql"), |(_, psql)| psql)
}

/// `url` with its database (the path) replaced by `name`; its query string kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_at = base.find("://").map_or(0, |at| at + 3);
    let server = match base[authority_at..].find('/') {
        Some(slash) => &base[..authority_at + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::{database, psql, with_database};

    #[test]
    fn the_database_is_replaced_in_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
        assert_eq!(
            with_database("postgres://u@h:1/db?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
    }

    /// Each call gives a database of its own, which exists and is empty.
    #[test]
    fn each_call_gives_a_fresh_database() {
        let Some(first) = database() else { return };
        let second = database().expect("the server is still set");
        assert_ne!(first, second);
        for url in [first, second] {
            let output = Command::new(psql())
                .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", &url])
                .args([
                    "-c",
                    "SELECT current_database(), count(*) FROM pg_tables WHERE schemaname = 'public'",
                ])
                .output()
                .expect("run psql");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            let name = url.rsplit('/').next().unwrap();
            assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), format!("{name}|0"));
        }
    }
}
