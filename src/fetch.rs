//! Phase 8, **fetch**: the bytes of every needed blob, from S3 or a local folder, each
//! proven by its hashes before it is kept.
//!
//! Blobs are gzip objects keyed by sha1 (`s3://softwareheritage/content/<sha1>`, or an
//! archive's `objects/content/<sha1>`). Each distinct sha1 is fetched once, with at most
//! `concurrency` requests in flight. An attempt that fails for a reason worth retrying (5xx,
//! throttling, timeouts, resets, truncated or corrupted bodies) is retried with exponential
//! backoff and jitter, up to `attempts`; each attempt has its own timeout. Every body is
//! gunzipped with an output cap of its known length plus one byte (no gzip bombs), and its
//! sha1 and git blob id are recomputed: bytes that do not match are never kept.
//!
//! Verified blobs go to a durable local store, `WORKDIR/blobs/` ([`PackStore`]): append-only
//! pack files of zstd frames with an index of fixed-size records, written data first and
//! record second. A killed fetch loses at most the blobs in flight; a rerun reads the indexes
//! and fetches only what is missing. `blob_missing` (404) and `corrupt_blob` are recorded too,
//! so that they are not asked again; blobs whose attempts all failed are not, and the next run
//! retries them.
//!
//! Output (`WORKDIR/fetch/fetched.parquet`): each needed sha1 and its status (`ok`,
//! `blob_missing`, `corrupt_blob`, `fetch_failed`).
//!
//! Memory: one index record per stored blob (in a hash map) and the blobs in flight.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::config::FetchOptions;
use crate::hashes::{git_object_id, hex};

/// Errors of the fetch phase.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The local store could not be read or written.
    #[error("blob store {path}: {reason}")]
    Store {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The configured store is not usable.
    #[error("fetch.store {0}")]
    Config(String),
}

fn store_err(path: &Path, e: impl ToString) -> FetchError {
    FetchError::Store {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Terminal status of a blob in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BlobStatus {
    /// Verified bytes are stored.
    Ok = 1,
    /// The object store has no such key.
    Missing = 2,
    /// Every attempt returned bytes that failed verification.
    Corrupt = 3,
}

impl BlobStatus {
    /// The status name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            BlobStatus::Ok => "ok",
            BlobStatus::Missing => "blob_missing",
            BlobStatus::Corrupt => "corrupt_blob",
        }
    }
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(BlobStatus::Ok),
            2 => Some(BlobStatus::Missing),
            3 => Some(BlobStatus::Corrupt),
            _ => None,
        }
    }
}

/// Where one stored blob is.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// Status.
    pub status: BlobStatus,
    /// Pack number.
    pub pack: u32,
    /// Offset of the zstd frame in the pack.
    pub offset: u64,
    /// Length of the frame.
    pub len: u32,
}

const RECORD: usize = 40;

/// Append-only store of verified blobs: `pack-NNNNN.bin` (zstd frames) and `pack-NNNNN.idx`
/// (40-byte records: sha1, status, pad, offset, length).
pub struct PackStore {
    dir: PathBuf,
    index: HashMap<[u8; 20], Record>,
    pack: u32,
    data: Option<File>,
    idx: Option<File>,
    offset: u64,
}

impl PackStore {
    /// Opens the store in `dir`, reading every index. Writing always starts a new pack, so
    /// that the tail a killed run may have left in an older one is never appended to.
    pub fn open(dir: &Path) -> Result<Self, FetchError> {
        std::fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
        let mut index = HashMap::new();
        let mut next = 0;
        let mut idx_files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| store_err(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "idx"))
            .collect();
        idx_files.sort();
        for path in idx_files {
            let n: u32 = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("pack-"))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| store_err(&path, "unexpected index file name"))?;
            next = next.max(n + 1);
            let bytes = std::fs::read(&path).map_err(|e| store_err(&path, e))?;
            // A record cut short by a kill is ignored: its blob is fetched again.
            for r in bytes.chunks_exact(RECORD) {
                let sha1: [u8; 20] = r[..20].try_into().expect("20 bytes");
                let Some(status) = BlobStatus::from_u8(r[20]) else {
                    continue;
                };
                index.insert(
                    sha1,
                    Record {
                        status,
                        pack: n,
                        offset: u64::from_le_bytes(r[24..32].try_into().expect("8 bytes")),
                        len: u32::from_le_bytes(r[32..36].try_into().expect("4 bytes")),
                    },
                );
            }
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
    pub fn get(&self, sha1: &[u8; 20]) -> Option<Record> {
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

    fn path(&self, pack: u32, ext: &str) -> PathBuf {
        self.dir.join(format!("pack-{pack:05}.{ext}"))
    }

    /// Appends a blob (or a status without bytes).
    pub fn put(
        &mut self,
        sha1: [u8; 20],
        status: BlobStatus,
        data: Option<&[u8]>,
    ) -> Result<(), FetchError> {
        if self.data.is_none() {
            let open = |p: &Path| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| store_err(p, e))
            };
            self.data = Some(open(&self.path(self.pack, "bin"))?);
            self.idx = Some(open(&self.path(self.pack, "idx"))?);
            self.offset = 0;
        }
        let mut len = 0u32;
        if let Some(bytes) = data {
            let frame = zstd::bulk::compress(bytes, 3).map_err(|e| store_err(&self.dir, e))?;
            len = frame.len() as u32;
            let path = self.path(self.pack, "bin");
            self.data
                .as_mut()
                .expect("opened")
                .write_all(&frame)
                .map_err(|e| store_err(&path, e))?;
        }
        let mut rec = [0u8; RECORD];
        rec[..20].copy_from_slice(&sha1);
        rec[20] = status as u8;
        rec[24..32].copy_from_slice(&self.offset.to_le_bytes());
        rec[32..36].copy_from_slice(&len.to_le_bytes());
        let path = self.path(self.pack, "idx");
        self.idx
            .as_mut()
            .expect("opened")
            .write_all(&rec)
            .map_err(|e| store_err(&path, e))?;
        self.index.insert(
            sha1,
            Record {
                status,
                pack: self.pack,
                offset: self.offset,
                len,
            },
        );
        self.offset += len as u64;
        Ok(())
    }

    /// Flushes the current pack and index to disk.
    pub fn sync(&mut self) -> Result<(), FetchError> {
        for f in [self.data.as_mut(), self.idx.as_mut()]
            .into_iter()
            .flatten()
        {
            f.sync_all().map_err(|e| store_err(&self.dir, e))?;
        }
        Ok(())
    }

    /// The bytes of a stored blob.
    pub fn read(&self, rec: &Record) -> Result<Vec<u8>, FetchError> {
        let path = self.path(rec.pack, "bin");
        let file = File::open(&path).map_err(|e| store_err(&path, e))?;
        let mut frame = vec![0u8; rec.len as usize];
        file.read_exact_at(&mut frame, rec.offset)
            .map_err(|e| store_err(&path, e))?;
        zstd::stream::decode_all(&frame[..]).map_err(|e| store_err(&path, e))
    }
}

/// Every pack store under a folder (one per fetch shard), read as one.
pub struct BlobStores(Vec<PackStore>);

impl BlobStores {
    /// Opens every store folder under `root` (none yet is fine).
    pub fn open(root: &Path) -> Result<Self, FetchError> {
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
            Ok(d) => d
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(store_err(root, e)),
        };
        dirs.sort();
        Ok(Self(
            dirs.iter()
                .map(|d| PackStore::open(d))
                .collect::<Result<_, _>>()?,
        ))
    }

    /// Where `sha1` is stored, if anywhere (an `Ok` copy wins over a failure status).
    pub fn get(&self, sha1: &[u8; 20]) -> Option<(usize, Record)> {
        let mut best = None;
        for (i, s) in self.0.iter().enumerate() {
            if let Some(r) = s.get(sha1) {
                if r.status == BlobStatus::Ok {
                    return Some((i, r));
                }
                best = Some((i, r));
            }
        }
        best
    }

    /// The bytes of a stored blob.
    pub fn read(&self, at: (usize, Record)) -> Result<Vec<u8>, FetchError> {
        self.0[at.0].read(&at.1)
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not valid gzip, or longer or shorter than the known length.
    Gzip(String),
    /// The bytes do not hash to the expected ids.
    Hash(String),
}

/// Gunzips `body` (at most `length` + 1 bytes out) and checks length, sha1 and git blob id.
pub fn verify(
    body: &[u8],
    length: u64,
    sha1: &[u8; 20],
    sha1_git: &[u8; 20],
) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::with_capacity(length.min(64 << 20) as usize);
    flate2::read::GzDecoder::new(body)
        .take(length + 1)
        .read_to_end(&mut out)
        .map_err(|e| Refused::Gzip(e.to_string()))?;
    if out.len() as u64 != length {
        return Err(Refused::Gzip(format!(
            "{} bytes, expected {length}",
            out.len()
        )));
    }
    let got: [u8; 20] = Sha1::digest(&out).into();
    if &got != sha1 {
        return Err(Refused::Hash(format!("sha1 {}", hex(&got))));
    }
    if &git_object_id("blob", &out) != sha1_git {
        return Err(Refused::Hash("git blob id differs".into()));
    }
    Ok(out)
}

/// Outcome of one request.
enum Got {
    Body(Vec<u8>),
    Missing,
    Retry(String),
}

/// A source of gzip blobs.
#[derive(Clone)]
pub enum Source {
    /// A local folder of `<sha1>` files.
    Local(PathBuf),
    /// An S3 bucket.
    S3 {
        /// The client.
        client: aws_sdk_s3::Client,
        /// Bucket name.
        bucket: String,
        /// Key prefix (without trailing slash).
        prefix: String,
    },
}

impl Source {
    /// The source configured by `opts`.
    pub async fn from_options(opts: &FetchOptions) -> Result<Self, FetchError> {
        if let Some(dir) = opts.store.strip_prefix("file://") {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                return Err(FetchError::Config(format!(
                    "{}: not a folder",
                    dir.display()
                )));
            }
            return Ok(Source::Local(dir));
        }
        let rest = opts.store.strip_prefix("s3://").ok_or_else(|| {
            FetchError::Config(format!("{}: expected file:// or s3://", opts.store))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let region = aws_sdk_s3::config::Region::new(opts.region.clone());
        let mut b = if opts.signed {
            let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(region)
                .load()
                .await;
            aws_sdk_s3::config::Builder::from(&shared)
        } else {
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(region)
        };
        // Retries and timeouts are ours, so that every failure is classified and counted.
        b = b.retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
        if let Some(ep) = &opts.endpoint {
            b = b.endpoint_url(ep).force_path_style(true);
        }
        Ok(Source::S3 {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket: bucket.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }

    async fn get(&self, sha1_hex: &str) -> Got {
        match self {
            Source::Local(dir) => match tokio::fs::read(dir.join(sha1_hex)).await {
                Ok(b) => Got::Body(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Got::Missing,
                Err(e) => Got::Retry(e.to_string()),
            },
            Source::S3 {
                client,
                bucket,
                prefix,
            } => {
                let key = if prefix.is_empty() {
                    sha1_hex.to_string()
                } else {
                    format!("{prefix}/{sha1_hex}")
                };
                use aws_sdk_s3::error::SdkError;
                match client.get_object().bucket(bucket).key(key).send().await {
                    Ok(out) => match out.body.collect().await {
                        Ok(b) => Got::Body(b.into_bytes().to_vec()),
                        Err(e) => Got::Retry(format!("body: {e}")),
                    },
                    Err(SdkError::ServiceError(e)) => {
                        let status = e.raw().status().as_u16();
                        if e.err().is_no_such_key() || status == 404 {
                            Got::Missing
                        } else {
                            Got::Retry(format!("HTTP {status}: {}", e.err()))
                        }
                    }
                    Err(e) => Got::Retry(format!("{e:?}").chars().take(200).collect()),
                }
            }
        }
    }
}

/// One blob to fetch.
#[derive(Debug, Clone)]
pub struct Want {
    /// sha1 (store key).
    pub sha1: [u8; 20],
    /// Its git blob id.
    pub sha1_git: [u8; 20],
    /// Its length.
    pub length: u64,
}

/// Counts of a fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchCounts {
    /// Requests sent.
    pub requests: u64,
    /// Retries (requests after the first for a blob).
    pub retries: u64,
    /// Bodies refused by verification.
    pub refused: u64,
    /// Blobs fetched and verified in this run.
    pub fetched: u64,
    /// Bytes of those blobs (uncompressed).
    pub fetched_bytes: u64,
    /// Blobs given up in this run.
    pub failed: u64,
}

/// Fetches every blob of `todo` into `store` (the caller leaves out what any store holds
/// already); returns the counts and the blobs that failed this run.
pub fn fetch_all(
    todo: &[Want],
    store: &mut PackStore,
    opts: &FetchOptions,
) -> Result<(FetchCounts, Vec<[u8; 20]>), FetchError> {
    if todo.is_empty() {
        return Ok((FetchCounts::default(), Vec::new()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| FetchError::Config(e.to_string()))?;
    let source = runtime.block_on(Source::from_options(opts))?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<([u8; 20], BlobStatus, Option<Vec<u8>>)>(64);
    let (mut counts, failed) = std::thread::scope(|s| -> Result<_, FetchError> {
        // The writer: the only place the store is written, in arrival order.
        let writer = s.spawn(move || -> Result<(), FetchError> {
            let mut since_sync = 0usize;
            for (sha1, status, data) in rx {
                since_sync += data.as_ref().map_or(0, Vec::len);
                store.put(sha1, status, data.as_deref())?;
                if since_sync > 256 << 20 {
                    store.sync()?;
                    since_sync = 0;
                }
            }
            store.sync()
        });
        let outcome = runtime.block_on(run_requests(todo, &source, opts, tx));
        writer.join().expect("writer thread")?;
        Ok(outcome)
    })?;
    counts.failed = failed.len() as u64;
    Ok((counts, failed))
}

async fn run_requests(
    todo: &[Want],
    source: &Source,
    opts: &FetchOptions,
    tx: std::sync::mpsc::SyncSender<([u8; 20], BlobStatus, Option<Vec<u8>>)>,
) -> (FetchCounts, Vec<[u8; 20]>) {
    use dsi_progress_logger::ProgressLog;
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut pl = dsi_progress_logger::concurrent_progress_logger!(
        item_name = "blob",
        display_memory = true,
        expected_updates = Some(todo.len())
    );
    pl.start("Fetching and verifying blobs");
    let mut tasks = tokio::task::JoinSet::new();
    let mut counts = FetchCounts::default();
    let mut failed = Vec::new();
    for w in todo.iter().cloned() {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let source = source.clone();
        let opts = opts.clone();
        let tx = tx.clone();
        let mut pl = pl.clone();
        tasks.spawn(async move {
            let r = fetch_one(&w, &source, &opts).await;
            let (status, data) = match r.outcome {
                Outcome::Ok(d) => (Some(BlobStatus::Ok), Some(d)),
                Outcome::Missing => (Some(BlobStatus::Missing), None),
                Outcome::Corrupt => (Some(BlobStatus::Corrupt), None),
                Outcome::Failed => (None, None),
            };
            // What the counters need; the bytes go to the writer and are not kept here.
            let summary = Summary {
                status,
                bytes: data.as_ref().map_or(0, |d| d.len() as u64),
                requests: r.requests,
                refused: r.refused,
            };
            if let Some(st) = status {
                // The writer thread owns the store; a full channel applies back-pressure.
                let tx = tx.clone();
                let sha1 = w.sha1;
                let _ = tokio::task::spawn_blocking(move || tx.send((sha1, st, data))).await;
            }
            pl.light_update();
            drop(permit);
            (w.sha1, summary)
        });
        // Collect finished tasks as we go, so that results never pile up.
        while let Some(joined) = tasks.try_join_next() {
            tally(joined.expect("fetch task"), &mut counts, &mut failed);
        }
    }
    drop(tx);
    while let Some(joined) = tasks.join_next().await {
        tally(joined.expect("fetch task"), &mut counts, &mut failed);
    }
    pl.done();
    (counts, failed)
}

/// What a finished fetch task reports.
struct Summary {
    status: Option<BlobStatus>,
    bytes: u64,
    requests: u64,
    refused: u64,
}

fn tally((sha1, s): ([u8; 20], Summary), counts: &mut FetchCounts, failed: &mut Vec<[u8; 20]>) {
    counts.requests += s.requests;
    counts.retries += s.requests.saturating_sub(1);
    counts.refused += s.refused;
    match s.status {
        Some(BlobStatus::Ok) => {
            counts.fetched += 1;
            counts.fetched_bytes += s.bytes;
        }
        None => failed.push(sha1),
        _ => {}
    }
}

enum Outcome {
    Ok(Vec<u8>),
    Missing,
    Corrupt,
    Failed,
}

struct OneResult {
    outcome: Outcome,
    requests: u64,
    refused: u64,
}

async fn fetch_one(w: &Want, source: &Source, opts: &FetchOptions) -> OneResult {
    let key = hex(&w.sha1);
    let mut requests = 0;
    let mut refused = 0;
    let mut last_refusal = false;
    for attempt in 0..opts.attempts.max(1) {
        if attempt > 0 {
            let base = opts.backoff_ms.saturating_mul(1 << attempt.min(10));
            let jitter = rand::random_range(0..=base / 2 + 1);
            tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
        }
        requests += 1;
        let got =
            tokio::time::timeout(Duration::from_secs_f64(opts.timeout_secs), source.get(&key))
                .await;
        match got {
            Ok(Got::Body(body)) => match verify(&body, w.length, &w.sha1, &w.sha1_git) {
                Ok(data) => {
                    return OneResult {
                        outcome: Outcome::Ok(data),
                        requests,
                        refused,
                    }
                }
                Err(why) => {
                    log::debug!("blob {key}: refused ({why:?}), attempt {}", attempt + 1);
                    refused += 1;
                    last_refusal = true;
                }
            },
            Ok(Got::Missing) => {
                return OneResult {
                    outcome: Outcome::Missing,
                    requests,
                    refused,
                }
            }
            Ok(Got::Retry(why)) => {
                log::debug!("blob {key}: {why}, attempt {}", attempt + 1);
                last_refusal = false;
            }
            Err(_) => {
                log::debug!("blob {key}: timed out, attempt {}", attempt + 1);
                last_refusal = false;
            }
        }
    }
    OneResult {
        outcome: if last_refusal {
            Outcome::Corrupt
        } else {
            Outcome::Failed
        },
        requests,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn verification_refuses_wrong_bytes_and_bombs() {
        let data = b"hello\n";
        let h = crate::hashes::ContentHashes::of(data);
        assert_eq!(verify(&gz(data), 6, &h.sha1, &h.sha1_git).unwrap(), data);
        // Same length, other bytes.
        assert!(matches!(
            verify(&gz(b"jello\n"), 6, &h.sha1, &h.sha1_git),
            Err(Refused::Hash(_))
        ));
        // Longer than announced: cut at length + 1 and refused, whatever the real size.
        let bomb = gz(&vec![0u8; 10 << 20]);
        assert!(matches!(
            verify(&bomb, 6, &h.sha1, &h.sha1_git),
            Err(Refused::Gzip(_))
        ));
        // Truncated gzip.
        let g = gz(data);
        assert!(verify(&g[..g.len() - 4], 6, &h.sha1, &h.sha1_git).is_err());
        assert!(verify(b"not gzip", 6, &h.sha1, &h.sha1_git).is_err());
    }

    #[test]
    fn pack_store_survives_reopen_and_ignores_torn_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PackStore::open(dir.path()).unwrap();
        s.put([1; 20], BlobStatus::Ok, Some(b"one")).unwrap();
        s.put([2; 20], BlobStatus::Missing, None).unwrap();
        s.sync().unwrap();
        drop(s);
        // A torn record, as a kill mid-write would leave.
        let idx = dir.path().join("pack-00000.idx");
        let mut f = OpenOptions::new().append(true).open(&idx).unwrap();
        f.write_all(&[3; 17]).unwrap();
        let mut s = PackStore::open(dir.path()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.read(&s.get(&[1; 20]).unwrap()).unwrap(), b"one");
        assert_eq!(s.get(&[2; 20]).unwrap().status, BlobStatus::Missing);
        s.put([4; 20], BlobStatus::Ok, Some(b"four")).unwrap();
        let r = s.get(&[4; 20]).unwrap();
        assert_eq!(r.pack, 1, "a reopened store writes a new pack");
        assert_eq!(s.read(&r).unwrap(), b"four");
    }
}
