//! Routes and handlers.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use substrate_core::event::Event;
use substrate_core::identity::KeyCache;
use substrate_core::state::DepositStatus;
use substrate_core::{ConsentTier, Envelope, SignedEvent};
use substrate_store::{Reader, SequencerHandle, Submission};

use crate::ApiError;

/// What every handler shares: the reader and the sequencer's handle.
#[derive(Clone)]
pub struct AppState {
    pub reader: Reader,
    /// The sequencer of this process, or a handle that forwards to it over the mesh.
    pub sequencer: SequencerHandle,
    /// Largest deposit text accepted, in bytes.
    pub max_deposit_bytes: usize,
    /// The mesh node beside this HTTP server, if it runs one.
    pub mesh: Option<std::sync::Arc<dyn MeshView>>,
    /// The models this node serves through the OpenAI-compatible routes, if any.
    pub inference: Option<std::sync::Arc<crate::openai::Inference>>,
    /// The search index of the commons' texts, if this node keeps one.
    pub search: Option<std::sync::Arc<substrate_search::SearchIndex>>,
}

type Later<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<T>> + Send>>;

/// What the HTTP API shows of the mesh node running beside it; `None` when it has stopped.
pub trait MeshView: Send + Sync {
    /// Metrics in the Prometheus text exposition format.
    fn metrics(&self) -> Later<String>;
    /// This node and its connected peers: roles, log heights, lag.
    fn peers(&self) -> Later<serde_json::Value>;
}

/// Entries returned by one `GET /v1/log/entries` at most.
const MAX_ENTRIES_PAGE: u64 = 1000;

/// The largest JSON body a route takes: a deposit of `max_deposit_bytes`, base64 (4/3 of the text)
/// with its envelope.
pub(crate) fn json_body_limit(max_deposit_bytes: usize) -> usize {
    max_deposit_bytes / 3 * 4 + 8 + substrate_core::event::MAX_ENVELOPE_BYTES + 4096
}

pub fn router(state: AppState) -> Router {
    let body_limit = json_body_limit(state.max_deposit_bytes);
    // An adapter's weights are larger than any deposit.
    let adapter_files = get(crate::adapters::file)
        .put(crate::adapters::upload)
        .layer(DefaultBodyLimit::max(substrate_training::registry::MAX_FILE_BYTES));
    Router::new()
        .route("/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/commons", get(commons))
        .route("/v1/deposits", post(deposit))
        .route("/v1/events", post(event))
        .route("/v1/deposits/{id}", get(show))
        .route("/v1/deposits/{id}/receipt", get(deposit_receipt))
        .route("/v1/deposits/{id}/content", get(content))
        .route("/v1/deposits/{id}/datacite", get(datacite))
        .route("/v1/receipts/{index}", get(receipt))
        .route("/v1/governance", get(crate::governance::overview))
        .route("/v1/members", get(crate::governance::members))
        .route("/v1/members/{did}", get(crate::governance::member))
        .route("/v1/proposals", get(crate::governance::proposals))
        .route("/v1/proposals/{id}", get(crate::governance::proposal))
        .route("/v1/mixture", get(crate::governance::mixture))
        .route("/v1/disputes", get(crate::governance::disputes))
        .route("/v1/disputes/{id}", get(crate::governance::dispute))
        .route("/v1/credits", get(crate::governance::all_credits))
        .route("/v1/credits/{did}", get(crate::governance::credits))
        .route("/v1/usage", get(crate::governance::usage))
        .route("/v1/jobs", get(crate::jobs::list))
        .route("/v1/jobs/{id}", get(crate::jobs::show))
        .route("/v1/workers", get(crate::jobs::workers))
        .route("/v1/search", get(crate::search::search))
        .route("/v1/models", get(crate::openai::models))
        .route("/v1/embeddings", post(crate::openai::embeddings))
        .route("/v1/chat/completions", post(crate::openai::chat_completions))
        .route("/v1/completions", post(crate::openai::completions))
        .route("/api/version", get(crate::ollama::version))
        .route("/api/tags", get(crate::ollama::tags))
        .route("/api/show", post(crate::ollama::show))
        .route("/api/embed", post(crate::ollama::embed))
        .route("/api/chat", post(crate::ollama::chat))
        .route("/api/generate", post(crate::ollama::generate))
        .route("/v1/adapters", get(crate::adapters::list))
        .route("/v1/adapters/{id}", get(crate::adapters::show))
        .route("/v1/adapters/{id}/files/{name}", adapter_files)
        .route("/v1/log/checkpoint", get(checkpoint))
        .route("/v1/log/checkpoints/{size}", get(checkpoint_at))
        .route("/v1/log/entries", get(entries))
        .route("/v1/log/proofs/inclusion/{index}", get(inclusion))
        .route("/v1/log/proofs/consistency", get(consistency))
        .route("/v1/log/cosignatures", get(cosignatures))
        .route("/v1/peers", get(peers))
        .route("/metrics", get(metrics))
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(crate::tiles::tile))
        .fallback(not_found)
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .layer(axum::middleware::map_response(crate::error::inert))
        .layer(DefaultBodyLimit::max(body_limit))
        .merge(crate::web::router(&state))
        .with_state(state)
}

/// The longest request target (path and query) the API reads, in bytes.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The API's refusal of a request whose target or headers are past its limits, in its own shape;
/// checked for every request before the router sees it.
pub(crate) fn oversized(
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    max_deposit_bytes: usize,
) -> Option<Response> {
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(
            ApiError::new(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!("the request target is {target} bytes; this node reads at most {MAX_URI_BYTES}"),
            )
            .into_response(),
        );
    }
    // A body announced larger than its route takes is refused before it is read, rather than
    // waited for: an adapter's files take up to the registry's limit, everything else JSON.
    let largest_body = if uri.path().starts_with("/v1/adapters/") && uri.path().contains("/files/") {
        substrate_training::registry::MAX_FILE_BYTES
    } else {
        json_body_limit(max_deposit_bytes)
    };
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if let Some(announced) = announced.filter(|&length| length > largest_body as u64) {
        return Some(
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the request announces a body of {announced} bytes; {} takes at most {largest_body} (texts up to \
                     {max_deposit_bytes} bytes, as base64 in JSON)",
                    uri.path()
                ),
            )
            .into_response(),
        );
    }
    let size: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    (size > MAX_HEADER_BYTES).then(|| {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request's headers are {size} bytes; this node reads at most {MAX_HEADER_BYTES}"),
        )
        .into_response()
    })
}

/// Runs blocking reads off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    reader: &Reader,
    f: impl FnOnce(&Reader) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let reader = reader.clone();
    tokio::task::spawn_blocking(move || f(&reader)).await.map_err(|e| ApiError::internal(&e))?
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route; GET /v1/openapi.json lists them")
}

async fn health(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let (size, pending) = blocking(&app.reader, |r| {
        // A mirror that has not yet kept its first range holds an empty log, and is healthy.
        let size = match r.checkpoint() {
            Ok((size, _)) => size,
            Err(substrate_store::ReadError::NotFound(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        Ok((size, r.pending_texts()?))
    })
    .await?;
    Ok(Json(json!({"status": "ok", "log_size": size, "texts_pending": pending})))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI)
}

async fn commons(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let (commons, governance) = blocking(&app.reader, |r| Ok((r.commons()?, r.governance()?))).await?;
    let registers = governance.parameters().map(|p| p.registers.clone()).unwrap_or_default();
    Ok(Json(json!({
        "name": commons.name,
        "origin": commons.origin,
        "log_key": commons.log_key,
        "log_did": commons.log_did,
        "registers": registers,
        "consent_tiers": ConsentTier::ALL,
        "handle_prefix": commons.handle_prefix,
        "max_deposit_bytes": app.max_deposit_bytes,
    })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositRequest {
    envelope: Envelope,
    /// Standard base64 of the text.
    content: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRequest {
    envelope: Envelope,
}

fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the request is larger than this node accepts (texts up to {limit} bytes)"),
            )
        } else {
            ApiError::bad_request("bad_body", rejection.body_text())
        }
    })
}

thread_local! {
    /// The signers' keys this worker thread has decoded: depositors sign again and again, and
    /// decoding a did:key (base58, a point decompression) is a tenth of checking a signature.
    static KEYS: std::cell::RefCell<KeyCache> = std::cell::RefCell::default();
}

/// [`SignedEvent::open`], with the keys this thread has decoded before; an event whose text
/// fields hold control characters is refused here, before the sequencer.
fn open(envelope: Envelope) -> Result<SignedEvent, ApiError> {
    let event = KEYS.with_borrow_mut(|keys| SignedEvent::open_with(envelope, keys))?;
    if let Err(weak) = event.envelope.check_strict() {
        return Err(ApiError::bad_request("weak_signature", weak.to_string()));
    }
    if let Some(field) = event.event.control_characters() {
        return Err(ApiError::bad_request(
            "control_characters",
            format!(
                "the {} event's {field} holds a control character (such as NUL, an escape, or a line break \
                 where one line is expected); write it as plain text and sign it again",
                event.event.kind()
            ),
        ));
    }
    Ok(event)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not {shape}: {e}")))
}

async fn deposit(
    State(app): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, app.max_deposit_bytes)?;
    let request: DepositRequest = parse_json(&raw, "JSON {envelope, content}")?;
    let content = STANDARD.decode(request.content.as_bytes()).map_err(|e| {
        ApiError::bad_request("malformed_content", format!("content is not standard base64: {e}"))
    })?;
    if content.len() > app.max_deposit_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the text is {} bytes; this node accepts at most {}",
                content.len(),
                app.max_deposit_bytes
            ),
        ));
    }
    let event = open(request.envelope)?;
    let Event::Deposit(deposit) = &event.event else {
        return Err(ApiError::bad_request(
            "wrong_endpoint",
            format!("this is a {} event; POST it to /v1/events", event.event.kind()),
        ));
    };
    deposit.check_content(&content)?;
    let submitted = app.sequencer.submit(Submission { event, content: Some(content) }).await?;
    let status = if submitted.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(submitted.receipt)).into_response())
}

async fn event(
    State(app): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, app.max_deposit_bytes)?;
    let request: EventRequest = parse_json(&raw, "JSON {envelope}")?;
    let event = open(request.envelope)?;
    match event.event {
        Event::Deposit(_) => {
            return Err(ApiError::bad_request(
                "wrong_endpoint",
                "a deposit carries its text: POST it to /v1/deposits",
            ));
        }
        Event::Genesis(_) => {
            return Err(ApiError::bad_request("second_genesis", "a commons has exactly one genesis"));
        }
        Event::Decision(_) => {
            return Err(ApiError::bad_request(
                "decision_by_sequencer",
                "decisions are the sequencer's own: it appends one when a proposal's window closes",
            ));
        }
        _ => {}
    }
    let submitted = app.sequencer.submit(Submission { event, content: None }).await?;
    let status = if submitted.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(submitted.receipt)).into_response())
}

#[derive(serde::Deserialize)]
struct ShowQuery {
    /// `ccnet`: how the latest amputation audit scored the deposit.
    scores: Option<String>,
}

async fn show(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(other) = query.scores.as_deref().filter(|s| *s != "ccnet") {
        return Err(ApiError::bad_request(
            "unknown_scores",
            format!(
                "scores={other} is not a score this node keeps; scores=ccnet is how CCNet's perplexity filter treats the text"
            ),
        ));
    }
    blocking(&app.reader, move |r| {
        let deposit = r.deposit(&id)?;
        let mut receipt = r.receipt(deposit.log_index)?;
        let doi = r.governance()?.doi_of(&deposit.cid.to_string()).cloned();
        receipt.doi = doi.as_ref().map(|d| d.doi.clone());
        let mut body = json!({"deposit": deposit, "receipt": receipt, "doi": doi});
        if query.scores.is_some() {
            body["scores"] =
                json!({"ccnet": crate::amputation::ccnet_score(r.dir(), &deposit.cid.to_string())?});
        }
        Ok(Json(body))
    })
    .await
}

async fn deposit_receipt(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    blocking(&app.reader, move |r| {
        let deposit = r.deposit(&id)?;
        let mut receipt = r.receipt(deposit.log_index)?;
        receipt.doi = r.governance()?.doi_of(&deposit.cid.to_string()).map(|d| d.doi.clone());
        Ok(Json(receipt).into_response())
    })
    .await
}

#[derive(serde::Deserialize)]
struct ReceiptQuery {
    /// The proof leads to the checkpoint most witnesses cosigned, their cosignatures in its note.
    #[serde(default)]
    witnessed: bool,
}

async fn receipt(
    State(app): State<AppState>,
    Path(index): Path<u64>,
    Query(query): Query<ReceiptQuery>,
) -> Result<Response, ApiError> {
    blocking(&app.reader, move |r| {
        let receipt = if query.witnessed { r.witnessed_receipt(index)? } else { r.receipt(index)? };
        Ok(Json(receipt).into_response())
    })
    .await
}

async fn content(
    State(app): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Only a node that forwards to a sequencer (a mirror) may hold an entry without its text.
    let mirror = app.sequencer.head().is_none();
    // A verified member's signed request reads `commons` texts too.
    let member = crate::signatures::member(&app, &method, &uri, &headers, &[])?.is_some();
    blocking(&app.reader, move |r| {
        let deposit = r.deposit(&id)?;
        match deposit.status {
            DepositStatus::Withdrawn { log_index, .. } => {
                return Err(ApiError::new(
                    StatusCode::GONE,
                    "withdrawn",
                    format!(
                        "{} was withdrawn at log index {log_index}; only its tombstone remains",
                        deposit.cid
                    ),
                ));
            }
            DepositStatus::Removed { log_index, .. } => {
                return Err(ApiError::new(
                    StatusCode::GONE,
                    "removed",
                    format!(
                        "{} was removed by the commons at log index {log_index}; only its tombstone remains",
                        deposit.cid
                    ),
                ));
            }
            DepositStatus::Active => {}
        }
        let readable =
            deposit.consent == ConsentTier::Public || (member && deposit.consent == ConsentTier::Commons);
        if !readable {
            let who = if deposit.consent == ConsentTier::Commons {
                "it is served to verified members whose request is signed (RFC 9421)"
            } else {
                "it is never served verbatim over this API"
            };
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "consent",
                format!("{} is '{}': {who}", deposit.cid, deposit.consent),
            ));
        }
        // A mirror holds an entry before it has fetched the text (or, for a text consent keeps on
        // its depositor's node, never): that is not replicated here yet, not a fault.
        let text = r.content(&deposit.cid)?.ok_or_else(|| {
            if !mirror {
                return ApiError::internal(&format!("blob {} missing for an active deposit", deposit.cid));
            }
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_replicated",
                format!(
                    "{} is in this node's log but its text is not here yet; a mirror fetches texts after \
                     their entries, so ask again shortly or ask the sequencer",
                    deposit.cid
                ),
            )
        })?;
        // Always plain UTF-8 text, whatever the deposit declared: a browser must never read a
        // depositor's bytes as a page (a declared `text/plain, text/html` would be HTML to it).
        Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
    })
    .await
}

async fn datacite(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(&app.reader, move |r| {
        let deposit = r.deposit(&id)?;
        let commons = r.commons()?;
        let mut document = substrate_core::datacite::document(&deposit, &commons, None);
        // Registered: the DOI DataCite gave, as the log records it.
        if let Some(doi) = r.governance()?.doi_of(&deposit.cid.to_string()) {
            let attributes = &mut document["data"]["attributes"];
            attributes["doi"] = json!(doi.doi);
            attributes["identifiers"] = json!([{"identifier": doi.doi, "identifierType": "DOI"}]);
            if let Some(fields) = attributes.as_object_mut() {
                // DataCite holds whether it is findable or only registered.
                fields.remove("state");
            }
            document["data"]["id"] = json!(doi.doi);
        }
        Ok(Json(document))
    })
    .await
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn checkpoint(State(app): State<AppState>) -> Result<Response, ApiError> {
    blocking(&app.reader, |r| Ok(text(r.checkpoint()?.1))).await
}

async fn cosignatures(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let cosignatures = blocking(&app.reader, |r| Ok(r.cosignatures()?)).await?;
    Ok(Json(json!({ "cosignatures": cosignatures })))
}

fn no_mesh() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_mesh",
        "this node runs without the mesh; start it with `substrate serve --p2p-listen ADDR` or `--bootstrap ADDR`",
    )
}

async fn peers(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let mesh = app.mesh.as_ref().ok_or_else(no_mesh)?;
    mesh.peers().await.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "mesh_stopped",
            "the mesh node has stopped; restart the node",
        )
    })
}

/// Prometheus text format: the mesh's libp2p, gossipsub and replication metrics when it runs,
/// and the log height in any case.
async fn metrics(State(app): State<AppState>) -> Result<Response, ApiError> {
    let (size, pending, jobs) = blocking(&app.reader, |r| {
        Ok((r.tree_head().0, r.pending_texts()?, crate::jobs::metrics(&*r.governance()?)))
    })
    .await?;
    let mut body = match &app.mesh {
        Some(mesh) => mesh.metrics().await.unwrap_or_default(),
        None => format!(
            "# HELP substrate_log_height Entries in the log this node holds.\n# TYPE substrate_log_height gauge\nsubstrate_log_height {size}\n"
        ),
    };
    let eof = body.strip_suffix("# EOF\n").map(str::len);
    if let Some(len) = eof {
        body.truncate(len);
    }
    body.push_str(&format!(
        "# HELP substrate_texts_pending Accepted texts not yet moved to the blob directory.\n# TYPE substrate_texts_pending gauge\nsubstrate_texts_pending {pending}\n"
    ));
    body.push_str(&jobs);
    if eof.is_some() {
        body.push_str("# EOF\n");
    }
    let content_type = if eof.is_some() {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

async fn checkpoint_at(State(app): State<AppState>, Path(size): Path<u64>) -> Result<Response, ApiError> {
    blocking(&app.reader, move |r| Ok(text(r.checkpoint_at(size)?))).await
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    start: u64,
    limit: Option<u64>,
}

async fn entries(
    State(app): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = page.limit.unwrap_or(100);
    if !(1..=MAX_ENTRIES_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_request",
            format!("limit is {limit}; ask for 1 to {MAX_ENTRIES_PAGE} entries per page and page with start"),
        ));
    }
    blocking(&app.reader, move |r| {
        let entries = r.entries(page.start, limit)?;
        let items: Vec<_> = entries
            .iter()
            .map(|entry| {
                let envelope: serde_json::Value = serde_json::from_slice(&entry.envelope).unwrap_or_default();
                let kind =
                    SignedEvent::open_bytes(&entry.envelope).map(|e| e.event.kind()).unwrap_or("unreadable");
                json!({
                    "index": entry.index,
                    "integrated_time": substrate_core::timestamp::rfc3339(entry.integrated_time),
                    "kind": kind,
                    "envelope": envelope,
                })
            })
            .collect();
        Ok(Json(json!({"entries": items})))
    })
    .await
}

async fn inclusion(State(app): State<AppState>, Path(index): Path<u64>) -> Result<Response, ApiError> {
    blocking(&app.reader, move |r| Ok(text(r.prove(index)?.to_text()))).await
}

#[derive(serde::Deserialize)]
struct Sizes {
    old: u64,
    new: u64,
}

async fn consistency(State(app): State<AppState>, Query(sizes): Query<Sizes>) -> Result<Response, ApiError> {
    blocking(&app.reader, move |r| Ok(Json(r.consistency(sizes.old, sizes.new)?).into_response())).await
}

#[cfg(test)]
mod tests {
    /// Every route the router serves is described in the OpenAPI document, and nothing else is.
    #[test]
    fn openapi_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(crate::OPENAPI).expect("valid JSON");
        let mut documented: Vec<String> =
            doc["paths"].as_object().expect("paths").keys().map(|p| p.replace("{path}", "{*path}")).collect();
        documented.sort();
        let source = include_str!("routes.rs");
        let mut served: Vec<String> = source
            .lines()
            .filter_map(|line| line.trim().strip_prefix(".route(\""))
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect();
        served.sort();
        assert_eq!(served, documented);
    }

    /// Every error code the API can answer with is listed in the OpenAPI document's `Error`
    /// schema, so a client can tell the refusals apart from the document alone.
    #[test]
    fn openapi_lists_every_error_code() {
        let doc: serde_json::Value = serde_json::from_str(crate::OPENAPI).expect("valid JSON");
        let listed = doc["components"]["schemas"]["Error"]["properties"]["error"]["description"]
            .as_str()
            .expect("the error code's description")
            .to_owned();
        // The sources, and whether their match arms map to codes (`=> "code"`).
        let sources = [
            (include_str!("error.rs"), true),
            (include_str!("../../substrate-core/src/governance/acts.rs"), true),
            (include_str!("../../substrate-core/src/governance/tokens.rs"), true),
            (include_str!("adapters.rs"), false),
            (include_str!("amputation.rs"), false),
            (include_str!("governance.rs"), false),
            (include_str!("routes.rs"), false),
            (include_str!("search.rs"), false),
            (include_str!("signatures.rs"), false),
            (include_str!("jobs.rs"), false),
            (include_str!("tiles.rs"), false),
        ];
        // Each source with its whitespace runs collapsed (and none after an opening parenthesis),
        // so a code on the line after its status is found too.
        let collapsed: Vec<(String, bool)> = sources
            .iter()
            .map(|(s, arms)| (s.split_whitespace().collect::<Vec<_>>().join(" ").replace("( ", "("), *arms))
            .collect();
        let mut codes = std::collections::BTreeSet::new();
        for (source, arms) in &collapsed {
            for (prefix, needs_arms) in [("StatusCode::", false), ("bad_request(\"", false), ("=> \"", true)]
            {
                if needs_arms && !arms {
                    continue;
                }
                for part in source.split(prefix).skip(1) {
                    let rest = match prefix {
                        "StatusCode::" => match part.split_once(", \"") {
                            Some((status, rest))
                                if status.chars().all(|c| c.is_ascii_uppercase() || c == '_') =>
                            {
                                rest
                            }
                            _ => continue,
                        },
                        _ => part,
                    };
                    let code: String =
                        rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                    if !code.is_empty() && rest[code.len()..].starts_with('"') {
                        codes.insert(code);
                    }
                }
            }
        }
        assert!(codes.len() > 40, "the scan found only {codes:?}");
        let missing: Vec<&String> = codes.iter().filter(|c| !listed.contains(&format!("`{c}`"))).collect();
        assert!(missing.is_empty(), "error codes missing from openapi.json's Error schema: {missing:?}");
    }
}
