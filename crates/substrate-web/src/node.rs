//! What this node and the mesh hold beside the ledger: peers, models and adapters, jobs and
//! workers.

use maud::{Markup, html};
use substrate_core::governance::book::AdapterRecord;
use substrate_core::governance::jobs::{JobRecord, JobStatus, OfferRecord};

use crate::layout::{Section, Site, document};
use crate::wording;

/// What the mesh page can say.
#[derive(Debug)]
pub enum MeshState<'a> {
    /// The node runs without the mesh.
    Off,
    /// The mesh node beside it has stopped.
    Stopped,
    /// This node and its peers, as the mesh reports them (`GET /v1/peers`).
    Running(&'a serde_json::Value),
}

pub fn mesh(site: &Site, state: &MeshState) -> Markup {
    let main = html! {
        h1 { "The mesh" }
        p {
            "A commons runs on a mesh of nodes: one sequencer holds the log key and appends, mirrors follow it, verify and re-fold every entry, and cosign the checkpoints they checked. Texts move between them only as consent allows."
        }
        @match state {
            MeshState::Off => p { "This node runs without the mesh: it answers alone. Its operator joins it to a mesh with " code { "substrate serve --p2p-listen ADDRESS" } " or " code { "--bootstrap ADDRESS" } "." },
            MeshState::Stopped => p.problem { "The mesh node beside this server has stopped; its operator restarts the node." },
            MeshState::Running(view) => (running(view)),
        }
    };
    document(site, "The mesh", Section::Mesh, main)
}

fn running(view: &serde_json::Value) -> Markup {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let peers = view["peers"].as_array().map(Vec::as_slice).unwrap_or_default();
    html! {
        dl.facts {
            dt { "This node" } dd { (text(&view["role"])) " " code.wrap { (text(&view["peerId"])) } }
            dt { "Address" } dd { code.wrap { (text(&view["address"])) } }
            dt { "Log height" } dd { (text(&view["height"])) " (the sequencer's head: " (text(&view["head"])) ")" }
        }
        @if peers.is_empty() {
            p { "No peer is connected." }
        } @else {
            div.scroll {
                table {
                    caption { (peers.len()) " connected peer(s)" }
                    thead { tr { th scope="col" { "Peer" } th scope="col" { "Role" } th scope="col" { "Height" } th scope="col" { "Lag" } th scope="col" { "Address" } } }
                    tbody {
                        @for peer in peers {
                            tr {
                                th scope="row" { code.wrap { (text(&peer["peerId"])) } }
                                td { (text(&peer["role"])) }
                                td.number { (text(&peer["height"])) }
                                td.number { (text(&peer["lag"])) }
                                td { code.wrap { (text(&peer["address"])) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One adapter of the registry.
#[derive(Debug)]
pub struct AdapterRow<'a> {
    pub adapter: &'a AdapterRecord,
    /// Deposits of its snapshot withdrawn or removed since it was trained.
    pub withdrawn: usize,
    /// Whether this node holds all its files.
    pub complete: bool,
}

/// What the models page shows.
#[derive(Debug)]
pub struct ModelsPage<'a> {
    pub adapters: &'a [AdapterRow<'a>],
    /// The models this node serves on its OpenAI- and Ollama-compatible routes; `None` when it
    /// serves none.
    pub served: Option<&'a [String]>,
}

pub fn models(site: &Site, page: &ModelsPage) -> Markup {
    let main = html! {
        h1 { "Models" }
        section aria-labelledby="adapters" {
            h2 #adapters { "Adapters trained by the commons" }
            p {
                "A governed training run trains an adapter on a snapshot of the eligible deposits, sampled by the mixture the members decided, and publishes it in the log with its provenance. A deposit withdrawn later marks the adapters whose snapshot held it."
            }
            @if page.adapters.is_empty() {
                p { "No adapter has been published yet." }
            } @else {
                div.scroll {
                    table {
                        caption { "The adapter registry" }
                        thead { tr { th scope="col" { "Adapter" } th scope="col" { "Base model" } th scope="col" { "Snapshot" } th scope="col" { "Mixture of" } th scope="col" { "Published" } th scope="col" { "Gone since" } th scope="col" { "Files here" } } }
                        tbody {
                            @for row in page.adapters {
                                tr id={ "adapter-" (row.adapter.id) } {
                                    th scope="row" { a href={ "/v1/adapters/" (row.adapter.id) } { (row.adapter.name) } " (" (row.adapter.id) ")" }
                                    td { code { (row.adapter.base_model) } }
                                    td { (row.adapter.deposits) " deposits in the first " (row.adapter.snapshot_size) " entries" }
                                    td { a href={ "/log?start=" (row.adapter.decision) } { "decision " (row.adapter.decision) } }
                                    td { (wording::when(row.adapter.published_at)) }
                                    td.number { (row.withdrawn) }
                                    td { @if row.complete { "all" } @else { "not all" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="served" {
            h2 #served { "Served by this node" }
            @match page.served {
                None => p { "This node serves no models. Its operator serves them with " code { "substrate serve --serve-models" } "." },
                Some([]) => p { "This node serves no models right now." },
                Some(ids) => {
                    p { "On the OpenAI-compatible routes (" a href="/v1/models" { "/v1/models" } ") and the Ollama-compatible ones:" }
                    ul { @for id in ids { li { code { (id) } } } }
                },
            }
        }
    };
    document(site, "Models", Section::Models, main)
}

/// A worker that offers to run jobs, with how its checked work went.
#[derive(Debug)]
pub struct WorkerRow<'a> {
    pub offer: &'a OfferRecord,
    pub score: f64,
    pub shunned: bool,
}

/// What the jobs page shows.
#[derive(Debug)]
pub struct JobsPage<'a> {
    /// The latest jobs, the latest first.
    pub jobs: &'a [&'a JobRecord],
    pub workers: &'a [WorkerRow<'a>],
}

pub fn jobs(site: &Site, page: &JobsPage) -> Markup {
    let main = html! {
        h1 { "Jobs" }
        p {
            "Members' nodes run jobs: workers offer the workloads the technical chamber approved, the sequencer assigns each job in the log, and a share of results is run again by another operator's worker to check it. The credits the requester reserved pay for verified compute."
        }
        section aria-labelledby="jobs" {
            h2 #jobs { "Latest jobs" }
            @if page.jobs.is_empty() {
                p { "No job has been requested." }
            } @else {
                div.scroll {
                    table {
                        caption { "Jobs, the latest first" }
                        thead { tr { th scope="col" { "Job" } th scope="col" { "Workload" } th scope="col" { "Requester" } th scope="col" { "Requested" } th scope="col" { "State" } } }
                        tbody {
                            @for job in page.jobs {
                                tr {
                                    th scope="row" { a href={ "/v1/jobs/" (job.id) } { (job.id) } }
                                    td { code { (job.workload) } }
                                    td { (wording::person(&job.requester)) }
                                    td { (wording::when(job.requested_at)) }
                                    td { (job_state(job)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="workers" {
            h2 #workers { "Workers" }
            @if page.workers.is_empty() {
                p { "No node offers to run jobs." }
            } @else {
                div.scroll {
                    table {
                        caption { "Nodes that offer to run jobs" }
                        thead { tr { th scope="col" { "Node" } th scope="col" { "Operator" } th scope="col" { "Cores" } th scope="col" { "Memory" } th scope="col" { "Workloads" } th scope="col" { "Score" } } }
                        tbody {
                            @for worker in page.workers {
                                tr {
                                    th scope="row" { code.wrap { (worker.offer.node) } }
                                    td { (wording::person(&worker.offer.operator)) }
                                    td.number { (worker.offer.cores) }
                                    td.number { (worker.offer.memory_mib) " MiB" }
                                    td { (worker.offer.workloads.join(", ")) }
                                    td.number { (format!("{:.2}", worker.score)) @if worker.shunned { " (passed over)" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    document(site, "Jobs", Section::Jobs, main)
}

fn job_state(job: &JobRecord) -> String {
    match &job.status {
        JobStatus::Open { .. } | JobStatus::Drawing if job.live_run().is_some() => "running".to_owned(),
        JobStatus::Open { .. } | JobStatus::Drawing => "waiting for a worker".to_owned(),
        JobStatus::Done { units, .. } => format!("done ({units} CPU-second(s))"),
        JobStatus::Failed { reason, .. } => format!("failed: {reason}"),
    }
}
