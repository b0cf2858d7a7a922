//! API tokens in the log: minted by a verified member under the sha256 of their text, revoked by
//! their member or a steward, refused for each reason with its own fault.

use substrate_core::governance::tokens::{
    MAX_LIVE_TOKENS, TokenFault, TokenGrant, TokenRevocation, looks_like_token, token_digest,
};

use super::*;

const DAY: u64 = 24 * 3600 * 1000;

fn grant(token: &str, label: &str, expires_at: u64) -> Event {
    Event::TokenGrant(TokenGrant {
        token: token_digest(token),
        label: label.into(),
        expires: substrate_core::timestamp::rfc3339(expires_at),
        requested: requested(),
    })
}

fn revocation(token: &str) -> Event {
    Event::TokenRevocation(TokenRevocation { token: token_digest(token), requested: requested() })
}

fn token(n: usize) -> String {
    format!("sub_{:0>43}", n)
}

#[test]
fn a_member_mints_and_revokes_a_token_known_only_by_its_digest() {
    let mut commons = Commons::found(&[1]);
    commons.attest_all(1, [10, 11]);
    let text = token(1);
    assert!(looks_like_token(&text));
    let expires = commons.now + 30 * DAY;
    let minted = commons.ok(grant(&text, "laptop", expires), &key(10)).index;
    let g = commons.state.governance();
    let record = g.token(&token_digest(&text)).expect("the token");
    assert_eq!((record.member.as_str(), record.label.as_str()), (did(10).as_str(), "laptop"));
    assert_eq!((record.log_index, record.expires_at / 1000), (minted, expires / 1000));
    assert!(record.live(commons.now) && !record.live(record.expires_at));
    assert_eq!(g.tokens_of(&did(10)).count(), 1);

    // The same digest again, by anyone: refused.
    let again = commons.apply(grant(&text, "again", expires), &key(11));
    assert_eq!(again.map(|_| ()), Err(Rejection::Token(TokenFault::Taken(minted))));
    // Another member cannot revoke it; a steward can; nobody twice.
    let theirs = commons.apply(revocation(&text), &key(11));
    assert_eq!(theirs.map(|_| ()), Err(Rejection::Token(TokenFault::NotYours { member: did(10) })));
    let at = commons.now;
    commons.ok(revocation(&text), &key(1));
    assert_eq!(commons.state.governance().token(&token_digest(&text)).and_then(|t| t.revoked_at), Some(at));
    let twice = commons.apply(revocation(&text), &key(10));
    assert_eq!(twice.map(|_| ()), Err(Rejection::Token(TokenFault::Revoked(at))));
    let unknown = commons.apply(revocation(&token(99)), &key(10));
    assert_eq!(unknown.map(|_| ()), Err(Rejection::Token(TokenFault::Unknown(token_digest(&token(99))))));
}

#[test]
fn a_grant_is_refused_for_each_reason_with_its_own_fault() {
    let mut commons = Commons::found(&[1]);
    commons.attest_all(1, [10]);
    let now = commons.now;
    // A non-member mints nothing.
    let outsider = commons.apply(grant(&token(1), "mine", now + DAY), &key(30));
    assert_eq!(outsider.map(|_| ()), Err(Rejection::NotMember(did(30))));
    // Expiry in the past, or past a year.
    for expires in [now - 1, now + 367 * DAY] {
        let refused = commons.apply(grant(&token(2), "bad expiry", expires), &key(10));
        assert!(
            matches!(&refused, Err(Rejection::Token(TokenFault::Field(detail))) if detail.contains("within a year")),
            "{refused:?}"
        );
    }
    // A malformed event does not reach the fold: an empty label, a digest that is not one.
    let empty = Event::TokenGrant(TokenGrant {
        token: token_digest(&token(3)),
        label: " ".into(),
        expires: substrate_core::timestamp::rfc3339(now + DAY),
        requested: requested(),
    });
    let statement = empty.to_statement();
    assert!(Event::from_statement(statement).is_err());
    let bad_time = Event::TokenGrant(TokenGrant {
        token: token_digest(&token(3)),
        label: "x".into(),
        expires: "next week".into(),
        requested: requested(),
    });
    assert!(Event::from_statement(bad_time.to_statement()).is_err());
    // At most so many live tokens a member; an expired one no longer counts.
    for n in 0..MAX_LIVE_TOKENS {
        let expires = if n == 0 { commons.now + 1000 } else { commons.now + DAY };
        commons.ok(grant(&token(100 + n), "many", expires), &key(10));
    }
    let refused = commons.apply(grant(&token(500), "one too many", commons.now + DAY), &key(10));
    assert_eq!(refused.map(|_| ()), Err(Rejection::Token(TokenFault::TooMany { member: did(10) })));
    commons.wait_until(commons.now + 1000);
    commons.ok(grant(&token(500), "once the first expired", commons.now + DAY), &key(10));
}
