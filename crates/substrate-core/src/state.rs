//! The commons' state as a pure fold over its log. Applying the same entries in the same order
//! gives the same state and the same state root on every machine.

use std::collections::HashMap;

use sha2::Digest;

use crate::cid::Cid;
use crate::event::{Event, SignedEvent};
use crate::governance::book::{Board, Governance, Member, MemberStatus, Record};
use crate::governance::params::{DAY_MS, Parameters};
use crate::register::{ConsentTier, Register};

/// The commons as its genesis declared it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Commons {
    pub name: String,
    pub origin: String,
    pub log_key: String,
    pub log_did: String,
    pub handle_prefix: String,
    pub founded_at: u64,
    /// How the state root encodes each entry's changes and how decisions are computed: 4, the
    /// canonical encoding (`crate::canonical`) with fixed-point decisions and the jobs' later
    /// rules, for every commons founded now; 3, the same without those rules; 2, the same
    /// encoding with `f64` decisions; 1, the changes' JSON and `f64`
    /// decisions, for the logs founded before there was a choice. Every version replays unchanged.
    #[serde(default = "legacy_encoding", skip_serializing_if = "is_legacy_encoding")]
    pub state_encoding: u32,
}

/// The state encoding of a commons whose genesis names none.
pub const LEGACY_STATE_ENCODING: u32 = 1;

fn legacy_encoding() -> u32 {
    LEGACY_STATE_ENCODING
}

fn is_legacy_encoding(v: &u32) -> bool {
    *v == LEGACY_STATE_ENCODING
}

/// A deposit's state: its metadata, current consent and whether it was withdrawn.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DepositRecord {
    pub cid: Cid,
    pub handle: String,
    pub log_index: u64,
    pub depositor: String,
    pub register: Register,
    pub secondary_registers: Vec<Register>,
    pub consent: ConsentTier,
    pub title: String,
    pub language: String,
    pub license: String,
    pub media_type: String,
    pub size: u64,
    /// Integrated time of the deposit entry, ms since the epoch.
    pub deposited_at: u64,
    pub status: DepositStatus,
    /// Log indices of every entry that changed this deposit after it was made.
    pub history: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum DepositStatus {
    Active,
    /// A tombstone: the text is gone, its hash and receipt remain.
    Withdrawn {
        log_index: u64,
        at: u64,
    },
    /// Removed by the commons (a ruling or a decision at `log_index`): also a tombstone.
    Removed {
        log_index: u64,
        at: u64,
    },
}

impl DepositStatus {
    /// Whether the text is gone (withdrawn or removed).
    pub fn is_gone(&self) -> bool {
        !matches!(self, DepositStatus::Active)
    }

    /// The log index of the entry that withdrew or removed the text, if one did.
    pub fn gone_at(&self) -> Option<u64> {
        match self {
            DepositStatus::Active => None,
            DepositStatus::Withdrawn { log_index, .. } | DepositStatus::Removed { log_index, .. } => {
                Some(*log_index)
            }
        }
    }
}

/// What one entry changed: the records after the change.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Commons(Commons),
    Deposit(DepositRecord),
    /// A governance record (member, proposal, vote, credits…).
    Record(Record),
}

/// Why an event cannot enter the log now. Serialisable so that a node that forwarded an event
/// can give its sender the sequencer's own refusal.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rejection {
    #[error("the commons has no genesis yet; the first entry must be its genesis")]
    NoGenesis,
    #[error("the commons already has a genesis")]
    SecondGenesis,
    #[error("the genesis is signed by {signer}, not by the log key it declares ({expected})")]
    GenesisSigner { signer: String, expected: String },
    #[error("the genesis log key is not a signed-note verifier key: {0}")]
    GenesisLogKey(String),
    #[error("unknown register '{register}'; this commons' registers are: {}", vocabulary.join(", "))]
    UnknownRegister { register: String, vocabulary: Vec<String> },
    #[error("{cid} is already deposited as {handle}")]
    AlreadyDeposited { cid: String, handle: String },
    #[error("no deposit has the CID {0}")]
    UnknownDeposit(String),
    #[error("only the depositor ({depositor}) may change {cid}; this event is signed by {signer}")]
    NotDepositor { cid: String, depositor: String, signer: String },
    #[error("{0} was withdrawn or removed; its tombstone cannot change")]
    Withdrawn(String),
    #[error(
        "consent can only be narrowed (public → commons → training-only → local); {from} → {to} widens it"
    )]
    ConsentWidening { from: ConsentTier, to: ConsentTier },
    #[error("consent on {cid} is already {tier}")]
    ConsentUnchanged { cid: String, tier: ConsentTier },
    #[error("this act (the same statement signed by the same keys) is already in the log at index {0}")]
    Duplicate(u64),
    #[error("entry {got} applied out of order; the state expects entry {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("the text is {size} bytes; this commons accepts at most {max} (parameter deposit.max-bytes)")]
    TooLarge { size: u64, max: u64 },
    #[error(
        "{0} is not a verified member of this commons; a steward attests members (`substrate member attest`)"
    )]
    NotMember(String),
    #[error("{who}'s membership expired at {expired}; a steward renews it with a new attestation")]
    MembershipExpired { who: String, expired: String },
    #[error("{0} is not a steward (a board member) of this commons; only stewards may do this")]
    NotSteward(String),
    #[error("{0} is not the log key; only the sequencer signs decisions")]
    NotLogKey(String),
    #[error("no proposal has the id {0}; `substrate proposals` lists them")]
    UnknownProposal(u64),
    #[error("voting on proposal {proposal} closed at {closed}")]
    VotingClosed { proposal: u64, closed: String },
    #[error("the ballot on proposal {proposal} is refused: {fault}")]
    Ballot { proposal: u64, fault: crate::governance::acts::BallotFault },
    #[error("the proposal is refused: {0}")]
    Proposal(crate::governance::acts::ProposalFault),
    #[error(
        "the decision on proposal {proposal} differs from the tally of the log: stated {stated}, recomputed {recomputed}"
    )]
    DecisionMismatch { proposal: u64, stated: String, recomputed: String },
    #[error(
        "proposal {proposal} has closed and its decision comes first; the sequencer appends it within a moment, then retry"
    )]
    DecisionPending { proposal: u64 },
    #[error("no dispute has the id {0}; `substrate dispute list` lists them")]
    UnknownDispute(u64),
    #[error(
        "{0} is not a registered node of this commons; its operator registers it with `substrate node-register`"
    )]
    UnregisteredNode(String),
    #[error("entry {0} is not a decision that set the mixture; `substrate mixture` names the one in force")]
    NotAMixtureDecision(u64),
    #[error(
        "a snapshot of the first {size} entries cannot follow the decision at entry {decision} and come before this entry ({index})"
    )]
    SnapshotSize { size: u64, decision: u64, index: u64 },
    #[error(
        "the snapshot of the first {size} entries is not the one stated: stated {stated}, recomputed from the log {recomputed}"
    )]
    SnapshotMismatch { size: u64, stated: String, recomputed: String },
    #[error("the adapter {adapter} is already published as adapter {id}")]
    AdapterPublished { adapter: String, id: u64 },
    #[error("an attestation holds 1 to {max} days (the commons' attestation.days), not {days}")]
    AttestationDays { days: u32, max: u32 },
    #[error("{0} is a registered node key; persons and nodes have different keys")]
    NodeKeyNotPerson(String),
    #[error("{0} was revoked as a duplicate of someone already verified and cannot be attested again")]
    RevokedDuplicate(String),
    #[error("nobody can attest or vouch for themselves")]
    SelfAttestation,
    #[error("{0} lost the right to vouch by vouching for a duplicate")]
    MayNotVouch(String),
    #[error("{person} is {status}; only a steward can attest them again")]
    StewardOnly { person: String, status: String },
    #[error(
        "{person} is a steward; revoking a steward takes {needed} stewards' signatures in one envelope, this has {got}"
    )]
    StewardRevocation { person: String, needed: usize, got: usize },
    #[error("{0} is already revoked")]
    AlreadyRevoked(String),
    #[error("node {node} is already registered to {operator}")]
    NodeTaken { node: String, operator: String },
    #[error("{0} is a person's key, not a node key")]
    PersonKeyNotNode(String),
    #[error("{0}")]
    NodeBinding(String),
    #[error("proposal {0} is already decided")]
    AlreadyDecided(u64),
    #[error("proposal {proposal} closes at {closes}; it cannot be decided before")]
    DecisionEarly { proposal: u64, closes: String },
    #[error("a wrong-register dispute names the register the deposit should carry")]
    DisputeRegister,
    #[error(
        "dispute {0} is already ruled on; an appeal goes to the contributor chamber as a resolve-dispute proposal"
    )]
    AlreadyRuled(u64),
    #[error(
        "every signer of this ruling has already endorsed it on dispute {0}; it takes effect when other stewards sign the same ruling"
    )]
    AlreadyEndorsed(u64),
    #[error("{cid} already carries the register {register}")]
    SameRegister { cid: String, register: String },
    #[error("the job receipt is not verified compute: {0}")]
    Compute(crate::governance::acts::ComputeFault),
    #[error("{0}")]
    Job(crate::governance::jobs::JobFault),
    #[error("{0}")]
    Token(crate::governance::tokens::TokenFault),
    #[error("{0}")]
    Usage(crate::governance::usage::UsageFault),
    #[error("{0}")]
    Doi(crate::governance::doi::DoiFault),
    #[error("the genesis names the steward '{steward}', which is not a did:key: {detail}")]
    GenesisSteward { steward: String, detail: String },
}

/// What applying an entry did.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub index: u64,
    pub changes: Vec<Change>,
}

/// A state is whole or held in part.
///
/// A state folded from the log ([`State::new`] and [`State::apply`]) is *whole*: every deposit,
/// act and vote is in memory. A ledger keeps those in its tables instead, so that opening a
/// large commons costs little: its state is *partial* ([`State::restore`], [`State::release`])
/// and holds the commons, the governance records other than votes, and whatever its current
/// batch loaded or wrote. Before it applies an entry, the ledger loads what the fold of that
/// entry reads ([`State::reads`]); the fold itself never knows the difference.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub(crate) commons: Option<Commons>,
    /// Every deposit (whole), or those loaded and written since the last release (partial).
    pub(crate) deposits: HashMap<Cid, DepositRecord>,
    pub(crate) governance: Governance,
    /// Every act in the log by its [`SignedEvent::act_digest`] (whole), or those loaded and
    /// written since the last release: the same signers' same statement is one act, whoever else
    /// signs the same words.
    acts: HashMap<[u8; 32], u64>,
    size: u64,
    root: [u8; 32],
    /// Whether deposits, acts and votes are held in part.
    partial: bool,
}

/// What the fold of one entry reads beyond what a partial state holds: the deposits, the act and
/// the votes a ledger loads from its tables before applying it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    /// The entry's act, to find it already in the log.
    pub act: Option<[u8; 32]>,
    pub deposits: std::collections::BTreeSet<Cid>,
    /// Every deposit: an adapter's snapshot is recomputed from all of them.
    pub every_deposit: bool,
    /// Every vote on these proposals.
    pub votes_on: std::collections::BTreeSet<u64>,
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    /// Rebuilds a partial state from materialised records, without replaying: `size` and `root`
    /// come from the checkpoint the records were stored with. Deposits, acts and votes stay in
    /// the tables; [`State::reads`] says which to load before applying an entry. Vote records
    /// among `records` are held as loaded.
    pub fn restore(
        commons: Option<Commons>,
        records: impl IntoIterator<Item = Record>,
        size: u64,
        root: [u8; 32],
    ) -> State {
        let state_encoding = commons.as_ref().map_or(LEGACY_STATE_ENCODING, |c| c.state_encoding);
        State {
            commons,
            deposits: HashMap::new(),
            governance: Governance::restore(records, state_encoding),
            acts: HashMap::new(),
            size,
            root,
            partial: true,
        }
    }

    /// Whether deposits, acts and votes are held in part (see [`State`]).
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// Drops the deposits, acts and votes held, keeping everything else; the state is partial
    /// from now on. A ledger calls this once what it wrote is in its tables.
    pub fn release(&mut self) {
        self.deposits = HashMap::new();
        self.acts = HashMap::new();
        self.governance.release_votes();
        self.partial = true;
    }

    /// Holds `record` as loaded from the tables, unless the state holds a newer one.
    pub fn load_deposit(&mut self, record: DepositRecord) {
        self.deposits.entry(record.cid.clone()).or_insert(record);
    }

    /// Holds the act `digest` at `index`, as loaded from the tables.
    pub fn load_act(&mut self, digest: [u8; 32], index: u64) {
        self.acts.entry(digest).or_insert(index);
    }

    /// Holds `votes` as loaded from the tables, unless the state holds a newer vote of the same
    /// voter on the same proposal.
    pub fn load_votes(&mut self, votes: impl IntoIterator<Item = crate::governance::book::VoteRecord>) {
        self.governance.load_votes(votes);
    }

    /// What the fold of `signed` reads of deposits, acts and votes (see [`State`]).
    pub fn reads(&self, signed: &SignedEvent) -> Reads {
        let mut reads = Reads { act: Some(signed.act_digest()), ..Reads::default() };
        let disputed = |id: &u64| self.governance.disputes.get(id).map(|d| d.cid.clone());
        match &signed.event {
            Event::Deposit(d) => reads.deposits.extend(d.cid.clone()),
            Event::Withdrawal(w) => reads.deposits.extend(w.cid.clone()),
            Event::ConsentChange(c) => reads.deposits.extend(c.cid.clone()),
            Event::Dispute(d) => reads.deposits.extend(d.cid.clone()),
            Event::DisputeRuling(r) => reads.deposits.extend(disputed(&r.dispute)),
            Event::Proposal(p) => self.action_reads(&p.actions, &mut reads),
            Event::Decision(d) => {
                let decision = self.decision_reads(d.proposal);
                reads.deposits.extend(decision.deposits);
                reads.votes_on.extend(decision.votes_on);
            }
            Event::Adapter(_) => reads.every_deposit = true,
            Event::DoiRegistration(d) => reads.deposits.extend(Cid::parse(&d.cid).ok()),
            _ => {}
        }
        reads
    }

    /// What [`State::decision`] on proposal `id` reads: its votes, and the deposits its actions
    /// name.
    pub fn decision_reads(&self, id: u64) -> Reads {
        let mut reads = Reads { votes_on: std::collections::BTreeSet::from([id]), ..Reads::default() };
        if let Some(proposal) = self.governance.proposals.get(&id) {
            self.action_reads(&proposal.actions, &mut reads);
        }
        reads
    }

    fn action_reads(&self, actions: &[crate::governance::acts::Action], reads: &mut Reads) {
        use crate::governance::acts::Action;
        for action in actions {
            match action {
                Action::RemoveDeposit { cid, .. } => {
                    reads.deposits.insert(cid.clone());
                }
                Action::ResolveDispute { dispute, .. } => {
                    reads.deposits.extend(self.governance.disputes.get(dispute).map(|d| d.cid.clone()));
                }
                _ => {}
            }
        }
    }

    pub fn commons(&self) -> Option<&Commons> {
        self.commons.as_ref()
    }

    /// The deposit `cid`, if held (a partial state holds what it loaded).
    pub fn deposit(&self, cid: &Cid) -> Option<&DepositRecord> {
        self.deposits.get(cid)
    }

    /// Every deposit held: all of them in a whole state.
    pub fn deposits(&self) -> impl Iterator<Item = &DepositRecord> {
        self.deposits.values()
    }

    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    /// The log index holding the act with this [`SignedEvent::act_digest`], if any.
    pub fn act_index(&self, digest: &[u8; 32]) -> Option<u64> {
        self.acts.get(digest).copied()
    }

    /// Number of entries folded in.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The state root after the entries folded in: a hash chain over every entry's canonical
    /// changes, so two nodes agree on it exactly when their folds agreed on every step.
    pub fn root(&self) -> [u8; 32] {
        self.root
    }

    /// Applies the entry at `index`, integrated at `time` (ms since the epoch). On error the
    /// state is unchanged.
    pub fn apply(&mut self, index: u64, time: u64, event: &SignedEvent) -> Result<Applied, Rejection> {
        if index != self.size {
            return Err(Rejection::OutOfOrder { expected: self.size, got: index });
        }
        // The act is checked first, for every kind, so the same signers' same statement is one
        // entry and another signer's is never taken for it.
        let act = event.act_digest();
        if let Some(existing) = self.act_index(&act) {
            return Err(Rejection::Duplicate(existing));
        }
        let changes = self.next(index, time, event)?;
        for change in &changes {
            match change {
                Change::Commons(commons) => {
                    self.governance.state_encoding = commons.state_encoding;
                    self.commons = Some(commons.clone());
                }
                Change::Deposit(record) => {
                    self.deposits.insert(record.cid.clone(), record.clone());
                }
                Change::Record(record) => self.governance.put(record.clone()),
            }
        }
        self.acts.insert(act, index);
        let mut hasher = sha2::Sha256::new();
        match self.commons.as_ref().map_or(LEGACY_STATE_ENCODING, |c| c.state_encoding) {
            LEGACY_STATE_ENCODING => {
                hasher.update(b"substrate/state/v1\n");
                hasher.update(self.root);
                hasher.update(index.to_be_bytes());
                hasher.update(serde_json::to_vec(&changes).unwrap_or_default());
            }
            version => {
                hasher.update(crate::canonical::root_prefix(version));
                hasher.update(self.root);
                hasher.update(index.to_be_bytes());
                hasher.update(crate::canonical::changes(version, &changes));
            }
        }
        self.root = hasher.finalize().into();
        self.size += 1;
        Ok(Applied { index, changes })
    }

    /// The changes `event` would make as entry `index`.
    fn next(&self, index: u64, time: u64, signed: &SignedEvent) -> Result<Vec<Change>, Rejection> {
        let Some(commons) = &self.commons else {
            let Event::Genesis(genesis) = &signed.event else { return Err(Rejection::NoGenesis) };
            let verifier = substrate_tlog::NoteVerifier::from_vkey(&genesis.log_key)
                .map_err(|e| Rejection::GenesisLogKey(e.to_string()))?;
            let log_did = crate::identity::did_of(verifier.verifying_key());
            if signed.signer != log_did {
                return Err(Rejection::GenesisSigner { signer: signed.signer.clone(), expected: log_did });
            }
            let mut params = Parameters::new(genesis.registers.clone());
            if let Some(windows) = genesis.windows {
                params.windows = windows;
            }
            let expires_at = time.saturating_add(u64::from(params.attestation_days) * DAY_MS);
            let mut changes = vec![
                Change::Commons(Commons {
                    name: genesis.name.clone(),
                    origin: genesis.origin.clone(),
                    log_key: genesis.log_key.clone(),
                    log_did,
                    handle_prefix: genesis.handle_prefix.clone(),
                    founded_at: time,
                    state_encoding: genesis.state_encoding.unwrap_or(LEGACY_STATE_ENCODING),
                }),
                Change::Record(Record::Parameters(params)),
                Change::Record(Record::Board(Board { members: genesis.stewards.clone(), elected_by: None })),
            ];
            // The founding stewards are the first verified members.
            for steward in &genesis.stewards {
                crate::identity::key_of(steward).map_err(|e| Rejection::GenesisSteward {
                    steward: steward.clone(),
                    detail: e.to_string(),
                })?;
                changes.push(Change::Record(Record::Member(Member {
                    person: steward.clone(),
                    status: MemberStatus::Verified,
                    expires_at,
                    attested_by: vec![signed.signer.clone()],
                    vouches: Vec::new(),
                    may_vouch: true,
                    history: vec![index],
                })));
            }
            return Ok(changes);
        };
        // Nothing enters the log after a proposal's close until it is decided, so every decision
        // is tallied on the state exactly as it stood at the close.
        match (&signed.event, self.governance.next_close()) {
            (Event::Decision(d), Some((_, first))) if d.proposal != first => {
                return Err(Rejection::DecisionPending { proposal: first });
            }
            (Event::Decision(_), _) => {}
            (_, Some((closes, first))) if time >= closes => {
                return Err(Rejection::DecisionPending { proposal: first });
            }
            _ => {}
        }
        match &signed.event {
            Event::Genesis(_) => Err(Rejection::SecondGenesis),
            Event::Deposit(deposit) => {
                let cid = deposit.cid.clone().ok_or(Rejection::NoGenesis)?;
                // The vocabulary is a governable parameter; genesis set its first value.
                let vocabulary =
                    self.governance.parameters().map(|p| p.registers.as_slice()).unwrap_or_default();
                for register in std::iter::once(&deposit.register).chain(&deposit.secondary_registers) {
                    if !vocabulary.contains(register) {
                        return Err(Rejection::UnknownRegister {
                            register: register.to_string(),
                            vocabulary: vocabulary.iter().map(ToString::to_string).collect(),
                        });
                    }
                }
                if let Some(existing) = self.deposits.get(&cid) {
                    return Err(Rejection::AlreadyDeposited {
                        cid: cid.to_string(),
                        handle: existing.handle.clone(),
                    });
                }
                let max = self.governance.parameters().map_or(u64::MAX, |p| p.deposit_max_bytes);
                if deposit.size > max {
                    return Err(Rejection::TooLarge { size: deposit.size, max });
                }
                let mut changes = vec![Change::Deposit(DepositRecord {
                    handle: format!("{}{index}", commons.handle_prefix),
                    cid,
                    log_index: index,
                    depositor: signed.signer.clone(),
                    register: deposit.register.clone(),
                    secondary_registers: deposit.secondary_registers.clone(),
                    consent: deposit.consent,
                    title: deposit.title.clone(),
                    language: deposit.language.clone(),
                    license: deposit.license.clone(),
                    media_type: deposit.media_type.clone(),
                    size: deposit.size,
                    deposited_at: time,
                    status: DepositStatus::Active,
                    history: Vec::new(),
                })];
                changes.extend(self.deposit_credits(&signed.signer, time));
                Ok(changes)
            }
            Event::Withdrawal(withdrawal) => {
                let mut record = self.changeable(withdrawal.cid.as_ref(), &signed.signer)?;
                record.status = DepositStatus::Withdrawn { log_index: index, at: time };
                record.history.push(index);
                Ok(vec![Change::Deposit(record)])
            }
            Event::ConsentChange(change) => {
                let mut record = self.changeable(change.cid.as_ref(), &signed.signer)?;
                if record.consent == change.consent {
                    return Err(Rejection::ConsentUnchanged {
                        cid: record.cid.to_string(),
                        tier: change.consent,
                    });
                }
                if !record.consent.narrows_to(change.consent) {
                    return Err(Rejection::ConsentWidening { from: record.consent, to: change.consent });
                }
                record.consent = change.consent;
                record.history.push(index);
                Ok(vec![Change::Deposit(record)])
            }
            _ => self.next_governance(index, time, signed, commons),
        }
    }

    /// The active deposit `cid`, if `signer` deposited it.
    fn changeable(&self, cid: Option<&Cid>, signer: &str) -> Result<DepositRecord, Rejection> {
        let cid = cid.ok_or(Rejection::NoGenesis)?;
        let record = self.deposits.get(cid).ok_or_else(|| Rejection::UnknownDeposit(cid.to_string()))?;
        if record.depositor != signer {
            return Err(Rejection::NotDepositor {
                cid: cid.to_string(),
                depositor: record.depositor.clone(),
                signer: signer.to_owned(),
            });
        }
        if record.status.is_gone() {
            return Err(Rejection::Withdrawn(cid.to_string()));
        }
        Ok(record.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::deposit;
    use crate::event::{ConsentChange, Genesis, Withdrawal};
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn genesis(log: &SigningKey) -> SignedEvent {
        let signer = substrate_tlog::NoteSigner::new("test.example/commons", log.clone()).expect("signer");
        SignedEvent::sign(
            Event::Genesis(Genesis {
                name: "test".into(),
                origin: "test.example/commons".into(),
                log_key: signer.verifier().to_vkey(),
                registers: Register::defaults(),
                handle_prefix: "tag:test.example,2026:d/".into(),
                created: "2026-11-22T00:00:00.000Z".into(),
                stewards: Vec::new(),
                windows: None,
                state_encoding: Some(crate::canonical::VERSION),
            }),
            log,
        )
    }

    fn consent(cid: &Cid, tier: ConsentTier, nonce: u32) -> Event {
        Event::ConsentChange(ConsentChange {
            cid: Some(cid.clone()),
            consent: tier,
            requested: nonce.to_string(),
        })
    }

    fn founded() -> (State, SigningKey) {
        let log = SigningKey::from_bytes(&[42u8; 32]);
        let mut state = State::new();
        state.apply(0, 1, &genesis(&log)).expect("genesis");
        (state, log)
    }

    #[test]
    fn deposit_then_withdraw_by_depositor_only() {
        let (mut state, _) = founded();
        let alice = SigningKey::from_bytes(&[1u8; 32]);
        let bob = SigningKey::from_bytes(&[2u8; 32]);
        let cid = Cid::of(b"story");
        let applied = state
            .apply(1, 10, &SignedEvent::sign(deposit(b"story", "narrative", ConsentTier::Public), &alice))
            .expect("deposit");
        assert!(matches!(applied.changes[0], Change::Deposit(_)), "{:?}", applied.changes);
        assert_eq!(state.deposit(&cid).map(|d| d.handle.as_str()), Some("tag:test.example,2026:d/1"));

        let withdraw = |key: &SigningKey| {
            SignedEvent::sign(
                Event::Withdrawal(Withdrawal { cid: Some(cid.clone()), reason: None, requested: "t".into() }),
                key,
            )
        };
        assert!(matches!(state.apply(2, 11, &withdraw(&bob)), Err(Rejection::NotDepositor { .. })));
        state.apply(2, 11, &withdraw(&alice)).expect("withdraw");
        assert_eq!(
            state.deposit(&cid).map(|d| d.status.clone()),
            Some(DepositStatus::Withdrawn { log_index: 2, at: 11 })
        );
        let again = SignedEvent::sign(consent(&cid, ConsentTier::Local, 1), &alice);
        assert!(matches!(state.apply(3, 12, &again), Err(Rejection::Withdrawn(_))));
    }

    #[test]
    fn refusals_leave_the_state_unchanged() {
        let (mut state, _) = founded();
        let alice = SigningKey::from_bytes(&[1u8; 32]);
        let root = state.root();
        let unknown = SignedEvent::sign(deposit(b"x", "poetry", ConsentTier::Public), &alice);
        let err = state.apply(1, 5, &unknown).expect_err("unknown register");
        assert!(err.to_string().contains("narrative, conversational"), "{err}");
        assert_eq!((state.size(), state.root()), (1, root));

        let signed = SignedEvent::sign(deposit(b"x", "oral", ConsentTier::Commons), &alice);
        state.apply(1, 5, &signed).expect("deposit");
        assert_eq!(state.apply(2, 6, &signed), Err(Rejection::Duplicate(1)));
        let widen = SignedEvent::sign(consent(&Cid::of(b"x"), ConsentTier::Public, 0), &alice);
        assert!(matches!(state.apply(2, 6, &widen), Err(Rejection::ConsentWidening { .. })));
    }

    #[test]
    fn genesis_must_be_signed_by_its_log_key() {
        let log = SigningKey::from_bytes(&[42u8; 32]);
        let mut forged = genesis(&log);
        forged = SignedEvent::sign(forged.event, &SigningKey::from_bytes(&[43u8; 32]));
        assert!(matches!(State::new().apply(0, 0, &forged), Err(Rejection::GenesisSigner { .. })));
        let alice = SigningKey::from_bytes(&[1u8; 32]);
        let early = SignedEvent::sign(deposit(b"x", "oral", ConsentTier::Public), &alice);
        assert_eq!(State::new().apply(0, 0, &early), Err(Rejection::NoGenesis));
    }

    proptest! {
        /// Whatever sequence of consent changes is attempted, consent only ever narrows, and
        /// folding the accepted events again gives the same root.
        #[test]
        fn consent_never_widens_and_replay_is_deterministic(tiers in proptest::collection::vec(0usize..4, 1..12)) {
            let (mut state, log) = founded();
            let alice = SigningKey::from_bytes(&[1u8; 32]);
            let cid = Cid::of(b"t");
            let mut accepted = vec![genesis(&log)];
            let first = SignedEvent::sign(deposit(b"t", "lyric", ConsentTier::Public), &alice);
            state.apply(1, 1, &first).expect("deposit");
            accepted.push(first);
            let mut current = ConsentTier::Public;
            for (nonce, tier) in tiers.into_iter().enumerate() {
                let tier = ConsentTier::ALL[tier];
                let event = SignedEvent::sign(consent(&cid, tier, nonce as u32), &alice);
                let index = state.size();
                match state.apply(index, index, &event) {
                    Ok(_) => { prop_assert!(current.narrows_to(tier)); current = tier; accepted.push(event); }
                    Err(_) => prop_assert!(!current.narrows_to(tier)),
                }
                prop_assert_eq!(state.deposit(&cid).map(|d| d.consent), Some(current));
            }
            let mut again = State::new();
            for (index, event) in accepted.iter().enumerate() {
                let time = if index == 0 { 1 } else { index as u64 };
                again.apply(index as u64, time, event).expect("replays");
            }
            prop_assert_eq!(again.root(), state.root());
        }
    }
}
