//! The web pages of a commons node: HTML rendered on the server from the ledger's records, and
//! the static assets those pages load.
//!
//! Every page reads without JavaScript. The pages that act (making a key, depositing, voting,
//! withdrawing, disputing, proposing, reading a members' text, checking a receipt, asking the
//! commons a question) need the browser to sign, so their markup lives in [`act`], paired with
//! `assets/app.js`. This crate knows nothing of HTTP: the API crate calls these functions and
//! sends what they return.

pub mod act;
pub mod asset;
mod deposit;
mod governance;
mod home;
mod layout;
mod ledger;
mod node;
mod wording;

pub use deposit::{Change, DepositPage, DepositText, Filters, ListPage, SearchHit, SearchState};
pub use governance::{
    DisputePage, MemberPage, MemberRow, ProposalPage, ProposalRow, ProposalsPage, Standing,
};
pub use home::{Counts, HomePage};
pub use layout::{Section, Site};
pub use ledger::{Cosignature, LogPage, LogRow};
pub use maud::Markup;
pub use node::{AdapterRow, JobsPage, MeshState, ModelsPage, WorkerRow};

/// The pages, one function each; every one returns a whole HTML document.
pub mod page {
    pub use crate::deposit::{deposit, list as deposits};
    pub use crate::governance::{dispute, disputes, member, members, proposal, proposals};
    pub use crate::home::home;
    pub use crate::layout::{acting, error};
    pub use crate::ledger::log;
    pub use crate::node::{jobs, mesh, models};
}
