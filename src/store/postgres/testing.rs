//! A fresh database for each test, on the server `SMSGW_TEST_POSTGRES` names.

use tokio_postgres::NoTls;

/// The variable that names a PostgreSQL server for the tests.
const SERVER: &str = "SMSGW_TEST_POSTGRES";

/// The URL of a new, empty database `smsgw_t_<random>` on the test server; `None` (the
/// test returns, and says it skipped) without a server, except in CI, where a missing
/// server is a failure rather than a silent pass.
pub(in crate::store) async fn fresh_database() -> Option<String> {
    let Some(url) = std::env::var(SERVER).ok().filter(|u| !u.is_empty()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {SERVER} is not set: the PostgreSQL tests need a server"
        );
        println!("skipped: set {SERVER}=postgres://… (.ci/run starts one)");
        return None;
    };
    let name = format!("smsgw_t_{}", super::random_hex(6).unwrap());
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("{SERVER}: cannot connect: {e}"));
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("{SERVER}: cannot create a database: {e}"));
    drop(client);
    let _ = connection.await;
    Some(with_database(&url, &name))
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // key=value pairs: a later dbname wins.
        return format!("{url} dbname={name}");
    };
    let (location, query) = rest.split_once('?').map_or((rest, None), |(l, q)| (l, Some(q)));
    let authority = location.split_once('/').map_or(location, |(a, _)| a);
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

#[test]
fn a_url_is_pointed_at_another_database() {
    assert_eq!(
        with_database("postgres://u:p@h:5/db?sslmode=disable", "t"),
        "postgres://u:p@h:5/t?sslmode=disable"
    );
    assert_eq!(with_database("postgresql://h", "t"), "postgresql://h/t");
    assert_eq!(with_database("host=h user=u", "t"), "host=h user=u dbname=t");
}
