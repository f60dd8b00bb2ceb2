//! ORC tables to a compressed graph, by Software Heritage's own compression code.
//!
//! This drives the steps of swh-graph's compression pipeline (the order of
//! `swh/graph/webgraph.py`) as library calls of the `swh-graph` crate, in-process, so that the
//! files are exactly what SWH's tools produce and load. One deliberate difference: the
//! Layered Label Propagation reordering is not run. LLP only improves the compression ratio
//! (the files keep the same format), costs most of the pipeline's time, and is randomised; the
//! final node order is the BFS order from origins, computed on one thread so that the same
//! tables always give the same graph.
//!
//! The MPH is `fmphgo` (pure Rust), which `swh_graph::graph::load_full` picks up like the
//! `.pthash` of recent public exports.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Instant;

use dsi_bitstream::prelude::BE;
use dsi_progress_logger::{progress_logger, ProgressLog};
use rayon::prelude::*;
use swh_graph::compress::orc::OrcTableReader;
use swh_graph::map::{MappedPermutation, Node2SWHID, Node2Type, Permutation};
use swh_graph::mph::{LoadableSwhidMphf, SwhidFmphgo, SwhidMphf};
use swh_graph::person::{DynPersonMphf, LoadablePersonMphf};
use swh_graph::webgraph::prelude::*;
use swh_graph::{NodeType, SWHID};

/// What can go wrong in a step: swh-graph's own errors, I/O, or ours, with context.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// An error of the compression: what was being done, and the error behind it.
#[derive(Debug)]
pub struct CompressError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Display for CompressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CompressError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

fn fail(message: impl Into<String>) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(CompressError {
        message: message.into(),
        source: None,
    })
}

/// Adds what was being done to an error (or a missing value).
trait Context<T> {
    fn context(self, message: &str) -> Result<T>;
    fn with_context(self, message: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Box<dyn std::error::Error + Send + Sync>>> Context<T>
    for std::result::Result<T, E>
{
    fn context(self, message: &str) -> Result<T> {
        self.with_context(|| message.to_string())
    }
    fn with_context(self, message: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| {
            Box::new(CompressError {
                message: message(),
                source: Some(e.into()),
            }) as Box<dyn std::error::Error + Send + Sync>
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, message: &str) -> Result<T> {
        self.ok_or_else(|| fail(message))
    }
    fn with_context(self, message: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| fail(message()))
    }
}

/// Bytes each sorting thread buffers before it spills a sorted run to disk.
const SORT_BUFFER: usize = 256 << 20;

/// Node and arc counts of a compressed graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphSummary {
    /// Nodes.
    pub nodes: u64,
    /// Arcs.
    pub arcs: u64,
    /// Distinct label names (entry and branch names).
    pub label_names: u64,
    /// Distinct persons.
    pub persons: u64,
    /// Seconds spent, per step, in pipeline order.
    pub step_seconds: Vec<(&'static str, f64)>,
}

fn suffixed(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("Could not write {}", path.display()))
}

fn zstd_writer(path: &Path) -> Result<zstd::stream::AutoFinishEncoder<'static, BufWriter<File>>> {
    let file =
        File::create(path).with_context(|| format!("Could not create {}", path.display()))?;
    Ok(zstd::stream::write::Encoder::new(BufWriter::new(file), 3)?.auto_finish())
}

/// Sorts, deduplicates and base64-encodes byte strings into a zstd file of lines, SWH's
/// format for label names and persons; returns how many there were.
fn write_sorted_base64(
    items: impl ParallelIterator<Item = Box<[u8]>>,
    what: &str,
    path: &Path,
) -> Result<usize> {
    let mut pl = progress_logger!(item_name = what, display_memory = true);
    pl.start(format!("Sorting {what}s"));
    let sorted = swh_graph::utils::sort::par_sort_strings(items, pl, SORT_BUFFER)?;
    let mut out = zstd_writer(path)?;
    let mut count = 0;
    for item in sorted {
        out.write_all(base64_simd::STANDARD.encode_to_string(item).as_bytes())?;
        out.write_all(b"\n")?;
        count += 1;
    }
    Ok(count)
}

fn store_ef(num_nodes: usize, data: &Path, offsets: &Path, ef: &Path) -> Result<()> {
    let mut pl = progress_logger!(item_name = "node", display_memory = true);
    pl.start(format!("Indexing {}", ef.display()));
    swh_graph::webgraph::graphs::bvgraph::store_ef_with_data(num_nodes, data, offsets, ef, &mut pl)
        .with_context(|| format!("Could not build {}", ef.display()))
}

fn graph_ef(base: &Path, num_nodes: usize) -> Result<()> {
    store_ef(
        num_nodes,
        &suffixed(base, ".graph"),
        &suffixed(base, ".offsets"),
        &suffixed(base, ".ef"),
    )
}

/// Loads a BV graph; a macro because the loaded type cannot be named and `transform` needs
/// its concrete iterator types.
macro_rules! load_bv {
    ($base:expr) => {
        BvGraph::with_basename($base)
            .endianness::<BE>()
            .flags(MemoryFlags::RANDOM_ACCESS)
            .load()
            .with_context(|| format!("Could not load graph {}", $base.display()))?
    };
}

/// Writes a Java properties file with keys in the given order and no date comment
/// (`java_properties::write` stamps the time and takes a hash map, which would make two
/// builds of the same input differ).
fn write_properties(path: &Path, entries: &[(&str, String)]) -> Result<()> {
    fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for (i, c) in s.chars().enumerate() {
            match c {
                '\\' | '=' | ':' | '#' | '!' => {
                    out.push('\\');
                    out.push(c);
                }
                ' ' if i == 0 => out.push_str("\\ "),
                _ => out.push(c),
            }
        }
        out
    }
    let text: String = entries
        .iter()
        .map(|(k, v)| format!("{}={}\n", escape(k), escape(v)))
        .collect();
    write_file(path, &text)
}

/// Rewrites every `.properties` file under `dir` with its comment lines dropped and its lines
/// sorted. Libraries write them from hash maps with a date comment; properties files are
/// maps, so this changes nothing for their readers and makes builds reproducible.
fn normalize_properties(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "properties") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("Could not read {}", path.display()))?;
            let mut lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
                .collect();
            lines.sort_unstable();
            write_file(&path, &(lines.join("\n") + "\n"))?;
        }
    }
    Ok(())
}

/// Gives every empty `*.property.*.bin` file one byte. swh-graph memory-maps every
/// property file, and an empty file (no release gives an empty `tag_name.bin`) cannot be
/// mapped; no offset ever points into the padding, so readers see the same values.
fn pad_empty_properties(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.contains(".property.") && std::fs::metadata(&path)?.len() == 0 {
            write_file(&path, "\n")?;
        }
    }
    Ok(())
}

/// The state of one compression: where things are, and what earlier steps found.
struct Compression {
    orc_dir: PathBuf,
    base: PathBuf,
    tmp: PathBuf,
    types: Vec<NodeType>,
    nodes_dir: PathBuf,
    num_nodes: usize,
    labels_path: PathBuf,
    num_labels: usize,
    order_path: PathBuf,
    summary: GraphSummary,
}

impl Compression {
    fn suffixed(&self, suffix: &str) -> PathBuf {
        suffixed(&self.base, suffix)
    }

    /// extract-nodes + node-stats: every SWHID of the tables, sorted, and counts per type.
    fn extract_nodes(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.nodes_dir)?;
        // An id that is not a SWHID (a damaged or foreign table) is reported, not a panic:
        // the first one is kept and the build fails after the pass.
        let bad: Mutex<Option<String>> = Mutex::new(None);
        let swhids = swh_graph::compress::iter_swhids::<OrcTableReader>(&self.orc_dir, &self.types)
            .context("Could not read nodes from the ORC tables")?
            .filter_map(|text| {
                let parsed = std::str::from_utf8(&text)
                    .ok()
                    .and_then(|t| SWHID::from_str(t).ok());
                if parsed.is_none() {
                    if let Ok(mut b) = bad.lock() {
                        b.get_or_insert_with(|| String::from_utf8_lossy(&text).into_owned());
                    }
                }
                parsed
            });
        let mut pl = progress_logger!(item_name = "node", display_memory = true);
        pl.start("Sorting SWHIDs");
        let sorted = swh_graph::utils::sort::par_sort_swhids(swhids, pl, SORT_BUFFER)?;
        if let Some(text) = bad.lock().ok().and_then(|mut b| b.take()) {
            return Err(fail(format!(
                "the ORC tables hold an id that is not a SWHID: {text:?}"
            )));
        }
        let mut per_type = [0usize; NodeType::NUMBER_OF_TYPES];
        {
            let mut out = zstd_writer(&self.nodes_dir.join("nodes.txt.00000000.zst"))?;
            for swhid in sorted {
                per_type[swhid.node_type as usize] += 1;
                out.write_all(format!("{swhid}\n").as_bytes())?;
            }
        }
        let num_nodes: usize = per_type.iter().sum();
        if num_nodes == 0 {
            return Err(fail("the archive has no object"));
        }
        let mut lines: Vec<String> = self
            .types
            .iter()
            .map(|t| format!("{} {}\n", t, per_type[*t as usize]))
            .collect();
        lines.sort();
        write_file(&self.suffixed(".nodes.stats.txt"), &lines.concat())?;
        write_file(
            &self.suffixed(".nodes.count.txt"),
            &format!("{num_nodes}\n"),
        )?;
        self.num_nodes = num_nodes;
        self.summary.nodes = num_nodes as u64;
        Ok(())
    }

    /// edge-stats: arcs per (source type, destination type).
    fn edge_stats(&mut self) -> Result<()> {
        let stats = swh_graph::compress::stats::count_edge_types::<OrcTableReader>(
            &self.orc_dir,
            &self.types,
        )?
        .reduce(Default::default, |mut a, b| {
            for (ra, rb) in a.iter_mut().zip(b) {
                for (x, y) in ra.iter_mut().zip(rb) {
                    *x += y;
                }
            }
            a
        });
        let mut lines = Vec::new();
        let mut num_arcs = 0;
        for src in NodeType::all() {
            for dst in NodeType::all() {
                let count = stats[src as usize][dst as usize];
                if count != 0 {
                    lines.push(format!("{src}:{dst} {count}\n"));
                    num_arcs += count;
                }
            }
        }
        lines.sort();
        write_file(&self.suffixed(".edges.stats.txt"), &lines.concat())?;
        write_file(&self.suffixed(".edges.count.txt"), &format!("{num_arcs}\n"))
    }

    /// extract-labels + label count: the distinct entry and branch names.
    fn extract_labels(&mut self) -> Result<()> {
        let labels =
            swh_graph::compress::iter_labels::<OrcTableReader>(&self.orc_dir, &self.types)?;
        self.num_labels = write_sorted_base64(labels, "label", &self.labels_path)?;
        let n = self.num_labels;
        write_file(&self.suffixed(".labels.count.txt"), &format!("{n}\n"))?;
        self.summary.label_names = n as u64;
        Ok(())
    }

    /// mph: the function from SWHID to node id before the final order.
    fn mph(&mut self) -> Result<()> {
        let mphf =
            swh_graph::compress::mph::build_swhids_mphf(self.nodes_dir.clone(), self.num_nodes)?;
        let path = self.suffixed(".fmphgo");
        let mut file = BufWriter::new(File::create(&path)?);
        mphf.0
            .write(&mut file)
            .with_context(|| format!("Could not write {}", path.display()))?;
        file.flush()?;
        Ok(())
    }

    /// bv + ef: the graph in MPH order.
    fn bv(&mut self) -> Result<()> {
        let base_graph = self.tmp.join("graph-base");
        swh_graph::compress::bv::bv::<SwhidFmphgo, OrcTableReader>(
            1,
            self.base.clone(),
            self.num_nodes,
            None,
            self.orc_dir.clone(),
            &self.types,
            base_graph.clone(),
        )?;
        graph_ef(&base_graph, self.num_nodes)
    }

    /// bfs-roots + bfs: origins sorted by reversed URL so that forks sit together.
    fn bfs(&mut self) -> Result<()> {
        let mph = <SwhidFmphgo as LoadableSwhidMphf>::load(&self.base)?;
        let mut origins: Vec<(String, String)> =
            swh_graph::compress::iter_origins::<OrcTableReader>(&self.orc_dir)?.collect();
        origins.sort_by_key(|(url, _)| {
            url.trim_end_matches('/')
                .split('/')
                .rev()
                .collect::<Vec<_>>()
                .join("/")
        });
        let roots: Vec<usize> = origins
            .iter()
            .map(|(_, swhid)| mph.hash_str(swhid).context("origin missing from the MPH"))
            .collect::<Result<_>>()?;
        let base_graph = self.tmp.join("graph-base");
        let graph = load_bv!(&base_graph);
        // One thread: the parallel BFS is not deterministic, and the archives this builds are
        // small enough that it does not matter.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
        let order = pool.install(|| swh_graph::approximate_bfs::almost_bfs_order(&graph, &roots));
        let mut file = BufWriter::new(File::create(&self.order_path)?);
        order.dump(&mut file)?;
        file.flush()?;
        Ok(())
    }

    /// permute + ef: the graph in BFS order.
    fn permute(&mut self) -> Result<()> {
        let base_graph = self.tmp.join("graph-base");
        let graph = load_bv!(&base_graph);
        let order = MappedPermutation::load(self.num_nodes, &self.order_path)?;
        swh_graph::compress::transform::transform(
            1,
            graph,
            // SAFETY: the permutation has one entry per node of the graph it permutes.
            |src, dst| unsafe { [(order.get_unchecked(src), order.get_unchecked(dst))] },
            self.base.clone(),
        )?;
        graph_ef(&self.base, self.num_nodes)
    }

    /// transpose + ef.
    fn transpose(&mut self) -> Result<()> {
        let transposed = self.suffixed("-transposed");
        let graph = load_bv!(&self.base);
        swh_graph::compress::transform::transform(
            1,
            graph,
            |src, dst| [(dst, src)],
            transposed.clone(),
        )?;
        graph_ef(&transposed, self.num_nodes)
    }

    /// maps: node2swhid and node2type in the final order.
    fn maps(&mut self) -> Result<()> {
        let n = self.num_nodes;
        let order = MappedPermutation::load(n, &self.order_path)?;
        let mph = <SwhidFmphgo as LoadableSwhidMphf>::load(&self.base)?;
        let swhids = swh_graph::compress::maps::ordered_swhids(&self.nodes_dir, order, mph, n)?;
        let mut node2swhid = Node2SWHID::new(self.suffixed(".node2swhid.bin"), n)?;
        let mut node2type = Node2Type::new(self.suffixed(".node2type.bin"), n)?;
        for (node, swhid) in swhids.iter().enumerate() {
            // SAFETY: both maps were created with num_nodes entries.
            unsafe {
                node2swhid.set_unchecked(node, *swhid);
                node2type.set_unchecked(node, swhid.node_type);
            }
        }
        Ok(())
    }

    /// extract-persons + persons count + persons mph.
    fn persons(&mut self) -> Result<()> {
        let persons_path = self.suffixed(".persons.csv.zst");
        let persons =
            swh_graph::compress::iter_persons::<OrcTableReader>(&self.orc_dir, &self.types)?;
        let num_persons = write_sorted_base64(persons, "person", &persons_path)?;
        write_file(
            &self.suffixed(".persons.count.txt"),
            &format!("{num_persons}\n"),
        )?;
        self.summary.persons = num_persons as u64;
        let mphf = swh_graph::compress::persons::build_mphf(persons_path, num_persons)?;
        let mut file = BufWriter::new(File::create(self.suffixed(".persons.fmphgo"))?);
        mphf.0.write(&mut file)?;
        file.flush()?;
        Ok(())
    }

    /// node-properties: timestamps, lengths, persons, messages, tag names.
    fn node_properties(&mut self) -> Result<()> {
        let person_mph = DynPersonMphf::load(self.suffixed(".persons"))?;
        let writer = swh_graph::compress::properties::PropertyWriter {
            swhid_mph: <SwhidFmphgo as LoadableSwhidMphf>::load(&self.base)?,
            person_mph: Some(swh_graph::compress::persons::PersonHasher::new(&person_mph)),
            order: MappedPermutation::load_unchecked(&self.order_path)?,
            num_nodes: self.num_nodes,
            dataset_dir: self.orc_dir.clone(),
            allowed_node_types: self.types.clone(),
            target: self.base.clone(),
            _marker: PhantomData::<Mutex<OrcTableReader>>,
        };
        writer.write_author_timestamps()?;
        writer.write_committer_timestamps()?;
        writer.write_content_lengths()?;
        writer.write_content_is_skipped()?;
        writer.write_author_ids()?;
        writer.write_committer_ids()?;
        writer.write_messages()?;
        writer.write_tag_names()?;
        Ok(())
    }

    /// label names: the function from name to id, and the front-coded list from id to name.
    fn label_names(&mut self) -> Result<()> {
        use epserde::ser::Serialize;
        let mphf = swh_graph::compress::label_names::build_mphf(
            self.labels_path.clone(),
            self.num_labels,
        )?;
        let mut file = BufWriter::new(File::create(self.suffixed(".labels.vfunc"))?);
        // SAFETY: serialising plain data of our own process; nothing secret can leak.
        unsafe { mphf.serialize(&mut file) }.context("Could not write the label function")?;
        file.flush()?;
        let mut fcl = swh_graph::front_coded_list::FrontCodedListBuilder::new(
            NonZeroUsize::MIN.saturating_add(3),
        );
        let reader = BufReader::new(zstd::stream::read::Decoder::new(File::open(
            &self.labels_path,
        )?)?);
        for line in reader.lines() {
            fcl.push(line?.into_bytes())
                .map_err(|e| fail(format!("Could not add a label to the list: {e:?}")))?;
        }
        fcl.dump(self.suffixed(".labels.fcl"))?;
        Ok(())
    }

    /// edge-labels, both directions, with their properties and ef.
    fn edge_labels(&mut self) -> Result<()> {
        let hasher = swh_graph::compress::label_names::LabelNameHasher::mmap(
            self.suffixed(".labels.vfunc"),
        )?;
        for (target, transposed) in [
            (self.base.clone(), false),
            (self.suffixed("-transposed"), true),
        ] {
            let width = swh_graph::compress::bv::edge_labels::<SwhidFmphgo, OrcTableReader>(
                1,
                self.base.clone(),
                MappedPermutation::load_unchecked(&self.order_path)?,
                &hasher,
                self.num_nodes,
                self.orc_dir.clone(),
                &self.types,
                transposed,
                &target,
            )?;
            let name = target
                .file_name()
                .and_then(|n| n.to_str())
                .context("graph basename is not UTF-8")?
                .to_string();
            write_properties(
                &suffixed(&target, "-labelled.properties"),
                &[
                    (
                        "graphclass",
                        "it.unimi.dsi.big.webgraph.labelling.BitStreamArcLabelledImmutableGraph"
                            .into(),
                    ),
                    (
                        "labelspec",
                        format!("org.softwareheritage.graph.labels.SwhLabel(DirEntry,{width})"),
                    ),
                    ("underlyinggraph", name),
                ],
            )?;
            let labelled = suffixed(&target, "-labelled");
            store_ef(
                self.num_nodes,
                &suffixed(&labelled, ".labels"),
                &suffixed(&labelled, ".labeloffsets"),
                &suffixed(&labelled, ".ef"),
            )?;
        }
        Ok(())
    }

    /// stats: degrees, as SWH's `.stats` file.
    fn stats(&mut self) -> Result<()> {
        use swh_graph::graph::SwhGraph;
        use swh_graph::views::Transposed;
        let graph = swh_graph::graph::SwhBidirectionalGraph::new(&self.base)?;
        let out = swh_graph::stats::outdegree(&graph);
        let inn = swh_graph::stats::outdegree(&Transposed(&graph));
        self.summary.arcs = graph.num_arcs();
        write_properties(
            &self.suffixed(".stats"),
            &[
                ("nodes", graph.num_nodes().to_string()),
                ("arcs", graph.num_arcs().to_string()),
                ("loops", "0".into()),
                ("minindegree", inn.min.to_string()),
                ("maxindegree", inn.max.to_string()),
                ("avgindegree", inn.avg.to_string()),
                ("minoutdegree", out.min.to_string()),
                ("maxoutdegree", out.max.to_string()),
                ("avgoutdegree", out.avg.to_string()),
            ],
        )
    }
}

/// One step of the compression, by name.
type StepFn = fn(&mut Compression) -> Result<()>;

/// The steps, in the order of swh-graph's `webgraph.py` (LLP left out).
const STEPS: [(&str, StepFn); 14] = [
    ("extract-nodes", Compression::extract_nodes),
    ("edge-stats", Compression::edge_stats),
    ("extract-labels", Compression::extract_labels),
    ("mph", Compression::mph),
    ("bv", Compression::bv),
    ("bfs", Compression::bfs),
    ("permute", Compression::permute),
    ("transpose", Compression::transpose),
    ("maps", Compression::maps),
    ("persons", Compression::persons),
    ("node-properties", Compression::node_properties),
    ("label-names", Compression::label_names),
    ("edge-labels", Compression::edge_labels),
    ("stats", Compression::stats),
];

/// Compresses the ORC tables under `orc_dir` into a graph with basename `base`
/// (`base.graph`, `base-transposed.graph`, `base-labelled.labels`, ...). `tmp` holds the
/// intermediate graphs and is left for the caller to remove.
pub fn compress(orc_dir: &Path, base: &Path, tmp: &Path) -> Result<GraphSummary> {
    let mut c = Compression {
        orc_dir: orc_dir.to_path_buf(),
        base: base.to_path_buf(),
        tmp: tmp.to_path_buf(),
        types: NodeType::all().into_iter().collect(),
        nodes_dir: suffixed(base, ".nodes"),
        num_nodes: 0,
        labels_path: suffixed(base, ".labels.csv.zst"),
        num_labels: 0,
        order_path: suffixed(base, ".fmphgo.order"),
        summary: GraphSummary::default(),
    };
    for (name, step) in STEPS {
        let timer = Instant::now();
        step(&mut c)?;
        let secs = timer.elapsed().as_secs_f64();
        log::info!("compression step {name} done in {secs:.2}s");
        c.summary.step_seconds.push((name, secs));
    }
    let dir = base.parent().context("graph basename has a folder")?;
    normalize_properties(dir)?;
    pad_empty_properties(dir)?;
    Ok(c.summary)
}
