//! Who pays for inference. A generation or an embedding is answered for a verified member (a
//! signed request or an API token) as far as their commons floor of the day and their credit
//! balance cover it, at `credits.inference` credits per 1,000 tokens; past both it is refused
//! with 402 and what is left. The tokens used are summed per member and reported to the log in
//! aggregate every little while ([`report_usage`]), where the fold charges them: this node only
//! holds back what its own requests in flight and its reports not yet in the log may cost, so a
//! member cannot spend the same credit twice on one node.
//!
//! A node started with `--open-inference` also answers requests that name nobody, charging
//! nobody: its operator gives their machine's time away. A node whose key is not registered in
//! the commons cannot report, and answers members only then.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use ed25519_dalek::SigningKey;
use substrate_core::SignedEvent;
use substrate_core::event::Event;
use substrate_core::governance::book::Governance;
use substrate_core::governance::usage::{MAX_USAGE_LINES, Spendable, UsageLine, UsageReport, charge};
use substrate_core::state::Rejection;
use substrate_store::{SequencerHandle, Submission, SubmitError};

/// How this node accounts for the inference it serves.
pub struct Meter {
    /// Whether requests that name nobody are answered, charged to nobody.
    open: bool,
    /// The key this node's usage reports are signed with (the log key on the sequencer, the node
    /// key elsewhere), and its did:key; `None` when it has none.
    key: Option<(SigningKey, String)>,
    /// How often used tokens are reported.
    every: Duration,
    book: Mutex<Book>,
}

/// What this node knows that the log does not yet.
#[derive(Default)]
struct Book {
    /// Used since the last report was taken, per member: (requests, tokens).
    used: BTreeMap<String, (u64, u64)>,
    /// Tokens held back for requests in flight, per member.
    held: BTreeMap<String, u64>,
    /// The report sent and not yet seen in this node's state.
    outstanding: Option<UsageReport>,
    /// When the period of the next report began (ms).
    since: u64,
}

impl Book {
    /// Tokens of `member`'s that the log does not hold yet, with `landed` the number of this
    /// node's latest report in the state.
    fn pending(&self, member: &str, landed: u64) -> u64 {
        let reported = self
            .outstanding
            .as_ref()
            .filter(|r| r.seq > landed)
            .and_then(|r| r.lines.iter().find(|l| l.member == member))
            .map_or(0, |l| l.tokens);
        let used = self.used.get(member).map_or(0, |(_, tokens)| *tokens);
        let held = self.held.get(member).copied().unwrap_or(0);
        reported.saturating_add(used).saturating_add(held)
    }
}

/// A refusal to answer, in the API's terms: what the OpenAI and Ollama routes turn into their
/// own shapes.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// For 402: what the member has and needs, and when the floor refills.
    pub credits: Option<serde_json::Value>,
    /// For 402 with a floor to come back: seconds until it refills.
    pub retry_after: Option<u64>,
}

/// What a request asks to use: tokens it certainly uses (the prompt, the texts to embed) and
/// at most how many it may generate.
#[derive(Clone, Copy, Debug)]
pub struct Asking {
    pub fixed: u64,
    pub up_to: u64,
    /// Whether `up_to` is only a default the member did not choose, which may be shortened to
    /// what they can pay for.
    pub may_shorten: bool,
}

/// Tokens held back for one request; settled with what it used, or released when dropped.
pub struct Charge {
    meter: Option<Arc<Meter>>,
    member: Option<String>,
    held: u64,
}

impl Charge {
    /// A request nobody pays for.
    pub fn free() -> Charge {
        Charge { meter: None, member: None, held: 0 }
    }

    /// The request used `tokens`: they count against its member until the log charges them.
    pub fn settle(mut self, tokens: u64) {
        if let (Some(meter), Some(member)) = (self.meter.take(), self.member.take()) {
            let mut book = meter.book.lock().unwrap_or_else(|e| e.into_inner());
            release(&mut book, &member, self.held);
            let used = book.used.entry(member).or_insert((0, 0));
            used.0 += 1;
            used.1 = used.1.saturating_add(tokens);
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let (Some(meter), Some(member)) = (self.meter.take(), self.member.take()) {
            release(&mut meter.book.lock().unwrap_or_else(|e| e.into_inner()), &member, self.held);
        }
    }
}

fn release(book: &mut Book, member: &str, tokens: u64) {
    if let Some(held) = book.held.get_mut(member) {
        *held = held.saturating_sub(tokens);
        if *held == 0 {
            book.held.remove(member);
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds after `now` at which the next UTC day, and with it a new commons floor, begins.
fn until_tomorrow(now: u64) -> u64 {
    let day = substrate_core::governance::params::DAY_MS;
    (now / day + 1) * day - now
}

impl Meter {
    /// Reports with `key` (`None`: this node cannot report, and answers members only when it
    /// is open) every `every`; answers requests that name nobody when `open`.
    pub fn new(key: Option<SigningKey>, open: bool, every: Duration) -> Meter {
        let key = key.map(|k| {
            let did = substrate_core::identity::did_of(&k.verifying_key());
            (k, did)
        });
        Meter { open, key, every, book: Mutex::new(Book { since: now_ms(), ..Book::default() }) }
    }

    /// The did:key this node reports as.
    pub fn reporter(&self) -> Option<&str> {
        self.key.as_ref().map(|(_, did)| did.as_str())
    }

    /// Holds back what `asking` may cost `member` (`None`: nobody named), or refuses. Returns
    /// the charge to settle and how many tokens the request may generate.
    pub fn admit(
        self: &Arc<Self>,
        governance: &Governance,
        log_did: &str,
        member: Option<&str>,
        asking: Asking,
    ) -> Result<(Charge, u64), Refusal> {
        let Some(member) = member else {
            if self.open {
                return Ok((Charge::free(), asking.up_to));
            }
            return Err(Refusal {
                status: StatusCode::UNAUTHORIZED,
                code: "member_required",
                detail: format!(
                    "the commons' models answer its verified members, each drawing on a daily commons floor of {} credits, then on their credits: sign the request (RFC 9421, `substrate chat --key`) or send an API token (`Authorization: Bearer sub_…`, made by `substrate token new`)",
                    governance.parameters().map_or(0, |p| p.credits.floor)
                ),
                credits: None,
                retry_after: None,
            });
        };
        let Some(reporter) = self.reporter().filter(|r| *r == log_did || governance.node(r).is_some()) else {
            return Err(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "cannot_account",
                detail: match self.reporter() {
                    Some(did) => format!(
                        "this node's key {did} is not registered in the commons, so it cannot report what members' requests use; its operator registers it (`substrate node-register`), or ask another node"
                    ),
                    None => "this node has no key to report what members' requests use; ask another node"
                        .to_owned(),
                },
                credits: None,
                retry_after: None,
            });
        };
        let now = now_ms();
        let rate = governance.inference_rate();
        let landed = governance.usage_of(reporter).map_or(0, |u| u.seq);
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let pending = book.pending(member, landed);
        let spendable = governance.spendable(member, now);
        let left = spendable.total().saturating_sub(charge(pending, rate));
        // How many tokens what is left pays for (all of them when inference is free).
        let affordable = left.checked_div(rate).unwrap_or(u64::MAX);
        let want = asking.fixed.saturating_add(asking.up_to);
        let up_to = if affordable >= want {
            asking.up_to
        } else if asking.may_shorten && affordable > asking.fixed {
            affordable - asking.fixed
        } else {
            drop(book);
            return Err(self.unpaid(member, spendable, pending, rate, asking, now));
        };
        let held = asking.fixed.saturating_add(up_to);
        *book.held.entry(member.to_owned()).or_insert(0) += held;
        Ok((Charge { meter: Some(Arc::clone(self)), member: Some(member.to_owned()), held }, up_to))
    }

    fn unpaid(
        &self,
        member: &str,
        spendable: Spendable,
        pending: u64,
        rate: u64,
        asking: Asking,
        now: u64,
    ) -> Refusal {
        let credits = |milli: u64| format!("{:.3}", milli as f64 / 1000.0);
        let refills = now + until_tomorrow(now);
        let need = asking.fixed.saturating_add(if asking.may_shorten { 1 } else { asking.up_to });
        Refusal {
            status: StatusCode::PAYMENT_REQUIRED,
            code: "insufficient_credits",
            detail: format!(
                "this request may use {need} tokens ({} credits at {rate} per 1,000 tokens); {member} has {} left of today's commons floor and {} credits, of which this node holds back {} for requests not yet charged in the log; the floor refills at {}; ask for fewer tokens (max_tokens), or earn credits by depositing texts and running verified jobs (`substrate credits`)",
                credits(charge(need, rate)),
                credits(spendable.floor),
                credits(spendable.balance),
                credits(charge(pending, rate)),
                substrate_core::timestamp::rfc3339(refills),
            ),
            credits: Some(serde_json::json!({
                "member": member,
                "floorLeft": spendable.floor as f64 / 1000.0,
                "balance": spendable.balance as f64 / 1000.0,
                "heldBack": charge(pending, rate) as f64 / 1000.0,
                "needed": charge(need, rate) as f64 / 1000.0,
                "per1000Tokens": rate,
                "floorRefills": substrate_core::timestamp::rfc3339(refills),
            })),
            retry_after: Some(until_tomorrow(now).div_ceil(1000)),
        }
    }

    /// The report to send now: the one sent before if the log does not hold it yet, else the
    /// tokens used since (at most [`MAX_USAGE_LINES`] members; the rest wait for the next).
    fn next_report(&self, landed: u64) -> Option<UsageReport> {
        let (_, node) = self.key.as_ref()?;
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sent) = &book.outstanding {
            if sent.seq > landed {
                return Some(sent.clone());
            }
            book.outstanding = None;
        }
        if book.used.is_empty() {
            return None;
        }
        let members: Vec<String> = book.used.keys().take(MAX_USAGE_LINES).cloned().collect();
        let lines = members
            .into_iter()
            .filter_map(|member| {
                let (requests, tokens) = book.used.remove(&member)?;
                Some(UsageLine { member, requests, tokens })
            })
            .collect();
        let now = now_ms();
        let report = UsageReport {
            node: node.clone(),
            seq: landed + 1,
            from: substrate_core::timestamp::rfc3339(book.since),
            to: substrate_core::timestamp::rfc3339(now.max(book.since)),
            lines,
        };
        book.since = now;
        book.outstanding = Some(report.clone());
        Some(report)
    }

    /// Forgets the report sent: the log refused it for good.
    fn drop_outstanding(&self) {
        self.book.lock().unwrap_or_else(|e| e.into_inner()).outstanding = None;
    }
}

/// Sends what members used to the log every `meter.every`, until `stop` resolves, then once more.
pub async fn report_usage(
    meter: Arc<Meter>,
    reader: substrate_store::Reader,
    sequencer: SequencerHandle,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(meter.every) => false,
            () = &mut stop => true,
        };
        report_once(&meter, &reader, &sequencer).await;
        if stopping {
            return;
        }
    }
}

/// Sends one report, if there is anything to report.
pub async fn report_once(meter: &Meter, reader: &substrate_store::Reader, sequencer: &SequencerHandle) {
    let Some((key, node)) = meter.key.as_ref() else { return };
    let landed = match reader.governance() {
        Ok(governance) => governance.usage_of(node).map_or(0, |u| u.seq),
        Err(error) => {
            tracing::warn!(%error, "reading the state to report usage; trying again later");
            return;
        }
    };
    let Some(report) = meter.next_report(landed) else { return };
    let (seq, members) = (report.seq, report.lines.len());
    let event = SignedEvent::sign(Event::Usage(report), key);
    match sequencer.submit(Submission { event, content: None }).await {
        Ok(submitted) => {
            tracing::debug!(seq, members, entry = submitted.receipt.log_index, "usage reported");
        }
        // Sent before, and charged: nothing is lost.
        Err(SubmitError::Refused(Rejection::Usage(
            substrate_core::governance::usage::UsageFault::Replayed { .. },
        ))) => {}
        Err(SubmitError::Refused(rejection)) => {
            tracing::error!(%rejection, seq, members, "the log refused this node's usage report; its tokens go uncharged");
            meter.drop_outstanding();
        }
        Err(error) => tracing::warn!(%error, seq, "reporting usage failed; it is sent again"),
    }
}
