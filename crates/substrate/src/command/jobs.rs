//! `substrate job submit|show`, `substrate jobs` and `substrate workers`: jobs on the mesh from the
//! command line, through a node's HTTP API.

use std::time::{Duration, Instant};

use serde_json::Value;
use substrate_core::SignedEvent;
use substrate_core::event::Event;
use substrate_core::governance::jobs::{JobInput, JobRequest, decode_vector};

use crate::cli::JobCommand;
use crate::client::Client;

pub fn run(command: JobCommand) -> anyhow::Result<()> {
    match command {
        JobCommand::Submit {
            workload,
            texts,
            prompt,
            max_tokens,
            decision,
            steps,
            batch,
            seq_len,
            rank,
            adapter,
            windows,
            budget,
            deadline,
            wait,
            key,
            node,
        } => {
            let kind = workload.split('@').next().unwrap_or_default();
            let client = Client::new(&node.node);
            let input = match (kind, prompt) {
                ("train-lora", None) if texts.is_empty() => {
                    let decision = match decision {
                        Some(d) => d,
                        None => mixture_in_force(&client)?,
                    };
                    JobInput::TrainLora { decision, steps, batch, seq_len, rank }
                }
                ("evaluate", None) if texts.is_empty() => {
                    let decision = match decision {
                        Some(d) => d,
                        None => mixture_in_force(&client)?,
                    };
                    JobInput::Evaluate { adapter, decision, windows, seq_len }
                }
                ("evaluate", _) => anyhow::bail!(
                    "an evaluate job reads the commons' snapshot: it takes --adapter, --decision, --windows and --seq-len, no --text or --prompt"
                ),
                ("train-lora", _) => anyhow::bail!(
                    "a train-lora job trains on the commons' snapshot: it takes --decision, --steps, --batch, --seq-len and --rank, no --text or --prompt"
                ),
                ("embed", None) if !texts.is_empty() => JobInput::Embed { texts },
                ("embed", _) => {
                    anyhow::bail!("an embed job takes its texts as --text TEXT (repeat it), and no --prompt")
                }
                ("generate", Some(prompt)) if texts.is_empty() => JobInput::Generate { prompt, max_tokens },
                ("generate", _) => {
                    anyhow::bail!("a generate job takes --prompt TEXT (and --max-tokens), and no --text")
                }
                _ => anyhow::bail!(
                    "jobs of '{workload}' cannot be asked for from here; the runnable kinds are embed@V, generate@V, train-lora@V and evaluate@V"
                ),
            };
            // A training run takes minutes where an embedding takes a second.
            let deadline = match &input {
                JobInput::TrainLora { .. } | JobInput::Evaluate { .. } => {
                    Some(deadline.unwrap_or(TRAIN_DEADLINE_SECONDS))
                }
                _ => deadline,
            };
            let request = JobRequest {
                workload,
                input,
                budget,
                deadline_seconds: deadline,
                requested: super::govern::requested(),
            };
            let (_, key) = crate::keys::load(&crate::keys::path(key.key.as_deref())?)?;
            let signed = SignedEvent::sign(Event::JobRequest(request), &key);
            let receipt = super::deposit::submit_event(&client, &signed)?;
            let id = receipt.log_index;
            println!(
                "job {id} requested; {budget} credits reserved, from today's commons floor first (what it does not use comes back)"
            );
            if wait {
                let view =
                    wait_for(&client, id, Duration::from_secs(u64::from(deadline.unwrap_or(120)) * 4 + 60))?;
                print_job(&view["job"]);
                print_output(&view["output"]);
            } else {
                println!("follow it with: substrate job show {id}");
            }
            Ok(())
        }
        JobCommand::Show { id, json, node } => {
            let view: Value = Client::new(&node.node).get(&format!("/v1/jobs/{id}"))?.json()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_job(&view["job"]);
                print_output(&view["output"]);
            }
            Ok(())
        }
    }
}

/// How long one attempt of a training or evaluation job may take when the member does not say
/// (seconds).
const TRAIN_DEADLINE_SECONDS: u32 = 1800;

/// The decision that set the mixture in force.
fn mixture_in_force(client: &Client) -> anyhow::Result<u64> {
    let governance: Value = client.get("/v1/governance")?.json()?;
    governance["mixture"]["decision"].as_u64().ok_or_else(|| {
        anyhow::anyhow!(
            "no mixture is decided yet, and a training job follows a decided one; the members decide one with `substrate propose --set-mixture …`"
        )
    })
}

/// Polls the job until it ends, or fails after `patience`.
pub(super) fn wait_for(client: &Client, id: u64, patience: Duration) -> anyhow::Result<Value> {
    let start = Instant::now();
    loop {
        let view: Value = client.get(&format!("/v1/jobs/{id}"))?.json()?;
        if view["state"] != "open" {
            return Ok(view);
        }
        anyhow::ensure!(
            start.elapsed() < patience,
            "job {id} is still open after {} s; `substrate job show {id}` follows it",
            patience.as_secs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

pub(super) fn print_job(job: &Value) {
    let status = &job["status"];
    println!("job {}: {} requested by {}", job["id"], text(&job["workload"]), text(&job["requester"]));
    match text(&status["state"]).as_str() {
        "done" => println!(
            "  done: {} (result at entry {}; CPU-seconds charged: {}; credits paid: {})",
            text(&status["verdict"]),
            status["result"],
            status["units"],
            status["paid"].as_u64().unwrap_or(0) as f64 / 1000.0
        ),
        "failed" => println!("  failed: {}", text(&status["reason"])),
        _ if job["floor"].as_u64().is_some_and(|f| f > 0) => println!(
            "  open: needs a {}; {} credits reserved, {} of them from today's commons floor",
            text(&status["needs"]),
            job["reserved"].as_u64().unwrap_or(0) as f64 / 1000.0,
            job["floor"].as_u64().unwrap_or(0) as f64 / 1000.0
        ),
        "drawing" => println!("  its result is in; the draw for a check comes next"),
        _ => println!("  open: needs a {}", text(&status["needs"])),
    }
    for run in job["runs"].as_array().into_iter().flatten() {
        let outcome = match (&run["result"], &run["failure"]) {
            (Value::Null, _) if run["missed"] == true => "missed its deadline".to_owned(),
            (Value::Null, _) => format!(
                "running until {}",
                substrate_core::timestamp::rfc3339(run["deadline"].as_u64().unwrap_or(0))
            ),
            (result, Value::Null) => format!("answered at entry {result} ({} ms CPU)", run["cpuMs"]),
            (result, failure) => format!("failed at entry {result}: {}", text(failure)),
        };
        println!("  {:<9} {}  {outcome}", text(&run["role"]), text(&run["node"]));
    }
    if let Some(drawn) = job["drawn"].as_bool() {
        println!(
            "  draw at entry {}: {}",
            job["draw"],
            if drawn { "checked by another operator" } else { "not drawn for a check" }
        );
    }
    if let Some(dispute) = job["dispute"].as_object() {
        println!("  dispute: results {} disagree", dispute["results"]);
        if let Some(finding) = dispute.get("finding").and_then(Value::as_str) {
            println!("    {finding}");
        }
    }
}

pub fn list(node: &str, state: Option<&str>, json: bool) -> anyhow::Result<()> {
    let client = Client::new(node);
    let mut jobs = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let mut path =
            format!("/v1/jobs?limit=1000{}", state.map(|s| format!("&state={s}")).unwrap_or_default());
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let page: Value = client.get(&path)?.json()?;
        jobs.extend(page["jobs"].as_array().cloned().unwrap_or_default());
        match page["next"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(());
    }
    if jobs.is_empty() {
        println!("no jobs{}", state.map(|s| format!(" {s}")).unwrap_or_default());
    }
    for job in &jobs {
        let status = &job["status"];
        let runs = job["runs"].as_array().map_or(0, Vec::len);
        let state = match text(&status["state"]).as_str() {
            "done" => format!("done ({})", text(&status["verdict"])),
            "failed" => format!("failed: {}", text(&status["reason"])),
            "drawing" => "drawing".to_owned(),
            _ => format!("open, needs a {}", text(&status["needs"])),
        };
        println!("{:>6}  {:<12} {:<28} {runs} run(s)", job["id"], text(&job["workload"]), state);
    }
    Ok(())
}

pub fn workers(node: &str, json: bool) -> anyhow::Result<()> {
    let view: Value = Client::new(node).get("/v1/workers")?.json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    let workers = view["workers"].as_array().cloned().unwrap_or_default();
    println!(
        "{} worker(s); {}% of results are re-executed by another operator",
        workers.len(),
        view["checkPpm"].as_u64().unwrap_or(0) as f64 / 10_000.0
    );
    for worker in &workers {
        let offer = &worker["offer"];
        let reputation = &worker["reputation"];
        println!(
            "  {}  operator {}\n    offers {}; {} cores\n    checks passed {}, failed {}, deadlines missed {}; score {:.2}{}",
            text(&offer["node"]),
            text(&offer["operator"]),
            offer["workloads"]
                .as_array()
                .map(|w| w.iter().map(text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            offer["cores"],
            reputation["passed"],
            reputation["failed"],
            reputation["missed"],
            worker["score"].as_f64().unwrap_or(0.0),
            if worker["shunned"] == true { " (passed over while others can take its jobs)" } else { "" },
        );
        if worker["lapsed"] == true {
            println!("    its offer lapsed: the worker has not renewed it for 15 minutes; it gets no jobs");
        }
    }
    Ok(())
}

/// The output that stands: each vector's width and first values, or the generated text.
pub(super) fn print_output(output: &Value) {
    match text(&output["kind"]).as_str() {
        "embed" => {
            for (i, vector) in output["vectors"].as_array().into_iter().flatten().enumerate() {
                if let Some(v) = vector.as_str().and_then(decode_vector) {
                    let head: Vec<String> = v.iter().take(4).map(|x| format!("{x:.4}")).collect();
                    println!("  vector {}: {} dimensions [{}, …]", i + 1, v.len(), head.join(", "));
                }
            }
        }
        "generate" => println!("  text: {}", text(&output["text"])),
        "train-lora" => {
            let losses: Vec<f64> =
                output["losses"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
            println!(
                "  adapter: weights sha256 {}, {} tokens trained on the snapshot with root {}",
                text(&output["weights"]),
                output["tokens"],
                text(&output["snapshotRoot"])
            );
            if let (Some(first), Some(last)) = (losses.first(), losses.last()) {
                println!("  loss: {first:.4} at step 1, {last:.4} at step {}", losses.len());
            }
            println!(
                "  the node whose output stands records the adapter in the log (`substrate adapters list`)"
            );
        }
        "evaluate" => {
            println!("  snapshot root {}", text(&output["snapshotRoot"]));
            println!("  {:<16} {:>6} {:>8} {:>8}", "register", "texts", "tokens", "loss");
            for line in output["registers"].as_array().into_iter().flatten() {
                println!(
                    "  {:<16} {:>6} {:>8} {:>8.4}",
                    text(&line["register"]),
                    line["texts"].as_u64().unwrap_or(0),
                    line["tokens"].as_u64().unwrap_or(0),
                    line["loss"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
        _ => {}
    }
}
