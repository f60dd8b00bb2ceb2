//! Phase 6, **path walk**: every row from its revision's root directory down its path, using
//! only the entries the label pass kept, and the `resolved` output.
//!
//! Statuses, in the order they are decided: `invalid` (plan), `origin_not_found`,
//! `commit_not_found`, `commit_not_in_origin` (origin match), then along the path:
//! `path_not_found` (a component is absent, or a file is walked through), `submodule` (the
//! path reaches a gitlink), and at the leaf `ok` (a file), `symlink` (a symbolic link: the
//! content is the link's own blob, its target path) or `is_directory`.
//!
//! Output (`WORKDIR/walk/resolved-NNNNN.parquet`, one per input file, rows in input order):
//! `row_id`, the input's own columns (renamed `input_<name>` if they clash with ours),
//! `origin_url`, `snapshot`, `revision` (full hex), `sha1_git` (the content), `permissions`
//! (git mode), `status` and `candidates` (revisions sharing the prefix). Every input row
//! appears exactly once.
//!
//! Memory: the kept entries (32 bytes each, binary-searched) and a few bytes per row.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use swh_graph::map::{Node2SWHID, Node2Type};
use swh_graph::NodeType;

use crate::labels::Entry;
use crate::plan::Plan;
use crate::table::{self, TableError};

/// Git mode of each swh-graph permission code.
pub const GIT_MODES: [u32; 6] = [0, 0o100644, 0o100755, 0o120000, 0o040000, 0o160000];

/// Permission code of symbolic links.
const SYMLINK: u8 = 3;

/// One pair's match, as the walk needs it.
#[derive(Debug, Clone, Default)]
pub struct PairRow {
    /// Match status.
    pub status: String,
    /// Origin URL.
    pub origin_url: Option<String>,
    /// Snapshot hex.
    pub snapshot: Option<String>,
    /// Revision hex.
    pub revision: Option<String>,
    /// Root directory node.
    pub root: Option<u64>,
    /// Revisions with the prefix.
    pub candidates: u32,
}

/// Reads `match/pairs.parquet`.
pub fn load_pairs(path: &Path) -> Result<Vec<PairRow>, TableError> {
    let b = table::read(path)?;
    let status = table::strings(&b, path, "status")?;
    let url = table::strings(&b, path, "origin_url")?;
    let snp = table::strings(&b, path, "snapshot")?;
    let rev = table::strings(&b, path, "revision")?;
    let root = table::u64s(&b, path, "root_node")?;
    let cand = table::u32s(&b, path, "candidates")?;
    Ok((0..b.num_rows())
        .map(|i| PairRow {
            status: status[i].clone().unwrap_or_default(),
            origin_url: url[i].clone(),
            snapshot: snp[i].clone(),
            revision: rev[i].clone(),
            root: (root[i] != u64::MAX).then_some(root[i]),
            candidates: cand[i],
        })
        .collect())
}

/// The answer for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowResult {
    /// Status.
    pub status: &'static str,
    /// Content (or link) id, hex.
    pub sha1_git: Option<String>,
    /// Git mode of the leaf entry.
    pub permissions: Option<u32>,
}

/// The entry named `name` in directory `dir`, from entries sorted by (dir, name id).
fn lookup(entries: &[Entry], dir: u64, name: u64) -> Option<(u8, u64)> {
    entries
        .binary_search_by(|e| (e.dir, e.name_id).cmp(&(dir, name)))
        .ok()
        .map(|i| (entries[i].perm, entries[i].target))
}

/// Walks `path` from `root` through the kept entries (sorted by directory and name id).
pub fn walk_path(
    root: u64,
    path: &str,
    names: &HashMap<String, u64>,
    entries: &[Entry],
    node_type: &dyn Fn(u64) -> Option<NodeType>,
    node_hash: &dyn Fn(u64) -> Option<[u8; 20]>,
) -> RowResult {
    let not_found = RowResult {
        status: "path_not_found",
        sha1_git: None,
        permissions: None,
    };
    let comps: Vec<&str> = path.split('/').collect();
    let mut dir = root;
    for (i, comp) in comps.iter().enumerate() {
        let Some(name) = names.get(*comp) else {
            return not_found;
        };
        let Some((perm, target)) = lookup(entries, dir, *name) else {
            return not_found;
        };
        let last = i + 1 == comps.len();
        let mode = GIT_MODES.get(perm as usize).copied();
        match node_type(target) {
            Some(NodeType::Directory) if !last => dir = target,
            Some(NodeType::Directory) => {
                return RowResult {
                    status: "is_directory",
                    sha1_git: None,
                    permissions: mode,
                }
            }
            Some(NodeType::Revision) => {
                return RowResult {
                    status: "submodule",
                    sha1_git: None,
                    permissions: mode,
                }
            }
            Some(NodeType::Content) if last => {
                return RowResult {
                    status: if perm == SYMLINK { "symlink" } else { "ok" },
                    sha1_git: node_hash(target).map(|h| crate::hashes::hex(&h)),
                    permissions: mode,
                }
            }
            _ => return not_found,
        }
    }
    not_found
}

/// Resolves every row of the plan.
pub fn resolve(
    base: &Path,
    plan: &Plan,
    pairs: &[PairRow],
    names: &HashMap<String, u64>,
    entries: &[Entry],
) -> Result<Vec<RowResult>, TableError> {
    let n = crate::graph::num_nodes(base).map_err(|e| TableError {
        path: base.display().to_string(),
        reason: e.to_string(),
    })?;
    let load_err = |p: &Path, e: anyhow::Error| TableError {
        path: p.display().to_string(),
        reason: format!("{e:#}"),
    };
    let types_path = crate::graph::suffixed(base, ".node2type.bin");
    let types = Node2Type::load(&types_path, n).map_err(|e| load_err(&types_path, e))?;
    let swhids_path = crate::graph::suffixed(base, ".node2swhid.bin");
    let swhids = Node2SWHID::load(&swhids_path).map_err(|e| load_err(&swhids_path, e))?;
    let node_type = |n: u64| types.get(n as usize).ok();
    let node_hash = |n: u64| swhids.get(n as usize).ok().map(|s| s.hash);
    Ok(plan
        .row_pair
        .iter()
        .zip(&plan.row_path)
        .map(|(&pair, &path)| {
            if pair == u32::MAX {
                return RowResult {
                    status: "invalid",
                    sha1_git: None,
                    permissions: None,
                };
            }
            let p = &pairs[pair as usize];
            let status = match p.status.as_str() {
                "origin_not_found" => "origin_not_found",
                "commit_not_found" => "commit_not_found",
                "commit_not_in_origin" => "commit_not_in_origin",
                _ => "",
            };
            match (status, p.root) {
                ("", Some(root)) => walk_path(
                    root,
                    &plan.paths[path as usize],
                    names,
                    entries,
                    &node_type,
                    &node_hash,
                ),
                (s, _) => RowResult {
                    status: if s.is_empty() { "commit_not_found" } else { s },
                    sha1_git: None,
                    permissions: None,
                },
            }
        })
        .collect())
}

/// Names of the columns the walk adds.
pub const OUTPUT_COLUMNS: [&str; 8] = [
    "row_id",
    "origin_url",
    "snapshot",
    "revision",
    "sha1_git",
    "permissions",
    "status",
    "candidates",
];

/// Writes one `resolved-NNNNN.parquet` per input file into `out`; returns rows per status.
pub fn write_resolved(
    plan: &Plan,
    pairs: &[PairRow],
    results: &[RowResult],
    out: &Path,
) -> Result<HashMap<String, u64>, TableError> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut row_id = 0usize;
    for (fi, (file, _)) in plan.files.iter().enumerate() {
        let file = Path::new(file);
        let e = |r: &dyn std::fmt::Display| TableError {
            path: file.display().to_string(),
            reason: r.to_string(),
        };
        let f = std::fs::File::open(file).map_err(|x| e(&x))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|x| e(&x))?;
        let in_schema = builder.schema().clone();
        let mut fields: Vec<Field> = vec![Field::new(
            "row_id",
            arrow::datatypes::DataType::UInt64,
            false,
        )];
        for f in in_schema.fields() {
            let name = if OUTPUT_COLUMNS.contains(&f.name().as_str()) {
                format!("input_{}", f.name())
            } else {
                f.name().clone()
            };
            fields.push(f.as_ref().clone().with_name(name));
        }
        use arrow::datatypes::DataType as T;
        for (name, ty) in [
            ("origin_url", T::Utf8),
            ("snapshot", T::Utf8),
            ("revision", T::Utf8),
            ("sha1_git", T::Utf8),
            ("permissions", T::UInt32),
            ("status", T::Utf8),
            ("candidates", T::UInt32),
        ] {
            fields.push(Field::new(name, ty, true));
        }
        let schema = Arc::new(Schema::new(fields));
        let out_path = out.join(format!("resolved-{fi:05}.parquet"));
        let o = std::fs::File::create(&out_path).map_err(|x| e(&x))?;
        let mut w = ArrowWriter::try_new(o, schema.clone(), Some(table::writer_properties()))
            .map_err(|x| e(&x))?;
        for batch in builder.build().map_err(|x| e(&x))? {
            let batch = batch.map_err(|x| e(&x))?;
            let rows = row_id..row_id + batch.num_rows();
            row_id = rows.end;
            let pair_of = |r: usize| {
                let p = plan.row_pair[r];
                (p != u32::MAX).then(|| &pairs[p as usize])
            };
            for r in rows.clone() {
                *counts.entry(results[r].status.to_string()).or_default() += 1;
            }
            let mut cols: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(
                rows.clone().map(|r| r as u64),
            ))];
            cols.extend(batch.columns().iter().cloned());
            let resolved = |r: usize| {
                results[r].status != "invalid" && pair_of(r).is_some_and(|p| p.root.is_some())
            };
            cols.push(Arc::new(StringArray::from_iter(
                rows.clone()
                    .map(|r| pair_of(r).and_then(|p| p.origin_url.clone())),
            )));
            cols.push(Arc::new(StringArray::from_iter(rows.clone().map(|r| {
                resolved(r)
                    .then(|| pair_of(r).and_then(|p| p.snapshot.clone()))
                    .flatten()
                    .map(|s| format!("swh:1:snp:{s}"))
            }))));
            cols.push(Arc::new(StringArray::from_iter(rows.clone().map(|r| {
                resolved(r)
                    .then(|| pair_of(r).and_then(|p| p.revision.clone()))
                    .flatten()
            }))));
            cols.push(Arc::new(StringArray::from_iter(
                rows.clone().map(|r| results[r].sha1_git.clone()),
            )));
            cols.push(Arc::new(UInt32Array::from_iter(
                rows.clone().map(|r| results[r].permissions),
            )));
            cols.push(Arc::new(StringArray::from_iter_values(
                rows.clone().map(|r| results[r].status),
            )));
            cols.push(Arc::new(UInt32Array::from_iter(
                rows.clone().map(|r| pair_of(r).map(|p| p.candidates)),
            )));
            let out_batch = RecordBatch::try_new(schema.clone(), cols).map_err(|x| e(&x))?;
            w.write(&out_batch).map_err(|x| e(&x))?;
        }
        w.close().map_err(|x| e(&x))?;
    }
    if row_id != results.len() {
        return Err(TableError {
            path: "metadata".into(),
            reason: format!(
                "the input now has {row_id} rows but was planned with {}; rerun from the plan",
                results.len()
            ),
        });
    }
    Ok(counts)
}
