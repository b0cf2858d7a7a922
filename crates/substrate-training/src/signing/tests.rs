use super::*;
use p256::elliptic_curve::scalar::IsHigh;
use p256::pkcs8::EncodePublicKey;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/model-signing");

/// A directory with nested files, a dotfile, an empty file and git paths to leave out.
fn adapter_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("weights/layers")).unwrap();
    fs::create_dir_all(root.join(".git")).unwrap();
    fs::write(root.join("adapter_config.json"), b"{\"r\": 8}\n").unwrap();
    fs::write(root.join("weights/adapter_model.safetensors"), vec![7u8; 3 * READ_BUFFER + 5]).unwrap();
    fs::write(root.join("weights/layers/0.bin"), b"layer zero").unwrap();
    fs::write(root.join("weights/empty.dat"), b"").unwrap();
    fs::write(root.join(".hidden"), b"dot").unwrap();
    fs::write(root.join(".git/HEAD"), b"ref: refs/heads/main\n").unwrap();
    fs::write(root.join(".gitignore"), b"*.tmp\n").unwrap();
    dir
}

fn signed_dir() -> (tempfile::TempDir, ModelSigningKey) {
    let dir = adapter_dir();
    let key = ModelSigningKey::generate();
    sign_directory(dir.path(), &key, "model.sig").unwrap();
    (dir, key)
}

fn names(files: &[SignedFile]) -> Vec<&str> {
    files.iter().map(|f| f.name.as_str()).collect()
}

fn statement_of(signature: &Path) -> serde_json::Value {
    let bundle: serde_json::Value = serde_json::from_slice(&fs::read(signature).unwrap()).unwrap();
    let payload = STANDARD.decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

#[test]
fn a_signed_directory_verifies() {
    let (dir, key) = signed_dir();
    let verified = verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap();
    assert_eq!(
        names(&verified.files),
        [
            ".hidden",
            "adapter_config.json",
            "weights/adapter_model.safetensors",
            "weights/empty.dat",
            "weights/layers/0.bin"
        ]
    );
    assert_eq!(verified.key_hint, key.public_key_hint());
    assert_eq!(verified.subject, dir.path().file_name().unwrap().to_string_lossy());
    let big = Sha256::digest(vec![7u8; 3 * READ_BUFFER + 5]);
    assert_eq!(verified.files[2].sha256, <[u8; 32]>::from(big));
    assert_eq!(verified.files[3].sha256, <[u8; 32]>::from(Sha256::digest(b"")));

    let statement = statement_of(&dir.path().join("model.sig"));
    assert_eq!(
        statement["predicate"]["serialization"],
        serde_json::json!({
            "method": "files", "hash_type": "sha256", "allow_symlinks": false,
            "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore", "model.sig"],
        })
    );
    assert_eq!(statement["subject"][0]["digest"]["sha256"], verified.root_digest);
}

#[test]
fn the_bundle_has_exactly_the_fields_model_signing_reads() {
    let (dir, key) = signed_dir();
    let bundle: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("model.sig")).unwrap()).unwrap();
    let mut shape = bundle.clone();
    shape["dsseEnvelope"]["payload"] = "…".into();
    shape["dsseEnvelope"]["signatures"][0]["sig"] = "…".into();
    assert_eq!(
        shape,
        serde_json::json!({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": key.public_key_hint()}, "tlogEntries": []},
            "dsseEnvelope": {
                "payload": "…",
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{"sig": "…", "keyid": ""}],
            },
        })
    );
    // The signature is DER, which the verifier requires (a raw r‖s one fails there).
    let sig = STANDARD.decode(bundle["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap()).unwrap();
    assert_eq!(sig[0], 0x30);
    assert!(Signature::from_der(&sig).is_ok());
}

#[test]
fn signing_again_replaces_the_signature_and_never_signs_it() {
    let (dir, key) = signed_dir();
    let first = fs::read(dir.path().join("model.sig")).unwrap();
    sign_directory(dir.path(), &key, "model.sig").unwrap();
    assert_eq!(
        fs::read(dir.path().join("model.sig")).unwrap(),
        first,
        "an unchanged directory signs the same"
    );
    let verified = verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap();
    assert!(!names(&verified.files).contains(&"model.sig"));
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left behind: {leftovers:?}");
}

#[test]
fn a_changed_byte_names_the_file() {
    let (dir, key) = signed_dir();
    let path = dir.path().join("weights/layers/0.bin");
    let mut bytes = fs::read(&path).unwrap();
    bytes[3] ^= 1;
    fs::write(&path, bytes).unwrap();
    let err = verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap_err();
    assert!(
        matches!(&err, VerifyError::ChangedFile { name, others: 0, .. } if name == "weights/layers/0.bin"),
        "{err:?}"
    );
    assert!(err.to_string().contains("weights/layers/0.bin"), "{err}");
}

#[test]
fn an_added_file_is_named() {
    let (dir, key) = signed_dir();
    fs::write(dir.path().join("weights/extra.bin"), b"not signed").unwrap();
    let err = verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap_err();
    assert!(
        matches!(&err, VerifyError::UnexpectedFile { name, .. } if name == "weights/extra.bin"),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("weights/extra.bin in "), "{err}");
}

#[test]
fn a_removed_file_is_named() {
    let (dir, key) = signed_dir();
    fs::remove_file(dir.path().join("weights/empty.dat")).unwrap();
    let err = verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap_err();
    assert!(matches!(&err, VerifyError::MissingFile { name, .. } if name == "weights/empty.dat"), "{err:?}");
    assert!(err.to_string().starts_with("weights/empty.dat was signed but is missing"), "{err}");
}

#[test]
fn several_differences_name_the_first_and_count_the_rest() {
    let (dir, key) = signed_dir();
    fs::write(dir.path().join(".hidden"), b"changed").unwrap();
    fs::write(dir.path().join("zzz"), b"new").unwrap();
    fs::remove_file(dir.path().join("adapter_config.json")).unwrap();
    let err = verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap_err();
    assert!(matches!(&err, VerifyError::ChangedFile { name, others: 2, .. } if name == ".hidden"), "{err:?}");
    assert!(err.to_string().contains("(and 2 more files differ)"), "{err}");
}

#[test]
fn git_paths_are_left_out_both_ways() {
    let (dir, key) = signed_dir();
    fs::write(dir.path().join(".git/HEAD"), b"changed").unwrap();
    fs::create_dir_all(dir.path().join(".github")).unwrap();
    fs::write(dir.path().join(".github/workflow.yml"), b"on: push").unwrap();
    verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap();
}

#[cfg(unix)]
#[test]
fn a_symlink_is_refused_by_sign_and_by_verify() {
    let (dir, key) = signed_dir();
    std::os::unix::fs::symlink("adapter_config.json", dir.path().join("weights/link.json")).unwrap();
    let err = sign_directory(dir.path(), &key, "model.sig").unwrap_err();
    assert!(
        matches!(&err, SigningError::Hash(HashError::Symlink { path }) if path.ends_with("weights/link.json")),
        "{err:?}"
    );
    assert!(err.to_string().contains("weights/link.json"), "{err}");
    let err = verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap_err();
    assert!(matches!(err, VerifyError::Hash(HashError::Symlink { .. })), "{err:?}");

    // Even inside .git, as model-signing checks types before it leaves paths out.
    let dir = adapter_dir();
    std::os::unix::fs::symlink("HEAD", dir.path().join(".git/ORIG_HEAD")).unwrap();
    let err = sign_directory(dir.path(), &key, "model.sig").unwrap_err();
    assert!(matches!(err, SigningError::Hash(HashError::Symlink { .. })), "{err:?}");
}

#[cfg(unix)]
#[test]
fn a_non_utf8_name_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let dir = adapter_dir();
    let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
    if fs::write(dir.path().join(name), b"x").is_err() {
        return; // a filesystem that insists on UTF-8 names cannot hold the case
    }
    let err = sign_directory(dir.path(), &ModelSigningKey::generate(), "model.sig").unwrap_err();
    assert!(matches!(err, SigningError::Hash(HashError::NonUtf8Name { .. })), "{err:?}");
}

#[test]
fn another_public_key_is_refused() {
    let (dir, _) = signed_dir();
    let other = ModelSigningKey::generate();
    let err = verify_directory(dir.path(), "model.sig", &other.public_key_pem()).unwrap_err();
    assert!(
        matches!(&err, VerifyError::WrongKey { key_hint, .. } if *key_hint == other.public_key_hint()),
        "{err:?}"
    );

    // Without the hint, the signature itself still refuses the other key.
    let path = dir.path().join("model.sig");
    let mut bundle: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    bundle["verificationMaterial"]["publicKey"] = serde_json::json!({});
    fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let err = verify_directory(dir.path(), "model.sig", &other.public_key_pem()).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");
}

#[test]
fn an_altered_bundle_is_refused() {
    let (dir, key) = signed_dir();
    let path = dir.path().join("model.sig");
    let original: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let verify_with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut bundle = original.clone();
        edit(&mut bundle);
        fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
        verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap_err()
    };

    // A statement that lists one file less, re-encoded but not re-signed.
    let err = verify_with(&|b| {
        let mut statement = statement_of(&dir.path().join("model.sig"));
        statement["predicate"]["resources"].as_array_mut().unwrap().pop();
        b["dsseEnvelope"]["payload"] = STANDARD.encode(serde_json::to_vec(&statement).unwrap()).into();
    });
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");

    let err = verify_with(&|b| b["extra"] = true.into());
    assert!(
        matches!(&err, VerifyError::MalformedBundle { detail, .. } if detail.contains("extra")),
        "{err:?}"
    );
    let err =
        verify_with(&|b| b["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.3".into());
    assert!(matches!(err, VerifyError::MediaType { .. }), "{err:?}");
    let err = verify_with(&|b| b["dsseEnvelope"]["payloadType"] = "application/json".into());
    assert!(matches!(err, VerifyError::PayloadType { .. }), "{err:?}");
    let err = verify_with(&|b| b["dsseEnvelope"]["signatures"] = serde_json::json!([]));
    assert!(matches!(err, VerifyError::MalformedBundle { .. }), "{err:?}");
    let err = verify_with(&|b| b["dsseEnvelope"]["signatures"][0]["sig"] = STANDARD.encode([1u8; 64]).into());
    assert!(matches!(err, VerifyError::MalformedBundle { .. }), "{err:?}");
}

/// A statement signed properly but wrong inside: each check after the signature has its say.
#[test]
fn a_signed_but_wrong_statement_is_refused() {
    let (dir, key) = signed_dir();
    let path = dir.path().join("model.sig");
    let original = statement_of(&path);
    let resign = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut statement = original.clone();
        edit(&mut statement);
        let payload = serde_json::to_vec(&statement).unwrap();
        let sig: DerSignature = key.key.sign(&pae(PAYLOAD_TYPE, &payload));
        let mut bundle: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        bundle["dsseEnvelope"]["payload"] = STANDARD.encode(&payload).into();
        bundle["dsseEnvelope"]["signatures"][0]["sig"] = STANDARD.encode(sig.as_bytes()).into();
        fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
        verify_directory(dir.path(), "model.sig", &key.public_key_pem())
    };

    let err = resign(&|s| s["predicateType"] = "https://slsa.dev/provenance/v1".into()).unwrap_err();
    assert!(matches!(err, VerifyError::NotModelSigning { .. }), "{err:?}");
    let err = resign(&|s| s["subject"][0]["digest"]["sha256"] = "00".repeat(32).into()).unwrap_err();
    assert!(matches!(err, VerifyError::RootDigest { .. }), "{err:?}");
    let err = resign(&|s| s["predicate"]["serialization"]["method"] = "shards".into()).unwrap_err();
    assert!(matches!(err, VerifyError::MalformedStatement { .. }), "{err:?}");
    let err = resign(&|s| {
        s["predicate"]["serialization"].as_object_mut().unwrap().remove("allow_symlinks");
    })
    .unwrap_err();
    assert!(matches!(err, VerifyError::MalformedStatement { .. }), "{err:?}");
    let err = resign(&|s| s["predicate"]["resources"][0]["algorithm"] = "SHA256".into()).unwrap_err();
    assert!(matches!(err, VerifyError::MalformedStatement { .. }), "{err:?}");

    // What model-signing accepts, we accept: extra keys, `./` names, uppercase hex, any order.
    let verified = resign(&|s| {
        s["extra"] = true.into();
        s["predicate"]["resources"][1]["name"] = "./adapter_config.json".into();
        let digest = s["predicate"]["resources"][1]["digest"].as_str().unwrap().to_uppercase();
        s["predicate"]["resources"][1]["digest"] = digest.into();
        s["predicate"]["resources"].as_array_mut().unwrap().reverse();
        let files: Vec<[u8; 32]> = s["predicate"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut d = [0u8; 32];
                hex::decode_to_slice(r["digest"].as_str().unwrap(), &mut d).unwrap();
                d
            })
            .collect();
        s["subject"][0]["digest"]["sha256"] = hex::encode(Sha256::digest(files.concat())).into();
    })
    .unwrap();
    assert_eq!(verified.files[0].name, "weights/layers/0.bin");
}

#[test]
fn ignore_paths_in_the_statement_are_left_out_of_the_rehash() {
    let dir = adapter_dir();
    let key = ModelSigningKey::generate();
    sign_directory(dir.path(), &key, "model.sig").unwrap();
    let path = dir.path().join("model.sig");
    let mut statement = statement_of(&path);
    statement["predicate"]["serialization"]["ignore_paths"].as_array_mut().unwrap().extend([
        "logs".into(),
        "/etc".into(),
        "../x".into(),
    ]);
    let payload = serde_json::to_vec(&statement).unwrap();
    let sig: DerSignature = key.key.sign(&pae(PAYLOAD_TYPE, &payload));
    let mut bundle: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    bundle["dsseEnvelope"]["payload"] = STANDARD.encode(&payload).into();
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = STANDARD.encode(sig.as_bytes()).into();
    fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    fs::create_dir_all(dir.path().join("logs")).unwrap();
    fs::write(dir.path().join("logs/train.log"), b"step 1").unwrap();
    verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap();
}

/// A high-S signature (as OpenSSL and Python make half the time) verifies: only the DER form
/// and the equation matter.
#[test]
fn a_high_s_signature_verifies() {
    let (dir, key) = signed_dir();
    let path = dir.path().join("model.sig");
    let mut bundle: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let der = STANDARD.decode(bundle["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap()).unwrap();
    let sig = Signature::from_der(&der).unwrap();
    let (r, s) = sig.split_scalars();
    let flipped = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
    assert_ne!(sig.s().is_high().unwrap_u8(), flipped.s().is_high().unwrap_u8());
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = STANDARD.encode(flipped.to_der().as_bytes()).into();
    fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    verify_directory(dir.path(), "model.sig", &key.public_key_pem()).unwrap();
}

/// The order of Python's `sorted(PurePosixPath)`, as the library's own signature of the
/// fixture lists it: by component list, so `a/b` < `a-b` < `a.txt`.
#[test]
fn resources_are_ordered_as_python_orders_paths() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.txt", "a-b", "a/b", "B/x", ".hidden"] {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, name).unwrap();
    }
    let ours = hash_directory(dir.path(), &[]).unwrap();
    let python = statement_of(&Path::new(FIXTURES).join("sortm/sortm.sig"));
    let python: Vec<&str> = python["predicate"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(python, [".hidden", "B/x", "a/b", "a-b", "a.txt"]);
    assert_eq!(names(&ours), python);
}

/// Interop: the signature PyPI model-signing 1.1.1 itself made of the fixture directory (with
/// its key's public half beside it) passes our verifier, and a tampered copy does not.
#[test]
fn the_python_librarys_own_signature_verifies() {
    let fixtures = Path::new(FIXTURES);
    let public_key = fs::read_to_string(fixtures.join("pub.pem")).unwrap();
    let verified = verify_directory(&fixtures.join("sortm"), "sortm.sig", &public_key).unwrap();
    assert_eq!(verified.subject, "sortm");
    assert_eq!(verified.root_digest, "ec8418cf33e35aabd52164542351b4fbc32658b455c6e31f611677920830a578");
    assert_eq!(verified.key_hint, hex::encode(Sha256::digest(public_key.as_bytes())));

    let copy = tempfile::tempdir().unwrap();
    for file in ["sortm.sig", ".hidden", "B/x", "a/b", "a-b", "a.txt"] {
        let to = copy.path().join(file);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(fixtures.join("sortm").join(file), to).unwrap();
    }
    verify_directory(copy.path(), "sortm.sig", &public_key).unwrap();
    fs::write(copy.path().join("a-b"), b"4\n").unwrap();
    let err = verify_directory(copy.path(), "sortm.sig", &public_key).unwrap_err();
    assert!(matches!(&err, VerifyError::ChangedFile { name, .. } if name == "a-b"), "{err:?}");
}

#[test]
fn the_public_key_pem_is_what_openssl_writes() {
    let key = ModelSigningKey::generate();
    let ours = key.public_key_pem();
    assert_eq!(ours, key.key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap());
    assert!(ours.ends_with("-----END PUBLIC KEY-----\n"));
    assert_eq!(ours.lines().map(str::len).collect::<Vec<_>>(), [26, 64, 60, 24]);

    // And the fixture's pub.pem, written by Python's cryptography, comes back byte for byte.
    let python = fs::read_to_string(Path::new(FIXTURES).join("pub.pem")).unwrap();
    let parsed = VerifyingKey::from_public_key_pem(&python).unwrap();
    assert_eq!(spki_pem(&parsed), python);
}

#[test]
fn keys_round_trip_through_pem() {
    let key = ModelSigningKey::generate();
    let pem = key.to_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let back = ModelSigningKey::from_pem(&pem).unwrap();
    assert_eq!(back.public_key_pem(), key.public_key_pem());

    // SEC1, as `openssl ecparam -genkey` writes it, with its parameters block first.
    let secret = p256::SecretKey::from(key.key.as_nonzero_scalar());
    let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
    let with_params =
        format!("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}", *sec1);
    assert_eq!(ModelSigningKey::from_pem(&with_params).unwrap().public_key_pem(), key.public_key_pem());

    let err = ModelSigningKey::from_pem(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("encrypted"), "{err}");
    let err = ModelSigningKey::from_pem(&key.public_key_pem()).unwrap_err();
    assert!(matches!(err, KeyError::Pem { .. }), "{err:?}");
    assert!(format!("{key:?}").contains(&key.public_key_hint()));
}

#[test]
fn load_or_create_writes_an_owner_only_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/model-signing.pem");
    let made = ModelSigningKey::load_or_create(&path).unwrap();
    let again = ModelSigningKey::load_or_create(&path).unwrap();
    assert_eq!(made.public_key_pem(), again.public_key_pem());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "a temp file was left behind");

    fs::write(&path, "not a key").unwrap();
    let err = ModelSigningKey::load_or_create(&path).unwrap_err();
    assert!(matches!(&err, KeyError::KeyFile { path: p, .. } if *p == path), "{err:?}");
}

#[test]
fn signature_names_must_stay_inside_the_directory() {
    let dir = adapter_dir();
    let key = ModelSigningKey::generate();
    for name in ["", ".", "/tmp/model.sig", "../model.sig"] {
        let err = sign_directory(dir.path(), &key, name).unwrap_err();
        assert!(matches!(err, SigningError::SignatureName { .. }), "{name}: {err:?}");
    }
    sign_directory(dir.path(), &key, "signatures/model.sig").unwrap_err();
    fs::create_dir_all(dir.path().join("signatures")).unwrap();
    sign_directory(dir.path(), &key, "signatures/model.sig").unwrap();
    verify_directory(dir.path(), "signatures/model.sig", &key.public_key_pem()).unwrap();
}

#[test]
fn a_file_instead_of_a_directory_is_refused() {
    let dir = adapter_dir();
    let err =
        sign_directory(&dir.path().join(".hidden"), &ModelSigningKey::generate(), "model.sig").unwrap_err();
    assert!(matches!(err, SigningError::Hash(HashError::NotADirectory { .. })), "{err:?}");
}
