//! `id new` and `id show`.

use anyhow::Context;
use substrate_core::identity::ActorKind;

use crate::cli::IdCommand;

pub fn run(command: IdCommand) -> anyhow::Result<()> {
    match command {
        IdCommand::New { key, kind, force } => {
            let kind_name = kind.clone();
            let kind = match kind.as_str() {
                "person" => ActorKind::Person,
                "agent" => ActorKind::Agent,
                "node" => ActorKind::Node,
                other => anyhow::bail!("unknown key kind '{other}'; use person, agent or node"),
            };
            let path = crate::keys::path(key.key.as_deref())?;
            let file = crate::keys::create(&path, kind, force)?;
            println!("{}", file.did);
            let signs = if kind == ActorKind::Node {
                "it identifies your node and signs its job receipts"
            } else {
                "it signs your deposits and votes"
            };
            eprintln!("new {kind_name} key saved to {} (keep it private: {signs})", path.display());
            Ok(())
        }
        IdCommand::SwarmKey { out, force } => {
            if out.exists() && !force {
                anyhow::bail!("{} already exists; pass --force to replace it", out.display());
            }
            let mut secret = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
            let key = substrate_mesh::SwarmKey::from_secret(secret);
            if force {
                let _ = std::fs::remove_file(&out);
            }
            substrate_store::ledger::write_secret(&out, &key.to_file())
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{}", key.fingerprint());
            eprintln!(
                "new private-network key saved to {} (copy it to every node's data directory as swarm.key; keep it private)",
                out.display()
            );
            Ok(())
        }
        IdCommand::Show { key } => {
            let path = crate::keys::path(key.key.as_deref())?;
            let (file, _) = crate::keys::load(&path)?;
            println!("{}", file.did);
            Ok(())
        }
    }
}
