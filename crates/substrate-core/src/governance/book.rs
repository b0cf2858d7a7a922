//! The governance part of the commons' state: members, node bindings, proposals and votes,
//! disputes, verified compute, credits, the board, the parameters and the current mixture. Every
//! record here is derived from log events; `crate::governance::fold` says how.

use std::collections::{BTreeMap, BTreeSet};

use crate::cid::Cid;
use crate::governance::acts::{Action, Ground, Ruling};
use crate::governance::number::{Arithmetic, Fixed, Number};
use crate::governance::params::{DAY_MS, Parameters};
use crate::governance::tally::{self, Chamber, ChamberTally, ComputeRecord, Outcome, ProposalClass, Vote};
use crate::register::Register;

/// The holder name of the stability pool's credits.
pub const STABILITY_POOL: &str = "stability-pool";

/// A person the commons knows of, verified or not.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub person: String,
    pub status: MemberStatus,
    /// When the current verification ends (ms since the epoch); 0 while pending.
    pub expires_at: u64,
    /// Stewards and vouchers whose attestations verified this person, oldest first.
    pub attested_by: Vec<String>,
    /// Vouches gathered while pending: (voucher, log index).
    pub vouches: Vec<(String, u64)>,
    /// Whether this member may vouch for others; lost by vouching for a duplicate.
    pub may_vouch: bool,
    /// Log indices of the entries that changed this membership.
    pub history: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum MemberStatus {
    /// Vouched for by fewer members than the commons requires.
    Pending,
    Verified,
    Revoked {
        log_index: u64,
        duplicate: bool,
        reason: String,
    },
}

impl Member {
    /// Whether this person counts as a verified human at `at`.
    pub fn verified_at(&self, at: u64) -> bool {
        self.status == MemberStatus::Verified && at < self.expires_at
    }
}

/// A node key bound to the verified person who operates it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub node: String,
    pub operator: String,
    pub log_index: u64,
    pub registered_at: u64,
}

/// A proposal and where it stands.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposalRecord {
    /// The proposal's log index.
    pub id: u64,
    pub proposer: String,
    pub title: String,
    pub summary: Option<String>,
    pub class: ProposalClass,
    pub lead: Chamber,
    pub actions: Vec<Action>,
    pub opened_at: u64,
    pub closes_at: u64,
    pub status: ProposalStatus,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum ProposalStatus {
    Open,
    /// Decided by the entry `decision`, with both chambers' tallies as of the close.
    Closed {
        decision: u64,
        outcome: Outcome,
        contributor: ChamberTally,
        technical: ChamberTally,
    },
}

/// A member's current vote on a proposal.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteRecord {
    pub proposal: u64,
    pub voter: String,
    pub choice: Vote,
    pub mixture: Option<BTreeMap<Register, f64>>,
    pub ranking: Option<Vec<String>>,
    pub log_index: u64,
    pub at: u64,
}

/// A dispute against a deposit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisputeRecord {
    /// The dispute's log index.
    pub id: u64,
    pub cid: Cid,
    pub ground: Ground,
    pub detail: String,
    pub register: Option<Register>,
    pub opened_by: String,
    pub opened_at: u64,
    pub status: DisputeStatus,
    /// Board signatures gathered so far, per proposed ruling.
    pub endorsements: Vec<Endorsement>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endorsement {
    pub ruling: Ruling,
    pub signers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum DisputeStatus {
    Open,
    /// The board ruled (k of n signatures); an appeal is a `ResolveDispute` proposal.
    Ruled {
        ruling: Ruling,
        log_index: u64,
        signers: Vec<String>,
    },
    /// The chambers ruled.
    Resolved {
        ruling: Ruling,
        decision: u64,
    },
}

impl DisputeStatus {
    /// The log index of the entry that ruled on the dispute (the board's ruling or the chambers'
    /// decision), if one did.
    pub fn closed_at(&self) -> Option<u64> {
        match self {
            DisputeStatus::Open => None,
            DisputeStatus::Ruled { log_index, .. } => Some(*log_index),
            DisputeStatus::Resolved { decision, .. } => Some(*decision),
        }
    }
}

/// Verified compute: a job receipt signed by its worker node and co-signed by a node of another
/// operator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeGrant {
    /// The receipt's log index.
    pub receipt: u64,
    /// sha256 of the workload, inputs and outputs: a job is credited once.
    pub job: String,
    pub workload: String,
    pub node: String,
    pub operator: String,
    pub verifiers: Vec<String>,
    pub units: u64,
    pub at: u64,
}

/// A holder's credits, in thousandths. Credits decay: each day a balance loses ln 2 / half-life
/// of itself (rounded down), so it halves in about one half-life. They are earned only, by rule;
/// nothing moves them from one holder to another.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credits {
    pub holder: String,
    /// The balance at the start of day `as_of_day` (days since the epoch), after decay.
    pub balance: u64,
    pub as_of_day: u64,
    /// Everything ever earned, before decay.
    pub earned: u64,
    pub grants: u64,
    /// The day (since the epoch) `floor_used` counts for, and how much of that day's commons
    /// floor (thousandths) the holder's jobs drew; both 0 before state encoding 4.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub floor_day: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub floor_used: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Credits {
    pub fn new(holder: &str) -> Credits {
        Credits {
            holder: holder.to_owned(),
            balance: 0,
            as_of_day: 0,
            earned: 0,
            grants: 0,
            floor_day: 0,
            floor_used: 0,
        }
    }

    /// How much of day `day`'s commons floor the holder drew.
    pub fn floor_used_on(&self, day: u64) -> u64 {
        if self.floor_day == day { self.floor_used } else { 0 }
    }

    /// The balance on day `day`, decayed with `half_life_days`.
    pub fn balance_on(&self, day: u64, half_life_days: u32) -> u64 {
        decay(self.balance, day.saturating_sub(self.as_of_day), half_life_days)
    }
}

/// `balance` after `days` of daily decay at ln 2 / `half_life_days` per day, in integers so every
/// machine computes the same.
pub fn decay(balance: u64, days: u64, half_life_days: u32) -> u64 {
    // ln 2 in millionths.
    const LN2_MICRO: u128 = 693_147;
    let per_day = LN2_MICRO / u128::from(half_life_days.max(1));
    let mut value = u128::from(balance);
    for _ in 0..days.min(100_000) {
        if value == 0 {
            break;
        }
        value -= value * per_day / 1_000_000;
    }
    value as u64
}

/// A workload kind the chambers approved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRecord {
    pub kind: String,
    pub version: String,
    pub decision: u64,
    /// The model files it is pinned to (sha256 hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

/// The mixture the next training run must use, and the decision that set it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MixtureRecord {
    pub weights: BTreeMap<Register, f64>,
    pub decision: u64,
    pub proposal: u64,
    pub ballots: u64,
    pub at: u64,
}

/// An adapter a registered node trained on a decided mixture and published in the log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdapterRecord {
    /// The publication's log index.
    pub id: u64,
    pub node: String,
    /// The node's operator when it published.
    pub operator: String,
    /// sha256 (hex) of the adapter weights and of the provenance attestation.
    pub adapter: String,
    pub provenance: String,
    pub base_model: String,
    /// The decision whose mixture the run followed.
    pub decision: u64,
    /// The snapshot: the first `snapshot_size` entries of the log, its root (hex) and deposits.
    pub snapshot_size: u64,
    pub snapshot_root: String,
    pub deposits: u64,
    pub name: String,
    pub published_at: u64,
}

/// The stewardship board: founding stewards until the first election.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Board {
    pub members: Vec<String>,
    /// The decision that elected it; none for the founding stewards.
    pub elected_by: Option<u64>,
}

/// One materialised governance record: what a log entry changed, stored under (kind, key).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "record", rename_all = "kebab-case")]
pub enum Record {
    Parameters(Parameters),
    Board(Board),
    Member(Member),
    Node(NodeRecord),
    Proposal(ProposalRecord),
    Vote(VoteRecord),
    Dispute(DisputeRecord),
    Compute(ComputeGrant),
    Credits(Credits),
    Workload(WorkloadRecord),
    Mixture(MixtureRecord),
    Adapter(AdapterRecord),
    Offer(crate::governance::jobs::OfferRecord),
    Job(Box<crate::governance::jobs::JobRecord>),
    Reputation(crate::governance::jobs::Reputation),
    Token(crate::governance::tokens::TokenRecord),
    Usage(crate::governance::usage::UsageRecord),
    Doi(crate::governance::doi::DoiRecord),
}

/// The keys of every vote on proposal `id`, as a half-open range [from, to) of `Record::key`s.
pub fn vote_keys(id: u64) -> (String, String) {
    // '0' is the byte after '/', so the range holds "{id}/<voter>" and nothing else.
    (format!("{id:020}/"), format!("{id:020}0"))
}

impl Record {
    /// The (kind, key) this record is stored under; a later record with the same pair replaces it.
    pub fn key(&self) -> (&'static str, String) {
        match self {
            Record::Parameters(_) => ("parameters", String::new()),
            Record::Board(_) => ("board", String::new()),
            Record::Member(m) => ("member", m.person.clone()),
            Record::Node(n) => ("node", n.node.clone()),
            Record::Proposal(p) => ("proposal", format!("{:020}", p.id)),
            Record::Vote(v) => ("vote", format!("{:020}/{}", v.proposal, v.voter)),
            Record::Dispute(d) => ("dispute", format!("{:020}", d.id)),
            Record::Compute(c) => ("compute", format!("{:020}", c.receipt)),
            Record::Credits(c) => ("credits", c.holder.clone()),
            Record::Workload(w) => ("workload", format!("{}@{}", w.kind, w.version)),
            Record::Mixture(m) => ("mixture", format!("{:020}", m.decision)),
            Record::Adapter(a) => ("adapter", format!("{:020}", a.id)),
            Record::Offer(o) => ("offer", o.node.clone()),
            Record::Job(j) => ("job", format!("{:020}", j.id)),
            Record::Reputation(r) => ("reputation", r.node.clone()),
            Record::Token(t) => ("token", t.token.clone()),
            Record::Usage(u) => ("usage", u.node.clone()),
            Record::Doi(d) => ("doi", d.cid.clone()),
        }
    }
}

/// Governance state, folded from the log.
#[derive(Clone, Debug, Default)]
pub struct Governance {
    pub(crate) params: Option<Parameters>,
    pub(crate) board: Board,
    pub(crate) members: BTreeMap<String, Member>,
    pub(crate) nodes: BTreeMap<String, NodeRecord>,
    pub(crate) proposals: BTreeMap<u64, ProposalRecord>,
    pub(crate) votes: BTreeMap<(u64, String), VoteRecord>,
    pub(crate) disputes: BTreeMap<u64, DisputeRecord>,
    pub(crate) compute: BTreeMap<u64, ComputeGrant>,
    pub(crate) credits: BTreeMap<String, Credits>,
    pub(crate) workloads: BTreeMap<String, WorkloadRecord>,
    /// Every decided mixture by its decision's log index; the last is in force.
    pub(crate) mixtures: BTreeMap<u64, MixtureRecord>,
    /// Published adapters by their entry's log index.
    pub(crate) adapters: BTreeMap<u64, AdapterRecord>,
    /// Jobs by id (their request's log index), offers and reputations by node key.
    pub(crate) jobs: BTreeMap<u64, crate::governance::jobs::JobRecord>,
    pub(crate) offers: BTreeMap<String, crate::governance::jobs::OfferRecord>,
    pub(crate) reputations: BTreeMap<String, crate::governance::jobs::Reputation>,
    /// API tokens by the sha256 of their text.
    pub(crate) tokens: BTreeMap<String, crate::governance::tokens::TokenRecord>,
    pub(crate) usage: BTreeMap<String, crate::governance::usage::UsageRecord>,
    /// DOIs by the CID of their deposit.
    pub(crate) dois: BTreeMap<String, crate::governance::doi::DoiRecord>,
    /// Derived: the jobs not yet ended.
    pub(crate) open_jobs: BTreeSet<u64>,
    /// Derived: the done jobs waiting to be re-opened for a check.
    pub(crate) rechecks: BTreeSet<u64>,
    /// The commons' state encoding: how decisions are computed ([`Arithmetic::of`]) and which
    /// rules of the jobs' fold apply (see [`crate::governance::jobs`]).
    pub(crate) state_encoding: u32,
    /// Derived: open proposals by close time, and deposits under an open dispute.
    closing: BTreeSet<(u64, u64)>,
    disputed: BTreeMap<Cid, BTreeSet<u64>>,
}

impl Governance {
    /// Rebuilds governance from its materialised records, under the commons' `state_encoding`.
    pub fn restore(records: impl IntoIterator<Item = Record>, state_encoding: u32) -> Governance {
        let mut governance = Governance { state_encoding, ..Governance::default() };
        for record in records {
            governance.put(record);
        }
        governance
    }

    /// How decisions are computed in this commons.
    pub fn arithmetic(&self) -> Arithmetic {
        Arithmetic::of(self.state_encoding)
    }

    /// Drops every vote held (a partial state's, whose votes are in the ledger's tables).
    pub(crate) fn release_votes(&mut self) {
        self.votes = BTreeMap::new();
    }

    /// Holds votes loaded from the tables, keeping any newer one held for the same voter and
    /// proposal.
    pub(crate) fn load_votes(&mut self, votes: impl IntoIterator<Item = VoteRecord>) {
        for vote in votes {
            self.votes.entry((vote.proposal, vote.voter.clone())).or_insert(vote);
        }
    }

    /// Stores `record`, replacing the one under the same key.
    pub fn put(&mut self, record: Record) {
        match record {
            Record::Parameters(p) => self.params = Some(p),
            Record::Board(b) => self.board = b,
            Record::Member(m) => {
                self.members.insert(m.person.clone(), m);
            }
            Record::Node(n) => {
                self.nodes.insert(n.node.clone(), n);
            }
            Record::Proposal(p) => {
                self.closing.retain(|(_, id)| *id != p.id);
                if p.status == ProposalStatus::Open {
                    self.closing.insert((p.closes_at, p.id));
                }
                self.proposals.insert(p.id, p);
            }
            Record::Vote(v) => {
                self.votes.insert((v.proposal, v.voter.clone()), v);
            }
            Record::Dispute(d) => {
                let open = self.disputed.entry(d.cid.clone()).or_default();
                if d.status == DisputeStatus::Open {
                    open.insert(d.id);
                } else {
                    open.remove(&d.id);
                }
                if open.is_empty() {
                    self.disputed.remove(&d.cid);
                }
                self.disputes.insert(d.id, d);
            }
            Record::Compute(c) => {
                self.compute.insert(c.receipt, c);
            }
            Record::Credits(c) => {
                self.credits.insert(c.holder.clone(), c);
            }
            Record::Workload(w) => {
                self.workloads.insert(format!("{}@{}", w.kind, w.version), w);
            }
            Record::Mixture(m) => {
                self.mixtures.insert(m.decision, m);
            }
            Record::Adapter(a) => {
                self.adapters.insert(a.id, a);
            }
            Record::Offer(o) => {
                self.offers.insert(o.node.clone(), o);
            }
            Record::Job(j) => {
                if j.is_open() {
                    self.open_jobs.insert(j.id);
                } else {
                    self.open_jobs.remove(&j.id);
                }
                if j.awaits_recheck() {
                    self.rechecks.insert(j.id);
                } else {
                    self.rechecks.remove(&j.id);
                }
                self.jobs.insert(j.id, *j);
            }
            Record::Reputation(r) => {
                self.reputations.insert(r.node.clone(), r);
            }
            Record::Token(t) => {
                self.tokens.insert(t.token.clone(), t);
            }
            Record::Usage(u) => {
                self.usage.insert(u.node.clone(), u);
            }
            Record::Doi(d) => {
                self.dois.insert(d.cid.clone(), d);
            }
        }
    }

    /// Every record, for rebuilding and comparing the materialised tables.
    pub fn records(&self) -> Vec<Record> {
        let mut records: Vec<Record> = self.params.clone().map(Record::Parameters).into_iter().collect();
        records.push(Record::Board(self.board.clone()));
        records.extend(self.members.values().cloned().map(Record::Member));
        records.extend(self.nodes.values().cloned().map(Record::Node));
        records.extend(self.proposals.values().cloned().map(Record::Proposal));
        records.extend(self.votes.values().cloned().map(Record::Vote));
        records.extend(self.disputes.values().cloned().map(Record::Dispute));
        records.extend(self.compute.values().cloned().map(Record::Compute));
        records.extend(self.credits.values().cloned().map(Record::Credits));
        records.extend(self.workloads.values().cloned().map(Record::Workload));
        records.extend(self.mixtures.values().cloned().map(Record::Mixture));
        records.extend(self.adapters.values().cloned().map(Record::Adapter));
        records.extend(self.offers.values().cloned().map(Record::Offer));
        records.extend(self.jobs.values().cloned().map(|j| Record::Job(Box::new(j))));
        records.extend(self.reputations.values().cloned().map(Record::Reputation));
        records.extend(self.tokens.values().cloned().map(Record::Token));
        records.extend(self.usage.values().cloned().map(Record::Usage));
        records.extend(self.dois.values().cloned().map(Record::Doi));
        records
    }

    pub fn parameters(&self) -> Option<&Parameters> {
        self.params.as_ref()
    }

    pub fn board(&self) -> &Board {
        &self.board
    }

    pub fn is_steward(&self, who: &str) -> bool {
        self.board.members.iter().any(|m| m == who)
    }

    pub fn member(&self, person: &str) -> Option<&Member> {
        self.members.get(person)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn node(&self, node: &str) -> Option<&NodeRecord> {
        self.nodes.get(node)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values()
    }

    pub fn proposal(&self, id: u64) -> Option<&ProposalRecord> {
        self.proposals.get(&id)
    }

    pub fn proposals(&self) -> impl Iterator<Item = &ProposalRecord> {
        self.proposals.values()
    }

    /// The current votes on proposal `id`, by voter.
    pub fn votes_on(&self, id: u64) -> impl Iterator<Item = &VoteRecord> {
        self.votes.range((id, String::new())..(id + 1, String::new())).map(|(_, v)| v)
    }

    pub fn dispute(&self, id: u64) -> Option<&DisputeRecord> {
        self.disputes.get(&id)
    }

    pub fn disputes(&self) -> impl Iterator<Item = &DisputeRecord> {
        self.disputes.values()
    }

    /// The deposits that were under an open dispute once the log's first `size` entries were in.
    pub fn disputed_at(&self, size: u64) -> std::collections::HashSet<&Cid> {
        self.disputes
            .values()
            .filter(|d| d.id < size && d.status.closed_at().is_none_or(|closed| closed >= size))
            .map(|d| &d.cid)
            .collect()
    }

    /// Whether `cid` is under an open dispute (and so out of training snapshots).
    pub fn under_dispute(&self, cid: &Cid) -> bool {
        self.disputed.contains_key(cid)
    }

    pub fn compute(&self) -> impl Iterator<Item = &ComputeGrant> {
        self.compute.values()
    }

    pub fn credits(&self, holder: &str) -> Option<&Credits> {
        self.credits.get(holder)
    }

    pub fn all_credits(&self) -> impl Iterator<Item = &Credits> {
        self.credits.values()
    }

    pub fn workloads(&self) -> impl Iterator<Item = &WorkloadRecord> {
        self.workloads.values()
    }

    /// The mixture in force: the last decided.
    pub fn mixture(&self) -> Option<&MixtureRecord> {
        self.mixtures.values().next_back()
    }

    /// The mixture the decision at log index `decision` set, in force or since replaced.
    pub fn mixture_decided_at(&self, decision: u64) -> Option<&MixtureRecord> {
        self.mixtures.get(&decision)
    }

    pub fn adapter(&self, id: u64) -> Option<&AdapterRecord> {
        self.adapters.get(&id)
    }

    pub fn adapters(&self) -> impl Iterator<Item = &AdapterRecord> {
        self.adapters.values()
    }

    /// The open proposal that closes first, as (close time, id): it must be decided before any
    /// entry integrated at or after its close.
    pub fn next_close(&self) -> Option<(u64, u64)> {
        self.closing.first().copied()
    }

    pub fn is_verified(&self, who: &str, at: u64) -> bool {
        self.members.get(who).is_some_and(|m| m.verified_at(at))
    }

    /// How many verified persons the contributor chamber has at `at`.
    pub fn contributor_count(&self, at: u64) -> usize {
        self.members.values().filter(|m| m.verified_at(at)).count()
    }

    /// The technical chamber at `at`: every verified person operating a registered node → their
    /// weight, sqrt of their nodes' verified compute (90-day half-life) capped at max(5%, 2/N),
    /// summing to 1; until any compute is verified, each operator weighs the same. Empty without
    /// operators.
    pub fn technical_chamber(&self, at: u64) -> BTreeMap<String, f64> {
        match self.arithmetic() {
            Arithmetic::Float => self.technical_chamber_in::<f64>(at),
            Arithmetic::Fixed => {
                self.technical_chamber_in::<Fixed>(at).into_iter().map(|(who, w)| (who, w.to_f64())).collect()
            }
        }
    }

    /// [`Governance::technical_chamber`] in `N`.
    pub(crate) fn technical_chamber_in<N: Number>(&self, at: u64) -> BTreeMap<String, N> {
        let operators: BTreeSet<&str> = self
            .nodes
            .values()
            .filter(|n| n.registered_at <= at && self.is_verified(&n.operator, at))
            .map(|n| n.operator.as_str())
            .collect();
        let records: Vec<ComputeRecord> = self
            .compute
            .values()
            .filter(|c| c.at <= at && operators.contains(c.operator.as_str()))
            .map(|c| ComputeRecord { operator: c.operator.clone(), units: c.units, at: c.at })
            .collect();
        let operators: Vec<&str> = operators.into_iter().collect();
        tally::operator_weights(&operators, &records, at)
    }
}

/// The lead chamber of an action: workloads are the technical chamber's question, everything
/// else is about data and people.
pub fn lead_of(action: &Action) -> Chamber {
    match action {
        Action::ApproveWorkload { .. } => Chamber::Technical,
        _ => Chamber::Contributor,
    }
}

/// The lowest class of proposal an action may ride in.
pub fn min_class(action: &Action) -> Result<ProposalClass, String> {
    match action {
        Action::SetParameter { key, .. } => Parameters::class_of(key),
        Action::ApproveWorkload { .. } => Ok(ProposalClass::Resource),
        _ => Ok(ProposalClass::Ordinary),
    }
}

pub fn class_rank(class: ProposalClass) -> u8 {
    match class {
        ProposalClass::Ordinary => 0,
        ProposalClass::Resource => 1,
        ProposalClass::Constitutional => 2,
    }
}

/// The built-in workload kinds a proposal may approve.
pub const WORKLOAD_KINDS: [&str; 6] =
    ["embed", "index", "generate", "train-lora", "evaluate", "amputation-audit"];

/// The day (since the epoch) of `ms`.
pub fn day_of(ms: u64) -> u64 {
    ms / DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_decay_to_about_half_in_one_half_life() {
        let after = decay(1_000_000, 180, 180);
        assert!((495_000..=505_000).contains(&after), "{after}");
        assert_eq!(decay(1_000_000, 0, 180), 1_000_000);
        assert_eq!(decay(0, 10_000, 1), 0);
    }
}
