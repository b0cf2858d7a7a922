//! The signed events a commons log holds. Each event kind is one in-toto predicate type, and every
//! event travels as a DSSE envelope around its statement.

use ed25519_dalek::SigningKey;

use crate::PREDICATE_BASE;
use crate::adapter::{AdapterPublication, MAX_ADAPTER_NAME, is_sha256_hex};
use crate::cid::{Cid, CidError};
use crate::envelope::{Envelope, EnvelopeError, SignatureCheck};
use crate::governance::acts::{
    Attestation, Decision, Dispute, DisputeRuling, JobReceipt, MAX_ACTIONS, MAX_PROPOSAL_SUMMARY,
    MAX_PROPOSAL_TITLE, NodeRegistration, Proposal, Revocation, VoteCast,
};
use crate::governance::doi::DoiRegistration;
use crate::governance::jobs::{JobInput, JobRequest, JobResult, JobSchedule, NodeOffer};
use crate::governance::params::Windows;
use crate::governance::tokens::{TokenGrant, TokenRevocation};
use crate::governance::usage::UsageReport;
use crate::register::{ConsentTier, Register};
use crate::statement::{STATEMENT_TYPE, Statement, Subject};

/// Longest title, license and language tag a deposit may carry (characters).
pub const MAX_TITLE: usize = 300;
pub const MAX_LICENSE: usize = 100;
pub const MAX_LANGUAGE: usize = 35;
pub const MAX_SECONDARY_REGISTERS: usize = 8;
pub const MAX_REASON: usize = 1000;
/// The most registers a vocabulary may have (a decision lists a weight for each).
pub const MAX_REGISTERS: usize = 64;
/// The largest envelope the log accepts: an entry must fit a tlog-tiles entry bundle (u16 length).
pub const MAX_ENVELOPE_BYTES: usize = 60 * 1024;

/// The commons' founding event, signed by its log key; always entry 0.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Genesis {
    pub name: String,
    /// The checkpoint origin line, also the log key's name.
    pub origin: String,
    /// The log's signed-note verifier key.
    pub log_key: String,
    pub registers: Vec<Register>,
    /// Prefix of every deposit handle; the log index follows it.
    pub handle_prefix: String,
    pub created: String,
    /// The founding stewards (did:key): the first board, who attest the first members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stewards: Vec<String>,
    /// Voting windows other than the defaults (7, 7 and 14 days), e.g. seconds for a test commons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Windows>,
    /// The state root's encoding of each entry's changes and the arithmetic of decisions
    /// (`crate::canonical::VERSION` for a new commons, or an earlier one of
    /// `crate::canonical::VERSIONS`); absent in the logs founded before there was a choice, which
    /// keep version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_encoding: Option<u32>,
}

/// A text entering the commons. The subject is the text's CID and sha256.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deposit {
    #[serde(skip)]
    pub cid: Option<Cid>,
    pub register: Register,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_registers: Vec<Register>,
    pub consent: ConsentTier,
    pub title: String,
    pub language: String,
    pub license: String,
    pub media_type: String,
    pub size: u64,
    pub created: String,
}

/// The depositor takes a text back: the blob is deleted, a tombstone stays.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Withdrawal {
    #[serde(skip)]
    pub cid: Option<Cid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub requested: String,
}

/// The depositor narrows consent on a text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsentChange {
    #[serde(skip)]
    pub cid: Option<Cid>,
    pub consent: ConsentTier,
    pub requested: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Genesis(Genesis),
    Deposit(Deposit),
    Withdrawal(Withdrawal),
    ConsentChange(ConsentChange),
    Attestation(Attestation),
    Revocation(Revocation),
    NodeRegistration(NodeRegistration),
    Proposal(Proposal),
    Vote(VoteCast),
    Decision(Decision),
    Dispute(Dispute),
    DisputeRuling(DisputeRuling),
    JobReceipt(JobReceipt),
    Adapter(AdapterPublication),
    NodeOffer(NodeOffer),
    JobRequest(JobRequest),
    JobSchedule(JobSchedule),
    JobResult(JobResult),
    TokenGrant(TokenGrant),
    TokenRevocation(TokenRevocation),
    Usage(UsageReport),
    DoiRegistration(DoiRegistration),
}

/// Every event kind, as named in predicate types.
pub const KINDS: [&str; 22] = [
    "genesis",
    "deposit",
    "withdrawal",
    "consent-change",
    "attestation",
    "revocation",
    "node-registration",
    "proposal",
    "vote",
    "decision",
    "dispute",
    "dispute-ruling",
    "job-receipt",
    "adapter",
    "node-offer",
    "job-request",
    "job-schedule",
    "job-result",
    "token-grant",
    "token-revocation",
    "usage",
    "doi-registration",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("the envelope is not JSON of a DSSE envelope: {0}")]
    EnvelopeJson(String),
    #[error("the envelope is {0} bytes; at most {MAX_ENVELOPE_BYTES} are accepted")]
    EnvelopeTooLarge(usize),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("the payload is not an in-toto Statement v1: {0}")]
    Statement(String),
    #[error(
        "unknown predicate type '{0}'; the known kinds are {kinds} under {PREDICATE_BASE}", kinds = KINDS.join(", ")
    )]
    UnknownPredicate(String),
    #[error("the {kind} predicate is malformed: {detail}")]
    Predicate { kind: &'static str, detail: String },
    #[error("the statement must have exactly one subject with a sha256 digest named by its CID")]
    Subject,
    #[error(transparent)]
    Cid(#[from] CidError),
    #[error("the subject's sha256 {digest} does not match its CID {cid}")]
    SubjectDigest { cid: String, digest: String },
    #[error("{field} is invalid: {detail}")]
    Field { field: &'static str, detail: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContentError {
    #[error("the content is empty; deposit a non-empty text")]
    Empty,
    #[error("the content's sha256 is {actual}, but the signed statement's subject says {stated}")]
    DigestMismatch { stated: String, actual: String },
    #[error("the content is {actual} bytes, but the signed statement says {stated}")]
    SizeMismatch { stated: u64, actual: u64 },
    #[error("the content is not UTF-8 text (offset {0}); only text/plain UTF-8 deposits are accepted")]
    NotUtf8(usize),
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Genesis(_) => "genesis",
            Event::Deposit(_) => "deposit",
            Event::Withdrawal(_) => "withdrawal",
            Event::ConsentChange(_) => "consent-change",
            Event::Attestation(_) => "attestation",
            Event::Revocation(_) => "revocation",
            Event::NodeRegistration(_) => "node-registration",
            Event::Proposal(_) => "proposal",
            Event::Vote(_) => "vote",
            Event::Decision(_) => "decision",
            Event::Dispute(_) => "dispute",
            Event::DisputeRuling(_) => "dispute-ruling",
            Event::JobReceipt(_) => "job-receipt",
            Event::Adapter(_) => "adapter",
            Event::NodeOffer(_) => "node-offer",
            Event::JobRequest(_) => "job-request",
            Event::JobSchedule(_) => "job-schedule",
            Event::JobResult(_) => "job-result",
            Event::TokenGrant(_) => "token-grant",
            Event::TokenRevocation(_) => "token-revocation",
            Event::Usage(_) => "usage",
            Event::DoiRegistration(_) => "doi-registration",
        }
    }

    /// Whether envelopes of this kind may carry several signatures (k board members on a ruling
    /// or on revoking a steward, a worker and its verifiers on a job receipt); every other kind
    /// has exactly one.
    pub fn cosignable(&self) -> bool {
        matches!(self, Event::DisputeRuling(_) | Event::JobReceipt(_) | Event::Revocation(_))
    }

    pub fn predicate_type(kind: &str) -> String {
        format!("{PREDICATE_BASE}{kind}/v1")
    }

    /// The deposit this event concerns, if any.
    pub fn cid(&self) -> Option<&Cid> {
        match self {
            Event::Genesis(_) => None,
            Event::Deposit(d) => d.cid.as_ref(),
            Event::Withdrawal(w) => w.cid.as_ref(),
            Event::ConsentChange(c) => c.cid.as_ref(),
            Event::Dispute(d) => d.cid.as_ref(),
            _ => None,
        }
    }

    pub fn to_statement(&self) -> Statement {
        let (subject, predicate) = match self {
            Event::Genesis(g) => (
                vec![Subject::sha256(g.origin.clone(), hex::encode(crate::sha256(g.log_key.as_bytes())))],
                serde_json::to_value(g),
            ),
            Event::Deposit(d) => (subjects(d.cid.as_ref()), serde_json::to_value(d)),
            Event::Withdrawal(w) => (subjects(w.cid.as_ref()), serde_json::to_value(w)),
            Event::ConsentChange(c) => (subjects(c.cid.as_ref()), serde_json::to_value(c)),
            Event::Attestation(a) => (named(&a.person), serde_json::to_value(a)),
            Event::Revocation(r) => (named(&r.person), serde_json::to_value(r)),
            Event::NodeRegistration(n) => (named(&n.node), serde_json::to_value(n)),
            Event::Proposal(p) => (named(&p.title), serde_json::to_value(p)),
            Event::Vote(v) => (named(&format!("proposal/{}", v.proposal)), serde_json::to_value(v)),
            Event::Decision(d) => (named(&format!("proposal/{}", d.proposal)), serde_json::to_value(d)),
            Event::Dispute(d) => (subjects(d.cid.as_ref()), serde_json::to_value(d)),
            Event::DisputeRuling(r) => (named(&format!("dispute/{}", r.dispute)), serde_json::to_value(r)),
            Event::JobReceipt(j) => (named(&j.workload), serde_json::to_value(j)),
            Event::Adapter(a) => {
                (vec![Subject::sha256(a.name.clone(), a.adapter.clone())], serde_json::to_value(a))
            }
            Event::NodeOffer(o) => (named(&o.node), serde_json::to_value(o)),
            Event::JobRequest(r) => (named(&r.workload), serde_json::to_value(r)),
            Event::JobSchedule(s) => (named(&format!("job/{}", s.job)), serde_json::to_value(s)),
            Event::JobResult(r) => (named(&format!("job/{}", r.job)), serde_json::to_value(r)),
            Event::TokenGrant(t) => (named(&format!("token/{}", t.token)), serde_json::to_value(t)),
            Event::TokenRevocation(t) => (named(&format!("token/{}", t.token)), serde_json::to_value(t)),
            Event::Usage(u) => (named(&format!("usage/{}/{}", u.node, u.seq)), serde_json::to_value(u)),
            Event::DoiRegistration(d) => (named(&format!("doi/{}", d.cid)), serde_json::to_value(d)),
        };
        Statement {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject,
            predicate_type: Event::predicate_type(self.kind()),
            predicate: predicate.unwrap_or_default(),
        }
    }

    pub fn from_statement(statement: Statement) -> Result<Event, EventError> {
        if statement.statement_type != STATEMENT_TYPE {
            return Err(EventError::Statement(format!(
                "_type is '{}', expected '{STATEMENT_TYPE}'",
                statement.statement_type
            )));
        }
        let kind = statement
            .predicate_type
            .strip_prefix(PREDICATE_BASE)
            .and_then(|rest| rest.strip_suffix("/v1"))
            .unwrap_or_default();
        fn predicate<T: serde::de::DeserializeOwned>(
            kind: &'static str,
            value: serde_json::Value,
        ) -> Result<T, EventError> {
            serde_json::from_value(value).map_err(|e| EventError::Predicate { kind, detail: e.to_string() })
        }
        let event = match kind {
            "genesis" => Event::Genesis(predicate("genesis", statement.predicate)?),
            "deposit" => {
                let mut d: Deposit = predicate("deposit", statement.predicate)?;
                d.cid = Some(subject_cid(&statement.subject)?);
                Event::Deposit(d)
            }
            "withdrawal" => {
                let mut w: Withdrawal = predicate("withdrawal", statement.predicate)?;
                w.cid = Some(subject_cid(&statement.subject)?);
                Event::Withdrawal(w)
            }
            "consent-change" => {
                let mut c: ConsentChange = predicate("consent-change", statement.predicate)?;
                c.cid = Some(subject_cid(&statement.subject)?);
                Event::ConsentChange(c)
            }
            "attestation" => Event::Attestation(predicate("attestation", statement.predicate)?),
            "revocation" => Event::Revocation(predicate("revocation", statement.predicate)?),
            "node-registration" => {
                Event::NodeRegistration(predicate("node-registration", statement.predicate)?)
            }
            "proposal" => Event::Proposal(predicate("proposal", statement.predicate)?),
            "vote" => Event::Vote(predicate("vote", statement.predicate)?),
            "decision" => Event::Decision(predicate("decision", statement.predicate)?),
            "dispute" => {
                let mut d: Dispute = predicate("dispute", statement.predicate)?;
                d.cid = Some(subject_cid(&statement.subject)?);
                Event::Dispute(d)
            }
            "dispute-ruling" => Event::DisputeRuling(predicate("dispute-ruling", statement.predicate)?),
            "job-receipt" => Event::JobReceipt(predicate("job-receipt", statement.predicate)?),
            "node-offer" => Event::NodeOffer(predicate("node-offer", statement.predicate)?),
            "job-request" => Event::JobRequest(predicate("job-request", statement.predicate)?),
            "job-schedule" => Event::JobSchedule(predicate("job-schedule", statement.predicate)?),
            "job-result" => Event::JobResult(predicate("job-result", statement.predicate)?),
            "token-grant" => Event::TokenGrant(predicate("token-grant", statement.predicate)?),
            "token-revocation" => Event::TokenRevocation(predicate("token-revocation", statement.predicate)?),
            "usage" => Event::Usage(predicate("usage", statement.predicate)?),
            "doi-registration" => Event::DoiRegistration(predicate("doi-registration", statement.predicate)?),
            "adapter" => {
                let a: AdapterPublication = predicate("adapter", statement.predicate)?;
                let [subject] = statement.subject.as_slice() else { return Err(EventError::Subject) };
                if subject.digest.get("sha256") != Some(&a.adapter) || subject.name != a.name {
                    return Err(EventError::Field {
                        field: "subject",
                        detail: "the subject is the adapter weights: its name and sha256 are the predicate's name and adapter".into(),
                    });
                }
                Event::Adapter(a)
            }
            _ => return Err(EventError::UnknownPredicate(statement.predicate_type)),
        };
        event.validate()?;
        Ok(event)
    }

    /// The first of this event's text fields that holds a control character: NUL, an escape, a
    /// bell and the like, anywhere; a line break or tab in a one-line field (a title, a licence,
    /// a name). Nodes refuse such events when they are submitted. The fold does not check this:
    /// logs written before the check still replay as they were.
    pub fn control_characters(&self) -> Option<&'static str> {
        let one_line = |text: &str| text.chars().any(char::is_control);
        let lines = |text: &str| text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
        let fields: Vec<(&'static str, &str, bool)> = match self {
            Event::Genesis(g) => vec![("name", &g.name, false), ("origin", &g.origin, false)],
            Event::Deposit(d) => vec![
                ("title", &d.title, false),
                ("language", &d.language, false),
                ("license", &d.license, false),
                ("mediaType", &d.media_type, false),
                ("created", &d.created, false),
            ],
            Event::Withdrawal(w) => w.reason.iter().map(|r| ("reason", r.as_str(), true)).collect(),
            Event::Attestation(a) => a.note.iter().map(|n| ("note", n.as_str(), true)).collect(),
            Event::Revocation(r) => vec![("reason", &r.reason, true)],
            Event::Proposal(p) => {
                let mut fields = vec![("title", p.title.as_str(), false)];
                fields.extend(p.summary.iter().map(|s| ("summary", s.as_str(), true)));
                fields
            }
            Event::Dispute(d) => vec![("detail", &d.detail, true)],
            Event::DisputeRuling(r) => vec![("reason", &r.reason, true)],
            Event::JobRequest(r) => {
                let mut fields = vec![("workload", r.workload.as_str(), false)];
                match &r.input {
                    JobInput::Embed { texts } => {
                        fields.extend(texts.iter().map(|t| ("input.texts", t.as_str(), true)))
                    }
                    JobInput::Generate { prompt, .. } => fields.push(("input.prompt", prompt, true)),
                    JobInput::TrainLora { .. } | JobInput::Evaluate { .. } => {}
                }
                fields
            }
            Event::JobResult(r) => r.failure.iter().map(|f| ("failure", f.as_str(), true)).collect(),
            Event::TokenGrant(t) => {
                vec![("label", t.label.as_str(), false), ("expires", t.expires.as_str(), false)]
            }
            Event::JobSchedule(s) => match &s.step {
                crate::governance::jobs::Step::Abandon { reason } => vec![("reason", reason.as_str(), true)],
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        fields
            .into_iter()
            .find(|(_, text, multiline)| if *multiline { lines(text) } else { one_line(text) })
            .map(|(name, _, _)| name)
    }

    /// Stateless checks of field values; what depends on the commons' state is checked by the fold.
    fn validate(&self) -> Result<(), EventError> {
        fn field(ok: bool, field: &'static str, detail: impl Into<String>) -> Result<(), EventError> {
            if ok { Ok(()) } else { Err(EventError::Field { field, detail: detail.into() }) }
        }
        fn did(value: &str, name: &'static str) -> Result<(), EventError> {
            crate::identity::key_of(value)
                .map(|_| ())
                .map_err(|e| EventError::Field { field: name, detail: e.to_string() })
        }
        match self {
            Event::Genesis(g) => {
                field(!g.name.trim().is_empty(), "name", "the commons needs a name")?;
                field(
                    (1..=MAX_REGISTERS).contains(&g.registers.len()),
                    "registers",
                    format!("the vocabulary has 1 to {MAX_REGISTERS} registers"),
                )?;
                let distinct: std::collections::BTreeSet<_> = g.registers.iter().collect();
                field(distinct.len() == g.registers.len(), "registers", "a register is listed twice")?;
                let stewards: std::collections::BTreeSet<_> = g.stewards.iter().collect();
                field(stewards.len() == g.stewards.len(), "stewards", "a steward is listed twice")?;
                field(
                    g.windows.is_none_or(|w| w.ordinary.min(w.resource).min(w.constitutional) >= 1000),
                    "windows",
                    "a voting window is at least one second",
                )?;
                field(
                    g.state_encoding.is_none_or(|v| crate::canonical::VERSIONS.contains(&v)),
                    "stateEncoding",
                    format!(
                        "this node folds state encodings {:?} (or none, for version 1); a new commons uses {}",
                        crate::canonical::VERSIONS,
                        crate::canonical::VERSION
                    ),
                )
            }
            Event::Deposit(d) => {
                let title = d.title.trim();
                field(!title.is_empty(), "title", "a deposit needs a title")?;
                field(
                    d.title.chars().count() <= MAX_TITLE,
                    "title",
                    format!("at most {MAX_TITLE} characters"),
                )?;
                field(
                    language_tag(&d.language),
                    "language",
                    format!("'{}' is not a BCP 47 language tag such as 'en' or 'pt-BR'", d.language),
                )?;
                field(
                    !d.license.is_empty()
                        && d.license.len() <= MAX_LICENSE
                        && !d.license.chars().any(char::is_whitespace),
                    "license",
                    format!("'{}' is not an SPDX identifier such as 'CC-BY-4.0'", d.license),
                )?;
                field(
                    d.media_type.starts_with("text/plain"),
                    "mediaType",
                    format!("'{}' is not accepted; deposits are text/plain", d.media_type),
                )?;
                field(d.size > 0, "size", "the content is empty; deposit a non-empty text")?;
                field(
                    d.secondary_registers.len() <= MAX_SECONDARY_REGISTERS,
                    "secondaryRegisters",
                    format!("at most {MAX_SECONDARY_REGISTERS}"),
                )?;
                field(
                    !d.secondary_registers.contains(&d.register),
                    "secondaryRegisters",
                    "the primary register is repeated among the secondary ones",
                )
            }
            Event::Withdrawal(w) => field(
                w.reason.as_ref().is_none_or(|r| r.chars().count() <= MAX_REASON),
                "reason",
                format!("at most {MAX_REASON} characters"),
            ),
            Event::ConsentChange(_) | Event::Vote(_) | Event::Decision(_) => Ok(()),
            Event::Attestation(a) => did(&a.person, "person"),
            Event::Revocation(r) => {
                did(&r.person, "person")?;
                field(
                    !r.reason.trim().is_empty() && r.reason.chars().count() <= MAX_REASON,
                    "reason",
                    format!("say why, in at most {MAX_REASON} characters"),
                )
            }
            Event::NodeRegistration(n) => did(&n.node, "node"),
            Event::Proposal(p) => {
                field(
                    !p.title.trim().is_empty() && p.title.chars().count() <= MAX_PROPOSAL_TITLE,
                    "title",
                    format!("a proposal needs a title of at most {MAX_PROPOSAL_TITLE} characters"),
                )?;
                field(
                    p.summary.as_ref().is_none_or(|s| s.chars().count() <= MAX_PROPOSAL_SUMMARY),
                    "summary",
                    format!("at most {MAX_PROPOSAL_SUMMARY} characters"),
                )?;
                field(
                    (1..=MAX_ACTIONS).contains(&p.actions.len()),
                    "actions",
                    format!("a proposal carries 1 to {MAX_ACTIONS} actions"),
                )
            }
            Event::Dispute(d) => field(
                !d.detail.trim().is_empty() && d.detail.chars().count() <= MAX_REASON,
                "detail",
                format!("say what is wrong, in at most {MAX_REASON} characters"),
            ),
            Event::DisputeRuling(r) => field(
                r.reason.chars().count() <= MAX_REASON,
                "reason",
                format!("at most {MAX_REASON} characters"),
            ),
            Event::Adapter(a) => {
                field(
                    !a.name.trim().is_empty()
                        && a.name.chars().count() <= MAX_ADAPTER_NAME
                        && !a.name.chars().any(|c| c.is_control() || c == '/'),
                    "name",
                    format!("name the adapter in 1 to {MAX_ADAPTER_NAME} characters, without '/'"),
                )?;
                for (name, digest) in [
                    ("adapter", &a.adapter),
                    ("provenance", &a.provenance),
                    ("baseModel", &a.base_model),
                    ("snapshotRoot", &a.snapshot_root),
                ] {
                    field(is_sha256_hex(digest), name, "a sha256 digest in lowercase hex (64 characters)")?;
                }
                Ok(())
            }
            Event::NodeOffer(o) => {
                did(&o.node, "node")?;
                crate::governance::jobs::validate_offer(o)
                    .map_err(|detail| EventError::Field { field: "offer", detail })
            }
            Event::JobRequest(r) => {
                field(
                    r.workload.split_once('@').is_some_and(|(k, v)| !k.is_empty() && !v.is_empty()),
                    "workload",
                    "name the workload as KIND@VERSION, e.g. embed@1",
                )?;
                crate::governance::jobs::validate_input(&r.input)
                    .map_err(|detail| EventError::Field { field: "input", detail })
            }
            Event::JobSchedule(_) => Ok(()),
            Event::JobResult(r) => did(&r.node, "node"),
            Event::TokenGrant(t) => crate::governance::tokens::validate_grant(t)
                .map_err(|detail| EventError::Field { field: "token-grant", detail }),
            Event::TokenRevocation(t) => crate::governance::tokens::validate_revocation(t)
                .map_err(|detail| EventError::Field { field: "token-revocation", detail }),
            Event::DoiRegistration(d) => crate::governance::doi::validate(d)
                .map_err(|detail| EventError::Field { field: "doi-registration", detail }),
            Event::Usage(u) => {
                did(&u.node, "node")?;
                crate::governance::usage::validate(u)
                    .map_err(|detail| EventError::Field { field: "usage", detail })
            }
            Event::JobReceipt(j) => {
                did(&j.node, "node")?;
                field(!j.workload.trim().is_empty(), "workload", "name the workload")?;
                field(
                    j.inputs
                        .iter()
                        .chain(&j.outputs)
                        .all(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())),
                    "inputs",
                    "inputs and outputs are sha256 digests in hex",
                )
            }
        }
    }
}

impl Deposit {
    /// Checks that `content` is what this deposit's statement signed.
    pub fn check_content(&self, content: &[u8]) -> Result<(), ContentError> {
        if content.is_empty() {
            return Err(ContentError::Empty);
        }
        let actual = Cid::of(content);
        if Some(&actual) != self.cid.as_ref() {
            return Err(ContentError::DigestMismatch {
                stated: self.cid.as_ref().map(Cid::digest_hex).unwrap_or_default(),
                actual: actual.digest_hex(),
            });
        }
        if self.size != content.len() as u64 {
            return Err(ContentError::SizeMismatch { stated: self.size, actual: content.len() as u64 });
        }
        std::str::from_utf8(content).map_err(|e| ContentError::NotUtf8(e.valid_up_to()))?;
        Ok(())
    }
}

fn subjects(cid: Option<&Cid>) -> Vec<Subject> {
    cid.map(|cid| vec![Subject::sha256(cid.to_string(), cid.digest_hex())]).unwrap_or_default()
}

/// A subject named by `name`, with the sha256 of the name as its digest.
fn named(name: &str) -> Vec<Subject> {
    vec![Subject::sha256(name.to_owned(), hex::encode(crate::sha256(name.as_bytes())))]
}

fn subject_cid(subjects: &[Subject]) -> Result<Cid, EventError> {
    let [subject] = subjects else { return Err(EventError::Subject) };
    let digest = subject.digest.get("sha256").ok_or(EventError::Subject)?;
    let cid = Cid::parse(&subject.name)?;
    if cid.digest_hex() != digest.to_ascii_lowercase() {
        return Err(EventError::SubjectDigest { cid: cid.to_string(), digest: digest.clone() });
    }
    Ok(cid)
}

/// A loose BCP 47 check: alphanumeric subtags of 1 to 8 characters separated by '-', the first
/// alphabetic of 2 to 3 letters (or 'und').
fn language_tag(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let primary = subtags.next().unwrap_or_default();
    tag.len() <= MAX_LANGUAGE
        && (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && subtags.all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn check_size(envelope: &Envelope) -> Result<(), EventError> {
    canonical_bytes(envelope).map(drop)
}

/// The envelope's canonical bytes, if they are within [`MAX_ENVELOPE_BYTES`].
fn canonical_bytes(envelope: &Envelope) -> Result<Vec<u8>, EventError> {
    let bytes = envelope.to_bytes();
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(EventError::EnvelopeTooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// An event together with the envelope it arrived in, its signer and its statement digest.
#[derive(Clone)]
pub struct SignedEvent {
    pub event: Event,
    /// The (first) signer's did:key.
    pub signer: String,
    /// Every signer, the first included; more than one only on co-signable kinds.
    pub signers: Vec<String>,
    pub envelope: Envelope,
    /// SHA-256 of the statement payload.
    pub statement_digest: [u8; 32],
    /// The envelope's canonical bytes, serialised once: [`SignedEvent::open`] keeps the bytes its
    /// size check made, and the log's leaf is built from them.
    canonical: std::sync::OnceLock<Vec<u8>>,
}

/// Equal events: the cache of canonical bytes is derived from the envelope and not compared.
impl PartialEq for SignedEvent {
    fn eq(&self, other: &SignedEvent) -> bool {
        self.event == other.event
            && self.signer == other.signer
            && self.signers == other.signers
            && self.envelope == other.envelope
            && self.statement_digest == other.statement_digest
    }
}

impl std::fmt::Debug for SignedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedEvent")
            .field("event", &self.event)
            .field("signer", &self.signer)
            .field("signers", &self.signers)
            .field("envelope", &self.envelope)
            .field("statement_digest", &self.statement_digest)
            .finish_non_exhaustive()
    }
}

impl SignedEvent {
    /// What identifies this act in the log: the statement together with the set of keys that
    /// signed it. The same envelope sent twice (or the same signers' same statement) is one act;
    /// the same statement signed by someone else is another person's act, never a duplicate.
    ///
    /// SHA-256 of `substrate/act/v1\n`, the statement digest, then each distinct signer's
    /// did:key in byte order, each followed by `\n`.
    pub fn act_digest(&self) -> [u8; 32] {
        let mut signers: Vec<&str> = self.signers.iter().map(String::as_str).collect();
        signers.sort_unstable();
        signers.dedup();
        let mut bytes = Vec::with_capacity(48 + signers.len() * 57);
        bytes.extend_from_slice(b"substrate/act/v1\n");
        bytes.extend_from_slice(&self.statement_digest);
        for signer in signers {
            bytes.extend_from_slice(signer.as_bytes());
            bytes.push(b'\n');
        }
        crate::sha256(&bytes)
    }

    /// The envelope's canonical bytes (compact JSON, fixed field order): what the log's leaf
    /// holds after the integrated time. Serialised at most once per event.
    pub fn envelope_bytes(&self) -> &[u8] {
        self.canonical.get_or_init(|| self.envelope.to_bytes())
    }

    /// Signs `event` with `key`.
    pub fn sign(event: Event, key: &SigningKey) -> SignedEvent {
        let payload = serde_json::to_vec(&event.to_statement()).unwrap_or_default();
        let statement_digest = crate::sha256(&payload);
        let envelope = Envelope::sign(payload, key);
        let signer = envelope.signatures[0].keyid.clone();
        SignedEvent {
            event,
            signers: vec![signer.clone()],
            signer,
            envelope,
            statement_digest,
            canonical: std::sync::OnceLock::new(),
        }
    }

    /// Adds `key`'s signature (a board member on a ruling, a verifier on a job receipt).
    pub fn cosign(&mut self, key: &SigningKey) {
        self.envelope.cosign(key);
        self.signers.push(self.envelope.signatures.last().map(|s| s.keyid.clone()).unwrap_or_default());
        self.canonical = std::sync::OnceLock::new();
    }

    /// Verifies the signature and parses the statement and its predicate.
    pub fn open(envelope: Envelope) -> Result<SignedEvent, EventError> {
        SignedEvent::open_verified(envelope, Envelope::verify_all)
    }

    /// [`SignedEvent::open`], taking the signers' keys from `keys`: the same event or the same
    /// error, without decoding a did:key seen before.
    pub fn open_with(
        envelope: Envelope,
        keys: &mut crate::identity::KeyCache,
    ) -> Result<SignedEvent, EventError> {
        SignedEvent::open_verified(envelope, |envelope| envelope.verify_all_cached(keys))
    }

    fn open_verified(
        envelope: Envelope,
        verify_all: impl FnOnce(&Envelope) -> Result<Vec<String>, EnvelopeError>,
    ) -> Result<SignedEvent, EventError> {
        let bytes = canonical_bytes(&envelope)?;
        let signers = verify_all(&envelope)?;
        let event = SignedEvent::parse(envelope, signers)?;
        // The size check's serialisation is the canonical one; it is not made again.
        let _ = event.canonical.set(bytes);
        Ok(event)
    }

    /// Parses envelope JSON bytes and makes every check [`SignedEvent::open_bytes`] makes except
    /// the Ed25519 equations, which it returns for the caller to verify: replay verifies many
    /// entries' signatures in one batch. The event is what `open_bytes` returns once every
    /// returned check verifies. When this fails, `open_bytes` fails too, though not always with
    /// the same error (it verifies the signatures before it parses the statement); a caller that
    /// reports the error asks `open_bytes` for it.
    pub fn open_deferred(bytes: &[u8]) -> Result<(SignedEvent, Vec<SignatureCheck>), EventError> {
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| EventError::EnvelopeJson(e.to_string()))?;
        check_size(&envelope)?;
        let (signers, checks) = envelope.signature_checks()?;
        Ok((SignedEvent::parse(envelope, signers)?, checks))
    }

    /// Parses envelope JSON bytes of an entry already in the log without checking its signatures
    /// again: they were checked when it was appended, and the caller has checked the entry's
    /// bytes against a checkpoint the log key signed.
    pub fn open_logged(bytes: &[u8]) -> Result<SignedEvent, EventError> {
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| EventError::EnvelopeJson(e.to_string()))?;
        let signers = envelope.signers_unverified()?;
        SignedEvent::parse(envelope, signers)
    }

    fn parse(envelope: Envelope, signers: Vec<String>) -> Result<SignedEvent, EventError> {
        let statement: Statement =
            serde_json::from_slice(&envelope.payload).map_err(|e| EventError::Statement(e.to_string()))?;
        let event = Event::from_statement(statement)?;
        if signers.len() > 1 && !event.cosignable() {
            return Err(EventError::Envelope(EnvelopeError::SignatureCount(signers.len())));
        }
        let statement_digest = crate::sha256(&envelope.payload);
        Ok(SignedEvent {
            event,
            signer: signers[0].clone(),
            signers,
            envelope,
            statement_digest,
            canonical: std::sync::OnceLock::new(),
        })
    }

    /// Parses envelope JSON bytes, then [`SignedEvent::open`]s it.
    pub fn open_bytes(bytes: &[u8]) -> Result<SignedEvent, EventError> {
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| EventError::EnvelopeJson(e.to_string()))?;
        SignedEvent::open(envelope)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn deposit(content: &[u8], register: &str, consent: ConsentTier) -> Event {
        Event::Deposit(Deposit {
            cid: Some(Cid::of(content)),
            register: Register::new(register).expect("register"),
            secondary_registers: vec![],
            consent,
            title: "A kitchen-table story".into(),
            language: "en".into(),
            license: "CC-BY-4.0".into(),
            media_type: "text/plain; charset=utf-8".into(),
            size: content.len() as u64,
            created: "2026-11-22T00:00:00.000Z".into(),
        })
    }

    #[test]
    fn signed_events_round_trip_through_envelopes() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let signed = SignedEvent::sign(deposit(b"story", "narrative", ConsentTier::Public), &key);
        let opened = SignedEvent::open_bytes(&signed.envelope.to_bytes()).expect("opens");
        assert_eq!(opened, signed);
        let statement: serde_json::Value = serde_json::from_slice(&signed.envelope.payload).expect("json");
        assert_eq!(statement["predicateType"], "https://substrate.commons/predicate/deposit/v1");
        assert_eq!(statement["subject"][0]["digest"]["sha256"], Cid::of(b"story").digest_hex());
    }

    /// The bytes an event keeps are its envelope's canonical bytes, however it was made, and
    /// a cosignature replaces them.
    #[test]
    fn envelope_bytes_are_the_canonical_serialisation() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let signed = SignedEvent::sign(deposit(b"story", "narrative", ConsentTier::Public), &key);
        assert_eq!(signed.envelope_bytes(), signed.envelope.to_bytes());
        let opened = SignedEvent::open(signed.envelope.clone()).expect("opens");
        assert_eq!(opened.envelope_bytes(), signed.envelope.to_bytes());
        let logged = SignedEvent::open_logged(&signed.envelope.to_bytes()).expect("opens");
        assert_eq!(logged.envelope_bytes(), signed.envelope.to_bytes());

        let mut ruling = SignedEvent::sign(deposit(b"story", "narrative", ConsentTier::Public), &key);
        let before = ruling.envelope_bytes().to_vec();
        ruling.cosign(&SigningKey::from_bytes(&[2u8; 32]));
        assert_ne!(ruling.envelope_bytes(), before.as_slice());
        assert_eq!(ruling.envelope_bytes(), ruling.envelope.to_bytes());
    }

    #[test]
    fn malformed_events_are_refused_with_the_reason() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let sign = |statement: serde_json::Value| {
            Envelope::sign(serde_json::to_vec(&statement).expect("json"), &key)
        };
        let good = deposit(b"story", "narrative", ConsentTier::Public).to_statement();
        let good = serde_json::to_value(good).expect("json");

        let mut unknown = good.clone();
        unknown["predicateType"] = "https://substrate.commons/predicate/transfer/v1".into();
        assert!(matches!(SignedEvent::open(sign(unknown)), Err(EventError::UnknownPredicate(_))));

        let mut tier = good.clone();
        tier["predicate"]["consent"] = "private".into();
        let err = SignedEvent::open(sign(tier)).expect_err("unknown tier");
        assert!(err.to_string().contains("private"), "{err}");

        let mut digest = good.clone();
        digest["subject"][0]["digest"]["sha256"] = hex::encode([0u8; 32]).into();
        assert!(matches!(SignedEvent::open(sign(digest)), Err(EventError::SubjectDigest { .. })));

        let mut language = good.clone();
        language["predicate"]["language"] = "english language".into();
        assert!(matches!(
            SignedEvent::open(sign(language)),
            Err(EventError::Field { field: "language", .. })
        ));

        assert!(matches!(SignedEvent::open_bytes(b"{not json"), Err(EventError::EnvelopeJson(_))));
    }

    /// `envelope` signed over by `other` under the signer's keyid, with its signature cut short,
    /// and under a keyid that is no key.
    fn damaged(envelope: &Envelope, other: &SigningKey) -> [Envelope; 3] {
        let mut by_another_key = envelope.clone();
        by_another_key.signatures[0].sig =
            Envelope::sign(envelope.payload.clone(), other).signatures[0].sig.clone();
        let mut short = envelope.clone();
        short.signatures[0].sig.pop();
        let mut unknown_keyid = envelope.clone();
        unknown_keyid.signatures[0].keyid = "did:key:zNothing".into();
        [by_another_key, short, unknown_keyid]
    }

    /// Opening with the signature checks deferred, then making them, accepts exactly what
    /// opening at once accepts, as the same event.
    #[test]
    fn deferred_checks_agree_with_opening_at_once() {
        use ed25519_dalek::Verifier;
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let other = SigningKey::from_bytes(&[2u8; 32]);
        let signed = SignedEvent::sign(deposit(b"story", "narrative", ConsentTier::Public), &key);
        let [by_another_key, short, unknown_keyid] = damaged(&signed.envelope, &other);
        let mut twice = signed.envelope.clone();
        twice.cosign(&other);
        let mut not_a_statement = Envelope::sign(b"{}".to_vec(), &key);
        let mut bad_and_not_a_statement = not_a_statement.clone();
        bad_and_not_a_statement.signatures[0].sig[0] ^= 1;
        not_a_statement.payload_type = "text/plain".into();
        let cases = [
            ("good", signed.envelope.to_bytes()),
            ("by another key", by_another_key.to_bytes()),
            ("short", short.to_bytes()),
            ("unknown keyid", unknown_keyid.to_bytes()),
            ("two signers on a deposit", twice.to_bytes()),
            ("not a statement", not_a_statement.to_bytes()),
            ("a bad signature over no statement", bad_and_not_a_statement.to_bytes()),
            ("not json", b"{not json".to_vec()),
        ];
        for (what, bytes) in cases {
            let at_once = SignedEvent::open_bytes(&bytes);
            let deferred = SignedEvent::open_deferred(&bytes)
                .ok()
                .filter(|(_, checks)| checks.iter().all(|c| c.key.verify(&c.message, &c.signature).is_ok()));
            assert_eq!(at_once.as_ref().ok(), deferred.as_ref().map(|(event, _)| event), "{what}");
        }
        let (_, checks) = SignedEvent::open_deferred(&signed.envelope.to_bytes()).expect("opens");
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].key, key.verifying_key());
        assert_eq!(
            checks[0].message,
            crate::envelope::pae(crate::envelope::PAYLOAD_TYPE, &signed.envelope.payload)
        );
    }

    /// Opening with a cache of keys gives what opening alone gives, event or error, whether the
    /// cache has seen the signer or not (and a key that does not decode is never kept).
    #[test]
    fn a_cache_of_keys_changes_no_outcome() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let other = SigningKey::from_bytes(&[2u8; 32]);
        let signed = SignedEvent::sign(deposit(b"story", "narrative", ConsentTier::Public), &key);
        let [by_another_key, short, unknown_keyid] = damaged(&signed.envelope, &other);
        let mut altered = signed.envelope.clone();
        altered.payload.push(b' ');
        let cases = [signed.envelope.clone(), by_another_key, altered, unknown_keyid, short];
        let mut keys = crate::identity::KeyCache::default();
        for round in 0..2 {
            for (n, envelope) in cases.iter().enumerate() {
                let alone = SignedEvent::open(envelope.clone());
                let cached = SignedEvent::open_with(envelope.clone(), &mut keys);
                assert_eq!(alone, cached, "case {n}, round {round}");
            }
        }
        assert_eq!(keys.key_of(&signed.signer), Ok(key.verifying_key()));
        assert!(keys.key_of("did:key:zNothing").is_err());
    }

    #[test]
    fn content_must_match_the_statement() {
        let Event::Deposit(d) = deposit(b"story", "narrative", ConsentTier::Public) else { unreachable!() };
        assert_eq!(d.check_content(b"story"), Ok(()));
        assert_eq!(d.check_content(b""), Err(ContentError::Empty));
        assert!(matches!(d.check_content(b"other"), Err(ContentError::DigestMismatch { .. })));
    }
}
