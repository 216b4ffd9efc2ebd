//! The layering of ARCHITECTURE.md, checked: each folder of `src/` uses only the layers below
//! it, and the core and the process layer know nothing of HTTP. A cheap reading of the
//! `crate::` paths in each file, so CI needs no module-graph tool.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, each with the layers it may use besides itself. `crate::lock` (in lib.rs) is a
/// helper every layer may use.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "app",
        &[
            "http",
            "agent",
            "cli",
            "store",
            "process",
            "metrics",
            "telemetry",
        ],
    ),
    ("http", &["agent", "cli", "metrics", "telemetry"]),
    // The store's backends implement the core's trait; only the app picks one.
    ("store", &["agent", "metrics", "telemetry"]),
    ("agent", &["cli", "process", "metrics", "telemetry"]),
    // The CLI's contract: its arguments, stdin and stdout lines, environment, home, login.
    ("cli", &["process"]),
    ("process", &[]),
    ("metrics", &[]),
    ("telemetry", &[]),
];

/// Crates only the HTTP edge (and the app that builds it) may name.
const HTTP_CRATES: &[&str] = &["axum", "hyper", "hyper_util", "tower", "tower_http"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer a file of `src/` belongs to: its folder, or its own name for a leaf file.
fn layer_of(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    LAYERS
        .iter()
        .any(|(layer, _)| *layer == name)
        .then(|| name.to_owned())
}

/// The code of a file without its comments, so a sentence that names a module is no use.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module named as `crate::NAME` or `crate::{NAME, ...}`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            used.extend(group.split(',').map(|item| ident(item.trim())));
        } else {
            used.insert(ident(rest));
        }
    }
    used.retain(|m| !m.is_empty());
    used
}

fn names_crate(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().last();
        let after = &code[at + name.len()..];
        after.starts_with("::")
            && !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Some(layer) = layer_of(file) else {
            continue;
        };
        checked += 1;
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let (_, below) = LAYERS.iter().find(|(l, _)| *l == layer).unwrap();
        for used in crate_modules(&code) {
            if used != layer && used != "lock" && !below.contains(&used.as_str()) {
                wrong.push(format!("{}: {layer} uses crate::{used}", file.display()));
            }
        }
        if code.contains("super::super::") {
            wrong.push(format!(
                "{}: super::super reaches out of its folder",
                file.display()
            ));
        }
        if !matches!(layer.as_str(), "app" | "http") {
            for name in HTTP_CRATES {
                if names_crate(&code, name) {
                    wrong.push(format!(
                        "{}: {layer} names the HTTP crate {name}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} files were read");
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_binary_goes_through_the_app() {
    let main = code_of(&std::fs::read_to_string(src().join("main.rs")).unwrap());
    let used: BTreeSet<&str> = main
        .match_indices("claude_proxy::")
        .map(|(at, _)| {
            let rest = &main[at + "claude_proxy::".len()..];
            &rest[..rest
                .find(|c: char| !c.is_alphanumeric() && c != '_')
                .unwrap_or(rest.len())]
        })
        .collect();
    assert!(!used.is_empty());
    for module in &used {
        assert!(
            ["app", "telemetry"].contains(module),
            "main.rs uses claude_proxy::{module}; it builds and serves through app"
        );
    }
}

#[test]
fn the_reading_finds_what_it_must() {
    let code = code_of("use crate::{agent::X, process};\nuse crate::http::y; // crate::app\n");
    assert_eq!(
        crate_modules(&code),
        BTreeSet::from(["agent".into(), "http".into(), "process".into()])
    );
    assert!(names_crate("let r = axum::Router::new();", "axum"));
    assert!(!names_crate("my_axum::x", "axum"));
}
