//! `tollgate bench cdr`: how fast CDRs go through the pipeline, with the
//! baselines measured in the same run:
//! - spool appends with `fsync = always` (group commit, many appends in
//!   flight as under call load) against `fsync = never`;
//! - the PostgreSQL sink taking a full spool in batches against one INSERT
//!   transaction per CDR, and against the same batches inserted without
//!   the spool (the database's own limit on this host).
//!
//! Each figure is the median of `--rounds`. The CDRs written carry call
//! ids starting `bench-` and are deleted from the database afterwards.

use crate::config::SinkKind;
use crate::model::{Cdr, Disposition, HangupBy, Leg, MediaStats, Record};
use crate::sink::sql::{Db, SqlSink};
use crate::spool::{Fsync, Spool, SpoolConfig};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        start_ms,
        answer_ms: Some(start_ms + 2_500),
        end_ms: start_ms + 64_200,
        sip_code: Some(200),
        received: media(3000),
        sent: media(2990),
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

/// One round: the five rates, in CDRs per second.
async fn round(args: &CdrBenchArgs, db: &Db, r: usize) -> [f64; 5] {
    let tag = format!("bench-{}-{r}", std::process::id());
    let always = spool_at(args, "always", Fsync::Always);
    let synced = append_rate(&always, &format!("{tag}-a"), args.records, args.in_flight).await;
    drop(always);
    let never = Arc::new(spool_at(args, "never", Fsync::Never));
    let unsynced = append_rate(&never, &format!("{tag}-s"), args.records, args.in_flight).await;

    // The sink drains the spool just filled.
    let t0 = Instant::now();
    let sink = SqlSink::new(SinkKind::Postgres, args.postgres.clone());
    let runner = tokio::spawn(crate::sink::run(
        never.clone(),
        "pg".into(),
        sink,
        args.batch,
    ));
    while never.status().depth > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let batched = args.records as f64 / t0.elapsed().as_secs_f64();
    runner.abort();

    let t0 = Instant::now();
    for i in 0..args.baseline_records {
        let cdr = sample_cdr(&format!("{tag}-o-{i}"), 1_795_000_000_000);
        db.insert(&[&cdr]).await.expect("single insert");
    }
    let single = args.baseline_records as f64 / t0.elapsed().as_secs_f64();

    // The database's own limit for these batches, without the spool.
    let direct: Vec<Cdr> = (0..args.records)
        .map(|i| sample_cdr(&format!("{tag}-d-{i}"), 1_795_000_000_000))
        .collect();
    let t0 = Instant::now();
    for chunk in direct.chunks(args.batch) {
        let refs: Vec<&Cdr> = chunk.iter().collect();
        db.insert(&refs).await.expect("direct insert");
    }
    let floor = args.records as f64 / t0.elapsed().as_secs_f64();
    [synced, unsynced, batched, single, floor]
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn main(args: &CdrBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rounds > 0 && args.records > 0,
        "--rounds and --records must be > 0"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let db = Db::connect(SinkKind::Postgres, &args.postgres)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", redacted(&args.postgres)))?;
        let mut rounds = Vec::new();
        for r in 0..args.rounds {
            let got = round(args, &db, r).await;
            eprintln!(
                "round {}: append always {:.0}/s, never {:.0}/s, sink batched {:.0}/s, \
                 one-per-CDR {:.0}/s, batched without spool {:.0}/s",
                r + 1,
                got[0],
                got[1],
                got[2],
                got[3],
                got[4]
            );
            rounds.push(got);
        }
        if let Db::Postgres(pool) = &db {
            let pattern = format!("bench-{}-%", std::process::id());
            for table in ["cdr_legs", "call_logs"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE call_id LIKE $1"))
                    .bind(&pattern)
                    .execute(pool)
                    .await?;
            }
        }
        let _ = std::fs::remove_dir_all(&args.dir);
        let col = |i: usize| median(rounds.iter().map(|r| r[i]).collect());
        let (synced, unsynced, batched, single, floor) =
            (col(0), col(1), col(2), col(3), col(4));
        println!(
            "tollgate bench cdr: {} CDRs x {} rounds (median), {} in flight, batch {}, PostgreSQL {}",
            args.records,
            args.rounds,
            args.in_flight,
            args.batch,
            redacted(&args.postgres)
        );
        println!("{:<52} {:>12}", "measure", "CDRs/s");
        for (what, v) in [
            ("spool append, fsync always (group commit)", synced),
            ("spool append, fsync never", unsynced),
            ("PostgreSQL sink, batched from the spool", batched),
            ("PostgreSQL, one INSERT transaction per CDR (baseline)", single),
            ("PostgreSQL, same batches without the spool (floor)", floor),
        ] {
            println!("{what:<52} {v:>12.0}");
        }
        println!(
            "ratios: batched sink / one-per-CDR = {:.1}x; sink / floor = {:.2}; \
             fsync always / never = {:.2}",
            batched / single,
            batched / floor,
            synced / unsynced
        );
        if let Some(path) = &args.json {
            let j = serde_json::json!({
                "records": args.records, "rounds": args.rounds, "in_flight": args.in_flight,
                "batch": args.batch,
                "append_fsync_always_per_s": synced, "append_fsync_never_per_s": unsynced,
                "postgres_batched_per_s": batched, "postgres_one_per_cdr_per_s": single,
                "postgres_floor_per_s": floor,
                "rounds_raw": rounds,
            });
            std::fs::write(path, serde_json::to_vec_pretty(&j)?)?;
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
