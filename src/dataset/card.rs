//! The dataset's card (`README.md`, with the YAML front matter Hugging Face reads: one config
//! per language and `default` for all) and `metadata.json` (source, options, counts, and the
//! size and sha256 of every file).

use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use sha2::Digest;

use super::funnel::Stage;
use super::layout::{LanguageFiles, DATA};
use crate::config::DatasetOptions;
use crate::model::Status;

/// The card's file.
pub const CARD: &str = "README.md";
/// The metadata file.
pub const METADATA: &str = "metadata.json";
/// The funnel picture.
pub const FUNNEL: &str = "funnel.png";

/// Bytes per token assumed for the approximate token counts (code averages 3 to 4 bytes per
/// token with the usual BPE vocabularies).
pub const BYTES_PER_TOKEN: u64 = 4;

/// What the card and the metadata say.
pub struct Summary<'a> {
    /// Where the rows came from, in words (the metadata file, the graph export).
    pub source: &'a str,
    /// The funnel.
    pub stages: &'a [Stage],
    /// The languages written.
    pub languages: &'a [LanguageFiles],
    /// Rows removed per dataset rule, and per export status, for the rows that have one.
    pub removed: &'a [(&'static str, u64)],
    /// Kept rows per license type, and per SPDX id (when unearth detected them).
    pub licenses: &'a LicenseSummary,
    /// The options.
    pub options: &'a DatasetOptions,
}

/// Kept rows per license type and per detected SPDX id.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LicenseSummary {
    /// Rows per `license_type` (`unknown` when the rows have none).
    pub types: std::collections::BTreeMap<String, u64>,
    /// Rows per SPDX id in `detected_licenses` (a row with two counts for both).
    pub ids: std::collections::BTreeMap<String, u64>,
}

/// SPDX ids listed in the card, most rows first.
const CARD_LICENSES: usize = 20;

/// A YAML double-quoted string.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The card's text.
pub fn card(s: &Summary) -> String {
    let mut t = String::from("---\nconfigs:\n");
    t.push_str("- config_name: default\n  default: true\n  data_files:\n  - split: train\n");
    let _ = writeln!(t, "    path: {}", quoted(&format!("{DATA}/*/*.parquet")));
    for l in s.languages {
        let _ = writeln!(t, "- config_name: {}", quoted(&l.language));
        t.push_str("  data_files:\n  - split: train\n");
        let _ = writeln!(
            t,
            "    path: {}",
            quoted(&format!("{DATA}/{}/*.parquet", l.folder))
        );
    }
    t.push_str("tags:\n- code\n---\n\n# Code dataset rebuilt from Software Heritage\n\n");
    let _ = writeln!(
        t,
        "Made by unearth {} from {}.\n",
        env!("CARGO_PKG_VERSION"),
        s.source
    );
    t.push_str(
        "Load it with `datasets.load_dataset(\"<this folder>\", \"<language>\")` (or the \
         `default` config for every language), or open `data/` with `pyarrow.dataset`.\n\n",
    );
    t.push_str("## Where the rows went\n\n![funnel](funnel.png)\n\n");
    t.push_str("| step | rows left | removed |\n|---|---:|---:|\n");
    for st in s.stages {
        let _ = writeln!(t, "| {} | {} | {} |", st.step, st.rows, st.removed);
    }
    t.push_str("\n## Languages\n\n");
    let _ = writeln!(
        t,
        "| language | rows | bytes | approx. tokens | files |\n|---|---:|---:|---:|---:|"
    );
    for l in s.languages {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            l.language.replace('|', "\\|"),
            l.rows,
            l.bytes,
            l.bytes / BYTES_PER_TOKEN,
            l.files.len()
        );
    }
    let _ = writeln!(t, "\nTokens are approximated as bytes / {BYTES_PER_TOKEN}.");
    if !s.removed.is_empty() {
        t.push_str("\n## Removed rows, by reason\n\n| reason | rows |\n|---|---:|\n");
        for (why, n) in s.removed {
            let _ = writeln!(t, "| {why} | {n} |");
        }
    }
    if !s.licenses.types.is_empty() {
        t.push_str("\n## Licenses\n\n| license_type | rows |\n|---|---:|\n");
        for (kind, n) in &s.licenses.types {
            let _ = writeln!(t, "| {kind} | {n} |");
        }
        let mut ids: Vec<(&String, &u64)> = s.licenses.ids.iter().collect();
        ids.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if !ids.is_empty() {
            t.push_str("\n| detected license (SPDX) | rows |\n|---|---:|\n");
            for (id, n) in ids.iter().take(CARD_LICENSES) {
                let _ = writeln!(t, "| {id} | {n} |");
            }
        }
    }
    let o = s.options;
    t.push_str("\n## How it was made\n\n");
    let _ = writeln!(
        t,
        "- Language: file names and extensions, then content heuristics for ambiguous \
         extensions (`.h`, `.m`, `.pl`, `.ts`, `.inc`, `.v`); `is_vendor` and `is_generated` \
         from paths and markers."
    );
    let _ = writeln!(
        t,
        "- Filters: max line length {}, max mean line length {}, min alphanumeric fraction \
         {}, generated files {}, vendored files {}.",
        o.max_line_length,
        o.max_avg_line_length,
        o.min_alphanum_fraction,
        if o.drop_generated { "removed" } else { "kept" },
        if o.drop_vendor { "removed" } else { "kept" },
    );
    let _ = writeln!(
        t,
        "- Dedup: exact by sha1 {}; near with MinHash LSH {} ({}-word shingles, {} \
         permutations, Jaccard {}), one row kept per cluster (`dedup_cluster`).",
        if o.exact_dedup { "on" } else { "off" },
        if o.near_dedup { "on" } else { "off" },
        o.minhash.shingle,
        o.minhash.permutations,
        o.minhash.threshold
    );
    let _ = writeln!(
        t,
        "- Licenses: each repository's license files at the root of the resolved revision \
         (LICENSE, COPYING, ... in their usual spellings) matched with askalono's matcher \
         against the SPDX license texts (score above {}); `license_type` is copyleft if any \
         detected license is, permissive if all are OSI-approved or FSF-free, otherwise other; \
         no_license when none is recognised.{}",
        o.license_threshold,
        if o.license_types.is_empty() {
            String::new()
        } else {
            let kept: Vec<&str> = o.license_types.iter().map(|k| k.as_str()).collect();
            format!(" Kept license types: {}.", kept.join(", "))
        }
    );
    t.push_str(
        "- Every file's bytes were verified against their Software Heritage ids when \
         fetched and when read back. Sizes and sha256 of every file: `metadata.json`.\n",
    );
    t
}

/// Writes the card into `root`.
pub fn write_card(root: &Path, s: &Summary) -> std::io::Result<()> {
    std::fs::write(root.join(CARD), card(s))
}

/// The sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// One file in `metadata.json`.
#[derive(Debug, serde::Serialize)]
struct FileEntry {
    path: String,
    bytes: u64,
    sha256: String,
}

/// Writes `metadata.json` into `root`: `source` (any JSON), the options, the funnel, the
/// languages, the removals, and every file under `data/` with its size and sha256.
pub fn write_metadata(root: &Path, s: &Summary, source: serde_json::Value) -> std::io::Result<()> {
    let mut files = Vec::new();
    for l in s.languages {
        for rel in &l.files {
            let path = root.join(rel);
            files.push(FileEntry {
                path: rel.clone(),
                bytes: std::fs::metadata(&path)?.len(),
                sha256: sha256_file(&path)?,
            });
        }
    }
    let languages: Vec<serde_json::Value> = s
        .languages
        .iter()
        .map(|l| {
            serde_json::json!({
                "language": l.language, "folder": format!("{DATA}/{}", l.folder),
                "rows": l.rows, "bytes": l.bytes,
                "approx_tokens": l.bytes / BYTES_PER_TOKEN, "files": l.files.len(),
            })
        })
        .collect();
    let removed: serde_json::Map<String, serde_json::Value> = s
        .removed
        .iter()
        .map(|(k, v)| (k.to_string(), (*v).into()))
        .collect();
    let doc = serde_json::json!({
        "tool": "unearth",
        "version": env!("CARGO_PKG_VERSION"),
        "source": source,
        "options": s.options,
        "funnel": s.stages,
        "languages": languages,
        "removed": removed,
        "licenses": s.licenses,
        "files": files,
    });
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    std::fs::write(root.join(METADATA), text + "\n")
}
