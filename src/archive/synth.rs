//! Synthetic archives of a chosen size, for benchmarks and memory measurements.
//!
//! `repos` repositories with linear histories of `commits` commits over a tree of `files`
//! source files in nested folders (each commit rewrites a few files and sometimes adds one),
//! `forks` forks (a copy of a repository plus commits of their own), and `rows` metadata rows:
//! mostly existing (commit, path) pairs with 7-hex prefixes, some absent paths and some
//! unknown prefixes. Everything is derived from `seed`. The folder gets the same layout and
//! `unearth.toml` as the demo, without the repositories, which are deleted once archived.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use gix::bstr::BString;
use gix::ObjectId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::gitwrite::{gix_err, RepoWriter};
use super::{build_into, ArchiveError, BuildOptions, BuildOutcome, RepoSpec, Staging};

/// Size of a synthetic archive (also the options of `unearth archive synth`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct SynthOptions {
    /// Independent repositories.
    #[arg(long, default_value_t = 20)]
    pub repos: usize,
    /// Forks (each of a random repository).
    #[arg(long, default_value_t = 10)]
    pub forks: usize,
    /// Commits per repository.
    #[arg(long, default_value_t = 200)]
    pub commits: usize,
    /// Files in each repository's first commit.
    #[arg(long, default_value_t = 300)]
    pub files: usize,
    /// Metadata rows.
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// Seed of everything random.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Files of a repository as blob ids, with tree ids cached per folder until a file below
/// changes, so that a commit rewrites only the trees on the paths it touched.
struct TreeState {
    files: BTreeMap<Vec<u8>, ObjectId>,
    trees: HashMap<Vec<u8>, ObjectId>,
}

impl TreeState {
    fn set(&mut self, path: Vec<u8>, blob: ObjectId) {
        let mut end = 0;
        self.trees.remove(&Vec::new());
        while let Some(i) = path[end..].iter().position(|&b| b == b'/') {
            end += i + 1;
            self.trees.remove(&path[..end]);
        }
        self.files.insert(path, blob);
    }

    fn write(&mut self, repo: &gix::Repository, prefix: &[u8]) -> Result<ObjectId, ArchiveError> {
        if let Some(id) = self.trees.get(prefix) {
            return Ok(*id);
        }
        let mut entries = Vec::new();
        let mut subdirs: Vec<Vec<u8>> = Vec::new();
        for (path, blob) in self.files.range(prefix.to_vec()..) {
            let Some(rest) = path.strip_prefix(prefix) else {
                break;
            };
            match rest.iter().position(|&b| b == b'/') {
                Some(slash) => {
                    if subdirs.last().map(Vec::as_slice) != Some(&rest[..slash]) {
                        subdirs.push(rest[..slash].to_vec());
                    }
                }
                None => entries.push(gix::objs::tree::Entry {
                    mode: gix::objs::tree::EntryKind::Blob.into(),
                    filename: BString::from(rest.to_vec()),
                    oid: *blob,
                }),
            }
        }
        for name in subdirs {
            let mut sub = prefix.to_vec();
            sub.extend_from_slice(&name);
            sub.push(b'/');
            let oid = self.write(repo, &sub)?;
            entries.push(gix::objs::tree::Entry {
                mode: gix::objs::tree::EntryKind::Tree.into(),
                filename: BString::from(name),
                oid,
            });
        }
        entries.sort();
        let id = repo
            .write_object(&gix::objs::Tree { entries })
            .map_err(gix_err)?
            .detach();
        self.trees.insert(prefix.to_vec(), id);
        Ok(id)
    }
}

fn source(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let lines = rng.random_range(3..40);
    let mut s = String::new();
    for _ in 0..lines {
        s.push_str(&format!(
            "let v{} = {};\n",
            rng.random::<u16>(),
            rng.random::<u32>()
        ));
    }
    s.into_bytes()
}

fn path_of(i: usize) -> String {
    format!("src/m{}/p{}/file_{i}.rs", i % 8, (i / 8) % 8)
}

/// One commit the generator made: id and how many files its tree has (files are only added,
/// so they are `path_of(0..count)`).
struct Made {
    id: ObjectId,
    count: usize,
}

fn history(
    w: &mut RepoWriter,
    state: &mut TreeState,
    rng: &mut ChaCha8Rng,
    commits: usize,
    mut count: usize,
    parent: Option<ObjectId>,
) -> Result<Vec<Made>, ArchiveError> {
    let mut made = Vec::new();
    let mut parent = parent;
    for c in 0..commits {
        if parent.is_none() {
            for i in 0..count {
                let blob = w.repo.write_blob(source(rng)).map_err(gix_err)?.detach();
                state.set(path_of(i).into_bytes(), blob);
            }
        } else {
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..count);
                let blob = w.repo.write_blob(source(rng)).map_err(gix_err)?.detach();
                state.set(path_of(i).into_bytes(), blob);
            }
            if rng.random_bool(0.2) {
                let blob = w.repo.write_blob(source(rng)).map_err(gix_err)?.detach();
                state.set(path_of(count).into_bytes(), blob);
                count += 1;
            }
        }
        w.clock += 600;
        let tree = state.write(&w.repo, b"")?;
        let sig = gix::actor::Signature {
            name: "Synth".into(),
            email: "synth@example.org".into(),
            time: gix::date::Time {
                seconds: w.clock,
                offset: 0,
            },
        };
        let commit = gix::objs::Commit {
            tree,
            parents: parent.into_iter().collect(),
            author: sig.clone(),
            committer: sig,
            encoding: None,
            message: format!("commit {c}\n").into(),
            extra_headers: Vec::new(),
        };
        let id = w.repo.write_object(&commit).map_err(gix_err)?.detach();
        made.push(Made { id, count });
        parent = Some(id);
    }
    Ok(made)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

/// Draws `rows` metadata rows from the commits made and writes `root/metadata/part_0.parquet`:
/// mostly existing (commit, path) pairs, some absent paths and some unknown prefixes.
fn write_rows(
    root: &Path,
    known: &[(String, Vec<Made>)],
    rng: &mut ChaCha8Rng,
    rows: usize,
) -> Result<(), ArchiveError> {
    let (mut repo_col, mut commit_col, mut path_col) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rows {
        let (slug, made) = &known[rng.random_range(0..known.len())];
        let m = &made[rng.random_range(0..made.len())];
        let hex = m.id.to_hex().to_string();
        let roll = rng.random_range(0..100);
        let (commit, path) = match roll {
            0..=89 => (hex[..7].to_string(), path_of(rng.random_range(0..m.count))),
            90..=94 => (
                hex[..7].to_string(),
                format!("src/absent_{}.rs", rng.random::<u16>()),
            ),
            _ => (
                format!("{:07x}", rng.random::<u32>() & 0x0fff_ffff),
                path_of(0),
            ),
        };
        repo_col.push(slug.clone());
        commit_col.push(commit);
        path_col.push(path);
    }
    let meta = root.join("metadata");
    std::fs::create_dir_all(&meta).map_err(|e| ArchiveError::io(&meta, e))?;
    crate::table::write(
        &meta.join("part_0.parquet"),
        vec![
            ("repo", Arc::new(StringArray::from(repo_col)) as ArrayRef),
            ("commit_id", Arc::new(StringArray::from(commit_col))),
            ("rel_path", Arc::new(StringArray::from(path_col))),
        ],
    )
    .map_err(|e| ArchiveError::Other(e.to_string()))?;
    Ok(())
}

/// Generates the repositories and metadata and builds the archive into `out` (replaced).
pub fn build_synth(out: &Path, o: &SynthOptions) -> Result<BuildOutcome, ArchiveError> {
    let note = format!("unearth synth {o:?}");
    match super::existing_archive(out)? {
        Some(m) if m.note == note => {
            return Ok(BuildOutcome {
                manifest: m,
                built: false,
            })
        }
        Some(_) => {
            return Err(ArchiveError::Output {
                path: out.to_owned(),
                reason: "it holds another archive; choose a new or empty folder".into(),
            })
        }
        None => {}
    }
    let staging = Staging::new(out)?;
    let root = staging.path().to_owned();
    let repos_dir = root.join("repos");
    std::fs::create_dir_all(&repos_dir).map_err(|e| ArchiveError::io(&repos_dir, e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let mut specs = Vec::new();
    let mut known: Vec<(String, Vec<Made>)> = Vec::new();
    let mut states: Vec<(PathBuf, TreeState, Vec<Made>)> = Vec::new();
    for r in 0..o.repos {
        let path = repos_dir.join(format!("r{r}.git"));
        let mut w = RepoWriter::create(&path, 1_500_000_000 + r as i64 * 86_400)?;
        let mut state = TreeState {
            files: BTreeMap::new(),
            trees: HashMap::new(),
        };
        let made = history(
            &mut w,
            &mut state,
            &mut rng,
            o.commits.max(1),
            o.files.max(1),
            None,
        )?;
        let Some(head) = made.last() else {
            return Err(ArchiveError::Other("a repository without commits".into()));
        };
        w.set_ref("refs/heads/main", head.id)?;
        w.set_head("refs/heads/main")?;
        let slug = format!("synth/r{r}");
        specs.push(RepoSpec {
            url: format!("https://github.com/{slug}"),
            path: path.clone(),
            visit_time: Some(1_700_000_000),
        });
        let copy: Vec<Made> = made
            .iter()
            .map(|m| Made {
                id: m.id,
                count: m.count,
            })
            .collect();
        known.push((slug, copy));
        states.push((path, state, made));
    }
    for f in 0..o.forks.min(o.repos * 4) {
        let base = rng.random_range(0..o.repos);
        let path = repos_dir.join(format!("fork{f}.git"));
        copy_dir(&states[base].0, &path).map_err(|e| ArchiveError::io(&path, e))?;
        let repo = gix::open(&path).map_err(gix_err)?;
        let mut w = RepoWriter {
            repo,
            clock: 1_600_000_000 + f as i64 * 3_600,
        };
        let mut state = TreeState {
            files: states[base].1.files.clone(),
            trees: HashMap::new(),
        };
        let Some(last) = states[base].2.last() else {
            return Err(ArchiveError::Other("a repository without commits".into()));
        };
        let n = rng.random_range(1..10);
        let own = history(&mut w, &mut state, &mut rng, n, last.count, Some(last.id))?;
        if let Some(head) = own.last() {
            w.set_ref("refs/heads/main", head.id)?;
        }
        let slug = format!("fork{f}/r{base}");
        specs.push(RepoSpec {
            url: format!("https://github.com/{slug}"),
            path,
            visit_time: Some(1_700_000_000),
        });
        known.push((slug, own));
    }

    write_rows(&root, &known, &mut rng, o.rows)?;
    let config = root.join(super::demo::CONFIG);
    std::fs::write(
        &config,
        "graph = \"graph/graph\"\nmetadata = \"metadata\"\nworkdir = \"work\"\norc = \"orc\"\n\n\
         [fetch]\nstore = \"file://objects/content\"\n",
    )
    .map_err(|e| ArchiveError::io(&config, e))?;

    let opts = BuildOptions {
        repos: specs,
        max_content_size: super::DEFAULT_MAX_CONTENT_SIZE,
        rows_per_file: 1_000_000,
    };
    let manifest = build_into(&root, &opts, &note)?;
    // The loose objects of the generated repositories take far more room than the archive,
    // and nothing reads them once the archive is built.
    std::fs::remove_dir_all(&repos_dir).map_err(|e| ArchiveError::io(&repos_dir, e))?;
    staging.commit()?;
    Ok(BuildOutcome {
        manifest,
        built: true,
    })
}
