//! Jobs over HTTP: the jobs in the log and where each stands, and the workers that offer to run
//! them with their reputations. Jobs are requested, assigned and answered by signed events
//! (`POST /v1/events`); these routes only read.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::json;
use substrate_core::event::Event;
use substrate_core::governance::book::Governance;
use substrate_core::governance::jobs::{JobRecord, JobStatus, Role};

use crate::ApiError;
use crate::routes::{AppState, blocking};

/// Jobs listed by one `GET /v1/jobs` at most.
const MOST_JOBS: usize = 1000;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// open, done or failed.
    state: Option<String>,
    requester: Option<String>,
    node: Option<String>,
    /// Jobs with an id above this one (the previous page's `next`).
    after: Option<u64>,
    limit: Option<usize>,
}

/// The state name a job's status has in listings and filters.
pub fn state_of(job: &JobRecord) -> &'static str {
    match job.status {
        JobStatus::Open { .. } | JobStatus::Drawing => "open",
        JobStatus::Done { .. } => "done",
        JobStatus::Failed { .. } => "failed",
    }
}

pub async fn list(
    State(app): State<AppState>,
    Query(query): Query<JobQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(state) = query.state.as_deref()
        && !["open", "done", "failed"].contains(&state)
    {
        return Err(ApiError::bad_request("bad_query", format!("state '{state}' is open, done or failed")));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=MOST_JOBS).contains(&limit) {
        return Err(ApiError::bad_request("bad_query", format!("limit runs from 1 to {MOST_JOBS}")));
    }
    let g = blocking(&app.reader, |r| Ok(r.governance()?)).await?;
    let mut jobs = g
        .jobs()
        .range(query.after.map_or(0, |a| a.saturating_add(1))..)
        .map(|(_, job)| job)
        .filter(|job| query.state.as_deref().is_none_or(|s| s == state_of(job)))
        .filter(|job| query.requester.as_deref().is_none_or(|r| r == job.requester))
        .filter(|job| query.node.as_deref().is_none_or(|n| job.runs.iter().any(|run| run.node == n)));
    let page: Vec<&JobRecord> = jobs.by_ref().take(limit).collect();
    let next = if jobs.next().is_some() { page.last().map(|j| j.id) } else { None };
    Ok(Json(json!({"jobs": page, "next": next})))
}

/// One job, with the output that stands once it is done (read from the result's log entry).
pub async fn show(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (g, output) = blocking(&app.reader, move |r| {
        let g = r.governance()?;
        let output = match g.jobs().get(&id).map(|j| &j.status) {
            Some(JobStatus::Done { result, .. }) => r
                .entries(*result, 1)?
                .first()
                .and_then(|entry| substrate_core::SignedEvent::open_logged(&entry.envelope).ok())
                .and_then(|signed| match signed.event {
                    Event::JobResult(result) => result.output,
                    _ => None,
                }),
            _ => None,
        };
        Ok((g, output))
    })
    .await?;
    let job = g.jobs().get(&id).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "unknown_job",
            format!("no job has the id {id}; GET /v1/jobs lists them"),
        )
    })?;
    Ok(Json(json!({"job": job, "state": state_of(job), "output": output})))
}

pub async fn workers(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let g = blocking(&app.reader, |r| Ok(r.governance()?)).await?;
    let now = crate::governance::now_ms();
    let workers: Vec<serde_json::Value> = g
        .offers()
        .values()
        .map(|offer| {
            let reputation = g.reputation(&offer.node);
            json!({
                "offer": offer,
                "reputation": reputation,
                "score": reputation.score(),
                "shunned": reputation.shunned(),
                "lapsed": g.offer_lapsed(offer, now),
            })
        })
        .collect();
    Ok(Json(json!({"workers": workers, "checkPpm": g.check_ppm()})))
}

/// Job counts for `/metrics`, in the Prometheus text format.
pub fn metrics(g: &Governance) -> String {
    let (mut queued, mut running, mut done, mut failed, mut checked, mut mismatched) = (0, 0, 0, 0, 0, 0);
    for job in g.jobs().values() {
        match &job.status {
            JobStatus::Open { .. } | JobStatus::Drawing if job.live_run().is_some() => running += 1,
            JobStatus::Open { .. } | JobStatus::Drawing => queued += 1,
            JobStatus::Done { .. } => done += 1,
            JobStatus::Failed { .. } => failed += 1,
        }
        if job.runs.iter().any(|r| r.role == Role::Check && r.result.is_some() && r.failure.is_none()) {
            checked += 1;
        }
        if job.dispute.is_some() {
            mismatched += 1;
        }
    }
    let mut text = String::new();
    for (name, help, value) in [
        ("queued", "Jobs waiting for a worker.", queued),
        ("running", "Jobs a worker holds an assignment for.", running),
        ("done", "Jobs whose output stands.", done),
        ("failed", "Jobs given up without an output.", failed),
        ("reexecuted", "Jobs re-executed by another operator's worker to check them.", checked),
        ("mismatched", "Jobs whose check disagreed with their run (a dispute opened).", mismatched),
    ] {
        text.push_str(&format!(
            "# HELP substrate_jobs_{name} {help}\n# TYPE substrate_jobs_{name} gauge\nsubstrate_jobs_{name} {value}\n"
        ));
    }
    text
}
