//! How the pages word what the records hold: times, tiers, registers, outcomes and actions, in
//! plain sentences.

use maud::{Markup, html};
use substrate_core::ConsentTier;
use substrate_core::governance::acts::{Action, Ground, Ruling};
use substrate_core::governance::tally::{Chamber, Outcome};
use substrate_core::state::{DepositRecord, DepositStatus};

/// A time as people read it, with the exact instant for machines.
pub(crate) fn when(ms: u64) -> Markup {
    let exact = substrate_core::timestamp::rfc3339(ms);
    // "2026-11-22T05:00:35.222Z" reads as "2026-11-22 05:00 UTC".
    let shown = format!("{} {} UTC", exact.get(..10).unwrap_or(&exact), exact.get(11..16).unwrap_or(""));
    html! { time datetime=(exact) { (shown) } }
}

/// How long `ms` is, in the largest whole unit that fits.
pub(crate) fn duration(ms: u64) -> String {
    let minutes = ms / 60_000;
    let plural = |n: u64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    if minutes >= 2 * 24 * 60 {
        plural(minutes / (24 * 60), "day")
    } else if minutes >= 2 * 60 {
        plural(minutes / 60, "hour")
    } else if minutes >= 1 {
        plural(minutes, "minute")
    } else {
        plural(ms / 1000, "second")
    }
}

/// A share as a percentage with one decimal.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// A weight: whole numbers as they are, fractions to three places.
pub(crate) fn weight(value: f64) -> String {
    if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.3}") }
}

/// A did:key shortened for tables, whole in its title.
pub(crate) fn person(did: &str) -> Markup {
    let short = if did.len() > 24 && did.is_char_boundary(16) && did.is_char_boundary(did.len() - 6) {
        format!("{}…{}", &did[..16], &did[did.len() - 6..])
    } else {
        did.to_owned()
    };
    html! { a href={ "/members/" (did) } title=(did) { code { (short) } } }
}

/// One plain sentence per consent tier.
pub(crate) fn tier(tier: ConsentTier) -> &'static str {
    match tier {
        ConsentTier::Public => "Anyone can read it.",
        ConsentTier::Commons => "Members read it.",
        ConsentTier::TrainingOnly => "Used for governed training, never shown.",
        ConsentTier::Local => "Stays on the node it was deposited to.",
    }
}

/// One plain sentence per register the commons starts with; a register the commons added later
/// has none.
pub(crate) fn register(name: &str) -> &'static str {
    match name {
        "narrative" => "Stories: something told from its beginning to its end.",
        "conversational" => "Talk between people, written down as it went.",
        "technical" => "Notes, manuals and explanations of how things work.",
        "sacred" => "Prayers, liturgies and other texts held holy.",
        "oral" => "Speech first: texts that were said aloud before they were written.",
        "pedagogical" => "Teaching: lessons, classroom dialogues, exercises.",
        "lyric" => "Songs and poems.",
        "encyclopedic" => "Reference: articles that set out what is known about a subject.",
        _ => "A register the members added.",
    }
}

/// Where a deposit stands, in a few words.
pub(crate) fn status(deposit: &DepositRecord) -> String {
    match deposit.status {
        DepositStatus::Active if !deposit.history.is_empty() => "active, changed since".to_owned(),
        DepositStatus::Active => "active".to_owned(),
        DepositStatus::Withdrawn { log_index, .. } => format!("withdrawn (entry {log_index})"),
        DepositStatus::Removed { log_index, .. } => format!("removed by the commons (entry {log_index})"),
    }
}

pub(crate) fn chamber(chamber: Chamber) -> &'static str {
    match chamber {
        Chamber::Contributor => "contributor chamber",
        Chamber::Technical => "technical chamber",
    }
}

/// An outcome as a sentence's end: "passed", "was rejected: …".
pub(crate) fn outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Passed => "it passes".to_owned(),
        Outcome::Rejected { reason } => format!("it is rejected: {reason}"),
        Outcome::Vetoed { by } => format!("it is vetoed by the {}", chamber(*by)),
    }
}

pub(crate) fn ground(ground: &Ground) -> &'static str {
    match ground {
        Ground::WrongRegister => "it carries the wrong register",
        Ground::DoubtfulConsent => "its consent is in doubt",
        Ground::Spam => "it is spam",
        Ground::Harm => "it does harm",
    }
}

pub(crate) fn ruling(ruling: &Ruling) -> String {
    match ruling {
        Ruling::Relabel { register } => format!("give it the register {register}"),
        Ruling::NarrowConsent { consent } => format!("narrow its consent to {consent}"),
        Ruling::Remove => "remove it from the commons".to_owned(),
        Ruling::Dismiss => "dismiss the dispute and leave the deposit as it is".to_owned(),
    }
}

/// What one action of a proposal does, in words.
pub(crate) fn action(action: &Action) -> Markup {
    match action {
        Action::SetMixture { ballot } => html! {
            "Set the training mixture from the voters' ballots: every vote that carries a distribution over registers counts in it. The proposer's own ballot: "
            (ballot.iter().map(|(register, share)| format!("{register} {}", percent(*share))).collect::<Vec<_>>().join(", "))
            "."
        },
        Action::SetParameter { key, value } => html! {
            "Change the parameter " code { (key) } " to " code { (value.to_string()) } "."
        },
        Action::RemoveDeposit { cid, reason } => html! {
            "Remove the deposit " a href={ "/deposits/" (cid) } { code { (cid) } } " from the commons (its text is deleted, a tombstone stays), because: " (reason)
        },
        Action::ResolveDispute { dispute, ruling: decided } => html! {
            "Rule on " a href={ "/disputes/" (dispute) } { "dispute " (dispute) } ": " (ruling(decided)) "."
        },
        Action::ApproveWorkload { kind, version, models } => html! {
            "Approve the workload " code { (kind) } " at version " code { (version) } " for the mesh to run"
            @if models.is_empty() { "." } @else { ", pinned to " (models.len()) " model file(s) by their SHA-256." }
        },
        Action::ElectBoard { seats, candidates } => html! {
            "Elect a stewardship board of " (seats) " seat(s) by ranked vote (Meek STV) from "
            (candidates.len()) " candidate(s): "
            @for (n, candidate) in candidates.iter().enumerate() {
                @if n > 0 { ", " }
                (person(candidate))
            }
            "."
        },
    }
}
