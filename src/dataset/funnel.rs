//! Where the rows went: from the input rows, through each step that can lose one, to the rows
//! kept; and its picture (`funnel.png`).

use std::path::Path;

use plotters::prelude::*;

use crate::model::{DatasetStatus, RowStatus, Status, StatusCounts};

/// One step of the funnel: the rows still there after it, and what it removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stage {
    /// What the step checks.
    pub step: &'static str,
    /// Rows left after it.
    pub rows: u64,
    /// Rows it removed.
    pub removed: u64,
}

/// The export statuses each step removes, in order (a row leaves at the first that applies).
const RESOLUTION: [(&str, &[RowStatus]); 6] = [
    ("origin", &[RowStatus::Invalid, RowStatus::OriginNotFound]),
    (
        "commit",
        &[RowStatus::CommitNotFound, RowStatus::CommitNotInOrigin],
    ),
    (
        "path",
        &[
            RowStatus::PathNotFound,
            RowStatus::IsDirectory,
            RowStatus::Submodule,
        ],
    ),
    ("content", &[RowStatus::Skipped, RowStatus::ContentNotFound]),
    (
        "fetch",
        &[
            RowStatus::BlobMissing,
            RowStatus::CorruptBlob,
            RowStatus::FetchFailed,
        ],
    ),
    ("text", &[RowStatus::Binary, RowStatus::Symlink]),
];

/// The dataset statuses each later step removes.
const DATASET: [(&str, &[DatasetStatus]); 3] = [
    (
        "filters",
        &[
            DatasetStatus::UnknownLanguage,
            DatasetStatus::LanguageExcluded,
            DatasetStatus::LicenseExcluded,
            DatasetStatus::Vendor,
            DatasetStatus::Generated,
            DatasetStatus::LongLine,
            DatasetStatus::LongLines,
            DatasetStatus::LowAlphanum,
        ],
    ),
    ("exact dedup", &[DatasetStatus::ExactDuplicate]),
    ("near dedup", &[DatasetStatus::NearDuplicate]),
];

/// The funnel of `input` rows whose export statuses are `rows` and dataset statuses
/// `dataset`. Rows the export wrote with a status no step names (none today) are counted
/// at the text step.
pub fn stages(
    input: u64,
    rows: &StatusCounts<RowStatus>,
    dataset: &StatusCounts<DatasetStatus>,
) -> Vec<Stage> {
    let mut left = input;
    let mut out = vec![Stage {
        step: "input rows",
        rows: input,
        removed: 0,
    }];
    let mut push = |step, removed: u64| {
        let removed = removed.min(left);
        left -= removed;
        out.push(Stage {
            step,
            rows: left,
            removed,
        });
    };
    let named: u64 = RESOLUTION
        .iter()
        .flat_map(|(_, s)| s.iter())
        .map(|s| rows.get(*s))
        .sum();
    let unnamed = input
        .saturating_sub(named)
        .saturating_sub(rows.get(RowStatus::Ok));
    for (step, statuses) in RESOLUTION {
        let mut removed: u64 = statuses.iter().map(|s| rows.get(*s)).sum();
        if step == "text" {
            removed += unnamed;
        }
        push(step, removed);
    }
    for (step, statuses) in DATASET {
        push(step, statuses.iter().map(|s| dataset.get(*s)).sum());
    }
    out
}

/// Draws the funnel as horizontal bars, rows left after each step, into `path` (PNG).
pub fn draw(stages: &[Stage], path: &Path) -> Result<(), String> {
    crate::picture::font()?;
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let height = 80 + 36 * stages.len() as u32;
    let root = BitMapBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let top = stages.first().map_or(1, |s| s.rows).max(1) as f64;
    let n = stages.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption("Where the rows went", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(120)
        .build_cartesian_2d(0.0..top * 1.18, (0..n).into_segmented())
        .map_err(|e| err(&e))?;
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => stages
            .get((n - 1 - i) as usize)
            .map_or(String::new(), |s| s.step.to_string()),
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(stages.len())
        .y_label_formatter(&label)
        .x_desc("rows")
        .draw()
        .map_err(|e| err(&e))?;
    let bars = stages.iter().enumerate().map(|(i, s)| {
        let y = n - 1 - i as i32;
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(y)),
                (s.rows as f64, SegmentValue::Exact(y + 1)),
            ],
            RGBColor(70, 130, 180).filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        bar
    });
    chart.draw_series(bars).map_err(|e| err(&e))?;
    let text = stages.iter().enumerate().map(|(i, s)| {
        let y = n - 1 - i as i32;
        let share = 100.0 * s.rows as f64 / top;
        Text::new(
            format!("{} ({share:.1}%)", s.rows),
            (s.rows as f64 + top * 0.01, SegmentValue::CenterOf(y)),
            ("sans-serif", 14),
        )
    });
    chart.draw_series(text).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The count of each status as `name: count` pairs, for statuses with rows.
pub fn nonzero<S: Status>(counts: &StatusCounts<S>) -> Vec<(&'static str, u64)> {
    S::ALL
        .iter()
        .map(|s| (s.as_str(), counts.get(*s)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_add_up_and_the_picture_is_a_png() {
        let mut rows = StatusCounts::default();
        for (s, n) in [
            (RowStatus::Ok, 50),
            (RowStatus::OriginNotFound, 10),
            (RowStatus::CommitNotFound, 5),
            (RowStatus::PathNotFound, 5),
            (RowStatus::BlobMissing, 3),
            (RowStatus::Binary, 2),
        ] {
            for _ in 0..n {
                rows.bump(s);
            }
        }
        let mut ds = StatusCounts::default();
        for (s, n) in [
            (DatasetStatus::Kept, 40),
            (DatasetStatus::LongLine, 4),
            (DatasetStatus::ExactDuplicate, 4),
            (DatasetStatus::NearDuplicate, 2),
        ] {
            for _ in 0..n {
                ds.bump(s);
            }
        }
        let st = stages(75, &rows, &ds);
        let left: Vec<u64> = st.iter().map(|s| s.rows).collect();
        assert_eq!(left, [75, 65, 60, 55, 55, 52, 50, 46, 42, 40]);
        assert_eq!(st.iter().map(|s| s.removed).sum::<u64>(), 35);
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("funnel.png");
        draw(&st, &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
}
