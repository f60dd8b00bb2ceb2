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
//! - `digestmap/`: SWH's sha1_git -> sha1 map of the visible contents, built by the
//!   `swh-digestmap` crate ([`crate::digestmap`]);
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

use crate::model::hashes::{hex, origin_id, snapshot_id, BranchTarget};
pub use spec::RepoSpec;

/// Name of the manifest file at the top of an archive folder.
pub const MANIFEST: &str = "archive.json";

/// Version of the archive layout; bumped when what `build` writes changes.
pub const FORMAT_VERSION: u32 = 2;

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
    #[error("I/O error on {path}")]
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
    /// The digestmap could not be built.
    #[error("cannot build the digestmap")]
    DigestMap(#[from] crate::digestmap::DigestMapError),
    /// swh-graph's compression failed.
    #[error("graph compression failed")]
    Compress(#[source] Box<dyn std::error::Error + Send + Sync>),
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

impl VisitRecord {
    /// The record of `visit`, the `visit_no`-th of `url`, read from `spec`; logs what is
    /// missing from the repository.
    fn of(
        url: &str,
        spec: &RepoSpec,
        visit_no: u32,
        time: i64,
        snapshot: String,
        visit: &git::Visit,
    ) -> Self {
        for m in &visit.missing {
            log::warn!(
                "{}: {} {} is missing (referenced by {}); recorded, not archived",
                spec.path.display(),
                m.expected,
                hex(&m.id),
                m.referenced_by
            );
        }
        let status = if visit.missing.is_empty() {
            "full"
        } else {
            "partial"
        };
        VisitRecord {
            url: url.to_string(),
            path: spec.path.clone(),
            visit: visit_no,
            time,
            snapshot,
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
        }
    }
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
    /// What the archive was built from (absent in archives of older builders).
    #[serde(default)]
    pub inputs: Option<BuildInputs>,
}

/// What identifies a build's input: the visits (URL, repository path made absolute, time)
/// and the options.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildInputs {
    /// `(url, path, visit time)` per `--repo`, in the order given.
    pub repos: Vec<(String, PathBuf, Option<i64>)>,
    /// `--max-content-size`.
    pub max_content_size: u64,
    /// `--rows-per-file`.
    pub rows_per_file: u64,
}

impl BuildInputs {
    /// The inputs of `opts`, with repository paths made canonical.
    pub fn of(opts: &BuildOptions) -> Result<Self, ArchiveError> {
        let repos = opts
            .repos
            .iter()
            .map(|r| {
                let path =
                    std::fs::canonicalize(&r.path).map_err(|e| ArchiveError::NotARepository {
                        path: r.path.clone(),
                        reason: e.to_string(),
                    })?;
                Ok((r.url.clone(), path, r.visit_time))
            })
            .collect::<Result<_, ArchiveError>>()?;
        Ok(Self {
            repos,
            max_content_size: opts.max_content_size,
            rows_per_file: opts.rows_per_file,
        })
    }
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The archive's manifest.
    pub manifest: Manifest,
    /// False when the folder already held this archive, up to date.
    pub built: bool,
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
    /// `digestmap/`, SWH's sha1_git -> sha1 map.
    pub fn digestmap(&self) -> PathBuf {
        self.root.join("digestmap")
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

/// `path` made absolute with every existing part resolved (symbolic links, `..`), so that
/// two spellings of one folder compare equal even when its last parts do not exist yet.
fn resolved_path(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_owned();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    for part in rest.iter().rev() {
        out.push(part);
    }
    out
}

/// Refuses an `--out` that is, contains or lies inside one of the repositories read.
pub fn check_out_apart(out: &Path, repos: &[PathBuf]) -> Result<(), ArchiveError> {
    let o = resolved_path(out);
    for repo in repos {
        let r = resolved_path(repo);
        let how = if o == r {
            "is"
        } else if o.starts_with(&r) {
            "lies inside"
        } else if r.starts_with(&o) {
            "contains"
        } else {
            continue;
        };
        return Err(ArchiveError::Output {
            path: out.to_owned(),
            reason: format!(
                "it {how} the repository {}, which the build reads",
                repo.display()
            ),
        });
    }
    Ok(())
}

/// What `--out` holds before a build: nothing (absent or empty), or a finished archive.
/// Anything else is refused: a build never deletes or replaces what it did not make.
pub fn existing_archive(out: &Path) -> Result<Option<Manifest>, ArchiveError> {
    let refuse = |reason: &str| ArchiveError::Output {
        path: out.to_owned(),
        reason: reason.to_string(),
    };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(refuse(&e.to_string())),
        Ok(m) if !m.is_dir() => Err(refuse("it exists and is not a folder")),
        Ok(_) => {
            let empty = std::fs::read_dir(out)
                .map_err(|e| refuse(&e.to_string()))?
                .next()
                .is_none();
            if empty {
                return Ok(None);
            }
            // An update interrupted half-way left the old manifest in its marker: the folder is
            // still that archive, and the next build of the same inputs completes the update.
            Manifest::read(out)
                .or_else(|| {
                    let text = std::fs::read_to_string(out.join(UPDATE_MARKER)).ok()?;
                    serde_json::from_str(&text).ok()
                })
                .map(Some)
                .ok_or_else(|| {
                    refuse(
                        "it is not empty and holds no finished archive (no archive.json); \
                         choose a new or empty folder",
                    )
                })
        }
    }
}

/// Written into an archive folder while an update replaces its entries: the manifest of the
/// archive being replaced, so that an interrupted update is still recognised as ours.
const UPDATE_MARKER: &str = ".unearth-update.json";

/// A temporary folder beside the final one, moved into place by [`Staging::commit`] and
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
        if !parent.exists() {
            return Err(bad(format!(
                "its folder {} does not exist (create it first)",
                parent.display()
            )));
        }
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

    /// Moves what was built into place. A new or empty `out` is replaced whole. Into an
    /// existing archive (checked by the caller to be one of the same inputs), each entry the
    /// build made replaces its namesake and nothing else in the folder is touched; the
    /// manifest goes last, so that a folder with a manifest is always complete.
    pub fn commit(mut self) -> Result<(), ArchiveError> {
        let bad = |reason: String| ArchiveError::Output {
            path: self.out.clone(),
            reason,
        };
        if !self.out.exists() {
            std::fs::rename(&self.tmp, &self.out).map_err(|e| bad(e.to_string()))?;
            self.committed = true;
            return Ok(());
        }
        let manifest = self.out.join(MANIFEST);
        let marker = self.out.join(UPDATE_MARKER);
        if manifest.exists() {
            // The old manifest moves into the marker first (write, then remove): at every
            // moment the folder names the archive it holds.
            let old = std::fs::read(&manifest).map_err(|e| bad(e.to_string()))?;
            let tmp_marker = self.out.join(format!("{UPDATE_MARKER}.tmp"));
            std::fs::write(&tmp_marker, old).map_err(|e| bad(e.to_string()))?;
            std::fs::rename(&tmp_marker, &marker).map_err(|e| bad(e.to_string()))?;
            std::fs::remove_file(&manifest).map_err(|e| bad(e.to_string()))?;
        }
        let trash = self.tmp.with_file_name(format!(
            "{}.old",
            self.tmp.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::create_dir_all(&trash).map_err(|e| bad(e.to_string()))?;
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&self.tmp)
            .map_err(|e| bad(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .filter(|n| n.as_os_str() != MANIFEST)
            .collect();
        names.sort();
        names.push(MANIFEST.into());
        let mut moved: Vec<std::ffi::OsString> = Vec::new();
        for name in names {
            let (from, to) = (self.tmp.join(&name), self.out.join(&name));
            if !from.exists() {
                continue;
            }
            let step = || -> std::io::Result<()> {
                if to.exists() {
                    std::fs::rename(&to, trash.join(&name))?;
                }
                std::fs::rename(&from, &to)
            };
            if let Err(e) = step() {
                // Put back what was replaced so far; the marker keeps naming the old archive.
                for n in moved.iter().rev() {
                    let _ = std::fs::rename(self.out.join(n), self.tmp.join(n));
                    let _ = std::fs::rename(trash.join(n), self.out.join(n));
                }
                let _ = std::fs::rename(trash.join(&name), self.out.join(&name));
                let _ = std::fs::rename(&marker, &manifest);
                return Err(bad(e.to_string()));
            }
            moved.push(name);
        }
        let _ = std::fs::remove_file(&marker);
        let _ = std::fs::remove_dir_all(&trash);
        let _ = std::fs::remove_dir_all(&self.tmp);
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

/// Whether every repository of `inputs` still has the snapshot `manifest` recorded for it.
fn up_to_date(manifest: &Manifest, inputs: &BuildInputs) -> bool {
    inputs.repos.iter().all(|(url, path, _)| {
        let now = git::GitRepo::open(path)
            .and_then(|r| r.snapshot_branches())
            .ok()
            .and_then(|b| snapshot_id(&b).ok())
            .map(|id| hex(&id));
        manifest
            .visits
            .iter()
            .any(|v| &v.url == url && Some(&v.snapshot) == now.as_ref())
    })
}

/// Builds an archive from `opts` into the folder `out`, atomically.
///
/// `out` must be new, empty, or an archive built from the same inputs: then it is left as
/// is when every repository still has the recorded snapshot, and updated otherwise (only
/// the entries a build makes are replaced). Anything else is refused, as is an `out` that
/// is, contains or lies inside a repository.
pub fn build(out: &Path, opts: &BuildOptions, note: &str) -> Result<BuildOutcome, ArchiveError> {
    // Open every repository before writing anything, so that a bad path fails fast.
    for spec in &opts.repos {
        git::GitRepo::open(&spec.path)?;
    }
    let paths: Vec<PathBuf> = opts.repos.iter().map(|r| r.path.clone()).collect();
    check_out_apart(out, &paths)?;
    let inputs = BuildInputs::of(opts)?;
    if let Some(existing) = existing_archive(out)? {
        if existing.inputs.as_ref() != Some(&inputs) {
            return Err(ArchiveError::Output {
                path: out.to_owned(),
                reason: "it holds an archive built from other repositories or options; \
                         choose a new or empty folder"
                    .into(),
            });
        }
        if existing.format_version == FORMAT_VERSION && up_to_date(&existing, &inputs) {
            return Ok(BuildOutcome {
                manifest: existing,
                built: false,
            });
        }
    }
    tables::check_orc_writer()?;
    let staging = Staging::new(out)?;
    let mut manifest = build_into(staging.path(), opts, note)?;
    manifest.inputs = Some(inputs);
    write_manifest(staging.path(), &manifest)?;
    staging.commit()?;
    Ok(BuildOutcome {
        manifest,
        built: true,
    })
}

/// Writes `manifest` as `dir/archive.json`.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), ArchiveError> {
    let path = dir.join(MANIFEST);
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| ArchiveError::Other(format!("manifest: {e}")))?;
    std::fs::write(&path, text + "\n").map_err(|e| ArchiveError::io(&path, e))
}

/// Writes a visit and its status into the export tables.
fn write_visit(
    t: &mut tables::Tables,
    url: &str,
    visit_no: u32,
    time: i64,
    status: &str,
    snp_hex: &str,
) -> Result<(), ArchiveError> {
    let ns = Some(time * 1_000_000_000);
    t.table("origin_visit")?.push(&[
        tables::Val::Str(Some(url)),
        tables::Val::I64(Some(visit_no as i64)),
        tables::Val::Ts(ns),
        tables::Val::Str(Some("git")),
    ])?;
    t.table("origin_visit_status")?.push(&[
        tables::Val::Str(Some(url)),
        tables::Val::I64(Some(visit_no as i64)),
        tables::Val::Ts(ns),
        tables::Val::Str(Some(status)),
        tables::Val::Str(Some(snp_hex)),
        tables::Val::Str(Some("git")),
    ])
}

/// Writes the archive's digestmap from its `content` tables.
fn digestmap_into(dir: &Path) -> Result<u64, ArchiveError> {
    let layout = ArchiveDir::new(dir);
    Ok(crate::digestmap::build_from_orc(
        &layout.orc(),
        &layout.digestmap(),
    )?)
}

/// Compresses the archive's ORC tables into its `graph/` folder.
fn compress_into(dir: &Path) -> Result<compress::GraphSummary, ArchiveError> {
    let layout = ArchiveDir::new(dir);
    let graph_dir = dir.join("graph");
    let scratch = dir.join(".scratch");
    for d in [&graph_dir, &scratch] {
        std::fs::create_dir_all(d).map_err(|e| ArchiveError::io(d, e))?;
    }
    let summary = compress::compress(&layout.orc(), &layout.graph(), &scratch)
        .map_err(ArchiveError::Compress)?;
    std::fs::remove_dir_all(&scratch).map_err(|e| ArchiveError::io(&scratch, e))?;
    Ok(summary)
}

/// Writes a snapshot and its branches into the export tables.
fn write_snapshot(
    t: &mut tables::Tables,
    snp_hex: &str,
    branches: &[(Vec<u8>, BranchTarget)],
) -> Result<(), ArchiveError> {
    t.table("snapshot")?
        .push(&[tables::Val::Str(Some(snp_hex))])?;
    for (name, target) in branches {
        let target_text = match target {
            BranchTarget::Alias(to) => String::from_utf8_lossy(to).into_owned(),
            BranchTarget::Content(id)
            | BranchTarget::Directory(id)
            | BranchTarget::Revision(id)
            | BranchTarget::Release(id) => hex(id),
        };
        t.table("snapshot_branch")?.push(&[
            tables::Val::Str(Some(snp_hex)),
            tables::Val::Bin(Some(name)),
            tables::Val::Str(Some(&target_text)),
            tables::Val::Str(Some(target.type_name())),
        ])?;
    }
    Ok(())
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
                .table("origin")?
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
            write_snapshot(&mut sink.tables, &snp_hex, &visit.branches)?;
        }
        let record = VisitRecord::of(url, spec, visit_no, *time, snp_hex, &visit);
        write_visit(
            &mut sink.tables,
            url,
            visit_no,
            *time,
            &record.status,
            &record.snapshot,
        )?;
        records.push(record);
    }
    pl.done();
    let counts = sink.counts.clone();
    let table_rows: BTreeMap<String, u64> =
        sink.tables.finish(&layout.orc())?.into_iter().collect();
    digestmap_into(dir)?;

    let summary = compress_into(dir)?;
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
        inputs: None,
    };
    write_manifest(dir, &manifest)?;
    Ok(manifest)
}
