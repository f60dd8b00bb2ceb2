//! `unearth hydrate`: the pipeline of a hydration ([`Flow::Hydrate`]) run whole, its counts
//! gathered from the phases' manifests into `WORKDIR/hydrate.json`.

use crate::config::Config;
use crate::hydrate::export::ExportCounts;
use crate::hydrate::ids::IdsCounts;
use crate::hydrate::{HydrateCounts, COUNTS};
use crate::model::{Counts, Flow, Phase};
use crate::phases::PhaseError;

use super::{PhaseOutcome, Pipeline, PipelineError};

/// Runs every phase of the hydration of `config` whose checkpoint is not current, then
/// publishes the dataset at `[dataset] out` (when set); returns the counts.
pub fn hydrate(config: Config, retry_missing: bool) -> Result<HydrateCounts, PipelineError> {
    let pipeline = Pipeline::hydrate(config)?.retry_missing(retry_missing);
    let outcomes = pipeline.run_all()?;
    let counts = counts(&outcomes);
    write_counts(&pipeline, &counts)?;
    Ok(counts)
}

/// What to run of a hydration's phase (the Slurm jobs run them one by one).
#[derive(Debug, Clone, Copy)]
pub enum Part {
    /// The phase whole (all its shards and their merge).
    Whole,
    /// One shard of a sharded phase.
    Shard(crate::model::Shard),
    /// The merge of a sharded phase's shards.
    Merge,
}

/// Runs one phase of the hydration of `config` (or a shard, or a merge), unless current;
/// every phase upstream must be current. After the dataset (whole or merged), `hydrate.json`
/// is written from the manifests of all four phases.
pub fn hydrate_phase(
    config: Config,
    phase: Phase,
    part: Part,
    retry_missing: bool,
) -> Result<PhaseOutcome, PipelineError> {
    let pipeline = Pipeline::hydrate(config)?.retry_missing(retry_missing);
    let outcome = match part {
        Part::Whole => pipeline.run_phase(phase)?,
        Part::Shard(s) => pipeline.run_shard(phase, s)?,
        Part::Merge => pipeline.merge(phase)?,
    };
    if phase == Phase::Dataset && !matches!(part, Part::Shard(_)) {
        let mut outcomes = Vec::new();
        for p in Flow::Hydrate.phases() {
            if let Some(manifest) = pipeline.workdir().manifest(p.name())? {
                // As the phases' jobs left them: the fetch's counts are its last run's.
                outcomes.push(PhaseOutcome {
                    phase: *p,
                    ran: true,
                    manifest,
                });
            }
        }
        write_counts(&pipeline, &counts(&outcomes))?;
    }
    Ok(outcome)
}

fn write_counts(pipeline: &Pipeline, counts: &HydrateCounts) -> Result<(), PipelineError> {
    let path = pipeline.workdir().root().join(COUNTS);
    let text = serde_json::to_vec_pretty(&counts).unwrap_or_default();
    crate::artifacts::write_atomically(&path, &text).map_err(|e| PipelineError::Phase {
        phase: Phase::Dataset,
        source: PhaseError::io(&path, e),
    })
}

/// The counts of a hydration, from its phases' manifests.
pub fn counts(outcomes: &[PhaseOutcome]) -> HydrateCounts {
    let mut c = HydrateCounts::default();
    for o in outcomes {
        let map = &o.manifest.counts;
        match o.phase {
            Phase::Content => {
                let ids = IdsCounts::from_map(map);
                c.blobs = ids.blobs;
            }
            Phase::Fetch => {
                c.fetch = Counts::from_map(map);
                if !o.ran {
                    // Reused: this run fetched nothing.
                    let f = &mut c.fetch;
                    (f.fetched, f.fetched_bytes, f.requests, f.retries) = (0, 0, 0, 0);
                }
            }
            Phase::Export => {
                let e = ExportCounts::from_map(map);
                c.rows = e.rows;
                c.status = e.status;
            }
            Phase::Dataset => c.dataset = Counts::from_map(map),
            _ => {}
        }
    }
    debug_assert!(outcomes
        .iter()
        .all(|o| Flow::Hydrate.phases().contains(&o.phase)));
    c
}
