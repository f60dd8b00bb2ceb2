//! The dataset's files: `data/<language>/train-NNNNN-of-MMMMM.parquet`, each holding about
//! `file_mb` of content, and nothing else under `data/`.
//!
//! One Parquet writer is open per language seen; their buffered row groups together stay
//! under [`BUFFERED`]: past it the largest is written out. Files are named `train-NNNNN` while
//! written and renamed with their language's count (`-of-MMMMM`) when the dataset is finished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::table::{self, TableError};

/// The folder of the Parquet files, under the dataset's root.
pub const DATA: &str = "data";

/// Buffered row groups of all open writers, in bytes.
pub const BUFFERED: usize = 256 << 20;

/// What one language holds once written.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LanguageFiles {
    /// The language (config name).
    pub language: String,
    /// Its folder under `data/`.
    pub folder: String,
    /// Rows.
    pub rows: u64,
    /// Content bytes.
    pub bytes: u64,
    /// Its files, relative to the dataset's root, in order.
    pub files: Vec<String>,
}

struct Open {
    writer: table::Writer,
    bytes: u64,
}

struct Language {
    files: LanguageFiles,
    open: Option<Open>,
}

/// Per-language Parquet files being written under `root/data/`.
pub struct Layout {
    root: PathBuf,
    schema: SchemaRef,
    file_bytes: u64,
    languages: BTreeMap<String, Language>,
}

/// The folder name of a language: its name with characters that are not safe in a path or a
/// glob replaced by `_`.
pub fn folder_name(language: &str) -> String {
    let name: String = language
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '+' | '#' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    // No hidden folders (readers skip them) and no `..`.
    match name.trim_start_matches('.') {
        "" => "_".to_string(),
        rest => rest.to_string(),
    }
}

impl Layout {
    /// Files of `schema` under `root/data/`, about `file_mb` MB of content each.
    pub fn new(root: &Path, schema: SchemaRef, file_mb: u64) -> Self {
        Self {
            root: root.to_owned(),
            schema,
            file_bytes: file_mb.max(1) << 20,
            languages: BTreeMap::new(),
        }
    }

    /// The schema of the files.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Appends `batch` (rows of `language`, whose contents are `lengths` bytes long) to the
    /// language's files, starting a new file where the current one reaches the size.
    pub fn write(
        &mut self,
        language: &str,
        batch: &RecordBatch,
        lengths: &[u64],
    ) -> Result<(), TableError> {
        if !self.languages.contains_key(language) {
            let folder = self.unique_folder(language);
            self.languages.insert(
                language.to_string(),
                Language {
                    files: LanguageFiles {
                        language: language.to_string(),
                        folder,
                        ..LanguageFiles::default()
                    },
                    open: None,
                },
            );
        }
        let (root, schema, limit) = (self.root.clone(), self.schema.clone(), self.file_bytes);
        let Some(lang) = self.languages.get_mut(language) else {
            return Ok(());
        };
        let mut start = 0;
        while start < batch.num_rows() {
            if lang.open.is_none() {
                let dir = root.join(DATA).join(&lang.files.folder);
                std::fs::create_dir_all(&dir).map_err(|e| TableError::io(&dir, e))?;
                let rel = format!(
                    "{DATA}/{}/train-{:05}.parquet",
                    lang.files.folder,
                    lang.files.files.len()
                );
                let writer = table::Writer::create(&root.join(&rel), schema.clone())?;
                lang.files.files.push(rel);
                lang.open = Some(Open { writer, bytes: 0 });
            }
            let Some(open) = lang.open.as_mut() else {
                break;
            };
            // Rows up to the size (at least one per file).
            let mut end = start;
            let mut bytes = open.bytes;
            while end < batch.num_rows() && (end == start && open.bytes == 0 || bytes < limit) {
                bytes += lengths.get(end).copied().unwrap_or(0);
                end += 1;
            }
            if end > start {
                open.writer.write(&batch.slice(start, end - start))?;
                lang.files.rows += (end - start) as u64;
                lang.files.bytes += bytes - open.bytes;
                open.bytes = bytes;
            }
            if open.bytes >= limit {
                if let Some(o) = lang.open.take() {
                    o.writer.close()?;
                }
            }
            start = end;
        }
        self.bound_buffers()
    }

    /// A folder name for `language` that no other language has.
    fn unique_folder(&self, language: &str) -> String {
        let base = folder_name(language);
        let taken = |f: &str| {
            self.languages
                .values()
                .any(|l| l.files.folder.eq_ignore_ascii_case(f))
        };
        let mut name = base.clone();
        let mut i = 2;
        while taken(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        name
    }

    /// Writes out the largest buffered row groups until all fit in [`BUFFERED`].
    fn bound_buffers(&mut self) -> Result<(), TableError> {
        loop {
            let open = self
                .languages
                .values_mut()
                .filter_map(|l| l.open.as_mut())
                .map(|o| &mut o.writer);
            let mut total = 0;
            let mut largest: Option<&mut table::Writer> = None;
            for w in open {
                total += w.buffered();
                if largest.as_ref().is_none_or(|l| l.buffered() < w.buffered()) {
                    largest = Some(w);
                }
            }
            match largest {
                Some(w) if total > BUFFERED && w.buffered() > 0 => w.flush()?,
                _ => return Ok(()),
            }
        }
    }

    /// Closes every file and names each with its language's count; returns the languages.
    pub fn finish(self) -> Result<Vec<LanguageFiles>, TableError> {
        let mut out = Vec::new();
        for (_, mut lang) in self.languages {
            if let Some(o) = lang.open.take() {
                o.writer.close()?;
            }
            let count = lang.files.files.len();
            for rel in lang.files.files.iter_mut() {
                let named = rel.replace(".parquet", &format!("-of-{count:05}.parquet"));
                let (from, to) = (self.root.join(&*rel), self.root.join(&named));
                std::fs::rename(&from, &to).map_err(|e| TableError::io(&from, e))?;
                *rel = named;
            }
            out.push(lang.files);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_safe_and_distinct() {
        assert_eq!(folder_name("C++"), "C++");
        assert_eq!(folder_name("Vim Script"), "Vim_Script");
        assert_eq!(folder_name("../x"), "_x");
        assert_eq!(folder_name("*"), "_");
        assert_eq!(folder_name(".."), "_");
    }
}
