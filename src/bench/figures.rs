//! What one benchmark of one archive measured, saved as JSON so that models can be fitted
//! again without rerunning (`unearth bench --figures FILE`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::child::Usage;
use super::BenchError;

/// A raw sequential read of files, cold.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    /// What was read.
    pub what: String,
    /// Bytes.
    pub bytes: u64,
    /// Seconds.
    pub seconds: f64,
}

impl Baseline {
    /// Bytes per second.
    pub fn rate(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9)
    }
}

/// One phase's run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseFigures {
    /// The phase's name.
    pub phase: String,
    /// What its process used.
    pub usage: Usage,
    /// The counts of its manifest.
    pub counts: BTreeMap<String, u64>,
    /// For the sequential passes: the pass alone, timed inside the phase, seconds.
    pub pass_seconds: Option<f64>,
    /// For the sequential passes: the bytes of the files the pass reads.
    pub pass_bytes: Option<u64>,
    /// For the sequential passes: the baseline reading the same files.
    pub pass_baseline: Option<String>,
}

impl PhaseFigures {
    /// A count of the manifest (0 when absent).
    pub fn count(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }
}

/// The per-row baseline: rows resolved one at a time by random access, as `verify` walks
/// them (origin by URL, history searched forward for the prefix, path walked hop by hop).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowBaseline {
    /// Rows resolved.
    pub rows: u64,
    /// Seconds to open the graph.
    pub load_seconds: f64,
    /// Seconds to resolve them.
    pub seconds: f64,
    /// Rows whose status and content id equal the pipeline's.
    pub agreed: u64,
}

impl RowBaseline {
    /// Seconds per row.
    pub fn per_row(&self) -> f64 {
        self.seconds / self.rows.max(1) as f64
    }
}

/// The machine measured on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// Cores available.
    pub cores: u64,
    /// Memory, bytes.
    pub memory: u64,
}

impl Machine {
    /// This machine.
    pub fn here() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
        Self { cores, memory }
    }
}

/// Everything one benchmark of one archive measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArchiveFigures {
    /// A short name (the folder of the configuration).
    pub name: String,
    /// The graph's basename.
    pub graph: PathBuf,
    /// Graph nodes.
    pub nodes: u64,
    /// Graph arcs.
    pub arcs: u64,
    /// Whether caches were dropped before each phase and baseline.
    pub cold: bool,
    /// The machine.
    pub machine: Machine,
    /// Raw sequential reads.
    pub baselines: Vec<Baseline>,
    /// The phases, in order.
    pub phases: Vec<PhaseFigures>,
    /// The per-row random-access baseline, when the walk ran.
    pub random_access: Option<RowBaseline>,
    /// The external sorts' memory budget the phases ran with (`options.sort_memory_mb`;
    /// figures saved before it was recorded read as the default).
    #[serde(default = "default_sort_memory_mb")]
    pub sort_memory_mb: u64,
    /// The label strategy the phases ran with (figures saved before strategies existed ran
    /// the single pass).
    #[serde(default = "single_pass")]
    pub strategy: String,
    /// The label pass again with the other strategy.
    #[serde(default)]
    pub strategies: Vec<super::labels::StrategyFigures>,
    /// The decoder over the whole labels file, on 1 thread and on all.
    #[serde(default)]
    pub decode: Vec<super::labels::DecodeFigures>,
    /// The content join again with each source alone.
    #[serde(default)]
    pub joins: Vec<super::joins::SourceFigures>,
    /// Digestmap lookups alone, on 1 thread and on all.
    #[serde(default)]
    pub lookups: Vec<super::joins::LookupFigures>,
    /// `unearth evolve`, when the configuration names repositories.
    #[serde(default)]
    pub evolve: Option<super::evolve::EvolveFigures>,
    /// The dataset phase: dedup and license detection rates.
    #[serde(default)]
    pub dataset: Option<super::dataset::DatasetFigures>,
}

fn single_pass() -> String {
    crate::config::Strategy::SinglePass.name().to_string()
}

fn default_sort_memory_mb() -> u64 {
    crate::config::Options::default().sort_memory_mb as u64
}

/// The baseline of the whole graph folder: the storage's sequential read rate.
pub const DISK: &str = "graph folder (all files)";

impl ArchiveFigures {
    /// The figures of `phase`.
    pub fn phase(&self, phase: &str) -> Option<&PhaseFigures> {
        self.phases.iter().find(|p| p.phase == phase)
    }

    /// The baseline named `what`.
    pub fn baseline(&self, what: &str) -> Option<&Baseline> {
        self.baselines.iter().find(|b| b.what == what)
    }

    /// Sequential read rate of the storage, bytes per second.
    pub fn disk_rate(&self) -> f64 {
        self.baseline(DISK).map_or(f64::NAN, Baseline::rate)
    }

    /// Writes the figures as JSON.
    pub fn save(&self, path: &Path) -> Result<(), BenchError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| BenchError::Figures {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        crate::artifacts::write_atomically(path, text.as_bytes())
            .map_err(|e| BenchError::io(path, e))
    }

    /// Reads figures saved by [`ArchiveFigures::save`].
    pub fn load(path: &Path) -> Result<Self, BenchError> {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| BenchError::Figures {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}
