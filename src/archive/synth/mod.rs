//! Synthetic archives of realistic shape, for benchmarks and for checking answers at scale.
//!
//! The generator writes the export's ORC tables straight (no git repositories), then
//! compresses them with the same swh-graph pipeline as `archive build`. Its world:
//!
//! - **families**: an upstream history (commits changing a few files each, subtrees shared
//!   between commits as in git; side branches merged back or left open; tags, most of them
//!   annotated) and forks branching off it with commits of their own;
//! - **heavy tails**: history lengths follow a Pareto law (most repositories have a handful of
//!   commits, a few have `--max-commits`, 10^5 and more in large archives), first trees a
//!   lognormal number of files in nested folders; names are Zipf-distributed; content sizes
//!   lognormal with a median of ~4 kB;
//! - **visits**: one to seven per origin, the last one before the end of the history (what
//!   comes after is not archived), each a snapshot of the branches and tags of the time;
//! - **slugs**: a few reused by a later, unrelated repository, a few renamed by case (both
//!   spellings visited), a few archived with `.git`.
//!
//! Rows are drawn from it ([`rows`]) with their expected answers, written to
//! `expected/answers.parquet` beside `metadata/`. The prefix length is chosen so that
//! archived revisions per prefix are about those of 7 hex digits in the full archive.
//!
//! Memory: the model keeps 40 bytes per commit, the ids written (16 bytes per node), and the
//! trees of the commits not archived yet; the rows and their answers are held until written.

pub mod build;
pub mod content;
pub mod family;
pub mod names;
pub mod rows;
pub mod tree;
pub mod world;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, StringArray, UInt32Array};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{existing_archive, ArchiveDir, ArchiveError, BuildOutcome, Manifest, Staging};
use build::{Builder, Sink, StoreBlobs};
use family::Play;
use names::{Names, Vocabulary};
use rows::{Expected, Row};
use world::{Shape, World};

/// The file of every visited slug, beside the configuration (its `[evolve] repos_file`).
pub const EVOLVE_REPOS: &str = "evolve-repos.txt";

/// Which blobs a synthetic archive stores under `objects/content/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Blobs {
    /// The blobs the rows' expected answers name (what `fetch` needs).
    Rows,
    /// Every archived blob.
    All,
    /// None.
    None,
}

/// Size and seed of a synthetic archive (the options of `unearth archive synth`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct SynthOptions {
    /// Graph nodes to reach, about (families are added until the count is reached).
    #[arg(long, default_value_t = 200_000)]
    pub nodes: u64,
    /// Metadata rows.
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// Commits of the largest histories (default: nodes / 50, within 1,000..200,000; at most
    /// nodes / 4).
    #[arg(long)]
    pub max_commits: Option<u32>,
    /// Blobs to store.
    #[arg(long, value_enum, default_value_t = Blobs::Rows)]
    pub blobs: Blobs,
    /// Rows per metadata file.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows_per_part: u64,
    /// Seed of everything random.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl SynthOptions {
    /// At most a quarter of the nodes asked for: every commit makes a node or more, and
    /// the largest history is always played whole.
    fn max_commits(&self) -> u32 {
        let cap = (self.nodes / 4).clamp(2, u32::MAX as u64) as u32;
        self.max_commits
            .unwrap_or((self.nodes / 50).clamp(1000, 200_000) as u32)
            .clamp(2, cap.max(2))
    }
}

/// What a synthetic archive holds and how long each step took (`synth.json`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SynthReport {
    /// Families (upstream histories with their forks).
    pub families: u64,
    /// Families with the largest histories.
    pub giant_families: u64,
    /// Origins visited.
    pub origins: u64,
    /// Origins that are forks.
    pub forks: u64,
    /// Visits.
    pub visits: u64,
    /// Commits made, and archived.
    pub commits: u64,
    /// Commits archived.
    pub revisions: u64,
    /// Archived merge commits.
    pub merges: u64,
    /// Annotated tags.
    pub releases: u64,
    /// Longest history (commits of one family).
    pub longest_history: u64,
    /// Origins whose URL another, later repository reused.
    pub reused_slugs: u64,
    /// Origins renamed by case (both spellings visited).
    pub recased_origins: u64,
    /// Origins archived with `.git`.
    pub dotgit_origins: u64,
    /// Nodes written, by kind.
    pub nodes: std::collections::BTreeMap<String, u64>,
    /// Hex digits of the rows' prefixes.
    pub prefix_len: u64,
    /// Archived revisions per distinct prefix.
    pub revisions_per_prefix: f64,
    /// Pairs drawn.
    pub pairs: u64,
    /// Rows written.
    pub rows: u64,
    /// Rows by expected status.
    pub expected: std::collections::BTreeMap<String, u64>,
    /// Seconds per step: `generate`, `rows`, `orc`, `compress`, `total`.
    pub seconds: std::collections::BTreeMap<String, f64>,
}

/// The report's file name.
pub const REPORT: &str = "synth.json";
/// Where the expected answers go, relative to the archive.
pub const ANSWERS: &str = "expected/answers.parquet";

/// Generates the world, its rows and answers, and builds the archive into `out`.
pub fn build_synth(out: &Path, o: &SynthOptions) -> Result<BuildOutcome, ArchiveError> {
    let note = format!("unearth synth v3 {o:?}");
    match existing_archive(out)? {
        Some(m) if m.note == note => {
            return Ok(BuildOutcome {
                manifest: m,
                built: false,
            })
        }
        Some(_) => {
            return Err(ArchiveError::Output {
                path: out.to_owned(),
                reason: "it holds another archive; choose a new or empty folder".into(),
            })
        }
        None => {}
    }
    super::tables::check_orc_writer()?;
    let staging = Staging::new(out)?;
    let root = staging.path().to_owned();
    let manifest = generate(&root, o, &note)?;
    staging.commit()?;
    Ok(BuildOutcome {
        manifest,
        built: true,
    })
}

/// Plays families until the archive has `o.nodes` nodes, writing what their visits archive.
fn play_families(
    o: &SynthOptions,
    sink: &mut Sink,
    rng: &mut ChaCha8Rng,
    vocab: &Vocabulary,
    names: &mut Names,
) -> Result<World, ArchiveError> {
    let mut world = World::new();
    let shape = Shape {
        max_commits: o.max_commits(),
    };
    let giants = (o.nodes as f64 / 2e7).round().max(1.0) as usize;
    let mut pl = dsi_progress_logger::progress_logger!(
        item_name = "node",
        display_memory = true,
        expected_updates = Some(o.nodes as usize)
    );
    use dsi_progress_logger::ProgressLog;
    pl.start("Generating the synthetic archive");
    while sink.total() < o.nodes {
        let f = world.specs.len() as u32;
        let spec = world.plan_family(rng, vocab, &shape, (f as usize) < giants);
        let before = sink.total();
        let model = {
            let mut b = Builder::new(sink, &mut world, f);
            Play::new(&spec, vocab, names, &mut b).run()?;
            b.finish()
        };
        world.add_family(model);
        pl.update_with_count((sink.total() - before) as usize);
    }
    pl.done();
    Ok(world)
}

/// Draws the metadata rows and their expected answers, writes both, and stores the blobs
/// the answers name (with `--blobs rows`); returns the pairs and answers drawn.
fn make_rows(
    o: &SynthOptions,
    root: &Path,
    sink: &mut Sink,
    rng: &mut ChaCha8Rng,
    (world, vocab, names): (&World, &Vocabulary, &mut Names),
    index: &rows::PrefixIndex,
    len: usize,
) -> Result<(Vec<rows::Pair>, Vec<rows::Expected>), ArchiveError> {
    // Small trees give fewer rows than asked: draw more pairs until the count is reached.
    let (mut pairs, mut drawn) = (Vec::new(), Vec::new());
    for round in 0..8u64 {
        let missing = o.rows.saturating_sub(drawn.len() as u64);
        if missing == 0 {
            break;
        }
        let more = rows::plan_pairs(world, vocab, rng, missing, len);
        let offset = pairs.len() as u32;
        let mut got = rows::draw_rows(world, vocab, names, &more, o.seed ^ round)?;
        got.iter_mut().for_each(|r| r.pair += offset);
        pairs.extend(more);
        drawn.extend(got);
    }
    drawn.truncate(o.rows as usize);
    let (mut answers, row_blobs) = rows::expect(world, vocab, names, index, &pairs, &drawn)?;
    rows::shuffle(rng, &mut drawn, &mut answers);
    write_rows(root, &drawn, &answers, o.rows_per_part)?;
    if o.blobs == Blobs::Rows {
        let mut ids: Vec<_> = row_blobs.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let data = content::bytes(&row_blobs[&id]);
            let h = crate::model::hashes::ContentHashes::of(&data);
            sink.writer.store_blob(&h, &data)?;
        }
    }
    Ok((pairs, answers))
}

fn generate(root: &Path, o: &SynthOptions, note: &str) -> Result<Manifest, ArchiveError> {
    let started = Instant::now();
    let mut report = SynthReport::default();
    let layout = ArchiveDir::new(root);
    let tables = super::tables::Tables::create(&layout.orc(), 1_000_000)?;
    let blobs = super::writer::BlobStore::create(&layout.contents())?;
    let writer = super::writer::ArchiveWriter::new(tables, blobs, super::DEFAULT_MAX_CONTENT_SIZE);
    let store = if o.blobs == Blobs::All {
        StoreBlobs::All
    } else {
        StoreBlobs::None
    };
    let mut sink = Sink::new(writer, store);
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let vocab = Vocabulary::new(&mut rng);
    let mut names = Names::default();
    let world = play_families(o, &mut sink, &mut rng, &vocab, &mut names)?;
    report
        .seconds
        .insert("generate".into(), started.elapsed().as_secs_f64());

    let rows_started = Instant::now();
    let revisions: u64 = world
        .families
        .iter()
        .map(|f| f.archived.iter().filter(|&&a| a).count() as u64)
        .sum();
    let len = rows::prefix_len(revisions);
    let index = rows::PrefixIndex::new(&world, len);
    let (pairs, answers) = make_rows(
        o,
        root,
        &mut sink,
        &mut rng,
        (&world, &vocab, &mut names),
        &index,
        len,
    )?;
    report
        .seconds
        .insert("rows".into(), rows_started.elapsed().as_secs_f64());

    describe(
        &mut report,
        &world,
        &sink,
        revisions,
        len,
        index.prefixes(),
        &pairs,
        &answers,
    );
    let orc_started = Instant::now();
    let counts = sink.writer.counts.clone();
    let table_rows = sink
        .writer
        .tables
        .finish(&layout.orc())?
        .into_iter()
        .collect();
    report
        .seconds
        .insert("orc".into(), orc_started.elapsed().as_secs_f64());
    super::digestmap_into(root)?;
    let compress_started = Instant::now();
    let summary = super::compress_into(root)?;
    report
        .seconds
        .insert("compress".into(), compress_started.elapsed().as_secs_f64());
    report
        .seconds
        .insert("total".into(), started.elapsed().as_secs_f64());

    // Every slug visited, for `unearth evolve` (and its benchmark): most have no tag, as in
    // the archive.
    let slugs: std::collections::BTreeSet<&str> = world
        .origins
        .iter()
        .filter(|o| !o.visits.is_empty())
        .map(|o| o.slug.as_str())
        .collect();
    let repos = root.join(EVOLVE_REPOS);
    let text: String = slugs.iter().map(|s| format!("{s}\n")).collect();
    std::fs::write(&repos, text).map_err(|e| ArchiveError::io(&repos, e))?;
    let config = root.join(super::demo::CONFIG);
    std::fs::write(
        &config,
        format!(
            "graph = \"graph/graph\"\nmetadata = \"metadata\"\nworkdir = \"work\"\norc = \"orc\"\n\
             digestmap = \"digestmap\"\n\n\
             [fetch]\nstore = \"file://objects/content\"\n\n\
             [evolve]\nrepos_file = \"{EVOLVE_REPOS}\"\n"
        ),
    )
    .map_err(|e| ArchiveError::io(&config, e))?;
    let path = root.join(REPORT);
    let text =
        serde_json::to_string_pretty(&report).map_err(|e| ArchiveError::Other(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| ArchiveError::io(&path, e))?;
    let manifest = Manifest {
        format_version: super::FORMAT_VERSION,
        max_content_size: super::DEFAULT_MAX_CONTENT_SIZE,
        visits: Vec::new(),
        tables: table_rows,
        nodes: summary.nodes,
        arcs: summary.arcs,
        stored_blobs: counts.contents,
        stored_blob_bytes: counts.content_bytes,
        skipped_blobs: counts.skipped_contents,
        note: note.to_string(),
        inputs: None,
    };
    super::write_manifest(root, &manifest)?;
    Ok(manifest)
}

#[allow(clippy::too_many_arguments)]
fn describe(
    report: &mut SynthReport,
    world: &World,
    sink: &Sink,
    revisions: u64,
    len: usize,
    prefixes: usize,
    pairs: &[rows::Pair],
    answers: &[Expected],
) {
    let visited = world.origins.iter().filter(|o| !o.visits.is_empty());
    report.families = world.families.len() as u64;
    report.origins = visited.clone().count() as u64;
    report.forks = world.specs.iter().map(|s| s.forks.len() as u64).sum();
    report.visits = visited.clone().map(|o| o.visits.len() as u64).sum();
    report.commits = world.families.iter().map(|f| f.ids.len() as u64).sum();
    report.revisions = revisions;
    report.merges = world
        .families
        .iter()
        .map(|f| {
            f.parents
                .iter()
                .zip(&f.archived)
                .filter(|(p, &a)| a && p[1] != family::NONE)
                .count() as u64
        })
        .sum();
    report.releases = world.families.iter().map(|f| f.releases.len() as u64).sum();
    report.longest_history = world
        .families
        .iter()
        .map(|f| f.ids.len() as u64)
        .max()
        .unwrap_or(0);
    report.giant_families = world
        .specs
        .iter()
        .filter(|s| s.ticks as u64 >= report.longest_history.max(2) / 2)
        .count() as u64;
    report.reused_slugs = visited
        .clone()
        .filter(|o| o.visits.windows(2).any(|w| w[0].family != w[1].family))
        .count() as u64;
    report.recased_origins = world.specs.iter().filter(|s| s.upstream.len() > 1).count() as u64;
    report.dotgit_origins = visited.clone().filter(|o| o.url.ends_with(".git")).count() as u64;
    for (k, n) in ["cnt", "dir", "rev", "rel", "snp", "ori"]
        .iter()
        .zip(sink.nodes)
    {
        report.nodes.insert(k.to_string(), n);
    }
    report.prefix_len = len as u64;
    report.revisions_per_prefix = revisions as f64 / prefixes.max(1) as f64;
    report.pairs = pairs.len() as u64;
    report.rows = answers.len() as u64;
    for a in answers {
        *report.expected.entry(a.status.to_string()).or_default() += 1;
    }
}

/// Writes the rows as `metadata/part-NNNNN.parquet` and their answers as
/// `expected/answers.parquet`, in the same order.
fn write_rows(
    root: &Path,
    rows: &[Row],
    answers: &[Expected],
    per_part: u64,
) -> Result<(), ArchiveError> {
    let table_err = |e: crate::table::TableError| ArchiveError::Other(e.to_string());
    let meta = root.join("metadata");
    let exp = root.join("expected");
    for d in [&meta, &exp] {
        std::fs::create_dir_all(d).map_err(|e| ArchiveError::io(d, e))?;
    }
    let per_part = per_part.max(1) as usize;
    for (i, part) in rows.chunks(per_part).enumerate() {
        crate::table::write(
            &meta.join(format!("part-{i:05}.parquet")),
            vec![
                ("repo", strings(part.iter().map(|r| Some(r.repo.as_str())))),
                (
                    "commit_id",
                    strings(part.iter().map(|r| Some(r.commit.as_str()))),
                ),
                (
                    "rel_path",
                    strings(part.iter().map(|r| Some(r.path.as_str()))),
                ),
            ],
        )
        .map_err(table_err)?;
    }
    let schema_of = |cols: &[(&str, ArrayRef)]| {
        Arc::new(arrow::datatypes::Schema::new(
            cols.iter()
                .map(|(n, a)| arrow::datatypes::Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ))
    };
    let path = root.join(ANSWERS);
    let mut writer: Option<crate::table::Writer> = None;
    for (part, ans) in rows.chunks(per_part).zip(answers.chunks(per_part)) {
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("repo", strings(part.iter().map(|r| Some(r.repo.as_str())))),
            (
                "commit_id",
                strings(part.iter().map(|r| Some(r.commit.as_str()))),
            ),
            (
                "rel_path",
                strings(part.iter().map(|r| Some(r.path.as_str()))),
            ),
            (
                "expected_status",
                strings(ans.iter().map(|a| Some(a.status))),
            ),
            (
                "expected_revision",
                strings(ans.iter().map(|a| a.revision.as_deref())),
            ),
            (
                "expected_sha1_git",
                strings(ans.iter().map(|a| a.sha1_git.as_deref())),
            ),
            (
                "expected_origin_url",
                strings(ans.iter().map(|a| a.origin_url.as_deref())),
            ),
            (
                "expected_snapshot",
                strings(ans.iter().map(|a| a.snapshot.as_deref())),
            ),
            (
                "expected_candidates",
                Arc::new(UInt32Array::from_iter(ans.iter().map(|a| a.candidates))),
            ),
            (
                "expected_candidates_with_path",
                Arc::new(UInt32Array::from_iter(
                    ans.iter().map(|a| a.candidates_with_path),
                )),
            ),
        ];
        if writer.is_none() {
            writer =
                Some(crate::table::Writer::create(&path, schema_of(&cols)).map_err(table_err)?);
        }
        let Some(w) = writer.as_mut() else { continue };
        let batch = arrow::array::RecordBatch::try_new(
            schema_of(&cols),
            cols.into_iter().map(|c| c.1).collect(),
        )
        .map_err(|e| ArchiveError::Other(e.to_string()))?;
        w.write(&batch).map_err(table_err)?;
    }
    if let Some(w) = writer {
        w.close().map_err(table_err)?;
    }
    Ok(())
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}
