//! Phase 8, **content join**: sha1_git -> sha1, length and archive status of every content
//! the resolved rows need (their files, and their revisions' root license files).
//!
//! SWH's blob store is keyed by plain sha1, which the graph does not have. Two sources give it:
//!
//! - **SWH's digestmap** (`digestmap = "DIR"`, [`crate::digestmap`]): each needed id is looked
//!   up (a hash and two reads of memory-mapped tables), its length and skipped flag read from
//!   the graph's content properties. Contents SWH skipped are not in the map: their reasons
//!   come from the `skipped_content` ORC table when `orc` is also given, else they are
//!   recorded from the graph's skipped flag without a reason.
//! - **the ORC tables** (`orc = "DIR"` alone): one pass over `content` and `skipped_content`,
//!   only the needed columns, files read in parallel, rows kept when their sha1_git is needed.
//!
//! Output: [`crate::artifacts::join`], the same whichever source answered. Shards: the needed
//! ids (digestmap) and the ORC files, split evenly; the merge unites them, a visible copy
//! winning over a skipped one. Chunks: one per ORC file, one per [`LOOKUP_CHUNK`] ids.
//!
//! Memory: the set of needed ids (20 bytes each) and their answers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use rayon::prelude::*;
use swh_graph::{NodeType, SWHID};

use crate::artifacts::join::{self, insert, JoinMap, Known, FOUND, JOIN};
use crate::artifacts::resolved;
use crate::config::Config;
use crate::digestmap::{DigestMap, DigestMapError};
use crate::graph::ContentGraph;
use crate::model::{ContentStatus, Counts, IdHash, Phase, Sha1, Sha1Git, Shard, StatusCounts};
use crate::orc::{self, OrcError};

use super::{Context, Inputs, PhaseError};

/// Needed ids looked up in the digestmap per chunk.
pub const LOOKUP_CHUNK: usize = 1 << 22;

/// Errors of the content join.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// An ORC table file that cannot be read.
    #[error(transparent)]
    Orc(#[from] OrcError),
    /// The digestmap cannot be opened or read.
    #[error(transparent)]
    DigestMap(#[from] DigestMapError),
    /// The graph's content properties cannot be loaded.
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    /// The configuration names neither source.
    #[error(
        "the content join needs `orc = \"<folder of the export tables>\"` or \
         `digestmap = \"<folder of SWH's digestmap>\"` in the configuration"
    )]
    NoSource,
}

/// Every ORC file of `content` then `skipped_content` under `orc_dir`, with whether it is
/// of the skipped table: the list shards split.
pub fn all_files(orc_dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut files: Vec<(PathBuf, bool)> = orc::table_files(orc_dir, "content")
        .into_iter()
        .map(|f| (f, false))
        .collect();
    files.extend(
        orc::table_files(orc_dir, "skipped_content")
            .into_iter()
            .map(|f| (f, true)),
    );
    files
}

/// Reads one ORC file of `content` or `skipped_content`, recording the needed rows.
pub fn scan_file(
    path: &Path,
    skipped: bool,
    needed: &HashSet<Sha1Git, IdHash>,
    found: &mut JoinMap,
) -> Result<u64, ContentError> {
    let mut cols = vec!["sha1", "sha1_git", "length"];
    if skipped {
        cols.push("reason");
    }
    let mut first = 0u64;
    let rows = orc::for_each_batch(path, &cols, |batch| {
        let sha1_git = orc::text(batch, "sha1_git")?;
        let sha1 = orc::text(batch, "sha1")?;
        let reason = if skipped {
            Some(orc::text(batch, "reason")?)
        } else {
            None
        };
        let length = batch
            .column_by_name("length")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or("no Int64 length column")?;
        for i in 0..batch.num_rows() {
            let Some(Ok(id)) = sha1_git.get(i).map(Sha1Git::from_hex) else {
                continue;
            };
            if !needed.contains(&id) {
                continue;
            }
            let sha1 = match sha1.get(i).map(Sha1::from_hex) {
                Some(Ok(s)) => Some(s),
                Some(Err(e)) => return Err(format!("row {}: sha1 {e}", first + i as u64)),
                None => None,
            };
            let known = Known {
                sha1,
                length: (!length.is_null(i)).then(|| length.value(i).max(0) as u64),
                status: if skipped {
                    ContentStatus::Skipped
                } else {
                    ContentStatus::Visible
                },
                reason: reason.as_ref().and_then(|r| r.get(i).map(str::to_string)),
            };
            insert(found, id, known);
        }
        first += batch.num_rows() as u64;
        Ok(())
    })?;
    Ok(rows)
}

/// A content's length and skipped flag, from the graph's properties (`None`: not a node).
type ContentProperties = dyn Fn(&Sha1Git) -> Option<(Option<u64>, bool)> + Send + Sync;

/// The digestmap and the graph's content properties, for lookups.
pub struct Digests {
    map: DigestMap,
    properties: Box<ContentProperties>,
    skipped_from_graph: bool,
}

impl Digests {
    /// Opens the digestmap in `dir` and the content properties of the graph `graph`.
    /// `skipped_from_graph`: whether contents the map lacks but the graph flags as skipped are
    /// recorded as skipped (without a reason), as when no `skipped_content` table is read.
    pub fn open(dir: &Path, graph: &Path, skipped_from_graph: bool) -> Result<Self, ContentError> {
        let map = DigestMap::open(dir)?;
        let graph = crate::graph::open_contents(graph)?;
        Ok(Self {
            map,
            properties: Box::new(move |id| content_properties(&graph, id)),
            skipped_from_graph,
        })
    }

    /// What the archive knows of `id`: visible with its sha1 when the map has it, skipped
    /// when the graph says so (and skipped contents are taken from the graph), else nothing.
    pub fn lookup(&self, id: &Sha1Git) -> Result<Option<Known>, ContentError> {
        let props = (self.properties)(id);
        let length = props.and_then(|p| p.0);
        if let Some(sha1) = self.map.sha1(id)? {
            return Ok(Some(Known {
                sha1: Some(sha1),
                length,
                status: ContentStatus::Visible,
                reason: None,
            }));
        }
        let skipped = props.is_some_and(|p| p.1);
        Ok((self.skipped_from_graph && skipped).then_some(Known {
            sha1: None,
            length,
            status: ContentStatus::Skipped,
            reason: None,
        }))
    }

    /// Looks every id of `ids` up, in parallel; returns the ones the archive knows.
    pub fn lookup_all(&self, ids: &[Sha1Git]) -> Result<JoinMap, ContentError> {
        let parts: Vec<Vec<(Sha1Git, Known)>> = ids
            .par_chunks(1 << 14)
            .map(|part| {
                let mut out = Vec::new();
                for id in part {
                    if let Some(k) = self.lookup(id)? {
                        out.push((*id, k));
                    }
                }
                Ok(out)
            })
            .collect::<Result<_, ContentError>>()?;
        let mut found =
            JoinMap::with_capacity_and_hasher(parts.iter().map(Vec::len).sum(), IdHash::default());
        for (id, k) in parts.into_iter().flatten() {
            insert(&mut found, id, k);
        }
        Ok(found)
    }
}

/// The content ids the resolved rows need (rows resolved to a file or a link) and the root
/// license files of their revisions, sorted.
pub fn needed_contents(walk_dir: &Path) -> Result<Vec<Sha1Git>, PhaseError> {
    let licenses = crate::artifacts::licenses::open(walk_dir)?;
    let mut ids: Vec<Sha1Git> = licenses.iter_from(0).map(|l| l.content).collect();
    for f in resolved::files(walk_dir)? {
        for b in resolved::batches(&f)? {
            let b = b?;
            for (st, id) in b.status.iter().zip(&b.sha1_git) {
                if let (true, Some(id)) = (st.has_content(), id) {
                    ids.push(*id);
                }
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Counts of the content join.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ContentCounts {
    /// ORC files read.
    pub orc_files: u64,
    /// ORC rows read.
    pub orc_rows_read: u64,
    /// Ids looked up in the digestmap.
    pub lookups: u64,
    /// Microseconds of the passes.
    pub pass_micros: u64,
    /// Chunks (ORC files) of the shard(s).
    pub chunks: u64,
    /// Chunks reused from an interrupted run.
    pub chunks_reused: u64,
    /// Needed contents found in the shard's files (shards only).
    pub found: u64,
    /// Contents the resolved rows need (the merge).
    pub needed: u64,
    /// Needed contents per status (the merge).
    #[serde(flatten)]
    pub status: StatusCounts<ContentStatus>,
}

impl Counts for ContentCounts {
    fn add(&mut self, o: &Self) {
        self.orc_files += o.orc_files;
        self.orc_rows_read += o.orc_rows_read;
        self.lookups += o.lookups;
        self.pass_micros += o.pass_micros;
        self.chunks += o.chunks;
        self.chunks_reused += o.chunks_reused;
        self.found += o.found;
        self.needed += o.needed;
        self.status.merge(&o.status);
    }
}

/// The length and skipped flag of content `id` in `graph`, or `None` when it is no node.
fn content_properties(graph: &impl ContentGraph, id: &Sha1Git) -> Option<(Option<u64>, bool)> {
    let props = graph.properties();
    let swhid = SWHID {
        namespace_version: 1,
        node_type: NodeType::Content,
        hash: id.0,
    };
    let node = props.node_id(swhid).ok()?;
    Some((props.content_length(node), props.is_skipped_content(node)))
}

/// What one shard of the content join reads.
pub struct Input {
    /// The contents the resolved rows need.
    pub needed: HashSet<Sha1Git, IdHash>,
    /// The shard's share of the needed ids, to look up in `digests`.
    pub lookups: Vec<Sha1Git>,
    /// The digestmap, when configured.
    pub digests: Option<Digests>,
    /// The shard's ORC files, with whether each is of `skipped_content`.
    pub files: Vec<(PathBuf, bool)>,
}

/// Joins the shard's ids and ORC files into `ctx.out/found.parquet`: one chunk per
/// [`LOOKUP_CHUNK`] ids looked up, then one per ORC file, files read in parallel.
pub fn run(ctx: &Context, input: Input) -> Result<ContentCounts, PhaseError> {
    let lookup_chunks = if input.digests.is_some() {
        input.lookups.len().div_ceil(LOOKUP_CHUNK)
    } else {
        0
    };
    let n = lookup_chunks + input.files.len();
    let (parts, mut counts, stats) = ctx.chunks.run_par(n, &[FOUND], |i, tmp| {
        let started = std::time::Instant::now();
        let mut c = ContentCounts::default();
        let found = match (&input.digests, i.checked_sub(lookup_chunks)) {
            (Some(d), None) => {
                let ids = &input.lookups[i * LOOKUP_CHUNK..];
                let ids = &ids[..ids.len().min(LOOKUP_CHUNK)];
                c.lookups = ids.len() as u64;
                d.lookup_all(ids)?
            }
            (_, f) => {
                let (path, skipped) = &input.files[f.unwrap_or(i)];
                let mut found = JoinMap::default();
                c.orc_rows_read = scan_file(path, *skipped, &input.needed, &mut found)?;
                c.orc_files = 1;
                found
            }
        };
        let mut ids: Vec<Sha1Git> = found.keys().copied().collect();
        ids.sort_unstable();
        join::write(&tmp.join(FOUND), &ids, &found)?;
        c.pass_micros = started.elapsed().as_micros() as u64;
        Ok(c)
    })?;
    let mut found = JoinMap::default();
    for f in &parts[0] {
        for (id, k) in join::load(f)? {
            insert(&mut found, id, k);
        }
    }
    let mut ids: Vec<Sha1Git> = found.keys().copied().collect();
    ids.sort_unstable();
    join::write(&ctx.out.join(FOUND), &ids, &found)?;
    counts.chunks = stats.chunks;
    counts.chunks_reused = stats.reused;
    counts.found = ids.len() as u64;
    Ok(counts)
}

/// The ORC files the join reads: only `skipped_content` when a digestmap answers the rest.
fn source_files(config: &Config) -> Result<Vec<(PathBuf, bool)>, ContentError> {
    match (&config.orc, &config.digestmap) {
        (None, None) => Err(ContentError::NoSource),
        (None, Some(_)) => Ok(Vec::new()),
        (Some(dir), Some(_)) => Ok(orc::table_files(dir, "skipped_content")
            .into_iter()
            .map(|f| (f, true))
            .collect()),
        (Some(dir), None) => Ok(all_files(dir)),
    }
}

/// The shard's ORC files.
fn shard_files(config: &Config, shard: Shard) -> Result<Vec<(PathBuf, bool)>, ContentError> {
    let files = source_files(config)?;
    Ok(files[shard.range(files.len())].to_vec())
}

/// The content join as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Content;
    type Counts = ContentCounts;

    /// The shard's own ORC files (so that fixing one file redoes one shard) and the
    /// digestmap's files; the graph's content properties come with the graph's own inputs.
    fn inputs(config: &Config, shard: Shard) -> Result<Inputs, PhaseError> {
        let mut inputs = Inputs::new();
        for (f, _) in shard_files(config, shard)? {
            inputs.insert(format!("orc:{}", f.display()), super::file_fingerprint(&f)?);
        }
        if let Some(dir) = &config.digestmap {
            for name in crate::digestmap::FILES {
                let f = dir.join(name);
                let print = super::file_fingerprint(&f).map_err(|_| {
                    ContentError::from(DigestMapError::Missing {
                        dir: dir.clone(),
                        file: name,
                    })
                })?;
                inputs.insert(format!("digestmap:{name}"), print);
            }
        }
        Ok(inputs)
    }

    fn run(ctx: &Context) -> Result<ContentCounts, PhaseError> {
        let sorted = needed_contents(&ctx.upstream(Phase::Walk))?;
        let files = shard_files(ctx.config, ctx.shard)?;
        let (lookups, digests) = match &ctx.config.digestmap {
            Some(dir) => (
                sorted[ctx.shard.range(sorted.len())].to_vec(),
                Some(Digests::open(
                    dir,
                    &ctx.config.graph,
                    ctx.config.orc.is_none(),
                )?),
            ),
            None => (Vec::new(), None),
        };
        // The set the ORC scan tests rows against; no files, no scan (digestmap alone).
        let needed = if files.is_empty() {
            HashSet::default()
        } else {
            sorted.into_iter().collect()
        };
        let input = Input {
            needed,
            lookups,
            digests,
            files,
        };
        run(ctx, input)
    }

    fn merge(
        ctx: &Context,
        shards: &[PathBuf],
        summed: ContentCounts,
    ) -> Result<ContentCounts, PhaseError> {
        let needed = needed_contents(&ctx.upstream(Phase::Walk))?;
        let mut found = JoinMap::default();
        for d in shards {
            for (id, k) in join::load(&d.join(FOUND))? {
                insert(&mut found, id, k);
            }
        }
        let status = join::write(&ctx.out.join(JOIN), &needed, &found)?;
        Ok(ContentCounts {
            found: 0,
            needed: needed.len() as u64,
            status,
            ..summed
        })
    }
}
