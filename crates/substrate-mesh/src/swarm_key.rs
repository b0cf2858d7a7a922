//! The private-network key (libp2p pnet): a 32-byte secret shared by every node of one commons.
//!
//! With it, each TCP connection is wrapped in XSalsa20 keyed by the secret before Noise even
//! starts, so a node without the key cannot complete a handshake, or learn which protocols are
//! spoken. The file format is the one go-libp2p and IPFS use for `swarm.key`.

use std::fmt;

use libp2p::pnet::PreSharedKey;

#[derive(Debug, thiserror::Error)]
#[error(
    "not a private-network key ({detail}): expected three lines, `/key/swarm/psk/1.0.0/`, `/base16/` and 64 hex digits (make one with `substrate id swarm-key`)"
)]
pub struct SwarmKeyError {
    detail: String,
}

/// A private-network key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SwarmKey(pub(crate) PreSharedKey);

impl SwarmKey {
    /// The key made of these 32 random bytes (the caller draws them).
    pub fn from_secret(secret: [u8; 32]) -> SwarmKey {
        SwarmKey(PreSharedKey::new(secret))
    }

    /// Reads the `swarm.key` file format.
    pub fn parse(text: &str) -> Result<SwarmKey, SwarmKeyError> {
        text.parse::<PreSharedKey>().map(SwarmKey).map_err(|e| SwarmKeyError { detail: format!("{e:?}") })
    }

    /// The `swarm.key` file: it holds the secret itself.
    pub fn to_file(self) -> String {
        self.0.to_key_file()
    }

    /// A fingerprint that names the key without revealing it (go-libp2p's).
    pub fn fingerprint(&self) -> String {
        self.0.fingerprint().to_string()
    }
}

impl fmt::Debug for SwarmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwarmKey").field("fingerprint", &self.fingerprint()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_reads_back_and_a_malformed_one_says_what_is_expected() {
        let key = SwarmKey::from_secret([7; 32]);
        let file = key.to_file();
        assert!(file.starts_with("/key/swarm/psk/1.0.0/\n/base16/\n0707"), "{file}");
        assert_eq!(SwarmKey::parse(&file).expect("parses"), key);
        assert_ne!(key.fingerprint(), SwarmKey::from_secret([8; 32]).fingerprint());
        let err = SwarmKey::parse("/key/swarm/psk/1.0.0/\n/base16/\nabc\n").expect_err("short");
        assert!(err.to_string().contains("64 hex digits"), "{err}");
    }
}
