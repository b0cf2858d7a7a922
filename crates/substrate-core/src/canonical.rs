//! The canonical encoding of state changes, versions 2 to 4: the bytes the state root hashes. It is
//! written by hand, field by field, so that no rename, attribute or library upgrade can change a
//! root; the API's JSON and the SQLite rows are other encodings of the same records.
//!
//! The rules (ARCHITECTURE.md states them for reimplementers):
//! - unsigned integers are big-endian of their declared width (u8, u32, u64); a bool is one byte,
//!   0 or 1; an f64 is its IEEE 754 binary64 bit pattern, big-endian;
//! - a string is its UTF-8 length as a u32, then its bytes; a CID, a register, a did:key and a
//!   consent tier are their text forms;
//! - an option is the byte 0, or the byte 1 and the value; a sequence is its length as a u32,
//!   then each item; a map is its length as a u32, then each key and value in key order;
//! - an enum is its variant's name as a string (the kebab-case name the API also shows), then its
//!   fields; a struct is its fields in the order of [`Canonical`]'s implementations below, without
//!   names;
//! - a JSON value (a parameter's new value) is one tag byte and its content: `n` null, `f`/`t`
//!   false/true, `u` a u64, `i` an i64 (negative), `d` an f64, `s` a string, `a` a sequence, `o` a
//!   map of string keys in byte order;
//! - a field a later version added is written only under that version and after: version 4 adds
//!   the commons floor a member drew today to their credits, and to a job the part of its
//!   reservation drawn from it and the recheck a caught node's earlier output waits for.
//! - records that came later still are named apart: parameters with a price of inference other
//!   than the default are `parameters/inference` (the parameters, then the check rate as a u32
//!   and the price as a u64); a node's usage record is `usage` (node, seq, entry, reports,
//!   requests, tokens, charged and unpaid, each a u64 after the node's string); a deposit's DOI
//!   record is `doi` (CID, DOI, registrar and steward as strings, then entry and time as u64).
//!
//! One entry's changes are a sequence of changes, each a tag (`commons`, `deposit`, or the
//! record's kind) and the record. The state root after entry `index` is
//! `SHA-256("substrate/state/v<version>\n" ‖ root before ‖ index as u64 ‖ encoded changes)`,
//! starting from 32 zero bytes.
//!
//! Versions 2, 3 and 4 write the same bytes; they differ in the arithmetic decisions are computed
//! in ([`crate::governance::number`]): versions 3 and 4 decide in fixed point, version 2 in `f64`;
//! and version 4 folds jobs by later rules (an offer lapses unless its worker renews it; every
//! result of a node that failed its checks is re-executed until its reputation recovers: see
//! [`crate::governance::jobs`]).

use std::collections::BTreeMap;

use crate::governance::acts::{Action, Ground, Ruling};
use crate::governance::book::{
    AdapterRecord, Board, ComputeGrant, Credits, DisputeRecord, DisputeStatus, Endorsement, Member,
    MemberStatus, MixtureRecord, NodeRecord, ProposalRecord, ProposalStatus, Record, VoteRecord,
    WorkloadRecord,
};
use crate::governance::doi::DoiRecord;
use crate::governance::jobs::{
    JobDispute, JobInput, JobOutput, JobRecord, JobStatus, OfferRecord, Reputation, Role, Run, Verdict,
};
use crate::governance::params::{ChamberThresholds, CreditRates, Parameters, Thresholds, Windows};
use crate::governance::tally::{Chamber, ChamberTally, Outcome, ProposalClass, Threshold, Vote};
use crate::governance::tokens::TokenRecord;
use crate::governance::usage::UsageRecord;
use crate::register::{ConsentTier, Register};
use crate::state::{Change, Commons, DepositRecord, DepositStatus};

/// The state encoding a new commons is founded with; its genesis records it.
pub const VERSION: u32 = 4;

/// The state encodings this module folds: 2 (`f64` decisions), 3 (fixed-point decisions) and 4
/// (fixed-point decisions and the jobs' later rules).
pub const VERSIONS: [u32; 3] = [2, 3, 4];

/// The domain separator of a state root of `version` (2 or later).
pub fn root_prefix(version: u32) -> &'static [u8] {
    match version {
        2 => b"substrate/state/v2\n",
        3 => b"substrate/state/v3\n",
        _ => b"substrate/state/v4\n",
    }
}

/// Bytes being written.
#[derive(Default)]
pub struct Encoder {
    bytes: Vec<u8>,
    /// The state encoding written: a record's fields added by a later version are written only
    /// under it, so the roots of earlier logs never move.
    version: u32,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// An encoder of state encoding `version`.
    pub fn of_version(version: u32) -> Encoder {
        Encoder { bytes: Vec::new(), version }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    pub fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }

    pub fn str(&mut self, v: &str) {
        self.len(v.len());
        self.bytes.extend_from_slice(v.as_bytes());
    }

    /// A length: a u32 (no string, sequence or map of the state comes near 2³²).
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    pub fn option<T>(&mut self, v: Option<&T>, mut f: impl FnMut(&mut Encoder, &T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }

    pub fn seq<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Encoder, &T)) {
        self.len(items.len());
        for item in items {
            f(self, item);
        }
    }

    pub fn map<K, V>(&mut self, map: &BTreeMap<K, V>, mut f: impl FnMut(&mut Encoder, &K, &V)) {
        self.len(map.len());
        for (k, v) in map {
            f(self, k, v);
        }
    }

    pub fn value<T: Canonical + ?Sized>(&mut self, v: &T) {
        v.encode(self);
    }

    fn weights(&mut self, weights: &BTreeMap<Register, f64>) {
        self.map(weights, |e, r, w| {
            e.str(r.as_str());
            e.f64(*w);
        });
    }

    fn strings(&mut self, items: &[String]) {
        self.seq(items, |e, s| e.str(s));
    }

    fn json(&mut self, v: &serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::Null => self.u8(b'n'),
            Value::Bool(false) => self.u8(b'f'),
            Value::Bool(true) => self.u8(b't'),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => {
                    self.u8(b'u');
                    self.u64(u);
                }
                (None, Some(i), _) => {
                    self.u8(b'i');
                    self.u64(i as u64);
                }
                (_, _, f) => {
                    self.u8(b'd');
                    self.f64(f.unwrap_or(f64::NAN));
                }
            },
            Value::String(s) => {
                self.u8(b's');
                self.str(s);
            }
            Value::Array(items) => {
                self.u8(b'a');
                self.seq(items, |e, v| e.json(v));
            }
            Value::Object(map) => {
                self.u8(b'o');
                let sorted: BTreeMap<&str, &Value> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
                self.map(&sorted, |e, k, v| {
                    e.str(k);
                    e.json(v);
                });
            }
        }
    }
}

/// A value with a canonical encoding.
pub trait Canonical {
    fn encode(&self, e: &mut Encoder);
}

/// The canonical bytes of one entry's changes in state encoding `version`.
pub fn changes(version: u32, changes: &[Change]) -> Vec<u8> {
    let mut e = Encoder::of_version(version);
    e.seq(changes, |e, c| c.encode(e));
    e.into_bytes()
}

impl Canonical for Change {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Change::Commons(c) => {
                e.str("commons");
                c.encode(e);
            }
            Change::Deposit(d) => {
                e.str("deposit");
                d.encode(e);
            }
            Change::Record(r) => r.encode(e),
        }
    }
}

impl Canonical for Commons {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.name);
        e.str(&self.origin);
        e.str(&self.log_key);
        e.str(&self.log_did);
        e.str(&self.handle_prefix);
        e.u64(self.founded_at);
        e.u32(self.state_encoding);
    }
}

impl Canonical for DepositRecord {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.cid.to_string());
        e.str(&self.handle);
        e.u64(self.log_index);
        e.str(&self.depositor);
        e.str(self.register.as_str());
        e.seq(&self.secondary_registers, |e, r| e.str(r.as_str()));
        self.consent.encode(e);
        e.str(&self.title);
        e.str(&self.language);
        e.str(&self.license);
        e.str(&self.media_type);
        e.u64(self.size);
        e.u64(self.deposited_at);
        match &self.status {
            DepositStatus::Active => e.str("active"),
            DepositStatus::Withdrawn { log_index, at } => {
                e.str("withdrawn");
                e.u64(*log_index);
                e.u64(*at);
            }
            DepositStatus::Removed { log_index, at } => {
                e.str("removed");
                e.u64(*log_index);
                e.u64(*at);
            }
        }
        e.seq(&self.history, |e, i| e.u64(*i));
    }
}

impl Canonical for ConsentTier {
    fn encode(&self, e: &mut Encoder) {
        e.str(self.as_str());
    }
}

impl Canonical for Record {
    fn encode(&self, e: &mut Encoder) {
        // A workload pinned to model files, and parameters with a check rate other than the
        // default, carry fields that came later: they are named apart, so the records without
        // them encode as they always did.
        match self {
            Record::Workload(w) if !w.models.is_empty() => {
                e.str("workload/pinned");
                w.encode(e);
                e.strings(&w.models);
                return;
            }
            Record::Parameters(p) if p.credits.inference != crate::governance::params::DEFAULT_INFERENCE => {
                e.str("parameters/inference");
                p.encode(e);
                e.u32(p.check_ppm);
                e.u64(p.credits.inference);
                return;
            }
            Record::Parameters(p) if p.check_ppm != crate::governance::jobs::DEFAULT_CHECK_PPM => {
                e.str("parameters/jobs");
                p.encode(e);
                e.u32(p.check_ppm);
                return;
            }
            _ => {}
        }
        e.str(self.key().0);
        match self {
            Record::Parameters(p) => p.encode(e),
            Record::Board(b) => b.encode(e),
            Record::Member(m) => m.encode(e),
            Record::Node(n) => n.encode(e),
            Record::Proposal(p) => p.encode(e),
            Record::Vote(v) => v.encode(e),
            Record::Dispute(d) => d.encode(e),
            Record::Compute(c) => c.encode(e),
            Record::Credits(c) => c.encode(e),
            Record::Workload(w) => w.encode(e),
            Record::Mixture(m) => m.encode(e),
            Record::Adapter(a) => a.encode(e),
            Record::Offer(o) => o.encode(e),
            Record::Token(t) => t.encode(e),
            Record::Usage(u) => u.encode(e),
            Record::Doi(d) => d.encode(e),
            Record::Job(j) => j.encode(e),
            Record::Reputation(r) => r.encode(e),
        }
    }
}

impl Canonical for Parameters {
    fn encode(&self, e: &mut Encoder) {
        e.seq(&self.registers, |e, r| e.str(r.as_str()));
        self.windows.encode(e);
        self.thresholds.encode(e);
        e.u32(self.attestation_days);
        e.u32(self.vouches_required);
        e.u32(self.board_quorum);
        e.u64(self.deposit_max_bytes);
        self.credits.encode(e);
        e.weights(&self.mixture_caps);
        e.weights(&self.mixture_floors);
    }
}

impl Canonical for Windows {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.ordinary);
        e.u64(self.resource);
        e.u64(self.constitutional);
    }
}

impl Canonical for Thresholds {
    fn encode(&self, e: &mut Encoder) {
        self.ordinary.encode(e);
        self.resource.encode(e);
        self.constitutional.encode(e);
    }
}

impl Canonical for ChamberThresholds {
    fn encode(&self, e: &mut Encoder) {
        self.contributor.encode(e);
        self.technical.encode(e);
    }
}

impl Canonical for Threshold {
    fn encode(&self, e: &mut Encoder) {
        e.f64(self.majority);
        e.f64(self.quorum);
    }
}

impl Canonical for DoiRecord {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.cid);
        e.str(&self.doi);
        e.str(&self.registrar);
        e.str(&self.steward);
        e.u64(self.log_index);
        e.u64(self.at);
    }
}

impl Canonical for UsageRecord {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.node);
        e.u64(self.seq);
        e.u64(self.log_index);
        e.u64(self.reports);
        e.u64(self.requests);
        e.u64(self.tokens);
        e.u64(self.charged);
        e.u64(self.unpaid);
    }
}

impl Canonical for CreditRates {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.deposit);
        e.u64(self.compute);
        e.u64(self.review);
        e.u64(self.dispute);
        e.u64(self.floor);
        e.u32(self.stability_share_ppm);
        e.u32(self.half_life_days);
    }
}

impl Canonical for Board {
    fn encode(&self, e: &mut Encoder) {
        e.strings(&self.members);
        e.option(self.elected_by.as_ref(), |e, d| e.u64(*d));
    }
}

impl Canonical for Member {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.person);
        match &self.status {
            MemberStatus::Pending => e.str("pending"),
            MemberStatus::Verified => e.str("verified"),
            MemberStatus::Revoked { log_index, duplicate, reason } => {
                e.str("revoked");
                e.u64(*log_index);
                e.bool(*duplicate);
                e.str(reason);
            }
        }
        e.u64(self.expires_at);
        e.strings(&self.attested_by);
        e.seq(&self.vouches, |e, (who, at)| {
            e.str(who);
            e.u64(*at);
        });
        e.bool(self.may_vouch);
        e.seq(&self.history, |e, i| e.u64(*i));
    }
}

impl Canonical for NodeRecord {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.node);
        e.str(&self.operator);
        e.u64(self.log_index);
        e.u64(self.registered_at);
    }
}

impl Canonical for ProposalClass {
    fn encode(&self, e: &mut Encoder) {
        e.str(match self {
            ProposalClass::Ordinary => "ordinary",
            ProposalClass::Resource => "resource",
            ProposalClass::Constitutional => "constitutional",
        });
    }
}

impl Canonical for Chamber {
    fn encode(&self, e: &mut Encoder) {
        e.str(match self {
            Chamber::Contributor => "contributor",
            Chamber::Technical => "technical",
        });
    }
}

impl Canonical for Vote {
    fn encode(&self, e: &mut Encoder) {
        e.str(match self {
            Vote::Yes => "yes",
            Vote::No => "no",
            Vote::Abstain => "abstain",
        });
    }
}

impl Canonical for ChamberTally {
    fn encode(&self, e: &mut Encoder) {
        e.f64(self.yes);
        e.f64(self.no);
        e.f64(self.abstain);
        e.f64(self.eligible);
    }
}

impl Canonical for Outcome {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Outcome::Passed => e.str("passed"),
            Outcome::Rejected { reason } => {
                e.str("rejected");
                e.str(reason);
            }
            Outcome::Vetoed { by } => {
                e.str("vetoed");
                by.encode(e);
            }
        }
    }
}

impl Canonical for Ruling {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Ruling::Relabel { register } => {
                e.str("relabel");
                e.str(register.as_str());
            }
            Ruling::NarrowConsent { consent } => {
                e.str("narrow-consent");
                consent.encode(e);
            }
            Ruling::Remove => e.str("remove"),
            Ruling::Dismiss => e.str("dismiss"),
        }
    }
}

impl Canonical for Ground {
    fn encode(&self, e: &mut Encoder) {
        e.str(match self {
            Ground::WrongRegister => "wrong-register",
            Ground::DoubtfulConsent => "doubtful-consent",
            Ground::Spam => "spam",
            Ground::Harm => "harm",
        });
    }
}

impl Canonical for Action {
    fn encode(&self, e: &mut Encoder) {
        if let Action::ApproveWorkload { kind, version, models } = self
            && !models.is_empty()
        {
            e.str("approve-workload/pinned");
            e.str(kind);
            e.str(version);
            e.strings(models);
            return;
        }
        e.str(self.name());
        match self {
            Action::SetMixture { ballot } => e.weights(ballot),
            Action::SetParameter { key, value } => {
                e.str(key);
                e.json(value);
            }
            Action::RemoveDeposit { cid, reason } => {
                e.str(&cid.to_string());
                e.str(reason);
            }
            Action::ResolveDispute { dispute, ruling } => {
                e.u64(*dispute);
                ruling.encode(e);
            }
            Action::ApproveWorkload { kind, version, .. } => {
                e.str(kind);
                e.str(version);
            }
            Action::ElectBoard { seats, candidates } => {
                e.u32(*seats);
                e.strings(candidates);
            }
        }
    }
}

impl Canonical for ProposalRecord {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.id);
        e.str(&self.proposer);
        e.str(&self.title);
        e.option(self.summary.as_ref(), |e, s| e.str(s));
        self.class.encode(e);
        self.lead.encode(e);
        e.seq(&self.actions, |e, a| a.encode(e));
        e.u64(self.opened_at);
        e.u64(self.closes_at);
        match &self.status {
            ProposalStatus::Open => e.str("open"),
            ProposalStatus::Closed { decision, outcome, contributor, technical } => {
                e.str("closed");
                e.u64(*decision);
                outcome.encode(e);
                contributor.encode(e);
                technical.encode(e);
            }
        }
    }
}

impl Canonical for VoteRecord {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.proposal);
        e.str(&self.voter);
        self.choice.encode(e);
        e.option(self.mixture.as_ref(), |e, m| e.weights(m));
        e.option(self.ranking.as_ref(), |e, r| e.strings(r));
        e.u64(self.log_index);
        e.u64(self.at);
    }
}

impl Canonical for DisputeRecord {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.id);
        e.str(&self.cid.to_string());
        self.ground.encode(e);
        e.str(&self.detail);
        e.option(self.register.as_ref(), |e, r| e.str(r.as_str()));
        e.str(&self.opened_by);
        e.u64(self.opened_at);
        match &self.status {
            DisputeStatus::Open => e.str("open"),
            DisputeStatus::Ruled { ruling, log_index, signers } => {
                e.str("ruled");
                ruling.encode(e);
                e.u64(*log_index);
                e.strings(signers);
            }
            DisputeStatus::Resolved { ruling, decision } => {
                e.str("resolved");
                ruling.encode(e);
                e.u64(*decision);
            }
        }
        e.seq(&self.endorsements, |e, x: &Endorsement| {
            x.ruling.encode(e);
            e.strings(&x.signers);
        });
    }
}

impl Canonical for ComputeGrant {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.receipt);
        e.str(&self.job);
        e.str(&self.workload);
        e.str(&self.node);
        e.str(&self.operator);
        e.strings(&self.verifiers);
        e.u64(self.units);
        e.u64(self.at);
    }
}

impl Canonical for Credits {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.holder);
        e.u64(self.balance);
        e.u64(self.as_of_day);
        e.u64(self.earned);
        e.u64(self.grants);
        if e.version >= 4 {
            e.u64(self.floor_day);
            e.u64(self.floor_used);
        }
    }
}

impl Canonical for WorkloadRecord {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.kind);
        e.str(&self.version);
        e.u64(self.decision);
    }
}

impl Canonical for MixtureRecord {
    fn encode(&self, e: &mut Encoder) {
        e.weights(&self.weights);
        e.u64(self.decision);
        e.u64(self.proposal);
        e.u64(self.ballots);
        e.u64(self.at);
    }
}

impl Canonical for AdapterRecord {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.id);
        e.str(&self.node);
        e.str(&self.operator);
        e.str(&self.adapter);
        e.str(&self.provenance);
        e.str(&self.base_model);
        e.u64(self.decision);
        e.u64(self.snapshot_size);
        e.str(&self.snapshot_root);
        e.u64(self.deposits);
        e.str(&self.name);
        e.u64(self.published_at);
    }
}

impl Canonical for OfferRecord {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.node);
        e.str(&self.operator);
        e.u32(self.cores);
        e.u64(self.memory_mib);
        e.strings(&self.models);
        e.strings(&self.workloads);
        e.u64(self.log_index);
        e.u64(self.at);
    }
}

impl Canonical for Reputation {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.node);
        e.u64(self.passed);
        e.u64(self.failed);
        e.u64(self.missed);
    }
}

impl Canonical for Role {
    fn encode(&self, e: &mut Encoder) {
        e.str(self.name());
    }
}

impl Canonical for JobInput {
    fn encode(&self, e: &mut Encoder) {
        e.str(self.kind());
        match self {
            JobInput::Embed { texts } => e.strings(texts),
            JobInput::Generate { prompt, max_tokens } => {
                e.str(prompt);
                e.u32(*max_tokens);
            }
            JobInput::TrainLora { decision, steps, batch, seq_len, rank } => {
                e.u64(*decision);
                for value in [steps, batch, seq_len, rank] {
                    e.u32(*value);
                }
            }
            JobInput::Evaluate { adapter, decision, windows, seq_len } => {
                e.option(adapter.as_ref(), |e, a| e.u64(*a));
                e.u64(*decision);
                e.u32(*windows);
                e.u32(*seq_len);
            }
        }
    }
}

impl Canonical for JobOutput {
    fn encode(&self, e: &mut Encoder) {
        match self {
            JobOutput::Embed { vectors } => {
                e.str("embed");
                e.strings(vectors);
            }
            JobOutput::Generate { tokens, text } => {
                e.str("generate");
                e.seq(tokens, |e, t| e.u32(*t));
                e.str(text);
            }
            JobOutput::TrainLora { snapshot_root, tokens, losses, norms, weights } => {
                e.str("train-lora");
                e.str(snapshot_root);
                e.u64(*tokens);
                // Floats as their exact bit patterns.
                e.seq(losses, |e, v| e.u32(v.0.to_bits()));
                e.seq(norms, |e, v| e.u32(v.0.to_bits()));
                e.str(weights);
            }
            JobOutput::Evaluate { snapshot_root, registers } => {
                e.str("evaluate");
                e.str(snapshot_root);
                e.seq(registers, |e, r| {
                    e.str(&r.register);
                    e.u64(r.texts);
                    e.u64(r.tokens);
                    e.u32(r.loss.0.to_bits());
                });
            }
        }
    }
}

impl Canonical for Run {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.assignment);
        e.str(&self.node);
        e.str(&self.operator);
        self.role.encode(e);
        e.u64(self.deadline);
        e.u64(self.assigned_at);
        e.option(self.result.as_ref(), |e, r| e.u64(*r));
        e.option(self.output_digest.as_ref(), |e, d| e.str(d));
        e.option(self.failure.as_ref(), |e, f| e.str(f));
        e.u64(self.cpu_ms);
        e.bool(self.missed);
    }
}

impl Canonical for Verdict {
    fn encode(&self, e: &mut Encoder) {
        e.str(match self {
            Verdict::Unsampled => "unsampled",
            Verdict::Passed => "passed",
            Verdict::Unchecked => "unchecked",
            Verdict::Upheld => "upheld",
            Verdict::Overturned => "overturned",
            Verdict::Unresolved => "unresolved",
        });
    }
}

impl Canonical for JobStatus {
    fn encode(&self, e: &mut Encoder) {
        match self {
            JobStatus::Open { needs } => {
                e.str("open");
                needs.encode(e);
            }
            JobStatus::Drawing => e.str("drawing"),
            JobStatus::Done { verdict, result, units, paid, at } => {
                e.str("done");
                verdict.encode(e);
                e.u64(*result);
                e.u64(*units);
                e.u64(*paid);
                e.u64(*at);
            }
            JobStatus::Failed { reason, at } => {
                e.str("failed");
                e.str(reason);
                e.u64(*at);
            }
        }
    }
}

impl Canonical for JobDispute {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.opened_at);
        e.seq(&self.results, |e, r| e.u64(*r));
        e.option(self.arbiter.as_ref(), |e, a| e.u64(*a));
        e.option(self.finding.as_ref(), |e, f| e.str(f));
    }
}

impl Canonical for TokenRecord {
    fn encode(&self, e: &mut Encoder) {
        e.str(&self.token);
        e.str(&self.member);
        e.str(&self.label);
        e.u64(self.log_index);
        e.u64(self.at);
        e.u64(self.expires_at);
        e.option(self.revoked_at.as_ref(), |e, at| e.u64(*at));
    }
}

impl Canonical for JobRecord {
    fn encode(&self, e: &mut Encoder) {
        e.u64(self.id);
        e.str(&self.workload);
        e.str(&self.requester);
        e.str(&self.input_digest);
        e.u64(self.budget);
        e.u64(self.reserved);
        e.u64(self.deadline_ms);
        e.u64(self.requested_at);
        e.u64(self.since);
        e.option(self.input.as_ref(), |e, i| i.encode(e));
        e.seq(&self.runs, |e, r| r.encode(e));
        e.option(self.draw.as_ref(), |e, d| e.u64(*d));
        e.option(self.drawn.as_ref(), |e, d| e.bool(*d));
        self.status.encode(e);
        e.option(self.dispute.as_ref(), |e, d| d.encode(e));
        e.map(&self.outputs, |e, index, output| {
            e.u64(*index);
            output.encode(e);
        });
        if e.version >= 4 {
            e.u64(self.floor);
            e.option(self.recheck.as_ref(), |e, r| {
                e.u64(r.caught_at);
                e.bool(r.started);
                r.verdict.encode(e);
                e.u64(r.units);
                e.u64(r.paid);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_fixed_width_and_length_prefixed() {
        let mut e = Encoder::new();
        e.u32(1);
        e.u64(2);
        e.bool(true);
        e.f64(-0.0);
        e.str("é");
        e.option(None::<&u64>, |e, v| e.u64(*v));
        e.option(Some(&7u64), |e, v| e.u64(*v));
        e.seq(&[3u64], |e, v| e.u64(*v));
        e.json(&serde_json::json!({"b": [1, -2, 0.5, null, true], "a": "x"}));
        let expected: Vec<u8> = [
            &[0, 0, 0, 1][..],
            &[0, 0, 0, 0, 0, 0, 0, 2],
            &[1],
            &[0x80, 0, 0, 0, 0, 0, 0, 0],
            &[0, 0, 0, 2, 0xc3, 0xa9],
            &[0],
            &[1, 0, 0, 0, 0, 0, 0, 0, 7],
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3],
            // An object, keys in byte order: "a" then "b".
            &[b'o', 0, 0, 0, 2, 0, 0, 0, 1, b'a', b's', 0, 0, 0, 1, b'x'],
            &[0, 0, 0, 1, b'b', b'a', 0, 0, 0, 5],
            &[b'u', 0, 0, 0, 0, 0, 0, 0, 1],
            &[b'i', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
            &[b'd', 0x3f, 0xe0, 0, 0, 0, 0, 0, 0],
            b"nt",
        ]
        .concat();
        assert_eq!(e.into_bytes(), expected);
    }

    #[test]
    fn a_commons_record_is_its_fields_in_order() {
        let commons = Commons {
            name: "c".into(),
            origin: "o".into(),
            log_key: "k".into(),
            log_did: "d".into(),
            handle_prefix: "h/".into(),
            founded_at: 5,
            state_encoding: 3,
        };
        let bytes = changes(VERSION, &[Change::Commons(commons)]);
        let expected: Vec<u8> = [
            &[0, 0, 0, 1][..],
            &[0, 0, 0, 7],
            b"commons",
            &[0, 0, 0, 1, b'c', 0, 0, 0, 1, b'o', 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'd', 0, 0, 0, 2, b'h', b'/'],
            &[0, 0, 0, 0, 0, 0, 0, 5],
            &[0, 0, 0, 3],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }
}
