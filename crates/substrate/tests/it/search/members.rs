//! Who is asking and what they find: a verified member's signed request (RFC 9421) finds and
//! reads `commons` texts, a signature that does not hold or a non-member is refused saying why,
//! and a ruling that relabels a text refiles it in the index.

use std::path::{Path, PathBuf};

use serde_json::Value;
use substrate_core::ConsentTier;

use super::{Text, cids, deposit, found, hits, no_models, search, until_caught_up, until_found};
use crate::util::{Daemon, fails, new_key, ok, path};

/// A key made by `substrate id new` in `dir`: its file and did.
fn person(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(format!("{name}.json"));
    let (did, _) = ok(&["id", "new", "--key", path(&file)]);
    (file, did.trim().to_owned())
}

#[test]
fn a_members_signed_request_finds_commons_texts_and_nothing_else_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (steward, steward_did) = person(dir.path(), "steward");
    let (member, member_did) = person(dir.path(), "member");
    let (outsider, _) = person(dir.path(), "outsider");
    let data = dir.path().join("data");
    ok(&["init", "--data-dir", path(&data), "--name", "Search Members", "--steward", &steward_did]);
    let node = Daemon::start_with(
        &data,
        dir.path(),
        &["--search", "--serve-models-dir", path(&no_models(dir.path()))],
    );
    let http = node.http();
    let out =
        ok(&["member", "attest", &member_did, "--days", "30", "--key", path(&steward), "--node", &node.url])
            .0;
    assert!(out.contains("verified"), "{out}");

    let key = new_key();
    let public = deposit(&http, &key, &Text::public("Open", "the heron at the ford"));
    let commons = deposit(
        &http,
        &key,
        &Text { consent: ConsentTier::Commons, ..Text::public("Kept", "the heron song of the members") },
    );
    let hidden = Text {
        consent: ConsentTier::TrainingOnly,
        ..Text::public("Hidden", "the heron of the training set")
    };
    deposit(&http, &key, &hidden);
    until_caught_up(&http);

    // Anonymous: the public text only.
    assert_eq!(found(&search(&http, &[("q", "heron")])), cids([&public]));
    // The member, signing with the CLI: the commons text too, never the training-only one.
    let as_member = |who: &Path, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--member", "--key", path(who), "--node", &node.url]);
        all.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>()
    };
    let args = as_member(&member, &["search", "heron", "--json"]);
    let (out, _) = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let answer: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(found(&answer), cids([&public, &commons]), "{answer}");
    assert_eq!(answer["member"], member_did.as_str(), "{answer}");
    // An outsider's signature holds but names no member: refused, not quietly anonymous.
    let args = as_member(&outsider, &["search", "heron"]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("not_member") && err.contains("member attest"), "{err}");

    // The member reads the commons text itself; anyone else is told who may.
    let route = format!("/v1/deposits/{commons}/content");
    let detail = http.get(&route).error(403, "consent");
    assert!(detail.contains("signed"), "{detail}");
    let signing = substrate_core::identity::KeyFile::parse(&std::fs::read_to_string(&member).expect("key"))
        .expect("key file")
        .1;
    let addr = node.url.strip_prefix("http://").expect("http");
    let signed = |method: &str, route: &str, body: &[u8], created: i64| {
        substrate_api::signatures::sign(&signing, method, addr, route, body, created)
    };
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let read = signed("GET", &route, b"", now);
    let reply = raw(&node.url, "GET", &route, &read, b"");
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(reply.1, "the heron song of the members");
    // A read may be repeated with the same signature.
    let reply = raw(&node.url, "GET", &route, &read, b"");
    assert_eq!(reply.0, 200, "{}", reply.1);

    // Signatures that do not hold are refused with what was wrong.
    let search_route = "/v1/search?q=heron";
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        // Signed for another query.
        (signed("GET", "/v1/search?q=song", b"", now), "does not verify"),
        // Too old.
        (signed("GET", search_route, b"", now - 3600), "sign again"),
        // Half a signature.
        (
            signed("GET", search_route, b"", now).into_iter().filter(|(n, _)| *n == "Signature").collect(),
            "both",
        ),
    ];
    for (headers, says) in cases {
        let reply = raw(&node.url, "GET", search_route, &headers, b"");
        assert_eq!(reply.0, 401, "{}", reply.1);
        let body: Value = serde_json::from_str(&reply.1).expect("json");
        assert_eq!(body["error"], "bad_signature", "{body}");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains(says)), "{says}: {body}");
    }
    // A chat request with a body its digest does not match: 401 in the OpenAI shape.
    let body = br#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = raw(
        &node.url,
        "POST",
        "/v1/chat/completions",
        &signed("POST", "/v1/chat/completions", b"{}", now),
        body,
    );
    assert_eq!(reply.0, 401, "{}", reply.1);
    let error: Value = serde_json::from_str(&reply.1).expect("json");
    assert_eq!(error["error"]["code"], "bad_signature", "{error}");
    assert_eq!(error["error"]["type"], "authentication_error", "{error}");

    // A write's signature is accepted once: the same signed chat request again is a replay.
    let chat = "/v1/chat/completions";
    let once = signed("POST", chat, body, now);
    let first = raw(&node.url, "POST", chat, &once, body);
    assert_ne!(first.0, 401, "{}", first.1);
    let again = raw(&node.url, "POST", chat, &once, body);
    assert_eq!(again.0, 401, "{}", again.1);
    let error: Value = serde_json::from_str(&again.1).expect("json");
    assert_eq!(error["error"]["code"], "replayed_signature", "{error}");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("sign each one anew")), "{error}");
    // Signed anew in the same second (the client's nonce tells the two apart), it is accepted.
    let fresh = raw(&node.url, "POST", chat, &signed("POST", chat, body, now), body);
    assert_ne!(fresh.0, 401, "{}", fresh.1);
}

/// A raw HTTP/1.1 request with `headers`; its status and body.
fn raw(base: &str, method: &str, route: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.strip_prefix("http://").expect("http base");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "{method} {route} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn a_relabelled_text_is_found_under_its_new_register() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (steward, steward_did) = person(dir.path(), "steward");
    let (member, member_did) = person(dir.path(), "member");
    let data = dir.path().join("data");
    ok(&["init", "--data-dir", path(&data), "--name", "Search Relabel", "--steward", &steward_did]);
    let node = Daemon::start_with(
        &data,
        dir.path(),
        &["--search", "--serve-models-dir", path(&no_models(dir.path()))],
    );
    let http = node.http();
    ok(&["member", "attest", &member_did, "--days", "30", "--key", path(&steward), "--node", &node.url]);
    let cid = deposit(
        &http,
        &new_key(),
        &Text::public("Harbour", "told at the harbour: the sea keeps what it takes"),
    );
    let narrative = [("q", "harbour"), ("register", "narrative")];
    let oral = [("q", "harbour"), ("register", "oral")];
    until_found(&http, &narrative, &cids([&cid]));

    let cid_text = cid.to_string();
    let (out, _) = ok(&[
        "dispute",
        "open",
        &cid_text,
        "--ground",
        "wrong-register",
        "--detail",
        "an oral telling",
        "--register",
        "oral",
        "--key",
        path(&member),
        "--node",
        &node.url,
    ]);
    let dispute = out.split_whitespace().nth(1).expect("dispute id").to_owned();
    let (out, _) = ok(&[
        "dispute",
        "rule",
        &dispute,
        "--ruling",
        "relabel:oral",
        "--key",
        path(&steward),
        "--node",
        &node.url,
    ]);
    assert!(out.contains("ruled"), "{out}");
    // Filed under its new register once the index reads the ruling; never under the old one since.
    let answer = until_found(&http, &oral, &cids([&cid]));
    assert_eq!(hits(&answer)[0]["register"], "oral", "{answer}");
    assert!(found(&search(&http, &narrative)).is_empty());
}

#[test]
fn an_api_token_reads_as_its_member_until_it_is_revoked_or_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (steward, steward_did) = person(dir.path(), "steward");
    let (member, member_did) = person(dir.path(), "member");
    let (outsider, _) = person(dir.path(), "outsider");
    let data = dir.path().join("data");
    ok(&["init", "--data-dir", path(&data), "--name", "Search Tokens", "--steward", &steward_did]);
    let node = Daemon::start_with(
        &data,
        dir.path(),
        &["--search", "--serve-models-dir", path(&no_models(dir.path()))],
    );
    let http = node.http();
    ok(&["member", "attest", &member_did, "--days", "30", "--key", path(&steward), "--node", &node.url]);
    let key = new_key();
    let public = deposit(&http, &key, &Text::public("Open", "the otter at the weir"));
    let commons = deposit(
        &http,
        &key,
        &Text { consent: ConsentTier::Commons, ..Text::public("Kept", "the otter song of the members") },
    );
    until_caught_up(&http);

    // Minted by the CLI: printed once, only its digest in the log.
    let (token, said) = ok(&[
        "token",
        "new",
        "--label",
        "the choir's laptop",
        "--expires",
        "2d",
        "--key",
        path(&member),
        "--node",
        &node.url,
    ]);
    let token = token.trim().to_owned();
    assert!(token.starts_with("sub_") && token.len() == 47, "{token}");
    assert!(said.contains("shown this once"), "{said}");
    let view = http.get(&format!("/v1/members/{}", crate::util::segment(&member_did))).json();
    let digest = substrate_core::governance::tokens::token_digest(&token);
    assert_eq!(view["tokens"][0]["token"], digest.as_str(), "{view}");
    assert_eq!(view["tokens"][0]["live"], true, "{view}");
    assert!(!view.to_string().contains(&token), "the state holds the token's text: {view}");
    let (list, _) = ok(&["token", "list", "--key", path(&member), "--node", &node.url]);
    assert!(list.contains("the choir's laptop") && list.contains("live until"), "{list}");

    let bearer = |token: &str| vec![("Authorization", format!("Bearer {token}"))];
    let search_route = "/v1/search?q=otter";
    let answer = |reply: (u16, String)| -> Value {
        assert_eq!(reply.0, 200, "{}", reply.1);
        serde_json::from_str(&reply.1).expect("json")
    };
    // The token finds and reads the commons text as its member.
    let found_by_token = answer(raw(&node.url, "GET", search_route, &bearer(&token), b""));
    assert_eq!(found(&found_by_token), cids([&public, &commons]), "{found_by_token}");
    assert_eq!(found_by_token["member"], member_did.as_str(), "{found_by_token}");
    let content = format!("/v1/deposits/{commons}/content");
    let read = raw(&node.url, "GET", &content, &bearer(&token), b"");
    assert_eq!(read, (200, "the otter song of the members".to_owned()));
    // A bearer value of another shape is some client's placeholder key: anonymous, public only.
    let anonymous = answer(raw(&node.url, "GET", search_route, &bearer("sk-no-key-needed"), b""));
    assert_eq!(found(&anonymous), cids([&public]), "{anonymous}");

    let refused = |reply: (u16, String), status: u16, code: &str, says: &str| {
        assert_eq!(reply.0, status, "{}", reply.1);
        let body: Value = serde_json::from_str(&reply.1).expect("json");
        assert_eq!(body["error"], code, "{body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{says}: {body}");
        assert!(!reply.1.contains("the otter song"), "the refusal leaks the text: {body}");
    };
    // A token this commons never minted, or a mangled one.
    let unknown = format!("sub_{}", "A".repeat(43));
    refused(
        raw(&node.url, "GET", search_route, &bearer(&unknown), b""),
        401,
        "bad_token",
        "knows no such token",
    );
    refused(
        raw(&node.url, "GET", &content, &bearer("sub_short"), b""),
        401,
        "bad_token",
        "substrate token new",
    );
    // Nobody but a member mints one.
    let err = fails(&["token", "new", "--label", "mine", "--key", path(&outsider), "--node", &node.url]);
    assert!(err.contains("not_member"), "{err}");
    let err = fails(&[
        "token",
        "new",
        "--label",
        "x",
        "--expires",
        "400d",
        "--key",
        path(&member),
        "--node",
        &node.url,
    ]);
    assert!(err.contains("365 days"), "{err}");

    // A token that expires: signed here with an expiry two seconds on.
    let signing = substrate_core::identity::KeyFile::parse(&std::fs::read_to_string(&member).expect("key"))
        .expect("key file")
        .1;
    let short = format!("sub_{}", "b".repeat(43));
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    let grant = substrate_core::event::Event::TokenGrant(substrate_core::governance::tokens::TokenGrant {
        token: substrate_core::governance::tokens::token_digest(&short),
        label: "two seconds".into(),
        expires: substrate_core::timestamp::rfc3339(now_ms + 2000),
        requested: substrate_core::timestamp::rfc3339(now_ms),
    });
    let signed = substrate_core::SignedEvent::sign(grant, &signing);
    let minted = http.post_json("/v1/events", &serde_json::json!({"envelope": signed.envelope}));
    assert_eq!(minted.status, 201, "{}", minted.body);
    answer(raw(&node.url, "GET", search_route, &bearer(&short), b""));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reply = raw(&node.url, "GET", search_route, &bearer(&short), b"");
        if reply.0 == 401 {
            refused(reply, 401, "token_expired", "two seconds");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the token never expired: {}", reply.1);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Revoked, it stops at once; a member whose verification is revoked is refused with it.
    // Given on stdin, the token stays out of the command line.
    let (out, _) = crate::util::ok_stdin(
        &["token", "revoke", "-", "--key", path(&member), "--node", &node.url],
        Some(format!("{token}\n").as_bytes()),
    );
    assert!(out.contains("revoked"), "{out}");
    let err = fails(&["token", "revoke", "not-a-token", "--key", path(&member), "--node", &node.url]);
    assert!(err.contains("neither a token") && !err.contains("not-a-token"), "{err}");
    refused(
        raw(&node.url, "GET", &content, &bearer(&token), b""),
        401,
        "token_revoked",
        "the choir's laptop",
    );
    let (second, _) = ok(&["token", "new", "--label", "second", "--key", path(&member), "--node", &node.url]);
    let second = second.trim().to_owned();
    answer(raw(&node.url, "GET", search_route, &bearer(&second), b""));
    ok(&[
        "member",
        "revoke",
        &member_did,
        "--reason",
        "left the choir",
        "--key",
        path(&steward),
        "--node",
        &node.url,
    ]);
    refused(
        raw(&node.url, "GET", search_route, &bearer(&second), b""),
        403,
        "not_member",
        "not a verified member",
    );
}
