//! The governed training run: the snapshot a decided mixture names, the sampler that follows the
//! mixture, and the adapter directory it publishes, signed and attributed to every contributor.

pub mod amputation;
pub mod audit;
pub mod cards;
pub mod provenance;
pub mod record;
pub mod registry;
pub mod run;
pub mod sampler;
pub mod signing;
pub mod verify;

pub use record::{Contribution, Contributor, RunRecord};
