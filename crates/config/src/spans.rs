//! Finds the line of a key path in the raw TOML text, for error messages.

use crate::error::{KeyPath, Seg};
use toml_edit::{ImDocument, Item, Table, Value};

/// 1-based line of byte offset `at` in `text`.
pub fn line_of_offset(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The line of the deepest part of `path` that exists in `doc`.
pub fn line_of(doc: &ImDocument<String>, path: &KeyPath) -> Option<usize> {
    let text = doc.raw();
    walk_table(doc.as_table(), &path.0, None).map(|at| line_of_offset(text, at))
}

/// Walks `rest` from `table`, remembering the start offset of the deepest part found.
fn walk_table(table: &Table, rest: &[Seg], best: Option<usize>) -> Option<usize> {
    let Some((Seg::Key(k), tail)) = rest.split_first() else {
        return best;
    };
    let Some(item) = table.get(k) else {
        return best;
    };
    let here = table
        .key(k)
        .and_then(|key| key.span())
        .or_else(|| item.span())
        .map(|s| s.start)
        .or(best);
    match (tail.first(), item) {
        (Some(Seg::Index(i)), Item::ArrayOfTables(a)) => match a.get(*i) {
            Some(t) => walk_table(t, &tail[1..], t.span().map(|s| s.start).or(here)),
            None => here,
        },
        (Some(Seg::Index(i)), Item::Value(Value::Array(a))) => {
            a.get(*i).and_then(|v| v.span()).map(|s| s.start).or(here)
        }
        (Some(Seg::Key(_)), Item::Table(t)) => walk_table(t, tail, here),
        (Some(Seg::Key(k2)), Item::Value(Value::InlineTable(t))) => t
            .key(k2)
            .and_then(|key| key.span())
            .map(|s| s.start)
            .or(here),
        _ => here,
    }
}

/// The key path of the last key that starts at or before `offset`: where a
/// parse error reported by serde (unknown key, wrong type) sits.
pub fn path_at(doc: &ImDocument<String>, offset: usize) -> Option<KeyPath> {
    let mut best: Option<(usize, KeyPath)> = None;
    collect(doc.as_table(), &KeyPath::root(), offset, &mut best);
    best.map(|(_, p)| p)
}

fn collect(t: &Table, here: &KeyPath, offset: usize, best: &mut Option<(usize, KeyPath)>) {
    for (k, item) in t.iter() {
        let path = here.key(k);
        if let Some(s) = t.key(k).and_then(|key| key.span()) {
            if s.start <= offset && best.as_ref().is_none_or(|(b, _)| s.start >= *b) {
                *best = Some((s.start, path.clone()));
            }
        }
        match item {
            Item::Table(inner) => collect(inner, &path, offset, best),
            Item::ArrayOfTables(a) => {
                for (i, inner) in a.iter().enumerate() {
                    collect(inner, &path.index(i), offset, best);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_of_nested_keys() {
        let text = "a = 1\n[[listener]]\nbind = \"x\"\n[[listener]]\nside = \"b\"\nbind = \"y\"\n";
        let doc: ImDocument<String> = ImDocument::parse(text.to_string()).expect("parse");
        let p = KeyPath::root().key("listener").index(1).key("bind");
        assert_eq!(line_of(&doc, &p), Some(6));
        let p = KeyPath::root().key("a");
        assert_eq!(line_of(&doc, &p), Some(1));
    }
}
