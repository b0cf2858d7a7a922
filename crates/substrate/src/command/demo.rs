//! `substrate demo`: the whole deposit → receipt → verify → withdraw flow against a fresh
//! temporary commons, then a short governance round that ends with a changed mixture and an
//! approved workload, a job run on the mesh by one operator's worker and checked by another's,
//! and a trained adapter, printing each step.

use std::path::{Path, PathBuf};

use anyhow::Context;
use substrate_core::event::Event;
use substrate_core::governance::acts::Attestation;
use substrate_core::receipt::Receipt;
use substrate_core::{Cid, SignedEvent};
use substrate_store::{DataDir, ReplayMode};

use super::deposit::{Metadata, consent_change, sign_deposit, submit_deposit, submit_event, withdrawal};
use super::ledger::{check_consistency, commons_key};
use crate::client::Client;
use crate::config::NodeConfig;

const STORY: &str = "My grandmother kept the recipe in her head, not on paper.\n\
She said the dough tells you when it is ready: it stops sticking to your palms and starts to breathe.\n";
const DIALOGUE: &str = "Teacher: What makes a good question?\nStudent: One you don't already know the answer to.\n\
Teacher: And one you can find out.\n";

pub fn run(artifacts: Option<&Path>) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("making a temporary directory")?;
    let dir = tmp.path().join("commons");
    step(1, "found a commons in a temporary directory, with one founding steward");
    // A short voting window lets the governance round below close within the demo.
    let steward = crate::keys::generate();
    let steward_did = substrate_core::identity::did_of(&steward.verifying_key());
    super::node::init(
        &dir,
        "demo commons",
        None,
        None,
        Vec::new(),
        vec![steward_did.clone()],
        Some(format!("{DEMO_WINDOW_SECS}s")),
    )?;

    step(2, "serve it on 127.0.0.1 and join the mesh as its sequencer (ports chosen by the system)");
    let mut config = NodeConfig { listen: "127.0.0.1:0".into(), ..NodeConfig::default() };
    config.mesh.listen = Some("/ip4/127.0.0.1/tcp/0".into());
    // Its mesh identity, a node key of its own: DIR/node.key is the training node's (step 25).
    let mesh_key = tmp.path().join("sequencer.node.key");
    crate::keys::create(&mesh_key, substrate_core::identity::ActorKind::Node, false)?;
    config.mesh.node_key = Some(mesh_key);
    let node = super::node::start(&dir, &config)?;
    let client = Client::new(&node.url());
    let sequencer = node.p2p.clone().context("the sequencer did not join the mesh")?;
    println!("  listening on {}", node.url());
    println!("  mesh sequencer at {sequencer}");
    let log = commons_key(&client)?;

    step(3, "make two person keys (did:key)");
    let alice = crate::keys::generate();
    let bob = crate::keys::generate();
    let alice_did = substrate_core::identity::did_of(&alice.verifying_key());
    println!("  alice: {alice_did}");
    println!("  bob:   {}", substrate_core::identity::did_of(&bob.verifying_key()));

    step(4, "alice deposits a kitchen-table story (narrative, public, CC-BY-4.0)");
    let story_meta = Metadata {
        register: "narrative",
        also: &["oral".to_owned()],
        consent: "public",
        title: "The dough that breathes",
        language: "en",
        license: "CC-BY-4.0",
    };
    let story = sign_deposit(&alice, STORY.as_bytes(), &story_meta)?;
    let (receipt, _) = submit_deposit(&client, &story, STORY.as_bytes())?;
    super::deposit::print_receipt(&receipt);
    let first_size = substrate_tlog::TlogProof::parse(&receipt.proof)
        .ok()
        .and_then(|p| substrate_tlog::Checkpoint::open(&p.checkpoint, &log).ok())
        .map(|c| c.size)
        .context("the receipt's checkpoint is unreadable")?;

    step(5, "verify the receipt offline with only the commons' key");
    let receipt_path = tmp.path().join("story.receipt.json");
    super::deposit::save_receipt(&receipt_path, &receipt)?;
    let content_path = tmp.path().join("story.txt");
    std::fs::write(&content_path, STORY)?;
    super::deposit::verify(&receipt_path, &log.to_vkey(), Some(&content_path), &[], None)?;
    let mut forged = receipt.clone();
    forged.log_index = 0;
    forged.proof = forged.proof.replacen("\nindex 1\n", "\nindex 0\n", 1);
    match forged.verify(&log, None) {
        Err(e) => println!("  the same receipt claiming log index 0 fails: {e}"),
        Ok(_) => anyhow::bail!("a forged receipt verified"),
    }

    step(6, "submit the same signed deposit again: the same receipt comes back");
    let (again, new) = submit_deposit(&client, &story, STORY.as_bytes())?;
    println!("  new entry: {new}; identical receipt: {}", again == receipt);

    step(7, "show it by handle");
    let handle = receipt.handle.clone().context("the receipt has no handle")?;
    super::deposit::show(client.base(), &handle, false, None, false)?;

    step(8, "alice deposits a classroom dialogue (pedagogical, training-only)");
    let dialogue_meta = Metadata {
        register: "pedagogical",
        also: &["conversational".to_owned()],
        consent: "training-only",
        title: "What makes a good question",
        language: "en",
        license: "CC-BY-SA-4.0",
    };
    let dialogue = sign_deposit(&alice, DIALOGUE.as_bytes(), &dialogue_meta)?;
    let (dialogue_receipt, _) = submit_deposit(&client, &dialogue, DIALOGUE.as_bytes())?;
    let dialogue_cid = dialogue_receipt.cid.clone().context("no cid")?;
    println!("  cid: {dialogue_cid}, log index {}", dialogue_receipt.log_index);
    match client.get(&format!("/v1/deposits/{dialogue_cid}/content")) {
        Err(e) => println!("  its text is not served: {e}"),
        Ok(_) => anyhow::bail!("a training-only text was served verbatim"),
    }

    step(9, "try to widen its consent to public: refused");
    let widen = SignedEvent::sign(consent_change(&dialogue_cid, "public")?, &alice);
    match submit_event(&client, &widen) {
        Err(e) => println!("  {e}"),
        Ok(_) => anyhow::bail!("consent was widened"),
    }

    step(10, "narrow it to local: accepted");
    let narrow = SignedEvent::sign(consent_change(&dialogue_cid, "local")?, &alice);
    let narrowed = submit_event(&client, &narrow)?;
    println!("  consent-change logged at index {}", narrowed.log_index);

    step(11, "bob tries to withdraw alice's story: refused");
    let story_cid = Cid::of(STORY.as_bytes()).to_string();
    let by_bob = SignedEvent::sign(withdrawal(&story_cid, Some("not mine, but I object".into()))?, &bob);
    match submit_event(&client, &by_bob) {
        Err(e) => println!("  {e}"),
        Ok(_) => anyhow::bail!("someone else withdrew a deposit"),
    }

    step(12, "alice withdraws her story: the text is deleted, a tombstone remains");
    let by_alice = SignedEvent::sign(withdrawal(&story_cid, Some("changed my mind".into()))?, &alice);
    let withdrawn = submit_event(&client, &by_alice)?;
    println!("  withdrawal logged at index {}", withdrawn.log_index);
    super::deposit::show(client.base(), &story_cid, false, None, false)?;
    match client.get(&format!("/v1/deposits/{story_cid}/content")) {
        Err(e) => println!("  {e}"),
        Ok(_) => anyhow::bail!("a withdrawn text was still served"),
    }
    let still = client.get(&format!("/v1/deposits/{story_cid}/receipt"))?.json::<Receipt>()?;
    println!("  its receipt still verifies: {}", still.verify(&log, None).is_ok());

    step(13, "prove the log only grew: consistency between two checkpoints");
    let latest = substrate_tlog::Checkpoint::open(&client.get("/v1/log/checkpoint")?.body, &log)?.size;
    let proof: substrate_store::reader::ConsistencyProof =
        client.get(&format!("/v1/log/proofs/consistency?old={first_size}&new={latest}"))?.json()?;
    check_consistency(&proof, &log)?;
    println!("  the tree of size {first_size} is a prefix of the tree of size {latest}");

    if let Some(out) = artifacts {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        std::fs::write(out.join("deposit.txt"), STORY)?;
        super::deposit::save_receipt(&out.join("receipt.json"), &receipt)?;
        std::fs::write(out.join("commons.vkey"), log.to_vkey() + "\n")?;
        std::fs::write(out.join("consistency.json"), serde_json::to_string_pretty(&proof)?)?;
        std::fs::write(out.join("openapi.json"), client.get("/v1/openapi.json")?.body)?;
        std::fs::write(
            out.join("datacite.json"),
            client.get(&format!("/v1/deposits/{dialogue_cid}/datacite"))?.body,
        )?;
        println!("  artifacts for external verifiers written to {}", out.display());
    }

    step(14, "the steward attests alice and bob as verified members");
    for person in [&alice, &bob] {
        let did = substrate_core::identity::did_of(&person.verifying_key());
        let attest = Attestation { person: did.clone(), days: None, note: None, requested: now() };
        let receipt = submit_event(&client, &SignedEvent::sign(Event::Attestation(attest), &steward))?;
        println!("  attested {did} (entry {})", receipt.log_index);
    }

    step(15, "alice and bob each start a worker node: a mirror of the sequencer, registered to them");
    let embedding = embedding_model(tmp.path())?;
    let workers = start_workers(tmp.path(), &client, &log.to_vkey(), &sequencer, &embedding, &alice, &bob)?;

    let governance = governance_round(&client, &steward, &alice, &bob, &embedding)?;
    if let Some(out) = artifacts {
        let dir = out.join("governance");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, receipt) in &governance {
            super::deposit::save_receipt(&dir.join(format!("{name}.receipt.json")), receipt)?;
        }
        println!("  the round's proposal, votes and decision receipts written to {}", dir.display());
    }

    run_job(&client, &alice, workers, artifacts)?;

    step(24, "members deposit more texts in the registers the mixture weighs");
    let mut bobs = Vec::new();
    for (key, register, title, text) in MORE_TEXTS {
        if *key == "bob" {
            bobs.push(substrate_core::Cid::of(text.as_bytes()).to_string());
        }
        let key = if *key == "alice" { &alice } else { &bob };
        let meta =
            Metadata { register, also: &[], consent: "commons", title, language: "en", license: "CC-BY-4.0" };
        let signed = sign_deposit(key, text.as_bytes(), &meta)?;
        let (receipt, _) = submit_deposit(&client, &signed, text.as_bytes())?;
        println!("  {register:<14} {title} (entry {})", receipt.log_index);
    }

    step(25, "the decided mixture trains a LoRA adapter on the snapshot, signed and attributed");
    let adapter = train_demo_adapter(&dir, artifacts, &client, &alice)?;

    step(26, "the registry: bob withdraws a text the adapter was trained on, and the adapter is marked");
    let listed: serde_json::Value = client.get("/v1/adapters")?.json()?;
    let id = listed["adapters"]
        .as_array()
        .and_then(|list| list.last())
        .and_then(|a| a["id"].as_u64())
        .context("the adapter is not in the registry")?;
    let by_bob = SignedEvent::sign(withdrawal(&bobs[0], Some("my family asked me to".into()))?, &bob);
    let taken_back = submit_event(&client, &by_bob)?;
    println!("  bob withdraws {} (entry {})", bobs[0], taken_back.log_index);
    super::adapters::run(crate::cli::AdaptersCommand::Show {
        id,
        json: false,
        node: crate::cli::NodeArgs { node: client.base().to_owned() },
    })?;

    step(27, "stop the node and replay the whole log from scratch");
    node.stop()?;
    let report = substrate_store::replay::replay(&DataDir::new(&dir), ReplayMode::Check, Some(log))?;
    println!(
        "  replay ok: {} entries, {} checkpoints matched tree and state roots, {} deposits ({} withdrawn)",
        report.entries, report.checkpoints, report.deposits, report.withdrawn
    );
    println!(
        "  {} members; {} decisions recomputed from the log, identical to the sequencer's",
        report.members, report.decisions
    );
    if artifacts.is_none() {
        println!("  (the adapter was published in the temporary commons: {})", adapter.display());
    }
    println!("\nthe demo commons is discarded; `substrate init` founds a lasting one");
    Ok(())
}

/// Short texts in the registers the demo's mixture weighs, by alice and bob.
const MORE_TEXTS: &[(&str, &str, &str, &str)] = &[
    (
        "alice",
        "oral",
        "How the ferry got its name",
        "They called it the Heron because it stood in the shallows all winter, one leg in the mud, waiting for the ice to go. My father said a boat that patient deserved a bird's name.\n",
    ),
    (
        "bob",
        "oral",
        "The flood of the long spring",
        "The water came up past the second step and the chickens slept in the kitchen. Nobody cried. Your great-uncle played the fiddle on the table so we would not hear the river.\n",
    ),
    (
        "alice",
        "conversational",
        "At the bus stop",
        "A: Is this the one for the market?\nB: It goes past it, but get off at the bakery, it is quicker to walk.\nA: The bakery on the corner?\nB: That one. Tell them I sent you, they will give you the burnt end.\n",
    ),
    (
        "bob",
        "conversational",
        "Fixing the bicycle",
        "A: The chain keeps slipping.\nB: Turn it upside down. See, the gear is bent.\nA: Can you straighten it?\nB: Gently, with the pliers. There. Try it now.\n",
    ),
    (
        "alice",
        "narrative",
        "The lamp in the window",
        "Every evening she lit the lamp in the window, though nobody had come up the road in years. The neighbours stopped asking why. One night in March a boy knocked, wet through, and asked if this was the house with the light.\n",
    ),
    (
        "bob",
        "pedagogical",
        "Why the moon changes shape",
        "The moon does not change. Half of it is always lit by the sun. What changes is how much of the lit half faces us as it goes around the Earth. Draw it: a lamp, a ball, and your eye.\n",
    ),
    (
        "alice",
        "pedagogical",
        "Counting in fives",
        "Hold up one hand: five fingers. Two hands make ten. To count the apples, make groups of five and count the groups, then add what is left over. Try it with twenty-three apples.\n",
    ),
    (
        "bob",
        "sacred",
        "A blessing for the table",
        "For the hands that sowed and the hands that carried, for the fire and the water and the salt, for those who are here and those who are missing, we give thanks.\n",
    ),
    (
        "alice",
        "lyric",
        "Song for the night shift",
        "When the town is sleeping and the street lamps hum, / I keep the bread rising for the morning to come. / Oh the flour on my sleeves and the moon on the sill, / the whole world is dreaming and the ovens are still.\n",
    ),
];

/// Trains a few steps on the default base model when it was fetched (`substrate models fetch`),
/// else on a tiny random model of the same architecture, and prints the published card.
fn train_demo_adapter(
    dir: &Path,
    artifacts: Option<&Path>,
    client: &Client,
    operator: &ed25519_dalek::SigningKey,
) -> anyhow::Result<PathBuf> {
    let data = DataDir::new(dir);
    let node_key = dir.join("node.key");
    let node = crate::keys::create(&node_key, substrate_core::identity::ActorKind::Node, false)?;
    // Alice registers the node that trains, so its adapter verifies against the log.
    let receipt = register_node(client, &crate::keys::load(&node_key)?.1, operator)?;
    println!("  alice registers the training node {} (entry {})", node.did, receipt.log_index);
    let models_dir = models_dir();
    let default = substrate_models::fetch::GENERATION.path(&models_dir);
    let (model, seq_len, steps) = match default.exists() {
        true => {
            println!("  base model: {} (SmolLM2-135M-Instruct)", default.display());
            (default, 64, 8)
        }
        false => {
            let tiny = substrate_models::tiny::llama(dir, 7, substrate_models::tiny::GgmlDType::F32)?;
            println!(
                "  the default base model is not fetched (`substrate models fetch`): a tiny random model stands in"
            );
            (tiny.path, 48, 8)
        }
    };
    let out = match artifacts {
        Some(out) => out.join("adapter"),
        None => data.root().join("adapters").join("demo"),
    };
    let args = crate::cli::TrainArgs {
        models: crate::cli::ModelArgs {
            model: Some(model.display().to_string()),
            models_dir: Some(models_dir),
            weights: "auto".into(),
            data: crate::cli::DataArgs { data_dir: dir.to_path_buf() },
        },
        decision: None,
        like: None,
        no_publish: false,
        node: crate::cli::NodeArgs { node: client.base().to_owned() },
        out: Some(out.clone()),
        base_sha256: None,
        node_key: Some(node_key),
        signing_key: None,
        lora: crate::cli::LoraArgs {
            rank: 4,
            alpha: 8.0,
            targets: vec!["q".into(), "v".into()],
            steps,
            batch: 2,
            seq_len,
            lr: 2e-3,
            save_every: 4,
        },
    };
    super::train::train(&args)?;
    println!();
    super::adapters::run(crate::cli::AdaptersCommand::Verify {
        dir: out.clone(),
        data_dir: Some(dir.to_path_buf()),
    })?;
    println!();
    super::train::audit(crate::cli::AuditCommand::Per {
        dir: out.clone(),
        data_dir: dir.to_path_buf(),
        json: false,
    })?;
    let card = std::fs::read_to_string(out.join("CONTRIBUTIONS.md"))?;
    println!("\n{card}");
    Ok(out)
}

/// The demo commons' voting window, in seconds.
const DEMO_WINDOW_SECS: u64 = 3;

/// A mixture is proposed and voted on, and beside it the approval of the embedding workload and
/// a check of every job; the windows close, the sequencer decides, and the mixture the next
/// training run must use has changed.
fn governance_round(
    client: &Client,
    steward: &ed25519_dalek::SigningKey,
    alice: &ed25519_dalek::SigningKey,
    bob: &ed25519_dalek::SigningKey,
    embedding: &Embedding,
) -> anyhow::Result<Vec<(String, Receipt)>> {
    use substrate_core::governance::acts::{Action, Proposal, VoteCast};
    use substrate_core::governance::tally::{ProposalClass, Vote};

    let did = |key: &ed25519_dalek::SigningKey| substrate_core::identity::did_of(&key.verifying_key());
    let act =
        |key: &ed25519_dalek::SigningKey, event: Event| submit_event(client, &SignedEvent::sign(event, key));

    step(16, "alice proposes a mixture that weighs oral and conversational texts more");
    let ballot = super::govern::parse_ballot("oral=0.3,conversational=0.3,narrative=0.2,pedagogical=0.2")?;
    let proposal = Proposal {
        title: "Weigh the spoken registers more in the next run".into(),
        summary: Some("Oral and conversational texts are what perplexity filters throw away.".into()),
        class: ProposalClass::Ordinary,
        actions: vec![Action::SetMixture { ballot }],
        requested: now(),
    };
    let opened = act(alice, Event::Proposal(proposal))?;
    let id = opened.log_index;
    let mut receipts = vec![("proposal".to_owned(), opened.clone())];
    println!("  proposal {id} opened; its window closes in {DEMO_WINDOW_SECS} s");
    // A workload is the technical chamber's question and a setting the contributors', so they
    // cannot share a proposal; their windows run beside the mixture's.
    let approve = Proposal {
        title: "Run embeddings on the demo's embedding model".into(),
        summary: Some(format!(
            "Pinned to the sha256 of the {} files in its directory and of the program that runs it.",
            embedding.digests.len()
        )),
        class: ProposalClass::Resource,
        actions: vec![Action::ApproveWorkload {
            kind: "embed".into(),
            version: "1".into(),
            // The workers run it as this very program.
            models: {
                let mut pins = embedding.digests.clone();
                pins.push(super::govern::this_program_digest()?);
                pins.sort();
                pins
            },
        }],
        requested: now(),
    };
    let check_all = Proposal {
        title: "Re-execute every job's result while the commons is young".into(),
        summary: None,
        class: ProposalClass::Resource,
        actions: vec![Action::SetParameter { key: "jobs.check-ppm".into(), value: 1_000_000.into() }],
        requested: now(),
    };
    let mut jobs_proposals = Vec::new();
    for (what, proposal) in [("approve embed@1", approve), ("set jobs.check-ppm to 1000000", check_all)] {
        let opened = act(steward, Event::Proposal(proposal))?;
        let view: serde_json::Value = client.get(&format!("/v1/proposals/{}", opened.log_index))?.json()?;
        println!(
            "  the steward opens proposal {} to {what} ({} class, led by the {} chamber)",
            opened.log_index,
            view["proposal"]["class"].as_str().unwrap_or("?"),
            view["proposal"]["lead"].as_str().unwrap_or("?"),
        );
        jobs_proposals.push(opened.log_index);
    }

    step(17, "the three members vote, each with their own distribution over registers");
    let by_stranger =
        VoteCast { proposal: id, choice: Vote::Yes, mixture: None, ranking: None, requested: now() };
    match act(&crate::keys::generate(), Event::Vote(by_stranger)) {
        Err(e) => println!("  a stranger's vote is refused: {e}"),
        Ok(_) => anyhow::bail!("a non-member voted"),
    }
    let votes = [
        (steward, Vote::Yes, "sacred=0.2,oral=0.3,narrative=0.3,lyric=0.2"),
        (alice, Vote::Yes, "oral=0.3,conversational=0.3,narrative=0.2,pedagogical=0.2"),
        (bob, Vote::No, "technical=0.5,encyclopedic=0.3,narrative=0.2"),
    ];
    for (n, (key, choice, ballot)) in votes.into_iter().enumerate() {
        let mixture = Some(super::govern::parse_ballot(ballot)?);
        let cast = VoteCast { proposal: id, choice, mixture, ranking: None, requested: now() };
        receipts.push((format!("vote-{}", n + 1), act(key, Event::Vote(cast))?));
    }
    for proposal in &jobs_proposals {
        for key in [steward, alice, bob] {
            let yes = VoteCast {
                proposal: *proposal,
                choice: Vote::Yes,
                mixture: None,
                ranking: None,
                requested: now(),
            };
            act(key, Event::Vote(yes))?;
        }
    }
    println!(
        "  and all three vote yes on proposals {}; alice and bob, who operate registered nodes, are the technical chamber",
        jobs_proposals.iter().map(u64::to_string).collect::<Vec<_>>().join(" and ")
    );
    super::govern::proposal(client.base(), id, false)?;

    step(18, "the windows close; the sequencer appends its decisions, signed by the log key");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(DEMO_WINDOW_SECS + 20);
    let mut decided = std::collections::BTreeMap::new();
    for proposal in std::iter::once(id).chain(jobs_proposals.iter().copied()) {
        let decision = loop {
            let view: serde_json::Value = client.get(&format!("/v1/proposals/{proposal}"))?.json()?;
            if let Some(decision) = view["proposal"]["status"]["decision"].as_u64() {
                break (decision, view);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "proposal {proposal} was not decided in time"
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        };
        decided.insert(proposal, decision);
    }
    receipts.push(("decision".to_owned(), client.get(&format!("/v1/receipts/{}", decided[&id].0))?.json()?));
    super::govern::proposal(client.base(), id, false)?;
    for proposal in &jobs_proposals {
        let (decision, view) = &decided[proposal];
        let outcome = view["proposal"]["status"]["outcome"]["outcome"].as_str().unwrap_or("?");
        println!(
            "  proposal {proposal} ({}): {outcome} by entry {decision}",
            view["proposal"]["title"].as_str().unwrap_or("?")
        );
        anyhow::ensure!(outcome == "passed", "proposal {proposal} did not pass: {view}");
    }

    step(19, "the mixture the next training run must use has changed");
    super::govern::mixture(client.base())?;

    step(20, "credits: alice earned some for her deposits; nobody can move them");
    super::govern::credits(client.base(), None, Some(did(alice)))?;
    Ok(receipts)
}

/// The embedding model the workers hold, and the sha256 of each file in its directory (what
/// `substrate propose --approve-workload embed@1=DIR` pins).
struct Embedding {
    dir: PathBuf,
    digests: Vec<String>,
}

/// all-MiniLM-L6-v2 when `substrate models fetch` has put it in place, else a tiny random BERT
/// made in `scratch`.
fn embedding_model(scratch: &Path) -> anyhow::Result<Embedding> {
    let fetched = substrate_models::fetch::EMBEDDING.path(&models_dir());
    let dir = if fetched.join("model.safetensors").exists() {
        println!("  embedding model: {} (all-MiniLM-L6-v2)", fetched.display());
        fetched
    } else {
        println!(
            "  the embedding model is not fetched (`substrate models fetch`): a tiny random BERT stands in"
        );
        substrate_models::tiny::bert(&scratch.join("models"), 7)?
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading the model directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut digests = files
        .iter()
        .map(|f| substrate_models::fetch::file_sha256(f).with_context(|| format!("hashing {}", f.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    digests.sort();
    digests.dedup();
    Ok(Embedding { dir, digests })
}

/// A worker node the demo runs in this process.
struct DemoWorker {
    operator: &'static str,
    did: String,
    node: super::node::RunningNode,
}

/// Prepares a mirror of the commons for each of alice and bob, makes its node key and has its
/// operator register it, then starts it on the mesh with its worker: it follows the sequencer
/// and offers nothing until the chambers approve a workload whose model files it holds. Without a
/// kernel that confines jobs the nodes are registered but not started.
fn start_workers(
    scratch: &Path,
    client: &Client,
    vkey: &str,
    sequencer: &str,
    embedding: &Embedding,
    alice: &ed25519_dalek::SigningKey,
    bob: &ed25519_dalek::SigningKey,
) -> anyhow::Result<Vec<DemoWorker>> {
    let mut prepared = Vec::new();
    for (operator, key) in [("alice", alice), ("bob", bob)] {
        let dir = scratch.join(format!("worker-{operator}"));
        drop(substrate_store::Ledger::follow(&DataDir::new(&dir), vkey)?);
        let node_key = dir.join("node.key");
        let node = crate::keys::create(&node_key, substrate_core::identity::ActorKind::Node, false)?;
        let receipt = register_node(client, &crate::keys::load(&node_key)?.1, key)?;
        println!("  {operator} registers the worker node {} (entry {})", node.did, receipt.log_index);
        prepared.push((operator, node.did, dir));
    }
    let strength = match isolation() {
        Ok((strength, None)) => strength,
        Ok((strength, Some(missing))) => {
            println!(
                "  this kernel cannot give jobs every guarantee ({missing}): the workers run them with less"
            );
            strength
        }
        Err(why) => {
            println!("  this kernel cannot confine jobs ({why}): the demo starts no worker");
            return Ok(Vec::new());
        }
    };
    let mut workers = Vec::new();
    for (operator, did, dir) in prepared {
        let mut config = NodeConfig { listen: "127.0.0.1:0".into(), ..NodeConfig::default() };
        config.mesh.bootstrap = vec![sequencer.to_owned()];
        config.worker = crate::config::WorkerSettings {
            enabled: true,
            models: vec![embedding.dir.clone()],
            program: None,
            without_network_namespace: !strength.network_namespace,
            without_scopes: !strength.scoped,
            slots: None,
        };
        let node = super::node::start(&dir, &config)?;
        println!(
            "  {operator}'s worker serves {} and follows the sequencer from {}",
            node.url(),
            node.p2p.as_deref().unwrap_or("?")
        );
        workers.push(DemoWorker { operator, did, node });
    }
    println!(
        "  they hold {} and offer nothing until the chambers approve a workload pinned to its files",
        embedding.dir.display()
    );
    Ok(workers)
}

/// The strongest isolation this kernel gives a job, and what it lacks of the full one; or why it
/// gives none.
fn isolation() -> Result<(substrate_jobs::Strength, Option<String>), String> {
    use substrate_jobs::Strength;
    let kernel = substrate_jobs::Kernel::probe();
    let missing = match kernel.check(Strength::FULL) {
        Ok(_) => return Ok((Strength::FULL, None)),
        Err(error) => error.to_string(),
    };
    [(true, false), (false, true), (false, false)]
        .into_iter()
        .map(|(network_namespace, scoped)| Strength { network_namespace, scoped })
        .find(|strength| kernel.check(*strength).is_ok())
        .map(|strength| (strength, Some(missing.clone())))
        .ok_or(missing)
}

/// Alice asks for an embedding job; one operator's worker runs it, the draw selects it for a
/// check, the other operator's worker re-executes it, and the outputs agree. Then the workers
/// stop.
fn run_job(
    client: &Client,
    alice: &ed25519_dalek::SigningKey,
    workers: Vec<DemoWorker>,
    artifacts: Option<&Path>,
) -> anyhow::Result<()> {
    use substrate_core::governance::jobs::{JobInput, JobRequest};

    step(21, "the workers offer embed@1; alice asks for an embedding: a signed JobRequest, POST /v1/events");
    if workers.is_empty() {
        println!("  no worker runs here, so no job can be asked for");
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let view: serde_json::Value = client.get("/v1/workers")?.json()?;
        let offering = |did: &str| {
            view["workers"].as_array().into_iter().flatten().any(|w| {
                w["offer"]["node"] == did
                    && w["offer"]["workloads"].as_array().is_some_and(|l| l.iter().any(|x| x == "embed@1"))
            })
        };
        if workers.iter().all(|w| offering(&w.did)) {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the workers did not offer embed@1 in time: {view}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for worker in &workers {
        println!("  {}'s worker {} offers embed@1", worker.operator, worker.did);
    }
    let request = JobRequest {
        workload: "embed@1".into(),
        input: JobInput::Embed {
            texts: vec!["We sing at dawn.".into(), "The story of the kitchen table.".into()],
        },
        budget: JOB_BUDGET,
        deadline_seconds: None,
        requested: now(),
    };
    let requested = submit_event(client, &SignedEvent::sign(Event::JobRequest(request), alice))?;
    let id = requested.log_index;
    println!("  job {id} requested; {JOB_BUDGET} credits reserved (what it does not use comes back)");

    step(22, "the sequencer assigns it, draws a check with the log key, and another operator re-executes it");
    let view = super::jobs::wait_for(client, id, std::time::Duration::from_secs(240))?;
    super::jobs::print_job(&view["job"]);
    super::jobs::print_output(&view["output"]);
    let verdict = &view["job"]["status"]["verdict"];
    anyhow::ensure!(verdict == "passed", "job {id} was not checked and passed: {view}");
    let whose = |role: &str| {
        let runs = view["job"]["runs"].as_array().into_iter().flatten();
        let node = runs.filter(|r| r["role"] == role).find(|r| !r["result"].is_null()).map(|r| &r["node"]);
        workers.iter().find(|w| node.is_some_and(|n| n == w.did.as_str())).map_or("?", |w| w.operator)
    };
    println!(
        "  {}'s worker ran it and {}'s re-executed it: their vectors agree (cosine at least {}), so the output stands and both are credited",
        whose("run"),
        whose("check"),
        substrate_core::governance::jobs::EMBED_MIN_COSINE
    );
    if let Some(out) = artifacts {
        std::fs::write(out.join("job.json"), serde_json::to_string_pretty(&view)?)?;
        println!("  the job, its runs and its draw written to {}", out.join("job.json").display());
    }

    step(23, "GET /v1/workers: each worker passed a check; they stop, and leave the mesh");
    super::jobs::workers(client.base(), false)?;
    let view: serde_json::Value = client.get("/v1/workers")?.json()?;
    for worker in &workers {
        let passed = view["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["offer"]["node"] == worker.did.as_str())
            .and_then(|w| w["reputation"]["passed"].as_u64());
        anyhow::ensure!(passed >= Some(1), "{}'s worker passed no check: {view}", worker.operator);
    }
    for worker in workers {
        worker.node.stop().with_context(|| format!("stopping {}'s worker", worker.operator))?;
        println!("  {}'s worker stopped", worker.operator);
    }
    Ok(())
}

/// Credits alice reserves for the demo's job: it pays a credit per CPU-second the run used.
const JOB_BUDGET: u64 = 5;

/// Registers the node whose key is `node` to `operator`: the node signs the binding to its
/// operator in this commons, the operator the registration.
fn register_node(
    client: &Client,
    node: &ed25519_dalek::SigningKey,
    operator: &ed25519_dalek::SigningKey,
) -> anyhow::Result<Receipt> {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let operator_did = substrate_core::identity::did_of(&operator.verifying_key());
    let origin: serde_json::Value = client.get("/v1/commons")?.json()?;
    let binding = node.sign(&substrate_core::governance::acts::node_binding_message(
        origin["origin"].as_str().unwrap_or_default(),
        &operator_did,
    ));
    let registration = substrate_core::governance::acts::NodeRegistration {
        node: substrate_core::identity::did_of(&node.verifying_key()),
        binding: base64::engine::general_purpose::STANDARD.encode(binding.to_bytes()),
        requested: now(),
    };
    submit_event(client, &SignedEvent::sign(Event::NodeRegistration(registration), operator))
}

/// Where `substrate models fetch` puts the defaults: SUBSTRATE_MODELS, or the default data
/// directory's `models`.
fn models_dir() -> PathBuf {
    std::env::var_os("SUBSTRATE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("substrate-data").join("models"))
}

fn now() -> String {
    substrate_core::timestamp::rfc3339(super::now_ms())
}

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}
