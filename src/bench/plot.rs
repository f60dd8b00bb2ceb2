//! Pictures of cost against archive size, per phase (PNG, drawn with plotters).

use std::path::Path;

use plotters::prelude::*;

use super::figures::{ArchiveFigures, PhaseFigures};
use super::BenchError;

fn font() -> Result<(), BenchError> {
    crate::picture::font().map_err(BenchError::Plot)
}

/// A measure plotted against graph nodes.
pub struct Measure {
    /// File name (`time.png`).
    pub file: &'static str,
    /// Axis caption.
    pub caption: &'static str,
    /// The value of a phase's run.
    pub value: fn(&PhaseFigures) -> f64,
}

/// Wall seconds and peak anonymous MB.
pub const MEASURES: [Measure; 2] = [
    Measure {
        file: "time.png",
        caption: "wall seconds",
        value: |p| p.usage.wall,
    },
    Measure {
        file: "memory.png",
        caption: "peak anonymous MB",
        value: |p| p.usage.max_anon as f64 / 1e6,
    },
];

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Plot(e.to_string())
}

/// Draws `m` for every phase against the archives' node counts (log-log) into `dir/m.file`.
pub fn draw(archives: &[ArchiveFigures], m: &Measure, dir: &Path) -> Result<(), BenchError> {
    font()?;
    let path = dir.join(m.file);
    let mut sizes: Vec<&ArchiveFigures> = archives.iter().collect();
    sizes.sort_by_key(|a| a.nodes);
    let phases: Vec<String> = sizes
        .iter()
        .flat_map(|a| a.phases.iter().map(|p| p.phase.clone()))
        .fold(Vec::new(), |mut v, p| {
            if !v.contains(&p) {
                v.push(p);
            }
            v
        });
    let points: Vec<(f64, f64)> = sizes
        .iter()
        .flat_map(|a| a.phases.iter().map(|p| (a.nodes as f64, (m.value)(p))))
        .collect();
    // Nothing to draw (no phase, or figures without sizes): no picture rather than a
    // degenerate axis.
    if points.is_empty() || points.iter().any(|p| p.0 <= 0.0 || !p.1.is_finite()) {
        return Ok(());
    }
    let pos = |v: f64| v.max(1e-3);
    let (x0, x1) = points
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (y0, y1) = points.iter().fold((f64::MAX, 0f64), |(lo, hi), p| {
        (lo.min(pos(p.1)), hi.max(pos(p.1)))
    });
    let root = BitMapBackend::new(&path, (1100, 750)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "unearth: {} per phase ({} cache)",
                m.caption,
                if sizes.iter().all(|a| a.cold) {
                    "cold"
                } else {
                    "warm"
                }
            ),
            ("sans-serif", 26),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            ((x0 / 2.0).max(1.0)..x1 * 2.0).log_scale(),
            ((y0 / 2.0).max(1e-3)..y1 * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("graph nodes")
        .y_desc(m.caption)
        .x_labels(6)
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(err)?;
    for (i, phase) in phases.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let series: Vec<(f64, f64)> = sizes
            .iter()
            .filter_map(|a| a.phase(phase).map(|p| (a.nodes as f64, pos((m.value)(p)))))
            .collect();
        line(&mut chart, &series, color, phase.clone())?;
    }
    legend_and_save(&mut chart, &root)
}

/// A log-log chart on a bitmap.
type LogChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>;

/// Draws `points` as a labelled line with a dot at each point.
fn line(
    chart: &mut LogChart,
    points: &[(f64, f64)],
    color: RGBAColor,
    label: String,
) -> Result<(), BenchError> {
    chart
        .draw_series(LineSeries::new(points.to_vec(), color.stroke_width(2)))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
        .map_err(err)?;
    Ok(())
}

/// Draws the legend of `chart` and writes the picture.
fn legend_and_save<'a, 'b: 'a>(
    chart: &mut LogChart<'a, 'b>,
    root: &DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
) -> Result<(), BenchError> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// One archive's label pass under both strategies: (share of the reachable directories the
/// requested paths enter, levels pass / raw read, single pass / raw read).
type StrategyPoint = (f64, f64, f64);

fn strategy_point(a: &ArchiveFigures) -> Option<StrategyPoint> {
    let raw = a.baseline("graph-labelled.labels")?.seconds.max(1e-9);
    let labels = a.phase("labels")?;
    let other = a.strategies.first()?;
    let configured = |k: &str| labels.count(k);
    let alternative = |k: &str| other.counts.get(k).copied().unwrap_or(0);
    type Count<'a> = &'a dyn Fn(&str) -> u64;
    let (levels, single): (Count, Count) = match (a.strategy.as_str(), other.strategy.as_str()) {
        ("levels", "single-pass") => (&configured, &alternative),
        ("single-pass", "levels") => (&alternative, &configured),
        _ => return None,
    };
    let reachable = single("directories");
    if reachable == 0 {
        return None;
    }
    let time = |c: Count| c("pass_micros") as f64 / 1e6 / raw;
    Some((
        levels("directories") as f64 / reachable as f64,
        time(levels),
        time(single),
    ))
}

/// Draws the label pass of both strategies against request density (the share of reachable
/// directories the requested paths enter), one line per strategy and archive size, as a
/// ratio to a raw read of the labels file, into `dir/strategies.png`; nothing when no
/// archive compared the strategies.
pub fn strategies(archives: &[ArchiveFigures], dir: &Path) -> Result<(), BenchError> {
    let mut by_size: std::collections::BTreeMap<u64, Vec<StrategyPoint>> = Default::default();
    for a in archives {
        if let Some(p) = strategy_point(a) {
            by_size.entry(a.nodes).or_default().push(p);
        }
    }
    let all: Vec<StrategyPoint> = by_size.values().flatten().copied().collect();
    if all.is_empty() || all.iter().any(|p| !(p.0 > 0.0 && p.1 > 0.0 && p.2 > 0.0)) {
        return Ok(());
    }
    font()?;
    let fold = |f: fn(&StrategyPoint) -> f64| {
        all.iter()
            .fold((f64::MAX, 0f64), |(lo, hi), p| (lo.min(f(p)), hi.max(f(p))))
    };
    let (x0, x1) = fold(|p| p.0);
    let (y0, y1) = {
        let (a, b) = fold(|p| p.1);
        let (c, d) = fold(|p| p.2);
        (a.min(c), b.max(d))
    };
    let path = dir.join("strategies.png");
    let root = BitMapBackend::new(&path, (1100, 750)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "unearth: label pass by strategy and request density",
            ("sans-serif", 26),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x0 / 2.0..(x1 * 2.0).min(1.0).max(x0)).log_scale(),
            (y0 / 2.0..y1 * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("share of reachable directories on requested paths")
        .y_desc("pass time / raw read of the labels file")
        .x_labels(10)
        .x_label_formatter(&|x| format!("{x:.3}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(err)?;
    let mut i = 0;
    for (nodes, points) in &mut by_size {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (name, value) in [
            (
                "levels",
                (|p: &(f64, f64, f64)| p.1) as fn(&(f64, f64, f64)) -> f64,
            ),
            ("single-pass", |p| p.2),
        ] {
            let color = Palette99::pick(i).to_rgba();
            i += 1;
            let series: Vec<(f64, f64)> = points.iter().map(|p| (p.0, value(p))).collect();
            let label = format!("{name}, {nodes:.1e} nodes", nodes = *nodes as f64);
            line(&mut chart, &series, color, label)?;
        }
    }
    legend_and_save(&mut chart, &root)
}
