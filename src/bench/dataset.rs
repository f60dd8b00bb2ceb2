//! The dataset phase measured: rows per second of deduplication and of license detection,
//! from the phase's own counts, and its passes over the export's parts against a raw
//! sequential read of those parts in the same run.

use super::figures::{ArchiveFigures, Baseline};
use super::{raw_read, BenchError};
use crate::config::Config;
use crate::dataset::build::BuildCounts;
use crate::model::{Counts, DatasetStatus, Phase};

/// The baseline's name.
pub const PARTS: &str = "export parts";

/// The dataset phase's figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetFigures {
    /// The phase's counts.
    pub counts: BuildCounts,
    /// Bytes of the export's parts (the phase reads them twice).
    pub parts_bytes: u64,
}

impl DatasetFigures {
    /// Rows offered to deduplication per second of it.
    pub fn dedup_rate(&self) -> f64 {
        self.counts.dedup_candidates as f64 / (self.counts.dedup_micros as f64 / 1e6).max(1e-9)
    }

    /// Dataset rows per second of license detection (each row's license is its revision's).
    pub fn license_rate(&self) -> f64 {
        self.counts.rows as f64 / (self.counts.license_micros as f64 / 1e6).max(1e-9)
    }

    /// License files matched per second.
    pub fn license_files_rate(&self) -> f64 {
        self.counts.license_files as f64 / (self.counts.license_micros as f64 / 1e6).max(1e-9)
    }
}

/// The figures of the dataset phase that ran into `cfg`'s work directory, and the raw read
/// of the export's parts.
pub fn measure(cfg: &Config, cold: bool) -> Result<(DatasetFigures, Baseline), BenchError> {
    let counts = BuildCounts::from_map(&super::phase_counts(cfg, Phase::Dataset)?);
    let parts = crate::table::parquet_files(&cfg.workdir.join(Phase::Export.name()))
        .map_err(|e| BenchError::Output(e.to_string()))?;
    let base = raw_read(PARTS, &parts, cold)?;
    Ok((
        DatasetFigures {
            counts,
            parts_bytes: base.bytes,
        },
        base,
    ))
}

/// The report's table.
pub fn report(a: &ArchiveFigures, d: &DatasetFigures) -> String {
    let c = &d.counts;
    let wall = a.phase(Phase::Dataset.name()).map_or(0.0, |p| p.usage.wall);
    let vs_raw = a
        .baseline(PARTS)
        .map(|b| {
            let rate = 2.0 * d.parts_bytes as f64 / wall.max(1e-9);
            format!("{:.3}", rate / b.rate())
        })
        .unwrap_or_else(|| "-".into());
    format!(
        "\n| dataset: rows | kept | dedup candidates | exact / near dups | dedup s | dedup rows/s | \
         license revisions | license files | texts matched / reused | license s | license rows/s | \
         license files/s | phase wall s | two passes over the parts / raw read of them |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {} | {} / {} | {:.2} | {:.0} | {} | {} | {} / {} | {:.2} | {:.0} | {:.1} | {:.1} | {vs_raw} |\n",
        c.rows,
        c.status.get(DatasetStatus::Kept),
        c.dedup_candidates,
        c.status.get(DatasetStatus::ExactDuplicate),
        c.status.get(DatasetStatus::NearDuplicate),
        c.dedup_micros as f64 / 1e6,
        d.dedup_rate(),
        c.license_revisions,
        c.license_files,
        c.license_texts_matched,
        c.license_texts_reused,
        c.license_micros as f64 / 1e6,
        d.license_rate(),
        d.license_files_rate(),
        wall,
    )
}
