//! The provenance erasure rate (PER): for each stage of a training run, how many of the
//! contributions that should survive the stage are missing from its output or attributed to the
//! wrong person or register, recomputed from the log and the adapter directory alone (nothing
//! from the trainer's memory).
//!
//! The stages, each checked against the one before it:
//! 1. **eligible**: the deposits the log makes eligible at the run's entry (the ground truth);
//! 2. **manifest**: `manifest.jsonl` must list each eligible deposit with its depositor and
//!    register;
//! 3. **windows**: `windows.jsonl` must name each deposit the manifest says was trained, as many
//!    windows and tokens as the manifest says;
//! 4. **provenance**: the attestation's `resolvedDependencies` must name each trained deposit with
//!    its depositor, register and tokens trained;
//! 5. **contribution card**: `contributions.json` must list each trained deposit under its own
//!    depositor with its tokens;
//! 6. **model card**: the tokens per register in `README.md` must be the windows' sums.
//!
//! A stage whose file is absent (a conventional pipeline writes none of them) erases every
//! contribution that entered it.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use substrate_core::Register;
use substrate_store::DataDir;

/// One contribution as a stage states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub depositor: String,
    pub register: String,
    /// Tokens trained, where the stage states them.
    pub tokens: Option<u64>,
    pub windows: Option<u64>,
}

/// What one stage lost.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Stage {
    pub name: &'static str,
    /// Contributions that should have survived it.
    pub entered: usize,
    /// CIDs absent from its output.
    pub missing: Vec<String>,
    /// CIDs present with the wrong depositor, register or counts, and what was wrong.
    pub misattributed: Vec<(String, String)>,
}

impl Stage {
    /// (missing + misattributed) / entered; 0 when nothing entered.
    pub fn rate(&self) -> f64 {
        match self.entered {
            0 => 0.0,
            n => (self.missing.len() + self.misattributed.len()) as f64 / n as f64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("reading the log: {0}")]
    Log(substrate_store::ReplayError),
    #[error("{file}: {detail}")]
    Unreadable { file: String, detail: String },
}

type Claims = BTreeMap<String, Claim>;

/// Compares what a stage states with what entered it.
fn compare(name: &'static str, entered: &Claims, stated: Option<&Claims>, counts: bool) -> Stage {
    let mut stage = Stage { name, entered: entered.len(), missing: Vec::new(), misattributed: Vec::new() };
    for (cid, should) in entered {
        match stated.and_then(|s| s.get(cid)) {
            None => stage.missing.push(cid.clone()),
            Some(got) => {
                let mut wrong = Vec::new();
                if got.depositor != should.depositor {
                    wrong.push(format!("depositor {} instead of {}", got.depositor, should.depositor));
                }
                if got.register != should.register {
                    wrong.push(format!("register {} instead of {}", got.register, should.register));
                }
                if counts {
                    for (what, a, b) in
                        [("tokens", got.tokens, should.tokens), ("windows", got.windows, should.windows)]
                    {
                        if let (Some(a), Some(b)) = (a, b)
                            && a != b
                        {
                            wrong.push(format!("{a} {what} instead of {b}"));
                        }
                    }
                }
                if !wrong.is_empty() {
                    stage.misattributed.push((cid.clone(), wrong.join(", ")));
                }
            }
        }
    }
    stage
}

fn read_json(dir: &Path, name: &str) -> Result<Option<Value>, AuditError> {
    match std::fs::read(dir.join(name)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::Unreadable { file: name.into(), detail: e.to_string() }),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AuditError::Unreadable { file: name.into(), detail: e.to_string() }),
    }
}

fn read_lines(dir: &Path, name: &str) -> Result<Option<Vec<Value>>, AuditError> {
    match std::fs::read_to_string(dir.join(name)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::Unreadable { file: name.into(), detail: e.to_string() }),
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            .map_err(|e| AuditError::Unreadable { file: name.into(), detail: e.to_string() }),
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The run's entry and weighted registers, from run.json, or the whole log and every register
/// for a directory without one (a conventional pipeline's).
fn scope(dir: &Path) -> Result<(Option<u64>, Option<Vec<String>>), AuditError> {
    Ok(match read_json(dir, crate::record::RUN_FILE)? {
        Some(run) => (
            run["log_size"].as_u64(),
            run["mixture"].as_object().map(|m| {
                m.iter().filter(|(_, w)| w.as_f64().unwrap_or(0.0) > 0.0).map(|(r, _)| r.clone()).collect()
            }),
        ),
        None => (None, None),
    })
}

/// Audits the adapter directory `dir` against the log in `data`.
pub fn per(dir: &Path, data: &DataDir) -> Result<Vec<Stage>, AuditError> {
    let state = substrate_store::replay::fold_to(data, None, |_, _, _| {}).map_err(AuditError::Log)?;
    per_on(dir, &state)
}

/// Audits the adapter directory `dir` against `state`, folded from the log at least as far as
/// the run's snapshot: the snapshot is recomputed at the run's size from it.
pub fn per_on(dir: &Path, state: &substrate_core::State) -> Result<Vec<Stage>, AuditError> {
    per_with(dir, state, None)
}

/// [`per_on`], with the attestation's statement given rather than read from `dir` (a run audits
/// its directory before it signs the statement).
pub fn per_with(
    dir: &Path,
    state: &substrate_core::State,
    statement: Option<&Value>,
) -> Result<Vec<Stage>, AuditError> {
    let (log_size, registers) = scope(dir)?;
    let log_size = log_size.unwrap_or(state.size());
    let registers: std::collections::BTreeSet<Register> = match registers {
        Some(names) => names.iter().filter_map(|r| Register::new(r).ok()).collect(),
        None => {
            state.governance().parameters().map(|p| p.registers.iter().cloned().collect()).unwrap_or_default()
        }
    };
    let eligible: Claims = state
        .snapshot_at(log_size, &registers)
        .into_iter()
        .map(|e| {
            let claim = Claim {
                depositor: e.depositor.clone(),
                register: e.register.to_string(),
                tokens: None,
                windows: None,
            };
            (e.cid.to_string(), claim)
        })
        .collect();
    let mut stages = vec![Stage {
        name: "eligible",
        entered: eligible.len(),
        missing: Vec::new(),
        misattributed: Vec::new(),
    }];

    // 2. The manifest.
    let manifest: Option<Claims> = read_lines(dir, crate::record::MANIFEST_FILE)?.map(|lines| {
        lines
            .iter()
            .map(|l| {
                (
                    text(&l["cid"]),
                    Claim {
                        depositor: text(&l["depositor"]),
                        register: text(&l["register"]),
                        tokens: l["tokens_trained"].as_u64(),
                        windows: l["windows"].as_u64(),
                    },
                )
            })
            .collect()
    });
    stages.push(compare("manifest", &eligible, manifest.as_ref(), false));

    // What should be trained from here on: the manifest's deposits with windows (as the
    // manifest states them; a manifest that erased a deposit already counted above).
    let trained: Claims = manifest
        .as_ref()
        .map(|m| {
            m.iter()
                .filter(|(_, c)| c.windows.unwrap_or(0) > 0)
                .map(|(k, c)| (k.clone(), c.clone()))
                .collect()
        })
        .unwrap_or_else(|| eligible.iter().map(|(k, c)| (k.clone(), c.clone())).collect());

    // 3. The windows.
    let windows: Option<Claims> = read_lines(dir, crate::record::WINDOWS_FILE)?.map(|lines| {
        let mut claims: Claims = BTreeMap::new();
        for l in lines {
            let cid = text(&l["cid"]);
            let tokens = match (l["tokens"][0].as_u64(), l["tokens"][1].as_u64()) {
                (Some(a), Some(b)) if b > a => b - a - 1,
                _ => 0,
            };
            let should = trained.get(&cid).or(eligible.get(&cid));
            let claim = claims.entry(cid).or_insert_with(|| Claim {
                depositor: should.map(|c| c.depositor.clone()).unwrap_or_default(),
                register: should.map(|c| c.register.clone()).unwrap_or_default(),
                tokens: Some(0),
                windows: Some(0),
            });
            claim.tokens = claim.tokens.map(|t| t + tokens);
            claim.windows = claim.windows.map(|w| w + 1);
        }
        claims
    });
    stages.push(compare("windows", &trained, windows.as_ref(), true));

    // 4. The attestation's dependencies.
    let read = match statement {
        Some(statement) => Some(statement.clone()),
        None => read_json(dir, crate::provenance::PROVENANCE_FILE)?.map(|envelope| {
            let payload = STANDARD.decode(text(&envelope["payload"])).unwrap_or_default();
            serde_json::from_slice::<Value>(&payload).unwrap_or_default()
        }),
    };
    let provenance: Option<Claims> = read.map(|statement| {
        statement["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["annotations"]["role"] == "deposit")
            .map(|d| {
                let a = &d["annotations"];
                (
                    text(&d["name"]),
                    Claim {
                        depositor: text(&a["depositor"]),
                        register: text(&a["register"]),
                        tokens: a["tokensTrained"].as_u64(),
                        windows: a["windows"].as_u64(),
                    },
                )
            })
            .collect()
    });
    stages.push(compare("provenance", &trained, provenance.as_ref(), true));

    // 5. The contribution card: each deposit under the contributor that lists it.
    let contributions: Option<Claims> = read_json(dir, "contributions.json")?.map(|card| {
        let mut claims = Claims::new();
        for contributor in card["contributors"].as_array().into_iter().flatten() {
            let depositor = text(&contributor["depositor"]);
            for d in contributor["deposits"].as_array().into_iter().flatten() {
                claims.insert(
                    text(&d["cid"]),
                    Claim {
                        depositor: depositor.clone(),
                        register: text(&d["register"]),
                        tokens: d["tokens_trained"].as_u64(),
                        windows: d["windows"].as_u64(),
                    },
                );
            }
        }
        claims
    });
    stages.push(compare("contribution card", &trained, contributions.as_ref(), true));

    // 6. The model card's tokens per register against the windows' sums, one register at a
    // time: a register whose total is off misattributes every deposit counted in it.
    let card = std::fs::read_to_string(dir.join("README.md")).ok();
    let stated = card.as_deref().map(tokens_per_register);
    let mut by_register: BTreeMap<&str, u64> = BTreeMap::new();
    for (cid, c) in &trained {
        let counted = windows.as_ref().and_then(|w| w.get(cid)).and_then(|c| c.tokens).unwrap_or(0);
        *by_register.entry(c.register.as_str()).or_default() += counted;
    }
    let mut model =
        Stage { name: "model card", entered: trained.len(), missing: Vec::new(), misattributed: Vec::new() };
    for (cid, c) in &trained {
        match stated.as_ref().map(|s| s.get(&c.register)) {
            None => model.missing.push(cid.clone()),
            Some(None) => model.missing.push(cid.clone()),
            Some(Some(n)) if *n != by_register[c.register.as_str()] => model.misattributed.push((
                cid.clone(),
                format!(
                    "the card gives {} {n} tokens, its windows {}",
                    c.register,
                    by_register[c.register.as_str()]
                ),
            )),
            Some(Some(_)) => {}
        }
    }
    stages.push(model);
    Ok(stages)
}

/// The "tokens trained" column of the model card's per-register table.
fn tokens_per_register(card: &str) -> BTreeMap<String, u64> {
    let mut table = BTreeMap::new();
    let mut inside = false;
    for line in card.lines() {
        if line.starts_with("## ") {
            inside = line.trim() == "## Trained tokens per register";
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if inside
            && cells.len() >= 4
            && let Ok(tokens) = cells[2].replace(',', "").parse::<u64>()
        {
            table.insert(cells[1].to_owned(), tokens);
        }
    }
    table
}

/// The stages as a Markdown table.
pub fn table(stages: &[Stage]) -> String {
    let mut out =
        String::from("| stage | entered | missing | misattributed | PER |\n|---|---:|---:|---:|---:|\n");
    for s in stages {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.4} |\n",
            s.name,
            s.entered,
            s.missing.len(),
            s.misattributed.len(),
            s.rate()
        ));
    }
    out
}
