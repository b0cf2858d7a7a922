//! The web pages over HTTP: each handler reads what the JSON API's handlers read and has
//! `substrate-web` render it. Pages and their errors are HTML; this router sits beside the API's
//! rather than under its JSON error layer.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use substrate_core::ConsentTier;
use substrate_core::governance::book::{Governance, ProposalStatus};
use substrate_core::state::DepositRecord;
use substrate_store::Reader;
use substrate_store::reader::DepositQuery;
use substrate_web::Markup;
use substrate_web::{Section, Site, act, page};

use crate::ApiError;
use crate::governance::now_ms;
use crate::routes::{AppState, blocking};

/// The pages, the assets, and an HTML 404 for any other path under the pages' own prefixes;
/// whatever else goes wrong on these routes (axum's own refusals among it) is a page too.
pub fn router(state: &AppState) -> Router<AppState> {
    let mut router = Router::new()
        .route("/", get(home))
        .route("/deposits", get(deposits))
        .route("/deposits/{id}", get(deposit))
        .route("/deposits/{id}/{*rest}", get(deposit_by_handle))
        .route("/deposit", get(deposit_form))
        .route("/proposals", get(proposals))
        .route("/proposals/{id}", get(proposal))
        .route("/propose", get(propose))
        .route("/members", get(members))
        .route("/members/{did}", get(member))
        .route("/disputes", get(disputes))
        .route("/disputes/{id}", get(dispute))
        .route("/log", get(log))
        .route("/mesh", get(mesh))
        .route("/models", get(models))
        .route("/jobs", get(jobs))
        .route("/key", get(key))
        .route("/verify", get(verify))
        .route("/chat", get(chat))
        .route("/assets/{name}", get(asset));
    for prefix in [
        "/deposit",
        "/propose",
        "/proposals/{id}",
        "/members/{did}",
        "/disputes/{id}",
        "/log",
        "/mesh",
        "/models",
        "/jobs",
        "/key",
        "/verify",
        "/chat",
        "/assets/{name}",
    ] {
        router = router.route(&format!("{prefix}/{{*rest}}"), get(no_page));
    }
    // A page's address with a slash after it is the page; the API's JSON 404 would answer it.
    for path in [
        "/deposits",
        "/deposit",
        "/proposals",
        "/propose",
        "/members",
        "/disputes",
        "/log",
        "/mesh",
        "/models",
        "/jobs",
        "/key",
        "/verify",
        "/chat",
    ] {
        router = router.route(&format!("{path}/"), get(move || async move { Redirect::permanent(path) }));
    }
    router
        .layer(axum::middleware::map_response_with_state(state.clone(), framed))
        .layer(axum::middleware::from_fn(gzipped_pages))
}

/// Whether the request takes a gzipped body.
fn takes_gzip(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next().is_some_and(|name| name.eq_ignore_ascii_case("gzip"))
                && !parts.any(|p| p.replace(' ', "") == "q=0")
        })
    })
}

/// A page's HTML gzipped for a browser that takes it: a page and its scripts weigh a quarter as
/// much on the wire.
async fn gzipped_pages(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let gzip = takes_gzip(request.headers());
    let response = next.run(request).await;
    let is_html =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !gzip || !is_html || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 << 20).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be read back").into_response();
    };
    parts.headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts.headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(substrate_web::asset::gzip(&bytes)))
}

/// A refusal on the pages' routes that is not already a page (a path that is not UTF-8, a method
/// a page does not take: axum's own, in plain text) answers as a page in the frame, under the
/// pages' policy, with its status.
async fn framed(State(app): State<AppState>, response: Response) -> Response {
    let status = response.status();
    let is_html =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_html {
        return response;
    }
    let detail = match status {
        StatusCode::NOT_FOUND => NO_PAGE,
        StatusCode::METHOD_NOT_ALLOWED => "This address is a page to read: it answers GET, and nothing else.",
        s if s.is_server_error() => {
            "The node could not make this page. Try again in a moment; if it keeps failing, tell the node's operator."
        }
        _ => {
            "This address does not name a page: part of it cannot be read (a stray character, or an escape that is not UTF-8). Check the address."
        }
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut page = Failure::new(&site(&app).await, status, detail).into_response();
    if let Some(allow) = allow {
        page.headers_mut().insert(header::ALLOW, allow);
    }
    page
}

/// Deposits (and jobs) listed on one page.
const PER_PAGE: u64 = 50;
/// Deposits on the home page.
const RECENT: u64 = 20;
/// Search hits shown for one query.
const HITS: usize = 20;

/// An HTML page, or an HTML error in the same frame.
type Page = Result<Html, Failure>;

/// A rendered page.
struct Html(Markup);

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        html_response(StatusCode::OK, self.0)
    }
}

/// What went wrong, to be shown as a page.
struct Failure {
    site: Site,
    status: StatusCode,
    detail: String,
}

impl Failure {
    fn new(site: &Site, status: StatusCode, detail: impl Into<String>) -> Failure {
        Failure { site: site.clone(), status, detail: detail.into() }
    }

    /// An API error as a page: its detail, with what a person can do next.
    fn from_api(site: &Site, error: ApiError) -> Failure {
        let next = match error.status {
            StatusCode::NOT_FOUND => " Check the address, or find it from the lists in the navigation.",
            StatusCode::BAD_REQUEST => " Check the address and its query.",
            s if s.is_server_error() => {
                " Try again in a moment; if it keeps failing, tell the node's operator."
            }
            _ => "",
        };
        let detail = error.detail.trim_end_matches('.');
        // The API's details start in lower case, to follow a code; a page's sentence starts in capitals.
        let mut chars = detail.chars();
        let detail = chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect::<String>())
            .unwrap_or_default();
        Failure::new(site, error.status, format!("{detail}.{next}"))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let heading = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "That address does not work",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::GONE => "Gone",
            s if s.is_server_error() => "The node failed to answer",
            _ => "That did not work",
        };
        html_response(self.status, page::error(&self.site, heading, &self.detail))
    }
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Scripts, styles and requests from this node only, and none inline: a text that slipped
    // past the escaping still could not run.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// The commons the pages belong to; the unnamed frame when it cannot be read.
fn site_of(reader: &Reader) -> Site {
    match reader.commons() {
        Ok(commons) => Site { name: commons.name, origin: commons.origin },
        Err(_) => Site::unnamed(),
    }
}

async fn site(app: &AppState) -> Site {
    blocking(&app.reader, |r| Ok(site_of(r))).await.unwrap_or_else(|_| Site::unnamed())
}

/// Reads and renders a page off the async workers; a read that fails becomes the error page.
async fn render(
    app: &AppState,
    f: impl FnOnce(&Reader, &Site) -> Result<Markup, ApiError> + Send + 'static,
) -> Page {
    let (site, rendered) = blocking(&app.reader, move |r| {
        let site = site_of(r);
        let rendered = f(r, &site);
        Ok((site, rendered))
    })
    .await
    .map_err(|e| Failure::from_api(&Site::unnamed(), e))?;
    rendered.map(Html).map_err(|e| Failure::from_api(&site, e))
}

/// The first value of each query key; an empty one counts as absent.
fn param(query: &[(String, String)], key: &str) -> Option<String> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// A number from the query, or the error page saying what is wrong with it.
fn number(site: &Site, query: &[(String, String)], key: &str) -> Result<Option<u64>, Failure> {
    param(query, key)
        .map(|v| {
            v.parse().map_err(|_| {
                Failure::new(
                    site,
                    StatusCode::BAD_REQUEST,
                    format!("{key} is '{v}'; it must be a whole number."),
                )
            })
        })
        .transpose()
}

fn registers(g: &Governance) -> Vec<String> {
    g.parameters().map(|p| p.registers.iter().map(|r| r.to_string()).collect()).unwrap_or_default()
}

async fn home(State(app): State<AppState>) -> Page {
    render(&app, |r, site| {
        let g = r.governance()?;
        let now = now_ms();
        let recent = r.deposits(&DepositQuery { limit: RECENT, ..DepositQuery::default() })?;
        let counts = substrate_web::Counts {
            deposits: r.deposit_count()?,
            members: g.members().filter(|m| m.verified_at(now)).count() as u64,
            proposals: g.proposals().count() as u64,
            log_size: r.tree_head().0,
        };
        let registers = registers(&g);
        Ok(page::home(
            site,
            &substrate_web::HomePage { registers: &registers, counts, mixture: g.mixture(), recent: &recent },
        ))
    })
    .await
}

async fn deposits(
    State(app): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<(StatusCode, Html), Failure> {
    let site = site(&app).await;
    let before = number(&site, &query, "before")?;
    let filters = substrate_web::Filters {
        register: param(&query, "register").unwrap_or_default(),
        consent: param(&query, "consent").unwrap_or_default(),
        language: param(&query, "language").unwrap_or_default(),
        depositor: param(&query, "depositor").unwrap_or_default(),
        query: param(&query, "q").unwrap_or_default(),
    };
    if !filters.consent.is_empty() && filters.consent.parse::<ConsentTier>().is_err() {
        return Err(Failure::new(
            &site,
            StatusCode::BAD_REQUEST,
            format!(
                "'{}' is not a consent tier; the tiers are public, commons, training-only and local.",
                filters.consent
            ),
        ));
    }
    // A search that failed still shows the list, under the failure's own status.
    let (search, status) = search(&app, &filters).await;
    let chosen = |value: &String| (!value.is_empty()).then(|| value.clone());
    let deposit_query = DepositQuery {
        register: chosen(&filters.register),
        consent: chosen(&filters.consent),
        language: chosen(&filters.language),
        depositor: chosen(&filters.depositor),
        before,
        limit: PER_PAGE + 1,
    };
    let rendered = render(&app, move |r, site| {
        // A filter that matches little stops at the reader's window; the page then goes on from
        // where the window ended rather than claim that nothing older matches.
        let (mut listed, stopped) = r.deposits_scanned(&deposit_query)?;
        let full = listed.len() as u64 > PER_PAGE;
        let next = if full { Some(listed[PER_PAGE as usize - 1].log_index) } else { stopped };
        listed.truncate(PER_PAGE as usize);
        let registers = registers(&*r.governance()?);
        Ok(page::deposits(
            site,
            &substrate_web::ListPage {
                registers: &registers,
                filters: &filters,
                deposits: &listed,
                next,
                scanned: stopped.filter(|_| !full).map(|_| substrate_store::reader::DEPOSIT_SCAN),
                search,
            },
        ))
    })
    .await?;
    Ok((status, rendered))
}

/// What the search index found for the list's words, and the status the page answers with; the
/// browser is not a signed member, so only public texts are found.
async fn search(
    app: &AppState,
    filters: &substrate_web::Filters,
) -> (substrate_web::SearchState, StatusCode) {
    use substrate_web::SearchState;
    let Some(index) = app.search.clone() else { return (SearchState::Off, StatusCode::OK) };
    if filters.query.is_empty() {
        return (SearchState::Ready, StatusCode::OK);
    }
    if filters.query.chars().count() > 1000 {
        let why = "The words to find are 1 to 1000 characters; use fewer.";
        return (SearchState::Failed(why.to_owned()), StatusCode::BAD_REQUEST);
    }
    let mode =
        if index.has_vectors() { substrate_search::Mode::Hybrid } else { substrate_search::Mode::Bm25 };
    let chosen = |value: &String| (!value.is_empty()).then(|| value.clone());
    let search_filters = substrate_search::Filters {
        register: chosen(&filters.register),
        language: chosen(&filters.language),
        depositor: chosen(&filters.depositor),
        include_commons: false,
    };
    match crate::search::find(app, index, &filters.query, search_filters, mode, HITS).await {
        Ok((hits, _)) => (
            SearchState::Found(
                hits.into_iter()
                    // The index holds commons texts too; a page nobody signs shows public ones only.
                    .filter(|hit| hit.deposit.consent == ConsentTier::Public)
                    .map(|hit| substrate_web::SearchHit { deposit: hit.deposit, snippet: hit.snippet })
                    .collect(),
            ),
            StatusCode::OK,
        ),
        // The engine's own words say nothing a reader can act on, and may say what they should not.
        Err(e) => {
            tracing::warn!(detail = %e.detail, "a search from the deposits page failed");
            let why = "The search index could not answer. Try again in a moment; if it keeps failing, \
                       tell the node's operator.";
            (SearchState::Failed(why.to_owned()), e.status)
        }
    }
}

async fn deposit(State(app): State<AppState>, Path(id): Path<String>) -> Page {
    // Only a node that forwards to a sequencer (a mirror) may hold an entry without its text.
    let mirror = app.sequencer.head().is_none();
    render(&app, move |r, site| {
        let deposit = r.deposit(&id)?;
        deposit_page(r, site, &deposit, mirror)
    })
    .await
}

fn deposit_page(r: &Reader, site: &Site, deposit: &DepositRecord, mirror: bool) -> Result<Markup, ApiError> {
    use substrate_web::DepositText;
    let receipt = r.receipt(deposit.log_index)?;
    // A page nobody signs is read by anyone: it shows the texts anyone may read, the public ones
    // (the API serves `commons` texts to a member's signed request alone).
    let text = if deposit.status.is_gone() {
        DepositText::Gone
    } else if deposit.consent != ConsentTier::Public {
        DepositText::Withheld
    } else {
        match r.content(&deposit.cid)? {
            Some(bytes) => DepositText::Shown(String::from_utf8_lossy(&bytes).into_owned()),
            None if mirror => DepositText::NotHere,
            None => {
                return Err(ApiError::internal(&format!(
                    "blob {} missing for an active deposit",
                    deposit.cid
                )));
            }
        }
    };
    let mut changes = Vec::new();
    for index in &deposit.history {
        if let Some(entry) = r.entries(*index, 1)?.into_iter().next().filter(|e| e.index == *index) {
            let kind = substrate_core::SignedEvent::open_bytes(&entry.envelope)
                .map(|e| e.event.kind().to_owned())
                .unwrap_or_else(|_| "unreadable".to_owned());
            changes.push(substrate_web::Change { log_index: *index, at: entry.integrated_time, kind });
        }
    }
    let g = r.governance()?;
    // An adapter trained on it is one whose snapshot held it, by the rule replay checks.
    let adapters = g
        .adapters()
        .filter(|adapter| {
            g.weighted_registers(adapter.decision).is_some_and(|registers| {
                substrate_core::snapshot::in_snapshot(
                    deposit,
                    adapter.snapshot_size,
                    &registers,
                    &g.disputed_at(adapter.snapshot_size),
                )
            })
        })
        .collect();
    let disputes = g.disputes().filter(|d| d.cid == deposit.cid).collect();
    let registers = registers(&g);
    Ok(page::deposit(
        site,
        &substrate_web::DepositPage {
            deposit,
            text,
            receipt: &receipt,
            changes,
            adapters,
            disputes,
            registers: &registers,
        },
    ))
}

/// A deposit named by its handle, whose slash the address did not encode: sent on to its page.
async fn deposit_by_handle(
    State(app): State<AppState>,
    Path((id, rest)): Path<(String, String)>,
) -> Response {
    let handle = format!("{id}/{rest}");
    let found = blocking(&app.reader, move |r| Ok(r.deposit(&handle)?.cid.to_string())).await;
    match found {
        Ok(cid) => Redirect::to(&format!("/deposits/{cid}")).into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => no_page(State(app)).await.into_response(),
        // A read that failed is not a missing page: it says so, with its own status.
        Err(e) => Failure::from_api(&site(&app).await, e).into_response(),
    }
}

async fn deposit_form(State(app): State<AppState>) -> Page {
    render(&app, |r, site| {
        let registers = registers(&*r.governance()?);
        let tiers: Vec<String> = ConsentTier::ALL.iter().map(|t| t.as_str().to_owned()).collect();
        Ok(page::acting(
            site,
            "Deposit a text",
            Section::Deposit,
            act::deposit_page(&registers, &tiers, &site.origin),
        ))
    })
    .await
}

async fn propose(State(app): State<AppState>) -> Page {
    render(&app, |r, site| {
        let g = r.governance()?;
        let registers = registers(&g);
        let parameters = g.parameters().map(act::parameter_rows).unwrap_or_default();
        Ok(page::acting(
            site,
            "Make a proposal",
            Section::Proposals,
            act::propose_page(&registers, &parameters),
        ))
    })
    .await
}

async fn key(State(app): State<AppState>) -> Page {
    let site = site(&app).await;
    Ok(Html(page::acting(&site, "Your key", Section::Key, act::key_page())))
}

async fn verify(State(app): State<AppState>) -> Page {
    render(&app, |r, site| {
        let commons = r.commons()?;
        Ok(page::acting(
            site,
            "Check a receipt",
            Section::Verify,
            act::verify_page(&commons.log_key, &commons.origin),
        ))
    })
    .await
}

/// Asking the commons: the page asks the node's own OpenAI route, so it needs only to know which
/// served model merely embeds, and whether answers can draw on an index.
async fn chat(State(app): State<AppState>) -> Page {
    let site = site(&app).await;
    let embedding = app.inference.as_ref().and_then(|i| i.embedding.as_ref().map(|(id, _)| id.clone()));
    Ok(Html(page::acting(
        &site,
        "Ask the commons",
        Section::Chat,
        act::chat_page(embedding.as_deref(), app.search.is_some()),
    )))
}

fn standing(view: &crate::governance::ProposalView) -> substrate_web::Standing {
    substrate_web::Standing {
        contributor: view.tally.contributor,
        technical: view.tally.technical,
        outcome: view.tally.outcome.clone(),
        decided: view.tally.decided,
        as_of: view.tally.as_of,
        votes: view.tally.votes,
    }
}

async fn proposals(State(app): State<AppState>, Query(query): Query<Vec<(String, String)>>) -> Page {
    let site = site(&app).await;
    let after = number(&site, &query, "after")?;
    let found = crate::governance::proposal_page(&app, None, after, 100).await;
    let found = found.map_err(|e| Failure::from_api(&site, e))?;
    let now = now_ms();
    let rows = found
        .ids
        .iter()
        .filter_map(|id| found.governance.proposal(*id))
        .map(|proposal| {
            let view =
                crate::governance::proposal_view(&found.governance, &found.votes, proposal, now, false);
            substrate_web::ProposalRow { proposal, standing: standing(&view) }
        })
        .collect();
    Ok(Html(page::proposals(&site, &substrate_web::ProposalsPage { rows, next: found.next })))
}

async fn proposal(State(app): State<AppState>, Path(id): Path<String>) -> Page {
    let site = site(&app).await;
    let Ok(id) = id.parse::<u64>() else {
        return Err(Failure::new(
            &site,
            StatusCode::NOT_FOUND,
            format!("'{id}' is not a proposal number. The proposals page lists them all."),
        ));
    };
    let (g, votes, effects) =
        crate::governance::read_proposal(&app, id).await.map_err(|e| Failure::from_api(&site, e))?;
    let Some(proposal) = g.proposal(id) else {
        return Err(Failure::new(
            &site,
            StatusCode::NOT_FOUND,
            format!("No proposal has the number {id}. The proposals page lists them all."),
        ));
    };
    let now = now_ms();
    let view = crate::governance::proposal_view(&g, &votes, proposal, now, true);
    let listed = view.votes.clone().unwrap_or_default();
    let thresholds = g.parameters().map_or(proposal.class.thresholds(), |p| p.thresholds(proposal.class));
    Ok(Html(page::proposal(
        &site,
        &substrate_web::ProposalPage {
            proposal,
            standing: standing(&view),
            thresholds,
            votes: &listed,
            effects: effects.as_deref().filter(|_| matches!(proposal.status, ProposalStatus::Closed { .. })),
            now,
        },
    )))
}

async fn members(State(app): State<AppState>) -> Page {
    render(&app, |r, site| {
        let g = r.governance()?;
        let now = now_ms();
        let rows: Vec<substrate_web::MemberRow> = g
            .members()
            .map(|member| substrate_web::MemberRow {
                member,
                verified: member.verified_at(now),
                steward: g.is_steward(&member.person),
                nodes: g.nodes().filter(|n| n.operator == member.person).count(),
            })
            .collect();
        Ok(page::members(site, &rows))
    })
    .await
}

async fn member(State(app): State<AppState>, Path(person): Path<String>) -> Page {
    render(&app, move |r, site| {
        let g = r.governance()?;
        let now = now_ms();
        let member = g.member(&person);
        // Anyone with a key may deposit: a depositor the commons never attested still has a page.
        if member.is_none() && substrate_core::identity::key_of(&person).is_err() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("'{person}' is not a did:key this commons knows; the members page lists its members"),
            ));
        }
        let credits = g.credit_statement(&person, now);
        Ok(page::member(
            site,
            &substrate_web::MemberPage {
                person: &person,
                member,
                verified: member.is_some_and(|m| m.verified_at(now)),
                steward: g.is_steward(&person),
                nodes: g.nodes().filter(|n| n.operator == person).map(|n| n.node.as_str()).collect(),
                credits: &credits,
                rates: g.parameters().map(|p| p.credits),
            },
        ))
    })
    .await
}

async fn disputes(State(app): State<AppState>) -> Page {
    render(&app, |r, site| {
        let g = r.governance()?;
        let mut list: Vec<_> = g.disputes().collect();
        list.sort_by_key(|d| std::cmp::Reverse(d.id));
        Ok(page::disputes(site, &list))
    })
    .await
}

async fn dispute(State(app): State<AppState>, Path(id): Path<String>) -> Page {
    render(&app, move |r, site| {
        let g = r.governance()?;
        let unknown = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no dispute has the number '{id}'; the disputes page lists them"),
            )
        };
        let dispute = id.parse::<u64>().ok().and_then(|n| g.dispute(n)).ok_or_else(unknown)?;
        let deposit = r.deposit(&dispute.cid.to_string()).ok();
        let title = deposit.as_ref().map(|d| d.title.as_str());
        // The entry that ruled says why (the board's last signature) or on what (the decision's
        // proposal); the record keeps neither.
        let ruled = match dispute.status.closed_at() {
            Some(index) => r.entries(index, 1)?.into_iter().find(|e| e.index == index),
            None => None,
        };
        let event = ruled.and_then(|entry| substrate_core::SignedEvent::open_bytes(&entry.envelope).ok());
        let (reason, proposal) = match event.map(|e| e.event) {
            Some(substrate_core::event::Event::DisputeRuling(ruling)) => (Some(ruling.reason), None),
            Some(substrate_core::event::Event::Decision(decision)) => (None, Some(decision.proposal)),
            _ => (None, None),
        };
        Ok(page::dispute(
            site,
            &substrate_web::DisputePage { dispute, title, reason: reason.as_deref(), proposal },
        ))
    })
    .await
}

async fn log(State(app): State<AppState>, Query(query): Query<Vec<(String, String)>>) -> Page {
    let site = site(&app).await;
    let start = number(&site, &query, "start")?;
    render(&app, move |r, site| {
        let size = r.tree_head().0;
        let start = start.unwrap_or(size.saturating_sub(PER_PAGE)).min(size.saturating_sub(1));
        let rows: Vec<substrate_web::LogRow> = r
            .entries(start, PER_PAGE)?
            .iter()
            .map(|entry| {
                let opened = substrate_core::SignedEvent::open_bytes(&entry.envelope).ok();
                substrate_web::LogRow {
                    index: entry.index,
                    integrated_time: entry.integrated_time,
                    kind: opened.as_ref().map_or("unreadable", |e| e.event.kind()).to_owned(),
                    signer: opened.map(|e| e.signer),
                }
            })
            .collect();
        let checkpoint = match r.checkpoint() {
            Ok((_, note)) => Some(note),
            Err(substrate_store::ReadError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let cosignatures: Vec<substrate_web::Cosignature> = r
            .cosignatures()?
            .into_iter()
            .map(|c| substrate_web::Cosignature {
                cosigner: c.cosigner,
                size: c.size,
                timestamp: c.timestamp,
            })
            .collect();
        Ok(page::log(
            site,
            &substrate_web::LogPage {
                rows: &rows,
                size,
                start,
                per_page: PER_PAGE,
                checkpoint: checkpoint.as_deref(),
                cosignatures: &cosignatures,
            },
        ))
    })
    .await
}

async fn mesh(State(app): State<AppState>) -> Page {
    let site = site(&app).await;
    let view = match &app.mesh {
        Some(mesh) => mesh.peers().await,
        None => None,
    };
    let state = match (&app.mesh, &view) {
        (None, _) => substrate_web::MeshState::Off,
        (Some(_), None) => substrate_web::MeshState::Stopped,
        (Some(_), Some(view)) => substrate_web::MeshState::Running(view),
    };
    Ok(Html(page::mesh(&site, &state)))
}

async fn models(State(app): State<AppState>) -> Page {
    let served = match app.inference {
        Some(_) => Some(crate::openai::served(&app).await),
        None => None,
    };
    render(&app, move |r, site| {
        let registered = crate::adapters::registered(r)?;
        let rows: Vec<substrate_web::AdapterRow> = registered
            .iter()
            .map(|(adapter, withdrawn, complete)| substrate_web::AdapterRow {
                adapter,
                withdrawn: *withdrawn,
                complete: *complete,
            })
            .collect();
        Ok(page::models(site, &substrate_web::ModelsPage { adapters: &rows, served: served.as_deref() }))
    })
    .await
}

async fn jobs(State(app): State<AppState>) -> Page {
    render(&app, |r, site| {
        let g = r.governance()?;
        let jobs: Vec<_> = g.jobs().values().rev().take(PER_PAGE as usize).collect();
        let workers: Vec<substrate_web::WorkerRow> = g
            .offers()
            .values()
            .map(|offer| {
                let reputation = g.reputation(&offer.node);
                substrate_web::WorkerRow { offer, score: reputation.score(), shunned: reputation.shunned() }
            })
            .collect();
        Ok(page::jobs(site, &substrate_web::JobsPage { jobs: &jobs, workers: &workers }))
    })
    .await
}

/// An embedded file; cached for good when asked for by its current version.
async fn asset(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = substrate_web::asset::Asset::named(&name) else {
        return no_page(State(app)).await.into_response();
    };
    let etag = format!("\"{}\"", asset.version());
    let cache = if param(&query, "v").as_deref() == Some(asset.version()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let status = if matches { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let gzip = takes_gzip(&headers);
    let body = match (matches, gzip) {
        (true, _) => &[][..],
        (false, true) => asset.gzipped(),
        (false, false) => asset.bytes,
    };
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, asset.content_type().to_owned()),
            (header::CACHE_CONTROL, cache.to_owned()),
            (header::ETAG, etag),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::VARY, "Accept-Encoding".to_owned()),
        ],
        body,
    )
        .into_response();
    if gzip && !matches {
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// A path under the pages' prefixes that names no page.
async fn no_page(State(app): State<AppState>) -> Failure {
    let site = site(&app).await;
    Failure::new(&site, StatusCode::NOT_FOUND, NO_PAGE)
}

const NO_PAGE: &str = "There is no page at this address. The navigation above lists the pages; a deposit's page is /deposits/ and its CID.";
