//! The origin match's outputs (`WORKDIR/match/`):
//!
//! - `pairs.flat`: one record per pair, indexed by pair id: its status, how many revisions
//!   share its prefix in the whole graph and in its origin, whether the backward search ran
//!   out of budget (the forward search then decided), and where its members start;
//! - `members.flat`: the revisions of each pair's origin that have its prefix, pair after
//!   pair, each pair's in rank order (branch heads first, then nearest to a snapshot, then
//!   smallest id): revision node and id, root directory, snapshot id, origin, distance.
//!
//! Origins are named by their index in the node scan's `origins.parquet` sorted by node.

use std::path::Path;

use super::flat::{le, FixedRecord, FlatError, FlatFile};
use crate::model::{MatchStatus, Sha1Git};

/// Pairs, by id.
pub const PAIRS: &str = "pairs.flat";
/// Members, by pair.
pub const MEMBERS: &str = "members.flat";

/// The answer for one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairMatch {
    /// Outcome.
    pub status: MatchStatus,
    /// Whether the backward search ran out of budget (a forward search decided).
    pub budget_hit: bool,
    /// Revisions with the prefix in the whole graph.
    pub candidates: u32,
    /// Of those, how many belong to the origin (the pair's members).
    pub in_origin: u32,
    /// Index of the pair's first member in `members.flat`.
    pub first_member: u64,
}

impl PairMatch {
    /// A pair that failed with `status`, among `candidates` revisions with its prefix.
    pub fn failed(status: MatchStatus, candidates: u32, first_member: u64) -> Self {
        Self {
            status,
            budget_hit: false,
            candidates,
            in_origin: 0,
            first_member,
        }
    }
}

fn status_code(s: MatchStatus) -> u8 {
    match s {
        MatchStatus::Matched => 1,
        MatchStatus::OriginNotFound => 2,
        MatchStatus::CommitNotFound => 3,
        MatchStatus::CommitNotInOrigin => 4,
    }
}

fn status_of(c: u8) -> MatchStatus {
    match c {
        1 => MatchStatus::Matched,
        2 => MatchStatus::OriginNotFound,
        3 => MatchStatus::CommitNotFound,
        _ => MatchStatus::CommitNotInOrigin,
    }
}

impl FixedRecord for PairMatch {
    const SIZE: usize = 24;
    const KIND: [u8; 4] = *b"mtch";
    fn write_to(&self, out: &mut [u8]) {
        out.fill(0);
        out[0] = status_code(self.status);
        out[1] = self.budget_hit as u8;
        out[4..8].copy_from_slice(&self.candidates.to_le_bytes());
        out[8..12].copy_from_slice(&self.in_origin.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_member.to_le_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        Self {
            status: status_of(b[0]),
            budget_hit: b[1] != 0,
            candidates: le::u32_at(b, 4),
            in_origin: le::u32_at(b, 8),
            first_member: le::u64_at(b, 16),
        }
    }
}

/// A revision of a pair's origin with the pair's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The revision's node.
    pub revision_node: u64,
    /// Its id.
    pub revision: Sha1Git,
    /// Its root directory's node (`u64::MAX` when it has none).
    pub root: u64,
    /// The snapshot it was reached through.
    pub snapshot: Sha1Git,
    /// The origin holding that snapshot (index in the scan's origins by node).
    pub origin: u32,
    /// Hops from that snapshot.
    pub distance: u32,
    /// Whether a branch names it (directly or through releases).
    pub head: bool,
}

impl Member {
    /// The rank order of a pair's members: heads first, then nearest, then smallest id.
    pub fn rank(&self) -> (bool, u32, Sha1Git) {
        (!self.head, self.distance, self.revision)
    }
}

impl FixedRecord for Member {
    const SIZE: usize = 72;
    const KIND: [u8; 4] = *b"memb";
    fn write_to(&self, out: &mut [u8]) {
        out.fill(0);
        out[..8].copy_from_slice(&self.revision_node.to_le_bytes());
        out[8..16].copy_from_slice(&self.root.to_le_bytes());
        out[16..36].copy_from_slice(self.revision.as_bytes());
        out[36..56].copy_from_slice(self.snapshot.as_bytes());
        out[56..60].copy_from_slice(&self.origin.to_le_bytes());
        out[60..64].copy_from_slice(&self.distance.to_le_bytes());
        out[64] = self.head as u8;
    }
    fn read_from(b: &[u8]) -> Self {
        Self {
            revision_node: le::u64_at(b, 0),
            root: le::u64_at(b, 8),
            revision: Sha1Git(le::id_at(b, 16)),
            snapshot: Sha1Git(le::id_at(b, 36)),
            origin: le::u32_at(b, 56),
            distance: le::u32_at(b, 60),
            head: b[64] != 0,
        }
    }
}

/// The match read back: pairs by id and their members.
pub struct Matches {
    pairs: FlatFile<PairMatch>,
    members: FlatFile<Member>,
}

impl Matches {
    /// Maps the match's files in `dir`.
    pub fn open(dir: &Path) -> Result<Self, FlatError> {
        Ok(Self {
            pairs: FlatFile::open(&dir.join(PAIRS))?,
            members: FlatFile::open(&dir.join(MEMBERS))?,
        })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is no pair.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The answer for pair `id`.
    pub fn pair(&self, id: u32) -> Option<PairMatch> {
        self.pairs.get(id as usize)
    }

    /// The members of a pair, in rank order.
    pub fn members(&self, p: &PairMatch) -> Vec<Member> {
        (0..p.in_origin as usize)
            .filter_map(|i| self.members.get(p.first_member as usize + i))
            .collect()
    }

    /// Every member, pair after pair.
    pub fn all_members(&self) -> impl Iterator<Item = Member> + '_ {
        self.members.iter_from(0)
    }
}
