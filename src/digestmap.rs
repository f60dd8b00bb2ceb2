//! Software Heritage's digestmap: the sha1_git -> sha1 map of every visible content, as SWH
//! publishes it beside its graph exports (the `swh-digestmap` crate's format: a VFunc from
//! sha1_git to a row, and two memory-mapped tables of 20-byte digests, `sha1_git.bin` to check
//! the row and `sha1.bin` to answer).
//!
//! A lookup is a hash evaluation and two reads of the tables, so the content join asks it for
//! the ids the resolved rows need instead of scanning the whole `content` table. Contents SWH
//! skipped have no sha1 and are not in the map.
//!
//! [`build_from_orc`] writes one from the `content` ORC tables with the crate's own build
//! functions; `unearth archive build` gives every archive one, so tests read the real format.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use epserde_digestmap::ser::Serialize;
use rayon::prelude::*;

use crate::model::{Sha1, Sha1Git};
use crate::orc::{self, OrcError};

/// The files of a digestmap folder.
pub const FILES: [&str; 3] = [
    swh_digestmap::VFUNC_FILENAME,
    swh_digestmap::SHA1_GIT_FILENAME,
    swh_digestmap::SHA1_FILENAME,
];

/// Errors opening, reading or building a digestmap.
#[derive(Debug, thiserror::Error)]
pub enum DigestMapError {
    /// A file of the map is missing.
    #[error("digestmap {dir}: no {file} (a digestmap folder holds {files})", files = FILES.join(", "))]
    Missing {
        /// The folder.
        dir: PathBuf,
        /// The missing file.
        file: &'static str,
    },
    /// The map's library refused the folder or a lookup.
    #[error("digestmap {dir}")]
    Map {
        /// The folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The output folder exists (it is never overwritten).
    #[error("digestmap {0} exists; give a new folder")]
    Exists(PathBuf),
    /// No `content` table under the ORC folder.
    #[error("{0}: no content/*.orc table to build a digestmap from")]
    NoTable(PathBuf),
    /// A content table could not be read, or holds a bad digest.
    #[error(transparent)]
    Orc(#[from] OrcError),
    /// A file of the map could not be written or moved into place.
    #[error("{path}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl DigestMapError {
    fn map(dir: &Path, e: anyhow::Error) -> Self {
        Self::Map {
            dir: dir.to_owned(),
            source: e.into(),
        }
    }
}

/// An opened digestmap.
pub struct DigestMap {
    dir: PathBuf,
    map: swh_digestmap::DigestMap,
}

impl DigestMap {
    /// Opens the digestmap in `dir` (memory-mapped; nothing is read up front).
    pub fn open(dir: &Path) -> Result<Self, DigestMapError> {
        if let Some(file) = FILES.into_iter().find(|f| !dir.join(f).is_file()) {
            return Err(DigestMapError::Missing {
                dir: dir.to_owned(),
                file,
            });
        }
        let map = swh_digestmap::DigestMap::new(dir).map_err(|e| DigestMapError::map(dir, e))?;
        Ok(Self {
            dir: dir.to_owned(),
            map,
        })
    }

    /// The sha1 of the content `id`, or `None` when the map has no such content.
    pub fn sha1(&self, id: &Sha1Git) -> Result<Option<Sha1>, DigestMapError> {
        let found = self
            .map
            .sha1_from_sha1_git(swh_digestmap::Sha1Git(id.0))
            .map_err(|e| DigestMapError::map(&self.dir, e))?;
        Ok(found.map(|s| Sha1(s.0)))
    }
}

/// Reads the (sha1_git, sha1) pairs of every `content` ORC file under `orc_dir`.
fn content_pairs(orc_dir: &Path) -> Result<Vec<(Sha1Git, Sha1)>, OrcError> {
    let files = orc::table_files(orc_dir, "content");
    let parts: Vec<Vec<(Sha1Git, Sha1)>> = files
        .par_iter()
        .map(|path| {
            let mut pairs = Vec::new();
            let mut row = 0u64;
            orc::for_each_batch(path, &["sha1", "sha1_git"], |batch| {
                let sha1 = orc::text(batch, "sha1")?;
                let sha1_git = orc::text(batch, "sha1_git")?;
                for i in 0..batch.num_rows() {
                    let (s, g) = (sha1.get(i), sha1_git.get(i));
                    let bad =
                        |what: &str, e: &dyn std::fmt::Display| format!("row {row}: {what}: {e}");
                    match (s, g) {
                        (Some(s), Some(g)) => pairs.push((
                            Sha1Git::from_hex(g).map_err(|e| bad("sha1_git", &e))?,
                            Sha1::from_hex(s).map_err(|e| bad("sha1", &e))?,
                        )),
                        _ => return Err(bad("digest", &"null in the content table")),
                    }
                    row += 1;
                }
                Ok(())
            })?;
            Ok(pairs)
        })
        .collect::<Result<_, OrcError>>()?;
    Ok(parts.concat())
}

/// Builds the digestmap of the `content` tables under `orc_dir` into the folder `out` (which
/// must not exist: it is written beside as a temporary folder and renamed into place);
/// returns the number of distinct contents.
pub fn build_from_orc(orc_dir: &Path, out: &Path) -> Result<u64, DigestMapError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DigestMapError::Io { path, source }
    };
    if out.exists() {
        return Err(DigestMapError::Exists(out.to_owned()));
    }
    if orc::table_files(orc_dir, "content").is_empty() {
        return Err(DigestMapError::NoTable(orc_dir.to_owned()));
    }
    let pairs = content_pairs(orc_dir)?;
    let parent = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".digestmap-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let dir = tmp.path();
    let err = |e| DigestMapError::map(dir, e);
    let parallelism = NonZeroUsize::new(rayon::current_num_threads()).unwrap_or(NonZeroUsize::MIN);
    let digest = |(g, s): &(Sha1Git, Sha1)| (swh_digestmap::Sha1Git(g.0), swh_digestmap::Sha1(s.0));
    let keys = swh_digestmap::build::build_sha1_git_table_from_keys(
        pairs.iter().map(|p| digest(p).0).collect(),
        pairs.len(),
        dir,
        parallelism,
    )
    .map_err(err)?;
    let vfunc = swh_digestmap::build::build_vfunc(&keys).map_err(err)?;
    swh_digestmap::build::build_sha1_table_from_pairs(
        pairs.par_iter().map(|p| Ok(digest(p))),
        &vfunc,
        keys.len(),
        dir,
        parallelism,
    )
    .map_err(err)?;
    let vfunc_path = dir.join(swh_digestmap::VFUNC_FILENAME);
    vfunc
        .store(&vfunc_path)
        .map_err(|e| DigestMapError::map(dir, e.into()))?;
    let distinct = keys.len() as u64;
    drop(keys);
    let kept = tmp.keep();
    std::fs::rename(&kept, out).map_err(io(out))?;
    Ok(distinct)
}
