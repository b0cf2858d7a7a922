//! How governance events change the state: who may do what, and what it leads to. Every function
//! here is pure; a refusal leaves the state as it was.

use std::collections::BTreeMap;
use std::iter::Peekable;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Verifier;

use crate::cid::Cid;
use crate::event::{Event, SignedEvent};
use crate::governance::acts::{
    Action, ActionProblem, Attestation, BallotFault, ComputeFault, Decision, Dispute, DisputeRuling, Effect,
    Ground, JobReceipt, NodeRegistration, Proposal, ProposalFault, Revocation, Ruling, VoteCast,
    node_binding_message,
};
use crate::governance::book::*;
use crate::governance::credits::CreditBook;
use crate::governance::mixture;
use crate::governance::number::{Arithmetic, Fixed, Number};
use crate::governance::params::{DAY_MS, Parameters};
use crate::governance::stv::{self, RankedBallot};
use crate::governance::tally::{self, ChamberTally, Outcome};
use crate::state::{Change, Commons, DepositRecord, DepositStatus, Rejection, State};

mod disputes;

/// Most seats a board election may fill, and most candidates it may list.
pub const MAX_SEATS: u32 = 25;
pub const MAX_CANDIDATES: usize = 100;
/// Most compute units (CPU-seconds) one job receipt may claim: a week of one core.
pub const MAX_JOB_UNITS: u64 = 7 * 24 * 3600;

/// What identifies a job: its workload, inputs and outputs (hex sha256 of them, in order).
fn job_digest(j: &JobReceipt) -> String {
    let mut text = j.workload.clone();
    for digest in j.inputs.iter().chain(std::iter::once(&"->".to_owned())).chain(&j.outputs) {
        text.push('\n');
        text.push_str(digest);
    }
    hex::encode(crate::sha256(text.as_bytes()))
}

impl State {
    /// The changes governance event `signed` makes as entry `index` at `time`.
    pub(crate) fn next_governance(
        &self,
        index: u64,
        time: u64,
        signed: &SignedEvent,
        commons: &Commons,
    ) -> Result<Vec<Change>, Rejection> {
        let g = &self.governance;
        let params = g.params.as_ref().ok_or(Rejection::NoGenesis)?;
        let signer = signed.signer.as_str();
        match &signed.event {
            Event::Attestation(a) => self.attest(index, time, signer, a, params),
            Event::Revocation(r) => self.revoke(index, time, &signed.signers, r, params),
            Event::NodeRegistration(n) => self.register_node(index, time, signer, n, commons),
            Event::Proposal(p) => self.propose(index, time, signer, p, params),
            Event::Vote(v) => self.vote(index, time, signer, v, params),
            Event::Decision(d) => self.close(index, signer, time, d, commons),
            Event::Dispute(d) => self.open_dispute(index, time, signer, d, params),
            Event::DisputeRuling(r) => self.endorse_ruling(index, time, &signed.signers, r, params),
            Event::JobReceipt(j) => self.verify_compute(index, time, &signed.signers, j, params),
            Event::NodeOffer(o) => self.offer(index, time, signer, o),
            Event::JobRequest(r) => self.request_job(index, time, signer, r, params),
            Event::JobSchedule(s) => self.schedule_job(index, time, signer, s, commons, params),
            Event::JobResult(r) => self.job_result(index, time, signer, r, params),
            Event::TokenGrant(t) => self.mint_token(index, time, signer, t),
            Event::TokenRevocation(t) => self.revoke_token(time, signer, t),
            Event::Usage(u) => self.record_usage(index, time, signer, u, commons, params),
            Event::DoiRegistration(d) => self.record_doi(index, time, signer, d),
            Event::Adapter(a) => self.publish_adapter(index, time, signed, a),
            Event::Genesis(_) | Event::Deposit(_) | Event::Withdrawal(_) | Event::ConsentChange(_) => {
                Ok(Vec::new())
            }
        }
    }

    /// Whether `who` sits on the board and is a verified member now: only they act as stewards.
    fn acting_steward(&self, who: &str, time: u64) -> bool {
        self.governance.is_steward(who) && self.governance.is_verified(who, time)
    }

    /// Every signer must be an acting steward.
    pub(crate) fn require_stewards(&self, signers: &[String], time: u64) -> Result<(), Rejection> {
        match signers.iter().find(|s| !self.acting_steward(s, time)) {
            Some(outsider) => Err(Rejection::NotSteward(outsider.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn require_member(&self, who: &str, time: u64) -> Result<(), Rejection> {
        match self.governance.members.get(who) {
            Some(m) if m.verified_at(time) => Ok(()),
            Some(m) if m.status == MemberStatus::Verified => Err(Rejection::MembershipExpired {
                who: who.to_owned(),
                expired: crate::timestamp::rfc3339(m.expires_at),
            }),
            _ => Err(Rejection::NotMember(who.to_owned())),
        }
    }

    fn attest(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        a: &Attestation,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        let g = &self.governance;
        let days = a.days.unwrap_or(params.attestation_days);
        if days == 0 || days > params.attestation_days {
            return Err(Rejection::AttestationDays { days, max: params.attestation_days });
        }
        let mut member = g.members.get(&a.person).cloned().unwrap_or_else(|| Member {
            person: a.person.clone(),
            status: MemberStatus::Pending,
            expires_at: 0,
            attested_by: Vec::new(),
            vouches: Vec::new(),
            may_vouch: true,
            history: Vec::new(),
        });
        if g.nodes.contains_key(&a.person) {
            return Err(Rejection::NodeKeyNotPerson(a.person.clone()));
        }
        if let MemberStatus::Revoked { duplicate: true, .. } = member.status {
            return Err(Rejection::RevokedDuplicate(a.person.clone()));
        }
        if signer == a.person {
            return Err(Rejection::SelfAttestation);
        }
        member.history.push(index);
        let expires_at = time.saturating_add(u64::from(days) * DAY_MS);
        if self.acting_steward(signer, time) {
            member.status = MemberStatus::Verified;
            member.expires_at = expires_at;
            member.vouches.clear();
            member.attested_by.push(signer.to_owned());
            return Ok(vec![Change::Record(Record::Member(member))]);
        }
        if params.vouches_required == 0 {
            return Err(Rejection::NotSteward(signer.to_owned()));
        }
        self.require_member(signer, time)?;
        if !g.members.get(signer).is_some_and(|m| m.may_vouch) {
            return Err(Rejection::MayNotVouch(signer.to_owned()));
        }
        // Vouching brings new people in; renewing an attestation or undoing a revocation is the
        // stewards' alone.
        if member.status != MemberStatus::Pending {
            return Err(Rejection::StewardOnly {
                person: a.person.clone(),
                status: if member.status == MemberStatus::Verified { "or was verified" } else { "revoked" }
                    .to_owned(),
            });
        }
        member.vouches.retain(|(voucher, _)| voucher != signer);
        member.vouches.push((signer.to_owned(), index));
        // Vouches count while their vouchers are still verified members.
        let live: Vec<String> = member
            .vouches
            .iter()
            .filter(|(voucher, _)| g.is_verified(voucher, time))
            .map(|(voucher, _)| voucher.clone())
            .collect();
        if live.len() >= params.vouches_required as usize {
            member.status = MemberStatus::Verified;
            member.expires_at = expires_at;
            member.attested_by.extend(live);
            member.vouches.clear();
        } else {
            member.status = MemberStatus::Pending;
        }
        Ok(vec![Change::Record(Record::Member(member))])
    }

    fn revoke(
        &self,
        index: u64,
        time: u64,
        signers: &[String],
        r: &Revocation,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        let g = &self.governance;
        self.require_stewards(signers, time)?;
        // One steward cannot unseat the others: revoking a board member takes as many stewards'
        // signatures (in one co-signed envelope) as a ruling does.
        let needed = params.ruling_quorum(g.board.members.len());
        if g.is_steward(&r.person) && signers.len() < needed {
            return Err(Rejection::StewardRevocation {
                person: r.person.clone(),
                needed,
                got: signers.len(),
            });
        }
        let mut member =
            g.members.get(&r.person).cloned().ok_or_else(|| Rejection::NotMember(r.person.clone()))?;
        if matches!(member.status, MemberStatus::Revoked { .. }) {
            return Err(Rejection::AlreadyRevoked(r.person.clone()));
        }
        member.status =
            MemberStatus::Revoked { log_index: index, duplicate: r.duplicate, reason: r.reason.clone() };
        let vouchers: Vec<String> = member.vouches.drain(..).map(|(voucher, _)| voucher).collect();
        member.history.push(index);
        let mut changes = Vec::new();
        if r.duplicate {
            // Everyone who vouched for a duplicate loses the right to vouch.
            let vouchers: Vec<&String> =
                member.attested_by.iter().chain(&vouchers).filter(|v| !g.is_steward(v)).collect();
            for voucher in vouchers {
                if let Some(mut m) = g.members.get(voucher).cloned().filter(|m| m.may_vouch) {
                    m.may_vouch = false;
                    m.history.push(index);
                    changes.push(Change::Record(Record::Member(m)));
                }
            }
        }
        changes.insert(0, Change::Record(Record::Member(member)));
        Ok(changes)
    }

    fn register_node(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        n: &NodeRegistration,
        commons: &Commons,
    ) -> Result<Vec<Change>, Rejection> {
        self.require_member(signer, time)?;
        let g = &self.governance;
        if let Some(existing) = g.nodes.get(&n.node) {
            return Err(Rejection::NodeTaken { node: n.node.clone(), operator: existing.operator.clone() });
        }
        if g.members.contains_key(&n.node) {
            return Err(Rejection::PersonKeyNotNode(n.node.clone()));
        }
        let key = crate::identity::key_of(&n.node).map_err(|e| Rejection::NodeBinding(e.to_string()))?;
        let sig = STANDARD
            .decode(&n.binding)
            .ok()
            .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
            .ok_or_else(|| {
                Rejection::NodeBinding("the node binding is not a base64 Ed25519 signature".into())
            })?;
        key.verify(&node_binding_message(&commons.origin, signer), &sig).map_err(|_| {
            Rejection::NodeBinding(format!(
                "the node binding is not {}'s signature binding it to {signer} in {}",
                n.node, commons.origin
            ))
        })?;
        Ok(vec![Change::Record(Record::Node(NodeRecord {
            node: n.node.clone(),
            operator: signer.to_owned(),
            log_index: index,
            registered_at: time,
        }))])
    }

    fn propose(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        p: &Proposal,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        self.require_member(signer, time)?;
        let first = p.actions.first().ok_or(Rejection::Proposal(ProposalFault::NoActions))?;
        let lead = lead_of(first);
        let mut mixtures = 0;
        let mut elections = 0;
        // Parameter actions are checked in order on one working copy, as the decision will apply
        // them, so actions that contradict each other (a floor above the same register's cap)
        // are refused now rather than skipped at the close.
        let mut working = params.clone();
        for (position, action) in p.actions.iter().enumerate() {
            let at = |problem: ActionProblem| {
                Rejection::Proposal(ProposalFault::Action {
                    position: position + 1,
                    action: action.name().to_owned(),
                    problem,
                })
            };
            if lead_of(action) != lead {
                return Err(Rejection::Proposal(ProposalFault::MixedChambers));
            }
            let needed =
                min_class(action).map_err(|reason| at(ActionProblem::Parameter { reason, after: false }))?;
            if class_rank(needed) > class_rank(p.class) {
                return Err(at(ActionProblem::ClassTooLow { needed, class: p.class }));
            }
            match action {
                Action::SetMixture { ballot } => {
                    mixtures += 1;
                    mixture::check_ballot(&working.registers, ballot)
                        .map_err(|e| at(ActionProblem::Ballot(e)))?;
                }
                Action::SetParameter { key, value } => {
                    working
                        .set(key, value)
                        .map_err(|reason| at(ActionProblem::Parameter { reason, after: position > 0 }))?;
                }
                Action::RemoveDeposit { cid, .. } => {
                    self.active_deposit(cid).map_err(|e| at(ActionProblem::Deposit(Box::new(e))))?;
                }
                Action::ResolveDispute { dispute, ruling } => {
                    let d = self
                        .governance
                        .disputes
                        .get(dispute)
                        .ok_or_else(|| at(ActionProblem::UnknownDispute(*dispute)))?;
                    if let DisputeStatus::Resolved { decision, .. } = d.status {
                        return Err(at(ActionProblem::DisputeResolved { dispute: *dispute, decision }));
                    }
                    self.check_ruling(&d.cid, ruling, &working)
                        .map_err(|e| at(ActionProblem::Ruling(Box::new(e))))?;
                }
                Action::ApproveWorkload { kind, version, models } => {
                    if !WORKLOAD_KINDS.contains(&kind.as_str()) {
                        return Err(at(ActionProblem::UnknownWorkload { kind: kind.clone() }));
                    }
                    if version.trim().is_empty()
                        || version.contains('@')
                        || version.chars().any(char::is_whitespace)
                    {
                        return Err(at(ActionProblem::WorkloadVersion));
                    }
                    let sha256 = |m: &String| {
                        m.len() == 64 && m.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                    };
                    if let Some(bad) = models.iter().find(|m| !sha256(m)) {
                        return Err(at(ActionProblem::WorkloadModel(bad.clone())));
                    }
                    if models.len() > crate::governance::jobs::MAX_OFFERED {
                        return Err(at(ActionProblem::WorkloadModel(format!("{} files", models.len()))));
                    }
                }
                Action::ElectBoard { seats, candidates } => {
                    elections += 1;
                    if candidates.len() > MAX_CANDIDATES {
                        return Err(at(ActionProblem::TooManyCandidates(MAX_CANDIDATES)));
                    }
                    if *seats == 0 || *seats > MAX_SEATS || *seats as usize > candidates.len() {
                        return Err(at(ActionProblem::Seats {
                            seats: *seats,
                            candidates: candidates.len(),
                            max: MAX_SEATS,
                        }));
                    }
                    let mut seen = std::collections::BTreeSet::new();
                    for candidate in candidates {
                        if !seen.insert(candidate) {
                            return Err(at(ActionProblem::CandidateTwice(candidate.clone())));
                        }
                        if !self.governance.is_verified(candidate, time) {
                            return Err(at(ActionProblem::CandidateNotMember(candidate.clone())));
                        }
                    }
                }
            }
        }
        if mixtures > 1 || elections > 1 {
            return Err(Rejection::Proposal(ProposalFault::Repeated));
        }
        Ok(vec![Change::Record(Record::Proposal(ProposalRecord {
            id: index,
            proposer: signer.to_owned(),
            title: p.title.clone(),
            summary: p.summary.clone(),
            class: p.class,
            lead,
            actions: p.actions.clone(),
            opened_at: time,
            closes_at: time.saturating_add(params.window(p.class)),
            status: ProposalStatus::Open,
        }))])
    }

    fn vote(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        v: &VoteCast,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        let proposal =
            self.governance.proposals.get(&v.proposal).ok_or(Rejection::UnknownProposal(v.proposal))?;
        if proposal.status != ProposalStatus::Open || time >= proposal.closes_at {
            return Err(Rejection::VotingClosed {
                proposal: v.proposal,
                closed: crate::timestamp::rfc3339(proposal.closes_at),
            });
        }
        self.require_member(signer, time)?;
        let ballot = |fault: BallotFault| Rejection::Ballot { proposal: v.proposal, fault };
        if let Some(weights) = &v.mixture {
            if !proposal.actions.iter().any(|a| matches!(a, Action::SetMixture { .. })) {
                return Err(ballot(BallotFault::NoMixture));
            }
            mixture::check_ballot(&params.registers, weights)
                .map_err(|e| ballot(BallotFault::Distribution(e)))?;
        }
        if let Some(ranking) = &v.ranking {
            let Some(Action::ElectBoard { candidates, .. }) =
                proposal.actions.iter().find(|a| matches!(a, Action::ElectBoard { .. }))
            else {
                return Err(ballot(BallotFault::NoElection));
            };
            let mut seen = std::collections::BTreeSet::new();
            for name in ranking {
                if !candidates.contains(name) {
                    return Err(ballot(BallotFault::NotACandidate(name.clone())));
                }
                if !seen.insert(name) {
                    return Err(ballot(BallotFault::RankedTwice(name.clone())));
                }
            }
        }
        Ok(vec![Change::Record(Record::Vote(VoteRecord {
            proposal: v.proposal,
            voter: signer.to_owned(),
            choice: v.choice,
            mixture: v.mixture.clone(),
            ranking: v.ranking.clone(),
            log_index: index,
            at: time,
        }))])
    }

    /// The decision on proposal `id`, tallied as of its close in the commons' arithmetic. The
    /// sequencer signs exactly this; the fold accepts a decision only if it is exactly this.
    pub fn decision(&self, id: u64) -> Result<Decision, Rejection> {
        match self.governance.arithmetic() {
            Arithmetic::Float => self.decision_in::<f64>(id),
            Arithmetic::Fixed => self.decision_in::<Fixed>(id),
        }
    }

    fn decision_in<N: Number>(&self, id: u64) -> Result<Decision, Rejection> {
        let g = &self.governance;
        let params = g.params.as_ref().ok_or(Rejection::NoGenesis)?;
        let proposal = g.proposals.get(&id).ok_or(Rejection::UnknownProposal(id))?;
        let at = proposal.closes_at;
        let (contributor, technical, votes) = g.tally_votes::<N>(id, at);
        let eligible: Vec<&VoteRecord> =
            votes.into_iter().filter(|(_, w, _)| *w > N::ZERO).map(|(v, _, _)| v).collect();
        let outcome =
            tally::decide_with(params.thresholds(proposal.class), proposal.lead, &contributor, &technical);
        // Actions take effect in order, each on what the ones before it left.
        let mut working = Working { params: params.clone(), removed: std::collections::BTreeSet::new() };
        let effects = if outcome == Outcome::Passed {
            proposal.actions.iter().map(|a| self.effect::<N>(proposal, a, &eligible, &mut working)).collect()
        } else {
            Vec::new()
        };
        Ok(Decision {
            proposal: id,
            closed_at: at,
            contributor: contributor.to_f64(),
            technical: technical.to_f64(),
            outcome,
            effects,
        })
    }

    /// What `action` of the passed `proposal` does now.
    fn effect<N: Number>(
        &self,
        proposal: &ProposalRecord,
        action: &Action,
        eligible: &[&VoteRecord],
        working: &mut Working,
    ) -> Effect {
        let params = &working.params;
        let skipped = |reason: String| Effect::Skipped { action: action.name().to_owned(), reason };
        match action {
            Action::SetMixture { ballot } => {
                // Every eligible voter's ballot counts, yes or no; the proposer's action is their
                // ballot unless they cast another.
                let mut ballots: Vec<&BTreeMap<_, f64>> = Vec::new();
                let mut proposer_voted = false;
                for vote in eligible {
                    if let Some(weights) = &vote.mixture {
                        proposer_voted |= vote.voter == proposal.proposer;
                        ballots.push(weights);
                    }
                }
                if !proposer_voted && self.governance.is_verified(&proposal.proposer, proposal.closes_at) {
                    ballots.push(ballot);
                }
                match mixture::aggregate_weights::<N>(&params.registers, &ballots, &params.mixture_rules()) {
                    Ok(m) => Effect::Mixture { weights: m.weights, ballots: ballots.len() as u64 },
                    Err(e) => skipped(e.to_string()),
                }
            }
            Action::SetParameter { key, value } => {
                let mut next = params.clone();
                match next.set(key, value) {
                    Ok(()) => {
                        working.params = next;
                        Effect::Parameter { key: key.clone(), value: value.clone() }
                    }
                    Err(e) => skipped(e),
                }
            }
            Action::RemoveDeposit { cid, .. } if working.removed.contains(cid) => {
                skipped(format!("{cid} is removed by an earlier action of this proposal"))
            }
            Action::RemoveDeposit { cid, .. } => match self.active_deposit(cid) {
                Ok(_) => {
                    working.removed.insert(cid.clone());
                    Effect::Removed { cid: cid.clone() }
                }
                Err(e) => skipped(e.to_string()),
            },
            Action::ResolveDispute { dispute, ruling } => {
                let check = self.governance.disputes.get(dispute).map(|d| match d.status {
                    DisputeStatus::Resolved { decision, .. } => {
                        Err(format!("resolved by decision {decision}"))
                    }
                    _ if working.removed.contains(&d.cid) => {
                        Err(format!("{} is removed by an earlier action of this proposal", d.cid))
                    }
                    _ => self.check_ruling(&d.cid, ruling, params).map_err(|e| e.to_string()),
                });
                match check {
                    Some(Ok(())) => Effect::Ruling { dispute: *dispute, ruling: ruling.clone() },
                    Some(Err(reason)) => skipped(reason),
                    None => skipped(format!("no dispute {dispute}")),
                }
            }
            Action::ApproveWorkload { kind, version, models } => {
                Effect::Workload { kind: kind.clone(), version: version.clone(), models: models.clone() }
            }
            Action::ElectBoard { seats, candidates } => {
                // Only candidates still verified at the close stand; rankings skip the others.
                let standing: Vec<&String> = candidates
                    .iter()
                    .filter(|c| self.governance.is_verified(c, proposal.closes_at))
                    .collect();
                if standing.is_empty() {
                    return skipped("no candidate is a verified member at the close".into());
                }
                let ballots: Vec<RankedBallot> = eligible
                    .iter()
                    .filter_map(|v| v.ranking.as_ref())
                    .map(|ranking| RankedBallot {
                        ranking: ranking
                            .iter()
                            .filter_map(|name| standing.iter().position(|c| *c == name))
                            .collect(),
                        count: 1,
                    })
                    .collect();
                if ballots.is_empty() {
                    return skipped("nobody ranked the candidates".into());
                }
                let seats = (*seats as usize).min(standing.len());
                match stv::elect::<N, _>(&standing, &ballots, seats) {
                    Ok(outcome) => Effect::Board {
                        members: outcome.elected.iter().map(|&i| standing[i].clone()).collect(),
                        ballots: ballots.len() as u64,
                    },
                    Err(e) => skipped(e.to_string()),
                }
            }
        }
    }

    fn close(
        &self,
        index: u64,
        signer: &str,
        time: u64,
        d: &Decision,
        commons: &Commons,
    ) -> Result<Vec<Change>, Rejection> {
        if signer != commons.log_did {
            return Err(Rejection::NotLogKey(signer.to_owned()));
        }
        let proposal =
            self.governance.proposals.get(&d.proposal).ok_or(Rejection::UnknownProposal(d.proposal))?;
        if proposal.status != ProposalStatus::Open {
            return Err(Rejection::AlreadyDecided(d.proposal));
        }
        if time < proposal.closes_at {
            return Err(Rejection::DecisionEarly {
                proposal: d.proposal,
                closes: crate::timestamp::rfc3339(proposal.closes_at),
            });
        }
        let recomputed = self.decision(d.proposal)?;
        if &recomputed != d {
            return Err(Rejection::DecisionMismatch {
                proposal: d.proposal,
                stated: serde_json::to_string(d).unwrap_or_default(),
                recomputed: serde_json::to_string(&recomputed).unwrap_or_default(),
            });
        }
        let mut closed = proposal.clone();
        closed.status = ProposalStatus::Closed {
            decision: index,
            outcome: d.outcome.clone(),
            contributor: d.contributor,
            technical: d.technical,
        };
        let mut changes = vec![Change::Record(Record::Proposal(closed))];
        let mut params = self.governance.params.clone().ok_or(Rejection::NoGenesis)?;
        let mut params_changed = false;
        let mut credits = CreditBook::new(&self.governance, &params);
        let mut touched = BTreeMap::new();
        for effect in &d.effects {
            match effect {
                Effect::Mixture { weights, ballots } => {
                    changes.push(Change::Record(Record::Mixture(MixtureRecord {
                        weights: weights.clone(),
                        decision: index,
                        proposal: d.proposal,
                        ballots: *ballots,
                        at: time,
                    })));
                }
                Effect::Parameter { key, value } => {
                    params_changed |= params.set(key, value).is_ok();
                }
                Effect::Removed { cid } => self.remove(cid, index, time, &mut touched, &mut credits),
                Effect::Ruling { dispute, ruling } => {
                    let mut record = self.governance.disputes[dispute].clone();
                    self.apply_ruling(&record.cid, ruling, index, time, &mut touched, &mut credits);
                    record.status = DisputeStatus::Resolved { ruling: ruling.clone(), decision: index };
                    changes.push(Change::Record(Record::Dispute(record)));
                }
                Effect::Workload { kind, version, models } => {
                    changes.push(Change::Record(Record::Workload(WorkloadRecord {
                        kind: kind.clone(),
                        version: version.clone(),
                        decision: index,
                        models: models.clone(),
                    })));
                }
                Effect::Board { members, .. } => {
                    changes.push(Change::Record(Record::Board(Board {
                        members: members.clone(),
                        elected_by: Some(index),
                    })));
                }
                Effect::Skipped { .. } => {}
            }
        }
        if params_changed {
            changes.push(Change::Record(Record::Parameters(params)));
        }
        changes.extend(touched.into_values().map(Change::Deposit));
        changes.extend(credits.into_changes());
        Ok(changes)
    }

    fn verify_compute(
        &self,
        index: u64,
        time: u64,
        signers: &[String],
        j: &JobReceipt,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        let g = &self.governance;
        let refuse = Rejection::Compute;
        let worker =
            g.nodes.get(&j.node).ok_or_else(|| refuse(ComputeFault::UnregisteredWorker(j.node.clone())))?;
        if !signers.contains(&j.node) {
            return Err(refuse(ComputeFault::WorkerUnsigned(j.node.clone())));
        }
        if !g.is_verified(&worker.operator, time) {
            return Err(refuse(ComputeFault::OperatorUnverified(worker.operator.clone())));
        }
        let verifiers: Vec<String> = signers
            .iter()
            .filter(|s| *s != &j.node)
            .filter(|s| {
                g.nodes
                    .get(*s)
                    .is_some_and(|n| n.operator != worker.operator && g.is_verified(&n.operator, time))
            })
            .cloned()
            .collect();
        if verifiers.len() != signers.len() - 1 || verifiers.is_empty() {
            return Err(refuse(ComputeFault::NotCosigned));
        }
        if j.units == 0 || j.units > MAX_JOB_UNITS {
            return Err(refuse(ComputeFault::Units(MAX_JOB_UNITS)));
        }
        if !g.workloads.contains_key(&j.workload) {
            return Err(refuse(ComputeFault::WorkloadNotApproved(j.workload.clone())));
        }
        let job = job_digest(j);
        if let Some(earlier) = g.compute.values().find(|c| c.job == job) {
            return Err(refuse(ComputeFault::AlreadyCredited(earlier.receipt)));
        }
        let mut credits = CreditBook::new(g, params);
        credits.grant(&worker.operator, params.credits.compute.saturating_mul(j.units), time);
        let mut changes = vec![Change::Record(Record::Compute(ComputeGrant {
            receipt: index,
            job,
            workload: j.workload.clone(),
            node: j.node.clone(),
            operator: worker.operator.clone(),
            verifiers,
            units: j.units,
            at: time,
        }))];
        changes.extend(credits.into_changes());
        Ok(changes)
    }

    /// Credits for an accepted deposit.
    pub(crate) fn deposit_credits(&self, depositor: &str, time: u64) -> Vec<Change> {
        let Some(params) = &self.governance.params else { return Vec::new() };
        let mut credits = CreditBook::new(&self.governance, params);
        credits.grant(depositor, params.credits.deposit, time);
        credits.into_changes()
    }

    /// The deposits a training run may sample now: not withdrawn or removed, and not under an
    /// open dispute. Every consent tier allows training; `local` texts only by jobs on their
    /// origin node.
    pub fn training_snapshot(&self) -> impl Iterator<Item = &DepositRecord> {
        self.deposits.values().filter(|d| !d.status.is_gone() && !self.governance.under_dispute(&d.cid))
    }
}

/// What a decision's earlier actions left for its later ones.
struct Working {
    params: Parameters,
    removed: std::collections::BTreeSet<Cid>,
}

impl Governance {
    /// Both chambers' tallies of proposal `id` with the electorate of `at`.
    pub fn tally(&self, id: u64, at: u64) -> (ChamberTally, ChamberTally) {
        let (contributor, technical, _) = self.standing(id, at);
        (contributor, technical)
    }

    /// Both chambers' tallies of proposal `id` with the electorate of `at`, and what they would
    /// decide if it closed then, in the commons' arithmetic.
    pub fn standing(&self, id: u64, at: u64) -> (ChamberTally, ChamberTally, Option<Outcome>) {
        let votes: Vec<&VoteRecord> = self.votes_on(id).collect();
        self.standing_of(id, at, &votes)
    }

    /// [`Governance::standing`] over `votes`, every vote on proposal `id` in voter order, for a
    /// reader that keeps votes in a table rather than in this governance.
    pub fn standing_of(
        &self,
        id: u64,
        at: u64,
        votes: &[&VoteRecord],
    ) -> (ChamberTally, ChamberTally, Option<Outcome>) {
        fn standing_in<N: Number>(
            g: &Governance,
            id: u64,
            at: u64,
            votes: &[&VoteRecord],
        ) -> (ChamberTally, ChamberTally, Option<Outcome>) {
            let (contributor, technical, _) = g.tally_of::<N>(at, votes);
            let outcome = g.proposals.get(&id).map(|proposal| {
                let thresholds =
                    g.params.as_ref().map_or(proposal.class.thresholds(), |p| p.thresholds(proposal.class));
                tally::decide_with(thresholds, proposal.lead, &contributor, &technical)
            });
            (contributor.to_f64(), technical.to_f64(), outcome)
        }
        match self.arithmetic() {
            Arithmetic::Float => standing_in::<f64>(self, id, at, votes),
            Arithmetic::Fixed => standing_in::<Fixed>(self, id, at, votes),
        }
    }

    /// Both chambers' tallies in `N` of every vote held on proposal `id`, with each vote and its
    /// weight in each chamber.
    #[allow(clippy::type_complexity)]
    fn tally_votes<N: Number>(
        &self,
        id: u64,
        at: u64,
    ) -> (ChamberTally<N>, ChamberTally<N>, Vec<(&VoteRecord, N, N)>) {
        let votes: Vec<&VoteRecord> = self.votes_on(id).collect();
        self.tally_of(at, &votes)
    }

    /// Both chambers' tallies in `N` of `votes` (one proposal's, in voter order).
    #[allow(clippy::type_complexity)]
    fn tally_of<'a, N: Number>(
        &self,
        at: u64,
        votes: &[&'a VoteRecord],
    ) -> (ChamberTally<N>, ChamberTally<N>, Vec<(&'a VoteRecord, N, N)>) {
        let technical_chamber = self.technical_chamber_in::<N>(at);
        let votes = self.weighed_votes(votes, at, &technical_chamber);
        // Sums run in a fixed order (the chamber's and the votes'), so every node adds the same
        // numbers in the same order.
        let contributor = ChamberTally::weighed(
            N::from_u64(self.contributor_count(at) as u64),
            votes.iter().map(|(v, weight, _)| (*weight, v.choice)),
        );
        let technical = ChamberTally::weighed(
            N::sum(technical_chamber.values().copied()),
            votes.iter().map(|(v, _, weight)| (*weight, v.choice)),
        );
        (contributor, technical, votes)
    }

    /// Every vote of `votes` (one proposal's, in voter order) with its voter's weight at `at` in
    /// the contributor chamber (1 for a verified person) and in `technical` (0 where they do not
    /// count). Votes, members and the chamber are all sorted by person, so one merge pairs them
    /// without copying a name.
    pub fn weighed_votes<'a, N: Number>(
        &self,
        votes: &[&'a VoteRecord],
        at: u64,
        technical: &BTreeMap<String, N>,
    ) -> Vec<(&'a VoteRecord, N, N)> {
        fn weight<'a, V: 'a>(
            chamber: &mut Peekable<impl Iterator<Item = (&'a String, V)>>,
            voter: &str,
        ) -> Option<V> {
            while chamber.next_if(|(who, _)| who.as_str() < voter).is_some() {}
            chamber.next_if(|(who, _)| who.as_str() == voter).map(|(_, v)| v)
        }
        let mut members = self.members.iter().peekable();
        let mut operators = technical.iter().peekable();
        votes
            .iter()
            .map(|&v| {
                let person =
                    weight(&mut members, &v.voter).filter(|m| m.verified_at(at)).map_or(N::ZERO, |_| N::ONE);
                (v, person, weight(&mut operators, &v.voter).copied().unwrap_or(N::ZERO))
            })
            .collect()
    }
}
