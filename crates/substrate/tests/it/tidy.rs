//! Conventions that matter, checked rather than reviewed: which crate may name which library,
//! that the core stays pure, and the layout rules.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn crates() -> Vec<(String, PathBuf)> {
    let mut crates: Vec<(String, PathBuf)> = std::fs::read_dir(workspace().join("crates"))
        .expect("crates dir")
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    crates.sort();
    crates
}

/// The dependency names a crate's manifest lists under `[dependencies]`.
fn dependencies(manifest: &str) -> Vec<String> {
    let mut in_section = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[dependencies]";
        } else if in_section && !line.is_empty() && !line.starts_with('#') {
            names.push(line.split(['.', ' ', '=']).next().unwrap_or_default().to_owned());
        }
    }
    names
}

#[test]
fn only_the_owning_crate_names_each_outside_library() {
    // library -> the crates allowed to depend on it
    let owners: &[(&str, &[&str])] = &[
        ("axum", &["substrate-api"]),
        ("hyper", &["substrate-api"]),
        ("hyper-util", &["substrate-api"]),
        ("rusqlite", &["substrate-store"]),
        ("tracing-subscriber", &["substrate"]),
        ("clap", &["substrate"]),
        ("ureq", &["substrate"]),
        ("tokio", &["substrate-api", "substrate-store", "substrate-mesh", "substrate"]),
        ("libp2p", &["substrate-mesh"]),
        ("candle-core", &["substrate-models"]),
        ("candle-nn", &["substrate-models"]),
        ("candle-transformers", &["substrate-models"]),
        ("tokenizers", &["substrate-models"]),
        ("landlock", &["substrate-jobs"]),
        ("seccompiler", &["substrate-jobs"]),
        ("tantivy", &["substrate-search"]),
        ("sfv", &["substrate-api"]),
        ("maud", &["substrate-web"]),
    ];
    for (name, dir) in crates() {
        let deps = dependencies(&read(&dir.join("Cargo.toml")));
        for (library, allowed) in owners {
            if deps.iter().any(|d| d == library) {
                assert!(
                    allowed.contains(&name.as_str()),
                    "{name} depends on {library}; only {allowed:?} may"
                );
            }
        }
    }
}

#[test]
fn only_the_jobs_crate_confines_processes() {
    // What a sandbox is made of; anywhere else it would be a second, unreviewed sandbox.
    for (name, dir) in crates() {
        if name == "substrate-jobs" {
            continue;
        }
        for file in sources(&dir.join("src")) {
            let text = read(&file);
            for confinement in
                ["pre_exec", "landlock_restrict_self", "SECCOMP_SET_MODE_FILTER", "CLONE_NEWNET"]
            {
                assert!(
                    !text.contains(confinement),
                    "{} uses {confinement}: sandboxes belong to substrate-jobs",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn the_core_does_no_io_and_reads_no_clock() {
    for krate in ["substrate-core", "substrate-tlog"] {
        for file in sources(&workspace().join("crates").join(krate).join("src")) {
            let text = read(&file);
            // Tests may read fixtures; only the code they test must stay pure.
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for forbidden in
                ["std::fs", "std::net", "SystemTime", "Instant::now", "OsRng", "thread_rng", "std::env"]
            {
                assert!(
                    !text.contains(forbidden),
                    "{} uses {forbidden}: the core must stay pure",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn layout_rules_hold() {
    for (name, dir) in crates() {
        let lib = dir.join("src/lib.rs");
        let main = dir.join("src/main.rs");
        let root = if lib.exists() { lib } else { main };
        assert!(read(&root).starts_with("//! "), "{} must open with a //! sentence", root.display());
        for file in sources(&dir.join("src")) {
            assert_ne!(
                file.file_name().and_then(|f| f.to_str()),
                Some("mod.rs"),
                "{name}: use foo.rs, not foo/mod.rs"
            );
            for banned in ["utils.rs", "helpers.rs", "common.rs", "manager.rs"] {
                assert_ne!(
                    file.file_name().and_then(|f| f.to_str()),
                    Some(banned),
                    "{name}: modules are nouns"
                );
            }
        }
    }
}

#[test]
fn the_example_config_documents_every_field() {
    let example = read(&workspace().join("substrate.example.toml"));
    let source = read(&workspace().join("crates/substrate/src/config.rs"));
    for line in source.lines() {
        if let Some(field) = line.trim().strip_prefix("pub ").and_then(|rest| rest.split(':').next())
            && !field.contains(' ')
            && !field.contains('(')
        {
            // A field is a key, or a table of its own (`[mesh]`).
            assert!(
                example.contains(&format!("{field} =")) || example.contains(&format!("[{field}]")),
                "substrate.example.toml lacks {field}"
            );
        }
    }
}
