//! Running the phases in order, each from its checkpointed inputs.
//!
//! A phase's inputs are fingerprinted (input files, the manifests of the phases it reads,
//! the options); when its checkpoint records the same fingerprints it is skipped, otherwise
//! it is redone, which changes its manifest and so redoes the phases after it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::checkpoint::{self, GraphFingerprint, PhaseManifest, Workdir};
use crate::config::Config;
use crate::shard::Shard;
use crate::{content, export, fetch, labels, origins, plan, reach, scan, table, walk};

/// The phases, in order.
pub const PHASES: [&str; 9] = [
    "plan", "scan", "match", "reach", "labels", "walk", "content", "fetch", "export",
];

/// The phases that resolve rows to content ids (plan to walk).
pub const RESOLUTION_PHASES: usize = 6;

/// Version of every phase's output format; bump to invalidate old checkpoints.
const VERSION: u32 = 1;

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Checkpoint handling failed (including: work directory of another graph).
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// The plan failed (bad metadata).
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// The scan failed.
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    /// A phase table could not be read or written.
    #[error(transparent)]
    Table(#[from] table::TableError),
    /// The label pass failed.
    #[error(transparent)]
    Labels(#[from] labels::LabelError),
    /// The graph could not be loaded.
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    /// The content join failed.
    #[error(transparent)]
    Content(#[from] content::ContentError),
    /// The fetch failed.
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    /// A phase was asked for before the phases it needs.
    #[error("phase {phase} needs phase {needs} to be done first (run `unearth {needs}` or `unearth run`)")]
    Missing {
        /// The phase asked for.
        phase: String,
        /// The phase it needs.
        needs: String,
    },
    /// An unknown phase name.
    #[error("unknown phase {0:?}; phases are {PHASES:?}")]
    UnknownPhase(String),
    /// I/O on a phase output.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// What happened to one phase.
#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    /// Phase name.
    pub phase: &'static str,
    /// False when the checkpoint was reused.
    pub ran: bool,
    /// Its manifest.
    pub manifest: PhaseManifest,
}

/// A run of the pipeline on one configuration.
pub struct Pipeline {
    config: Config,
    workdir: Workdir,
}

fn needs(wd: &Workdir, phase: &str, dep: &str) -> Result<PhaseManifest, PipelineError> {
    wd.manifest(dep)?.ok_or_else(|| PipelineError::Missing {
        phase: phase.to_string(),
        needs: dep.to_string(),
    })
}

impl Pipeline {
    /// Opens the work directory of `config`, refusing one made from another graph.
    pub fn open(config: Config) -> Result<Self, PipelineError> {
        let fp = GraphFingerprint::of(&config.graph)?;
        let workdir = Workdir::open(&config.workdir, fp)?;
        Ok(Self { config, workdir })
    }

    /// The work directory.
    pub fn workdir(&self) -> &Workdir {
        &self.workdir
    }

    /// Runs every phase in order. Without `orc` in the configuration the run is a resolution
    /// run: it stops after the walk, since the content phases need the export tables.
    pub fn run_all(&self) -> Result<Vec<PhaseOutcome>, PipelineError> {
        let last = if self.config.orc.is_some() {
            PHASES.len()
        } else {
            log::info!("no `orc` in the configuration: resolving only (plan to walk)");
            RESOLUTION_PHASES
        };
        PHASES[..last].iter().map(|p| self.run_phase(p)).collect()
    }

    /// The inputs fingerprint of `phase`, from its dependencies' manifests.
    fn inputs(&self, phase: &str) -> Result<BTreeMap<String, String>, PipelineError> {
        let mut inputs = BTreeMap::new();
        let deps: &[&str] = match phase {
            "plan" => {
                for f in plan::input_files(&self.config.metadata)? {
                    inputs.insert(
                        format!("metadata:{}", f.display()),
                        checkpoint::file_fingerprint(&f)?,
                    );
                }
                &[]
            }
            "scan" => &["plan"],
            "match" => &["plan", "scan"],
            "reach" => &["plan", "match"],
            "labels" => &["plan", "reach"],
            "walk" => &["plan", "match", "labels"],
            "content" => {
                let orc = self.orc()?;
                for (f, _) in content::all_files(orc) {
                    inputs.insert(
                        format!("orc:{}", f.display()),
                        checkpoint::file_fingerprint(&f)?,
                    );
                }
                &["walk"]
            }
            "fetch" => {
                let text = serde_json::to_string(&self.config.fetch).expect("serialises");
                inputs.insert("fetch_options".into(), text);
                &["content"]
            }
            "export" => {
                let text = serde_json::to_string(&self.config.export).expect("serialises");
                inputs.insert("export_options".into(), text);
                &["walk", "content", "fetch"]
            }
            other => return Err(PipelineError::UnknownPhase(other.to_string())),
        };
        for d in deps {
            inputs.insert(format!("phase:{d}"), needs(&self.workdir, phase, d)?.id());
        }
        if matches!(phase, "match" | "labels") {
            inputs.insert("options".into(), self.config.options_hash());
        }
        Ok(inputs)
    }

    /// Runs `phase` unless its checkpoint is current.
    pub fn run_phase(&self, phase: &str) -> Result<PhaseOutcome, PipelineError> {
        let phase: &'static str = PHASES
            .iter()
            .find(|p| **p == phase)
            .ok_or_else(|| PipelineError::UnknownPhase(phase.to_string()))?;
        if let Some(n) = self.config.shards.of(phase) {
            for index in 0..n {
                self.run_shard(phase, Shard { index, count: n })?;
            }
            return self.merge(phase);
        }
        let inputs = self.inputs(phase)?;
        if let Some(skipped) = self.current(phase, phase, &inputs)? {
            return Ok(skipped);
        }
        log::info!("phase {phase}: running");
        self.with_pool(|| self.execute(phase, inputs))
    }

    /// The outcome of checkpoint `name` of `phase` if it is current for `inputs`. A fetch that
    /// gave up on some blobs is never current: the next run retries them.
    fn current(
        &self,
        phase: &'static str,
        name: &str,
        inputs: &BTreeMap<String, String>,
    ) -> Result<Option<PhaseOutcome>, PipelineError> {
        let done = self
            .workdir
            .done(name, VERSION, inputs)?
            .filter(|m| phase != "fetch" || m.counts.get("failed").copied().unwrap_or(0) == 0);
        Ok(done.map(|manifest| {
            log::info!("{name}: checkpoint is current, skipped");
            PhaseOutcome {
                phase,
                ran: false,
                manifest,
            }
        }))
    }

    fn dir(&self, phase: &str) -> std::path::PathBuf {
        self.workdir.phase_dir(phase)
    }

    /// The export tables' folder, which the content phases need.
    fn orc(&self) -> Result<&Path, PipelineError> {
        Ok(self
            .config
            .orc
            .as_deref()
            .ok_or(content::ContentError::NoOrc)?)
    }

    /// The durable blob store, outside any phase folder so that a killed fetch keeps it.
    pub fn blob_dir(&self) -> std::path::PathBuf {
        self.workdir.root().join("blobs")
    }

    fn execute(
        &self,
        phase: &'static str,
        inputs: BTreeMap<String, String>,
    ) -> Result<PhaseOutcome, PipelineError> {
        let staging = self.workdir.begin(phase)?;
        let out = staging.path().to_owned();
        let base = &self.config.graph;
        let opts = &self.config.options;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        match phase {
            "plan" => {
                let c = plan::run(&self.config.metadata, &out)?;
                counts.insert("rows".into(), c.rows);
                counts.insert("rejected".into(), c.rejected);
                counts.insert("pairs".into(), c.pairs);
                counts.insert("paths".into(), c.paths);
            }
            "match" => {
                let p = plan::Plan::load(&self.dir("plan"))?;
                let cand_path = self.dir("scan").join("candidates.parquet");
                let cands = table::read(&cand_path)?;
                let nodes = table::u64s(&cands, &cand_path, "node")?;
                let ids = table::strings(&cands, &cand_path, "sha1_git")?;
                let candidates: Vec<(u64, String)> = nodes
                    .into_iter()
                    .zip(ids)
                    .map(|(n, i)| (n, i.unwrap_or_default()))
                    .collect();
                let mut pair_paths: Vec<Vec<&str>> = vec![Vec::new(); p.pairs.len()];
                for (&pair, &path) in p.row_pair.iter().zip(&p.row_path) {
                    if pair != u32::MAX {
                        pair_paths[pair as usize].push(p.paths[path as usize].as_str());
                    }
                }
                for v in &mut pair_paths {
                    v.sort_unstable();
                    v.dedup();
                }
                let graph = crate::graph::open(base)?;
                let matches = origins::match_all(
                    &graph,
                    &p.pairs,
                    &pair_paths,
                    &candidates,
                    &opts.url_templates,
                    opts.origin_search_budget,
                );
                for m in &matches {
                    *counts.entry(format!("pairs_{}", m.status)).or_default() += 1;
                    if m.budget_hit {
                        *counts.entry("budget_hit".into()).or_default() += 1;
                    }
                    if m.in_origin > 1 {
                        *counts
                            .entry("pairs_with_several_candidates_in_origin".into())
                            .or_default() += 1;
                    }
                }
                if let Some(n) = counts.get("budget_hit") {
                    log::warn!(
                        "origin match: {n} pairs hit the search budget ({}); raise options.origin_search_budget",
                        opts.origin_search_budget
                    );
                }
                table::write(&out.join("pairs.parquet"), origins::columns(&matches))?;
            }
            "reach" => {
                let p = plan::Plan::load(&self.dir("plan"))?;
                let pairs = walk::load_pairs(&self.dir("match").join("pairs.parquet"))?;
                let mut depth = vec![0usize; pairs.len()];
                for (&pair, &path) in p.row_pair.iter().zip(&p.row_path) {
                    if pair != u32::MAX {
                        let k = p.paths[path as usize].split('/').count();
                        depth[pair as usize] = depth[pair as usize].max(k);
                    }
                }
                let roots: Vec<(usize, usize)> = pairs
                    .iter()
                    .zip(&depth)
                    .filter_map(|(pr, &d)| pr.root.map(|r| (r as usize, d)))
                    .collect();
                let graph = crate::graph::open(base)?;
                let (bits, count) = reach::reachable(&graph, &roots);
                let path = out.join("dirs.bits");
                reach::write_bits(&path, &bits.into_words()).map_err(|source| {
                    PipelineError::Io {
                        path: path.display().to_string(),
                        source,
                    }
                })?;
                counts.insert("roots".into(), roots.len() as u64);
                counts.insert("directories".into(), count);
            }
            "walk" => {
                let p = plan::Plan::load(&self.dir("plan"))?;
                let pairs = walk::load_pairs(&self.dir("match").join("pairs.parquet"))?;
                let (entries, names) = read_entries(&self.dir("labels"))?;
                let results = walk::resolve(base, &p, &pairs, &names, &entries)?;
                let by_status = walk::write_resolved(&p, &pairs, &results, &out)?;
                for (s, n) in by_status {
                    counts.insert(format!("status_{s}"), n);
                }
                counts.insert("rows".into(), results.len() as u64);
            }
            "export" => {
                let join = content::load(&self.dir("content").join("join.parquet"))?;
                let store = fetch::BlobStores::open(&self.blob_dir())?;
                let by_status =
                    export::run(&self.dir("walk"), &join, &store, &self.config.export, &out)?;
                for (s, n) in by_status {
                    counts.insert(
                        if s == "files" {
                            s
                        } else {
                            format!("status_{s}")
                        },
                        n,
                    );
                }
                // The summary a dataset user looks for, beside the data.
                let summary = out.join("summary.json");
                let text = serde_json::to_string_pretty(&counts).expect("serialises");
                std::fs::write(&summary, text + "\n").map_err(|source| PipelineError::Io {
                    path: summary.display().to_string(),
                    source,
                })?;
            }
            _ => unreachable!("sharded phases run through run_shard and merge"),
        }
        let manifest = staging.commit(VERSION, inputs, counts)?;
        log::info!("phase {phase}: done in {:.2}s", manifest.seconds);
        Ok(PhaseOutcome {
            phase,
            ran: true,
            manifest,
        })
    }
}

/// Name of the checkpoint folder of one shard of a phase.
pub fn shard_name(phase: &str, shard: Shard) -> String {
    format!("{phase}-{}", shard.dir_name())
}

impl Pipeline {
    fn with_pool<T>(&self, f: impl FnOnce() -> T + Send) -> T
    where
        T: Send,
    {
        if self.config.options.threads > 0 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(self.config.options.threads)
                .build()
                .expect("thread pool");
            pool.install(f)
        } else {
            f()
        }
    }

    /// Inputs of one shard: the phase's, with the content join keeping only its own files.
    fn shard_inputs(
        &self,
        phase: &str,
        shard: Shard,
    ) -> Result<BTreeMap<String, String>, PipelineError> {
        let mut inputs = self.inputs(phase)?;
        if phase == "content" {
            let orc = self.orc()?;
            let files = content::all_files(orc);
            let mine: Vec<String> = files[shard.range(files.len())]
                .iter()
                .map(|(f, _)| format!("orc:{}", f.display()))
                .collect();
            inputs.retain(|k, _| !k.starts_with("orc:") || mine.contains(k));
        }
        inputs.insert("shard".into(), shard.to_string());
        Ok(inputs)
    }

    /// Runs one shard of a sharded phase unless its checkpoint is current.
    pub fn run_shard(&self, phase: &str, shard: Shard) -> Result<PhaseOutcome, PipelineError> {
        let phase: &'static str = PHASES
            .iter()
            .find(|p| **p == phase && self.config.shards.of(p).is_some())
            .ok_or_else(|| PipelineError::UnknownPhase(format!("{phase} (not sharded)")))?;
        let name = shard_name(phase, shard);
        let inputs = self.shard_inputs(phase, shard)?;
        if let Some(skipped) = self.current(phase, &name, &inputs)? {
            return Ok(skipped);
        }
        log::info!("phase {phase} shard {shard}: running");
        // Chunks of this shard done by an earlier, interrupted run are kept if they were made
        // from the same inputs; anything else there is discarded.
        let chunks_dir = self.workdir.root().join(format!(".{name}.chunks"));
        let fingerprint = serde_json::to_string(&inputs).expect("serialises");
        let stamp = chunks_dir.join("inputs.json");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(fingerprint.as_str()) {
            let _ = std::fs::remove_dir_all(&chunks_dir);
            std::fs::create_dir_all(&chunks_dir).map_err(|source| PipelineError::Io {
                path: chunks_dir.display().to_string(),
                source,
            })?;
            std::fs::write(&stamp, &fingerprint).map_err(|source| PipelineError::Io {
                path: stamp.display().to_string(),
                source,
            })?;
        }
        let staging = self.workdir.begin(&name)?;
        let out = staging.path().to_owned();
        let counts = self.with_pool(|| self.execute_shard(phase, shard, &out, &chunks_dir))?;
        let manifest = staging.commit(VERSION, inputs, counts)?;
        let _ = std::fs::remove_dir_all(&chunks_dir);
        Ok(PhaseOutcome {
            phase,
            ran: true,
            manifest,
        })
    }

    fn execute_shard(
        &self,
        phase: &str,
        shard: Shard,
        out: &Path,
        chunks_dir: &Path,
    ) -> Result<BTreeMap<String, u64>, PipelineError> {
        let base = &self.config.graph;
        let opts = &self.config.options;
        let per_chunk = self.config.shards.chunk_nodes.max(1);
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        match phase {
            "scan" => {
                let p = plan::Plan::load(&self.dir("plan"))?;
                let set = scan::PrefixSet::new(p.pairs.iter().map(|(_, prefix)| prefix.as_str()));
                let nodes = shard.range(crate::graph::num_nodes(base)?);
                let k = nodes.len().div_ceil(per_chunk).max(1);
                let (files, c) = chunked(chunks_dir, k, "candidates.parquet", |i, tmp| {
                    let lo = nodes.start + i * per_chunk;
                    let r = scan::run(base, &set, lo..(lo + per_chunk).min(nodes.end), tmp)?;
                    Ok(BTreeMap::from([
                        ("nodes".to_string(), r.nodes),
                        ("revisions".to_string(), r.revisions),
                        ("bucket_hits".to_string(), r.bucket_hits),
                        ("candidates".to_string(), r.candidates),
                        ("pass_micros".to_string(), r.pass_micros),
                    ]))
                })?;
                concat_files(&files, &out.join("candidates.parquet"))?;
                counts.extend(c);
                counts.insert("bucket_bits".into(), set.bucket_bits() as u64);
            }
            "labels" => {
                let p = plan::Plan::load(&self.dir("plan"))?;
                let mut comps: Vec<&str> = p.paths.iter().flat_map(|x| x.split('/')).collect();
                comps.sort_unstable();
                comps.dedup();
                let names = labels::name_ids(base, comps.iter().copied())?;
                let mut wanted: Vec<u64> = names.values().copied().collect();
                wanted.sort_unstable();
                wanted.dedup();
                let bits_path = self.dir("reach").join("dirs.bits");
                let nodes = shard.range(crate::graph::num_nodes(base)?);
                let bits =
                    reach::Bits::read_range(&bits_path, nodes.clone()).map_err(|source| {
                        PipelineError::Io {
                            path: bits_path.display().to_string(),
                            source,
                        }
                    })?;
                let k = nodes.len().div_ceil(per_chunk).max(1);
                let (files, c) = chunked(chunks_dir, k, "entries.parquet", |i, tmp| {
                    let lo = nodes.start + i * per_chunk;
                    let (entries, st) = labels::pass(
                        base,
                        &bits,
                        lo..(lo + per_chunk).min(nodes.end),
                        &wanted,
                        opts.label_merge_gap,
                        opts.label_dense_fraction,
                    )?;
                    write_entries(tmp, &entries)?;
                    Ok(BTreeMap::from([
                        ("directories".to_string(), st.dirs),
                        ("arcs".to_string(), st.arcs),
                        ("kept".to_string(), st.kept),
                        ("bytes_read".to_string(), st.bytes_read),
                        ("batches".to_string(), st.batches),
                        ("dense_chunks".to_string(), st.dense as u64),
                        ("pass_micros".to_string(), st.pass_micros),
                    ]))
                })?;
                concat_files(&files, &out.join("entries.parquet"))?;
                write_names(out, &names)?;
                counts.extend(c);
                counts.insert("components".into(), comps.len() as u64);
                counts.insert("components_in_graph".into(), names.len() as u64);
            }
            "content" => {
                let orc = self.orc()?;
                let needed = needed_contents(&self.dir("walk"))?;
                let files = content::all_files(orc);
                let mine = &files[shard.range(files.len())];
                // One chunk per ORC file.
                let (parts, c) = chunked(chunks_dir, mine.len(), "found.parquet", |i, tmp| {
                    let started = std::time::Instant::now();
                    let (found, rows) = content::scan(&mine[i..i + 1], &needed)?;
                    let mut ids: Vec<String> = found.keys().cloned().collect();
                    ids.sort();
                    content::write(&tmp.join("found.parquet"), &ids, &found)?;
                    Ok(BTreeMap::from([
                        ("orc_files".to_string(), 1),
                        ("orc_rows_read".to_string(), rows),
                        (
                            "pass_micros".to_string(),
                            started.elapsed().as_micros() as u64,
                        ),
                    ]))
                })?;
                let mut found = std::collections::HashMap::new();
                for f in &parts {
                    content::merge_into(&mut found, content::load(f)?);
                }
                let mut ids: Vec<String> = found.keys().cloned().collect();
                ids.sort();
                content::write(&out.join("found.parquet"), &ids, &found)?;
                counts.extend(c);
                counts.insert("found".into(), ids.len() as u64);
            }
            "fetch" => {
                let join = content::load(&self.dir("content").join("join.parquet"))?;
                let mut wants: Vec<fetch::Want> = join
                    .iter()
                    .filter(|(_, k)| k.status == "visible")
                    .filter_map(|(g, k)| {
                        let sha1 = hex::decode(k.sha1.as_deref()?).ok()?.try_into().ok()?;
                        let sha1_git = hex::decode(g).ok()?.try_into().ok()?;
                        Some(fetch::Want {
                            sha1,
                            sha1_git,
                            length: k.length?,
                        })
                    })
                    .filter(|w| shard.owns_sha1(&w.sha1))
                    .collect();
                wants.sort_by_key(|w| w.sha1);
                wants.dedup_by_key(|w| w.sha1);
                // Blobs any earlier run stored, under any sharding, are not asked again.
                let before = fetch::BlobStores::open(&self.blob_dir())?;
                let already = wants
                    .iter()
                    .filter(|w| before.get(&w.sha1).is_some())
                    .count();
                let todo: Vec<fetch::Want> = wants
                    .iter()
                    .filter(|w| before.get(&w.sha1).is_none())
                    .cloned()
                    .collect();
                drop(before);
                let mut store = fetch::PackStore::open(&self.blob_dir().join(shard.dir_name()))?;
                let (c, failed) = fetch::fetch_all(&todo, &mut store, &self.config.fetch)?;
                drop(store);
                let after = fetch::BlobStores::open(&self.blob_dir())?;
                let status = |w: &fetch::Want| {
                    after
                        .get(&w.sha1)
                        .map_or("fetch_failed", |r| r.1.status.name())
                };
                for w in &wants {
                    *counts.entry(format!("status_{}", status(w))).or_default() += 1;
                }
                write_fetched(out, &wants, status)?;
                counts.insert("wanted".into(), wants.len() as u64);
                counts.insert("already_stored".into(), already as u64);
                counts.insert("requests".into(), c.requests);
                counts.insert("retries".into(), c.retries);
                counts.insert("refused_bodies".into(), c.refused);
                counts.insert("fetched".into(), c.fetched);
                counts.insert("fetched_bytes".into(), c.fetched_bytes);
                counts.insert("failed".into(), failed.len() as u64);
                if !failed.is_empty() {
                    log::warn!(
                        "fetch shard {shard}: {} blobs failed every attempt; rerun to retry them",
                        failed.len()
                    );
                }
            }
            other => unreachable!("{other} is not sharded"),
        }
        Ok(counts)
    }

    /// Merges the shards of a sharded phase into the phase's output, unless current.
    pub fn merge(&self, phase: &str) -> Result<PhaseOutcome, PipelineError> {
        let phase: &'static str = PHASES
            .iter()
            .find(|p| **p == phase && self.config.shards.of(p).is_some())
            .ok_or_else(|| PipelineError::UnknownPhase(format!("{phase} (not sharded)")))?;
        let n = self.config.shards.of(phase).expect("sharded");
        let mut inputs = self.inputs(phase)?;
        let mut shards = Vec::new();
        for index in 0..n {
            let shard = Shard { index, count: n };
            let name = shard_name(phase, shard);
            let m = self
                .workdir
                .done(&name, VERSION, &self.shard_inputs(phase, shard)?)?
                .ok_or_else(|| PipelineError::Missing {
                    phase: format!("{phase} merge"),
                    needs: format!("{phase} --shard {shard}"),
                })?;
            inputs.insert(format!("shard:{index}"), m.id());
            shards.push((shard, m));
        }
        if let Some(skipped) = self.current(phase, phase, &inputs)? {
            return Ok(skipped);
        }
        let staging = self.workdir.begin(phase)?;
        let out = staging.path().to_owned();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (_, m) in &shards {
            for (k, v) in &m.counts {
                match k.as_str() {
                    // Per-run constants, not sums.
                    "bucket_bits" | "components" | "components_in_graph" => {
                        counts.insert(k.clone(), *v);
                    }
                    _ => *counts.entry(k.clone()).or_default() += v,
                }
            }
        }
        counts.insert("shards".into(), n as u64);
        let dirs: Vec<std::path::PathBuf> = shards
            .iter()
            .map(|(s, _)| self.dir(&shard_name(phase, *s)))
            .collect();
        match phase {
            "scan" => concat_parquet(&dirs, "candidates.parquet", &out)?,
            "labels" => {
                concat_parquet(&dirs, "entries.parquet", &out)?;
                std::fs::copy(dirs[0].join("names.parquet"), out.join("names.parquet")).map_err(
                    |source| PipelineError::Io {
                        path: out.display().to_string(),
                        source,
                    },
                )?;
            }
            "content" => {
                let needed = needed_contents(&self.dir("walk"))?;
                let mut found = std::collections::HashMap::new();
                for d in &dirs {
                    content::merge_into(&mut found, content::load(&d.join("found.parquet"))?);
                }
                found.retain(|_, k| k.status != "content_not_found");
                let by_status = content::write(&out.join("join.parquet"), &needed, &found)?;
                counts.retain(|k, _| k != "found");
                counts.insert("needed".into(), needed.len() as u64);
                for (s, n) in by_status {
                    counts.insert(format!("status_{s}"), n);
                }
            }
            "fetch" => concat_parquet(&dirs, "fetched.parquet", &out)?,
            _ => unreachable!("sharded"),
        }
        let manifest = staging.commit(VERSION, inputs, counts)?;
        Ok(PhaseOutcome {
            phase,
            ran: true,
            manifest,
        })
    }
}

/// Runs `work(i, tmp)` for each chunk `i` not already done in `dir`; `work` writes `file` into
/// `tmp` and returns its counts. A chunk becomes visible only when complete (rename of its
/// file, then of its counts). Returns every chunk's file, in order, and the summed counts,
/// with `chunks` and `chunks_reused`.
fn chunked(
    dir: &Path,
    n: usize,
    file: &str,
    mut work: impl FnMut(usize, &Path) -> Result<BTreeMap<String, u64>, PipelineError>,
) -> Result<(Vec<std::path::PathBuf>, BTreeMap<String, u64>), PipelineError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| PipelineError::Io { path: p, source }
    };
    let mut files = Vec::with_capacity(n);
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    let mut reused = 0;
    for i in 0..n {
        let data = dir.join(format!("chunk-{i:06}.{file}"));
        let done = dir.join(format!("chunk-{i:06}.json"));
        let counts: BTreeMap<String, u64> = match std::fs::read_to_string(&done)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            Some(c) if data.is_file() => {
                reused += 1;
                c
            }
            _ => {
                let tmp = dir.join(format!(".chunk-{i:06}.tmp"));
                let _ = std::fs::remove_dir_all(&tmp);
                std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
                let c = work(i, &tmp)?;
                std::fs::rename(tmp.join(file), &data).map_err(io(&data))?;
                let t = done.with_extension("json.tmp");
                std::fs::write(&t, serde_json::to_string(&c).expect("serialises"))
                    .map_err(io(&t))?;
                std::fs::rename(&t, &done).map_err(io(&done))?;
                let _ = std::fs::remove_dir_all(&tmp);
                c
            }
        };
        for (k, v) in counts {
            *total.entry(k).or_default() += v;
        }
        files.push(data);
    }
    total.insert("chunks".into(), n as u64);
    total.insert("chunks_reused".into(), reused);
    Ok((files, total))
}

/// Concatenates Parquet files (same schema) into one.
fn concat_files(files: &[std::path::PathBuf], out: &Path) -> Result<(), PipelineError> {
    let mut batches = Vec::new();
    for f in files {
        batches.push(table::read(f)?);
    }
    let schema = batches[0].schema();
    let all = arrow::compute::concat_batches(&schema, &batches).map_err(|e| table::TableError {
        path: out.display().to_string(),
        reason: e.to_string(),
    })?;
    let columns = schema
        .fields()
        .iter()
        .zip(all.columns())
        .map(|(f, c)| (f.name().as_str(), c.clone()))
        .collect();
    table::write(out, columns)?;
    Ok(())
}

fn write_fetched(
    out: &Path,
    wants: &[fetch::Want],
    status: impl Fn(&fetch::Want) -> &'static str,
) -> Result<(), PipelineError> {
    use arrow::array::{ArrayRef, StringArray};
    use std::sync::Arc;
    table::write(
        &out.join("fetched.parquet"),
        vec![
            (
                "sha1",
                Arc::new(StringArray::from_iter_values(
                    wants.iter().map(|w| crate::hashes::hex(&w.sha1)),
                )) as ArrayRef,
            ),
            (
                "status",
                Arc::new(StringArray::from_iter_values(wants.iter().map(status))),
            ),
        ],
    )?;
    Ok(())
}

/// Concatenates `name` from each shard folder, in shard order, into `out/name`.
fn concat_parquet(
    dirs: &[std::path::PathBuf],
    name: &str,
    out: &Path,
) -> Result<(), PipelineError> {
    let files: Vec<std::path::PathBuf> = dirs.iter().map(|d| d.join(name)).collect();
    concat_files(&files, &out.join(name))
}

/// The content ids the resolved rows need (rows resolved to a file or a link).
fn needed_contents(walk_dir: &Path) -> Result<Vec<String>, PipelineError> {
    let mut ids = Vec::new();
    let files = table::parquet_files(walk_dir)?;
    for f in files {
        let b = table::read(&f)?;
        let status = table::strings(&b, &f, "status")?;
        let sha = table::strings(&b, &f, "sha1_git")?;
        for (st, s) in status.into_iter().zip(sha) {
            if matches!(st.as_deref(), Some("ok" | "symlink")) {
                if let Some(s) = s {
                    ids.push(s);
                }
            }
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn write_entries(out: &Path, entries: &[labels::Entry]) -> Result<(), PipelineError> {
    use arrow::array::{ArrayRef, UInt64Array, UInt8Array};
    use std::sync::Arc;
    table::write(
        &out.join("entries.parquet"),
        vec![
            (
                "dir",
                Arc::new(UInt64Array::from_iter_values(entries.iter().map(|e| e.dir))) as ArrayRef,
            ),
            (
                "name_id",
                Arc::new(UInt64Array::from_iter_values(
                    entries.iter().map(|e| e.name_id),
                )),
            ),
            (
                "perm",
                Arc::new(UInt8Array::from_iter_values(entries.iter().map(|e| e.perm))),
            ),
            (
                "target",
                Arc::new(UInt64Array::from_iter_values(
                    entries.iter().map(|e| e.target),
                )),
            ),
        ],
    )?;
    Ok(())
}

fn write_names(out: &Path, names: &HashMap<String, u64>) -> Result<(), PipelineError> {
    use arrow::array::{ArrayRef, StringArray, UInt64Array};
    use std::sync::Arc;
    let mut list: Vec<(&String, &u64)> = names.iter().collect();
    list.sort();
    table::write(
        &out.join("names.parquet"),
        vec![
            (
                "name",
                Arc::new(StringArray::from_iter_values(
                    list.iter().map(|(n, _)| n.as_str()),
                )) as ArrayRef,
            ),
            (
                "name_id",
                Arc::new(UInt64Array::from_iter_values(list.iter().map(|(_, i)| **i))),
            ),
        ],
    )?;
    Ok(())
}

fn read_entries(dir: &Path) -> Result<(Vec<labels::Entry>, HashMap<String, u64>), PipelineError> {
    use arrow::array::AsArray;
    use arrow::datatypes::UInt8Type;
    let path = dir.join("entries.parquet");
    let b = table::read(&path)?;
    let dirs = table::u64s(&b, &path, "dir")?;
    let names_ = table::u64s(&b, &path, "name_id")?;
    let targets = table::u64s(&b, &path, "target")?;
    let perm_col = table::column(&b, &path, "perm")?;
    let perms = perm_col.as_primitive::<UInt8Type>();
    let entries = (0..b.num_rows())
        .map(|i| labels::Entry {
            dir: dirs[i],
            name_id: names_[i],
            perm: perms.value(i),
            target: targets[i],
        })
        .collect();
    let npath = dir.join("names.parquet");
    let nb = table::read(&npath)?;
    let names: HashMap<String, u64> = table::strings(&nb, &npath, "name")?
        .into_iter()
        .zip(table::u64s(&nb, &npath, "name_id")?)
        .map(|(n, i)| (n.unwrap_or_default(), i))
        .collect();
    Ok((entries, names))
}
