//! `unearth evolve`: supervised fine-tuning pairs from software evolution, out of the
//! archive alone.
//!
//! For each repository: its origin (by the URL templates), the tags of its latest snapshot in
//! version order ([`releases`]), the consecutive pairs of the newest `max_versions`, and for
//! each pair the from-release's codebase (every file passing the filters, with its bytes)
//! and the diff to the next release ([`treediff`], walking both trees by node identity, and
//! [`patch`], as `git diff` prints it). File bytes come through the content join and the
//! verified pack store of the main pipeline ([`blobs`]). Repositories are handled in batches
//! (`batch_repos`), so memory holds one batch's file lists and one pair's texts; each batch is
//! a checkpoint ([`parts`]), so a rerun resumes and slices of the batches run as Slurm array
//! tasks.

pub mod blobs;
pub mod deps;
pub mod output;
pub mod parts;
pub mod patch;
pub mod releases;
pub mod renames;
pub mod treediff;
pub mod version;

use std::path::PathBuf;

use dsi_progress_logger::{progress_logger, ProgressLog};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::{Config, EvolveRepo};
use crate::graph::HistoryGraph;
use crate::model::hashes::hex;
use crate::model::{Sha1Git, Shard};
use crate::phases::PhaseError;
use blobs::{Blobs, Bytes};
use releases::Release;
use treediff::{Change, Entry, WalkCounts};

/// Errors of `evolve`.
#[derive(Debug, thiserror::Error)]
pub enum EvolveError {
    /// Neither a digestmap nor ORC tables to join blob ids with.
    #[error("evolve needs `digestmap` or `orc` in the configuration to find file bytes")]
    NoContentSource,
    /// No repository to work on.
    #[error("no repository: give `[[evolve.repos]]` or `repos_file` in the configuration, or --repos FILE")]
    NoRepos,
    /// A file of slugs without one.
    #[error("{0}: no repository slug in it")]
    EmptyReposFile(PathBuf),
    /// A glob that does not parse.
    #[error("repository {repo}: glob {glob:?}: {reason}")]
    Glob {
        /// The repository.
        repo: String,
        /// The glob.
        glob: String,
        /// Why.
        reason: String,
    },
    /// The join, the fetch or the store failed.
    #[error(transparent)]
    Phase(#[from] PhaseError),
    /// The graph could not be opened.
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    /// The work directory is another graph's, or not unearth's.
    #[error(transparent)]
    Checkpoint(#[from] crate::pipeline::CheckpointError),
    /// Writing the output failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The dependency mapping file does not parse.
    #[error("dependency map {path}: {reason}")]
    DependencyMap {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The output folder holds something unearth did not write.
    #[error("{0}: exists and is not an evolve output of unearth; choose another `[evolve] out`")]
    Foreign(PathBuf),
    /// A checkpoint or part file is not what its record says.
    #[error("{path}: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The merge found batches not done.
    #[error(
        "cannot merge {dir}: {what}; run those slices (or `unearth evolve` without --slice) first"
    )]
    Missing {
        /// The checkpoint folder.
        dir: PathBuf,
        /// Which batches and slices.
        what: String,
    },
    /// A slice outside `[evolve] slices`.
    #[error("--slice {slice}: the configuration has `[evolve] slices = {slices}`; slices must agree with it so that the merge job finds every batch")]
    SliceCount {
        /// The slice asked for.
        slice: Shard,
        /// The configuration's count.
        slices: usize,
    },
}

impl EvolveError {
    fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Path filters of one repository.
struct Filter {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl Filter {
    fn new(repo: &EvolveRepo, cfg: &Config) -> Result<Self, EvolveError> {
        let build = |globs: &[String]| -> Result<GlobSet, EvolveError> {
            let mut b = GlobSetBuilder::new();
            for g in globs {
                b.add(Glob::new(g).map_err(|e| EvolveError::Glob {
                    repo: repo.name.clone(),
                    glob: g.clone(),
                    reason: e.to_string(),
                })?);
            }
            b.build().map_err(|e| EvolveError::Glob {
                repo: repo.name.clone(),
                glob: globs.join(", "),
                reason: e.to_string(),
            })
        };
        let include = repo.include.as_ref().unwrap_or(&cfg.evolve.include);
        let exclude = repo.exclude.as_ref().unwrap_or(&cfg.evolve.exclude);
        Ok(Self {
            include: if include.is_empty() {
                None
            } else {
                Some(build(include)?)
            },
            exclude: build(exclude)?,
        })
    }

    fn keeps(&self, path: &[u8]) -> bool {
        let p = String::from_utf8_lossy(path);
        let p = p.as_ref();
        self.include.as_ref().is_none_or(|s| s.is_match(p)) && !self.exclude.is_match(p)
    }
}

/// One pair, planned: the two releases, the from-codebase and the changes (filtered).
struct PairPlan {
    from: Release,
    to: Release,
    codebase: Vec<Entry>,
    changes: Vec<Change>,
    deps: Vec<DepPlan>,
}

/// One dependency of a pair: its latest release's files, or why there are none.
struct DepPlan {
    dep: deps::Dependency,
    /// Shared by every pair of the batch that declares the dependency: its tree is listed
    /// once.
    found: std::sync::Arc<Result<(String, Vec<Entry>), String>>,
}

/// One repository, planned.
struct RepoPlan {
    name: String,
    url: Option<String>,
    snapshot: Option<String>,
    pairs: Vec<PairPlan>,
    /// Why there is no pair, when there is none.
    note: Option<String>,
    /// Pairs left out, and why.
    skipped: Vec<String>,
}

/// Counts of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EvolveCounts {
    /// Repositories asked for.
    pub repos: u64,
    /// Of those, found in the graph.
    pub repos_found: u64,
    /// Pairs written.
    pub pairs: u64,
    /// Directories decoded listing the from-release codebases.
    pub codebase_dirs_decoded: u64,
    /// Directories decoded by the tree diffs (where the two trees differ).
    pub diff_dirs_decoded: u64,
    /// Directories the diffs skipped by identity (the same subtree on both sides).
    pub diff_dirs_skipped: u64,
    /// Files inlined in codebases.
    pub files_inlined: u64,
    /// Files listed but not inlined (binary, over a cap, unavailable).
    pub files_listed: u64,
    /// Blob ids joined.
    pub blobs_wanted: u64,
    /// Blobs fetched in this run.
    pub blobs_fetched: u64,
    /// Bytes of input and output text written.
    pub text_bytes: u64,
    /// Bytes of the blobs fetched in this run.
    pub blob_bytes_fetched: u64,
    /// Bytes of blobs read from the store, verified (a blob read for the codebase and for
    /// the diff counts twice).
    pub blob_bytes_read: u64,
    /// Blobs that failed to fetch or read back damaged: their files are listed as
    /// unavailable, and the next run writes their batch again.
    pub blobs_failed: u64,
}

impl EvolveCounts {
    /// Adds another batch's counts.
    pub fn add(&mut self, o: &Self) {
        self.repos += o.repos;
        self.repos_found += o.repos_found;
        self.pairs += o.pairs;
        self.codebase_dirs_decoded += o.codebase_dirs_decoded;
        self.diff_dirs_decoded += o.diff_dirs_decoded;
        self.diff_dirs_skipped += o.diff_dirs_skipped;
        self.files_inlined += o.files_inlined;
        self.files_listed += o.files_listed;
        self.blobs_wanted += o.blobs_wanted;
        self.blobs_fetched += o.blobs_fetched;
        self.text_bytes += o.text_bytes;
        self.blob_bytes_fetched += o.blob_bytes_fetched;
        self.blob_bytes_read += o.blob_bytes_read;
        self.blobs_failed += o.blobs_failed;
    }
}

fn node_id(graph: &impl HistoryGraph, node: usize) -> Sha1Git {
    Sha1Git(graph.properties().swhid(node).hash)
}

/// Walk counts of the codebase listings and of the diffs.
#[derive(Default)]
struct Walks {
    codebase: WalkCounts,
    diff: WalkCounts,
}

fn plan_repo(
    graph: &impl HistoryGraph,
    cfg: &Config,
    repo: &EvolveRepo,
    walks: &mut Walks,
) -> Result<RepoPlan, EvolveError> {
    let filter = Filter::new(repo, cfg)?;
    let templates = &cfg.options.url_templates;
    let mut plan = RepoPlan {
        name: repo.name.clone(),
        url: None,
        snapshot: None,
        pairs: Vec::new(),
        note: None,
        skipped: Vec::new(),
    };
    let Some(rel) = releases::releases(graph, &repo.name, templates) else {
        plan.note = Some("origin not found, or it has no snapshot".into());
        return Ok(plan);
    };
    let props = graph.properties();
    plan.url = Some(repo_url(graph, rel.origin, &repo.name, templates));
    plan.snapshot = Some(props.swhid(rel.snapshot).to_string());
    let max = repo.max_versions.unwrap_or(cfg.evolve.max_versions);
    let pairs = releases::pairs(&rel.ordered, max);
    if pairs.is_empty() {
        plan.note = Some(format!("{} tag(s): no pair", rel.ordered.len()));
    }
    for (a, b) in pairs {
        let (from, to) = (rel.ordered[a].clone(), rel.ordered[b].clone());
        let (mut listed, mut diffed) = (WalkCounts::default(), WalkCounts::default());
        let codebase: Vec<Entry> = treediff::list(graph, from.root, b"", &mut listed)
            .into_iter()
            .filter(|e| filter.keeps(&e.path))
            .collect();
        let changes = treediff::diff(graph, from.root, to.root, &mut diffed)
            .into_iter()
            .filter_map(|c| filtered(c, &filter))
            .collect();
        walks.codebase.add(&listed);
        walks.diff.add(&diffed);
        if listed.over_cap || diffed.over_cap {
            plan.skipped.push(format!(
                "{} -> {}: more than {} files in a tree or a diff, left out",
                from.tag,
                to.tag,
                treediff::MAX_ENTRIES
            ));
            continue;
        }
        plan.pairs.push(PairPlan {
            from,
            to,
            codebase,
            changes,
            deps: Vec::new(),
        });
    }
    Ok(plan)
}

/// The origin URL of `origin`: the first of the slug's candidate URLs that names it.
fn repo_url(graph: &impl HistoryGraph, origin: usize, slug: &str, templates: &[String]) -> String {
    let id = graph.properties().swhid(origin);
    crate::graph::origins::candidate_urls(slug, templates)
        .into_iter()
        .find(|u| crate::model::hashes::origin_id(u) == id.hash)
        .unwrap_or_else(|| id.to_string())
}

/// `c` as the filters see it: a rename across the filter's edge becomes an addition or a
/// deletion; a change outside the filters, nothing.
fn filtered(c: Change, f: &Filter) -> Option<Change> {
    match c {
        Change::Renamed { old, new } => match (f.keeps(&old.path), f.keeps(&new.path)) {
            (true, true) => Some(Change::Renamed { old, new }),
            (false, true) => Some(Change::Added(new)),
            (true, false) => Some(Change::Deleted(old)),
            (false, false) => None,
        },
        c => f.keeps(c.path()).then_some(c),
    }
}

/// Whether `bytes` are text the pair can carry: UTF-8 without NUL (git's binary test looks
/// for NUL in the first 8000 bytes; JSON needs UTF-8).
fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// Whether `text` holds a carriage return not followed by a line feed.
fn has_bare_cr(text: &str) -> bool {
    let b = text.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'\r' && b.get(i + 1) != Some(&b'\n'))
}

/// The bytes of an entry as text, or why not.
fn text_of<'a>(
    blobs: &'a Blobs,
    graph: &impl HistoryGraph,
    e: &Entry,
    cap: u64,
    cache: &'a mut Vec<u8>,
) -> Result<&'a str, String> {
    match blobs.get(&node_id(graph, e.node)) {
        Bytes::Ok(b) if b.len() as u64 > cap => {
            Err(format!("over the size cap, {} bytes", b.len()))
        }
        Bytes::Ok(b) => {
            *cache = b;
            as_text(cache).ok_or_else(|| "binary".to_string())
        }
        Bytes::Unavailable(why) => Err(why),
    }
}

/// What a run of `evolve` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every batch not done, then the merge.
    All,
    /// The batches of one slice (a Slurm array task); no merge.
    Slice(Shard),
    /// Only the merge (every batch must be done).
    Merge,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Counts of the output (after a merge or when it was current), or of the batches this
    /// slice ran.
    pub counts: EvolveCounts,
    /// Batches of the whole run.
    pub batches: usize,
    /// Batches run now.
    pub batches_run: usize,
    /// Batches of this run's share found done.
    pub batches_done_before: usize,
    /// The output folder, when written or current.
    pub out: Option<PathBuf>,
    /// Whether the output was already current (nothing was done).
    pub up_to_date: bool,
}

/// The slugs of a file of repositories: one per line, blank lines and `#` comments skipped.
pub fn read_repos(path: &std::path::Path) -> Result<Vec<EvolveRepo>, EvolveError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvolveError::io(path, e))?;
    let repos: Vec<_> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|name| EvolveRepo {
            name: name.to_string(),
            include: None,
            exclude: None,
            max_versions: None,
        })
        .collect();
    if repos.is_empty() {
        return Err(EvolveError::EmptyReposFile(path.to_owned()));
    }
    Ok(repos)
}

/// The repositories of a run: `repos` when given, else the configuration's file or list.
pub fn repos_of(cfg: &Config, repos: &[EvolveRepo]) -> Result<Vec<EvolveRepo>, EvolveError> {
    let repos = match (&cfg.evolve.repos_file, repos.is_empty()) {
        (_, false) => repos.to_vec(),
        (Some(file), true) => read_repos(file)?,
        (None, true) => cfg.evolve.repos.clone(),
    };
    if repos.is_empty() {
        return Err(EvolveError::NoRepos);
    }
    Ok(repos)
}

/// The output folder: `[evolve] out`, by default `WORKDIR/evolve`.
pub fn out_dir(cfg: &Config) -> PathBuf {
    cfg.evolve
        .out
        .clone()
        .unwrap_or_else(|| cfg.workdir.join("evolve"))
}

/// Runs `evolve` for `repos` (the configuration's when empty).
pub fn run(cfg: &Config, repos: &[EvolveRepo], mode: Mode) -> Result<Outcome, EvolveError> {
    let repos = &repos_of(cfg, repos)?[..];
    if cfg.digestmap.is_none() && cfg.orc.is_none() {
        return Err(EvolveError::NoContentSource);
    }
    if let Mode::Slice(s) = mode {
        if s.count != cfg.evolve.slices {
            return Err(EvolveError::SliceCount {
                slice: s,
                slices: cfg.evolve.slices,
            });
        }
    }
    // The checkpoints and the blob store live in the work directory, which is bound to one
    // graph as for `run`.
    let fingerprint = crate::pipeline::GraphFingerprint::of(&cfg.graph)?;
    crate::pipeline::Workdir::open(&cfg.workdir, fingerprint)?;
    let out_dir = out_dir(cfg);
    let key = parts::key(cfg, repos)?;
    let pkey = parts::parts_key(&key, cfg.evolve.batch_repos);
    let batches = repos.len().div_ceil(cfg.evolve.batch_repos);
    let mut outcome = Outcome {
        counts: EvolveCounts::default(),
        batches,
        batches_run: 0,
        batches_done_before: 0,
        out: None,
        up_to_date: false,
    };
    if let Some(counts) = output::current(&out_dir, &key) {
        log::info!("{} is current: nothing to do", out_dir.display());
        outcome.counts = counts;
        outcome.out = Some(out_dir);
        outcome.up_to_date = true;
        // Parts a merge wrote the output from but did not get to remove.
        let left = cfg.workdir.join(parts::DIR).join(&pkey);
        if left.is_dir() {
            std::fs::remove_dir_all(&left).map_err(|e| EvolveError::io(&left, e))?;
        }
        return Ok(outcome);
    }
    // Refused before hours of work, and again when it is replaced.
    output::check_ours(&out_dir)?;
    let parts = parts::Parts::open(&cfg.workdir, &pkey, batches, repos.len())?;
    if mode != Mode::Merge {
        let (range, store) = match mode {
            Mode::Slice(s) => (
                parts::slice_batches(s, batches),
                format!("{}{:04}-of-{:04}", blobs::SLICE_STORES, s.index, s.count),
            ),
            _ => (0..batches, "evolve".to_string()),
        };
        let work = Work::open(cfg, &store)?;
        let in_range = |b: usize| {
            &repos[b * cfg.evolve.batch_repos..((b + 1) * cfg.evolve.batch_repos).min(repos.len())]
        };
        let mut pl = progress_logger!(item_name = "repository", display_memory = true);
        pl.expected_updates(Some(range.clone().map(|b| in_range(b).len()).sum()));
        pl.start("Planning, fetching and writing release pairs");
        for b in range {
            let batch = in_range(b);
            match parts.state(b)? {
                parts::State::Done => {
                    outcome.batches_done_before += 1;
                    pl.update_with_count(batch.len());
                    continue;
                }
                parts::State::Retry => {
                    log::info!("batch {b}: some blobs had failed, written again");
                    parts.redo(b)?;
                }
                parts::State::Missing => {}
            }
            let counts = work.batch(batch, &parts.part(b), &pkey, b, &mut pl)?;
            outcome.counts.add(&counts);
            outcome.batches_run += 1;
        }
        pl.done();
    }
    if let Mode::Slice(_) = mode {
        return Ok(outcome);
    }
    let missing = parts.missing()?;
    if !missing.is_empty() {
        return Err(EvolveError::Missing {
            dir: cfg.workdir.join(parts::DIR).join(&pkey),
            what: parts::describe_missing(&missing, batches, cfg.evolve.slices),
        });
    }
    outcome.counts = output::assemble(&parts.all(), &out_dir, &cfg.evolve.formats, &pkey, &key)?;
    parts.remove()?;
    outcome.out = Some(out_dir);
    Ok(outcome)
}

/// What every batch of a run shares: the graph, the dependency map, the blob store's name.
struct Work<'a, G> {
    cfg: &'a Config,
    graph: G,
    origin_map: deps::OriginMap,
    store: String,
    /// Blobs of the batch's dependency manifests that failed to fetch or read.
    dependency_failures: std::cell::Cell<u64>,
}

impl<'a> Work<'a, ()> {
    fn open(
        cfg: &'a Config,
        store: &str,
    ) -> Result<Work<'a, impl HistoryGraph + Sync>, EvolveError> {
        let graph = crate::graph::open_history(&cfg.graph)?;
        let origin_map = match &cfg.evolve.dependency_map {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| EvolveError::io(path, e))?;
                deps::OriginMap::parse(&text).map_err(|reason| EvolveError::DependencyMap {
                    path: path.clone(),
                    reason,
                })?
            }
            None => deps::OriginMap::default(),
        };
        Ok(Work {
            cfg,
            graph,
            origin_map,
            store: store.to_owned(),
            dependency_failures: Default::default(),
        })
    }
}

impl<G: HistoryGraph + Sync> Work<'_, G> {
    /// Plans, fetches and writes one batch as the part `dir`.
    fn batch(
        &self,
        batch: &[EvolveRepo],
        dir: &std::path::Path,
        key: &str,
        index: usize,
        pl: &mut impl ProgressLog,
    ) -> Result<EvolveCounts, EvolveError> {
        let (cfg, graph) = (self.cfg, &self.graph);
        let mut counts = EvolveCounts {
            repos: batch.len() as u64,
            ..Default::default()
        };
        self.dependency_failures.set(0);
        let mut writer =
            output::PartWriter::create(dir, &cfg.evolve.formats, &cfg.evolve.system_prompt)?;
        let mut walks = Walks::default();
        let mut plans: Vec<RepoPlan> = batch
            .iter()
            .map(|r| plan_repo(graph, cfg, r, &mut walks))
            .collect::<Result<_, _>>()?;
        if cfg.evolve.include_dependencies {
            add_dependencies(self, &mut plans, &mut walks.codebase)?;
        }
        counts.codebase_dirs_decoded += walks.codebase.decoded;
        counts.diff_dirs_decoded += walks.diff.decoded;
        counts.diff_dirs_skipped += walks.diff.skipped;
        let mut wanted: Vec<Sha1Git> = Vec::new();
        for p in plans.iter().flat_map(|r| &r.pairs) {
            let dep_entries = p
                .deps
                .iter()
                .filter_map(|d| d.found.as_ref().as_ref().ok())
                .flat_map(|f| &f.1);
            let entries = p
                .codebase
                .iter()
                .chain(dep_entries)
                .chain(p.changes.iter().flat_map(|c| {
                    let (old, new) = c.sides();
                    old.into_iter().chain(new)
                }));
            wanted.extend(
                entries
                    .filter(|e| e.kind.has_content())
                    .map(|e| node_id(graph, e.node)),
            );
        }
        wanted.sort_unstable();
        wanted.dedup();
        counts.blobs_wanted += wanted.len() as u64;
        let blobs = Blobs::prepare(cfg, &wanted, cfg.evolve.max_file_size, &self.store)?;
        counts.blobs_fetched += blobs.fetch.fetched;
        counts.blob_bytes_fetched += blobs.fetch.fetched_bytes;
        let mut in_flight: Option<output::Record> = None;
        for plan in &plans {
            let mut status = output::RepoStatus {
                repo: plan.name.clone(),
                origin_url: plan.url.clone(),
                pairs: 0,
                notes: plan.skipped.clone(),
            };
            if plan.pairs.is_empty() {
                status
                    .notes
                    .push(plan.note.clone().unwrap_or_else(|| "no pair".into()));
            } else {
                counts.repos_found += 1;
            }
            for pair in &plan.pairs {
                // Nothing to learn from, and `git apply` refuses an empty patch.
                if pair.changes.is_empty() {
                    status.notes.push(format!(
                        "{} -> {}: no change within the filters",
                        pair.from.tag, pair.to.tag
                    ));
                    continue;
                }
                // This pair is rendered while the one before is written: two pairs' texts
                // in memory at most.
                let (rendered, written) = rayon::join(
                    || {
                        let mut c = EvolveCounts::default();
                        (render(graph, cfg, &blobs, plan, pair, &mut c), c)
                    },
                    || in_flight.take().map_or(Ok(()), |r| writer.write(r)),
                );
                written?;
                let (record, c) = rendered;
                counts.add(&c);
                counts.text_bytes += (record.input_text.len() + record.output_text.len()) as u64;
                in_flight = Some(record);
                counts.pairs += 1;
                status.pairs += 1;
            }
            writer.repo(&status)?;
            pl.light_update();
        }
        if let Some(r) = in_flight.take() {
            writer.write(r)?;
        }
        counts.blob_bytes_read += blobs.bytes_read();
        counts.blobs_failed += blobs.failed() + self.dependency_failures.get();
        writer.finish(&counts, key, index)?;
        Ok(counts)
    }
}

/// Root-level files of `codebase` that declare dependencies.
fn manifests(codebase: &[Entry]) -> impl Iterator<Item = &Entry> {
    codebase
        .iter()
        .filter(|e| e.kind.has_content() && !e.path.contains(&b'/') && is_manifest_name(&e.path))
}

fn is_manifest_name(path: &[u8]) -> bool {
    let name = String::from_utf8_lossy(path);
    (name.starts_with("requirements") && name.ends_with(".txt"))
        || matches!(
            name.as_ref(),
            "pyproject.toml" | "setup.py" | "Cargo.toml" | "package.json" | "go.mod"
        )
}

/// The declared dependencies of each pair's from-release, to `dependency_depth` levels, each
/// with the files of its origin's latest release (or why not).
fn add_dependencies<G: HistoryGraph>(
    work: &Work<'_, G>,
    plans: &mut [RepoPlan],
    walks: &mut WalkCounts,
) -> Result<(), EvolveError> {
    let (graph, cfg, origin_map) = (&work.graph, work.cfg, &work.origin_map);
    let ev = &cfg.evolve;
    let mut cache: std::collections::HashMap<deps::Dependency, std::sync::Arc<_>> =
        Default::default();
    // Level by level: the manifests of this level's trees are fetched together.
    let mut frontier: Vec<(usize, usize, Vec<Entry>)> = Vec::new();
    for (r, plan) in plans.iter().enumerate() {
        for (p, pair) in plan.pairs.iter().enumerate() {
            frontier.push((r, p, manifests(&pair.codebase).cloned().collect()));
        }
    }
    for _ in 0..ev.dependency_depth {
        let ids: Vec<Sha1Git> = {
            let mut v: Vec<Sha1Git> = frontier
                .iter()
                .flat_map(|f| &f.2)
                .map(|e| node_id(graph, e.node))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        if ids.is_empty() {
            break;
        }
        let blobs = Blobs::prepare(cfg, &ids, ev.max_file_size, &work.store)?;
        let mut next = Vec::new();
        for (r, p, files) in frontier {
            let pair = &mut plans[r].pairs[p];
            for f in &files {
                let Bytes::Ok(bytes) = blobs.get(&node_id(graph, f.node)) else {
                    continue;
                };
                let name = String::from_utf8_lossy(&f.path);
                let file_name = name.rsplit('/').next().unwrap_or(&name);
                for dep in deps::parse(file_name, &String::from_utf8_lossy(&bytes)) {
                    if pair.deps.len() >= ev.max_dependencies
                        || pair.deps.iter().any(|d| d.dep == dep)
                    {
                        continue;
                    }
                    let found = cache
                        .entry(dep.clone())
                        .or_insert_with(|| {
                            std::sync::Arc::new(resolve_dependency(graph, origin_map, &dep, walks))
                        })
                        .clone();
                    if let Ok((_, entries)) = found.as_ref() {
                        next.push((r, p, manifests(entries).cloned().collect()));
                    }
                    pair.deps.push(DepPlan { dep, found });
                }
            }
        }
        frontier = next;
        work.dependency_failures
            .set(work.dependency_failures.get() + blobs.failed());
    }
    Ok(())
}

/// The files of `dep`'s origin at its latest release.
fn resolve_dependency(
    graph: &impl HistoryGraph,
    origin_map: &deps::OriginMap,
    dep: &deps::Dependency,
    walks: &mut WalkCounts,
) -> Result<(String, Vec<Entry>), String> {
    let urls = origin_map.urls(dep);
    let origin = urls
        .iter()
        .find_map(|u| crate::graph::origins::origin_node(graph, u))
        .ok_or_else(|| format!("not archived, tried {}", urls.join(", ")))?;
    let rel = releases::releases_of_origin(graph, origin)
        .ok_or_else(|| "archived without a snapshot".to_string())?;
    let latest = rel
        .ordered
        .last()
        .ok_or_else(|| "archived without a release".to_string())?;
    Ok((
        latest.tag.clone(),
        treediff::list(graph, latest.root, b"", walks),
    ))
}

/// The record of one pair.
fn render(
    graph: &impl HistoryGraph,
    cfg: &Config,
    blobs: &Blobs,
    repo: &RepoPlan,
    pair: &PairPlan,
    counts: &mut EvolveCounts,
) -> output::Record {
    let ev = &cfg.evolve;
    let props = graph.properties();
    // The codebase: every file with its bytes, in path order, while the cap allows.
    let mut input = String::new();
    let mut used = 0u64;
    let mut cache = Vec::new();
    for e in &pair.codebase {
        let name = patch::quote("", &e.path);
        if !e.kind.has_content() {
            input.push_str(&format!("=== {name} (submodule: not included) ===\n"));
            counts.files_listed += 1;
            continue;
        }
        match text_of(blobs, graph, e, ev.max_file_size, &mut cache) {
            Ok(text) if used + text.len() as u64 <= ev.max_codebase_size => {
                used += text.len() as u64;
                input.push_str(&format!("=== {name} ({} bytes) ===\n", text.len()));
                input.push_str(text);
                input.push('\n');
                counts.files_inlined += 1;
            }
            Ok(text) => {
                input.push_str(&format!(
                    "=== {name} ({} bytes, over the codebase cap: not included) ===\n",
                    text.len()
                ));
                counts.files_listed += 1;
            }
            Err(why) => {
                input.push_str(&format!("=== {name} ({why}: not included) ===\n"));
                counts.files_listed += 1;
            }
        }
    }
    // The dependencies: each one's files at its latest release, within the same cap.
    let mut num_dependencies = 0;
    for d in &pair.deps {
        let (tag, entries) = match d.found.as_ref() {
            Ok(f) => f,
            Err(why) => {
                input.push_str(&format!(
                    "=== dependency {} {} ({why}: not included) ===\n",
                    d.dep.ecosystem.name(),
                    patch::quote("", d.dep.name.as_bytes())
                ));
                continue;
            }
        };
        num_dependencies += 1;
        for e in entries {
            let name = format!(
                "dependency {} {} {}: {}",
                d.dep.ecosystem.name(),
                patch::quote("", d.dep.name.as_bytes()),
                patch::quote("", tag.as_bytes()),
                patch::quote("", &e.path)
            );
            let text = if e.kind.has_content() {
                text_of(blobs, graph, e, ev.max_file_size, &mut cache)
            } else {
                Err("submodule".to_string())
            };
            match text {
                Ok(text) if used + text.len() as u64 <= ev.max_codebase_size => {
                    used += text.len() as u64;
                    input.push_str(&format!("=== {name} ({} bytes) ===\n", text.len()));
                    input.push_str(text);
                    input.push('\n');
                }
                Ok(_) => input.push_str(&format!(
                    "=== {name} (over the codebase cap: not included) ===\n"
                )),
                Err(why) => input.push_str(&format!("=== {name} ({why}: not included) ===\n")),
            }
        }
    }
    // The diff: files that cannot be diffed as text are listed first, where `git apply`
    // skips text before the first `diff --git`.
    let mut listed = String::new();
    let mut diff = String::new();
    // Paired only when both sides pass every check the patch makes below, so that a rename
    // is never listed as "not diffed" (which would leave its old path in place).
    let readable = |e: &Entry| {
        let mut buf = Vec::new();
        text_of(blobs, graph, e, ev.max_file_size, &mut buf)
            .ok()
            .filter(|t| !has_bare_cr(t))
            .map(|t| t.as_bytes().to_vec())
    };
    let (changes, why) = renames::pair(pair.changes.clone(), ev.rename_similarity, readable);
    if let Some(why) = why {
        listed.push_str(&format!("# {why}\n"));
    }
    for scored in &changes {
        let c = &scored.change;
        let (old, new) = c.sides();
        let side_text = |e: Option<&Entry>| -> Result<Option<(String, String)>, String> {
            let Some(e) = e else { return Ok(None) };
            if !e.kind.has_content() {
                return Err("submodule".into());
            }
            let mut buf = Vec::new();
            let text = text_of(blobs, graph, e, ev.max_file_size, &mut buf)?.to_string();
            // git ends lines at \n only; a diff library that also ends them at a bare \r
            // would write hunks git cannot count.
            if has_bare_cr(&text) {
                return Err("a carriage return inside a line".into());
            }
            Ok(Some((hex(&node_id(graph, e.node).0), text)))
        };
        match (side_text(old), side_text(new)) {
            (Ok(a), Ok(b)) => {
                let sa =
                    old.zip(a.as_ref())
                        .map(|(e, (id, text))| patch::Side { entry: e, id, text });
                let sb =
                    new.zip(b.as_ref())
                        .map(|(e, (id, text))| patch::Side { entry: e, id, text });
                patch::patch(&mut diff, sa.as_ref(), sb.as_ref(), scored.similarity);
            }
            (Err(why), _) | (_, Err(why)) => {
                listed.push_str(&format!(
                    "# {} ({why}): not diffed\n",
                    patch::quote("", c.path())
                ));
            }
        }
    }
    let output_text = if listed.is_empty() {
        diff
    } else {
        format!("# Changed files not shown as text:\n{listed}{diff}")
    };
    let swhid = |n: usize| props.swhid(n).to_string();
    output::Record {
        repo_name: repo.name.clone(),
        from_version: pair.from.tag.clone(),
        to_version: pair.to.tag.clone(),
        input_tokens_approx: input.len() as u64 / 4,
        output_tokens_approx: output_text.len() as u64 / 4,
        input_text: input,
        output_text,
        num_files_in_codebase: pair.codebase.len() as u64,
        num_files_changed: changes.len() as u64,
        num_dependencies,
        origin_url: repo.url.clone().unwrap_or_default(),
        snapshot_id: repo.snapshot.clone().unwrap_or_default(),
        from_revision: pair.from.revision.map(swhid).unwrap_or_default(),
        to_revision: pair.to.revision.map(swhid).unwrap_or_default(),
        from_release: pair.from.release.map(swhid),
        to_release: pair.to.release.map(swhid),
    }
}
