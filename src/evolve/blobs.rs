//! File bytes for `evolve`, through the main pipeline's content join and verified store.
//!
//! The blob ids the pairs need are joined to sha1 (the digestmap when configured, else the
//! ORC `content` tables), fetched into the work directory's pack store (`WORKDIR/blobs`,
//! shared with `run`: a blob fetched by either is not asked again) from the configured
//! source, and read back verified.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::artifacts::join::JoinMap;
use crate::config::Config;
use crate::model::{BlobStatus, ContentStatus, IdHash, Sha1Git, Status};
use crate::phases::content::{all_files, scan_file, Digests};
use crate::phases::fetch::{fetch_all, FetchCounts, Want};
use crate::phases::{blob_dir, PhaseError};
use crate::store::pack::source_tag;
use crate::store::{BlobStores, PackStore};

use super::EvolveError;

/// The prefix of the pack stores of slices (`evolve-slice-K-of-N`).
pub const SLICE_STORES: &str = "evolve-slice-";

/// What became of one blob id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bytes {
    /// Fetched and verified.
    Ok(Vec<u8>),
    /// Not available, with why (skipped content, not in the content tables, missing from
    /// the store, damaged, fetch failed).
    Unavailable(String),
}

/// The joined, fetched blobs of one evolve run.
pub struct Blobs {
    join: JoinMap,
    /// Blobs longer than this are neither fetched nor read.
    max_len: u64,
    stores: BlobStores,
    /// Counts of the fetch.
    pub fetch: FetchCounts,
    /// Bytes read back, verified.
    read: std::sync::atomic::AtomicU64,
    /// Blobs that read back damaged.
    damaged: std::sync::atomic::AtomicU64,
}

impl Blobs {
    /// Joins `ids` to sha1 and fetches what the stores lack, except blobs longer than
    /// `max_len` (the archive knows their length: they are never downloaded).
    /// New blobs go to the pack store `WORKDIR/blobs/<store>` (one per process that may run
    /// at the same time: a pack store has one writer).
    pub fn prepare(
        cfg: &Config,
        ids: &[Sha1Git],
        max_len: u64,
        store: &str,
    ) -> Result<Self, EvolveError> {
        let join = join(cfg, ids)?;
        let root = blob_dir(&cfg.workdir);
        let tag = source_tag(&cfg.fetch.source_id());
        // Other slices' stores are left out: another process writes them now.
        let mine = |name: &str| !name.starts_with(SLICE_STORES) || name == store;
        let before = BlobStores::open_where(&root, mine).map_err(PhaseError::from)?;
        let mut todo: Vec<Want> = join
            .iter()
            .filter_map(|(id, k)| {
                let sha1 = k.sha1.filter(|_| k.status == ContentStatus::Visible)?;
                if k.length.is_some_and(|l| l > max_len) {
                    return None;
                }
                let settled = before
                    .get(&sha1)
                    .is_some_and(|(_, r)| r.status == BlobStatus::Ok || r.source == tag);
                (!settled).then_some(Want {
                    sha1,
                    sha1_git: Some(*id),
                    length: k.length,
                })
            })
            .collect();
        todo.sort_by_key(|w| w.sha1);
        todo.dedup_by_key(|w| w.sha1);
        drop(before);
        let dir: PathBuf = root.join(store);
        let mut store = PackStore::open(&dir).map_err(PhaseError::from)?;
        let fetch = fetch_all(&todo, &mut store, &cfg.fetch, tag)?;
        drop(store);
        Ok(Self {
            join,
            max_len,
            stores: BlobStores::open_where(&root, mine).map_err(PhaseError::from)?,
            fetch,
            read: Default::default(),
            damaged: Default::default(),
        })
    }

    /// The bytes of `id`, verified.
    pub fn get(&self, id: &Sha1Git) -> Bytes {
        let Some(k) = self.join.get(id) else {
            return Bytes::Unavailable("not in the archive's content tables".into());
        };
        if let Some(l) = k.length.filter(|&l| l > self.max_len) {
            return Bytes::Unavailable(format!("over the size cap, {l} bytes"));
        }
        let Some(sha1) = k.sha1.filter(|_| k.status == ContentStatus::Visible) else {
            let why = k
                .reason
                .clone()
                .unwrap_or_else(|| "skipped by the archive".into());
            return Bytes::Unavailable(format!("skipped content: {why}"));
        };
        let Some(at) = self.stores.get(&sha1) else {
            return Bytes::Unavailable("not fetched".into());
        };
        if at.1.status != BlobStatus::Ok {
            return Bytes::Unavailable(format!("blob {}", at.1.status.as_str()));
        }
        match self.stores.read_verified(&sha1, at) {
            Ok(b) => {
                self.read
                    .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Bytes::Ok(b)
            }
            Err(e) => {
                self.damaged
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Bytes::Unavailable(e.to_string())
            }
        }
    }
}

impl Blobs {
    /// Bytes read back so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Blobs that failed to fetch, or read back damaged so far: a later run tries them again.
    pub fn failed(&self) -> u64 {
        self.fetch.failed + self.damaged.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// sha1_git -> sha1 for `ids`, through the digestmap or else the ORC tables.
fn join(cfg: &Config, ids: &[Sha1Git]) -> Result<JoinMap, EvolveError> {
    if let Some(dir) = &cfg.digestmap {
        let digests =
            Digests::open(dir, &cfg.graph, cfg.orc.is_none()).map_err(PhaseError::from)?;
        return Ok(digests.lookup_all(ids).map_err(PhaseError::from)?);
    }
    let Some(orc) = &cfg.orc else {
        return Err(EvolveError::NoContentSource);
    };
    let needed: HashSet<Sha1Git, IdHash> = ids.iter().copied().collect();
    let mut found = JoinMap::default();
    for (path, skipped) in all_files(orc) {
        scan_file(&path, skipped, &needed, &mut found).map_err(PhaseError::from)?;
    }
    Ok(found)
}
