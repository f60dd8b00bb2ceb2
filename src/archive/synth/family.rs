//! One family of synthetic repositories: an upstream history with side branches, merges and
//! tags, and forks that branch off it, played as a sequence of ticks from the family's own
//! seed. Visits happen at planned ticks. The play is deterministic: the first pass builds
//! the archive from it, later passes play it again to read trees at chosen commits (nothing
//! about the archive's ids feeds back into the random draws).

use std::rc::Rc;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::archive::ArchiveError;
use crate::model::hashes::Sha1Id;

use super::content::{self, Kind, Spec};
use super::names::{Name, Names, Vocabulary};
use super::tree::{Blob, Dir, Node};

/// No commit.
pub const NONE: u32 = u32::MAX;

/// A fork: its origin, the tick it branches off at, its own commits and visits.
#[derive(Debug, Clone)]
pub struct ForkSpec {
    /// Index of its origin.
    pub origin: u32,
    /// Tick of the upstream it starts from.
    pub at: u32,
    /// Commits of its own (spread over the ticks after `at`).
    pub commits: u32,
    /// Ticks it is visited at (sorted).
    pub visits: Vec<u32>,
}

/// Everything drawn about a family before it is played.
#[derive(Debug, Clone)]
pub struct FamilySpec {
    /// Seed of the play.
    pub seed: u64,
    /// Main language (index into [`super::names::LANGUAGES`]).
    pub language: usize,
    /// Time of tick 0.
    pub start: i64,
    /// Seconds between ticks.
    pub interval: i64,
    /// Upstream commits (one per tick).
    pub ticks: u32,
    /// Files of the first commit.
    pub initial_files: u32,
    /// `main` or `master`.
    pub default_branch: &'static str,
    /// Origins of the upstream: `(origin, first tick)`; a visit goes to the last origin whose
    /// first tick is not after it (a rename changes the URL from then on).
    pub upstream: Vec<(u32, u32)>,
    /// Ticks the upstream is visited at (sorted).
    pub visits: Vec<u32>,
    /// The forks.
    pub forks: Vec<ForkSpec>,
    /// Commits of earlier families a submodule may point at (ids known to be archived).
    pub submodule_targets: Rc<Vec<Sha1Id>>,
}

impl FamilySpec {
    /// The upstream origin visited at tick `t`.
    pub fn upstream_at(&self, t: u32) -> u32 {
        self.upstream
            .iter()
            .rev()
            .find(|(_, from)| *from <= t)
            .or(self.upstream.first())
            .map_or(0, |x| x.0)
    }
}

/// What a branch of a snapshot points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A commit (family-local index).
    Commit(u32),
    /// An annotated tag (family-local release index).
    Release(u32),
    /// Another branch.
    Alias(Vec<u8>),
}

/// A commit as it is made.
pub struct CommitEvent<'a> {
    /// Family-local index (commits are numbered in the order they are made).
    pub index: u32,
    /// Its parents' indexes.
    pub parents: &'a [u32],
    /// Its tree.
    pub tree: &'a Rc<Dir>,
    /// Author and committer.
    pub author: &'a str,
    /// Commit time.
    pub time: i64,
    /// Message.
    pub message: &'a str,
}

/// An annotated or lightweight tag as it is made.
pub struct TagEvent<'a> {
    /// Family-local release index (annotated tags only count).
    pub release: Option<u32>,
    /// Tag name.
    pub name: &'a str,
    /// The tagged commit.
    pub commit: u32,
    /// Tagger.
    pub author: &'a str,
    /// Time.
    pub time: i64,
}

/// A visit as it happens.
pub struct VisitEvent<'a> {
    /// Origin index.
    pub origin: u32,
    /// Visit time.
    pub time: i64,
    /// The snapshot's branches, sorted by name.
    pub branches: &'a [(Vec<u8>, Target)],
}

/// What a pass does with the play.
pub trait Observer {
    /// A commit was made.
    fn commit(&mut self, names: &Names, e: &CommitEvent) -> Result<(), ArchiveError>;
    /// A tag was made.
    fn tag(&mut self, e: &TagEvent) -> Result<(), ArchiveError>;
    /// An origin was visited.
    fn visit(&mut self, names: &Names, e: &VisitEvent) -> Result<(), ArchiveError>;
}

/// A side branch: its name, commits left to make, the tick it is merged at (`u32::MAX`:
/// never) and the paths it changed.
struct Side {
    name: String,
    left: u32,
    merge_at: u32,
    changed: Vec<Vec<Name>>,
}

/// A line of development: upstream, a side branch or a fork.
struct Line {
    tree: Rc<Dir>,
    head: u32,
    side: Option<Side>,
    /// Forks: index into the spec's forks, commits left.
    fork: Option<(usize, u32)>,
}

impl Line {
    fn new(tree: Rc<Dir>, head: u32) -> Self {
        Self {
            tree,
            head,
            side: None,
            fork: None,
        }
    }
}

/// Plays a family.
pub struct Play<'a, O: Observer> {
    spec: &'a FamilySpec,
    vocab: &'a Vocabulary,
    names: &'a mut Names,
    obs: &'a mut O,
    rng: ChaCha8Rng,
    commits: u32,
    releases: u32,
    authors: Vec<String>,
    tags: Vec<(String, Target)>,
    sides_made: u32,
    version: (u32, u32, u32),
}

impl<'a, O: Observer> Play<'a, O> {
    /// A play of `spec` reporting to `obs`.
    pub fn new(
        spec: &'a FamilySpec,
        vocab: &'a Vocabulary,
        names: &'a mut Names,
        obs: &'a mut O,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let n_authors = 1 + (rng.random::<f64>().powf(-0.7) as usize).min(200);
        let authors = (0..n_authors)
            .map(|k| {
                let who = format!("dev{}-{k}", spec.seed % 1_000_003);
                format!("{who} <{who}@example.org>")
            })
            .collect();
        Self {
            spec,
            vocab,
            names,
            obs,
            rng,
            commits: 0,
            releases: 0,
            authors,
            tags: Vec::new(),
            sides_made: 0,
            version: (0, 1, 0),
        }
    }

    fn normal(&mut self) -> f64 {
        let u1: f64 = self.rng.random::<f64>().max(1e-300);
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn time(&self, tick: u32, k: u32) -> i64 {
        self.spec.start + tick as i64 * self.spec.interval + k as i64
    }

    fn author(&mut self) -> String {
        // A few authors make most commits.
        let n = self.authors.len();
        let i = ((self.rng.random::<f64>().powi(3)) * n as f64) as usize;
        self.authors[i.min(n - 1)].clone()
    }

    fn commit(
        &mut self,
        line: &mut Line,
        parents: &[u32],
        time: i64,
        message: &str,
    ) -> Result<u32, ArchiveError> {
        let index = self.commits;
        self.commits += 1;
        let author = self.author();
        self.obs.commit(
            self.names,
            &CommitEvent {
                index,
                parents,
                tree: &line.tree,
                author: &author,
                time,
                message,
            },
        )?;
        line.head = index;
        Ok(index)
    }

    /// A name not used yet in the folder at `dir` of `tree`.
    fn fresh_name(&mut self, tree: &Dir, dir: &[Name], file: bool) -> Name {
        for attempt in 0..20 {
            let mut name = if file {
                self.vocab.file(&mut self.rng, self.spec.language)
            } else {
                self.vocab.dir(&mut self.rng)
            };
            if attempt >= 10 {
                name = format!("{name}{attempt}");
            }
            let id = self.names.intern(name.as_bytes());
            if tree.dir_at(dir).is_none_or(|d| d.get(id).is_none()) {
                return id;
            }
        }
        let n = self.rng.random::<u32>();
        self.names.intern(format!("f{n:08x}").as_bytes())
    }

    fn new_file(&mut self, tree: &Rc<Dir>) -> Node {
        let roll: f64 = self.rng.random();
        if roll < 0.005 && tree.files() > 0 {
            if let Some(p) = tree.pick_file(&mut self.rng) {
                let target: Arc<[u8]> = self.names.path(&p).into_bytes().into();
                let spec = Spec {
                    seed: self.rng.random(),
                    len: target.len() as u64,
                    kind: Kind::Link(target),
                };
                return Node::Link(Blob::new(spec));
            }
        }
        let exec = self.rng.random_bool(0.02);
        Node::File(Blob::new(content::new_blob(&mut self.rng)), exec)
    }

    /// Adds a file in a folder of `line` (sometimes a new folder); returns its path.
    fn add_file(&mut self, line: &mut Line) -> Vec<Name> {
        // Next to a file drawn at random (folders grow in proportion to their files, so the
        // root, with a handful, stays small as in real code). A full folder passes the file
        // down into one of its subfolders, or, when the walk down stops at it, into a new
        // one; now and then any folder gets a new subfolder.
        let mut dir = match line.tree.pick_file(&mut self.rng) {
            Some(mut f) => {
                f.pop();
                f
            }
            None => line.tree.pick_dir(&mut self.rng),
        };
        let mut new_folder = self.rng.random_bool(0.05);
        while !new_folder {
            let Some(d) = line.tree.dir_at(&dir).filter(|d| d.entry_count() >= 48) else {
                break;
            };
            let down = d.pick_dir(&mut self.rng);
            new_folder = down.is_empty();
            dir.extend(down);
        }
        if new_folder {
            let name = self.fresh_name(&line.tree, &dir, false);
            dir.push(name);
        }
        let name = self.fresh_name(&line.tree, &dir, true);
        dir.push(name);
        let node = self.new_file(&line.tree);
        Dir::set(&mut line.tree, &dir, Some(node));
        dir
    }

    /// The first tree: `n` files laid out in nested folders.
    fn initial_tree(&mut self, n: u32) -> Rc<Dir> {
        let mut tree = Dir::empty();
        let mut stack: Vec<(Vec<Name>, u32, u32)> = vec![(Vec::new(), n.max(1), 0)];
        while let Some((path, files, depth)) = stack.pop() {
            // A handful of files per folder (lognormal, median 6), the rest in up to 12
            // subfolders of uneven sizes: depth and fan-out like real code.
            let here = if depth >= 8 {
                files
            } else {
                let typical = 6.0 * (0.8 * self.normal()).exp();
                (typical.round() as u32).clamp(1, files)
            };
            for _ in 0..here {
                let mut p = path.clone();
                p.push(self.fresh_name(&tree, &path, true));
                let node = self.new_file(&tree);
                Dir::set(&mut tree, &p, Some(node));
            }
            let rest = files - here;
            if rest == 0 {
                continue;
            }
            let subs = rest.div_ceil(30).clamp(1, 12).min(rest);
            let subs = self.rng.random_range(subs.div_ceil(2)..=subs);
            let weights: Vec<f64> = (0..subs)
                .map(|_| self.rng.random::<f64>().powi(2) + 0.05)
                .collect();
            let total: f64 = weights.iter().sum();
            let mut left = rest;
            for (i, w) in weights.iter().enumerate() {
                let share = if i + 1 == weights.len() {
                    left
                } else {
                    (((rest as f64) * w / total) as u32).min(left)
                };
                left -= share;
                if share > 0 {
                    let mut p = path.clone();
                    p.push(self.fresh_name(&tree, &path, false));
                    stack.push((p, share, depth + 1));
                }
            }
        }
        // Most repositories carry a license file at their root (GitHub: about 4 in 5 of the
        // ones that are forked or starred): every family but one in five, by its first
        // origin's number, so that the first family, and any small archive, has one.
        if self.spec.upstream.first().is_none_or(|u| u.0 % 5 != 4) {
            let spec = content::new_license(&mut self.rng);
            let gnu = matches!(spec.kind, Kind::License(2 | 4));
            let name = self.names.intern(if gnu {
                b"COPYING".as_slice()
            } else {
                b"LICENSE"
            });
            Dir::set(&mut tree, &[name], Some(Node::File(Blob::new(spec), false)));
        }
        let targets = self.spec.submodule_targets.clone();
        if !targets.is_empty() && self.rng.random_bool(0.03) {
            let id = targets[self.rng.random_range(0..targets.len())];
            let vendor = self.names.intern(b"vendor");
            let name = self.fresh_name(&tree, &[vendor], false);
            Dir::set(&mut tree, &[vendor, name], Some(Node::Gitlink(Rc::new(id))));
        }
        tree
    }

    /// The changes of one ordinary commit; returns the paths changed.
    fn change(&mut self, line: &mut Line) -> Vec<Vec<Name>> {
        let mut changed = Vec::new();
        let n = 1
            + (self.rng.random::<f64>().ln() / 0.5f64.ln())
                .floor()
                .min(20.0) as u32;
        let first = line.tree.pick_file(&mut self.rng);
        for _ in 0..n {
            let roll: f64 = self.rng.random();
            if roll < 0.12 || line.tree.files() == 0 {
                changed.push(self.add_file(line));
            } else if roll < 0.15 && line.tree.files() > 1 {
                if let Some(p) = line.tree.pick_file(&mut self.rng) {
                    Dir::set(&mut line.tree, &p, None);
                    changed.push(p);
                }
            } else if roll < 0.16 {
                if let Some(p) = line.tree.pick_file(&mut self.rng) {
                    let node = line.tree.node_at(&p).cloned();
                    Dir::set(&mut line.tree, &p, None);
                    let mut to = line.tree.pick_dir(&mut self.rng);
                    let name = self.fresh_name(&line.tree, &to, true);
                    to.push(name);
                    Dir::set(&mut line.tree, &to, node);
                    changed.push(p);
                    changed.push(to);
                }
            } else {
                // Edits cluster: most touch the folder of the commit's first file.
                let near = first
                    .as_ref()
                    .filter(|_| self.rng.random_bool(0.6))
                    .and_then(|f| {
                        let up = &f[..f.len() - 1];
                        let d = line.tree.dir_at(up)?;
                        let mut p = up.to_vec();
                        p.extend(d.pick_file(&mut self.rng)?);
                        Some(p)
                    });
                let Some(p) = near.or_else(|| line.tree.pick_file(&mut self.rng)) else {
                    continue;
                };
                let node = match line.tree.node_at(&p) {
                    Some(Node::File(b, exec)) => {
                        Node::File(Blob::new(content::edited(&mut self.rng, &b.spec)), *exec)
                    }
                    _ => continue,
                };
                Dir::set(&mut line.tree, &p, Some(node));
                changed.push(p);
            }
        }
        changed
    }

    fn message(&mut self, changed: &[Vec<Name>]) -> String {
        let verb = ["Update", "Fix", "Add", "Refactor", "Improve", "Clean up"]
            [self.rng.random_range(0..6)];
        match changed.first().and_then(|p| p.last()) {
            Some(&n) => format!("{verb} {}\n", String::from_utf8_lossy(self.names.bytes(n))),
            None => format!("{verb}\n"),
        }
    }

    fn ordinary(&mut self, line: &mut Line, time: i64) -> Result<Vec<Vec<Name>>, ArchiveError> {
        let changed = self.change(line);
        let message = self.message(&changed);
        let parents = [line.head];
        self.commit(line, &parents, time, &message)?;
        Ok(changed)
    }

    fn visit(
        &mut self,
        origin: u32,
        tick: u32,
        upstream: &Line,
        sides: &[Line],
        fork: Option<&Line>,
    ) -> Result<(), ArchiveError> {
        let branch = format!("refs/heads/{}", self.spec.default_branch).into_bytes();
        let mut branches = vec![(b"HEAD".to_vec(), Target::Alias(branch.clone()))];
        match fork {
            Some(f) => branches.push((branch, Target::Commit(f.head))),
            None => {
                branches.push((branch, Target::Commit(upstream.head)));
                for s in sides
                    .iter()
                    .filter_map(|l| l.side.as_ref().map(|s| (s, l.head)))
                {
                    let name = format!("refs/heads/{}", s.0.name).into_bytes();
                    branches.push((name, Target::Commit(s.1)));
                }
                for (name, t) in &self.tags {
                    branches.push((format!("refs/tags/{name}").into_bytes(), t.clone()));
                }
            }
        }
        branches.sort_by(|a, b| a.0.cmp(&b.0));
        branches.dedup_by(|a, b| a.0 == b.0);
        let time = self.time(tick, 900);
        self.obs.visit(
            self.names,
            &VisitEvent {
                origin,
                time,
                branches: &branches,
            },
        )
    }

    /// Commits on every side branch with commits left.
    fn side_commits(&mut self, sides: &mut [Line], tick: u32) -> Result<(), ArchiveError> {
        for (k, line) in sides.iter_mut().enumerate() {
            if line.side.as_ref().is_some_and(|s| s.left > 0) {
                let changed = self.ordinary(line, self.time(tick, 1 + k as u32))?;
                if let Some(s) = &mut line.side {
                    s.left -= 1;
                    s.changed.extend(changed);
                }
            }
        }
        Ok(())
    }

    /// The upstream commit of `tick`: the merge of a side branch that is due, or an
    /// ordinary one.
    fn upstream_commit(
        &mut self,
        upstream: &mut Line,
        sides: &mut Vec<Line>,
        tick: u32,
    ) -> Result<(), ArchiveError> {
        let due = sides.iter().position(|l| {
            l.side
                .as_ref()
                .is_some_and(|s| s.left == 0 && s.merge_at <= tick)
        });
        let time = self.time(tick, 0);
        let Some(i) = due else {
            return self.ordinary(upstream, time).map(|_| ());
        };
        let line = sides.remove(i);
        let Some(side) = &line.side else {
            return Ok(());
        };
        for p in &side.changed {
            Dir::set(&mut upstream.tree, p, line.tree.node_at(p).cloned());
        }
        let parents = [upstream.head, line.head];
        let message = format!("Merge branch '{}'\n", side.name);
        self.commit(upstream, &parents, time, &message).map(|_| ())
    }

    /// Sometimes opens a side branch, sometimes tags the upstream head.
    fn branch_and_tag(
        &mut self,
        upstream: &Line,
        sides: &mut Vec<Line>,
        tick: u32,
    ) -> Result<(), ArchiveError> {
        if self.rng.random_bool(0.03) {
            self.sides_made += 1;
            let left = self.rng.random_range(1..7);
            // One in five is never merged: it stays a branch of every later snapshot.
            let merge_at = if self.rng.random_bool(0.2) {
                u32::MAX
            } else {
                tick + left + self.rng.random_range(0..3)
            };
            let mut line = Line::new(upstream.tree.clone(), upstream.head);
            line.side = Some(Side {
                name: format!("feature-{}", self.sides_made),
                left,
                merge_at,
                changed: Vec::new(),
            });
            sides.push(line);
        }
        if self.rng.random_bool(0.02) {
            let v = &mut self.version;
            *v = match self.rng.random_range(0..10) {
                0 => (v.0 + 1, 0, 0),
                1..=3 => (v.0, v.1 + 1, 0),
                _ => (v.0, v.1, v.2 + 1),
            };
            let name = format!("v{}.{}.{}", self.version.0, self.version.1, self.version.2);
            let release = self.rng.random_bool(0.7).then(|| {
                self.releases += 1;
                self.releases - 1
            });
            let author = self.author();
            self.obs.tag(&TagEvent {
                release,
                name: &name,
                commit: upstream.head,
                author: &author,
                time: self.time(tick, 500),
            })?;
            let target = match release {
                Some(r) => Target::Release(r),
                None => Target::Commit(upstream.head),
            };
            self.tags.push((name, target));
        }
        Ok(())
    }

    /// Starts the forks of `tick` and makes the commits of the running ones: each spreads
    /// its commits over the ticks left after it started.
    fn fork_commits(
        &mut self,
        upstream: &Line,
        forks: &mut Vec<Line>,
        tick: u32,
    ) -> Result<(), ArchiveError> {
        let spec = self.spec;
        for (i, f) in spec.forks.iter().enumerate() {
            if f.at == tick {
                let mut line = Line::new(upstream.tree.clone(), upstream.head);
                line.fork = Some((i, f.commits));
                forks.push(line);
            }
        }
        let remaining = (spec.ticks - tick) as f64;
        for (j, line) in forks.iter_mut().enumerate() {
            let Some((i, left)) = line.fork else { continue };
            let f = &spec.forks[i];
            let p = (f.commits as f64 / (spec.ticks - f.at).max(1) as f64).min(1.0);
            if left > 0 && (left as f64 >= remaining || self.rng.random_bool(p)) {
                self.ordinary(line, self.time(tick, 100 + j as u32))?;
                line.fork = Some((i, left - 1));
            }
        }
        Ok(())
    }

    /// Plays the whole family.
    pub fn run(mut self) -> Result<(), ArchiveError> {
        let spec = self.spec;
        let tree = self.initial_tree(spec.initial_files);
        let mut upstream = Line::new(tree, NONE);
        let t0 = self.time(0, 0);
        self.commit(&mut upstream, &[], t0, "Initial commit\n")?;
        let (mut sides, mut forks): (Vec<Line>, Vec<Line>) = (Vec::new(), Vec::new());
        let mut next_visit = 0;
        for tick in 0..spec.ticks {
            if tick > 0 {
                self.side_commits(&mut sides, tick)?;
                self.upstream_commit(&mut upstream, &mut sides, tick)?;
                self.branch_and_tag(&upstream, &mut sides, tick)?;
            }
            self.fork_commits(&upstream, &mut forks, tick)?;
            while spec.visits.get(next_visit) == Some(&tick) {
                next_visit += 1;
                self.visit(spec.upstream_at(tick), tick, &upstream, &sides, None)?;
            }
            for line in &forks {
                let Some((i, _)) = line.fork else { continue };
                let f = &spec.forks[i];
                if f.visits.contains(&tick) {
                    self.visit(f.origin, tick, &upstream, &[], Some(line))?;
                }
            }
        }
        Ok(())
    }
}
