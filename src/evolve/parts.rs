//! Checkpoints of `evolve`: the repositories are cut into batches of `batch_repos`, and each
//! batch's output is a part, written atomically as `WORKDIR/evolve-parts/KEY/batch-NNNNNN/`
//! with its `part.json` (its files' sizes and hashes, its counts). A rerun skips the batches
//! whose part is in place; `--slice K/N` runs a contiguous slice of the batches (one Slurm
//! array task); the merge checks every part as it reads it and writes the output, then
//! removes the parts (the output's manifest records the key, so a rerun finds it current).
//!
//! `KEY` hashes everything that decides the output: the repositories with their overrides,
//! the `[evolve]` options that shape records, the URL templates, the dependency map's bytes
//! and unearth's version. Parts of another configuration are never mixed in: they live under
//! another key, and `run.json` in each key folder is checked before any part is used.

use std::path::{Path, PathBuf};

use crate::config::{Config, EvolveRepo};
use crate::model::Shard;

use super::output::{Manifest, PART};
use super::EvolveError;

/// Folder of the checkpoints, in the work directory.
pub const DIR: &str = "evolve-parts";
const RUN: &str = "run.json";
const RUN_KIND: &str = "unearth-evolve-run";

/// The key of a run of `repos` under `cfg`.
pub fn key(cfg: &Config, repos: &[EvolveRepo]) -> Result<String, EvolveError> {
    let map = match &cfg.evolve.dependency_map {
        Some(p) => std::fs::read(p).map_err(|e| EvolveError::io(p, e))?,
        None => Vec::new(),
    };
    // What only places or schedules the work is left out of the key.
    let mut ev = cfg.evolve.clone();
    ev.out = None;
    ev.slices = 1;
    ev.repos = Vec::new();
    ev.dependency_map = None;
    let shape = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "repos": repos,
        "evolve": ev,
        "url_templates": cfg.options.url_templates,
        "dependency_map": format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&map)),
    });
    let bytes = serde_json::to_vec(&shape).unwrap_or_default();
    Ok(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes)))
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
    /// Opens (or starts) the checkpoints of the run `key` of `repos` repositories in
    /// `batches` batches; refuses a folder that records another run.
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
        if dir.exists() {
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
            // Written once, atomically: slices started together may race here.
            let tmp = dir.join(format!(".{RUN}.tmp-{}", std::process::id()));
            let text = serde_json::to_vec_pretty(&want).unwrap_or_default();
            std::fs::write(&tmp, text).map_err(|e| EvolveError::io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| EvolveError::io(&path, e))?;
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

    /// Whether batch `b`'s part is in place. A folder there without a part record of this
    /// run is refused (parts appear only by rename, complete).
    pub fn is_done(&self, b: usize) -> Result<bool, EvolveError> {
        let dir = self.part(b);
        if !dir.exists() {
            return Ok(false);
        }
        let path = dir.join(PART);
        match Manifest::read(&path) {
            Some(m) if m.key.as_deref() == Some(&self.key) && m.batch == Some(b) => Ok(true),
            _ => Err(EvolveError::Damaged {
                path,
                reason: format!("is not the record of batch {b} of this run"),
            }),
        }
    }

    /// The batches without a part.
    pub fn missing(&self) -> Result<Vec<usize>, EvolveError> {
        let mut v = Vec::new();
        for b in 0..self.batches {
            if !self.is_done(b)? {
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
    let mut owners: Vec<usize> = missing
        .iter()
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
