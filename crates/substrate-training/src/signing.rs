//! OpenSSF model-signing signatures of an adapter directory: the sigstore bundle (v0.3) that PyPI
//! `model-signing` 1.1.1 checks with `model_signing verify key --signature SIG --public_key PUB.pem
//! DIR`, made with an ECDSA P-256 key, and our own offline verifier of the same format.
//!
//! The format, as that verifier reads it: the bundle holds a DSSE envelope around an in-toto
//! Statement whose predicate lists every file of the directory (`resources`, each with the sha256
//! of its content) and whose one subject carries the root digest, the sha256 of the files' raw
//! digests in the listed order. Files are named by their POSIX path relative to the directory and
//! sorted by their list of path components, as Python sorts `PurePosixPath`s. The bundle names the
//! key only by a hint: the sha256 of its SPKI PEM text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};
use substrate_core::envelope::{PAYLOAD_TYPE, pae};

/// The bundle's media type. The verifier refuses the older `...bundle+json;version=0.3` spelling.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The in-toto statement type of the payload.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type model-signing 1.x writes and checks.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The paths model-signing leaves out of every signature by default (a directory covers its
/// subtree). Its verifier leaves them out too, so signing them would make it fail.
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// The DER `SubjectPublicKeyInfo` header of a P-256 key (id-ecPublicKey, prime256v1, then a BIT
/// STRING of 66 bytes), followed by the 65-byte uncompressed point. Fixed, so the PEM text (and
/// with it the bundle's hint) cannot fail to encode; a test holds it to `spki`'s encoder.
const P256_SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
    0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Files are read through this much buffer: adapters run to tens of megabytes and are never
/// held whole.
const READ_BUFFER: usize = 1 << 20;

/// An ECDSA P-256 key that signs adapter directories in the model-signing format (its verifier
/// takes EC keys only, on P-256, P-384 or P-521).
#[derive(Clone)]
pub struct ModelSigningKey {
    key: SigningKey,
}

impl fmt::Debug for ModelSigningKey {
    // The secret stays out of logs: the hint names the key well enough.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelSigningKey").field("hint", &self.public_key_hint()).finish()
    }
}

/// Why a model-signing key could not be read, made or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the private key is not a usable P-256 key ({detail}); give a PKCS#8 or SEC1 PEM, e.g. from `openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt`"
    )]
    Pem { detail: String },
    #[error("the private key in {} is not a usable P-256 key ({detail}); give a PKCS#8 or SEC1 PEM of a P-256 key, or move the file away to have a new key made", path.display())]
    KeyFile { path: PathBuf, detail: String },
    #[error("cannot read the private key {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the private key {}: {source}; check that its directory can be written", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot encode the private key as PKCS#8 PEM: {detail}")]
    Encode { detail: String },
}

impl ModelSigningKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> ModelSigningKey {
        ModelSigningKey { key: SigningKey::random(&mut rand_core::OsRng) }
    }

    /// Reads a private key from PEM: PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`, as `openssl
    /// ecparam -genkey` writes it, with or without its `EC PARAMETERS` block before it).
    pub fn from_pem(pem: &str) -> Result<ModelSigningKey, KeyError> {
        let pem_error = |detail: String| KeyError::Pem { detail };
        if let Some(block) = pem_block(pem, "PRIVATE KEY") {
            let key = SigningKey::from_pkcs8_pem(block).map_err(|e| pem_error(e.to_string()))?;
            return Ok(ModelSigningKey { key });
        }
        if let Some(block) = pem_block(pem, "EC PRIVATE KEY") {
            let secret = p256::SecretKey::from_sec1_pem(block)
                .map_err(|_| pem_error("its EC PRIVATE KEY block is not a P-256 SEC1 key".into()))?;
            return Ok(ModelSigningKey { key: SigningKey::from(&secret) });
        }
        if pem_block(pem, "ENCRYPTED PRIVATE KEY").is_some() {
            return Err(pem_error(
                "it is encrypted; decrypt it with `openssl pkcs8 -in KEY -nocrypt`".into(),
            ));
        }
        Err(pem_error("no PRIVATE KEY or EC PRIVATE KEY block".into()))
    }

    /// The key as PKCS#8 PEM with LF line endings, which `openssl` and Python's `cryptography`
    /// read.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        self.key.to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyError::Encode { detail: e.to_string() })
    }

    /// Reads the key at `path`, or, when there is no file there, makes one and writes it readable
    /// by its owner only. The file appears whole or not at all (temp file + rename), so a crash
    /// never leaves a truncated key that the next run would refuse.
    pub fn load_or_create(path: &Path) -> Result<ModelSigningKey, KeyError> {
        match fs::read_to_string(path).map(Zeroizing::new) {
            Ok(pem) => ModelSigningKey::from_pem(&pem).map_err(|e| match e {
                KeyError::Pem { detail } => KeyError::KeyFile { path: path.to_path_buf(), detail },
                other => other,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = ModelSigningKey::generate();
                let pem = key.to_pem()?;
                let write_error = |source| KeyError::Write { path: path.to_path_buf(), source };
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(write_error)?;
                }
                write_atomically(path, pem.as_bytes(), true).map_err(write_error)?;
                Ok(key)
            }
            Err(source) => Err(KeyError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// The public key as SPKI PEM with LF line endings, byte for byte what `openssl ec -pubout`
    /// and Python's `cryptography` write: the verifier hashes this text for the bundle's hint.
    pub fn public_key_pem(&self) -> String {
        spki_pem(self.key.verifying_key())
    }

    /// Lowercase hex sha256 of [`public_key_pem`](Self::public_key_pem): how a bundle names its
    /// key.
    pub fn public_key_hint(&self) -> String {
        hex::encode(Sha256::digest(self.public_key_pem().as_bytes()))
    }
}

/// The SPKI PEM text of a P-256 public key, in lines of 64 characters, each ending in LF.
fn spki_pem(key: &VerifyingKey) -> String {
    let mut der = P256_SPKI_HEADER.to_vec();
    der.extend_from_slice(key.to_encoded_point(false).as_bytes());
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    // Base64 is ASCII, so splitting at any byte offset is splitting at a character.
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        pem.push_str(line);
        pem.push('\n');
        rest = tail;
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// The PEM block with this label, from its BEGIN line to its END line: `openssl ecparam -genkey`
/// writes an `EC PARAMETERS` block before the key, which a single-block decoder refuses.
fn pem_block<'a>(pem: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)?;
    let stop = start + pem[start..].find(&end)? + end.len();
    Some(&pem[start..stop])
}

/// One file of a signed directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedFile {
    /// The path relative to the directory, with `/` between components.
    pub name: String,
    pub sha256: [u8; 32],
}

/// What a signature that verified says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The statement's subject name: the directory's name when it was signed (informational, the
    /// verifier never checks it).
    pub subject: String,
    /// Lowercase hex root digest over the files' digests in the statement's order.
    pub root_digest: String,
    /// The hint of the key that signed (the sha256 of its SPKI PEM).
    pub key_hint: String,
    /// Every signed file, in the statement's order.
    pub files: Vec<SignedFile>,
}

/// Why a directory could not be listed and hashed the way model-signing does it.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("{} is not a directory; give the adapter directory to sign or verify", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{} is a symbolic link, which model-signing refuses anywhere in a signed directory; replace it with a copy of what it points to, or remove it", path.display())]
    Symlink { path: PathBuf },
    #[error("{} is neither a regular file nor a directory (a fifo, socket or device), which model-signing refuses; remove it from the directory", path.display())]
    SpecialFile { path: PathBuf },
    #[error("the name of {} is not UTF-8, which a model-signing statement cannot hold; rename it", path.display())]
    NonUtf8Name { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Why a directory could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(
        "the signature name '{name}' is not a relative path inside the directory ({reason}); give a file name such as `model.sig`"
    )]
    SignatureName { name: String, reason: &'static str },
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("cannot encode the model-signing statement: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("cannot write the signature {}: {source}; check that the directory is writable", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// Why a directory's signature did not verify. Each variant says which part failed; the ones about
/// files name the file.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the signature name '{name}' is not a relative path inside the directory ({reason}); give the file name the directory was signed with, such as `model.sig`"
    )]
    SignatureName { name: String, reason: &'static str },
    #[error(
        "the public key is not a P-256 public key in SPKI PEM ({detail}); give the PEM `openssl ec -pubout` writes for the signing key"
    )]
    PublicKey { detail: String },
    #[error("cannot read the signature {}: {source}; sign the directory first, or give the signature's name", path.display())]
    ReadSignature { path: PathBuf, source: io::Error },
    #[error("{} is not a model-signing bundle ({detail}); sign the directory again", path.display())]
    MalformedBundle { path: PathBuf, detail: String },
    #[error("{} has media type '{found}', expected '{BUNDLE_MEDIA_TYPE}'; sign the directory again with model-signing 1.x or substrate", path.display())]
    MediaType { path: PathBuf, found: String },
    #[error("{} was signed by the key with hint {hint}, not by the given public key (hint {key_hint}); verify with the public key of the key that signed it", path.display())]
    WrongKey { path: PathBuf, hint: String, key_hint: String },
    #[error("{} carries payload type '{found}', expected '{PAYLOAD_TYPE}'; sign the directory again", path.display())]
    PayloadType { path: PathBuf, found: String },
    #[error("the signature in {} does not verify with the given public key: the bundle was altered or signed by another key; verify with the key that signed it, or sign the directory again", path.display())]
    BadSignature { path: PathBuf },
    #[error("the statement in {} is not a model-signing statement (_type '{statement_type}', predicateType '{predicate_type}'); sign the directory again", path.display())]
    NotModelSigning { path: PathBuf, statement_type: String, predicate_type: String },
    #[error("the statement in {} is malformed ({detail}); sign the directory again", path.display())]
    MalformedStatement { path: PathBuf, detail: String },
    #[error("the statement in {} gives root digest {claimed}, but the files it lists give {computed}: the signer wrote an inconsistent statement; sign the directory again", path.display())]
    RootDigest { path: PathBuf, claimed: String, computed: String },
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("{name} in {} is not the file that was signed (its sha256 differs){}: the directory changed after signing; fetch it again, or sign it again if the change is intended", dir.display(), more(*others))]
    ChangedFile { dir: PathBuf, name: String, others: usize },
    #[error("{name} was signed but is missing from {}{}: restore it or fetch the directory again", dir.display(), more(*others))]
    MissingFile { dir: PathBuf, name: String, others: usize },
    #[error("{name} in {} was not signed{}: remove it, or sign the directory again if it belongs there", dir.display(), more(*others))]
    UnexpectedFile { dir: PathBuf, name: String, others: usize },
}

/// How many further files differ, for a message about the first.
fn more(others: usize) -> String {
    match others {
        0 => String::new(),
        1 => " (and 1 more file differs)".to_string(),
        n => format!(" (and {n} more files differ)"),
    }
}

/// Signs every regular file under `dir` and writes the bundle as `dir/signature_name`, replacing
/// an older one whole. The signature file and [`GIT_PATHS`] are left out of the statement (and
/// listed in its `ignore_paths`); symlinks and special files anywhere are refused, because the
/// verifier refuses them.
pub fn sign_directory(dir: &Path, key: &ModelSigningKey, signature_name: &str) -> Result<(), SigningError> {
    let signature = relative_components(signature_name)
        .map_err(|reason| SigningError::SignatureName { name: signature_name.to_string(), reason })?;
    let mut ignore_paths: Vec<String> = GIT_PATHS.iter().map(|p| p.to_string()).collect();
    ignore_paths.push(signature.join("/"));
    let ignored: Vec<Vec<String>> = ignore_paths.iter().map(|p| split_components(p)).collect();
    // Hashed before the signature is written, so an older signature is never part of the new one.
    let files = hash_directory(dir, &ignored)?;

    let statement = Statement {
        statement_type: STATEMENT_TYPE.to_string(),
        subject: vec![Subject {
            name: subject_name(dir),
            digest: BTreeMap::from([("sha256".to_string(), hex::encode(root_digest(&files)))]),
        }],
        predicate_type: PREDICATE_TYPE.to_string(),
        predicate: Predicate {
            serialization: Serialization {
                method: "files".to_string(),
                hash_type: "sha256".to_string(),
                allow_symlinks: false,
                ignore_paths: Some(ignore_paths),
            },
            resources: files
                .iter()
                .map(|f| Resource {
                    name: f.name.clone(),
                    algorithm: "sha256".to_string(),
                    digest: hex::encode(f.sha256),
                })
                .collect(),
        },
    };
    // Indented as Python's protobuf MessageToJson writes it; the verifier parses the JSON, so only
    // readability is at stake, and these exact bytes are what the signature covers.
    let payload = serde_json::to_vec_pretty(&statement).map_err(SigningError::Encode)?;
    // RFC 6979 nonces (the `Signer` default): the same directory and key give the same bundle,
    // byte for byte, so re-signing an unchanged adapter changes nothing a reviewer must look at.
    let signature_der: DerSignature = key.key.sign(&pae(PAYLOAD_TYPE, &payload));
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE.to_string(),
        verification_material: VerificationMaterial {
            public_key: PublicKeyIdentifier {
                hint: Some(key.public_key_hint()),
                raw_bytes: None,
                key_details: None,
            },
            tlog_entries: Vec::new(),
        },
        dsse_envelope: DsseEnvelope {
            payload: STANDARD.encode(&payload),
            payload_type: PAYLOAD_TYPE.to_string(),
            signatures: vec![DsseSignature {
                sig: STANDARD.encode(signature_der.as_bytes()),
                keyid: Some(String::new()),
            }],
        },
    };
    let bytes = serde_json::to_vec(&bundle).map_err(SigningError::Encode)?;
    let path = join_components(dir, &signature);
    write_atomically(&path, &bytes, false).map_err(|source| SigningError::Write { path, source })
}

/// Checks `dir` against its signature `dir/signature_name`, offline, with the signer's public key:
/// the bundle's form and hint, the DSSE signature, the statement, its root digest, and then every
/// file both ways (each signed file is there with the signed content, and nothing else is).
pub fn verify_directory(
    dir: &Path,
    signature_name: &str,
    public_key_pem: &str,
) -> Result<Verified, VerifyError> {
    let signature = relative_components(signature_name)
        .map_err(|reason| VerifyError::SignatureName { name: signature_name.to_string(), reason })?;
    let key = VerifyingKey::from_public_key_pem(public_key_pem)
        .map_err(|e| VerifyError::PublicKey { detail: e.to_string() })?;
    let key_hint = hex::encode(Sha256::digest(spki_pem(&key).as_bytes()));

    let path = join_components(dir, &signature);
    let text = fs::read(&path).map_err(|source| VerifyError::ReadSignature { path: path.clone(), source })?;
    let malformed_bundle = |detail: String| VerifyError::MalformedBundle { path: path.clone(), detail };
    let bundle: Bundle = serde_json::from_slice(&text).map_err(|e| malformed_bundle(e.to_string()))?;
    if bundle.media_type != BUNDLE_MEDIA_TYPE {
        return Err(VerifyError::MediaType { path, found: bundle.media_type });
    }
    // model-signing passes a bundle without a hint (with a warning): the signature check below
    // still ties it to the key.
    let hint = bundle.verification_material.public_key.hint.unwrap_or_default();
    if !hint.is_empty() && hint != key_hint {
        return Err(VerifyError::WrongKey { path, hint, key_hint });
    }
    let envelope = bundle.dsse_envelope;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType { path, found: envelope.payload_type });
    }
    // Only the first signature counts, as in model-signing.
    let first =
        envelope.signatures.first().ok_or_else(|| malformed_bundle("it carries no signature".into()))?;
    let sig = STANDARD
        .decode(&first.sig)
        .map_err(|e| malformed_bundle(format!("the signature is not base64: {e}")))?;
    let sig = Signature::from_der(&sig)
        .map_err(|_| malformed_bundle("the signature is not a DER-encoded ECDSA signature".into()))?;
    let payload = STANDARD
        .decode(&envelope.payload)
        .map_err(|e| malformed_bundle(format!("the payload is not base64: {e}")))?;
    if key.verify(&pae(PAYLOAD_TYPE, &payload), &sig).is_err() {
        return Err(VerifyError::BadSignature { path });
    }

    let statement = read_statement(&path, &payload)?;
    let signed = signed_files(&path, &statement)?;
    let claimed =
        statement.subject[0].digest.get("sha256").map(|d| d.to_ascii_lowercase()).unwrap_or_default();
    let computed = hex::encode(root_digest(&signed));
    if claimed != computed {
        return Err(VerifyError::RootDigest { path, claimed, computed });
    }

    // The verifier leaves out what the statement says was left out, besides its own defaults.
    let mut ignored: Vec<Vec<String>> = GIT_PATHS.iter().map(|p| split_components(p)).collect();
    ignored.push(signature);
    for p in statement.predicate.serialization.ignore_paths.iter().flatten() {
        // An absolute path or one climbing out of the directory can never cover a file in it.
        if !p.starts_with('/') {
            let components = split_components(p);
            if !components.is_empty() && !components.iter().any(|c| c == "..") {
                ignored.push(components);
            }
        }
    }
    let found = hash_directory(dir, &ignored)?;
    compare(dir, &signed, &found)?;

    Ok(Verified {
        subject: statement.subject[0].name.clone(),
        root_digest: computed,
        key_hint,
        files: signed,
    })
}

/// Parses and checks the payload: its types, one subject, and a `files` serialization.
fn read_statement(path: &Path, payload: &[u8]) -> Result<Statement, VerifyError> {
    let malformed = |detail: String| VerifyError::MalformedStatement { path: path.to_path_buf(), detail };
    // The types first, so another kind of statement is named as such rather than as malformed.
    let header: StatementHeader =
        serde_json::from_slice(payload).map_err(|e| malformed(format!("not an in-toto statement: {e}")))?;
    if header.statement_type != STATEMENT_TYPE || header.predicate_type != PREDICATE_TYPE {
        return Err(VerifyError::NotModelSigning {
            path: path.to_path_buf(),
            statement_type: header.statement_type,
            predicate_type: header.predicate_type,
        });
    }
    let statement: Statement = serde_json::from_slice(payload).map_err(|e| malformed(e.to_string()))?;
    if statement.subject.len() != 1 {
        return Err(malformed(format!("{} subjects, expected exactly one", statement.subject.len())));
    }
    let serialization = &statement.predicate.serialization;
    if serialization.method != "files" {
        return Err(malformed(format!("serialization method '{}', expected 'files'", serialization.method)));
    }
    if serialization.hash_type != "sha256" {
        return Err(malformed(format!("hash type '{}', expected 'sha256'", serialization.hash_type)));
    }
    Ok(statement)
}

/// The statement's files, in its order, with names normalised as `PurePosixPath` does (`./x` is
/// `x`).
fn signed_files(path: &Path, statement: &Statement) -> Result<Vec<SignedFile>, VerifyError> {
    let malformed = |detail: String| VerifyError::MalformedStatement { path: path.to_path_buf(), detail };
    let mut names = BTreeSet::new();
    let mut files = Vec::with_capacity(statement.predicate.resources.len());
    for resource in &statement.predicate.resources {
        if resource.algorithm != "sha256" {
            return Err(malformed(format!(
                "{} has digest algorithm '{}', expected 'sha256'",
                resource.name, resource.algorithm
            )));
        }
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&resource.digest, &mut sha256)
            .map_err(|_| malformed(format!("the digest of {} is not 64 hex digits", resource.name)))?;
        let components = split_components(&resource.name);
        if components.is_empty() {
            return Err(malformed(
                "a resource names the model itself ('.'): it signs a single file, not a directory".into(),
            ));
        }
        let name = components.join("/");
        if !names.insert(name.clone()) {
            return Err(malformed(format!("{name} is listed twice")));
        }
        files.push(SignedFile { name, sha256 });
    }
    Ok(files)
}

/// Finds the first difference, in path order, between the signed files and those on disk.
fn compare(dir: &Path, signed: &[SignedFile], found: &[SignedFile]) -> Result<(), VerifyError> {
    let by_path = |files: &[SignedFile]| -> BTreeMap<Vec<String>, [u8; 32]> {
        files.iter().map(|f| (split_components(&f.name), f.sha256)).collect()
    };
    let (signed, found) = (by_path(signed), by_path(found));
    let paths: BTreeSet<&Vec<String>> = signed.keys().chain(found.keys()).collect();
    let mut differences = paths.into_iter().filter_map(|p| match (signed.get(p), found.get(p)) {
        (Some(a), Some(b)) if a == b => None,
        (s, f) => Some((p.join("/"), s.is_some(), f.is_some())),
    });
    let Some((name, in_signature, on_disk)) = differences.next() else { return Ok(()) };
    let others = differences.count();
    let dir = dir.to_path_buf();
    Err(match (in_signature, on_disk) {
        (true, true) => VerifyError::ChangedFile { dir, name, others },
        (true, false) => VerifyError::MissingFile { dir, name, others },
        _ => VerifyError::UnexpectedFile { dir, name, others },
    })
}

/// Every regular file under `dir` outside the ignored paths, hashed, sorted by path components.
/// Like model-signing, the type check covers ignored paths too (a symlink inside `.git` fails its
/// verifier), so the walk goes everywhere.
fn hash_directory(dir: &Path, ignored: &[Vec<String>]) -> Result<Vec<SignedFile>, HashError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HashError::Io { path, source }
    };
    let meta = fs::symlink_metadata(dir).map_err(io_error(dir))?;
    if meta.file_type().is_symlink() {
        return Err(HashError::Symlink { path: dir.to_path_buf() });
    }
    if !meta.is_dir() {
        return Err(HashError::NotADirectory { path: dir.to_path_buf() });
    }

    let mut listed: Vec<(Vec<String>, PathBuf)> = Vec::new();
    let mut pending: Vec<(Vec<String>, PathBuf)> = vec![(Vec::new(), dir.to_path_buf())];
    while let Some((prefix, path)) = pending.pop() {
        for entry in fs::read_dir(&path).map_err(io_error(&path))? {
            let entry = entry.map_err(io_error(&path))?;
            let full = entry.path();
            let name =
                entry.file_name().into_string().map_err(|_| HashError::NonUtf8Name { path: full.clone() })?;
            let file_type = entry.file_type().map_err(io_error(&full))?;
            let mut components = prefix.clone();
            components.push(name);
            if file_type.is_symlink() {
                return Err(HashError::Symlink { path: full });
            } else if file_type.is_dir() {
                pending.push((components, full));
            } else if !file_type.is_file() {
                return Err(HashError::SpecialFile { path: full });
            } else if !ignored.iter().any(|i| components.starts_with(i)) {
                listed.push((components, full));
            }
        }
    }
    // Python orders PurePosixPaths by their component lists, comparing strings by code point; Rust
    // compares UTF-8 by byte, which is the same order. So `a/b` < `a-b` < `a.txt`.
    listed.sort_by(|a, b| a.0.cmp(&b.0));

    let mut buffer = vec![0u8; READ_BUFFER];
    listed
        .into_iter()
        .map(|(components, full)| {
            let sha256 = hash_file(&full, &mut buffer).map_err(io_error(&full))?;
            Ok(SignedFile { name: components.join("/"), sha256 })
        })
        .collect()
}

fn hash_file(path: &Path, buffer: &mut [u8]) -> io::Result<[u8; 32]> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    loop {
        match file.read(buffer) {
            Ok(0) => return Ok(hasher.finalize().into()),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// sha256 over the raw 32-byte digests in order (not over their hex).
fn root_digest(files: &[SignedFile]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.sha256);
    }
    hasher.finalize().into()
}

/// A path's components as `PurePosixPath` parses them: empty and `.` components dropped.
fn split_components(path: &str) -> Vec<String> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect()
}

/// The components of a path that must name a file inside the directory.
fn relative_components(name: &str) -> Result<Vec<String>, &'static str> {
    if name.starts_with('/') {
        return Err("it is absolute");
    }
    let components = split_components(name);
    if components.is_empty() {
        return Err("it names the directory itself");
    }
    if components.iter().any(|c| c == "..") {
        return Err("it climbs out with '..'");
    }
    Ok(components)
}

fn join_components(dir: &Path, components: &[String]) -> PathBuf {
    components.iter().fold(dir.to_path_buf(), |path, c| path.join(c))
}

/// The directory's own name, as model-signing names the subject (resolving `.` and `..`).
fn subject_name(dir: &Path) -> String {
    let name = match dir.file_name() {
        Some(name) => Some(name.to_os_string()),
        None => dir.canonicalize().ok().and_then(|d| d.file_name().map(|n| n.to_os_string())),
    };
    name.map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Writes `bytes` to a temp file beside `path`, syncs it, and renames it over `path`, so readers
/// see the old file or the new one and never a part.
fn write_atomically(path: &Path, bytes: &[u8], secret: bool) -> io::Result<()> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&temp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&temp, path)) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    // The rename is durable only once the directory entry is.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

// The bundle as the sigstore_models reader parses it: strictly, with no field it does not know
// (an unknown key anywhere makes model-signing refuse the bundle, so we refuse it too).

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: VerificationMaterial,
    dsse_envelope: DsseEnvelope,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VerificationMaterial {
    public_key: PublicKeyIdentifier,
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PublicKeyIdentifier {
    #[serde(default)]
    hint: Option<String>,
    // The reader drops these two before parsing, so they are accepted and never used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_bytes: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_details: Option<serde_json::Value>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DsseEnvelope {
    /// Standard base64 with padding: the reader's decoder corrupts the URL-safe alphabet.
    payload: String,
    payload_type: String,
    signatures: Vec<DsseSignature>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DsseSignature {
    /// Standard base64 of the DER signature (a raw r‖s one fails).
    sig: String,
    #[serde(default)]
    keyid: Option<String>,
}

// The payload. Unlike the bundle, extra keys in it are allowed: model-signing ignores them.

#[derive(serde::Deserialize)]
struct StatementHeader {
    #[serde(rename = "_type")]
    statement_type: String,
    #[serde(rename = "predicateType")]
    predicate_type: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    statement_type: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Predicate,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Subject {
    name: String,
    digest: BTreeMap<String, String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Predicate {
    serialization: Serialization,
    resources: Vec<Resource>,
}

/// model-signing requires `method`, `hash_type` and `allow_symlinks`; `ignore_paths` is optional,
/// and what it lists is left out of the re-hash.
#[derive(serde::Serialize, serde::Deserialize)]
struct Serialization {
    method: String,
    hash_type: String,
    allow_symlinks: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ignore_paths: Option<Vec<String>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Resource {
    name: String,
    /// Lowercase `sha256`: the verifier compares it as a string.
    algorithm: String,
    digest: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
