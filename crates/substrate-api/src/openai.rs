//! The OpenAI-compatible routes: `GET /v1/models`, `POST /v1/embeddings`,
//! `POST /v1/chat/completions` (streaming as server-sent events ending in `[DONE]`, or not) and
//! `POST /v1/completions`, on the models this node serves. Their errors have the OpenAI shape,
//! `{"error": {"message", "type", "param", "code"}}`, so that its clients read them.
//!
//! Generations take one of a fixed number of slots; a request that finds them all taken waits in
//! a short queue, and past it is told 429 with `Retry-After`. A client that goes away mid-stream
//! frees its slot at the next token.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use substrate_models::{Embedder, Llama, Message, Sampling};

use crate::generation::{Piece, spawn_generation};
use crate::routes::AppState;
use crate::search::GroundingError;

/// Most texts one embeddings request may carry, and the longest one (characters).
const MOST_INPUTS: usize = 2048;
const LONGEST_INPUT: usize = 100_000;
/// Most stop sequences, as the OpenAI API allows.
const MOST_STOPS: usize = 4;

/// The models a node serves, and the slots its generations share.
pub struct Inference {
    pub(crate) embedding: Option<(String, Arc<Embedder>)>,
    pub(crate) generation: Option<(String, Arc<Llama>)>,
    slots: Arc<tokio::sync::Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
    pub(crate) created: u64,
    /// The generation model's sha256, once an adapter needed it (adapters name their base by it).
    base_sha256: std::sync::OnceLock<String>,
    /// Adapters from the registry attached to their own copy of the base, loaded on first use.
    adapters: std::sync::Mutex<std::collections::HashMap<u64, Arc<Llama>>>,
    /// Who pays for what is generated and embedded here.
    meter: Arc<crate::metering::Meter>,
}

/// The name an adapter of the registry is served under.
pub(crate) fn adapter_model(id: u64) -> String {
    format!("adapter-{id}")
}

impl Inference {
    /// Serves `embedding` and `generation` (each named by its id), `slots` generations at once
    /// and `queue` more waiting.
    /// The embedding model served and its name, to share with the search index.
    pub fn embedder(&self) -> Option<(String, Arc<Embedder>)> {
        self.embedding.clone()
    }

    pub fn new(
        embedding: Option<(String, Arc<Embedder>)>,
        generation: Option<(String, Llama)>,
        slots: usize,
        queue: usize,
        meter: crate::metering::Meter,
    ) -> Inference {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Inference {
            embedding,
            generation: generation.map(|(id, m)| (id, Arc::new(m))),
            slots: Arc::new(tokio::sync::Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            queue,
            created,
            base_sha256: std::sync::OnceLock::new(),
            adapters: std::sync::Mutex::new(std::collections::HashMap::new()),
            meter: Arc::new(meter),
        }
    }

    /// Who pays for what is generated and embedded here.
    pub fn meter(&self) -> Arc<crate::metering::Meter> {
        Arc::clone(&self.meter)
    }

    /// The base model's sha256 (hashed once).
    fn base_sha256(&self) -> Option<String> {
        let (_, llama) = self.generation.as_ref()?;
        if let Some(sha) = self.base_sha256.get() {
            return Some(sha.clone());
        }
        let sha = substrate_models::fetch::file_sha256(&llama.path).ok()?;
        Some(self.base_sha256.get_or_init(|| sha).clone())
    }

    /// The adapters of the registry this node can serve: published in the log for this base
    /// model, with every file on this node. Blocking (hashes the base once).
    pub(crate) fn served_adapters(&self, reader: &substrate_store::Reader) -> Vec<u64> {
        let Some(sha) = self.base_sha256() else { return Vec::new() };
        let Ok(governance) = reader.governance() else { return Vec::new() };
        governance
            .adapters()
            .filter(|a| a.base_model == sha && substrate_training::registry::is_complete(reader.dir(), a))
            .map(|a| a.id)
            .collect()
    }

    /// The generation model `name` names: the base, or an adapter of the registry attached to a
    /// copy of it (loaded on first use, then kept). Blocking.
    pub(crate) fn resolve(
        &self,
        name: &str,
        reader: &substrate_store::Reader,
    ) -> Result<(String, Arc<Llama>), OpenAiError> {
        if let Some((id, llama)) = self.generation.as_ref().filter(|(id, _)| id == name) {
            return Ok((id.clone(), Arc::clone(llama)));
        }
        let adapter = name.strip_prefix("adapter-").and_then(|n| n.parse::<u64>().ok());
        let (Some(adapter), Some((_, base))) = (adapter, &self.generation) else {
            return Err(OpenAiError::unknown_model(name, &self.ids()));
        };
        if let Some(loaded) = self.adapters.lock().unwrap_or_else(|e| e.into_inner()).get(&adapter) {
            return Ok((name.to_owned(), Arc::clone(loaded)));
        }
        if !self.served_adapters(reader).contains(&adapter) {
            return Err(OpenAiError::unknown_model(name, &self.ids()).saying(format!(
                "The model '{name}' is not served here: adapter {adapter} is not in the log for this node's base model, or its files are not all on this node (GET /v1/adapters/{adapter} says which)"
            )));
        }
        let sha = self.base_sha256().unwrap_or_default();
        let dir = substrate_training::registry::dir(reader.dir(), adapter);
        let loaded = substrate_models::Llama::load(&base.path, substrate_models::Weights::Auto)
            .and_then(|mut model| {
                substrate_models::Adapter::load(&dir, &model, &sha)?.attach(&mut model);
                Ok(model)
            })
            .map_err(|e| OpenAiError::internal(format!("loading adapter {adapter}: {e}")))?;
        let loaded = Arc::new(loaded);
        self.adapters.lock().unwrap_or_else(|e| e.into_inner()).insert(adapter, Arc::clone(&loaded));
        Ok((name.to_owned(), loaded))
    }

    pub(crate) fn ids(&self) -> Vec<&str> {
        self.embedding
            .iter()
            .map(|(id, _)| id.as_str())
            .chain(self.generation.iter().map(|(id, _)| id.as_str()))
            .collect()
    }
}

/// An error in the OpenAI shape.
#[derive(Debug)]
pub struct OpenAiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    kind: &'static str,
    param: Option<&'static str>,
    code: &'static str,
    /// For 402: what the member has and needs (boxed: most refusals carry none).
    credits: Option<Box<Value>>,
    pub(crate) retry_after: Option<u64>,
}

impl OpenAiError {
    fn invalid(param: &'static str, code: &'static str, message: impl Into<String>) -> OpenAiError {
        OpenAiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param),
            code,
            credits: None,
            retry_after: None,
        }
    }

    fn unknown_model(model: &str, served: &[&str]) -> OpenAiError {
        let message = if served.is_empty() {
            format!(
                "The model '{model}' does not exist: this node serves no models (start it with `substrate serve --serve-models`)"
            )
        } else {
            format!("The model '{model}' does not exist here; GET /v1/models lists {}", served.join(", "))
        };
        OpenAiError {
            status: StatusCode::NOT_FOUND,
            message,
            kind: "invalid_request_error",
            param: Some("model"),
            code: "model_not_found",
            credits: None,
            retry_after: None,
        }
    }

    /// The same refusal, saying `message`.
    fn saying(self, message: String) -> OpenAiError {
        OpenAiError { message, ..self }
    }

    fn busy() -> OpenAiError {
        OpenAiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "every generation slot is taken and the queue is full; retry after a second".into(),
            kind: "rate_limit_error",
            param: None,
            code: "rate_limit_exceeded",
            credits: None,
            retry_after: None,
        }
    }

    /// A refusal of who is asking (401 a signature that does not hold, 403 not a member).
    fn from_api(error: crate::ApiError) -> OpenAiError {
        let code = error.error;
        OpenAiError {
            status: error.status,
            message: error.detail,
            kind: if error.status == StatusCode::UNAUTHORIZED {
                "authentication_error"
            } else {
                "permission_error"
            },
            param: None,
            code,
            credits: None,
            retry_after: None,
        }
    }

    /// A refusal of the meter: 401 nobody named, 402 not enough credits, 503 no way to account.
    pub(crate) fn from_refusal(refusal: crate::metering::Refusal) -> OpenAiError {
        OpenAiError {
            status: refusal.status,
            message: refusal.detail,
            kind: match refusal.status {
                StatusCode::UNAUTHORIZED => "authentication_error",
                StatusCode::PAYMENT_REQUIRED => "insufficient_credits",
                _ => "server_error",
            },
            param: None,
            code: refusal.code,
            credits: refusal.credits.map(Box::new),
            retry_after: refusal.retry_after,
        }
    }

    fn internal(message: impl Into<String>) -> OpenAiError {
        OpenAiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: "model_failed",
            credits: None,
            retry_after: None,
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        if let Some(credits) = self.credits {
            body["error"]["credits"] = *credits;
        }
        let mut response = (self.status, Json(body)).into_response();
        let retry_after = match self.status {
            StatusCode::TOO_MANY_REQUESTS => Some(1),
            _ => self.retry_after,
        };
        if let Some(seconds) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        response
    }
}

type Answer = Result<Response, OpenAiError>;

fn inference(app: &AppState) -> Result<&Arc<Inference>, OpenAiError> {
    app.inference.as_ref().ok_or_else(|| OpenAiError::unknown_model("any", &[]))
}

/// The request body as a JSON object, or why not.
fn object(body: &Bytes) -> Result<serde_json::Map<String, Value>, OpenAiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(OpenAiError::invalid("body", "invalid_body", "the body must be a JSON object")),
        Err(e) => Err(OpenAiError::invalid("body", "invalid_json", format!("the body is not JSON: {e}"))),
    }
}

fn model_of(body: &serde_json::Map<String, Value>) -> Result<&str, OpenAiError> {
    body.get("model").and_then(Value::as_str).ok_or_else(|| {
        OpenAiError::invalid("model", "missing_model", "name the model (GET /v1/models lists them)")
    })
}

pub async fn models(State(app): State<AppState>) -> Response {
    let created = app.inference.as_ref().map_or(0, |inference| inference.created);
    let ids = served(&app).await;
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": "commons"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// The models this node serves, and every adapter of the registry it holds for its base model.
pub(crate) async fn served(app: &AppState) -> Vec<String> {
    let Some(inference) = app.inference.clone() else { return Vec::new() };
    let mut ids: Vec<String> = inference.ids().into_iter().map(str::to_owned).collect();
    let reader = app.reader.clone();
    let adapters = tokio::task::spawn_blocking(move || inference.served_adapters(&reader)).await;
    ids.extend(adapters.unwrap_or_default().into_iter().map(adapter_model));
    ids
}

/// The request body, or the OpenAI-shaped reason it could not be read (too large, cut off).
fn read(body: Result<Bytes, BytesRejection>) -> Result<Bytes, OpenAiError> {
    body.map_err(|rejection| OpenAiError {
        status: rejection.status(),
        message: format!("the body could not be read: {}", rejection.body_text()),
        kind: "invalid_request_error",
        param: None,
        code: "invalid_body",
        credits: None,
        retry_after: None,
    })
}

pub async fn embeddings(
    State(app): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let inference = inference(&app)?;
    let bytes = read(body)?;
    let member =
        crate::signatures::member(&app, &method, &uri, &headers, &bytes).map_err(OpenAiError::from_api)?;
    let body = object(&bytes)?;
    let model = model_of(&body)?;
    let Some((id, embedder)) = inference.embedding.as_ref().filter(|(id, _)| id == model) else {
        return Err(OpenAiError::unknown_model(model, &inference.ids()));
    };
    let texts: Vec<String> = match body.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
        }
        Some(Value::Array(items)) if !items.is_empty() => {
            return Err(OpenAiError::invalid(
                "input",
                "unsupported_input",
                "input is a string or a list of strings here; token ids are not taken",
            ));
        }
        _ => {
            return Err(OpenAiError::invalid(
                "input",
                "missing_input",
                "input is a non-empty string or list of strings",
            ));
        }
    };
    if texts.len() > MOST_INPUTS {
        return Err(OpenAiError::invalid(
            "input",
            "too_many_inputs",
            format!("at most {MOST_INPUTS} inputs"),
        ));
    }
    if let Some(position) = texts.iter().position(|t| t.is_empty() || t.chars().count() > LONGEST_INPUT) {
        return Err(OpenAiError::invalid(
            "input",
            "invalid_input",
            format!("input {position} is empty or longer than {LONGEST_INPUT} characters"),
        ));
    }
    if let Some(dimensions) = body.get("dimensions")
        && dimensions.as_u64() != Some(embedder.dim as u64)
    {
        return Err(OpenAiError::invalid(
            "dimensions",
            "unsupported_dimensions",
            format!("{id} gives {} dimensions and cannot shorten them", embedder.dim),
        ));
    }
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(OpenAiError::invalid(
                "encoding_format",
                "invalid_encoding_format",
                format!("encoding_format '{other}' is float or base64"),
            ));
        }
    };
    let (vectors, tokens) = embed_paid(&app, embedder, texts, member.as_deref()).await?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

/// Embeds `texts` for `member` (or nobody), who pays for their tokens: the vectors and the
/// tokens counted.
pub(crate) async fn embed_paid(
    app: &AppState,
    embedder: &Arc<Embedder>,
    texts: Vec<String>,
    member: Option<&str>,
) -> Result<(Vec<Vec<f32>>, usize), OpenAiError> {
    let counter = Arc::clone(embedder);
    let (texts, tokens) = tokio::task::spawn_blocking(move || {
        let tokens: usize = counter.count_tokens(&texts)?.iter().sum();
        Ok::<_, substrate_models::ModelError>((texts, tokens))
    })
    .await
    .map_err(|e| OpenAiError::internal(format!("the embedding task failed: {e}")))?
    .map_err(|e| OpenAiError::internal(format!("the model failed: {e}")))?;
    let asking = crate::metering::Asking { fixed: tokens as u64, up_to: 0, may_shorten: false };
    let (charge, _) = admit(app, member, asking)?;
    let embedder = Arc::clone(embedder);
    let vectors = tokio::task::spawn_blocking(move || embedder.embed(&texts))
        .await
        .map_err(|e| OpenAiError::internal(format!("the embedding task failed: {e}")))?
        .map_err(|e| OpenAiError::internal(format!("the model failed: {e}")))?;
    charge.settle(tokens as u64);
    Ok((vectors, tokens))
}

/// Holds back what `asking` may cost `member` on this node's meter, or refuses in the OpenAI
/// shape; the charge and how many tokens may be generated.
pub(crate) fn admit(
    app: &AppState,
    member: Option<&str>,
    asking: crate::metering::Asking,
) -> Result<(crate::metering::Charge, u64), OpenAiError> {
    let inference = inference(app)?;
    let governance =
        app.reader.governance().map_err(|e| OpenAiError::internal(format!("reading the state: {e}")))?;
    let commons =
        app.reader.commons().map_err(|e| OpenAiError::internal(format!("reading the commons: {e}")))?;
    inference.meter.admit(&governance, &commons.log_did, member, asking).map_err(OpenAiError::from_refusal)
}

/// What a generation request asks for, read and checked.
struct Asked {
    id: String,
    model: Arc<Llama>,
    prompt: Vec<u32>,
    sampling: Sampling,
    stops: Vec<String>,
    stream: bool,
    usage_in_stream: bool,
}

fn number(
    body: &serde_json::Map<String, Value>,
    key: &'static str,
    range: std::ops::RangeInclusive<f64>,
    default: f64,
) -> Result<f64, OpenAiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_f64().filter(|x| range.contains(x)).ok_or_else(|| {
            OpenAiError::invalid(
                key,
                "invalid_value",
                format!("{key} is a number from {} to {}", range.start(), range.end()),
            )
        }),
    }
}

fn asked(
    (id, llama): (String, Arc<Llama>),
    body: &serde_json::Map<String, Value>,
    chat: bool,
    grounding: Option<&str>,
) -> Result<Asked, OpenAiError> {
    let llama = &llama;
    let text = if chat {
        let messages =
            body.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()).ok_or_else(|| {
                OpenAiError::invalid(
                    "messages",
                    "missing_messages",
                    "messages is a non-empty list of {role, content}",
                )
            })?;
        let mut parsed = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let role = message
                .get("role")
                .and_then(Value::as_str)
                .filter(|r| ["system", "developer", "user", "assistant"].contains(r));
            let content = match message.get("content") {
                Some(Value::String(text)) => Some(text.clone()),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|p| {
                        (p.get("type").and_then(Value::as_str) == Some("text"))
                            .then(|| p.get("text").and_then(Value::as_str))
                            .flatten()
                    })
                    .collect::<Option<Vec<&str>>>()
                    .map(|parts| parts.concat()),
                _ => None,
            };
            match (role, content) {
                (Some(role), Some(content)) => {
                    parsed.push(Message::new(if role == "developer" { "system" } else { role }, &content))
                }
                _ => {
                    return Err(OpenAiError::invalid(
                        "messages",
                        "invalid_message",
                        format!("message {i} needs a role (system, user or assistant) and text content"),
                    ));
                }
            }
        }
        if let Some(grounding) = grounding {
            // One system message: the passages follow what the caller's own said.
            match parsed.first_mut().filter(|m| m.role == "system") {
                Some(system) => system.content = format!("{}\n\n{grounding}", system.content),
                None => parsed.insert(0, Message::new("system", grounding)),
            }
        }
        substrate_models::apply_chat_template(llama, &parsed)
            .map_err(|e| OpenAiError::invalid("messages", "invalid_message", e.to_string()))?
    } else {
        match body.get("prompt") {
            Some(Value::String(prompt)) => prompt.clone(),
            Some(Value::Array(parts)) if parts.len() == 1 && parts[0].is_string() => {
                parts[0].as_str().unwrap_or_default().to_owned()
            }
            _ => {
                return Err(OpenAiError::invalid(
                    "prompt",
                    "invalid_prompt",
                    "prompt is a string (one prompt per request)",
                ));
            }
        }
    };
    if body.get("n").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(OpenAiError::invalid("n", "unsupported_n", "one choice per request (n = 1)"));
    }
    let prompt = llama
        .tokenizer
        .encode_prompt(&text)
        .map_err(|e| OpenAiError::invalid("messages", "invalid_prompt", e.to_string()))?;
    let context = llama.config.context;
    if prompt.len() >= context {
        return Err(OpenAiError::invalid(
            if chat { "messages" } else { "prompt" },
            "context_length_exceeded",
            format!("the prompt is {} tokens and {id}'s context is {context}", prompt.len()),
        ));
    }
    let room = context - prompt.len();
    let max_tokens = match body.get("max_completion_tokens").or_else(|| body.get("max_tokens")) {
        None | Some(Value::Null) => room.min(1024),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => (n as usize).min(room),
            _ => {
                return Err(OpenAiError::invalid(
                    "max_tokens",
                    "invalid_value",
                    "max_tokens is a whole number of at least 1",
                ));
            }
        },
    };
    let stops: Vec<String> = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= MOST_STOPS && items.iter().all(Value::is_string) => {
            items.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()
        }
        _ => {
            return Err(OpenAiError::invalid(
                "stop",
                "invalid_stop",
                format!("stop is a string or up to {MOST_STOPS} strings"),
            ));
        }
    };
    if stops.iter().any(String::is_empty) {
        return Err(OpenAiError::invalid("stop", "invalid_stop", "a stop sequence is not empty"));
    }
    let seed = match body.get("seed") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .map(|s| s as u64)
            .ok_or_else(|| OpenAiError::invalid("seed", "invalid_value", "seed is a whole number"))?,
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(OpenAiError::invalid("stream", "invalid_value", "stream is true or false")),
    };
    let usage_in_stream = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Asked {
        id,
        model: Arc::clone(llama),
        prompt,
        sampling: Sampling {
            temperature: number(body, "temperature", 0.0..=2.0, 1.0)?,
            top_p: number(body, "top_p", 0.0..=1.0, 1.0)?,
            seed,
            max_tokens,
            ignore_eos: false,
        },
        stops,
        stream,
        usage_in_stream,
    })
}

/// A slot for one generation: taken at once, or after waiting in the queue, or refused.
pub(crate) async fn slot(inference: &Inference) -> Result<tokio::sync::OwnedSemaphorePermit, OpenAiError> {
    if let Ok(permit) = Arc::clone(&inference.slots).try_acquire_owned() {
        return Ok(permit);
    }
    if inference.waiting.fetch_add(1, Ordering::SeqCst) >= inference.queue {
        inference.waiting.fetch_sub(1, Ordering::SeqCst);
        return Err(OpenAiError::busy());
    }
    let permit = Arc::clone(&inference.slots).acquire_owned().await;
    inference.waiting.fetch_sub(1, Ordering::SeqCst);
    permit.map_err(|_| OpenAiError::internal("the node is stopping"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn request_id(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{nanos:x}{:04x}", COUNT.fetch_add(1, Ordering::Relaxed) & 0xffff)
}

pub async fn chat_completions(
    State(app): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = read(body)?;
    // A verified member's signed request may be answered from `commons` texts too.
    let member =
        crate::signatures::member(&app, &method, &uri, &headers, &body).map_err(OpenAiError::from_api)?;
    complete(app, body, true, member).await
}

pub async fn completions(
    State(app): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = read(body)?;
    let member =
        crate::signatures::member(&app, &method, &uri, &headers, &body).map_err(OpenAiError::from_api)?;
    complete(app, body, false, member).await
}

async fn complete(app: AppState, body: Bytes, chat: bool, member: Option<String>) -> Answer {
    let inference = Arc::clone(inference(&app)?);
    let body = object(&body)?;
    let grounding = match body.get("retrieval") {
        Some(_) if !chat => {
            return Err(OpenAiError::invalid(
                "retrieval",
                "invalid_retrieval",
                "retrieval is for chat completions",
            ));
        }
        _ => {
            crate::search::grounding_of(&app, &body, member.is_some()).await.map_err(|error| match error {
                GroundingError::Invalid(message) => {
                    OpenAiError::invalid("retrieval", "invalid_retrieval", message)
                }
                GroundingError::NoQuestion(message) => {
                    OpenAiError::invalid("messages", "invalid_message", message)
                }
                GroundingError::Unavailable(message) => {
                    OpenAiError::invalid("retrieval", "retrieval_unavailable", message)
                }
            })?
        }
    };
    let resolved = resolve(&app, &inference, &body).await?;
    let asked = asked(resolved, &body, chat, grounding.as_ref().map(|g| g.system.as_str()))?;
    let citations = grounding.map(|g| g.citations);
    let Asked { id, model, prompt, mut sampling, stops, stream, usage_in_stream } = asked;
    let chosen =
        body.get("max_completion_tokens").or_else(|| body.get("max_tokens")).is_some_and(|v| !v.is_null());
    let asking = crate::metering::Asking {
        fixed: prompt.len() as u64,
        up_to: sampling.max_tokens as u64,
        may_shorten: !chosen,
    };
    let (charge, up_to) = admit(&app, member.as_deref(), asking)?;
    sampling.max_tokens = up_to as usize;
    let permit = slot(&inference).await?;
    let rx = spawn_generation(model, prompt, sampling, stops, permit, charge)
        .map_err(|e| OpenAiError::internal(format!("starting the generation: {e}")))?;
    let created = unix_now();
    let request = request_id(if chat { "chatcmpl" } else { "cmpl" });
    if stream {
        let events = Events {
            rx,
            chat,
            id: request,
            model: id,
            created,
            usage: usage_in_stream,
            citations,
            text: String::new(),
            started: false,
            done: false,
        };
        let mut response = Response::new(Body::new(events));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(response);
    }
    let mut rx = rx;
    let mut text = String::new();
    while let Some(piece) = rx.recv().await {
        match piece {
            Piece::Text(t) => text.push_str(&t),
            Piece::Failed(e) => return Err(OpenAiError::internal(format!("the model failed: {e}"))),
            Piece::End { finish, prompt_tokens, completion_tokens, .. } => {
                let usage = json!({
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                });
                let choice = if chat {
                    json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": finish})
                } else {
                    json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
                };
                let object = if chat { "chat.completion" } else { "text_completion" };
                let mut answer = json!({
                    "id": request,
                    "object": object,
                    "created": created,
                    "model": id,
                    "choices": [choice],
                    "usage": usage,
                });
                if let Some(citations) = citations {
                    answer["citations"] = Value::Array(referenced(citations, &text));
                }
                return Ok(Json(answer).into_response());
            }
        }
    }
    Err(OpenAiError::internal("the generation ended without an answer"))
}

/// The model a generation request names (`model`, or one adapter in llama-server's `lora`
/// field), resolved to a loaded model.
async fn resolve(
    app: &AppState,
    inference: &Arc<Inference>,
    body: &serde_json::Map<String, Value>,
) -> Result<(String, Arc<Llama>), OpenAiError> {
    let mut name = model_of(body)?.to_owned();
    match body.get("lora") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.is_empty() => {}
        Some(Value::Array(items)) if items.len() == 1 => {
            let id = items[0].get("id").and_then(Value::as_u64);
            let scale = items[0].get("scale").map_or(Some(1.0), Value::as_f64);
            match (id, scale) {
                (Some(id), Some(scale)) if (scale - 1.0).abs() < 1e-9 => {
                    if inference.generation.as_ref().is_none_or(|(base, _)| *base != name) {
                        return Err(OpenAiError::invalid(
                            "lora",
                            "invalid_lora",
                            "lora applies to the base model: name it as model",
                        ));
                    }
                    name = adapter_model(id);
                }
                _ => {
                    return Err(OpenAiError::invalid(
                        "lora",
                        "invalid_lora",
                        "lora is [{\"id\": ADAPTER, \"scale\": 1}]: one adapter of the registry, at its trained scale",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(OpenAiError::invalid(
                "lora",
                "invalid_lora",
                "lora is a list of at most one {id, scale}",
            ));
        }
    }
    let inference = Arc::clone(inference);
    let reader = app.reader.clone();
    tokio::task::spawn_blocking(move || inference.resolve(&name, &reader))
        .await
        .map_err(|e| OpenAiError::internal(e.to_string()))?
}

/// The text of the last user message of a chat request.
pub(crate) fn last_user_text(body: &serde_json::Map<String, Value>) -> Option<String> {
    let message = body.get("messages")?.as_array()?.iter().rev().find(|m| m["role"] == "user")?;
    match &message["content"] {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            Some(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(" "))
        }
        _ => None,
    }
    .filter(|text| !text.trim().is_empty())
}

/// Marks each citation by whether the answer names it (`[n]`).
pub(crate) fn referenced(citations: Vec<Value>, answer: &str) -> Vec<Value> {
    citations
        .into_iter()
        .map(|mut citation| {
            let mark = format!("[{}]", citation["index"]);
            citation["referenced"] = Value::Bool(answer.contains(&mark));
            citation
        })
        .collect()
}

/// The server-sent events of a streaming completion: a chunk per piece of text, a last chunk
/// with the finish reason (and the usage when asked), then `data: [DONE]`.
struct Events {
    rx: tokio::sync::mpsc::Receiver<Piece>,
    chat: bool,
    id: String,
    model: String,
    created: u64,
    usage: bool,
    /// The passages the answer was grounded in, given in the chunk that ends it.
    citations: Option<Vec<Value>>,
    /// The answer so far, kept only to say which passages it cites.
    text: String,
    started: bool,
    done: bool,
}

impl Events {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        let (object, choice) = if self.chat {
            (
                "chat.completion.chunk",
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}),
            )
        } else {
            let text = delta.get("content").cloned().unwrap_or(Value::String(String::new()));
            ("text_completion", json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish}))
        };
        let chunk = json!({"id": self.id, "object": object, "created": self.created, "model": self.model, "choices": [choice]});
        Bytes::from(format!("data: {chunk}\n\n"))
    }
}

impl http_body::Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.started {
            self.started = true;
            if self.chat {
                let first = self.chunk(json!({"role": "assistant", "content": ""}), None);
                return Poll::Ready(Some(Ok(http_body::Frame::data(first))));
            }
        }
        let piece = match self.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(piece) => piece,
        };
        let bytes = match piece {
            Some(Piece::Text(text)) => {
                if self.citations.is_some() {
                    self.text.push_str(&text);
                }
                self.chunk(json!({"content": text}), None)
            }
            Some(Piece::End { finish, prompt_tokens, completion_tokens, .. }) => {
                self.done = true;
                let mut last = match self.citations.take() {
                    Some(citations) => {
                        let text = std::mem::take(&mut self.text);
                        let chunk = self.chunk(json!({}), Some(finish));
                        let mut value: Value =
                            serde_json::from_slice(&chunk["data: ".len()..]).unwrap_or_default();
                        value["citations"] = Value::Array(referenced(citations, &text));
                        format!("data: {value}\n\n").into_bytes()
                    }
                    None => self.chunk(json!({}), Some(finish)).to_vec(),
                };
                // As the OpenAI API does: the usage in a chunk of its own, with no choices.
                if self.usage {
                    let usage = json!({
                        "id": self.id, "object": if self.chat { "chat.completion.chunk" } else { "text_completion" },
                        "created": self.created, "model": self.model, "choices": [],
                        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
                    });
                    last.extend_from_slice(format!("data: {usage}\n\n").as_bytes());
                }
                last.extend_from_slice(b"data: [DONE]\n\n");
                Bytes::from(last)
            }
            Some(Piece::Failed(error)) => {
                self.done = true;
                let body = json!({"error": {"message": format!("the model failed: {error}"), "type": "server_error", "param": null, "code": "model_failed"}});
                Bytes::from(format!("data: {body}\n\ndata: [DONE]\n\n"))
            }
            None => {
                self.done = true;
                return Poll::Ready(None);
            }
        };
        Poll::Ready(Some(Ok(http_body::Frame::data(bytes))))
    }
}
