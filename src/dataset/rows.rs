//! What the dataset knows of one file from its path and text, and the filters that decide
//! whether it is kept.

use crate::config::DatasetOptions;
use crate::model::{DatasetStatus, LicenseType};
use crate::phases::language::{quality, Quality};

use super::linguist;

/// The columns computed from a file's path and text.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// Language (linguist's method), if detected.
    pub language: Option<&'static str>,
    /// The file name's extension, lower case, without the dot (empty when none).
    pub extension: String,
    /// A vendored file (third-party code copied into the repository).
    pub is_vendor: bool,
    /// A generated file.
    pub is_generated: bool,
    /// The Stack's quality columns.
    pub quality: Quality,
}

/// The derived columns of the file at `path` with text `text`.
pub fn derive(path: &str, text: &str) -> Derived {
    let bytes = Some(text.as_bytes());
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    };
    Derived {
        language: linguist::detect(path, bytes),
        extension,
        is_vendor: linguist::is_vendor(path),
        is_generated: linguist::is_generated(path, bytes),
        quality: quality(text),
    }
}

/// The language folder and config name of a detected language (or of none).
pub fn language_name(language: Option<&str>) -> &str {
    language.unwrap_or("unknown")
}

/// The first filter of `o` that removes a file whose repository's license type is `license`
/// (unknown: `None`), or [`DatasetStatus::Kept`].
pub fn verdict(d: &Derived, license: Option<LicenseType>, o: &DatasetOptions) -> DatasetStatus {
    let name = match d.language {
        Some(l) => l,
        None if o.keep_unknown_language => language_name(None),
        None => return DatasetStatus::UnknownLanguage,
    };
    if !o.languages.is_empty() && !o.languages.iter().any(|l| l.eq_ignore_ascii_case(name)) {
        return DatasetStatus::LanguageExcluded;
    }
    if !o.license_types.is_empty() && !license.is_some_and(|l| o.license_types.contains(&l)) {
        return DatasetStatus::LicenseExcluded;
    }
    let q = &d.quality;
    if o.drop_vendor && d.is_vendor {
        DatasetStatus::Vendor
    } else if o.drop_generated && d.is_generated {
        DatasetStatus::Generated
    } else if o.max_line_length > 0 && q.max_line_length > o.max_line_length {
        DatasetStatus::LongLine
    } else if o.max_avg_line_length > 0.0 && q.avg_line_length > o.max_avg_line_length {
        DatasetStatus::LongLines
    } else if q.alphanum_fraction < o.min_alphanum_fraction {
        DatasetStatus::LowAlphanum
    } else {
        DatasetStatus::Kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_apply_in_order_with_their_reason() {
        let o = DatasetOptions::default();
        let code = "fn main() {\n    println!(\"hello\");\n}\n";
        let d = derive("src/main.rs", code);
        assert_eq!((d.language, d.extension.as_str()), (Some("Rust"), "rs"));
        assert_eq!(verdict(&d, None, &o), DatasetStatus::Kept);
        let long = format!("let x = \"{}\";\n", "a".repeat(2000));
        assert_eq!(
            verdict(&derive("a.rs", &long), None, &o),
            DatasetStatus::LongLine
        );
        let symbols = "{}[]();;;;====----++++\n".repeat(20);
        assert_eq!(
            verdict(&derive("a.rs", &symbols), None, &o),
            DatasetStatus::LowAlphanum
        );
        assert_eq!(
            verdict(&derive("notes.unknownext", code), None, &o),
            DatasetStatus::UnknownLanguage
        );
        let only_python = DatasetOptions {
            languages: vec!["python".into()],
            ..o.clone()
        };
        assert_eq!(
            verdict(&d, None, &only_python),
            DatasetStatus::LanguageExcluded
        );
        let vendored = derive("vendor/lib/x.rs", code);
        assert!(vendored.is_vendor);
        assert_eq!(verdict(&vendored, None, &o), DatasetStatus::Kept);
        let drop_vendor = DatasetOptions {
            drop_vendor: true,
            ..o
        };
        assert_eq!(
            verdict(&vendored, None, &drop_vendor),
            DatasetStatus::Vendor
        );
        let permissive_only = DatasetOptions {
            license_types: vec![LicenseType::Permissive],
            ..DatasetOptions::default()
        };
        let kept = verdict(&d, Some(LicenseType::Permissive), &permissive_only);
        assert_eq!(kept, DatasetStatus::Kept);
        for other in [
            Some(LicenseType::Copyleft),
            Some(LicenseType::NoLicense),
            None,
        ] {
            let st = verdict(&d, other, &permissive_only);
            assert_eq!(st, DatasetStatus::LicenseExcluded);
        }
    }
}
