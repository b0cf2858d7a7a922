//! `substrate token new|revoke|list`: API tokens for the tools that cannot sign a request. The
//! token is made here from the operating system's randomness, printed once, and only its sha256
//! goes to the log.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use substrate_core::SignedEvent;
use substrate_core::event::Event;
use substrate_core::governance::tokens::{
    MAX_TOKEN_LIFETIME_MS, TOKEN_PREFIX, TokenGrant, TokenRevocation, looks_like_token, token_digest,
};

use crate::cli::TokenCommand;
use crate::client::Client;

pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::New { label, expires, key, node } => {
            let lifetime = lifetime_ms(&expires)?;
            let (_, key) = crate::keys::load(&crate::keys::path(key.key.as_deref())?)?;
            let mut bytes = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
            let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
            let expires = substrate_core::timestamp::rfc3339(super::now_ms() + lifetime);
            let grant = TokenGrant {
                token: token_digest(&token),
                label,
                expires: expires.clone(),
                requested: super::govern::requested(),
            };
            let digest = grant.token.clone();
            let signed = SignedEvent::sign(Event::TokenGrant(grant), &key);
            let receipt = super::deposit::submit_event(&Client::new(&node.node), &signed)?;
            println!("{token}");
            eprintln!(
                "token minted at entry {} (sha256 {digest}), until {expires}\n\
                 it is shown this once and stored nowhere: whoever holds it reads and spends as you \
                 while you are a verified member; send it as `Authorization: Bearer TOKEN` (the \
                 OpenAI and Ollama clients' api_key) and revoke it with `substrate token revoke`",
                receipt.log_index
            );
            Ok(())
        }
        TokenCommand::Revoke { token, key, node } => {
            // `-` reads the token from stdin, so that it stays out of the shell's history and `ps`.
            let token = if token == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("reading the token from stdin")?;
                text.trim().to_owned()
            } else {
                token
            };
            let digest = if looks_like_token(&token) {
                token_digest(&token)
            } else if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
                token.to_ascii_lowercase()
            } else {
                anyhow::bail!(
                    "that is neither a token ({TOKEN_PREFIX} and 43 characters) nor its sha256 (64 hex characters); `substrate token list` shows your tokens' sha256"
                )
            };
            let (_, key) = crate::keys::load(&crate::keys::path(key.key.as_deref())?)?;
            let revocation = TokenRevocation { token: digest.clone(), requested: super::govern::requested() };
            let signed = SignedEvent::sign(Event::TokenRevocation(revocation), &key);
            let receipt = super::deposit::submit_event(&Client::new(&node.node), &signed)?;
            println!("token {digest} revoked at entry {}", receipt.log_index);
            Ok(())
        }
        TokenCommand::List { member, key, node } => {
            let member = match member {
                Some(member) => member,
                None => {
                    let (_, key) = crate::keys::load(&crate::keys::path(key.key.as_deref())?)?;
                    substrate_core::identity::did_of(&key.verifying_key())
                }
            };
            let path = format!("/v1/members/{}", crate::client::segment(&member));
            let view: Value = Client::new(&node.node).get(&path)?.json()?;
            let tokens = view["tokens"].as_array().cloned().unwrap_or_default();
            println!("{} token(s) of {member}", tokens.len());
            for token in &tokens {
                let state = if token["revokedAt"].is_u64() {
                    "revoked".to_owned()
                } else if token["live"] == true {
                    format!(
                        "live until {}",
                        substrate_core::timestamp::rfc3339(token["expiresAt"].as_u64().unwrap_or(0))
                    )
                } else {
                    "expired".to_owned()
                };
                println!(
                    "  {}  {}  ({state}; minted at entry {})",
                    token["token"].as_str().unwrap_or_default(),
                    token["label"].as_str().unwrap_or_default(),
                    token["logIndex"]
                );
            }
            Ok(())
        }
    }
}

/// `90d` or `12h` in ms, at most the longest a token may live.
fn lifetime_ms(text: &str) -> anyhow::Result<u64> {
    let usage = || format!("--expires '{text}' is not a number of days (90d) or hours (12h)");
    let (number, unit) = text.trim().split_at(text.trim().len().saturating_sub(1));
    let count: u64 = number.parse().with_context(usage)?;
    let ms = match unit {
        "d" => count.saturating_mul(24 * 3600 * 1000),
        "h" => count.saturating_mul(3600 * 1000),
        _ => anyhow::bail!(usage()),
    };
    anyhow::ensure!(
        ms > 0 && ms <= MAX_TOKEN_LIFETIME_MS - 24 * 3600 * 1000,
        "--expires {text}: a token lives from an hour to 365 days"
    );
    Ok(ms)
}
