//! `--repo URL=PATH[@VISIT_TIME]` arguments.

use std::path::PathBuf;

use super::ArchiveError;

/// Visits without a time are placed at this instant (2024-01-01T00:00:00Z), one second apart
/// in the order given, so that a build without times is still reproducible.
pub const DEFAULT_VISIT_TIME: i64 = 1_704_067_200;

/// Visit labels of swh-graph hold the time in 36 bits of which dates from 2038 on overflow
/// the export's signed 32-bit range; we refuse them up front instead of failing mid-build.
pub const MAX_VISIT_TIME: i64 = i32::MAX as i64;

/// One visit of a repository: which URL it is archived under, where it is read from, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepoSpec {
    /// Origin URL.
    pub url: String,
    /// Local path of the git repository.
    pub path: PathBuf,
    /// Visit time, seconds since the epoch (UTC); `None` for the default.
    pub visit_time: Option<i64>,
}

impl RepoSpec {
    /// Parses `URL=PATH[@VISIT_TIME]`.
    ///
    /// The URL ends at the first `=`. A trailing `@...` is a visit time only when it parses as
    /// one (`2024-05-01`, `2024-05-01T12:00:00Z` or Unix seconds); otherwise it is part of the path.
    pub fn parse(arg: &str) -> Result<Self, ArchiveError> {
        let bad = |reason: &str| ArchiveError::BadRepoArg {
            arg: arg.to_string(),
            reason: reason.to_string(),
        };
        let (url, rest) = arg
            .split_once('=')
            .ok_or_else(|| bad("expected URL=PATH[@VISIT_TIME]"))?;
        let scheme_ok = url
            .split_once("://")
            .is_some_and(|(scheme, host)| !scheme.is_empty() && !host.is_empty());
        if !scheme_ok || url.chars().any(char::is_whitespace) {
            return Err(bad("the URL must look like https://host/path"));
        }
        let (path, visit_time) = match rest.rsplit_once('@') {
            Some((path, time)) if !path.is_empty() => match parse_time(time) {
                Some(t) => (path, Some(t)),
                None if looks_like_time(time) => {
                    return Err(bad(&format!("cannot read visit time {time:?}")))
                }
                None => (rest, None),
            },
            _ => (rest, None),
        };
        if path.is_empty() {
            return Err(bad("the PATH is empty"));
        }
        if let Some(t) = visit_time {
            if !(0..=MAX_VISIT_TIME).contains(&t) {
                return Err(bad("the visit time must lie between 1970 and 2038"));
            }
        }
        Ok(Self {
            url: url.to_string(),
            path: PathBuf::from(path),
            visit_time,
        })
    }
}

fn looks_like_time(s: &str) -> bool {
    s.len() >= 4 && s.chars().take(4).all(|c| c.is_ascii_digit())
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS[Z]` (UTC) or integer Unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        return s.parse().ok();
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let b = s.as_bytes();
    if s.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    let rest = &s[10..];
    if !rest.is_empty() {
        let t = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
        let t = t.strip_suffix('Z').unwrap_or(t);
        let tb = t.as_bytes();
        if t.len() != 8 || tb[2] != b':' || tb[5] != b':' {
            return None;
        }
        let (h, mi, se): (i64, i64, i64) = (
            t[0..2].parse().ok()?,
            t[3..5].parse().ok()?,
            t[6..8].parse().ok()?,
        );
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + se;
    }
    Some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s = RepoSpec::parse("https://github.com/a/b=/tmp/x@2020-01-02").unwrap();
        assert_eq!(s.url, "https://github.com/a/b");
        assert_eq!(s.path, PathBuf::from("/tmp/x"));
        assert_eq!(s.visit_time, Some(1_577_923_200));
        let s = RepoSpec::parse("https://h/r=/tmp/me@home").unwrap();
        assert_eq!(s.path, PathBuf::from("/tmp/me@home"));
        assert_eq!(s.visit_time, None);
        let s = RepoSpec::parse("https://h/r=/p@2020-01-02T03:04:05Z").unwrap();
        assert_eq!(s.visit_time, Some(1_577_923_200 + 3 * 3600 + 4 * 60 + 5));
        assert_eq!(
            RepoSpec::parse("https://h/r=/p@1600000000")
                .unwrap()
                .visit_time,
            Some(1_600_000_000)
        );
    }

    #[test]
    fn rejects_malformed_specs() {
        for bad in [
            "no-equals",
            "notaurl=/tmp/x",
            "https://h/r=",
            "https://h/r=/p@2040-01-01",
            "https://h/r=/p@2020-13-01",
        ] {
            let err = RepoSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains("--repo"), "{bad}: {err}");
        }
    }
}
