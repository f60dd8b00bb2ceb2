//! Software Heritage archives built from local git repositories.
//!
//! SWH identifies revisions, directories and contents by their git object ids, so an archive
//! built from git repositories has its ground truth in git itself: every later phase of unearth
//! is tested against archives made here and answers checked with `git`.
//!
//! [`build`] reads the repositories and writes, into one folder:
//!
//! - `orc/<table>/*.orc`: the tables of SWH's graph dataset export ([`tables`]);
//! - `graph/graph.*`: the compressed graph made from those tables by swh-graph's own
//!   compression code ([`compress`]);
//! - `objects/content/<sha1>`: every archived blob, gzip-compressed, keyed as in SWH's public
//!   S3 bucket ([`writer::BlobStore`]);
//! - `archive.json`: the manifest ([`Manifest`]), written last.
//!
//! Everything is written into a temporary sibling folder that is renamed into place at the
//! end, so a folder with a manifest is always complete.

pub mod compress;
pub mod demo;
pub mod git;
mod gitwrite;
pub mod spec;
pub mod synth;
pub mod tables;
pub mod writer;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use dsi_progress_logger::{progress_logger, ProgressLog};

use crate::hashes::{hex, origin_id, snapshot_id, BranchTarget};
pub use spec::RepoSpec;

/// Name of the manifest file at the top of an archive folder.
pub const MANIFEST: &str = "archive.json";

/// Version of the archive layout; bumped when what `build` writes changes.
pub const FORMAT_VERSION: u32 = 1;

/// Default for `--max-content-size`: blobs above 100 MiB go to `skipped_content`, as in SWH.
pub const DEFAULT_MAX_CONTENT_SIZE: u64 = 100 << 20;

/// Errors of archive building.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A `--repo` argument that cannot be read.
    #[error("invalid --repo {arg:?}: {reason}")]
    BadRepoArg {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--repo` path that is not a git repository.
    #[error("--repo path {path} is not a git repository: {reason}")]
    NotARepository {
        /// The path.
        path: PathBuf,
        /// Why it could not be opened.
        reason: String,
    },
    /// A repository that could be opened but not read.
    #[error("cannot read git repository {path}: {reason}")]
    Git {
        /// The repository.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// An output folder that cannot be created or replaced.
    #[error("cannot write --out {path}: {reason}")]
    Output {
        /// The `--out` folder.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A file that could not be written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An ORC table that could not be written.
    #[error("cannot write ORC table {path}: {reason}")]
    Orc {
        /// The table's file or folder.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// swh-graph's compression failed.
    #[error("graph compression failed: {0}")]
    Compress(String),
    /// Anything else, with its message.
    #[error("{0}")]
    Other(String),
}

impl ArchiveError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The repositories, one visit each.
    pub repos: Vec<RepoSpec>,
    /// Blobs larger than this many bytes are recorded in `skipped_content` and not stored.
    pub max_content_size: u64,
    /// Rows per ORC file before a table rolls over to its next file.
    pub rows_per_file: u64,
}

/// One visit as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VisitRecord {
    /// Origin URL.
    pub url: String,
    /// Repository path read.
    pub path: PathBuf,
    /// Visit number within the origin, from 1, in time order.
    pub visit: u32,
    /// Visit time, seconds since the epoch.
    pub time: i64,
    /// Snapshot id (hex).
    pub snapshot: String,
    /// Number of branches.
    pub branches: usize,
    /// `full`, or `partial` when objects were missing.
    pub status: String,
    /// Objects referenced but missing, as `id expected-type (referenced by ...)`.
    pub missing: Vec<String>,
}

/// The manifest of an archive folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the builder that wrote it.
    pub format_version: u32,
    /// What the builder was asked, in a form that identifies the input.
    pub max_content_size: u64,
    /// Every visit, in the order of the snapshot table.
    pub visits: Vec<VisitRecord>,
    /// Rows per ORC table.
    pub tables: BTreeMap<String, u64>,
    /// Graph nodes.
    pub nodes: u64,
    /// Graph arcs.
    pub arcs: u64,
    /// Blobs stored under `objects/content/`.
    pub stored_blobs: u64,
    /// Their total raw size.
    pub stored_blob_bytes: u64,
    /// Blobs in `skipped_content`.
    pub skipped_blobs: u64,
    /// Free-form provenance, e.g. the demo's seed.
    pub note: String,
}

impl Manifest {
    /// Reads the manifest of the archive at `dir`, if it has one.
    pub fn read(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(MANIFEST)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Paths inside an archive folder.
#[derive(Debug, Clone)]
pub struct ArchiveDir {
    /// The folder.
    pub root: PathBuf,
}

impl ArchiveDir {
    /// The archive at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// `orc/`, the export tables.
    pub fn orc(&self) -> PathBuf {
        self.root.join("orc")
    }
    /// Basename of the compressed graph.
    pub fn graph(&self) -> PathBuf {
        self.root.join("graph").join("graph")
    }
    /// `objects/content/`, the blob store.
    pub fn contents(&self) -> PathBuf {
        self.root.join("objects").join("content")
    }
}

/// A temporary folder beside the final one, renamed into place by [`Staging::commit`] and
/// removed if dropped before.
pub struct Staging {
    tmp: PathBuf,
    out: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates the temporary sibling of `out`.
    pub fn new(out: &Path) -> Result<Self, ArchiveError> {
        let bad = |reason: String| ArchiveError::Output {
            path: out.to_owned(),
            reason,
        };
        let name = out
            .file_name()
            .ok_or_else(|| bad("it has no final folder name".into()))?
            .to_string_lossy()
            .into_owned();
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(bad(format!("{} is not a folder", parent.display())));
        }
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| bad(e.to_string()))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            tmp,
            out: out.to_owned(),
            committed: false,
        })
    }

    /// The temporary folder to write into.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the temporary folder to the final path, replacing what was there.
    pub fn commit(mut self) -> Result<(), ArchiveError> {
        let bad = |reason: String| ArchiveError::Output {
            path: self.out.clone(),
            reason,
        };
        if self.out.exists() {
            let old = self.tmp.with_extension("old");
            std::fs::rename(&self.out, &old).map_err(|e| bad(e.to_string()))?;
            std::fs::rename(&self.tmp, &self.out).map_err(|e| bad(e.to_string()))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&self.tmp, &self.out).map_err(|e| bad(e.to_string()))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Builds an archive from `opts` into the folder `out` (replacing it), atomically.
pub fn build(out: &Path, opts: &BuildOptions, note: &str) -> Result<Manifest, ArchiveError> {
    // Open every repository before writing anything, so that a bad path fails fast.
    for spec in &opts.repos {
        git::GitRepo::open(&spec.path)?;
    }
    tables::check_orc_writer()?;
    let staging = Staging::new(out)?;
    let manifest = build_into(staging.path(), opts, note)?;
    staging.commit()?;
    Ok(manifest)
}

/// Builds an archive into the existing, empty folder `dir`.
pub fn build_into(dir: &Path, opts: &BuildOptions, note: &str) -> Result<Manifest, ArchiveError> {
    if opts.repos.is_empty() {
        return Err(ArchiveError::Other("no --repo given".into()));
    }
    let layout = ArchiveDir::new(dir);
    let tables = tables::Tables::create(&layout.orc(), opts.rows_per_file)?;
    let blobs = writer::BlobStore::create(&layout.contents())?;
    let mut sink = writer::ArchiveWriter::new(tables, blobs, opts.max_content_size);

    // Visits, grouped by origin and numbered in time order; a URL given twice is one origin
    // visited twice (a reused slug), two URLs on one repository are a fork.
    let mut visits: Vec<(String, i64, usize)> = opts
        .repos
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let t = s.visit_time.unwrap_or(spec::DEFAULT_VISIT_TIME + i as i64);
            (s.url.clone(), t, i)
        })
        .collect();
    visits.sort();

    let mut seen = HashSet::new();
    let mut snapshots = HashSet::new();
    let mut records = Vec::new();
    // Upper bound of what will be read (objects shared by forks count once per repository).
    let expected: u64 = opts
        .repos
        .iter()
        .filter_map(|s| git::GitRepo::open(&s.path).ok())
        .map(|r| r.object_count_estimate())
        .sum();
    let mut pl = progress_logger!(
        item_name = "object",
        display_memory = true,
        expected_updates = Some(expected as usize)
    );
    pl.start("Reading git objects");
    let mut last_url = None;
    let mut visit_no = 0u32;
    for (url, time, i) in &visits {
        let spec = &opts.repos[*i];
        if last_url.as_ref() != Some(url) {
            let id = hex(&origin_id(url));
            sink.tables
                .table("origin")
                .push(&[tables::Val::Str(Some(&id)), tables::Val::Str(Some(url))])?;
            last_url = Some(url.clone());
            visit_no = 0;
        }
        visit_no += 1;
        let repo = git::GitRepo::open(&spec.path)?;
        let visit = repo.visit(&mut seen, &mut sink, &mut || pl.light_update())?;
        let snp = snapshot_id(&visit.branches).map_err(ArchiveError::Other)?;
        let snp_hex = hex(&snp);
        if snapshots.insert(snp) {
            sink.tables
                .table("snapshot")
                .push(&[tables::Val::Str(Some(&snp_hex))])?;
            for (name, target) in &visit.branches {
                let target_text = match target {
                    BranchTarget::Alias(to) => String::from_utf8_lossy(to).into_owned(),
                    BranchTarget::Content(id)
                    | BranchTarget::Directory(id)
                    | BranchTarget::Revision(id)
                    | BranchTarget::Release(id) => hex(id),
                };
                sink.tables.table("snapshot_branch").push(&[
                    tables::Val::Str(Some(&snp_hex)),
                    tables::Val::Bin(Some(name)),
                    tables::Val::Str(Some(&target_text)),
                    tables::Val::Str(Some(target.type_name())),
                ])?;
            }
        }
        let status = if visit.missing.is_empty() {
            "full"
        } else {
            "partial"
        };
        for m in &visit.missing {
            log::warn!(
                "{}: {} {} is missing (referenced by {}); recorded, not archived",
                spec.path.display(),
                m.expected,
                hex(&m.id),
                m.referenced_by
            );
        }
        let ns = Some(time * 1_000_000_000);
        sink.tables.table("origin_visit").push(&[
            tables::Val::Str(Some(url)),
            tables::Val::I64(Some(visit_no as i64)),
            tables::Val::Ts(ns),
            tables::Val::Str(Some("git")),
        ])?;
        sink.tables.table("origin_visit_status").push(&[
            tables::Val::Str(Some(url)),
            tables::Val::I64(Some(visit_no as i64)),
            tables::Val::Ts(ns),
            tables::Val::Str(Some(status)),
            tables::Val::Str(Some(&snp_hex)),
            tables::Val::Str(Some("git")),
        ])?;
        records.push(VisitRecord {
            url: url.clone(),
            path: spec.path.clone(),
            visit: visit_no,
            time: *time,
            snapshot: snp_hex,
            branches: visit.branches.len(),
            status: status.to_string(),
            missing: visit
                .missing
                .iter()
                .map(|m| {
                    format!(
                        "{} {} (referenced by {})",
                        hex(&m.id),
                        m.expected,
                        m.referenced_by
                    )
                })
                .collect(),
        });
    }
    pl.done();
    let counts = sink.counts.clone();
    let table_rows: BTreeMap<String, u64> =
        sink.tables.finish(&layout.orc())?.into_iter().collect();

    let graph_dir = dir.join("graph");
    let scratch = dir.join(".scratch");
    for d in [&graph_dir, &scratch] {
        std::fs::create_dir_all(d).map_err(|e| ArchiveError::io(d, e))?;
    }
    let summary = compress::compress(&layout.orc(), &layout.graph(), &scratch)
        .map_err(|e| ArchiveError::Compress(format!("{e:#}")))?;
    std::fs::remove_dir_all(&scratch).map_err(|e| ArchiveError::io(&scratch, e))?;

    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        max_content_size: opts.max_content_size,
        visits: records,
        tables: table_rows,
        nodes: summary.nodes,
        arcs: summary.arcs,
        stored_blobs: counts.contents,
        stored_blob_bytes: counts.content_bytes,
        skipped_blobs: counts.skipped_contents,
        note: note.to_string(),
    };
    let path = dir.join(MANIFEST);
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    std::fs::write(&path, text + "\n").map_err(|e| ArchiveError::io(&path, e))?;
    Ok(manifest)
}
