//! The TOML configuration of a run, checked when it is loaded.
//!
//! ```toml
//! graph = "archive/graph/graph"          # basename of the compressed graph
//! metadata = "archive/metadata"          # a Parquet file, a folder of part_*.parquet, or a glob
//! workdir = "work"                       # checkpoints and outputs
//! orc = "archive/orc"                    # export tables, for the content join
//! digestmap = "archive/digestmap"        # SWH's sha1_git -> sha1 map: the join without a scan
//!
//! [options]
//! threads = 0                            # 0: all cores
//! origin_search_budget = 256             # backward-search nodes per pair before a forward pass
//! strategy = "levels"                    # or "single-pass": how the label pass finds directories
//! url_templates = ["https://github.com/{slug}"]
//!
//! [fetch]
//! store = "s3://softwareheritage/content"  # or file://archive/objects/content
//! [export]
//! rows_per_file = 100000
//! ```
//!
//! Relative paths are relative to the folder of the configuration file, and are made absolute
//! when it is loaded, so that a configuration can travel with its data and be used from any
//! directory. Every value is checked at load time ([`Config::load`]): a zero count, a negative
//! or NaN duration, a fraction outside 0..1 or an unknown phase name is an error naming its key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::Phase;

/// Errors reading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for a configuration.
    #[error("invalid config {path}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML reader said.
        reason: String,
    },
    /// A value out of its range.
    #[error("invalid config {path}: {key}: {reason}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The key, dotted (`fetch.concurrency`).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Options of the resolution phases, all with defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Nodes the backward search of one (repo, prefix) pair may visit (from its candidate
    /// revisions towards the origin's snapshots) before the pair is left to a forward
    /// traversal of the origin's whole history, which decides it exactly. Only speed depends
    /// on it. A commit near a branch head is found in a few nodes; a candidate from another
    /// repository (most of them, with 7-hex prefixes at full scale) exhausts any budget, so a
    /// small one is fast: the forward traversal is shared by all of the origin's pairs.
    pub origin_search_budget: usize,
    /// Origin URLs tried for a repo slug; `{slug}` is replaced by the row's `repo`. URLs are
    /// compared normalised, as GitHub resolves them: case-insensitive, with or without a
    /// `.git` suffix or a trailing slash.
    pub url_templates: Vec<String>,
    /// Memory for external sorts (plan, match), megabytes: more means fewer runs on disk.
    pub sort_memory_mb: usize,
    /// Gap, in bytes, under which two byte ranges of the labels file are read as one. The
    /// default, a page, reads the least (measured in BENCHMARKS.md: 64 KiB made the levels
    /// read most of the file at every depth); the kernel is told of the ranges ahead, so the
    /// many small reads are served concurrently.
    pub label_merge_gap: u64,
    /// Fraction of the labels file above which the label pass reads the whole file
    /// sequentially instead of ranges.
    pub label_dense_fraction: f64,
    /// How paths are resolved to directory entries: `levels` (one sweep per path depth over
    /// the directories the paths enter) or `single-pass` (one sweep over every directory
    /// reachable from the member revisions). Both give the same output.
    pub strategy: Strategy,
}

/// How the label pass finds the directories it decodes (see [`crate::phases::levels`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Level-synchronous: at depth d, only the directories the requested paths enter.
    #[default]
    Levels,
    /// The reachable set's directories, all depths, in one pass.
    SinglePass,
}

impl Strategy {
    /// The other strategy (benchmarks and tests compare the two).
    pub fn other(self) -> Self {
        match self {
            Strategy::Levels => Strategy::SinglePass,
            Strategy::SinglePass => Strategy::Levels,
        }
    }

    /// The name used in configurations.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Levels => "levels",
            Strategy::SinglePass => "single-pass",
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            threads: 0,
            origin_search_budget: 256,
            url_templates: vec!["https://github.com/{slug}".to_string()],
            sort_memory_mb: 1024,
            label_merge_gap: 4 << 10,
            label_dense_fraction: 0.5,
            strategy: Strategy::default(),
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
    /// Requests in flight at most. With `adaptive`, the fetch starts at
    /// `initial_concurrency` and finds its level below this one (AIMD: it grows while the
    /// latency holds and halves on `503 SlowDown`); without, it keeps this many.
    pub concurrency: usize,
    /// Requests in flight at the start, with `adaptive` (at most `concurrency`).
    pub initial_concurrency: usize,
    /// Adapt the requests in flight to the server (see `concurrency`).
    pub adaptive: bool,
    /// Memory for the bodies in flight, MiB: a request waits until its blob's cap fits, so
    /// that large blobs cannot exhaust memory whatever the concurrency.
    pub memory_mb: usize,
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
            concurrency: 2048,
            initial_concurrency: 64,
            adaptive: true,
            memory_mb: 1024,
            attempts: 8,
            timeout_secs: 60.0,
            backoff_ms: 100,
        }
    }
}

impl FetchOptions {
    /// What identifies the blob source (store, endpoint, region, signing): a blob missing
    /// from one source may be present in another, so statuses recorded against one are
    /// retried against another. The other options change how, not what, is fetched.
    pub fn source_id(&self) -> String {
        format!(
            "{} {} {} {}",
            self.store,
            self.endpoint.as_deref().unwrap_or_default(),
            self.region,
            if self.signed { "signed" } else { "unsigned" }
        )
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

/// Options of the dataset phase: the Stack-style dataset made of the export's rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetOptions {
    /// Where the dataset is published besides `WORKDIR/dataset` (a folder unearth made, or
    /// none there yet); relative to the configuration file. Not part of the phase's
    /// checkpoint (publishing is redone by every run), hence never serialised.
    #[serde(skip_serializing)]
    pub out: Option<PathBuf>,
    /// Uncompressed content bytes per Parquet file, in MB (a file holds at least one row).
    pub file_mb: u64,
    /// Languages kept (their names, as in `data/<language>/`, any case); empty keeps all.
    pub languages: Vec<String>,
    /// Keep rows whose language is not detected (under `data/unknown/`).
    pub keep_unknown_language: bool,
    /// Remove vendored files (`is_vendor`).
    pub drop_vendor: bool,
    /// Remove generated files (`is_generated`: names, markers, minified code).
    pub drop_generated: bool,
    /// Remove files with a line longer than this many characters (0: no limit).
    pub max_line_length: u64,
    /// Remove files whose mean line is longer than this (0: no limit).
    pub max_avg_line_length: f64,
    /// Remove files with a smaller fraction of letters and digits (0: no limit).
    pub min_alphanum_fraction: f64,
    /// Remove exact duplicates (the same sha1), keeping the first.
    pub exact_dedup: bool,
    /// Remove near duplicates (MinHash LSH), keeping one per cluster.
    pub near_dedup: bool,
    /// MinHash parameters of near-deduplication.
    pub minhash: crate::dataset::minhash::MinHashOptions,
    /// License types kept (`permissive`, `copyleft`, `other`, `no_license`); empty keeps all.
    pub license_types: Vec<crate::model::LicenseType>,
    /// Lowest match score (0 to 1) at which a license text counts as detected.
    pub license_threshold: f32,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        // StarCoder's filters and BigCode's dedup parameters.
        Self {
            out: None,
            file_mb: 256,
            languages: Vec::new(),
            keep_unknown_language: false,
            drop_vendor: false,
            drop_generated: true,
            max_line_length: 1000,
            max_avg_line_length: 100.0,
            min_alphanum_fraction: 0.25,
            exact_dedup: true,
            near_dedup: true,
            minhash: Default::default(),
            license_types: Vec::new(),
            // askalono's own default: a text scoring above 0.8 is that license.
            license_threshold: 0.8,
        }
    }
}

/// What the ids of a hydrated dataset are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// The content's sha1, the key of SWH's S3 bucket (The Stack v2's `blob_id`).
    Sha1,
    /// The content's git blob id (hex).
    Sha1Git,
    /// A content SWHID, `swh:1:cnt:<sha1_git>`.
    Swhid,
}

impl IdKind {
    /// Its name in configurations.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Sha1 => "sha1",
            IdKind::Sha1Git => "sha1_git",
            IdKind::Swhid => "swhid",
        }
    }
}

/// Options of `unearth hydrate`: which columns of the metadata say what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HydrateOptions {
    /// The column of ids.
    pub id_column: String,
    /// What the ids are.
    pub id_kind: IdKind,
    /// The column naming each file's encoding (WHATWG labels); rows without one are UTF-8.
    pub encoding_column: String,
    /// The column of file paths (for languages; absent: contents alone decide).
    pub path_column: String,
}

impl Default for HydrateOptions {
    fn default() -> Self {
        Self {
            id_column: "blob_id".into(),
            id_kind: IdKind::Sha1,
            encoding_column: "src_encoding".into(),
            path_column: "path".into(),
        }
    }
}

/// Shards per sharded phase (see [`crate::model::shard`]); each is one job of a Slurm array.
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
    /// Dataset deduplication, by MinHash band (at most `[dataset.minhash]`'s bands).
    pub dataset: usize,
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
            dataset: 1,
            chunk_nodes: 50_000_000,
        }
    }
}

impl ShardOptions {
    /// Shards of `phase`, or None for a phase that is not sharded.
    pub fn of(&self, phase: Phase) -> Option<usize> {
        phase.sharding()?;
        Some(match phase {
            Phase::Scan => self.scan,
            Phase::Labels => self.labels,
            Phase::Content => self.content,
            Phase::Fetch => self.fetch,
            Phase::Dataset => self.dataset,
            _ => 1,
        })
    }
}

/// Resources of one phase's Slurm jobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--cpus-per-task`.
    pub cpus: Option<u32>,
    /// `--mem`, e.g. `64G`.
    pub mem: Option<String>,
    /// `--time`, e.g. `2-00:00:00`.
    pub time: Option<String>,
}

/// The `[slurm]` section: defaults, per-phase overrides, and paths.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmOptions {
    /// Resources of every job unless a phase overrides them.
    pub default: Resources,
    /// Per-phase overrides, by phase name or `evolve` (checked when loaded).
    pub phases: BTreeMap<String, Resources>,
    /// sbatch template; defaults to the one shipped in `slurm/job.sbatch`.
    pub template: Option<PathBuf>,
    /// The `unearth` binary the jobs run; defaults to this one.
    pub binary: Option<PathBuf>,
}

impl SlurmOptions {
    /// The resources of `phase`'s jobs: its overrides, then the defaults.
    pub fn resources(&self, phase: Phase) -> Resources {
        self.resources_of(phase.name())
    }

    /// The resources of the jobs named `name` (a phase, or `evolve`): its overrides, then
    /// the defaults.
    pub fn resources_of(&self, name: &str) -> Resources {
        let d = &self.default;
        let r = self.phases.get(name).cloned().unwrap_or_default();
        Resources {
            partition: r.partition.or_else(|| d.partition.clone()),
            account: r.account.or_else(|| d.account.clone()),
            cpus: r.cpus.or(d.cpus),
            mem: r.mem.or_else(|| d.mem.clone()),
            time: r.time.or_else(|| d.time.clone()),
        }
    }
}

/// A run's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Basename of the compressed graph (`.../graph` for `.../graph.graph`). Needed by
    /// everything but `hydrate`.
    #[serde(default)]
    pub graph: PathBuf,
    /// Metadata input: one Parquet file, a folder of `part_*.parquet`, or a glob. Needed by
    /// `run` and its phases, not by `evolve`.
    #[serde(default)]
    pub metadata: PathBuf,
    /// Work directory: checkpoints of each phase and the outputs.
    pub workdir: PathBuf,
    /// Folder of the ORC export tables (`content`, `skipped_content`), for the content join.
    #[serde(default)]
    pub orc: Option<PathBuf>,
    /// Folder of Software Heritage's digestmap (sha1_git -> sha1): the content join looks the
    /// needed ids up in it instead of scanning the `content` table; `orc`, when also given,
    /// still supplies the reasons of skipped contents.
    #[serde(default)]
    pub digestmap: Option<PathBuf>,
    /// Phase options.
    #[serde(default)]
    pub options: Options,
    /// Fetch options.
    #[serde(default)]
    pub fetch: FetchOptions,
    /// Export options.
    #[serde(default)]
    pub export: ExportOptions,
    /// Dataset options.
    #[serde(default)]
    pub dataset: DatasetOptions,
    /// `unearth hydrate`: the metadata's id columns.
    #[serde(default)]
    pub hydrate: HydrateOptions,
    /// Shards per sharded phase.
    #[serde(default)]
    pub shards: ShardOptions,
    /// Slurm resources per phase.
    #[serde(default)]
    pub slurm: SlurmOptions,
    /// `unearth evolve`: release-to-release pairs.
    #[serde(default)]
    pub evolve: EvolveOptions,
}

/// One repository of `unearth evolve`, with its own filters and depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvolveRepo {
    /// Its slug (`psf/requests`), tried through `options.url_templates`.
    pub name: String,
    /// Globs of paths to keep (all when empty); replaces `[evolve] include`.
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Globs of paths to leave out; replaces `[evolve] exclude`.
    #[serde(default)]
    pub exclude: Option<Vec<String>>,
    /// Newest versions taken; replaces `[evolve] max_versions`.
    #[serde(default)]
    pub max_versions: Option<usize>,
}

/// An output format of `unearth evolve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvolveFormat {
    /// `pairs.jsonl.gz`: one JSON record per pair.
    Jsonl,
    /// `chat.jsonl.gz`: `messages` (system, user = codebase, assistant = diff).
    Chat,
    /// `pairs.parquet`.
    Parquet,
}

/// The `[evolve]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvolveOptions {
    /// The repositories.
    pub repos: Vec<EvolveRepo>,
    /// A file of repository slugs, one per line (`#` starts a comment), instead of `repos`
    /// (`unearth evolve --repos FILE` overrides both).
    pub repos_file: Option<PathBuf>,
    /// Globs of paths to keep (all when empty).
    pub include: Vec<String>,
    /// Globs of paths to leave out.
    pub exclude: Vec<String>,
    /// Newest versions of each repository taken (their consecutive pairs).
    pub max_versions: usize,
    /// Files larger than this are listed, not inlined or diffed, bytes.
    pub max_file_size: u64,
    /// Bytes of file text in one codebase at most; files beyond are listed, not inlined.
    pub max_codebase_size: u64,
    /// Include the sources of the from-release's dependencies (declared in root-level
    /// `requirements*.txt`, `pyproject.toml`, `setup.py`, `Cargo.toml`, `package.json`,
    /// `go.mod`), each at its archived origin's latest release.
    pub include_dependencies: bool,
    /// Levels of dependencies followed (1: those the repository declares).
    pub dependency_depth: usize,
    /// Dependencies included per pair at most.
    pub max_dependencies: usize,
    /// A TOML file mapping packages to origin URLs, one table per ecosystem (`[pypi]
    /// requests = "https://github.com/psf/requests"`), tried before the ecosystem's template
    /// (see `configs/dependency-origins.toml`).
    pub dependency_map: Option<PathBuf>,
    /// Output formats.
    pub formats: Vec<EvolveFormat>,
    /// Output folder (default `WORKDIR/evolve`).
    pub out: Option<PathBuf>,
    /// The system message of the chat format.
    pub system_prompt: String,
    /// A deleted and an added file at least this similar (percent of lines, as git's `-M`)
    /// are shown as a rename with its hunks; 0 keeps exact-content renames only.
    pub rename_similarity: u8,
    /// Repositories planned, fetched and written together: a checkpoint holds one batch
    /// (memory holds one batch's file lists).
    pub batch_repos: usize,
    /// Slurm array tasks of `unearth slurm submit --evolve`, each a contiguous slice of the
    /// batches, followed by a merge job.
    pub slices: usize,
}

impl Default for EvolveOptions {
    fn default() -> Self {
        Self {
            repos: Vec::new(),
            repos_file: None,
            include: Vec::new(),
            exclude: Vec::new(),
            max_versions: 20,
            max_file_size: 1 << 20,
            max_codebase_size: 100 << 20,
            include_dependencies: true,
            dependency_depth: 1,
            max_dependencies: 16,
            dependency_map: None,
            formats: vec![
                EvolveFormat::Jsonl,
                EvolveFormat::Chat,
                EvolveFormat::Parquet,
            ],
            out: None,
            system_prompt: "You are given the source code of a software project at one release. \
                            Write the diff that turns it into the next release."
                .into(),
            rename_similarity: 50,
            batch_repos: 64,
            slices: 1,
        }
    }
}

impl Config {
    /// Reads `path`, makes its paths absolute (relative ones are relative to its folder) and
    /// checks every value.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, &[])
    }

    /// Like [`load`](Self::load), with `KEY=VALUE` overrides applied first (`KEY` dotted, as
    /// `fetch.endpoint`; `VALUE` a TOML value, or else taken as a string).
    pub fn load_with(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let syntax = |e: &dyn std::fmt::Display| ConfigError::Syntax {
            path: path.to_owned(),
            reason: e.to_string().trim().replace('\n', " "),
        };
        let mut config: Config = if overrides.is_empty() {
            toml::from_str(&text).map_err(|e| syntax(&e))?
        } else {
            let mut table: toml::Table = toml::from_str(&text).map_err(|e| syntax(&e))?;
            for o in overrides {
                set_dotted(&mut table, o).map_err(|reason| ConfigError::Value {
                    path: path.to_owned(),
                    key: o.split('=').next().unwrap_or_default().to_string(),
                    reason,
                })?;
            }
            toml::Value::Table(table)
                .try_into()
                .map_err(|e| syntax(&e))?
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let base = std::path::absolute(parent).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        config.resolve_paths(&base);
        config
            .validate()
            .map_err(|(key, reason)| ConfigError::Value {
                path: path.to_owned(),
                key,
                reason,
            })?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.graph, &mut self.metadata, &mut self.workdir]
            .into_iter()
            .chain(self.orc.as_mut())
            .chain(self.digestmap.as_mut())
            .chain(self.slurm.template.as_mut())
            .chain(self.slurm.binary.as_mut())
            .chain(self.evolve.out.as_mut())
            .chain(self.dataset.out.as_mut())
            .chain(self.evolve.dependency_map.as_mut())
            .chain(self.evolve.repos_file.as_mut())
        {
            // An unset path (metadata of an evolve configuration) stays unset.
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        }
        if let Some(dir) = self.fetch.store.strip_prefix("file://") {
            if Path::new(dir).is_relative() {
                self.fetch.store = format!("file://{}", base.join(dir).display());
            }
        }
    }

    /// Checks every value; on failure, the dotted key and what is wrong.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, reason: String| Err((key.to_string(), reason));
        let at_most = |key: &str, v: u64, max: u64| {
            if v > max {
                fail(key, format!("must be at most {max}, got {v}"))
            } else {
                Ok(())
            }
        };
        let at_least_one = |key: &str, v: u64| {
            if v == 0 {
                fail(key, "must be at least 1, got 0".into())
            } else {
                Ok(())
            }
        };
        let o = &self.options;
        at_least_one(
            "options.origin_search_budget",
            o.origin_search_budget as u64,
        )?;
        if o.sort_memory_mb < 16 {
            return fail(
                "options.sort_memory_mb",
                format!("must be at least 16, got {}", o.sort_memory_mb),
            );
        }
        if o.url_templates.is_empty() {
            return fail("options.url_templates", "must not be empty".into());
        }
        if let Some(t) = o.url_templates.iter().find(|t| !t.contains("{slug}")) {
            return fail("options.url_templates", format!("{t:?} has no {{slug}}"));
        }
        if !(0.0..=1.0).contains(&o.label_dense_fraction) {
            return fail(
                "options.label_dense_fraction",
                format!(
                    "must be a fraction between 0 and 1, got {}",
                    o.label_dense_fraction
                ),
            );
        }
        let f = &self.fetch;
        if !(f.store.starts_with("file://") || f.store.starts_with("s3://")) {
            return fail(
                "fetch.store",
                format!("{:?} must start with file:// or s3://", f.store),
            );
        }
        if f.store
            .strip_prefix("s3://")
            .is_some_and(|r| r.split('/').next() == Some(""))
        {
            return fail("fetch.store", format!("{:?} names no bucket", f.store));
        }
        if let Some(ep) = &f.endpoint {
            let host = ep
                .strip_prefix("http://")
                .or_else(|| ep.strip_prefix("https://"))
                .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
            if host.is_none_or(|h| h.is_empty() || h.starts_with(':')) {
                return fail(
                    "fetch.endpoint",
                    format!("{ep:?} must be an http:// or https:// URL with a host"),
                );
            }
        }
        at_least_one("fetch.concurrency", f.concurrency as u64)?;
        at_most("fetch.concurrency", f.concurrency as u64, 100_000)?;
        at_least_one("fetch.initial_concurrency", f.initial_concurrency as u64)?;
        at_least_one("fetch.memory_mb", f.memory_mb as u64)?;
        at_least_one("fetch.attempts", f.attempts as u64)?;
        if !(f.timeout_secs.is_finite() && f.timeout_secs > 0.0 && f.timeout_secs <= 1e6) {
            return fail(
                "fetch.timeout_secs",
                format!(
                    "must be a positive number of seconds, got {}",
                    f.timeout_secs
                ),
            );
        }
        if f.region.trim().is_empty() {
            return fail("fetch.region", "must not be empty".into());
        }
        at_least_one("export.rows_per_file", self.export.rows_per_file as u64)?;
        let d = &self.dataset;
        at_least_one("dataset.file_mb", d.file_mb)?;
        at_most("dataset.file_mb", d.file_mb, 1 << 20)?;
        if !(d.max_avg_line_length.is_finite() && d.max_avg_line_length >= 0.0) {
            return fail(
                "dataset.max_avg_line_length",
                format!("must be 0 or more, got {}", d.max_avg_line_length),
            );
        }
        if !(0.0..=1.0).contains(&d.min_alphanum_fraction) {
            return fail(
                "dataset.min_alphanum_fraction",
                format!(
                    "must be a fraction between 0 and 1, got {}",
                    d.min_alphanum_fraction
                ),
            );
        }
        if let Some(out) = &d.out {
            let clash = if out.starts_with(&self.workdir) || self.workdir.starts_with(out) {
                Some(format!("the work directory {}", self.workdir.display()))
            } else {
                self.evolve
                    .out
                    .as_ref()
                    .filter(|e| out.starts_with(e) || e.starts_with(out))
                    .map(|e| format!("evolve's output {}", e.display()))
            };
            if let Some(what) = clash {
                return fail(
                    "dataset.out",
                    format!(
                        "{} overlaps {what}, which unearth manages apart; choose a folder \
                         outside it",
                        out.display()
                    ),
                );
            }
        }
        if !(d.license_threshold > 0.0 && d.license_threshold <= 1.0) {
            return fail(
                "dataset.license_threshold",
                format!(
                    "must be a score above 0 and at most 1, got {}",
                    d.license_threshold
                ),
            );
        }
        let m = &d.minhash;
        at_least_one("dataset.minhash.shingle", m.shingle as u64)?;
        at_least_one("dataset.minhash.permutations", m.permutations as u64)?;
        at_most("dataset.minhash.permutations", m.permutations as u64, 4096)?;
        at_most(
            "dataset.minhash.bands",
            m.bands as u64,
            m.permutations as u64,
        )?;
        if !(m.threshold > 0.0 && m.threshold <= 1.0) {
            return fail(
                "dataset.minhash.threshold",
                format!("must be in (0, 1], got {}", m.threshold),
            );
        }
        let e = &self.evolve;
        for (i, r) in e.repos.iter().enumerate() {
            if r.name.trim().is_empty() {
                return fail(
                    &format!("evolve.repos[{i}].name"),
                    "must not be empty".into(),
                );
            }
            if r.max_versions.is_some_and(|m| m < 2) {
                return fail(
                    &format!("evolve.repos[{i}].max_versions"),
                    "must be at least 2 (a pair needs two versions)".into(),
                );
            }
            for g in r.include.iter().chain(&r.exclude).flatten() {
                if let Err(err) = globset::Glob::new(g) {
                    return fail(&format!("evolve.repos[{i}]"), format!("glob {g:?}: {err}"));
                }
            }
        }
        if e.repos_file.is_some() && !e.repos.is_empty() {
            return fail(
                "evolve.repos_file",
                "give the repositories as `repos` or as `repos_file`, not both".into(),
            );
        }
        for g in e.include.iter().chain(&e.exclude) {
            if let Err(err) = globset::Glob::new(g) {
                return fail("evolve.include", format!("glob {g:?}: {err}"));
            }
        }
        if e.max_versions < 2 {
            return fail(
                "evolve.max_versions",
                format!(
                    "must be at least 2 (a pair needs two versions), got {}",
                    e.max_versions
                ),
            );
        }
        at_least_one("evolve.max_file_size", e.max_file_size)?;
        at_least_one("evolve.max_codebase_size", e.max_codebase_size)?;
        at_most("evolve.dependency_depth", e.dependency_depth as u64, 8)?;
        at_most("evolve.rename_similarity", e.rename_similarity as u64, 100)?;
        at_least_one("evolve.batch_repos", e.batch_repos as u64)?;
        at_most("evolve.batch_repos", e.batch_repos as u64, 1_000_000)?;
        at_least_one("evolve.slices", e.slices as u64)?;
        at_most("evolve.slices", e.slices as u64, 1_000_000)?;
        if e.formats.is_empty() {
            return fail("evolve.formats", "must name at least one format".into());
        }
        let s = &self.shards;
        at_least_one("shards.scan", s.scan as u64)?;
        at_most("shards.scan", s.scan as u64, 1_000_000)?;
        at_least_one("shards.labels", s.labels as u64)?;
        if s.labels > 1 && o.strategy == Strategy::Levels {
            return fail(
                "shards.labels",
                format!(
                    "strategy \"levels\" runs as one job (each level needs the one before it); \
                     got {} shards: set shards.labels = 1 or strategy = \"single-pass\"",
                    s.labels
                ),
            );
        }
        at_most("shards.labels", s.labels as u64, 1_000_000)?;
        at_least_one("shards.content", s.content as u64)?;
        at_most("shards.content", s.content as u64, 1_000_000)?;
        at_least_one("shards.fetch", s.fetch as u64)?;
        at_most("shards.fetch", s.fetch as u64, 1_000_000)?;
        at_least_one("shards.dataset", s.dataset as u64)?;
        // A shard owns a range of bands: more shards than bands would leave some idle.
        let bands = crate::dataset::minhash::MinHasher::new(&self.dataset.minhash)
            .map_or(1, |h| h.bands().0.max(1));
        at_most("shards.dataset", s.dataset as u64, bands as u64)?;
        at_least_one("shards.chunk_nodes", s.chunk_nodes as u64)?;
        for (name, r) in std::iter::once(("default", &self.slurm.default))
            .chain(self.slurm.phases.iter().map(|(k, v)| (k.as_str(), v)))
        {
            let key = if name == "default" {
                "slurm.default".to_string()
            } else {
                format!("slurm.phases.{name}")
            };
            if name != "default" && name != "evolve" && Phase::from_name(name).is_none() {
                return fail(
                    &key,
                    crate::model::phase::UnknownPhase(name.into()).to_string(),
                );
            }
            if r.cpus == Some(0) {
                return fail(&format!("{key}.cpus"), "must be at least 1, got 0".into());
            }
        }
        Ok(())
    }

    /// The phases this configuration runs, in order: without `orc` or `digestmap`, resolution
    /// only (plan to walk), since the content join needs one of them.
    pub fn phases(&self) -> Vec<Phase> {
        Phase::ALL
            .into_iter()
            .filter(|p| self.joins_contents() || !p.needs_orc())
            .collect()
    }

    /// Whether the configuration names what the content join reads: the ORC export tables,
    /// SWH's digestmap, or both.
    pub fn joins_contents(&self) -> bool {
        self.orc.is_some() || self.digestmap.is_some()
    }

    /// A stable fingerprint of the options that change which origins a slug finds (the URL
    /// templates), recorded in the checkpoints of the phases that use them, so that changing
    /// one redoes them and what follows. Options that only change speed (`threads`, the
    /// search budget, read sizes) are left out: changing them redoes nothing.
    pub fn origin_fingerprint(&self) -> String {
        let text = serde_json::to_string(&self.options.url_templates).unwrap_or_default();
        crate::model::hashes::hex(&crate::model::hashes::git_object_id(
            "options",
            text.as_bytes(),
        ))
    }
}

/// Sets `key=value` (dotted key, TOML value or string) in `table`.
fn set_dotted(table: &mut toml::Table, assignment: &str) -> Result<(), String> {
    let (key, value) = assignment
        .split_once('=')
        .ok_or_else(|| format!("override {assignment:?} is not KEY=VALUE"))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let (last, parents) = parts.split_last().ok_or("empty key")?;
    let mut t = table;
    for p in parents {
        t = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{p} is not a section"))?;
    }
    t.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            format!("graph = \"g\"\nmetadata = \"m\"\nworkdir = \"w\"\n{text}"),
        )
        .unwrap();
        Config::load(&path)
    }

    #[test]
    fn bad_values_are_refused_naming_their_key() {
        for (text, key) in [
            ("[fetch]\nconcurrency = 0", "fetch.concurrency"),
            ("[fetch]\nattempts = 0", "fetch.attempts"),
            ("[fetch]\ntimeout_secs = -1.0", "fetch.timeout_secs"),
            ("[fetch]\ntimeout_secs = nan", "fetch.timeout_secs"),
            ("[fetch]\nstore = \"http://x\"", "fetch.store"),
            ("[fetch]\nendpoint = \"\"", "fetch.endpoint"),
            ("[fetch]\nendpoint = \"127.0.0.1:9000\"", "fetch.endpoint"),
            ("[fetch]\nendpoint = \"http://:9000\"", "fetch.endpoint"),
            (
                "[options]\nlabel_dense_fraction = 1.5",
                "options.label_dense_fraction",
            ),
            (
                "[options]\nlabel_dense_fraction = nan",
                "options.label_dense_fraction",
            ),
            (
                "[options]\norigin_search_budget = 0",
                "options.origin_search_budget",
            ),
            (
                "[options]\nurl_templates = [\"x\"]",
                "options.url_templates",
            ),
            ("[export]\nrows_per_file = 0", "export.rows_per_file"),
            ("[shards]\nfetch = 0", "shards.fetch"),
            ("[shards]\nchunk_nodes = 0", "shards.chunk_nodes"),
            ("[slurm.phases.scann]\ncpus = 2", "slurm.phases.scann"),
            ("[slurm.default]\ncpus = 0", "slurm.default.cpus"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(&format!("{key}:")), "{text}: {e}");
        }
        // Negative counts do not even parse as counts; the reader names the key.
        let e = load("[fetch]\nconcurrency = -3").unwrap_err().to_string();
        assert!(e.contains("concurrency"), "{e}");
        assert!(load("[slurm.phases.match]\ncpus = 64").is_ok());
        // The levels strategy is one job: shards of the label pass need the single pass.
        let e = load("[shards]\nlabels = 4").unwrap_err().to_string();
        assert!(
            e.contains("shards.labels") && e.contains("single-pass"),
            "{e}"
        );
        let c = load("[options]\nstrategy = \"single-pass\"\n[shards]\nlabels = 4").unwrap();
        assert_eq!(c.options.strategy, Strategy::SinglePass);
        assert!(load("[options]\nstrategy = \"fast\"").is_err());
    }

    #[test]
    fn overrides_apply_before_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "graph = \"g\"\nmetadata = \"m\"\nworkdir = \"w\"\n").unwrap();
        let set = |o: &[&str]| {
            let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
            Config::load_with(&path, &o)
        };
        let c = set(&["fetch.endpoint=http://127.0.0.1:9", "fetch.concurrency=7"]).unwrap();
        assert_eq!(c.fetch.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(c.fetch.concurrency, 7);
        assert!(set(&["fetch.concurrency=0"])
            .unwrap_err()
            .to_string()
            .contains("fetch.concurrency"));
        assert!(set(&["nonsense"]).is_err());
    }

    #[test]
    fn relative_paths_become_absolute() {
        let c = load("orc = \"o\"\n[fetch]\nstore = \"file://objs\"").unwrap();
        for p in [&c.graph, &c.metadata, &c.workdir, c.orc.as_ref().unwrap()] {
            assert!(p.is_absolute(), "{}", p.display());
        }
        assert!(c.fetch.store.starts_with("file:///"), "{}", c.fetch.store);
    }
}
