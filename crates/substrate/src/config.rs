//! The node's configuration: one TOML file, each field overridable by a flag or environment
//! variable (flag > env > file > default).

use std::path::Path;

use anyhow::Context;

/// `substrate.toml`. Every field is optional in the file; the default applies when absent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Address the HTTP API listens on. Default `127.0.0.1:7878`; port 0 picks a free port and
    /// the bound address is printed.
    pub listen: String,
    /// Largest deposit text accepted, in bytes; larger ones get 413. Default 1 MiB.
    pub max_deposit_bytes: usize,
    /// The mesh: other nodes of this commons over libp2p. Off unless configured.
    pub mesh: MeshSettings,
    /// Taking jobs. Off unless enabled.
    pub worker: WorkerSettings,
    /// Serving models through the OpenAI-compatible routes. Off unless enabled.
    pub serving: ServingSettings,
}

/// `[serving]` in `substrate.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServingSettings {
    pub enabled: bool,
    /// The embedding model's directory. Default: all-MiniLM-L6-v2 under the models directory.
    pub embedding_model: Option<std::path::PathBuf>,
    /// The generation model's GGUF. Default: SmolLM2-135M-Instruct under the models directory.
    pub generation_model: Option<std::path::PathBuf>,
    /// Where the defaults are. Default: $SUBSTRATE_MODELS, else DATA_DIR/models.
    pub models_dir: Option<std::path::PathBuf>,
    /// Generations decoded at once. Default 1.
    pub slots: Option<usize>,
    /// Requests waiting for a slot before 429. Default 8.
    pub queue: Option<usize>,
    /// Keep a search index of the findable texts and answer `/v1/search`. Default off.
    pub search: bool,
    /// Answer inference that names nobody, charging nobody. Default off: members only.
    pub open_inference: bool,
    /// Seconds between reports of the tokens members used. Default 30.
    pub usage_report_seconds: Option<u64>,
}

/// `[worker]` in `substrate.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    pub enabled: bool,
    /// Where the model files are. Default: DATA_DIR/models and $SUBSTRATE_MODELS.
    pub models: Vec<std::path::PathBuf>,
    /// The program that runs workloads. Default: this binary.
    pub program: Option<std::path::PathBuf>,
    pub without_network_namespace: bool,
    pub without_scopes: bool,
    /// How many jobs run at once. Default: 1.
    pub slots: Option<usize>,
}

/// `[mesh]` in `substrate.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshSettings {
    /// libp2p listen multiaddr, e.g. `/ip4/127.0.0.1/tcp/7879` (port 0 picks one).
    pub listen: Option<String>,
    /// Static bootstrap list: `…/p2p/<peer id>` multiaddrs of other nodes of this commons.
    pub bootstrap: Vec<String>,
    /// The node key file (`substrate id new --kind node`). Default: DATA_DIR/node.key.
    pub node_key: Option<std::path::PathBuf>,
    /// The private-network key file (`substrate id swarm-key`). Default: DATA_DIR/swarm.key if
    /// it exists, else none (any registered node may connect).
    pub swarm_key: Option<std::path::PathBuf>,
    /// How many entries a mirror far behind verifies and keeps per step. Default 4096.
    pub sync_step: Option<u64>,
}

impl MeshSettings {
    /// Whether this node joins the mesh at all.
    pub fn enabled(&self) -> bool {
        self.listen.is_some() || !self.bootstrap.is_empty()
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: "127.0.0.1:7878".into(),
            max_deposit_bytes: 1024 * 1024,
            mesh: MeshSettings::default(),
            worker: WorkerSettings::default(),
            serving: ServingSettings::default(),
        }
    }
}

/// The config file `init` writes, with every field documented.
pub const EXAMPLE: &str = include_str!("../../../substrate.example.toml");

impl NodeConfig {
    /// Reads `path`; a missing file means all defaults.
    pub fn load(path: &Path) -> anyhow::Result<NodeConfig> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).with_context(|| {
                format!(
                    "{} is not a valid node config (see substrate.example.toml for the fields)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeConfig::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_to_the_defaults() {
        let parsed: NodeConfig = toml::from_str(EXAMPLE).expect("example parses");
        assert_eq!(parsed, NodeConfig::default());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<NodeConfig>("listne = \"x\"").is_err());
    }
}
