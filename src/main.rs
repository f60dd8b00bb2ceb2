//! The `unearth` command line. Each subcommand parses its arguments and calls the library;
//! all the work happens in `unearth::*`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use unearth::archive::{self, BuildOptions, RepoSpec};

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
    Run(ConfigArg),
    /// Phase 1: read and validate the metadata, group rows by (repo, prefix).
    Plan(PhaseArg),
    /// Phase 2: one sequential scan of revision nodes for the requested prefixes.
    Scan(PhaseArg),
    /// Phase 3: decide which candidate revision belongs to each repository's origin.
    Match(PhaseArg),
    /// Phase 4: mark the directories the paths need, below each winning revision.
    Reach(PhaseArg),
    /// Phase 5: one ordered pass over the labels file, keeping requested names.
    Labels(PhaseArg),
    /// Phase 6: walk every row down its path and write the resolved output.
    Walk(PhaseArg),
    /// Phase 7: sha1_git -> sha1 from the ORC content tables.
    Content(PhaseArg),
    /// Phase 8: fetch the blobs (S3 or a folder), verify them, store them durably.
    Fetch(PhaseArg),
    /// Phase 9: write the Parquet dataset with contents, language and quality columns.
    Export(PhaseArg),
    /// Run every phase in its own process on a fresh work directory and print wall time,
    /// peak memory, bytes read and the sequential passes' ratio to a raw read.
    Bench {
        #[command(flatten)]
        config: ConfigArg,
        /// Also write the report (Markdown) to this file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Serve the configured file:// store from s3s-fs on loopback behind a proxy adding
        /// this many milliseconds per request, and fetch through S3.
        #[arg(long)]
        s3_latency_ms: Option<u64>,
    },
    /// Submit the pipeline to Slurm: one job per phase, job arrays for sharded phases.
    #[command(subcommand)]
    Slurm(SlurmCommand),
    /// Per phase and shard: done, running, failed or missing, with counts and Slurm job ids.
    Status {
        /// The work directory.
        workdir: PathBuf,
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

#[derive(Subcommand)]
enum SlurmCommand {
    /// Write the sbatch scripts into WORKDIR/slurm and submit them, chained with afterok.
    Submit {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the scripts and sbatch commands instead of submitting.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
struct PhaseArg {
    #[command(flatten)]
    config: ConfigArg,
    /// Run only shard I of N of a sharded phase (scan, labels, content, fetch), e.g. 3/8.
    #[arg(long, conflicts_with = "merge")]
    shard: Option<unearth::shard::Shard>,
    /// Merge the shards of a sharded phase (all must be done).
    #[arg(long)]
    merge: bool,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The run's TOML configuration (see configs/).
    #[arg(long)]
    config: PathBuf,
}

fn pipeline(arg: &ConfigArg) -> Result<unearth::pipeline::Pipeline> {
    let config = unearth::config::Config::load(&arg.config)?;
    Ok(unearth::pipeline::Pipeline::open(config)?)
}

fn report(outcomes: &[unearth::pipeline::PhaseOutcome], p: &unearth::pipeline::Pipeline) {
    for o in outcomes {
        eprintln!(
            "{:<7} {} ({:.2}s)",
            o.phase,
            if o.ran {
                "done"
            } else {
                "skipped, checkpoint current"
            },
            o.manifest.seconds
        );
    }
    let last = outcomes
        .iter()
        .rev()
        .find(|o| matches!(o.phase, "export" | "walk"));
    if let Some(o) = last {
        let rows: u64 = o
            .manifest
            .counts
            .iter()
            .filter(|(k, _)| k.starts_with("status_"))
            .map(|(_, v)| v)
            .sum();
        println!("rows: {rows}");
        for (k, v) in &o.manifest.counts {
            if let Some(status) = k.strip_prefix("status_") {
                println!("  {status}: {v}");
            }
        }
        let what = if o.phase == "export" {
            "dataset"
        } else {
            "resolved"
        };
        println!("{what}: {}", p.workdir().phase_dir(o.phase).display());
    }
}

#[derive(Subcommand)]
enum ArchiveCommand {
    /// Build an archive (ORC tables, compressed graph, blob store) from git repositories.
    Build {
        /// Output folder; replaced atomically when the build succeeds.
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
    /// Print what an archive holds, loading its graph the way every phase does.
    Info {
        /// The archive folder.
        dir: PathBuf,
    },
}

fn info(dir: &std::path::Path) -> Result<()> {
    let manifest = archive::Manifest::read(dir)
        .with_context(|| format!("{} has no readable {}", dir.display(), archive::MANIFEST))?;
    let layout = archive::ArchiveDir::new(dir);
    let graph = unearth::graph::open(&layout.graph())?;
    let s = unearth::graph::summarize(&graph);
    println!("archive {}", dir.display());
    println!("  graph: {} nodes, {} arcs", s.nodes, s.arcs);
    for (ty, n) in &s.nodes_per_type {
        println!("    {ty}: {n}");
    }
    println!("  origins ({}):", s.origins.len());
    for url in &s.origins {
        let visits: Vec<String> = manifest
            .visits
            .iter()
            .filter(|v| &v.url == url)
            .map(|v| {
                format!(
                    "visit {} snapshot {} ({})",
                    v.visit,
                    &v.snapshot[..12],
                    v.status
                )
            })
            .collect();
        println!("    {url}: {}", visits.join("; "));
    }
    println!("  tables:");
    for (t, rows) in &manifest.tables {
        println!("    {t}: {rows} rows");
    }
    println!(
        "  blobs: {} stored ({} bytes) in {}, {} skipped (too large)",
        manifest.stored_blobs,
        manifest.stored_blob_bytes,
        layout.contents().display(),
        manifest.skipped_blobs
    );
    let missing: usize = manifest.visits.iter().map(|v| v.missing.len()).sum();
    if missing > 0 {
        println!("  missing objects (referenced, not archived): {missing}");
    }
    let metadata = dir.join("metadata").join("part_0.parquet");
    if metadata.exists() {
        println!("  metadata: {}", metadata.display());
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Archive(ArchiveCommand::Build {
            out,
            repos,
            max_content_size,
            rows_per_file,
        }) => {
            let repos = repos
                .iter()
                .map(|r| RepoSpec::parse(r))
                .collect::<Result<Vec<_>, _>>()?;
            let started = std::time::Instant::now();
            let opts = BuildOptions {
                repos,
                max_content_size,
                rows_per_file,
            };
            let m = archive::build(&out, &opts, "")?;
            eprintln!(
                "built {} in {:.1}s: {} nodes, {} arcs, {} blobs",
                out.display(),
                started.elapsed().as_secs_f64(),
                m.nodes,
                m.arcs,
                m.stored_blobs
            );
            info(&out)
        }
        Command::Archive(ArchiveCommand::Demo { out }) => {
            let started = std::time::Instant::now();
            let outcome = archive::demo::build_demo(&out)?;
            if outcome.built {
                eprintln!(
                    "built the demo archive in {:.1}s",
                    started.elapsed().as_secs_f64()
                );
            } else {
                eprintln!("{} already holds the demo archive", out.display());
            }
            info(&out)
        }
        Command::Archive(ArchiveCommand::Info { dir }) => info(&dir),
        Command::Archive(ArchiveCommand::Synth { out, size }) => {
            let started = std::time::Instant::now();
            archive::synth::build_synth(&out, &size)?;
            eprintln!(
                "built {} in {:.1}s",
                out.display(),
                started.elapsed().as_secs_f64()
            );
            info(&out)
        }
        Command::Run(arg) => {
            let p = pipeline(&arg)?;
            let outcomes = p.run_all()?;
            report(&outcomes, &p);
            Ok(())
        }
        Command::Plan(arg)
        | Command::Scan(arg)
        | Command::Match(arg)
        | Command::Reach(arg)
        | Command::Labels(arg)
        | Command::Walk(arg)
        | Command::Content(arg)
        | Command::Fetch(arg)
        | Command::Export(arg) => {
            let phase = std::env::args().nth(1).unwrap_or_default();
            let p = pipeline(&arg.config)?;
            let outcome = match (arg.shard, arg.merge) {
                (Some(shard), _) => p.run_shard(&phase, shard)?,
                (None, true) => p.merge(&phase)?,
                (None, false) => p.run_phase(&phase)?,
            };
            report(&[outcome], &p);
            Ok(())
        }
        Command::Slurm(SlurmCommand::Submit { config, dry_run }) => {
            let cfg = unearth::config::Config::load(&config.config)?;
            // Refuse a work directory of another graph before anything is queued (a dry run
            // only prints, and works before the graph is in place).
            if !dry_run {
                unearth::pipeline::Pipeline::open(cfg.clone())?;
            }
            let sub = unearth::slurm::submit(&cfg, &config.config, dry_run)?;
            for (script, cmd) in sub.scripts.iter().zip(&sub.commands) {
                if dry_run {
                    println!(
                        "# {}\n{}",
                        script.display(),
                        std::fs::read_to_string(script)?
                    );
                }
                println!("{cmd}");
            }
            if !dry_run {
                for (name, id) in &sub.jobs {
                    println!("submitted {name}: job {id}");
                }
            }
            Ok(())
        }
        Command::Status { workdir } => {
            anyhow::ensure!(
                workdir.is_dir(),
                "{} is not a work directory",
                workdir.display()
            );
            for l in unearth::status::status(&workdir) {
                let counts: Vec<String> = l
                    .counts
                    .iter()
                    .filter(|(k, _)| !k.ends_with("micros"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let job = l.job.map(|j| format!(" [job {j}]")).unwrap_or_default();
                println!("{:<24} {:<10}{job} {}", l.what, l.state, counts.join(" "));
            }
            Ok(())
        }
        Command::Bench {
            config,
            report,
            s3_latency_ms,
        } => {
            let cfg = unearth::config::Config::load(&config.config)?;
            let (baselines, figures) = unearth::bench::bench(&cfg, s3_latency_ms)?;
            let mut text = unearth::bench::report(&cfg, &baselines, &figures);
            if let Some(ms) = s3_latency_ms {
                text.push_str(&format!(
                    "(the store was served by s3s-fs on loopback, through a proxy adding {ms} ms \
                     per request; fetch.concurrency = {})\n",
                    cfg.fetch.concurrency
                ));
            }
            print!("{text}");
            if let Some(path) = report {
                std::fs::write(&path, &text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(())
        }
        Command::Verify {
            config,
            sample,
            seed,
        } => {
            let cfg = unearth::config::Config::load(&config.config)?;
            let p = unearth::pipeline::Pipeline::open(cfg.clone())?;
            let dir = p.workdir().phase_dir("walk");
            anyhow::ensure!(
                dir.is_dir(),
                "no resolved output in {}: run the pipeline first",
                dir.display()
            );
            let graph = unearth::graph::open(&cfg.graph)?;
            let r =
                unearth::verify::verify(&graph, &dir, &cfg.options.url_templates, sample, seed)?;
            println!(
                "sampled {}, agreed {}, disagreed {}",
                r.sampled,
                r.agreed,
                r.disagreements.len()
            );
            for (status, n) in &r.unchecked {
                println!("  not re-checked: {n} rows with status {status}");
            }
            for d in &r.disagreements {
                println!("  DISAGREE {d}");
            }
            anyhow::ensure!(
                r.disagreements.is_empty(),
                "{} rows disagree",
                r.disagreements.len()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
