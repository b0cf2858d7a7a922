//! DSSE v1 envelopes: a payload, its type, and Ed25519 signatures over the pre-authentication
//! encoding (PAE). Key ids are `did:key` strings, so a signature names the key that checks it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};

use crate::identity::{self, DidError};

/// The payload type of every event: an in-toto Statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope. Field order is fixed, so serialising the same envelope always gives the same
/// bytes: those bytes are what the log commits to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    #[serde(with = "base64_bytes")]
    pub payload: Vec<u8>,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    pub keyid: String,
    #[serde(with = "base64_bytes")]
    pub sig: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("payloadType is '{0}', expected '{PAYLOAD_TYPE}'")]
    PayloadType(String),
    #[error("the envelope carries {0} signatures; exactly one is expected")]
    SignatureCount(usize),
    #[error("the signature's keyid is not a usable did:key: {0}")]
    KeyId(#[from] DidError),
    #[error("the signature is not 64 bytes of Ed25519")]
    SignatureLength,
    #[error("the signature does not verify against {0} (signed by another key, or the payload was altered)")]
    BadSignature(String),
    #[error("{0} signs the envelope twice")]
    RepeatedSigner(String),
    #[error(
        "{0} is a key of small order, for which anyone can make a signature that verifies; sign with a key made by `substrate id new`"
    )]
    WeakKey(String),
}

/// One Ed25519 equation an envelope's signature must satisfy: the signature by `key` over
/// `message`, the PAE of the payload. [`Envelope::signature_checks`] hands these out so that a
/// caller can verify many envelopes' signatures in one batch.
#[derive(Clone, Debug)]
pub struct SignatureCheck {
    pub message: Vec<u8>,
    pub signature: ed25519_dalek::Signature,
    pub key: VerifyingKey,
}

/// DSSE pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` as an in-toto statement with `key`.
    pub fn sign(payload: Vec<u8>, key: &SigningKey) -> Envelope {
        let sig = key.sign(&pae(PAYLOAD_TYPE, &payload));
        Envelope {
            payload_type: PAYLOAD_TYPE.to_owned(),
            payload,
            signatures: vec![EnvelopeSignature {
                keyid: identity::did_of(&key.verifying_key()),
                sig: sig.to_bytes().to_vec(),
            }],
        }
    }

    /// Checks the single signature and returns the signer's did and key.
    pub fn verify(&self) -> Result<(String, VerifyingKey), EnvelopeError> {
        if self.payload_type != PAYLOAD_TYPE {
            return Err(EnvelopeError::PayloadType(self.payload_type.clone()));
        }
        let [signature] = self.signatures.as_slice() else {
            return Err(EnvelopeError::SignatureCount(self.signatures.len()));
        };
        let key = self.check(signature)?;
        Ok((signature.keyid.clone(), key))
    }

    /// Checks every signature of a co-signed envelope (at least one, each key once) and returns
    /// the signers' dids in order.
    pub fn verify_all(&self) -> Result<Vec<String>, EnvelopeError> {
        self.verify_all_with(identity::key_of)
    }

    /// [`Envelope::verify_all`], taking the signers' keys from `keys` (which decodes each did:key
    /// it has not seen).
    pub fn verify_all_cached(&self, keys: &mut identity::KeyCache) -> Result<Vec<String>, EnvelopeError> {
        self.verify_all_with(|did| keys.key_of(did))
    }

    fn verify_all_with(
        &self,
        mut key_of: impl FnMut(&str) -> Result<VerifyingKey, DidError>,
    ) -> Result<Vec<String>, EnvelopeError> {
        let signers = self.signers_unverified()?;
        for signature in &self.signatures {
            self.check_with(signature, &mut key_of)?;
        }
        Ok(signers)
    }

    /// Everything [`Envelope::verify_all`] checks except the Ed25519 equations themselves: the
    /// form, each keyid and each signature's length. Returns the signers' dids in order and the
    /// equations, one per signature, for the caller to verify (in a batch). When this fails,
    /// `verify_all` fails too, though not necessarily with the same error: it checks each
    /// signature's equation before the next signature's keyid.
    pub fn signature_checks(&self) -> Result<(Vec<String>, Vec<SignatureCheck>), EnvelopeError> {
        let signers = self.signers_unverified()?;
        let message = pae(&self.payload_type, &self.payload);
        let checks = self
            .signatures
            .iter()
            .map(|signature| {
                let (key, signature) = decode(signature)?;
                Ok(SignatureCheck { message: message.clone(), signature, key })
            })
            .collect::<Result<_, EnvelopeError>>()?;
        Ok((signers, checks))
    }

    /// The signers' dids in order, with the same checks of form as [`Envelope::verify_all`] but
    /// no signature checked: for an envelope whose signatures were checked when it entered the
    /// log and whose bytes a signed checkpoint vouches for.
    pub fn signers_unverified(&self) -> Result<Vec<String>, EnvelopeError> {
        if self.payload_type != PAYLOAD_TYPE {
            return Err(EnvelopeError::PayloadType(self.payload_type.clone()));
        }
        if self.signatures.is_empty() {
            return Err(EnvelopeError::SignatureCount(0));
        }
        let mut signers: Vec<String> = Vec::with_capacity(self.signatures.len());
        for signature in &self.signatures {
            if signers.contains(&signature.keyid) {
                return Err(EnvelopeError::RepeatedSigner(signature.keyid.clone()));
            }
            signers.push(signature.keyid.clone());
        }
        Ok(signers)
    }

    /// Adds `key`'s signature to the envelope (DSSE allows several over the same payload).
    pub fn cosign(&mut self, key: &SigningKey) {
        let sig = key.sign(&pae(&self.payload_type, &self.payload));
        self.signatures.push(EnvelopeSignature {
            keyid: identity::did_of(&key.verifying_key()),
            sig: sig.to_bytes().to_vec(),
        });
    }

    /// The stricter checks a node makes of what it is sent, beyond what the fold requires of the
    /// log (which must replay as it was written): no signer's key is of small order, and every
    /// signature verifies by RFC 8032's strict rules (`verify_strict`).
    pub fn check_strict(&self) -> Result<(), EnvelopeError> {
        for signature in &self.signatures {
            let key = identity::key_of(&signature.keyid)?;
            if key.is_weak() {
                return Err(EnvelopeError::WeakKey(signature.keyid.clone()));
            }
            let sig = ed25519_dalek::Signature::from_slice(&signature.sig)
                .map_err(|_| EnvelopeError::SignatureLength)?;
            key.verify_strict(&pae(&self.payload_type, &self.payload), &sig)
                .map_err(|_| EnvelopeError::BadSignature(signature.keyid.clone()))?;
        }
        Ok(())
    }

    fn check(&self, signature: &EnvelopeSignature) -> Result<VerifyingKey, EnvelopeError> {
        self.check_with(signature, identity::key_of)
    }

    fn check_with(
        &self,
        signature: &EnvelopeSignature,
        key_of: impl FnOnce(&str) -> Result<VerifyingKey, DidError>,
    ) -> Result<VerifyingKey, EnvelopeError> {
        let key = key_of(&signature.keyid)?;
        let sig = ed25519_dalek::Signature::from_slice(&signature.sig)
            .map_err(|_| EnvelopeError::SignatureLength)?;
        key.verify(&pae(&self.payload_type, &self.payload), &sig)
            .map_err(|_| EnvelopeError::BadSignature(signature.keyid.clone()))?;
        Ok(key)
    }

    /// The canonical bytes of this envelope (compact JSON, fixed field order).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain strings and byte vectors cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The key a signature's keyid names, and the signature itself.
fn decode(signature: &EnvelopeSignature) -> Result<(VerifyingKey, ed25519_dalek::Signature), EnvelopeError> {
    let key = identity::key_of(&signature.keyid)?;
    let sig =
        ed25519_dalek::Signature::from_slice(&signature.sig).map_err(|_| EnvelopeError::SignatureLength)?;
    Ok((key, sig))
}

pub(crate) mod base64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("not standard base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn a_small_order_key_signs_anything_and_the_strict_check_refuses_it() {
        // The identity point as the key, and R = identity, S = 0 as the signature: the
        // cofactorless equation holds for every message.
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity_point).expect("a point");
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let forged = Envelope {
            payload_type: PAYLOAD_TYPE.to_owned(),
            payload: b"{\"anything\":true}".to_vec(),
            signatures: vec![EnvelopeSignature { keyid: identity::did_of(&weak), sig: sig.to_vec() }],
        };
        assert!(forged.verify().is_ok(), "the log's rule (which must replay as written) lets it through");
        assert_eq!(forged.check_strict(), Err(EnvelopeError::WeakKey(identity::did_of(&weak))));
        // A real key's signature passes the strict check too.
        let key = SigningKey::from_bytes(&[3u8; 32]);
        assert_eq!(Envelope::sign(b"{\"a\":1}".to_vec(), &key).check_strict(), Ok(()));
    }

    #[test]
    fn sign_verify_and_detect_tampering() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let envelope = Envelope::sign(b"{\"a\":1}".to_vec(), &key);
        let (did, _) = envelope.verify().expect("verifies");
        assert_eq!(did, identity::did_of(&key.verifying_key()));

        let mut altered = envelope.clone();
        altered.payload = b"{\"a\":2}".to_vec();
        assert!(matches!(altered.verify(), Err(EnvelopeError::BadSignature(_))));

        let mut other_key = envelope.clone();
        other_key.signatures[0].keyid = identity::did_of(&SigningKey::from_bytes(&[4u8; 32]).verifying_key());
        assert!(matches!(other_key.verify(), Err(EnvelopeError::BadSignature(_))));

        let mut unsigned = envelope.clone();
        unsigned.signatures.clear();
        assert_eq!(unsigned.verify(), Err(EnvelopeError::SignatureCount(0)));
    }

    #[test]
    fn bytes_round_trip() {
        let envelope = Envelope::sign(b"{}".to_vec(), &SigningKey::from_bytes(&[5u8; 32]));
        let bytes = envelope.to_bytes();
        let parsed: Envelope = serde_json::from_slice(&bytes).expect("parse");
        assert_eq!(parsed, envelope);
        assert_eq!(parsed.to_bytes(), bytes);
    }
}
