//! A small blocking HTTP client for the node's API that turns `{error, detail}` answers into
//! readable errors.

use anyhow::{Context, anyhow};
use serde_json::Value;

#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// Signs every request with this key (RFC 9421), so that the node answers as to its member.
    key: Option<ed25519_dalek::SigningKey>,
}

/// A successful answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_str(&self.body).context("the node's answer is not the JSON expected")
    }
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(60))
            .build();
        Client { base: base.trim_end_matches('/').to_owned(), agent, key: None }
    }

    /// A client whose requests are signed by `key`: a verified member's reads `commons` texts.
    pub fn signed(base: &str, key: ed25519_dalek::SigningKey) -> Client {
        Client { key: Some(key), ..Client::new(base) }
    }

    /// `request` with the signature headers of `key`, if the client has one.
    fn sign(&self, mut request: ureq::Request, method: &str, path: &str, body: &[u8]) -> ureq::Request {
        let Some(key) = &self.key else { return request };
        let rest = self.base.split_once("://").map_or(self.base.as_str(), |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or(rest);
        let authority = authority.strip_suffix(":80").unwrap_or(authority);
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for (name, value) in substrate_api::signatures::sign(key, method, authority, path, body, created) {
            request = request.set(name, &value);
        }
        request
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.answer(self.sign(self.agent.get(&self.url(path)), "GET", path, b"").call())
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        let bytes = serde_json::to_vec(body)?;
        let request = self.sign(self.agent.post(&self.url(path)), "POST", path, &bytes);
        self.answer(request.set("Content-Type", "application/json").send_bytes(&bytes))
    }

    /// POSTs `body` and hands back the answer's body to read as it comes (a stream of events);
    /// a refusal is an error as with [`Client::post`].
    pub fn post_streaming(&self, path: &str, body: &Value) -> anyhow::Result<Box<dyn std::io::Read + Send>> {
        let bytes = serde_json::to_vec(body)?;
        let request = self.sign(self.agent.post(&self.url(path)), "POST", path, &bytes);
        match request.set("Content-Type", "application/json").send_bytes(&bytes) {
            Ok(response) => Ok(response.into_reader()),
            Err(e) => Err(self.answer(Err(e)).err().unwrap_or_else(|| anyhow!("the node refused"))),
        }
    }

    /// Sends `bytes` as the body of a PUT.
    pub fn put_bytes(&self, path: &str, bytes: &[u8]) -> anyhow::Result<Answer> {
        self.answer(
            self.agent.put(&self.url(path)).set("Content-Type", "application/octet-stream").send_bytes(bytes),
        )
    }

    /// GETs a body that may not be text.
    pub fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        match self.sign(self.agent.get(&self.url(path)), "GET", path, b"").call() {
            Ok(response) => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)
                    .context("reading the node's answer")?;
                Ok(bytes)
            }
            Err(e) => self.answer(Err(e)).map(|a| a.body.into_bytes()),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn answer(&self, result: Result<ureq::Response, ureq::Error>) -> anyhow::Result<Answer> {
        match result {
            Ok(response) => {
                let status = response.status();
                let body = response.into_string().context("reading the node's answer")?;
                Ok(Answer { status, body })
            }
            Err(ureq::Error::Status(status, response)) => {
                let body = response.into_string().unwrap_or_default();
                let parsed: Option<Value> = serde_json::from_str(&body).ok();
                match parsed
                    .as_ref()
                    .and_then(|v| Some((v.get("error")?.as_str()?, v.get("detail")?.as_str()?)))
                {
                    Some((code, detail)) => Err(anyhow!("the node refused ({status} {code}): {detail}")),
                    None => Err(anyhow!("the node answered {status}: {body}")),
                }
            }
            Err(ureq::Error::Transport(transport)) => Err(anyhow!(
                "cannot reach the node at {}: {transport} (is `substrate serve` running? set --node or SUBSTRATE_NODE)",
                self.base
            )),
        }
    }
}

/// Percent-encodes one path segment (handles carry ':' and '/').
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
