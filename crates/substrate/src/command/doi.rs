//! `substrate doi register|record`: a deposit registered with DataCite under the commons'
//! repository account, through DataCite's REST API, and the DOI its answer gives recorded in the
//! log by a steward. The credentials never leave the steward's machine; the log never holds a
//! DOI that DataCite did not give.

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};
use substrate_core::SignedEvent;
use substrate_core::event::Event;
use substrate_core::governance::doi::{DoiRegistration, is_doi};

use crate::cli::DoiCommand;
use crate::client::{Client, segment};

/// DataCite's production REST API.
const DATACITE: &str = "https://api.datacite.org";

pub fn run(command: DoiCommand) -> anyhow::Result<()> {
    match command {
        DoiCommand::Register { cid, datacite, repository, prefix, url, registered_only, key, node } => {
            let (_, key) = crate::keys::load(&crate::keys::path(key.key.as_deref())?)?;
            let client = Client::new(&node.node);
            let setting = |given: Option<String>, variable: &str, flag: &str| {
                given
                    .or_else(|| std::env::var(variable).ok())
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| anyhow!("give the commons' DataCite {flag} (--{flag}, or ${variable})"))
            };
            let api = datacite
                .or_else(|| std::env::var("DATACITE_API").ok())
                .unwrap_or_else(|| DATACITE.to_owned());
            let repository = setting(repository, "DATACITE_REPOSITORY", "repository")?;
            let prefix = setting(prefix, "DATACITE_PREFIX", "prefix")?;
            let password = std::env::var("DATACITE_PASSWORD").ok().filter(|p| !p.is_empty()).ok_or_else(|| {
                anyhow!("set $DATACITE_PASSWORD to the repository's password (it is never taken on the command line)")
            })?;
            anyhow::ensure!(
                is_doi(&format!("{prefix}/x")),
                "--prefix {prefix} is not a DOI prefix (10.<registrant>, e.g. 10.5072)"
            );

            // Before anything goes to DataCite: the deposit stands, has no DOI, and you may record one.
            let shown: Value = client.get(&format!("/v1/deposits/{}", segment(&cid)))?.json()?;
            if let Some(doi) = shown["doi"]["doi"].as_str() {
                bail!("{cid} already has the DOI {doi}; a deposit has one DOI");
            }
            if shown["deposit"]["status"]["state"].as_str().is_some_and(|s| s != "active") {
                bail!("{cid} is withdrawn or removed; a DOI is registered for a deposit that stands");
            }
            let me = substrate_core::identity::did_of(&key.verifying_key());
            let governance: Value = client.get("/v1/governance")?.json()?;
            let stewards = governance["board"]["members"].as_array().cloned().unwrap_or_default();
            if !stewards.iter().any(|s| s.as_str() == Some(me.as_str())) {
                bail!(
                    "{me} is not a steward of this commons; a steward registers DOIs (`GET /v1/governance` names the board)"
                );
            }

            let mut document: Value =
                client.get(&format!("/v1/deposits/{}/datacite", segment(&cid)))?.json()?;
            let landing = url.unwrap_or_else(|| format!("{}/deposits/{}", client.base(), segment(&cid)));
            let attributes = document["data"]["attributes"]
                .as_object_mut()
                .ok_or_else(|| anyhow!("the node's DataCite document has no data.attributes"))?;
            attributes.remove("state");
            attributes.insert("prefix".into(), json!(prefix));
            attributes.insert("url".into(), json!(landing));
            attributes.insert("event".into(), json!(if registered_only { "register" } else { "publish" }));

            let endpoint = format!("{}/dois", api.trim_end_matches('/'));
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{repository}:{password}"));
            let answer = ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .post(&endpoint)
                .set("Authorization", &format!("Basic {basic}"))
                .set("Content-Type", "application/vnd.api+json")
                .set("Accept", "application/vnd.api+json")
                .send_bytes(&serde_json::to_vec(&document)?);
            let body: Value = match answer {
                Ok(response) => {
                    let text = response.into_string().context("reading DataCite's answer")?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("DataCite's answer is not JSON: {text}"))?
                }
                Err(ureq::Error::Status(status, response)) => {
                    let text = response.into_string().unwrap_or_default();
                    bail!("{}", datacite_refusal(status, &text, &repository));
                }
                Err(e) => bail!("DataCite at {endpoint} could not be reached: {e}"),
            };
            let doi = body["data"]["attributes"]["doi"]
                .as_str()
                .or_else(|| body["data"]["id"].as_str())
                .ok_or_else(|| anyhow!("DataCite's answer names no DOI (data.attributes.doi): {body}"))?
                .to_owned();
            anyhow::ensure!(
                is_doi(&doi)
                    && doi.to_ascii_lowercase().starts_with(&format!("{}/", prefix.to_ascii_lowercase())),
                "DataCite answered '{doi}', which is not a DOI under {prefix}; nothing is recorded"
            );
            println!("{doi}");
            eprintln!("DataCite registered {doi} for {cid} ({landing})");
            match record(&client, &key, &cid, &doi) {
                Ok(index) => {
                    eprintln!("recorded in the log at entry {index}");
                    Ok(())
                }
                Err(e) => Err(e.context(format!(
                    "DataCite holds {doi} but the log does not yet; record it with `substrate doi record {cid} {doi}`"
                ))),
            }
        }
        DoiCommand::Record { cid, doi, key, node } => {
            let (_, key) = crate::keys::load(&crate::keys::path(key.key.as_deref())?)?;
            let index = record(&Client::new(&node.node), &key, &cid, &doi)?;
            println!("{doi} recorded for {cid} at entry {index}");
            Ok(())
        }
    }
}

/// Signs and submits the registration of `doi` for `cid`; the entry's index.
fn record(client: &Client, key: &ed25519_dalek::SigningKey, cid: &str, doi: &str) -> anyhow::Result<u64> {
    let event = Event::DoiRegistration(DoiRegistration {
        cid: cid.to_owned(),
        doi: doi.to_owned(),
        registrar: "datacite".into(),
        requested: super::govern::requested(),
    });
    let receipt = super::deposit::submit_event(client, &SignedEvent::sign(event, key))?;
    Ok(receipt.log_index)
}

/// What DataCite's refusal means, and what to do.
fn datacite_refusal(status: u16, body: &str, repository: &str) -> String {
    let said: Vec<String> = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["errors"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let source = e["source"].as_str().map(|s| format!("{s}: ")).unwrap_or_default();
            format!("{source}{}", e["title"].as_str().unwrap_or("?"))
        })
        .collect();
    let said = if said.is_empty() { body.chars().take(300).collect() } else { said.join("; ") };
    match status {
        401 | 403 => format!(
            "DataCite refused the credentials of repository {repository} ({status}: {said}); check $DATACITE_PASSWORD and --repository"
        ),
        422 => format!("DataCite refused the metadata (422: {said}); nothing is recorded"),
        _ => format!("DataCite answered {status}: {said}; nothing is recorded"),
    }
}
