//! DOIs in the log: recorded by an acting steward for a deposit that stands, one DOI a deposit
//! and one deposit a DOI (DOIs compare without case), each refusal its own fault.

use substrate_core::governance::doi::{DoiFault, DoiRegistration};

use super::*;

fn registration(cid: &Cid, doi: &str) -> Event {
    Event::DoiRegistration(DoiRegistration {
        cid: cid.to_string(),
        doi: doi.into(),
        registrar: "datacite".into(),
        requested: requested(),
    })
}

#[test]
fn a_steward_records_one_doi_for_a_deposit_that_stands() {
    let mut commons = Commons::found(&[1]);
    commons.attest(1, 10);
    let cid = commons.deposit(10, b"the water song", "oral");
    let other = commons.deposit(10, b"the bread song", "oral");

    let member = commons.apply(registration(&cid, "10.5072/abc"), &key(10));
    assert_eq!(member.map(|_| ()), Err(Rejection::NotSteward(did(10))));
    let index = commons.ok(registration(&cid, "10.5072/abc"), &key(1)).index;
    let record = commons.state.governance().doi_of(&cid.to_string()).cloned().expect("the doi");
    assert_eq!(
        (record.doi.as_str(), record.steward.as_str(), record.log_index),
        ("10.5072/abc", did(1).as_str(), index)
    );

    let second = commons.apply(registration(&cid, "10.5072/def"), &key(1));
    assert_eq!(
        second.map(|_| ()),
        Err(Rejection::Doi(DoiFault::Registered { cid: cid.to_string(), doi: "10.5072/abc".into() }))
    );
    let taken = commons.apply(registration(&other, "10.5072/ABC"), &key(1));
    assert_eq!(
        taken.map(|_| ()),
        Err(Rejection::Doi(DoiFault::InUse { doi: "10.5072/ABC".into(), cid: cid.to_string() }))
    );

    commons.ok(
        Event::Withdrawal(substrate_core::event::Withdrawal {
            cid: Some(other.clone()),
            reason: None,
            requested: requested(),
        }),
        &key(10),
    );
    let gone = commons.apply(registration(&other, "10.5072/xyz"), &key(1));
    assert_eq!(gone.map(|_| ()), Err(Rejection::Doi(DoiFault::Gone(other.to_string()))));
    let unknown = Cid::of(b"never deposited");
    let nothing = commons.apply(registration(&unknown, "10.5072/xyz"), &key(1));
    assert_eq!(nothing.map(|_| ()), Err(Rejection::UnknownDeposit(unknown.to_string())));
}
