//! Checkpointed chunks inside a shard: a killed job loses at most one chunk of work.
//!
//! A shard's work is split into numbered chunks (a node range, one ORC file). Each finished
//! chunk is a data file and a counts file, both made visible by rename, data first, in a
//! folder stamped with the shard's input fingerprint. A rerun reuses the chunks of a folder
//! made from the same inputs and discards any other folder.

use std::path::{Path, PathBuf};

use crate::model::Counts;

use super::PhaseError;

/// The chunk folder of one shard.
#[derive(Debug, Clone)]
pub struct Chunks {
    dir: PathBuf,
}

/// How many chunks a shard had, and how many an earlier run had already finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Chunks of the shard.
    pub chunks: u64,
    /// Of those, reused from an interrupted run.
    pub reused: u64,
}

const STAMP: &str = "inputs.json";

impl Chunks {
    /// Opens `dir` for a shard with input fingerprint `stamp`: kept if an earlier run of the
    /// same inputs made it, emptied otherwise.
    pub fn prepare(dir: &Path, stamp: &str) -> Result<Self, PhaseError> {
        let stamp_path = dir.join(STAMP);
        if std::fs::read_to_string(&stamp_path).ok().as_deref() != Some(stamp) {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| PhaseError::io(dir, e))?;
            }
            std::fs::create_dir_all(dir).map_err(|e| PhaseError::io(dir, e))?;
            std::fs::write(&stamp_path, stamp).map_err(|e| PhaseError::io(&stamp_path, e))?;
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// A chunk folder that never reuses anything (merges, unchunked phases).
    pub fn none(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Removes the folder once the shard's checkpoint is written.
    pub fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Runs `work(i, tmp)` for each chunk `i < n` not already done; `work` writes each of
    /// `names` into `tmp` and returns the chunk's counts. Returns, per name, every chunk's
    /// file in order, and the counts summed over all chunks.
    pub fn run<C: Counts>(
        &self,
        n: usize,
        names: &[&str],
        mut work: impl FnMut(usize, &Path) -> Result<C, PhaseError>,
    ) -> Result<(Vec<Vec<PathBuf>>, C, ChunkStats), PhaseError> {
        let done = (0..n)
            .map(|i| self.chunk(i, names, &mut work))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.gather(n, names, done))
    }

    /// [`Chunks::run`] with the chunks not already done run in parallel (on the current rayon
    /// pool); the result is the same, in chunk order.
    pub fn run_par<C: Counts + Send>(
        &self,
        n: usize,
        names: &[&str],
        work: impl Fn(usize, &Path) -> Result<C, PhaseError> + Sync,
    ) -> Result<(Vec<Vec<PathBuf>>, C, ChunkStats), PhaseError> {
        use rayon::prelude::*;
        let done = (0..n)
            .into_par_iter()
            .map(|i| self.chunk(i, names, &mut |i, tmp| work(i, tmp)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.gather(n, names, done))
    }

    fn data_files(&self, i: usize, names: &[&str]) -> Vec<PathBuf> {
        names
            .iter()
            .map(|name| self.dir.join(format!("chunk-{i:06}.{name}")))
            .collect()
    }

    /// Chunk `i`: its counts from an earlier run when its files are all there, else from
    /// `work`, with its files moved into place; and whether it was reused.
    fn chunk<C: Counts>(
        &self,
        i: usize,
        names: &[&str],
        work: &mut impl FnMut(usize, &Path) -> Result<C, PhaseError>,
    ) -> Result<(C, bool), PhaseError> {
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| PhaseError::Io { path: p, source }
        };
        let data = self.data_files(i, names);
        let done = self.dir.join(format!("chunk-{i:06}.json"));
        let earlier: Option<C> = std::fs::read_to_string(&done)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(c) = earlier {
            if data.iter().all(|d| d.is_file()) {
                return Ok((c, true));
            }
        }
        let tmp = self.dir.join(format!(".chunk-{i:06}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let c = work(i, &tmp)?;
        for (name, d) in names.iter().zip(&data) {
            std::fs::rename(tmp.join(name), d).map_err(io(d))?;
        }
        let t = done.with_extension("json.tmp");
        let text = serde_json::to_string(&c).unwrap_or_default();
        std::fs::write(&t, text).map_err(io(&t))?;
        std::fs::rename(&t, &done).map_err(io(&done))?;
        let _ = std::fs::remove_dir_all(&tmp);
        Ok((c, false))
    }

    fn gather<C: Counts>(
        &self,
        n: usize,
        names: &[&str],
        done: Vec<(C, bool)>,
    ) -> (Vec<Vec<PathBuf>>, C, ChunkStats) {
        let mut files: Vec<Vec<PathBuf>> = vec![Vec::with_capacity(n); names.len()];
        let mut total = C::default();
        let mut stats = ChunkStats {
            chunks: n as u64,
            reused: 0,
        };
        for (i, (counts, reused)) in done.into_iter().enumerate() {
            stats.reused += reused as u64;
            total.add(&counts);
            for (f, d) in files.iter_mut().zip(self.data_files(i, names)) {
                f.push(d);
            }
        }
        (files, total, stats)
    }
}
