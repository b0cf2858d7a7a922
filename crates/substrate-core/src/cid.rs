//! CIDv1 with the `raw` codec and a sha2-256 multihash, as `ipfs add --cid-version 1 --raw-leaves`
//! gives for a small file: `b` + lowercase base32 (RFC 4648, no padding).

use std::fmt;

/// Multicodec and multihash bytes that precede the digest: version 1, codec raw (0x55),
/// multihash sha2-256 (0x12) of length 32.
const PREFIX: [u8; 4] = [0x01, 0x55, 0x12, 0x20];
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A content id: always CIDv1, raw, sha2-256.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cid {
    digest: [u8; 32],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidError {
    #[error("'{0}' is not a CIDv1 in base32 (it must start with 'bafkrei')")]
    NotBase32(String),
    #[error("'{0}' is not a raw sha2-256 CIDv1 (expected prefix 0x01 0x55 0x12 0x20)")]
    WrongCodec(String),
}

impl Cid {
    /// The CID of `content`.
    pub fn of(content: &[u8]) -> Cid {
        Cid { digest: crate::sha256(content) }
    }

    /// The CID whose multihash carries `digest`.
    pub fn from_digest(digest: [u8; 32]) -> Cid {
        Cid { digest }
    }

    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }

    pub fn parse(text: &str) -> Result<Cid, CidError> {
        let body = text.strip_prefix('b').ok_or_else(|| CidError::NotBase32(text.to_owned()))?;
        let bytes = base32_decode(body).ok_or_else(|| CidError::NotBase32(text.to_owned()))?;
        if bytes.len() != 36 || bytes[..4] != PREFIX {
            return Err(CidError::WrongCodec(text.to_owned()));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&bytes[4..]);
        let cid = Cid { digest };
        // Reject non-canonical spellings (trailing bits set, upper case).
        if cid.to_string() != text {
            return Err(CidError::NotBase32(text.to_owned()));
        }
        Ok(cid)
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(36);
        bytes.extend_from_slice(&PREFIX);
        bytes.extend_from_slice(&self.digest);
        write!(f, "b{}", base32_encode(&bytes))
    }
}

impl TryFrom<String> for Cid {
    type Error = CidError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Cid::parse(&value)
    }
}

impl From<Cid> for String {
    fn from(value: Cid) -> Self {
        value.to_string()
    }
}

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let value = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_cids() {
        // `ipfs add --cid-version 1 --raw-leaves` of an empty file and of "hello world\n".
        assert_eq!(Cid::of(b"").to_string(), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
        assert_eq!(
            Cid::of(b"hello world\n").to_string(),
            "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_others() {
        let cid = Cid::of(b"a kitchen-table story");
        assert_eq!(Cid::parse(&cid.to_string()), Ok(cid.clone()));
        assert!(matches!(
            Cid::parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"),
            Err(CidError::NotBase32(_))
        ));
        // dag-pb CIDv1 (codec 0x70) is refused.
        assert!(matches!(
            Cid::parse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"),
            Err(CidError::WrongCodec(_))
        ));
        assert!(Cid::parse(&cid.to_string().to_uppercase()).is_err());
    }
}
