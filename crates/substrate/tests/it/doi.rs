//! DOIs through DataCite's REST API: the real endpoint is out of reach here, so a stand-in on
//! 127.0.0.1 answers as DataCite does and checks every request it gets (Basic credentials, the
//! JSON:API media type, a `dois` document with the commons' prefix, the publish event, the
//! landing page and the deposit's metadata). The log records only the DOI the stand-in's answer
//! gave; bad credentials, a second DOI and a non-steward are refused before anything is recorded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{Value, json};

use crate::util::{Daemon, command, ok, ok_stdin, path};

const REPOSITORY: &str = "SUBSTRATE.TEST";
const PASSWORD: &str = "correct horse battery staple";
const PREFIX: &str = "10.5072";

/// A key made by `substrate id new` in `dir`: its file and did.
fn person(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(format!("{name}.json"));
    let (did, _) = ok(&["id", "new", "--key", path(&file)]);
    (file, did.trim().to_owned())
}

/// What the stand-in was sent: each request's path, headers (lower-cased names) and JSON body.
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>, Value)>>>;

/// A stand-in for DataCite's `POST /dois`: 401 for other credentials, 422 for a document without
/// the fields DataCite requires, else 201 with the next DOI under the prefix.
fn datacite() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            reader.read_line(&mut line).expect("request line");
            let target = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let mut headers = Vec::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).expect("header");
                let Some((name, value)) = header.trim_end().split_once(": ") else { break };
                headers.push((name.to_ascii_lowercase(), value.to_owned()));
            }
            let length =
                headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok());
            let mut body = vec![0; length.unwrap_or(0)];
            reader.read_exact(&mut body).expect("body");
            let document: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{REPOSITORY}:{PASSWORD}"))
            );
            let attributes = &document["data"]["attributes"];
            let (status, answer) = if header("authorization") != Some(expected) {
                (401, json!({"errors": [{"status": "401", "title": "Bad credentials."}]}))
            } else if target != "/dois"
                || header("content-type").as_deref() != Some("application/vnd.api+json")
                || document["data"]["type"] != "dois"
                || attributes["prefix"] != PREFIX
                || attributes.get("doi").is_some()
                || attributes["titles"][0]["title"].as_str().is_none_or(str::is_empty)
                || attributes["creators"][0]["name"].as_str().is_none_or(str::is_empty)
                || attributes["publisher"]["name"].as_str().is_none()
                || attributes["types"]["resourceTypeGeneral"] != "Text"
                || !attributes["url"].as_str().is_some_and(|u| u.starts_with("http"))
            {
                (422, json!({"errors": [{"source": "metadata", "title": "Is invalid"}]}))
            } else {
                let doi = format!("{PREFIX}/sub-{n:04}");
                (
                    201,
                    json!({"data": {"id": doi, "type": "dois", "attributes": {"doi": doi, "state": attributes["event"]}}}),
                )
            };
            log.lock().expect("log").push((target, headers, document));
            let body = answer.to_string();
            let reason = match status {
                201 => "Created",
                401 => "Unauthorized",
                _ => "Unprocessable Entity",
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/vnd.api+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

/// `substrate doi …` with the DataCite settings in the environment, and `password`.
fn doi(args: &[&str], api: &str, password: &str) -> Output {
    let mut cmd = command(args);
    cmd.env("DATACITE_API", api)
        .env("DATACITE_REPOSITORY", REPOSITORY)
        .env("DATACITE_PREFIX", PREFIX)
        .env("DATACITE_PASSWORD", password);
    cmd.output().expect("run substrate doi")
}

#[test]
fn a_steward_registers_a_doi_with_datacite_and_the_log_records_what_datacite_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (steward, steward_did) = person(dir.path(), "steward");
    let (member, member_did) = person(dir.path(), "member");
    let data = dir.path().join("data");
    ok(&["init", "--data-dir", path(&data), "--name", "DOI Commons", "--steward", &steward_did]);
    let node = Daemon::start(&data, dir.path());
    let http = node.http();
    ok(&["member", "attest", &member_did, "--days", "30", "--key", path(&steward), "--node", &node.url]);
    let deposit = |title: &str, text: &str| {
        let receipt = dir.path().join(format!("{title}.receipt.json"));
        let args = [
            "deposit",
            "--register",
            "oral",
            "--consent",
            "public",
            "--title",
            title,
            "--lang",
            "en",
            "--license",
            "CC-BY-4.0",
            "--receipt",
            path(&receipt),
            "--key",
            path(&member),
            "--node",
            &node.url,
        ];
        let (out, _) = ok_stdin(&args, Some(text.as_bytes()));
        crate::util::field(&out, "cid:")
    };
    let cid = deposit("The water song", "We sing to the river at dawn.");
    let other = deposit("The bread song", "We knead and we sing.");
    let (api, seen) = datacite();
    let register = |cid: &str, key: &Path, password: &str| {
        doi(&["doi", "register", cid, "--key", path(key), "--node", &node.url], &api, password)
    };

    // Wrong credentials: DataCite's refusal, said plainly; nothing in the log.
    let refused = register(&cid, &steward, "wrong");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("refused the credentials") && said.contains("DATACITE_PASSWORD"), "{said}");
    assert!(http.get(&format!("/v1/deposits/{cid}")).json()["doi"].is_null());

    // A member who is not a steward is stopped before DataCite hears of it.
    let before = seen.lock().expect("seen").len();
    let refused = register(&cid, &member, PASSWORD);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a steward"), "{refused:?}");
    assert_eq!(seen.lock().expect("seen").len(), before);

    // The steward: registered with the deposit's metadata, and the DOI DataCite gave recorded.
    let registered = register(&cid, &steward, PASSWORD);
    assert!(registered.status.success(), "{}", String::from_utf8_lossy(&registered.stderr));
    let given = String::from_utf8_lossy(&registered.stdout).trim().to_owned();
    assert!(given.starts_with("10.5072/sub-"), "{given}");
    {
        let seen = seen.lock().expect("seen");
        let (target, _, document) = seen.last().expect("a request");
        assert_eq!(target, "/dois");
        let attributes = &document["data"]["attributes"];
        assert_eq!(attributes["titles"][0]["title"], "The water song", "{document}");
        assert_eq!(attributes["event"], "publish", "{document}");
        assert_eq!(attributes["url"], format!("{}/deposits/{cid}", node.url), "{document}");
        assert!(attributes.get("state").is_none(), "{document}");
    }
    let shown = http.get(&format!("/v1/deposits/{cid}")).json();
    assert_eq!(shown["doi"]["doi"], given.as_str(), "{shown}");
    assert_eq!(shown["doi"]["steward"], steward_did.as_str(), "{shown}");
    assert_eq!(shown["receipt"]["doi"], given.as_str(), "{shown}");
    assert_eq!(http.get(&format!("/v1/deposits/{cid}/receipt")).json()["doi"], given.as_str());
    let exported = http.get(&format!("/v1/deposits/{cid}/datacite")).json();
    assert_eq!(exported["data"]["attributes"]["doi"], given.as_str(), "{exported}");
    assert_eq!(exported["data"]["attributes"]["identifiers"][0]["identifierType"], "DOI", "{exported}");
    let (show, _) = ok(&["show", &cid, "--node", &node.url]);
    assert!(show.contains(&given), "{show}");

    // One DOI a deposit: a second registration stops before DataCite.
    let before = seen.lock().expect("seen").len();
    let again = register(&cid, &steward, PASSWORD);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has the DOI"), "{again:?}");
    assert_eq!(seen.lock().expect("seen").len(), before);
    // A DOI names one deposit; a member cannot record one; a non-DOI is refused.
    let record = |cid: &str, doi_text: &str, key: &Path| {
        doi(&["doi", "record", cid, doi_text, "--key", path(key), "--node", &node.url], &api, PASSWORD)
    };
    let taken = record(&other, &given.to_uppercase(), &steward);
    assert!(String::from_utf8_lossy(&taken.stderr).contains("doi_in_use"), "{taken:?}");
    let not_steward = record(&other, "10.5072/by-hand", &member);
    assert!(String::from_utf8_lossy(&not_steward.stderr).contains("not_steward"), "{not_steward:?}");
    let not_doi = record(&other, "doi:10.5072/x", &steward);
    assert!(String::from_utf8_lossy(&not_doi.stderr).contains("not a DOI"), "{not_doi:?}");
    let by_hand = record(&other, "10.5072/by-hand", &steward);
    assert!(by_hand.status.success(), "{by_hand:?}");
    assert_eq!(http.get(&format!("/v1/deposits/{other}")).json()["doi"]["doi"], "10.5072/by-hand");

    node.stop();
    let replay = crate::util::run(&["ledger", "replay", "--check", "--data-dir", path(&data)], None);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
}
