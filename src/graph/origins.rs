//! Origins found by URL: the exact URLs a slug's templates give, looked up through the MPH.

use std::str::FromStr;

use swh_graph::SWHID;

use super::LabelledGraph;
use crate::model::hashes::{hex, origin_id};
use crate::model::slug::{normalize_slug, normalize_url};

/// Node of the origin with this exact URL, if the graph has it.
pub fn origin_node(graph: &impl LabelledGraph, url: &str) -> Option<usize> {
    let swhid = SWHID::from_str(&format!("swh:1:ori:{}", hex(&origin_id(url)))).ok()?;
    graph.properties().node_id(swhid).ok()
}

/// The URLs a slug may be archived under: each template as spelled, normalised, and with
/// `.git`.
pub fn candidate_urls(slug: &str, templates: &[String]) -> Vec<String> {
    let mut urls = Vec::new();
    for t in templates {
        let raw = t.replace("{slug}", slug.trim());
        let norm = normalize_url(&t.replace("{slug}", &normalize_slug(slug)));
        urls.extend([
            raw.clone(),
            format!("{raw}.git"),
            norm.clone(),
            format!("{norm}.git"),
        ]);
    }
    urls
}

/// The origins a slug's URLs ([`candidate_urls`]) name exactly.
pub fn origins_of(graph: &impl LabelledGraph, slug: &str, templates: &[String]) -> Vec<usize> {
    let mut out: Vec<usize> = candidate_urls(slug, templates)
        .iter()
        .filter_map(|u| origin_node(graph, u))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}
