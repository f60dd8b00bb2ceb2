//! Phase 11, **dataset**: the export's text rows as a Stack-style dataset
//! ([`crate::dataset::build`]).
//!
//! Output (`WORKDIR/dataset/`; the pipeline publishes it at `[dataset] out` after every run,
//! [`crate::dataset::publish`]): `README.md` (the card), `metadata.json`, `funnel.png`,
//! `removed.parquet` (`row_id`, `repo`, `rel_path`, `status`, `dataset_status`,
//! `dedup_cluster`) and `data/<language>/train-NNNNN-of-MMMMM.parquet`.
//!
//! The phase shards by MinHash band (`[shards] dataset`, a Slurm array): each shard detects
//! the licenses ([`crate::dataset::licenses`]: the walk's root license files of every
//! revision, read from the blob store through the content join, matched against the SPDX
//! texts), judges every row, and does its part of the deduplication
//! ([`crate::dataset::dedup`]); the merge joins the clusters and writes the dataset, looking
//! each row's revision up in the licenses shard 0 wrote.
//!
//! Memory: the content join while licenses are detected (as the export holds it), then see
//! [`crate::dataset::build`]: the sort budget, 4 bytes and a bit per candidate row, one
//! batch, the open writers' row groups.

use crate::artifacts::join::{self, JOIN};
use crate::config::Config;
use crate::dataset::build::{build_merge, build_shard, Build, BuildCounts};
use crate::dataset::licenses::{detect_all, Detector, Table};
use crate::dataset::DatasetError;
use crate::model::{Counts, Phase, Shard};
use crate::store::BlobStores;
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

/// Detects the licenses of every revision with a root license file into `ctx.out`.
fn licenses(ctx: &Context) -> Result<(Table, BuildCounts), PhaseError> {
    let detector =
        Detector::new(ctx.config.dataset.license_threshold).map_err(DatasetError::from)?;
    let roots = crate::artifacts::licenses::open(&ctx.upstream(Phase::Walk))?;
    let joined = join::load(&ctx.upstream(Phase::Content).join(JOIN))?;
    let store = BlobStores::open(&ctx.blobs())?;
    let (table, c) =
        detect_all(&detector, &roots, &joined, &store, ctx.out).map_err(DatasetError::from)?;
    let counts = BuildCounts {
        license_revisions: c.revisions,
        license_files: c.files,
        license_texts_matched: c.texts_matched,
        license_texts_reused: c.texts_reused,
        license_texts_unreadable: c.texts_unreadable,
        license_micros: c.micros,
        ..BuildCounts::default()
    };
    Ok((table, counts))
}

/// A build of the dataset phase (of a run or a hydration) into `ctx.out`, with the
/// configuration's dataset options and sort budget.
pub fn build_in<'a>(
    ctx: &'a Context,
    parts: &'a [std::path::PathBuf],
    input_rows: u64,
    licenses: Option<&'a Table>,
    source: serde_json::Value,
    describe: &'a str,
) -> Build<'a> {
    Build {
        parts,
        input_rows,
        out: ctx.out,
        scratch: ctx.scratch,
        options: &ctx.config.dataset,
        sort_budget: ctx.config.options.sort_memory_mb << 20,
        licenses,
        source,
        describe,
    }
}

/// What a build of the run's dataset reads.
fn build_of<'a>(
    ctx: &'a Context,
    parts: &'a [std::path::PathBuf],
    input_rows: u64,
    licenses: &'a Table,
    describe: &'a str,
) -> Build<'a> {
    let source = serde_json::json!({
        "metadata": ctx.config.metadata,
        "graph": ctx.config.graph,
    });
    build_in(ctx, parts, input_rows, Some(licenses), source, describe)
}

fn describe(config: &Config) -> String {
    format!(
        "the metadata `{}`, resolved in the graph `{}`",
        config.metadata.display(),
        config.graph.display()
    )
}

/// The dataset phase as the pipeline drives it: shards of the first pass (each detects the
/// licenses and does its bands and sha1 range of the deduplication), then the merge, which
/// joins the clusters and writes the dataset.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Dataset;
    type Counts = BuildCounts;

    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        let text = serde_json::to_string(&config.dataset).unwrap_or_default();
        Ok(Inputs::from([("dataset_options".to_string(), text)]))
    }

    fn run(ctx: &Context) -> Result<BuildCounts, PhaseError> {
        let parts = table::parquet_files(&ctx.upstream(Phase::Export))?;
        // Every shard detects the same licenses (the filters of its first pass need them,
        // and each writes them for the merge); shard 0 alone reports them.
        let (licenses, mut counts) = licenses(ctx)?;
        if ctx.shard.index != 0 {
            counts = BuildCounts::default();
        }
        let describe = describe(ctx.config);
        let build = build_of(ctx, &parts, 0, &licenses, &describe);
        counts.add(&build_shard(&build, ctx.shard)?);
        Ok(counts)
    }

    fn merge(
        ctx: &Context,
        shards: &[std::path::PathBuf],
        summed: BuildCounts,
    ) -> Result<BuildCounts, PhaseError> {
        let parts = table::parquet_files(&ctx.upstream(Phase::Export))?;
        let detector =
            Detector::new(ctx.config.dataset.license_threshold).map_err(DatasetError::from)?;
        let first = shards.first().map(|d| d.as_path()).unwrap_or(ctx.out);
        let licenses = Table::open(&detector, first).map_err(DatasetError::from)?;
        let describe = describe(ctx.config);
        let build = build_of(ctx, &parts, input_rows(ctx)?, &licenses, &describe);
        Ok(build_merge(&build, shards, summed)?)
    }
}
