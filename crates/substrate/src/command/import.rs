//! `import`: deposits every text of a JSONL corpus, each signed with the member's key. Every
//! line is checked before anything is sent; texts the commons already holds are skipped, so an
//! interrupted import is finished by running it again.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use serde::Deserialize;

use super::deposit::{Metadata, save_receipt, sign_deposit, submit_deposit};
use crate::client::Client;

/// One line of a corpus.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    text: String,
    register: String,
    title: String,
    license: String,
    language: String,
    #[serde(default)]
    also: Vec<String>,
    consent: Option<String>,
    /// Where the text comes from, for people; not deposited.
    #[serde(default)]
    #[allow(dead_code)]
    source: Option<String>,
}

/// Deposits sent at once: enough to keep the sequencer's group commit busy.
const WORKERS: usize = 8;

pub fn import(
    node: &str,
    key: Option<&Path>,
    file: &Path,
    consent: &str,
    receipts: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (_, key) = crate::keys::load(&crate::keys::path(key)?)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let client = Client::new(node);
    let commons: serde_json::Value = client.get("/v1/commons")?.json()?;
    let vocabulary: Vec<String> = commons["registers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    // Every line is checked and signed before the first is sent.
    let mut signed = Vec::new();
    for (n, raw) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{} line {}", file.display(), n + 1);
        let line: Line = serde_json::from_str(raw).with_context(|| {
            format!(
                "{}: not a corpus line; each line is {{\"text\", \"register\", \"title\", \"license\", \"language\"}} with optional \"also\", \"consent\" and \"source\"",
                at()
            )
        })?;
        if let Some(unknown) =
            std::iter::once(&line.register).chain(&line.also).find(|r| !vocabulary.contains(r))
        {
            anyhow::bail!(
                "{}: unknown register '{unknown}'; this commons' registers are: {}",
                at(),
                vocabulary.join(", ")
            );
        }
        let meta = Metadata {
            register: &line.register,
            also: &line.also,
            consent: line.consent.as_deref().unwrap_or(consent),
            title: &line.title,
            language: &line.language,
            license: &line.license,
        };
        let event = sign_deposit(&key, line.text.as_bytes(), &meta).with_context(at)?;
        signed.push((n + 1, event, line.text));
    }
    if signed.is_empty() {
        anyhow::bail!("{} holds no corpus lines", file.display());
    }
    if let Some(dir) = &receipts {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let next = AtomicUsize::new(0);
    let (new, known) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS.min(signed.len()) {
            scope.spawn(|| {
                loop {
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let Some((line, event, text)) = signed.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    let outcome =
                        submit_deposit(&client, event, text.as_bytes()).and_then(|(receipt, fresh)| {
                            if let Some(dir) = &receipts {
                                let cid = substrate_core::Cid::of(text.as_bytes());
                                save_receipt(&dir.join(format!("{cid}.receipt.json")), &receipt)?;
                            }
                            Ok(fresh)
                        });
                    match outcome {
                        Ok(true) => {
                            new.fetch_add(1, Ordering::Relaxed);
                        }
                        // The same act sent again gets its receipt back.
                        Ok(false) => {
                            known.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if format!("{e:#}").contains("already_deposited") => {
                            known.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(e.context(format!("{} line {line}", file.display())));
                            return;
                        }
                    }
                }
            });
        }
    });
    let (new, known) = (new.into_inner(), known.into_inner());
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e.context(format!(
            "{new} texts were deposited before this; running the import again skips them and the {known} already in the commons"
        )));
    }
    println!("imported {new} texts from {} ({known} were already in the commons)", file.display());
    if let Some(dir) = receipts {
        println!("receipts in {}", dir.display());
    }
    Ok(())
}
