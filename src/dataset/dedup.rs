//! Exact and near deduplication of a dataset's candidate rows, out of core, in shards.
//!
//! Rows are numbered in the order they are offered ([`Dedup::add`]). Exact duplicates share a
//! sha1: every row after the first of its sha1 is one. Near duplicates share a MinHash band
//! ([`super::minhash`]) with a row whose signature estimates a Jaccard similarity of at least
//! the threshold. Both kinds join clusters (union-find); a cluster keeps its lowest row, the
//! representative, and its id is that row's number.
//!
//! A shard `I/N` (one task of a Slurm array) is offered every row and does its part: the
//! exact keys of its sha1 range, and the LSH buckets of its range of bands, with only the
//! permutations of those bands computed. It writes into its folder the pairs it found
//! (`exact.pairs`: a row and the first of its sha1; `near.pairs`: two rows that share a
//! bucket) and its part of every signature (`signatures.u32`). [`clusters`] then checks
//! every near pair against the threshold on the whole signature, read from all the shards'
//! parts, and joins the clusters: the result is the same for any number of shards.
//!
//! Memory: the sort budget (keys go to external sorters: one record per row for the sha1s,
//! one per row and band for the bands), and in [`clusters`] one `u32` per row and one bit per
//! row, the signatures read memory-mapped.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::minhash::{MinHashOptions, MinHasher, UnionFind};
use crate::model::Shard;
use crate::sort::{Record, SortError, Sorter};

/// Errors of deduplication.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// A sort run.
    #[error(transparent)]
    Sort(#[from] SortError),
    /// A scratch file or folder.
    #[error("dedup scratch {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// More rows than a cluster id holds.
    #[error("more than {} candidate rows in one dataset", u32::MAX)]
    TooMany,
    /// The rows of the second pass are not those the shards were offered.
    #[error(
        "the dedup shards were offered {0} candidate rows, not the rows read now: they were \
         made from other parts or options; run the dataset phase again"
    )]
    Mismatch(u32),
    /// MinHash options that cannot work.
    #[error(
        "near-dedup options cannot work (shingle and permutations at least 1, threshold in \
         (0, 1], bands at most permutations)"
    )]
    Options,
}

/// What one row became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Kept: the representative of its cluster (maybe alone).
    Kept,
    /// The same bytes as an earlier row.
    Exact,
    /// Similar to an earlier row.
    Near,
}

/// A sha1 and the row that has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ExactKey([u8; 20], u32);

impl Record for ExactKey {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
        out.extend_from_slice(&self.1.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self(
            b.get(..20)?.try_into().ok()?,
            u32::from_be_bytes(b.get(20..24)?.try_into().ok()?),
        ))
    }
    fn mem_size(&self) -> usize {
        24
    }
}

/// A band, its key, and the row that has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct BandKey(u16, u64, u32);

impl Record for BandKey {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
        out.extend_from_slice(&self.1.to_be_bytes());
        out.extend_from_slice(&self.2.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Self(
            u16::from_be_bytes(b.get(..2)?.try_into().ok()?),
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?),
            u32::from_be_bytes(b.get(10..14)?.try_into().ok()?),
        ))
    }
    fn mem_size(&self) -> usize {
        16
    }
}

/// Counts of a deduplication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DedupCounts {
    /// Rows offered.
    pub rows: u64,
    /// Rows removed as exact duplicates.
    pub exact: u64,
    /// Rows removed as near duplicates.
    pub near: u64,
    /// Candidate pairs checked against the threshold.
    pub pairs_checked: u64,
    /// Of those, kept as duplicates.
    pub pairs_similar: u64,
}

/// A shard's pairs of exact duplicates.
pub const EXACT_PAIRS: &str = "exact.pairs";
/// A shard's pairs of rows sharing a bucket.
pub const NEAR_PAIRS: &str = "near.pairs";
/// A shard's part of every signature.
pub const SIGNATURES: &str = "signatures.u32";

/// The near-dedup part of a shard.
struct Near {
    hasher: MinHasher,
    bands: std::ops::Range<usize>,
    perms: std::ops::Range<usize>,
    sorter: Sorter<BandKey>,
    signatures: BufWriter<File>,
}

/// One shard of a deduplication being fed rows.
pub struct Dedup {
    exact: Option<Sorter<ExactKey>>,
    near: Option<Near>,
    out: PathBuf,
    shard: Shard,
    rows: u32,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DedupError + '_ {
    move |source| DedupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A file of `(u32, u32)` pairs, little-endian.
struct PairWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl PairWriter {
    fn create(path: PathBuf) -> Result<Self, DedupError> {
        let file = File::create(&path).map_err(io(&path))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 20, file),
            path,
        })
    }

    fn push(&mut self, a: u32, b: u32) -> Result<(), DedupError> {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&a.to_le_bytes());
        bytes[4..].copy_from_slice(&b.to_le_bytes());
        self.out.write_all(&bytes).map_err(io(&self.path))
    }

    fn finish(self) -> Result<(), DedupError> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| io(&self.path)(e.into_error()))?;
        file.sync_all().map_err(io(&self.path))
    }
}

/// Calls `each` on every pair of a pair file, in order, streamed; a file cut short or
/// unreadable is an error, never fewer pairs.
fn for_each_pair(
    path: &Path,
    mut each: impl FnMut(u32, u32) -> Result<(), DedupError>,
) -> Result<(), DedupError> {
    let file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    if len % 8 != 0 {
        return Err(DedupError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(format!("{len} bytes: not whole pairs of 8 bytes")),
        });
    }
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut b = [0u8; 8];
    for _ in 0..len / 8 {
        std::io::Read::read_exact(&mut r, &mut b).map_err(io(path))?;
        each(
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        )?;
    }
    Ok(())
}

impl Dedup {
    /// Shard `shard` of a deduplication writing its files into `out` (which must exist),
    /// with sort runs in `scratch` and `budget` bytes of sort memory; `exact` and `near`
    /// (MinHash options) choose the kinds.
    pub fn new(
        out: &Path,
        scratch: &Path,
        budget: usize,
        exact: bool,
        near: Option<&MinHashOptions>,
        shard: Shard,
    ) -> Result<Self, DedupError> {
        std::fs::create_dir_all(scratch).map_err(io(scratch))?;
        let exact = match exact {
            true => Some(Sorter::new(&scratch.join("exact"), budget / 4, false)?),
            false => None,
        };
        let near = match near {
            Some(o) => {
                let hasher = MinHasher::new(o).ok_or(DedupError::Options)?;
                let (bands, perms) = hasher.shard(shard);
                let sorter = Sorter::new(&scratch.join("bands"), budget - budget / 4, false)?;
                let path = out.join(SIGNATURES);
                let file = File::create(&path).map_err(io(&path))?;
                Some(Near {
                    hasher,
                    bands,
                    perms,
                    sorter,
                    signatures: BufWriter::with_capacity(1 << 20, file),
                })
            }
            None => None,
        };
        Ok(Self {
            exact,
            near,
            out: out.to_owned(),
            shard,
            rows: 0,
        })
    }

    /// Offers rows (their sha1 and text), numbered from the count offered so far; signatures
    /// are computed in parallel.
    pub fn add(&mut self, rows: &[([u8; 20], &str)]) -> Result<(), DedupError> {
        let first = self.rows;
        let n = u32::try_from(rows.len()).map_err(|_| DedupError::TooMany)?;
        self.rows = first.checked_add(n).ok_or(DedupError::TooMany)?;
        if let Some(s) = self.exact.as_mut() {
            for (i, (sha1, _)) in rows.iter().enumerate() {
                if self.shard.owns_sha1(sha1) {
                    s.push(ExactKey(*sha1, first + i as u32))?;
                }
            }
        }
        if let Some(near) = self.near.as_mut() {
            let sigs: Vec<Vec<u32>> = rows
                .par_iter()
                .map(|(_, t)| near.hasher.signature_of(t, near.perms.clone()))
                .collect();
            for (i, sig) in sigs.iter().enumerate() {
                for band in near.bands.clone() {
                    let key = near.hasher.band_key_at(sig, band, near.perms.start);
                    near.sorter
                        .push(BandKey(band as u16, key, first + i as u32))?;
                }
                // Native byte order: the merge only compares values of one file with each
                // other, which any order keeps (band keys are hashed from little-endian
                // bytes).
                let bytes: &[u8] = bytemuck::cast_slice(sig);
                let path = self.out.join(SIGNATURES);
                near.signatures.write_all(bytes).map_err(io(&path))?;
            }
        }
        Ok(())
    }

    /// Rows offered so far.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Sorts the keys and writes the shard's pairs.
    pub fn finish(self) -> Result<(), DedupError> {
        if let Some(sorter) = self.exact {
            let mut out = PairWriter::create(self.out.join(EXACT_PAIRS))?;
            let mut last: Option<ExactKey> = None;
            for key in sorter.finish()? {
                let key = key?;
                match &last {
                    Some(l) if l.0 == key.0 => out.push(l.1, key.1)?,
                    _ => last = Some(key),
                }
            }
            out.finish()?;
        }
        if let Some(near) = self.near {
            let path = self.out.join(SIGNATURES);
            let file = near
                .signatures
                .into_inner()
                .map_err(|e| io(&path)(e.into_error()))?;
            file.sync_all().map_err(io(&path))?;
            // Each member of a bucket against the bucket's first row: a star links the
            // bucket, and the threshold decides which links hold.
            let mut out = PairWriter::create(self.out.join(NEAR_PAIRS))?;
            let mut anchor: Option<BandKey> = None;
            for key in near.sorter.finish()? {
                let key = key?;
                match &anchor {
                    Some(a) if a.0 == key.0 && a.1 == key.1 => out.push(a.2, key.2)?,
                    _ => anchor = Some(key),
                }
            }
            out.finish()?;
        }
        Ok(())
    }
}

/// The clusters of `rows` rows from the files of every shard of their deduplication (in
/// shard order), `near` the MinHash options when near duplicates were looked for.
pub fn clusters(
    shards: &[PathBuf],
    rows: u32,
    near: Option<&MinHashOptions>,
) -> Result<Clusters, DedupError> {
    let n = rows as usize;
    let mut sets = UnionFind::new(n);
    let mut exact = vec![0u64; n.div_ceil(64)];
    let mut counts = DedupCounts {
        rows: n as u64,
        ..DedupCounts::default()
    };
    let in_range = |path: &Path, a: u32, b: u32| {
        if a < rows && b < rows {
            Ok(())
        } else {
            Err(DedupError::Io {
                path: path.to_owned(),
                source: std::io::Error::other(format!(
                    "pair ({a}, {b}) is beyond the {rows} rows offered: a shard of another run"
                )),
            })
        }
    };
    for dir in shards {
        let path = dir.join(EXACT_PAIRS);
        if !path.exists() {
            continue;
        }
        for_each_pair(&path, |first, row| {
            in_range(&path, first, row)?;
            sets.union(first, row);
            exact[row as usize / 64] |= 1 << (row % 64);
            Ok(())
        })?;
    }
    if let Some(o) = near {
        let hasher = MinHasher::new(o).ok_or(DedupError::Options)?;
        // Every shard's part of the signatures, mapped, with its width.
        let mut parts: Vec<(memmap2::Mmap, usize)> = Vec::new();
        for (index, _) in shards.iter().enumerate() {
            let (_, perms) = hasher.shard(Shard {
                index,
                count: shards.len(),
            });
            let path = shards[index].join(SIGNATURES);
            let file = File::open(&path).map_err(io(&path))?;
            let len = file.metadata().map_err(io(&path))?.len();
            if len != (n * perms.len() * 4) as u64 {
                return Err(DedupError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(format!(
                        "{len} bytes, not the {} of {n} rows of {} permutations",
                        n * perms.len() * 4,
                        perms.len()
                    )),
                });
            }
            if len > 0 {
                // SAFETY: the file is in a finished checkpoint of this run, never rewritten.
                let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io(&path))?;
                parts.push((map, perms.len()));
            }
        }
        let total = hasher.permutations();
        let similarity = |a: u32, b: u32| {
            let mut same = 0usize;
            for (map, width) in &parts {
                let all: &[u32] = bytemuck::cast_slice(map);
                let at = |r: u32| &all[r as usize * width..(r as usize + 1) * width];
                same += at(a).iter().zip(at(b)).filter(|(x, y)| x == y).count();
            }
            same as f64 / total.max(1) as f64
        };
        for dir in shards {
            let path = dir.join(NEAR_PAIRS);
            for_each_pair(&path, |a, b| {
                in_range(&path, a, b)?;
                counts.pairs_checked += 1;
                if similarity(a, b) >= hasher.threshold() {
                    counts.pairs_similar += 1;
                    sets.union(a, b);
                }
                Ok(())
            })?;
        }
    }
    let representative = sets.representatives();
    let mut clusters = Clusters {
        representative,
        exact,
        counts,
    };
    for row in 0..rows {
        match clusters.fate(row) {
            Fate::Exact => clusters.counts.exact += 1,
            Fate::Near => clusters.counts.near += 1,
            Fate::Kept => {}
        }
    }
    Ok(clusters)
}

/// The outcome: every row's fate and cluster.
pub struct Clusters {
    representative: Vec<u32>,
    exact: Vec<u64>,
    /// Counts.
    pub counts: DedupCounts,
}

impl Clusters {
    /// What row `row` became.
    pub fn fate(&self, row: u32) -> Fate {
        if self.representative[row as usize] == row {
            Fate::Kept
        } else if self.exact[row as usize / 64] >> (row % 64) & 1 == 1 {
            Fate::Exact
        } else {
            Fate::Near
        }
    }

    /// The cluster of row `row`: its representative's number.
    pub fn cluster(&self, row: u32) -> u32 {
        self.representative[row as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(text: &str) -> [u8; 20] {
        use sha1::Digest;
        sha1::Sha1::digest(text.as_bytes()).into()
    }

    /// A text of `n` distinct words from `seed`.
    fn words(seed: u64, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("w{}", (seed * 1_000_003 + i as u64 * 7919) % 1_000_000))
            .collect()
    }

    #[test]
    fn finds_planted_duplicates_beyond_memory() {
        let dir = tempfile::tempdir().unwrap();
        let base = words(1, 400);
        let mut texts: Vec<String> = Vec::new();
        texts.push(base.join(" ")); // 0: original
        texts.push(base.join(" ")); // 1: exact copy
        let mut edited = base.clone();
        for w in edited.iter_mut().step_by(50) {
            *w = "changed".into(); // 2: ~2% of words edited: near
        }
        texts.push(edited.join(" "));
        let mut far = base.clone();
        for w in far.iter_mut().step_by(2) {
            *w = format!("{w}x"); // 3: half the words changed: distinct
        }
        texts.push(far.join(" "));
        for s in 10..200 {
            texts.push(words(s, 300).join(" ")); // distinct files
        }
        texts.push(texts[2].clone()); // an exact copy of a near duplicate
        let rows: Vec<([u8; 20], &str)> = texts.iter().map(|t| (sha(t), t.as_str())).collect();
        let opts = MinHashOptions::default();
        // In 1, 3 and 5 shards (the bands split unevenly), the same clusters.
        let mut answers = Vec::new();
        for count in [1, 3, 5] {
            let mut dirs = Vec::new();
            for index in 0..count {
                let out = dir.path().join(format!("{count}-{index}"));
                std::fs::create_dir_all(&out).unwrap();
                // A tiny sort budget spills runs to disk.
                let shard = Shard { index, count };
                let scratch = out.join("scratch");
                let mut d = Dedup::new(&out, &scratch, 4096, true, Some(&opts), shard).unwrap();
                for chunk in rows.chunks(17) {
                    d.add(chunk).unwrap();
                }
                d.finish().unwrap();
                dirs.push(out);
            }
            let c = clusters(&dirs, rows.len() as u32, Some(&opts)).unwrap();
            let all: Vec<(u32, bool)> = (0..rows.len() as u32)
                .map(|r| (c.cluster(r), c.fate(r) == Fate::Exact))
                .collect();
            answers.push((all, c.counts.clone()));
        }
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "shards change nothing"
        );
        let dirs = vec![dir.path().join("1-0")];
        let c = clusters(&dirs, rows.len() as u32, Some(&opts)).unwrap();
        let last = texts.len() as u32 - 1;
        assert_eq!(c.fate(0), Fate::Kept);
        assert_eq!(c.fate(1), Fate::Exact);
        assert_eq!(c.fate(2), Fate::Near);
        assert_eq!(c.fate(3), Fate::Kept);
        assert_eq!(c.fate(last), Fate::Exact);
        assert_eq!([c.cluster(1), c.cluster(2), c.cluster(last)], [0, 0, 0]);
        for row in 4..last {
            assert_eq!(c.fate(row), Fate::Kept, "row {row}");
            assert_eq!(c.cluster(row), row);
        }
        assert_eq!((c.counts.exact, c.counts.near), (2, 1));
        // Files of another run are refused, not read out of bounds.
        assert!(clusters(&dirs, 3, Some(&opts)).is_err());
    }
}
