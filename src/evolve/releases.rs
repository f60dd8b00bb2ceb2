//! The releases of an origin, from its latest snapshot, in version order.
//!
//! A release is a `refs/tags/*` branch of the snapshot (or `releases/*`, as SWH's package
//! loaders name theirs): an annotated tag (a release node, followed through tags of tags to
//! its revision, or straight to a directory for packages) or a lightweight one (a revision). Tags
//! that read as versions ([`super::version`]) are ordered by version; when an origin has no
//! such tag, its tags are ordered by date (the release's author date, else the revision's
//! committer date). Tags naming neither a revision nor a release of one (a tagged tree or
//! blob) are set aside with the reason.

use swh_graph::labels::EdgeLabel;
use swh_graph::NodeType;

use super::version::{self, Version};
use crate::graph::origins::origins_of;
use crate::graph::HistoryGraph;

/// One tag of an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The tag's name, without `refs/tags/`.
    pub tag: String,
    /// The tag read as a version.
    pub version: Option<Version>,
    /// The release node of an annotated tag.
    pub release: Option<usize>,
    /// The tagged revision (none when a package release names its directory directly).
    pub revision: Option<usize>,
    /// Its root directory.
    pub root: usize,
    /// Seconds since the epoch: the release's date, else the revision's.
    pub date: Option<i64>,
}

/// An origin's tags, ordered oldest first, and the ones set aside.
#[derive(Debug, Clone, Default)]
pub struct Releases {
    /// The origin node.
    pub origin: usize,
    /// Its latest snapshot.
    pub snapshot: usize,
    /// Its tags, oldest first.
    pub ordered: Vec<Release>,
    /// Tags not in the order, with why.
    pub set_aside: Vec<(String, &'static str)>,
}

/// The latest snapshot of `origin`: the one its latest visit found, with that visit's time.
fn latest_visit(graph: &impl HistoryGraph, origin: usize) -> Option<(u64, usize)> {
    let props = graph.properties();
    let mut best: Option<(u64, usize)> = None;
    for (succ, labels) in graph.labeled_successors(origin) {
        if props.node_type(succ) != NodeType::Snapshot {
            continue;
        }
        let mut when = 0;
        for l in labels {
            if let EdgeLabel::Visit(v) = l {
                when = when.max(v.timestamp());
            }
        }
        // Ties (or no visit label at all) go to the larger node id: deterministic.
        if best.is_none_or(|b| (when, succ) > b) {
            best = Some((when, succ));
        }
    }
    best
}

/// The revision (if any) and root directory a branch target names, through tags of tags (at
/// most 16); `Err` says why there is none.
fn tagged_tree(
    graph: &impl HistoryGraph,
    mut node: usize,
) -> Result<(Option<usize>, usize), &'static str> {
    let props = graph.properties();
    for _ in 0..16 {
        match props.node_type(node) {
            NodeType::Revision => {
                return root_of(graph, node)
                    .map(|root| (Some(node), root))
                    .ok_or("its revision has no root directory in the graph");
            }
            NodeType::Directory => return Ok((None, node)),
            NodeType::Release => {
                node = graph
                    .successors(node)
                    .into_iter()
                    .next()
                    .ok_or("its release has no target in the graph")?
            }
            _ => return Err("tags no revision or directory"),
        }
    }
    Err("a chain of more than 16 tags")
}

/// The root directory of `revision`.
pub fn root_of(graph: &impl HistoryGraph, revision: usize) -> Option<usize> {
    let props = graph.properties();
    graph
        .successors(revision)
        .into_iter()
        .find(|&s| props.node_type(s) == NodeType::Directory)
}

/// The releases of the origin `slug` names through `templates` (exact URLs), or
/// `None` when the graph has no such origin or it has no snapshot.
pub fn releases(graph: &impl HistoryGraph, slug: &str, templates: &[String]) -> Option<Releases> {
    // Of several origins the slug names (`x/y` and `x/y.git`), the most recently visited.
    let origin = origins_of(graph, slug, templates)
        .into_iter()
        .max_by_key(|&o| (latest_visit(graph, o).map(|v| v.0), o))?;
    releases_of_origin(graph, origin)
}

/// The releases of `origin`.
pub fn releases_of_origin(graph: &impl HistoryGraph, origin: usize) -> Option<Releases> {
    let props = graph.properties();
    let (_, snapshot) = latest_visit(graph, origin)?;
    let mut tags = Vec::new();
    let mut set_aside = Vec::new();
    for (target, labels) in graph.labeled_successors(snapshot) {
        for l in labels {
            let EdgeLabel::Branch(b) = l else { continue };
            let name = props.label_name(b.label_name_id());
            let Some(tag) = name
                .strip_prefix(b"refs/tags/")
                .or_else(|| name.strip_prefix(b"releases/"))
            else {
                continue;
            };
            let tag = String::from_utf8_lossy(tag).into_owned();
            let release = (props.node_type(target) == NodeType::Release).then_some(target);
            let (revision, root) = match tagged_tree(graph, target) {
                Ok(t) => t,
                Err(why) => {
                    set_aside.push((tag, why));
                    continue;
                }
            };
            let date = release
                .and_then(|r| props.author_timestamp(r))
                .or_else(|| revision.and_then(|r| props.committer_timestamp(r)));
            tags.push(Release {
                version: version::parse(&tag),
                tag,
                release,
                revision,
                root,
                date,
            });
        }
    }
    let ordered = order(tags, &mut set_aside);
    Some(Releases {
        origin,
        snapshot,
        ordered,
        set_aside,
    })
}

/// Orders `tags` oldest first: by version when some are versions (the others are set aside),
/// else by date; the tag name breaks ties. Of neighbours naming the same tree (`v1.0` and
/// `1.0` on one commit), the later is kept: their pair would be empty.
pub fn order(tags: Vec<Release>, set_aside: &mut Vec<(String, &'static str)>) -> Vec<Release> {
    let (mut versions, others): (Vec<Release>, Vec<Release>) =
        tags.into_iter().partition(|r| r.version.is_some());
    let mut ordered = if versions.is_empty() {
        let mut others = others;
        others.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.tag.cmp(&b.tag)));
        others
    } else {
        set_aside.extend(
            others
                .into_iter()
                .map(|r| (r.tag, "not a version, and the origin has version tags")),
        );
        versions.sort_by(|a, b| a.version.cmp(&b.version).then_with(|| a.tag.cmp(&b.tag)));
        versions
    };
    let mut kept: Vec<Release> = Vec::with_capacity(ordered.len());
    for r in ordered.drain(..) {
        if let Some(prev) = kept.last_mut() {
            if prev.root == r.root {
                let dropped = std::mem::replace(prev, r);
                set_aside.push((dropped.tag, "the same tree as the next tag"));
                continue;
            }
        }
        kept.push(r);
    }
    kept
}

/// The consecutive pairs of the newest `max_versions` releases of `ordered` (oldest first),
/// as index pairs.
pub fn pairs(ordered: &[Release], max_versions: usize) -> Vec<(usize, usize)> {
    let start = ordered.len().saturating_sub(max_versions.max(2));
    (start..ordered.len().saturating_sub(1))
        .map(|i| (i, i + 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, date: i64) -> Release {
        Release {
            tag: name.into(),
            version: version::parse(name),
            release: None,
            revision: None,
            root: date as usize,
            date: Some(date),
        }
    }

    #[test]
    fn tags_of_one_tree_give_no_empty_pair() {
        let mut aside = Vec::new();
        let mut same = tag("v1.0", 2);
        same.root = 5;
        let mut other = tag("1.0", 3);
        other.root = 5;
        let got = order(
            vec![tag("v0.9", 1), same, other, tag("v1.1", 4)],
            &mut aside,
        );
        let names: Vec<&str> = got.iter().map(|r| r.tag.as_str()).collect();
        assert_eq!(names, ["v0.9", "v1.0", "v1.1"]);
        assert_eq!(
            aside,
            [("1.0".to_string(), "the same tree as the next tag")]
        );
    }

    #[test]
    fn versions_order_and_names_are_set_aside() {
        let mut aside = Vec::new();
        let got = order(
            vec![
                tag("v2.0", 1),
                tag("latest", 9),
                tag("v1.0-rc1", 3),
                tag("v1.0", 2),
            ],
            &mut aside,
        );
        let names: Vec<&str> = got.iter().map(|r| r.tag.as_str()).collect();
        assert_eq!(names, ["v1.0-rc1", "v1.0", "v2.0"]);
        assert_eq!(aside.len(), 1);
        assert_eq!(aside[0].0, "latest");
    }

    #[test]
    fn names_alone_order_by_date_and_pairs_take_the_newest() {
        let mut aside = Vec::new();
        let got = order(vec![tag("b", 5), tag("a", 7), tag("c", 1)], &mut aside);
        let names: Vec<&str> = got.iter().map(|r| r.tag.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
        assert!(aside.is_empty());
        assert_eq!(pairs(&got, 2), [(1, 2)]);
        assert_eq!(pairs(&got, 20), [(0, 1), (1, 2)]);
        assert!(pairs(&got[..1], 20).is_empty());
    }
}
