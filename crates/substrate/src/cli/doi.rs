//! `substrate doi`: a deposit registered with DataCite, and its DOI recorded in the log.

use clap::Subcommand;

use super::{KeyArgs, NodeArgs};

#[derive(Subcommand, Debug)]
pub enum DoiCommand {
    /// Register the deposit with DataCite's REST API (POST /dois, the commons' repository
    /// account), then record the DOI its answer gives in the log, signed by you, a steward. The
    /// password is read from $DATACITE_PASSWORD, never from the command line.
    Register {
        /// The deposit's CID.
        cid: String,
        /// The DataCite REST API. Default: $DATACITE_API, else `https://api.datacite.org`
        /// (`https://api.test.datacite.org` is DataCite's test system).
        #[arg(long)]
        datacite: Option<String>,
        /// The commons' DataCite repository ID (e.g. `SUBSTRATE.COMMONS`). Default:
        /// $DATACITE_REPOSITORY.
        #[arg(long)]
        repository: Option<String>,
        /// The DOI prefix the repository may use (e.g. `10.5072`); DataCite picks the suffix.
        /// Default: $DATACITE_PREFIX.
        #[arg(long)]
        prefix: Option<String>,
        /// The landing page the DOI resolves to. Default: the deposit's page on --node.
        #[arg(long)]
        url: Option<String>,
        /// Register the DOI without making it findable (DataCite's `register` event) rather than
        /// publishing it.
        #[arg(long)]
        registered_only: bool,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Record a DOI that DataCite already assigned to the deposit (registered by hand, or by a
    /// `register` whose recording failed), signed by you, a steward.
    Record {
        cid: String,
        doi: String,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
}
