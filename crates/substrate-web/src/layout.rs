//! The frame every page shares: the document head, the skip link, the navigation, the main
//! region, and the error page in the same frame.

use maud::{DOCTYPE, Markup, html};

use crate::asset;

/// What every page names: the commons it belongs to.
#[derive(Clone, Debug)]
pub struct Site {
    /// The commons' name, as its genesis gave it.
    pub name: String,
    /// The log's origin line.
    pub origin: String,
}

impl Site {
    /// The frame of a node that cannot read its own commons (a mirror that has not yet fetched
    /// the genesis, say).
    pub fn unnamed() -> Site {
        Site { name: "A commons of the Substrate".to_owned(), origin: String::new() }
    }
}

/// The part of the site a page belongs to, marked as current in the navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Home,
    Deposits,
    Deposit,
    Proposals,
    Members,
    Disputes,
    Log,
    Models,
    Mesh,
    Jobs,
    Verify,
    Chat,
    Key,
    /// A page outside the navigation (an error).
    Elsewhere,
}

const NAVIGATION: &[(Section, &str, &str)] = &[
    (Section::Home, "/", "Home"),
    (Section::Deposits, "/deposits", "Deposits"),
    (Section::Deposit, "/deposit", "Deposit a text"),
    (Section::Proposals, "/proposals", "Proposals"),
    (Section::Members, "/members", "Members"),
    (Section::Disputes, "/disputes", "Disputes"),
    (Section::Log, "/log", "Log"),
    (Section::Models, "/models", "Models"),
    (Section::Mesh, "/mesh", "Mesh"),
    (Section::Jobs, "/jobs", "Jobs"),
    (Section::Verify, "/verify", "Check a receipt"),
    (Section::Chat, "/chat", "Ask the commons"),
    (Section::Key, "/key", "Your key"),
];

/// A whole document: `title` names the page (its `<h1>` is the page's own), `main` is its content.
pub(crate) fn document(site: &Site, title: &str, section: Section, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (site.name) }
                link rel="stylesheet" href=(asset::url("style.css"));
                script type="module" src=(asset::url("app.js")) {}
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header.site {
                    p.brand { a href="/" { (site.name) } }
                    nav aria-label="Main" {
                        ul {
                            @for (target, path, label) in NAVIGATION {
                                li {
                                    a href=(path) aria-current=[(*target == section).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" { (main) }
                footer.site {
                    p {
                        "Every page here reads the same records as the node's JSON API ("
                        a href="/v1/openapi.json" { "its OpenAPI document" }
                        "), and every record comes from the signed log, which anyone can check."
                    }
                    @if !site.origin.is_empty() {
                        p { "Log origin: " code { (site.origin) } }
                    }
                }
            }
        }
    }
}

/// A page whose main region acts (see [`crate::act`]): the region under a heading.
pub fn acting(site: &Site, title: &str, section: Section, region: Markup) -> Markup {
    document(site, title, section, html! { h1 { (title) } (region) })
}

/// An error in the site's frame: `heading` says what went wrong, `detail` why and what to do.
pub fn error(site: &Site, heading: &str, detail: &str) -> Markup {
    document(
        site,
        heading,
        Section::Elsewhere,
        html! {
            h1 { (heading) }
            p { (detail) }
            p { "From here: " a href="/" { "the home page" } ", " a href="/deposits" { "the deposits" } ", or " a href="/log" { "the log" } "." }
        },
    )
}
