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

use anyhow::{ensure, Context, Result};
use dsi_bitstream::prelude::BE;
use dsi_progress_logger::{progress_logger, ProgressLog};
use rayon::prelude::*;
use swh_graph::compress::orc::OrcTableReader;
use swh_graph::map::{MappedPermutation, Node2SWHID, Node2Type, Permutation};
use swh_graph::mph::{LoadableSwhidMphf, SwhidFmphgo, SwhidMphf};
use swh_graph::person::{DynPersonMphf, LoadablePersonMphf};
use swh_graph::webgraph::prelude::*;
use swh_graph::{NodeType, SWHID};

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

/// Compresses the ORC tables under `orc_dir` into a graph with basename `base`
/// (`base.graph`, `base-transposed.graph`, `base-labelled.labels`, ...). `tmp` holds the
/// intermediate graphs and is left for the caller to remove.
pub fn compress(orc_dir: &Path, base: &Path, tmp: &Path) -> Result<GraphSummary> {
    let orc_dir = orc_dir.to_path_buf();
    let types: Vec<NodeType> = NodeType::all().into_iter().collect();
    let mut summary = GraphSummary::default();
    let mut timer = Instant::now();
    let mut step = |name: &'static str, summary: &mut GraphSummary| {
        let secs = timer.elapsed().as_secs_f64();
        log::info!("compression step {name} done in {secs:.2}s");
        summary.step_seconds.push((name, secs));
        timer = Instant::now();
    };

    // extract-nodes + node-stats
    let nodes_dir = suffixed(base, ".nodes");
    std::fs::create_dir_all(&nodes_dir)?;
    let swhids = swh_graph::compress::iter_swhids::<OrcTableReader>(&orc_dir, &types)
        .context("Could not read nodes from the ORC tables")?
        .map(|text| {
            let text = std::str::from_utf8(&text).expect("SWHIDs are ASCII");
            SWHID::from_str(text).expect("the tables hold valid SWHIDs")
        });
    let mut pl = progress_logger!(item_name = "node", display_memory = true);
    pl.start("Sorting SWHIDs");
    let sorted = swh_graph::utils::sort::par_sort_swhids(swhids, pl, SORT_BUFFER)?;
    let mut per_type = [0usize; NodeType::NUMBER_OF_TYPES];
    {
        let mut out = zstd_writer(&nodes_dir.join("nodes.txt.00000000.zst"))?;
        for swhid in sorted {
            per_type[swhid.node_type as usize] += 1;
            out.write_all(format!("{swhid}\n").as_bytes())?;
        }
    }
    let num_nodes: usize = per_type.iter().sum();
    ensure!(num_nodes > 0, "the archive has no object");
    let mut lines: Vec<String> = types
        .iter()
        .map(|t| format!("{} {}\n", t, per_type[*t as usize]))
        .collect();
    lines.sort();
    write_file(&suffixed(base, ".nodes.stats.txt"), &lines.concat())?;
    write_file(
        &suffixed(base, ".nodes.count.txt"),
        &format!("{num_nodes}\n"),
    )?;
    summary.nodes = num_nodes as u64;
    step("extract-nodes", &mut summary);

    // edge-stats
    let stats = swh_graph::compress::stats::count_edge_types::<OrcTableReader>(&orc_dir, &types)?
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
    write_file(&suffixed(base, ".edges.stats.txt"), &lines.concat())?;
    write_file(
        &suffixed(base, ".edges.count.txt"),
        &format!("{num_arcs}\n"),
    )?;
    step("edge-stats", &mut summary);

    // extract-labels + label count
    let labels_path = suffixed(base, ".labels.csv.zst");
    let labels = swh_graph::compress::iter_labels::<OrcTableReader>(&orc_dir, &types)?;
    let num_labels = write_sorted_base64(labels, "label", &labels_path)?;
    write_file(
        &suffixed(base, ".labels.count.txt"),
        &format!("{num_labels}\n"),
    )?;
    summary.label_names = num_labels as u64;
    step("extract-labels", &mut summary);

    // mph
    let mphf = swh_graph::compress::mph::build_swhids_mphf(nodes_dir.clone(), num_nodes)?;
    {
        let path = suffixed(base, ".fmphgo");
        let mut file = BufWriter::new(File::create(&path)?);
        mphf.0
            .write(&mut file)
            .with_context(|| format!("Could not write {}", path.display()))?;
        file.flush()?;
    }
    step("mph", &mut summary);

    // bv + ef
    let base_graph = tmp.join("graph-base");
    swh_graph::compress::bv::bv::<SwhidFmphgo, OrcTableReader>(
        1,
        base.to_path_buf(),
        num_nodes,
        None,
        orc_dir.clone(),
        &types,
        base_graph.clone(),
    )?;
    graph_ef(&base_graph, num_nodes)?;
    step("bv", &mut summary);

    // bfs-roots + bfs: origins sorted by reversed URL so that forks sit together.
    let mph = <SwhidFmphgo as LoadableSwhidMphf>::load(base)?;
    let mut origins: Vec<(String, String)> =
        swh_graph::compress::iter_origins::<OrcTableReader>(&orc_dir)?.collect();
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
    let order_path = suffixed(base, ".fmphgo.order");
    {
        let graph = load_bv!(&base_graph);
        // One thread: the parallel BFS is not deterministic, and the archives this builds are
        // small enough that it does not matter.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
        let order = pool.install(|| swh_graph::approximate_bfs::almost_bfs_order(&graph, &roots));
        let mut file = BufWriter::new(File::create(&order_path)?);
        order.dump(&mut file)?;
        file.flush()?;
    }
    step("bfs", &mut summary);

    // permute + ef
    {
        let graph = load_bv!(&base_graph);
        let order = MappedPermutation::load(num_nodes, &order_path)?;
        swh_graph::compress::transform::transform(
            1,
            graph,
            |src, dst| unsafe { [(order.get_unchecked(src), order.get_unchecked(dst))] },
            base.to_path_buf(),
        )?;
        graph_ef(base, num_nodes)?;
    }
    step("permute", &mut summary);

    // transpose + ef
    let transposed = suffixed(base, "-transposed");
    {
        let graph = load_bv!(base);
        swh_graph::compress::transform::transform(
            1,
            graph,
            |src, dst| [(dst, src)],
            transposed.clone(),
        )?;
        graph_ef(&transposed, num_nodes)?;
    }
    step("transpose", &mut summary);

    // maps
    {
        let order = MappedPermutation::load(num_nodes, &order_path)?;
        let swhids = swh_graph::compress::maps::ordered_swhids(&nodes_dir, order, mph, num_nodes)?;
        let mut node2swhid = Node2SWHID::new(suffixed(base, ".node2swhid.bin"), num_nodes)?;
        let mut node2type = Node2Type::new(suffixed(base, ".node2type.bin"), num_nodes)?;
        for (node, swhid) in swhids.iter().enumerate() {
            // SAFETY: both maps were created with num_nodes entries.
            unsafe {
                node2swhid.set_unchecked(node, *swhid);
                node2type.set_unchecked(node, swhid.node_type);
            }
        }
    }
    step("maps", &mut summary);

    // extract-persons + persons count + persons mph
    let persons_path = suffixed(base, ".persons.csv.zst");
    let persons = swh_graph::compress::iter_persons::<OrcTableReader>(&orc_dir, &types)?;
    let num_persons = write_sorted_base64(persons, "person", &persons_path)?;
    write_file(
        &suffixed(base, ".persons.count.txt"),
        &format!("{num_persons}\n"),
    )?;
    summary.persons = num_persons as u64;
    {
        let mphf = swh_graph::compress::persons::build_mphf(persons_path.clone(), num_persons)?;
        let mut file = BufWriter::new(File::create(suffixed(base, ".persons.fmphgo"))?);
        mphf.0.write(&mut file)?;
        file.flush()?;
    }
    step("persons", &mut summary);

    // node-properties
    {
        let person_mph = DynPersonMphf::load(suffixed(base, ".persons"))?;
        let writer = swh_graph::compress::properties::PropertyWriter {
            swhid_mph: <SwhidFmphgo as LoadableSwhidMphf>::load(base)?,
            person_mph: Some(swh_graph::compress::persons::PersonHasher::new(&person_mph)),
            order: MappedPermutation::load_unchecked(&order_path)?,
            num_nodes,
            dataset_dir: orc_dir.clone(),
            allowed_node_types: types.clone(),
            target: base.to_path_buf(),
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
    }
    step("node-properties", &mut summary);

    // label names: the function from name to id, and the front-coded list from id to name.
    let label_fn_path = suffixed(base, ".labels.vfunc");
    {
        use epserde::ser::Serialize;
        let mphf = swh_graph::compress::label_names::build_mphf(labels_path.clone(), num_labels)?;
        let mut file = BufWriter::new(File::create(&label_fn_path)?);
        // SAFETY: serialising plain data of our own process; nothing secret can leak.
        unsafe { mphf.serialize(&mut file) }.context("Could not write the label function")?;
        file.flush()?;
        let mut fcl = swh_graph::front_coded_list::FrontCodedListBuilder::new(
            NonZeroUsize::new(4).expect("non-zero"),
        );
        let reader = BufReader::new(zstd::stream::read::Decoder::new(File::open(&labels_path)?)?);
        for line in reader.lines() {
            fcl.push(line?.into_bytes())
                .map_err(|e| anyhow::anyhow!("Could not add a label to the list: {e:?}"))?;
        }
        fcl.dump(suffixed(base, ".labels.fcl"))?;
    }
    step("label-names", &mut summary);

    // edge-labels, both directions, with their properties and ef
    let hasher = swh_graph::compress::label_names::LabelNameHasher::mmap(&label_fn_path)?;
    for (target, transposed) in [
        (base.to_path_buf(), false),
        (suffixed(base, "-transposed"), true),
    ] {
        let width = swh_graph::compress::bv::edge_labels::<SwhidFmphgo, OrcTableReader>(
            1,
            base.to_path_buf(),
            MappedPermutation::load_unchecked(&order_path)?,
            &hasher,
            num_nodes,
            orc_dir.clone(),
            &types,
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
                    "it.unimi.dsi.big.webgraph.labelling.BitStreamArcLabelledImmutableGraph".into(),
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
            num_nodes,
            &suffixed(&labelled, ".labels"),
            &suffixed(&labelled, ".labeloffsets"),
            &suffixed(&labelled, ".ef"),
        )?;
    }
    step("edge-labels", &mut summary);

    // stats
    {
        use swh_graph::graph::SwhGraph;
        use swh_graph::views::Transposed;
        let graph = swh_graph::graph::SwhBidirectionalGraph::new(base)?;
        let out = swh_graph::stats::outdegree(&graph);
        let inn = swh_graph::stats::outdegree(&Transposed(&graph));
        summary.arcs = graph.num_arcs();
        write_properties(
            &suffixed(base, ".stats"),
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
        )?;
    }
    step("stats", &mut summary);

    let dir = base.parent().context("graph basename has a folder")?;
    normalize_properties(dir)?;
    pad_empty_properties(dir)?;
    Ok(summary)
}
