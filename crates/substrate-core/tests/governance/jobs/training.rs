//! Training as a job: the request names a decided mixture and the run's shape, the snapshot is
//! the log's as the request found it, `training-only` texts go only to the node assigned the job,
//! a job on `local` texts runs only where they are, and two runs agree within the stated
//! tolerance.

use substrate_core::governance::jobs::{Bits, MAX_TRAIN_STEPS, TRAIN_TOLERANCE, check_output};

use super::*;

const TRAIN: &str = "train-lora@1";

fn train_input(decision: u64, steps: u32) -> JobInput {
    JobInput::TrainLora { decision, steps, batch: 2, seq_len: 32, rank: 4 }
}

fn train_request(input: JobInput, budget: u64) -> Event {
    Event::JobRequest(JobRequest {
        workload: TRAIN.into(),
        input,
        budget,
        deadline_seconds: Some(DEADLINE_SECONDS),
        requested: requested(),
    })
}

fn deposit_as(text: &[u8], register_name: &str, consent: ConsentTier) -> Event {
    let mut event = deposit(text, register_name);
    if let Event::Deposit(d) = &mut event {
        d.consent = consent;
    }
    event
}

/// Operators 10 and 11 run nodes 100 and 110, which offer training; the requester (20) has the
/// credits of a deposit; texts in `narrative` of every consent tier but `local` (and `local`
/// too when asked), a `sacred` one the mixture does not weigh, and a decided mixture. Returns
/// the decision's index.
fn training_commons(local: bool) -> (Commons, u64) {
    let mut commons = Commons::found(&[1]);
    commons.attest_all(1, [10, 11, REQUESTER]);
    commons.register_node(10, 100);
    commons.register_node(11, 110);
    commons.deposit(REQUESTER, b"a story told for credits", "narrative");
    commons.ok(deposit_as(b"a lullaby kept for training", "narrative", ConsentTier::TrainingOnly), &key(10));
    commons.ok(deposit_as(b"a psalm kept for training", "sacred", ConsentTier::TrainingOnly), &key(10));
    commons.ok(deposit_as(b"a story for members", "narrative", ConsentTier::Commons), &key(11));
    if local {
        commons.ok(deposit_as(b"a story that stays here", "narrative", ConsentTier::Local), &key(11));
    }
    let voters = [1, 10, 11, REQUESTER];
    commons.pass(1, ProposalClass::Resource, vec![approve("train-lora")], &voters);
    commons.pass(1, ProposalClass::Resource, vec![parameter("credits.floor", json!(0))], &voters);
    // Every result is drawn for a check.
    commons.pass(1, ProposalClass::Resource, vec![parameter("jobs.check-ppm", json!(1_000_000))], &voters);
    let ballot = mix(&[("narrative", 1.0)]);
    let decision = commons.pass(1, ProposalClass::Ordinary, vec![Action::SetMixture { ballot }], &voters);
    commons.offer(100, &[TRAIN]);
    commons.offer(110, &[TRAIN]);
    (commons, decision)
}

fn deposit_record(commons: &Commons, text: &[u8]) -> substrate_core::state::DepositRecord {
    commons.state.deposit(&Cid::of(text)).expect("the deposit").clone()
}

#[test]
fn a_training_job_names_a_decided_mixture_and_a_bounded_run() {
    let (mut commons, decision) = training_commons(false);
    let refused = commons
        .apply(train_request(train_input(decision - 1, 10), 5), &key(REQUESTER))
        .expect_err("not a mixture decision");
    assert_eq!(code(&refused), "job_input", "{refused}");
    assert!(refused.to_string().contains("not a decision that set the mixture"), "{refused}");
    for shape in [
        train_input(decision, 0),
        train_input(decision, MAX_TRAIN_STEPS + 1),
        JobInput::TrainLora { decision, steps: 10, batch: 2, seq_len: 8, rank: 4 },
        JobInput::TrainLora { decision, steps: 10, batch: 2, seq_len: 32, rank: 0 },
    ] {
        let refused = commons.apply(train_request(shape.clone(), 5), &key(REQUESTER)).expect_err("bounds");
        assert_eq!(code(&refused), "job_input", "{shape:?}: {refused}");
    }
    // The kind must match the workload's.
    let mut wrong = train_request(train_input(decision, 10), 5);
    if let Event::JobRequest(r) = &mut wrong {
        r.input = JobInput::Embed { texts: vec!["x".into()] };
    }
    assert_eq!(code(&commons.apply(wrong, &key(REQUESTER)).expect_err("kind")), "job_input");

    let job = commons.ok(train_request(train_input(decision, 10), 5), &key(REQUESTER)).index;
    assert!(commons.job(job).is_open());
    assert!(matches!(commons.plan().as_slice(), [(id, Planned::Assign { .. })] if *id == job));
}

#[test]
fn training_only_texts_go_to_the_assigned_node_only_while_its_assignment_lives() {
    let (mut commons, decision) = training_commons(false);
    let job = commons.ok(train_request(train_input(decision, 10), 5), &key(REQUESTER)).index;
    let lullaby = deposit_record(&commons, b"a lullaby kept for training");
    let g = || commons.state.governance();
    // Nobody has it before the job is assigned.
    let before = g().job_text(job, &did(100), &lullaby, commons.now).expect_err("not assigned");
    assert!(before.contains("no live assignment"), "{before}");

    let assignment = commons.assign(job, 100, Role::Run);
    let g = commons.state.governance();
    assert_eq!(g.job_text(job, &did(100), &lullaby, commons.now), Ok(()));
    // Another node, another tier, a register the mixture does not weigh, a text deposited after
    // the request, a job that does not exist: each refused with its reason.
    let other = g.job_text(job, &did(110), &lullaby, commons.now).expect_err("another node");
    assert!(other.contains("no live assignment"), "{other}");
    let members = deposit_record(&commons, b"a story for members");
    assert!(g.job_text(job, &did(100), &members, commons.now).expect_err("commons").contains("replicates"));
    let psalm = deposit_record(&commons, b"a psalm kept for training");
    assert!(
        g.job_text(job, &did(100), &psalm, commons.now).expect_err("sacred").contains("not in the snapshot")
    );
    assert!(g.job_text(job + 1000, &did(100), &lullaby, commons.now).is_err());
    commons.ok(deposit_as(b"a late lullaby", "narrative", ConsentTier::TrainingOnly), &key(10));
    let late = deposit_record(&commons, b"a late lullaby");
    let g = commons.state.governance();
    assert!(
        g.job_text(job, &did(100), &late, commons.now).expect_err("late").contains("not in the snapshot")
    );
    // Past the deadline, the assignment no longer lets it through.
    let deadline = commons.job(job).live_run().expect("live").deadline;
    assert!(g.job_text(job, &did(100), &lullaby, deadline + 1).is_err());

    // Once the job has ended, nobody gets the text.
    commons.answer(job, assignment, 100, trained(10, 0.0), 2_000);
    commons.draw(job).expect("draw");
    let g = commons.state.governance();
    assert!(!g.jobs()[&job].is_open() || g.jobs()[&job].live_run().is_none_or(|r| r.node != did(100)));
    assert!(g.job_text(job, &did(100), &lullaby, commons.now).is_err());
    // A withdrawn text is never sent.
    commons.ok(
        Event::Withdrawal(substrate_core::event::Withdrawal {
            cid: Some(lullaby.cid.clone()),
            reason: None,
            requested: requested(),
        }),
        &key(10),
    );
    let gone = deposit_record(&commons, b"a lullaby kept for training");
    assert!(commons.state.governance().job_text(job, &did(100), &gone, commons.now).is_err());
}

#[test]
fn a_job_on_local_texts_runs_only_on_the_node_that_holds_them_and_is_not_checked_elsewhere() {
    let (mut commons, decision) = training_commons(true);
    let job = commons.ok(train_request(train_input(decision, 10), 5), &key(REQUESTER)).index;
    let local = deposit_record(&commons, b"a story that stays here");
    assert!(
        commons
            .state
            .governance()
            .job_text(job, &did(100), &local, commons.now)
            .expect_err("local")
            .contains("never leaves")
    );

    // Without a holder that works, the job is given up with the reason.
    let plan = commons.state.job_plan(commons.now, None);
    assert!(
        matches!(plan.as_slice(), [(id, Planned::Abandon(reason))] if *id == job && reason.contains("local text")),
        "{plan:?}"
    );
    // With one, it goes there and nowhere else, whatever the reputations and loads.
    for holder in [100, 110] {
        let plan = commons.state.job_plan(commons.now, Some(&did(holder)));
        assert!(
            matches!(plan.as_slice(), [(id, Planned::Assign { node, role: Role::Run, .. })] if *id == job && *node == did(holder)),
            "{plan:?}"
        );
    }
    // A holder that does not offer the workload leaves it waiting.
    let plan = commons.state.job_plan(commons.now, Some(&did(120)));
    assert!(matches!(plan.as_slice(), [(id, Planned::Wait)] if *id == job), "{plan:?}");
    // A job without local texts goes anywhere.
    let (plain, decision) = training_commons(false);
    let mut plain = plain;
    let other = plain.ok(train_request(train_input(decision, 10), 5), &key(REQUESTER)).index;
    assert_eq!(
        plain.state.job_plan(plain.now, Some(&did(120))),
        plain.state.governance().job_plan(plain.now)
    );
    assert!(matches!(plain.plan().as_slice(), [(id, Planned::Assign { .. })] if *id == other));

    // The holder runs it; when its result is drawn for a check, nobody else may re-execute it.
    let assignment = commons.assign(job, 100, Role::Run);
    commons.answer(job, assignment, 100, trained(10, 0.0), 2_000);
    commons.draw(job).expect("draw");
    assert_eq!(commons.job(job).status, JobStatus::Open { needs: Role::Check });
    let plan = commons.state.job_plan(commons.now, Some(&did(100)));
    let Some((_, Planned::Abandon(reason))) = plan.into_iter().find(|(id, _)| *id == job) else {
        panic!("the check is not given up");
    };
    assert!(reason.contains("no other operator"), "{reason}");
    // Given up, the run stands unchecked and is paid for.
    commons.schedule(job, Step::Abandon { reason }).expect("abandon");
    assert!(matches!(commons.job(job).status, JobStatus::Done { verdict: Verdict::Unchecked, .. }));
}

/// The API code of a job refusal.
fn code(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::Job(fault) => fault.code(),
        other => panic!("not a job refusal: {other}"),
    }
}

/// A training output of `steps` losses, each moved by `relative`.
fn trained(steps: usize, relative: f64) -> JobOutput {
    let losses = (0..steps).map(|i| Bits(((3.0 - 0.1 * i as f64) * (1.0 + relative)) as f32)).collect();
    JobOutput::TrainLora {
        snapshot_root: hex::encode(substrate_core::sha256(b"root")),
        tokens: 640,
        losses,
        norms: vec![Bits(0.5), Bits(1.25)],
        weights: hex::encode(substrate_core::sha256(b"weights")),
    }
}

#[test]
fn two_training_runs_agree_within_the_stated_tolerance_and_outputs_keep_their_shape() {
    let run = trained(10, 0.0);
    assert!(agree(&run, &trained(10, TRAIN_TOLERANCE / 4.0)), "rounding between machines");
    assert!(!agree(&run, &trained(10, 0.01)), "a different run");
    assert!(!agree(&run, &trained(9, 0.0)), "a step missing");
    let mut scaled = trained(10, 0.0);
    if let JobOutput::TrainLora { norms, .. } = &mut scaled {
        norms[1] = Bits(1.3);
    }
    assert!(!agree(&run, &scaled), "an adapter scaled");
    let mut other_root = trained(10, 0.0);
    if let JobOutput::TrainLora { snapshot_root, .. } = &mut other_root {
        *snapshot_root = hex::encode(substrate_core::sha256(b"another snapshot"));
    }
    assert!(!agree(&run, &other_root), "another snapshot");

    let input = train_input(5, 10);
    assert_eq!(check_output(&input, &run), Ok(()));
    assert!(check_output(&input, &trained(9, 0.0)).is_err());
    let mut bad = trained(10, 0.0);
    if let JobOutput::TrainLora { losses, .. } = &mut bad {
        losses[3] = Bits(f32::NAN);
    }
    assert!(check_output(&input, &bad).is_err());
    assert!(check_output(&JobInput::Embed { texts: vec!["x".into()] }, &run).is_err());
    // The output's JSON round-trips bit for bit.
    let json = serde_json::to_string(&run).expect("json");
    assert_eq!(serde_json::from_str::<JobOutput>(&json).expect("parse"), run);
}

const EVALUATE: &str = "evaluate@1";

fn evaluate_request(adapter: Option<u64>, decision: u64) -> Event {
    Event::JobRequest(JobRequest {
        workload: EVALUATE.into(),
        input: JobInput::Evaluate { adapter, decision, windows: 8, seq_len: 32 },
        budget: 5,
        deadline_seconds: Some(DEADLINE_SECONDS),
        requested: requested(),
    })
}

#[test]
fn an_evaluation_names_a_published_adapter_of_the_model_it_pins_and_reads_as_training_does() {
    let (mut commons, decision) = training_commons(false);
    let voters = [1, 10, 11, REQUESTER];
    commons.pass(1, ProposalClass::Resource, vec![approve("evaluate")], &voters);
    commons.offer(100, &[TRAIN, EVALUATE]);
    commons.offer(110, &[TRAIN, EVALUATE]);

    // An adapter the log does not publish, and one of another base model, are refused.
    let refused = commons.apply(evaluate_request(Some(7), decision), &key(REQUESTER)).expect_err("unknown");
    assert_eq!(code(&refused), "job_input", "{refused}");
    assert!(refused.to_string().contains("publishes no adapter 7"), "{refused}");
    let size = commons.state.size();
    let adapter = commons
        .ok(super::super::adapters::publication(&commons.state, decision, size, "weights"), &key(100))
        .index;
    let refused =
        commons.apply(evaluate_request(Some(adapter), decision), &key(REQUESTER)).expect_err("base");
    assert!(refused.to_string().contains("does not pin"), "{refused}");
    let refused = commons.apply(evaluate_request(None, decision - 1), &key(REQUESTER)).expect_err("decision");
    assert!(refused.to_string().contains("not a decision that set the mixture"), "{refused}");

    // The base model's evaluation: the assigned node may be sent the snapshot's training-only
    // texts, as a training run's is.
    let job = commons.ok(evaluate_request(None, decision), &key(REQUESTER)).index;
    commons.assign(job, 110, Role::Run);
    let lullaby = deposit_record(&commons, b"a lullaby kept for training");
    assert_eq!(commons.state.governance().job_text(job, &did(110), &lullaby, commons.now), Ok(()));
    assert!(commons.state.governance().job_text(job, &did(100), &lullaby, commons.now).is_err());

    // Two evaluations agree when they read the same and their losses are within the tolerance.
    let line = |register: &str, loss: f32| substrate_core::governance::jobs::RegisterLoss {
        register: register.into(),
        texts: 3,
        tokens: 96,
        loss: Bits(loss),
    };
    let root = hex::encode(substrate_core::sha256(b"root"));
    let output = |lines: Vec<substrate_core::governance::jobs::RegisterLoss>| JobOutput::Evaluate {
        snapshot_root: root.clone(),
        registers: lines,
    };
    let run = output(vec![line("narrative", 2.5), line("oral", 3.0)]);
    assert!(agree(&run, &output(vec![line("narrative", 2.5005), line("oral", 3.0)])));
    assert!(!agree(&run, &output(vec![line("narrative", 2.6), line("oral", 3.0)])));
    assert!(!agree(&run, &output(vec![line("narrative", 2.5)])));
    let input = JobInput::Evaluate { adapter: None, decision, windows: 8, seq_len: 32 };
    assert_eq!(check_output(&input, &run), Ok(()));
    let unsorted = output(vec![line("oral", 3.0), line("narrative", 2.5)]);
    assert!(check_output(&input, &unsorted).is_err(), "registers in order, each once");
    assert!(check_output(&input, &output(vec![line("narrative", f32::INFINITY)])).is_err());
}
