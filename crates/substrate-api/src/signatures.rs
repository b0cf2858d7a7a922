//! Who is asking: HTTP Message Signatures (RFC 9421) with Ed25519, the key named by its did:key
//! in `keyid`, or an API token a member minted in the log (`Authorization: Bearer sub_…`). A
//! request that carries neither is anonymous; one that carries a signature is answered only if
//! the signature holds, and then as its signer; one that carries a token only while the token is
//! live, and then as the member who minted it.
//!
//! The signature must cover `@method`, the target (`@target-uri`, or `@path` with `@query` when
//! there is a query), `@authority`, and `content-digest` (RFC 9530, checked against the body) when
//! there is a body; it must carry `created`, no more than five minutes from the node's clock
//! either way, and may carry `expires`. Covered header fields are taken as they came, their lines
//! joined with `, `; component parameters (`;sf`, `;key`, `;bs`, `;req`) are refused. A request
//! that changes or spends (any method but GET and HEAD) is accepted once per signature: a replay
//! within the window is refused, so its signer signs each anew (the node's client adds a `nonce`).

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use ed25519_dalek::Signature;
use sfv::{BareItem, Dictionary, FieldType, InnerList, List, ListEntry, Parser};
use sha2::Digest;

use substrate_core::governance::tokens::{TOKEN_PREFIX, looks_like_token, token_digest};

use crate::ApiError;

/// How far `created` may be from the node's clock, in seconds.
const SKEW: i64 = 300;

/// A refusal of a signature: 401, with what was wrong.
fn refused(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", detail)
}

/// The signer of the request, if it is signed; an error if it is signed and the signature does
/// not hold for this request, now.
pub fn signer(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now_seconds: i64,
) -> Result<Option<String>, ApiError> {
    Ok(signed(method, uri, headers, body, now_seconds)?.map(|s| s.did))
}

/// A signature that holds: who signed, the signature's bytes and its `created`.
struct Signed {
    did: String,
    signature: [u8; 64],
    created: i64,
}

fn signed(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now_seconds: i64,
) -> Result<Option<Signed>, ApiError> {
    let (Some(input), Some(signature)) = (field(headers, "signature-input"), field(headers, "signature"))
    else {
        if headers.contains_key("signature") || headers.contains_key("signature-input") {
            return Err(refused("a signed request carries both Signature-Input and Signature (RFC 9421)"));
        }
        return Ok(None);
    };
    let inputs: Dictionary = Parser::new(&input)
        .parse()
        .map_err(|e| refused(format!("Signature-Input is not a structured-field dictionary: {e}")))?;
    let signatures: Dictionary = Parser::new(&signature)
        .parse()
        .map_err(|e| refused(format!("Signature is not a structured-field dictionary: {e}")))?;
    // The first label both carry; others are for someone else.
    let Some((label, ListEntry::InnerList(covered))) =
        inputs.iter().find(|(label, _)| signatures.contains_key(*label))
    else {
        return Err(refused("no label of Signature-Input has its signature in Signature, as an inner list"));
    };
    let Some(ListEntry::Item(signature)) = signatures.get(label) else {
        return Err(refused(format!("the signature {} is not an item", label.as_str())));
    };
    let Some(signature) = signature.bare_item.as_byte_sequence() else {
        return Err(refused(format!("the signature {} is not a byte sequence (:base64:)", label.as_str())));
    };
    let param = |name: &str| covered.params.iter().find(|(k, _)| k.as_str() == name).map(|(_, v)| v);
    let keyid = match param("keyid").and_then(BareItem::as_string) {
        Some(keyid) => keyid.as_str().to_owned(),
        None => {
            return Err(refused(
                "the signature's keyid is missing: give your did:key as keyid=\"did:key:…\"",
            ));
        }
    };
    if let Some(alg) = param("alg")
        && alg.as_string().map(|s| s.as_str()) != Some("ed25519")
    {
        return Err(refused("alg must be \"ed25519\" (the only algorithm a did:key here names)"));
    }
    let created = param("created")
        .and_then(BareItem::as_integer)
        .map(i64::from)
        .ok_or_else(|| refused("the signature needs created=<unix seconds>"))?;
    if (created - now_seconds).abs() > SKEW {
        return Err(refused(format!(
            "created={created} is more than {SKEW} s from the node's clock ({now_seconds}): sign again now"
        )));
    }
    if let Some(expires) = param("expires") {
        let expires =
            expires.as_integer().map(i64::from).ok_or_else(|| refused("expires is unix seconds"))?;
        if expires <= now_seconds {
            return Err(refused(format!("the signature expired at {expires}; sign again")));
        }
    }
    let key = substrate_core::identity::key_of(&keyid)
        .map_err(|e| refused(format!("keyid {keyid} is not an Ed25519 did:key: {e}")))?;

    // The components, each as RFC 9421 §2 derives it.
    let mut base = String::new();
    let mut names = Vec::new();
    for item in &covered.items {
        let Some(name) = item.bare_item.as_string().map(|s| s.as_str().to_owned()) else {
            return Err(refused("a covered component is a quoted string, e.g. \"@method\""));
        };
        if !item.params.is_empty() {
            return Err(refused(format!("the component {name} has parameters; none are supported here")));
        }
        let value = component(&name, method, uri, headers)?;
        base.push_str(&format!("\"{name}\": {value}\n"));
        names.push(name);
    }
    let covers = |name: &str| names.iter().any(|n| n == name);
    let target = covers("@target-uri") || (covers("@path") && (uri.query().is_none() || covers("@query")));
    if !covers("@method") || !target || !(covers("@authority") || covers("@target-uri")) {
        return Err(refused(
            "the signature must cover \"@method\", \"@authority\" and the target: \"@target-uri\", or \"@path\" and \"@query\"",
        ));
    }
    if !body.is_empty() {
        if !covers("content-digest") {
            return Err(refused("a request with a body must cover content-digest (RFC 9530)"));
        }
        digest_holds(headers, body)?;
    }
    let params = List::from([ListEntry::InnerList(InnerList {
        items: covered.items.clone(),
        params: covered.params.clone(),
    })])
    .serialize()
    .ok_or_else(|| refused("the signature parameters cannot be serialized"))?;
    base.push_str(&format!("\"@signature-params\": {params}"));
    let signature =
        Signature::from_slice(signature).map_err(|_| refused("an Ed25519 signature is 64 bytes"))?;
    key.verify_strict(base.as_bytes(), &signature).map_err(|_| {
        refused(format!(
            "the signature does not verify with {keyid}'s key over this request (the signature base covers {})",
            names.join(" ")
        ))
    })?;
    Ok(Some(Signed { did: keyid, signature: signature.to_bytes(), created }))
}

/// The signatures of requests that change or spend, each kept until its `created` is out of the
/// window (after which it is refused as stale anyway): a request with one of them again is a
/// replay. Reads (GET, HEAD) may be repeated.
#[derive(Default)]
struct Replays {
    seen: std::collections::HashMap<[u8; 64], i64>,
    by_expiry: std::collections::BTreeSet<(i64, [u8; 64])>,
}

/// Signatures kept at most: at a thousand signed writes a second over the ten-minute window, a
/// sixth of this; past it, signed writes wait (503) until the oldest leave the window.
const MAX_REPLAYS: usize = 1_000_000;

static REPLAYS: std::sync::Mutex<Option<Replays>> = std::sync::Mutex::new(None);

/// Records `signed` as used, or says when it was used before.
fn first_use(signed: &Signed, now_seconds: i64) -> Result<(), ApiError> {
    let mut guard = REPLAYS.lock().unwrap_or_else(|p| p.into_inner());
    let replays = guard.get_or_insert_with(Replays::default);
    while let Some(&(expiry, signature)) = replays.by_expiry.first() {
        if expiry >= now_seconds {
            break;
        }
        replays.by_expiry.pop_first();
        replays.seen.remove(&signature);
    }
    if let Some(created) = replays.seen.get(&signed.signature) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "replayed_signature",
            format!(
                "this signature (created={created}) was used already: a signed request that changes or spends is accepted once; sign each one anew, with a nonce parameter when two identical requests fall in one second"
            ),
        ));
    }
    if replays.seen.len() >= MAX_REPLAYS {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this node holds as many recent signatures as it keeps; retry in a minute",
        ));
    }
    let expiry = signed.created + SKEW;
    replays.seen.insert(signed.signature, signed.created);
    replays.by_expiry.insert((expiry, signed.signature));
    Ok(())
}

/// A header field's lines, joined as RFC 9110 combines them.
fn field(headers: &HeaderMap, name: &str) -> Option<String> {
    let lines: Vec<&str> =
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::trim).collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

fn component(name: &str, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<String, ApiError> {
    let authority = || {
        uri.authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| field(headers, "host"))
            .map(|a| a.to_ascii_lowercase())
            .ok_or_else(|| refused("the request names no authority (Host)"))
    };
    let path = if uri.path().is_empty() { "/" } else { uri.path() };
    let query = uri.query().map_or_else(|| "?".to_owned(), |q| format!("?{q}"));
    Ok(match name {
        "@method" => method.as_str().to_owned(),
        "@authority" => authority()?,
        "@scheme" => "http".to_owned(),
        "@path" => path.to_owned(),
        "@query" => query,
        "@request-target" => uri.path_and_query().map_or_else(|| path.to_owned(), |p| p.as_str().to_owned()),
        "@target-uri" => {
            format!("http://{}{}", authority()?, uri.path_and_query().map_or(path, |p| p.as_str()))
        }
        derived if derived.starts_with('@') => {
            return Err(refused(format!("the component {derived} is not supported here")));
        }
        header => field(headers, header).ok_or_else(|| {
            refused(format!("the signature covers {header}, which the request does not carry"))
        })?,
    })
}

/// The body's Content-Digest (sha-256 or sha-512) matches it.
fn digest_holds(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let value = field(headers, "content-digest").ok_or_else(|| refused("Content-Digest is missing"))?;
    let digests: Dictionary = Parser::new(&value)
        .parse()
        .map_err(|e| refused(format!("Content-Digest is not a dictionary: {e}")))?;
    let mut checked = false;
    for (algorithm, entry) in &digests {
        let ListEntry::Item(item) = entry else { continue };
        let Some(stated) = item.bare_item.as_byte_sequence() else { continue };
        let actual = match algorithm.as_str() {
            "sha-256" => sha2::Sha256::digest(body).to_vec(),
            "sha-512" => sha2::Sha512::digest(body).to_vec(),
            _ => continue,
        };
        if actual != stated {
            return Err(refused(format!(
                "Content-Digest {} does not match the body (its digest is :{}:)",
                algorithm.as_str(),
                base64::engine::general_purpose::STANDARD.encode(&actual)
            )));
        }
        checked = true;
    }
    if !checked {
        return Err(refused("Content-Digest names neither sha-256 nor sha-512"));
    }
    Ok(())
}

/// The headers that sign a request as `key`, covering its method, authority, path, query and
/// (with a body) its Content-Digest: what the node's own client sends.
pub fn sign(
    key: &ed25519_dalek::SigningKey,
    method: &str,
    authority: &str,
    path_and_query: &str,
    body: &[u8],
    created: i64,
) -> Vec<(&'static str, String)> {
    use ed25519_dalek::Signer;
    let did = substrate_core::identity::did_of(&key.verifying_key());
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, format!("?{query}")),
        None => (path_and_query, "?".to_owned()),
    };
    let mut headers = Vec::new();
    let mut base = format!(
        "\"@method\": {method}\n\"@authority\": {}\n\"@path\": {path}\n\"@query\": {query}\n",
        authority.to_ascii_lowercase()
    );
    let mut covered = String::from("\"@method\" \"@authority\" \"@path\" \"@query\"");
    if !body.is_empty() {
        let digest = format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body))
        );
        base.push_str(&format!("\"content-digest\": {digest}\n"));
        covered.push_str(" \"content-digest\"");
        headers.push(("Content-Digest", digest));
    }
    // A nonce makes two identical requests in one second two signatures (a write's signature is
    // accepted once).
    let nonce = {
        let mut bytes = [0u8; 12];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        hex::encode(bytes)
    };
    let params = format!("({covered});created={created};keyid=\"{did}\";alg=\"ed25519\";nonce=\"{nonce}\"");
    base.push_str(&format!("\"@signature-params\": {params}"));
    let signature = key.sign(base.as_bytes());
    headers.push(("Signature-Input", format!("sig1={params}")));
    headers.push((
        "Signature",
        format!("sig1=:{}:", base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())),
    ));
    headers
}

/// The API token a request carries as `Authorization: Bearer sub_…`, if any. A bearer value of
/// another shape is not ours (an OpenAI client must send some key): the request is anonymous.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && token.starts_with(TOKEN_PREFIX)).then_some(token)
}

/// The member an API token stands for now, or why it is refused: 401 `bad_token` (malformed or
/// unknown), `token_revoked`, `token_expired`. Nothing of the token is echoed back.
fn token_member(
    governance: &substrate_core::governance::book::Governance,
    token: &str,
    now_ms: u64,
) -> Result<String, ApiError> {
    let unauthorized =
        |code: &'static str, detail: String| ApiError::new(StatusCode::UNAUTHORIZED, code, detail);
    if !looks_like_token(token) {
        return Err(unauthorized(
            "bad_token",
            format!(
                "the bearer token is not a token of this commons ({TOKEN_PREFIX} and 43 characters); mint one with `substrate token new`"
            ),
        ));
    }
    let digest = token_digest(token);
    let Some(record) = governance.token(&digest) else {
        return Err(unauthorized(
            "bad_token",
            "this commons knows no such token; mint one with `substrate token new`".into(),
        ));
    };
    if let Some(at) = record.revoked_at {
        return Err(unauthorized(
            "token_revoked",
            format!(
                "the token '{}' was revoked at {}; mint another with `substrate token new`",
                record.label,
                substrate_core::timestamp::rfc3339(at)
            ),
        ));
    }
    if now_ms >= record.expires_at {
        return Err(unauthorized(
            "token_expired",
            format!(
                "the token '{}' expired at {}; mint another with `substrate token new`",
                record.label,
                substrate_core::timestamp::rfc3339(record.expires_at)
            ),
        ));
    }
    Ok(record.member.clone())
}

/// The verified member who signed the request or whose API token it carries, `None` if it
/// carries neither; refused (401) if the signature does not hold or the token is unknown,
/// revoked or expired, (403) if the member is not a verified member now.
pub(crate) fn member(
    app: &crate::routes::AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let signed = signed(method, uri, headers, body, now.as_secs() as i64)?;
    let token = bearer_token(headers);
    if signed.is_none() && token.is_none() {
        return Ok(None);
    }
    let governance = app.reader.governance().map_err(|e| ApiError::internal(&e))?;
    let did = match (&signed, token) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "two_credentials",
                "the request carries both a signature and an API token; send one of them, so that it is \
                 plain whose request it is",
            ));
        }
        (Some(signed), None) => signed.did.clone(),
        (None, Some(token)) => token_member(&governance, token, now.as_millis() as u64)?,
        (None, None) => return Ok(None),
    };
    if !governance.is_verified(&did, now.as_millis() as u64) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_member",
            format!(
                "{did} signed this request but is not a verified member of this commons; a steward attests members (`substrate member attest`)"
            ),
        ));
    }
    if let Some(signed) = &signed
        && !matches!(*method, Method::GET | Method::HEAD)
    {
        first_use(signed, now.as_secs() as i64)?;
    }
    Ok(Some(did))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, Method, Uri};

    use super::{sign, signer};

    fn request(headers: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static("127.0.0.1:7878"));
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn a_signed_request_names_its_signer_and_any_change_breaks_it() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let did = substrate_core::identity::did_of(&key.verifying_key());
        let uri: Uri = "/v1/search?q=river".parse().expect("uri");
        let headers = request(&sign(&key, "GET", "127.0.0.1:7878", "/v1/search?q=river", b"", 1000));
        assert_eq!(signer(&Method::GET, &uri, &headers, b"", 1000).expect("holds"), Some(did.clone()));
        // Unsigned: anonymous.
        assert_eq!(signer(&Method::GET, &uri, &request(&[]), b"", 1000).expect("anonymous"), None);
        // Another query, method, host, time or body: refused, saying why.
        let other: Uri = "/v1/search?q=sea".parse().expect("uri");
        assert!(signer(&Method::GET, &other, &headers, b"", 1000).is_err());
        assert!(signer(&Method::POST, &uri, &headers, b"", 1000).is_err());
        let stale = signer(&Method::GET, &uri, &headers, b"", 2000).expect_err("stale");
        assert!(stale.detail.contains("sign again"), "{}", stale.detail);
        let body = b"{\"a\":1}";
        let posted = request(&sign(&key, "POST", "127.0.0.1:7878", "/v1/search?q=river", body, 1000));
        assert_eq!(signer(&Method::POST, &uri, &posted, body, 1000).expect("holds"), Some(did));
        let tampered = signer(&Method::POST, &uri, &posted, b"{\"a\":2}", 1000).expect_err("digest");
        assert!(tampered.detail.contains("Content-Digest"), "{}", tampered.detail);
        // A body the signature does not cover is refused.
        assert!(signer(&Method::GET, &uri, &headers, body, 1000).is_err());
    }
}
