//! The web pages through the real binary: each page is HTML in the shared frame and shows what
//! the ledger holds, consent decides which texts a page shows, titles are escaped, unknown pages
//! are HTML while the API's errors stay JSON, and a proposal's page shows both chambers.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use serde_json::Value;
use substrate_core::event::{ConsentChange, Event, Withdrawal};
use substrate_core::{Cid, ConsentTier, SignedEvent};

use crate::util::{Commons, Daemon, Http, deposit_event, did, field, new_key, ok, path};

/// One answer, with the headers the pages are judged by.
struct Fetched {
    status: u16,
    content_type: String,
    cache_control: String,
    policy: String,
    location: String,
    body: String,
}

fn fetch(base: &str, target: &str) -> Fetched {
    fetch_with(base, "GET", target)
}

fn fetch_with(base: &str, method: &str, target: &str) -> Fetched {
    let agent = ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(30)).build();
    let response = match agent.request(method, &format!("{base}{target}")).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("GET {target}: {e}"),
    };
    let header = |name: &str| response.header(name).unwrap_or_default().to_owned();
    let (status, content_type, cache_control) =
        (response.status(), header("content-type"), header("cache-control"));
    let (policy, location) = (header("content-security-policy"), header("location"));
    let body = response.into_string().unwrap_or_else(|e| panic!("GET {target}: reading the body: {e}"));
    Fetched { status, content_type, cache_control, policy, location, body }
}

/// GETs a page; requires an HTML answer with `status` in the shared frame.
fn page(base: &str, target: &str, status: u16) -> String {
    let fetched = fetch(base, target);
    assert_eq!(fetched.status, status, "GET {target}: {}", fetched.body);
    assert_eq!(fetched.content_type, "text/html; charset=utf-8", "GET {target}");
    let body = fetched.body;
    for frame in [
        "<!DOCTYPE html><html lang=\"en\">",
        "<meta name=\"viewport\"",
        "<a class=\"skip\" href=\"#main\">",
        "<nav aria-label=\"Main\">",
        "<main id=\"main\"",
        "<script type=\"module\" src=\"/assets/app.js?v=",
    ] {
        assert!(body.contains(frame), "GET {target} lacks {frame}:\n{body}");
    }
    assert_eq!(body.matches("<h1").count(), 1, "GET {target} has one <h1>:\n{body}");
    body
}

/// Deposits `text` with `title` and `consent` through the API; its CID.
fn deposit(http: &Http, key: &SigningKey, text: &str, title: &str, consent: ConsentTier) -> String {
    let mut event = deposit_event(text.as_bytes(), "narrative", consent);
    if let Event::Deposit(deposit) = &mut event {
        deposit.title = title.to_owned();
    }
    let receipt = http.deposit(&SignedEvent::sign(event, key), text.as_bytes());
    receipt["cid"].as_str().expect("the receipt's cid").to_owned()
}

/// Polls `probe` until it holds, for at most 30 s.
fn until<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) => assert!(Instant::now() < deadline, "gave up waiting for {what}; last: {last}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const HOSTILE: &str = "<script>alert(1)</script>";
const PUBLIC_TEXT: &str = "Bread rises overnight while the kitchen sleeps.";
const COMMONS_TEXT: &str = "A members-only lullaby about the cold river.";
const TRAINING_TEXT: &str = "A training-only recipe that nobody is shown.";
const LOCAL_TEXT: &str = "A local note that never leaves its node.";

#[test]
fn pages_show_the_ledger_and_only_the_texts_consent_lets_anyone_read() {
    let commons = Commons::init("Kitchen Table");
    let daemon = commons.start();
    let http = daemon.http();
    let base = daemon.url.as_str();
    let key = new_key();
    let public = deposit(&http, &key, PUBLIC_TEXT, HOSTILE, ConsentTier::Public);
    let members_only = deposit(&http, &key, COMMONS_TEXT, "The river lullaby", ConsentTier::Commons);
    let training = deposit(&http, &key, TRAINING_TEXT, "The recipe", ConsentTier::TrainingOnly);
    let local = deposit(&http, &key, LOCAL_TEXT, "The local note", ConsentTier::Local);

    let mut pages = Vec::new();
    let home = page(base, "/", 200);
    assert!(home.contains("<h1>Kitchen Table</h1>"), "{home}");
    for words in
        ["training-only", "Used for governed training, never shown.", "Stays on the node", "narrative"]
    {
        assert!(home.contains(words), "the home page lacks {words:?}");
    }
    assert!(home.contains("<strong>4</strong> deposits"), "{home}");
    for cid in [&public, &members_only, &training, &local] {
        assert!(home.contains(&format!("/deposits/{cid}")), "{cid} is not among the recent deposits");
    }
    pages.push(home);

    let shown = page(base, &format!("/deposits/{public}"), 200);
    assert!(shown.contains(PUBLIC_TEXT), "a public text is shown on its page:\n{shown}");
    assert!(!shown.contains("data-act=\"member-read\""), "a public text needs no signed read:\n{shown}");
    assert!(shown.contains(&format!("/v1/deposits/{public}/receipt")), "the receipt's link:\n{shown}");
    assert!(shown.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the title, escaped:\n{shown}");
    pages.push(shown);

    let for_members = page(base, &format!("/deposits/{members_only}"), 200);
    assert!(for_members.contains("The river lullaby"), "{for_members}");
    assert!(for_members.contains("signed request"), "members read it with a signed request:\n{for_members}");
    pages.push(for_members);
    for (cid, title) in [(&training, "The recipe"), (&local, "The local note")] {
        let withheld = page(base, &format!("/deposits/{cid}"), 200);
        assert!(withheld.contains(title) && withheld.contains("never shown"), "{withheld}");
        pages.push(withheld);
    }

    let listed = page(base, "/deposits", 200);
    assert!(listed.contains("Search is off"), "a node without --search says so:\n{listed}");
    pages.push(listed);
    let filtered = page(base, "/deposits?consent=training-only", 200);
    assert!(filtered.contains(&training) && !filtered.contains(&public), "{filtered}");
    pages.push(page(base, &format!("/deposits?depositor={}", did(&key)), 200));
    let log = page(base, "/log", 200);
    assert!(log.contains("/v1/log/proofs/inclusion/1") && log.contains("deposit"), "{log}");
    pages.push(log);
    pages.push(page(base, &format!("/members/{}", did(&key)), 200));
    for target in [
        "/members",
        "/proposals",
        "/disputes",
        "/models",
        "/mesh",
        "/jobs",
        "/key",
        "/deposit",
        "/verify",
        "/propose",
        "/chat",
    ] {
        pages.push(page(base, target, 200));
    }
    // A node that serves no models says so on the chat page, and how to serve some.
    let chat = page(base, "/chat", 200);
    assert!(chat.contains("data-no-models") && chat.contains("substrate serve --serve-models"), "{chat}");
    let verify = page(base, "/verify", 200);
    pages.push(verify);

    for html in &pages {
        assert!(!html.contains(HOSTILE), "a title went out unescaped:\n{html}");
        for withheld in [COMMONS_TEXT, TRAINING_TEXT, LOCAL_TEXT] {
            assert!(!html.contains(withheld), "a text consent withholds was shown:\n{html}");
        }
    }
}

/// Signs `event` with `key` and posts it to `/v1/events`.
fn post_event(http: &Http, key: &SigningKey, event: Event) {
    let signed = SignedEvent::sign(event, key);
    let body = serde_json::json!({ "envelope": crate::util::envelope_json(&signed.envelope) });
    let reply = http.post_json("/v1/events", &body);
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[test]
fn a_deposits_page_follows_what_happened_to_it() {
    let commons = Commons::init("Changes");
    let daemon = commons.start();
    let http = daemon.http();
    let base = daemon.url.as_str();
    let key = new_key();
    let narrowed = deposit(&http, &key, "First it was for everyone.", "Narrowed later", ConsentTier::Public);
    let withdrawn = deposit(&http, &key, "Then it was taken back.", "Withdrawn later", ConsentTier::Public);
    let requested = "2026-01-02T00:00:00.000Z".to_owned();
    let cid = |text: &str| Some(Cid::parse(text).expect("a CID"));
    let consent = ConsentTier::Commons;
    let change = ConsentChange { cid: cid(&narrowed), consent, requested: requested.clone() };
    post_event(&http, &key, Event::ConsentChange(change));
    let withdrawal = Withdrawal { cid: cid(&withdrawn), reason: Some("changed my mind".into()), requested };
    post_event(&http, &key, Event::Withdrawal(withdrawal));

    let now_commons = page(base, &format!("/deposits/{narrowed}"), 200);
    assert!(!now_commons.contains("First it was for everyone."), "{now_commons}");
    assert!(
        now_commons.contains("consent-change at") && now_commons.contains("signed request"),
        "{now_commons}"
    );
    // A commons text offers the member's signed read; an active deposit offers a dispute.
    for act in ["data-act=\"member-read\"", "data-act=\"dispute\"", "value=\"wrong-register\""] {
        assert!(now_commons.contains(act), "{act}: {now_commons}");
    }
    let gone = page(base, &format!("/deposits/{withdrawn}"), 200);
    assert!(!gone.contains("Then it was taken back."), "{gone}");
    assert!(gone.contains("withdrawn (entry 4)") && gone.contains("tombstone"), "{gone}");
    assert!(!gone.contains("data-act=\"own-deposit\""), "a withdrawn deposit offers no withdrawal: {gone}");
    assert!(!gone.contains("data-act=\"dispute\""), "a withdrawn deposit cannot be disputed: {gone}");
    let listed = page(base, "/deposits?consent=commons", 200);
    assert!(listed.contains(&narrowed) && !listed.contains(&withdrawn), "{listed}");
}

#[test]
fn unknown_pages_are_html_and_the_api_keeps_its_json_errors() {
    let commons = Commons::init("Errors");
    let daemon = commons.start();
    let base = daemon.url.as_str();
    let missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    let unknown = page(base, &format!("/deposits/{missing}"), 404);
    assert!(unknown.contains("No deposit has the CID") && unknown.contains("Check the address"), "{unknown}");
    let nowhere = page(base, "/log/elsewhere", 404);
    assert!(nowhere.contains("There is no page at this address"), "{nowhere}");
    page(base, "/proposals/7", 404);
    page(base, "/deposits?before=yesterday", 400);
    // A page's address with a slash after it leads to the page, not to the API's JSON 404.
    for target in ["/deposits/", "/proposals/", "/log/", "/verify/"] {
        let fetched = fetch(base, target);
        assert_eq!(
            (fetched.status, fetched.location.as_str()),
            (308, target.trim_end_matches('/')),
            "{target}"
        );
    }
    // axum's own refusals on the pages' routes are pages too, under the pages' policy.
    for (method, target, status) in
        [("GET", "/deposits/%FF", 400), ("GET", "/deposits/%FF/x", 400), ("POST", "/deposits", 405)]
    {
        let fetched = fetch_with(base, method, target);
        assert_eq!(fetched.status, status, "{method} {target}: {}", fetched.body);
        assert_eq!(fetched.content_type, "text/html; charset=utf-8", "{method} {target}: {}", fetched.body);
        assert!(fetched.policy.contains("script-src 'self'"), "{method} {target}: {}", fetched.policy);
        assert!(fetched.body.contains("<nav aria-label=\"Main\">"), "{method} {target}: {}", fetched.body);
    }
    for target in [format!("/v1/deposits/{missing}"), "/v1/no-such-route".to_owned()] {
        let fetched = fetch(base, &target);
        assert_eq!(fetched.status, 404, "{target}");
        assert!(fetched.content_type.starts_with("application/json"), "{target}: {}", fetched.content_type);
        let body: Value = serde_json::from_str(&fetched.body).expect("a JSON error");
        assert!(body["error"].is_string() && body["detail"].is_string(), "{body}");
    }
}

#[test]
fn assets_carry_their_types_and_are_cached_by_version() {
    let commons = Commons::init("Assets");
    let daemon = commons.start();
    let base = daemon.url.as_str();
    let home = page(base, "/", 200);
    let style = home
        .split("href=\"")
        .find_map(|rest| rest.split('"').next().filter(|link| link.starts_with("/assets/style.css?v=")))
        .expect("the style sheet's versioned link");
    let fetched = fetch(base, style);
    assert_eq!((fetched.status, fetched.content_type.as_str()), (200, "text/css; charset=utf-8"));
    assert!(fetched.cache_control.contains("immutable"), "{}", fetched.cache_control);
    assert!(fetched.body.contains(":focus-visible"), "the style sheet marks focus");
    for script in ["/assets/app.js", "/assets/substrate.js"] {
        let fetched = fetch(base, script);
        assert_eq!((fetched.status, fetched.content_type.as_str()), (200, "text/javascript; charset=utf-8"));
        assert_eq!(fetched.cache_control, "no-cache", "an unversioned link is checked each time");
    }
    page(base, "/assets/nothing.css", 404);
}

#[test]
fn the_search_box_finds_public_texts_when_the_node_keeps_an_index() {
    let commons = Commons::init("Searching");
    let models = commons.file("no-models");
    std::fs::create_dir_all(&models).expect("an empty models directory");
    let daemon = Daemon::start_with(
        &commons.data,
        commons.tmp.path(),
        &["--search", "--serve-models-dir", path(&models)],
    );
    let http = daemon.http();
    let base = daemon.url.as_str();
    let key = new_key();
    let public =
        deposit(&http, &key, "The sourdough starter bubbles at dawn.", "Starter", ConsentTier::Public);
    let hidden = deposit(
        &http,
        &key,
        "The sourdough secret of the members.",
        "Members' starter",
        ConsentTier::Commons,
    );
    let size = http.log_size();
    until("the index to read the log", || {
        let answer = http.get("/v1/search?q=sourdough&mode=bm25").json();
        if answer["indexed"].as_u64() >= Some(size) { Ok(()) } else { Err(answer.to_string()) }
    });
    let answer = page(base, "/deposits?q=sourdough", 200);
    assert!(!answer.contains("Search is off"), "{answer}");
    // The hits; the list of deposits below them names the commons text too, without its words.
    let hits = answer.split("<ol class=\"hits\">").nth(1).and_then(|rest| rest.split("</ol>").next());
    let hits = hits.unwrap_or_else(|| panic!("no hits in:\n{answer}"));
    assert!(hits.contains(&format!("/deposits/{public}")), "{hits}");
    assert!(!hits.contains(&hidden), "a page nobody signed found a commons text: {hits}");
    assert!(!answer.contains("secret of the members"), "{answer}");
    // A search that cannot be made answers with an error status and a sentence, the list still below.
    let refused = page(base, &format!("/deposits?q={}", "w".repeat(1001)), 400);
    assert!(refused.contains("The search failed. The words to find are 1 to 1000 characters"), "{refused}");
}

#[test]
fn a_proposal_page_shows_both_chambers_and_what_would_happen_now() {
    let (commons, steward) = stewarded("Voting", "3s");
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let (proposed, _) = ok(&[
        "propose",
        "--title",
        "More oral texts",
        "--set-mixture",
        "narrative=0.5,oral=0.5",
        "--key",
        path(&steward),
        "--node",
        node,
    ]);
    let id = number_after(&proposed, "proposal ");
    ok(&["vote", &id.to_string(), "yes", "--key", path(&steward), "--node", node]);

    let open = page(node, &format!("/proposals/{id}"), 200);
    for words in [
        "More oral texts",
        "contributor chamber (leads)",
        "technical chamber (may veto)",
        "If the window closed now",
        "Set the training mixture",
        "oral 50.0%",
        "data-live=\"tally\"",
        "data-tally=\"contributor yes\"",
        "aria-live=\"polite\"",
    ] {
        assert!(open.contains(words), "the open proposal's page lacks {words:?}:\n{open}");
    }
    let listed = page(node, "/proposals", 200);
    assert!(listed.contains(&format!("/proposals/{id}")) && listed.contains("If it closed now"), "{listed}");

    let http = daemon.http();
    until("the decision", || {
        let view = http.get(&format!("/v1/proposals/{id}")).json();
        if view["tally"]["final"] == true { Ok(()) } else { Err(view.to_string()) }
    });
    let decided = page(node, &format!("/proposals/{id}"), 200);
    assert!(decided.contains("Decided: it passes"), "{decided}");
    assert!(!decided.contains("data-live"), "a decided proposal's figures no longer change:\n{decided}");
    assert!(
        decided.contains("What it did") && decided.contains("Set the mixture from 1 ballot"),
        "{decided}"
    );
    let home = page(node, "/", 200);
    assert!(home.contains("<svg") && home.contains("Share of each register in the mixture"), "{home}");
}

/// A commons founded with one steward and a voting window of `window`, and the steward's key file.
fn stewarded(name: &str, window: &str) -> (Commons, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let steward = tmp.path().join("steward.json");
    let (steward_did, _) = ok(&["id", "new", "--key", path(&steward)]);
    let steward_did = steward_did.trim().to_owned();
    let data = tmp.path().join("data");
    let (founded, _) = ok(&[
        "init",
        "--data-dir",
        path(&data),
        "--name",
        name,
        "--voting-window",
        window,
        "--steward",
        &steward_did,
    ]);
    (Commons { vkey: field(&founded, "log key:"), data, tmp }, steward)
}

/// The number after `prefix` at the start of `said`.
fn number_after(said: &str, prefix: &str) -> u64 {
    said.strip_prefix(prefix)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {prefix:?} in:\n{said}"))
}

#[test]
fn a_dispute_shows_on_its_deposit_and_its_page_shows_the_ruling_and_its_reason() {
    let (commons, steward) = stewarded("Disputes", "3s");
    let daemon = commons.start();
    let http = daemon.http();
    let node = daemon.url.as_str();
    let cid = deposit(&http, &new_key(), "A song filed as a story.", "Filed wrongly", ConsentTier::Public);
    let (opened, _) = ok(&[
        "dispute",
        "open",
        &cid,
        "--ground",
        "wrong-register",
        "--register",
        "lyric",
        "--detail",
        "It is sung, not told.",
        "--key",
        path(&steward),
        "--node",
        node,
    ]);
    let id = number_after(&opened, "dispute ");
    let on_deposit = page(node, &format!("/deposits/{cid}"), 200);
    assert!(on_deposit.contains(&format!("/disputes/{id}")), "{on_deposit}");
    let open = page(node, &format!("/disputes/{id}"), 200);
    assert!(open.contains("It is sung, not told.") && open.contains("has not ruled yet"), "{open}");

    ok(&[
        "dispute",
        "rule",
        &id.to_string(),
        "--ruling",
        "relabel:lyric",
        "--reason",
        "The board listened: it is a song.",
        "--key",
        path(&steward),
        "--node",
        node,
    ]);
    let ruled = page(node, &format!("/disputes/{id}"), 200);
    for words in [
        "The board ruled: give it the register lyric.",
        "The board listened: it is a song.",
        "--resolve-dispute",
    ] {
        assert!(ruled.contains(words), "the ruled dispute's page lacks {words:?}:\n{ruled}");
    }
    let listed = page(node, "/disputes", 200);
    assert!(listed.contains("the board ruled at entry"), "{listed}");

    // An appeal to the chambers: their decision rules, and the page names the proposal.
    let (appealed, _) = ok(&[
        "propose",
        "--title",
        "Leave it as a story",
        "--resolve-dispute",
        &format!("{id}=dismiss"),
        "--key",
        path(&steward),
        "--node",
        node,
    ]);
    let proposal = number_after(&appealed, "proposal ");
    ok(&["vote", &proposal.to_string(), "yes", "--key", path(&steward), "--node", node]);
    until("the chambers' ruling", || {
        let view = http.get(&format!("/v1/disputes/{id}")).json();
        if view["status"]["state"] == "resolved" { Ok(()) } else { Err(view.to_string()) }
    });
    let resolved = page(node, &format!("/disputes/{id}"), 200);
    assert!(
        resolved.contains("The chambers ruled: dismiss the dispute")
            && resolved.contains(&format!("href=\"/proposals/{proposal}\"")),
        "{resolved}"
    );
}

#[test]
fn the_propose_page_reads_without_script_and_names_each_parameters_class() {
    let (commons, _) = stewarded("Proposing", "1h");
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let proposals = page(node, "/proposals", 200);
    assert!(proposals.contains("href=\"/propose\""), "the proposals page links the form:\n{proposals}");
    let form = page(node, "/propose", 200);
    for words in [
        "Making a proposal here needs JavaScript",
        "substrate propose",
        "data-act=\"propose\"",
        "<option value=\"credits.floor\" data-class=\"resource\">",
        "<option value=\"mixture.cap.oral\" data-class=\"ordinary\">",
        "<option value=\"window.ordinary\" data-class=\"constitutional\">",
        "value=\"remove-deposit\"",
    ] {
        assert!(form.contains(words), "/propose lacks {words:?}:\n{form}");
    }
    // Hidden until app.js wires it: without the script no form is offered that cannot sign.
    assert!(form.contains("<form id=\"propose-form\" hidden"), "{form}");
}
