//! The content join measured by source: the phase again with each source alone (the ORC
//! scan; the digestmap with the graph's content properties), cold, each in its own process,
//! its `join.parquet` compared with the configured run's; and the digestmap's lookups alone
//! over a sample of every content it holds (warm, 1 thread and all), the rate per core.

use std::path::Path;

use super::child::{self, Usage};
use super::BenchError;
use crate::artifacts::join::JOIN;
use crate::config::Config;
use crate::model::{Phase, Sha1Git};
use crate::phases::content::Digests;

/// Ids the lookup benchmark samples at most.
const MAX_SAMPLE: usize = 4_000_000;

/// One source's content join of the same rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceFigures {
    /// `orc` or `digestmap`.
    pub source: String,
    /// The phase's process.
    pub usage: Usage,
    /// The phase's counts.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Whether its `join.parquet` equals the configured run's, byte for byte.
    pub identical: bool,
}

/// Digestmap lookups alone, warm.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LookupFigures {
    /// Threads.
    pub threads: usize,
    /// Ids looked up.
    pub ids: u64,
    /// Of those, found visible.
    pub found: u64,
    /// Seconds.
    pub seconds: f64,
}

impl LookupFigures {
    /// Ids per second per thread.
    pub fn rate_per_core(&self) -> f64 {
        self.ids as f64 / self.seconds.max(1e-9) / self.threads.max(1) as f64
    }
}

/// Runs the content phase with each source of `cfg` alone (none when it has only one), in
/// its work directory (`cfg` as saved at `dir`); `drop` empties the cache before each.
pub fn sources(
    exe: &Path,
    dir: &Path,
    cfg: &Config,
    drop: &dyn Fn() -> Result<(), BenchError>,
) -> Result<Vec<SourceFigures>, BenchError> {
    let join = cfg.workdir.join(Phase::Content.name()).join(JOIN);
    let read = |p: &Path| std::fs::read(p).map_err(|e| BenchError::io(p, e));
    let before = read(&join)?;
    let mut out = Vec::new();
    if cfg.orc.is_none() || cfg.digestmap.is_none() {
        return Ok(out);
    }
    for source in ["orc", "digestmap"] {
        let mut alt = cfg.clone();
        if source == "orc" {
            alt.digestmap = None;
        } else {
            alt.orc = None;
        }
        let arg = super::save_config(&alt, &dir.join(format!("bench-{source}.toml")))?;
        drop()?;
        let log = child::log_path(dir, &format!("content-{source}"));
        let usage = child::run(exe, &["content", "--config", &arg], &log)?;
        out.push(SourceFigures {
            source: source.to_string(),
            usage,
            counts: super::phase_counts(&alt, Phase::Content)?,
            identical: read(&join)? == before,
        });
    }
    Ok(out)
}

/// Looks up every k-th content of the digestmap (at most [`MAX_SAMPLE`], in its sorted
/// order, as the join asks), on 1 thread and on all, after a first pass that warms the
/// cache.
pub fn lookups(cfg: &Config) -> Result<Vec<LookupFigures>, BenchError> {
    let Some(dir) = &cfg.digestmap else {
        return Ok(Vec::new());
    };
    let out = |e: &dyn std::fmt::Display| BenchError::Output(e.to_string());
    let keys = dir.join(swh_digestmap::SHA1_GIT_FILENAME);
    let bytes = std::fs::read(&keys).map_err(|e| BenchError::io(&keys, e))?;
    let all = bytes.len() / 20;
    let step = all.div_ceil(MAX_SAMPLE).max(1);
    let ids: Vec<Sha1Git> = (0..all)
        .step_by(step)
        .map(|i| {
            let mut id = [0u8; 20];
            id.copy_from_slice(&bytes[i * 20..i * 20 + 20]);
            Sha1Git(id)
        })
        .collect();
    drop(bytes);
    let digests = Digests::open(dir, &cfg.graph, cfg.orc.is_none()).map_err(|e| out(&e))?;
    digests.lookup_all(&ids).map_err(|e| out(&e))?;
    let runs = super::on_one_and_all_cores(|| digests.lookup_all(&ids).map_err(|e| out(&e)))?;
    let figures = runs
        .into_iter()
        .map(|(threads, seconds, found)| LookupFigures {
            threads,
            ids: ids.len() as u64,
            found: found.len() as u64,
            seconds,
        })
        .collect();
    Ok(figures)
}
