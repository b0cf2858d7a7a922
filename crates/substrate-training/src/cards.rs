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
pub const MANIFEST_FILE: &str = "manifest.jsonl";
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

    out.push("## Provenance Erasure Rate".into());
    out.push(String::new());
    match per_table {
        Some(table) => out.push(table.trim_end().to_owned()),
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

/// The Croissant 1.1 JSON-LD context, as mlcroissant 1.1.1 compares it: the spec's appendix
/// context with https schema.org (the package refuses http), plus the RAI prefix. Terms mapped to
/// a plain IRI; [`CONTEXT_TYPED_TERMS`] are the ones that also carry a type.
const CONTEXT_TERMS: [(&str, &str); 42] = [
    ("@language", "en"),
    ("@vocab", "https://schema.org/"),
    ("sc", "https://schema.org/"),
    ("cr", "http://mlcommons.org/croissant/"),
    ("rai", "http://mlcommons.org/croissant/RAI/"),
    ("dct", "http://purl.org/dc/terms/"),
    ("annotation", "cr:annotation"),
    ("arrayShape", "cr:arrayShape"),
    ("citeAs", "cr:citeAs"),
    ("column", "cr:column"),
    ("conformsTo", "dct:conformsTo"),
    ("containedIn", "cr:containedIn"),
    ("equivalentProperty", "cr:equivalentProperty"),
    ("excludes", "cr:excludes"),
    ("extract", "cr:extract"),
    ("field", "cr:field"),
    ("fileProperty", "cr:fileProperty"),
    ("fileObject", "cr:fileObject"),
    ("fileSet", "cr:fileSet"),
    ("format", "cr:format"),
    ("includes", "cr:includes"),
    ("isArray", "cr:isArray"),
    ("isLiveDataset", "cr:isLiveDataset"),
    ("jsonPath", "cr:jsonPath"),
    ("key", "cr:key"),
    ("md5", "cr:md5"),
    ("parentField", "cr:parentField"),
    ("path", "cr:path"),
    ("readLines", "cr:readLines"),
    ("recordSet", "cr:recordSet"),
    ("references", "cr:references"),
    ("regex", "cr:regex"),
    ("repeated", "cr:repeated"),
    ("replace", "cr:replace"),
    ("samplingRate", "cr:samplingRate"),
    ("sdVersion", "cr:sdVersion"),
    ("separator", "cr:separator"),
    ("source", "cr:source"),
    ("subField", "cr:subField"),
    ("transform", "cr:transform"),
    ("unArchive", "cr:unArchive"),
    ("value", "cr:value"),
];

/// Context terms with an `@type`: (term, IRI, type).
const CONTEXT_TYPED_TERMS: [(&str, &str, &str); 3] = [
    ("data", "cr:data", "@json"),
    ("dataType", "cr:dataType", "@vocab"),
    ("examples", "cr:examples", "@json"),
];

fn croissant_context() -> Value {
    let mut context = serde_json::Map::new();
    for (term, iri) in CONTEXT_TERMS {
        context.insert(term.to_owned(), json!(iri));
    }
    for (term, iri, kind) in CONTEXT_TYPED_TERMS {
        context.insert(term.to_owned(), json!({"@id": iri, "@type": kind}));
    }
    Value::Object(context)
}

/// The manifest's columns as Croissant fields: (name, schema.org type, description).
const MANIFEST_COLUMNS: [(&str, &str, &str); 13] = [
    ("cid", "sc:Text", "CIDv1 (raw, sha2-256) of the deposited text."),
    ("handle", "sc:Text", "The commons' persistent handle of the deposit."),
    ("register", "sc:Text", "The register the depositor declared (what kind of text it is)."),
    ("depositor", "sc:Text", "The depositor's did:key."),
    ("consent", "sc:Text", "The consent tier: public, commons, training-only or local."),
    ("bytes", "sc:Integer", "The text's size in bytes."),
    ("tokens", "sc:Integer", "The text's length in the base model's tokens."),
    ("tokens_trained", "sc:Integer", "Tokens of this text the run trained on, over all its windows."),
    ("windows", "sc:Integer", "Training windows drawn from this text."),
    ("held_out", "sc:Boolean", "Whether the text was held out to measure the loss (never trained on)."),
    ("license", "sc:Text", "The licence the depositor declared (SPDX id)."),
    ("language", "sc:Text", "The text's language (BCP 47)."),
    ("title", "sc:Text", "The deposit's title."),
];

/// A Croissant 1.1 description of the run's snapshot, with the RAI extension: the manifest
/// (`manifest_name`, whose bytes hash to `manifest_sha256`, lowercase hex) as its one file and
/// one record set, `deposits`, read from the manifest's columns.
pub fn croissant(record: &RunRecord, manifest_name: &str, manifest_sha256: &str) -> Value {
    let uri = snapshot_uri(record);
    let root = short(&record.snapshot_root);
    let commons = &record.commons.name;
    let fields: Vec<Value> = MANIFEST_COLUMNS
        .iter()
        .map(|(name, data_type, description)| {
            json!({
                "@type": "cr:Field",
                "@id": format!("deposits/{name}"),
                "name": name,
                "description": description,
                "dataType": data_type,
                "source": {"fileObject": {"@id": manifest_name}, "extract": {"column": name}},
            })
        })
        .collect();
    let license: Vec<Value> = match licences(record) {
        Licences::One { spdx, .. } => vec![json!(spdx_url(&spdx).unwrap_or(spdx))],
        Licences::Several(all) => all.into_iter().map(|l| json!(spdx_url(&l).unwrap_or(l))).collect(),
    };
    let registers: Vec<&str> = record
        .contributions
        .iter()
        .map(|c| c.entry.register.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let languages: Vec<String> = languages(record).into_keys().collect();
    let citation_year = year(&record.finished).or_else(|| year(&record.started)).unwrap_or("n.d.");
    json!({
        "@context": croissant_context(),
        "@type": "sc:Dataset",
        "conformsTo": ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"],
        "name": format!("{commons} training snapshot {root}"),
        "description": format!(
            "The deposits of the commons {commons} that the training run of {} used: the log of {} as of its first {} \
             entries, snapshot root {}. One manifest record per deposit (its CID, handle, register, depositor, consent \
             tier, size, licence, language and what the run trained on it); the texts themselves are not part of this \
             description and travel only as each depositor's consent tier allows.",
            record.finished, record.commons.origin, record.log_size, record.snapshot_root
        ),
        "license": license,
        "url": uri,
        "identifier": uri,
        "creator": {"@type": "sc:Organization", "name": commons, "description": format!("The commons whose log is {}, signed by the key {}.", record.commons.origin, record.commons.log_key)},
        "datePublished": record.finished,
        // A snapshot never changes: another root is another dataset, so this one has one version.
        "version": "1.0.0",
        "citeAs": format!(
            "@misc{{substrate_snapshot_{root}, title={{{} training snapshot {root}}}, author={{{}}}, year={{{citation_year}}}, howpublished={{{uri}}}, note={{log size {}, snapshot root {}}}}}",
            bibtex(commons),
            bibtex(commons),
            record.log_size,
            record.snapshot_root
        ),
        "keywords": registers,
        "inLanguage": languages,
        "distribution": [{
            "@type": "cr:FileObject",
            "@id": manifest_name,
            "name": manifest_name,
            "description": "One JSON object per line, one line per deposit of the snapshot, in CID order.",
            "contentUrl": manifest_name,
            "encodingFormat": "application/jsonlines",
            "sha256": manifest_sha256,
        }],
        "recordSet": [{
            "@type": "cr:RecordSet",
            "@id": "deposits",
            "name": "deposits",
            "description": "One record per deposit in the snapshot.",
            "key": {"@id": "deposits/cid"},
            "field": fields,
        }],
        "rai:dataCollection": format!(
            "Texts deposited by the members of the commons {commons}, each deposit a signed event (DSSE around an in-toto \
             statement) appended to the commons' transparency log; every depositor holds a signed receipt with an \
             inclusion proof that verifies offline. Each depositor declared the text's register, consent tier, licence \
             and language."
        ),
        "rai:dataCollectionType": ["Direct deposit by the texts' depositors (user-contributed)"],
        "rai:dataPreprocessingProtocol": [
            "Snapshot: every active deposit (not withdrawn, not removed) not under an open dispute whose register is in the mixture, sorted by CID and named by an RFC 6962 root over its entries.",
            format!(
                "Training windows of {} tokens drawn by register weight, seeded by the snapshot root; held-out texts measure the loss and are never trained on.",
                record.hyperparameters.seq_len
            ),
        ],
        "rai:dataUseCases": [
            format!("Fine-tuning a LoRA adapter of {} under the training mixture the commons decided.", record.base_model.name),
            "Auditing which deposits a run used and how much of each it trained on.",
        ],
        "rai:dataLimitations": data_limitations(record),
        "rai:dataBiases": data_biases(record),
        "rai:personalSensitiveInformation": [
            "Depositors are identified by did:key public keys, which are pseudonymous but linkable across deposits.",
            "Texts may hold personal information their depositors chose to share; registers such as sacred or oral may hold culturally sensitive material. The texts are not distributed with this description.",
        ],
        "rai:dataSocialImpact": "Training on texts their depositors chose to share, in shares the commons voted, lets a community shape the model it uses; an adapter can still reproduce the style or content of what it was trained on.",
        "rai:dataReleaseMaintenancePlan": "The snapshot is immutable and named by its root. A depositor may withdraw a deposit at any time: it is deleted from every blob store, excluded from every later snapshot, and every adapter trained on it is marked in the commons' registry; nothing claims such an adapter unlearned it.",
    })
}

fn data_limitations(record: &RunRecord) -> Vec<String> {
    let mut limitations = vec![
        "Registers, languages and licences are declared by the depositors, not checked.".to_owned(),
        format!("A small, member-contributed collection: {} deposits.", record.contributions.len()),
    ];
    if !record.registers_without_text.is_empty() {
        limitations.push(format!(
            "Registers the mixture gives weight but no eligible text: {}.",
            record.registers_without_text.join(", ")
        ));
    }
    let local = record.contributions.iter().filter(|c| c.entry.consent == ConsentTier::Local).count() as u64;
    if local > 0 {
        limitations
            .push(format!("{} of the local tier: they never leave the node holding them.", texts(local)));
    }
    limitations
}

fn data_biases(record: &RunRecord) -> Vec<String> {
    let shares: Vec<String> = registers(record)
        .into_iter()
        .map(|r| {
            format!(
                "{r} decided {} / achieved {}",
                percent(record.mixture.get(r).copied().unwrap_or(0.0)),
                percent(record.achieved.get(r).copied().unwrap_or(0.0))
            )
        })
        .collect();
    vec![
        format!(
            "Register shares of the trained tokens follow mixture weights chosen by a vote of the commons' members ({}), not the distribution of the deposits: {}.",
            decision_sentence(record),
            shares.join("; ")
        ),
        "Over-represents whoever deposits most within a register.".to_owned(),
    ]
}

/// The EU AI Act public summary of training content (Article 53(1)(d)), following the
/// Commission's template of July 2025 section by section, and saying which items do not apply.
pub fn eu_training_summary(record: &RunRecord) -> String {
    let name = format!("{} LoRA adapter, snapshot {}", record.commons.name, short(&record.snapshot_root));
    let snapshot_tokens: u64 = record.contributions.iter().map(|c| c.tokens).sum();
    let snapshot_bytes: u64 = record.contributions.iter().map(|c| c.entry.bytes).sum();
    let held_out = record.contributions.iter().filter(|c| c.held_out).count();
    let depositors = record.contributors().len();
    let registers = registers_of_deposits(record);
    let languages = languages(record);
    let tiers = consent_counts(record);
    let [small, medium, large] = size_bins(snapshot_tokens);
    let no = "☐ Yes ☒ No";

    let mut out = vec![format!("# Public Summary of Training Content for {name}")];
    out.push(String::new());
    out.push("Version of the Summary: 1".into());
    out.push(format!("Last update: {}", day_month_year(&record.finished)));
    out.push(String::new());
    out.push(format!(
        "This summary follows the European Commission's template for the public summary of training content of \
         general-purpose AI models (AI Act, Article 53(1)(d), July 2025). The adapter is a fine-tune of `{}`: it covers \
         only the data of this fine-tuning run, and the base model's own training content is for its provider's summary. \
         Whether this adapter is a general-purpose AI model under the Act is not assessed here. Items that do not apply \
         say so.",
        record.base_model.name
    ));
    out.push(String::new());

    out.push("## 1. General information".into());
    out.push(String::new());
    out.push("### 1.1. Provider identification".into());
    out.push(String::new());
    out.push(format!(
        "- Provider name and contact details: the commons {} (origin `{}`, log key `{}`); the run was executed by its node `{}`. \
         Contact details are not part of the run record.",
        record.commons.name, record.commons.origin, record.commons.log_key, record.node
    ));
    out.push(
        "- Authorised representative name and contact details: Not applicable (not part of the run record)."
            .into(),
    );
    out.push(String::new());
    out.push("### 1.2. Model identification".into());
    out.push(String::new());
    out.push(format!("- Versioned model name(s): {name} (snapshot root `{}`)", record.snapshot_root));
    out.push(format!(
        "- Model dependencies: a LoRA adapter (PEFT) of `{}`, sha256 `{}`; see that model's provider for its summary.",
        record.base_model.name, record.base_model.sha256
    ));
    out.push(format!(
        "- Date of placement of the model on the Union market: Not applicable: the run finished on {}; the record does \
         not say whether or when the adapter is placed on the market.",
        record.finished
    ));
    out.push(String::new());
    out.push("### 1.3. Modalities, overall training data size and other characteristics".into());
    out.push(String::new());
    out.push("| Modality | Training data size | Types of content |".into());
    out.push("|---|---|---|".into());
    out.push(format!(
        "| ☒ Text | {} Less than 1 billion tokens {} 1 billion to 10 trillion tokens {} More than 10 trillion tokens | \
         Texts deposited to the commons in the registers {} |",
        check(small),
        check(medium),
        check(large),
        list_or_none(&registers.keys().map(String::as_str).collect::<Vec<_>>())
    ));
    out.push("| ☐ Image | Not applicable | Not applicable |".into());
    out.push("| ☐ Audio | Not applicable | Not applicable |".into());
    out.push("| ☐ Video | Not applicable | Not applicable |".into());
    out.push("| ☐ Other | Not applicable | Not applicable |".into());
    out.push(String::new());
    out.push(format!(
        "- Alternatively, specify the approximate size in a different measurement unit: {} texts, {} bytes, {} tokens \
         of the base model's tokenizer. The run trained on {} tokens in {} windows (a text can be drawn more than once); \
         texts held out to measure the loss, never trained on: {}.",
        record.contributions.len(),
        snapshot_bytes,
        snapshot_tokens,
        record.tokens_trained,
        record.windows,
        held_out
    ));
    out.push(format!(
        "- Latest date of data acquisition/collection for model training: the snapshot is the commons' log as of its \
         first {} entries, taken no later than {} (the start of the run). The run record does not keep each deposit's date.",
        record.log_size, record.started
    ));
    let language_counts: Vec<String> =
        languages.iter().map(|(l, n)| format!("{l} ({})", texts(*n))).collect();
    out.push(format!(
        "- Description of the linguistic characteristics of the overall training data: languages as the depositors \
         declared them (primary BCP 47 subtag): {}.",
        list_or_none(&language_counts.iter().map(String::as_str).collect::<Vec<_>>())
    ));
    let register_counts: Vec<String> =
        registers.iter().map(|(r, n)| format!("{r} ({})", texts(*n))).collect();
    out.push(format!(
        "- Other relevant characteristics of the overall training data: registers: {}. The register shares of the \
         trained tokens follow the mixture: {}.",
        list_or_none(&register_counts.iter().map(String::as_str).collect::<Vec<_>>()),
        decision_sentence(record)
    ));
    out.push("- Additional comments (optional): the manifest (`manifest.jsonl`) and its Croissant description (`croissant.json`) list every text.".into());
    out.push(String::new());

    out.push("## 2. List of data sources".into());
    out.push(String::new());
    out.push("### 2.1. Publicly available datasets".into());
    out.push(String::new());
    out.push(format!("- Have you used publicly available datasets to train the model? {no}"));
    out.push("- If yes, specify the modality(ies) of the content covered by the datasets concerned: Not applicable".into());
    out.push("- List of large publicly available datasets: Not applicable".into());
    out.push(
        "- General description of other publicly available datasets not listed above: Not applicable".into(),
    );
    out.push(String::new());
    out.push("### 2.2. Private non-publicly available datasets obtained from third parties".into());
    out.push(String::new());
    out.push("#### 2.2.1. Datasets commercially licensed by rightsholders or their representatives".into());
    out.push(String::new());
    out.push(format!(
        "- Have you concluded transactional commercial licensing agreement(s) with rightsholder(s) or with their representatives? {no}"
    ));
    out.push("- If yes, specify the modality(ies) of the content covered by the datasets concerned: Not applicable".into());
    out.push(String::new());
    out.push("#### 2.2.2. Private datasets obtained from other third parties".into());
    out.push(String::new());
    out.push(format!(
        "- Have you obtained private datasets from third parties that are not licensed as described in Section 2.2.1, \
         such as data obtained from providers of private databases, or data intermediaries? {no}"
    ));
    out.push("- If yes, specify the modality(ies) of the content covered by the datasets concerned: Not applicable".into());
    out.push(
        "- If publicly known, list private datasets obtained from other third parties: Not applicable".into(),
    );
    out.push("- General description of non-publicly known private datasets obtained from third parties: Not applicable: every text was deposited directly to the commons by its depositor (see 2.4).".into());
    out.push(String::new());
    out.push("### 2.3. Data crawled and scraped from online sources".into());
    out.push(String::new());
    out.push(format!("- Were crawlers used by the provider or on behalf of? {no}"));
    out.push("- If yes, specify crawler name(s)/identifier(s), purposes, behaviour, period, content and domains: Not applicable".into());
    out.push(String::new());
    out.push("### 2.4. User data".into());
    out.push(String::new());
    out.push(format!(
        "- Was data from user interactions with the AI model (e.g. user input and prompts) used to train the model? {no}"
    ));
    out.push(
        "- Was data collected from user interactions with the provider's other services or products used to train the model? ☒ Yes ☐ No"
            .into(),
    );
    out.push(format!(
        "- If yes, provide a general description of the provider's services or products that were used to collect the \
         user data: one source, private and not publicly available, contributed by its users: the deposits of the \
         commons {}. Depositors (people and agents) deposit texts through the commons' ledger, each deposit a signed event in its \
         transparency log with a declared register, consent tier, licence and language, and each depositor holds a \
         signed receipt. This run used {} deposits by {} depositors: {} tokens, registers {}, languages {}, deposited \
         in the log's first {} entries (the snapshot, taken by {}).",
        record.commons.name,
        record.contributions.len(),
        depositors,
        snapshot_tokens,
        list_or_none(&registers.keys().map(String::as_str).collect::<Vec<_>>()),
        list_or_none(&languages.keys().map(String::as_str).collect::<Vec<_>>()),
        record.log_size,
        record.started
    ));
    out.push("- Type of modality covered: ☒ Text ☐ Image ☐ Video ☐ Audio ☐ Other".into());
    out.push(String::new());
    out.push("### 2.5. Synthetic data".into());
    out.push(String::new());
    out.push(format!("- Was synthetic AI-generated data created by the provider or on their behalf to train the model? {no}"));
    out.push("- If yes, modality, and models used to generate it: Not applicable".into());
    out.push("- Additional comments (optional): agents as well as people may deposit texts, and the commons does not label AI-generated text, so deposits may contain some.".into());
    out.push(String::new());
    out.push("### 2.6. Other sources of data".into());
    out.push(String::new());
    out.push(format!("- Have data sources other than those described in Sections 2.1 to 2.5 been used to train the model? {no}"));
    out.push(
        "- If yes, provide a narrative description of these data sources and the data: Not applicable".into(),
    );
    out.push(String::new());

    out.push("## 3. Data processing aspects".into());
    out.push(String::new());
    out.push(
        "### 3.1. Respect of reservation of rights from text and data mining exception or limitation".into(),
    );
    out.push(String::new());
    out.push(
        "- Are you a Signatory to the Code of Practice for general-purpose AI models that includes commitments to \
         respect reservations of rights from the TDM exception or limitation? ☐ Yes ☐ No: not part of the run record."
            .into(),
    );
    let tier_counts: Vec<String> = tiers.iter().map(|(t, n)| format!("{t}: {n}")).collect();
    out.push(format!(
        "- Describe the measures implemented before model training to respect reservations of rights: no text was \
         collected under the TDM exception. Every text was deposited by its depositor, who chose its consent tier and \
         licence; training follows the tier. The tiers public, commons and training-only allow training; a local text \
         trains only on the node that holds it and never leaves it. Texts in this run per tier: {}{}. A depositor \
         can withdraw a deposit or narrow its consent at any time, never widen it; a withdrawn deposit is excluded from \
         every later snapshot, and an adapter already trained on it is marked in the commons' registry.",
        tier_counts.join(", "),
        if record.local_texts > 0 {
            format!("; the {} of the local tier trained here, on the node holding it (`{}`)", texts(record.local_texts), record.node)
        } else {
            String::new()
        }
    ));
    out.push(String::new());
    out.push("### 3.2. Removal of illegal content".into());
    out.push(String::new());
    out.push(
        "- General description of measures taken: the snapshot holds active deposits only. A deposit under an open \
         dispute is not in it, nor is one withdrawn or removed by a dispute ruling before the snapshot; content removed \
         after the snapshot leaves every later snapshot and marks this adapter. The run applies no automated content \
         filter of its own."
            .into(),
    );
    out.push(String::new());
    out.push("### 3.3. Other information (optional)".into());
    out.push(String::new());
    out.push(format!(
        "- Other relevant information about data processing (optional): the snapshot is named by the RFC 6962 root `{}` \
         over its entries, which anyone holding the commons' log recomputes. {}",
        record.snapshot_root,
        if record.registers_without_text.is_empty() {
            "Every register with weight had eligible text.".to_owned()
        } else {
            format!(
                "Registers the mixture gives weight but which had no eligible text: {}; their weight went to the others in proportion.",
                record.registers_without_text.join(", ")
            )
        }
    ));
    lines(out)
}

/// The template's three text-size bins (under 10^9 tokens, up to 10^13, more): which one holds.
fn size_bins(tokens: u64) -> [bool; 3] {
    const BILLION: u64 = 1_000_000_000;
    const TEN_TRILLION: u64 = 10_000_000_000_000;
    [tokens < BILLION, (BILLION..=TEN_TRILLION).contains(&tokens), tokens > TEN_TRILLION]
}

fn check(ticked: bool) -> &'static str {
    if ticked { "☒" } else { "☐" }
}

/// `dd/mm/yyyy` of an RFC 3339 time, as the template writes dates; the time as given otherwise.
fn day_month_year(rfc3339: &str) -> String {
    match (rfc3339.get(0..4), rfc3339.get(5..7), rfc3339.get(8..10)) {
        (Some(y), Some(m), Some(d)) if [y, m, d].iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) => {
            format!("{d}/{m}/{y}")
        }
        _ => rfc3339.to_owned(),
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use substrate_core::snapshot::SnapshotEntry;
    use substrate_core::{Cid, ConsentTier, Register};

    use super::*;
    use crate::record::{BaseModel, Builder, CommonsRef, DecisionRef, HeldOut, Hyperparameters};

    const ALICE: &str = "did:key:z6MkalicealicealicealicealicealicealiceAL1CE";
    const BASIL: &str = "did:key:z6MkbasilbasilbasilbasilbasilbasilbasilBAS1L";
    const CHIDI: &str = "did:key:z6MkchidichidichidichidichidichidichidiCH1D1";

    #[allow(clippy::too_many_arguments)]
    fn contribution(
        text: &str,
        register: &str,
        depositor: &str,
        consent: ConsentTier,
        language: &str,
        tokens_trained: u64,
        windows: u64,
        held_out: bool,
    ) -> Contribution {
        Contribution {
            entry: SnapshotEntry {
                cid: Cid::of(text.as_bytes()),
                handle: format!("tag:substrate.local,2026:kitchen-table/{}", text.len()),
                register: Register::new(register).expect("register"),
                depositor: depositor.into(),
                consent,
                bytes: text.len() as u64,
            },
            title: format!("A {register} text | with a pipe"),
            license: "CC-BY-4.0".into(),
            language: language.into(),
            tokens: 40 * text.len() as u64,
            tokens_trained,
            windows,
            held_out,
        }
    }

    /// Three contributors, three registers with text and one (`sacred`) with weight but none, one
    /// held-out deposit and one local one.
    fn sample() -> RunRecord {
        let mut contributions = vec![
            contribution(
                "the dough that breathes, told at the kitchen table",
                "narrative",
                ALICE,
                ConsentTier::Public,
                "en",
                600,
                6,
                false,
            ),
            contribution(
                "grandmother's river song, sung at dusk",
                "oral",
                ALICE,
                ConsentTier::Local,
                "en-GB",
                300,
                3,
                false,
            ),
            contribution(
                "how to fold a paper boat in seven steps",
                "technical",
                BASIL,
                ConsentTier::Commons,
                "fr",
                200,
                2,
                false,
            ),
            contribution(
                "a story held out to measure the loss",
                "narrative",
                BASIL,
                ConsentTier::TrainingOnly,
                "fr-CA",
                0,
                0,
                true,
            ),
            contribution(
                "the ferry schedule, read aloud",
                "oral",
                CHIDI,
                ConsentTier::Commons,
                "pt-BR",
                100,
                1,
                false,
            ),
        ];
        contributions.sort_by_cached_key(|c| c.entry.cid.to_string());
        let mixture: BTreeMap<String, f64> =
            [("narrative", 0.5), ("oral", 0.3), ("technical", 0.1), ("sacred", 0.1)]
                .map(|(r, w)| (r.to_owned(), w))
                .into();
        let achieved: BTreeMap<String, f64> =
            [("narrative", 0.5), ("oral", 1.0 / 3.0), ("technical", 1.0 / 6.0)]
                .map(|(r, w)| (r.to_owned(), w))
                .into();
        RunRecord {
            commons: CommonsRef {
                name: "Kitchen Table".into(),
                origin: "substrate.local/kitchen-table".into(),
                log_key:
                    "substrate.local/kitchen-table+40df4bc4+Aa4cOsrC9D36zEqe7mQJhtSiq/u9DLsnlkBJ5kz5cmUw"
                        .into(),
            },
            decision: Some(DecisionRef { index: 41, proposal: 7, statement_sha256: "ab".repeat(32) }),
            log_size: 57,
            snapshot_root: "0123456789abcdef".repeat(4),
            mixture,
            achieved,
            registers_without_text: vec!["sacred".into()],
            base_model: BaseModel { name: "smollm2-135m-instruct-q4_1.gguf".into(), sha256: "cd".repeat(32) },
            hyperparameters: Hyperparameters {
                rank: 8,
                alpha: 16.0,
                targets: vec!["q".into(), "v".into()],
                steps: 3,
                batch: 4,
                seq_len: 100,
                lr: 0.0002,
                seed: 42,
            },
            contributions,
            tokens_trained: 1200,
            windows: 12,
            held_out: [("narrative".to_owned(), HeldOut { texts: 1, before: 3.25, after: 2.875 })].into(),
            local_texts: 1,
            builder: Builder { name: "substrate".into(), version: "0.1.0".into(), sha256: "ef".repeat(32) },
            node: "did:key:z6MknodenodenodenodenodenodenodenodenodeN0DE".into(),
            started: "2026-11-22T02:27:51.022Z".into(),
            finished: "2026-11-22T02:31:07.500Z".into(),
        }
    }

    #[test]
    fn contribution_totals_add_up_to_the_run() {
        let record = sample();
        let json = contributions_json(&record);
        let contributors = json["contributors"].as_array().expect("contributors");
        assert_eq!(contributors.len(), 3);
        let tokens: u64 = contributors.iter().filter_map(|c| c["tokens_trained"].as_u64()).sum();
        let windows: u64 = contributors.iter().filter_map(|c| c["windows"].as_u64()).sum();
        let share: f64 = contributors.iter().filter_map(|c| c["share"].as_f64()).sum();
        let deposit_tokens: u64 = contributors
            .iter()
            .flat_map(|c| c["deposits"].as_array().into_iter().flatten())
            .filter_map(|d| d["tokens_trained"].as_u64())
            .sum();
        assert_eq!(tokens, record.tokens_trained);
        assert_eq!(deposit_tokens, record.tokens_trained);
        assert_eq!(windows, record.windows);
        assert!((share - 1.0).abs() < 1e-9, "shares sum to {share}");
        assert_eq!(json["totals"]["tokens_trained"], json["run"]["tokens_trained"]);
        assert_eq!(json["totals"]["windows"], json["run"]["windows"]);
        assert_eq!(json["totals"]["deposits"], 5);
        let card = contribution_card(&record);
        assert!(card.contains("| sum over the contributors below | 3 | 5 | 1200 | 12 |"), "{card}");
        assert!(card.contains("| the run (`run.json`) | | 5 | 1200 | 12 |"), "{card}");
        assert!(card.contains("add up to the run's."));
        for c in &record.contributions {
            assert!(card.contains(&c.entry.cid.to_string()), "the card names every deposit");
        }
        assert!(card.contains("held out") && card.contains("local: trained on its own node"));
    }

    #[test]
    fn a_mismatch_is_said_not_hidden() {
        let mut record = sample();
        record.tokens_trained += 1;
        assert!(contribution_card(&record).contains("do not add up"));
        let json = contributions_json(&record);
        assert_ne!(json["totals"]["tokens_trained"], json["run"]["tokens_trained"]);
    }

    /// The front matter as key → value lines (a list's items joined), parsed the way the YAML
    /// subset the card writes reads.
    fn front_matter_keys(card: &str) -> BTreeMap<String, Vec<String>> {
        let body = card.strip_prefix("---\n").expect("starts with ---");
        let (yaml, _) = body.split_once("\n---\n").expect("ends with ---");
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current = String::new();
        for line in yaml.lines() {
            if let Some(item) = line.strip_prefix("- ") {
                keys.entry(current.clone()).or_default().push(item.trim_matches('"').to_owned());
            } else {
                let (key, value) = line.split_once(':').expect("a key: value line");
                current = key.to_owned();
                let value = value.trim();
                let entry = keys.entry(current.clone()).or_default();
                if !value.is_empty() {
                    entry.push(value.trim_matches('"').to_owned());
                }
            }
        }
        keys
    }

    #[test]
    fn the_model_card_opens_with_hugging_face_front_matter() {
        let record = sample();
        let card = model_card(&record, None);
        assert!(card.starts_with("---\n"));
        let keys = front_matter_keys(&card);
        let get = |k: &str| keys.get(k).cloned().unwrap_or_default();
        assert_eq!(get("base_model"), ["smollm2-135m-instruct-q4_1.gguf"]);
        assert_eq!(get("library_name"), ["peft"]);
        assert_eq!(get("license"), ["cc-by-4.0"]);
        assert_eq!(get("language"), ["en", "fr", "pt"]);
        assert_eq!(
            get("tags"),
            [
                "lora",
                "peft",
                "substrate",
                "governed-mixture",
                "register-narrative",
                "register-oral",
                "register-technical"
            ]
        );
        assert_eq!(
            get("datasets"),
            [format!("tag:substrate.local,2026:kitchen-table/snapshot/{}", record.snapshot_root)]
        );
        for section in [
            "## The mixture",
            "## Held-out loss per register",
            "## Provenance Erasure Rate",
            "## Consent",
            "## Withdrawal",
        ] {
            assert!(card.contains(section), "{section} missing");
        }
        assert!(card.contains("| sacred (no text) | 10.00% | 0.00% |"), "{card}");
        assert!(card.contains("`substrate audit per <dir>`"));
        assert!(card.contains("Local-tier texts in this run: 1. They trained only on the node holding them"));
        assert!(card.contains("No deposit of this snapshot was withdrawn"));
        assert!(!card.to_lowercase().contains("unlearned"), "nothing claims unlearning");
        let with_table = model_card(&record, Some("| stage | PER |\n|---|---|\n| snapshot | 0 |\n"));
        assert!(with_table.contains("| snapshot | 0 |") && !with_table.contains("substrate audit per"));
    }

    #[test]
    fn licences_follow_the_hub_or_say_other() {
        let mut record = sample();
        record.contributions[0].license = "MIT".into();
        let card = model_card(&record, None);
        let keys = front_matter_keys(&card);
        assert_eq!(keys.get("license").map(Vec::as_slice), Some(["other".to_owned()].as_slice()));
        assert!(card.contains("different licences (CC-BY-4.0, MIT)"));
        for c in &mut record.contributions {
            c.license = "GPL-3.0-only".into();
        }
        assert_eq!(front_matter_keys(&model_card(&record, None))["license"], ["gpl-3.0"]);
        for c in &mut record.contributions {
            c.license = "LicenseRef-Kitchen".into();
        }
        let keys = front_matter_keys(&model_card(&record, None));
        assert_eq!(keys["license"], ["other"]);
        assert_eq!(keys["license_name"], ["licenseref-kitchen"]);
        assert_eq!(keys["license_link"], [MANIFEST_FILE]);
    }

    #[test]
    fn yaml_strings_escape_everything_but_printable_ascii() {
        assert_eq!(yaml_string("plain"), "\"plain\"");
        assert_eq!(yaml_string("a \"b\" \\ c"), "\"a \\\"b\\\" \\\\ c\"");
        assert_eq!(yaml_string("é\n\u{7f}🥖"), "\"\\u00e9\\u000a\\u007f\\U0001f956\"");
    }

    #[test]
    fn croissant_has_the_keys_mlcroissant_needs() {
        let record = sample();
        let doc = croissant(&record, MANIFEST_FILE, &"00".repeat(32));
        for key in [
            "@context",
            "@type",
            "conformsTo",
            "name",
            "description",
            "license",
            "url",
            "creator",
            "datePublished",
            "version",
            "citeAs",
            "distribution",
            "recordSet",
            "rai:dataCollection",
            "rai:dataCollectionType",
            "rai:dataUseCases",
            "rai:dataLimitations",
            "rai:dataBiases",
            "rai:personalSensitiveInformation",
            "rai:dataSocialImpact",
            "rai:dataReleaseMaintenancePlan",
        ] {
            assert!(doc.get(key).is_some(), "{key} missing");
        }
        assert_eq!(doc["@context"]["@vocab"], "https://schema.org/");
        assert_eq!(doc["@context"]["rai"], "http://mlcommons.org/croissant/RAI/");
        assert_eq!(doc["conformsTo"][0], "http://mlcommons.org/croissant/1.1");
        assert_eq!(doc["license"][0], "https://spdx.org/licenses/CC-BY-4.0.html");
        let file = &doc["distribution"][0];
        assert_eq!(file["contentUrl"], MANIFEST_FILE);
        assert_eq!(file["encodingFormat"], "application/jsonlines");
        assert_eq!(file["sha256"], "00".repeat(32));
        let fields = doc["recordSet"][0]["field"].as_array().expect("fields");
        let names: Vec<&str> = fields.iter().filter_map(|f| f["name"].as_str()).collect();
        let first_line = manifest_jsonl(&record).lines().next().map(str::to_owned).expect("a line");
        let columns: Value = serde_json::from_str(&first_line).expect("json");
        let mut keys: Vec<&str> = columns.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut sorted_names = names.clone();
        sorted_names.sort_unstable();
        assert_eq!(sorted_names, keys, "a field per manifest column");
        assert!(doc["rai:dataBiases"][0].as_str().is_some_and(|b| b.contains("vote")));
        assert!(doc["rai:dataReleaseMaintenancePlan"].as_str().is_some_and(|p| p.contains("withdraw")));
    }

    #[test]
    fn the_manifest_is_one_json_object_per_contribution_in_order() {
        let record = sample();
        let manifest = manifest_jsonl(&record);
        assert!(manifest.ends_with('\n'));
        let lines: Vec<Value> =
            manifest.lines().map(|l| serde_json::from_str(l).expect("a JSON object per line")).collect();
        assert_eq!(lines.len(), record.contributions.len());
        for (line, c) in lines.iter().zip(&record.contributions) {
            assert_eq!(line["cid"], c.entry.cid.to_string());
            assert_eq!(line["consent"], c.entry.consent.as_str());
            assert_eq!(line["tokens_trained"], c.tokens_trained);
            assert_eq!(line["held_out"], c.held_out);
            assert_eq!(line["title"], c.title);
        }
        let first = manifest.lines().next().unwrap_or_default();
        assert!(first.starts_with("{\"cid\":\"bafkrei") && first.contains(",\"title\":"), "{first}");
    }

    #[test]
    fn the_eu_summary_follows_the_template() {
        let record = sample();
        let summary = eu_training_summary(&record);
        for heading in [
            "## 1. General information",
            "### 1.3. Modalities, overall training data size and other characteristics",
            "## 2. List of data sources",
            "### 2.4. User data",
            "## 3. Data processing aspects",
            "### 3.2. Removal of illegal content",
        ] {
            assert!(summary.contains(heading), "{heading} missing");
        }
        assert!(summary.contains("Last update: 22/11/2026"));
        assert!(summary.contains("| ☒ Text | ☒ Less than 1 billion tokens ☐ 1 billion"));
        assert!(summary.contains("the 1 text of the local tier trained here"));
        assert!(summary.contains("under an open dispute is not in it"));
        assert_eq!(size_bins(999_999_999), [true, false, false]);
        assert_eq!(size_bins(1_000_000_000), [false, true, false]);
        assert_eq!(size_bins(10_000_000_000_001), [false, false, true]);
    }

    #[test]
    fn the_snapshot_uri_is_a_tag_under_the_origin() {
        let mut record = sample();
        let root = record.snapshot_root.clone();
        assert_eq!(snapshot_uri(&record), format!("tag:substrate.local,2026:kitchen-table/snapshot/{root}"));
        record.commons.origin = "example.org".into();
        assert_eq!(snapshot_uri(&record), format!("tag:example.org,2026:snapshot/{root}"));
        record.started = "later".into();
        assert_eq!(snapshot_uri(&record), format!("example.org/snapshot/{root}"));
    }

    /// Writes the sample record's adapter directory (cards and `run.json`, no weights) to
    /// `$SUBSTRATE_CARDS_SAMPLE_DIR` when it is set, for `.ci/training/check_cards.py` to check.
    #[test]
    fn sample_directory_for_the_external_check() {
        use sha2::Digest;
        let Some(dir) = std::env::var_os("SUBSTRATE_CARDS_SAMPLE_DIR") else { return };
        let dir = std::path::PathBuf::from(dir);
        let record = sample();
        let manifest = manifest_jsonl(&record);
        let sha = hex::encode(sha2::Sha256::digest(manifest.as_bytes()));
        let pretty = |v: &Value| serde_json::to_string_pretty(v).expect("json") + "\n";
        std::fs::create_dir_all(&dir).expect("dir");
        let files = [
            (MANIFEST_FILE, manifest.clone()),
            (README_FILE, model_card(&record, None)),
            (CONTRIBUTIONS_FILE, contribution_card(&record)),
            (CONTRIBUTIONS_JSON_FILE, pretty(&contributions_json(&record))),
            (CROISSANT_FILE, pretty(&croissant(&record, MANIFEST_FILE, &sha))),
            (EU_SUMMARY_FILE, eu_training_summary(&record)),
            (crate::record::RUN_FILE, serde_json::to_string_pretty(&record).expect("json") + "\n"),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write");
        }
    }
}
