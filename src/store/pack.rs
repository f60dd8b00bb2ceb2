//! The durable local blob store: append-only pack files of zstd frames with an index of
//! fixed-size records, written data first and record second, so that a killed fetch loses at
//! most the blobs in flight and a rerun reads the indexes and fetches only what is missing.
//!
//! Layout of one store folder (one per fetch shard, under `WORKDIR/blobs/`):
//!
//! - `pack-NNNNN.bin`: zstd frames, one per blob;
//! - `pack-NNNNN.idx`: 40-byte records `sha1[20] status[1] pad[3] offset[8] len[4] source[4]`
//!   (`source` tags the blob source a `blob_missing`/`corrupt_blob` status was recorded
//!   against, so that another source is asked again);
//! - `damaged.idx`: 32-byte records `pack[4] offset[8] sha1[20]` of stored blobs found damaged
//!   when read back: such a record no longer counts, and the next fetch gets the blob again.
//!
//! Bytes are verified where they are read: [`BlobStores::read_verified`] recomputes the
//! sha1 of every blob it returns.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::model::{BlobStatus, Sha1};

use super::StoreError;

/// Where one stored blob is, and what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Status (never [`BlobStatus::Failed`]: failures are not stored).
    pub status: BlobStatus,
    /// Pack number.
    pub pack: u32,
    /// Offset of the zstd frame in the pack.
    pub offset: u64,
    /// Length of the frame.
    pub len: u32,
    /// Tag of the source the status was recorded against ([`source_tag`]).
    pub source: u32,
}

const RECORD: usize = 40;
const DAMAGED: usize = 32;
const DAMAGED_FILE: &str = "damaged.idx";

/// The tag recorded with a status, from the source's identity (`FetchOptions::source_id`).
pub fn source_tag(source_id: &str) -> u32 {
    let h = crate::model::hashes::git_object_id("source", source_id.as_bytes());
    u32::from_le_bytes([h[0], h[1], h[2], h[3]]).max(1)
}

fn status_code(s: BlobStatus) -> u8 {
    match s {
        BlobStatus::Ok => 1,
        BlobStatus::Missing => 2,
        BlobStatus::Corrupt => 3,
        BlobStatus::Failed => 0,
    }
}

fn status_of(code: u8) -> Option<BlobStatus> {
    match code {
        1 => Some(BlobStatus::Ok),
        2 => Some(BlobStatus::Missing),
        3 => Some(BlobStatus::Corrupt),
        _ => None,
    }
}

/// Append-only store of verified blobs in one folder.
pub struct PackStore {
    dir: PathBuf,
    index: HashMap<Sha1, Record>,
    pack: u32,
    data: Option<File>,
    idx: Option<File>,
    offset: u64,
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl PackStore {
    /// Opens the store in `dir`, reading every index. Writing always starts a new pack, so
    /// that the tail a killed run may have left in an older one is never appended to.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let mut index = HashMap::new();
        let mut next = 0;
        let mut idx_files: Vec<(u32, PathBuf)> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
            let path = e.map_err(|e| StoreError::io(dir, e))?.path();
            let Some(n) = path
                .file_name()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("pack-"))
                .and_then(|s| s.strip_suffix(".idx"))
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            idx_files.push((n, path));
        }
        idx_files.sort();
        for (n, path) in idx_files {
            next = next.max(n + 1);
            let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
            // A record cut short by a kill is ignored: its blob is fetched again. Later records
            // replace earlier ones (a blob fetched again after damage).
            for r in bytes.chunks_exact(RECORD) {
                let Some(status) = status_of(r[20]) else {
                    continue;
                };
                let mut sha1 = [0u8; 20];
                sha1.copy_from_slice(&r[..20]);
                index.insert(
                    Sha1(sha1),
                    Record {
                        status,
                        pack: n,
                        offset: le_u64(&r[24..32]),
                        len: le_u32(&r[32..36]),
                        source: le_u32(&r[36..40]),
                    },
                );
            }
        }
        let damaged = dir.join(DAMAGED_FILE);
        match std::fs::read(&damaged) {
            Ok(bytes) => {
                for r in bytes.chunks_exact(DAMAGED) {
                    let mut sha1 = [0u8; 20];
                    sha1.copy_from_slice(&r[12..32]);
                    let (pack, offset) = (le_u32(&r[..4]), le_u64(&r[4..12]));
                    let sha1 = Sha1(sha1);
                    if index
                        .get(&sha1)
                        .is_some_and(|rec| rec.pack == pack && rec.offset == offset)
                    {
                        index.remove(&sha1);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&damaged, e)),
        }
        Ok(Self {
            dir: dir.to_owned(),
            index,
            pack: next,
            data: None,
            idx: None,
            offset: 0,
        })
    }

    /// The record of `sha1`, if stored.
    pub fn get(&self, sha1: &Sha1) -> Option<Record> {
        self.index.get(sha1).copied()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, pack: u32, ext: &str) -> PathBuf {
        self.dir.join(format!("pack-{pack:05}.{ext}"))
    }

    /// Appends a blob (or a status without bytes) recorded against source `source`.
    pub fn put(
        &mut self,
        sha1: Sha1,
        status: BlobStatus,
        data: Option<&[u8]>,
        source: u32,
    ) -> Result<(), StoreError> {
        if status == BlobStatus::Failed {
            return Err(StoreError::Format {
                path: self.dir.clone(),
                reason: "a failed fetch is not a stored status".into(),
            });
        }
        if self.data.is_none() {
            let open = |p: &Path| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| StoreError::io(p, e))
            };
            self.data = Some(open(&self.path(self.pack, "bin"))?);
            self.idx = Some(open(&self.path(self.pack, "idx"))?);
            self.offset = 0;
        }
        let mut len = 0u32;
        if let Some(bytes) = data {
            let path = self.path(self.pack, "bin");
            let frame = zstd::bulk::compress(bytes, 3).map_err(|e| StoreError::io(&path, e))?;
            len = u32::try_from(frame.len()).map_err(|_| StoreError::Format {
                path: path.clone(),
                reason: format!("blob {sha1} compresses to more than 4 GiB"),
            })?;
            if let Some(f) = self.data.as_mut() {
                f.write_all(&frame).map_err(|e| StoreError::io(&path, e))?;
            }
        }
        let mut rec = [0u8; RECORD];
        rec[..20].copy_from_slice(sha1.as_bytes());
        rec[20] = status_code(status);
        rec[24..32].copy_from_slice(&self.offset.to_le_bytes());
        rec[32..36].copy_from_slice(&len.to_le_bytes());
        rec[36..40].copy_from_slice(&source.to_le_bytes());
        let path = self.path(self.pack, "idx");
        if let Some(f) = self.idx.as_mut() {
            f.write_all(&rec).map_err(|e| StoreError::io(&path, e))?;
        }
        self.index.insert(
            sha1,
            Record {
                status,
                pack: self.pack,
                offset: self.offset,
                len,
                source,
            },
        );
        self.offset += len as u64;
        Ok(())
    }

    /// Flushes the current pack and index to disk.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        for f in [self.data.as_mut(), self.idx.as_mut()]
            .into_iter()
            .flatten()
        {
            f.sync_all().map_err(|e| StoreError::io(&self.dir, e))?;
        }
        Ok(())
    }

    /// The frame of a stored blob, decompressed (not verified: see [`BlobStores::read_verified`]).
    /// A pack that is missing, or shorter than the record says, is damage, not an I/O error:
    /// the blob is fetched again.
    pub fn read(&self, rec: &Record) -> Result<Vec<u8>, ReadError> {
        let path = self.path(rec.pack, "bin");
        let damaged = |why: String| ReadError::Damaged(format!("{}: {why}", path.display()));
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged("the pack is missing".into()))
            }
            Err(e) => return Err(ReadError::Io(StoreError::io(&path, e))),
        };
        let len = file
            .metadata()
            .map_err(|e| ReadError::Io(StoreError::io(&path, e)))?
            .len();
        if rec.offset.saturating_add(rec.len as u64) > len {
            return Err(damaged(format!(
                "the frame at {} (+{}) lies past its end ({len} bytes)",
                rec.offset, rec.len
            )));
        }
        let mut frame = vec![0u8; rec.len as usize];
        file.read_exact_at(&mut frame, rec.offset)
            .map_err(|e| ReadError::Io(StoreError::io(&path, e)))?;
        zstd::stream::decode_all(&frame[..]).map_err(|e| damaged(e.to_string()))
    }

    /// Records that the blob stored at `rec` was found damaged: it no longer counts.
    pub fn mark_damaged(&self, sha1: &Sha1, rec: &Record) -> Result<(), StoreError> {
        let path = self.dir.join(DAMAGED_FILE);
        let mut r = [0u8; DAMAGED];
        r[..4].copy_from_slice(&rec.pack.to_le_bytes());
        r[4..12].copy_from_slice(&rec.offset.to_le_bytes());
        r[12..32].copy_from_slice(sha1.as_bytes());
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        f.write_all(&r).map_err(|e| StoreError::io(&path, e))?;
        f.sync_all().map_err(|e| StoreError::io(&path, e))
    }
}

/// Why a stored blob could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store itself could not be read.
    #[error(transparent)]
    Io(StoreError),
    /// The stored bytes are damaged (undecodable frame, or the wrong hash).
    #[error("damaged blob: {0}")]
    Damaged(String),
}

/// Every pack store under a folder (one per fetch shard), read as one.
pub struct BlobStores {
    stores: Vec<PackStore>,
    /// Blobs found damaged while reading, so that each is reported and recorded once.
    damaged: std::sync::Mutex<std::collections::HashSet<Sha1>>,
}

impl BlobStores {
    /// Opens every store folder under `root` (none yet is fine).
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        Self::open_where(root, |_| true)
    }

    /// Opens the store folders under `root` whose names `keep` accepts.
    pub fn open_where(root: &Path, keep: impl Fn(&str) -> bool) -> Result<Self, StoreError> {
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
            Ok(d) => d
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .filter(|p| p.file_name().is_some_and(|n| keep(&n.to_string_lossy())))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::io(root, e)),
        };
        dirs.sort();
        Ok(Self {
            stores: dirs
                .iter()
                .map(|d| PackStore::open(d))
                .collect::<Result<_, _>>()?,
            damaged: Default::default(),
        })
    }

    /// Where `sha1` is stored, if anywhere (an `Ok` copy wins over a failure status).
    pub fn get(&self, sha1: &Sha1) -> Option<(usize, Record)> {
        let mut best = None;
        for (i, s) in self.stores.iter().enumerate() {
            if let Some(r) = s.get(sha1) {
                if r.status == BlobStatus::Ok {
                    return Some((i, r));
                }
                best = Some((i, r));
            }
        }
        best
    }

    /// The bytes of the blob stored at `at`, checked to hash to `sha1`. Damaged bytes are
    /// recorded as such (so that the next fetch gets the blob again) and reported as
    /// [`ReadError::Damaged`]; they are never returned.
    pub fn read_verified(&self, sha1: &Sha1, at: (usize, Record)) -> Result<Vec<u8>, ReadError> {
        let seen = |d: &std::collections::HashSet<Sha1>| d.contains(sha1);
        if self.damaged.lock().map(|d| seen(&d)).unwrap_or(false) {
            return Err(ReadError::Damaged(format!(
                "{sha1} was found damaged already"
            )));
        }
        let Some(store) = self.stores.get(at.0) else {
            return Err(ReadError::Damaged(format!("{sha1}: no store {}", at.0)));
        };
        let result = store.read(&at.1).and_then(|bytes| {
            if super::verify::has_sha1(&bytes, sha1) {
                Ok(bytes)
            } else {
                Err(ReadError::Damaged(format!(
                    "{}: the bytes stored for {sha1} hash otherwise",
                    store.dir().display()
                )))
            }
        });
        if let Err(ReadError::Damaged(why)) = &result {
            log::warn!("blob {sha1}: {why}; recorded as damaged, the next fetch gets it again");
            store.mark_damaged(sha1, &at.1).map_err(ReadError::Io)?;
            if let Ok(mut d) = self.damaged.lock() {
                d.insert(*sha1);
            }
        }
        result
    }

    /// Fingerprint of the damage records of every store (what the next fetch must redo).
    pub fn damage_fingerprint(root: &Path) -> String {
        let mut parts = Vec::new();
        if let Ok(d) = std::fs::read_dir(root) {
            let mut dirs: Vec<PathBuf> = d.filter_map(|e| e.ok().map(|e| e.path())).collect();
            dirs.sort();
            for dir in dirs {
                if let Ok(m) = std::fs::metadata(dir.join(DAMAGED_FILE)) {
                    parts.push(format!("{}={}", dir.display(), m.len()));
                }
            }
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_store_survives_reopen_and_ignores_torn_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PackStore::open(dir.path()).unwrap();
        s.put(Sha1([1; 20]), BlobStatus::Ok, Some(b"one"), 7)
            .unwrap();
        s.put(Sha1([2; 20]), BlobStatus::Missing, None, 7).unwrap();
        s.sync().unwrap();
        drop(s);
        // A torn record, as a kill mid-write would leave.
        let idx = dir.path().join("pack-00000.idx");
        let mut f = OpenOptions::new().append(true).open(&idx).unwrap();
        f.write_all(&[3; 17]).unwrap();
        let mut s = PackStore::open(dir.path()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.read(&s.get(&Sha1([1; 20])).unwrap()).unwrap(), b"one");
        let missing = s.get(&Sha1([2; 20])).unwrap();
        assert_eq!((missing.status, missing.source), (BlobStatus::Missing, 7));
        s.put(Sha1([4; 20]), BlobStatus::Ok, Some(b"four"), 7)
            .unwrap();
        let r = s.get(&Sha1([4; 20])).unwrap();
        assert_eq!(r.pack, 1, "a reopened store writes a new pack");
        assert_eq!(s.read(&r).unwrap(), b"four");
    }

    #[test]
    fn damaged_blobs_are_not_returned_and_stop_counting() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("shard");
        let data = b"some bytes worth keeping\n";
        let sha1 = Sha1(crate::model::hashes::ContentHashes::of(data).sha1);
        let mut s = PackStore::open(&dir).unwrap();
        s.put(sha1, BlobStatus::Ok, Some(data), 1).unwrap();
        s.sync().unwrap();
        drop(s);
        let stores = BlobStores::open(root.path()).unwrap();
        let at = stores.get(&sha1).unwrap();
        assert_eq!(stores.read_verified(&sha1, at).unwrap(), data);
        // Damage the frame on disk.
        let pack = dir.join("pack-00000.bin");
        let mut bytes = std::fs::read(&pack).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x55;
        std::fs::write(&pack, bytes).unwrap();
        let before = BlobStores::damage_fingerprint(root.path());
        assert!(matches!(
            stores.read_verified(&sha1, at),
            Err(ReadError::Damaged(_))
        ));
        assert_ne!(BlobStores::damage_fingerprint(root.path()), before);
        // Reopened, the damaged copy is gone; a new copy counts again.
        let mut s = PackStore::open(&dir).unwrap();
        assert!(s.get(&sha1).is_none());
        s.put(sha1, BlobStatus::Ok, Some(data), 1).unwrap();
        drop(s);
        let stores = BlobStores::open(root.path()).unwrap();
        let at = stores.get(&sha1).unwrap();
        assert_eq!(stores.read_verified(&sha1, at).unwrap(), data);
    }

    #[test]
    fn truncated_or_missing_packs_are_damage_not_errors() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("shard");
        let data = vec![b'x'; 10_000];
        let sha1 = Sha1(crate::model::hashes::ContentHashes::of(&data).sha1);
        let mut s = PackStore::open(&dir).unwrap();
        s.put(sha1, BlobStatus::Ok, Some(&data), 1).unwrap();
        drop(s);
        let pack = dir.join("pack-00000.bin");
        let len = std::fs::metadata(&pack).unwrap().len();
        let f = OpenOptions::new().write(true).open(&pack).unwrap();
        f.set_len(len / 2).unwrap();
        let stores = BlobStores::open(root.path()).unwrap();
        let at = stores.get(&sha1).unwrap();
        assert!(matches!(
            stores.read_verified(&sha1, at),
            Err(ReadError::Damaged(_))
        ));
        // Reported once: the second read answers from memory.
        let err = stores.read_verified(&sha1, at).unwrap_err().to_string();
        assert!(err.contains("already"), "{err}");
        std::fs::remove_file(&pack).unwrap();
        let fresh = PackStore::open(&dir).unwrap();
        let rec = Record {
            status: BlobStatus::Ok,
            pack: 0,
            offset: 0,
            len: 10,
            source: 1,
        };
        assert!(matches!(fresh.read(&rec), Err(ReadError::Damaged(_))));
    }
}
