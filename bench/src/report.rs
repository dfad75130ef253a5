//! Results: one record per run with the machine's facts, printed as a table,
//! written as JSON, and drawn (loss and p99 latency against offered calls
//! for every system on the same axes; latency histograms) as SVG and PNG.

use crate::cpu::{Counted, Task};
use crate::guard::FloorCounts;
use crate::measure::TrafficResult;
use crate::stamp::Stamp;
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;

/// One measured run of one system at one load.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub system: &'static str,
    pub calls: usize,
    pub duration_s: f64,
    /// Packets per second offered to the relay, both directions together.
    pub offered_pps: u64,
    pub traffic: TrafficResult,
    pub loss_pct: f64,
    /// Why this run's figures are refused (an accounting precondition
    /// failed); empty when they stand. A refused run keeps its raw counts
    /// but has no CPU figures.
    pub refused: Vec<String>,
    /// CPU time over the measured interval of the relay's processes and of
    /// its interfaces' NAPI threads (None when it could not be read).
    pub relay_process_cpu_ns: Option<u64>,
    pub relay_napi_cpu_ns: Option<u64>,
    /// Counted CPU per packet relayed (None when refused).
    pub cpu_ns_per_packet: Option<f64>,
    /// Counted CPU as a share of the relay cores over the measured time
    /// (None when refused).
    pub relay_cpu_pct: Option<f64>,
    /// The relay cores' busy time from `/proc/stat` beside the counted CPU.
    pub cross_check: Option<CrossCheck>,
    /// What the redirect-only floor did with the packets (floor runs only).
    pub floor: Option<FloorCounts>,
    pub relay_cores: Vec<usize>,
    pub generator_cores: Vec<usize>,
    /// The end hosts' veths' NAPI threads, pinned to the generator cores so
    /// that their receive work is not charged to the relay (not counted).
    pub end_host_napi_threads: Vec<Task>,
    /// Which CPU time was counted: in words, and the tasks, each with the
    /// cores it may run on.
    pub counted: CountedRecord,
}

#[derive(Debug, Clone, Serialize)]
pub struct CountedRecord {
    pub what: String,
    #[serde(flatten)]
    pub tasks: Counted,
}

/// The relay cores' busy time against the per-task sum: what ran on the
/// relay cores uncounted (other processes, ksoftirqd, interrupts) shows as
/// a positive difference; counted work that ran elsewhere as a negative one.
#[derive(Debug, Clone, Serialize)]
pub struct CrossCheck {
    /// `/proc/stat` of the relay cores: user, nice, system, irq, softirq and
    /// steal, whatever ran there (sampled at the kernel's tick).
    pub cores_busy_ns: u64,
    /// The relay's processes and NAPI threads, from their CPU clocks.
    pub counted_ns: u64,
    /// `cores_busy_ns - counted_ns`.
    pub uncounted_ns: i64,
    pub cores_busy_pct: f64,
    /// `uncounted_ns` as a share of the relay cores' time.
    pub uncounted_pct: f64,
    /// How far apart tick sampling alone can put the two.
    pub tolerance_ns: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    /// The code, build and machine measured, and the pinning.
    pub stamp: Stamp,
    pub load_average: String,
    /// Every run, refused ones included.
    pub runs: Vec<RunRecord>,
    /// Per system: medians and spread over repeated runs at the same load.
    pub summary: Vec<Summary>,
    /// Largest call count each system held within the bounds (ramp).
    pub capacity: Vec<Capacity>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    pub system: String,
    /// Most calls held within the bounds by a run whose figures stand.
    pub calls: usize,
    /// Why the search stopped early: the reasons a run was refused.
    pub stopped: Vec<String>,
}

/// Median and extremes of one figure over the runs that stand.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// None for no values.
    pub fn of(mut v: Vec<f64>) -> Option<Spread> {
        v.sort_by(|a, b| a.total_cmp(b));
        let (min, max) = (*v.first()?, *v.last()?);
        let m = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2.0
        };
        Some(Spread { median, min, max })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub system: String,
    /// Runs whose figures stand, and runs refused (left out of the figures).
    pub runs: usize,
    pub refused_runs: usize,
    pub cpu_ns_per_packet: Spread,
    pub p99_us: Spread,
    pub loss_pct: Spread,
    /// Median CPU per packet relative to the first system listed (None when
    /// that system has no run that stands).
    pub cpu_per_packet_ratio: Option<f64>,
    /// Calls one relay core would carry at the median CPU per packet (100
    /// pps per call).
    pub calls_per_core_at_this_cost: f64,
}

/// `/proc/loadavg`'s three averages: how busy the machine was otherwise.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn print_table(runs: &[RunRecord]) {
    println!(
        "{:<16} {:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>10} {:>7} {:>7} {:>7}",
        "SYSTEM",
        "CALLS",
        "PPS",
        "RECEIVED",
        "LOSS %",
        "P50 µs",
        "P99 µs",
        "P99.9 µs",
        "JIT ms",
        "CPU ns/pkt",
        "CPU %",
        "CORE %",
        "UNCNT %"
    );
    for r in runs {
        let t = &r.traffic;
        let (Some(per_packet), Some(pct), Some(x), true) = (
            r.cpu_ns_per_packet,
            r.relay_cpu_pct,
            r.cross_check.as_ref(),
            r.refused.is_empty(),
        ) else {
            println!(
                "{:<16} {:>6} REFUSED: {}",
                r.system,
                r.calls,
                r.refused.join("; ")
            );
            continue;
        };
        println!(
            "{:<16} {:>6} {:>9} {:>9} {:>8.3} {:>8} {:>8} {:>9} {:>8.3} {:>10.0} {:>7.1} {:>7.1} {:>7.1}{}",
            r.system,
            r.calls,
            r.offered_pps,
            t.received,
            r.loss_pct,
            t.latency_us.p50,
            t.latency_us.p99,
            t.latency_us.p999,
            t.jitter_ms_mean,
            per_packet,
            pct,
            x.cores_busy_pct,
            x.uncounted_pct,
            if t.late_sends > 0 {
                "  (generator fell behind)"
            } else {
                ""
            }
        );
    }
}

/// Which tasks each run counted and where they could run.
pub fn print_counted(runs: &[RunRecord]) {
    for r in runs {
        let tasks: Vec<String> = r
            .counted
            .tasks
            .processes
            .iter()
            .chain(&r.counted.tasks.napi_threads)
            .map(|t| format!("{} (pid {}, cores {})", t.name, t.pid, t.cores))
            .collect();
        println!(
            "  {} at {} calls counted: {}",
            r.system,
            r.calls,
            tasks.join(", ")
        );
    }
}

pub fn write(report: &Report, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    if let Some(font) = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
    {
        let font: &'static [u8] = Box::leak(font.into_boxed_slice());
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, font);
    }
    capacity_plot(
        &report.runs,
        SVGBackend::new(&out.join("capacity.svg"), (900, 600)).into_drawing_area(),
    )?;
    capacity_plot(
        &report.runs,
        BitMapBackend::new(&out.join("capacity.png"), (900, 600)).into_drawing_area(),
    )?;
    latency_plot(
        &report.runs,
        SVGBackend::new(&out.join("latency.svg"), (900, 500)).into_drawing_area(),
    )?;
    latency_plot(
        &report.runs,
        BitMapBackend::new(&out.join("latency.png"), (900, 500)).into_drawing_area(),
    )?;
    Ok(())
}

const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Runs to plot: those whose figures stand.
fn plotted(runs: &[RunRecord]) -> Vec<&RunRecord> {
    runs.iter().filter(|r| r.refused.is_empty()).collect()
}

/// Systems to plot: the floor delivers nothing, so it has no loss or latency to draw.
fn systems(runs: &[RunRecord]) -> Vec<&'static str> {
    let mut s: Vec<&'static str> = Vec::new();
    for r in plotted(runs) {
        if r.system != "xdp-ceiling" && !s.contains(&r.system) {
            s.push(r.system);
        }
    }
    s
}

fn capacity_plot<DB: DrawingBackend>(
    runs: &[RunRecord],
    area: DrawingArea<DB, plotters::coord::Shift>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e:?}");
    let shown = systems(runs);
    let runs: Vec<RunRecord> = plotted(runs)
        .into_iter()
        .filter(|r| shown.contains(&r.system))
        .cloned()
        .collect();
    let runs = &runs[..];
    area.fill(&WHITE).map_err(e)?;
    let (top, bottom) = area.split_vertically(300);
    let max_calls = runs.iter().map(|r| r.calls).max().unwrap_or(1) as f64 * 1.1;
    let max_loss = runs.iter().map(|r| r.loss_pct).fold(0.1, f64::max) * 1.2;
    let max_p99 = runs
        .iter()
        .map(|r| r.traffic.latency_us.p99 as f64 / 1000.0)
        .fold(1.0, f64::max)
        * 2.0;
    let series = |sys: &str, get: fn(&RunRecord) -> f64| {
        let mut pts: Vec<(f64, f64)> = runs
            .iter()
            .filter(|r| r.system == sys)
            .map(|r| (r.calls as f64, get(r)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts
    };
    let mut loss = ChartBuilder::on(&top)
        .caption("loss % vs offered calls", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_calls, 0f64..max_loss)
        .map_err(e)?;
    loss.configure_mesh().x_desc("calls").draw().map_err(e)?;
    for (i, sys) in systems(runs).into_iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts = series(sys, |r| r.loss_pct);
        loss.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label(sys)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        loss.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            .map_err(e)?;
    }
    loss.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    let mut lat = ChartBuilder::on(&bottom)
        .caption(
            "p99 latency (ms, log scale) vs offered calls",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_calls, (0.01f64..max_p99).log_scale())
        .map_err(e)?;
    lat.configure_mesh().x_desc("calls").draw().map_err(e)?;
    for (i, sys) in systems(runs).into_iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts = series(sys, |r| {
            (r.traffic.latency_us.p99 as f64 / 1000.0).max(0.01)
        });
        lat.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label(sys)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        lat.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            .map_err(e)?;
    }
    lat.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    area.present().map_err(e)?;
    Ok(())
}

fn latency_plot<DB: DrawingBackend>(
    runs: &[RunRecord],
    area: DrawingArea<DB, plotters::coord::Shift>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // The largest-load run of each system.
    let mut chosen: Vec<&RunRecord> = Vec::new();
    for sys in systems(runs) {
        if let Some(r) = plotted(runs)
            .into_iter()
            .filter(|r| r.system == sys)
            .max_by_key(|r| r.calls)
        {
            chosen.push(r);
        }
    }
    let max_x = chosen
        .iter()
        .map(|r| r.traffic.latency_us.p999.max(1) as f64)
        .fold(1.0, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "latency distribution (µs, share of packets)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_x, 0f64..1f64)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .x_desc("µs")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for (i, r) in chosen.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let total: u64 = r
            .traffic
            .latency_histogram
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>()
            .max(1);
        let mut acc = 0u64;
        let pts: Vec<(f64, f64)> = r
            .traffic
            .latency_histogram
            .iter()
            .map(|(us, n)| {
                acc += n;
                (*us as f64, acc as f64 / total as f64)
            })
            .collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .label(format!("{} ({} calls), cumulative", r.system, r.calls))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    area.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn the_spread_is_the_median_and_the_extremes() {
        let s = Spread::of(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(vec![4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert!(Spread::of(Vec::new()).is_none());
    }
}
