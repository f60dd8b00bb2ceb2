//! `evolve` measured, when the archive's configuration names repositories (`[evolve] repos`
//! or `repos_file`; synthetic archives list every visited slug): pairs and bytes per second,
//! the share of directories the diffs skip by identity, and the rate it reads blobs from the
//! store against a raw sequential read of that store in the same run.

use std::path::{Path, PathBuf};

use super::child::{self, Usage};
use super::figures::Baseline;
use super::{cache, raw_read, BenchError};
use crate::config::Config;
use crate::evolve::EvolveCounts;

/// The baseline's name.
pub const STORE: &str = "blob store (all files)";

/// One run of `unearth evolve`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvolveFigures {
    /// Repositories asked for.
    pub repos: u64,
    /// What its process used.
    pub usage: Usage,
    /// The counts of its output's manifest.
    pub counts: EvolveCounts,
}

impl EvolveFigures {
    /// Pairs per second of wall time.
    pub fn pairs_per_second(&self) -> f64 {
        self.counts.pairs as f64 / self.usage.wall.max(1e-9)
    }

    /// Text written (codebases and diffs) per second of wall time, bytes.
    pub fn text_rate(&self) -> f64 {
        self.counts.text_bytes as f64 / self.usage.wall.max(1e-9)
    }

    /// Blob bytes read from the store, verified, per second of wall time.
    pub fn read_rate(&self) -> f64 {
        self.counts.blob_bytes_read as f64 / self.usage.wall.max(1e-9)
    }

    /// Share of the directories the diffs met that they skipped by identity.
    pub fn skipped_share(&self) -> f64 {
        let c = &self.counts;
        c.diff_dirs_skipped as f64 / (c.diff_dirs_skipped + c.diff_dirs_decoded).max(1) as f64
    }
}

/// Whether `cfg` names repositories for `evolve`.
pub fn wanted(cfg: &Config) -> bool {
    !cfg.evolve.repos.is_empty() || cfg.evolve.repos_file.is_some()
}

/// The raw read of a local blob store (none for a remote one).
pub fn store_baseline(cfg: &Config, cold: bool) -> Result<Option<Baseline>, BenchError> {
    let Some(dir) = cfg.fetch.store.strip_prefix("file://") else {
        return Ok(None);
    };
    let files: Vec<PathBuf> = cache::files_under(&[PathBuf::from(dir)]);
    raw_read(STORE, &files, cold).map(Some)
}

/// Runs `unearth evolve` in its own process on the benchmark's configuration; its output
/// goes to the benchmark's work directory.
pub fn run(
    exe: &Path,
    dir: &Path,
    cfg: &Config,
    cfg_arg: &str,
) -> Result<EvolveFigures, BenchError> {
    let repos = crate::evolve::repos_of(cfg, &[])
        .map_err(|e| BenchError::Output(e.to_string()))?
        .len() as u64;
    let log = child::log_path(dir, "evolve");
    let usage = child::run(exe, &["evolve", "--config", cfg_arg], &log)?;
    let manifest = crate::evolve::out_dir(cfg).join("manifest.json");
    let m = crate::evolve::output::Manifest::read(&manifest).ok_or_else(|| {
        BenchError::Output(format!("{} is missing or unreadable", manifest.display()))
    })?;
    Ok(EvolveFigures {
        repos,
        usage,
        counts: m.counts,
    })
}

/// The report's table.
pub fn report(e: &EvolveFigures, store: Option<&Baseline>) -> String {
    let c = &e.counts;
    let vs_store = store
        .map(|b| format!("{:.3}", e.read_rate() / b.rate()))
        .unwrap_or_else(|| "(remote store)".into());
    format!(
        "\n| evolve: repositories | with pairs | pairs | wall s | CPU s | peak anon MB | pairs/s | \
         text MB/s | blob MB read | blob MB/s read | blob read / raw read of the store | \
         blobs fetched (MB) | dirs diffed | skipped by identity | share skipped |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | {vs_store} | {} ({:.1}) | {} | {} | {:.3} |\n",
        e.repos,
        c.repos_found,
        c.pairs,
        e.usage.wall,
        e.usage.user + e.usage.system,
        e.usage.max_anon as f64 / 1e6,
        e.pairs_per_second(),
        e.text_rate() / 1e6,
        c.blob_bytes_read as f64 / 1e6,
        e.read_rate() / 1e6,
        c.blobs_fetched,
        c.blob_bytes_fetched as f64 / 1e6,
        c.diff_dirs_decoded,
        c.diff_dirs_skipped,
        e.skipped_share(),
    )
}
