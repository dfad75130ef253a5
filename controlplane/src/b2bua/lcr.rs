//! Least-cost routing from SQL (`controlplane/lcr/schema.sql`): the
//! dialled number's longest matching prefix gives a band, the band's rates
//! order the enabled carriers cheapest first (carriers named by a matching
//! override go before them, in override priority), and each carrier's
//! enabled gateways follow in priority order, skipping those whose OPTIONS
//! pings say they are down.
//!
//! The tables are read whole into memory ([`LcrTable`]) and reloaded
//! periodically, so routing a call costs no database round trip and the
//! B2BUA stays free of I/O. SQLite, PostgreSQL or MariaDB, by URL.

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub id: i64,
    pub carrier: i64,
    pub addr: SocketAddr,
    pub priority: i64,
    /// Digits removed from the front of the number, then `prefix` added.
    pub strip: usize,
    pub prefix: String,
}

/// One place to try a call, in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub uri: String,
    pub addr: SocketAddr,
    pub carrier: String,
    pub gateway: i64,
}

#[derive(Debug, Clone, Default)]
pub struct LcrTable {
    /// Prefix to band.
    numbers: HashMap<String, i64>,
    /// Band to (rate, carrier), cheapest first.
    rates: HashMap<i64, Vec<(f64, i64)>>,
    /// Enabled carriers by id.
    carriers: HashMap<i64, String>,
    /// Carrier to its enabled gateways, by priority.
    gateways: HashMap<i64, Vec<Gateway>>,
    /// Prefix to (priority, carrier).
    overrides: HashMap<String, Vec<(i64, i64)>>,
}

/// The longest key of `map` that `number` starts with.
fn longest<'a, V>(map: &'a HashMap<String, V>, number: &str) -> Option<&'a V> {
    (0..=number.len())
        .rev()
        .filter(|&n| number.is_char_boundary(n))
        .find_map(|n| map.get(&number[..n]))
}

impl LcrTable {
    /// Numbers starting with `prefix` are in `band`.
    pub fn add_number(&mut self, prefix: &str, band: i64) {
        self.numbers.insert(prefix.to_string(), band);
    }

    /// An enabled carrier.
    pub fn add_carrier(&mut self, id: i64, name: &str) {
        self.carriers.insert(id, name.to_string());
    }

    /// `carrier` carries `band` at `rate` (kept cheapest first).
    pub fn add_rate(&mut self, band: i64, carrier: i64, rate: f64) {
        let list = self.rates.entry(band).or_default();
        let at = list.partition_point(|(r, _)| r.total_cmp(&rate).is_le());
        list.insert(at, (rate, carrier));
    }

    /// An enabled gateway of its carrier (kept by priority).
    pub fn add_gateway(&mut self, g: Gateway) {
        let list = self.gateways.entry(g.carrier).or_default();
        let at = list.partition_point(|x| x.priority <= g.priority);
        list.insert(at, g);
    }

    /// Numbers starting with `prefix` try `carrier` first, by `priority`.
    pub fn add_override(&mut self, prefix: &str, carrier: i64, priority: i64) {
        let list = self.overrides.entry(prefix.to_string()).or_default();
        list.push((priority, carrier));
    }

    /// The name of an enabled carrier.
    pub fn carrier_name(&self, id: i64) -> Option<&str> {
        self.carriers.get(&id).map(String::as_str)
    }

    /// Every gateway, for health pings.
    pub fn all_gateways(&self) -> impl Iterator<Item = &Gateway> {
        self.gateways.values().flatten()
    }

    /// The places to try for `number`, best first; `up` says whether a
    /// gateway may be used.
    pub fn route(&self, number: &str, up: impl Fn(i64) -> bool) -> Vec<Candidate> {
        let mut order: Vec<i64> = Vec::new();
        if let Some(o) = longest(&self.overrides, number) {
            let mut o = o.clone();
            o.sort_by_key(|(p, _)| *p);
            order.extend(o.into_iter().map(|(_, c)| c));
        }
        if let Some(band) = longest(&self.numbers, number) {
            for (_, c) in self.rates.get(band).into_iter().flatten() {
                if !order.contains(c) {
                    order.push(*c);
                }
            }
        }
        let mut out = Vec::new();
        for c in order {
            let Some(name) = self.carriers.get(&c) else {
                continue; // disabled or unknown
            };
            for g in self.gateways.get(&c).into_iter().flatten() {
                if !up(g.id) {
                    continue;
                }
                let digits = number.get(g.strip..).unwrap_or_default();
                out.push(Candidate {
                    uri: format!("sip:{}{digits}@{}", g.prefix, g.addr),
                    addr: g.addr,
                    carrier: name.clone(),
                    gateway: g.id,
                });
            }
        }
        out
    }
}

/// The LCR database.
pub struct LcrDb {
    pool: AnyPool,
    /// MySQL/MariaDB write `?` where the others write `$n`.
    mysql: bool,
}

/// Connects to the LCR database, creating the tables if they are missing.
pub async fn connect(url: &str) -> Result<LcrDb, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let url = if url.starts_with("sqlite:") && !url.contains("mode=") {
        format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
    } else {
        url.to_string()
    };
    let pool = AnyPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await?;
    let schema: String = include_str!("../../lcr/schema.sql")
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for stmt in schema.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(stmt).execute(&pool).await?;
    }
    Ok(LcrDb {
        pool,
        mysql: url.starts_with("mysql:") || url.starts_with("mariadb:"),
    })
}

/// Reads the tables. A gateway whose address does not parse is skipped
/// with a warning naming it.
pub async fn load(db: &LcrDb) -> Result<LcrTable, sqlx::Error> {
    let pool = &db.pool;
    let mut t = LcrTable::default();
    for r in sqlx::query("SELECT prefix, band_id FROM numbers")
        .fetch_all(pool)
        .await?
    {
        let prefix: String = r.try_get(0)?;
        t.add_number(&prefix, r.try_get(1)?);
    }
    for r in sqlx::query("SELECT id, name FROM carriers WHERE enabled <> 0")
        .fetch_all(pool)
        .await?
    {
        let name: String = r.try_get(1)?;
        t.add_carrier(r.try_get(0)?, &name);
    }
    for r in sqlx::query("SELECT band_id, carrier_id, rate FROM rates")
        .fetch_all(pool)
        .await?
    {
        t.add_rate(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
    }
    for r in sqlx::query(
        "SELECT id, carrier_id, address, priority, strip, prefix FROM carrier_gateways WHERE enabled <> 0",
    )
    .fetch_all(pool)
    .await?
    {
        let (id, address): (i64, String) = (r.try_get(0)?, r.try_get(2)?);
        let Ok(addr) = address.parse::<SocketAddr>() else {
            tracing::warn!(gateway = id, address, "LCR gateway address is not IP:port; skipped");
            continue;
        };
        let strip: i64 = r.try_get(4)?;
        let g = Gateway {
            id,
            carrier: r.try_get(1)?,
            addr,
            priority: r.try_get(3)?,
            strip: strip.max(0) as usize,
            prefix: r.try_get(5)?,
        };
        t.add_gateway(g);
    }
    for r in sqlx::query("SELECT prefix, carrier_id, priority FROM overrides")
        .fetch_all(pool)
        .await?
    {
        let prefix: String = r.try_get(0)?;
        t.add_override(&prefix, r.try_get(1)?, r.try_get(2)?);
    }
    Ok(t)
}

/// Records gateway health as the pings found it: (gateway, up, when in
/// Unix milliseconds).
pub async fn store_health(db: &LcrDb, health: &[(i64, bool, i64)]) -> Result<(), sqlx::Error> {
    let (del, ins) = if db.mysql {
        (
            "DELETE FROM carrier_gateway_health WHERE gateway_id = ?",
            "INSERT INTO carrier_gateway_health (gateway_id, up, checked_ms) VALUES (?, ?, ?)",
        )
    } else {
        (
            "DELETE FROM carrier_gateway_health WHERE gateway_id = $1",
            "INSERT INTO carrier_gateway_health (gateway_id, up, checked_ms) VALUES ($1, $2, $3)",
        )
    };
    for (id, up, at) in health {
        let mut tx = db.pool.begin().await?;
        sqlx::query(del).bind(*id).execute(&mut *tx).await?;
        sqlx::query(ins)
            .bind(*id)
            .bind(i64::from(*up))
            .bind(*at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(id: i64, carrier: i64, port: u16, priority: i64) -> Gateway {
        Gateway {
            id,
            carrier,
            addr: SocketAddr::from(([192, 0, 2, 1], port)),
            priority,
            strip: 0,
            prefix: String::new(),
        }
    }

    fn table() -> LcrTable {
        let mut t = LcrTable::default();
        t.add_number("44", 1);
        t.add_number("4420", 2);
        t.add_carrier(10, "cheap");
        t.add_carrier(20, "dear");
        t.add_rate(1, 20, 0.02);
        t.add_rate(1, 10, 0.01);
        t.add_rate(2, 10, 0.03);
        t.add_rate(2, 20, 0.005);
        t.add_gateway(gw(2, 10, 5002, 1));
        t.add_gateway(gw(1, 10, 5001, 0));
        t.add_gateway(gw(3, 20, 5003, 0));
        t
    }

    #[test]
    fn longest_prefix_then_cheapest_carrier_then_gateway_priority() {
        let t = table();
        let ids = |n: &str| {
            t.route(n, |_| true)
                .iter()
                .map(|c| c.gateway)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("447700"), [1, 2, 3]);
        assert_eq!(ids("442071"), [3, 1, 2], "the longer prefix's band wins");
        assert!(ids("33").is_empty());
        assert_eq!(
            t.route("4477", |g| g != 1)[0].gateway,
            2,
            "a down gateway is skipped"
        );
        assert_eq!(t.route("4477", |_| true)[0].uri, "sip:4477@192.0.2.1:5001");
    }

    #[test]
    fn overrides_go_first_and_disabled_carriers_never() {
        let mut t = table();
        t.add_override("447", 20, 0);
        let ids: Vec<i64> = t
            .route("44770", |_| true)
            .iter()
            .map(|c| c.gateway)
            .collect();
        assert_eq!(ids, [3, 1, 2]);
        t.carriers.remove(&20);
        let ids: Vec<i64> = t
            .route("44770", |_| true)
            .iter()
            .map(|c| c.gateway)
            .collect();
        assert_eq!(ids, [1, 2]);
    }
}
