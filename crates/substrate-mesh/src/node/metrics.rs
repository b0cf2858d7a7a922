//! The node's own metrics, registered beside libp2p's and gossipsub's, in the Prometheus text
//! format ([`super::MeshHandle::metrics`]).

use libp2p::metrics::Registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tracing::warn;

use super::Node;

/// The node's own metrics, registered beside libp2p's.
pub(super) struct Metrics {
    registry: Registry,
    pub(super) libp2p: libp2p::metrics::Metrics,
    log_height: Gauge,
    head: Gauge,
    lag: Gauge,
    pub(super) entries_verified: Counter,
    pub(super) ranges_rejected: Counter,
    pub(super) checkpoints_cosigned: Counter,
    pub(super) cosignatures_heard: Counter,
    pub(super) bytes_served: Counter,
    pub(super) texts_served: Counter,
    pub(super) texts_withheld: Counter,
    pub(super) texts_kept: Counter,
    pub(super) adapter_files_kept: Counter,
    pub(super) forwarded: Counter,
}

impl Metrics {
    pub(super) fn register(mut registry: Registry) -> Metrics {
        let libp2p = libp2p::metrics::Metrics::new(&mut registry);
        let ours = registry.sub_registry_with_prefix("substrate");
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        Metrics {
            log_height: gauge(ours, "log_height", "Entries in the log this node holds"),
            head: gauge(ours, "log_head", "Largest checkpoint size this node has heard of"),
            lag: gauge(
                ours,
                "replication_lag",
                "Entries between the largest checkpoint heard and the log held",
            ),
            entries_verified: counter(ours, "entries_verified", "Entries a mirror verified and kept"),
            ranges_rejected: counter(
                ours,
                "ranges_rejected",
                "Ranges or checkpoints refused by verification",
            ),
            checkpoints_cosigned: counter(ours, "checkpoints_cosigned", "Checkpoints this node cosigned"),
            cosignatures_heard: counter(
                ours,
                "cosignatures_verified",
                "Cosignatures by registered nodes verified",
            ),
            bytes_served: counter(
                ours,
                "bytes_served",
                "Bytes of leaves, proofs, texts and adapter files served to peers",
            ),
            texts_served: counter(ours, "texts_served", "Texts sent to peers"),
            texts_withheld: counter(
                ours,
                "texts_withheld",
                "Texts asked for and not sent (consent, withdrawal, absent)",
            ),
            texts_kept: counter(ours, "texts_kept", "Texts a mirror fetched and kept"),
            adapter_files_kept: counter(
                ours,
                "adapter_files_kept",
                "Adapter files a mirror fetched and its registry accepted",
            ),
            forwarded: counter(ours, "submissions_forwarded", "Events this node forwarded to the sequencer"),
            libp2p,
            registry,
        }
    }
}

impl Node {
    /// Every metric in the Prometheus text format, the log's height, head and lag brought up to
    /// date first.
    pub(super) fn encode_metrics(&self) -> String {
        let (held, _) = self.held();
        let head = self.head();
        self.metrics.log_height.set(held as i64);
        self.metrics.head.set(head as i64);
        self.metrics.lag.set(head.saturating_sub(held) as i64);
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.metrics.registry) {
            warn!(error = %e, "could not encode the metrics");
        }
        text
    }
}
