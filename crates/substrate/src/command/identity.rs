//! `id new` and `id show`.

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
        IdCommand::Show { key } => {
            let path = crate::keys::path(key.key.as_deref())?;
            let (file, _) = crate::keys::load(&path)?;
            println!("{}", file.did);
            Ok(())
        }
    }
}
