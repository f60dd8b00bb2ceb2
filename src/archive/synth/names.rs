//! Names for synthetic repositories: file and folder names drawn from Zipf-distributed
//! vocabularies (a few names are everywhere, most are rare, as in real code), and slugs.

use std::collections::HashMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// An interned name (index into [`Names`]).
pub type Name = u32;

/// Every name the generator used, interned: trees hold indexes, not bytes.
#[derive(Debug, Default)]
pub struct Names {
    list: Vec<Box<[u8]>>,
    index: HashMap<Box<[u8]>, Name>,
}

impl Names {
    /// The id of `name`, interning it.
    pub fn intern(&mut self, name: &[u8]) -> Name {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.list.len() as Name;
        self.list.push(name.into());
        self.index.insert(name.into(), id);
        id
    }

    /// The id of `name`, if it was ever used.
    pub fn get(&self, name: &[u8]) -> Option<Name> {
        self.index.get(name).copied()
    }

    /// The bytes of `id`.
    pub fn bytes(&self, id: Name) -> &[u8] {
        &self.list[id as usize]
    }

    /// `path` as `a/b/c`.
    pub fn path(&self, path: &[Name]) -> String {
        let parts: Vec<String> = path
            .iter()
            .map(|&n| String::from_utf8_lossy(self.bytes(n)).into_owned())
            .collect();
        parts.join("/")
    }
}

/// A Zipf(s) distribution over ranks `0..n`, sampled by inverting its cumulative weights.
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// Ranks `0..n` with weight `1 / (rank + 1)^s`.
    pub fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n.max(1))
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(s);
                total
            })
            .collect();
        Self { cumulative }
    }

    /// A rank.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let x = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c < x)
            .min(self.cumulative.len() - 1)
    }
}

const COMMON_STEMS: &[&str] = &[
    "index",
    "main",
    "utils",
    "__init__",
    "test",
    "config",
    "setup",
    "app",
    "server",
    "client",
    "types",
    "model",
    "view",
    "controller",
    "handler",
    "helpers",
    "constants",
    "api",
    "lib",
    "mod",
    "core",
    "base",
    "common",
    "util",
    "routes",
    "service",
    "parser",
    "README",
    "LICENSE",
    "Makefile",
    "build",
    "settings",
    "models",
    "views",
    "urls",
    "admin",
    "forms",
    "errors",
    "logger",
    "cli",
    "db",
    "schema",
    "user",
    "auth",
    "middleware",
    "store",
    "reducer",
    "actions",
    "styles",
    "theme",
    "layout",
    "header",
    "footer",
    "button",
    "form",
    "table",
    "list",
    "item",
    "page",
    "home",
];

const COMMON_DIRS: &[&str] = &[
    "src",
    "lib",
    "test",
    "tests",
    "docs",
    "include",
    "examples",
    "scripts",
    "utils",
    "core",
    "internal",
    "pkg",
    "cmd",
    "api",
    "app",
    "components",
    "assets",
    "static",
    "config",
    "build",
    "vendor",
    "resources",
    "main",
    "java",
    "com",
    "org",
    "python",
    "js",
    "css",
    "img",
    "templates",
    "models",
    "views",
    "controllers",
    "services",
    "handlers",
    "migrations",
    "fixtures",
    "bin",
    "tools",
    "data",
    "public",
    "server",
    "client",
    "common",
    "shared",
    "modules",
    "plugins",
];

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "to", "ne", "su", "vi", "da", "po", "ri", "zen", "tor", "mak", "lin",
    "sto", "fer", "gal", "quo", "bex", "cal", "dor", "ent", "hub", "ix", "jar", "kin", "lum",
];

/// Extensions per language, and how often a repository's main language is each one.
pub const LANGUAGES: &[(&str, &[&str])] = &[
    ("JavaScript", &["js", "jsx", "mjs"]),
    ("Python", &["py"]),
    ("Java", &["java"]),
    ("TypeScript", &["ts", "tsx"]),
    ("C++", &["cpp", "hpp", "cc", "h"]),
    ("C", &["c", "h"]),
    ("Go", &["go"]),
    ("PHP", &["php"]),
    ("Ruby", &["rb"]),
    ("C#", &["cs"]),
    ("Rust", &["rs"]),
    ("Shell", &["sh"]),
    ("Kotlin", &["kt"]),
    ("Swift", &["swift"]),
    ("Scala", &["scala"]),
];

/// Extensions any repository has besides its language's.
const OTHER_EXTENSIONS: &[&str] = &[
    "md", "json", "yml", "txt", "html", "css", "xml", "png", "svg", "cfg", "toml", "lock", "rst",
];

/// The vocabularies a generator draws names from.
pub struct Vocabulary {
    stems: Vec<String>,
    stem_rank: Zipf,
    dirs: Vec<String>,
    dir_rank: Zipf,
    owners: Vec<String>,
    owner_rank: Zipf,
    language_rank: Zipf,
    other_rank: Zipf,
}

fn word(rng: &mut ChaCha8Rng, syllables: std::ops::Range<usize>) -> String {
    let n = rng.random_range(syllables);
    (0..n)
        .map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())])
        .collect()
}

fn vocabulary(rng: &mut ChaCha8Rng, common: &[&str], n: usize) -> Vec<String> {
    let mut out: Vec<String> = common.iter().map(|s| s.to_string()).collect();
    let mut seen: std::collections::HashSet<String> = out.iter().cloned().collect();
    while out.len() < n {
        let mut w = word(rng, 2..5);
        if rng.random_bool(0.3) {
            w.push('_');
            w.push_str(&word(rng, 1..3));
        }
        if seen.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

impl Vocabulary {
    /// Vocabularies drawn from `rng`.
    pub fn new(rng: &mut ChaCha8Rng) -> Self {
        let stems = vocabulary(rng, COMMON_STEMS, 30_000);
        let dirs = vocabulary(rng, COMMON_DIRS, 5_000);
        let owners = vocabulary(rng, &[], 200_000);
        Self {
            stem_rank: Zipf::new(stems.len(), 1.05),
            dir_rank: Zipf::new(dirs.len(), 1.1),
            owner_rank: Zipf::new(owners.len(), 0.8),
            language_rank: Zipf::new(LANGUAGES.len(), 1.0),
            other_rank: Zipf::new(OTHER_EXTENSIONS.len(), 1.0),
            stems,
            dirs,
            owners,
        }
    }

    /// A main language for a repository (index into [`LANGUAGES`]).
    pub fn language(&self, rng: &mut ChaCha8Rng) -> usize {
        self.language_rank.sample(rng)
    }

    /// A file name for a repository of `language`.
    pub fn file(&self, rng: &mut ChaCha8Rng, language: usize) -> String {
        let stem = &self.stems[self.stem_rank.sample(rng)];
        let ext = if rng.random_bool(0.75) {
            let exts = LANGUAGES[language].1;
            exts[rng.random_range(0..exts.len())]
        } else {
            OTHER_EXTENSIONS[self.other_rank.sample(rng)]
        };
        format!("{stem}.{ext}")
    }

    /// A folder name.
    pub fn dir(&self, rng: &mut ChaCha8Rng) -> String {
        self.dirs[self.dir_rank.sample(rng)].clone()
    }

    /// An owner (a few own many repositories).
    pub fn owner(&self, rng: &mut ChaCha8Rng) -> String {
        self.owners[self.owner_rank.sample(rng)].clone()
    }

    /// A repository name.
    pub fn repo_name(&self, rng: &mut ChaCha8Rng) -> String {
        let a = &self.stems[self.stem_rank.sample(rng)];
        let b = word(rng, 1..3);
        format!("{a}-{b}")
    }
}

/// `s` with a random mix of upper and lower case (never equal to `s` when it has letters).
pub fn recase(rng: &mut ChaCha8Rng, s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if rng.random_bool(0.5) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    if out == s {
        s.to_ascii_uppercase()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_favours_low_ranks() {
        let z = Zipf::new(1000, 1.1);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let draws: Vec<usize> = (0..20_000).map(|_| z.sample(&mut rng)).collect();
        let first = draws.iter().filter(|&&r| r == 0).count();
        let tail = draws.iter().filter(|&&r| r >= 500).count();
        assert!(first > 2000, "rank 0 is common: {first}");
        assert!(
            tail > 100 && tail < first,
            "the tail is thin but present: {tail}"
        );
        assert!(draws.iter().all(|&r| r < 1000));
    }
}
