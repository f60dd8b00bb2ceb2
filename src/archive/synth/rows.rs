//! Metadata rows drawn from the synthetic world, and the answer unearth must give each one,
//! computed from the generator's own model (its trees, commits and visits), not the graph.
//!
//! Rows come in pairs (one repository spelling, one commit prefix), ~8.3 rows per pair as in
//! Nemotron: most name files of an archived commit of the origin; some are meant to fail as
//! real metadata does (a repository never archived, a commit made after the last visit, a
//! commit of another repository, a path absent at that commit, malformed values), and some
//! spell the repository in another case or with `.git`. Whatever a row was meant to be, its
//! expected answer is computed the way the documented rules define it: origins by normalised
//! URL, candidates by prefix among archived commits, membership and rank by a breadth-first
//! search from the group's snapshots (ties to the first origin by URL, then the smallest
//! snapshot id), and per row the first member in rank order whose tree holds the path.

use std::collections::{HashMap, HashSet, VecDeque};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::archive::ArchiveError;
use crate::model::hashes::{hex, Sha1Id};
use crate::model::slug::{normalize_slug, normalize_url};

use super::content::Spec;
use super::family::{CommitEvent, Observer, Play, TagEvent, VisitEvent, NONE};
use super::names::{recase, Names, Vocabulary};
use super::tree::{Lookup, Node};
use super::world::World;

/// Mean rows per pair (Nemotron: ~623e6 rows over ~75e6 pairs).
const ROWS_PER_PAIR: f64 = 8.3;

/// What a pair was drawn to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// A commit of the origin.
    Normal,
    /// A repository no origin has.
    Ghost,
    /// A commit made after the origin's last visit.
    Unarchived,
    /// A commit of another repository.
    Foreign,
}

/// A pair: how the rows spell the repository, the commit the rows were drawn from, and the
/// rows' range once drawn.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The slug as the rows write it.
    pub slug: String,
    /// The commit whose tree the paths come from: `(family, commit)`.
    pub source: (u32, u32),
    /// The prefix the rows give.
    pub prefix: String,
    /// Rows to draw.
    pub want: u32,
    /// What it was drawn to be.
    pub intent: Intent,
}

/// A row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its pair.
    pub pair: u32,
    /// `repo` as written (differs from the pair's for malformed rows).
    pub repo: String,
    /// `commit_id` as written.
    pub commit: String,
    /// `rel_path` as written.
    pub path: String,
}

/// The answer a row must get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Status.
    pub status: &'static str,
    /// Revision chosen (hex).
    pub revision: Option<String>,
    /// Object at the path (files and links).
    pub sha1_git: Option<String>,
    /// Origin credited.
    pub origin_url: Option<String>,
    /// Snapshot credited (hex).
    pub snapshot: Option<String>,
    /// Revisions with the prefix in the archive.
    pub candidates: Option<u32>,
    /// Members whose tree holds the path.
    pub candidates_with_path: Option<u32>,
}

/// The hex prefix length that gives about 19 archived revisions per prefix, as 7 hex digits
/// give in the full archive (4.5e9 revisions / 16^7), within 4..=7.
pub fn prefix_len(revisions: u64) -> usize {
    let per = revisions.max(1) as f64 / 19.0;
    (per.log(16.0).round() as i64).clamp(4, 7) as usize
}

fn prefix_value(id: &Sha1Id, len: usize) -> u32 {
    let mut v = 0u32;
    for i in 0..len {
        let b = id[i / 2];
        let d = if i % 2 == 0 { b >> 4 } else { b & 15 };
        v = v << 4 | d as u32;
    }
    v
}

/// Archived commits by prefix.
pub struct PrefixIndex {
    len: usize,
    by: HashMap<u32, Vec<(u32, u32)>>,
}

impl PrefixIndex {
    /// Indexes every archived commit of `world` by its first `len` hex digits.
    pub fn new(world: &World, len: usize) -> Self {
        let mut by: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
        for (f, m) in world.families.iter().enumerate() {
            for (c, id) in m.ids.iter().enumerate() {
                if m.archived[c] {
                    by.entry(prefix_value(id, len))
                        .or_default()
                        .push((f as u32, c as u32));
                }
            }
        }
        Self { len, by }
    }

    /// Archived commits whose id starts with `prefix` (hex, at least the index's length).
    pub fn get(&self, world: &World, prefix: &str) -> Vec<(u32, u32)> {
        let Some(head) = prefix.get(..self.len) else {
            return Vec::new();
        };
        let Ok(v) = u32::from_str_radix(head, 16) else {
            return Vec::new();
        };
        let want = prefix.to_ascii_lowercase();
        self.by
            .get(&v)
            .map(|l| {
                l.iter()
                    .filter(|(f, c)| {
                        hex(&world.families[*f as usize].ids[*c as usize]).starts_with(&want)
                    })
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of distinct prefixes.
    pub fn prefixes(&self) -> usize {
        self.by.len()
    }
}

/// Origins with visits, with the weight of each in the draw of pairs (larger histories get
/// more pairs, sub-linearly).
fn origin_weights(world: &World) -> (Vec<u32>, Vec<f64>) {
    let mut ids = Vec::new();
    let mut cumulative = Vec::new();
    let mut total = 0.0;
    for (i, o) in world.origins.iter().enumerate() {
        let Some(v) = o.visits.last() else { continue };
        let size = world.families[v.family as usize].ids.len() as f64;
        total += (1.0 + size).sqrt();
        ids.push(i as u32);
        cumulative.push(total);
    }
    (ids, cumulative)
}

/// Another spelling of `slug` a user might write.
fn respell(rng: &mut ChaCha8Rng, slug: &str) -> String {
    match rng.random_range(0..4) {
        0 => recase(rng, slug),
        1 => format!("{slug}.git"),
        2 => format!(" {slug} "),
        _ => match slug.split_once('/') {
            Some((o, n)) => format!("{}/{n}.GIT", o.to_uppercase()),
            None => slug.to_uppercase(),
        },
    }
}

/// Draws the pairs for about `rows` rows.
pub fn plan_pairs(
    world: &World,
    vocab: &Vocabulary,
    rng: &mut ChaCha8Rng,
    rows: u64,
    len: usize,
) -> Vec<Pair> {
    let (ids, cumulative) = origin_weights(world);
    let total = cumulative.last().copied().unwrap_or(0.0);
    let mut histories: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
    let mut out = Vec::new();
    let mut planned = 0u64;
    if ids.is_empty() {
        return out;
    }
    while planned < rows {
        let want =
            1 + (rng.random::<f64>().max(1e-12).ln() / (1.0 - 1.0 / ROWS_PER_PAIR).ln()) as u32;
        let want = want.min(200).min((rows - planned) as u32).max(1);
        let x = rng.random::<f64>() * total;
        let o = ids[cumulative.partition_point(|&c| c < x).min(ids.len() - 1)];
        let origin = &world.origins[o as usize];
        let history = histories.entry(o).or_insert_with(|| world.history(o));
        let roll: f64 = rng.random();
        let (intent, source) = if roll < 0.04 {
            (Intent::Ghost, history[rng.random_range(0..history.len())])
        } else if roll < 0.06 {
            let v = &origin.visits[rng.random_range(0..origin.visits.len())];
            let fam = &world.families[v.family as usize];
            match fam.archived.iter().rposition(|a| !a) {
                Some(c) => (Intent::Unarchived, (v.family, c as u32)),
                None => (Intent::Normal, history[rng.random_range(0..history.len())]),
            }
        } else if roll < 0.08 {
            let f = rng.random_range(0..world.families.len());
            let fam = &world.families[f];
            let c = rng.random_range(0..fam.ids.len());
            (Intent::Foreign, (f as u32, c as u32))
        } else if rng.random_bool(0.5) {
            let v = &origin.visits[rng.random_range(0..origin.visits.len())];
            let h = v.heads[rng.random_range(0..v.heads.len())];
            (Intent::Normal, (v.family, h.commit))
        } else {
            (Intent::Normal, history[rng.random_range(0..history.len())])
        };
        let slug = match intent {
            Intent::Ghost => world.ghost_slug(rng, vocab),
            _ if rng.random_bool(0.08) => respell(rng, &origin.slug),
            _ => origin.slug.clone(),
        };
        let id = world.families[source.0 as usize].ids[source.1 as usize];
        out.push(Pair {
            slug,
            source,
            prefix: hex(&id)[..len].to_string(),
            want,
            intent,
        });
        planned += want as u64;
    }
    out
}

/// The second pass's observer: draws each pair's paths from its source commit's tree.
struct Drawer<'a> {
    at: HashMap<u32, Vec<u32>>,
    pairs: &'a [Pair],
    rows: &'a mut Vec<Row>,
    vocab: &'a Vocabulary,
    rng: ChaCha8Rng,
}

impl Observer for Drawer<'_> {
    fn commit(&mut self, names: &Names, e: &CommitEvent) -> Result<(), ArchiveError> {
        let Some(list) = self.at.get(&e.index) else {
            return Ok(());
        };
        for &p in list {
            let pair = &self.pairs[p as usize];
            let mut seen = HashSet::new();
            for _ in 0..pair.want * 3 {
                if seen.len() as u32 >= pair.want {
                    break;
                }
                let Some(path) = e.tree.pick_file(&mut self.rng) else {
                    break;
                };
                if !seen.insert(path.clone()) {
                    continue;
                }
                let mut text = names.path(&path);
                let roll: f64 = self.rng.random();
                if roll < 0.01 {
                    // A file the commit may not have.
                    let up = names.path(&path[..path.len() - 1]);
                    let other = self.vocab.file(&mut self.rng, 0);
                    text = if up.is_empty() {
                        other
                    } else {
                        format!("{up}/{other}")
                    };
                } else if roll < 0.013 && path.len() > 1 {
                    text = names.path(&path[..path.len() - 1]);
                }
                let (mut repo, mut commit) = (pair.slug.clone(), pair.prefix.clone());
                let roll: f64 = self.rng.random();
                if roll < 0.001 {
                    commit = format!("zz{}", &commit[2..]);
                } else if roll < 0.002 {
                    text = format!("{text}/");
                } else if roll < 0.003 {
                    text = format!("../{text}");
                } else if roll < 0.0035 {
                    repo = " / ".into();
                }
                self.rows.push(Row {
                    pair: p,
                    repo,
                    commit,
                    path: text,
                });
            }
        }
        Ok(())
    }
    fn tag(&mut self, _: &TagEvent) -> Result<(), ArchiveError> {
        Ok(())
    }
    fn visit(&mut self, _: &Names, _: &VisitEvent) -> Result<(), ArchiveError> {
        Ok(())
    }
}

/// Plays again every family holding a source and draws the rows, grouped by pair.
pub fn draw_rows(
    world: &World,
    vocab: &Vocabulary,
    names: &mut Names,
    pairs: &[Pair],
    seed: u64,
) -> Result<Vec<Row>, ArchiveError> {
    let mut by_family: HashMap<u32, HashMap<u32, Vec<u32>>> = HashMap::new();
    for (i, p) in pairs.iter().enumerate() {
        by_family
            .entry(p.source.0)
            .or_default()
            .entry(p.source.1)
            .or_default()
            .push(i as u32);
    }
    let mut families: Vec<u32> = by_family.keys().copied().collect();
    families.sort_unstable();
    let mut rows = Vec::new();
    for f in families {
        let mut d = Drawer {
            at: by_family.remove(&f).unwrap_or_default(),
            pairs,
            rows: &mut rows,
            vocab,
            rng: ChaCha8Rng::seed_from_u64(seed ^ (f as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        };
        Play::new(&world.specs[f as usize], vocab, names, &mut d).run()?;
    }
    Ok(rows)
}

/// Where a member of a pair was found.
#[derive(Debug, Clone, Copy)]
struct Credit {
    distance: u32,
    /// Position of the origin (by URL) in the group, then the snapshot id.
    preference: (u32, Sha1Id),
}

/// A node of the history graph as the search walks it: a commit, or the annotated tags
/// pointing at one (all of them at once: they share their successor).
type Key = (u32, u32, bool);

/// The search's result for one group of origins (every origin a slug names).
struct Group {
    /// The origins, by URL (a credit's position indexes this).
    origins: Vec<u32>,
    found: HashMap<Key, Credit>,
    heads: HashSet<(u32, u32)>,
}

impl Group {
    fn new(world: &World, origins: Vec<u32>) -> Self {
        // A snapshot belongs to the first origin (by URL) that holds it.
        let mut owner: HashMap<Sha1Id, u32> = HashMap::new();
        let mut sources: Vec<((u32, Sha1Id), Key)> = Vec::new();
        let mut heads = HashSet::new();
        for (pos, &o) in origins.iter().enumerate() {
            for v in &world.origins[o as usize].visits {
                owner.entry(v.snapshot).or_insert(pos as u32);
            }
        }
        for &o in &origins {
            for v in &world.origins[o as usize].visits {
                let pref = (owner[&v.snapshot], v.snapshot);
                for h in &v.heads {
                    heads.insert((v.family, h.commit));
                    sources.push((pref, (v.family, h.commit, h.via_release)));
                }
            }
        }
        let mut found: HashMap<Key, Credit> = HashMap::new();
        let mut queue = VecDeque::new();
        let reach = |found: &mut HashMap<Key, Credit>,
                     queue: &mut VecDeque<Key>,
                     k: Key,
                     d: u32,
                     pref: (u32, Sha1Id)| {
            match found.get_mut(&k) {
                None => {
                    found.insert(
                        k,
                        Credit {
                            distance: d,
                            preference: pref,
                        },
                    );
                    queue.push_back(k);
                }
                Some(c) if c.distance == d && pref < c.preference => c.preference = pref,
                Some(_) => {}
            }
        };
        for (pref, k) in sources {
            reach(&mut found, &mut queue, k, 1, pref);
        }
        while let Some(k) = queue.pop_front() {
            let c = found[&k];
            let (f, commit, release) = k;
            if release {
                reach(
                    &mut found,
                    &mut queue,
                    (f, commit, false),
                    c.distance + 1,
                    c.preference,
                );
                continue;
            }
            for &p in &world.families[f as usize].parents[commit as usize] {
                if p != NONE {
                    reach(
                        &mut found,
                        &mut queue,
                        (f, p, false),
                        c.distance + 1,
                        c.preference,
                    );
                }
            }
        }
        Self {
            origins,
            found,
            heads,
        }
    }
}

/// A member of a pair: a commit of the group with the prefix, and where it was found.
#[derive(Debug, Clone)]
struct Member {
    commit: (u32, u32),
    head: bool,
    credit: Credit,
    id: Sha1Id,
    /// The origin credited.
    origin: u32,
}

/// The ranked members of every pair, and per pair the count of candidates.
fn members(world: &World, index: &PrefixIndex, pairs: &[Pair]) -> Vec<(u32, Option<Vec<Member>>)> {
    let by_url = world.origins_by_url();
    let key = |p: &Pair| normalize_url(&format!("https://github.com/{}", normalize_slug(&p.slug)));
    let mut order: Vec<u32> = (0..pairs.len() as u32).collect();
    order.sort_by_cached_key(|&i| key(&pairs[i as usize]));
    let mut out: Vec<(u32, Option<Vec<Member>>)> = vec![(0, None); pairs.len()];
    let mut group: Option<(String, Group)> = None;
    for i in order {
        let p = &pairs[i as usize];
        let cands = index.get(world, &p.prefix);
        let k = key(p);
        let Some(list) = by_url.get(&k) else {
            out[i as usize] = (cands.len() as u32, None);
            continue;
        };
        if group.as_ref().is_none_or(|g| g.0 != k) {
            let mut origins = list.clone();
            origins.sort_by(|a, b| {
                world.origins[*a as usize]
                    .url
                    .cmp(&world.origins[*b as usize].url)
            });
            group = Some((k.clone(), Group::new(world, origins)));
        }
        let Some((_, g)) = &group else { continue };
        let mut ms: Vec<Member> = cands
            .iter()
            .filter_map(|&(f, c)| {
                g.found.get(&(f, c, false)).map(|credit| Member {
                    commit: (f, c),
                    head: g.heads.contains(&(f, c)),
                    credit: *credit,
                    id: world.families[f as usize].ids[c as usize],
                    origin: g.origins[credit.preference.0 as usize],
                })
            })
            .collect();
        ms.sort_by_key(|m| (!m.head, m.credit.distance, m.id));
        out[i as usize] = (cands.len() as u32, Some(ms));
    }
    out
}

/// What each row's path leads to in each member's tree (and the blob's spec): by
/// `(pair, member slot)`, one entry per row of the pair.
type Looked = HashMap<(u32, u32), Vec<(Lookup, Option<Spec>)>>;

/// The third pass's observer: looks every row's path up in the trees of its pair's members.
struct Checker<'a> {
    at: HashMap<u32, Vec<(u32, u32)>>,
    rows_of: &'a [(usize, usize)],
    rows: &'a [Row],
    results: &'a mut Looked,
}

impl Observer for Checker<'_> {
    fn commit(&mut self, names: &Names, e: &CommitEvent) -> Result<(), ArchiveError> {
        let Some(list) = self.at.get(&e.index) else {
            return Ok(());
        };
        for &(pair, slot) in list {
            let (a, b) = self.rows_of[pair as usize];
            let found = self.rows[a..b]
                .iter()
                .map(|r| {
                    let comps: Vec<&[u8]> = r.path.split('/').map(str::as_bytes).collect();
                    let l = e.tree.lookup(names, &comps);
                    let spec = match &l {
                        Lookup::File(_) | Lookup::Link(_) => {
                            let ids: Vec<super::names::Name> =
                                comps.iter().filter_map(|c| names.get(c)).collect();
                            match e.tree.node_at(&ids) {
                                Some(Node::File(b, _) | Node::Link(b)) => Some(b.spec.clone()),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    (l, spec)
                })
                .collect();
            self.results.insert((pair, slot), found);
        }
        Ok(())
    }
    fn tag(&mut self, _: &TagEvent) -> Result<(), ArchiveError> {
        Ok(())
    }
    fn visit(&mut self, _: &Names, _: &VisitEvent) -> Result<(), ArchiveError> {
        Ok(())
    }
}

/// Every row's expected answer, and the specs of the blobs the answers name.
pub fn expect(
    world: &World,
    vocab: &Vocabulary,
    names: &mut Names,
    index: &PrefixIndex,
    pairs: &[Pair],
    rows: &[Row],
) -> Result<(Vec<Expected>, HashMap<Sha1Id, Spec>), ArchiveError> {
    let members = members(world, index, pairs);
    // Rows are grouped by pair, in pair order.
    let mut rows_of = vec![(0usize, 0usize); pairs.len()];
    let mut i = 0;
    while i < rows.len() {
        let p = rows[i].pair as usize;
        let start = i;
        while i < rows.len() && rows[i].pair as usize == p {
            i += 1;
        }
        rows_of[p] = (start, i);
    }
    let mut by_family: HashMap<u32, HashMap<u32, Vec<(u32, u32)>>> = HashMap::new();
    for (p, (_, ms)) in members.iter().enumerate() {
        for (slot, m) in ms.iter().flatten().enumerate() {
            by_family
                .entry(m.commit.0)
                .or_default()
                .entry(m.commit.1)
                .or_default()
                .push((p as u32, slot as u32));
        }
    }
    let mut results = HashMap::new();
    let mut families: Vec<u32> = by_family.keys().copied().collect();
    families.sort_unstable();
    for f in families {
        let mut c = Checker {
            at: by_family.remove(&f).unwrap_or_default(),
            rows_of: &rows_of,
            rows,
            results: &mut results,
        };
        Play::new(&world.specs[f as usize], vocab, names, &mut c).run()?;
    }
    let mut blobs = HashMap::new();
    let answers = rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let nth = r - rows_of[row.pair as usize].0;
            answer(
                world,
                row,
                &members[row.pair as usize],
                &results,
                nth,
                &mut blobs,
            )
        })
        .collect();
    Ok((answers, blobs))
}

fn answer(
    world: &World,
    row: &Row,
    members: &(u32, Option<Vec<Member>>),
    results: &Looked,
    nth: usize,
    blobs: &mut HashMap<Sha1Id, Spec>,
) -> Expected {
    if crate::phases::plan::validate(Some(&row.repo), Some(&row.commit), Some(&row.path)).is_err() {
        return Expected {
            status: "invalid",
            ..Expected::default()
        };
    }
    let (candidates, ms) = members;
    let failed = |status| Expected {
        status,
        candidates: Some(*candidates),
        ..Expected::default()
    };
    let Some(ms) = ms else {
        return failed("origin_not_found");
    };
    if *candidates == 0 {
        return failed("commit_not_found");
    }
    if ms.is_empty() {
        return failed("commit_not_in_origin");
    }
    let pair_index = row.pair;
    let looked: Vec<&(Lookup, Option<Spec>)> = (0..ms.len())
        .map(|slot| &results[&(pair_index, slot as u32)][nth])
        .collect();
    let holds = |l: &Lookup| !matches!(l, Lookup::NotFound);
    let with_path = looked.iter().filter(|x| holds(&x.0)).count() as u32;
    let chosen = looked.iter().position(|x| holds(&x.0)).unwrap_or(0);
    let m = &ms[chosen];
    let (lookup, spec) = looked[chosen];
    let (status, sha1_git) = match lookup {
        Lookup::NotFound => ("path_not_found", None),
        Lookup::Dir => ("is_directory", None),
        Lookup::Submodule => ("submodule", None),
        Lookup::File(id) => ("ok", Some(*id)),
        Lookup::Link(id) => ("symlink", Some(*id)),
    };
    if let (Some(id), Some(spec)) = (sha1_git, spec) {
        blobs.entry(id).or_insert_with(|| spec.clone());
    }
    Expected {
        status,
        revision: Some(hex(&m.id)),
        sha1_git: sha1_git.map(|i| hex(&i)),
        origin_url: Some(world.origins[m.origin as usize].url.clone()),
        snapshot: Some(format!("swh:1:snp:{}", hex(&m.credit.preference.1))),
        candidates: Some(*candidates),
        candidates_with_path: Some(with_path),
    }
}

/// Shuffles the rows (real metadata is not grouped by pair), keeping answers aligned.
pub fn shuffle(rng: &mut ChaCha8Rng, rows: &mut [Row], answers: &mut [Expected]) {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.shuffle(rng);
    let r: Vec<Row> = order.iter().map(|&i| rows[i].clone()).collect();
    let a: Vec<Expected> = order.iter().map(|&i| answers[i].clone()).collect();
    rows.clone_from_slice(&r);
    answers.clone_from_slice(&a);
}
