//! The vocabulary every layer shares: identifiers, statuses, counts, phases and shards.
//!
//! Nothing here touches a file or the graph; every other module may use it.

pub mod counts;
pub mod hashes;
pub mod ids;
pub mod license;
pub mod phase;
pub mod shard;
pub mod slug;
pub mod status;

pub use counts::{CountMap, Counts, StatusCounts};
pub use ids::{BadId, IdHash, IdHasher, Sha1, Sha1Git};
pub use phase::{Flow, Phase, Sharding};
pub use shard::Shard;
pub use status::{
    BlobStatus, ContentStatus, DatasetStatus, LicenseType, MatchStatus, RowStatus, Status,
};
