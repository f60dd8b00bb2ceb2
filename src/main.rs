//! The `unearth` command line: it parses, calls one library function per subcommand, prints
//! what it returns, and turns an error into a message and an exit code. All the work happens
//! in `unearth::*`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, FromArgMatches, Parser, Subcommand};

use unearth::archive::{self, BuildOptions, RepoSpec};
use unearth::config::Config;
use unearth::dataset::build::BuildCounts;
use unearth::model::{Counts, DatasetStatus, Phase, Shard, Status};
use unearth::phases::{export::ExportCounts, walk::WalkCounts};
use unearth::pipeline::{PhaseOutcome, Pipeline};

#[derive(Parser)]
#[command(
    name = "unearth",
    version,
    about = "Rebuild code datasets out of the Software Heritage archive"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build and inspect Software Heritage archives made from git repositories.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Run every phase in order, skipping those whose checkpoint is current.
    Run(RunArgs),
    #[command(flatten)]
    Phase(PhaseCommand),
    /// Run every phase in its own process on a fresh work directory and print wall time,
    /// peak memory, bytes read and the sequential passes' ratio to a raw read.
    Bench(BenchArgs),
    /// Submit the pipeline to Slurm: one job per phase, job arrays for sharded phases.
    #[command(subcommand)]
    Slurm(SlurmCommand),
    /// Per phase and shard: done, running, failed or missing, with counts and Slurm job ids.
    Status {
        /// The work directory.
        workdir: PathBuf,
    },
    /// Release-to-release pairs (codebase at one release, diff to the next) for the
    /// repositories of `[evolve]` or of --repos.
    Evolve {
        #[command(flatten)]
        config: ConfigArg,
        /// A file of repository slugs, one per line (`#` starts a comment), instead of the
        /// configuration's `[[evolve.repos]]`.
        #[arg(long)]
        repos: Option<PathBuf>,
        /// Run only slice K of N of the batches (a Slurm array task), e.g. 3/8; N must be
        /// `[evolve] slices`. The merge is left to `--merge`.
        #[arg(long, conflicts_with = "merge")]
        slice: Option<Shard>,
        /// Only join the finished batches into the output (all must be done).
        #[arg(long)]
        merge: bool,
    },
    /// Fetch, verify and decode a dataset published as Software Heritage ids (The Stack v2's
    /// `blob_id`), and write it as a Stack-style dataset; no graph needed.
    Hydrate {
        #[command(flatten)]
        config: ConfigArg,
        /// Run only this phase of the hydration (content, fetch, export or dataset), as a
        /// Slurm job does; the phases before it must be done.
        #[arg(long, value_enum)]
        phase: Option<Phase>,
        /// With --phase fetch or dataset: run only shard I of N, e.g. 3/8 (N must be
        /// `[shards] fetch` or `[shards] dataset`).
        #[arg(long, requires = "phase", conflicts_with = "merge")]
        shard: Option<Shard>,
        /// With --phase fetch or dataset: merge the shards (all must be done).
        #[arg(long, requires = "phase")]
        merge: bool,
        /// Fetch again the blobs recorded as missing or corrupt.
        #[arg(long)]
        retry_missing: bool,
    },
    /// Re-resolve a random sample of rows by random access and compare.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// Rows to check.
        #[arg(long, default_value_t = 1000)]
        sample: usize,
        /// Seed of the sample.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Args)]
struct ConfigArg {
    /// The run's TOML configuration (see configs/).
    #[arg(long)]
    config: PathBuf,
    /// Override a configuration value for this command: KEY=VALUE, KEY dotted
    /// (`fetch.endpoint=http://127.0.0.1:9000`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

impl ConfigArg {
    /// The configuration with its overrides applied, checked.
    fn load(&self) -> Result<Config> {
        Ok(Config::load_with(&self.config, &self.overrides)?)
    }
}

#[derive(Args)]
struct BenchArgs {
    /// An archive's TOML configuration; repeat it to benchmark several sizes and fit the
    /// cost model.
    #[arg(long = "config", value_name = "FILE")]
    configs: Vec<PathBuf>,
    /// Figures saved by an earlier benchmark (`<workdir>.bench/figures.json`), to report and
    /// fit with the others without running again. Repeatable.
    #[arg(long = "figures", value_name = "FILE")]
    figures: Vec<PathBuf>,
    /// Folder for the report (`report.md`), every archive's figures and the pictures.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Leave the page cache warm (by default it is emptied of the inputs before each phase).
    #[arg(long)]
    warm: bool,
    /// Rows resolved one at a time by random access for the per-row baseline (0: none).
    #[arg(long, default_value_t = 1000)]
    random_rows: usize,
    /// Override a configuration value for this benchmark: KEY=VALUE, KEY dotted
    /// (`fetch.endpoint=http://127.0.0.1:9000`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Stop after this phase.
    #[arg(long, value_enum)]
    until: Option<Phase>,
    /// Fetch again the blobs recorded as missing or corrupt.
    #[arg(long)]
    retry_missing: bool,
}

#[derive(Args)]
struct PhaseArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Run only shard I of N of a sharded phase (scan, labels, content, fetch, dataset), e.g.
    /// 3/8.
    #[arg(long, conflicts_with = "merge")]
    shard: Option<Shard>,
    /// Merge the shards of a sharded phase (all must be done).
    #[arg(long)]
    merge: bool,
    /// Fetch again the blobs recorded as missing or corrupt (fetch).
    #[arg(long)]
    retry_missing: bool,
}

/// One subcommand per phase (`unearth scan --config F`), made from [`Phase::ALL`].
struct PhaseCommand {
    phase: Phase,
    args: PhaseArgs,
}

impl FromArgMatches for PhaseCommand {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let (name, sub) = m
            .subcommand()
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::MissingSubcommand))?;
        let phase = Phase::from_name(name)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        Ok(Self {
            phase,
            args: PhaseArgs::from_arg_matches(sub)?,
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Subcommand for PhaseCommand {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        Phase::ALL.into_iter().fold(cmd, |cmd, p| {
            cmd.subcommand(PhaseArgs::augment_args(
                clap::Command::new(p.name()).about(p.about()),
            ))
        })
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        Phase::from_name(name).is_some()
    }
}

#[derive(Subcommand)]
enum SlurmCommand {
    /// Write the sbatch scripts into WORKDIR/slurm and submit them, chained with afterok.
    Submit {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the scripts and sbatch commands instead of submitting.
        #[arg(long)]
        dry_run: bool,
        /// Submit `unearth evolve` instead of the pipeline: an array of `[evolve] slices`
        /// tasks and a merge job (one job when slices = 1).
        #[arg(long)]
        evolve: bool,
        /// With --evolve: the file of repository slugs the jobs read.
        #[arg(long, requires = "evolve")]
        repos: Option<PathBuf>,
        /// Submit `unearth hydrate` instead of the pipeline: its content, fetch (an array of
        /// `[shards] fetch` tasks and a merge), export and dataset (an array of `[shards]
        /// dataset` tasks and a merge) jobs.
        #[arg(long, conflicts_with = "evolve")]
        hydrate: bool,
    },
}

#[derive(Subcommand)]
enum ArchiveCommand {
    /// Build an archive (ORC tables, compressed graph, blob store) from git repositories.
    Build {
        /// Output folder: new, empty, or an archive of the same repositories (then updated).
        #[arg(long)]
        out: PathBuf,
        /// A visit: URL=PATH[@VISIT_TIME], VISIT_TIME as 2024-05-01, 2024-05-01T12:00:00Z or
        /// Unix seconds. Repeat for several; a URL given twice is two visits of one origin.
        #[arg(long = "repo", required = true)]
        repos: Vec<String>,
        /// Blobs larger than this many bytes go to skipped_content, as in SWH.
        #[arg(long, default_value_t = archive::DEFAULT_MAX_CONTENT_SIZE)]
        max_content_size: u64,
        /// Rows per ORC file before a table rolls over to its next file.
        #[arg(long, default_value_t = 1_000_000)]
        rows_per_file: u64,
    },
    /// Generate the demo repositories and metadata, and build their archive (no-op when done).
    Demo {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate a synthetic archive of a chosen size (benchmarks, memory measurements).
    Synth {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        size: archive::synth::SynthOptions,
    },
    /// Build Software Heritage's digestmap (sha1_git -> sha1, the `swh-digestmap` format)
    /// from the `content` tables of an ORC export, for `digestmap = "DIR"` in a configuration.
    Digestmap {
        /// The export's ORC folder (with `content/*.orc`).
        #[arg(long)]
        orc: PathBuf,
        /// Output folder; must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print what an archive holds, loading its graph the way every phase does.
    Info {
        /// The archive folder.
        dir: PathBuf,
    },
}

/// Prints the outcome of each phase (stderr) and, for the last resolving or exporting one,
/// the rows per status and where the output is (stdout).
fn report(out: &mut impl Write, outcomes: &[PhaseOutcome], p: &Pipeline) -> Result<()> {
    for o in outcomes {
        let what = if o.ran {
            "done"
        } else {
            "skipped, checkpoint current"
        };
        eprintln!("{:<7} {what} ({:.2}s)", o.phase, o.manifest.seconds);
    }
    let Some(last) = outcomes
        .iter()
        .rev()
        .find(|o| matches!(o.phase, Phase::Export | Phase::Walk))
    else {
        return Ok(());
    };
    let statuses: Vec<(&'static str, u64)> = if last.phase == Phase::Export {
        let c = ExportCounts::from_map(&last.manifest.counts);
        c.status.iter().map(|(s, n)| (s.as_str(), n)).collect()
    } else {
        let c = WalkCounts::from_map(&last.manifest.counts);
        c.status.iter().map(|(s, n)| (s.as_str(), n)).collect()
    };
    writeln!(out, "rows: {}", statuses.iter().map(|s| s.1).sum::<u64>())?;
    for (status, n) in statuses {
        writeln!(out, "  {status}: {n}")?;
    }
    let what = if last.phase == Phase::Export {
        "export"
    } else {
        "resolved"
    };
    let dir = p.workdir().phase_dir(last.phase.name());
    writeln!(out, "{what}: {}", dir.display())?;
    if let Some(d) = outcomes.iter().find(|o| o.phase == Phase::Dataset) {
        let c = BuildCounts::from_map(&d.manifest.counts);
        writeln!(
            out,
            "dataset: {} ({} rows kept, {} languages, {} files)",
            cfg_dataset_dir(p.config(), &p.workdir().phase_dir(d.phase.name())).display(),
            c.status.get(DatasetStatus::Kept),
            c.languages,
            c.files
        )?;
    }
    Ok(())
}

fn info(out: &mut impl Write, dir: &Path) -> Result<()> {
    let manifest = archive::Manifest::read(dir)
        .with_context(|| format!("{} has no readable {}", dir.display(), archive::MANIFEST))?;
    let layout = archive::ArchiveDir::new(dir);
    let graph = unearth::graph::open(&layout.graph())?;
    let s = unearth::graph::summarize(&graph);
    writeln!(out, "archive {}", dir.display())?;
    writeln!(out, "  graph: {} nodes, {} arcs", s.nodes, s.arcs)?;
    for (ty, n) in &s.nodes_per_type {
        writeln!(out, "    {ty}: {n}")?;
    }
    writeln!(out, "  origins ({}):", s.origins.len())?;
    const SHOWN: usize = 20;
    for url in s.origins.iter().take(SHOWN) {
        let visits: Vec<String> = manifest
            .visits
            .iter()
            .filter(|v| &v.url == url)
            .map(|v| {
                let snp = v.snapshot.get(..12).unwrap_or(&v.snapshot);
                format!("visit {} snapshot {snp} ({})", v.visit, v.status)
            })
            .collect();
        writeln!(out, "    {url}: {}", visits.join("; "))?;
    }
    if s.origins.len() > SHOWN {
        writeln!(out, "    ... and {} more", s.origins.len() - SHOWN)?;
    }
    writeln!(out, "  tables:")?;
    for (t, rows) in &manifest.tables {
        writeln!(out, "    {t}: {rows} rows")?;
    }
    writeln!(
        out,
        "  blobs: {} stored ({} bytes) in {}, {} skipped (too large)",
        manifest.stored_blobs,
        manifest.stored_blob_bytes,
        layout.contents().display(),
        manifest.skipped_blobs
    )?;
    let missing: usize = manifest.visits.iter().map(|v| v.missing.len()).sum();
    if missing > 0 {
        writeln!(
            out,
            "  missing objects (referenced, not archived): {missing}"
        )?;
    }
    let metadata = dir.join("metadata");
    if metadata.exists() {
        writeln!(out, "  metadata: {}", metadata.display())?;
    }
    let report = dir.join(archive::synth::REPORT);
    if report.exists() {
        writeln!(out, "  synthetic world: {}", report.display())?;
    }
    Ok(())
}

fn archive_command(out: &mut impl Write, cmd: ArchiveCommand) -> Result<()> {
    let started = std::time::Instant::now();
    match cmd {
        ArchiveCommand::Build {
            out: dir,
            repos,
            max_content_size,
            rows_per_file,
        } => {
            let repos = repos
                .iter()
                .map(|r| RepoSpec::parse(r))
                .collect::<Result<Vec<_>, _>>()?;
            let opts = BuildOptions {
                repos,
                max_content_size,
                rows_per_file,
            };
            let outcome = archive::build(&dir, &opts, "")?;
            let m = &outcome.manifest;
            if outcome.built {
                eprintln!(
                    "built {} in {:.1}s: {} nodes, {} arcs, {} blobs",
                    dir.display(),
                    started.elapsed().as_secs_f64(),
                    m.nodes,
                    m.arcs,
                    m.stored_blobs
                );
            } else {
                eprintln!("{} already holds this archive, up to date", dir.display());
            }
            info(out, &dir)
        }
        ArchiveCommand::Demo { out: dir } => {
            let outcome = archive::demo::build_demo(&dir)?;
            if outcome.built {
                let secs = started.elapsed().as_secs_f64();
                eprintln!("built the demo archive in {secs:.1}s");
            } else {
                eprintln!("{} already holds the demo archive", dir.display());
            }
            info(out, &dir)
        }
        ArchiveCommand::Info { dir } => info(out, &dir),
        ArchiveCommand::Digestmap { orc, out: dir } => {
            let n = unearth::digestmap::build_from_orc(&orc, &dir)?;
            let secs = started.elapsed().as_secs_f64();
            writeln!(
                out,
                "digestmap of {n} contents in {} ({secs:.1}s)",
                dir.display()
            )?;
            Ok(())
        }
        ArchiveCommand::Synth { out: dir, size } => {
            if archive::synth::build_synth(&dir, &size)?.built {
                let secs = started.elapsed().as_secs_f64();
                eprintln!("built {} in {secs:.1}s", dir.display());
            } else {
                eprintln!("{} already holds this synthetic archive", dir.display());
            }
            info(out, &dir)
        }
    }
}

fn phase_command(out: &mut impl Write, cmd: PhaseCommand) -> Result<()> {
    let a = cmd.args;
    let p = Pipeline::open(a.config.load()?)?.retry_missing(a.retry_missing);
    let outcome = match (a.shard, a.merge) {
        (Some(shard), _) => p.run_shard(cmd.phase, shard)?,
        (None, true) => p.merge(cmd.phase)?,
        (None, false) => p.run_phase(cmd.phase)?,
    };
    report(out, &[outcome], &p)
}

/// Submits the pipeline, or with `evolve` (holding the `--repos` file, if any) `unearth
/// evolve`.
fn slurm_submit(
    out: &mut impl Write,
    config: &ConfigArg,
    dry_run: bool,
    evolve: Option<Option<&Path>>,
    hydrate: bool,
) -> Result<()> {
    // The jobs read the file again: an override here would not reach them.
    if let Some(o) = config.overrides.first() {
        anyhow::bail!(
            "--set {o}: the Slurm jobs read {} themselves; write the value into it",
            config.config.display()
        );
    }
    let cfg = config.load()?;
    let config = &config.config;
    // Refuse a work directory of another graph before anything is queued (a dry run only
    // prints, and works before the graph is in place).
    let sub = match evolve {
        None if !hydrate => {
            if !dry_run {
                Pipeline::open(cfg.clone())?;
            }
            unearth::slurm::submit(&cfg, config, dry_run)?
        }
        None => {
            if !dry_run {
                unearth::pipeline::Pipeline::hydrate(cfg.clone())?;
            }
            let jobs = unearth::slurm::plan_hydrate_jobs(&cfg);
            unearth::slurm::submit_jobs(&cfg, config, &jobs, "jobs.json", dry_run)?
        }
        Some(repos) => {
            // Read now, so that a bad file fails here and not in every array task; passed
            // on absolute, as the jobs may start elsewhere.
            let repos = match repos {
                Some(r) => {
                    read_repos(r)?;
                    Some(std::fs::canonicalize(r)?)
                }
                None => {
                    unearth::evolve::repos_of(&cfg, &[])?;
                    None
                }
            };
            if !dry_run {
                let fingerprint = unearth::pipeline::GraphFingerprint::of(&cfg.graph)?;
                unearth::pipeline::Workdir::open(&cfg.workdir, fingerprint)?;
            }
            let jobs = unearth::slurm::plan_evolve_jobs(&cfg, repos.as_deref());
            unearth::slurm::submit_jobs(&cfg, config, &jobs, "evolve-jobs.json", dry_run)?
        }
    };
    for (script, cmd) in sub.scripts.iter().zip(&sub.commands) {
        if dry_run {
            let text = std::fs::read_to_string(script)
                .with_context(|| format!("cannot read {}", script.display()))?;
            writeln!(out, "# {}\n{text}", script.display())?;
        }
        writeln!(out, "{cmd}")?;
    }
    if !dry_run {
        for (name, id) in &sub.jobs {
            writeln!(out, "submitted {name}: job {id}")?;
        }
    }
    Ok(())
}

fn status(out: &mut impl Write, workdir: &Path) -> Result<()> {
    anyhow::ensure!(
        unearth::pipeline::Workdir::is_workdir(workdir),
        "{} is not a work directory of unearth's (no graph.json)",
        workdir.display()
    );
    for l in unearth::status::status(workdir) {
        let counts: Vec<String> = l
            .counts
            .iter()
            .filter(|(k, _)| !k.ends_with("micros"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let job = l.job.map(|j| format!(" [job {j}]")).unwrap_or_default();
        writeln!(
            out,
            "{:<24} {:<10}{job} {}",
            l.what,
            l.state,
            counts.join(" ")
        )?;
    }
    Ok(())
}

fn bench(out: &mut impl Write, a: BenchArgs) -> Result<()> {
    anyhow::ensure!(
        !a.configs.is_empty() || !a.figures.is_empty(),
        "give an archive to benchmark (--config FILE) or saved figures (--figures FILE)"
    );
    let opts = unearth::bench::Options {
        cold: !a.warm,
        random_rows: a.random_rows,
    };
    let mut archives = Vec::new();
    let mut hydrations = String::new();
    for f in &a.figures {
        archives.push(unearth::bench::ArchiveFigures::load(f)?);
    }
    for c in &a.configs {
        let cfg = Config::load_with(c, &a.overrides)?;
        // Named after the configuration's folder, made unique among this report's archives.
        let base = unearth::bench::name_of(c);
        let mut name = base.clone();
        for i in 2.. {
            if !archives
                .iter()
                .any(|x: &unearth::bench::ArchiveFigures| x.name == name)
            {
                break;
            }
            name = format!("{base}-{i}");
        }
        // A configuration without a graph is a hydration's: measured as one.
        if cfg.graph.as_os_str().is_empty() {
            let h = unearth::bench::hydrate::bench(&cfg, &name)?;
            if let Some(dir) = &a.out {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                h.save(&dir.join(format!("{}-hydrate.json", h.name)))?;
            }
            hydrations.push_str(&unearth::bench::hydrate::report(&h));
            continue;
        }
        let figures = unearth::bench::bench(&cfg, &name, &opts)?;
        if let Some(dir) = &a.out {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            figures.save(&dir.join(format!("{}.json", figures.name)))?;
        }
        archives.push(figures);
    }
    let mut text = if archives.is_empty() {
        String::new()
    } else {
        unearth::bench::report(&archives, a.out.as_deref())?
    };
    text.push_str(&hydrations);
    write!(out, "{text}")?;
    if let Some(path) = a.report {
        std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn verify(out: &mut impl Write, config: &ConfigArg, sample: usize, seed: u64) -> Result<()> {
    let cfg = config.load()?;
    let p = Pipeline::open(cfg.clone())?;
    p.check_done(Phase::Walk)?;
    let dir = p.workdir().phase_dir(Phase::Walk.name());
    let graph = unearth::graph::open_labelled(&cfg.graph)?;
    let r = unearth::verify::verify(&graph, &dir, &cfg.options.url_templates, sample, seed)?;
    let disagreed = r.disagreements.len();
    writeln!(
        out,
        "sampled {}, agreed {}, disagreed {disagreed}",
        r.sampled, r.agreed
    )?;
    for (status, n) in &r.unchecked {
        writeln!(out, "  not re-checked: {n} rows with status {status}")?;
    }
    for d in &r.disagreements {
        writeln!(out, "  DISAGREE {d}")?;
    }
    anyhow::ensure!(disagreed == 0, "{disagreed} rows disagree");
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Archive(cmd) => archive_command(&mut out, cmd),
        Command::Run(a) => {
            let p = Pipeline::open(a.config.load()?)?.retry_missing(a.retry_missing);
            let outcomes = match a.until {
                Some(last) => p.run_until(last)?,
                None => p.run_all()?,
            };
            report(&mut out, &outcomes, &p)
        }
        Command::Phase(cmd) => phase_command(&mut out, cmd),
        Command::Slurm(SlurmCommand::Submit {
            config,
            dry_run,
            evolve,
            repos,
            hydrate,
        }) => {
            let evolve = evolve.then_some(repos.as_deref());
            slurm_submit(&mut out, &config, dry_run, evolve, hydrate)
        }
        Command::Status { workdir } => status(&mut out, &workdir),
        Command::Hydrate {
            config,
            phase,
            shard,
            merge,
            retry_missing,
        } => {
            use unearth::pipeline::hydrate::Part;
            let part = match (shard, merge) {
                (Some(s), _) => Part::Shard(s),
                (None, true) => Part::Merge,
                (None, false) => Part::Whole,
            };
            match phase {
                Some(phase) => hydrate_phase(&mut out, &config, phase, part, retry_missing),
                None => hydrate(&mut out, &config, retry_missing),
            }
        }
        Command::Bench(a) => bench(&mut out, a),
        Command::Verify {
            config,
            sample,
            seed,
        } => verify(&mut out, &config, sample, seed),
        Command::Evolve {
            config,
            repos,
            slice,
            merge,
        } => {
            let mode = match (slice, merge) {
                (Some(s), _) => unearth::evolve::Mode::Slice(s),
                (None, true) => unearth::evolve::Mode::Merge,
                (None, false) => unearth::evolve::Mode::All,
            };
            evolve(&mut out, &config, repos.as_deref(), mode)
        }
    }
}

fn hydrate_phase(
    out: &mut impl Write,
    config: &ConfigArg,
    phase: Phase,
    part: unearth::pipeline::hydrate::Part,
    retry_missing: bool,
) -> Result<()> {
    let cfg = config.load()?;
    let o = unearth::pipeline::hydrate::hydrate_phase(cfg.clone(), phase, part, retry_missing)?;
    let verb = if o.ran { "done" } else { "current, skipped" };
    writeln!(
        out,
        "{}: {verb} ({:.2}s)",
        o.manifest.phase, o.manifest.seconds
    )?;
    if phase == Phase::Dataset {
        writeln!(
            out,
            "dataset: {}",
            cfg_dataset_dir(&cfg, &cfg.workdir.join("dataset")).display()
        )?;
    }
    Ok(())
}

fn hydrate(out: &mut impl Write, config: &ConfigArg, retry_missing: bool) -> Result<()> {
    let cfg = config.load()?;
    let c = unearth::pipeline::hydrate::hydrate(cfg.clone(), retry_missing)?;
    writeln!(out, "rows: {}", c.rows)?;
    for (status, n) in c.status.iter().filter(|(_, n)| *n > 0) {
        writeln!(out, "  {status}: {n}")?;
    }
    writeln!(
        out,
        "blobs: {} distinct, {} fetched now, {} failed (a rerun retries them)",
        c.blobs, c.fetch.fetched, c.fetch.failed
    )?;
    writeln!(
        out,
        "dataset: {} ({} rows kept, {} languages, {} files)",
        cfg_dataset_dir(&cfg, &cfg.workdir.join("dataset")).display(),
        c.dataset.status.get(DatasetStatus::Kept),
        c.dataset.languages,
        c.dataset.files
    )?;
    Ok(())
}

/// Where the dataset is for the user: `[dataset] out` when set, else `built`.
fn cfg_dataset_dir(cfg: &Config, built: &Path) -> PathBuf {
    cfg.dataset
        .out
        .clone()
        .unwrap_or_else(|| built.to_path_buf())
}

fn evolve(
    out: &mut impl Write,
    config: &ConfigArg,
    repos: Option<&Path>,
    mode: unearth::evolve::Mode,
) -> Result<()> {
    let cfg = config.load()?;
    let repos = match repos {
        Some(path) => read_repos(path)?,
        None => Vec::new(),
    };
    let o = unearth::evolve::run(&cfg, &repos, mode)?;
    let c = &o.counts;
    let batches = format!(
        "{} of {} batches run, {} found done",
        o.batches_run, o.batches, o.batches_done_before
    );
    match &o.out {
        Some(dir) if o.up_to_date => writeln!(
            out,
            "evolve: {} is current ({} pairs from {} of {} repositories); nothing to do",
            dir.display(),
            c.pairs,
            c.repos_found,
            c.repos
        )?,
        Some(dir) => writeln!(
            out,
            "evolve: {} pairs from {} of {} repositories (diffs: {} directories decoded, {} \
             skipped by identity; {batches}) in {}",
            c.pairs,
            c.repos_found,
            c.repos,
            c.diff_dirs_decoded,
            c.diff_dirs_skipped,
            dir.display()
        )?,
        None => writeln!(
            out,
            "evolve: slice done, {} pairs from {} repositories ({batches}); merge with \
             `unearth evolve --merge`",
            c.pairs, c.repos
        )?,
    }
    Ok(())
}

/// The slugs of a `--repos` file.
fn read_repos(path: &Path) -> Result<Vec<unearth::config::EvolveRepo>> {
    Ok(unearth::evolve::read_repos(path)?)
}

/// Whether the error is a closed standard output (`unearth ... | head`): not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
