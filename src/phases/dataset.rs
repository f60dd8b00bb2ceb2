//! Phase 11, **dataset**: the export's text rows as a Stack-style dataset
//! ([`crate::dataset::build`]).
//!
//! Output (`WORKDIR/dataset/`; the pipeline publishes it at `[dataset] out` after every run,
//! [`crate::dataset::publish`]): `README.md` (the card), `metadata.json`, `funnel.png`,
//! `removed.parquet` (`row_id`, `repo`, `rel_path`, `status`, `dataset_status`,
//! `dedup_cluster`) and `data/<language>/train-NNNNN-of-MMMMM.parquet`.
//!
//! Licenses are detected first ([`crate::dataset::licenses`]): the walk's root license files
//! of every revision, read from the blob store through the content join, matched against the
//! SPDX texts; the build then looks each row's revision up.
//!
//! Memory: the content join while licenses are detected (as the export holds it), then see
//! [`crate::dataset::build`]: the sort budget, 4 bytes and a bit per candidate row, one
//! batch, the open writers' row groups.

use crate::artifacts::join::{self, JOIN};
use crate::config::Config;
use crate::dataset::build::{build, Build, BuildCounts};
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

/// Detects the licenses of every revision with a root license file, into the scratch folder.
fn licenses(ctx: &Context) -> Result<(Table, BuildCounts), PhaseError> {
    let detector =
        Detector::new(ctx.config.dataset.license_threshold).map_err(DatasetError::from)?;
    let roots = crate::artifacts::licenses::open(&ctx.upstream(Phase::Walk))?;
    let joined = join::load(&ctx.upstream(Phase::Content).join(JOIN))?;
    let store = BlobStores::open(&ctx.blobs())?;
    let dir = ctx.scratch.join("licenses");
    let (table, c) =
        detect_all(&detector, &roots, &joined, &store, &dir).map_err(DatasetError::from)?;
    let counts = BuildCounts {
        license_revisions: c.revisions,
        license_files: c.files,
        license_texts_matched: c.texts_matched,
        license_texts_unreadable: c.texts_unreadable,
        license_micros: c.micros,
        ..BuildCounts::default()
    };
    Ok((table, counts))
}

/// Builds the dataset of the export into `ctx.out`.
pub fn run(ctx: &Context) -> Result<BuildCounts, PhaseError> {
    let parts = table::parquet_files(&ctx.upstream(Phase::Export))?;
    let config = ctx.config;
    let (licenses, mut counts) = licenses(ctx)?;
    counts.add(&build(&Build {
        parts: &parts,
        input_rows: input_rows(ctx)?,
        out: ctx.out,
        scratch: ctx.scratch,
        options: &config.dataset,
        sort_budget: config.options.sort_memory_mb << 20,
        licenses: Some(&licenses),
        source: serde_json::json!({
            "metadata": config.metadata,
            "graph": config.graph,
        }),
        describe: &format!(
            "the metadata `{}`, resolved in the graph `{}`",
            config.metadata.display(),
            config.graph.display()
        ),
    })?);
    Ok(counts)
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
