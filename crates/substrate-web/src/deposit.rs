//! The deposits: the list with its filters and search, and one deposit's page with its receipt,
//! its text where consent allows, and what the commons did with it.

use maud::{Markup, html};
use substrate_core::ConsentTier;
use substrate_core::governance::book::{AdapterRecord, DisputeRecord};
use substrate_core::receipt::Receipt;
use substrate_core::state::DepositRecord;

use crate::layout::{Section, Site, document};
use crate::wording;

/// The list's filters as the form sent them; an empty one does not filter.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub register: String,
    pub consent: String,
    pub language: String,
    pub depositor: String,
    /// The words to search for.
    pub query: String,
}

impl Filters {
    /// The filters as a query string (without `?`), for the links to other pages of the list.
    fn query_string(&self, before: Option<u64>) -> String {
        let mut pairs: Vec<String> = [
            ("register", &self.register),
            ("consent", &self.consent),
            ("language", &self.language),
            ("depositor", &self.depositor),
        ]
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", percent_encode(value)))
        .collect();
        if let Some(before) = before {
            pairs.push(format!("before={before}"));
        }
        pairs.join("&")
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A deposit the search index found, with the words around the match.
#[derive(Clone, Debug)]
pub struct SearchHit {
    pub deposit: DepositRecord,
    pub snippet: String,
}

/// Whether this node can search, and what a search found.
#[derive(Clone, Debug)]
pub enum SearchState {
    /// The node keeps no search index.
    Off,
    /// The index is there; nothing was asked.
    Ready,
    Found(Vec<SearchHit>),
    /// The search could not be made; why, in a sentence for a reader (nothing of the engine's).
    Failed(String),
}

/// What the list of deposits shows.
#[derive(Debug)]
pub struct ListPage<'a> {
    pub registers: &'a [String],
    pub filters: &'a Filters,
    /// One page of deposits, the latest first.
    pub deposits: &'a [DepositRecord],
    /// The `before` of the next page, when there is one.
    pub next: Option<u64>,
    /// How many deposits the look read, when it stopped at that many before a full page: older
    /// deposits may match too, from `next` on.
    pub scanned: Option<u64>,
    pub search: SearchState,
}

pub fn list(site: &Site, page: &ListPage) -> Markup {
    let filters = page.filters;
    let main = html! {
        h1 { "Deposits" }
        section aria-labelledby="search" {
            h2 #search { "Search the texts" }
            @match &page.search {
                SearchState::Off => p {
                    "Search is off on this node: it runs without a search index (its operator turns one on with "
                    code { "substrate serve --search" } "). The filters below still work."
                },
                _ => form.search method="get" action="/deposits" role="search" {
                    label for="q" { "Words to find" }
                    input #q type="search" name="q" value=(filters.query) maxlength="1000";
                    button type="submit" { "Search" }
                    p.hint { "Finds public texts. Members find the commons tier too, with a signed request to the API." }
                },
            }
            @if let SearchState::Found(hits) = &page.search {
                h3 { (hits.len()) " text(s) found for “" (filters.query) "”" }
                @if hits.is_empty() {
                    p { "Nothing matched. Fewer or other words may find more." }
                }
                ol.hits {
                    @for hit in hits {
                        li {
                            a href={ "/deposits/" (hit.deposit.cid) } { (title(&hit.deposit)) }
                            " (" (hit.deposit.register) ", " (hit.deposit.language) ")"
                            @if !hit.snippet.is_empty() { blockquote { (hit.snippet) } }
                        }
                    }
                }
            }
            @if let SearchState::Failed(why) = &page.search {
                p.problem role="alert" { "The search failed. " (why) }
            }
        }
        section aria-labelledby="browse" {
            h2 #browse { "Browse" }
            form.filters method="get" action="/deposits" {
                div {
                    label for="register" { "Register" }
                    select #register name="register" {
                        option value="" { "any" }
                        @for register in page.registers {
                            option value=(register) selected[*register == filters.register] { (register) }
                        }
                    }
                }
                div {
                    label for="consent" { "Consent tier" }
                    select #consent name="consent" {
                        option value="" { "any" }
                        @for tier in ConsentTier::ALL {
                            option value=(tier.as_str()) selected[tier.as_str() == filters.consent] { (tier.as_str()) }
                        }
                    }
                }
                div {
                    label for="language" { "Language" }
                    input #language type="text" name="language" value=(filters.language) placeholder="en" size="8";
                }
                div {
                    label for="depositor" { "Depositor (did:key)" }
                    input #depositor type="text" name="depositor" value=(filters.depositor) size="30";
                }
                div { button type="submit" { "Filter" } }
            }
            @match (page.deposits.is_empty(), page.scanned) {
                (true, None) => p { "No deposit matches these filters." },
                (true, Some(scanned)) => p #scanned {
                    "No deposit among the latest " (scanned) " looked at matches these filters; a look reads "
                    "that many at most. Older ones may match: go on to the older deposits below."
                },
                (false, scanned) => {
                    (table(page.deposits, "Deposits, the latest first"))
                    @if let Some(scanned) = scanned {
                        p #scanned {
                            "These are the matches among the latest " (scanned) " deposits looked at; a look "
                            "reads that many at most. Older ones may match too: go on to the older deposits below."
                        }
                    }
                }
            }
            nav.pages aria-label="Pages of deposits" {
                @if !filters.query_string(None).is_empty() || page.next.is_some() {
                    a href="/deposits" { "Latest" }
                }
                @if let Some(before) = page.next {
                    " · " a href={ "/deposits?" (filters.query_string(Some(before))) } rel="next" { "Older deposits" }
                }
            }
        }
    };
    document(site, "Deposits", Section::Deposits, main)
}

/// A deposit's title, or its handle when it has none.
fn title(deposit: &DepositRecord) -> &str {
    if deposit.title.trim().is_empty() { &deposit.handle } else { &deposit.title }
}

/// Deposits as a table, one row each.
pub(crate) fn table(deposits: &[DepositRecord], caption: &str) -> Markup {
    html! {
        div.scroll {
            table {
                caption { (caption) }
                thead {
                    tr {
                        th scope="col" { "Title" }
                        th scope="col" { "Register" }
                        th scope="col" { "Consent" }
                        th scope="col" { "Language" }
                        th scope="col" { "Deposited" }
                        th scope="col" { "Status" }
                    }
                }
                tbody {
                    @for deposit in deposits {
                        tr {
                            th scope="row" { a href={ "/deposits/" (deposit.cid) } { (title(deposit)) } }
                            td { (deposit.register) }
                            td { (deposit.consent) }
                            td { (deposit.language) }
                            td { (wording::when(deposit.deposited_at)) }
                            td { (wording::status(deposit)) }
                        }
                    }
                }
            }
        }
    }
}

/// What a page may show of a deposit's text.
#[derive(Clone, Debug)]
pub enum DepositText {
    /// The text, which consent lets anyone read.
    Shown(String),
    /// Consent keeps it from this page (the tier says from whom).
    Withheld,
    /// Withdrawn or removed: only the tombstone remains.
    Gone,
    /// Consent would show it, but this node does not hold it (a mirror that has not fetched it).
    NotHere,
}

/// One change made to a deposit after it was deposited.
#[derive(Clone, Debug)]
pub struct Change {
    pub log_index: u64,
    pub at: u64,
    /// The event's kind: consent-change, withdrawal, decision, dispute-ruling…
    pub kind: String,
}

/// What a deposit's page shows.
#[derive(Debug)]
pub struct DepositPage<'a> {
    pub deposit: &'a DepositRecord,
    pub text: DepositText,
    pub receipt: &'a Receipt,
    pub changes: Vec<Change>,
    /// Adapters whose training snapshot held this deposit.
    pub adapters: Vec<&'a AdapterRecord>,
    /// Disputes about it, open or ruled.
    pub disputes: Vec<&'a DisputeRecord>,
    /// The commons' registers, for a dispute that says it carries the wrong one.
    pub registers: &'a [String],
}

pub fn deposit(site: &Site, page: &DepositPage) -> Markup {
    let d = page.deposit;
    let cid = d.cid.to_string();
    let main = html! {
        h1 { (title(d)) }
        dl.facts {
            dt { "Register" }
            dd {
                (d.register)
                @if !d.secondary_registers.is_empty() {
                    " (also " (d.secondary_registers.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) ")"
                }
            }
            dt { "Consent" }
            dd { (d.consent) ": " (wording::tier(d.consent)) }
            dt { "Licence" } dd { (d.license) }
            dt { "Language" } dd { (d.language) }
            dt { "Depositor" } dd { (wording::person(&d.depositor)) }
            dt { "Deposited" } dd { (wording::when(d.deposited_at)) }
            dt { "Status" } dd { (wording::status(d)) }
            dt { "Size" } dd { (d.size) " bytes of " code { (d.media_type) } }
            dt { "CID" } dd { code.wrap { (cid) } }
            dt { "Handle" } dd { code.wrap { (d.handle) } }
        }
        @if !page.changes.is_empty() {
            section aria-labelledby="changes" {
                h2 #changes { "Changes since it was deposited" }
                ul {
                    @for change in &page.changes {
                        li {
                            (change.kind) " at " a href={ "/log?start=" (change.log_index) } { "entry " (change.log_index) }
                            ", " (wording::when(change.at))
                        }
                    }
                }
            }
        }
        section aria-labelledby="text" {
            h2 #text { "The text" }
            (text(d, &page.text))
        }
        section aria-labelledby="receipt" {
            h2 #receipt { "The receipt" }
            p {
                "The deposit is entry " a href={ "/log?start=" (d.log_index) } { (d.log_index) }
                " of the log, logged at " code { (page.receipt.integrated_time) }
                ". Its receipt holds the signed deposit, the exact log entry and a proof that the entry is in a checkpoint the log key signed: it verifies offline, without trusting this node."
            }
            ul {
                li { a href={ "/v1/deposits/" (cid) "/receipt" } download={ (cid) ".receipt.json" } { "Download the receipt (JSON)" } }
                li { a href={ "/v1/log/proofs/inclusion/" (d.log_index) } { "Its inclusion proof in the latest checkpoint" } }
                li { a href={ "/v1/deposits/" (cid) "/datacite" } { "DataCite metadata (JSON)" } }
                li { a href="/verify" { "Check a receipt in this browser" } }
            }
            @if let Some((_, checkpoint)) = page.receipt.proof.split_once("\n\n") {
                details {
                    summary { "The checkpoint it leads to" }
                    pre { (checkpoint) }
                }
            }
        }
        section aria-labelledby="uses" {
            h2 #uses { "What the commons did with it" }
            @if page.adapters.is_empty() {
                p { "No adapter published so far was trained on a snapshot that holds this deposit." }
            } @else {
                p { "These adapters were trained on a snapshot that holds this deposit:" }
                ul {
                    @for adapter in &page.adapters {
                        li {
                            a href={ "/models#adapter-" (adapter.id) } { (adapter.name) }
                            " (adapter " (adapter.id) ", on " code { (adapter.base_model) } ", snapshot of the first " (adapter.snapshot_size) " entries, published " (wording::when(adapter.published_at)) ")"
                        }
                    }
                }
            }
            @if !page.disputes.is_empty() {
                p { "Disputes about it:" }
                ul {
                    @for dispute in &page.disputes {
                        li { a href={ "/disputes/" (dispute.id) } { "Dispute " (dispute.id) } ": " (wording::ground(&dispute.ground)) }
                    }
                }
            }
        }
        @if !d.status.is_gone() {
            (crate::act::withdraw_form(&cid, &d.depositor, d.consent.as_str()))
            (crate::act::dispute_form(&cid, d.register.as_str(), page.registers))
        }
    };
    document(site, title(d), Section::Deposits, main)
}

fn text(deposit: &DepositRecord, text: &DepositText) -> Markup {
    match text {
        DepositText::Shown(body) => html! { div.text lang=(deposit.language) { (body) } },
        DepositText::Gone => html! {
            p { "The text is gone: " (wording::status(deposit)) ". Only its tombstone remains, its hash and its receipt." }
        },
        DepositText::NotHere => html! {
            p { "This node does not hold the text yet: a mirror fetches texts after their log entries. Try again shortly, or read it on the sequencer." }
        },
        DepositText::Withheld => match deposit.consent {
            ConsentTier::Commons => html! {
                p {
                    "This text is for members of the commons. A verified member reads it with a signed request ("
                    code { "GET /v1/deposits/" (deposit.cid) "/content" } ", signed as RFC 9421 says), for instance with "
                    code { "substrate show" } ". A page nobody signs does not show it."
                }
                (crate::act::member_read(&deposit.cid.to_string(), &deposit.language))
            },
            ConsentTier::TrainingOnly => html! {
                p { "Its depositor allowed it to be used for governed training only: it is never shown, here or anywhere." }
            },
            ConsentTier::Local => html! {
                p { "It stays on the node it was deposited to: it is never shown, and never leaves that node." }
            },
            ConsentTier::Public => html! { p { "The text is not shown here." } },
        },
    }
}

#[cfg(test)]
mod tests {
    use substrate_core::state::DepositStatus;
    use substrate_core::{Cid, Register};

    use super::*;

    fn record(title: &str, consent: ConsentTier) -> DepositRecord {
        DepositRecord {
            cid: Cid::of(title.as_bytes()),
            handle: "tag:example.org,2026:c/1".to_owned(),
            log_index: 1,
            depositor: "did:key:z6MkexampleDepositor".to_owned(),
            register: Register::new("narrative").expect("a register"),
            secondary_registers: Vec::new(),
            consent,
            title: title.to_owned(),
            language: "en".to_owned(),
            license: "CC-BY-4.0".to_owned(),
            media_type: "text/plain; charset=utf-8".to_owned(),
            size: 5,
            deposited_at: 1_764_000_000_000,
            status: DepositStatus::Active,
            history: Vec::new(),
        }
    }

    #[test]
    fn titles_and_filters_are_escaped() {
        let hostile = "<script>alert(1)</script>";
        let site = Site { name: "A & B".to_owned(), origin: "example.org/c".to_owned() };
        let filters = Filters { language: "\"><img src=x>".to_owned(), ..Filters::default() };
        let deposits = [record(hostile, ConsentTier::Public)];
        let page = ListPage {
            registers: &["narrative".to_owned()],
            filters: &filters,
            deposits: &deposits,
            next: Some(1),
            scanned: None,
            search: SearchState::Off,
        };
        let html = list(&site, &page).into_string();
        assert!(!html.contains(hostile) && html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<img") && html.contains("A &amp; B"), "{html}");
        assert!(html.contains("language=%22%3E%3Cimg%20src%3Dx%3E&amp;before=1"), "{html}");
    }

    #[test]
    fn a_look_that_stopped_at_its_window_offers_the_older_deposits() {
        let site = Site { name: "C".to_owned(), origin: "example.org/c".to_owned() };
        let filters = Filters { language: "cy".to_owned(), ..Filters::default() };
        let render = |deposits: &[DepositRecord], next, scanned| {
            let page = ListPage {
                registers: &[],
                filters: &filters,
                deposits,
                next,
                scanned,
                search: SearchState::Off,
            };
            list(&site, &page).into_string()
        };
        let older = "href=\"/deposits?language=cy&amp;before=5001\" rel=\"next\"";
        // Nothing matched in the window: the page says how far it looked and goes on from there.
        let stopped = render(&[], Some(5001), Some(5000));
        assert!(
            stopped.contains("No deposit among the latest 5000 looked at") && stopped.contains(older),
            "{stopped}"
        );
        assert!(!stopped.contains("No deposit matches these filters"), "{stopped}");
        let some = render(&[record("t", ConsentTier::Public)], Some(5001), Some(5000));
        assert!(some.contains("matches among the latest 5000") && some.contains(older), "{some}");
        // The deposits ran out: nothing older to offer.
        let done = render(&[], None, None);
        assert!(
            done.contains("No deposit matches these filters") && !done.contains("rel=\"next\""),
            "{done}"
        );
    }

    #[test]
    fn a_withheld_text_says_who_reads_it_and_a_gone_one_says_it_is_gone() {
        let says = |consent, shown: &DepositText| text(&record("t", consent), shown).into_string();
        assert!(says(ConsentTier::Commons, &DepositText::Withheld).contains("signed request"));
        assert!(says(ConsentTier::TrainingOnly, &DepositText::Withheld).contains("never shown"));
        assert!(says(ConsentTier::Local, &DepositText::Withheld).contains("never leaves"));
        assert!(says(ConsentTier::Public, &DepositText::Gone).contains("tombstone"));
        let shown = says(ConsentTier::Public, &DepositText::Shown("a <b>bold</b> claim".to_owned()));
        assert!(shown.contains("a &lt;b&gt;bold&lt;/b&gt; claim"), "{shown}");
    }
}
