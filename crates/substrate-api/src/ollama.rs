//! The Ollama-compatible routes: `/api/chat` and `/api/generate` (newline-delimited JSON streams,
//! or one object with `"stream": false`), `/api/embed`, `/api/tags`, `/api/show` and
//! `/api/version`, on the same models and generation slots as the OpenAI routes. Errors have
//! Ollama's shape, `{"error": "…"}`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use substrate_models::{Llama, Message, Sampling};

use crate::generation::{Piece, spawn_generation};
use crate::openai::{Inference, OpenAiError, slot};
use crate::routes::AppState;

/// The Ollama API version these routes follow.
const VERSION: &str = "0.12.0";

/// An error in Ollama's shape.
#[derive(Debug)]
pub struct OllamaError {
    status: StatusCode,
    message: String,
    /// Seconds until asking again can succeed: the next slot (429), the floor's refill (402).
    retry_after: Option<u64>,
}

impl OllamaError {
    fn bad(message: impl Into<String>) -> OllamaError {
        OllamaError { status: StatusCode::BAD_REQUEST, message: message.into(), retry_after: None }
    }

    fn failed(message: String) -> OllamaError {
        OllamaError { status: StatusCode::INTERNAL_SERVER_ERROR, message, retry_after: None }
    }

    fn not_found(model: &str) -> OllamaError {
        OllamaError {
            status: StatusCode::NOT_FOUND,
            message: format!("model '{model}' not found"),
            retry_after: None,
        }
    }
}

impl From<OpenAiError> for OllamaError {
    fn from(e: OpenAiError) -> OllamaError {
        OllamaError { status: e.status, retry_after: e.retry_after, message: e.message }
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"error": self.message}))).into_response();
        let retry = match (self.retry_after, self.status) {
            (Some(seconds), _) => Some(seconds),
            (None, StatusCode::TOO_MANY_REQUESTS) => Some(1),
            _ => None,
        };
        if let Some(value) = retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

type Answer = Result<Response, OllamaError>;

fn body_of(body: Result<Bytes, BytesRejection>) -> Result<serde_json::Map<String, Value>, OllamaError> {
    let bytes =
        body.map_err(|r| OllamaError { status: r.status(), message: r.body_text(), retry_after: None })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(OllamaError::bad("the body must be a JSON object")),
        Err(e) => Err(OllamaError::bad(format!("invalid JSON: {e}"))),
    }
}

fn served(app: &AppState) -> Option<&Arc<Inference>> {
    app.inference.as_ref()
}

/// The model's name without Ollama's `:latest` tag.
fn name_of(body: &serde_json::Map<String, Value>) -> Result<String, OllamaError> {
    let name = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| OllamaError::bad("model is required"))?;
    Ok(name.strip_suffix(":latest").unwrap_or(name).to_owned())
}

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    substrate_core::timestamp::rfc3339(ms)
}

pub async fn version() -> Response {
    Json(json!({"version": VERSION})).into_response()
}

/// What `/api/tags` and `/api/show` say of one model.
fn details(kind: &str) -> Value {
    match kind {
        "embedding" => {
            json!({"format": "safetensors", "family": "bert", "families": ["bert"], "parameter_size": "22M", "quantization_level": "F32"})
        }
        _ => {
            json!({"format": "gguf", "family": "llama", "families": ["llama"], "parameter_size": "135M", "quantization_level": "Q4_1"})
        }
    }
}

fn models(inference: &Inference) -> Vec<(String, &'static str, u64)> {
    let size = |path: &std::path::Path| {
        if path.is_dir() {
            std::fs::read_dir(path)
                .map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
                .unwrap_or(0)
        } else {
            std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        }
    };
    let mut list = Vec::new();
    if let Some((id, model)) = &inference.embedding {
        list.push((id.clone(), "embedding", size(&model.path)));
    }
    if let Some((id, model)) = &inference.generation {
        list.push((id.clone(), "generation", size(&model.path)));
    }
    list
}

/// The models, with the registry's adapters this node serves (as generation models).
async fn with_adapters(app: &AppState) -> Vec<(String, &'static str, u64)> {
    let Some(inference) = app.inference.clone() else { return Vec::new() };
    let mut list = models(&inference);
    let reader = app.reader.clone();
    let adapters = tokio::task::spawn_blocking(move || {
        inference
            .served_adapters(&reader)
            .into_iter()
            .map(|id| {
                let dir = substrate_training::registry::dir(reader.dir(), id);
                let size = std::fs::read_dir(&dir)
                    .map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
                    .unwrap_or(0);
                (crate::openai::adapter_model(id), "generation", size)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    list.extend(adapters);
    list
}

pub async fn tags(State(app): State<AppState>) -> Response {
    let list: Vec<Value> = with_adapters(&app)
        .await
        .into_iter()
        .map(|(id, kind, size)| {
            json!({
                "name": format!("{id}:latest"),
                "model": format!("{id}:latest"),
                "modified_at": now_rfc3339(),
                "size": size,
                "digest": hex_name(&id),
                "details": details(kind),
            })
        })
        .collect();
    Json(json!({"models": list})).into_response()
}

/// A stable digest-shaped name for a model id (Ollama lists one per model).
fn hex_name(id: &str) -> String {
    substrate_core::sha256(id.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn show(State(app): State<AppState>, body: Result<Bytes, BytesRejection>) -> Answer {
    let body = body_of(body)?;
    let name = name_of(&body)?;
    let inference = served(&app).ok_or_else(|| OllamaError::not_found(&name))?;
    let (_, kind, _) = with_adapters(&app)
        .await
        .into_iter()
        .find(|(id, _, _)| *id == name)
        .ok_or_else(|| OllamaError::not_found(&name))?;
    let (capabilities, template) = match kind {
        "embedding" => (json!(["embedding"]), String::new()),
        _ => (
            json!(["completion"]),
            inference.generation.as_ref().and_then(|(_, m)| m.chat_template.clone()).unwrap_or_default(),
        ),
    };
    Ok(Json(json!({
        "modelfile": format!("FROM {name}"),
        "parameters": "",
        "template": template,
        "details": details(kind),
        "model_info": {},
        "capabilities": capabilities,
        "modified_at": now_rfc3339(),
    }))
    .into_response())
}

pub async fn embed(
    State(app): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let (body, member) = asked_by(&app, &method, &uri, &headers, body)?;
    let name = name_of(&body)?;
    let inference = served(&app).ok_or_else(|| OllamaError::not_found(&name))?;
    let Some((id, embedder)) = inference.embedding.as_ref().filter(|(id, _)| *id == name) else {
        return Err(OllamaError::not_found(&name));
    };
    let texts: Vec<String> = match body.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
        }
        _ => return Err(OllamaError::bad("input is a string or a non-empty list of strings")),
    };
    if texts.len() > 2048 || texts.iter().any(|t| t.chars().count() > 100_000) {
        return Err(OllamaError::bad("at most 2048 inputs of at most 100000 characters each"));
    }
    let start = std::time::Instant::now();
    let (vectors, tokens) = crate::openai::embed_paid(&app, embedder, texts, member.as_deref()).await?;
    Ok(Json(json!({
        "model": id,
        "embeddings": vectors,
        "total_duration": start.elapsed().as_nanos() as u64,
        "load_duration": 0,
        "prompt_eval_count": tokens,
    }))
    .into_response())
}

/// A generation request read and checked: the model, the prompt's tokens, how to sample.
struct Asked {
    id: String,
    model: Arc<Llama>,
    prompt: Vec<u32>,
    sampling: Sampling,
    stops: Vec<String>,
    stream: bool,
}

fn asked(
    (id, llama): (String, Arc<substrate_models::Llama>),
    body: &serde_json::Map<String, Value>,
    chat: bool,
    grounding: Option<&str>,
) -> Result<Asked, OllamaError> {
    let llama = &llama;
    let text = if chat {
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| OllamaError::bad("messages is a non-empty list of {role, content}"))?;
        let mut parsed = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let role =
                m.get("role").and_then(Value::as_str).filter(|r| ["system", "user", "assistant"].contains(r));
            let content = m.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(role), Some(content)) => parsed.push(Message::new(role, content)),
                _ => {
                    return Err(OllamaError::bad(format!(
                        "message {i} needs a role (system, user or assistant) and content"
                    )));
                }
            }
        }
        if let Some(grounding) = grounding {
            match parsed.first_mut().filter(|m| m.role == "system") {
                Some(system) => system.content = format!("{}\n\n{grounding}", system.content),
                None => parsed.insert(0, Message::new("system", grounding)),
            }
        }
        substrate_models::apply_chat_template(llama, &parsed).map_err(|e| OllamaError::bad(e.to_string()))?
    } else {
        let prompt = body
            .get("prompt")
            .and_then(Value::as_str)
            .ok_or_else(|| OllamaError::bad("prompt is a string"))?;
        let raw = body.get("raw").and_then(Value::as_bool).unwrap_or(false);
        if raw {
            prompt.to_owned()
        } else {
            let mut messages = Vec::new();
            if let Some(system) = body.get("system").and_then(Value::as_str) {
                messages.push(Message::new("system", system));
            }
            messages.push(Message::new("user", prompt));
            substrate_models::apply_chat_template(llama, &messages)
                .map_err(|e| OllamaError::bad(e.to_string()))?
        }
    };
    let prompt = llama.tokenizer.encode_prompt(&text).map_err(|e| OllamaError::bad(e.to_string()))?;
    let context = llama.config.context;
    if prompt.len() >= context {
        return Err(OllamaError::bad(format!(
            "the prompt is {} tokens and {id}'s context is {context}",
            prompt.len()
        )));
    }
    let empty = serde_json::Map::new();
    let options = match body.get("options") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => return Err(OllamaError::bad("options is an object")),
    };
    let number = |key: &str, range: std::ops::RangeInclusive<f64>, default: f64| match options.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_f64().filter(|x| range.contains(x)).ok_or_else(|| {
            OllamaError::bad(format!("options.{key} is a number from {} to {}", range.start(), range.end()))
        }),
    };
    let room = context - prompt.len();
    let max_tokens = match options.get("num_predict").and_then(Value::as_i64) {
        None => room.min(1024),
        Some(n) if n < 0 => room,
        Some(0) => {
            return Err(OllamaError::bad(
                "options.num_predict is at least 1, or negative for as many as fit",
            ));
        }
        Some(n) => (n as usize).min(room),
    };
    let stops: Vec<String> = match options.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty())) => {
            items.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()
        }
        _ => return Err(OllamaError::bad("options.stop is a list of non-empty strings")),
    };
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(true);
    Ok(Asked {
        id: id.clone(),
        model: Arc::clone(llama),
        prompt,
        sampling: Sampling {
            temperature: number("temperature", 0.0..=2.0, 0.8)?,
            top_p: number("top_p", 0.0..=1.0, 0.9)?,
            seed: options.get("seed").and_then(Value::as_i64).map_or(0, |s| s as u64),
            max_tokens,
            ignore_eos: false,
        },
        stops,
        stream,
    })
}

pub async fn chat(
    State(app): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    // A verified member's signed request may be answered from `commons` texts too.
    let (body, member) = asked_by(&app, &method, &uri, &headers, body)?;
    let grounding = crate::search::grounding_of(&app, &body, member.is_some())
        .await
        .map_err(|e| OllamaError::bad(e.message()))?;
    generate_for(app, body, true, grounding, member).await
}

pub async fn generate(
    State(app): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let (body, member) = asked_by(&app, &method, &uri, &headers, body)?;
    generate_for(app, body, false, None, member).await
}

/// The request's JSON body and the verified member asking (signed, or by API token), if any;
/// refused as the API refuses.
fn asked_by(
    app: &AppState,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(serde_json::Map<String, Value>, Option<String>), OllamaError> {
    let bytes =
        body.map_err(|r| OllamaError { status: r.status(), message: r.body_text(), retry_after: None })?;
    let member = crate::signatures::member(app, method, uri, headers, &bytes).map_err(|e| OllamaError {
        status: e.status,
        message: e.detail,
        retry_after: None,
    })?;
    Ok((body_of(Ok(bytes))?, member))
}

async fn generate_for(
    app: AppState,
    body: serde_json::Map<String, Value>,
    chat: bool,
    grounding: Option<crate::search::Grounding>,
    member: Option<String>,
) -> Answer {
    let name = name_of(&body)?;
    let inference = Arc::clone(served(&app).ok_or_else(|| OllamaError::not_found(&name))?);
    let system = grounding.as_ref().map(|g| g.system.as_str());
    // The base model, or an adapter of the registry named as `adapter-N`.
    let resolved = {
        let (inference, reader, asked_for) = (Arc::clone(&inference), app.reader.clone(), name.clone());
        tokio::task::spawn_blocking(move || inference.resolve(&asked_for, &reader))
            .await
            .map_err(|e| OllamaError::failed(e.to_string()))?
            .map_err(|e| match e.status {
                StatusCode::NOT_FOUND => OllamaError {
                    status: e.status,
                    message: format!("model '{name}' not found ({})", e.message),
                    retry_after: None,
                },
                _ => OllamaError::from(e),
            })?
    };
    let Asked { id, model, prompt, mut sampling, stops, stream } = asked(resolved, &body, chat, system)?;
    let citations = grounding.map(|g| g.citations);
    let chosen = body.get("options").and_then(|o| o.get("num_predict")).is_some_and(|n| !n.is_null());
    let asking = crate::metering::Asking {
        fixed: prompt.len() as u64,
        up_to: sampling.max_tokens as u64,
        may_shorten: !chosen,
    };
    let (charge, up_to) = crate::openai::admit(&app, member.as_deref(), asking)?;
    sampling.max_tokens = up_to as usize;
    let permit = slot(&inference).await?;
    let rx = spawn_generation(model, prompt, sampling, stops, permit, charge)
        .map_err(|e| OllamaError::failed(e.to_string()))?;
    let lines = Lines {
        rx,
        chat,
        model: id,
        started: std::time::Instant::now(),
        done: false,
        text: String::new(),
        stream,
        citations,
    };
    if stream {
        let mut response = Response::new(Body::new(lines));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        return Ok(response);
    }
    // Not streaming: the same lines, gathered into the last one.
    let mut lines = lines;
    while let Some(piece) = lines.rx.recv().await {
        match piece {
            Piece::Text(t) => lines.text.push_str(&t),
            Piece::Failed(e) => {
                return Err(OllamaError::failed(format!("the model failed: {e}")));
            }
            end @ Piece::End { .. } => {
                let text = std::mem::take(&mut lines.text);
                return Ok(Json(lines.last(&end, &text)).into_response());
            }
        }
    }
    Err(OllamaError::failed("the generation ended without an answer".into()))
}

/// The NDJSON stream of a generation: a line per piece of text, then the closing line with the
/// counts and timings.
struct Lines {
    rx: tokio::sync::mpsc::Receiver<Piece>,
    chat: bool,
    model: String,
    started: std::time::Instant,
    done: bool,
    /// The text so far, when not streaming or when it must be searched for citation marks.
    text: String,
    stream: bool,
    /// The passages the answer was grounded in, given in the closing line.
    citations: Option<Vec<Value>>,
}

impl Lines {
    fn line(&self, text: &str, done: bool) -> Value {
        let mut line = json!({"model": self.model, "created_at": now_rfc3339(), "done": done});
        if self.chat {
            line["message"] = json!({"role": "assistant", "content": text});
        } else {
            line["response"] = json!(text);
        }
        line
    }

    fn last(&mut self, end: &Piece, text: &str) -> Value {
        let mut line = self.line(text, true);
        if let Some(citations) = self.citations.take() {
            let answer = if self.stream { std::mem::take(&mut self.text) } else { text.to_owned() };
            line["citations"] = Value::Array(crate::openai::referenced(citations, &answer));
        }
        if let Piece::End { finish, prompt_tokens, completion_tokens, prompt_time, decode_time } = end {
            line["done_reason"] = json!(finish);
            line["total_duration"] = json!(self.started.elapsed().as_nanos() as u64);
            line["load_duration"] = json!(0);
            line["prompt_eval_count"] = json!(prompt_tokens);
            line["prompt_eval_duration"] = json!(prompt_time.as_nanos() as u64);
            line["eval_count"] = json!(completion_tokens);
            line["eval_duration"] = json!(decode_time.as_nanos() as u64);
        }
        line
    }
}

impl http_body::Body for Lines {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        debug_assert!(self.stream);
        if self.done {
            return Poll::Ready(None);
        }
        let line = match self.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Piece::Text(text))) => {
                if self.citations.is_some() {
                    self.text.push_str(&text);
                }
                self.line(&text, false)
            }
            Poll::Ready(Some(end @ Piece::End { .. })) => {
                self.done = true;
                self.last(&end, "")
            }
            Poll::Ready(Some(Piece::Failed(error))) => {
                self.done = true;
                json!({"error": format!("the model failed: {error}")})
            }
            Poll::Ready(None) => {
                self.done = true;
                return Poll::Ready(None);
            }
        };
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(format!("{line}\n"))))))
    }
}
