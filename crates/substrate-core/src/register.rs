//! Registers (what kind of text a deposit is) and consent tiers (what the commons may do with it).

use std::fmt;

/// The default register vocabulary a new commons starts with; the vocabulary itself is data in
/// the commons' genesis, so a commons can declare its own.
pub const DEFAULT_REGISTERS: [&str; 8] =
    ["narrative", "conversational", "technical", "sacred", "oral", "pedagogical", "lyric", "encyclopedic"];

/// A register name: lowercase ASCII letters, digits and '-', 1 to 40 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Register(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a register name (lowercase letters, digits and '-', at most 40 characters)")]
pub struct RegisterNameError(pub String);

impl Register {
    pub fn new(name: &str) -> Result<Register, RegisterNameError> {
        let valid = !name.is_empty()
            && name.len() <= 40
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid { Ok(Register(name.to_owned())) } else { Err(RegisterNameError(name.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn defaults() -> Vec<Register> {
        DEFAULT_REGISTERS.iter().map(|name| Register((*name).to_owned())).collect()
    }
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Register {
    type Error = RegisterNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Register::new(&value)
    }
}

impl From<Register> for String {
    fn from(value: Register) -> Self {
        value.0
    }
}

/// What a depositor allows, from the widest to the narrowest. Consent can only move down this
/// list without a new deposit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentTier {
    /// Displayed to anyone, replicated anywhere, used for training.
    Public,
    /// Displayed to members, replicated to member nodes, used for training.
    Commons,
    /// Never displayed verbatim nor used as retrieval context; used for training inside approved jobs.
    TrainingOnly,
    /// Never leaves its origin node; only jobs running there may train on it.
    Local,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown consent tier '{0}'; the tiers are: public, commons, training-only, local")]
pub struct ConsentTierError(pub String);

impl ConsentTier {
    pub const ALL: [ConsentTier; 4] =
        [ConsentTier::Public, ConsentTier::Commons, ConsentTier::TrainingOnly, ConsentTier::Local];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentTier::Public => "public",
            ConsentTier::Commons => "commons",
            ConsentTier::TrainingOnly => "training-only",
            ConsentTier::Local => "local",
        }
    }

    /// 0 for the widest tier, 3 for the narrowest.
    fn narrowness(self) -> u8 {
        self as u8
    }

    /// Whether moving from `self` to `to` narrows consent (strictly).
    pub fn narrows_to(self, to: ConsentTier) -> bool {
        to.narrowness() > self.narrowness()
    }

    /// IETF AIPREF usage labels this tier grants, kept as data for exports.
    pub fn aipref(self) -> &'static str {
        match self {
            ConsentTier::Public => "train-ai=y, search=y",
            ConsentTier::Commons => "train-ai=y, search=n",
            ConsentTier::TrainingOnly => "train-ai=y, search=n",
            ConsentTier::Local => "train-ai=n, search=n",
        }
    }
}

impl fmt::Display for ConsentTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ConsentTier {
    type Err = ConsentTierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConsentTier::ALL
            .into_iter()
            .find(|tier| tier.as_str() == s)
            .ok_or_else(|| ConsentTierError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tiers_parse_and_print() {
        for tier in ConsentTier::ALL {
            assert_eq!(tier.as_str().parse(), Ok(tier));
            assert_eq!(serde_json::to_string(&tier).ok(), Some(format!("\"{tier}\"")));
        }
        assert_eq!("private".parse::<ConsentTier>(), Err(ConsentTierError("private".into())));
    }

    #[test]
    fn register_names() {
        assert!(Register::new("oral").is_ok());
        assert!(Register::new("Oral").is_err());
        assert!(Register::new("").is_err());
        assert!(Register::new("two words").is_err());
    }

    proptest! {
        /// Narrowing is a strict order: never both ways, never to itself, and transitive.
        #[test]
        fn consent_never_widens(a in 0usize..4, b in 0usize..4, c in 0usize..4) {
            let (a, b, c) = (ConsentTier::ALL[a], ConsentTier::ALL[b], ConsentTier::ALL[c]);
            prop_assert!(!(a.narrows_to(b) && b.narrows_to(a)));
            prop_assert!(!a.narrows_to(a));
            if a.narrows_to(b) && b.narrows_to(c) { prop_assert!(a.narrows_to(c)); }
        }
    }
}
