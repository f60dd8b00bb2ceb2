//! The names a repository's license files go by at its root.
//!
//! The label pass keeps directory entries by exact name (one bit per label name of the
//! graph), so license files are found by a fixed list of spellings rather than a pattern:
//! every stem below, in upper, lower and capitalised case, bare or with a text extension.
//! GitHub's licensee looks for the same families (LICENSE, LICENCE, COPYING, COPYRIGHT,
//! UNLICENSE, per-license files such as LICENSE-MIT).

use std::sync::OnceLock;

/// Stems of license file names, upper case.
const STEMS: [&str; 25] = [
    "LICENSE",
    "LICENCE",
    "COPYING",
    "COPYRIGHT",
    "UNLICENSE",
    "COPYING.LESSER",
    "COPYING.LIB",
    "COPYING3",
    "COPYING2",
    "LICENSE-MIT",
    "LICENSE_MIT",
    "LICENSE.MIT",
    "MIT-LICENSE",
    "LICENSE-APACHE",
    "LICENSE_APACHE",
    "LICENSE.APACHE",
    "LICENSE-APACHE-2.0",
    "LICENSE-GPL",
    "LICENSE.GPL",
    "LICENSE-LGPL",
    "LICENSE-BSD",
    "LICENSE.BSD",
    "LICENSE-MPL",
    "GPL",
    "LGPL",
];

/// Extensions a license file may carry.
const EXTENSIONS: [&str; 6] = ["", ".md", ".txt", ".rst", ".markdown", ".org"];

/// Every license file name looked for at a repository's root, sorted, each once.
pub fn file_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = Vec::new();
        for stem in STEMS {
            let lower = stem.to_ascii_lowercase();
            let capital = capitalise(&lower);
            for s in [stem.to_string(), lower, capital] {
                for e in EXTENSIONS {
                    names.push(format!("{s}{e}"));
                    // `LICENSE.TXT`: an upper-case name often has an upper-case extension.
                    if s == stem {
                        names.push(format!("{s}{}", e.to_ascii_uppercase()));
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
    })
}

/// `word` with its first letter and every letter after a separator in upper case
/// (`license-mit` -> `License-Mit`), as people capitalise file names.
fn capitalise(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut start = true;
    for c in word.chars() {
        out.push(if start { c.to_ascii_uppercase() } else { c });
        start = matches!(c, '-' | '_' | '.');
    }
    out
}

/// The index of `name` in [`file_names`], if it is a license file name.
pub fn file_index(name: &str) -> Option<u16> {
    file_names()
        .binary_search_by(|n| n.as_str().cmp(name))
        .ok()
        .and_then(|i| u16::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_spellings_are_license_names_and_others_are_not() {
        for name in [
            "LICENSE",
            "LICENSE.md",
            "LICENSE.txt",
            "license",
            "License.txt",
            "LICENCE",
            "COPYING",
            "COPYING.LESSER",
            "LICENSE-MIT",
            "LICENSE-APACHE",
            "UNLICENSE",
            "copying.txt",
            "LICENSE.TXT",
        ] {
            assert!(file_index(name).is_some(), "{name}");
        }
        for name in ["README.md", "src", "LICENSE.rs", "licenses.json", ""] {
            assert!(file_index(name).is_none(), "{name}");
        }
        let names = file_names();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert!(names.len() < u16::MAX as usize);
    }
}
