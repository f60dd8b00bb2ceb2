//! The label pass measured two more ways: each strategy ([`crate::config::Strategy`]) on
//! the same upstream phases, and the decoder alone over the whole labels file.
//!
//! The strategies are compared in the benchmark's own work directory: after the phases ran
//! with the configured strategy, `reach`, `labels` and `walk` run again (each in its own
//! process, cold like the others) with the other one, and the `resolved` files of both runs
//! are compared byte for byte.
//!
//! The full decode reads every node of the labels file (warm: what is timed is the
//! decoder, against a raw read of the same file from the page cache) with the run's
//! requested names, on one thread and on all, so that the rate per core and its scaling show.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_128;

use super::child::{self, Usage};
use super::BenchError;
use crate::artifacts::bits::Bits;
use crate::artifacts::flat::FlatWriter;
use crate::config::Config;
use crate::graph::labels::LabelFile;
use crate::model::Phase;
use crate::phases::labels::{pass, Wanted};

/// One strategy's resolution of the same rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StrategyFigures {
    /// `levels` or `single-pass`.
    pub strategy: String,
    /// The reachable set's process (no work under `levels`).
    pub reach: Usage,
    /// The label pass's process.
    pub labels: Usage,
    /// The label pass's counts.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Whether its `resolved` files equal those of the configured strategy's run.
    pub identical: bool,
}

/// The decoder over every node of the labels file, warm.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecodeFigures {
    /// Threads.
    pub threads: usize,
    /// Seconds.
    pub seconds: f64,
    /// Bytes decoded (the whole file).
    pub bytes: u64,
    /// Arcs decoded.
    pub arcs: u64,
    /// Seconds of a raw read of the file from the page cache, in the same run.
    pub raw_seconds: f64,
}

impl DecodeFigures {
    /// Decoded bytes per second per thread.
    pub fn rate_per_core(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9) / self.threads.max(1) as f64
    }
}

/// Hash of every `resolved` file of a work directory, in name order.
fn resolved_hash(workdir: &Path) -> Result<u128, BenchError> {
    let dir = workdir.join(Phase::Walk.name());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| BenchError::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| BenchError::io(f, e))?;
        all.extend_from_slice(&xxh3_128(&bytes).to_le_bytes());
    }
    Ok(xxh3_128(&all))
}

/// Runs `reach`, `labels` and `walk` again with the strategy the configuration does not use,
/// in its work directory (`cfg` as saved at `dir`/`BENCH_CONFIG`); `drop` empties the cache.
pub fn other_strategy(
    exe: &Path,
    dir: &Path,
    cfg: &Config,
    drop: &dyn Fn() -> Result<(), BenchError>,
) -> Result<StrategyFigures, BenchError> {
    let before = resolved_hash(&cfg.workdir)?;
    let mut alt = cfg.clone();
    alt.options.strategy = cfg.options.strategy.other();
    let name = alt.options.strategy.name();
    let arg = super::save_config(&alt, &dir.join(format!("bench-{name}.toml")))?;
    let mut usage = Vec::new();
    for phase in [Phase::Reach, Phase::Labels, Phase::Walk] {
        drop()?;
        let log = child::log_path(dir, &format!("{}-{name}", phase.name()));
        usage.push(child::run(exe, &[phase.name(), "--config", &arg], &log)?);
    }
    Ok(StrategyFigures {
        strategy: name.to_string(),
        reach: usage[0].clone(),
        labels: usage[1].clone(),
        counts: super::phase_counts(&alt, Phase::Labels)?,
        identical: resolved_hash(&alt.workdir)? == before,
    })
}

/// Decodes every node of the labels file with the run's requested names, on 1 thread and
/// on all, warm; `scratch` receives the (discarded) entries.
pub fn full_decode(cfg: &Config, scratch: &Path) -> Result<Vec<DecodeFigures>, BenchError> {
    let out = |e: &dyn std::fmt::Display| BenchError::Output(e.to_string());
    let labels = LabelFile::open(&cfg.graph).map_err(|e| out(&e))?;
    let wanted = Wanted::read(&cfg.workdir.join(Phase::Names.name())).map_err(|e| out(&e))?;
    let n = labels.nodes();
    let all = Bits::from_words(vec![u64::MAX; n.div_ceil(64)], 0..n);
    // Warm the page cache, and time a raw read from it.
    let raw_seconds =
        super::raw_read("labels file, warm", &[labels.path().to_path_buf()], false)?.seconds;
    let path = scratch.join("full-decode.flat");
    let runs = super::on_one_and_all_cores(|| {
        let decode = || {
            let mut w = FlatWriter::create(&path)?;
            let c = pass(&labels, &all, 0..n, &wanted, (0, 0.0), &mut w)?;
            w.finish()?;
            Ok::<_, crate::phases::PhaseError>(c)
        };
        decode().map_err(|e| out(&e))
    })?;
    let figures = runs
        .into_iter()
        .map(|(threads, seconds, counts)| DecodeFigures {
            threads,
            seconds,
            bytes: labels.len(),
            arcs: counts.arcs,
            raw_seconds,
        })
        .collect();
    std::fs::remove_file(&path).map_err(|e| BenchError::io(&path, e))?;
    Ok(figures)
}
