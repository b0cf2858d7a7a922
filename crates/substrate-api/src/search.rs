//! `GET /v1/search`: the commons' own texts that answer a query, hybrid (BM25 and vectors fused
//! by reciprocal rank) or either alone, filtered by register, language and depositor. `public`
//! texts are found by anyone, `commons` texts by a verified member whose request is signed
//! (RFC 9421, see `signatures`); `training-only` and `local` texts are never indexed. And the grounding of a chat request's `retrieval`: the
//! passages found, the system message that puts them before the model, and the citations.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::json;
use substrate_search::{Filters, MOST_HITS, Mode};

use crate::ApiError;
use crate::routes::AppState;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: String,
    register: Option<String>,
    language: Option<String>,
    depositor: Option<String>,
    /// hybrid (default), bm25 or vector.
    mode: Option<String>,
    limit: Option<usize>,
}

pub async fn search(
    State(app): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    Query(query): Query<SearchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // A verified member's signed request finds `commons` texts too.
    let member = crate::signatures::member(&app, &method, &uri, &headers, &[])?;
    let Some(index) = app.search.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "search_off",
            "this node keeps no search index; start it with `substrate serve --search`",
        ));
    };
    if query.q.trim().is_empty() || query.q.chars().count() > 1000 {
        return Err(ApiError::bad_request("bad_query", "q is the text to search for, 1 to 1000 characters"));
    }
    let limit = query.limit.unwrap_or(10);
    if !(1..=MOST_HITS).contains(&limit) {
        return Err(ApiError::bad_request("bad_query", format!("limit runs from 1 to {MOST_HITS}")));
    }
    let default_mode = if index.has_vectors() { "hybrid" } else { "bm25" };
    let mode_name = query.mode.clone().unwrap_or_else(|| default_mode.to_owned());
    let mode = Mode::parse(&mode_name).ok_or_else(|| {
        ApiError::bad_request("bad_query", format!("mode '{mode_name}' is hybrid, bm25 or vector"))
    })?;
    if mode != Mode::Bm25 && !index.has_vectors() {
        return Err(ApiError::bad_request(
            "bad_query",
            "this node has no embedding model for its index: search with mode=bm25, or serve one with --embedding-model",
        ));
    }
    let filters = Filters {
        register: query.register.clone(),
        language: query.language.clone(),
        depositor: query.depositor.clone(),
        include_commons: member.is_some(),
    };
    let (hits, indexed) = find(&app, index, &query.q, filters, mode, limit).await?;
    let hits: Vec<serde_json::Value> = hits
        .into_iter()
        .map(|hit| {
            let mut found = record_fields(&hit.deposit);
            found["score"] = json!(hit.score);
            found["ranks"] = json!({"bm25": hit.bm25_rank, "vector": hit.vector_rank});
            found["snippet"] = json!(hit.snippet);
            found
        })
        .collect();
    Ok(Json(json!({"query": query.q, "mode": mode_name, "indexed": indexed, "member": member, "hits": hits})))
}

/// Searches `index` off the async workers: the hits, and how many texts the index holds.
pub(crate) async fn find(
    app: &AppState,
    index: std::sync::Arc<substrate_search::SearchIndex>,
    text: &str,
    filters: Filters,
    mode: Mode,
    limit: usize,
) -> Result<(Vec<substrate_search::Hit>, u64), ApiError> {
    let reader = app.reader.clone();
    let text = text.to_owned();
    let (hits, indexed) = tokio::task::spawn_blocking(move || {
        let hits = index.search(&text, &filters, mode, limit, &reader);
        (hits, index.indexed())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "search_failed", e.to_string()))?;
    let hits =
        hits.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "search_failed", e.to_string()))?;
    Ok((hits, indexed))
}

/// Bytes of a deposit's text put before the model as one passage, at most.
const PASSAGE_BYTES: usize = 600;
/// Most passages one answer may draw on.
pub(crate) const MOST_PASSAGES: usize = 8;

/// What a chat request's `retrieval` field asks for: `true`, or `{k, register, language, mode}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retrieval {
    k: Option<usize>,
    register: Option<String>,
    language: Option<String>,
    mode: Option<String>,
}

impl Retrieval {
    /// Reads the field; `Err` says what is wrong with it.
    pub(crate) fn parse(value: &serde_json::Value) -> Result<Option<Retrieval>, String> {
        match value {
            serde_json::Value::Null | serde_json::Value::Bool(false) => Ok(None),
            serde_json::Value::Bool(true) => Ok(Some(Retrieval::default())),
            object @ serde_json::Value::Object(_) => {
                let retrieval: Retrieval = serde_json::from_value(object.clone())
                    .map_err(|e| format!("retrieval is true or {{k, register, language, mode}}: {e}"))?;
                if retrieval.k.is_some_and(|k| !(1..=MOST_PASSAGES).contains(&k)) {
                    return Err(format!("retrieval.k runs from 1 to {MOST_PASSAGES}"));
                }
                Ok(Some(retrieval))
            }
            _ => Err("retrieval is true or {k, register, language, mode}".to_owned()),
        }
    }
}

/// The passages an answer is grounded in: the system message that puts them before the model,
/// and the citations the response carries.
pub(crate) struct Grounding {
    pub(crate) system: String,
    pub(crate) citations: Vec<serde_json::Value>,
}

/// Why a chat request's `retrieval` could not be met.
pub(crate) enum GroundingError {
    /// The field itself is wrong.
    Invalid(String),
    /// There is no user message to search for.
    NoQuestion(String),
    /// The node cannot search as asked.
    Unavailable(String),
}

impl GroundingError {
    pub(crate) fn message(self) -> String {
        match self {
            GroundingError::Invalid(m) | GroundingError::NoQuestion(m) | GroundingError::Unavailable(m) => m,
        }
    }
}

/// The grounding a chat request's `retrieval` field asks for, searched for its last user
/// message; `None` when it asks for none.
pub(crate) async fn grounding_of(
    app: &AppState,
    body: &serde_json::Map<String, serde_json::Value>,
    member: bool,
) -> Result<Option<Grounding>, GroundingError> {
    let Some(value) = body.get("retrieval") else { return Ok(None) };
    let Some(retrieval) = Retrieval::parse(value).map_err(GroundingError::Invalid)? else { return Ok(None) };
    let question = crate::openai::last_user_text(body).ok_or_else(|| {
        GroundingError::NoQuestion(
            "retrieval searches for the last user message's text, and there is none".into(),
        )
    })?;
    ground(app, &question, retrieval, member).await.map(Some).map_err(GroundingError::Unavailable)
}

/// The fields of a deposit's record that a hit or a citation names.
fn record_fields(d: &substrate_core::state::DepositRecord) -> serde_json::Value {
    json!({
        "cid": d.cid.to_string(),
        "handle": d.handle,
        "title": d.title,
        "depositor": d.depositor,
        "register": d.register,
        "language": d.language,
        "license": d.license,
        "consent": d.consent,
    })
}

/// Searches the commons for `query` and takes a passage of each text found: the window of the
/// text around the words that matched (its beginning when only the meaning did).
pub(crate) async fn ground(
    app: &AppState,
    query: &str,
    retrieval: Retrieval,
    member: bool,
) -> Result<Grounding, String> {
    let Some(index) = app.search.clone() else {
        return Err(
            "this node keeps no search index to retrieve from; start it with `substrate serve --search`"
                .into(),
        );
    };
    let default_mode = if index.has_vectors() { Mode::Hybrid } else { Mode::Bm25 };
    let mode = match retrieval.mode.as_deref() {
        None => default_mode,
        Some(name) => {
            Mode::parse(name).ok_or_else(|| format!("retrieval.mode '{name}' is hybrid, bm25 or vector"))?
        }
    };
    if mode != Mode::Bm25 && !index.has_vectors() {
        return Err("this node's index has no vectors: ask for retrieval.mode bm25".into());
    }
    let filters = Filters {
        register: retrieval.register,
        language: retrieval.language,
        depositor: None,
        include_commons: member,
    };
    let k = retrieval.k.unwrap_or(3);
    let reader = app.reader.clone();
    let query = query.to_owned();
    let found =
        tokio::task::spawn_blocking(move || -> Result<Vec<(substrate_search::Hit, String)>, String> {
            let hits = index.search(&query, &filters, mode, k, &reader).map_err(|e| e.to_string())?;
            let mut with_text = Vec::with_capacity(hits.len());
            for hit in hits {
                if let Ok(Some(bytes)) = reader.content(&hit.deposit.cid) {
                    with_text.push((hit, String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
            Ok(with_text)
        })
        .await
        .map_err(|e| e.to_string())??;
    let mut system = String::from(
        "Answer from the passages of the commons below. After each sentence that uses a passage, cite it by its number in brackets, like [1]. If the passages do not answer the question, say so.\n",
    );
    let mut citations = Vec::with_capacity(found.len());
    for (n, (hit, text)) in found.into_iter().enumerate() {
        let (start, end) = passage(&text, &hit.snippet, PASSAGE_BYTES);
        let quote = &text[start..end];
        let d = &hit.deposit;
        system.push_str(&format!("\n[{}] \"{}\" ({}): {}\n", n + 1, d.title, d.register, quote.trim()));
        let mut citation = record_fields(d);
        citation["index"] = json!(n + 1);
        citation["span"] = json!({"start": start, "end": end});
        citation["quote"] = json!(quote);
        citations.push(citation);
    }
    Ok(Grounding { system, citations })
}

/// The byte range of at most `width` bytes of `text` around `snippet` (the start of the text if
/// the snippet is not found in it), on character boundaries and, where it can, on word ones.
pub(crate) fn passage(text: &str, snippet: &str, width: usize) -> (usize, usize) {
    if text.len() <= width {
        return (0, text.len());
    }
    let found = (!snippet.is_empty()).then(|| text.find(snippet.trim())).flatten();
    let centre = found.map_or(0, |at| at + snippet.trim().len() / 2);
    let mut start = centre.saturating_sub(width / 2).min(text.len() - width);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + width).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // Whole words: past a partial first word, before a partial last one.
    if start > 0
        && let Some(space) = text[start..end].find(char::is_whitespace)
    {
        start += space + 1;
    }
    if end < text.len()
        && let Some(space) = text[start..end].rfind(char::is_whitespace)
        && space > 0
    {
        end = start + space;
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::passage;

    #[test]
    fn a_passage_is_the_window_around_the_snippet_in_whole_words() {
        let text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu";
        assert_eq!(passage(text, "anything", 100), (0, text.len()));
        let (start, end) = passage(text, "eta theta", 20);
        let window = &text[start..end];
        assert!(window.contains("eta theta"), "{window}");
        assert!(window.len() <= 20, "{window}");
        assert!(!window.starts_with(' ') && !window.ends_with(' '), "{window:?}");
        let (start, _) = passage(text, "not in it", 20);
        assert_eq!(start, 0);
        let accents = "é".repeat(50);
        let (start, end) = passage(&accents, "", 21);
        assert!(accents.is_char_boundary(start) && accents.is_char_boundary(end));
    }
}
