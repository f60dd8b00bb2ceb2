//! Repository slugs and origin URLs, normalised the way GitHub resolves them.
//!
//! GitHub slugs are case-insensitive and `owner/name.git` names the same repository as
//! `owner/name`; Software Heritage records each origin URL in one spelling. So a slug and an
//! origin URL are compared by their normal forms: surrounding whitespace and slashes dropped,
//! a trailing `.git` dropped (in any case), lower case. A row's `(repo, commit)` pair is keyed
//! by the normalised slug, and origins are matched by their normalised URL, so that every
//! spelling of a repository finds every origin recorded for it (a re-cased rename has two).

/// `s` without a trailing `.git` in any case.
fn strip_git(s: &str) -> &str {
    let n = s.len();
    if n >= 4 && s.is_char_boundary(n - 4) && s[n - 4..].eq_ignore_ascii_case(".git") {
        &s[..n - 4]
    } else {
        s
    }
}

/// The normal form of a repository slug (`Psf/Requests.git ` -> `psf/requests`).
pub fn normalize_slug(slug: &str) -> String {
    let s = slug.trim().trim_matches('/');
    strip_git(s).trim_end_matches('/').to_lowercase()
}

/// The normal form of an origin URL (`https://github.com/Psf/Requests.git/` ->
/// `https://github.com/psf/requests`).
pub fn normalize_url(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    strip_git(u).trim_end_matches('/').to_lowercase()
}

/// The normalised origin URLs a normalised slug may be archived under, one per template
/// (`{slug}` replaced), without repeats.
pub fn origin_keys(slug: &str, templates: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in templates {
        let k = normalize_url(&t.replace("{slug}", slug));
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// A 128-bit hash of a key's bytes, for lookups in sorted tables (XXH3-128; tables check
/// that no two keys they hold share a hash).
pub fn key_hash(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// The key of a `(normalised slug, prefix)` pair.
pub fn pair_key(slug: &str, prefix: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(slug.len() + prefix.len() + 1);
    k.extend_from_slice(slug.as_bytes());
    k.push(0);
    k.extend_from_slice(prefix.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_repository_meet() {
        for s in [
            "psf/requests",
            "PSF/Requests",
            "psf/requests.git",
            "psf/requests.GIT",
            " psf/requests/ ",
            "/psf/requests.git/",
        ] {
            assert_eq!(normalize_slug(s), "psf/requests", "{s:?}");
        }
        for u in [
            "https://github.com/psf/requests",
            "https://github.com/PSF/Requests.git",
            "https://github.com/psf/requests/",
            "HTTPS://GITHUB.COM/psf/requests",
        ] {
            assert_eq!(normalize_url(u), "https://github.com/psf/requests", "{u:?}");
        }
        let t = ["https://github.com/{slug}".to_string()];
        assert_eq!(
            origin_keys(&normalize_slug("SoftwareHeritage/Swh-Graph"), &t),
            ["https://github.com/softwareheritage/swh-graph"]
        );
        assert_ne!(normalize_slug("a/b"), normalize_slug("a/bc"));
        // Multi-byte text never splits a character.
        assert_eq!(normalize_slug("é"), "é");
        assert_eq!(normalize_slug("ü.git"), "ü");
    }
}
