//! License detection per repository at the resolved revision: git repositories with planted
//! MIT, Apache-2.0, GPL-3.0 and BSD-3-Clause license files (filled in and rewrapped as
//! repositories carry them, under several file names), a dual-licensed one, one without a
//! license, one whose license file is not a license, and one that changed its license between
//! two commits. `unearth run` builds the dataset, read back with pyarrow; a second run keeps
//! permissive repositories only.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use common::*;

/// The SPDX canonical text of `id`, as the `spdx` crate carries it.
fn spdx_text(id: &str) -> &'static str {
    let text = unearth::archive::synth::content::spdx_text(id);
    assert!(!text.is_empty(), "no SPDX text for {id}");
    text
}

/// `text` as a repository holds it: placeholders filled in, paragraphs rewrapped at 72
/// columns.
fn as_committed(text: &str) -> String {
    let filled = unearth::archive::synth::content::fill_placeholders(
        text,
        "2021",
        "Jane Doe and contributors",
    );
    let mut out = String::new();
    for para in filled.split("\n\n") {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > 72 {
                out.push_str(&line);
                out.push('\n');
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&line);
        out.push_str("\n\n");
    }
    out
}

fn write(repo: &Path, path: &str, text: &str) {
    let p = repo.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A repository with `files` and a source file of its own; returns its head commit.
fn repo_with(root: &Path, name: &str, files: &[(&str, String)]) -> String {
    let repo = root.join(name);
    init_repo(&repo);
    for (p, t) in files {
        write(&repo, p, t);
    }
    write(
        &repo,
        "src/lib.rs",
        &format!("/// The {name} crate.\npub fn {name}() -> &'static str {{\n    \"{name}\"\n}}\n"),
    );
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    git_lines(&repo, &["rev-parse", "HEAD"])[0].clone()
}

const PYTHON: &str = r#"
import json, sys
import pyarrow.dataset as ds
t = ds.dataset(sys.argv[1] + "/data", format="parquet").to_table()
rows = []
for r in t.select(["repo_name", "revision_id", "detected_licenses", "license_type", "license_confidence"]).to_pylist():
    rows.append(r)
print(json.dumps(rows))
"#;

/// A planted repository: name, files, expected SPDX ids, expected license type.
type Planted = (
    &'static str,
    Vec<(&'static str, String)>,
    Vec<&'static str>,
    &'static str,
);

/// `(repo_name, revision_id) -> (detected_licenses, license_type, license_confidence)`.
type Got = BTreeMap<(String, String), (Vec<String>, String, Option<f64>)>;

fn read_dataset(root: &Path) -> Got {
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .arg(root)
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "pyarrow failed to read {}: {}",
        root.display(),
        String::from_utf8_lossy(&py.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&py.stdout).unwrap();
    rows.iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            let ids = r["detected_licenses"]
                .as_array()
                .unwrap_or_else(|| panic!("detected_licenses is a list: {r}"))
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            (
                (s("repo_name"), s("revision_id")),
                (ids, s("license_type"), r["license_confidence"].as_f64()),
            )
        })
        .collect()
}

#[test]
fn licenses_are_detected_per_repository_at_the_resolved_revision() {
    let tmp = tempdir();
    let repos = tmp.path().join("repos");
    let planted: Vec<Planted> = vec![
        (
            "mit",
            vec![("LICENSE", as_committed(spdx_text("MIT")))],
            vec!["MIT"],
            "permissive",
        ),
        (
            "apache",
            vec![("LICENSE.txt", as_committed(spdx_text("Apache-2.0")))],
            vec!["Apache-2.0"],
            "permissive",
        ),
        (
            "gpl",
            vec![("COPYING", as_committed(spdx_text("GPL-3.0-or-later")))],
            vec!["GPL-3.0"],
            "copyleft",
        ),
        (
            "bsd",
            vec![("LICENSE.md", as_committed(spdx_text("BSD-3-Clause")))],
            vec!["BSD-3-Clause"],
            "permissive",
        ),
        (
            "dual",
            vec![
                ("LICENSE-MIT", as_committed(spdx_text("MIT"))),
                ("LICENSE-APACHE", as_committed(spdx_text("Apache-2.0"))),
            ],
            vec!["Apache-2.0", "MIT"],
            "permissive",
        ),
        (
            "none",
            vec![("README.md", "# none\n\nNo license here.\n".to_string())],
            vec![],
            "no_license",
        ),
        (
            "notalicense",
            vec![(
                "LICENSE",
                "Ask me before you use this. I have not decided yet.\n".to_string(),
            )],
            vec![],
            "no_license",
        ),
        (
            // Not at the root: a vendored library's license says nothing of the repository.
            "nested",
            vec![("vendor/lib/LICENSE", as_committed(spdx_text("MIT")))],
            vec![],
            "no_license",
        ),
    ];
    let mut specs = Vec::new();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut want: BTreeMap<(String, String), (Vec<String>, String)> = BTreeMap::new();
    for (name, files, ids, kind) in &planted {
        let head = repo_with(&repos, name, files);
        specs.push(format!(
            "https://github.com/t/{name}={}",
            repos.join(name).display()
        ));
        rows.push((
            format!("t/{name}"),
            head[..7].to_string(),
            "src/lib.rs".into(),
        ));
        want.insert(
            (format!("t/{name}"), head),
            (
                ids.iter().map(|s| s.to_string()).collect(),
                kind.to_string(),
            ),
        );
    }
    // A repository that moved from the GPL to MIT: each row gets the license of its commit.
    let moved = repos.join("moved");
    let old = repo_with(
        &repos,
        "moved",
        &[("COPYING", as_committed(spdx_text("GPL-3.0-or-later")))],
    );
    git(&moved, &["rm", "-q", "COPYING"]);
    write(&moved, "LICENSE", &as_committed(spdx_text("MIT")));
    write(
        &moved,
        "src/lib.rs",
        "/// Now MIT.\npub fn moved() -> u32 {\n    7\n}\n",
    );
    git(&moved, &["add", "-A"]);
    git(&moved, &["commit", "-q", "-m", "relicense"]);
    let new = git_lines(&moved, &["rev-parse", "HEAD"])[0].clone();
    specs.push(format!("https://github.com/t/moved={}", moved.display()));
    for (commit, ids, kind) in [(&old, "GPL-3.0", "copyleft"), (&new, "MIT", "permissive")] {
        rows.push((
            "t/moved".into(),
            commit[..7].to_string(),
            "src/lib.rs".into(),
        ));
        want.insert(
            ("t/moved".into(), commit.clone()),
            (vec![ids.to_string()], kind.to_string()),
        );
    }

    let archive_dir = tmp.path().join("archive");
    unearth::archive::build(
        &archive_dir,
        &unearth::archive::BuildOptions {
            repos: specs
                .iter()
                .map(|s| unearth::archive::RepoSpec::parse(s).unwrap())
                .collect(),
            max_content_size: 1 << 20,
            rows_per_file: 1000,
        },
        "",
    )
    .unwrap();
    let layout = unearth::archive::ArchiveDir::new(&archive_dir);
    let meta = tmp.path().join("meta.parquet");
    let col = |f: fn(&(String, String, String)) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    unearth::table::write(
        &meta,
        vec![
            ("repo", col(|r| &r.0)),
            ("commit_id", col(|r| &r.1)),
            ("rel_path", col(|r| &r.2)),
        ],
    )
    .unwrap();
    let config = tmp.path().join("run.toml");
    let work = tmp.path().join("work");
    let write_config = |extra: &str| {
        let dataset = format!("near_dedup = false\n{extra}");
        write_run_config(&config, &layout, &meta, &work, &dataset);
    };
    write_config("");
    unearth_ok(&["run"], &config);
    let root = tmp.path().join("work/dataset");
    let got = read_dataset(&root);
    let seen: BTreeMap<(String, String), (Vec<String>, String)> = got
        .iter()
        .map(|(k, (ids, kind, _))| (k.clone(), (ids.clone(), kind.clone())))
        .collect();
    assert_eq!(seen, want);
    for (k, (ids, _, confidence)) in &got {
        match confidence {
            Some(c) => assert!(!ids.is_empty() && *c >= 0.8 && *c <= 1.0, "{k:?}: {c}"),
            None => assert!(ids.is_empty(), "{k:?} has licenses but no confidence"),
        }
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("metadata.json")).unwrap()).unwrap();
    assert!(
        metadata.to_string().contains("license"),
        "metadata.json says nothing of licenses: {metadata}"
    );

    // Permissive repositories only: the others leave with `license_excluded`. The dataset is
    // also published at `[dataset] out`.
    let published = tmp.path().join("published");
    write_config(&format!(
        "license_types = [\"permissive\"]\nout = {:?}\n",
        published.display().to_string()
    ));
    let o = unearth_ok(&["run"], &config);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("dataset: {}", published.display())),
        "{stdout}"
    );
    let kept = read_dataset(&published);
    assert_eq!(kept, read_dataset(&root));
    let permissive: Vec<&(String, String)> = want
        .iter()
        .filter(|(_, (_, kind))| kind == "permissive")
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kept.keys().collect::<Vec<_>>(), permissive);
    let removed = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, pyarrow.parquet as pq\n\
             t = pq.read_table(sys.argv[1])\n\
             print(json.dumps(sorted(t.column('dataset_status').to_pylist())))",
        )
        .arg(root.join("removed.parquet"))
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");
    let statuses: Vec<String> = serde_json::from_slice(&removed.stdout).unwrap();
    let excluded = want.len() - permissive.len();
    assert_eq!(statuses, vec!["license_excluded".to_string(); excluded]);

    // A folder unearth did not make is never replaced.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("mine.txt"), "keep").unwrap();
    write_config(&format!(
        "license_types = [\"copyleft\"]\nout = {:?}\n",
        foreign.display().to_string()
    ));
    let o = unearth_with(&["run"], &config);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not unearth's"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("mine.txt")).unwrap(),
        "keep"
    );

    // A bad license type names the key and the value.
    write_config("license_types = [\"permisive\"]\n");
    let o = unearth_with(&["run"], &config);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("permisive"), "{err}");
}
