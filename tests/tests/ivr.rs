//! The IVR's menus from the binary: `tollgate ivr` reading tables shaped
//! as the seeds shape them (with their own `id` and `created_at` columns)
//! from real PostgreSQL and MariaDB, a bad row left out and named, an
//! edit seen on the next read, and a walk through a two-level menu with
//! the real engine; and the demo menus a fresh SQLite file is seeded with.

use serde_json::Value;
use std::process::Command;
use tollgate_tests::process::tollgate_bin;
use tollgate_tests::services::{self, Service};
use tollgate_tests::TempDir;

/// `tollgate ivr ARGS` with `[ivr] url = url`; its stdout.
fn ivr(dir: &TempDir, url: &str, args: &[&str]) -> String {
    let cfg = dir.0.join("tollgate.toml");
    std::fs::write(&cfg, format!("[ivr]\nurl = \"{url}\"\n")).unwrap();
    let out = Command::new(tollgate_bin())
        .arg("ivr")
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .output()
        .expect("run tollgate ivr");
    assert!(
        out.status.success(),
        "tollgate ivr {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn menus(dir: &TempDir, url: &str) -> Value {
    serde_json::from_str(&ivr(dir, url, &["menus", "--json"])).unwrap()
}

/// Two levels: main (1 sales, 2 a SIP URI, 5 a bad action), sales (1 the
/// sales queue, 9 back).
const ROWS: &[&str] = &[
    "INSERT INTO ivr_menus (menu_id, name, welcome_message) VALUES \
     ('main', 'Main', 'prompt:7'), ('sales', 'Sales', 'Sales. Press 1 to wait for an agent.')",
    "INSERT INTO ivr_menu_options (menu_id, digit, action_type, action_value) VALUES \
     ('main', '1', 'menu', 'sales'), ('main', '2', 'transfer', 'sip:desk@192.0.2.9:5060'), \
     ('main', '5', 'dance', 'tango'), ('sales', '1', 'queue', 'sales'), ('sales', '9', 'menu', 'main')",
];

/// The seeds' tables created anew by `create`, filled, read, edited, read
/// again, and walked.
async fn check_server(url: &str, create: [&str; 2]) {
    let dir = TempDir::new("ivr-db");
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    for stmt in [
        "DROP TABLE IF EXISTS ivr_menu_options",
        "DROP TABLE IF EXISTS ivr_menus",
    ]
    .iter()
    .chain(&create)
    .chain(ROWS)
    {
        sqlx::query(stmt).execute(&pool).await.unwrap();
    }
    let m = menus(&dir, url);
    assert_eq!(
        m["left_out"],
        serde_json::json!([
            "ivr_menu_options \"main\" digit \"5\": action_type \"dance\": expected menu, transfer, queue, play or hangup"
        ])
    );
    // Not seeded: the tables had rows.
    let ids: Vec<&str> = m["menus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["main", "sales"]);
    assert_eq!(m["menus"][0]["welcome"], "prompt:7");
    assert_eq!(
        m["menus"][0]["options"]["2"],
        "transfer sip:desk@192.0.2.9:5060"
    );
    sqlx::query(
        "UPDATE ivr_menu_options SET action_type = 'hangup' WHERE menu_id = 'main' AND digit = '5'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let m = menus(&dir, url);
    assert_eq!(m["left_out"], serde_json::json!([]));
    assert_eq!(m["menus"][0]["options"]["5"], "hangup");
    let walk = ivr(&dir, url, &["walk", "main", "19711"]);
    assert!(
        walk.ends_with("then: queue sales\nmenus: main > sales > main > sales\n"),
        "{walk}"
    );
    assert!(
        walk.contains("presses: 7\nplays: Sorry, that is not a valid choice.\n"),
        "{walk}"
    );
}

#[tokio::test]
async fn menus_from_postgres() {
    sqlx::any::install_default_drivers();
    check_server(
        &services::url(Service::Postgres),
        [
            "CREATE TABLE ivr_menus (id SERIAL PRIMARY KEY, menu_id VARCHAR(50) UNIQUE NOT NULL, \
             name VARCHAR(100), welcome_message TEXT NOT NULL, created_at TIMESTAMP DEFAULT NOW())",
            "CREATE TABLE ivr_menu_options (id SERIAL PRIMARY KEY, \
             menu_id VARCHAR(50) REFERENCES ivr_menus(menu_id), digit VARCHAR(1) NOT NULL, \
             action_type VARCHAR(20) NOT NULL, action_value TEXT, created_at TIMESTAMP DEFAULT NOW())",
        ],
    )
    .await;
}

#[tokio::test]
async fn menus_from_mariadb() {
    sqlx::any::install_default_drivers();
    check_server(
        &services::url(Service::Mariadb),
        [
            "CREATE TABLE ivr_menus (id INT AUTO_INCREMENT PRIMARY KEY, menu_id VARCHAR(50) UNIQUE NOT NULL, \
             name VARCHAR(100), welcome_message TEXT NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)",
            "CREATE TABLE ivr_menu_options (id INT AUTO_INCREMENT PRIMARY KEY, \
             menu_id VARCHAR(50), digit VARCHAR(1) NOT NULL, action_type VARCHAR(20) NOT NULL, \
             action_value TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, \
             FOREIGN KEY (menu_id) REFERENCES ivr_menus(menu_id))",
        ],
    )
    .await;
}

#[test]
fn fresh_sqlite_gets_the_demo_menus() {
    let dir = TempDir::new("ivr-lite");
    let url = format!("sqlite://{}/ivr.sqlite", dir.0.display());
    let m = menus(&dir, &url);
    assert_eq!(m["left_out"], serde_json::json!([]));
    assert_eq!(m["menus"][1]["id"], "main");
    assert_eq!(m["menus"][1]["options"]["1"], "transfer 6000");
    let walk = ivr(&dir, &url, &["walk", "main", "3 1 9 t 0"]);
    assert!(
        walk.contains("plays: Your balance is zero.\n")
            && walk.contains("waits 5000 ms\nplays: Sorry, I did not hear a choice.\n")
            && walk.ends_with("then: transfer agent\nmenus: main > billing > main\n"),
        "{walk}"
    );
}
