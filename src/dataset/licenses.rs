//! Licenses per repository at the resolved revision: the root license files the walk found
//! ([`crate::artifacts::licenses`]) matched against the SPDX license texts.
//!
//! The matcher is askalono's (as the `spdx` crate carries it): each text is normalised and
//! compared by n-gram Dice score with every SPDX text and standard header; a score above
//! `license_threshold` names the license. A file that is not one license as a whole (a
//! preamble, several licenses one after another) is searched further: the best-matching
//! stretch is taken out and the rest matched again, up to [`MAX_PASSES`] times.
//!
//! `detected_licenses` is the sorted set of SPDX ids over a revision's license files. A GNU
//! license text does not say "only" or "or later" (its header in each source file does), so
//! `GPL-3.0-only` and `GPL-3.0-or-later`, whose texts are the same, are both reported as the
//! SPDX id made for that case, `GPL-3.0`. `license_type` is `copyleft` when any of them is,
//! else `other` when any is neither copyleft nor free (OSI or FSF), else `permissive`; and
//! `no_license` when nothing was recognised or the root has no license file. The confidence
//! is the lowest score among the detected licenses.
//!
//! Output: `licenses.flat` in the scratch folder, one [`Detected`] per revision with a license
//! file, sorted by revision, looked up per row by binary search ([`Table::get`]).
//!
//! A file over [`MAX_FILE_BYTES`] is not matched: like a file the store lacks, it counts as no
//! license, and in `texts_unreadable`.
//!
//! Most license files are a standard text with their own copyright line, which the matcher's
//! normalisation drops: a text whose n-grams equal those of an earlier text that matched a
//! license as a whole (no stretch searched) takes that text's answer, which is the one the
//! matcher would give, at the cost of reading it twice (for its key, then its n-grams) and
//! normalising it ([`match_texts`]). A search for stretches depends on the lines too, so an
//! answer that needed one is never shared.
//!
//! Memory: the matcher's store (the SPDX texts' n-grams, about 40 MB), one chunk of
//! [`CHUNK`] license files and their texts, the answers of at most [`CACHE`] distinct texts
//! (the same license file is met in many revisions of a repository), and the n-grams of at
//! most [`SHAPES`] texts of at most [`SHAPE_BYTES`].

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use spdx::detection::scan::Scanner;
use spdx::detection::{Store, TextData};

use crate::artifacts::flat::{le, FixedRecord, FlatError, FlatFile, FlatWriter};
use crate::artifacts::join::JoinMap;
use crate::artifacts::licenses::RootLicense;
use crate::model::{ContentStatus, LicenseType, Sha1Git, Status};
use crate::store::BlobStores;

/// Licenses one revision can carry in its record; more are rare and the lowest-scoring are
/// dropped.
pub const MAX_LICENSES: usize = 4;

/// License files read and matched per parallel step.
pub const CHUNK: usize = 4096;

/// Distinct license texts whose answers are remembered.
pub const CACHE: usize = 1 << 16;

/// The whole-text score above which the scanner searches no stretch (askalono's default).
const SHALLOW_LIMIT: f32 = 0.99;

/// Shapes of license texts (see [`shape_key`]) whose answers and n-grams are remembered: the
/// first met, since each is a standard license text (its answer cleared the shallow limit),
/// and the common ones come early and often.
pub const SHAPES: usize = 256;

/// The longest text whose n-grams are remembered (the SPDX texts most files copy are under
/// 40 kB), so that the shapes hold at most a few hundred kB each.
pub const SHAPE_BYTES: usize = 64 << 10;

/// Passes of the search for further licenses in one file.
pub const MAX_PASSES: u16 = 4;

/// License files larger than this are not matched (the longest SPDX texts are ~100 kB; a
/// larger root file is a bundle of notices, and matching it would cost minutes).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The scratch file of the detected licenses.
pub const DETECTED: &str = "licenses.flat";

/// Errors of license detection.
#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    /// The matcher's store of SPDX texts could not be loaded.
    #[error("the SPDX license store inlined in the `spdx` crate cannot be loaded: {0}")]
    Store(String),
    /// The walk's root license files, or the detected table, cannot be read or written.
    #[error(transparent)]
    Flat(#[from] FlatError),
    /// A license file cannot be read from the blob store.
    #[error("license file {sha1_git}: {reason}")]
    Read {
        /// The file's content id.
        sha1_git: Sha1Git,
        /// Why.
        reason: String,
    },
}

/// One license matched in a text: its index in [`Detector::names`] and its score.
pub type Found = (u16, f32);

/// The matcher: askalono's scanner over the SPDX store.
pub struct Detector {
    store: Store,
    threshold: f32,
    /// Every id a match can be reported as, sorted: the store's, and the bare GNU ids.
    names: Vec<String>,
}

impl Detector {
    /// Loads the SPDX store; `threshold` is the lowest score that counts.
    pub fn new(threshold: f32) -> Result<Self, LicenseError> {
        let store = Store::load_inline().map_err(|e| LicenseError::Store(e.to_string()))?;
        let mut names: Vec<String> = store.licenses().map(|n| canonical(n).to_string()).collect();
        names.extend(store.licenses().cloned());
        names.sort();
        names.dedup();
        Ok(Self {
            store,
            threshold,
            names,
        })
    }

    /// The ids matches are reported as, sorted (indices of [`Found`]).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn index(&self, name: &str) -> Option<u16> {
        let i = self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()?;
        u16::try_from(i).ok()
    }

    /// The licenses in `text`, each once with its best score, best first.
    pub fn detect(&self, text: &str) -> Vec<Found> {
        self.answer(&TextData::new(text)).0
    }

    /// The licenses in a normalised text, and whether the answer depends on its n-grams
    /// alone: when the best whole-text score clears the scanner's shallow limit no stretch
    /// is searched, so any text with the same n-grams gets the same answer.
    fn answer(&self, data: &TextData) -> (Vec<Found>, bool) {
        let scanner = Scanner::new(&self.store)
            .confidence_threshold(self.threshold)
            .shallow_limit(SHALLOW_LIMIT)
            .optimize(true)
            .max_passes(MAX_PASSES);
        let result = scanner.scan(data);
        let whole = result.score > self.threshold && result.score > SHALLOW_LIMIT;
        let mut found: Vec<(&str, f32)> = result
            .containing
            .iter()
            .map(|c| (c.license.name, c.score))
            .collect();
        if found.is_empty() {
            if let Some(l) = result.license {
                found.push((l.name, result.score));
            }
        }
        let mut out: Vec<Found> = Vec::new();
        for (name, score) in found {
            let Some(i) = self.index(canonical(name)) else {
                continue;
            };
            add_found(&mut out, (i, score));
        }
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        (out, whole && result.containing.is_empty())
    }

    /// The type of a set of detected licenses.
    pub fn kind(&self, found: &[Found]) -> LicenseType {
        let mut kind = LicenseType::NoLicense;
        for (i, _) in found {
            let id = self
                .names
                .get(*i as usize)
                .and_then(|n| spdx::license_id(n));
            let this = match id {
                Some(id) if id.is_copyleft() => LicenseType::Copyleft,
                Some(id) if id.is_osi_approved() || id.is_fsf_free_libre() => {
                    LicenseType::Permissive
                }
                _ => LicenseType::Other,
            };
            kind = strictest(kind, this);
        }
        kind
    }
}

/// Adds license `f` to `found`, keeping each license once with its best score.
fn add_found(found: &mut Vec<Found>, f: Found) {
    match found.iter_mut().find(|(j, _)| *j == f.0) {
        Some(g) => g.1 = g.1.max(f.1),
        None => found.push(f),
    }
}

/// The more restrictive of two types (copyleft, then other, then permissive).
fn strictest(a: LicenseType, b: LicenseType) -> LicenseType {
    let rank = |t| match t {
        LicenseType::NoLicense => 0,
        LicenseType::Permissive => 1,
        LicenseType::Other => 2,
        LicenseType::Copyleft => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// The id a match is reported as: a GNU `-only` or `-or-later` id as its bare SPDX id, since
/// a license text does not say which (see the module documentation).
fn canonical(name: &str) -> &str {
    let bare = name
        .strip_suffix("-only")
        .or_else(|| name.strip_suffix("-or-later"));
    match bare {
        Some(b) if spdx::license_id(b).is_some() => b,
        _ => name,
    }
}

/// A revision's licenses, as [`DETECTED`] holds them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detected {
    /// The revision.
    pub revision: Sha1Git,
    /// Its license type.
    pub kind: LicenseType,
    /// How many of `ids` are set.
    pub count: u8,
    /// Indices in [`Detector::names`], sorted by name.
    pub ids: [u16; MAX_LICENSES],
    /// The lowest score among them (0 when none).
    pub confidence: f32,
}

impl FixedRecord for Detected {
    const SIZE: usize = 34;
    const KIND: [u8; 4] = *b"licd";
    fn write_to(&self, out: &mut [u8]) {
        out[..20].copy_from_slice(self.revision.as_bytes());
        let kind = LicenseType::ALL.iter().position(|k| *k == self.kind);
        out[20] = kind.unwrap_or(0) as u8;
        out[21] = self.count;
        for (j, id) in self.ids.iter().enumerate() {
            out[22 + 2 * j..24 + 2 * j].copy_from_slice(&id.to_le_bytes());
        }
        out[30..34].copy_from_slice(&self.confidence.to_le_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        let mut ids = [0u16; MAX_LICENSES];
        for (j, id) in ids.iter_mut().enumerate() {
            *id = u16::from_le_bytes([b[22 + 2 * j], b[23 + 2 * j]]);
        }
        Self {
            revision: Sha1Git(le::id_at(b, 0)),
            kind: LicenseType::ALL
                .get(b[20] as usize)
                .copied()
                .unwrap_or(LicenseType::NoLicense),
            count: b[21].min(MAX_LICENSES as u8),
            ids,
            confidence: f32::from_le_bytes([b[30], b[31], b[32], b[33]]),
        }
    }
}

/// A row's license columns.
#[derive(Debug, Clone, PartialEq)]
pub struct RowLicense<'a> {
    /// SPDX ids, sorted.
    pub ids: Vec<&'a str>,
    /// The license type.
    pub kind: LicenseType,
    /// The lowest score among `ids` (none when `ids` is empty).
    pub confidence: Option<f32>,
}

/// The detected licenses of every revision, mapped.
pub struct Table {
    file: FlatFile<Detected>,
    names: Vec<String>,
}

impl Table {
    /// The table [`detect_all`] wrote into `dir`, read back.
    pub fn open(detector: &Detector, dir: &Path) -> Result<Self, LicenseError> {
        Ok(Self {
            file: FlatFile::open(&dir.join(DETECTED))?,
            names: detector.names.clone(),
        })
    }

    /// The licenses of `revision` (hex); `no_license` when it has no license file, or is not
    /// a revision id.
    pub fn get(&self, revision: Option<&str>) -> RowLicense<'_> {
        let none = RowLicense {
            ids: Vec::new(),
            kind: LicenseType::NoLicense,
            confidence: None,
        };
        let Some(rev) = revision.and_then(|r| Sha1Git::from_hex(r).ok()) else {
            return none;
        };
        let i = self.file.partition_point(|d| d.revision < rev);
        match self.file.get(i).filter(|d| d.revision == rev) {
            Some(d) => RowLicense {
                ids: d.ids[..d.count as usize]
                    .iter()
                    .filter_map(|i| self.names.get(*i as usize).map(String::as_str))
                    .collect(),
                kind: d.kind,
                confidence: (d.count > 0).then_some(d.confidence),
            },
            None => none,
        }
    }
}

/// Counts of license detection.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LicenseCounts {
    /// Revisions with a license file at their root.
    pub revisions: u64,
    /// License files matched (a text met again is answered from the cache).
    pub files: u64,
    /// Distinct texts matched against the SPDX texts.
    pub texts_matched: u64,
    /// Distinct texts answered from another text with the same n-grams (the same license
    /// whose copyright lines differ), each checked for it.
    pub texts_reused: u64,
    /// Distinct license texts not matched: the store lacks their bytes (skipped, missing or
    /// damaged blobs), or they are over [`MAX_FILE_BYTES`].
    pub texts_unreadable: u64,
    /// Microseconds spent.
    pub micros: u64,
}

/// The bytes of a license file, or `None` when the archive or store lacks them.
fn read(id: Sha1Git, join: &JoinMap, store: &BlobStores) -> Result<Option<Vec<u8>>, LicenseError> {
    let Some(known) = join.get(&id) else {
        return Ok(None);
    };
    if known.status != ContentStatus::Visible {
        return Ok(None);
    }
    if known.length.is_some_and(|l| l > MAX_FILE_BYTES) {
        return Ok(None);
    }
    let Some((sha1, at)) = known.sha1.and_then(|s| Some((s, store.get(&s)?))) else {
        return Ok(None);
    };
    if at.1.status != crate::model::BlobStatus::Ok {
        return Ok(None);
    }
    match store.read_verified(&sha1, at) {
        Ok(bytes) => Ok(Some(bytes)),
        // Damaged bytes are never used; the file counts as unreadable, as the export's
        // `corrupt_blob` rows do.
        Err(crate::store::pack::ReadError::Damaged(_)) => Ok(None),
        Err(e) => Err(LicenseError::Read {
            sha1_git: id,
            reason: e.to_string(),
        }),
    }
}

/// Matches every root license file of `roots` and writes each revision's licenses into
/// `dir/licenses.flat`; returns the table and the counts.
pub fn detect_all(
    detector: &Detector,
    roots: &FlatFile<RootLicense>,
    join: &JoinMap,
    store: &BlobStores,
    dir: &Path,
) -> Result<(Table, LicenseCounts), LicenseError> {
    let start = Instant::now();
    std::fs::create_dir_all(dir).map_err(|source| FlatError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(DETECTED);
    let mut out = FlatWriter::create(&path)?;
    let mut counts = LicenseCounts::default();
    let mut cache: HashMap<Sha1Git, Vec<Found>> = HashMap::new();
    let mut shapes: Shapes = HashMap::new();
    let mut pl = dsi_progress_logger::progress_logger!(
        item_name = "license file",
        expected_updates = Some(roots.len())
    );
    use dsi_progress_logger::ProgressLog;
    pl.start("Matching root license files against the SPDX texts");
    let mut at = 0usize;
    while at < roots.len() {
        // A chunk ends at a revision boundary, so a revision's files are matched together.
        let mut chunk: Vec<RootLicense> = roots.iter_from(at).take(CHUNK).collect();
        let mut next = at + chunk.len();
        while let Some(r) = roots.get(next) {
            if chunk.last().is_some_and(|l| l.revision != r.revision) {
                break;
            }
            chunk.push(r);
            next += 1;
        }
        at = next;
        // Cleared before the chunk, never during it: every text of the chunk stays answered.
        if cache.len() + chunk.len() > CACHE {
            cache.clear();
        }
        let mut todo: Vec<Sha1Git> = chunk
            .iter()
            .map(|r| r.content)
            .filter(|c| !cache.contains_key(c))
            .collect();
        todo.sort_unstable();
        todo.dedup();
        let text = |id: &Sha1Git| -> Result<Option<String>, LicenseError> {
            let bytes = read(*id, join, store)?;
            Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
        };
        let matched = match_texts(detector, &todo, text, &mut shapes, &mut counts)?;
        for (id, found) in matched {
            counts.texts_unreadable += found.is_none() as u64;
            cache.insert(id, found.unwrap_or_default());
        }
        let mut i = 0;
        while i < chunk.len() {
            let rev = chunk[i].revision;
            let mut found: Vec<Found> = Vec::new();
            while i < chunk.len() && chunk[i].revision == rev {
                counts.files += 1;
                for f in cache.get(&chunk[i].content).into_iter().flatten() {
                    add_found(&mut found, *f);
                }
                i += 1;
            }
            counts.revisions += 1;
            out.push(&record(detector, rev, found))?;
        }
        pl.update_with_count(chunk.len());
    }
    pl.done();
    out.finish()?;
    counts.micros = start.elapsed().as_micros() as u64;
    let table = Table {
        file: FlatFile::open(&path)?,
        names: detector.names.clone(),
    };
    Ok((table, counts))
}

/// Answers by shape key: the licenses found and the n-grams of the text they were found in,
/// kept only when the answer depends on the n-grams alone.
type Shapes = HashMap<u64, (Vec<Found>, TextData)>;

/// Each text's licenses (`None`: unreadable).
type Answers = Vec<(Sha1Git, Option<Vec<Found>>)>;

/// The key under which texts that may differ only in their copyright lines meet: the text,
/// lower-cased, without its lines that name a copyright, every run of blanks one space.
/// Equal keys only propose a shared answer; [`match_texts`] checks the n-grams.
fn shape_key(text: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for line in text.lines() {
        let lower = line.to_lowercase();
        if lower.contains("copyright") || lower.contains("(c)") || lower.contains('\u{a9}') {
            continue;
        }
        for word in lower.split_whitespace() {
            h.update(word.as_bytes());
            h.update(b" ");
        }
    }
    h.digest()
}

/// The licenses of each distinct text of `todo` (`None`: unreadable). A text is matched
/// against the SPDX texts unless an earlier text of its shape was answered from its n-grams
/// alone and has exactly its n-grams: then the answer is that text's, the same one the
/// matcher would give. Most license files are a standard text with their own copyright line,
/// which the matcher's normalisation drops, so a few matches answer most files.
fn match_texts(
    detector: &Detector,
    todo: &[Sha1Git],
    text: impl Fn(&Sha1Git) -> Result<Option<String>, LicenseError> + Sync,
    shapes: &mut Shapes,
    counts: &mut LicenseCounts,
) -> Result<Answers, LicenseError> {
    // Keys first, holding no text: a chunk's texts may be large.
    let keyed: Vec<(Sha1Git, Option<u64>)> = todo
        .par_iter()
        .map(|id| Ok((*id, text(id)?.map(|t| shape_key(&t)))))
        .collect::<Result<_, LicenseError>>()?;
    let mut out = Vec::with_capacity(todo.len());
    let (mut firsts, mut others) = (Vec::new(), Vec::new());
    let mut proposed = std::collections::HashSet::new();
    for (id, key) in keyed {
        match key {
            None => out.push((id, None)),
            Some(k) if shapes.contains_key(&k) || !proposed.insert(k) => others.push((id, k)),
            Some(k) => firsts.push((id, k)),
        }
    }
    // The first text of each new shape is matched, and its n-grams kept when they decide:
    // each gives its answer and the n-grams to remember.
    type Matched = (Vec<Found>, Option<TextData>);
    let first: Vec<(Sha1Git, u64, Option<Matched>)> = firsts
        .par_iter()
        .map(|&(id, k)| {
            let answer = text(&id)?.map(|t| {
                let data = TextData::new(&t);
                let (found, whole) = detector.answer(&data);
                let keep = whole && t.len() <= SHAPE_BYTES;
                (found, keep.then(|| data.without_text()))
            });
            Ok((id, k, answer))
        })
        .collect::<Result<_, LicenseError>>()?;
    counts.texts_matched += first.len() as u64;
    for (id, k, answer) in first {
        let found = answer.map(|(found, data)| {
            if let Some(d) = data.filter(|_| shapes.len() < SHAPES) {
                shapes.insert(k, (found.clone(), d));
            }
            found
        });
        out.push((id, found));
    }
    // The others reuse their shape's answer when their n-grams are the same.
    let shapes = &*shapes;
    // Each gives its answer and whether it was reused.
    type Reused = (Vec<Found>, bool);
    let rest: Vec<(Sha1Git, Option<Reused>)> = others
        .par_iter()
        .map(|&(id, k)| {
            let answer = text(&id)?.map(|t| {
                let data = TextData::new(&t);
                match shapes.get(&k) {
                    Some((found, seen)) if seen.ngram_matches(&data) => (found.clone(), true),
                    _ => (detector.answer(&data).0, false),
                }
            });
            Ok((id, answer))
        })
        .collect::<Result<_, LicenseError>>()?;
    for (id, answer) in rest {
        let found = answer.map(|(found, reused)| {
            match reused {
                true => counts.texts_reused += 1,
                false => counts.texts_matched += 1,
            }
            found
        });
        out.push((id, found));
    }
    Ok(out)
}

/// The record of `revision` with the licenses `found` in its files.
fn record(detector: &Detector, revision: Sha1Git, mut found: Vec<Found>) -> Detected {
    found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    found.truncate(MAX_LICENSES);
    let kind = detector.kind(&found);
    let confidence = found.iter().map(|f| f.1).fold(f32::INFINITY, f32::min);
    found.sort_by_key(|f| f.0);
    let mut ids = [0u16; MAX_LICENSES];
    for (slot, f) in ids.iter_mut().zip(&found) {
        *slot = f.0;
    }
    Detected {
        revision,
        kind,
        count: found.len() as u8,
        ids,
        confidence: if found.is_empty() { 0.0 } else { confidence },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(d: &Detector, found: &[Found]) -> Vec<String> {
        found
            .iter()
            .map(|f| d.names()[f.0 as usize].clone())
            .collect()
    }

    #[test]
    fn canonical_texts_are_detected_and_classified() {
        let d = Detector::new(0.8).unwrap();
        let mit =
            "MIT License\n\nCopyright (c) 2024 Jane Doe\n\nPermission is hereby granted, free \
                   of charge, to any person obtaining a copy of this software and associated \
                   documentation files (the \"Software\"), to deal in the Software without \
                   restriction, including without limitation the rights to use, copy, modify, \
                   merge, publish, distribute, sublicense, and/or sell copies of the Software, \
                   and to permit persons to whom the Software is furnished to do so, subject to \
                   the following conditions:\n\nThe above copyright notice and this permission \
                   notice shall be included in all copies or substantial portions of the \
                   Software.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY \
                   KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF \
                   MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO \
                   EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES \
                   OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, \
                   ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER \
                   DEALINGS IN THE SOFTWARE.\n";
        let found = d.detect(mit);
        assert_eq!(names(&d, &found), ["MIT"]);
        assert!(found[0].1 > 0.9);
        assert_eq!(d.kind(&found), LicenseType::Permissive);
        let none = d.detect("This is a README, not a license.\n");
        assert!(none.is_empty());
        assert_eq!(d.kind(&none), LicenseType::NoLicense);
    }

    /// Texts that differ only in their copyright line take the first one's answer; a text of
    /// the same shape whose n-grams differ, or whose shape's answer needed a search (which
    /// depends on the lines, not only the n-grams), is matched; every answer is the one the
    /// matcher gives the text alone.
    #[test]
    fn texts_of_one_shape_share_the_matchers_answer() {
        let d = Detector::new(0.8).unwrap();
        let mit = spdx::text::LICENSE_TEXTS
            .iter()
            .find(|(n, _)| *n == "MIT")
            .unwrap()
            .1;
        let with = |line: &str| mit.replacen("Copyright (c) <year> <copyright holders>", line, 1);
        let texts: Vec<(Sha1Git, Option<String>)> = vec![
            (Sha1Git([1; 20]), Some(with("Copyright (c) 2024 Jane Doe"))),
            (
                Sha1Git([2; 20]),
                Some(with("Copyright (c) 2011 Someone Else")),
            ),
            // Same shape (the `(c)` line is left out of the key), other n-grams.
            (
                Sha1Git([3; 20]),
                Some(with(
                    "Copyright (c) 1999 X\nPortions (c) vendored zlib parts, see below",
                )),
            ),
            // Not a license as a whole: the matcher searches a stretch.
            (
                Sha1Git([4; 20]),
                Some(format!(
                    "{}\n\nBundled tools\n{}",
                    "x ".repeat(400),
                    with("Copyright 2020 Y")
                )),
            ),
            // Its shape and n-grams, other line breaks: a searched answer depends on the
            // lines, so it is never reused.
            (
                Sha1Git([7; 20]),
                Some(format!(
                    "{}\n\nBundled tools\n{}",
                    format!("{}\n", "x ".repeat(20)).repeat(20),
                    with("Copyright 2020 Y")
                )),
            ),
            (Sha1Git([5; 20]), None),
        ];
        let text = |id: &Sha1Git| -> Result<Option<String>, LicenseError> {
            Ok(texts
                .iter()
                .find(|(i, _)| i == id)
                .and_then(|(_, t)| t.clone()))
        };
        let ids: Vec<Sha1Git> = texts.iter().map(|(i, _)| *i).collect();
        let mut shapes = Shapes::new();
        let mut counts = LicenseCounts::default();
        let got = match_texts(&d, &ids, text, &mut shapes, &mut counts).unwrap();
        assert_eq!(got.len(), texts.len());
        for (id, found) in &got {
            let t = texts.iter().find(|(i, _)| i == id).unwrap().1.as_deref();
            assert_eq!(
                found.as_deref(),
                t.map(|t| d.detect(t)).as_deref(),
                "{id:?}"
            );
        }
        assert_eq!(
            names(
                &d,
                got.iter()
                    .find(|g| g.0 == ids[1])
                    .unwrap()
                    .1
                    .as_ref()
                    .unwrap()
            ),
            ["MIT"]
        );
        assert_eq!((counts.texts_matched, counts.texts_reused), (4, 1));
        // A later chunk reuses the remembered shape.
        let later = with("Copyright (c) 2001-2003 The Later Authors");
        let text =
            |_: &Sha1Git| -> Result<Option<String>, LicenseError> { Ok(Some(later.clone())) };
        let got = match_texts(&d, &[Sha1Git([6; 20])], text, &mut shapes, &mut counts).unwrap();
        assert_eq!(got[0].1.as_deref(), Some(d.detect(&later).as_slice()));
        assert_eq!((counts.texts_matched, counts.texts_reused), (4, 2));
    }

    #[test]
    fn gnu_variants_report_the_bare_id_and_records_round_trip() {
        assert_eq!(canonical("GPL-3.0-or-later"), "GPL-3.0");
        assert_eq!(canonical("LGPL-2.1-only"), "LGPL-2.1");
        assert_eq!(canonical("MIT"), "MIT");
        let d = Detector::new(0.8).unwrap();
        let gpl = d.index("GPL-3.0").unwrap();
        let mit = d.index("MIT").unwrap();
        assert_eq!(d.kind(&[(mit, 0.9), (gpl, 0.95)]), LicenseType::Copyleft);
        let r = record(&d, Sha1Git([7; 20]), vec![(gpl, 0.95), (mit, 0.9)]);
        assert_eq!(
            (r.kind, r.count, r.confidence),
            (LicenseType::Copyleft, 2, 0.9)
        );
        let mut b = [0u8; Detected::SIZE];
        r.write_to(&mut b);
        assert_eq!(Detected::read_from(&b), r);
    }
}
