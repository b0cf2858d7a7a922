//! The log page: its entries, a page at a time, and the checkpoint with the mirrors' cosignatures.

use maud::{Markup, html};

use crate::layout::{Section, Site, document};
use crate::wording;

/// One entry of the log as the page lists it.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub index: u64,
    pub integrated_time: u64,
    /// The event's kind (deposit, vote, decision…), or `unreadable`.
    pub kind: String,
    /// The signer's did:key, when the envelope opens.
    pub signer: Option<String>,
}

/// A mirror's cosignature of a checkpoint.
#[derive(Clone, Debug)]
pub struct Cosignature {
    pub cosigner: String,
    pub size: u64,
    /// Seconds since the epoch.
    pub timestamp: u64,
}

/// What the log page shows.
#[derive(Debug)]
pub struct LogPage<'a> {
    /// The entries of this page, in log order.
    pub rows: &'a [LogRow],
    /// Entries in the log.
    pub size: u64,
    /// The first index of this page, and how many a page holds.
    pub start: u64,
    pub per_page: u64,
    /// The latest signed checkpoint note.
    pub checkpoint: Option<&'a str>,
    pub cosignatures: &'a [Cosignature],
}

pub fn log(site: &Site, page: &LogPage) -> Markup {
    let main = html! {
        h1 { "The log" }
        p {
            "Every event of the commons is an entry in this append-only log, a Merkle tree: deposits, withdrawals, votes, decisions. A checkpoint signed by the log key commits to the whole tree and to the state computed from it; mirrors that re-checked everything cosign it. Anyone holding the log can compute everything again and catch a node that lies."
        }
        section aria-labelledby="checkpoint" {
            h2 #checkpoint { "The latest checkpoint" }
            @if let Some(note) = page.checkpoint {
                pre { (note) }
                p { a href="/checkpoint" { "The checkpoint as text" } " · " a href="/v1/log/cosignatures" { "its cosignatures (JSON)" } }
            } @else {
                p { "This node holds no checkpoint yet." }
            }
            @if page.cosignatures.is_empty() {
                p { "No mirror has cosigned a checkpoint of this log (a node without a mesh has none)." }
            } @else {
                div.scroll {
                    table {
                        caption { "Cosignatures kept by this node, each verified" }
                        thead { tr { th scope="col" { "Mirror" } th scope="col" { "Checkpoint size" } th scope="col" { "Signed" } } }
                        tbody {
                            @for cosignature in page.cosignatures {
                                tr {
                                    th scope="row" { code.wrap { (cosignature.cosigner) } }
                                    td.number { (cosignature.size) }
                                    td { (wording::when(cosignature.timestamp.saturating_mul(1000))) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="entries" {
            h2 #entries { "Entries " (page.start) " to " (page.start + (page.rows.len() as u64).max(1) - 1) " of " (page.size) }
            @if page.rows.is_empty() {
                p { "No entries here." }
            } @else {
                div.scroll {
                    table {
                        caption { "Log entries, in order" }
                        thead { tr { th scope="col" { "Index" } th scope="col" { "Logged" } th scope="col" { "Kind" } th scope="col" { "Signer" } th scope="col" { "Proofs" } } }
                        tbody {
                            @for row in page.rows {
                                tr id={ "entry-" (row.index) } {
                                    th scope="row" { (row.index) }
                                    td { (wording::when(row.integrated_time)) }
                                    td { (row.kind) }
                                    td { @if let Some(signer) = &row.signer { (wording::person(signer)) } }
                                    td {
                                        a href={ "/v1/log/proofs/inclusion/" (row.index) } { "inclusion proof" } " · "
                                        a href={ "/v1/receipts/" (row.index) } { "receipt" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            nav.pages aria-label="Pages of the log" {
                @if page.start > 0 {
                    a href={ "/log?start=" (page.start.saturating_sub(page.per_page)) } rel="prev" { "Earlier entries" }
                }
                @if page.start > 0 && page.start + page.per_page < page.size { " · " }
                @if page.start + page.per_page < page.size {
                    a href={ "/log?start=" (page.start + page.per_page) } rel="next" { "Later entries" }
                    " · " a href="/log" { "The latest" }
                }
            }
        }
    };
    document(site, "The log", Section::Log, main)
}
