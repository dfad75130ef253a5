//! Results: one record per run with the machine's facts, printed as a table,
//! written as JSON, and drawn (loss and p99 latency against offered calls
//! for every system on the same axes; latency histograms) as SVG and PNG.

use crate::measure::TrafficResult;
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
    /// CPU time of the relay's processes and of its interfaces' NAPI threads.
    pub relay_process_cpu_ns: u64,
    pub relay_napi_cpu_ns: u64,
    pub cpu_ns_per_packet: f64,
    /// Relay CPU as a share of its cores over the measured time.
    pub relay_cpu_pct: f64,
    pub relay_cores: Vec<usize>,
    pub generator_cores: Vec<usize>,
    /// Which CPU time was counted, in words.
    pub counted: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    pub cpu: String,
    pub load_average: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Machine {
            cores: tollgate_dataplane::host_cores(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu: read("/proc/cpuinfo")
                .lines()
                .find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
                })
                .unwrap_or_default(),
            load_average: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub runs: Vec<RunRecord>,
    /// Per system: medians over repeated runs at the same load (compare).
    pub summary: Vec<Summary>,
    /// Largest call count each system held within the bounds (ramp).
    pub capacity: Vec<(String, usize)>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub system: String,
    pub runs: usize,
    pub median_cpu_ns_per_packet: f64,
    pub median_p99_us: u64,
    pub median_loss_pct: f64,
    /// Relative to the first system listed.
    pub cpu_per_packet_ratio: f64,
    /// Calls one relay core would carry at this CPU per packet (100 pps per call).
    pub calls_per_core_at_this_cost: f64,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

pub fn print_table(runs: &[RunRecord]) {
    println!(
        "{:<16} {:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>10} {:>7}",
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
        "CPU %"
    );
    for r in runs {
        let t = &r.traffic;
        println!(
            "{:<16} {:>6} {:>9} {:>9} {:>8.3} {:>8} {:>8} {:>9} {:>8.3} {:>10.0} {:>7.1}{}",
            r.system,
            r.calls,
            r.offered_pps,
            t.received,
            r.loss_pct,
            t.latency_us.p50,
            t.latency_us.p99,
            t.latency_us.p999,
            t.jitter_ms_mean,
            r.cpu_ns_per_packet,
            r.relay_cpu_pct,
            if t.late_sends > 0 {
                "  (generator fell behind)"
            } else {
                ""
            }
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

/// Systems to plot: the floor delivers nothing, so it has no loss or latency to draw.
fn systems(runs: &[RunRecord]) -> Vec<&'static str> {
    let mut s: Vec<&'static str> = Vec::new();
    for r in runs {
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
    let plotted = systems(runs);
    let runs: Vec<RunRecord> = runs
        .iter()
        .filter(|r| plotted.contains(&r.system))
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
        if let Some(r) = runs
            .iter()
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
