//! The home page: what the commons is, its registers and tiers, its numbers, the mixture the
//! members decided, and the latest deposits.

use maud::{Markup, html};
use substrate_core::ConsentTier;
use substrate_core::governance::book::MixtureRecord;
use substrate_core::state::DepositRecord;

use crate::layout::{Section, Site, document};
use crate::wording;

/// How much the commons holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Every deposit ever made, withdrawn and removed ones included.
    pub deposits: u64,
    /// Members verified now.
    pub members: u64,
    pub proposals: u64,
    /// Entries in the log.
    pub log_size: u64,
}

/// What the home page shows.
#[derive(Debug)]
pub struct HomePage<'a> {
    pub registers: &'a [String],
    pub counts: Counts,
    pub mixture: Option<&'a MixtureRecord>,
    /// The latest deposits, the latest first.
    pub recent: &'a [DepositRecord],
}

pub fn home(site: &Site, page: &HomePage) -> Markup {
    let main = html! {
        h1 { (site.name) }
        p.lead {
            "This is a commons of texts, owned together by its members. People deposit texts with a register and a consent tier and get a signed receipt; every deposit, vote and decision is an entry in an append-only log that anyone can check, and the members decide together how the texts are used."
        }
        section aria-labelledby="numbers" {
            h2 #numbers { "In numbers" }
            ul.counts {
                li { strong { (page.counts.deposits) } " deposits" }
                li { strong { (page.counts.members) } " verified members" }
                li { strong { (page.counts.proposals) } " proposals" }
                li { strong { (page.counts.log_size) } " log entries" }
            }
        }
        section aria-labelledby="mixture" {
            h2 #mixture { "The training mixture" }
            (mixture(page.mixture))
        }
        section aria-labelledby="recent" {
            h2 #recent { "Recent deposits" }
            @if page.recent.is_empty() {
                p { "Nothing has been deposited yet. " a href="/deposit" { "Deposit the first text" } "." }
            } @else {
                (crate::deposit::table(page.recent, "The latest deposits"))
                p { a href="/deposits" { "All deposits, with filters and search" } }
            }
        }
        div.columns {
            section aria-labelledby="registers" {
                h2 #registers { "Registers" }
                p { "A register says what kind of text a deposit is. This commons knows these:" }
                dl {
                    @for register in page.registers {
                        dt { (register) }
                        dd { (wording::register(register)) }
                    }
                }
            }
            section aria-labelledby="tiers" {
                h2 #tiers { "Consent tiers" }
                p { "A depositor chooses how far a text may go, and may later narrow it, never widen it:" }
                dl {
                    @for tier in ConsentTier::ALL {
                        dt { (tier.as_str()) }
                        dd { (wording::tier(tier)) }
                    }
                }
            }
        }
    };
    document(site, "Home", Section::Home, main)
}

/// The mixture as a bar chart, with the same numbers in a table for those who do not see it.
fn mixture(mixture: Option<&MixtureRecord>) -> Markup {
    let Some(mixture) = mixture else {
        return html! {
            p { "The members have not decided a training mixture yet. A " a href="/proposals" { "proposal" } " that sets one, once passed, decides the share of each register in the next governed training run." }
        };
    };
    let rows: Vec<(&str, f64)> = mixture.weights.iter().map(|(r, w)| (r.as_str(), *w)).collect();
    let largest = rows.iter().map(|(_, w)| *w).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
    let bar_height = 24;
    let height = rows.len() * bar_height + 8;
    html! {
        p {
            "Decided by " a href={ "/proposals/" (mixture.proposal) } { "proposal " (mixture.proposal) }
            " from " (mixture.ballots) " ballot(s), on " (wording::when(mixture.at))
            ". The next governed training run samples the registers in these shares."
        }
        figure.mixture {
            svg viewBox={ "0 0 400 " (height) } width="400" height=(height) aria-hidden="true" focusable="false" {
                @for (n, (register, share)) in rows.iter().enumerate() {
                    @let y = n * bar_height + 4;
                    text x="0" y=(y + 16) class="label" { (register) }
                    rect x="120" y=(y + 2) height="18" width=(format!("{:.1}", 220.0 * share / largest)) class="bar" {}
                    text x=(format!("{:.1}", 126.0 + 220.0 * share / largest)) y=(y + 16) class="value" { (wording::percent(*share)) }
                }
            }
            table {
                caption { "Share of each register in the mixture" }
                thead { tr { th scope="col" { "Register" } th scope="col" { "Share" } } }
                tbody {
                    @for (register, share) in &rows {
                        tr { th scope="row" { (register) } td.number { (wording::percent(*share)) } }
                    }
                }
            }
        }
    }
}
