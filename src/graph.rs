//! Opening a compressed Software Heritage graph and telling what it holds.
//!
//! Every phase of unearth and every test opens graphs through [`open`], whether the graph
//! comes from SWH (the example dataset, a public export) or from unearth's archive builder.

use std::collections::BTreeMap;
use std::path::Path;

use swh_graph::mph::DynMphf;
use swh_graph::NodeType;

/// A graph with all arcs, arc labels and node properties loaded: swh-graph's
/// [`SwhFullGraph`](swh_graph::graph::SwhFullGraph), which is what [`open`] returns.
pub use swh_graph::graph::SwhFullGraph as FullGraph;

/// `base` with `suffix` appended to its file name (`graph` + `.properties`).
pub fn suffixed(base: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(suffix);
    std::path::PathBuf::from(s)
}

/// Number of nodes of the graph at `base`, from its `.properties`.
pub fn num_nodes(base: &Path) -> Result<usize, GraphError> {
    let err = |reason: String| GraphError {
        basename: base.display().to_string(),
        reason,
    };
    let path = suffixed(base, ".properties");
    let text =
        std::fs::read_to_string(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "nodes")
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or_else(|| err(format!("no nodes= line in {}", path.display())))
}

/// Errors of graph loading.
#[derive(Debug, thiserror::Error)]
#[error("cannot load the compressed graph {basename}: {reason}")]
pub struct GraphError {
    /// The basename, e.g. `archive/graph/graph`.
    pub basename: String,
    /// What failed, with its causes.
    pub reason: String,
}

/// Loads the graph with basename `base` (forward and backward arcs, properties, labels).
///
/// The MPH is whichever of `.cmph`, `.fmphgo` and `.pthash` the graph ships.
pub fn open(base: &Path) -> Result<impl FullGraph + Send + Sync, GraphError> {
    swh_graph::graph::load_full::<DynMphf>(base).map_err(|e| GraphError {
        basename: base.display().to_string(),
        reason: format!("{e:#}"),
    })
}

/// Counts and names of what a graph holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphSummary {
    /// Nodes per type (`cnt`, `dir`, ...).
    pub nodes_per_type: BTreeMap<String, usize>,
    /// All nodes.
    pub nodes: usize,
    /// All arcs.
    pub arcs: u64,
    /// Origin URLs, sorted.
    pub origins: Vec<String>,
    /// Distinct snapshot branch names, sorted (lossy UTF-8).
    pub branch_names: Vec<String>,
}

/// Walks every node once (a small graph is assumed: this is for reports and tests).
pub fn summarize(graph: &impl FullGraph) -> GraphSummary {
    use swh_graph::labels::EdgeLabel;
    let mut s = GraphSummary {
        nodes: graph.num_nodes(),
        arcs: graph.num_arcs(),
        ..Default::default()
    };
    let props = graph.properties();
    let mut branches = std::collections::BTreeSet::new();
    for node in 0..graph.num_nodes() {
        let ty = props.node_type(node);
        *s.nodes_per_type.entry(ty.to_string()).or_default() += 1;
        if ty == NodeType::Origin {
            if let Some(url) = props.message(node) {
                s.origins.push(String::from_utf8_lossy(&url).into_owned());
            }
        }
        if ty == NodeType::Snapshot {
            for (_, labels) in graph.labeled_successors(node) {
                for label in labels {
                    if let EdgeLabel::Branch(b) = label {
                        let name = props.label_name(b.label_name_id());
                        branches.insert(String::from_utf8_lossy(&name).into_owned());
                    }
                }
            }
        }
    }
    s.origins.sort();
    s.branch_names = branches.into_iter().collect();
    s
}
