//! `tollgate bench archive`: how fast closed recordings are archived into
//! an S3 store (rendered to WAV, every object sealed, uploaded, the row
//! written), in MB/s of stored objects, with the queue's `--concurrency`
//! and one recording at a time, against the same store's raw PUT rate for
//! objects of the same sizes, one at a time, in the same run. The recordings are synthetic two-leg G.711 tone calls written
//! into a spool under `--dir`; everything the run stores (prefix `_/` for
//! its recordings, `bench-raw/` for the raw PUTs) is deleted afterwards.

use anyhow::{ensure, Context};
use serde::Serialize;
use std::fmt::Display;
use std::path::Path;
use std::time::{Duration, Instant};
use tollgate_archive::envelope::{Kek, Keyring};
use tollgate_archive::queue::{CatalogTarget, QueueSettings, Uploader};
use tollgate_archive::render::Layout;
use tollgate_archive::retention::Retention;
use tollgate_archive::store::{Store, StoreConfig};
use tollgate_archive::synth::ToneRecording;
use tollgate_cdr::config::SinkKind;

use crate::report::Spread;

#[derive(Debug, Clone, clap::Args)]
pub struct ArchiveBenchArgs {
    /// The S3 endpoint (path-style), e.g. SeaweedFS from start-s3.sh.
    #[arg(long, default_value = "http://127.0.0.1:8333")]
    pub endpoint: String,
    #[arg(long, default_value = "recordings")]
    pub bucket: String,
    #[arg(long, default_value = "voipaccess")]
    pub access_key: String,
    #[arg(long, default_value = "voipsecret")]
    pub secret_key: String,
    /// Recordings per round.
    #[arg(long, default_value_t = 20)]
    pub recordings: usize,
    /// Length of each recording (two legs), seconds.
    #[arg(long, default_value_t = 60)]
    pub secs: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Recordings the queue seals and uploads at once (the default of
    /// `[archive] upload_concurrency`).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Where the spools and the rows go (removed afterwards).
    #[arg(long, default_value = "/tmp/tollgate-bench-archive")]
    pub dir: std::path::PathBuf,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One round's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Bytes of the objects stored (sealed WAV, description, capture).
    pub bytes: u64,
    pub objects: usize,
    /// Archived, end to end, MB (10^6 bytes) per second of stored objects,
    /// `concurrency` at once.
    pub archive_mb_s: f64,
    /// The same, one recording at a time.
    pub sequential_mb_s: f64,
    /// The same sizes by plain PUT.
    pub raw_put_mb_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport<S> {
    pub stamp: S,
    pub endpoint: String,
    pub recordings: usize,
    pub secs: usize,
    pub concurrency: usize,
    pub archive_mb_s: Spread,
    pub sequential_mb_s: Spread,
    pub raw_put_mb_s: Spread,
    /// Medians: archive over raw PUT.
    pub archive_over_raw_put: f64,
    pub rounds: Vec<Round>,
}

/// Runs the benchmark; `stamp` says what build and machine it ran on.
pub fn main<S: Serialize + Display>(args: &ArchiveBenchArgs, stamp: S) -> anyhow::Result<()> {
    ensure!(
        args.rounds > 0 && args.recordings > 0 && args.secs > 0 && args.concurrency > 0,
        "rounds, recordings, secs and concurrency must be > 0"
    );
    let store_cfg = StoreConfig::S3 {
        bucket: args.bucket.clone(),
        endpoint: Some(args.endpoint.clone()),
        region: "us-east-1".into(),
        access_key_id: Some(args.access_key.clone()),
        secret_access_key: Some(args.secret_key.clone()),
        virtual_hosted: false,
    };
    let store = Store::open(&store_cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rounds = Vec::new();
    for n in 0..args.rounds {
        let dir = args.dir.join(format!("round-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let round = rt.block_on(one_round(args, &dir, &store));
        let cleaned = rt.block_on(clean(&store));
        let _ = std::fs::remove_dir_all(&dir);
        let round = round?;
        cleaned?;
        eprintln!(
            "round {n}: {} objects, {:.1} MB: archived {:.1} MB/s ({} at once), {:.1} MB/s (one at a time), raw PUT {:.1} MB/s",
            round.objects,
            round.bytes as f64 / 1e6,
            round.archive_mb_s,
            args.concurrency,
            round.sequential_mb_s,
            round.raw_put_mb_s
        );
        rounds.push(round);
    }
    let spread =
        |f: fn(&Round) -> f64| Spread::of(rounds.iter().map(f).collect()).expect("rounds > 0");
    let (archive, raw) = (spread(|r| r.archive_mb_s), spread(|r| r.raw_put_mb_s));
    let report = ArchiveReport {
        stamp,
        endpoint: args.endpoint.clone(),
        recordings: args.recordings,
        secs: args.secs,
        concurrency: args.concurrency,
        archive_mb_s: archive,
        sequential_mb_s: spread(|r| r.sequential_mb_s),
        raw_put_mb_s: raw,
        archive_over_raw_put: archive.median / raw.median,
        rounds,
    };
    println!("tollgate bench archive: {}", report.stamp);
    println!(
        "archived {:.1} MB/s (median of {}), raw PUT {:.1} MB/s: {:.2}x",
        archive.median, args.rounds, raw.median, report.archive_over_raw_put
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| path.display().to_string())?;
    }
    Ok(())
}

/// One round: the recordings archived one at a time, then (written
/// afresh) `--concurrency` at once, then raw PUTs of the stored sizes.
async fn one_round(args: &ArchiveBenchArgs, dir: &Path, store: &Store) -> anyhow::Result<Round> {
    let (_, sequential) = archive_pass(args, &dir.join("one"), store, 1).await?;
    clean(store).await?;
    let (stored, concurrent) =
        archive_pass(args, &dir.join("many"), store, args.concurrency).await?;
    let bytes: u64 = stored.iter().map(|(_, s)| s).sum();
    let t = Instant::now();
    for (i, (_, size)) in stored.iter().enumerate() {
        let mut body = vec![0u8; *size as usize];
        rand_fill(&mut body, i as u64);
        store.put(&format!("bench-raw/{i}"), body.into()).await?;
    }
    let raw_time = t.elapsed();
    let mb_s = |t: Duration| bytes as f64 / 1e6 / t.as_secs_f64();
    Ok(Round {
        bytes,
        objects: stored.len(),
        archive_mb_s: mb_s(concurrent),
        sequential_mb_s: mb_s(sequential),
        raw_put_mb_s: mb_s(raw_time),
    })
}

/// Writes the round's recordings into a spool under `dir` and times one
/// pass of the queue over them; the objects stored (key, size).
async fn archive_pass(
    args: &ArchiveBenchArgs,
    dir: &Path,
    store: &Store,
    concurrency: usize,
) -> anyhow::Result<(Vec<(String, u64)>, Duration)> {
    let spool = dir.join("spool");
    let started = chrono::Utc::now();
    for i in 0..args.recordings {
        let id = format!("bench-{}-{i}", std::process::id());
        ToneRecording::two_legs(&id, &format!("{id}@bench"), started, args.secs).write(&spool)?;
    }
    let settings = QueueSettings {
        spool: spool.clone(),
        layout: Layout::PerLeg,
        retention: Retention::default(),
        watermark: usize::MAX,
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_millis(100),
        poll: Duration::from_millis(100),
        concurrency,
    };
    let keyring = Keyring::new(
        vec![(
            "bench".into(),
            Kek::parse(&Kek::generate_hex()).map_err(anyhow::Error::msg)?,
        )],
        "bench",
    )
    .map_err(anyhow::Error::msg)?;
    let catalog = CatalogTarget {
        kind: SinkKind::Sqlite,
        url: format!("sqlite://{}", dir.join("cdr.sqlite").display()),
    };
    let mut uploader = Uploader::new(settings, keyring, store.clone(), catalog, vec![])?;
    let t = Instant::now();
    uploader.pass(&|| false).await;
    let archive_time = t.elapsed();
    let st = uploader
        .status()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    ensure!(
        st.archived as usize == args.recordings,
        "only {} of {} archived: {:?}",
        st.archived,
        args.recordings,
        st.last_error
    );
    Ok((store.list("_/").await?, archive_time))
}

/// Incompressible filler (xorshift), made before the clock starts per object.
fn rand_fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in buf {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

async fn clean(store: &Store) -> anyhow::Result<()> {
    store.delete_prefix("_/").await?;
    store.delete_prefix("bench-raw/").await?;
    Ok(())
}
