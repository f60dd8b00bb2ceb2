//! Phase checkpoints in the work directory.
//!
//! Each phase writes its outputs into `WORKDIR/.<phase>.tmp-<pid>/`, then a `manifest.json`
//! there, then renames the folder to `WORKDIR/<phase>/`: a phase folder that exists is
//! complete. The manifest records what the phase was computed from (fingerprints of its
//! inputs) and every file it wrote, with its size and hash; a checkpoint is reused only when
//! the inputs are unchanged and every file is still there, unaltered.
//!
//! The graph a work directory was made from is recorded once in `WORKDIR/graph.json`; opening
//! the work directory with another graph is refused, since every node id in it would be
//! wrong. A folder that is not empty and has no `graph.json` is not a work directory, and is
//! refused rather than written into.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::hashes::{git_object_id, hex};
use crate::model::CountMap;

/// Errors of the work directory.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The work directory was made by an older version of unearth.
    #[error(
        "work directory {0} was made by an older version of unearth; delete it (or use \
         another workdir) and run again"
    )]
    OlderVersion(PathBuf),
    /// The work directory holds checkpoints of another graph.
    #[error(
        "work directory {workdir} holds checkpoints made from graph {recorded}, not from {given}; \
         use another workdir or delete this one"
    )]
    OtherGraph {
        /// The work directory.
        workdir: PathBuf,
        /// The graph it was made from.
        recorded: String,
        /// The graph given now.
        given: String,
    },
    /// A work directory of `unearth run` given to `unearth hydrate`, or the other way round.
    #[error(
        "work directory {workdir} holds checkpoints of {recorded}, not of {given}; use another \
         workdir for each"
    )]
    OtherFlow {
        /// The work directory.
        workdir: PathBuf,
        /// The job it holds.
        recorded: &'static str,
        /// The job given now.
        given: &'static str,
    },
    /// A folder that is not a work directory of unearth's.
    #[error(
        "{0} is not empty and is not an unearth work directory (it has no graph.json); \
         choose an empty or new folder as workdir"
    )]
    NotAWorkdir(PathBuf),
    /// A file of the work directory or graph could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest that cannot be parsed.
    #[error("corrupt checkpoint manifest {path}: {reason}")]
    Corrupt {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What identifies a graph: its basename and a hash of its size and shape files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphFingerprint {
    /// The basename as given.
    pub basename: String,
    /// Hash of the `.properties` files, the sizes of the big files and samples of the node
    /// ids.
    pub id: String,
    /// How `id` was computed ([`FINGERPRINT_VERSION`]); 1 for work directories of older
    /// unearth versions, which recorded no version.
    #[serde(default = "first_version")]
    pub version: u32,
}

/// The current way graph fingerprints are computed.
pub const FINGERPRINT_VERSION: u32 = 2;

fn first_version() -> u32 {
    1
}

/// The id a hydration's work directory records in place of a graph's: it has none.
const HYDRATE_ID: &str = "hydrate";

impl GraphFingerprint {
    /// What a work directory of `unearth hydrate` records: no graph.
    pub fn hydrate() -> Self {
        Self {
            basename: String::new(),
            id: HYDRATE_ID.to_string(),
            version: FINGERPRINT_VERSION,
        }
    }

    /// The job the work directory serves.
    pub fn flow(&self) -> crate::model::Flow {
        match self.id == HYDRATE_ID {
            true => crate::model::Flow::Hydrate,
            false => crate::model::Flow::Run,
        }
    }

    /// Fingerprints the graph at `base` without reading its big files.
    pub fn of(base: &Path) -> Result<Self, CheckpointError> {
        if base.as_os_str().is_empty() {
            return Err(io(Path::new("graph"))(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the configuration names no `graph` (only `unearth hydrate` runs without one)",
            )));
        }
        let mut text = Vec::new();
        for suffix in [
            ".properties",
            "-transposed.properties",
            "-labelled.properties",
        ] {
            let path = crate::graph::suffixed(base, suffix);
            let body = std::fs::read(&path).map_err(io(&path))?;
            text.extend_from_slice(&body);
        }
        for suffix in [
            ".node2swhid.bin",
            ".graph",
            "-labelled.labels",
            ".labels.fcl.bytearray",
        ] {
            let path = crate::graph::suffixed(base, suffix);
            let len = std::fs::metadata(&path).map_err(io(&path))?.len();
            text.extend_from_slice(format!("{suffix}={len}\n").as_bytes());
        }
        // Sixteen samples of the node ids' file: a graph rebuilt to the same sizes still
        // differs there (it cannot be read whole: 1.3 TB at full scale).
        let path = crate::graph::suffixed(base, ".node2swhid.bin");
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        let mut block = vec![0u8; 4096];
        for i in 0..16u64 {
            use std::os::unix::fs::FileExt;
            let at = len.saturating_sub(4096) / 15 * i;
            let n = file.read_at(&mut block, at).map_err(io(&path))?;
            text.extend_from_slice(&block[..n]);
        }
        Ok(Self {
            basename: base.display().to_string(),
            id: hex(&git_object_id("graph", &text)),
            version: FINGERPRINT_VERSION,
        })
    }

    fn short(&self) -> String {
        format!(
            "{} ({})",
            self.basename,
            self.id.get(..12).unwrap_or(&self.id)
        )
    }
}

/// A file a phase wrote: its size and a hash of its bytes, and the file-system stamp it had
/// then (modification time and inode), so that checking an untouched file costs one `stat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Size in bytes.
    pub size: u64,
    /// XXH3-128 of the bytes, hex.
    pub xxh3: String,
    /// Modification time, nanoseconds since the epoch, when recorded.
    #[serde(default)]
    pub mtime_ns: u64,
    /// Inode number, when recorded.
    #[serde(default)]
    pub inode: u64,
}

/// Size, modification time and inode of `path`.
fn stamp(path: &Path) -> std::io::Result<(u64, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    let mtime = (m.mtime() as u64).saturating_mul(1_000_000_000) + m.mtime_nsec() as u64;
    Ok((m.len(), mtime, m.ino()))
}

/// Size and XXH3-128 of the file at `path`, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, u128)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((size, h.digest128()));
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
}

impl FileRecord {
    /// Size, hash and stamp of `path`, read once.
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let (_, mtime_ns, inode) = stamp(path)?;
        let (size, xxh3) = hash_file(path)?;
        Ok(Self {
            size,
            xxh3: format!("{xxh3:032x}"),
            mtime_ns,
            inode,
        })
    }

    /// Whether `path` still holds the bytes recorded: when its size, modification time and
    /// inode are those recorded, without reading it; otherwise by hashing it again (a file
    /// copied back or touched is still intact if its bytes are).
    pub fn matches(&self, path: &Path) -> std::io::Result<bool> {
        let (size, mtime, inode) = stamp(path)?;
        if size != self.size {
            return Ok(false);
        }
        if mtime == self.mtime_ns && inode == self.inode {
            return Ok(true);
        }
        Ok(FileRecord::of(path)?.xxh3 == self.xxh3)
    }
}

/// The manifest of a finished phase (or shard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseManifest {
    /// Checkpoint name (`scan`, `scan-shard-0001-of-0004`).
    pub phase: String,
    /// Version of the phase's output format.
    pub version: u32,
    /// Graph id.
    pub graph: String,
    /// Fingerprints of the inputs, by name (files, previous phases, options).
    pub inputs: BTreeMap<String, String>,
    /// Counts the phase reports (rows, candidates, statuses...).
    pub counts: CountMap,
    /// Every file written, by path relative to the phase folder.
    #[serde(default)]
    pub files: BTreeMap<String, FileRecord>,
    /// Seconds the phase took.
    pub seconds: f64,
}

impl PhaseManifest {
    /// A fingerprint of what this checkpoint holds — its inputs and its files' hashes — which
    /// later phases record as their input. Counts and file-system stamps are left out: a
    /// rerun that writes the same bytes (a fetch that found nothing new) redoes nothing after
    /// it.
    pub fn id(&self) -> String {
        let files: BTreeMap<&String, (u64, &String)> = self
            .files
            .iter()
            .map(|(name, r)| (name, (r.size, &r.xxh3)))
            .collect();
        let text = serde_json::to_string(&(&self.phase, self.version, &self.inputs, &files))
            .unwrap_or_default();
        hex(&git_object_id("phase", text.as_bytes()))
    }
}

/// Whether a checkpoint can be used, and if not why.
#[derive(Debug, Clone, PartialEq)]
pub enum Currency {
    /// Made from these inputs, every file intact.
    Current(PhaseManifest),
    /// Never finished.
    Missing,
    /// Finished, but from other inputs, or with files missing or altered: why.
    Stale(String),
}

/// A work directory bound to one graph.
#[derive(Debug, Clone)]
pub struct Workdir {
    root: PathBuf,
    graph: GraphFingerprint,
}

const GRAPH_FILE: &str = "graph.json";
const MANIFEST: &str = "manifest.json";

impl Workdir {
    /// Opens (creating it if needed) the work directory `root` for `graph`. An existing folder
    /// must be empty or a work directory of the same graph.
    pub fn open(root: &Path, graph: GraphFingerprint) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(root).map_err(io(root))?;
        let path = root.join(GRAPH_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let recorded: GraphFingerprint =
                    serde_json::from_str(&text).map_err(|e| CheckpointError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if recorded.version != graph.version {
                    return Err(CheckpointError::OlderVersion(root.to_owned()));
                }
                if recorded.flow() != graph.flow() {
                    let job = |f: crate::model::Flow| match f {
                        crate::model::Flow::Run => "`unearth run`",
                        crate::model::Flow::Hydrate => "`unearth hydrate`",
                    };
                    return Err(CheckpointError::OtherFlow {
                        workdir: root.to_owned(),
                        recorded: job(recorded.flow()),
                        given: job(graph.flow()),
                    });
                }
                if recorded.id != graph.id {
                    return Err(CheckpointError::OtherGraph {
                        workdir: root.to_owned(),
                        recorded: recorded.short(),
                        given: graph.short(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut entries = std::fs::read_dir(root).map_err(io(root))?;
                if entries.next().is_some() {
                    return Err(CheckpointError::NotAWorkdir(root.to_owned()));
                }
                let tmp = root.join(format!(".{GRAPH_FILE}.tmp"));
                let text = serde_json::to_string_pretty(&graph).unwrap_or_default();
                std::fs::write(&tmp, text).map_err(io(&tmp))?;
                std::fs::rename(&tmp, &path).map_err(io(&path))?;
            }
            Err(e) => return Err(io(&path)(e)),
        }
        Ok(Self {
            root: root.to_owned(),
            graph,
        })
    }

    /// The graph recorded in the work directory `root`, if it is one.
    pub fn recorded(root: &Path) -> Option<GraphFingerprint> {
        let text = std::fs::read_to_string(root.join(GRAPH_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Whether `root` is a work directory unearth made (it has a `graph.json`).
    pub fn is_workdir(root: &Path) -> bool {
        root.join(GRAPH_FILE).is_file()
    }

    /// The work directory's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The graph it is bound to.
    pub fn graph(&self) -> &GraphFingerprint {
        &self.graph
    }

    /// The folder of a finished checkpoint.
    pub fn phase_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The manifest of checkpoint `name` if it finished.
    pub fn manifest(&self, name: &str) -> Result<Option<PhaseManifest>, CheckpointError> {
        read_manifest(&self.phase_dir(name))
    }

    /// Whether checkpoint `name` is usable for `inputs` (version, graph, inputs, files).
    pub fn currency(
        &self,
        name: &str,
        version: u32,
        inputs: &BTreeMap<String, String>,
    ) -> Result<Currency, CheckpointError> {
        let Some(m) = self.manifest(name)? else {
            return Ok(Currency::Missing);
        };
        if m.version != version || m.graph != self.graph.id {
            return Ok(Currency::Stale(
                "it was made by another version or graph".into(),
            ));
        }
        if &m.inputs != inputs {
            let changed: Vec<&str> = inputs
                .keys()
                .chain(m.inputs.keys())
                .filter(|k| inputs.get(*k) != m.inputs.get(*k))
                .map(String::as_str)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            return Ok(Currency::Stale(format!(
                "its inputs changed: {}",
                changed.join(", ")
            )));
        }
        let dir = self.phase_dir(name);
        for (file, rec) in &m.files {
            match rec.matches(&dir.join(file)) {
                Ok(true) => {}
                Ok(false) => return Ok(Currency::Stale(format!("its file {file} was altered"))),
                Err(_) => return Ok(Currency::Stale(format!("its file {file} is missing"))),
            }
        }
        Ok(Currency::Current(m))
    }

    /// Starts writing checkpoint `name`: a fresh temporary folder to write outputs into.
    pub fn begin(&self, name: &str) -> Result<PhaseStaging, CheckpointError> {
        let tmp = self
            .root
            .join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        // Leftovers of killed runs of this checkpoint are partial or replaced by construction.
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            let (stale, old) = (format!(".{name}.tmp-"), format!(".{name}.old"));
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&stale) || n == old {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(PhaseStaging {
            tmp,
            dest: self.phase_dir(name),
            name: name.to_string(),
            graph: self.graph.id.clone(),
            started: std::time::Instant::now(),
            committed: false,
        })
    }
}

/// Reads the manifest of the checkpoint folder `dir`, if it has one.
pub fn read_manifest(dir: &Path) -> Result<Option<PhaseManifest>, CheckpointError> {
    let path = dir.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| CheckpointError::Corrupt {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Records of every file under `dir` (relative paths), but the manifest.
fn file_records(dir: &Path) -> Result<BTreeMap<String, FileRecord>, CheckpointError> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).map_err(io(&d))? {
            let path = e.map_err(io(&d))?.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if rel != MANIFEST {
                out.insert(rel, FileRecord::of(&path).map_err(io(&path))?);
            }
        }
    }
    Ok(out)
}

/// A checkpoint being written; dropped without [`commit`](PhaseStaging::commit), it is removed.
pub struct PhaseStaging {
    tmp: PathBuf,
    dest: PathBuf,
    name: String,
    graph: String,
    started: std::time::Instant,
    committed: bool,
}

impl PhaseStaging {
    /// The folder to write the outputs into.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Writes the manifest (with every file's size and hash) and moves the outputs into
    /// place. The folder it replaces must be a checkpoint (it has a manifest): anything else
    /// there is not unearth's, and is refused.
    pub fn commit(
        mut self,
        version: u32,
        inputs: BTreeMap<String, String>,
        counts: CountMap,
    ) -> Result<PhaseManifest, CheckpointError> {
        let manifest = PhaseManifest {
            phase: self.name.clone(),
            version,
            graph: self.graph.clone(),
            inputs,
            counts,
            files: file_records(&self.tmp)?,
            seconds: self.started.elapsed().as_secs_f64(),
        };
        let path = self.tmp.join(MANIFEST);
        let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
        std::fs::write(&path, text + "\n").map_err(io(&path))?;
        if self.dest.exists() {
            if !self.dest.join(MANIFEST).is_file() {
                return Err(CheckpointError::Io {
                    path: self.dest.clone(),
                    source: std::io::Error::other(
                        "exists and is not a checkpoint of unearth's; not replaced",
                    ),
                });
            }
            // Out of the way first, then in place, then gone: a kill in between leaves the
            // old checkpoint aside (removed by the next run), never a half-written one.
            let old = self.dest.with_file_name(format!(".{}.old", self.name));
            std::fs::rename(&self.dest, &old).map_err(io(&self.dest))?;
            std::fs::rename(&self.tmp, &self.dest).map_err(io(&self.dest))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&self.tmp, &self.dest).map_err(io(&self.dest))?;
        }
        self.committed = true;
        Ok(manifest)
    }
}

impl Drop for PhaseStaging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}
