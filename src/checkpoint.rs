//! Phase checkpoints in the work directory.
//!
//! Each phase writes its outputs into `WORKDIR/.<phase>.tmp-<pid>/`, then a `manifest.json`
//! there, then renames the folder to `WORKDIR/<phase>/`: a phase folder that exists is
//! complete. The manifest records what the phase was computed from (fingerprints of its
//! inputs, the options' hash); a rerun skips the phase when they are unchanged, and redoes it
//! otherwise, which changes its own fingerprint and so redoes the phases after it.
//!
//! The graph a work directory was made from is recorded once in `WORKDIR/graph.json`; opening
//! the work directory with another graph is refused, since every node id in it would be wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hashes::{git_object_id, hex};

/// Errors of the work directory.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
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
    /// A file of the work directory or graph could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
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
    /// Hash of the `.properties` files and the sizes of the big files.
    pub id: String,
}

impl GraphFingerprint {
    /// Fingerprints the graph at `base` without reading its big files.
    pub fn of(base: &Path) -> Result<Self, CheckpointError> {
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
        Ok(Self {
            basename: base.display().to_string(),
            id: hex(&git_object_id("graph", &text)),
        })
    }
}

/// Fingerprint of an input file: path, size and modification time.
pub fn file_fingerprint(path: &Path) -> Result<String, CheckpointError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("{} {} {}", path.display(), meta.len(), mtime))
}

/// The manifest of a finished phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseManifest {
    /// Phase name.
    pub phase: String,
    /// Version of the phase's output format.
    pub version: u32,
    /// Graph id.
    pub graph: String,
    /// Fingerprints of the inputs, by name (files, previous phases, options).
    pub inputs: BTreeMap<String, String>,
    /// Counts the phase reports (rows, candidates, statuses...).
    pub counts: BTreeMap<String, u64>,
    /// Seconds the phase took.
    pub seconds: f64,
}

impl PhaseManifest {
    /// A fingerprint of this manifest's inputs and counts, which later phases record as input.
    pub fn id(&self) -> String {
        let text = serde_json::to_string(&(&self.phase, self.version, &self.inputs, &self.counts))
            .expect("manifest serialises");
        hex(&git_object_id("phase", text.as_bytes()))
    }
}

/// A work directory bound to one graph.
#[derive(Debug, Clone)]
pub struct Workdir {
    root: PathBuf,
    graph: GraphFingerprint,
}

const GRAPH_FILE: &str = "graph.json";

impl Workdir {
    /// Opens (creating it if needed) the work directory `root` for `graph`.
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
                if recorded.id != graph.id {
                    return Err(CheckpointError::OtherGraph {
                        workdir: root.to_owned(),
                        recorded: format!("{} ({})", recorded.basename, &recorded.id[..12]),
                        given: format!("{} ({})", graph.basename, &graph.id[..12]),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let tmp = root.join(format!(".{GRAPH_FILE}.tmp"));
                let text = serde_json::to_string_pretty(&graph).expect("serialises");
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

    /// The work directory's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The graph it is bound to.
    pub fn graph(&self) -> &GraphFingerprint {
        &self.graph
    }

    /// The folder of a finished phase.
    pub fn phase_dir(&self, phase: &str) -> PathBuf {
        self.root.join(phase)
    }

    /// The manifest of `phase` if it finished.
    pub fn manifest(&self, phase: &str) -> Result<Option<PhaseManifest>, CheckpointError> {
        let path = self.phase_dir(phase).join("manifest.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| CheckpointError::Corrupt {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The manifest of `phase` if it finished from exactly these inputs.
    pub fn done(
        &self,
        phase: &str,
        version: u32,
        inputs: &BTreeMap<String, String>,
    ) -> Result<Option<PhaseManifest>, CheckpointError> {
        Ok(self
            .manifest(phase)?
            .filter(|m| m.version == version && &m.inputs == inputs && m.graph == self.graph.id))
    }

    /// Starts writing `phase`: a fresh temporary folder to write outputs into.
    pub fn begin(&self, phase: &str) -> Result<PhaseStaging, CheckpointError> {
        let tmp = self
            .root
            .join(format!(".{phase}.tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        // Leftovers of killed runs of this phase are partial by construction.
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            let stale = format!(".{phase}.tmp-");
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&stale) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(PhaseStaging {
            tmp,
            dest: self.phase_dir(phase),
            phase: phase.to_string(),
            graph: self.graph.id.clone(),
            started: std::time::Instant::now(),
            committed: false,
        })
    }
}

/// A phase being written; dropped without [`commit`](PhaseStaging::commit), it is removed.
pub struct PhaseStaging {
    tmp: PathBuf,
    dest: PathBuf,
    phase: String,
    graph: String,
    started: std::time::Instant,
    committed: bool,
}

impl PhaseStaging {
    /// The folder to write the phase's outputs into.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Writes the manifest and moves the outputs into place.
    pub fn commit(
        mut self,
        version: u32,
        inputs: BTreeMap<String, String>,
        counts: BTreeMap<String, u64>,
    ) -> Result<PhaseManifest, CheckpointError> {
        let manifest = PhaseManifest {
            phase: self.phase.clone(),
            version,
            graph: self.graph.clone(),
            inputs,
            counts,
            seconds: self.started.elapsed().as_secs_f64(),
        };
        let path = self.tmp.join("manifest.json");
        let text = serde_json::to_string_pretty(&manifest).expect("serialises");
        std::fs::write(&path, text + "\n").map_err(io(&path))?;
        if self.dest.exists() {
            std::fs::remove_dir_all(&self.dest).map_err(io(&self.dest))?;
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(io(&self.dest))?;
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
