//! Inference, accounted: a node that serves the commons' models to members reports, in
//! aggregate, how many tokens each member's requests used since its last report. The fold
//! charges them at `credits.inference` credits per 1,000 tokens, to the member's commons floor
//! of the day first and their balance after; what neither covers is recorded as unpaid, never
//! as a debt. One report is one entry however many requests it sums, so the credit rules replay
//! from the log without an entry per token.
//!
//! Who may report: the sequencer (signing with the log key) and registered nodes (signing with
//! their node key), each numbering its reports 1, 2, 3…; a report numbered at or below the last
//! one the log holds from that node is refused, so a report sent twice is charged once.

use crate::governance::book::Record;
use crate::governance::params::Parameters;
use crate::state::{Change, Commons, Rejection, State};

/// Most members one report names.
pub const MAX_USAGE_LINES: usize = 1000;
/// Most tokens one line may claim (a bound no honest report comes near).
pub const MAX_LINE_TOKENS: u64 = 1_000_000_000_000;

/// A node's report of the inference it served since its last one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageReport {
    /// The node that served (its key signs the report; the sequencer's is the log key).
    pub node: String,
    /// This node's reports are numbered from 1; each is above the last the log holds.
    pub seq: u64,
    /// The period the report sums (RFC 3339).
    pub from: String,
    pub to: String,
    /// One line per member, in the order of their did:key, each named once.
    pub lines: Vec<UsageLine>,
}

/// What one member's requests used in a report's period.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageLine {
    pub member: String,
    pub requests: u64,
    /// Prompt and generated tokens, and the tokens of texts embedded.
    pub tokens: u64,
}

/// What the log holds of one node's reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    pub node: String,
    /// The number of its latest report in the log, and that entry.
    pub seq: u64,
    pub log_index: u64,
    pub reports: u64,
    pub requests: u64,
    pub tokens: u64,
    /// What its reports charged (thousandths of a credit), and what of it neither the members'
    /// floors nor their balances covered.
    pub charged: u64,
    pub unpaid: u64,
}

/// Why a usage report is refused; each is its own API error code ([`UsageFault::code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsageFault {
    #[error("usage report: {0}")]
    Field(String),
    #[error("the report names the node {node} but is signed by {signer}; a node reports its own usage")]
    NotSigner { node: String, signer: String },
    #[error("report {seq} of {node} is at or below its latest in the log ({last}); it was charged already")]
    Replayed { node: String, seq: u64, last: u64 },
    #[error("this commons was founded with state encoding {0}; inference is accounted from state encoding 4")]
    Encoding(u32),
}

impl UsageFault {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            UsageFault::Field(_) => "usage_field",
            UsageFault::NotSigner { .. } => "usage_not_signer",
            UsageFault::Replayed { .. } => "usage_replayed",
            UsageFault::Encoding(_) => "usage_encoding",
        }
    }

    /// How the refusal reads over HTTP.
    pub fn status(&self) -> u16 {
        match self {
            UsageFault::Field(_) | UsageFault::Encoding(_) => 400,
            UsageFault::NotSigner { .. } => 403,
            UsageFault::Replayed { .. } => 409,
        }
    }
}

/// Stateless checks of a report's fields.
pub(crate) fn validate(u: &UsageReport) -> Result<(), String> {
    if u.seq == 0 {
        return Err("reports are numbered from 1".into());
    }
    let from = crate::timestamp::parse_rfc3339(&u.from)
        .ok_or_else(|| format!("from '{}' is not an RFC 3339 time", u.from))?;
    let to = crate::timestamp::parse_rfc3339(&u.to)
        .ok_or_else(|| format!("to '{}' is not an RFC 3339 time", u.to))?;
    if from > to {
        return Err(format!("the period runs backwards: from {} to {}", u.from, u.to));
    }
    if u.lines.is_empty() || u.lines.len() > MAX_USAGE_LINES {
        return Err(format!("a report has 1 to {MAX_USAGE_LINES} lines, not {}", u.lines.len()));
    }
    for (i, line) in u.lines.iter().enumerate() {
        crate::identity::key_of(&line.member)
            .map_err(|e| format!("line {i}: member '{}' is not a did:key: {e}", line.member))?;
        if line.requests == 0 || line.tokens > MAX_LINE_TOKENS {
            return Err(format!(
                "line {i}: a line sums at least one request and at most {MAX_LINE_TOKENS} tokens"
            ));
        }
        if i > 0 && u.lines[i - 1].member >= line.member {
            return Err(format!(
                "line {i}: lines are in the order of their members' did:key, each member once"
            ));
        }
    }
    Ok(())
}

/// The charge for `tokens` at `credits.inference` (`rate` credits per 1,000 tokens), in
/// thousandths of a credit.
pub fn charge(tokens: u64, rate: u64) -> u64 {
    tokens.saturating_mul(rate)
}

/// What `holder` may spend on inference at `now`, in thousandths: what is left of today's
/// commons floor, and their balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spendable {
    pub floor: u64,
    pub balance: u64,
}

impl Spendable {
    pub fn total(&self) -> u64 {
        self.floor.saturating_add(self.balance)
    }
}

impl crate::governance::book::Governance {
    /// What the log holds of `node`'s usage reports.
    pub fn usage_of(&self, node: &str) -> Option<&UsageRecord> {
        self.usage.get(node)
    }

    /// Every node's usage reports, by node.
    pub fn usage(&self) -> impl Iterator<Item = &UsageRecord> {
        self.usage.values()
    }

    /// The price of inference: `credits.inference`, credits per 1,000 tokens.
    pub fn inference_rate(&self) -> u64 {
        self.params
            .as_ref()
            .map(|p| p.credits.inference)
            .unwrap_or(crate::governance::params::DEFAULT_INFERENCE)
    }

    /// What `holder` may spend at `now`, as the fold would let them.
    pub fn spendable(&self, holder: &str, now: u64) -> Spendable {
        let rates = self.params.as_ref().map(|p| p.credits).unwrap_or(Parameters::new(Vec::new()).credits);
        let day = crate::governance::book::day_of(now);
        let pool = self
            .credits
            .get(crate::governance::book::STABILITY_POOL)
            .map(|c| c.balance_on(day, rates.half_life_days))
            .unwrap_or(0);
        let account = self.credits.get(holder);
        let used = account.map(|a| a.floor_used_on(day)).unwrap_or(0);
        Spendable {
            floor: self.floor_allowance(holder, now, rates.floor).saturating_sub(used).min(pool),
            balance: account.map(|a| a.balance_on(day, rates.half_life_days)).unwrap_or(0),
        }
    }
}

impl State {
    pub(crate) fn record_usage(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        u: &UsageReport,
        commons: &Commons,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        let g = &self.governance;
        if !g.later_job_rules() {
            return Err(Rejection::Usage(UsageFault::Encoding(g.state_encoding)));
        }
        validate(u).map_err(|e| Rejection::Usage(UsageFault::Field(e)))?;
        if u.node != signer {
            return Err(Rejection::Usage(UsageFault::NotSigner {
                node: u.node.clone(),
                signer: signer.to_owned(),
            }));
        }
        if signer != commons.log_did && !g.nodes.contains_key(signer) {
            return Err(Rejection::UnregisteredNode(signer.to_owned()));
        }
        let mut record = g.usage_of(signer).cloned().unwrap_or(UsageRecord {
            node: signer.to_owned(),
            seq: 0,
            log_index: index,
            reports: 0,
            requests: 0,
            tokens: 0,
            charged: 0,
            unpaid: 0,
        });
        if u.seq <= record.seq {
            return Err(Rejection::Usage(UsageFault::Replayed {
                node: signer.to_owned(),
                seq: u.seq,
                last: record.seq,
            }));
        }
        let mut credits = crate::governance::credits::CreditBook::new(g, params);
        for line in &u.lines {
            let due = charge(line.tokens, params.credits.inference);
            let floor = credits.floor_left(&line.member, time).min(due);
            credits.draw_floor(&line.member, floor, time);
            let paid = credits.balance(&line.member, time).min(due - floor);
            credits.debit(&line.member, paid, time);
            record.requests = record.requests.saturating_add(line.requests);
            record.tokens = record.tokens.saturating_add(line.tokens);
            record.charged = record.charged.saturating_add(due);
            record.unpaid = record.unpaid.saturating_add(due - floor - paid);
        }
        record.seq = u.seq;
        record.log_index = index;
        record.reports += 1;
        let mut changes = credits.into_changes();
        changes.push(Change::Record(Record::Usage(record)));
        Ok(changes)
    }
}
