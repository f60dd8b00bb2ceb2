//! Running the phases in order, each from its checkpointed inputs.
//!
//! The pipeline knows nothing of what a phase does: it is generic over [`Step`]. For each
//! phase it fingerprints the inputs (the step's own, plus the manifests of the phases listed
//! in [`Phase::deps`]), skips the phase when its checkpoint is current for them, and otherwise
//! runs it in a staging folder that becomes the checkpoint when it succeeds. A sharded phase
//! runs as shards (each its own checkpoint, split into chunks) and a merge.
//!
//! A phase run alone (`unearth walk`, what every Slurm job runs) first checks that every
//! phase upstream of it is current for today's inputs, and refuses, naming the stale one,
//! when one is not: it never computes from outdated files.

pub mod checkpoint;
pub mod hydrate;

use std::path::PathBuf;

use crate::config::Config;
use crate::model::{Counts, Flow, Phase, Shard};
use crate::phases::{self, Chunks, Context, Inputs, PhaseError, Step};

pub use checkpoint::{CheckpointError, Currency, GraphFingerprint, PhaseManifest, Workdir};

/// Version of every phase's output format; bump to invalidate old checkpoints.
const VERSION: u32 = 3;

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Checkpoint handling failed (including: work directory of another graph).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A phase failed.
    #[error("phase {phase}")]
    Phase {
        /// The phase.
        phase: Phase,
        /// What failed.
        #[source]
        source: PhaseError,
    },
    /// A phase was asked for before the phases it needs.
    #[error("phase {phase} needs {needs} to be done first (run `unearth {run}` or `unearth run`)")]
    Missing {
        /// The phase asked for.
        phase: String,
        /// What it needs.
        needs: String,
        /// The command that makes it.
        run: String,
    },
    /// A phase run alone whose upstream checkpoint is not current.
    #[error(
        "phase {phase} cannot run: phase {stale} is stale ({why}); run `unearth run`, or \
         `unearth {stale}` and the phases after it"
    )]
    Stale {
        /// The phase asked for.
        phase: Phase,
        /// The upstream phase that is not current.
        stale: Phase,
        /// Why.
        why: String,
    },
    /// A phase whose output is asked for before it ran.
    #[error("phase {0} has not run yet (run `unearth {0}` or `unearth run`)")]
    NotDone(Phase),
    /// A phase whose output is asked for, and which is stale itself.
    #[error("the output of phase {phase} is stale ({why}); run `unearth run`")]
    NotCurrent {
        /// The phase.
        phase: Phase,
        /// Why.
        why: String,
    },
    /// `--shard` or `--merge` on a phase that does not shard.
    #[error("phase {0} is not sharded: it runs as one job")]
    NotSharded(Phase),
    /// A shard outside the phase's configured count.
    #[error("shard {shard} of phase {phase}: the configuration has {count} shards for it")]
    BadShard {
        /// The phase.
        phase: Phase,
        /// The shard asked for.
        shard: Shard,
        /// Shards configured.
        count: usize,
    },
    /// A phase that `unearth hydrate` does not have.
    #[error("phase {0} is not part of `unearth hydrate` (its phases are content, fetch, export and dataset)")]
    NotInFlow(Phase),
    /// A content phase without the export tables.
    #[error(
        "phase {0} needs `orc = \"<folder of the export tables>\"` or \
         `digestmap = \"<folder of SWH's digestmap>\"` in the configuration"
    )]
    NoOrc(Phase),
}

/// What happened to one phase.
#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    /// The phase.
    pub phase: Phase,
    /// False when the checkpoint was reused.
    pub ran: bool,
    /// Its manifest.
    pub manifest: PhaseManifest,
}

/// Name of the checkpoint folder of one shard of a phase.
pub fn shard_name(phase: Phase, shard: Shard) -> String {
    format!("{phase}-{}", shard.dir_name())
}

/// Runs `$body` with `$S` the [`Step`] type of `$phase` in `$flow`: the one place phases are
/// mapped to their modules. A phase outside the flow is an error.
macro_rules! with_step {
    ($flow:expr, $phase:expr, $S:ident => $body:expr) => {
        match ($flow, $phase) {
            (Flow::Hydrate, Phase::Content) => {
                type $S = crate::hydrate::ids::Step;
                $body
            }
            (Flow::Hydrate, Phase::Fetch) => {
                type $S = crate::hydrate::steps::FetchStep;
                $body
            }
            (Flow::Hydrate, Phase::Export) => {
                type $S = crate::hydrate::export::Step;
                $body
            }
            (Flow::Hydrate, Phase::Dataset) => {
                type $S = crate::hydrate::steps::DatasetStep;
                $body
            }
            (Flow::Hydrate, phase) => Err(PipelineError::NotInFlow(phase)),
            (Flow::Run, phase) => with_run_step!(phase, $S => $body),
        }
    };
}

/// [`with_step!`] for the phases of a run.
macro_rules! with_run_step {
    ($phase:expr, $S:ident => $body:expr) => {
        match $phase {
            Phase::Plan => {
                type $S = phases::plan::Step;
                $body
            }
            Phase::Names => {
                type $S = phases::names::Step;
                $body
            }
            Phase::Scan => {
                type $S = phases::scan::Step;
                $body
            }
            Phase::Match => {
                type $S = phases::matching::Step;
                $body
            }
            Phase::Reach => {
                type $S = phases::reach::Step;
                $body
            }
            Phase::Labels => {
                type $S = phases::labels::Step;
                $body
            }
            Phase::Walk => {
                type $S = phases::walk::Step;
                $body
            }
            Phase::Content => {
                type $S = phases::content::Step;
                $body
            }
            Phase::Fetch => {
                type $S = phases::fetch::Step;
                $body
            }
            Phase::Export => {
                type $S = phases::export::Step;
                $body
            }
            Phase::Dataset => {
                type $S = phases::dataset::Step;
                $body
            }
        }
    };
}

/// A run of the pipeline on one configuration.
pub struct Pipeline {
    config: Config,
    workdir: Workdir,
    flow: Flow,
    retry_missing: bool,
}

impl Pipeline {
    /// Opens the work directory of `config`, refusing one made from another graph and a
    /// folder that is not a work directory.
    pub fn open(config: Config) -> Result<Self, PipelineError> {
        let fp = GraphFingerprint::of(&config.graph)?;
        let workdir = Workdir::open(&config.workdir, fp)?;
        Ok(Self {
            config,
            workdir,
            flow: Flow::Run,
            retry_missing: false,
        })
    }

    /// Opens the work directory of `config` for `unearth hydrate` (no graph), refusing one of
    /// `unearth run` and a folder that is not a work directory.
    pub fn hydrate(config: Config) -> Result<Self, PipelineError> {
        let workdir = Workdir::open(&config.workdir, GraphFingerprint::hydrate())?;
        Ok(Self {
            config,
            workdir,
            flow: Flow::Hydrate,
            retry_missing: false,
        })
    }

    /// The job this pipeline runs.
    pub fn flow(&self) -> Flow {
        self.flow
    }

    /// The phases this pipeline runs, in order.
    pub fn phases(&self) -> Vec<Phase> {
        match self.flow {
            Flow::Run => self.config.phases(),
            Flow::Hydrate => Flow::Hydrate.phases().to_vec(),
        }
    }

    /// Fetch again the blobs recorded as missing or corrupt (`--retry-missing`).
    pub fn retry_missing(mut self, yes: bool) -> Self {
        self.retry_missing = yes;
        self
    }

    /// The work directory.
    pub fn workdir(&self) -> &Workdir {
        &self.workdir
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs every phase of the configuration in order (see [`Config::phases`]).
    pub fn run_all(&self) -> Result<Vec<PhaseOutcome>, PipelineError> {
        let phases = self.phases();
        if self.flow == Flow::Run && phases.len() < Phase::ALL.len() {
            log::info!(
                "no `orc` or `digestmap` in the configuration: resolving only (plan to walk)"
            );
        }
        phases.into_iter().map(|p| self.step(p)).collect()
    }

    /// Runs the phases of the configuration up to `last`, in order.
    pub fn run_until(&self, last: Phase) -> Result<Vec<PhaseOutcome>, PipelineError> {
        if self.flow == Flow::Run && last.needs_orc() && !self.config.joins_contents() {
            return Err(PipelineError::NoOrc(last));
        }
        if !self.flow.phases().contains(&last) {
            return Err(PipelineError::NotInFlow(last));
        }
        self.flow
            .phases()
            .iter()
            .copied()
            .filter(|p| *p <= last)
            .map(|p| self.step(p))
            .collect()
    }

    /// Runs `phase` alone (all its shards and their merge), unless its checkpoint is current.
    /// Every phase upstream must be current.
    pub fn run_phase(&self, phase: Phase) -> Result<PhaseOutcome, PipelineError> {
        self.check_upstream(phase)?;
        self.step(phase)
    }

    /// Runs one shard of a sharded phase unless its checkpoint is current.
    pub fn run_shard(&self, phase: Phase, shard: Shard) -> Result<PhaseOutcome, PipelineError> {
        let count = self.shards(phase)?;
        if shard.count != count {
            return Err(PipelineError::BadShard {
                phase,
                shard,
                count,
            });
        }
        self.check_upstream(phase)?;
        with_step!(self.flow, phase, S => self.shard::<S>(shard))
    }

    /// Merges the shards of a sharded phase, unless current.
    pub fn merge(&self, phase: Phase) -> Result<PhaseOutcome, PipelineError> {
        self.shards(phase)?;
        self.check_upstream(phase)?;
        let outcome = with_step!(self.flow, phase, S => self.merge_step::<S>())?;
        self.publish(phase)?;
        Ok(outcome)
    }

    /// Whether every phase upstream of `phase` is current; the first that is not is named.
    pub fn check_upstream(&self, phase: Phase) -> Result<(), PipelineError> {
        if !self.flow.phases().contains(&phase) {
            return Err(PipelineError::NotInFlow(phase));
        }
        if self.flow == Flow::Run && phase.needs_orc() && !self.config.joins_contents() {
            return Err(PipelineError::NoOrc(phase));
        }
        self.check(phase, phase.upstream_in(self.flow))
    }

    /// Whether `phase` and every phase upstream of it are current (what reading its output
    /// needs).
    pub fn check_done(&self, phase: Phase) -> Result<(), PipelineError> {
        let mut all = phase.upstream_in(self.flow);
        all.push(phase);
        self.check(phase, all)
    }

    fn check(&self, phase: Phase, upstream: Vec<Phase>) -> Result<(), PipelineError> {
        for up in upstream {
            let currency = with_step!(self.flow, up, S => self.currency::<S>())?;
            match currency {
                Currency::Current(_) => {}
                Currency::Missing if up == phase => return Err(PipelineError::NotDone(phase)),
                Currency::Missing => return Err(missing(phase.name(), up.name(), up.name())),
                Currency::Stale(why) if up == phase => {
                    return Err(PipelineError::NotCurrent { phase, why })
                }
                Currency::Stale(why) => {
                    return Err(PipelineError::Stale {
                        phase,
                        stale: up,
                        why,
                    })
                }
            }
        }
        Ok(())
    }

    fn shards(&self, phase: Phase) -> Result<usize, PipelineError> {
        self.shards_of(phase)
            .ok_or(PipelineError::NotSharded(phase))
    }

    /// Shards of `phase` in this flow, or `None` when it runs as one job.
    pub fn shards_of(&self, phase: Phase) -> Option<usize> {
        phase.sharding_in(self.flow)?;
        self.config.shards.of(phase)
    }

    fn step(&self, phase: Phase) -> Result<PhaseOutcome, PipelineError> {
        let outcome = with_step!(self.flow, phase, S => self.whole::<S>())?;
        self.publish(phase)?;
        Ok(outcome)
    }

    /// After the dataset (whole, or its merge job), its copy at `[dataset] out`: published
    /// whether the phase ran or was current, as the copy at `out` may be new.
    fn publish(&self, phase: Phase) -> Result<(), PipelineError> {
        if let (Phase::Dataset, Some(out)) = (phase, &self.config.dataset.out) {
            let built = self.workdir.phase_dir(phase.name());
            crate::dataset::publish(&built, out).map_err(|e| PipelineError::Phase {
                phase,
                source: PhaseError::io(out, e),
            })?;
        }
        Ok(())
    }

    fn whole<S: Step>(&self) -> Result<PhaseOutcome, PipelineError> {
        match self.shards_of(S::PHASE) {
            Some(n) => {
                for index in 0..n {
                    self.shard::<S>(Shard { index, count: n })?;
                }
                self.merge_step::<S>()
            }
            None => self.single::<S>(),
        }
    }

    /// The inputs of `S` (or of one of its shards): its own, and its dependencies' manifests.
    fn inputs<S: Step>(&self, shard: Option<Shard>) -> Result<Inputs, PipelineError> {
        let phase = S::PHASE;
        let mut inputs = S::inputs(&self.config, shard.unwrap_or(Shard::ALL))
            .map_err(|source| PipelineError::Phase { phase, source })?;
        for d in phase.deps_in(self.flow) {
            let m = self
                .workdir
                .manifest(d.name())?
                .ok_or_else(|| missing(phase.name(), d.name(), d.name()))?;
            inputs.insert(format!("phase:{d}"), m.id());
        }
        if let Some(shard) = shard {
            inputs.insert("shard".into(), shard.to_string());
        }
        Ok(inputs)
    }

    /// The inputs of a sharded phase's merge (its own, and each current shard's manifest),
    /// with the shards' manifests; a shard that is not current is an error.
    fn merged_inputs<S: Step>(&self) -> Result<(Inputs, Vec<PhaseManifest>), PipelineError> {
        let phase = S::PHASE;
        let n = self.shards(phase)?;
        let mut inputs = self.inputs::<S>(None)?;
        let mut shards = Vec::new();
        for index in 0..n {
            let shard = Shard { index, count: n };
            let name = shard_name(phase, shard);
            let shard_inputs = self.inputs::<S>(Some(shard))?;
            match self.workdir.currency(&name, VERSION, &shard_inputs)? {
                Currency::Current(m) => {
                    inputs.insert(format!("shard:{index}"), m.id());
                    shards.push(m);
                }
                _ => {
                    return Err(missing(
                        &format!("{phase} merge"),
                        &format!("{phase} shard {shard}"),
                        &format!("{phase} --shard {shard}"),
                    ))
                }
            }
        }
        Ok((inputs, shards))
    }

    /// Whether the checkpoint of `S` is current, for a phase run alone downstream of it
    /// (phases upstream of `S` were checked before it).
    fn currency<S: Step>(&self) -> Result<Currency, PipelineError> {
        let phase = S::PHASE;
        if self.workdir.manifest(phase.name())?.is_none() {
            return Ok(Currency::Missing);
        }
        let inputs = match self.shards_of(phase) {
            Some(_) => match self.merged_inputs::<S>() {
                Ok((inputs, _)) => inputs,
                Err(PipelineError::Missing { needs, .. }) => {
                    return Ok(Currency::Stale(format!("{needs} is not current")))
                }
                Err(e) => return Err(e),
            },
            None => self.inputs::<S>(None)?,
        };
        Ok(self.workdir.currency(phase.name(), VERSION, &inputs)?)
    }

    /// The checkpoint `name` of `S` if it is current for `inputs` and reusable.
    fn reusable<S: Step>(
        &self,
        name: &str,
        inputs: &Inputs,
    ) -> Result<Option<PhaseOutcome>, PipelineError> {
        match self.workdir.currency(name, VERSION, inputs)? {
            Currency::Current(m)
                if S::reusable(&S::Counts::from_map(&m.counts), self.retry_missing) =>
            {
                log::info!("{name}: checkpoint is current, skipped");
                Ok(Some(PhaseOutcome {
                    phase: S::PHASE,
                    ran: false,
                    manifest: m,
                }))
            }
            Currency::Stale(why) => {
                log::info!("{name}: redone, {why}");
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn context<'a>(
        &'a self,
        out: &'a std::path::Path,
        shard: Shard,
        chunks: &'a Chunks,
        scratch: &'a Scratch,
    ) -> Context<'a> {
        Context {
            config: &self.config,
            workdir: self.workdir.root(),
            out,
            shard,
            chunks,
            scratch: &scratch.0,
            retry_missing: self.retry_missing,
        }
    }

    /// Runs `f` in the configured thread pool.
    fn with_pool<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let threads = self.config.options.threads;
        match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) if threads > 0 => pool.install(f),
            _ => f(),
        }
    }

    fn single<S: Step>(&self) -> Result<PhaseOutcome, PipelineError> {
        let phase = S::PHASE;
        let inputs = self.inputs::<S>(None)?;
        if let Some(done) = self.reusable::<S>(phase.name(), &inputs)? {
            return Ok(done);
        }
        log::info!("phase {phase}: running");
        let staging = self.workdir.begin(phase.name())?;
        let chunks = Chunks::none(staging.path());
        let scratch = Scratch::new(self.workdir.root(), phase.name())?;
        let ctx = self.context(staging.path(), Shard::ALL, &chunks, &scratch);
        let counts = self
            .with_pool(|| S::run(&ctx))
            .map_err(|source| PipelineError::Phase { phase, source })?;
        let manifest = staging.commit(VERSION, inputs, counts.to_map())?;
        log::info!("phase {phase}: done in {:.2}s", manifest.seconds);
        Ok(PhaseOutcome {
            phase,
            ran: true,
            manifest,
        })
    }

    fn shard<S: Step>(&self, shard: Shard) -> Result<PhaseOutcome, PipelineError> {
        let phase = S::PHASE;
        let name = shard_name(phase, shard);
        let inputs = self.inputs::<S>(Some(shard))?;
        if let Some(done) = self.reusable::<S>(&name, &inputs)? {
            return Ok(done);
        }
        log::info!("phase {phase} shard {shard}: running");
        // Chunks of this shard done by an earlier, interrupted run are kept if they were made
        // from the same inputs; anything else there is discarded.
        let chunk_dir = self.workdir.root().join(format!(".{name}.chunks"));
        // Chunks are numbered node ranges: their size is part of what makes them reusable.
        let stamp =
            serde_json::to_string(&(&inputs, self.config.shards.chunk_nodes)).unwrap_or_default();
        let err = |source| PipelineError::Phase { phase, source };
        let chunks = Chunks::prepare(&chunk_dir, &stamp).map_err(err)?;
        let staging = self.workdir.begin(&name)?;
        let scratch = Scratch::new(self.workdir.root(), &name)?;
        let ctx = self.context(staging.path(), shard, &chunks, &scratch);
        let counts = self.with_pool(|| S::run(&ctx)).map_err(err)?;
        let manifest = staging.commit(VERSION, inputs, counts.to_map())?;
        chunks.discard();
        Ok(PhaseOutcome {
            phase,
            ran: true,
            manifest,
        })
    }

    fn merge_step<S: Step>(&self) -> Result<PhaseOutcome, PipelineError> {
        let phase = S::PHASE;
        let (inputs, shards) = self.merged_inputs::<S>()?;
        if let Some(done) = self.reusable::<S>(phase.name(), &inputs)? {
            return Ok(done);
        }
        let mut summed = S::Counts::default();
        for m in &shards {
            summed.add(&S::Counts::from_map(&m.counts));
        }
        let dirs: Vec<PathBuf> = shards
            .iter()
            .map(|m| self.workdir.phase_dir(&m.phase))
            .collect();
        let staging = self.workdir.begin(phase.name())?;
        let chunks = Chunks::none(staging.path());
        let scratch = Scratch::new(self.workdir.root(), phase.name())?;
        let ctx = self.context(staging.path(), Shard::ALL, &chunks, &scratch);
        let counts = S::merge(&ctx, &dirs, summed)
            .map_err(|source| PipelineError::Phase { phase, source })?;
        let manifest = staging.commit(VERSION, inputs, counts.to_map())?;
        Ok(PhaseOutcome {
            phase,
            ran: true,
            manifest,
        })
    }
}

/// A phase's scratch folder (`WORKDIR/.<name>.scratch-<pid>`), emptied of any earlier run's
/// leftovers when made and removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(root: &std::path::Path, name: &str) -> Result<Self, PipelineError> {
        let prefix = format!(".{name}.scratch-");
        if let Ok(entries) = std::fs::read_dir(root) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = root.join(format!("{prefix}{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| CheckpointError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn missing(phase: &str, needs: &str, run: &str) -> PipelineError {
    PipelineError::Missing {
        phase: phase.to_string(),
        needs: if needs.contains(' ') {
            needs.to_string()
        } else {
            format!("phase {needs}")
        },
        run: run.to_string(),
    }
}
