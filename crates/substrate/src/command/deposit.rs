//! `deposit`, `show`, `verify`, `withdraw` and `consent`.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use serde_json::json;
use substrate_core::event::{ConsentChange, Deposit, Event, Withdrawal};
use substrate_core::receipt::Receipt;
use substrate_core::{Cid, ConsentTier, Register, SignedEvent};
use substrate_tlog::NoteVerifier;

use crate::cli::DepositArgs;
use crate::client::Client;

/// What a depositor declares about a text.
pub struct Metadata<'a> {
    pub register: &'a str,
    pub also: &'a [String],
    pub consent: &'a str,
    pub title: &'a str,
    pub language: &'a str,
    pub license: &'a str,
}

/// Signs a deposit of `text` with `key`.
pub fn sign_deposit(key: &SigningKey, text: &[u8], meta: &Metadata<'_>) -> anyhow::Result<SignedEvent> {
    let consent: ConsentTier = meta.consent.parse()?;
    let register = Register::new(meta.register)?;
    let secondary_registers = meta.also.iter().map(|r| Register::new(r.trim())).collect::<Result<_, _>>()?;
    if text.is_empty() {
        anyhow::bail!("the text is empty; deposit a non-empty text");
    }
    let deposit = Deposit {
        cid: Some(Cid::of(text)),
        register,
        secondary_registers,
        consent,
        title: meta.title.to_owned(),
        language: meta.language.to_owned(),
        license: meta.license.to_owned(),
        media_type: "text/plain; charset=utf-8".to_owned(),
        size: text.len() as u64,
        created: substrate_core::timestamp::rfc3339(super::now_ms()),
    };
    Ok(SignedEvent::sign(Event::Deposit(deposit), key))
}

/// Submits a signed deposit with its text; returns the receipt and whether it was new.
pub fn submit_deposit(client: &Client, event: &SignedEvent, text: &[u8]) -> anyhow::Result<(Receipt, bool)> {
    let answer = client
        .post("/v1/deposits", &json!({"envelope": event.envelope, "content": STANDARD.encode(text)}))?;
    Ok((answer.json()?, answer.status == 201))
}

/// Submits a signed withdrawal or consent change.
pub fn submit_event(client: &Client, event: &SignedEvent) -> anyhow::Result<Receipt> {
    client.post("/v1/events", &json!({"envelope": event.envelope}))?.json()
}

pub fn deposit(args: DepositArgs) -> anyhow::Result<()> {
    let text = match args.file.as_deref() {
        None => read_stdin()?,
        Some(path) if path == Path::new("-") => read_stdin()?,
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    };
    let (_, key) = crate::keys::load(&crate::keys::path(args.key.key.as_deref())?)?;
    let meta = Metadata {
        register: &args.register,
        also: &args.also,
        consent: &args.consent,
        title: &args.title,
        language: &args.lang,
        license: &args.license,
    };
    let event = sign_deposit(&key, &text, &meta)?;
    let client = Client::new(&args.node.node);
    let (receipt, new) = submit_deposit(&client, &event, &text)?;
    let path = args.receipt.unwrap_or_else(|| format!("{}.receipt.json", Cid::of(&text)).into());
    save_receipt(&path, &receipt)?;
    println!(
        "{}",
        if new { "deposited" } else { "already deposited (the same statement); here is its receipt again" }
    );
    print_receipt(&receipt);
    println!("  receipt:   {}", path.display());
    Ok(())
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut text = Vec::new();
    std::io::stdin().read_to_end(&mut text).context("reading the text from stdin")?;
    Ok(text)
}

pub fn save_receipt(path: &Path, receipt: &Receipt) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(receipt)?;
    std::fs::write(path, json + "\n").with_context(|| format!("saving the receipt to {}", path.display()))
}

pub fn print_receipt(receipt: &Receipt) {
    if let Some(cid) = &receipt.cid {
        println!("  cid:       {cid}");
    }
    if let Some(handle) = &receipt.handle {
        println!("  handle:    {handle}");
    }
    println!(
        "  doi:       {}",
        receipt
            .doi
            .as_deref()
            .unwrap_or("null (none registered yet; a steward registers one with `substrate doi register`)")
    );
    println!("  kind:      {}", receipt.kind);
    println!("  log index: {}", receipt.log_index);
    println!("  logged at: {}", receipt.integrated_time);
    println!("  signer:    {}", receipt.envelope.signatures.first().map(|s| s.keyid.as_str()).unwrap_or("?"));
}

pub fn show(node: &str, id: &str, datacite: bool, scores: Option<&str>, raw: bool) -> anyhow::Result<()> {
    let client = Client::new(node);
    if datacite {
        let answer = client.get(&format!("/v1/deposits/{}/datacite", crate::client::segment(id)))?;
        let value: serde_json::Value = answer.json()?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let query = scores.map(|s| format!("?scores={}", crate::client::segment(s))).unwrap_or_default();
    let value: serde_json::Value =
        client.get(&format!("/v1/deposits/{}{query}", crate::client::segment(id)))?.json()?;
    if raw {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let d = &value["deposit"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    println!("{}", s(&d["title"]));
    println!("  cid:       {}", s(&d["cid"]));
    println!("  handle:    {}", s(&d["handle"]));
    println!("  register:  {}", s(&d["register"]));
    println!("  consent:   {}", s(&d["consent"]));
    println!(
        "  language:  {}   license: {}   size: {} bytes",
        s(&d["language"]),
        s(&d["license"]),
        d["size"]
    );
    println!("  depositor: {}", s(&d["depositor"]));
    match value["doi"]["doi"].as_str() {
        Some(doi) => println!(
            "  doi:       {doi} (https://doi.org/{doi}; recorded at entry {})",
            value["doi"]["log_index"]
        ),
        None => println!("  doi:       none (a steward registers one: `substrate doi register`)"),
    }
    println!(
        "  logged at: {} (entry {})",
        substrate_core::timestamp::rfc3339(d["deposited_at"].as_u64().unwrap_or(0)),
        d["log_index"]
    );
    match s(&d["status"]["state"]).as_str() {
        "withdrawn" => println!(
            "  status:    withdrawn at entry {} (tombstone: hash and receipt kept, text deleted)",
            d["status"]["log_index"]
        ),
        "removed" => println!(
            "  status:    removed by the commons at entry {} (tombstone: hash and receipt kept, text deleted)",
            d["status"]["log_index"]
        ),
        other => println!("  status:    {other}"),
    }
    let ccnet = &value["scores"]["ccnet"];
    if !ccnet.is_null() {
        let audit = &ccnet["audit"];
        let cutoffs = format!(
            "head below {:.0}, tail from {:.0}, audit of the log's first {} entries",
            audit["head_cutoff"].as_f64().unwrap_or(0.0),
            audit["tail_cutoff"].as_f64().unwrap_or(0.0),
            audit["log_size"]
        );
        match ccnet["perplexity"].as_f64() {
            Some(p) => println!(
                "  ccnet:     perplexity {p:.0}, {} ({cutoffs}): {}",
                s(&ccnet["bucket"]),
                if ccnet["dropped_by_ccnet"] == true {
                    "a CCNet pipeline drops it"
                } else {
                    "a CCNet pipeline keeps it"
                }
            ),
            None => println!("  ccnet:     not scored: {}", s(&ccnet["reason"])),
        }
    }
    Ok(())
}

pub fn receipt(node: &str, index: u64, witnessed: bool) -> anyhow::Result<()> {
    let query = if witnessed { "?witnessed=true" } else { "" };
    let receipt: Receipt = Client::new(node).get(&format!("/v1/receipts/{index}{query}"))?.json()?;
    println!("{}", serde_json::to_string_pretty(&receipt)?);
    Ok(())
}

pub fn verify(
    receipt_path: &Path,
    commons_key: &str,
    content: Option<&Path>,
    witnesses: &[String],
    required: Option<usize>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(receipt_path)
        .with_context(|| format!("reading {}", receipt_path.display()))?;
    let receipt: Receipt = serde_json::from_str(&text).with_context(|| {
        format!("{} is not a receipt (JSON from `substrate deposit`)", receipt_path.display())
    })?;
    let log = NoteVerifier::from_vkey(commons_key.trim()).context(
        "--commons-key is not a signed-note verifier key (name+hash+base64, printed by `substrate init`)",
    )?;
    let content = content
        .map(|path| std::fs::read(path).with_context(|| format!("reading {}", path.display())))
        .transpose()?;
    let verified = receipt.verify(&log, content.as_deref()).context("the receipt does NOT verify")?;
    let required = required.unwrap_or(witnesses.len());
    anyhow::ensure!(
        required <= witnesses.len(),
        "--witnesses {required} asks for more witnesses than the {} named with --witness",
        witnesses.len()
    );
    let cosigned = receipt.witnessed_by(witnesses).context("the receipt's witnesses cannot be checked")?;
    anyhow::ensure!(
        cosigned.len() >= required,
        "the receipt does NOT verify: its checkpoint is cosigned by {} of the witnesses named ({}), not {required}{}",
        cosigned.len(),
        if cosigned.is_empty() { "none".to_owned() } else { cosigned.join(", ") },
        if witnesses.is_empty() {
            ""
        } else {
            "; `substrate receipt INDEX --witnessed` fetches the receipt with its witnesses' cosignatures"
        }
    );
    println!("receipt verifies");
    println!("  signature:  ok, {} signed this {}", verified.event.signer, verified.event.event.kind());
    println!(
        "  inclusion:  ok, entry {} is in the tree of size {}",
        verified.entry.index, verified.checkpoint.size
    );
    println!("  checkpoint: ok, signed by {}", log.name());
    if !witnesses.is_empty() {
        println!(
            "  witnesses:  ok, cosigned by {} of {} named: {}",
            cosigned.len(),
            witnesses.len(),
            cosigned.join(", ")
        );
    }
    if let Some(cid) = &receipt.cid {
        println!(
            "  content:    {}",
            if content.is_some() {
                format!("ok, the file is {cid}")
            } else {
                "not checked (pass --content FILE)".into()
            }
        );
    }
    Ok(())
}

fn sign_change(key_path: Option<&Path>, event: Event) -> anyhow::Result<SignedEvent> {
    let (_, key) = crate::keys::load(&crate::keys::path(key_path)?)?;
    Ok(SignedEvent::sign(event, &key))
}

pub fn withdrawal(cid: &str, reason: Option<String>) -> anyhow::Result<Event> {
    Ok(Event::Withdrawal(Withdrawal {
        cid: Some(Cid::parse(cid)?),
        reason,
        requested: substrate_core::timestamp::rfc3339(super::now_ms()),
    }))
}

pub fn consent_change(cid: &str, tier: &str) -> anyhow::Result<Event> {
    Ok(Event::ConsentChange(ConsentChange {
        cid: Some(Cid::parse(cid)?),
        consent: tier.parse()?,
        requested: substrate_core::timestamp::rfc3339(super::now_ms()),
    }))
}

pub fn withdraw(node: &str, key: Option<&Path>, cid: &str, reason: Option<String>) -> anyhow::Result<()> {
    let event = sign_change(key, withdrawal(cid, reason)?)?;
    let receipt = submit_event(&Client::new(node), &event)?;
    println!("withdrawn: the text is deleted; a tombstone keeps its hash and receipt");
    print_receipt(&receipt);
    Ok(())
}

pub fn consent(node: &str, key: Option<&Path>, cid: &str, tier: &str) -> anyhow::Result<()> {
    let event = sign_change(key, consent_change(cid, tier)?)?;
    let receipt = submit_event(&Client::new(node), &event)?;
    println!("consent narrowed to {tier}");
    print_receipt(&receipt);
    Ok(())
}
