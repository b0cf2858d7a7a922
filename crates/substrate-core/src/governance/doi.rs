//! DOIs in the log: a steward registers a deposit with DataCite (the commons' credentials stay on
//! their machine), then records the DOI that DataCite's answer gave, signed, so that every node
//! shows it and replay keeps it. The log never invents a DOI: the event carries what the
//! registrar returned, and the fold only checks its shape and that it names one deposit once.

use crate::cid::Cid;
use crate::governance::book::Record;
use crate::state::{Change, Rejection, State};

/// A steward records the DOI a registrar assigned to a deposit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DoiRegistration {
    /// The deposit's CID.
    pub cid: String,
    /// The DOI as the registrar answered it, e.g. `10.5072/abcd-1234`.
    pub doi: String,
    /// Who assigned it: `datacite`.
    pub registrar: String,
    pub requested: String,
}

/// A deposit's DOI as the state holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoiRecord {
    pub cid: String,
    pub doi: String,
    pub registrar: String,
    /// The steward who recorded it, the entry and its time (ms).
    pub steward: String,
    pub log_index: u64,
    pub at: u64,
}

/// Why a DOI registration is refused; each is its own API error code ([`DoiFault::code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DoiFault {
    #[error("doi: {0}")]
    Field(String),
    #[error("{cid} already has the DOI {doi}; a deposit has one DOI")]
    Registered { cid: String, doi: String },
    #[error("the DOI {doi} already names {cid}")]
    InUse { doi: String, cid: String },
    #[error("{0} is withdrawn or removed; a DOI is registered for a deposit that stands")]
    Gone(String),
}

impl DoiFault {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            DoiFault::Field(_) => "doi_field",
            DoiFault::Registered { .. } => "doi_registered",
            DoiFault::InUse { .. } => "doi_in_use",
            DoiFault::Gone(_) => "doi_withdrawn",
        }
    }

    /// How the refusal reads over HTTP.
    pub fn status(&self) -> u16 {
        match self {
            DoiFault::Field(_) => 400,
            DoiFault::Registered { .. } | DoiFault::InUse { .. } | DoiFault::Gone(_) => 409,
        }
    }
}

/// The registrars whose DOIs the log records.
pub const REGISTRARS: [&str; 1] = ["datacite"];

/// Whether `doi` has a DOI's shape: `10.`, a registrant code of digits (dot-separated), `/`, and a
/// suffix of printable characters without spaces (at most 256 in all).
pub fn is_doi(doi: &str) -> bool {
    let Some((prefix, suffix)) = doi.split_once('/') else { return false };
    let Some(registrant) = prefix.strip_prefix("10.") else { return false };
    doi.len() <= 256
        && !registrant.is_empty()
        && registrant.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        && !suffix.is_empty()
        && suffix.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// Stateless checks of a registration's fields.
pub(crate) fn validate(d: &DoiRegistration) -> Result<(), String> {
    Cid::parse(&d.cid).map_err(|e| format!("cid '{}' is not a CID: {e}", d.cid))?;
    if !is_doi(&d.doi) {
        return Err(format!("'{}' is not a DOI (10.<registrant>/<suffix>)", d.doi));
    }
    if !REGISTRARS.contains(&d.registrar.as_str()) {
        return Err(format!("registrar '{}' is not one of {}", d.registrar, REGISTRARS.join(", ")));
    }
    Ok(())
}

impl crate::governance::book::Governance {
    /// The DOI recorded for `cid`, if any.
    pub fn doi_of(&self, cid: &str) -> Option<&DoiRecord> {
        self.dois.get(cid)
    }
}

impl State {
    pub(crate) fn record_doi(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        d: &DoiRegistration,
    ) -> Result<Vec<Change>, Rejection> {
        self.require_stewards(&[signer.to_owned()], time)?;
        validate(d).map_err(|e| Rejection::Doi(DoiFault::Field(e)))?;
        let cid = Cid::parse(&d.cid).map_err(|e| Rejection::Doi(DoiFault::Field(e.to_string())))?;
        let deposit = self.deposit(&cid).ok_or_else(|| Rejection::UnknownDeposit(d.cid.clone()))?;
        if deposit.status.is_gone() {
            return Err(Rejection::Doi(DoiFault::Gone(d.cid.clone())));
        }
        let g = &self.governance;
        if let Some(held) = g.doi_of(&d.cid) {
            return Err(Rejection::Doi(DoiFault::Registered { cid: d.cid.clone(), doi: held.doi.clone() }));
        }
        // DOIs are case-insensitive.
        if let Some(other) = g.dois.values().find(|r| r.doi.eq_ignore_ascii_case(&d.doi)) {
            return Err(Rejection::Doi(DoiFault::InUse { doi: d.doi.clone(), cid: other.cid.clone() }));
        }
        Ok(vec![Change::Record(Record::Doi(DoiRecord {
            cid: d.cid.clone(),
            doi: d.doi.clone(),
            registrar: d.registrar.clone(),
            steward: signer.to_owned(),
            log_index: index,
            at: time,
        }))])
    }
}

#[cfg(test)]
mod tests {
    use super::is_doi;

    #[test]
    fn a_doi_has_its_shape() {
        for good in ["10.5072/abcd-1234", "10.1000.10/x", "10.12345/ÄÖ.(1)"] {
            assert!(is_doi(good), "{good}");
        }
        for bad in
            ["", "10.5072", "10./x", "11.5072/x", "10.50a2/x", "10.5072/", "10.5072/a b", "doi:10.5072/x"]
        {
            assert!(!is_doi(bad), "{bad}");
        }
    }
}
