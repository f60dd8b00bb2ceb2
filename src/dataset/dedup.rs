//! Exact and near deduplication of a dataset's candidate rows, out of core.
//!
//! Rows are numbered in the order they are offered ([`Dedup::add`]). Exact duplicates share a
//! sha1: every row after the first of its sha1 is one. Near duplicates share a MinHash band
//! ([`super::minhash`]) with a row whose signature estimates a Jaccard similarity of at least
//! the threshold. Both kinds join clusters (union-find); a cluster keeps its lowest row, the
//! representative, and its id is that row's number.
//!
//! Scale: keys go to external sorters (one record per row for the sha1s, one per row and band
//! for the bands) within the sort budget, signatures to a scratch file read back memory-mapped
//! when candidate pairs are checked. Memory: the sort budget, one `u32` per row (the clusters)
//! and one bit per row (exact or near).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::minhash::{MinHashOptions, MinHasher, UnionFind};
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

/// Deduplication being fed rows.
pub struct Dedup {
    exact: Option<Sorter<ExactKey>>,
    near: Option<(MinHasher, Sorter<BandKey>, BufWriter<File>)>,
    signatures: PathBuf,
    rows: u32,
}

/// The outcome: every row's fate and cluster.
pub struct Clusters {
    representative: Vec<u32>,
    exact: Vec<u64>,
    /// Counts.
    pub counts: DedupCounts,
}

impl Dedup {
    /// Deduplication with scratch files in `dir` and `budget` bytes of sort memory; `exact`
    /// and `near` (MinHash options) choose the kinds.
    pub fn new(
        dir: &Path,
        budget: usize,
        exact: bool,
        near: Option<&MinHashOptions>,
    ) -> Result<Self, DedupError> {
        std::fs::create_dir_all(dir).map_err(|source| DedupError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let exact = match exact {
            true => Some(Sorter::new(&dir.join("exact"), budget / 4, false)?),
            false => None,
        };
        let signatures = dir.join("signatures.u32");
        let near = match near {
            Some(o) => {
                let hasher = MinHasher::new(o).ok_or(DedupError::Options)?;
                let sorter = Sorter::new(&dir.join("bands"), budget - budget / 4, false)?;
                // Read back memory-mapped: opened for reading too.
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&signatures)
                    .map_err(|source| DedupError::Io {
                        path: signatures.clone(),
                        source,
                    })?;
                Some((hasher, sorter, BufWriter::with_capacity(1 << 20, file)))
            }
            None => None,
        };
        Ok(Self {
            exact,
            near,
            signatures,
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
                s.push(ExactKey(*sha1, first + i as u32))?;
            }
        }
        if let Some((hasher, sorter, file)) = self.near.as_mut() {
            let sigs: Vec<Vec<u32>> = rows.par_iter().map(|(_, t)| hasher.signature(t)).collect();
            let (bands, _) = hasher.bands();
            for (i, sig) in sigs.iter().enumerate() {
                for band in 0..bands {
                    sorter.push(BandKey(
                        band as u16,
                        hasher.band_key(sig, band),
                        first + i as u32,
                    ))?;
                }
                let bytes: &[u8] = bytemuck::cast_slice(sig);
                file.write_all(bytes).map_err(|source| DedupError::Io {
                    path: self.signatures.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Rows offered so far.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Sorts the keys and joins the clusters.
    pub fn finish(self) -> Result<Clusters, DedupError> {
        let n = self.rows as usize;
        let mut sets = UnionFind::new(n);
        let mut exact = vec![0u64; n.div_ceil(64)];
        let mut counts = DedupCounts {
            rows: n as u64,
            ..DedupCounts::default()
        };
        if let Some(sorter) = self.exact {
            let mut last: Option<ExactKey> = None;
            for key in sorter.finish()? {
                let key = key?;
                match &last {
                    Some(l) if l.0 == key.0 => {
                        sets.union(l.1, key.1);
                        exact[key.1 as usize / 64] |= 1 << (key.1 % 64);
                    }
                    _ => last = Some(key),
                }
            }
        }
        if let Some((hasher, sorter, file)) = self.near {
            let io = |source| DedupError::Io {
                path: self.signatures.clone(),
                source,
            };
            let file = file.into_inner().map_err(|e| io(e.into_error()))?;
            file.sync_all().map_err(io)?;
            let map = if n == 0 {
                None
            } else {
                // SAFETY: the file is ours, in a scratch folder, and no longer written.
                Some(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
            };
            let all: &[u32] = map.as_deref().map_or(&[], bytemuck::cast_slice);
            let width = hasher.permutations();
            let sig = |row: u32| &all[row as usize * width..(row as usize + 1) * width];
            let mut anchor: Option<BandKey> = None;
            for key in sorter.finish()? {
                let key = key?;
                match &anchor {
                    Some(a) if a.0 == key.0 && a.1 == key.1 => {
                        counts.pairs_checked += 1;
                        if MinHasher::similarity(sig(a.2), sig(key.2)) >= hasher.threshold() {
                            counts.pairs_similar += 1;
                            sets.union(a.2, key.2);
                        }
                    }
                    _ => anchor = Some(key),
                }
            }
        }
        let representative = sets.representatives();
        let mut clusters = Clusters {
            representative,
            exact,
            counts,
        };
        for row in 0..n as u32 {
            match clusters.fate(row) {
                Fate::Exact => clusters.counts.exact += 1,
                Fate::Near => clusters.counts.near += 1,
                Fate::Kept => {}
            }
        }
        Ok(clusters)
    }
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
        // A tiny sort budget spills runs to disk.
        let mut d = Dedup::new(dir.path(), 4096, true, Some(&MinHashOptions::default())).unwrap();
        for chunk in rows.chunks(17) {
            d.add(chunk).unwrap();
        }
        let c = d.finish().unwrap();
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
    }
}
