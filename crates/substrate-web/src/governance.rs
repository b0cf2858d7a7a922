//! Governance pages: proposals with both chambers' tallies, members and their credits, disputes.

use maud::{Markup, html};
use substrate_core::governance::acts::Effect;
use substrate_core::governance::book::{
    DisputeRecord, DisputeStatus, Member, MemberStatus, ProposalRecord, ProposalStatus, VoteRecord,
};
use substrate_core::governance::credits::CreditStatement;
use substrate_core::governance::params::CreditRates;
use substrate_core::governance::tally::{Chamber, ChamberTally, Outcome, Threshold, Vote};

use crate::layout::{Section, Site, document};
use crate::wording;

/// Where a proposal stands: the tallies its decision recorded, or those of now while it is open,
/// with the outcome the governance rules give them.
#[derive(Clone, Debug)]
pub struct Standing {
    pub contributor: ChamberTally,
    pub technical: ChamberTally,
    pub outcome: Outcome,
    /// Whether the sequencer has decided it (the tallies are final).
    pub decided: bool,
    /// The time the tallies are of (ms since the epoch).
    pub as_of: u64,
    pub votes: u64,
}

/// One proposal in a list.
#[derive(Debug)]
pub struct ProposalRow<'a> {
    pub proposal: &'a ProposalRecord,
    pub standing: Standing,
}

/// What the list of proposals shows: one page, in the order they were put.
#[derive(Debug)]
pub struct ProposalsPage<'a> {
    pub rows: Vec<ProposalRow<'a>>,
    /// The `after` of the next page, when there is one.
    pub next: Option<u64>,
}

pub fn proposals(site: &Site, page: &ProposalsPage) -> Markup {
    let (open, decided): (Vec<&ProposalRow>, Vec<&ProposalRow>) =
        page.rows.iter().partition(|row| !row.standing.decided);
    let main = html! {
        h1 { "Proposals" }
        p {
            "Members put proposals to two chambers: the contributor chamber (every verified member, one vote each) and the technical chamber (every node operator, weighted by the compute they verified). One chamber leads each question; the other may veto it. When a proposal's window closes, the log's sequencer records the decision, and anyone replaying the log computes it again."
        }
        p { a href="/propose" { "Make a proposal" } ": set the training mixture, change a parameter or remove a deposit, signed in this browser." }
        section aria-labelledby="open" {
            h2 #open { "Open for votes" }
            @if open.is_empty() { p { "No proposal is open on this page." } } @else { (table(&open, "Open proposals", true)) }
        }
        section aria-labelledby="decided" {
            h2 #decided { "Decided" }
            @if decided.is_empty() { p { "No proposal has been decided on this page." } } @else { (table(&decided, "Decided proposals", false)) }
        }
        @if let Some(after) = page.next {
            nav.pages aria-label="Pages of proposals" {
                a href="/proposals" { "First page" } " · " a href={ "/proposals?after=" (after) } rel="next" { "Later proposals" }
            }
        }
    };
    document(site, "Proposals", Section::Proposals, main)
}

fn table(rows: &[&ProposalRow], caption: &str, open: bool) -> Markup {
    html! {
        div.scroll {
            table {
                caption { (caption) }
                thead {
                    tr {
                        th scope="col" { "Proposal" }
                        th scope="col" { "Class" }
                        th scope="col" { "Led by" }
                        th scope="col" { @if open { "Closes" } @else { "Closed" } }
                        th scope="col" { "Votes" }
                        th scope="col" { @if open { "If it closed now" } @else { "Outcome" } }
                    }
                }
                tbody {
                    @for row in rows {
                        tr {
                            th scope="row" { a href={ "/proposals/" (row.proposal.id) } { (row.proposal.id) ". " (row.proposal.title) } }
                            td { (row.proposal.class.name()) }
                            td { (wording::chamber(row.proposal.lead)) }
                            td { (wording::when(row.proposal.closes_at)) }
                            td.number { (row.standing.votes) }
                            td { (wording::outcome(&row.standing.outcome)) }
                        }
                    }
                }
            }
        }
    }
}

/// What a proposal's page shows.
#[derive(Debug)]
pub struct ProposalPage<'a> {
    pub proposal: &'a ProposalRecord,
    pub standing: Standing,
    /// (contributor, technical) thresholds of the proposal's class.
    pub thresholds: (Threshold, Threshold),
    /// The votes on record, in voter order (a page may hold only the first of many).
    pub votes: &'a [&'a VoteRecord],
    /// What the passed actions did, once decided.
    pub effects: Option<&'a [Effect]>,
    /// The time now (ms since the epoch), for the window.
    pub now: u64,
}

/// Votes listed on a proposal's page at most; the API lists them all.
const MOST_VOTES_SHOWN: usize = 500;

pub fn proposal(site: &Site, page: &ProposalPage) -> Markup {
    let p = page.proposal;
    let s = &page.standing;
    let main = html! {
        h1 { (p.title) }
        p {
            "Proposal " (p.id) ", " (p.class.name()) ", led by the " (wording::chamber(p.lead))
            ", put by " (wording::person(&p.proposer)) " on " (wording::when(p.opened_at)) "."
        }
        @if let Some(summary) = &p.summary { p.summary { (summary) } }
        section aria-labelledby="what" {
            h2 #what { "What it proposes" }
            ol { @for action in &p.actions { li { (wording::action(action)) } } }
        }
        section aria-labelledby="window" {
            h2 #window { "The window" }
            p {
                "Voting opened " (wording::when(p.opened_at)) " and "
                @if s.decided { "closed " (wording::when(p.closes_at)) "." }
                @else if page.now < p.closes_at {
                    "closes " (wording::when(p.closes_at)) ", in " (wording::duration(p.closes_at - page.now)) "."
                } @else {
                    "closed " (wording::when(p.closes_at)) "; the sequencer records the decision next."
                }
            }
        }
        // While the window is open app.js refreshes the figures from the API (`data-live`), and
        // once more after the close to show the decision; without it these stay as rendered.
        section aria-labelledby="tallies" data-live=[(!s.decided).then_some("tally")] data-proposal=(p.id) {
            h2 #tallies { "The tallies" }
            p {
                span data-tally-basis {
                    @if s.decided { "As the decision recorded them at the close." }
                    @else { "As of " (wording::when(s.as_of)) ", counted by the same rules the decision will use." }
                }
                " Yes must be more than the majority share of yes and no, and at least the quorum share of the chamber's whole eligible weight; a tie keeps things as they are."
            }
            div.scroll {
                table.tally {
                    caption { "Both chambers" }
                    thead {
                        tr {
                            th scope="col" { "Chamber" }
                            th scope="col" { "Yes" }
                            th scope="col" { "No" }
                            th scope="col" { "Abstain" }
                            th scope="col" { "Eligible" }
                            th scope="col" { "Yes of yes and no" }
                            th scope="col" { "Yes of eligible" }
                            th scope="col" { "Majority needed" }
                            th scope="col" { "Quorum needed" }
                        }
                    }
                    tbody {
                        (chamber_row(Chamber::Contributor, p.lead, &s.contributor, page.thresholds.0))
                        (chamber_row(Chamber::Technical, p.lead, &s.technical, page.thresholds.1))
                    }
                }
            }
            // Polite and atomic: a screen reader hears the whole sentence when a vote changes it.
            p.outcome aria-live="polite" aria-atomic="true" {
                strong data-tally-outcome {
                    @if s.decided { "Decided: " } @else { "If the window closed now, " }
                    (wording::outcome(&s.outcome)) "."
                }
            }
            p data-tally-decision {
                @if let ProposalStatus::Closed { decision, .. } = &p.status {
                    "The decision is " a href={ "/log?start=" (decision) } { "entry " (decision) } " of the log."
                }
            }
        }
        @if let Some(effects) = page.effects {
            section aria-labelledby="effects" {
                h2 #effects { "What it did" }
                @if effects.is_empty() { p { "Nothing: it did not pass." } }
                ul { @for effect in effects { li { (effect_words(effect)) } } }
            }
        }
        section aria-labelledby="votes" {
            h2 #votes { "Votes (" (s.votes) ")" }
            @if page.votes.is_empty() {
                p { "Nobody has voted yet." }
            } @else {
                div.scroll {
                    table {
                        caption { "Each member's current vote" }
                        thead { tr { th scope="col" { "Voter" } th scope="col" { "Vote" } th scope="col" { "When" } th scope="col" { "Mixture ballot" } } }
                        tbody {
                            @for vote in page.votes.iter().take(MOST_VOTES_SHOWN) {
                                tr {
                                    th scope="row" { (wording::person(&vote.voter)) }
                                    td { (choice(vote.choice)) }
                                    td { (wording::when(vote.at)) }
                                    td {
                                        @if let Some(mixture) = &vote.mixture {
                                            (mixture.iter().map(|(r, w)| format!("{r} {}", wording::percent(*w))).collect::<Vec<_>>().join(", "))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if page.votes.len() > MOST_VOTES_SHOWN {
                    p { "And " (page.votes.len() - MOST_VOTES_SHOWN) " more: " a href={ "/v1/proposals/" (p.id) } { "the API lists them all" } "." }
                }
            }
        }
        (crate::act::vote_form(p.id, !s.decided && page.now < p.closes_at))
    };
    document(site, &p.title, Section::Proposals, main)
}

fn choice(vote: Vote) -> &'static str {
    match vote {
        Vote::Yes => "yes",
        Vote::No => "no",
        Vote::Abstain => "abstain",
    }
}

/// One chamber's row; each figure the API also gives is marked `data-tally="CHAMBER FIGURE"` for
/// app.js to refresh.
fn chamber_row(chamber: Chamber, lead: Chamber, tally: &ChamberTally, threshold: Threshold) -> Markup {
    let decided = tally.yes + tally.no;
    let of_decided = if decided > 0.0 { tally.yes / decided } else { 0.0 };
    let of_eligible = if tally.eligible > 0.0 { tally.yes / tally.eligible } else { 0.0 };
    let name = match chamber {
        Chamber::Contributor => "contributor",
        Chamber::Technical => "technical",
    };
    let cell = |figure: &str| format!("{name} {figure}");
    html! {
        tr {
            th scope="row" {
                (wording::chamber(chamber))
                @if chamber == lead { " (leads)" } @else { " (may veto)" }
            }
            td.number data-tally=(cell("yes")) { (wording::weight(tally.yes)) }
            td.number data-tally=(cell("no")) { (wording::weight(tally.no)) }
            td.number data-tally=(cell("abstain")) { (wording::weight(tally.abstain)) }
            td.number data-tally=(cell("eligible")) { (wording::weight(tally.eligible)) }
            td.number data-tally=(cell("of-decided")) { (wording::percent(of_decided)) }
            td.number data-tally=(cell("of-eligible")) { (wording::percent(of_eligible)) }
            td.number { "more than " (wording::percent(threshold.majority)) }
            td.number { (wording::percent(threshold.quorum)) }
        }
    }
}

fn effect_words(effect: &Effect) -> Markup {
    match effect {
        Effect::Mixture { weights, ballots } => html! {
            "Set the mixture from " (ballots) " ballot(s): "
            (weights.iter().map(|(r, w)| format!("{r} {}", wording::percent(*w))).collect::<Vec<_>>().join(", "))
        },
        Effect::Parameter { key, value } => {
            html! { "Set " code { (key) } " to " code { (value.to_string()) } }
        }
        Effect::Removed { cid } => html! { "Removed " a href={ "/deposits/" (cid) } { code { (cid) } } },
        Effect::Ruling { dispute, ruling } => html! {
            "Ruled on " a href={ "/disputes/" (dispute) } { "dispute " (dispute) } ": " (wording::ruling(ruling))
        },
        Effect::Workload { kind, version, .. } => {
            html! { "Approved the workload " code { (kind) } " at " code { (version) } }
        }
        Effect::Board { members, ballots } => html! {
            "Elected a board of " (members.len()) " from " (ballots) " ballot(s): "
            @for (n, member) in members.iter().enumerate() { @if n > 0 { ", " } (wording::person(member)) }
        },
        Effect::Skipped { action, reason } => html! { "Skipped " code { (action) } ": " (reason) },
    }
}

/// One member in the list.
#[derive(Debug)]
pub struct MemberRow<'a> {
    pub member: &'a Member,
    pub verified: bool,
    pub steward: bool,
    pub nodes: usize,
}

pub fn members(site: &Site, rows: &[MemberRow]) -> Markup {
    let main = html! {
        h1 { "Members" }
        p {
            "A member is a person the commons verified as a human: a steward attests them, or enough verified members vouch for them. A verification lasts a set time and is renewed the same way. Verified members vote in the contributor chamber; those who run a registered node also sit in the technical chamber."
        }
        @if rows.is_empty() {
            p { "The commons knows no member yet." }
        } @else {
            div.scroll {
                table {
                    caption { (rows.len()) " people known to the commons" }
                    thead { tr { th scope="col" { "Member" } th scope="col" { "Status" } th scope="col" { "Verified until" } th scope="col" { "Steward" } th scope="col" { "Nodes" } } }
                    tbody {
                        @for row in rows {
                            tr {
                                th scope="row" { (wording::person(&row.member.person)) }
                                td { (member_status(row.member, row.verified)) }
                                td { @if row.member.expires_at > 0 { (wording::when(row.member.expires_at)) } }
                                td { @if row.steward { "steward" } }
                                td.number { (row.nodes) }
                            }
                        }
                    }
                }
            }
        }
    };
    document(site, "Members", Section::Members, main)
}

fn member_status(member: &Member, verified: bool) -> String {
    match &member.status {
        MemberStatus::Verified if verified => "verified".to_owned(),
        MemberStatus::Verified => "verification expired".to_owned(),
        MemberStatus::Pending => format!("pending ({} vouch(es) so far)", member.vouches.len()),
        MemberStatus::Revoked { log_index, duplicate, reason } => format!(
            "revoked at entry {log_index}{}: {reason}",
            if *duplicate { " as a duplicate" } else { "" }
        ),
    }
}

/// What a member's page shows.
#[derive(Debug)]
pub struct MemberPage<'a> {
    /// The person's did:key.
    pub person: &'a str,
    /// Their membership; `None` for someone the commons has never attested (a depositor, say).
    pub member: Option<&'a Member>,
    pub verified: bool,
    pub steward: bool,
    /// The node keys this member operates.
    pub nodes: Vec<&'a str>,
    pub credits: &'a CreditStatement,
    /// The commons' credit rates; `None` before its genesis is read.
    pub rates: Option<CreditRates>,
}

pub fn member(site: &Site, page: &MemberPage) -> Markup {
    let c = page.credits;
    let heading = if page.member.is_some() { "Member" } else { "Not a member" };
    let main = html! {
        h1 { (heading) }
        p { code.wrap { (page.person) } }
        @match page.member {
            None => p {
                "The commons has never attested this key as a member. Anyone with a key may deposit; a steward, or enough verified members vouching, makes someone a member."
            },
            Some(m) => dl.facts {
                dt { "Status" } dd { (member_status(m, page.verified)) }
                @if m.expires_at > 0 { dt { "Verified until" } dd { (wording::when(m.expires_at)) } }
                dt { "Steward" } dd { @if page.steward { "yes, a member of the board" } @else { "no" } }
                dt { "May vouch for others" } dd { @if m.may_vouch { "yes" } @else { "no" } }
                dt { "Attested by" }
                dd {
                    @if m.attested_by.is_empty() { "nobody yet" }
                    @for (n, who) in m.attested_by.iter().enumerate() { @if n > 0 { ", " } (wording::person(who)) }
                }
                dt { "Nodes" }
                dd {
                    @if page.nodes.is_empty() { "none registered" }
                    @for (n, node) in page.nodes.iter().enumerate() { @if n > 0 { ", " } code.wrap { (node) } }
                }
            },
        }
        p { a href={ "/deposits?depositor=" (page.person) } { "Deposits made with this key" } }
        section aria-labelledby="credits" {
            h2 #credits { "Credits" }
            dl.facts {
                dt { "Balance" } dd { (format!("{:.3}", c.balance)) " credits" }
                dt { "Earned in all" } dd { (format!("{:.3}", c.earned)) " credits, from " (c.grants) " grant(s)" }
                dt { "Today's allowance" } dd { (format!("{:.3}", c.floor_today)) " credits of inference from the commons floor" }
                dt { "Stability pool" } dd { (format!("{:.3}", c.stability_pool)) " credits" }
            }
            h3 { "How credits work" }
            ul {
                li { "Credits are earned by rule and never bought, sold or moved from one holder to another." }
                @if let Some(rates) = page.rates {
                    li {
                        "A deposit earns " (rates.deposit) ", each CPU-second of verified compute " (rates.compute)
                        ", a dispute the ruling upheld " (rates.review) ", and each board signature on a ruling " (rates.dispute) "."
                    }
                    li {
                        (wording::percent(f64::from(rates.stability_share_ppm) / 1_000_000.0))
                        " of every grant goes to the stability pool, which funds a daily allowance of up to "
                        (rates.floor) " credits for every verified member."
                    }
                }
                li { "Balances decay a little every day, so a balance left alone halves in about " (c.half_life_days) " days." }
                li { "Credits pay for jobs run on the members' nodes: a job's credits are held back when it is requested and paid for verified compute." }
            }
        }
        @if let Some(m) = page.member.filter(|m| !m.history.is_empty()) {
            section aria-labelledby="history" {
                h2 #history { "Entries that changed this membership" }
                ul { @for index in &m.history { li { a href={ "/log?start=" (index) } { "entry " (index) } } } }
            }
        }
    };
    document(site, heading, Section::Members, main)
}

pub fn disputes(site: &Site, disputes: &[&DisputeRecord]) -> Markup {
    let main = html! {
        h1 { "Disputes" }
        p {
            "A member may dispute a deposit: its register is wrong, its consent is in doubt, it is spam or it does harm. Until the board rules (enough of its members signing the same ruling), the deposit stays out of training snapshots. A ruling can be appealed to the chambers with a proposal."
        }
        @if disputes.is_empty() {
            p { "Nobody has disputed a deposit." }
        } @else {
            div.scroll {
                table {
                    caption { "Every dispute, the latest first" }
                    thead { tr { th scope="col" { "Dispute" } th scope="col" { "Deposit" } th scope="col" { "Ground" } th scope="col" { "Opened" } th scope="col" { "Status" } } }
                    tbody {
                        @for dispute in disputes {
                            tr {
                                th scope="row" { a href={ "/disputes/" (dispute.id) } { "Dispute " (dispute.id) } }
                                td { a href={ "/deposits/" (dispute.cid) } { code { (short_cid(&dispute.cid.to_string())) } } }
                                td { (wording::ground(&dispute.ground)) }
                                td { (wording::when(dispute.opened_at)) }
                                td { (dispute_status(&dispute.status)) }
                            }
                        }
                    }
                }
            }
        }
    };
    document(site, "Disputes", Section::Disputes, main)
}

fn short_cid(cid: &str) -> String {
    if cid.len() > 20 && cid.is_ascii() {
        format!("{}…{}", &cid[..12], &cid[cid.len() - 6..])
    } else {
        cid.to_owned()
    }
}

fn dispute_status(status: &DisputeStatus) -> String {
    match status {
        DisputeStatus::Open => "open".to_owned(),
        DisputeStatus::Ruled { ruling, log_index, .. } => {
            format!("the board ruled at entry {log_index}: {}", wording::ruling(ruling))
        }
        DisputeStatus::Resolved { ruling, decision } => {
            format!("the chambers ruled by decision {decision}: {}", wording::ruling(ruling))
        }
    }
}

/// What a dispute's page shows.
#[derive(Debug)]
pub struct DisputePage<'a> {
    pub dispute: &'a DisputeRecord,
    /// The disputed deposit's title, when this node knows the deposit.
    pub title: Option<&'a str>,
    /// The reason the board gave with the signature that put its ruling in force.
    pub reason: Option<&'a str>,
    /// The proposal whose decision ruled, when the chambers ruled.
    pub proposal: Option<u64>,
}

pub fn dispute(site: &Site, page: &DisputePage) -> Markup {
    let d = page.dispute;
    let heading = format!("Dispute {}", d.id);
    let main = html! {
        h1 { (heading) }
        dl.facts {
            dt { "Deposit" }
            dd { a href={ "/deposits/" (d.cid) } { (page.title.unwrap_or("the disputed deposit")) } " " code.wrap { (d.cid) } }
            dt { "Ground" } dd { (wording::ground(&d.ground)) }
            @if let Some(register) = &d.register { dt { "Register it should carry" } dd { (register) } }
            dt { "Opened by" } dd { (wording::person(&d.opened_by)) " on " (wording::when(d.opened_at)) " (" a href={ "/log?start=" (d.id) } { "entry " (d.id) } ")" }
            dt { "Status" } dd { (dispute_status(&d.status)) }
        }
        h2 { "What the member said" }
        p.summary { (d.detail) }
        section aria-labelledby="ruling" {
            h2 #ruling { "The ruling" }
            @match &d.status {
                DisputeStatus::Open => p {
                    "The board has not ruled yet. Until it does, the deposit stays out of training snapshots. A ruling takes effect when enough board members sign the same one."
                },
                DisputeStatus::Ruled { ruling, log_index, signers } => {
                    p {
                        strong { "The board ruled: " (wording::ruling(ruling)) "." }
                        " In force from " a href={ "/log?start=" (log_index) } { "entry " (log_index) } " of the log, signed by "
                        @for (n, signer) in signers.iter().enumerate() { @if n > 0 { ", " } (wording::person(signer)) }
                        "."
                    }
                    @if let Some(reason) = page.reason.filter(|r| !r.trim().is_empty()) {
                        p { "The reason given:" }
                        p.summary { (reason) }
                    }
                    p {
                        "A member who thinks the board wrong appeals to the chambers with a proposal that rules on this dispute ("
                        code { "substrate propose --resolve-dispute " (d.id) "=RULING" } ")."
                    }
                }
                DisputeStatus::Resolved { ruling, decision } => p {
                    strong { "The chambers ruled: " (wording::ruling(ruling)) "." }
                    " By the decision at " a href={ "/log?start=" (decision) } { "entry " (decision) } " of the log"
                    @if let Some(proposal) = page.proposal {
                        ", on " a href={ "/proposals/" (proposal) } { "proposal " (proposal) }
                    }
                    "."
                },
            }
        }
        h2 { "Board signatures" }
        @if d.endorsements.is_empty() {
            p { "No board member has signed a ruling yet." }
        } @else {
            ul {
                @for endorsement in &d.endorsements {
                    li {
                        (wording::ruling(&endorsement.ruling)) ": signed by "
                        @for (n, signer) in endorsement.signers.iter().enumerate() { @if n > 0 { ", " } (wording::person(signer)) }
                    }
                }
            }
        }
    };
    document(site, &heading, Section::Disputes, main)
}
