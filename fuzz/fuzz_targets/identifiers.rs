//! The identifiers that arrive as text in every event and request: did:keys
//! (`identity::key_of`), CIDs (`Cid::parse`), RFC 3339 times (`timestamp::parse_rfc3339`),
//! register names (`Register::new`) and consent tiers.
//!
//! Each has one spelling: what parses prints back as it was given (a time without
//! milliseconds prints with `.000`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use substrate_core::identity::{did_of, key_of};
use substrate_core::timestamp::{parse_rfc3339, rfc3339};
use substrate_core::{Cid, ConsentTier, Register};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };

    if let Ok(key) = key_of(text) {
        assert_eq!(did_of(&key), text, "a did:key with two spellings");
    }
    if let Ok(cid) = Cid::parse(text) {
        assert_eq!(cid.to_string(), text, "a CID with two spellings");
        assert_eq!(Cid::parse(&cid.to_string()), Ok(cid));
    }
    if let Some(ms) = parse_rfc3339(text) {
        let printed = rfc3339(ms);
        assert_eq!(parse_rfc3339(&printed), Some(ms));
        if text.len() == printed.len() {
            assert_eq!(printed, text, "a time with two spellings");
        } else {
            assert_eq!(printed, format!("{}.000Z", &text[..text.len() - 1]));
        }
    }
    if let Ok(register) = Register::new(text) {
        assert_eq!(register.as_str(), text);
    }
    if let Ok(tier) = text.parse::<ConsentTier>() {
        assert_eq!(tier.as_str(), text);
    }
});
