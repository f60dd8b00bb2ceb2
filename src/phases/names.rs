//! Phase 2, **names**: the label id of every requested path component.
//!
//! Directory entries are labelled by name ids: ranks of the names in the graph's sorted list
//! (`graph.labels.fcl`). Each distinct component the plan gathered is looked up once, by
//! binary search in that front-coded list (in parallel), and written with the hash of its
//! bytes, so that the walk finds a component's id by one binary search in a mapped file.
//! The ids also make the bit-vector the label pass filters entries with.
//!
//! The license file names ([`crate::model::license::file_names`]) are requested too, so that
//! the label pass keeps them and the walk finds each revision's root license files.
//!
//! Output: [`crate::artifacts::entries`] (`names.flat`) and `wanted.bits` (one bit per label
//! name of the graph, set for the requested ones).
//!
//! Memory: one batch of components, the bit-vector (one bit per label name of the graph) and
//! `sort_memory_mb` for the sort by hash.

use std::path::Path;

use rayon::prelude::*;
use swh_graph::graph::{SwhGraphWithProperties, SwhUnidirectionalGraph};

use crate::artifacts::bits;
use crate::artifacts::entries::{NameId, NAMES};
use crate::artifacts::flat::FlatWriter;
use crate::artifacts::plan as plan_files;
use crate::config::Config;
use crate::graph::GraphError;
use crate::model::slug::key_hash;
use crate::model::{Counts, Phase, Shard};
use crate::sort::Sorter;

use super::plan::PlanError;
use super::{Context, Inputs, PhaseError};

/// The bit-vector of requested label ids.
pub const WANTED: &str = "wanted.bits";

/// Counts of the names phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NameCounts {
    /// Distinct requested components.
    pub components: u64,
    /// Of those, names the graph has.
    pub components_in_graph: u64,
    /// Label names of the graph.
    pub label_names: u64,
    /// License file names the graph has.
    pub license_names: u64,
}

impl Counts for NameCounts {
    fn add(&mut self, o: &Self) {
        self.components += o.components;
        self.components_in_graph += o.components_in_graph;
        self.label_names = self.label_names.max(o.label_names);
        self.license_names = self.license_names.max(o.license_names);
    }
}

/// Maps the plan's components to label ids into `ctx.out`.
pub fn run(ctx: &Context, base: &Path) -> Result<NameCounts, PhaseError> {
    let graph = SwhUnidirectionalGraph::new(base)
        .and_then(|g| {
            g.init_properties()
                .load_properties(|p| p.load_label_names())
        })
        .map_err(|e| GraphError::new(base, e))?;
    let props = graph.properties();
    let total = props.num_label_names();
    let wanted = bits::AtomicBits::new(total as usize);
    let budget = ctx.config.options.sort_memory_mb << 20;
    let mut sorter =
        Sorter::new(&ctx.scratch.join("names"), budget, false).map_err(PlanError::from)?;
    let mut counts = NameCounts {
        label_names: total,
        ..Default::default()
    };
    for batch in plan_files::read_components(&ctx.upstream(Phase::Plan))? {
        let batch = batch?;
        counts.components += batch.len() as u64;
        let found: Vec<NameId> = batch
            .par_iter()
            .filter_map(|name| {
                let id = props.label_name_id(name.as_bytes()).ok()?.0;
                wanted.set(id as usize);
                Some(NameId {
                    hash: key_hash(name.as_bytes()),
                    id,
                })
            })
            .collect();
        counts.components_in_graph += found.len() as u64;
        for f in found {
            sorter.push(f).map_err(PlanError::from)?;
        }
    }
    for name in crate::model::license::file_names() {
        if let Ok(id) = props.label_name_id(name.as_bytes()) {
            wanted.set(id.0 as usize);
            counts.license_names += 1;
            let hash = key_hash(name.as_bytes());
            sorter
                .push(NameId { hash, id: id.0 })
                .map_err(PlanError::from)?;
        }
    }
    let mut out = FlatWriter::create(&ctx.out.join(NAMES))?;
    let mut last: Option<NameId> = None;
    for r in sorter.finish().map_err(PlanError::from)? {
        let r = r.map_err(PlanError::from)?;
        // A path component that is also a license file name comes twice.
        if last == Some(r) {
            continue;
        }
        if last.is_some_and(|l| l.hash == r.hash) {
            return Err(
                PlanError::HashCollision(format!("label {}", r.id), "another".into()).into(),
            );
        }
        out.push(&r)?;
        last = Some(r);
    }
    out.finish()?;
    let path = ctx.out.join(WANTED);
    bits::write(&path, &wanted.into_words()).map_err(|e| PhaseError::io(&path, e))?;
    Ok(counts)
}

/// The names phase as the pipeline drives it.
pub struct Step;

impl super::Step for Step {
    const PHASE: Phase = Phase::Names;
    type Counts = NameCounts;

    fn inputs(_config: &Config, _shard: Shard) -> Result<Inputs, PhaseError> {
        Ok(Inputs::new())
    }

    fn run(ctx: &Context) -> Result<NameCounts, PhaseError> {
        run(ctx, ctx.graph())
    }
}
