//! The cards of an adapter directory, each a pure function of the run's [`RunRecord`]: the
//! snapshot manifest, the Hugging Face model card, the contribution card (Markdown and JSON), the
//! Croissant 1.1 + RAI description of the snapshot and the EU AI Act public summary of training
//! content. Whoever holds `run.json` regenerates every card byte for byte, so a card that says
//! something the record does not is caught by regenerating it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use substrate_core::ConsentTier;

use crate::record::{Contribution, RunRecord};

/// The Hugging Face model card.
pub const README_FILE: &str = "README.md";
/// The contribution card, for people.
pub const CONTRIBUTIONS_FILE: &str = "CONTRIBUTIONS.md";
/// The contribution card, for programs.
pub const CONTRIBUTIONS_JSON_FILE: &str = "contributions.json";
/// The Croissant description of the snapshot.
pub const CROISSANT_FILE: &str = "croissant.json";
/// The snapshot manifest the Croissant file describes.
pub use crate::record::MANIFEST_FILE;
/// The EU AI Act public summary of training content.
pub const EU_SUMMARY_FILE: &str = "eu-training-summary.md";

/// What `contributions.json` says it is, so a reader can refuse a shape it does not know.
pub const CONTRIBUTIONS_FORMAT: &str = "substrate/contributions/v1";

/// The URI naming the run's snapshot: a `tag:` URI (RFC 4151) under the commons' origin, dated
/// with the year the run started, e.g. `tag:substrate.local,2026:kitchen-table/snapshot/<root>`.
/// The root alone names the set of deposits; the origin says whose log it came from.
pub fn snapshot_uri(record: &RunRecord) -> String {
    let origin = record.commons.origin.as_str();
    let (authority, path) = match origin.split_once('/') {
        Some((authority, path)) => (authority, format!("{path}/")),
        None => (origin, String::new()),
    };
    match year(&record.started) {
        Some(year) => format!("tag:{authority},{year}:{path}snapshot/{}", record.snapshot_root),
        // A tag URI needs a date; without one the origin's own path form still names the snapshot.
        None => format!("{origin}/snapshot/{}", record.snapshot_root),
    }
}

/// The snapshot manifest: one JSON object per line per contribution, in the record's order (by
/// CID). It lists what the run used, never the texts, which travel only as their consent allows.
pub fn manifest_jsonl(record: &RunRecord) -> String {
    record.contributions.iter().map(|c| json_object(&manifest_fields(c)) + "\n").collect()
}

fn manifest_fields(c: &Contribution) -> [(&'static str, Value); 13] {
    [
        ("cid", json!(c.entry.cid.to_string())),
        ("handle", json!(c.entry.handle)),
        ("register", json!(c.entry.register.as_str())),
        ("depositor", json!(c.entry.depositor)),
        ("consent", json!(c.entry.consent.as_str())),
        ("bytes", json!(c.entry.bytes)),
        ("tokens", json!(c.tokens)),
        ("tokens_trained", json!(c.tokens_trained)),
        ("windows", json!(c.windows)),
        ("held_out", json!(c.held_out)),
        ("license", json!(c.license)),
        ("language", json!(c.language)),
        ("title", json!(c.title)),
    ]
}

/// A compact JSON object with its keys in the order given. serde_json's map sorts keys, or keeps
/// insertion order when another crate of the build turns `preserve_order` on; the manifest's bytes
/// are hashed into the Croissant file, so its order must not depend on the build.
fn json_object(fields: &[(&str, Value)]) -> String {
    let members: Vec<String> =
        fields.iter().map(|(key, value)| format!("{}:{value}", Value::from(*key))).collect();
    format!("{{{}}}", members.join(","))
}

/// The model card, `README.md`: Hugging Face front matter, then what the adapter is, the mixture
/// decided and achieved, tokens and held-out loss per register, the PER table (`per_table`, the
/// Markdown `substrate audit per` prints, when the caller has it), contributors, consent and
/// withdrawal.
pub fn model_card(record: &RunRecord, per_table: Option<&str>) -> String {
    let mut out = front_matter(record);
    let licences = licences(record);
    let tokens = record.tokens_by_register();
    let root = short(&record.snapshot_root);

    out.push(format!("# {} LoRA adapter, snapshot {root}", record.commons.name));
    out.push(String::new());
    out.push(format!(
        "A LoRA adapter of `{}`, trained by the commons **{}** on the deposits its members chose to share, \
         sampled by the training mixture the commons voted.",
        record.base_model.name, record.commons.name
    ));
    out.push(String::new());
    out.push("## What this adapter is".into());
    out.push(String::new());
    out.push(format!(
        "- Commons: {} (origin `{}`, log key `{}`)",
        record.commons.name, record.commons.origin, record.commons.log_key
    ));
    out.push(format!("- Mixture: {}", decision_sentence(record)));
    out.push(format!(
        "- Snapshot: the log as of its first {} entries, root `{}` ({})",
        record.log_size,
        record.snapshot_root,
        snapshot_uri(record)
    ));
    out.push(format!(
        "- Base model: `{}`, sha256 `{}`; the adapter applies to that file only",
        record.base_model.name, record.base_model.sha256
    ));
    let h = &record.hyperparameters;
    out.push(format!(
        "- Hyperparameters: rank {}, alpha {}, targets {}, {} steps of {} windows of {} tokens, learning rate {}, seed {}",
        h.rank,
        h.alpha,
        h.targets.join(", "),
        h.steps,
        h.batch,
        h.seq_len,
        h.lr,
        h.seed
    ));
    out.push(format!(
        "- Trained: {} tokens in {} windows, from {} to {}, by node `{}` running {} {} (sha256 `{}`)",
        record.tokens_trained,
        record.windows,
        record.started,
        record.finished,
        record.node,
        record.builder.name,
        record.builder.version,
        record.builder.sha256
    ));
    out.push(format!("- Licence: {}", licences.sentence()));
    out.push(String::new());

    out.push("## The mixture".into());
    out.push(String::new());
    out.push(
        "The share of the trained tokens the commons decided for each register, and the share each got."
            .into(),
    );
    out.push(String::new());
    out.push("| register | decided | achieved |".into());
    out.push("|---|---:|---:|".into());
    for register in registers(record) {
        let decided = record.mixture.get(register).copied().unwrap_or(0.0);
        let achieved = record.achieved.get(register).copied().unwrap_or(0.0);
        let mark =
            if record.registers_without_text.iter().any(|r| r == register) { " (no text)" } else { "" };
        out.push(format!("| {register}{mark} | {} | {} |", percent(decided), percent(achieved)));
    }
    out.push(String::new());
    if record.registers_without_text.is_empty() {
        out.push("Every register with weight had eligible text.".into());
    } else {
        let named: Vec<String> = record
            .registers_without_text
            .iter()
            .map(|r| format!("{r} ({})", percent(record.mixture.get(r).copied().unwrap_or(0.0))))
            .collect();
        out.push(format!(
            "**Registers with weight but no eligible text:** {}. Their weight went to the other registers in proportion; \
             the adapter learned nothing of them.",
            named.join(", ")
        ));
    }
    out.push(String::new());

    out.push("## Trained tokens per register".into());
    out.push(String::new());
    out.push("| register | tokens trained | share |".into());
    out.push("|---|---:|---:|".into());
    for (register, trained) in &tokens {
        out.push(format!("| {register} | {trained} | {} |", percent(ratio(*trained, record.tokens_trained))));
    }
    out.push(format!("| **total** | **{}** | |", record.tokens_trained));
    out.push(String::new());

    out.push("## Held-out loss per register".into());
    out.push(String::new());
    if record.held_out.is_empty() {
        out.push("No text was held out, so no held-out loss was measured.".into());
    } else {
        out.push("Mean loss (nats per token) on held-out texts, which the run never trained on.".into());
        out.push(String::new());
        out.push("| register | texts | before | after | change |".into());
        out.push("|---|---:|---:|---:|---:|".into());
        for (register, held) in &record.held_out {
            out.push(format!(
                "| {register} | {} | {:.4} | {:.4} | {:+.4} |",
                held.texts,
                held.before,
                held.after,
                held.after - held.before
            ));
        }
    }
    out.push(String::new());

    out.push("## What CCNet's filter would have discarded".into());
    out.push(String::new());
    out.push(match &record.ccnet {
        None => "The node that trained this adapter had run no amputation audit (`substrate audit amputation`), so this card cannot say how many of its tokens a CCNet pipeline would have discarded.".into(),
        Some(c) => format!(
            "Of the {} tokens trained, {} ({}) came from {} texts a CCNet pipeline would have discarded: their perplexity under a {} was in its tail (from {:.0}) by the commons' amputation audit of the log's first {} entries. {} tokens came from texts that audit did not score.",
            record.tokens_trained,
            c.tokens_in_tail,
            percent(ratio(c.tokens_in_tail, record.tokens_trained)),
            c.texts_in_tail,
            c.reference,
            c.tail_cutoff,
            c.audit_log_size,
            c.tokens_not_scored
        ),
    });
    out.push(String::new());

    out.push("## Provenance Erasure Rate".into());
    out.push(String::new());
    match per_table {
        Some(table) => {
            out.push(
                "For each stage of the run, the contributions that entered it and how many it lost or \
                 misattributed, audited against the commons' log when this directory was published \
                 (`substrate audit per <dir> --data-dir <commons>` recomputes it):"
                    .into(),
            );
            out.push(String::new());
            out.push(table.trim_end().to_owned());
        }
        None => out.push(
            "The share of contributions whose attribution a stage lost is not in this card: \
             `substrate audit per <dir>` computes it from this directory."
                .into(),
        ),
    }
    out.push(String::new());

    let contributors = record.contributors();
    out.push("## Contributors".into());
    out.push(String::new());
    out.push(format!(
        "{} contributors deposited the {} texts of the snapshot. [{CONTRIBUTIONS_FILE}]({CONTRIBUTIONS_FILE}) \
         (and [{CONTRIBUTIONS_JSON_FILE}]({CONTRIBUTIONS_JSON_FILE})) lists every one of them with their deposits, \
         registers, tokens trained and share of the run; [{MANIFEST_FILE}]({MANIFEST_FILE}) lists every deposit.",
        contributors.len(),
        record.contributions.len()
    ));
    out.push(String::new());

    out.push("## Consent".into());
    out.push(String::new());
    out.push(
        "Every text was deposited under a consent tier its depositor chose. The public, commons and training-only \
         tiers allow training; a local text trains only on the node that holds it."
            .into(),
    );
    out.push(String::new());
    out.push("| consent tier | texts |".into());
    out.push("|---|---:|".into());
    let tiers = consent_counts(record);
    for (tier, count) in &tiers {
        out.push(format!("| {tier} | {count} |"));
    }
    out.push(String::new());
    if record.local_texts > 0 {
        out.push(format!(
            "Local-tier texts in this run: {}. They trained only on the node holding them (`{}`, which ran this \
             run) and never left it.",
            record.local_texts,
            record.node
        ));
        out.push(String::new());
    }

    out.push("## Withdrawal".into());
    out.push(String::new());
    out.push(format!(
        "No deposit of this snapshot was withdrawn as of the snapshot (log size {}): the snapshot holds active \
         deposits only, none of them under an open dispute. A deposit withdrawn later is excluded from every later \
         snapshot, and this adapter is marked in the commons' registry as trained on it. Nothing here claims the \
         adapter unlearns a withdrawn text; retraining on a later snapshot is how it leaves.",
        record.log_size
    ));
    out.push(String::new());

    out.push("## Files".into());
    out.push(String::new());
    out.push(format!(
        "`{}` (the run's complete record, from which every card here is generated), `{MANIFEST_FILE}`, \
         `{CROISSANT_FILE}` (Croissant 1.1 with the RAI extension), `{CONTRIBUTIONS_FILE}`, \
         `{CONTRIBUTIONS_JSON_FILE}`, `{EU_SUMMARY_FILE}` (EU AI Act public summary of training content).",
        crate::record::RUN_FILE
    ));
    lines(out)
}

/// The YAML front matter, as the first lines of the card. Every value that comes from the record
/// is a double-quoted scalar with everything but printable ASCII escaped, so no text makes it
/// invalid YAML.
fn front_matter(record: &RunRecord) -> Vec<String> {
    let mut out = vec!["---".to_owned()];
    out.push(format!("base_model: {}", yaml_string(&record.base_model.name)));
    out.push("library_name: peft".into());
    match licences(record) {
        Licences::One { hub: Some(hub), .. } => out.push(format!("license: {hub}")),
        Licences::One { spdx, hub: None } => {
            out.push("license: other".into());
            out.push(format!("license_name: {}", yaml_string(&hub_license_name(&spdx))));
            let link = spdx_url(&spdx).unwrap_or_else(|| MANIFEST_FILE.to_owned());
            out.push(format!("license_link: {}", yaml_string(&link)));
        }
        Licences::Several(_) => {
            out.push("license: other".into());
            out.push("license_name: several".into());
            // Each deposit's licence is a column of the manifest.
            out.push(format!("license_link: {}", yaml_string(MANIFEST_FILE)));
        }
    }
    let languages = languages(record);
    if languages.is_empty() {
        out.push("language: []".into());
    } else {
        out.push("language:".into());
        out.extend(languages.keys().map(|l| format!("- {}", yaml_string(l))));
    }
    out.push("tags:".into());
    out.extend(["lora", "peft", "substrate", "governed-mixture"].iter().map(|t| format!("- {t}")));
    for (register, trained) in record.tokens_by_register() {
        if trained > 0 {
            out.push(format!("- {}", yaml_string(&format!("register-{register}"))));
        }
    }
    out.push("datasets:".into());
    out.push(format!("- {}", yaml_string(&snapshot_uri(record))));
    out.push("---".into());
    out.push(String::new());
    out
}

/// A YAML double-quoted scalar holding `text`, in printable ASCII only.
fn yaml_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            ' '..='~' => quoted.push(c),
            c if u32::from(c) <= 0xffff => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    quoted.push('"');
    quoted
}

/// The contribution card, `CONTRIBUTIONS.md`: every contributor with their deposits, registers,
/// tokens trained and share, and the totals next to the run's own so a reader sees they add up.
pub fn contribution_card(record: &RunRecord) -> String {
    let contributors = record.contributors();
    let by_cid = contributions_by_cid(record);
    let totals = Totals::of(record);
    let mut out = vec![format!(
        "# Contributions to the {} adapter, snapshot {}",
        record.commons.name,
        short(&record.snapshot_root)
    )];
    out.push(String::new());
    out.push(format!(
        "Every depositor with a text in the snapshot `{}` (log size {}), and what the run trained on from each \
         deposit. A share is the contributor's tokens trained over the run's. A held-out deposit measured the loss and \
         was never trained on; a deposit with no windows was in the snapshot but not drawn.",
        record.snapshot_root, record.log_size
    ));
    out.push(String::new());
    out.push("## Totals".into());
    out.push(String::new());
    out.push("| | contributors | deposits | tokens trained | windows |".into());
    out.push("|---|---:|---:|---:|---:|".into());
    out.push(format!(
        "| sum over the contributors below | {} | {} | {} | {} |",
        totals.contributors, totals.deposits, totals.tokens_trained, totals.windows
    ));
    out.push(format!(
        "| the run (`{}`) | | {} | {} | {} |",
        crate::record::RUN_FILE,
        record.contributions.len(),
        record.tokens_trained,
        record.windows
    ));
    out.push(String::new());
    if totals.add_up(record) {
        out.push("The contributors' tokens and windows add up to the run's.".into());
    } else {
        // Said rather than hidden: a mismatch means the record lost or invented attribution.
        out.push(
            "**The contributors' tokens or windows do not add up to the run's**: some training is not attributed \
             to any deposit, or some attribution to training that did not happen."
                .into(),
        );
    }
    out.push(String::new());
    out.push("## Contributors".into());
    for (number, contributor) in contributors.iter().enumerate() {
        out.push(String::new());
        out.push(format!("### {}. `{}`", number + 1, contributor.depositor));
        out.push(String::new());
        out.push(format!(
            "{} tokens trained ({} of the run) in {}, from {}.",
            contributor.tokens_trained,
            percent(contributor.share),
            counted(contributor.windows, "window", "windows"),
            counted(contributor.deposits.len() as u64, "deposit", "deposits")
        ));
        let registers: Vec<String> = contributor.registers.iter().map(|(r, t)| format!("{r} {t}")).collect();
        out.push(format!("Tokens trained by register: {}.", registers.join(", ")));
        out.push(String::new());
        out.push("| CID | handle | register | tokens trained | windows | note |".into());
        out.push("|---|---|---|---:|---:|---|".into());
        for cid in &contributor.deposits {
            let Some(c) = by_cid.get(cid.as_str()) else { continue };
            out.push(format!(
                "| `{cid}` | {} | {} | {} | {} | {} |",
                cell(&c.entry.handle),
                c.entry.register,
                c.tokens_trained,
                c.windows,
                deposit_note(c)
            ));
        }
    }
    lines(out)
}

fn deposit_note(c: &Contribution) -> String {
    let mut notes = Vec::new();
    if c.held_out {
        notes.push("held out".to_owned());
    } else if c.windows == 0 {
        notes.push("not drawn".to_owned());
    }
    if c.entry.consent == ConsentTier::Local {
        notes.push("local: trained on its own node".to_owned());
    }
    notes.join("; ")
}

/// The contribution card for programs, `contributions.json`: the same contributors, each deposit
/// in full, the sums over the contributors (`totals`) and the run's own counts (`run`), which an
/// auditor checks are equal.
pub fn contributions_json(record: &RunRecord) -> Value {
    let by_cid = contributions_by_cid(record);
    let contributors: Vec<Value> = record
        .contributors()
        .into_iter()
        .map(|contributor| {
            let deposits: Vec<Value> = contributor
                .deposits
                .iter()
                .filter_map(|cid| by_cid.get(cid.as_str()))
                .map(|c| {
                    json!({
                        "cid": c.entry.cid.to_string(),
                        "handle": c.entry.handle,
                        "register": c.entry.register.as_str(),
                        "consent": c.entry.consent.as_str(),
                        "tokens": c.tokens,
                        "tokens_trained": c.tokens_trained,
                        "windows": c.windows,
                        "held_out": c.held_out,
                    })
                })
                .collect();
            json!({
                "depositor": contributor.depositor,
                "deposits": deposits,
                "registers": contributor.registers,
                "tokens_trained": contributor.tokens_trained,
                "windows": contributor.windows,
                "share": contributor.share,
            })
        })
        .collect();
    let totals = Totals::of(record);
    json!({
        "format": CONTRIBUTIONS_FORMAT,
        "commons": {"name": record.commons.name, "origin": record.commons.origin},
        "snapshot": {"uri": snapshot_uri(record), "log_size": record.log_size, "root": record.snapshot_root},
        "contributors": contributors,
        "totals": {
            "contributors": totals.contributors,
            "deposits": totals.deposits,
            "tokens_trained": totals.tokens_trained,
            "windows": totals.windows,
            "share": totals.share,
        },
        "run": {
            "deposits": record.contributions.len(),
            "tokens_trained": record.tokens_trained,
            "windows": record.windows,
        },
    })
}

/// Sums over the contributors, computed apart from the run's own counts so the two can disagree.
struct Totals {
    contributors: usize,
    deposits: usize,
    tokens_trained: u64,
    windows: u64,
    share: f64,
}

impl Totals {
    fn of(record: &RunRecord) -> Totals {
        let contributors = record.contributors();
        Totals {
            contributors: contributors.len(),
            deposits: contributors.iter().map(|c| c.deposits.len()).sum(),
            tokens_trained: contributors.iter().map(|c| c.tokens_trained).sum(),
            windows: contributors.iter().map(|c| c.windows).sum(),
            share: contributors.iter().map(|c| c.share).sum(),
        }
    }

    fn add_up(&self, record: &RunRecord) -> bool {
        self.tokens_trained == record.tokens_trained && self.windows == record.windows
    }
}

fn contributions_by_cid(record: &RunRecord) -> BTreeMap<String, &Contribution> {
    record.contributions.iter().map(|c| (c.entry.cid.to_string(), c)).collect()
}

/// The licences of a run's deposits.
enum Licences {
    /// Every deposit carries this SPDX id; `hub` is its Hugging Face Hub id, when the Hub has one.
    One { spdx: String, hub: Option<&'static str> },
    /// The deposits' licences differ (or there are no deposits): each one, sorted.
    Several(Vec<String>),
}

impl Licences {
    fn sentence(&self) -> String {
        match self {
            Licences::One { spdx, .. } => format!("every deposit is under {spdx}"),
            Licences::Several(all) if all.is_empty() => "no deposits, so no licence".to_owned(),
            Licences::Several(all) => format!(
                "the deposits are under different licences ({}); the manifest gives each deposit's",
                all.join(", ")
            ),
        }
    }
}

fn licences(record: &RunRecord) -> Licences {
    let all: BTreeSet<&str> = record.contributions.iter().map(|c| c.license.as_str()).collect();
    match all.into_iter().collect::<Vec<_>>().as_slice() {
        [one] => Licences::One { spdx: (*one).to_owned(), hub: hub_license(one) },
        several => Licences::Several(several.iter().map(|l| (*l).to_owned()).collect()),
    }
}

/// Hugging Face Hub licence ids that are an SPDX id lowercased
/// (huggingface.co/docs/hub/repositories-licenses). The Hub refuses ids it does not list, so any
/// other licence is `other` with a name and a link.
const HUB_LICENSES: [&str; 48] = [
    "apache-2.0",
    "mit",
    "afl-3.0",
    "artistic-2.0",
    "bsl-1.0",
    "bsd-2-clause",
    "bsd-3-clause",
    "bsd-3-clause-clear",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-2.5",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cc-by-nc-2.0",
    "cc-by-nc-3.0",
    "cc-by-nc-4.0",
    "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0",
    "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0",
    "cdla-permissive-1.0",
    "cdla-permissive-2.0",
    "wtfpl",
    "ecl-2.0",
    "epl-1.0",
    "epl-2.0",
    "etalab-2.0",
    "eupl-1.1",
    "agpl-3.0",
    "gpl-2.0",
    "gpl-3.0",
    "lgpl-2.1",
    "lgpl-3.0",
    "isc",
    "lppl-1.3c",
    "ms-pl",
    "mpl-2.0",
    "osl-3.0",
    "postgresql",
    "ofl-1.1",
    "ncsa",
    "unlicense",
    "zlib",
];

/// SPDX ids (lowercased) that the Hub spells differently.
const HUB_RENAMED: [(&str, &str); 8] = [
    ("odc-by-1.0", "odc-by"),
    ("odbl-1.0", "odbl"),
    ("pddl-1.0", "pddl"),
    ("agpl-3.0-only", "agpl-3.0"),
    ("gpl-2.0-only", "gpl-2.0"),
    ("gpl-3.0-only", "gpl-3.0"),
    ("lgpl-2.1-only", "lgpl-2.1"),
    ("lgpl-3.0-only", "lgpl-3.0"),
];

fn hub_license(spdx: &str) -> Option<&'static str> {
    let lower = spdx.to_ascii_lowercase();
    HUB_LICENSES
        .into_iter()
        .find(|id| *id == lower)
        .or_else(|| HUB_RENAMED.into_iter().find(|(id, _)| *id == lower).map(|(_, hub)| hub))
}

/// A `license_name` the Hub accepts (lowercase letters, digits, '-' and '.').
fn hub_license_name(spdx: &str) -> String {
    spdx.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
        .collect()
}

/// The SPDX licence page of a listed SPDX id; `None` for a `LicenseRef-` or anything that is not
/// an id, which spdx.org has no page for.
fn spdx_url(spdx: &str) -> Option<String> {
    let is_id = !spdx.is_empty()
        && !spdx.starts_with("LicenseRef-")
        && !spdx.starts_with("DocumentRef-")
        && spdx.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '+');
    is_id.then(|| format!("https://spdx.org/licenses/{spdx}.html"))
}

/// Texts per language (primary subtag, lowercase), as the model card's `language` list wants.
fn languages(record: &RunRecord) -> BTreeMap<String, u64> {
    let mut languages = BTreeMap::new();
    for c in &record.contributions {
        let primary = c.language.split('-').next().unwrap_or_default().to_ascii_lowercase();
        if !primary.is_empty() {
            *languages.entry(primary).or_default() += 1;
        }
    }
    languages
}

/// Texts per register of the snapshot's deposits.
fn registers_of_deposits(record: &RunRecord) -> BTreeMap<String, u64> {
    let mut registers = BTreeMap::new();
    for c in &record.contributions {
        *registers.entry(c.entry.register.to_string()).or_default() += 1;
    }
    registers
}

/// Texts per consent tier, every tier listed (a zero says as much as a count).
/// From the widest tier to the narrowest.
fn consent_counts(record: &RunRecord) -> Vec<(ConsentTier, u64)> {
    ConsentTier::ALL
        .into_iter()
        .map(|tier| (tier, record.contributions.iter().filter(|c| c.entry.consent == tier).count() as u64))
        .collect()
}

/// Every register the mixture or the achieved shares name.
fn registers(record: &RunRecord) -> BTreeSet<&str> {
    record.mixture.keys().chain(record.achieved.keys()).map(String::as_str).collect()
}

fn decision_sentence(record: &RunRecord) -> String {
    match &record.decision {
        Some(d) => format!(
            "decided at log index {} on proposal {} (statement sha256 `{}`)",
            d.index, d.proposal, d.statement_sha256
        ),
        None => "no mixture had been decided, so every register weighed the same".to_owned(),
    }
}

/// `n texts`, singular when it is one.
fn texts(n: u64) -> String {
    counted(n, "text", "texts")
}

fn counted(n: impl Into<u64>, one: &str, many: &str) -> String {
    match n.into() {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

/// The first 12 hex digits of a root, enough to tell snapshots apart in a title.
fn short(root: &str) -> &str {
    root.get(..12).unwrap_or(root)
}

/// A Markdown table cell holding `text`: pipes escaped, lines joined.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// `text` without BibTeX's grouping characters, which would unbalance the entry.
fn bibtex(text: &str) -> String {
    text.replace(['{', '}'], "")
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

fn year(rfc3339: &str) -> Option<&str> {
    let year = rfc3339.get(..4)?;
    year.bytes().all(|b| b.is_ascii_digit()).then_some(year)
}

fn lines(lines: Vec<String>) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

mod dataset;
mod eu_summary;

pub use dataset::croissant;
pub use eu_summary::eu_training_summary;

#[cfg(test)]
mod tests;
