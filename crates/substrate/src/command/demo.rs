//! `substrate demo`: the whole deposit → receipt → verify → withdraw flow against a fresh
//! temporary commons, then a short governance round that ends with a changed mixture, printing
//! each step.

use std::path::Path;

use anyhow::Context;
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

    step(2, "serve it on 127.0.0.1 (port chosen by the system)");
    let config = NodeConfig { listen: "127.0.0.1:0".into(), ..NodeConfig::default() };
    let node = super::node::start(&dir, &config)?;
    let client = Client::new(&node.url());
    println!("  listening on {}", node.url());
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
    super::deposit::show(client.base(), &handle, false, false)?;

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
    super::deposit::show(client.base(), &story_cid, false, false)?;
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

    let governance = governance_round(&client, &steward, &alice, &bob)?;
    if let Some(out) = artifacts {
        let dir = out.join("governance");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, receipt) in &governance {
            super::deposit::save_receipt(&dir.join(format!("{name}.receipt.json")), receipt)?;
        }
        println!("  the round's proposal, votes and decision receipts written to {}", dir.display());
    }

    step(20, "members deposit more texts in the registers the mixture weighs");
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

    step(21, "the decided mixture trains a LoRA adapter on the snapshot, signed and attributed");
    let adapter = train_demo_adapter(&dir, artifacts, &client, &alice)?;

    step(22, "the registry: bob withdraws a text the adapter was trained on, and the adapter is marked");
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

    step(23, "stop the node and replay the whole log from scratch");
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
) -> anyhow::Result<std::path::PathBuf> {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let data = DataDir::new(dir);
    let node_key = dir.join("node.key");
    let node = crate::keys::create(&node_key, substrate_core::identity::ActorKind::Node, false)?;
    // Alice registers the node that trains, so its adapter verifies against the log.
    let (_, node_signing) = crate::keys::load(&node_key)?;
    let operator_did = substrate_core::identity::did_of(&operator.verifying_key());
    let origin: serde_json::Value = client.get("/v1/commons")?.json()?;
    let binding = node_signing.sign(&substrate_core::governance::acts::node_binding_message(
        origin["origin"].as_str().unwrap_or_default(),
        &operator_did,
    ));
    let registration = substrate_core::governance::acts::NodeRegistration {
        node: node.did.clone(),
        binding: base64::engine::general_purpose::STANDARD.encode(binding.to_bytes()),
        requested: substrate_core::timestamp::rfc3339(super::now_ms()),
    };
    let receipt = submit_event(
        client,
        &SignedEvent::sign(substrate_core::event::Event::NodeRegistration(registration), operator),
    )?;
    println!("  alice registers the training node {} (entry {})", node.did, receipt.log_index);
    // Where `substrate models fetch` puts the defaults: SUBSTRATE_MODELS, or the default data
    // directory's `models`.
    let models_dir = std::env::var_os("SUBSTRATE_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("substrate-data").join("models"));
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

/// Members are attested, a mixture is proposed and voted on, the window closes, the sequencer
/// decides, and the mixture the next training run must use has changed.
fn governance_round(
    client: &Client,
    steward: &ed25519_dalek::SigningKey,
    alice: &ed25519_dalek::SigningKey,
    bob: &ed25519_dalek::SigningKey,
) -> anyhow::Result<Vec<(String, Receipt)>> {
    use substrate_core::event::Event;
    use substrate_core::governance::acts::{Action, Attestation, Proposal, VoteCast};
    use substrate_core::governance::tally::{ProposalClass, Vote};

    let did = |key: &ed25519_dalek::SigningKey| substrate_core::identity::did_of(&key.verifying_key());
    let now = || substrate_core::timestamp::rfc3339(super::now_ms());
    let act =
        |key: &ed25519_dalek::SigningKey, event: Event| submit_event(client, &SignedEvent::sign(event, key));

    step(14, "the steward attests alice and bob as verified members");
    for person in [alice, bob] {
        let attest = Attestation { person: did(person), days: None, note: None, requested: now() };
        let receipt = act(steward, Event::Attestation(attest))?;
        println!("  attested {} (entry {})", did(person), receipt.log_index);
    }

    step(15, "alice proposes a mixture that weighs oral and conversational texts more");
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

    step(16, "the three members vote, each with their own distribution over registers");
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
    super::govern::proposal(client.base(), id, false)?;

    step(17, "the window closes; the sequencer appends its decision, signed by the log key");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(DEMO_WINDOW_SECS + 20);
    loop {
        let view: serde_json::Value = client.get(&format!("/v1/proposals/{id}"))?.json()?;
        if let Some(decision) = view["proposal"]["status"]["decision"].as_u64() {
            receipts.push(("decision".to_owned(), client.get(&format!("/v1/receipts/{decision}"))?.json()?));
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "proposal {id} was not decided in time");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    super::govern::proposal(client.base(), id, false)?;

    step(18, "the mixture the next training run must use has changed");
    super::govern::mixture(client.base())?;

    step(19, "credits: alice earned some for her deposits; nobody can move them");
    super::govern::credits(client.base(), None, Some(did(alice)))?;
    Ok(receipts)
}

fn step(n: u32, what: &str) {
    println!("\n[{n}] {what}");
}
