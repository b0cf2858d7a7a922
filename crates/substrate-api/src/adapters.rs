//! The adapter registry: adapters published in the log, what has been withdrawn from under them
//! since, and their files, which anyone may upload because each is checked against the log and
//! the adapter's attestation before it is kept.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use substrate_core::governance::book::{AdapterRecord, Governance};
use substrate_core::state::{DepositRecord, DepositStatus};
use substrate_store::Reader;
use substrate_training::registry::{self, Accepted, RegistryError};

use crate::ApiError;
use crate::routes::{AppState, blocking};

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let (status, code) = match &e {
            RegistryError::NotAFile(_) => (StatusCode::NOT_FOUND, "not_an_adapter_file"),
            RegistryError::ProvenanceFirst | RegistryError::SignatureLast(_) => {
                (StatusCode::CONFLICT, "upload_order")
            }
            RegistryError::Digest { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "digest_mismatch"),
            RegistryError::Provenance(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_attestation"),
            RegistryError::Signature(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad_signature"),
            RegistryError::Conflict(_) => (StatusCode::CONFLICT, "already_stored"),
            RegistryError::Io { .. } => return ApiError::internal(&e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

fn unknown(id: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_adapter",
        format!("no adapter has the id {id}; GET /v1/adapters lists them"),
    )
}

fn record(g: &Governance, id: u64) -> Result<AdapterRecord, ApiError> {
    g.adapter(id).cloned().ok_or_else(|| unknown(id))
}

/// The deposits of the adapter's snapshot gone since, with the windows the run drew from each
/// when its manifest is stored here.
fn withdrawals(
    reader: &Reader,
    g: &Governance,
    adapter: &AdapterRecord,
    gone: &[DepositRecord],
) -> Vec<serde_json::Value> {
    let found = substrate_core::adapter::gone_since(g, adapter, gone);
    let windows: BTreeMap<String, u64> = match registry::read(reader.dir(), adapter, "manifest.jsonl") {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|v| Some((v["cid"].as_str()?.to_owned(), v["windows"].as_u64()?)))
            .collect(),
        _ => BTreeMap::new(),
    };
    found
        .into_iter()
        .map(|d| {
            let (status, since) = match d.status {
                DepositStatus::Withdrawn { log_index, .. } => ("withdrawn", log_index),
                DepositStatus::Removed { log_index, .. } => ("removed", log_index),
                DepositStatus::Active => ("active", 0),
            };
            let cid = d.cid.to_string();
            json!({
                "cid": cid,
                "handle": d.handle,
                "register": d.register,
                "depositor": d.depositor,
                "status": status,
                "since": since,
                "windows": windows.get(&cid),
            })
        })
        .collect()
}

fn summary(adapter: &AdapterRecord, withdrawn: usize, complete: bool) -> serde_json::Value {
    let mut view = serde_json::to_value(adapter).unwrap_or_default();
    view["withdrawn"] = json!(withdrawn);
    view["filesComplete"] = json!(complete);
    view
}

pub async fn list(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let adapters = blocking(&app.reader, |r| {
        Ok(registered(r)?
            .iter()
            .map(|(adapter, withdrawn, complete)| summary(adapter, *withdrawn, *complete))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({"adapters": adapters})))
}

/// Every adapter in the registry, with how many deposits of its snapshot are gone since and
/// whether this node holds all its files.
pub(crate) fn registered(r: &Reader) -> Result<Vec<(AdapterRecord, usize, bool)>, ApiError> {
    let g = r.governance()?;
    let gone = r.gone_deposits()?;
    Ok(g.adapters()
        .map(|adapter| {
            let withdrawn = substrate_core::adapter::gone_since(&g, adapter, &gone).len();
            (adapter.clone(), withdrawn, registry::is_complete(r.dir(), adapter))
        })
        .collect())
}

pub async fn show(
    State(app): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let view = blocking(&app.reader, move |r| {
        let g = r.governance()?;
        let adapter = record(&g, id)?;
        let gone = r.gone_deposits()?;
        let withdrawals = withdrawals(r, &g, &adapter, &gone);
        let holding = registry::holding(r.dir(), &adapter)?;
        let card =
            registry::read(r.dir(), &adapter, "README.md")?.map(|b| String::from_utf8_lossy(&b).into_owned());
        // The attestation's statement, decoded from its DSSE envelope (the registry checked the
        // node's signature when it kept the file).
        let provenance = registry::read(r.dir(), &adapter, substrate_training::provenance::PROVENANCE_FILE)?
            .and_then(|bytes| serde_json::from_slice::<substrate_core::Envelope>(&bytes).ok())
            .and_then(|envelope| serde_json::from_slice::<serde_json::Value>(&envelope.payload).ok());
        let mut view = summary(&adapter, withdrawals.len(), holding.complete);
        view["withdrawals"] = json!(withdrawals);
        view["files"] = json!(holding.files);
        view["missing"] = json!(holding.missing);
        view["card"] = json!(card);
        view["attestation"] = provenance.unwrap_or(serde_json::Value::Null);
        Ok(view)
    })
    .await?;
    Ok(Json(view))
}

pub async fn file(
    State(app): State<AppState>,
    Path((id, name)): Path<(u64, String)>,
) -> Result<Response, ApiError> {
    let bytes = blocking(&app.reader, move |r| {
        let adapter = record(&*r.governance()?, id)?;
        registry::read(r.dir(), &adapter, &name)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "file_not_stored",
                format!(
                    "this node holds no file '{name}' of adapter {id}; GET /v1/adapters/{id} lists the files it holds"
                ),
            )
        })
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

pub async fn upload(
    State(app): State<AppState>,
    Path((id, name)): Path<(u64, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (accepted, holding, size) = blocking(&app.reader, move |r| {
        let adapter = record(&*r.governance()?, id)?;
        let accepted = registry::accept(r.dir(), &adapter, &name, &body)?;
        Ok((accepted, registry::holding(r.dir(), &adapter)?, body.len()))
    })
    .await?;
    let status = match accepted {
        Accepted::Stored => StatusCode::CREATED,
        Accepted::AlreadyStored => StatusCode::OK,
    };
    let body = json!({
        "stored": size,
        "complete": holding.complete,
        "missing": holding.missing,
    });
    Ok((status, Json(body)).into_response())
}
