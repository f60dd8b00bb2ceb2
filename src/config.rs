//! The TOML configuration of a run.
//!
//! ```toml
//! graph = "archive/graph/graph"          # basename of the compressed graph
//! metadata = "archive/metadata"          # a Parquet file, a folder of part_*.parquet, or a glob
//! workdir = "work"                       # checkpoints and outputs
//! orc = "archive/orc"                    # export tables, for the content join
//!
//! [options]
//! threads = 0                            # 0: all cores
//! origin_search_budget = 100000          # nodes one origin-match search may visit
//! url_templates = ["https://github.com/{slug}"]
//!
//! [fetch]
//! store = "s3://softwareheritage/content"  # or file://archive/objects/content
//! [export]
//! rows_per_file = 100000
//! ```
//!
//! Relative paths are relative to the folder of the configuration file, so a configuration
//! can travel with its data.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors reading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a configuration.
    #[error("invalid config {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Options of the phases, all with defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Nodes the origin-match search may visit for one (repo, prefix) pair before it gives up
    /// (the pair then gets `commit_not_in_origin`, flagged as budget-limited).
    pub origin_search_budget: usize,
    /// Origin URLs tried for a repo slug; `{slug}` is replaced by the row's `repo`.
    /// Each is also tried with a `.git` suffix and in lower case.
    pub url_templates: Vec<String>,
    /// Gap, in bytes, under which two byte ranges of the labels file are read as one.
    pub label_merge_gap: u64,
    /// Fraction of the labels file above which the label pass reads the whole file
    /// sequentially instead of ranges.
    pub label_dense_fraction: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            threads: 0,
            origin_search_budget: 100_000,
            url_templates: vec!["https://github.com/{slug}".to_string()],
            label_merge_gap: 64 << 10,
            label_dense_fraction: 0.5,
        }
    }
}

/// Options of the fetch phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchOptions {
    /// Where blobs are: `file://DIR` (an archive's `objects/content`) or
    /// `s3://BUCKET/PREFIX` (SWH's is `s3://softwareheritage/content`). A relative `file://`
    /// path is relative to the configuration file.
    pub store: String,
    /// S3 endpoint URL for S3-compatible servers (path-style addressing is then used).
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: String,
    /// Sign requests with the standard AWS credential chain instead of sending them unsigned.
    pub signed: bool,
    /// Requests in flight. The default keeps a link busy at ~150 ms first-byte latency.
    pub concurrency: usize,
    /// Attempts per blob before it is given up for this run (retried on the next).
    pub attempts: u32,
    /// Timeout of one attempt, seconds.
    pub timeout_secs: f64,
    /// First backoff, milliseconds; doubled at each attempt, with jitter.
    pub backoff_ms: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            store: "s3://softwareheritage/content".into(),
            endpoint: None,
            region: "us-east-1".into(),
            signed: false,
            concurrency: 256,
            attempts: 8,
            timeout_secs: 60.0,
            backoff_ms: 100,
        }
    }
}

/// Options of the export phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportOptions {
    /// Rows per output Parquet file.
    pub rows_per_file: usize,
    /// Export only rows whose status is `ok`.
    pub only_ok: bool,
    /// Also export the bytes of rows whose content is not UTF-8 (column `content_bytes`).
    pub include_binary: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            rows_per_file: 100_000,
            only_ok: false,
            include_binary: false,
        }
    }
}

/// Shards per sharded phase (see `shard.rs`); each is one job of a Slurm array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardOptions {
    /// Revision scan, by node range.
    pub scan: usize,
    /// Label pass, by node range.
    pub labels: usize,
    /// Content join, by ORC file.
    pub content: usize,
    /// Fetch, by sha1 range.
    pub fetch: usize,
    /// Nodes per checkpointed chunk of a scan or label-pass shard: a killed job loses at most
    /// one chunk. (Content join chunks are ORC files; the fetch keeps every blob.)
    pub chunk_nodes: usize,
}

impl Default for ShardOptions {
    fn default() -> Self {
        Self {
            scan: 1,
            labels: 1,
            content: 1,
            fetch: 1,
            chunk_nodes: 50_000_000,
        }
    }
}

impl ShardOptions {
    /// Shards of `phase`, or None for a phase that is not sharded.
    pub fn of(&self, phase: &str) -> Option<usize> {
        match phase {
            "scan" => Some(self.scan.max(1)),
            "labels" => Some(self.labels.max(1)),
            "content" => Some(self.content.max(1)),
            "fetch" => Some(self.fetch.max(1)),
            _ => None,
        }
    }
}

/// A run's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Basename of the compressed graph (`.../graph` for `.../graph.graph`).
    pub graph: PathBuf,
    /// Metadata input: one Parquet file, a folder of `part_*.parquet`, or a glob.
    pub metadata: PathBuf,
    /// Work directory: checkpoints of each phase and the outputs.
    pub workdir: PathBuf,
    /// Folder of the ORC export tables (`content`, `skipped_content`), for the content join.
    #[serde(default)]
    pub orc: Option<PathBuf>,
    /// Phase options.
    #[serde(default)]
    pub options: Options,
    /// Fetch options.
    #[serde(default)]
    pub fetch: FetchOptions,
    /// Export options.
    #[serde(default)]
    pub export: ExportOptions,
    /// Shards per sharded phase.
    #[serde(default)]
    pub shards: ShardOptions,
    /// Slurm resources per phase (see `slurm.rs`).
    #[serde(default)]
    pub slurm: crate::slurm::SlurmOptions,
}

impl Config {
    /// Reads `path`, resolving relative paths against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut config.graph, &mut config.metadata, &mut config.workdir]
            .into_iter()
            .chain(config.orc.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(dir) = config.fetch.store.strip_prefix("file://") {
            if Path::new(dir).is_relative() {
                config.fetch.store = format!("file://{}", base.join(dir).display());
            }
        } else if !config.fetch.store.starts_with("s3://") {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: format!(
                    "fetch.store {:?} must start with file:// or s3://",
                    config.fetch.store
                ),
            });
        }
        if config.options.url_templates.is_empty()
            || config
                .options
                .url_templates
                .iter()
                .any(|t| !t.contains("{slug}"))
        {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: "options.url_templates must be non-empty and each contain {slug}".into(),
            });
        }
        Ok(config)
    }

    /// A stable hash of the options, recorded in checkpoints so that a changed option redoes
    /// the phases it affects.
    pub fn options_hash(&self) -> String {
        let text = serde_json::to_string(&self.options).expect("options serialise");
        crate::hashes::hex(&crate::hashes::git_object_id("options", text.as_bytes()))
    }
}
