//! Tag names read as versions, ordered as semver orders them.
//!
//! Tags in the wild are `v1.2.3`, `1.2`, `release-2.0.1`, `requests-2.31.0`, `v2.0.0-rc.1`,
//! `1.0rc1` (PEP 440) or `v1.2.3+build`. A tag is a version when, after an optional prefix
//! ending in a non-digit (`v`, `release-`, `name-`), it starts with a dot-separated run of
//! numbers; what follows the numbers is its pre-release (`-rc.1`, `rc1`, `.beta2`) unless it
//! is only build metadata (`+...`), which semver ignores in ordering. A version with a
//! pre-release sorts before the same numbers without one; pre-release identifiers compare
//! numerically when both are numbers, else as text, numbers first (semver 11.4). Missing
//! numeric components count as zero (`1.2` == `1.2.0`), and the tag name breaks ties so the
//! order is total.

use std::cmp::Ordering;

/// A tag name read as a version. Equality is the order's (`1.2` == `1.2.0`).
#[derive(Debug, Clone)]
pub struct Version {
    /// The numeric components (`[1, 2, 3]`).
    pub numbers: Vec<u64>,
    /// Pre-release identifiers (`["rc", "1"]`); empty for a release.
    pub pre: Vec<String>,
}

/// Reads `tag` (without `refs/tags/`) as a version, or `None` when it is not one.
pub fn parse(tag: &str) -> Option<Version> {
    let tag = tag.split('+').next().unwrap_or(tag);
    let start = tag.find(|c: char| c.is_ascii_digit())?;
    let prefix = &tag[..start];
    // A prefix must end the word before the number: `v1`, `release-1`, `name_1`, but not
    // `py3k` in the middle of a word like `abc3` (a name, not a version).
    if !(prefix.is_empty()
        || prefix.eq_ignore_ascii_case("v")
        || prefix.ends_with(['-', '_', '/', '.']))
    {
        return None;
    }
    let rest = &tag[start..];
    let mut numbers = Vec::new();
    let mut end = 0;
    for part in rest.split('.') {
        let digits = part.len() - part.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            break;
        }
        // More than 18 digits is not a version component (a date-time, a hash).
        numbers.push(part[..digits].parse().ok()?);
        end += digits;
        if digits < part.len() {
            break;
        }
        end += 1;
    }
    let pre = rest.get(end.min(rest.len())..).unwrap_or("");
    let pre = pre.trim_start_matches(['-', '.', '_']);
    let pre: Vec<String> = split_identifiers(pre);
    Some(Version { numbers, pre })
}

/// `rc.1`, `rc1`, `beta-2` -> identifiers, splitting at separators and between letters and
/// digits (so `rc10` sorts after `rc9`).
fn split_identifiers(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in s.split(['.', '-', '_']).filter(|p| !p.is_empty()) {
        let mut cur = String::new();
        for c in part.chars() {
            if !cur.is_empty() && cur.ends_with(|p: char| p.is_ascii_digit()) != c.is_ascii_digit()
            {
                out.push(std::mem::take(&mut cur));
            }
            cur.push(c);
        }
        out.push(cur);
    }
    out
}

impl Version {
    /// -1 before the release (`rc1`, `beta`), 0 the release itself (nothing, or `final`,
    /// `ga`, `stable`, `release`), 1 after it (PEP 440 `post1`, `1.0-1`, `p2`, `patch3`,
    /// `rev4`).
    fn phase(&self) -> i8 {
        let Some(first) = self.pre.first() else {
            return 0;
        };
        let word = first.to_ascii_lowercase();
        match word.as_str() {
            "final" | "ga" | "stable" | "release" if self.pre.len() == 1 => 0,
            "post" | "p" | "pl" | "patch" | "r" | "rev" => 1,
            _ if word.bytes().all(|b| b.is_ascii_digit()) => 1,
            _ => -1,
        }
    }
}

fn compare_identifier(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()),
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.numbers.len().max(other.numbers.len());
        for i in 0..n {
            let a = self.numbers.get(i).copied().unwrap_or(0);
            let b = other.numbers.get(i).copied().unwrap_or(0);
            if a != b {
                return a.cmp(&b);
            }
        }
        match self.phase().cmp(&other.phase()) {
            Ordering::Equal => {}
            c => return c,
        }
        // Within a phase: the identifiers (a lone neutral word compares as the release).
        let neutral = |v: &Version| v.phase() == 0;
        match (
            self.pre.is_empty() || neutral(self),
            other.pre.is_empty() || neutral(other),
        ) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (a, b) in self.pre.iter().zip(&other.pre) {
                    let c = compare_identifier(a, b);
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                self.pre.len().cmp(&other.pre.len())
            }
        }
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(tags: &[&str]) -> Vec<String> {
        let mut v: Vec<(Version, &str)> = tags.iter().map(|t| (parse(t).unwrap(), *t)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
        v.into_iter().map(|(_, t)| t.to_string()).collect()
    }

    #[test]
    fn semver_order_with_pre_releases() {
        // The example of semver 11.4, shuffled, with prefixes.
        let got = sorted(&[
            "v1.0.0",
            "1.0.0-rc.1",
            "v1.0.0-beta.11",
            "1.0.0-alpha.beta",
            "1.0.0-alpha",
            "1.0.0-beta.2",
            "1.0.0-alpha.1",
            "1.0.0-beta",
        ]);
        assert_eq!(
            got,
            [
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "v1.0.0-beta.11",
                "1.0.0-rc.1",
                "v1.0.0",
            ]
        );
    }

    #[test]
    fn numbers_compare_as_numbers_and_prefixes_are_read() {
        assert_eq!(
            sorted(&[
                "v1.10",
                "v1.9.1",
                "release-1.2",
                "requests-2.0",
                "1.0rc10",
                "1.0rc9"
            ]),
            [
                "1.0rc9",
                "1.0rc10",
                "release-1.2",
                "v1.9.1",
                "v1.10",
                "requests-2.0"
            ]
        );
        assert_eq!(parse("1.2+build.5").unwrap(), parse("1.2.0").unwrap());
        assert_eq!(
            sorted(&["1.0.post1", "1.0", "1.0rc1", "1.0.post2", "1.1a1"]),
            ["1.0rc1", "1.0", "1.0.post1", "1.0.post2", "1.1a1"]
        );
        assert_eq!(parse("2.0-final").unwrap(), parse("2.0").unwrap());
    }

    #[test]
    fn names_are_not_versions() {
        for t in ["latest", "stable", "abc3", "", "v", "release"] {
            assert!(parse(t).is_none(), "{t}");
        }
        assert!(parse("99999999999999999999999").is_none());
    }
}
