//! Identity key files on disk.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ed25519_dalek::SigningKey;
use substrate_core::identity::{ActorKind, KeyFile};

/// The key file path: the flag or env, else `$XDG_CONFIG_HOME/substrate/identity.json`.
pub fn path(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .context("neither XDG_CONFIG_HOME nor HOME is set; pass --key FILE")?;
    Ok(base.join("substrate").join("identity.json"))
}

pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// Writes a new key file; refuses to overwrite unless `force`.
pub fn create(path: &Path, kind: ActorKind, force: bool) -> anyhow::Result<KeyFile> {
    if path.exists() && !force {
        anyhow::bail!("{} already exists; pass --force to replace it (the old key is lost)", path.display());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    if force {
        let _ = std::fs::remove_file(path);
    }
    let file = KeyFile::new(kind, &generate());
    let json = serde_json::to_string_pretty(&file)?;
    substrate_store::ledger::write_secret(path, &json)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(file)
}

pub fn load(path: &Path) -> anyhow::Result<(KeyFile, SigningKey)> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("reading the key file {} (make one with `substrate id new`)", path.display())
    })?;
    KeyFile::parse(&text).with_context(|| format!("{} is not a usable key file", path.display()))
}
