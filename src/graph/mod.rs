//! Opening a compressed Software Heritage graph, loading only what a phase needs, and telling
//! what a graph holds.
//!
//! swh-graph loads a graph in stages (the arcs, then each property, then the labels), and what
//! is not loaded cannot be used: the types say it. unearth does the same per phase:
//!
//! | phase | opens |
//! |---|---|
//! | scan, walk | [`NodeMaps`]: `node2type` and `node2swhid` only |
//! | match | [`open_matching`]: both directions, maps (MPH included), labels and their names |
//! | verify | [`open_labelled`]: forward arcs, maps, labels and their names |
//! | evolve | [`open_history`]: the same and the timestamps |
//! | reach | [`open_forward`] and [`NodeMaps`]: forward arcs and node types |
//! | labels | [`labels`]: the labels file, its offsets and the forward BV graph |
//! | content (digestmap) | [`open_contents`]: maps (MPH included) and content properties |
//!
//! Everything is memory-mapped; nothing is allocated per node. Graphs from SWH (the example
//! dataset, a public export) and from unearth's archive builder open the same way.

pub mod labels;
pub mod origins;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use swh_graph::graph::{
    SwhBackwardGraph, SwhBidirectionalGraph, SwhGraphWithProperties, SwhLabeledForwardGraph,
    SwhUnidirectionalGraph,
};
use swh_graph::map::{Node2SWHID, Node2Type};
use swh_graph::mph::DynMphf;
use swh_graph::properties;
use swh_graph::NodeType;

/// A graph with all arcs, arc labels and node properties loaded: swh-graph's
/// [`SwhFullGraph`](swh_graph::graph::SwhFullGraph), which is what [`open`] returns.
pub use swh_graph::graph::SwhFullGraph as FullGraph;

/// What `verify` uses: forward arcs and their labels, node maps (MPH, types, SWHIDs) and
/// label names.
pub trait LabelledGraph:
    SwhLabeledForwardGraph
    + SwhGraphWithProperties<Maps: properties::Maps, LabelNames: properties::LabelNames>
{
}

impl<G> LabelledGraph for G where
    G: SwhLabeledForwardGraph
        + SwhGraphWithProperties<Maps: properties::Maps, LabelNames: properties::LabelNames>
{
}

/// What `evolve` uses: a [`LabelledGraph`] with the timestamps of revisions and releases
/// (to order tags that are not versions).
pub trait HistoryGraph:
    SwhLabeledForwardGraph
    + SwhGraphWithProperties<
        Maps: properties::Maps,
        LabelNames: properties::LabelNames,
        Timestamps: properties::Timestamps,
    >
{
}

impl<G> HistoryGraph for G where
    G: SwhLabeledForwardGraph
        + SwhGraphWithProperties<
            Maps: properties::Maps,
            LabelNames: properties::LabelNames,
            Timestamps: properties::Timestamps,
        >
{
}

/// What the origin match uses: a [`LabelledGraph`] with backward arcs too.
pub trait MatchGraph: LabelledGraph + SwhBackwardGraph {}

impl<G> MatchGraph for G where G: LabelledGraph + SwhBackwardGraph {}

/// What the content join through a digestmap uses: node maps (MPH, SWHIDs) and the content
/// properties (length, skipped).
pub trait ContentGraph:
    SwhGraphWithProperties<Maps: properties::Maps, Contents: properties::Contents>
{
}

impl<G> ContentGraph for G where
    G: SwhGraphWithProperties<Maps: properties::Maps, Contents: properties::Contents>
{
}

/// `base` with `suffix` appended to its file name (`graph` + `.properties`).
pub fn suffixed(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Errors of graph loading and reading.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The graph (or one of its files) cannot be loaded.
    #[error("cannot load the compressed graph {basename}")]
    Load {
        /// The basename, e.g. `archive/graph/graph`.
        basename: PathBuf,
        /// What failed, with its causes.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file of the graph holds what its format does not allow.
    #[error("{path}: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl GraphError {
    /// An error loading `base`.
    pub fn new(base: &Path, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        GraphError::Load {
            basename: base.to_owned(),
            source: source.into(),
        }
    }

    /// A file of the graph that cannot be read as its format says.
    pub fn damaged(path: &Path, reason: impl Into<String>) -> Self {
        GraphError::Damaged {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Number of nodes of the graph at `base`, from its `.properties`.
pub fn num_nodes(base: &Path) -> Result<usize, GraphError> {
    property(base, "nodes")
}

/// Number of arcs of the graph at `base`, from its `.properties`.
pub fn num_arcs(base: &Path) -> Result<usize, GraphError> {
    property(base, "arcs")
}

fn property(base: &Path, key: &str) -> Result<usize, GraphError> {
    let path = suffixed(base, ".properties");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| GraphError::new(base, format!("{}: {e}", path.display())))?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .ok_or_else(|| GraphError::new(base, format!("no {key}= line in {}", path.display())))
}

/// Loads the whole graph with basename `base` (both directions, every property, labels).
///
/// The MPH is whichever of `.cmph`, `.fmphgo` and `.pthash` the graph ships.
pub fn open(base: &Path) -> Result<impl FullGraph + Send + Sync, GraphError> {
    swh_graph::graph::load_full::<DynMphf>(base).map_err(|e| GraphError::new(base, e))
}

/// Loads what the origin match needs: both directions, maps, forward labels, label names.
pub fn open_matching(base: &Path) -> Result<impl MatchGraph + Send + Sync, GraphError> {
    SwhBidirectionalGraph::new(base)
        .and_then(|g| {
            g.init_properties()
                .load_properties(|p| p.load_maps::<DynMphf>()?.load_label_names())
        })
        .and_then(|g| g.load_forward_labels())
        .map_err(|e| GraphError::new(base, e))
}

/// Loads what `verify` needs: forward arcs, maps, labels and label names.
pub fn open_labelled(base: &Path) -> Result<impl LabelledGraph + Send + Sync, GraphError> {
    SwhUnidirectionalGraph::new(base)
        .and_then(|g| {
            g.init_properties()
                .load_properties(|p| p.load_maps::<DynMphf>()?.load_label_names())
        })
        .and_then(|g| g.load_labels())
        .map_err(|e| GraphError::new(base, e))
}

/// Loads what `evolve` needs: forward arcs, maps, labels, label names and timestamps.
pub fn open_history(base: &Path) -> Result<impl HistoryGraph + Send + Sync, GraphError> {
    SwhUnidirectionalGraph::new(base)
        .and_then(|g| {
            g.init_properties().load_properties(|p| {
                p.load_maps::<DynMphf>()?
                    .load_label_names()?
                    .load_timestamps()
            })
        })
        .and_then(|g| g.load_labels())
        .map_err(|e| GraphError::new(base, e))
}

/// Loads what the content join through a digestmap needs: maps and content properties (the
/// forward arcs are opened, as swh-graph's loading starts there, but never read).
pub fn open_contents(base: &Path) -> Result<impl ContentGraph + Send + Sync, GraphError> {
    SwhUnidirectionalGraph::new(base)
        .and_then(|g| {
            g.init_properties()
                .load_properties(|p| p.load_maps::<DynMphf>()?.load_contents())
        })
        .map_err(|e| GraphError::new(base, e))
}

/// Loads the forward arcs alone (the BV graph), which the reachable-set search uses with
/// [`NodeMaps`] for node types.
pub fn open_forward(base: &Path) -> Result<SwhUnidirectionalGraph<()>, GraphError> {
    SwhUnidirectionalGraph::new(base).map_err(|e| GraphError::new(base, e))
}

/// `node2type` and `node2swhid`, memory-mapped: the node tables sequential passes read.
pub struct NodeMaps {
    /// Number of nodes.
    pub nodes: usize,
    /// Type of each node.
    pub types: Node2Type<swh_graph::map::UsizeMmap<mmap_rs::Mmap>>,
    /// SWHID of each node.
    pub swhids: Node2SWHID<mmap_rs::Mmap>,
    /// `node2swhid.bin` opened for positioned reads, and its path.
    swhid_file: std::fs::File,
    swhid_path: PathBuf,
}

/// Bytes of one record of `node2swhid.bin`.
const SWHID_RECORD: u64 = 22;
/// Gap between two runs of needed records below which one read covers both: one request of
/// a few pages more costs less than two.
const RUN_GAP: u64 = 64 << 10;
/// Bytes of `node2swhid.bin` read at once at most: large enough for the disk, small enough
/// that the kernel's read-ahead of the next stretch overlaps the work on this one.
pub const MAX_RUN: usize = 4 << 20;

impl NodeMaps {
    /// Maps the node tables of the graph at `base`.
    pub fn open(base: &Path) -> Result<Self, GraphError> {
        let nodes = num_nodes(base)?;
        let types = Node2Type::load(suffixed(base, ".node2type.bin"), nodes)
            .map_err(|e| GraphError::new(base, e))?;
        let swhid_path = suffixed(base, ".node2swhid.bin");
        let swhids = Node2SWHID::load(&swhid_path).map_err(|e| GraphError::new(base, e))?;
        let swhid_file = std::fs::File::open(&swhid_path).map_err(|e| GraphError::new(base, e))?;
        Ok(Self {
            nodes,
            types,
            swhids,
            swhid_file,
            swhid_path,
        })
    }

    /// The type of `node`, `None` out of range.
    pub fn node_type(&self, node: u64) -> Option<NodeType> {
        self.types.get(usize::try_from(node).ok()?).ok()
    }

    /// Calls `each(node, hash)`, in node order, for the nodes of type `kind` among `nodes`,
    /// reading their `node2swhid.bin` records with positioned reads of whole runs of them
    /// (runs closer than 64 KiB merged, at most [`MAX_RUN`] bytes per read) into `buf`: a
    /// pass that wants one type reads large sequential stretches and skips those holding
    /// none of its records, where the memory map would fault a page at a time. `types` is the
    /// type of each node of `nodes`, as [`NodeMaps::types_of`] gives them. Returns the bytes
    /// read.
    pub fn for_each_hash(
        &self,
        nodes: std::ops::Range<usize>,
        types: &[Option<NodeType>],
        kind: NodeType,
        buf: &mut Vec<u8>,
        mut each: impl FnMut(usize, [u8; 20]),
    ) -> Result<u64, GraphError> {
        use std::os::unix::fs::FileExt;
        let record = SWHID_RECORD as usize;
        let gap = RUN_GAP as usize / record;
        let most = MAX_RUN / record;
        let is_kind = |n: usize| types.get(n - nodes.start) == Some(&Some(kind));
        let end = nodes.end.min(nodes.start + types.len());
        let mut read = 0;
        let mut node = nodes.start;
        while node < end {
            if !is_kind(node) {
                node += 1;
                continue;
            }
            // A run: from this node to the last wanted one before a gap of `gap` nodes.
            let first = node;
            let mut last = node;
            let mut n = node + 1;
            while n < end && n - last <= gap && n - first < most {
                if is_kind(n) {
                    last = n;
                }
                n += 1;
            }
            let len = (last + 1 - first) * record;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            self.swhid_file
                .read_exact_at(&mut buf[..len], (first * record) as u64)
                .map_err(|e| GraphError::new(&self.swhid_path, e))?;
            read += len as u64;
            // Have the kernel read the next stretch while this one is worked on (a hint:
            // errors are ignored; past the file's end it does nothing).
            // SAFETY: a plain system call on a file descriptor this struct owns.
            unsafe {
                use std::os::fd::AsRawFd;
                libc::posix_fadvise(
                    self.swhid_file.as_raw_fd(),
                    ((last + 1) * record) as libc::off_t,
                    MAX_RUN as libc::off_t,
                    libc::POSIX_FADV_WILLNEED,
                );
            }
            for m in first..=last {
                if is_kind(m) {
                    let at = (m - first) * record + 2;
                    let mut hash = [0u8; 20];
                    hash.copy_from_slice(&buf[at..at + 20]);
                    each(m, hash);
                }
            }
            node = last + 1;
        }
        Ok(read)
    }

    /// The type of each node of `nodes` into `out` (cleared first; `None` past the end).
    pub fn types_of(&self, nodes: std::ops::Range<usize>, out: &mut Vec<Option<NodeType>>) {
        out.clear();
        out.extend(nodes.map(|n| self.types.get(n).ok()));
    }

    /// The hash of `node`'s SWHID, `None` out of range.
    pub fn hash(&self, node: u64) -> Option<[u8; 20]> {
        self.swhids
            .get(usize::try_from(node).ok()?)
            .ok()
            .map(|s| s.hash)
    }
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
