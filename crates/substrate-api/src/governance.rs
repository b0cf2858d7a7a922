//! Governance reads: members, proposals with live tallies, the mixture, disputes and credits.
//! Every governance act is written through `POST /v1/events` as a signed event.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use substrate_core::governance::book::{Governance, ProposalRecord, ProposalStatus, VoteRecord};
use substrate_core::governance::tally::{self, ChamberTally, Outcome};
use substrate_store::ProposalVotes;

use crate::ApiError;
use crate::routes::{AppState, blocking};

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn not_found(what: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
}

/// Parameters, board, approved workloads, the current mixture and membership counts.
pub async fn overview(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let g = blocking(&app.reader, |r| Ok(r.governance()?)).await?;
    let now = now_ms();
    let verified = g.members().filter(|m| m.verified_at(now)).count();
    // Stewards act only while verified; a commons with none acting can attest nobody.
    let acting = g.board().members.iter().filter(|m| g.is_verified(m, now)).count();
    Ok(Json(json!({
        "parameters": g.parameters(),
        "board": g.board(),
        "actingStewards": acting,
        "workloads": g.workloads().collect::<Vec<_>>(),
        "mixture": g.mixture(),
        "members": {"verified": verified, "known": g.members().count()},
        "nodes": g.nodes().count(),
        "openProposals": g.proposals().filter(|p| p.status == ProposalStatus::Open).count(),
        "now": now,
    })))
}

fn member_view(g: &Governance, person: &str, now: u64) -> Option<serde_json::Value> {
    let member = g.member(person)?;
    let nodes: Vec<&str> = g.nodes().filter(|n| n.operator == person).map(|n| n.node.as_str()).collect();
    let mut view = serde_json::to_value(member).unwrap_or_default();
    view["verified"] = json!(member.verified_at(now));
    view["steward"] = json!(g.is_steward(person));
    view["nodes"] = json!(nodes);
    // Only sha256 digests: the log never holds a token's text.
    let tokens: Vec<serde_json::Value> = g
        .tokens_of(person)
        .map(|t| json!({"token": t, "live": t.live(now)}))
        .map(|mut v| {
            let inner = v["token"].take();
            let live = v["live"].take();
            let mut merged = inner;
            merged["live"] = live;
            merged
        })
        .collect();
    view["tokens"] = json!(tokens);
    Some(view)
}

pub async fn members(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let g = blocking(&app.reader, |r| Ok(r.governance()?)).await?;
    let now = now_ms();
    let members: Vec<_> = g.members().filter_map(|m| member_view(&g, &m.person, now)).collect();
    Ok(Json(json!({"members": members})))
}

pub async fn member(
    State(app): State<AppState>,
    Path(person): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let g = blocking(&app.reader, |r| Ok(r.governance()?)).await?;
    member_view(&g, &person, now_ms())
        .map(Json)
        .ok_or_else(|| not_found(format!("{person} is not known to this commons; a steward attests members")))
}

/// A proposal with both chambers' tallies: live while open (as of now), final once decided; and
/// its votes, when asked for. Borrowed and serialised straight to the response's bytes: a view
/// lists up to every vote on record, and a JSON tree of 10,000 votes cost more than the tally.
#[derive(serde::Serialize)]
pub(crate) struct ProposalView<'a> {
    pub(crate) proposal: &'a ProposalRecord,
    pub(crate) tally: TallyView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) votes: Option<Vec<&'a VoteRecord>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effects: Option<Vec<substrate_core::governance::acts::Effect>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TallyView {
    pub(crate) as_of: u64,
    #[serde(rename = "final")]
    pub(crate) decided: bool,
    pub(crate) contributor: ChamberTally,
    pub(crate) technical: ChamberTally,
    pub(crate) outcome: Outcome,
    pub(crate) votes: u64,
}

pub(crate) fn proposal_view<'a>(
    g: &Governance,
    votes: &'a ProposalVotes,
    proposal: &'a ProposalRecord,
    now: u64,
    with_votes: bool,
) -> ProposalView<'a> {
    let at = now.min(proposal.closes_at);
    // A decided proposal shows the tally its decision recorded; an open one is tallied now.
    let (contributor, technical, outcome) = match &proposal.status {
        ProposalStatus::Closed { outcome, contributor, technical, .. } => {
            (*contributor, *technical, outcome.clone())
        }
        ProposalStatus::Open => {
            let (contributor, technical, outcome) = g.standing_of(proposal.id, at, &votes.on(proposal.id));
            let outcome = outcome.unwrap_or_else(|| {
                let thresholds =
                    g.parameters().map_or(proposal.class.thresholds(), |p| p.thresholds(proposal.class));
                tally::decide_with(thresholds, proposal.lead, &contributor, &technical)
            });
            (contributor, technical, outcome)
        }
    };
    ProposalView {
        proposal,
        tally: TallyView {
            as_of: at,
            decided: proposal.status != ProposalStatus::Open,
            contributor,
            technical,
            outcome,
            votes: votes.count(proposal.id),
        },
        votes: with_votes.then(|| votes.on(proposal.id)),
        effects: None,
    }
}

/// Proposals listed by one `GET /v1/proposals` unless `limit` says otherwise, and at most.
const PROPOSALS_PAGE: usize = 100;
const MAX_PROPOSALS_PAGE: usize = 1000;

#[derive(serde::Deserialize)]
pub struct ProposalFilter {
    #[serde(default)]
    open: Option<bool>,
    /// List proposals with an id greater than this (the `next` of the page before).
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

pub async fn proposals(
    State(app): State<AppState>,
    Query(filter): Query<ProposalFilter>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = filter.limit.unwrap_or(PROPOSALS_PAGE);
    if !(1..=MAX_PROPOSALS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_request",
            format!("limit is {limit}; a page lists 1 to {MAX_PROPOSALS_PAGE} proposals"),
        ));
    }
    let page = proposal_page(&app, filter.open, filter.after, limit).await?;
    let now = now_ms();
    let list: Vec<_> = page
        .ids
        .iter()
        .filter_map(|id| page.governance.proposal(*id))
        .map(|p| proposal_view(&page.governance, &page.votes, p, now, false))
        .collect();
    Ok(Json(json!({"proposals": list, "next": page.next})))
}

/// One page of proposals, in id order, with the votes of its open ones.
pub(crate) struct ProposalPage {
    pub(crate) governance: std::sync::Arc<Governance>,
    pub(crate) votes: ProposalVotes,
    /// The proposals of the page.
    pub(crate) ids: Vec<u64>,
    /// The `after` of the next page, when there is one.
    pub(crate) next: Option<u64>,
}

/// Reads the page of at most `limit` proposals after `after` (open or not, as `open` says);
/// only its open proposals' votes are read and tallied.
pub(crate) async fn proposal_page(
    app: &AppState,
    open: Option<bool>,
    after: Option<u64>,
    limit: usize,
) -> Result<ProposalPage, ApiError> {
    let listed = move |p: &ProposalRecord| {
        open.is_none_or(|open| open == (p.status == ProposalStatus::Open))
            && after.is_none_or(|after| p.id > after)
    };
    let page = move |g: &Governance| -> Vec<u64> {
        let mut ids: Vec<u64> = g.proposals().filter(|p| listed(p)).map(|p| p.id).collect();
        ids.sort_unstable();
        ids.truncate(limit + 1);
        ids
    };
    let (governance, votes) = blocking(&app.reader, move |r| {
        Ok(r.governance_with_votes(|g| {
            let ids = page(g);
            let open = ids
                .iter()
                .take(limit)
                .filter(|id| g.proposal(**id).is_some_and(|p| p.status == ProposalStatus::Open))
                .copied()
                .collect();
            (open, ids)
        })?)
    })
    .await?;
    let mut ids = page(&governance);
    let next = (ids.len() > limit).then(|| ids[limit - 1]);
    ids.truncate(limit);
    Ok(ProposalPage { governance, votes, ids, next })
}

/// Which votes a proposal's view lists: all (the default), none (`votes=false`: the tallies and the
/// count only), or one voter's (`voter=DID`).
#[derive(serde::Deserialize)]
pub struct VoteFilter {
    #[serde(default)]
    votes: Option<bool>,
    #[serde(default)]
    voter: Option<String>,
}

pub async fn proposal(
    State(app): State<AppState>,
    Path(id): Path<u64>,
    Query(filter): Query<VoteFilter>,
) -> Result<axum::response::Response, ApiError> {
    let (g, votes, effects) = read_proposal(&app, id).await?;
    let proposal = g
        .proposal(id)
        .ok_or_else(|| not_found(format!("no proposal has the id {id}; GET /v1/proposals lists them")))?;
    let listed = filter.votes != Some(false);
    let mut view = proposal_view(&g, &votes, proposal, now_ms(), listed);
    if let (Some(listed), Some(voter)) = (view.votes.as_mut(), filter.voter.as_deref()) {
        listed.retain(|v| v.voter == voter);
    }
    view.effects = effects;
    Ok(Json(view).into_response())
}

/// The governance state with every vote on proposal `id`, and what its decision did once decided.
#[allow(clippy::type_complexity)]
pub(crate) async fn read_proposal(
    app: &AppState,
    id: u64,
) -> Result<
    (std::sync::Arc<Governance>, ProposalVotes, Option<Vec<substrate_core::governance::acts::Effect>>),
    ApiError,
> {
    blocking(&app.reader, move |r| {
        let (g, votes) = r.governance_with_votes(|_| (vec![id], Vec::new()))?;
        // A decided proposal shows what each passed action did, skipped ones with their reason.
        let effects = match g.proposal(id).map(|p| &p.status) {
            Some(ProposalStatus::Closed { decision, .. }) => decision_effects(r, *decision)?,
            _ => None,
        };
        Ok((g, votes, effects))
    })
    .await
}

/// The effects recorded in the decision entry at `index`.
fn decision_effects(
    reader: &substrate_store::Reader,
    index: u64,
) -> Result<Option<Vec<substrate_core::governance::acts::Effect>>, ApiError> {
    let Some(entry) = reader.entries(index, 1)?.into_iter().next().filter(|e| e.index == index) else {
        return Ok(None);
    };
    let event =
        substrate_core::SignedEvent::open_bytes(&entry.envelope).map_err(|e| ApiError::internal(&e))?;
    Ok(match event.event {
        substrate_core::Event::Decision(decision) => Some(decision.effects),
        _ => None,
    })
}

/// The mixture the next training run must use, the rules around it, and what it would sample:
/// active deposits per register, less those under dispute.
pub async fn mixture(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let (g, by_register) = blocking(&app.reader, |r| Ok((r.governance()?, r.active_by_register()?))).await?;
    let mut eligible = serde_json::Map::new();
    for (register, cids) in by_register {
        let count = cids
            .iter()
            .filter(|cid| substrate_core::Cid::parse(cid).is_ok_and(|cid| !g.under_dispute(&cid)))
            .count();
        eligible.insert(register, json!(count));
    }
    let params = g.parameters();
    Ok(Json(json!({
        "current": g.mixture(),
        "registers": params.map(|p| &p.registers),
        "caps": params.map(|p| &p.mixture_caps),
        "floors": params.map(|p| &p.mixture_floors),
        "eligible": eligible,
    })))
}

pub async fn disputes(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let g = blocking(&app.reader, |r| Ok(r.governance()?)).await?;
    Ok(Json(json!({"disputes": g.disputes().collect::<Vec<_>>()})))
}

pub async fn dispute(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let g = blocking(&app.reader, |r| Ok(r.governance()?)).await?;
    let dispute = g
        .dispute(id)
        .ok_or_else(|| not_found(format!("no dispute has the id {id}; GET /v1/disputes lists them")))?;
    Ok(Json(json!(dispute)))
}

/// Everyone's credits (read-only: credits are earned by rule and never move between holders).
pub async fn all_credits(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let g = blocking(&app.reader, |r| Ok(r.governance()?)).await?;
    let now = now_ms();
    let list: Vec<_> = g.all_credits().map(|c| g.credit_statement(&c.holder, now)).collect();
    Ok(Json(json!({"credits": list})))
}

/// The inference each node reported and the log charged, with the price per 1,000 tokens.
pub async fn usage(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let g = blocking(&app.reader, |r| Ok(r.governance()?)).await?;
    let nodes: Vec<_> = g.usage().collect();
    Ok(Json(json!({"per1000Tokens": g.inference_rate(), "nodes": nodes})))
}

pub async fn credits(
    State(app): State<AppState>,
    Path(holder): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if holder != substrate_core::governance::book::STABILITY_POOL
        && let Err(e) = substrate_core::identity::key_of(&holder)
    {
        return Err(ApiError::bad_request(
            "bad_holder",
            format!(
                "{e}; credits are held by a did:key or by '{}'",
                substrate_core::governance::book::STABILITY_POOL
            ),
        ));
    }
    let g = blocking(&app.reader, |r| Ok(r.governance()?)).await?;
    Ok(Json(json!(g.credit_statement(&holder, now_ms()))))
}
