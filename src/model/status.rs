//! Statuses as enums, each value with exactly one string form.
//!
//! The string forms are what outputs hold (`status` columns, manifest counts); code never
//! compares status strings, it converts once at the file boundary with [`Status::parse`].

use std::fmt;

/// A status enum: its values and their one string form each.
pub trait Status: Copy + Eq + Ord + fmt::Debug + 'static {
    /// Every value, in the order outputs list them.
    const ALL: &'static [Self];
    /// Prefix of this status's counters in manifests (`status_ok`, `pairs_matched`).
    const COUNT_PREFIX: &'static str;
    /// The string form.
    fn as_str(self) -> &'static str;
    /// The value with this string form.
    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == text)
    }
}

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident ($prefix:literal) { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl Status for $name {
            const ALL: &'static [Self] = &[$($name::$variant,)+];
            const COUNT_PREFIX: &'static str = $prefix;
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown {} {text:?}",
                        stringify!($name)
                    ))
                })
            }
        }
    };
}

status_enum!(
    /// The status of one input row. The walk decides the resolution statuses (`ok` to
    /// `invalid`); the export refines `ok` and `symlink` rows with what happened to their
    /// content (`binary` to `fetch_failed`).
    RowStatus ("status_") {
        /// A file was found; its content is the row's.
        Ok = "ok",
        /// A symbolic link was found; the content is the link's own blob (its target path).
        Symlink = "symlink",
        /// The path names a directory.
        IsDirectory = "is_directory",
        /// The path reaches a git submodule (a revision inside a directory).
        Submodule = "submodule",
        /// A component of the path is absent, or a file is walked through.
        PathNotFound = "path_not_found",
        /// Revisions with the prefix exist, none in any archived history of the origin.
        CommitNotInOrigin = "commit_not_in_origin",
        /// No revision in the graph has the prefix.
        CommitNotFound = "commit_not_found",
        /// No archived origin has the repository's URL.
        OriginNotFound = "origin_not_found",
        /// The row itself is malformed (reason in `plan/rejects.parquet`).
        Invalid = "invalid",
        /// The content is not UTF-8 text (bytes only with `include_binary`).
        Binary = "binary",
        /// Software Heritage did not archive the content's bytes (`skip_reason` says why).
        Skipped = "skipped",
        /// The content is in neither the `content` nor the `skipped_content` table.
        ContentNotFound = "content_not_found",
        /// The object store has no blob for the content's sha1.
        BlobMissing = "blob_missing",
        /// Every copy of the blob failed verification (fetched, or read back from the store).
        CorruptBlob = "corrupt_blob",
        /// Every attempt to fetch the blob failed; the next run retries it.
        FetchFailed = "fetch_failed",
    }
);

impl RowStatus {
    /// Whether the row names a content whose bytes the export looks for.
    pub fn has_content(self) -> bool {
        matches!(self, RowStatus::Ok | RowStatus::Symlink)
    }
}

status_enum!(
    /// Where a row of the export went in the dataset: kept, or the first rule that removed
    /// it, in the order the rules apply.
    DatasetStatus ("dataset_") {
        /// In the dataset.
        Kept = "kept",
        /// The export has no text for it (its `status` says why).
        NoText = "no_text",
        /// No language detected.
        UnknownLanguage = "unknown_language",
        /// Its language is not in `languages`.
        LanguageExcluded = "language_excluded",
        /// Its repository's license type is not in `license_types`.
        LicenseExcluded = "license_excluded",
        /// A vendored file (`drop_vendor`).
        Vendor = "vendor",
        /// A generated file (`drop_generated`).
        Generated = "generated",
        /// A line longer than `max_line_length`.
        LongLine = "max_line_length",
        /// Mean line longer than `max_avg_line_length`.
        LongLines = "max_avg_line_length",
        /// Fewer letters and digits than `min_alphanum_fraction`.
        LowAlphanum = "min_alphanum_fraction",
        /// The same bytes as a kept row.
        ExactDuplicate = "exact_duplicate",
        /// Similar to a kept row (MinHash LSH).
        NearDuplicate = "near_duplicate",
    }
);

status_enum!(
    /// The kind of license a repository's root license files carry, as The Stack reports it.
    LicenseType ("license_") {
        /// Every detected license is permissive (OSI-approved or FSF-free, not copyleft).
        Permissive = "permissive",
        /// A detected license is copyleft (GPL, LGPL, MPL, EPL, ...).
        Copyleft = "copyleft",
        /// A detected license is neither (non-commercial, no-derivatives, source-available).
        Other = "other",
        /// No license file at the root, or none a license text was recognised in.
        NoLicense = "no_license",
    }
);

status_enum!(
    /// The outcome of the origin match for one (repository, prefix) pair.
    MatchStatus ("pairs_") {
        /// A revision of the origin has the prefix.
        Matched = "matched",
        /// No archived origin has the repository's URL.
        OriginNotFound = "origin_not_found",
        /// No revision in the graph has the prefix.
        CommitNotFound = "commit_not_found",
        /// Revisions with the prefix exist, none in the origin's archived history.
        CommitNotInOrigin = "commit_not_in_origin",
    }
);

impl MatchStatus {
    /// The row status of the pair's rows when the match failed.
    pub fn failure(self) -> Option<RowStatus> {
        match self {
            MatchStatus::Matched => None,
            MatchStatus::OriginNotFound => Some(RowStatus::OriginNotFound),
            MatchStatus::CommitNotFound => Some(RowStatus::CommitNotFound),
            MatchStatus::CommitNotInOrigin => Some(RowStatus::CommitNotInOrigin),
        }
    }
}

status_enum!(
    /// What the export tables say of a content.
    ContentStatus ("status_") {
        /// In `content`: its bytes are in the object store.
        Visible = "visible",
        /// In `skipped_content` only: not archived.
        Skipped = "skipped",
        /// In neither table.
        ContentNotFound = "content_not_found",
    }
);

status_enum!(
    /// The state of a blob after the fetch.
    BlobStatus ("status_") {
        /// Verified bytes are stored.
        Ok = "ok",
        /// The object store has no such key.
        Missing = "blob_missing",
        /// Every attempt returned bytes that failed verification.
        Corrupt = "corrupt_blob",
        /// Every attempt failed for another reason (never stored: retried by the next run).
        Failed = "fetch_failed",
    }
);

impl BlobStatus {
    /// The row status of a content whose blob ended so.
    pub fn row_status(self) -> RowStatus {
        match self {
            BlobStatus::Ok => RowStatus::Ok,
            BlobStatus::Missing => RowStatus::BlobMissing,
            BlobStatus::Corrupt => RowStatus::CorruptBlob,
            BlobStatus::Failed => RowStatus::FetchFailed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<S: Status>() {
        let mut seen = std::collections::BTreeSet::new();
        for s in S::ALL {
            assert!(seen.insert(s.as_str()), "{s:?}: string form used twice");
            assert_eq!(S::parse(s.as_str()), Some(*s));
        }
        assert_eq!(S::parse("no such status"), None);
    }

    #[test]
    fn every_status_has_one_string_form() {
        round_trip::<RowStatus>();
        round_trip::<MatchStatus>();
        round_trip::<ContentStatus>();
        round_trip::<BlobStatus>();
        assert_eq!(
            serde_json::to_string(&RowStatus::PathNotFound).unwrap(),
            "\"path_not_found\""
        );
        assert!(serde_json::from_str::<RowStatus>("\"bogus\"").is_err());
    }
}
