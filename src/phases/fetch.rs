//! Phase 9, **fetch**: the bytes of every needed blob, from S3 or a local folder, each
//! proven by its hashes before it is kept.
//!
//! Each distinct sha1 is fetched once. Requests in flight follow the server
//! ([`crate::store::limiter`]: they grow while the latency holds and halve on `503 SlowDown`,
//! between 4 and `concurrency`), and the bodies in flight stay within `memory_mb`. An
//! attempt that fails for a reason worth retrying (5xx, throttling, timeouts, resets,
//! truncated or corrupted bodies) is retried with exponential backoff and jitter, up to
//! `attempts`; each attempt has its own timeout. A body is read with a size cap known in
//! advance and must prove itself ([`crate::store::verify`]): bytes that do not match are never
//! kept. Verified blobs go to the durable store ([`crate::store::pack`]).
//!
//! `blob_missing` and `corrupt_blob` are stored with the source they were recorded against:
//! a run against another store (or with `--retry-missing`) asks for them again. Blobs whose
//! attempts all failed are not stored, and the phase is not reusable until a run gets them.
//!
//! Output: [`crate::artifacts::fetched`]. Shards: sha1 ranges, each with its own pack store.
//!
//! Memory: one index record per stored blob (in a hash map) and the blobs in flight (at most
//! `memory_mb`, or one blob when it alone is larger).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::artifacts::fetched::{FetchedWriter, FETCHED};
use crate::artifacts::join::{self, JOIN};
use crate::config::{Config, FetchOptions};
use crate::model::{BlobStatus, ContentStatus, Counts, Phase, Sha1, Sha1Git, Shard, StatusCounts};
use crate::store::limiter::Limiter;
use crate::store::pack::source_tag;
use crate::store::source::Got;
use crate::store::verify::{body_cap, verify, UNKNOWN_LENGTH_CAP};
use crate::store::{BlobStores, PackStore, Source, StoreError};

use super::{Context, Inputs, PhaseError};

/// One blob to fetch.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    /// sha1 (store key).
    pub sha1: Sha1,
    /// Its git blob id, when known (hydrated sha1s come without one).
    pub sha1_git: Option<Sha1Git>,
    /// Its length, when known.
    pub length: Option<u64>,
}

impl Want {
    /// Memory a request for it holds, in KiB: the body's cap (compressed) and the bytes it
    /// inflates to; a blob of unknown length is charged [`UNKNOWN_LENGTH_CHARGE`].
    fn charge_kib(&self) -> u64 {
        let bytes = match self.length {
            Some(l) => body_cap(l).saturating_add(l),
            None => UNKNOWN_LENGTH_CHARGE,
        };
        (bytes >> 10).max(1)
    }
}

/// What a request for a blob of unknown length is charged against `memory_mb`: most source
/// files are far smaller, and the body is still read under the absolute cap
/// ([`crate::store::verify::UNKNOWN_LENGTH_CAP`]).
const UNKNOWN_LENGTH_CHARGE: u64 = 4 << 20;

/// Counts of a fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FetchCounts {
    /// Distinct blobs the shard needs.
    pub wanted: u64,
    /// Of those, already in a store from an earlier run.
    pub already_stored: u64,
    /// Requests sent.
    pub requests: u64,
    /// Retries (requests after the first for a blob).
    pub retries: u64,
    /// Bodies refused by verification.
    pub refused_bodies: u64,
    /// Blobs fetched and verified in this run.
    pub fetched: u64,
    /// Bytes of those blobs (uncompressed).
    pub fetched_bytes: u64,
    /// Blobs given up in this run (retried by the next).
    pub failed: u64,
    /// The most requests the adaptive limit allowed in flight (the largest over shards).
    pub concurrency_peak: u64,
    /// The limit at the end of the run (the largest over shards).
    pub concurrency_end: u64,
    /// The lowest limit throttling pushed it to (the largest over shards); the end against
    /// it shows whether the rate recovered.
    pub concurrency_low: u64,
    /// Times throttling halved the limit.
    pub throttle_cuts: u64,
    /// Wanted blobs per final status.
    #[serde(flatten)]
    pub status: StatusCounts<BlobStatus>,
}

impl Counts for FetchCounts {
    fn add(&mut self, o: &Self) {
        self.wanted += o.wanted;
        self.already_stored += o.already_stored;
        self.requests += o.requests;
        self.retries += o.retries;
        self.refused_bodies += o.refused_bodies;
        self.fetched += o.fetched;
        self.fetched_bytes += o.fetched_bytes;
        self.failed += o.failed;
        self.concurrency_peak = self.concurrency_peak.max(o.concurrency_peak);
        self.concurrency_end = self.concurrency_end.max(o.concurrency_end);
        self.concurrency_low = self.concurrency_low.max(o.concurrency_low);
        self.throttle_cuts += o.throttle_cuts;
        self.status.merge(&o.status);
    }
}

/// How one blob's fetch ended.
enum Outcome {
    Stored(BlobStatus, Option<Vec<u8>>),
    Failed,
}

struct OneResult {
    outcome: Outcome,
    requests: u64,
    refused: u64,
}

async fn fetch_one(w: &Want, source: &Source, opts: &FetchOptions, limiter: &Limiter) -> OneResult {
    let mut requests = 0;
    let mut refused = 0;
    let mut last_refusal = false;
    let cap = w.length.map_or(UNKNOWN_LENGTH_CAP, body_cap);
    for attempt in 0..opts.attempts.max(1) {
        if attempt > 0 {
            let base = opts.backoff_ms.saturating_mul(1 << attempt.min(10));
            let jitter = rand::random_range(0..=base / 2 + 1);
            tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
        }
        requests += 1;
        let timeout = Duration::from_secs_f64(opts.timeout_secs);
        let sent = std::time::Instant::now();
        let got = tokio::time::timeout(timeout, source.get(&w.sha1, cap)).await;
        match &got {
            Ok(Got::Throttled(_)) => limiter.throttled(),
            Ok(Got::Retry(_)) | Err(_) => {}
            Ok(_) => limiter.success(sent.elapsed()),
        }
        let done = |outcome, refused| OneResult {
            outcome,
            requests,
            refused,
        };
        match got {
            Ok(Got::Body(body)) => match verify(&body, w.length, &w.sha1, w.sha1_git.as_ref()) {
                Ok(data) => return done(Outcome::Stored(BlobStatus::Ok, Some(data)), refused),
                Err(why) => {
                    log::debug!(
                        "blob {}: refused ({why:?}), attempt {}",
                        w.sha1,
                        attempt + 1
                    );
                    refused += 1;
                    last_refusal = true;
                }
            },
            Ok(Got::Missing) => return done(Outcome::Stored(BlobStatus::Missing, None), refused),
            Ok(Got::Refused(why)) => {
                log::warn!("blob {}: {why}", w.sha1);
                return done(Outcome::Stored(BlobStatus::Corrupt, None), refused + 1);
            }
            Ok(Got::Retry(why) | Got::Throttled(why)) => {
                log::debug!("blob {}: {why}, attempt {}", w.sha1, attempt + 1);
                last_refusal = false;
            }
            Err(_) => {
                log::debug!("blob {}: timed out, attempt {}", w.sha1, attempt + 1);
                last_refusal = false;
            }
        }
    }
    OneResult {
        outcome: if last_refusal {
            Outcome::Stored(BlobStatus::Corrupt, None)
        } else {
            Outcome::Failed
        },
        requests,
        refused,
    }
}

type Stored = (Sha1, BlobStatus, Option<Vec<u8>>);

/// Fetches every blob of `todo` into `store`, recording statuses against `tag`; returns the
/// counts (requests, retries, fetched, failed, and how the limit moved). One batch: see
/// [`Fetcher`] for several.
pub fn fetch_all(
    todo: &[Want],
    store: &mut PackStore,
    opts: &FetchOptions,
    tag: u32,
) -> Result<FetchCounts, PhaseError> {
    if todo.is_empty() {
        return Ok(FetchCounts::default());
    }
    Fetcher::new(opts, store.dir())?.fetch(todo, store, tag)
}

/// One fetch's requests, batch after batch: one runtime, one client of the source and one
/// adaptive limit for all of them, so that a batch starts at the limit the last one reached
/// instead of learning it again from `initial_concurrency`.
pub struct Fetcher {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    source: Source,
    limiter: Arc<Limiter>,
    opts: FetchOptions,
}

impl Fetcher {
    /// Connects to the source `opts` names; `dir` is named by the error when no runtime
    /// can start.
    pub fn new(opts: &FetchOptions, dir: &Path) -> Result<Self, PhaseError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| PhaseError::io(dir, e))?;
        let source = runtime.block_on(Source::from_options(opts))?;
        Ok(Self {
            runtime: Some(runtime),
            source,
            limiter: Limiter::new(opts.initial_concurrency, opts.concurrency, opts.adaptive),
            opts: opts.clone(),
        })
    }

    /// Fetches every blob of `todo` into `store`, recording statuses against `tag`. The
    /// counts are this batch's, except the limit's figures, which are the whole session's
    /// so far (its peak, low, cuts and current limit).
    pub fn fetch(
        &self,
        todo: &[Want],
        store: &mut PackStore,
        tag: u32,
    ) -> Result<FetchCounts, PhaseError> {
        let store_dir = store.dir().to_owned();
        let store_dir = store_dir.as_path();
        let Some(runtime) = self.runtime.as_ref() else {
            // Only `drop` takes the runtime; never report an empty fetch as done.
            return Err(PhaseError::io(
                store_dir,
                std::io::Error::other("the fetch's runtime has stopped"),
            ));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Stored>(64);
        std::thread::scope(|s| -> Result<FetchCounts, PhaseError> {
            // The writer: the only place the store is written, in arrival order.
            let writer = s.spawn(move || -> Result<(), StoreError> {
                let mut since_sync = 0usize;
                for (sha1, status, data) in rx {
                    since_sync += data.as_ref().map_or(0, Vec::len);
                    store.put(sha1, status, data.as_deref(), tag)?;
                    if since_sync > 256 << 20 {
                        store.sync()?;
                        since_sync = 0;
                    }
                }
                store.sync()
            });
            let counts = runtime.block_on(run_requests(
                todo,
                &self.source,
                &self.opts,
                &self.limiter,
                tx,
            ));
            match writer.join() {
                Ok(r) => r?,
                Err(_) => {
                    return Err(PhaseError::io(
                        store_dir,
                        std::io::Error::other("the blob store's writer thread stopped"),
                    ));
                }
            }
            Ok(counts)
        })
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        // A runtime whose blocking readers are stuck (a hung file system) must not hold the
        // process: what remains in flight is abandoned.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

async fn run_requests(
    todo: &[Want],
    source: &Source,
    opts: &FetchOptions,
    limiter: &Arc<Limiter>,
    tx: std::sync::mpsc::SyncSender<Stored>,
) -> FetchCounts {
    use dsi_progress_logger::ProgressLog;
    // Memory of the bodies in flight, in KiB: a request holds its blob's cap (the compressed
    // body) plus its length (the bytes it inflates to) until its result is handed on.
    let budget = (opts.memory_mb.max(1) << 10).min(tokio::sync::Semaphore::MAX_PERMITS);
    let memory = Arc::new(tokio::sync::Semaphore::new(budget));
    let mut pl = dsi_progress_logger::concurrent_progress_logger!(
        item_name = "blob",
        display_memory = true,
        expected_updates = Some(todo.len())
    );
    pl.start("Fetching and verifying blobs");
    let mut tasks = tokio::task::JoinSet::new();
    let mut counts = FetchCounts::default();
    for &w in todo {
        let kib = w.charge_kib();
        let Ok(held) = memory
            .clone()
            .acquire_many_owned(kib.min(budget as u64) as u32)
            .await
        else {
            break;
        };
        let slot = limiter.acquire().await;
        let limiter = limiter.clone();
        let source = source.clone();
        let opts = opts.clone();
        let tx = tx.clone();
        let mut pl = pl.clone();
        tasks.spawn(async move {
            let r = fetch_one(&w, &source, &opts, &limiter).await;
            let (status, bytes) = match r.outcome {
                Outcome::Stored(st, data) => {
                    let n = data.as_ref().map_or(0, |d| d.len() as u64);
                    // The writer thread owns the store; a full channel applies back-pressure.
                    let _ = tokio::task::spawn_blocking(move || tx.send((w.sha1, st, data))).await;
                    (Some(st), n)
                }
                Outcome::Failed => (None, 0),
            };
            pl.light_update();
            drop((slot, held));
            (status, bytes, r.requests, r.refused)
        });
        // Collect finished tasks as we go, so that results never pile up.
        while let Some(joined) = tasks.try_join_next() {
            tally(joined, &mut counts);
        }
    }
    drop(tx);
    while let Some(joined) = tasks.join_next().await {
        tally(joined, &mut counts);
    }
    pl.done();
    let stats = limiter.stats();
    counts.concurrency_peak = stats.peak as u64;
    counts.concurrency_end = stats.limit as u64;
    counts.concurrency_low = stats.low as u64;
    counts.throttle_cuts = stats.cuts;
    counts
}

type TaskResult = Result<(Option<BlobStatus>, u64, u64, u64), tokio::task::JoinError>;

fn tally(joined: TaskResult, counts: &mut FetchCounts) {
    let Ok((status, bytes, requests, refused)) = joined else {
        counts.failed += 1;
        return;
    };
    counts.requests += requests;
    counts.retries += requests.saturating_sub(1);
    counts.refused_bodies += refused;
    match status {
        Some(BlobStatus::Ok) => {
            counts.fetched += 1;
            counts.fetched_bytes += bytes;
        }
        None => counts.failed += 1,
        _ => {}
    }
}

/// Blobs fetched per round. A round's wanted list and statuses (about 64 MB) are what the
/// fetch holds beside the store indexes; the rounds share one [`Fetcher`], so the limit
/// carries from one to the next. Rounds run one after the other: a round's slowest requests
/// delay the next round's start, which a million blobs amortise.
const ROUND: usize = 1 << 20;

/// Fetches `wants` (one shard's blobs, sorted by sha1, distinct) into the shard's pack store,
/// a round at a time, and writes their statuses to `ctx.out/fetched.parquet`.
pub fn run(ctx: &Context, wants: impl Iterator<Item = Want>) -> Result<FetchCounts, PhaseError> {
    let opts = &ctx.config.fetch;
    let tag = source_tag(&opts.source_id());
    // Blobs any earlier run stored, under any sharding, are not asked again, unless their
    // status was recorded against another source or the user asks to retry them.
    let settled = |rec: crate::store::Record| {
        rec.status == BlobStatus::Ok || (rec.source == tag && !ctx.retry_missing)
    };
    let before = BlobStores::open(&ctx.blobs())?;
    let own = ctx.blobs().join(ctx.shard.dir_name());
    let mut store = PackStore::open(&own)?;
    let mut out = FetchedWriter::create(&ctx.out.join(FETCHED))?;
    let mut counts = FetchCounts::default();
    let mut wants = wants.peekable();
    let mut round: Vec<Want> = Vec::with_capacity(ROUND.min(1024));
    let mut fetcher: Option<Fetcher> = None;
    while wants.peek().is_some() {
        round.clear();
        round.extend(wants.by_ref().take(ROUND));
        let todo: Vec<Want> = round
            .iter()
            .filter(|w| !before.get(&w.sha1).is_some_and(|(_, r)| settled(r)))
            .copied()
            .collect();
        counts.already_stored += (round.len() - todo.len()) as u64;
        counts.wanted += round.len() as u64;
        if !todo.is_empty() {
            // Connected only when some blob is wanted: a rerun with everything stored needs
            // no source.
            if fetcher.is_none() {
                fetcher = Some(Fetcher::new(opts, &own)?);
            }
            if let Some(f) = &fetcher {
                let c = f.fetch(&todo, &mut store, tag)?;
                counts.add(&c);
                // The limit's figures are the session's so far, not this round's.
                counts.concurrency_peak = c.concurrency_peak;
                counts.concurrency_end = c.concurrency_end;
                counts.concurrency_low = c.concurrency_low;
                counts.throttle_cuts = c.throttle_cuts;
            }
        }
        let rows: Vec<(Sha1, BlobStatus)> = round
            .iter()
            .map(|w| {
                // An `Ok` copy anywhere wins; else what this round recorded; else what an
                // earlier run did (the shard's own store, opened before, is in both).
                let old = before.get(&w.sha1).map(|(_, r)| r.status);
                let st = match (old, store.get(&w.sha1)) {
                    (Some(BlobStatus::Ok), _) => BlobStatus::Ok,
                    (_, Some(r)) => r.status,
                    (Some(st), None) => st,
                    (None, None) => BlobStatus::Failed,
                };
                counts.status.bump(st);
                (w.sha1, st)
            })
            .collect();
        out.write(&rows)?;
    }
    drop(fetcher);
    drop(store);
    out.finish()?;
    if counts.failed > 0 {
        log::warn!(
            "fetch shard {}: {} blobs failed every attempt; rerun to retry them",
            ctx.shard,
            counts.failed
        );
    }
    Ok(counts)
}

/// The fetch as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Fetch;
    type Counts = FetchCounts;

    /// The blob source and the store's damage records: a blob found damaged by the export
    /// makes the next run fetch it again. (Concurrency, attempts and timeouts change how
    /// blobs are fetched, not which, and are left out.)
    fn inputs(config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        let damage = BlobStores::damage_fingerprint(&super::blob_dir(&config.workdir));
        Ok(Inputs::from([
            ("fetch_source".to_string(), config.fetch.source_id()),
            ("blob_damage".to_string(), damage),
        ]))
    }

    fn reusable(counts: &FetchCounts, retry_missing: bool) -> bool {
        counts.failed == 0
            && !(retry_missing
                && counts.status.get(BlobStatus::Missing) + counts.status.get(BlobStatus::Corrupt)
                    > 0)
    }

    fn run(ctx: &Context) -> Result<FetchCounts, PhaseError> {
        let joined = join::load(&ctx.upstream(Phase::Content).join(JOIN))?;
        let mut wants: Vec<Want> = joined
            .iter()
            .filter(|(_, k)| k.status == ContentStatus::Visible)
            .filter_map(|(g, k)| {
                Some(Want {
                    sha1: k.sha1?,
                    sha1_git: Some(*g),
                    length: Some(k.length?),
                })
            })
            .filter(|w| ctx.shard.owns_sha1(w.sha1.as_bytes()))
            .collect();
        wants.sort_by_key(|w| w.sha1);
        wants.dedup_by_key(|w| w.sha1);
        run(ctx, wants.into_iter())
    }

    fn merge(
        ctx: &Context,
        shards: &[PathBuf],
        summed: FetchCounts,
    ) -> Result<FetchCounts, PhaseError> {
        super::concat_shards(shards, FETCHED, ctx.out)?;
        Ok(summed)
    }
}
