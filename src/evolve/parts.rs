//! Checkpoints of `evolve`: the repositories are cut into batches of `batch_repos`, and each
//! batch's output is a part, written atomically as `WORKDIR/evolve-parts/KEY/batch-NNNNNN/`
//! with its `part.json` (its files' sizes and hashes, its counts). A rerun skips the batches
//! whose part is in place; `--slice K/N` runs a contiguous slice of the batches (one Slurm
//! array task); the merge checks every part as it reads it and writes the output, then
//! removes the parts (the output's manifest records the key, so a rerun finds it current).
//!
//! [`key`] hashes everything that decides the records: the graph, the content sources, the
//! repositories with their overrides, the `[evolve]` options that shape records, the URL
//! templates, the dependency map's bytes and unearth's version; the output's manifest
//! carries it. `KEY` adds the batch size. Parts of another configuration are never mixed in:
//! they live under another key, and `run.json` in each key folder is checked before any part
//! is used. A part written while blobs failed to fetch is merged if need be and redone by the
//! next run (as the fetch phase retries them).

use std::path::{Path, PathBuf};

use crate::config::{Config, EvolveRepo};
use crate::model::Shard;

use super::output::{Manifest, PART};
use super::EvolveError;

/// Folder of the checkpoints, in the work directory.
pub const DIR: &str = "evolve-parts";
const RUN: &str = "run.json";
const RUN_KIND: &str = "unearth-evolve-run";

/// The key of the records of `repos` under `cfg`: what they depend on, and nothing that
/// only schedules the work (`batch_repos`, `slices`, `out`, where the slugs were read from).
pub fn key(cfg: &Config, repos: &[EvolveRepo]) -> Result<String, EvolveError> {
    let map = match &cfg.evolve.dependency_map {
        Some(p) => std::fs::read(p).map_err(|e| EvolveError::io(p, e))?,
        None => Vec::new(),
    };
    let graph = crate::pipeline::GraphFingerprint::of(&cfg.graph)?;
    let mut ev = cfg.evolve.clone();
    ev.out = None;
    ev.slices = 1;
    ev.batch_repos = 1;
    ev.repos = Vec::new();
    ev.repos_file = None;
    ev.dependency_map = None;
    let shape = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "graph": format!("{graph:?}"),
        "digestmap": cfg.digestmap,
        "orc": cfg.orc,
        "store": cfg.fetch.store,
        "repos": repos,
        "evolve": ev,
        "url_templates": cfg.options.url_templates,
        "dependency_map": format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&map)),
    });
    Ok(hash(&serde_json::to_vec(&shape).unwrap_or_default()))
}

fn hash(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// The key of the checkpoints: the records' key and the batch size (parts of other sizes
/// hold other repositories).
pub fn parts_key(key: &str, batch_repos: usize) -> String {
    hash(format!("{key} {batch_repos}").as_bytes())
}

/// What a batch's part says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No part.
    Missing,
    /// A part whose blobs were all read or are settled as missing.
    Done,
    /// A part written while some blobs failed to fetch or read damaged: merged if need be,
    /// redone by the next run.
    Retry,
}

/// The checkpoints of one run.
pub struct Parts {
    dir: PathBuf,
    key: String,
    batches: usize,
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct RunRecord {
    kind: String,
    key: String,
    batches: usize,
    repos: usize,
}

impl Parts {
    /// Opens (or starts) the checkpoints `key` ([`parts_key`]) of `repos` repositories in
    /// `batches` batches; refuses a record of another run.
    pub fn open(
        workdir: &Path,
        key: &str,
        batches: usize,
        repos: usize,
    ) -> Result<Self, EvolveError> {
        let dir = workdir.join(DIR).join(key);
        let want = RunRecord {
            kind: RUN_KIND.into(),
            key: key.into(),
            batches,
            repos,
        };
        let path = dir.join(RUN);
        // A folder without its record is one whose creation was cut short, or that a slice
        // started at the same moment is about to record: the record is (re)written.
        if path.exists() {
            let found: Option<RunRecord> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if found.as_ref() != Some(&want) {
                return Err(EvolveError::Damaged {
                    path,
                    reason: format!(
                        "does not record this run ({batches} batches of {repos} repositories, \
                         key {key}); the folder is not unearth's or was changed"
                    ),
                });
            }
        } else {
            std::fs::create_dir_all(&dir).map_err(|e| EvolveError::io(&dir, e))?;
            // Written atomically: slices started together may race here.
            let text = serde_json::to_vec_pretty(&want).unwrap_or_default();
            crate::artifacts::write_atomically(&path, &text)
                .map_err(|e| EvolveError::io(&path, e))?;
        }
        Ok(Self {
            dir,
            key: key.into(),
            batches,
        })
    }

    /// The folder of batch `b`'s part.
    pub fn part(&self, b: usize) -> PathBuf {
        self.dir.join(format!("batch-{b:06}"))
    }

    /// The state of batch `b`'s part. A folder there without a part record of this run is
    /// refused (parts appear only by rename, complete).
    pub fn state(&self, b: usize) -> Result<State, EvolveError> {
        let dir = self.part(b);
        if !dir.exists() {
            return Ok(State::Missing);
        }
        let path = dir.join(PART);
        match Manifest::read(&path) {
            Some(m) if m.key.as_deref() == Some(&self.key) && m.batch == Some(b) => {
                Ok(if m.counts.blobs_failed > 0 {
                    State::Retry
                } else {
                    State::Done
                })
            }
            _ => Err(EvolveError::Damaged {
                path,
                reason: format!(
                    "is not the record of batch {b} of this run (remove {} to redo that batch)",
                    dir.display()
                ),
            }),
        }
    }

    /// Makes way for batch `b` to be written again (its part had failed blobs).
    pub fn redo(&self, b: usize) -> Result<(), EvolveError> {
        let dir = self.part(b);
        std::fs::remove_dir_all(&dir).map_err(|e| EvolveError::io(&dir, e))
    }

    /// The batches without a part.
    pub fn missing(&self) -> Result<Vec<usize>, EvolveError> {
        let mut v = Vec::new();
        for b in 0..self.batches {
            if self.state(b)? == State::Missing {
                v.push(b);
            }
        }
        Ok(v)
    }

    /// Every part, in batch order.
    pub fn all(&self) -> Vec<PathBuf> {
        (0..self.batches).map(|b| self.part(b)).collect()
    }

    /// Removes the checkpoints (once the output holds them).
    pub fn remove(self) -> Result<(), EvolveError> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| EvolveError::io(&self.dir, e))
    }
}

/// The batches a slice covers.
pub fn slice_batches(slice: Shard, batches: usize) -> std::ops::Range<usize> {
    slice.range(batches)
}

/// Names the missing batches and the slices that hold them, for an error message.
pub fn describe_missing(missing: &[usize], batches: usize, slices: usize) -> String {
    let mut shown: Vec<String> = missing.iter().take(8).map(|b| b.to_string()).collect();
    if missing.len() > 8 {
        shown.push(format!("... ({} in all)", missing.len()));
    }
    // The first few only: the search is over every slice.
    let mut owners: Vec<usize> = missing
        .iter()
        .take(8)
        .filter_map(|&b| {
            (0..slices).find(|&k| {
                slice_batches(
                    Shard {
                        index: k,
                        count: slices,
                    },
                    batches,
                )
                .contains(&b)
            })
        })
        .collect();
    owners.dedup();
    let owners: Vec<String> = owners
        .iter()
        .take(8)
        .map(|k| format!("{k}/{slices}"))
        .collect();
    format!(
        "batches {} of {batches} are not done (slices {} with `[evolve] slices = {slices}`)",
        shown.join(", "),
        owners.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_batch_once() {
        for batches in [0, 1, 2, 7, 64, 1000] {
            for n in [1, 2, 3, 8, 13] {
                let mut seen = vec![0; batches];
                for k in 0..n {
                    for b in slice_batches(Shard { index: k, count: n }, batches) {
                        seen[b] += 1;
                    }
                }
                assert!(
                    seen.iter().all(|&c| c == 1),
                    "{batches} batches, {n} slices"
                );
            }
        }
    }

    #[test]
    fn missing_batches_name_their_slices() {
        let text = describe_missing(&[3, 4, 9], 10, 2);
        assert!(text.contains("batches 3, 4, 9 of 10"), "{text}");
        assert!(text.contains("slices 0/2, 1/2"), "{text}");
    }
}
