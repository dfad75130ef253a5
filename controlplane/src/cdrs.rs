//! `tollgate cdr`: apply the SQL schemas, show the spool and each sink's
//! progress, and export CDRs from an SQL sink. `status` reads the spool
//! directory, so it works beside a running node or without one.

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use std::io::Write;
use tollgate_cdr::config::CdrConfig;
use tollgate_cdr::export::{self, Format};
use tollgate_cdr::sink::sql::Db;

#[derive(Debug, Subcommand)]
pub enum CdrCommand {
    /// Create or update the CDR tables in every SQL sink.
    Migrate,
    /// Spool depth and size, and each sink's lag and last error.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the CDRs of calls started since a time to standard output.
    Export {
        /// A date (2026-11-01, UTC midnight) or an RFC 3339 time.
        #[arg(long)]
        since: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// The SQL sink to read (default: the first one configured).
        #[arg(long)]
        sink: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

pub fn run(cfg: &CdrConfig, cmd: CdrCommand) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?;
    match cmd {
        CdrCommand::Migrate => rt.block_on(migrate(cfg)),
        CdrCommand::Status { json } => status(cfg, json),
        CdrCommand::Export {
            since,
            format,
            sink,
        } => {
            let since = export::parse_since(&since).map_err(anyhow::Error::msg)?;
            let s = cfg.sql_sink(sink.as_deref()).map_err(anyhow::Error::msg)?;
            let format = match format {
                ExportFormat::Csv => Format::Csv,
                ExportFormat::Json => Format::Json,
            };
            rt.block_on(async {
                let db = Db::connect(s.kind, s.url.as_deref().unwrap_or_default())
                    .await
                    .with_context(|| format!("sink {}", s.name()))?;
                let mut w =
                    export::Writer::new(std::io::BufWriter::new(std::io::stdout()), format)?;
                let n = db
                    .export(since, |c| {
                        w.write(&c)
                            .map_err(|e| tollgate_cdr::sink::SinkError(e.to_string()))
                    })
                    .await?;
                w.finish()?;
                eprintln!("{n} CDRs since {since} from sink {}", s.name());
                Ok(())
            })
        }
    }
}

async fn migrate(cfg: &CdrConfig) -> Result<()> {
    let sql: Vec<_> = cfg.sinks.iter().filter(|s| s.kind.is_sql()).collect();
    anyhow::ensure!(!sql.is_empty(), "no SQL sink in [cdr]: nothing to migrate");
    for s in sql {
        Db::connect(s.kind, s.url.as_deref().unwrap_or_default())
            .await
            .with_context(|| format!("sink {}", s.name()))?;
        println!("{}: schema up to date", s.name());
    }
    Ok(())
}

fn status(cfg: &CdrConfig, json: bool) -> Result<()> {
    let st = tollgate_cdr::spool::inspect(&cfg.spool(), &cfg.sink_names())
        .context("reading the CDR spool")?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &st)?;
        writeln!(out)?;
        return Ok(());
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    writeln!(
        out,
        "spool {}: {} segment(s), {:.1} of {:.0} MiB{}; last record {}, depth {}",
        st.dir.display(),
        st.segments,
        mib(st.bytes),
        mib(st.max_bytes),
        if st.alarm {
            " (ALARM: sinks are not keeping up)"
        } else {
            ""
        },
        st.last_seq,
        st.depth
    )?;
    writeln!(
        out,
        "{:<16} {:>12} {:>10}  last error",
        "sink", "delivered", "lag"
    )?;
    for s in &st.sinks {
        writeln!(
            out,
            "{:<16} {:>12} {:>10}  {}",
            s.name,
            s.delivered,
            s.lag,
            s.last_error.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}
