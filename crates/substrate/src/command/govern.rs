//! Governance on the command line: membership, node registration, proposals and votes, the
//! mixture, disputes and credits. Every act is a signed event sent to `POST /v1/events`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer;
use serde_json::Value;
use substrate_core::event::Event;
use substrate_core::governance::acts::{
    Action, Attestation, Dispute, DisputeRuling, Ground, NodeRegistration, Proposal, Revocation, Ruling,
    VoteCast, node_binding_message,
};
use substrate_core::governance::book::{class_rank, min_class};
use substrate_core::governance::tally::{ProposalClass, Vote};
use substrate_core::receipt::Receipt;
use substrate_core::{Cid, Register, SignedEvent};

use crate::cli::{DisputeCommand, MemberCommand, ProposeArgs};
use crate::client::{Client, segment};

pub(super) fn requested() -> String {
    substrate_core::timestamp::rfc3339(super::now_ms())
}

/// Signs `event` with the key file and sends it; returns the receipt.
fn send(node: &str, key: Option<&Path>, event: Event) -> anyhow::Result<Receipt> {
    let (_, key) = crate::keys::load(&crate::keys::path(key)?)?;
    let signed = SignedEvent::sign(event, &key);
    super::deposit::submit_event(&Client::new(node), &signed)
}

fn logged(what: &str, receipt: &Receipt) {
    println!("{what}: logged at index {} ({})", receipt.log_index, receipt.integrated_time);
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

fn time(v: &Value) -> String {
    substrate_core::timestamp::rfc3339(v.as_u64().unwrap_or(0))
}

/// Parses `narrative=0.4,oral=0.6` into a ballot.
pub fn parse_ballot(text: &str) -> anyhow::Result<BTreeMap<Register, f64>> {
    let mut ballot = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .with_context(|| format!("'{part}' is not REGISTER=WEIGHT (e.g. narrative=0.4)"))?;
        let register = Register::new(name.trim())?;
        let weight: f64 =
            weight.trim().parse().with_context(|| format!("'{weight}' in '{part}' is not a number"))?;
        if ballot.insert(register, weight).is_some() {
            anyhow::bail!("register '{name}' appears twice in the ballot");
        }
    }
    let sum: f64 = ballot.values().sum();
    if (sum - 1.0).abs() > substrate_core::governance::mixture::BALLOT_TOLERANCE {
        anyhow::bail!("the ballot's weights sum to {sum}; they must sum to 1");
    }
    Ok(ballot)
}

/// Parses `relabel:oral`, `narrow:commons`, `remove` or `dismiss`.
pub fn parse_ruling(text: &str) -> anyhow::Result<Ruling> {
    Ok(match text.split_once(':') {
        Some(("relabel", register)) => Ruling::Relabel { register: Register::new(register)? },
        Some(("narrow", tier)) => Ruling::NarrowConsent { consent: tier.parse()? },
        None if text == "remove" => Ruling::Remove,
        None if text == "dismiss" => Ruling::Dismiss,
        _ => anyhow::bail!("'{text}' is not a ruling; use relabel:REGISTER, narrow:TIER, remove or dismiss"),
    })
}

/// Parses one of the kebab-case names the wire format uses for `what`.
fn named<T: serde::de::DeserializeOwned>(text: &str, what: &str, names: &str) -> anyhow::Result<T> {
    serde_json::from_value(Value::String(text.to_owned()))
        .map_err(|_| anyhow::anyhow!("'{text}' is not {what}; use {names}"))
}

fn parse_class(text: &str) -> anyhow::Result<ProposalClass> {
    named(text, "a class", "ordinary, resource or constitutional")
}

pub fn member(command: MemberCommand) -> anyhow::Result<()> {
    match command {
        MemberCommand::Attest { did, days, note, key, node } => {
            let receipt = send(
                &node.node,
                key.key.as_deref(),
                Event::Attestation(Attestation { person: did.clone(), days, note, requested: requested() }),
            )?;
            logged(&format!("attested {did}"), &receipt);
            let member =
                Client::new(&node.node).get(&format!("/v1/members/{}", segment(&did)))?.json::<Value>()?;
            println!("  status:  {}", s(&member["status"]["state"]));
            if member["verified"].as_bool() == Some(true) {
                println!("  expires: {}", time(&member["expiresAt"]));
            } else if s(&member["status"]["state"]) == "pending" {
                let overview: Value = Client::new(&node.node).get("/v1/governance")?.json()?;
                let needed = overview["parameters"]["vouchesRequired"].as_u64().unwrap_or(0);
                let have = member["vouches"].as_array().map_or(0, Vec::len) as u64;
                println!("  vouches: {have} of the {needed} a new member needs");
            }
            Ok(())
        }
        MemberCommand::Revoke { did, reason, duplicate, key, node } => {
            let receipt = send(
                &node.node,
                key.key.as_deref(),
                Event::Revocation(Revocation {
                    person: did.clone(),
                    reason,
                    duplicate,
                    requested: requested(),
                }),
            )?;
            logged(&format!("revoked {did}"), &receipt);
            Ok(())
        }
        MemberCommand::List { node } => {
            let list: Value = Client::new(&node.node).get("/v1/members")?.json()?;
            let members = list["members"].as_array().cloned().unwrap_or_default();
            println!("{} members", members.len());
            for m in members {
                let state = s(&m["status"]["state"]);
                let shown = if m["verified"].as_bool() == Some(true) {
                    format!("verified until {}", time(&m["expiresAt"]))
                } else if state == "verified" {
                    "expired".to_owned()
                } else {
                    state
                };
                let mut tags = Vec::new();
                if m["steward"].as_bool() == Some(true) {
                    tags.push("steward".to_owned());
                }
                let nodes = m["nodes"].as_array().map(Vec::len).unwrap_or(0);
                if nodes > 0 {
                    tags.push(format!("{nodes} node(s)"));
                }
                println!(
                    "  {}  {shown}{}",
                    s(&m["person"]),
                    if tags.is_empty() { String::new() } else { format!("  [{}]", tags.join(", ")) }
                );
            }
            Ok(())
        }
    }
}

/// The node's half of a registration: its key on this machine, or its did and the binding it
/// signed on its own machine (`node-bind`).
pub enum NodeHalf {
    Key(std::path::PathBuf),
    Signed { did: String, binding: String },
}

fn origin_of(node: &str) -> anyhow::Result<String> {
    let commons: Value = Client::new(node).get("/v1/commons")?.json()?;
    commons["origin"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the node at {node} states no commons origin; is it a Substrate node?"))
}

pub fn register_node(node: &str, key: Option<&Path>, half: NodeHalf) -> anyhow::Result<()> {
    let (person, _) = crate::keys::load(&crate::keys::path(key)?)?;
    let (did, binding) = match half {
        NodeHalf::Key(node_key) => {
            let (node_file, node_signing) = crate::keys::load(&node_key)?;
            let binding = node_signing.sign(&node_binding_message(&origin_of(node)?, &person.did));
            (node_file.did, STANDARD.encode(binding.to_bytes()))
        }
        NodeHalf::Signed { did, binding } => (did.trim().to_owned(), binding.trim().to_owned()),
    };
    let receipt = send(
        node,
        key,
        Event::NodeRegistration(NodeRegistration { node: did.clone(), binding, requested: requested() }),
    )?;
    logged(&format!("node {did} registered to {}", person.did), &receipt);
    Ok(())
}

/// Signs the node's half of its registration on the node's machine and prints what the operator
/// needs: the node's did and the binding.
pub fn bind_node(node: &str, node_key: &Path, operator: &str, origin: Option<&str>) -> anyhow::Result<()> {
    substrate_core::identity::key_of(operator).with_context(|| {
        format!("--operator '{operator}' is not a did:key; the operator's `substrate id show` prints it")
    })?;
    let (node_file, node_signing) = crate::keys::load(node_key)?;
    let origin = match origin {
        Some(origin) => origin.to_owned(),
        None => origin_of(node).context("asking the node for the commons' origin (or give --origin)")?,
    };
    let binding = STANDARD.encode(node_signing.sign(&node_binding_message(&origin, operator)).to_bytes());
    println!("node:    {}", node_file.did);
    println!("binding: {binding}");
    eprintln!(
        "give both to the operator, who registers the node with:\n  substrate node-register --node-did {} --binding {binding} --key OPERATOR_KEY",
        node_file.did
    );
    Ok(())
}

/// The actions the flags describe, in a fixed order.
fn actions(args: &ProposeArgs) -> anyhow::Result<Vec<Action>> {
    if let Some(path) = &args.actions {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a JSON list of actions (each {{\"action\": \"set-mixture\" | \"set-parameter\" | \"remove-deposit\" | \"resolve-dispute\" | \"approve-workload\" | \"elect-board\", …}})",
                path.display()
            )
        });
    }
    let mut actions = Vec::new();
    if let Some(ballot) = &args.set_mixture {
        actions.push(Action::SetMixture { ballot: parse_ballot(ballot).context("--set-mixture")? });
    }
    for setting in &args.set {
        let (key, value) =
            setting.split_once('=').with_context(|| format!("--set '{setting}' is not KEY=VALUE"))?;
        let key = key.trim();
        // Windows are milliseconds on the wire; the command line takes durations such as 7d or 30s.
        let value = match (key.starts_with("window."), crate::duration::parse_ms(value)) {
            (true, Ok(ms)) => Value::from(ms),
            _ => serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned())),
        };
        actions.push(Action::SetParameter { key: key.to_owned(), value });
    }
    for cid in &args.remove {
        actions.push(Action::RemoveDeposit { cid: Cid::parse(cid)?, reason: args.reason.clone() });
    }
    for item in &args.resolve_dispute {
        let (id, ruling) =
            item.split_once('=').with_context(|| format!("--resolve-dispute '{item}' is not ID=RULING"))?;
        let dispute = id.trim().parse().with_context(|| format!("'{id}' is not a dispute id"))?;
        actions.push(Action::ResolveDispute { dispute, ruling: parse_ruling(ruling.trim())? });
    }
    let program = if args.approve_workload.is_empty() {
        None
    } else {
        Some(match &args.workload_program {
            Some(path) => substrate_models::fetch::file_sha256(path)
                .with_context(|| format!("hashing the workload program {}", path.display()))?,
            None => this_program_digest()?,
        })
    };
    for item in &args.approve_workload {
        let (workload, pins) = item.split_once('=').unwrap_or((item, ""));
        let (kind, version) = workload
            .split_once('@')
            .with_context(|| format!("--approve-workload '{item}' is not KIND@VERSION[=MODEL,…]"))?;
        let mut models = Vec::new();
        for pin in pins.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            models.extend(model_digests(pin)?);
        }
        models.extend(program.clone());
        models.sort();
        models.dedup();
        actions.push(Action::ApproveWorkload { kind: kind.to_owned(), version: version.to_owned(), models });
    }
    if let Some(seats) = args.elect_board {
        actions.push(Action::ElectBoard { seats, candidates: args.candidates.clone() });
    } else if !args.candidates.is_empty() {
        anyhow::bail!("--candidate goes with --elect-board SEATS");
    }
    if actions.is_empty() {
        anyhow::bail!(
            "a proposal needs at least one action: --set-mixture, --set, --remove, --resolve-dispute, --approve-workload, --elect-board or --actions FILE"
        );
    }
    Ok(actions)
}

pub fn propose(args: ProposeArgs) -> anyhow::Result<()> {
    let actions = actions(&args)?;
    let class = match &args.class {
        Some(class) => parse_class(class)?,
        None => {
            let mut class = ProposalClass::Ordinary;
            for action in &actions {
                let needed = min_class(action).map_err(anyhow::Error::msg)?;
                if class_rank(needed) > class_rank(class) {
                    class = needed;
                }
            }
            class
        }
    };
    let receipt = send(
        &args.node.node,
        args.key.key.as_deref(),
        Event::Proposal(Proposal {
            title: args.title.clone(),
            summary: args.summary.clone(),
            class,
            actions,
            requested: requested(),
        }),
    )?;
    println!("proposal {} opened: {}", receipt.log_index, args.title);
    let view: Value =
        Client::new(&args.node.node).get(&format!("/v1/proposals/{}", receipt.log_index))?.json()?;
    let p = &view["proposal"];
    println!("  class:  {}   led by the {} chamber", s(&p["class"]), s(&p["lead"]));
    println!("  closes: {}", time(&p["closesAt"]));
    let id = receipt.log_index;
    println!("vote with: substrate vote {id} yes|no|abstain");
    for action in p["actions"].as_array().into_iter().flatten() {
        match s(&action["action"]).as_str() {
            "set-mixture" => println!(
                "  and --mixture REGISTER=WEIGHT,… (weights summing to 1): your distribution over registers; every ballot with one counts in the mixture"
            ),
            "elect-board" => {
                println!("  and --rank 2,1,… : the candidates you support, most preferred first, by number:");
                print_candidates(action);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The candidates of an `elect-board` action, numbered from 1 as `--rank` takes them.
fn candidates(action: &Value) -> Vec<String> {
    action["candidates"].as_array().into_iter().flatten().map(s).collect()
}

fn print_candidates(action: &Value) {
    for (number, candidate) in candidates(action).iter().enumerate() {
        println!("    {:>2}. {candidate}", number + 1);
    }
}

/// Resolves `--rank` items against the proposal's candidates: a number from the list, a full
/// did:key, or a prefix of one (with or without `did:key:`) that only one candidate has.
fn resolve_ranking(items: &[String], candidates: &[String], id: u64) -> anyhow::Result<Vec<String>> {
    let listed = || {
        candidates.iter().enumerate().map(|(i, c)| format!("  {}. {c}", i + 1)).collect::<Vec<_>>().join("\n")
    };
    if candidates.is_empty() {
        anyhow::bail!("proposal {id} elects no board, so it takes no --rank; vote without one");
    }
    items
        .iter()
        .map(|item| {
            let item = item.trim();
            if let Ok(number) = item.parse::<usize>() {
                return candidates.get(number.wrapping_sub(1)).cloned().with_context(|| {
                    format!("--rank {number}: proposal {id} has candidates 1 to {}:\n{}", candidates.len(), listed())
                });
            }
            let matches: Vec<&String> = candidates
                .iter()
                .filter(|c| c.starts_with(item) || c.strip_prefix("did:key:").is_some_and(|c| c.starts_with(item)))
                .collect();
            match matches.as_slice() {
                [one] if !item.is_empty() => Ok((*one).clone()),
                [] | [_] => anyhow::bail!("--rank '{item}' is none of proposal {id}'s candidates:\n{}", listed()),
                several => anyhow::bail!(
                    "--rank '{item}' is the start of {} candidates' keys; give more of it, or the number:\n{}",
                    several.len(),
                    listed()
                ),
            }
        })
        .collect()
}

pub fn vote(
    node: &str,
    key: Option<&Path>,
    proposal: u64,
    choice: &str,
    mixture: Option<&str>,
    rank: Vec<String>,
) -> anyhow::Result<()> {
    let choice: Vote = named(choice, "a vote", "yes, no or abstain")?;
    let mixture = mixture.map(parse_ballot).transpose().context("--mixture")?;
    let (voter, _) = crate::keys::load(&crate::keys::path(key)?)?;
    // The proposal as the node shows it, with this voter's earlier vote only; when it cannot be
    // read (no such proposal, say), the vote goes as given and the node's refusal says what is
    // wrong.
    let view: Option<Value> = Client::new(node)
        .get(&format!("/v1/proposals/{proposal}?voter={}", voter.did))
        .and_then(|a| a.json())
        .ok();
    let (mixture, ranking, notes) = match view {
        Some(view) => ballot_for(&view, proposal, &voter.did, mixture, rank)?,
        None => (mixture, (!rank.is_empty()).then_some(rank), Vec::new()),
    };
    let receipt = send(
        node,
        key,
        Event::Vote(VoteCast { proposal, choice, mixture, ranking, requested: requested() }),
    )?;
    logged(&format!("vote on proposal {proposal}"), &receipt);
    for note in notes {
        println!("  {note}");
    }
    Ok(())
}

/// The distribution and ranking a vote on the proposal `view` carries, and what to tell the voter.
/// A new vote replaces the old one whole, so what the voter gave before and did not give again
/// is carried over, and said so, rather than silently dropped.
type Ballot = (Option<BTreeMap<Register, f64>>, Option<Vec<String>>, Vec<String>);

fn ballot_for(
    view: &Value,
    proposal: u64,
    voter: &str,
    mut mixture: Option<BTreeMap<Register, f64>>,
    rank: Vec<String>,
) -> anyhow::Result<Ballot> {
    let actions: Vec<Value> = view["proposal"]["actions"].as_array().cloned().unwrap_or_default();
    let sets_mixture = actions.iter().any(|a| a["action"] == "set-mixture");
    let election = actions.iter().find(|a| a["action"] == "elect-board");
    let mut ranking = match election {
        Some(action) if !rank.is_empty() => Some(resolve_ranking(&rank, &candidates(action), proposal)?),
        None if !rank.is_empty() => {
            anyhow::bail!("proposal {proposal} elects no board, so it takes no --rank; vote without one")
        }
        _ => None,
    };
    let earlier = view["votes"].as_array().into_iter().flatten().find(|v| s(&v["voter"]) == voter);
    let mut notes = Vec::new();
    if let Some(earlier) = earlier {
        if sets_mixture && mixture.is_none() && !earlier["mixture"].is_null() {
            mixture = serde_json::from_value(earlier["mixture"].clone()).ok();
            notes.push(format!(
                "kept your earlier distribution {} (give --mixture to change it)",
                earlier["mixture"]
            ));
        }
        if election.is_some() && ranking.is_none() && !earlier["ranking"].is_null() {
            ranking = serde_json::from_value(earlier["ranking"].clone()).ok();
            notes.push("kept your earlier ranking (give --rank to change it)".to_owned());
        }
    }
    if sets_mixture && mixture.is_none() {
        notes.push(
            "this vote carries no distribution over registers, so it counts in the chambers but not in the mixture; add --mixture REGISTER=WEIGHT,… to weigh in".to_owned(),
        );
    }
    if election.is_some() && ranking.is_none() {
        notes.push(format!(
            "this vote ranks no candidate, so it counts in the chambers but not in the election; add --rank (see `substrate proposal {proposal}`)"
        ));
    }
    Ok((mixture, ranking, notes))
}

fn chamber_line(name: &str, t: &Value) {
    let f = |k: &str| t[k].as_f64().unwrap_or(0.0);
    println!(
        "    {name:<12} yes {:>8.3}  no {:>8.3}  abstain {:>8.3}  of eligible {:>8.3}",
        f("yes"),
        f("no"),
        f("abstain"),
        f("eligible")
    );
}

fn outcome_text(o: &Value) -> String {
    match s(&o["outcome"]).as_str() {
        "passed" => "passed".into(),
        "vetoed" => format!("vetoed by the {} chamber", s(&o["by"])),
        "rejected" => format!("rejected: {}", s(&o["reason"])),
        other => other.to_owned(),
    }
}

fn print_proposal(view: &Value) {
    let p = &view["proposal"];
    let t = &view["tally"];
    println!("proposal {}: {}", p["id"], s(&p["title"]));
    println!("  class {}, led by the {} chamber, by {}", s(&p["class"]), s(&p["lead"]), s(&p["proposer"]));
    println!("  opened {}  closes {}", time(&p["openedAt"]), time(&p["closesAt"]));
    for action in p["actions"].as_array().into_iter().flatten() {
        let mut fields = action.as_object().cloned().unwrap_or_default();
        let name = fields.remove("action").map(|v| s(&v)).unwrap_or_default();
        if name == "elect-board" {
            println!("  action: elect-board, {} seats, candidates (rank them by number):", action["seats"]);
            print_candidates(action);
        } else {
            println!("  action: {name} {}", Value::Object(fields));
        }
    }
    match s(&p["status"]["state"]).as_str() {
        "open" => println!("  status: open; tally as of {} ({} votes)", time(&t["asOf"]), t["votes"]),
        _ => println!(
            "  status: decided by entry {}: {}",
            p["status"]["decision"],
            outcome_text(&p["status"]["outcome"])
        ),
    }
    chamber_line("contributor", &t["contributor"]);
    chamber_line("technical", &t["technical"]);
    if s(&p["status"]["state"]) == "open" {
        println!("  if it closed now: {}", outcome_text(&t["outcome"]));
    }
}

pub fn proposals(node: &str, open: bool) -> anyhow::Result<()> {
    let client = Client::new(node);
    let filter = if open { "open=true&" } else { "" };
    let mut after = String::new();
    let mut shown = 0;
    // A page at a time, as the node lists them.
    loop {
        let list: Value = client.get(&format!("/v1/proposals?{filter}limit=100{after}"))?.json()?;
        for view in list["proposals"].as_array().into_iter().flatten() {
            print_proposal(view);
            shown += 1;
        }
        match list["next"].as_u64() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    if shown == 0 {
        println!("no {}proposals", if open { "open " } else { "" });
    }
    Ok(())
}

pub fn proposal(node: &str, id: u64, json: bool) -> anyhow::Result<()> {
    let view: Value = Client::new(node).get(&format!("/v1/proposals/{id}"))?.json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    print_proposal(&view);
    for effect in view["effects"].as_array().into_iter().flatten() {
        let mut fields = effect.as_object().cloned().unwrap_or_default();
        match fields.remove("effect").map(|v| s(&v)).unwrap_or_default().as_str() {
            "skipped" => println!("  effect: SKIPPED {}: {}", s(&effect["action"]), s(&effect["reason"])),
            name => println!("  effect: {name} {}", Value::Object(fields)),
        }
    }
    for vote in view["votes"].as_array().into_iter().flatten() {
        let extra = if !vote["mixture"].is_null() {
            format!(" mixture {}", vote["mixture"])
        } else if !vote["ranking"].is_null() {
            format!(" ranking {}", vote["ranking"])
        } else {
            String::new()
        };
        println!("  vote: {} {}{extra}", s(&vote["voter"]), s(&vote["choice"]));
    }
    Ok(())
}

pub fn mixture(node: &str) -> anyhow::Result<()> {
    let m: Value = Client::new(node).get("/v1/mixture")?.json()?;
    let current = &m["current"];
    let registers: Vec<String> = m["registers"].as_array().into_iter().flatten().map(s).collect();
    if current.is_null() {
        println!("no mixture decided yet: a training run weighs every register equally");
    } else {
        println!(
            "mixture set by decision {} (proposal {}, {} ballots) at {}",
            current["decision"],
            current["proposal"],
            current["ballots"],
            time(&current["at"])
        );
    }
    let equal = 1.0 / registers.len().max(1) as f64;
    println!("  {:<16} {:>8}  {:>6} {:>6}  {:>8}", "register", "weight", "cap", "floor", "eligible");
    for register in &registers {
        let weight =
            current["weights"][register].as_f64().unwrap_or(if current.is_null() { equal } else { 0.0 });
        let bound = |v: &Value| v[register].as_f64().map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
        println!(
            "  {register:<16} {weight:>8.4}  {:>6} {:>6}  {:>8}",
            bound(&m["caps"]),
            bound(&m["floors"]),
            m["eligible"][register].as_u64().unwrap_or(0)
        );
    }
    Ok(())
}

pub fn dispute(command: DisputeCommand) -> anyhow::Result<()> {
    match command {
        DisputeCommand::Open { cid, ground, detail, register, key, node } => {
            let ground: Ground =
                named(&ground, "a ground", "wrong-register, doubtful-consent, spam or harm")?;
            let register = register.map(|r| Register::new(&r)).transpose()?;
            let receipt = send(
                &node.node,
                key.key.as_deref(),
                Event::Dispute(Dispute {
                    cid: Some(Cid::parse(&cid)?),
                    ground,
                    detail,
                    register,
                    requested: requested(),
                }),
            )?;
            println!(
                "dispute {} opened against {cid}; it stays out of training snapshots until ruled on",
                receipt.log_index
            );
            Ok(())
        }
        DisputeCommand::Rule { id, ruling, reason, key, node } => {
            let ruling = parse_ruling(&ruling)?;
            let receipt = send(
                &node.node,
                key.key.as_deref(),
                Event::DisputeRuling(DisputeRuling { dispute: id, ruling, reason, requested: requested() }),
            )?;
            logged(&format!("ruling signed on dispute {id}"), &receipt);
            let d: Value = Client::new(&node.node).get(&format!("/v1/disputes/{id}"))?.json()?;
            match s(&d["status"]["state"]).as_str() {
                "open" => println!("  not in force yet: more steward signatures are needed"),
                state => println!("  {state}: {}", d["status"]["ruling"]),
            }
            Ok(())
        }
        DisputeCommand::List { node } => {
            let list: Value = Client::new(&node.node).get("/v1/disputes")?.json()?;
            let disputes = list["disputes"].as_array().cloned().unwrap_or_default();
            if disputes.is_empty() {
                println!("no disputes");
            }
            for d in disputes {
                println!(
                    "dispute {} on {} ({}): {} — {}",
                    d["id"],
                    s(&d["cid"]),
                    s(&d["ground"]),
                    s(&d["status"]["state"]),
                    s(&d["detail"])
                );
            }
            Ok(())
        }
    }
}

pub fn credits(node: &str, key: Option<&Path>, who: Option<String>) -> anyhow::Result<()> {
    let who = match who {
        Some(who) => who,
        None => crate::keys::load(&crate::keys::path(key)?)?.0.did,
    };
    let c: Value = Client::new(node).get(&format!("/v1/credits/{}", segment(&who)))?.json()?;
    let f = |k: &str| c[k].as_f64().unwrap_or(0.0);
    println!("credits of {who}");
    println!("  balance:        {:.3} (after decay; half-life {} days)", f("balance"), c["halfLifeDays"]);
    println!("  earned:         {:.3} over {} grants", f("earned"), c["grants"]);
    println!(
        "  commons floor:  {:.3} inference credits today{}",
        f("floorToday"),
        if c["verified"].as_bool() == Some(true) { "" } else { " (only verified members have a floor)" }
    );
    println!("  stability pool: {:.3}", f("stabilityPool"));
    println!("credits are earned by rule and never move between holders: there is no transfer");
    Ok(())
}

/// The sha256 digests a workload pin names: a digest as it is, a file's digest, or the digest of
/// every file in a directory and its subdirectories, two levels down (an embedding model's
/// `config.json`, `model.safetensors`, `tokenizer.json` and `1_Pooling/config.json`).
fn model_digests(pin: &str) -> anyhow::Result<Vec<String>> {
    if pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(vec![pin.to_ascii_lowercase()]);
    }
    let path = std::path::Path::new(pin);
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        // Every file the loader may read, subdirectories too (a sentence-transformers model's
        // `1_Pooling/config.json` chooses its pooling).
        let mut files = Vec::new();
        let mut dirs = vec![(path.to_path_buf(), 0)];
        while let Some((dir, depth)) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)
                .with_context(|| format!("reading the model directory {}", dir.display()))?
            {
                let entry =
                    entry.with_context(|| format!("reading the model directory {}", dir.display()))?.path();
                if entry.is_file() {
                    files.push(entry);
                } else if entry.is_dir() && depth < 2 {
                    dirs.push((entry, depth + 1));
                }
            }
        }
        files.sort();
        files
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        anyhow::bail!(
            "--approve-workload pins '{pin}', which is neither a sha256 digest nor a model file or directory"
        )
    };
    files
        .iter()
        .map(|f| substrate_models::fetch::file_sha256(f).with_context(|| format!("hashing {}", f.display())))
        .collect()
}

/// The sha256 of this `substrate` binary: the workload program an approval pins by default, as
/// workers started from it run their jobs with it.
pub(crate) fn this_program_digest() -> anyhow::Result<String> {
    let path = std::env::current_exe().context("finding this program to pin it as the workload program")?;
    substrate_models::fetch::file_sha256(&path)
        .with_context(|| format!("hashing the workload program {}", path.display()))
}
