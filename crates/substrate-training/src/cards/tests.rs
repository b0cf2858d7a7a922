use std::collections::BTreeMap;

use substrate_core::snapshot::SnapshotEntry;
use substrate_core::{Cid, ConsentTier, Register};

use super::eu_summary::size_bins;
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
    let achieved: BTreeMap<String, f64> = [("narrative", 0.5), ("oral", 1.0 / 3.0), ("technical", 1.0 / 6.0)]
        .map(|(r, w)| (r.to_owned(), w))
        .into();
    RunRecord {
        commons: CommonsRef {
            name: "Kitchen Table".into(),
            origin: "substrate.local/kitchen-table".into(),
            log_key: "substrate.local/kitchen-table+40df4bc4+Aa4cOsrC9D36zEqe7mQJhtSiq/u9DLsnlkBJ5kz5cmUw"
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
        ccnet: None,
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
    assert!(with_table.contains("| snapshot | 0 |"), "{with_table}");
    assert!(with_table.contains("audited against the commons' log when this directory was published"));
    assert!(!with_table.contains("is not in this card"), "{with_table}");
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
