//! The core's modules import one way: no module imports one that imports it back, through any
//! number of others. Read from the sources (`crate::<module>` paths in code, outside comments and
//! `#[cfg(test)]`), so a new import that closes a circle fails here.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The crate root's re-exports, by the module that defines them.
const REEXPORTS: [(&str, &str); 5] = [
    ("Keyward", "context"),
    ("Settings", "context"),
    ("Error", "error"),
    ("Result", "error"),
    ("AuthFailure", "error"),
];

/// Module name -> the modules its non-test code names.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let pattern = regex::Regex::new(r"crate::([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let named = pattern
            .captures_iter(&code)
            .map(|c| {
                let name = &c[1];
                REEXPORTS
                    .iter()
                    .find(|(item, _)| *item == name)
                    .map_or(name, |(_, module)| *module)
                    .to_owned()
            })
            .filter(|name| *name != module)
            .collect();
        graph.insert(module, named);
    }
    graph
}

/// A circle of imports, if any (depth-first search).
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.len() >= 20, "read the modules: {graph:?}");
    assert!(
        graph["auth"].contains("lookup"),
        "read the imports: {graph:?}"
    );
    if let Some(found) = circle(&graph) {
        panic!("modules import each other: {}", found.join(" -> "));
    }
}

#[test]
fn a_circle_is_found() {
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(circle(&graph).unwrap(), ["a", "b", "c", "a"]);
}
