//! Phase 11, **dataset**: the export's text rows as a Stack-style dataset
//! ([`crate::dataset::build`]).
//!
//! Output (`WORKDIR/dataset/`): `README.md` (the card), `metadata.json`, `funnel.png`,
//! `removed.parquet` (`row_id`, `repo`, `rel_path`, `status`, `dataset_status`,
//! `dedup_cluster`) and `data/<language>/train-NNNNN-of-MMMMM.parquet`.
//!
//! Memory: see [`crate::dataset::build`]: the sort budget, 4 bytes and a bit per candidate
//! row, one batch, the open writers' row groups.

use crate::config::Config;
use crate::dataset::build::{build, Build, BuildCounts};
use crate::model::{Phase, Shard};
use crate::table;

use super::{Context, Inputs, PhaseError};

/// Rows of the input: the walk's resolved files hold every one (the export may hold only
/// `ok` rows).
fn input_rows(ctx: &Context) -> Result<u64, PhaseError> {
    let mut n = 0;
    for f in crate::artifacts::resolved::files(&ctx.upstream(Phase::Walk))? {
        n += table::num_rows(&f)? as u64;
    }
    Ok(n)
}

/// Builds the dataset of the export into `ctx.out`.
pub fn run(ctx: &Context) -> Result<BuildCounts, PhaseError> {
    let parts = table::parquet_files(&ctx.upstream(Phase::Export))?;
    let config = ctx.config;
    Ok(build(&Build {
        parts: &parts,
        input_rows: input_rows(ctx)?,
        out: ctx.out,
        scratch: ctx.scratch,
        options: &config.dataset,
        sort_budget: config.options.sort_memory_mb << 20,
        source: serde_json::json!({
            "metadata": config.metadata,
            "graph": config.graph,
        }),
        describe: &format!(
            "the metadata `{}`, resolved in the graph `{}`",
            config.metadata.display(),
            config.graph.display()
        ),
    })?)
}

/// The dataset phase as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Dataset;
    type Counts = BuildCounts;

    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        let text = serde_json::to_string(&config.dataset).unwrap_or_default();
        Ok(Inputs::from([("dataset_options".to_string(), text)]))
    }

    fn run(ctx: &Context) -> Result<BuildCounts, PhaseError> {
        run(ctx)
    }
}
