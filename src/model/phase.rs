//! The phases of a run: the one list of them, with what each reads and how it shards.
//!
//! Everything that enumerates phases — the pipeline, the command line, Slurm job rendering,
//! `unearth status`, configuration checks — goes through [`Phase`], so adding a phase is one
//! new variant and its module.

use std::fmt;
use std::str::FromStr;

/// One phase of the pipeline.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Phase {
    /// Read and validate the metadata; gather its pairs, prefixes and path components.
    Plan,
    /// Map the requested path components to the graph's label ids.
    Names,
    /// One sequential pass over nodes for the requested prefixes and origins.
    Scan,
    /// Decide which candidate revisions belong to each repository's origins.
    Match,
    /// Mark the directories the paths need, below each member revision.
    Reach,
    /// Decode the labels of the directories the paths need, keeping requested names.
    Labels,
    /// Walk every row down its path; write the resolved output.
    Walk,
    /// sha1_git -> sha1 from the ORC content tables.
    Content,
    /// Fetch the blobs (S3 or a folder), verify them, store them durably.
    Fetch,
    /// Write the Parquet dataset with contents, language and quality columns.
    Export,
    /// The Stack-style dataset: languages, filters, dedup, card.
    Dataset,
}

/// Which job a work directory serves: both run phases of the same names, with the same
/// checkpoints, shards and Slurm jobs, on different inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// `unearth run`: metadata of `(repo, commit, path)` rows resolved in the graph.
    Run,
    /// `unearth hydrate`: metadata keyed by content ids, no graph. Its `content` phase joins
    /// the ids to sha1s (through the ORC tables or the digestmap when they are git ids), its
    /// `fetch` fetches them, its `export` decodes every row and its `dataset` builds the
    /// dataset.
    Hydrate,
}

impl Flow {
    /// The phases of the flow, in running order (a run's may stop at the walk: see
    /// [`crate::config::Config::phases`]).
    pub fn phases(self) -> &'static [Phase] {
        match self {
            Flow::Run => &Phase::ALL,
            Flow::Hydrate => &[Phase::Content, Phase::Fetch, Phase::Export, Phase::Dataset],
        }
    }

    /// What a phase does in this flow, in one line (the command line's help, status).
    pub fn about(self, phase: Phase) -> &'static str {
        match (self, phase) {
            (Flow::Hydrate, Phase::Content) => {
                "The metadata's ids as sha1s (joined through ORC or the digestmap), distinct"
            }
            (Flow::Hydrate, Phase::Export) => {
                "Every row with its status and its text, decoded from its encoding"
            }
            _ => phase.about(),
        }
    }
}

/// How a sharded phase splits its input into shards (see [`crate::model::shard`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharding {
    /// Contiguous node-id ranges; shards are concatenated in order.
    NodeRange,
    /// The ORC files of the content tables; shards are united (a visible copy wins).
    OrcFiles,
    /// Ranges of a blob's sha1 (its first two bytes); shards are concatenated in order.
    Sha1Range,
    /// Ranges of MinHash bands (and of sha1s for exact duplicates); the merge joins the
    /// clusters and writes the dataset.
    Bands,
}

impl Sharding {
    /// What a shard is, in words (job scripts, status).
    pub fn describe(self) -> &'static str {
        match self {
            Sharding::NodeRange => "a node-id range",
            Sharding::OrcFiles => "a slice of the ORC content files",
            Sharding::Sha1Range => "a sha1 range",
            Sharding::Bands => "a range of MinHash bands",
        }
    }
}

impl Phase {
    /// Every phase, in running order.
    pub const ALL: [Phase; 11] = [
        Phase::Plan,
        Phase::Names,
        Phase::Scan,
        Phase::Match,
        Phase::Reach,
        Phase::Labels,
        Phase::Walk,
        Phase::Content,
        Phase::Fetch,
        Phase::Export,
        Phase::Dataset,
    ];

    /// The phase's name: its subcommand, checkpoint folder and key in configurations.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Plan => "plan",
            Phase::Names => "names",
            Phase::Scan => "scan",
            Phase::Match => "match",
            Phase::Reach => "reach",
            Phase::Labels => "labels",
            Phase::Walk => "walk",
            Phase::Content => "content",
            Phase::Fetch => "fetch",
            Phase::Export => "export",
            Phase::Dataset => "dataset",
        }
    }

    /// One line saying what the phase does (the command line's help).
    pub fn about(self) -> &'static str {
        match self {
            Phase::Plan => "Read and validate the metadata; gather its pairs, prefixes, path names",
            Phase::Names => "Map the requested path components to the graph's label ids",
            Phase::Scan => "One sequential pass over nodes for the requested prefixes and origins",
            Phase::Match => "Decide which candidate revisions belong to each repository's origins",
            Phase::Reach => "Mark the directories the paths need, below each member revision",
            Phase::Labels => "Decode the labels of the directories the paths need",
            Phase::Walk => "Walk every row down its path and write the resolved output",
            Phase::Content => "sha1_git -> sha1 from the ORC content tables",
            Phase::Fetch => "Fetch the blobs (S3 or a folder), verify them, store them durably",
            Phase::Export => {
                "Write the Parquet dataset with contents, language and quality columns"
            }
            Phase::Dataset => {
                "Write the Stack-style dataset: per-language shards, filters, dedup, card"
            }
        }
    }

    /// The phases whose outputs this one reads in `flow` (their checkpoints are its inputs).
    pub fn deps_in(self, flow: Flow) -> &'static [Phase] {
        match (flow, self) {
            (Flow::Run, p) => p.deps(),
            (Flow::Hydrate, Phase::Fetch) => &[Phase::Content],
            (Flow::Hydrate, Phase::Export) => &[Phase::Content, Phase::Fetch],
            (Flow::Hydrate, Phase::Dataset) => &[Phase::Export],
            (Flow::Hydrate, _) => &[],
        }
    }

    /// Every phase this one depends on in `flow`, directly or not, in running order.
    pub fn upstream_in(self, flow: Flow) -> Vec<Phase> {
        let mut all: Vec<Phase> = Vec::new();
        let mut todo: Vec<Phase> = self.deps_in(flow).to_vec();
        while let Some(p) = todo.pop() {
            if !all.contains(&p) {
                all.push(p);
                todo.extend_from_slice(p.deps_in(flow));
            }
        }
        all.sort();
        all
    }

    /// The phases whose outputs this one reads in a run (their checkpoints are its inputs).
    pub fn deps(self) -> &'static [Phase] {
        match self {
            Phase::Plan => &[],
            Phase::Names => &[Phase::Plan],
            Phase::Scan => &[Phase::Plan],
            Phase::Match => &[Phase::Plan, Phase::Scan],
            Phase::Reach => &[Phase::Plan, Phase::Match],
            Phase::Labels => &[Phase::Plan, Phase::Names, Phase::Match, Phase::Reach],
            Phase::Walk => &[
                Phase::Plan,
                Phase::Names,
                Phase::Scan,
                Phase::Match,
                Phase::Labels,
            ],
            Phase::Content => &[Phase::Walk],
            Phase::Fetch => &[Phase::Content],
            Phase::Export => &[Phase::Walk, Phase::Content, Phase::Fetch],
            Phase::Dataset => &[Phase::Walk, Phase::Export],
        }
    }

    /// Every phase this one depends on in a run, directly or not, in running order.
    pub fn upstream(self) -> Vec<Phase> {
        self.upstream_in(Flow::Run)
    }

    /// How the phase shards in `flow`, or `None` when it runs as one job there.
    pub fn sharding_in(self, flow: Flow) -> Option<Sharding> {
        match (flow, self) {
            (Flow::Run, p) => p.sharding(),
            (Flow::Hydrate, Phase::Fetch) => Some(Sharding::Sha1Range),
            (Flow::Hydrate, Phase::Dataset) => Some(Sharding::Bands),
            (Flow::Hydrate, _) => None,
        }
    }

    /// How the phase shards, or `None` when it runs as one job.
    pub fn sharding(self) -> Option<Sharding> {
        match self {
            Phase::Scan | Phase::Labels => Some(Sharding::NodeRange),
            Phase::Content => Some(Sharding::OrcFiles),
            Phase::Fetch => Some(Sharding::Sha1Range),
            Phase::Dataset => Some(Sharding::Bands),
            _ => None,
        }
    }

    /// Whether the phase needs the export tables (`orc` in the configuration).
    pub fn needs_orc(self) -> bool {
        matches!(
            self,
            Phase::Content | Phase::Fetch | Phase::Export | Phase::Dataset
        )
    }

    /// The phase named `name`.
    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// An unknown phase name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPhase(pub String);

impl fmt::Display for UnknownPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
        write!(
            f,
            "unknown phase {:?}; phases are {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownPhase {}

impl FromStr for Phase {
    type Err = UnknownPhase;
    fn from_str(s: &str) -> Result<Self, UnknownPhase> {
        Phase::from_name(s).ok_or_else(|| UnknownPhase(s.to_string()))
    }
}

impl PartialEq<&str> for Phase {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl PartialEq<str> for Phase {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_depend_only_on_earlier_ones() {
        for p in Phase::ALL {
            assert_eq!(Phase::from_name(p.name()), Some(p));
            assert_eq!(p.to_string().parse::<Phase>(), Ok(p));
            for d in p.deps() {
                assert!(d < &p, "{p} depends on later {d}");
            }
        }
        assert_eq!(
            Phase::Walk.upstream(),
            [
                Phase::Plan,
                Phase::Names,
                Phase::Scan,
                Phase::Match,
                Phase::Reach,
                Phase::Labels
            ]
        );
        assert!("nope".parse::<Phase>().is_err());
        for flow in [Flow::Run, Flow::Hydrate] {
            for p in flow.phases() {
                for d in p.deps_in(flow) {
                    assert!(
                        flow.phases().contains(d),
                        "{p} depends on {d}, not in {flow:?}"
                    );
                    assert!(d < p, "{p} depends on later {d}");
                }
            }
        }
        assert_eq!(
            Phase::Dataset.upstream_in(Flow::Hydrate),
            [Phase::Content, Phase::Fetch, Phase::Export]
        );
    }
}
