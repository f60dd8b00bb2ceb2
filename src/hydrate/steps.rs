//! The `fetch` and `dataset` phases of a hydration: a run's own, on the hydration's inputs.

use std::path::PathBuf;

use crate::artifacts::fetched::FETCHED;
use crate::artifacts::ids;
use crate::config::Config;
use crate::dataset::build::{build_merge, build_shard, Build, BuildCounts};
use crate::model::{Phase, Shard};
use crate::phases::fetch::{FetchCounts, Want};
use crate::phases::{Context, Inputs, PhaseError, Step};
use crate::table;

/// The fetch of a hydration: each shard fetches its sha1 range of `content/ids.flat`,
/// streamed (a round of blobs at a time), exactly as a run's fetch shards do.
pub struct FetchStep;

impl Step for FetchStep {
    const PHASE: Phase = Phase::Fetch;
    type Counts = FetchCounts;

    fn inputs(config: &Config, shard: Shard) -> Result<Inputs, PhaseError> {
        <crate::phases::fetch::Step as Step>::inputs(config, shard)
    }

    fn reusable(counts: &FetchCounts, retry_missing: bool) -> bool {
        <crate::phases::fetch::Step as Step>::reusable(counts, retry_missing)
    }

    fn run(ctx: &Context) -> Result<FetchCounts, PhaseError> {
        let all = ids::open(&ctx.upstream(Phase::Content))?;
        let wants = ids::of_shard(&all, ctx.shard).map(|sha1| Want {
            sha1,
            sha1_git: None,
            length: None,
        });
        crate::phases::fetch::run(ctx, wants)
    }

    fn merge(
        ctx: &Context,
        shards: &[PathBuf],
        summed: FetchCounts,
    ) -> Result<FetchCounts, PhaseError> {
        crate::phases::concat_shards(shards, FETCHED, ctx.out)?;
        Ok(summed)
    }
}

/// The dataset of a hydration: the export's rows, with the input's own license columns;
/// shards of the first pass by MinHash band, as a run's dataset.
pub struct DatasetStep;

fn build_of<'a>(
    ctx: &'a Context,
    parts: &'a [PathBuf],
    input_rows: u64,
    describe: &'a str,
) -> Build<'a> {
    let config = ctx.config;
    let source = serde_json::json!({
        "metadata": config.metadata,
        "id_column": config.hydrate.id_column,
        "id_kind": config.hydrate.id_kind.as_str(),
        "store": config.fetch.store,
    });
    crate::phases::dataset::build_in(ctx, parts, input_rows, None, source, describe)
}

fn describe(config: &Config) -> String {
    format!(
        "the ids of `{}` (column `{}`), hydrated from `{}`",
        config.metadata.display(),
        config.hydrate.id_column,
        config.fetch.store
    )
}

impl Step for DatasetStep {
    const PHASE: Phase = Phase::Dataset;
    type Counts = BuildCounts;

    fn inputs(config: &Config, shard: Shard) -> Result<Inputs, PhaseError> {
        <crate::phases::dataset::Step as Step>::inputs(config, shard)
    }

    fn run(ctx: &Context) -> Result<BuildCounts, PhaseError> {
        let parts = table::parquet_files(&ctx.upstream(Phase::Export))?;
        let describe = describe(ctx.config);
        Ok(build_shard(
            &build_of(ctx, &parts, 0, &describe),
            ctx.shard,
        )?)
    }

    fn merge(
        ctx: &Context,
        shards: &[PathBuf],
        summed: BuildCounts,
    ) -> Result<BuildCounts, PhaseError> {
        let parts = table::parquet_files(&ctx.upstream(Phase::Export))?;
        // The export has every input row, each with its status.
        let mut input_rows = 0u64;
        for p in &parts {
            input_rows += table::num_rows(p)? as u64;
        }
        let describe = describe(ctx.config);
        let build = build_of(ctx, &parts, input_rows, &describe);
        Ok(build_merge(&build, shards, summed)?)
    }
}
