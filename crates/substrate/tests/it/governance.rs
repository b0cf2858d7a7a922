//! Governance end to end, through the `substrate` binary and a real node: membership, proposals
//! and votes, the sequencer's decisions, the mixture, disputes and removal, credits, the board's
//! election, and decisions that fall due while the node is down.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use substrate_core::event::Event;
use substrate_core::governance::acts::{Action, Decision, Proposal, VoteCast};
use substrate_core::governance::tally::{ChamberTally, Outcome, ProposalClass, Vote};
use substrate_core::identity::KeyFile;
use substrate_core::{Envelope, Register, SignedEvent};

use crate::util::{Commons, Http, Reply, envelope_json, fails, field, ok, path, sign_statement, statement};

/// The voting window of every commons founded here (constitutional proposals get twice it).
const WINDOW: &str = "3s";
/// How long the sequencer may take to decide a proposal after its window closes.
const DECISION_DEADLINE: Duration = Duration::from_secs(15);

/// A key file made by `substrate id new`, and the did:key it printed.
struct Person {
    file: PathBuf,
    did: String,
}

impl Person {
    fn new(dir: &Path, name: &str) -> Person {
        let file = dir.join(format!("{name}.json"));
        let (did, _) = ok(&["id", "new", "--key", path(&file)]);
        let did = did.trim().to_owned();
        assert!(did.starts_with("did:key:z6Mk"), "{did}");
        Person { file, did }
    }

    fn key(&self) -> &str {
        path(&self.file)
    }

    fn signing_key(&self) -> ed25519_dalek::SigningKey {
        let text = std::fs::read_to_string(&self.file).expect("read the key file");
        KeyFile::parse(&text).expect("a usable key file").1
    }

    /// Signs `event` with this person's key, as a client other than the CLI would.
    fn sign(&self, event: Event) -> Envelope {
        SignedEvent::sign(event, &self.signing_key()).envelope
    }

    /// `substrate ARGS --key ME --node NODE`, required to succeed; its stdout.
    fn run(&self, node: &str, args: &[&str]) -> String {
        ok(&self.args(node, args)).0
    }

    /// `substrate ARGS --key ME --node NODE`, required to fail; its stderr.
    fn refused(&self, node: &str, args: &[&str]) -> String {
        fails(&self.args(node, args))
    }

    fn args<'a>(&'a self, node: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend(["--key", self.key(), "--node", node]);
        all
    }

    /// Puts a proposal (`propose ARGS`); returns its id.
    fn propose(&self, node: &str, args: &[&str]) -> u64 {
        self.propose_saying(node, args).0
    }

    /// Puts a proposal (`propose ARGS`); returns its id and what the command printed.
    fn propose_saying(&self, node: &str, args: &[&str]) -> (u64, String) {
        let out = self.run(node, &[&["propose"], args].concat());
        let id = out
            .strip_prefix("proposal ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no proposal id in:\n{out}"));
        (id, out)
    }

    fn vote(&self, node: &str, id: u64, args: &[&str]) {
        let id = id.to_string();
        let out = self.run(node, &[&["vote", id.as_str()], args].concat());
        assert!(out.starts_with(&format!("vote on proposal {id}: logged at index ")), "{out}");
    }

    /// Attests `person` as a verified member (this person must be a steward).
    fn attest(&self, node: &str, person: &Person) {
        let out = self.run(node, &["member", "attest", &person.did, "--days", "30"]);
        assert!(out.starts_with(&format!("attested {}: logged at index ", person.did)), "{out}");
        assert_eq!(field(&out, "status:"), "verified", "{out}");
    }
}

/// Founds a commons whose first board is `stewards` (keys made here, in this order), with the
/// short voting window; not yet served.
fn found(name: &str, stewards: &[&str]) -> (Commons, Vec<Person>) {
    found_with_window(name, stewards, WINDOW)
}

fn found_with_window(name: &str, stewards: &[&str], window: &str) -> (Commons, Vec<Person>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let board: Vec<Person> = stewards.iter().map(|s| Person::new(tmp.path(), s)).collect();
    let data = tmp.path().join("data");
    let mut args = vec!["init", "--data-dir", path(&data), "--name", name, "--voting-window", window];
    for steward in &board {
        args.extend(["--steward", steward.did.as_str()]);
    }
    let (stdout, _) = ok(&args);
    let dids: Vec<&str> = board.iter().map(|s| s.did.as_str()).collect();
    assert_eq!(field(&stdout, "stewards:"), dids.join(", "), "{stdout}");
    let vkey = field(&stdout, "log key:");
    (Commons { tmp, data, vkey }, board)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after the epoch").as_millis() as u64
}

fn requested() -> String {
    substrate_core::timestamp::rfc3339(now_ms())
}

/// `substrate proposal ID --json`.
fn proposal(node: &str, id: u64) -> Value {
    let (out, _) = ok(&["proposal", &id.to_string(), "--json", "--node", node]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("proposal --json is not JSON ({e}):\n{out}"))
}

/// Polls `substrate proposal ID --json` until the sequencer has decided the proposal.
fn decided(node: &str, id: u64) -> Value {
    let deadline = Instant::now() + DECISION_DEADLINE;
    loop {
        let view = proposal(node, id);
        if view["proposal"]["status"]["state"] == "closed" {
            assert_eq!(view["tally"]["final"], true, "{view}");
            return view;
        }
        assert_eq!(view["proposal"]["status"]["state"], "open", "{view}");
        assert!(
            Instant::now() < deadline,
            "proposal {id} was not decided within {DECISION_DEADLINE:?}: {view}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The index of the decision entry that closed a decided proposal.
fn decision_index(view: &Value) -> u64 {
    view["proposal"]["status"]["decision"].as_u64().unwrap_or_else(|| panic!("no decision index: {view}"))
}

/// One log entry as the node lists it, with its statement's predicate decoded.
struct Logged {
    kind: String,
    signer: String,
    integrated_time: String,
    predicate: Value,
}

fn logged(http: &Http, index: u64) -> Logged {
    let page = http.get(&format!("/v1/log/entries?start={index}&limit=1")).json();
    let entry = &page["entries"][0];
    assert_eq!(entry["index"], index, "{page}");
    let payload = entry["envelope"]["payload"].as_str().unwrap_or_else(|| panic!("no payload: {entry}"));
    let statement: Value =
        serde_json::from_slice(&STANDARD.decode(payload).expect("base64 payload")).expect("statement JSON");
    Logged {
        kind: entry["kind"].as_str().unwrap_or_default().to_owned(),
        signer: entry["envelope"]["signatures"][0]["keyid"].as_str().unwrap_or_default().to_owned(),
        integrated_time: entry["integrated_time"].as_str().unwrap_or_default().to_owned(),
        predicate: statement["predicate"].clone(),
    }
}

fn log_did(http: &Http) -> String {
    http.get("/v1/commons").json()["log_did"].as_str().expect("log_did").to_owned()
}

fn post_event(http: &Http, envelope: &Envelope) -> Reply {
    http.post_json("/v1/events", &json!({ "envelope": envelope }))
}

/// Runs `attempt`, which must be refused, and checks that the log did not grow meanwhile.
fn refused_without_trace<T>(http: &Http, what: &str, attempt: impl FnOnce() -> T) -> T {
    let before = http.log_size();
    let refusal = attempt();
    assert_eq!(http.log_size(), before, "{what}: the log grew");
    refusal
}

fn assert_mentions(text: &str, words: &[&str]) {
    for word in words {
        assert!(text.contains(word), "expected {word:?} in:\n{text}");
    }
}

/// `substrate ledger replay --data-dir D`, required to succeed; its stdout.
fn replay(commons: &Commons) -> String {
    ok(&["ledger", "replay", "--data-dir", path(&commons.data)]).0
}

/// Deposits `text` as `who` through the CLI; returns its CID.
fn deposit(commons: &Commons, who: &Person, node: &str, name: &str, text: &str, register: &str) -> String {
    let file = commons.file(&format!("{name}.txt"));
    std::fs::write(&file, text).expect("write the text");
    let receipt = commons.file(&format!("{name}.receipt.json"));
    let out = who.run(
        node,
        &[
            "deposit",
            path(&file),
            "--register",
            register,
            "--consent",
            "public",
            "--title",
            name,
            "--lang",
            "en",
            "--license",
            "CC-BY-4.0",
            "--receipt",
            path(&receipt),
        ],
    );
    assert!(out.starts_with("deposited\n"), "{out}");
    field(&out, "cid:")
}

/// Active deposits per register that a training run may sample (not under dispute).
fn eligible(http: &Http, register: &str) -> u64 {
    let mixture = http.get("/v1/mixture").json();
    assert!(mixture["eligible"].is_object(), "{mixture}");
    mixture["eligible"][register].as_u64().unwrap_or(0)
}

#[test]
fn a_governance_round_changes_the_mixture() {
    let (commons, board) = found("mixture commons", &["steward"]);
    let steward = &board[0];
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let ada = Person::new(commons.tmp.path(), "ada");
    let bo = Person::new(commons.tmp.path(), "bo");
    steward.attest(node, &ada);
    steward.attest(node, &bo);

    let (members, _) = ok(&["member", "list", "--node", node]);
    assert!(members.starts_with("3 members\n"), "{members}");
    let steward_line = members.lines().find(|l| l.contains(&steward.did)).expect("the steward is listed");
    assert!(steward_line.contains("[steward]"), "{members}");
    assert_eq!(http.get("/v1/governance").json()["members"]["verified"], 3);

    let (before, _) = ok(&["mixture", "--node", node]);
    assert!(before.starts_with("no mixture decided yet"), "{before}");
    assert!(http.get("/v1/mixture").json()["current"].is_null());

    let (id, said) =
        ada.propose_saying(node, &["--title", "More oral texts", "--set-mixture", "narrative=0.5,oral=0.5"]);
    assert_mentions(
        &said,
        &[&format!("vote with: substrate vote {id} yes|no|abstain"), "--mixture REGISTER=WEIGHT"],
    );
    let open = proposal(node, id);
    assert_eq!(open["proposal"]["status"]["state"], "open", "{open}");
    assert_eq!(open["proposal"]["lead"], "contributor", "{open}");
    steward.vote(node, id, &["yes", "--mixture", "narrative=0.5,oral=0.3,conversational=0.2"]);
    ada.vote(node, id, &["yes", "--mixture", "narrative=0.6,oral=0.4"]);
    bo.vote(node, id, &["yes", "--mixture", "narrative=0.2,oral=0.2,conversational=0.6"]);
    // A second vote without a distribution keeps the first one's, and says so.
    let again = bo.run(node, &["vote", &id.to_string(), "yes"]);
    assert_mentions(&again, &["kept your earlier distribution", "conversational"]);
    let votes = proposal(node, id)["votes"].clone();
    let bo_vote =
        votes.as_array().into_iter().flatten().find(|v| v["voter"] == bo.did.as_str()).expect("bo's vote");
    assert_eq!(bo_vote["mixture"]["conversational"], 0.6, "{votes}");
    // The view can leave the votes out (the count stays) or list one voter's.
    let bare = http.get(&format!("/v1/proposals/{id}?votes=false")).json();
    assert!(bare.get("votes").is_none() && bare["tally"]["votes"] == 3, "{bare}");
    let bos = http.get(&format!("/v1/proposals/{id}?voter={}", bo.did)).json();
    assert_eq!(bos["votes"].as_array().map(Vec::len), Some(1), "{bos}");
    assert_eq!(bos["votes"][0]["voter"], bo.did.as_str(), "{bos}");

    let view = decided(node, id);
    assert_eq!(view["proposal"]["status"]["outcome"]["outcome"], "passed", "{view}");
    assert_eq!(view["tally"]["contributor"]["yes"], 3.0, "{view}");
    assert_eq!(view["tally"]["contributor"]["eligible"], 3.0, "{view}");
    assert_eq!(view["votes"].as_array().map(Vec::len), Some(3), "{view}");
    let decision = decision_index(&view);
    assert_eq!(decision, http.log_size() - 1, "the decision is the last entry");

    // The decision entry: the log key's, tallied as of the close, with the mixture it set.
    let entry = logged(&http, decision);
    assert_eq!(entry.kind, "decision");
    assert_eq!(entry.signer, log_did(&http));
    assert_eq!(entry.predicate["proposal"], id, "{}", entry.predicate);
    assert_eq!(entry.predicate["closedAt"], view["proposal"]["closesAt"], "{}", entry.predicate);
    assert_eq!(entry.predicate["effects"][0]["effect"], "mixture", "{}", entry.predicate);
    assert_eq!(entry.predicate["effects"][0]["ballots"], 3, "{}", entry.predicate);

    // Independent Markets with three voters: phantoms 0, t, 2t, 3t; at t* = 7/30 the medians are
    // narrative 2t, oral 0.3 and conversational t, summing to 1. (The plain medians, 0.5/0.3/0.2,
    // would differ.)
    let expected = [("narrative", 7.0 / 15.0), ("oral", 0.3), ("conversational", 7.0 / 30.0)];
    let mixture = http.get("/v1/mixture").json();
    let current = &mixture["current"];
    assert_eq!(current["decision"], decision, "{mixture}");
    assert_eq!(current["proposal"], id, "{mixture}");
    assert_eq!(current["ballots"], 3, "{mixture}");
    let weights = current["weights"].as_object().unwrap_or_else(|| panic!("no weights: {mixture}"));
    let registers = mixture["registers"].as_array().expect("registers");
    assert_eq!(weights.len(), registers.len(), "one weight per register: {mixture}");
    let sum: f64 = weights.values().map(|w| w.as_f64().expect("a number")).sum();
    assert!((sum - 1.0).abs() < 1e-9, "the weights sum to {sum}: {mixture}");
    for (name, weight) in weights {
        let want = expected.iter().find(|(r, _)| r == name).map_or(0.0, |(_, w)| *w);
        let got = weight.as_f64().expect("a number");
        assert!((got - want).abs() < 1e-9, "{name}: {got}, expected {want}: {mixture}");
    }
    assert_eq!(http.get("/v1/governance").json()["mixture"], *current);

    let (shown, _) = ok(&["mixture", "--node", node]);
    assert!(
        shown.starts_with(&format!("mixture set by decision {decision} (proposal {id}, 3 ballots)")),
        "{shown}"
    );
    for (register, weight) in [("narrative", "0.4667"), ("oral", "0.3000"), ("conversational", "0.2333")] {
        let line = shown.lines().find(|l| l.trim_start().starts_with(register)).expect("a line per register");
        assert_eq!(line.split_whitespace().nth(1), Some(weight), "{shown}");
    }
    let (listed, _) = ok(&["proposal", &id.to_string(), "--node", node]);
    assert!(listed.contains(&format!("status: decided by entry {decision}: passed")), "{listed}");

    // Replay recomputes the decision from the log, while serving and after a clean stop.
    let entries = http.log_size();
    let out = replay(&commons);
    assert!(out.starts_with(&format!("replay ok: {entries} entries")), "{out}");
    assert!(out.contains("1 decisions recomputed from the log"), "{out}");
    daemon.stop();
    let out = replay(&commons);
    assert!(out.starts_with(&format!("replay ok: {entries} entries")), "{out}");
    assert!(out.contains("1 decisions recomputed from the log"), "{out}");
    assert!(out.contains("materialised tables match the fold"), "{out}");
}

#[test]
fn bad_governance_input_is_refused_with_a_reason_and_changes_nothing() {
    let (commons, board) = found("refusing commons", &["steward"]);
    let steward = &board[0];
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let ada = Person::new(commons.tmp.path(), "ada");
    let mallory = Person::new(commons.tmp.path(), "mallory");
    let outsider = Person::new(commons.tmp.path(), "outsider");
    steward.attest(node, &ada);

    // Only stewards attest (vouching is off by default).
    let err = refused_without_trace(&http, "attestation by a member", || {
        ada.refused(node, &["member", "attest", &outsider.did])
    });
    assert_mentions(&err, &["403 not_steward", &ada.did, "not a steward"]);
    let err = refused_without_trace(&http, "attestation by a stranger", || {
        mallory.refused(node, &["member", "attest", &outsider.did])
    });
    assert_mentions(&err, &["403 not_steward", &mallory.did]);
    http.get(&format!("/v1/members/{}", crate::util::segment(&outsider.did))).error(404, "not_found");

    // A proposal with an action that does not exist.
    let valid = Proposal {
        title: "Let credits move".into(),
        summary: None,
        class: ProposalClass::Ordinary,
        actions: vec![Action::ApproveWorkload {
            kind: "embed".into(),
            version: "1".into(),
            models: Vec::new(),
        }],
        requested: requested(),
    };
    let mut unknown = statement(&Event::Proposal(valid));
    unknown["predicate"]["actions"][0] =
        json!({"action": "transfer-credits", "to": mallory.did, "amount": 10});
    let reply = refused_without_trace(&http, "unknown action", || {
        post_event(&http, &sign_statement(&unknown, &ada.signing_key()))
    });
    let detail = reply.error(400, "invalid_event");
    assert_mentions(&detail, &["proposal", "unknown variant", "transfer-credits", "set-mixture"]);
    assert!(http.get("/v1/proposals").json()["proposals"].as_array().is_some_and(Vec::is_empty));

    let id = ada.propose(node, &["--title", "Mostly narrative", "--set-mixture", "narrative=0.7,oral=0.3"]);
    let closes_at = proposal(node, id)["proposal"]["closesAt"].as_u64().expect("closesAt");

    // Decisions are the sequencer's: a member's decision is refused, even a plausible one.
    let forged_decision = Decision {
        proposal: id,
        closed_at: closes_at,
        contributor: ChamberTally { yes: 2.0, no: 0.0, abstain: 0.0, eligible: 2.0 },
        technical: ChamberTally::default(),
        outcome: Outcome::Passed,
        effects: Vec::new(),
    };
    let reply = refused_without_trace(&http, "a member's decision", || {
        post_event(&http, &ada.sign(Event::Decision(forged_decision)))
    });
    assert_mentions(&reply.error(400, "decision_by_sequencer"), &["decisions are the sequencer's"]);

    // A vote by someone who is not a member.
    let err = refused_without_trace(&http, "a stranger's vote", || {
        mallory.refused(node, &["vote", &id.to_string(), "yes"])
    });
    assert_mentions(&err, &["403 not_member", &mallory.did, "not a verified member"]);

    // A ballot that is no distribution never leaves the client.
    let err = refused_without_trace(&http, "a ballot summing to 0.9", || {
        ada.refused(node, &["vote", &id.to_string(), "yes", "--mixture", "narrative=0.5,oral=0.4"])
    });
    assert_mentions(&err, &["--mixture", "sum"]);

    // A ballot naming a register the commons does not have, sent past the client.
    let poetry = VoteCast {
        proposal: id,
        choice: Vote::Yes,
        mixture: Some([(Register::new("poetry").expect("a register name"), 1.0)].into_iter().collect()),
        ranking: None,
        requested: requested(),
    };
    let reply = refused_without_trace(&http, "unknown register", || {
        post_event(&http, &ada.sign(Event::Vote(poetry)))
    });
    assert_mentions(&reply.error(400, "malformed_ballot"), &["poetry", "not in the vocabulary", "narrative"]);

    // A valid vote whose signature was tampered with.
    let honest =
        VoteCast { proposal: id, choice: Vote::Yes, mixture: None, ranking: None, requested: requested() };
    let mut forged = envelope_json(&ada.sign(Event::Vote(honest)));
    let sig = forged["signatures"][0]["sig"].as_str().expect("sig").to_owned();
    let mut bytes = STANDARD.decode(sig).expect("base64 sig");
    bytes[10] ^= 0x01;
    forged["signatures"][0]["sig"] = json!(STANDARD.encode(bytes));
    let reply = refused_without_trace(&http, "forged signature", || {
        http.post_json("/v1/events", &json!({ "envelope": forged }))
    });
    assert_mentions(&reply.error(400, "bad_signature"), &["does not verify", &ada.did]);
    assert!(proposal(node, id)["votes"].as_array().is_some_and(Vec::is_empty), "no vote counted yet");

    // A second vote replaces the first.
    ada.vote(node, id, &["yes"]);
    ada.vote(node, id, &["no"]);
    let view = proposal(node, id);
    let votes = view["votes"].as_array().expect("votes");
    assert_eq!(votes.len(), 1, "{view}");
    assert_eq!(votes[0]["voter"], ada.did.as_str());
    assert_eq!(votes[0]["choice"], "no");
    assert_eq!(view["tally"]["contributor"]["yes"], 0.0, "{view}");
    assert_eq!(view["tally"]["contributor"]["no"], 1.0, "{view}");

    // After the close: the proposal was rejected (a value, not an error), and voting is over.
    let view = decided(node, id);
    assert_eq!(view["proposal"]["status"]["outcome"]["outcome"], "rejected", "{view}");
    assert!(http.get("/v1/mixture").json()["current"].is_null(), "a rejected mixture changes nothing");
    let err = refused_without_trace(&http, "a late vote", || {
        steward.refused(node, &["vote", &id.to_string(), "yes"])
    });
    assert_mentions(&err, &["409 voting_closed", &format!("proposal {id} closed")]);
    let err = refused_without_trace(&http, "a vote on no proposal", || {
        steward.refused(node, &["vote", "9999", "yes"])
    });
    assert_mentions(&err, &["404 unknown_proposal", "9999"]);

    let out = replay(&commons);
    assert!(out.contains("1 decisions recomputed from the log"), "{out}");
}

#[test]
fn disputes_rulings_and_removal() {
    let (commons, board) = found("dispute commons", &["first-steward", "second-steward"]);
    let (first, second) = (&board[0], &board[1]);
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let ada = Person::new(commons.tmp.path(), "ada");
    first.attest(node, &ada);
    let cid = deposit(
        &commons,
        &ada,
        node,
        "harbour",
        "Told at the harbour: the sea keeps what it takes.\n",
        "narrative",
    );
    assert_eq!(eligible(&http, "narrative"), 1);
    assert_eq!(eligible(&http, "oral"), 0);

    let out = ada.run(
        node,
        &[
            "dispute",
            "open",
            &cid,
            "--ground",
            "wrong-register",
            "--detail",
            "an oral telling",
            "--register",
            "oral",
        ],
    );
    let dispute: u64 = out
        .strip_prefix("dispute ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no dispute id in:\n{out}"));
    assert!(out.contains(&format!("opened against {cid}")), "{out}");
    assert_eq!(eligible(&http, "narrative"), 0, "a disputed deposit is out of training snapshots");
    let record = http.get(&format!("/v1/disputes/{dispute}")).json();
    assert_eq!(record["status"]["state"], "open", "{record}");
    assert_eq!(record["openedBy"], ada.did.as_str(), "{record}");

    // Only the board rules.
    let err = refused_without_trace(&http, "a member's ruling", || {
        ada.refused(node, &["dispute", "rule", &dispute.to_string(), "--ruling", "relabel:oral"])
    });
    assert_mentions(&err, &["403 not_steward", &ada.did]);

    // The board is two stewards; a ruling needs both.
    let out = first.run(node, &["dispute", "rule", &dispute.to_string(), "--ruling", "relabel:oral"]);
    assert!(out.contains("not in force yet"), "{out}");
    let record = http.get(&format!("/v1/disputes/{dispute}")).json();
    assert_eq!(record["status"]["state"], "open", "{record}");
    assert_eq!(record["endorsements"][0]["signers"], json!([first.did]), "{record}");
    let (shown, _) = ok(&["show", &cid, "--node", node]);
    assert_eq!(field(&shown, "register:"), "narrative", "{shown}");
    assert_eq!(eligible(&http, "narrative"), 0);

    let out = second.run(node, &["dispute", "rule", &dispute.to_string(), "--ruling", "relabel:oral"]);
    assert!(out.contains("ruled:"), "{out}");
    let record = http.get(&format!("/v1/disputes/{dispute}")).json();
    assert_eq!(record["status"]["state"], "ruled", "{record}");
    assert_eq!(record["status"]["ruling"], json!({"ruling": "relabel", "register": "oral"}), "{record}");
    assert_eq!(record["status"]["signers"], json!([first.did, second.did]), "{record}");
    let (shown, _) = ok(&["show", &cid, "--node", node]);
    assert_eq!(field(&shown, "register:"), "oral", "{shown}");
    assert_eq!(field(&shown, "status:"), "active", "{shown}");
    assert_eq!(http.get(&format!("/v1/deposits/{cid}")).json()["deposit"]["register"], "oral");
    assert_eq!(eligible(&http, "oral"), 1, "the relabelled deposit is back in snapshots");
    assert_eq!(eligible(&http, "narrative"), 0);
    let (list, _) = ok(&["dispute", "list", "--node", node]);
    assert!(list.contains(&format!("dispute {dispute} on {cid} (wrong-register): ruled")), "{list}");
    let err = refused_without_trace(&http, "a second ruling", || {
        first.refused(node, &["dispute", "rule", &dispute.to_string(), "--ruling", "dismiss"])
    });
    assert_mentions(&err, &["already ruled on", "resolve-dispute"]);

    // The chambers remove the deposit.
    let id =
        ada.propose(node, &["--title", "Remove the harbour text", "--remove", &cid, "--reason", "duplicate"]);
    for voter in [first, second, &ada] {
        voter.vote(node, id, &["yes"]);
    }
    let view = decided(node, id);
    assert_eq!(view["proposal"]["status"]["outcome"]["outcome"], "passed", "{view}");
    let decision = decision_index(&view);
    let entry = logged(&http, decision);
    assert_eq!(entry.predicate["effects"], json!([{"effect": "removed", "cid": cid}]), "{}", entry.predicate);

    let detail = http.get(&format!("/v1/deposits/{cid}/content")).error(410, "removed");
    assert_mentions(&detail, &[&cid, "removed by the commons", &format!("log index {decision}")]);
    let (shown, _) = ok(&["show", &cid, "--node", node]);
    assert!(
        field(&shown, "status:").starts_with(&format!("removed by the commons at entry {decision}")),
        "{shown}"
    );
    assert_eq!(http.get(&format!("/v1/deposits/{cid}")).json()["deposit"]["status"]["state"], "removed");
    assert_eq!(eligible(&http, "oral"), 0);

    daemon.stop();
    let out = replay(&commons);
    assert!(out.contains("1 deposits (0 withdrawn, 1 removed)"), "{out}");
    assert!(out.contains("1 decisions recomputed from the log"), "{out}");
}

#[test]
fn credits_are_earned_and_never_transferable() {
    let commons = Commons::init("credits commons");
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let ada = Person::new(commons.tmp.path(), "ada");
    let bo = Person::new(commons.tmp.path(), "bo");
    deposit(&commons, &ada, node, "bread", "The dough rests overnight under a damp cloth.\n", "pedagogical");

    let (out, _) = ok(&["credits", &ada.did, "--node", node]);
    assert_eq!(out.lines().next(), Some(format!("credits of {}", ada.did).as_str()), "{out}");
    assert!(field(&out, "balance:").starts_with("9.000 "), "10 less the 10% stability share:\n{out}");
    assert!(field(&out, "earned:").starts_with("9.000 over 1 grants"), "{out}");
    assert_eq!(field(&out, "stability pool:"), "1.000", "{out}");
    assert!(out.contains("there is no transfer"), "{out}");
    let own = ada.run(node, &["credits"]);
    assert_eq!(own, out, "credits default to the key's own did");

    let credits = http.get(&format!("/v1/credits/{}", crate::util::segment(&ada.did))).json();
    assert_eq!(credits["balance"], 9.0, "{credits}");
    assert_eq!(credits["earned"], 9.0, "{credits}");
    assert_eq!(credits["grants"], 1, "{credits}");
    assert_eq!(credits["stabilityPool"], 1.0, "{credits}");
    let nobody = http.get(&format!("/v1/credits/{}", crate::util::segment(&bo.did))).json();
    assert_eq!(nobody["balance"], 0.0, "{nobody}");
    let all = http.get("/v1/credits").json();
    let mut holders: Vec<(String, f64)> = all["credits"]
        .as_array()
        .expect("credits")
        .iter()
        .map(|c| (c["holder"].as_str().expect("holder").to_owned(), c["balance"].as_f64().expect("balance")))
        .collect();
    holders.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![(ada.did.clone(), 9.0), ("stability-pool".to_owned(), 1.0)];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(holders, want, "{all}");

    // Nothing in the API moves credits.
    let doc = http.get("/v1/openapi.json").json();
    let paths = doc["paths"].as_object().expect("paths");
    let mut writes = Vec::new();
    for (route, operations) in paths {
        assert!(!route.to_lowercase().contains("transfer"), "{route}");
        for (method, operation) in operations.as_object().expect("operations") {
            for key in ["operationId", "summary"] {
                let text = operation[key].as_str().unwrap_or_default().to_lowercase();
                let moves = text
                    .split(|c: char| !c.is_ascii_alphabetic())
                    .any(|word| word.starts_with("transfer") && word != "transferable");
                assert!(!moves, "{method} {route} {key}: {text}");
            }
            if method != "get" {
                writes.push(format!("{method} {route}"));
            }
        }
    }
    writes.sort();
    // The registry's uploads store the files of adapters the log already holds, and the
    // inference routes answer from the models without writing to the record; nothing else writes.
    assert_eq!(
        writes,
        [
            "post /api/chat",
            "post /api/embed",
            "post /api/generate",
            "post /api/show",
            "post /v1/chat/completions",
            "post /v1/completions",
            "post /v1/deposits",
            "post /v1/embeddings",
            "post /v1/events",
            "put /v1/adapters/{id}/files/{name}"
        ]
    );
    let reply =
        http.post_json(&format!("/v1/credits/{}", crate::util::segment(&ada.did)), &json!({"to": bo.did}));
    assert_eq!(reply.status, 405, "{}", reply.body);

    // There is no transfer event either.
    let vote =
        VoteCast { proposal: 1, choice: Vote::Yes, mixture: None, ranking: None, requested: requested() };
    let mut transfer = statement(&Event::Vote(vote));
    transfer["predicateType"] = json!("https://substrate.commons/predicate/transfer/v1");
    transfer["predicate"] = json!({"to": bo.did, "amount": 5, "requested": requested()});
    let reply = refused_without_trace(&http, "a transfer event", || {
        post_event(&http, &sign_statement(&transfer, &ada.signing_key()))
    });
    let detail = reply.error(400, "unknown_event");
    let kinds = detail.split("the known kinds are").nth(1).unwrap_or_else(|| panic!("no kinds in: {detail}"));
    assert!(!kinds.contains("transfer"), "{detail}");
    assert_eq!(http.get(&format!("/v1/credits/{}", crate::util::segment(&bo.did))).json()["balance"], 0.0);

    // Nor on the command line.
    let (help, _) = ok(&["--help"]);
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("a Commands section")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(commands.contains(&"credits"), "{help}");
    assert!(commands.iter().all(|c| !c.contains("transfer")), "{commands:?}");
    let err = fails(&["transfer", &bo.did, "5"]);
    assert!(err.contains("unrecognized subcommand 'transfer'"), "{err}");
}

#[test]
fn credits_of_something_that_is_no_did_are_refused() {
    let commons = Commons::init("credits typo commons");
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let reply = http.get("/v1/credits/transfer");
    assert!(matches!(reply.status, 400 | 404), "{reply:?}");
    assert_mentions(reply.json()["detail"].as_str().unwrap_or_default(), &["did:key"]);
    let err = fails(&["credits", "transfer", "--node", node]);
    assert_mentions(&err, &["transfer", "did:key"]);
    assert_eq!(http.get("/v1/credits/stability-pool").status, 200, "the pool is a holder too");
}

#[test]
fn the_board_is_elected_by_stv() {
    let (commons, board) = found("election commons", &["founder"]);
    let founder = &board[0];
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let people: Vec<Person> =
        ["ada", "bo", "cy", "dee", "eve", "fay"].iter().map(|n| Person::new(commons.tmp.path(), n)).collect();
    for person in &people {
        founder.attest(node, person);
    }
    let [ada, bo, cy, dee, eve, fay] = &people[..] else { unreachable!() };
    let (a, b, c) = (ada.did.as_str(), bo.did.as_str(), cy.did.as_str());

    let (id, said) = dee.propose_saying(
        node,
        &[
            "--title",
            "Elect the board",
            "--elect-board",
            "2",
            "--candidate",
            a,
            "--candidate",
            b,
            "--candidate",
            c,
        ],
    );
    // The proposer is told how to rank, and `proposal` numbers the candidates the same way.
    let numbered = [format!(" 1. {a}"), format!(" 2. {b}"), format!(" 3. {c}")];
    let numbered: Vec<&str> = numbered.iter().map(String::as_str).collect();
    assert_mentions(&said, &[&["--rank"], &numbered[..]].concat());
    let (shown, _) = ok(&["proposal", &id.to_string(), "--node", node]);
    assert_mentions(&shown, &numbered);
    let ballot = id.to_string();

    // A rank is a candidate's number, its did:key, or a unique prefix of it; what is none of
    // them is refused before anything is signed.
    let err = ada.refused(node, &["vote", &ballot, "yes", "--rank", "4"]);
    assert_mentions(&err, &["--rank 4", "candidates 1 to 3", numbered[2]]);
    let err = ada.refused(node, &["vote", &ballot, "yes", "--rank", "z6Mk"]);
    assert_mentions(&err, &["'z6Mk' is the start of 3 candidates' keys"]);
    assert!(proposal(node, id)["votes"].as_array().is_some_and(Vec::is_empty));

    // Seven ballots: four rank A then C, two rank only B, one ranks only C. The quota is 7/3.
    // A is elected with 4 and passes 4 − 7/3 = 5/3 on to C, who reaches 8/3 and beats B's 2.
    // (Plurality would have chosen A and B.)
    for voter in [ada, dee, eve] {
        voter.vote(node, id, &["yes", "--rank", "1,3"]);
    }
    let prefixes = format!("{},{}", &a[..40], &c["did:key:".len()..40]);
    fay.vote(node, id, &["no", "--rank", &prefixes]);
    // A second vote without a ranking keeps the first one's.
    let again = fay.run(node, &["vote", &ballot, "yes"]);
    assert_mentions(&again, &["kept your earlier ranking"]);
    for voter in [founder, bo] {
        voter.vote(node, id, &["yes", "--rank", b]);
    }
    cy.vote(node, id, &["yes", "--rank", c]);
    let votes = proposal(node, id)["votes"].clone();
    let fay_vote =
        votes.as_array().into_iter().flatten().find(|v| v["voter"] == fay.did.as_str()).expect("fay's vote");
    assert_eq!(fay_vote["ranking"], json!([a, c]), "{votes}");
    assert_eq!(fay_vote["choice"], "yes", "{votes}");

    let view = decided(node, id);
    assert_eq!(view["proposal"]["status"]["outcome"]["outcome"], "passed", "{view}");
    let decision = decision_index(&view);
    let entry = logged(&http, decision);
    assert_eq!(entry.predicate["effects"], json!([{"effect": "board", "members": [a, c], "ballots": 7}]));

    let governance = http.get("/v1/governance").json();
    assert_eq!(governance["board"]["members"], json!([a, c]), "{governance}");
    assert_eq!(governance["board"]["electedBy"], decision, "{governance}");
    let (members, _) = ok(&["member", "list", "--node", node]);
    for line in members.lines().skip(1) {
        let steward = line.contains(a) || line.contains(c);
        assert_eq!(line.contains("[steward]"), steward, "{members}");
    }

    // The new board holds the board's powers; the founder no longer does.
    let newcomer = Person::new(commons.tmp.path(), "newcomer");
    let err = refused_without_trace(&http, "the former steward's attestation", || {
        founder.refused(node, &["member", "attest", &newcomer.did])
    });
    assert_mentions(&err, &["403 not_steward", &founder.did]);
    cy.attest(node, &newcomer);

    daemon.stop();
    let out = replay(&commons);
    assert!(out.contains("1 decisions recomputed from the log"), "{out}");
}

#[test]
fn a_candidate_revoked_before_the_close_is_not_elected() {
    let (commons, board) = found("revoked candidate commons", &["founder"]);
    let founder = &board[0];
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let people: Vec<Person> =
        ["ada", "bo", "cy"].iter().map(|n| Person::new(commons.tmp.path(), n)).collect();
    for person in &people {
        founder.attest(node, person);
    }
    let [ada, bo, cy] = &people[..] else { unreachable!() };
    let (a, b) = (ada.did.as_str(), bo.did.as_str());
    let id = cy
        .propose(node, &["--title", "One steward", "--elect-board", "1", "--candidate", a, "--candidate", b]);
    let a_then_b = format!("{a},{b}");
    for voter in [founder, ada, bo, cy] {
        voter.vote(node, id, &["yes", "--rank", &a_then_b]);
    }
    founder
        .run(node, &["member", "revoke", a, "--reason", "the same person as another member", "--duplicate"]);
    assert_eq!(
        http.get(&format!("/v1/members/{}", crate::util::segment(a))).json()["status"]["state"],
        "revoked"
    );

    let view = decided(node, id);
    assert_eq!(view["proposal"]["status"]["outcome"]["outcome"], "passed", "{view}");
    let governance = http.get("/v1/governance").json();
    assert_eq!(
        governance["board"]["members"],
        json!([b]),
        "a revoked person must not take a seat: {governance}"
    );
    // The board can still act.
    let newcomer = Person::new(commons.tmp.path(), "newcomer");
    bo.attest(node, &newcomer);
}

#[test]
fn decisions_survive_a_restart() {
    let (commons, board) = found("restart commons", &["steward"]);
    let steward = &board[0];
    let daemon = commons.start();
    let node = daemon.url.clone();
    let ada = Person::new(commons.tmp.path(), "ada");
    steward.attest(&node, &ada);

    // Two proposals: one both members want, one they split on (a tie keeps the status quo).
    let cap =
        ada.propose(&node, &["--title", "No sacred texts in training", "--set", "mixture.cap.sacred=0"]);
    let floor = ada.propose(&node, &["--title", "Keep some oral texts", "--set", "mixture.floor.oral=0.1"]);
    steward.vote(&node, cap, &["yes"]);
    ada.vote(&node, cap, &["yes"]);
    steward.vote(&node, floor, &["no"]);
    ada.vote(&node, floor, &["yes"]);
    let closes = |id: u64| proposal(&node, id)["proposal"]["closesAt"].as_u64().expect("closesAt");
    let (cap_closes, floor_closes) = (closes(cap), closes(floor));
    let size = daemon.http().log_size();
    daemon.kill();

    let out = replay(&commons);
    assert!(out.starts_with(&format!("replay ok: {size} entries")), "{out}");
    assert!(out.contains("0 decisions recomputed"), "nothing was decided before the kill: {out}");

    // Stay down past both closes.
    let past = floor_closes.max(cap_closes) + 500;
    std::thread::sleep(Duration::from_millis(past.saturating_sub(now_ms())));

    let restarted = substrate_core::timestamp::rfc3339(now_ms());
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let cap_view = decided(node, cap);
    let floor_view = decided(node, floor);
    assert_eq!(cap_view["proposal"]["status"]["outcome"]["outcome"], "passed", "{cap_view}");
    assert_eq!(floor_view["proposal"]["status"]["outcome"]["outcome"], "rejected", "{floor_view}");
    assert_eq!(decision_index(&cap_view), size, "the first proposal to close is decided first");
    assert_eq!(decision_index(&floor_view), size + 1);
    for (view, closes_at) in [(&cap_view, cap_closes), (&floor_view, floor_closes)] {
        let entry = logged(&http, decision_index(view));
        assert_eq!(entry.kind, "decision");
        assert_eq!(entry.signer, log_did(&http));
        assert_eq!(entry.predicate["closedAt"], closes_at, "tallied as of the close: {}", entry.predicate);
        assert!(
            entry.integrated_time >= restarted,
            "decided after the restart: {} ({})",
            entry.integrated_time,
            entry.predicate
        );
    }
    let parameters = &http.get("/v1/governance").json()["parameters"];
    assert_eq!(parameters["mixtureCaps"], json!({"sacred": 0.0}), "{parameters}");
    assert_eq!(parameters["mixtureFloors"], json!({}), "{parameters}");
    let (mixture, _) = ok(&["mixture", "--node", node]);
    let sacred = mixture.lines().find(|l| l.trim_start().starts_with("sacred")).expect("sacred line");
    assert_eq!(sacred.split_whitespace().nth(2), Some("0.000"), "{mixture}");

    daemon.stop();
    let out = replay(&commons);
    assert!(out.starts_with(&format!("replay ok: {} entries", size + 2)), "{out}");
    assert!(out.contains("2 decisions recomputed from the log"), "{out}");
}

#[test]
fn proposals_are_listed_a_page_at_a_time() {
    let (commons, board) = found("pages", &["ada"]);
    let ada = &board[0];
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let ids: Vec<u64> = ["first", "second", "third"]
        .iter()
        .map(|title| ada.propose(node, &["--title", title, "--set-mixture", "narrative=0.6,oral=0.4"]))
        .collect();
    let page = |query: &str| http.get(&format!("/v1/proposals?{query}")).json();
    let listed = |page: &Value| -> Vec<u64> {
        page["proposals"]
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|v| v["proposal"]["id"].as_u64())
            .collect()
    };
    let first = page("open=true&limit=2");
    assert_eq!(listed(&first), ids[..2], "{first}");
    assert_eq!(first["next"].as_u64(), Some(ids[1]), "{first}");
    let second = page(&format!("open=true&limit=2&after={}", ids[1]));
    assert_eq!(listed(&second), ids[2..], "{second}");
    assert!(second["next"].is_null(), "{second}");
    assert_eq!(listed(&page("")), ids, "one default page holds them all");
    http.get("/v1/proposals?limit=0").error(400, "bad_request");
    http.get("/v1/proposals?limit=1001").error(400, "bad_request");
    // The command line follows the pages.
    let (out, _) = ok(&["proposals", "--open", "--node", node]);
    for title in ["first", "second", "third"] {
        assert!(out.contains(title), "{out}");
    }
}

#[test]
fn a_node_is_registered_without_its_private_key_leaving_its_machine() {
    let (commons, board) = found("two machines", &["ada"]);
    let ada = &board[0];
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let other = Person::new(commons.tmp.path(), "bob");
    ada.attest(node, &other);
    // On the node's machine: its key, and its half of the registration for ada.
    let node_key = commons.tmp.path().join("node.key");
    ok(&["id", "new", "--kind", "node", "--key", path(&node_key)]);
    let (half, how) =
        ok(&["node-bind", "--node-key", path(&node_key), "--operator", &ada.did, "--node", node]);
    let (node_did, binding) = (field(&half, "node:"), field(&half, "binding:"));
    assert!(node_did.starts_with("did:key:z6Mk") && how.contains("node-register --node-did"), "{half}{how}");

    // A binding made out to ada is not bob's to use.
    let refused = other.refused(node, &["node-register", "--node-did", &node_did, "--binding", &binding]);
    assert!(refused.contains("node_binding"), "{refused}");
    // Nor one of a node whose key did not sign it.
    let stranger = commons.tmp.path().join("stranger.key");
    let (stranger_did, _) = ok(&["id", "new", "--kind", "node", "--key", path(&stranger)]);
    let refused =
        ada.refused(node, &["node-register", "--node-did", stranger_did.trim(), "--binding", &binding]);
    assert!(refused.contains("node_binding"), "{refused}");
    // On ada's machine, with nothing of the node's but its did and its binding.
    let out = ada.run(node, &["node-register", "--node-did", &node_did, "--binding", &binding]);
    assert!(out.starts_with(&format!("node {node_did} registered to {}", ada.did)), "{out}");
    // Half a registration is refused before anything is sent.
    let err = fails(&["node-register", "--node-did", &node_did, "--key", ada.key(), "--node", node]);
    assert!(err.contains("--binding"), "{err}");
}

mod voters;
