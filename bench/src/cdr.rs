//! `tollgate bench cdr`: how fast CDRs go through the pipeline, with the
//! baselines measured in the same run:
//! - spool appends with `fsync = always` (group commit, many appends in
//!   flight as under call load) against `fsync = never`;
//! - the PostgreSQL sink taking a full spool in batches against one INSERT
//!   transaction per CDR, against Tollgate's batched insert without the
//!   spool, and against PostgreSQL's own limit for the same rows: the rows
//!   the sink wrote, exported and loaded again with `COPY` on as many
//!   connections as the sink writes on ([`floor`]).
//!
//! Every round is kept, with each figure's median and spread. The report
//! is stamped with the build and the machine, PostgreSQL's durability
//! settings and the spool's filesystem ([`facts`]). The CDRs written carry
//! call ids starting `bench-<pid>-` and are deleted from the database
//! afterwards.

mod facts;
mod floor;

use anyhow::{ensure, Context};
use facts::{PgSettings, SpoolFs};
use serde::Serialize;
use sqlx::postgres::PgPool;
use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_cdr::config::SinkKind;
use tollgate_cdr::model::{Cdr, Disposition, HangupBy, Leg, MediaStats, Record};
use tollgate_cdr::sink::sql::{Db, SqlSink};
use tollgate_cdr::spool::{Fsync, Spool, SpoolConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct CdrBenchArgs {
    /// PostgreSQL to write into (its tables are created if missing).
    #[arg(long, default_value = "postgres://voip:voip@127.0.0.1:5432/voip_cdr")]
    pub postgres: String,
    /// CDRs per round.
    #[arg(long, default_value_t = 50_000)]
    pub records: u64,
    /// CDRs for the one-transaction-per-CDR baseline.
    #[arg(long, default_value_t = 2_000)]
    pub baseline_records: u64,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Records per sink delivery.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Appends waiting for the disk at once (concurrent calls ending).
    #[arg(long, default_value_t = 256)]
    pub in_flight: usize,
    /// Where the spools go (removed afterwards).
    #[arg(long, default_value = "/tmp/tollgate-bench-cdr")]
    pub dir: std::path::PathBuf,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// A CDR with every field set, distinct per `call_id`.
pub fn sample_cdr(call_id: &str, start_ms: i64) -> Cdr {
    let media = |n: u64| MediaStats {
        packets: n,
        bytes: n * 172,
        lost: Some(n / 100),
        jitter_ms: Some(1.25),
        mos: Some(4.31),
    };
    let leg = |name: &str, sip_call_id: &str, ip: [u8; 4]| Leg {
        leg: name.into(),
        sip_call_id: sip_call_id.into(),
        from_tag: Some(format!("{name}-from")),
        to_tag: Some(format!("{name}-to")),
        from_uri: Some("sip:+15551230001@carrier.example".into()),
        to_uri: Some("sip:+442071230002@tollgate.example".into()),
        request_uri: Some("sip:+442071230002@10.0.0.5".into()),
        signal_ip: Some(ip.into()),
        media_ip: Some([ip[0], ip[1], ip[2], ip[3] + 1].into()),
        transport: Some("udp".into()),
        codec: Some("PCMU/8000".into()),
        srtp: Some("SDES AES_CM_128_HMAC_SHA1_80".into()),
        transcoded: false,
        start_ms,
        answer_ms: Some(start_ms + 2_500),
        end_ms: start_ms + 64_200,
        sip_code: Some(200),
        received: media(3000),
        sent: media(2990),
        remote_lost: Some(10),
        remote_jitter_ms: Some(1.5),
        rtt_ms: Some(38.25),
    };
    Cdr {
        call_id: call_id.into(),
        from_number: "+15551230001".into(),
        to_number: "+442071230002".into(),
        from_uri: Some("sip:+15551230001@carrier.example".into()),
        to_uri: Some("sip:+442071230002@tollgate.example".into()),
        request_uri: Some("sip:+442071230002@tollgate.example".into()),
        source_ip: Some([192, 0, 2, 10].into()),
        destination_ip: Some([198, 51, 100, 20].into()),
        transport: Some("udp".into()),
        trunk: Some("uk-trunk".into()),
        gateway: Some("gw2.carrier.example".into()),
        carrier: Some("CarrierB".into()),
        start_ms,
        answer_ms: Some(start_ms + 2_500),
        end_ms: start_ms + 64_200,
        status: Some(Disposition::Answered),
        sip_code: Some(200),
        sip_reason: Some("OK".into()),
        hangup_by: Some(HangupBy::Callee),
        recording_url: Some(format!("s3://recordings/{call_id}.wav")),
        org_id: Some("org-42".into()),
        legs: vec![
            leg("a", call_id, [192, 0, 2, 10]),
            leg("b", &format!("{call_id}-b"), [198, 51, 100, 20]),
        ],
    }
}

/// Appends `n` CDRs keeping `in_flight` waiting; returns CDRs per second.
async fn append_rate(spool: &Spool, prefix: &str, n: u64, in_flight: usize) -> f64 {
    let t0 = Instant::now();
    let mut waiting = VecDeque::with_capacity(in_flight);
    for i in 0..n {
        let cdr = sample_cdr(&format!("{prefix}-{i}"), 1_795_000_000_000 + i as i64);
        waiting.push_back(spool.append(&Record::Ended(Box::new(cdr))));
        if waiting.len() >= in_flight {
            waiting
                .pop_front()
                .expect("one")
                .durable()
                .await
                .expect("append");
        }
    }
    for p in waiting {
        p.durable().await.expect("append");
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn spool_at(args: &CdrBenchArgs, name: &str, fsync: Fsync) -> Spool {
    let dir = args.dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = SpoolConfig {
        fsync,
        ..SpoolConfig::new(dir)
    };
    Spool::open(cfg, &["pg".to_string()])
        .expect("open a bench spool")
        .0
}

/// The measures, in the order a round returns them: a key for the JSON
/// and what it is, in words.
const MEASURES: [(&str, &str); 6] = [
    (
        "append_fsync_always",
        "spool append, fsync always (group commit)",
    ),
    ("append_fsync_never", "spool append, fsync never"),
    (
        "sink_batched",
        "PostgreSQL sink draining the spool, batched",
    ),
    (
        "one_insert_per_cdr",
        "PostgreSQL, one INSERT transaction per CDR (baseline)",
    ),
    (
        "batched_without_spool",
        "Tollgate's batched INSERT of the same CDRs, no spool",
    ),
    (
        "copy_floor",
        "PostgreSQL's own limit: the same rows by COPY on two connections (floor)",
    ),
];

/// Connections the COPY floor loads on at once: as many as the sink
/// writes a batch on (`Db::insert` splits batches over two).
const FLOOR_CONNECTIONS: usize = 2;

/// Longest the sink may take to drain one round's spool.
fn drain_limit(records: u64) -> Duration {
    Duration::from_secs(60 + records / 100)
}

/// Times the sink draining `spool`; fails if it does not within the limit.
async fn drain_rate(args: &CdrBenchArgs, spool: &Arc<Spool>) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let sink = SqlSink::new(SinkKind::Postgres, args.postgres.clone());
    let runner = tokio::spawn(tollgate_cdr::sink::run(
        spool.clone(),
        "pg".into(),
        sink,
        // The spool is full: every batch is full and none waits.
        tollgate_cdr::sink::Batching {
            max: args.batch,
            linger: Duration::ZERO,
        },
    ));
    let limit = drain_limit(args.records);
    let drained = loop {
        let st = spool.status();
        if st.depth == 0 {
            break Ok(());
        }
        if t0.elapsed() > limit {
            let error = st.sinks.first().and_then(|s| s.last_error.clone());
            break Err(anyhow::anyhow!(
                "the PostgreSQL sink left {} of {} CDRs in the spool after {} s (last error: {})",
                st.depth,
                args.records,
                limit.as_secs(),
                error.as_deref().unwrap_or("none")
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let rate = args.records as f64 / t0.elapsed().as_secs_f64();
    runner.abort();
    drained.map(|()| rate)
}

/// One round: the rates of [`MEASURES`], in CDRs per second.
async fn round(args: &CdrBenchArgs, db: &Db, pool: &PgPool, r: usize) -> anyhow::Result<[f64; 6]> {
    let tag = format!("{}-{r}", prefix());
    let always = spool_at(args, "always", Fsync::Always);
    let synced = append_rate(&always, &format!("{tag}-a"), args.records, args.in_flight).await;
    drop(always);
    let never = Arc::new(spool_at(args, "never", Fsync::Never));
    let unsynced = append_rate(&never, &format!("{tag}-s"), args.records, args.in_flight).await;
    let batched = drain_rate(args, &never).await?;

    let t0 = Instant::now();
    for i in 0..args.baseline_records {
        let cdr = sample_cdr(&format!("{tag}-o-{i}"), 1_795_000_000_000);
        db.insert(&[&cdr]).await.context("single insert")?;
    }
    let single = args.baseline_records as f64 / t0.elapsed().as_secs_f64();

    let direct: Vec<Cdr> = (0..args.records)
        .map(|i| sample_cdr(&format!("{tag}-d-{i}"), 1_795_000_000_000))
        .collect();
    let t0 = Instant::now();
    for chunk in direct.chunks(args.batch) {
        let refs: Vec<&Cdr> = chunk.iter().collect();
        db.insert(&refs)
            .await
            .context("batched insert without the spool")?;
    }
    let no_spool = args.records as f64 / t0.elapsed().as_secs_f64();

    // The sink's rows, loaded again by the database alone; their count
    // also proves the sink delivered every CDR.
    let (from, to) = (format!("{tag}-s-"), format!("{tag}-f-"));
    let loaded = floor::copy_again(pool, &from, &to, FLOOR_CONNECTIONS).await?;
    let legs = args.records * direct[0].legs.len() as u64;
    ensure!(
        loaded.rows == [args.records, legs],
        "the sink wrote {} call rows and {} leg rows for {} CDRs (expected {legs} legs)",
        loaded.rows[0],
        loaded.rows[1],
        args.records
    );
    let copy = args.records as f64 / loaded.seconds;
    Ok([synced, unsynced, batched, single, no_spool, copy])
}

/// The call id prefix of this process's CDRs.
fn prefix() -> String {
    format!("bench-{}", std::process::id())
}

/// The URL without its password, for printing.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// One measure over every round.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    pub key: &'static str,
    pub what: &'static str,
    /// CDRs per second, one per round.
    pub per_s: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Measure {
    fn of((key, what): (&'static str, &'static str), per_s: Vec<f64>) -> Measure {
        let mut sorted = per_s.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Measure {
            key,
            what,
            median,
            min: sorted[0],
            max: sorted[n - 1],
            per_s,
        }
    }
}

/// Ratios of the medians, each named for what it divides.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// CDRs/s of the batched sink over one transaction per CDR.
    pub sink_over_one_per_cdr: f64,
    /// CDRs/s of the batched sink over PostgreSQL's own limit (COPY).
    pub sink_over_floor: f64,
    /// CDRs/s of Tollgate's batched insert (no spool) over the COPY floor.
    pub insert_without_spool_over_floor: f64,
    /// Appends per second, fsync always over never (a throughput ratio).
    pub append_synced_over_unsynced_throughput: f64,
    /// Time per append, fsync always over never (its inverse: the cost).
    pub append_synced_over_unsynced_cost: f64,
}

/// What `tollgate bench cdr` reports, printed and written to `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct CdrReport<S> {
    pub stamp: S,
    pub records: u64,
    pub baseline_records: u64,
    pub rounds: usize,
    pub in_flight: usize,
    pub batch: usize,
    /// Call ids of the CDRs written start with this (all deleted afterwards).
    pub call_id_prefix: String,
    pub postgres_url: String,
    pub postgres: PgSettings,
    pub spool_fs: SpoolFs,
    pub measures: Vec<Measure>,
    pub ratios: Ratios,
    pub notes: Vec<String>,
}

impl<S: Display> CdrReport<S> {
    fn new(
        stamp: S,
        args: &CdrBenchArgs,
        rounds: &[[f64; 6]],
        facts: (PgSettings, SpoolFs),
    ) -> Self {
        let measures: Vec<Measure> = MEASURES
            .iter()
            .enumerate()
            .map(|(i, m)| Measure::of(*m, rounds.iter().map(|r| r[i]).collect()))
            .collect();
        let med = |i: usize| measures[i].median;
        let ratios = Ratios {
            sink_over_one_per_cdr: med(2) / med(3),
            sink_over_floor: med(2) / med(5),
            insert_without_spool_over_floor: med(4) / med(5),
            append_synced_over_unsynced_throughput: med(0) / med(1),
            append_synced_over_unsynced_cost: med(1) / med(0),
        };
        let (postgres, spool_fs) = facts;
        let mut notes = Vec::new();
        if !postgres.durable() {
            notes.push(format!(
                "PostgreSQL runs with fsync {} and synchronous_commit {}: its commits do not \
                 wait for the disk, so its figures are above what a durable server gives",
                postgres.fsync, postgres.synchronous_commit
            ));
        }
        for (i, name) in [(2, "the sink"), (4, "Tollgate's insert without the spool")] {
            if med(i) > med(5) {
                notes.push(format!(
                    "{name} beat the COPY floor ({:.0} against {:.0} CDRs/s): the floor is \
                     no floor in this run (a noisy machine?); rerun with more rounds",
                    med(i),
                    med(5)
                ));
            }
        }
        if !spool_fs.fsync_reaches_disk() {
            notes.push(format!(
                "the spool is on {} ({}): fsync reaches no disk there, so `fsync = always` \
                 measures no disk either",
                spool_fs.kind, spool_fs.mount_point
            ));
        }
        CdrReport {
            stamp,
            records: args.records,
            baseline_records: args.baseline_records,
            rounds: rounds.len(),
            in_flight: args.in_flight,
            batch: args.batch,
            call_id_prefix: format!("{}-", prefix()),
            postgres_url: redacted(&args.postgres),
            postgres,
            spool_fs,
            measures,
            ratios,
            notes,
        }
    }

    fn print(&self) {
        println!("tollgate bench cdr: {}", self.stamp);
        println!(
            "{} CDRs x {} round(s), {} in flight, batch {}; PostgreSQL {} at {} (fsync {}, \
             synchronous_commit {}, full_page_writes {}); spool on {} {} at {} ({})",
            self.records,
            self.rounds,
            self.in_flight,
            self.batch,
            self.postgres.server_version,
            self.postgres_url,
            self.postgres.fsync,
            self.postgres.synchronous_commit,
            self.postgres.full_page_writes,
            self.spool_fs.kind,
            self.spool_fs.magic,
            self.spool_fs.mount_point,
            self.spool_fs.mount_options
        );
        println!(
            "{:<72} {:>10} {:>21}",
            "measure", "CDRs/s", "spread (min-max)"
        );
        for m in &self.measures {
            let spread = format!("{:.0}-{:.0}", m.min, m.max);
            println!("{:<72} {:>10.0} {:>21}", m.what, m.median, spread);
        }
        let r = &self.ratios;
        println!(
            "fsync always against never: {:.2}x the appends per second, so a synced append \
             costs {:.2}x an unsynced one",
            r.append_synced_over_unsynced_throughput, r.append_synced_over_unsynced_cost
        );
        println!(
            "batched sink: {:.1}x one transaction per CDR; {:.2} of PostgreSQL's own limit \
             (COPY); Tollgate's insert without the spool: {:.2} of it",
            r.sink_over_one_per_cdr, r.sink_over_floor, r.insert_without_spool_over_floor
        );
        for n in &self.notes {
            println!("note: {n}");
        }
    }
}

/// Deletes this process's `bench-` rows from both tables.
async fn delete_rows(pool: &PgPool) -> anyhow::Result<()> {
    let pattern = format!("{}-%", prefix());
    for table in ["cdr_legs", "call_logs"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE call_id LIKE $1"))
            .bind(&pattern)
            .execute(pool)
            .await
            .with_context(|| format!("deleting the bench rows from {table}"))?;
    }
    Ok(())
}

/// Runs the benchmark; `stamp` says what build and machine it ran on.
pub fn main<S: Serialize + Display>(args: &CdrBenchArgs, stamp: S) -> anyhow::Result<()> {
    ensure!(
        args.rounds > 0 && args.records > 0 && args.baseline_records > 0 && args.batch > 0,
        "--rounds, --records, --baseline-records and --batch must be > 0"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let db = Db::connect(SinkKind::Postgres, &args.postgres)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", redacted(&args.postgres)))?;
        let Db::Postgres(pool) = &db else {
            anyhow::bail!("{} is not PostgreSQL", redacted(&args.postgres));
        };
        let settings = PgSettings::read(pool)
            .await
            .context("reading PostgreSQL's settings")?;
        std::fs::create_dir_all(&args.dir)
            .with_context(|| format!("creating {}", args.dir.display()))?;
        let fs = SpoolFs::of(&args.dir)
            .with_context(|| format!("the filesystem of {}", args.dir.display()))?;
        let mut rounds = Vec::new();
        let mut failed = None;
        for r in 0..args.rounds {
            match round(args, &db, pool, r).await {
                Ok(got) => {
                    let line: Vec<String> = MEASURES
                        .iter()
                        .zip(got)
                        .map(|((key, _), v)| format!("{key} {v:.0}/s"))
                        .collect();
                    eprintln!("round {}: {}", r + 1, line.join(", "));
                    rounds.push(got);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        delete_rows(pool).await?;
        let _ = std::fs::remove_dir_all(&args.dir);
        if let Some(e) = failed {
            return Err(e);
        }
        let report = CdrReport::new(stamp, args, &rounds, (settings, fs));
        report.print();
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn printed_urls_hide_the_password() {
        assert_eq!(
            super::redacted("postgres://voip:secret@db1:5432/voip"),
            "postgres://voip:***@db1:5432/voip"
        );
        assert_eq!(
            super::redacted("postgres://db1/voip"),
            "postgres://db1/voip"
        );
    }
}
