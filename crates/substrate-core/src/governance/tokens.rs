//! API tokens: a member mints a bearer token for the tools that cannot sign a request (an OpenAI
//! or Ollama client, a script) and revokes it when they like. The log holds only the token's
//! sha256, never the token: whoever holds the token is answered as the member who minted it,
//! while that member is verified, until the token expires or is revoked.

use crate::governance::book::Record;
use crate::state::{Change, Rejection, State};

/// What a token looks like: this prefix, then 43 characters of base64url (32 random bytes).
pub const TOKEN_PREFIX: &str = "sub_";
/// Most tokens one member holds at once (neither expired nor revoked).
pub const MAX_LIVE_TOKENS: usize = 32;
/// Longest a token may live: a year.
pub const MAX_TOKEN_LIFETIME_MS: u64 = 366 * 24 * 3600 * 1000;
/// Longest label, in characters.
pub const MAX_LABEL: usize = 100;

/// A member mints a token: signed by the member, naming the token by its sha256.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenGrant {
    /// sha256 (lowercase hex) of the token's text.
    pub token: String,
    /// What the member calls it ("laptop", "the choir's chatbot").
    pub label: String,
    /// When it stops working (RFC 3339); at most a year after the entry.
    pub expires: String,
    pub requested: String,
}

/// A token is revoked: by the member who minted it, or by a steward.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRevocation {
    /// sha256 (lowercase hex) of the token's text.
    pub token: String,
    pub requested: String,
}

/// A token as the state holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// sha256 (lowercase hex) of the token's text.
    pub token: String,
    pub member: String,
    pub label: String,
    /// The entry that minted it, and its time (ms).
    pub log_index: u64,
    pub at: u64,
    pub expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

impl TokenRecord {
    /// Whether the token is answered at `at` (its member's standing is checked apart).
    pub fn live(&self, at: u64) -> bool {
        self.revoked_at.is_none() && at < self.expires_at
    }
}

/// Why a token event is refused; each is its own API error code ([`TokenFault::code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenFault {
    #[error("token: {0}")]
    Field(String),
    #[error("a token with this sha256 was minted already (entry {0}); mint a new one")]
    Taken(u64),
    #[error(
        "{member} holds {MAX_LIVE_TOKENS} live tokens already; revoke one (`substrate token revoke`) before minting another"
    )]
    TooMany { member: String },
    #[error("no token has the sha256 {0}")]
    Unknown(String),
    #[error("the token was minted by {member}; only they or a steward revoke it")]
    NotYours { member: String },
    #[error("the token was revoked at entry time {0} already")]
    Revoked(u64),
}

impl TokenFault {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            TokenFault::Field(_) => "token_field",
            TokenFault::Taken(_) => "token_taken",
            TokenFault::TooMany { .. } => "token_limit",
            TokenFault::Unknown(_) => "unknown_token",
            TokenFault::NotYours { .. } => "token_not_yours",
            TokenFault::Revoked(_) => "token_revoked_already",
        }
    }

    /// How the refusal reads over HTTP.
    pub fn status(&self) -> u16 {
        match self {
            TokenFault::Field(_) => 400,
            TokenFault::Unknown(_) => 404,
            TokenFault::NotYours { .. } => 403,
            TokenFault::Taken(_) | TokenFault::TooMany { .. } | TokenFault::Revoked(_) => 409,
        }
    }
}

/// The sha256 (lowercase hex) a token is known by in the log.
pub fn token_digest(token: &str) -> String {
    hex::encode(crate::sha256(token.as_bytes()))
}

/// Whether `text` has the shape of a token (it may still be unknown).
pub fn looks_like_token(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Stateless checks of a grant's fields.
pub(crate) fn validate_grant(g: &TokenGrant) -> Result<(), String> {
    if !is_sha256(&g.token) {
        return Err("name the token by the sha256 of its text, in lowercase hex (64 characters)".into());
    }
    let label = g.label.trim();
    if label.is_empty() || g.label.chars().count() > MAX_LABEL {
        return Err(format!("the label has 1 to {MAX_LABEL} characters"));
    }
    crate::timestamp::parse_rfc3339(&g.expires)
        .ok_or_else(|| format!("expires '{}' is not an RFC 3339 time", g.expires))?;
    Ok(())
}

pub(crate) fn validate_revocation(r: &TokenRevocation) -> Result<(), String> {
    if !is_sha256(&r.token) {
        return Err("name the token by the sha256 of its text, in lowercase hex (64 characters)".into());
    }
    Ok(())
}

impl crate::governance::book::Governance {
    /// The token known by `digest` (the sha256 of its text).
    pub fn token(&self, digest: &str) -> Option<&TokenRecord> {
        self.tokens.get(digest)
    }

    /// Every token `member` minted, live or not.
    pub fn tokens_of<'a>(&'a self, member: &'a str) -> impl Iterator<Item = &'a TokenRecord> + 'a {
        self.tokens.values().filter(move |t| t.member == member)
    }
}

impl State {
    pub(crate) fn mint_token(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        g: &TokenGrant,
    ) -> Result<Vec<Change>, Rejection> {
        self.require_member(signer, time)?;
        let refuse = |f| Err(Rejection::Token(f));
        validate_grant(g).map_err(|e| Rejection::Token(TokenFault::Field(e)))?;
        let expires_at = crate::timestamp::parse_rfc3339(&g.expires).unwrap_or_default();
        if expires_at <= time || expires_at - time > MAX_TOKEN_LIFETIME_MS {
            return refuse(TokenFault::Field(format!(
                "expires {} is not within a year after this entry ({})",
                g.expires,
                crate::timestamp::rfc3339(time)
            )));
        }
        let governance = &self.governance;
        if let Some(taken) = governance.token(&g.token) {
            return refuse(TokenFault::Taken(taken.log_index));
        }
        if governance.tokens_of(signer).filter(|t| t.live(time)).count() >= MAX_LIVE_TOKENS {
            return refuse(TokenFault::TooMany { member: signer.to_owned() });
        }
        Ok(vec![Change::Record(Record::Token(TokenRecord {
            token: g.token.clone(),
            member: signer.to_owned(),
            label: g.label.trim().to_owned(),
            log_index: index,
            at: time,
            expires_at,
            revoked_at: None,
        }))])
    }

    pub(crate) fn revoke_token(
        &self,
        time: u64,
        signer: &str,
        r: &TokenRevocation,
    ) -> Result<Vec<Change>, Rejection> {
        let refuse = |f| Err(Rejection::Token(f));
        validate_revocation(r).map_err(|e| Rejection::Token(TokenFault::Field(e)))?;
        let Some(token) = self.governance.token(&r.token) else {
            return refuse(TokenFault::Unknown(r.token.clone()));
        };
        if token.member != signer && !self.governance.is_steward(signer) {
            return refuse(TokenFault::NotYours { member: token.member.clone() });
        }
        if let Some(at) = token.revoked_at {
            return refuse(TokenFault::Revoked(at));
        }
        let mut revoked = token.clone();
        revoked.revoked_at = Some(time);
        Ok(vec![Change::Record(Record::Token(revoked))])
    }
}
