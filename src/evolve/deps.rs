//! Dependencies declared at the root of a codebase, and the archived origins that hold them.
//!
//! Read statically (nothing is executed): `requirements*.txt`, `pyproject.toml` (PEP 621
//! `dependencies`, Poetry's table), `setup.py` (string literals of `install_requires`),
//! `Cargo.toml` (`[dependencies]`), `package.json` (`dependencies`) and `go.mod` (`require`).
//! A package maps to an origin URL through the mapping file first (packages whose source
//! lives on GitHub), then the ecosystem's template (`https://pypi.org/project/{name}`, ...).

use std::collections::BTreeMap;

/// A package ecosystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ecosystem {
    /// Python packages (PyPI).
    Pypi,
    /// Rust crates (crates.io).
    Crates,
    /// JavaScript packages (npm).
    Npm,
    /// Go modules (their path is their URL).
    Go,
}

impl Ecosystem {
    /// Its name in mapping files and templates.
    pub fn name(self) -> &'static str {
        match self {
            Ecosystem::Pypi => "pypi",
            Ecosystem::Crates => "crates",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "go",
        }
    }

    /// The default URL template of its archived origins.
    pub fn template(self) -> &'static str {
        match self {
            Ecosystem::Pypi => "https://pypi.org/project/{name}",
            Ecosystem::Crates => "https://crates.io/crates/{name}",
            Ecosystem::Npm => "https://www.npmjs.com/package/{name}",
            Ecosystem::Go => "https://{name}",
        }
    }

    /// `name` as the ecosystem compares names (PEP 503 for PyPI: lower case, runs of `-_.`
    /// as one `-`).
    pub fn normalize(self, name: &str) -> String {
        match self {
            Ecosystem::Pypi => {
                let mut out = String::new();
                for c in name.trim().chars() {
                    if matches!(c, '-' | '_' | '.') {
                        if !out.ends_with('-') {
                            out.push('-');
                        }
                    } else {
                        out.push(c.to_ascii_lowercase());
                    }
                }
                out
            }
            Ecosystem::Crates | Ecosystem::Npm => name.trim().to_ascii_lowercase(),
            Ecosystem::Go => name.trim().to_string(),
        }
    }
}

/// One declared dependency.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dependency {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Its normalised name.
    pub name: String,
}

/// The name at the start of a PEP 508 requirement (`requests[socks]>=2; python_version>"3"`).
fn pep508_name(spec: &str) -> Option<&str> {
    let spec = spec.trim();
    let end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(spec.len());
    let name = &spec[..end];
    (!name.is_empty() && name.starts_with(|c: char| c.is_ascii_alphanumeric())).then_some(name)
}

fn requirements_txt(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('-') && !l.contains("://"))
        .filter_map(pep508_name)
        .map(str::to_string)
        .collect()
}

fn pyproject(text: &str) -> Vec<String> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut out: Vec<String> = doc
        .get("project")
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().and_then(pep508_name).map(str::to_string))
        .collect();
    if let Some(t) = doc
        .get("tool")
        .and_then(|t| t.get("poetry"))
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_table())
    {
        out.extend(t.keys().filter(|k| *k != "python").cloned());
    }
    out
}

/// String literals inside the brackets after `install_requires` (static `setup.py` only).
fn setup_py(text: &str) -> Vec<String> {
    let Some(at) = text.find("install_requires") else {
        return Vec::new();
    };
    let rest = &text[at..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        return Vec::new();
    };
    if close < open {
        return Vec::new();
    }
    rest[open + 1..close]
        .split(',')
        .filter_map(|s| {
            let s = s.trim().trim_matches(|c| c == '"' || c == '\'');
            pep508_name(s).map(str::to_string)
        })
        .collect()
}

fn cargo_toml(text: &str) -> Vec<String> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    doc.get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| {
            t.iter()
                .map(|(k, v)| {
                    // `alias = { package = "real-name" }` names the crate by `package`.
                    v.get("package")
                        .and_then(|p| p.as_str())
                        .unwrap_or(k)
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn package_json(text: &str) -> Vec<String> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    doc.get("dependencies")
        .and_then(|d| d.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn go_mod(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block = false;
    for line in text.lines() {
        let l = line.split("//").next().unwrap_or("").trim();
        if l.starts_with("require (") {
            block = true;
            continue;
        }
        if block && l == ")" {
            block = false;
            continue;
        }
        let spec = if block {
            l
        } else if let Some(s) = l.strip_prefix("require ") {
            s
        } else {
            continue;
        };
        if let Some(module) = spec.split_whitespace().next().filter(|m| m.contains('.')) {
            out.push(module.to_string());
        }
    }
    out
}

/// The dependencies a root-level file `name` with `text` declares (none for other files).
pub fn parse(name: &str, text: &str) -> Vec<Dependency> {
    let (ecosystem, names) = match name {
        n if n.starts_with("requirements") && n.ends_with(".txt") => {
            (Ecosystem::Pypi, requirements_txt(text))
        }
        "pyproject.toml" => (Ecosystem::Pypi, pyproject(text)),
        "setup.py" => (Ecosystem::Pypi, setup_py(text)),
        "Cargo.toml" => (Ecosystem::Crates, cargo_toml(text)),
        "package.json" => (Ecosystem::Npm, package_json(text)),
        "go.mod" => (Ecosystem::Go, go_mod(text)),
        _ => return Vec::new(),
    };
    names
        .into_iter()
        .map(|n| Dependency {
            ecosystem,
            name: ecosystem.normalize(&n),
        })
        .filter(|d| !d.name.is_empty())
        .collect()
}

/// Package -> origin URL overrides, by ecosystem (`[pypi] requests =
/// "https://github.com/psf/requests"`).
#[derive(Debug, Clone, Default)]
pub struct OriginMap {
    by: BTreeMap<(Ecosystem, String), String>,
}

impl OriginMap {
    /// Reads a mapping file (TOML: one table per ecosystem, package = URL).
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut by = BTreeMap::new();
        for (eco_name, table) in doc {
            let eco = [
                Ecosystem::Pypi,
                Ecosystem::Crates,
                Ecosystem::Npm,
                Ecosystem::Go,
            ]
            .into_iter()
            .find(|e| e.name() == eco_name)
            .ok_or_else(|| format!("[{eco_name}]: not an ecosystem (pypi, crates, npm, go)"))?;
            let table = table
                .as_table()
                .ok_or_else(|| format!("{eco_name}: must be a table of package = URL"))?;
            for (pkg, url) in table {
                let url = url
                    .as_str()
                    .ok_or_else(|| format!("{eco_name}.{pkg}: the URL must be a string"))?;
                by.insert((eco, eco.normalize(pkg)), url.to_string());
            }
        }
        Ok(Self { by })
    }

    /// The origin URLs to try for `dep`, the mapping's first.
    pub fn urls(&self, dep: &Dependency) -> Vec<String> {
        let mut out: Vec<String> = self
            .by
            .get(&(dep.ecosystem, dep.name.clone()))
            .cloned()
            .into_iter()
            .collect();
        out.push(dep.ecosystem.template().replace("{name}", &dep.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(file: &str, text: &str) -> Vec<String> {
        parse(file, text).into_iter().map(|d| d.name).collect()
    }

    #[test]
    fn manifests_of_each_ecosystem_are_read() {
        assert_eq!(
            names(
                "requirements-dev.txt",
                "# c\nRequests[socks]>=2.0 ; python_version > '3'\n-r other.txt\n\
                 git+https://x/y\nZope.Interface==5\n\n"
            ),
            ["requests", "zope-interface"]
        );
        assert_eq!(
            names(
                "pyproject.toml",
                "[project]\ndependencies = [\"attrs>=1\", \"six\"]\n\
                 [tool.poetry.dependencies]\npython = \"^3.8\"\nclick = \"*\"\n"
            ),
            ["attrs", "six", "click"]
        );
        assert_eq!(
            names(
                "setup.py",
                "setup(name='x', install_requires=['idna>=2', \"certifi\"],)"
            ),
            ["idna", "certifi"]
        );
        assert_eq!(
            names(
                "Cargo.toml",
                "[package]\nname=\"x\"\n[dependencies]\nserde = \"1\"\nfoo = { package = \"Bar\", version = \"1\" }\n"
            ),
            ["bar", "serde"]
        );
        assert_eq!(
            names(
                "package.json",
                r#"{"dependencies": {"Left-Pad": "1"}, "devDependencies": {"x": "1"}}"#
            ),
            ["left-pad"]
        );
        assert_eq!(
            names(
                "go.mod",
                "module m\nrequire golang.org/x/text v0.3.0\nrequire (\n\tgithub.com/a/b v1 // c\n)\n"
            ),
            ["golang.org/x/text", "github.com/a/b"]
        );
        assert!(names("README.md", "requests").is_empty());
        assert!(names("Cargo.toml", "not toml [").is_empty());
    }

    #[test]
    fn the_shipped_mapping_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/dependency-origins.toml"
        );
        let m = OriginMap::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        let d = parse("requirements.txt", "Charset_Normalizer\n").remove(0);
        assert_eq!(m.urls(&d)[0], "https://github.com/jawah/charset_normalizer");
    }

    #[test]
    fn the_mapping_comes_before_the_template() {
        let m =
            OriginMap::parse("[pypi]\nRequests = \"https://github.com/psf/requests\"\n").unwrap();
        let d = parse("requirements.txt", "requests\n").remove(0);
        assert_eq!(
            m.urls(&d),
            [
                "https://github.com/psf/requests",
                "https://pypi.org/project/requests"
            ]
        );
        assert!(OriginMap::parse("[cpan]\nx = \"y\"\n").is_err());
    }
}
