//! Jobs in the log: offers, requests, the sequencer's steps, results, the draw and the check, and
//! the credits and reputation they move.

use substrate_core::governance::book::ComputeGrant;
use substrate_core::governance::jobs::{
    DEFAULT_CHECK_PPM, JobFault, JobInput, JobOutput, JobRecord, JobRequest, JobResult, JobSchedule,
    JobStatus, MAX_ASSIGNED, MAX_ATTEMPTS, NodeOffer, OFFER_LIFETIME_MS, Planned, Reputation, Role, Step,
    Verdict, agree, draw_message, drawn, encode_vector,
};

use super::*;

const EMBED: &str = "embed@1";
const GENERATE: &str = "generate@1";
/// A member with no node, who asks for jobs with the credits of one deposit.
const REQUESTER: u8 = 20;
const TEXTS: [&str; 2] = ["the tide came in", "the boats went out"];
/// What one job attempt may take (seconds).
const DEADLINE_SECONDS: u32 = 60;

/// An embedding of each text, and others near and far from it.
const RUN: [[f32; 4]; 2] = [[0.25, -1.5, 3.0, 0.125], [2.0, 0.5, -0.75, 1.0]];
const OTHER: [[f32; 4]; 2] = [[3.0, 0.125, -1.5, 0.25], [-0.75, 1.0, 2.0, 0.5]];

/// sha256 (hex) of the model files the approved workloads pin.
fn model() -> String {
    hex::encode(substrate_core::sha256(b"the model's files"))
}

fn approve(kind: &str) -> Action {
    Action::ApproveWorkload { kind: kind.to_owned(), version: "1".into(), models: vec![model()] }
}

/// `vectors` with each value moved by `relative` of itself, alternately up and down.
fn nudged(vectors: [[f32; 4]; 2], relative: f32) -> [[f32; 4]; 2] {
    let mut sign = 1.0;
    vectors.map(|vector| {
        vector.map(|value| {
            sign = -sign;
            value * (1.0 + sign * relative)
        })
    })
}

fn embedding(vectors: &[[f32; 4]]) -> JobOutput {
    JobOutput::Embed { vectors: vectors.iter().map(|v| encode_vector(v)).collect() }
}

pub(super) fn offer(node: u8, workloads: &[&str]) -> Event {
    Event::NodeOffer(NodeOffer {
        node: did(node),
        cores: 4,
        memory_mib: 8192,
        models: vec![model()],
        workloads: workloads.iter().map(|w| (*w).to_owned()).collect(),
        requested: requested(),
    })
}

pub(super) fn job_request(workload: &str, budget: u64) -> Event {
    Event::JobRequest(JobRequest {
        workload: workload.to_owned(),
        input: JobInput::Embed { texts: TEXTS.map(str::to_owned).to_vec() },
        budget,
        deadline_seconds: Some(DEADLINE_SECONDS),
        requested: requested(),
    })
}

pub(super) fn job_result(
    job: u64,
    assignment: u64,
    node: u8,
    output: Option<JobOutput>,
    failure: Option<&str>,
    cpu_ms: u64,
) -> Event {
    Event::JobResult(JobResult {
        job,
        assignment,
        node: did(node),
        output,
        failure: failure.map(str::to_owned),
        cpu_ms,
        requested: requested(),
    })
}

/// Operators 10, 11 and 12 run nodes 100 and 101, 110, and 120; the requester holds the credits
/// of one deposit; `embed@1` and `generate@1` are approved, pinning one model; results are
/// checked at `check_ppm` parts per million (the default when none). Nobody offers anything yet.
///
/// The commons floor is set to nothing, so that every credit a job moves is the balance's; the
/// floor has tests of its own ([`jobs_commons_with_floor`]).
fn jobs_commons(check_ppm: Option<u32>) -> Commons {
    jobs_commons_encoded(check_ppm, substrate_core::canonical::VERSION)
}

/// [`jobs_commons`] founded with `state_encoding`.
fn jobs_commons_encoded(check_ppm: Option<u32>, state_encoding: u32) -> Commons {
    jobs_commons_with_floor(check_ppm, state_encoding, 0)
}

/// [`jobs_commons`] with a commons floor of `floor` credits a day.
fn jobs_commons_with_floor(check_ppm: Option<u32>, state_encoding: u32, floor: u64) -> Commons {
    let mut commons = Commons::found_encoded(&[1], Some(state_encoding));
    commons.attest_all(1, [10, 11, 12, REQUESTER]);
    for (operator, node) in [(10, 100), (10, 101), (11, 110), (12, 120)] {
        commons.register_node(operator, node);
    }
    commons.deposit(REQUESTER, b"a story told for credits", "narrative");
    let voters = [1, 10, 11, 12, REQUESTER];
    commons.pass(1, ProposalClass::Resource, vec![approve("embed"), approve("generate")], &voters);
    commons.pass(1, ProposalClass::Resource, vec![parameter("credits.floor", json!(floor))], &voters);
    if let Some(ppm) = check_ppm {
        commons.pass(1, ProposalClass::Resource, vec![parameter("jobs.check-ppm", json!(ppm))], &voters);
    }
    assert_eq!(commons.state.governance().check_ppm(), check_ppm.unwrap_or(DEFAULT_CHECK_PPM));
    commons
}

/// The steps of jobs, on the test commons.
trait Jobs {
    fn offer(&mut self, node: u8, workloads: &[&str]);
    /// The requester asks for an embedding of [`TEXTS`] under `budget`; returns the job's id.
    fn request(&mut self, budget: u64) -> u64;
    /// A schedule step signed by the log key, as the sequencer signs it.
    fn schedule(&mut self, job: u64, step: Step) -> Result<Applied, Rejection>;
    /// Assigns `role` of `job` to `node` for the job's whole deadline; returns the assignment.
    fn assign(&mut self, job: u64, node: u8, role: Role) -> u64;
    /// `node`'s output for its `assignment`; returns the result's index.
    fn answer(&mut self, job: u64, assignment: u64, node: u8, output: JobOutput, cpu_ms: u64) -> u64;
    /// The log key's draw on the run's result.
    fn draw(&mut self, job: u64) -> Result<Applied, Rejection>;
    /// The log key's proof for a draw on `result`.
    fn proof(&self, job: u64, result: u64) -> String;
    fn job(&self, id: u64) -> &JobRecord;
    fn plan(&self) -> Vec<(u64, Planned)>;
    /// Credits (thousandths) `n` holds.
    fn balance(&self, n: u8) -> u64;
    fn reputation(&self, node: u8) -> Reputation;
    /// Nodes 100, 101, 110 and 120 offer embedding; node 100 runs a job, the draw selects it and
    /// node 110 checks it with `check`, node 120 standing by as a third operator. Returns the
    /// job, the run's result and the check's.
    fn checked(&mut self, check: [[f32; 4]; 2]) -> (u64, u64, u64);
}

impl Jobs for Commons {
    fn offer(&mut self, node: u8, workloads: &[&str]) {
        self.ok(offer(node, workloads), &key(node));
    }

    fn request(&mut self, budget: u64) -> u64 {
        self.ok(job_request(EMBED, budget), &key(REQUESTER)).index
    }

    fn schedule(&mut self, job: u64, step: Step) -> Result<Applied, Rejection> {
        let log = self.log.clone();
        self.apply(Event::JobSchedule(JobSchedule { job, step }), &log)
    }

    fn assign(&mut self, job: u64, node: u8, role: Role) -> u64 {
        let deadline = self.now + u64::from(DEADLINE_SECONDS) * 1000;
        let step = Step::Assign { node: did(node), role, deadline };
        self.schedule(job, step)
            .unwrap_or_else(|e| panic!("assigning {} of job {job} to {node}: {e}", role.name()))
            .index
    }

    fn answer(&mut self, job: u64, assignment: u64, node: u8, output: JobOutput, cpu_ms: u64) -> u64 {
        self.ok(job_result(job, assignment, node, Some(output), None, cpu_ms), &key(node)).index
    }

    fn draw(&mut self, job: u64) -> Result<Applied, Rejection> {
        let Some(Planned::Draw(result)) =
            self.plan().into_iter().find(|(id, _)| *id == job).map(|(_, step)| step)
        else {
            panic!("job {job} waits for no draw: {:?}", self.job(job).status);
        };
        let proof = self.proof(job, result);
        self.schedule(job, Step::Draw { result, proof })
    }

    fn proof(&self, job: u64, result: u64) -> String {
        STANDARD.encode(self.log.sign(&draw_message(ORIGIN, job, result)).to_bytes())
    }

    fn job(&self, id: u64) -> &JobRecord {
        self.state.governance().jobs().get(&id).expect("the job")
    }

    fn plan(&self) -> Vec<(u64, Planned)> {
        self.state.governance().job_plan(self.now)
    }

    fn balance(&self, n: u8) -> u64 {
        self.state.governance().credits(&did(n)).map_or(0, |c| c.balance)
    }

    fn reputation(&self, node: u8) -> Reputation {
        self.state.governance().reputation(&did(node))
    }

    fn checked(&mut self, check: [[f32; 4]; 2]) -> (u64, u64, u64) {
        for node in [100, 101, 110, 120] {
            self.offer(node, &[EMBED]);
        }
        let job = self.request(5);
        let run = self.assign(job, 100, Role::Run);
        let run_result = self.answer(job, run, 100, embedding(&RUN), 2500);
        self.draw(job).expect("the draw");
        assert_eq!(self.job(job).drawn, Some(true));
        assert_eq!(self.job(job).status, JobStatus::Open { needs: Role::Check });
        let plan = self.plan();
        let [(_, Planned::Assign { node, role: Role::Check, .. })] = plan.as_slice() else {
            panic!("{plan:?}")
        };
        assert!([did(110), did(120)].contains(node), "a check by the run's own operator: {plan:?}");
        let assignment = self.assign(job, 110, Role::Check);
        let check_result = self.answer(job, assignment, 110, embedding(&check), 1200);
        (job, run_result, check_result)
    }
}

/// Credits (thousandths) a grant of `credits` leaves its holder, after the stability pool's share.
fn granted(commons: &Commons, credits: u64) -> u64 {
    let milli = credits * 1000;
    milli - milli * u64::from(commons.params().credits.stability_share_ppm) / 1_000_000
}

fn grant_of(commons: &Commons, result: u64) -> Option<&ComputeGrant> {
    commons.state.governance().compute().find(|c| c.receipt == result)
}

#[test]
fn a_job_that_is_not_drawn_pays_its_worker_and_returns_the_rest_of_the_budget() {
    let mut commons = jobs_commons(Some(0));
    commons.offer(100, &[EMBED]);
    let equal = commons.state.governance().technical_chamber(commons.now);
    let before = commons.balance(REQUESTER);
    assert_eq!(before, granted(&commons, commons.params().credits.deposit));
    let job = commons.request(5);
    assert_eq!(commons.balance(REQUESTER), before - 5000, "the budget is held back");
    let record = commons.job(job);
    assert_eq!((record.reserved, &record.status), (5000, &JobStatus::Open { needs: Role::Run }));
    assert_eq!(record.requester, did(REQUESTER));

    let plan = commons.plan();
    let [(id, Planned::Assign { node, role: Role::Run, deadline })] = plan.as_slice() else {
        panic!("{plan:?}")
    };
    assert_eq!((*id, node), (job, &did(100)));
    let step = Step::Assign { node: node.clone(), role: Role::Run, deadline: *deadline };
    let assignment = commons.schedule(job, step).expect("the assignment").index;
    assert_eq!(commons.plan(), Vec::new(), "node 100 has it until its deadline");

    let result = commons.answer(job, assignment, 100, embedding(&RUN), 2500);
    assert_eq!(commons.job(job).status, JobStatus::Drawing);
    assert_eq!(commons.plan(), vec![(job, Planned::Draw(result))]);
    let at = commons.now;
    commons.draw(job).expect("the draw");

    // 2.5 CPU-seconds are charged as 3 at 1 credit each.
    let rate = commons.params().credits.compute;
    assert_eq!(rate, 1);
    let record = commons.job(job);
    assert_eq!(record.drawn, Some(false));
    assert_eq!(
        record.status,
        JobStatus::Done { verdict: Verdict::Unsampled, result, units: 3, paid: 3000, at }
    );
    assert_eq!((record.reserved, &record.input, record.outputs.len()), (0, &None, 0));
    assert_eq!(commons.balance(REQUESTER), before - 3000);
    assert_eq!(commons.balance(10), granted(&commons, 3));
    let grant = grant_of(&commons, result).expect("a compute grant for the result");
    assert_eq!(
        (grant.job.as_str(), grant.workload.as_str(), &grant.node, &grant.operator, grant.units, grant.at),
        (format!("job/{job}/run").as_str(), EMBED, &did(100), &did(10), 3, at)
    );
    assert!(grant.verifiers.is_empty(), "{grant:?}");
    assert_eq!(commons.state.governance().compute().count(), 1);
    // Operator 10 now weighs the most in the technical chamber the three operators make, up to
    // its cap of 2/3; before, all three weighed the same.
    let technical = commons.state.governance().technical_chamber(commons.now);
    assert!((technical[&did(10)] - 2.0 / 3.0).abs() < 1e-9, "{technical:?}");
    assert!((technical[&did(11)] - 1.0 / 6.0).abs() < 1e-9, "{technical:?}");
    assert!(equal.values().all(|w| (w - 1.0 / 3.0).abs() < 1e-9), "{equal:?}");
    assert_eq!(commons.plan(), Vec::new());
    assert!(commons.state.governance().reputations().is_empty(), "an unchecked job judges nobody");
}

#[test]
fn the_draw_is_the_log_keys_signature_at_the_commons_rate() {
    let mut commons = jobs_commons(None);
    commons.offer(100, &[EMBED]);
    let job = commons.request(2);
    let assignment = commons.assign(job, 100, Role::Run);
    let result = commons.answer(job, assignment, 100, embedding(&RUN), 10);
    let proof = commons.proof(job, result);
    let signature = STANDARD.decode(&proof).expect("base64");
    let selected = drawn(&signature, DEFAULT_CHECK_PPM);
    assert!(drawn(&signature, 1_000_000) && !drawn(&signature, 0));
    commons.schedule(job, Step::Draw { result, proof }).expect("the draw");
    let record = commons.job(job);
    assert_eq!(record.drawn, Some(selected));
    if selected {
        assert_eq!(record.status, JobStatus::Open { needs: Role::Check });
    } else {
        assert!(
            matches!(record.status, JobStatus::Done { verdict: Verdict::Unsampled, .. }),
            "{:?}",
            record.status
        );
    }
}

#[test]
fn a_check_that_agrees_credits_both_operators_and_the_requester_pays_once() {
    let mut commons = jobs_commons(Some(1_000_000));
    let before = commons.balance(REQUESTER);
    let (job, run_result, check_result) = commons.checked(nudged(RUN, 1e-7));
    assert_ne!(embedding(&nudged(RUN, 1e-7)), embedding(&RUN), "the check is not bit for bit the run");

    let record = commons.job(job);
    assert_eq!(
        record.status,
        JobStatus::Done {
            verdict: Verdict::Passed,
            result: run_result,
            units: 3,
            paid: 3000,
            at: commons.now - 1
        }
    );
    assert_eq!(record.dispute, None);
    assert_eq!(commons.balance(REQUESTER), before - 3000);
    assert_eq!(commons.balance(10), granted(&commons, 3));
    assert_eq!(commons.balance(11), granted(&commons, 2), "the check used 2 CPU-seconds");
    assert_eq!(commons.balance(12), 0);
    let run = grant_of(&commons, run_result).expect("the run's grant");
    assert_eq!((&run.operator, &run.verifiers, run.units), (&did(10), &vec![did(110)], 3));
    let check = grant_of(&commons, check_result).expect("the check's grant");
    assert_eq!((&check.operator, &check.verifiers, check.units), (&did(11), &vec![did(100)], 2));
    assert_eq!(check.job, format!("job/{job}/check"));
    for node in [100, 110] {
        assert_eq!(commons.reputation(node), Reputation { node: did(node), passed: 1, failed: 0, missed: 0 });
    }
    assert_eq!(commons.reputation(120), Reputation { node: did(120), ..Reputation::default() });
}

#[test]
fn a_check_by_another_node_of_the_runs_operator_is_refused() {
    let mut commons = jobs_commons(Some(1_000_000));
    for node in [100, 101, 110] {
        commons.offer(node, &[EMBED]);
    }
    let job = commons.request(5);
    let run = commons.assign(job, 100, Role::Run);
    commons.answer(job, run, 100, embedding(&RUN), 1000);
    commons.draw(job).expect("the draw");
    let plan = commons.plan();
    assert!(
        matches!(plan.as_slice(), [(_, Planned::Assign { node, role: Role::Check, .. })] if *node == did(110)),
        "{plan:?}"
    );
    let root = commons.state.root();
    let deadline = commons.now + 1000;
    for node in [100, 101] {
        let refused = commons.schedule(job, Step::Assign { node: did(node), role: Role::Check, deadline });
        assert!(
            matches!(&refused, Err(Rejection::Job(JobFault::Ineligible { job: j, node: n, .. })) if *j == job && *n == did(node)),
            "{refused:?}"
        );
    }
    // Nor is a role the job does not need now.
    let refused = commons.schedule(job, Step::Assign { node: did(110), role: Role::Arbitrate, deadline });
    assert!(matches!(&refused, Err(Rejection::Job(JobFault::OutOfTurn { .. }))), "{refused:?}");
    assert_eq!(commons.state.root(), root);
}

#[test]
fn a_dispute_upheld_by_a_third_operator_fails_the_checker() {
    let mut commons = jobs_commons(Some(1_000_000));
    let before = commons.balance(REQUESTER);
    let (job, run_result, check_result) = commons.checked(OTHER);
    assert!(!agree(&embedding(&RUN), &embedding(&OTHER)));
    let record = commons.job(job);
    assert_eq!(record.status, JobStatus::Open { needs: Role::Arbitrate });
    let dispute = record.dispute.clone().expect("a dispute");
    assert_eq!((dispute.results, dispute.arbiter), (vec![run_result, check_result], None));
    assert_eq!(commons.balance(REQUESTER), before - 5000, "nothing is paid while the dispute is open");
    let plan = commons.plan();
    assert!(
        matches!(plan.as_slice(), [(_, Planned::Assign { node, role: Role::Arbitrate, .. })] if *node == did(120)),
        "only operator 12 is neither the run's nor the check's: {plan:?}"
    );

    let assignment = commons.assign(job, 120, Role::Arbitrate);
    let arbiter = commons.answer(job, assignment, 120, embedding(&nudged(RUN, 1e-7)), 900);
    let record = commons.job(job);
    assert!(
        matches!(record.status, JobStatus::Done { verdict: Verdict::Upheld, result, units: 3, paid: 3000, .. } if result == run_result),
        "{:?}",
        record.status
    );
    let dispute = record.dispute.clone().expect("the dispute");
    assert_eq!(dispute.arbiter, Some(arbiter));
    assert!(dispute.finding.is_some_and(|f| f.contains(&did(110))));
    assert_eq!(commons.reputation(110), Reputation { node: did(110), passed: 0, failed: 1, missed: 0 });
    for node in [100, 120] {
        assert_eq!(commons.reputation(node), Reputation { node: did(node), passed: 1, failed: 0, missed: 0 });
    }
    assert_eq!(commons.balance(REQUESTER), before - 3000);
    assert_eq!(commons.balance(10), granted(&commons, 3));
    assert_eq!(commons.balance(11), 0, "the checker out of line is not credited");
    assert_eq!(commons.balance(12), granted(&commons, 1));
    assert!(grant_of(&commons, check_result).is_none());
    assert!(grant_of(&commons, arbiter).is_some_and(|g| g.job == format!("job/{job}/arbitrate")));
}

#[test]
fn a_dispute_overturned_by_a_third_operator_fails_the_run() {
    let mut commons = jobs_commons(Some(1_000_000));
    let before = commons.balance(REQUESTER);
    let (job, run_result, check_result) = commons.checked(OTHER);
    let assignment = commons.assign(job, 120, Role::Arbitrate);
    let arbiter = commons.answer(job, assignment, 120, embedding(&nudged(OTHER, 1e-7)), 900);
    let record = commons.job(job);
    // The check's output stands, charged at its own 2 CPU-seconds.
    assert!(
        matches!(record.status, JobStatus::Done { verdict: Verdict::Overturned, result, units: 2, paid: 2000, .. } if result == check_result),
        "{:?}",
        record.status
    );
    assert!(record.dispute.as_ref().and_then(|d| d.finding.as_ref()).is_some_and(|f| f.contains(&did(100))));
    assert_eq!(commons.reputation(100), Reputation { node: did(100), passed: 0, failed: 1, missed: 0 });
    for node in [110, 120] {
        assert_eq!(commons.reputation(node), Reputation { node: did(node), passed: 1, failed: 0, missed: 0 });
    }
    assert_eq!(commons.balance(REQUESTER), before - 2000);
    assert_eq!(commons.balance(10), 0, "the run out of line is not credited");
    assert!(grant_of(&commons, run_result).is_none());
    assert_eq!(commons.balance(11), granted(&commons, 2));
    assert_eq!(commons.balance(12), granted(&commons, 1));
    assert!(grant_of(&commons, arbiter).is_some());
}

#[test]
fn an_arbiter_agreeing_with_neither_leaves_the_dispute_unresolved_and_returns_the_budget() {
    let mut commons = jobs_commons(Some(1_000_000));
    let before = commons.balance(REQUESTER);
    let (job, _, _) = commons.checked(OTHER);
    let assignment = commons.assign(job, 120, Role::Arbitrate);
    let third = [[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0]];
    commons.answer(job, assignment, 120, embedding(&third), 900);
    let record = commons.job(job);
    assert!(
        matches!(record.status, JobStatus::Done { verdict: Verdict::Unresolved, units: 0, paid: 0, .. }),
        "{:?}",
        record.status
    );
    assert_eq!(commons.balance(REQUESTER), before);
    assert_eq!((commons.balance(10), commons.balance(11), commons.balance(12)), (0, 0, 0));
    assert_eq!(commons.state.governance().compute().count(), 0);
}

#[test]
fn outputs_agree_within_float_rounding_and_generations_token_for_token() {
    let run = embedding(&RUN);
    assert!(agree(&run, &embedding(&nudged(RUN, 1e-7))));
    assert!(agree(&run, &embedding(&nudged(RUN, 1e-6))));
    assert!(!agree(&run, &embedding(&OTHER)));
    assert!(!agree(&run, &embedding(&RUN[..1])), "a vector short");
    let one_off = [RUN[0], OTHER[1]];
    assert!(!agree(&run, &embedding(&one_off)), "every vector must agree");
    let generation =
        |tokens: &[u32], text: &str| JobOutput::Generate { tokens: tokens.to_vec(), text: text.into() };
    assert!(agree(&generation(&[5, 9, 2], "a b c"), &generation(&[5, 9, 2], "a  b c")));
    assert!(!agree(&generation(&[5, 9, 2], "a b c"), &generation(&[5, 9, 3], "a b c")));
    assert!(!agree(&generation(&[5, 9, 2], "a b c"), &run));
}

#[test]
fn a_run_past_its_deadline_goes_to_another_node_and_the_lapsed_attempts_end_the_job() {
    let mut commons = jobs_commons(Some(0));
    for node in [100, 110, 120] {
        commons.offer(node, &[EMBED]);
    }
    let before = commons.balance(REQUESTER);
    let job = commons.request(5);
    let first = commons.assign(job, 100, Role::Run);
    let deadline = commons.now - 1 + u64::from(DEADLINE_SECONDS) * 1000;

    // Until the deadline nobody takes it over, nor is it given up.
    commons.wait_until(deadline);
    assert_eq!(commons.plan(), Vec::new());
    let early =
        commons.schedule(job, Step::Assign { node: did(110), role: Role::Run, deadline: deadline + 1000 });
    assert!(matches!(&early, Err(Rejection::Job(JobFault::OutOfTurn { .. }))), "{early:?}");
    let early = commons.schedule(job, Step::Abandon { reason: "too slow".into() });
    assert!(matches!(&early, Err(Rejection::Job(JobFault::OutOfTurn { .. }))), "{early:?}");

    commons.wait_until(deadline + 1);
    let plan = commons.plan();
    let [(_, Planned::Assign { node, role: Role::Run, .. })] = plan.as_slice() else { panic!("{plan:?}") };
    assert_ne!(node, &did(100), "{plan:?}");
    let second = commons.assign(job, 110, Role::Run);
    let record = commons.job(job);
    assert_eq!(
        record.runs.iter().map(|r| (r.assignment, r.missed)).collect::<Vec<_>>(),
        [(first, true), (second, false)]
    );
    assert_eq!(commons.reputation(100), Reputation { node: did(100), passed: 0, failed: 0, missed: 1 });
    // The lapsed node's answer comes too late.
    let late = commons.apply(job_result(job, first, 100, Some(embedding(&RUN)), None, 10), &key(100));
    assert!(matches!(&late, Err(Rejection::Job(JobFault::NotAssigned { .. }))), "{late:?}");

    // The second node fails; the third is the only one left, and lets it lapse.
    commons.ok(job_result(job, second, 110, None, Some("out of memory"), 10), &key(110));
    assert_eq!(commons.job(job).status, JobStatus::Open { needs: Role::Run });
    let plan = commons.plan();
    assert!(
        matches!(plan.as_slice(), [(_, Planned::Assign { node, role: Role::Run, .. })] if *node == did(120)),
        "{plan:?}"
    );
    commons.assign(job, 120, Role::Run);
    commons.wait_until(commons.now + u64::from(DEADLINE_SECONDS) * 1000);
    let plan = commons.plan();
    let [(_, Planned::Abandon(reason))] = plan.as_slice() else { panic!("{plan:?}") };
    assert_eq!(MAX_ATTEMPTS, 3);
    let at = commons.now;
    commons.schedule(job, Step::Abandon { reason: reason.clone() }).expect("the job is given up");
    assert_eq!(commons.job(job).status, JobStatus::Failed { reason: reason.clone(), at });
    assert_eq!(commons.reputation(120).missed, 1);
    assert_eq!(commons.reputation(110), Reputation { node: did(110), ..Reputation::default() });
    assert_eq!(commons.balance(REQUESTER), before, "the whole reservation comes back");
    assert_eq!(commons.job(job).reserved, 0);
    assert_eq!((commons.balance(10), commons.balance(11), commons.balance(12)), (0, 0, 0));
    assert_eq!(commons.plan(), Vec::new());
}

#[test]
fn a_run_longer_than_the_budget_is_charged_the_budget_and_no_more() {
    let mut commons = jobs_commons(Some(0));
    commons.offer(100, &[EMBED]);
    let before = commons.balance(REQUESTER);
    let job = commons.request(2);
    let assignment = commons.assign(job, 100, Role::Run);
    let result = commons.answer(job, assignment, 100, embedding(&RUN), 3_600_000);
    commons.draw(job).expect("the draw");
    assert!(
        matches!(commons.job(job).status, JobStatus::Done { units: 2, paid: 2000, .. }),
        "{:?}",
        commons.job(job).status
    );
    assert_eq!(commons.balance(REQUESTER), before - 2000);
    assert_eq!(commons.balance(10), granted(&commons, 2));
    assert_eq!(grant_of(&commons, result).map(|g| g.units), Some(2));
}

#[test]
fn a_run_that_fails_on_every_attempt_fails_the_job_and_returns_the_reservation() {
    let mut commons = jobs_commons(Some(0));
    for node in [100, 110, 120] {
        commons.offer(node, &[EMBED]);
    }
    let before = commons.balance(REQUESTER);
    let job = commons.request(5);
    for (attempt, node) in [100, 110, 120].into_iter().enumerate() {
        assert_eq!(commons.job(job).status, JobStatus::Open { needs: Role::Run });
        let assignment = commons.assign(job, node, Role::Run);
        commons.ok(job_result(job, assignment, node, None, Some("the model would not load"), 10), &key(node));
        assert_eq!(commons.job(job).runs.len(), attempt + 1);
    }
    let record = commons.job(job);
    assert!(
        matches!(&record.status, JobStatus::Failed { reason, .. } if reason.contains("would not load")),
        "{:?}",
        record.status
    );
    assert_eq!(commons.balance(REQUESTER), before);
    assert_eq!(commons.state.governance().compute().count(), 0);
    assert_eq!(commons.plan(), Vec::new());
}

#[test]
fn a_node_that_let_its_run_lapse_is_not_assigned_it_again() {
    let mut commons = jobs_commons(Some(0));
    commons.offer(100, &[EMBED]);
    let job = commons.request(5);
    commons.assign(job, 100, Role::Run);
    commons.wait_until(commons.now + u64::from(DEADLINE_SECONDS) * 1000);
    assert_eq!(commons.plan(), vec![(job, Planned::Wait)], "node 100 let this run lapse");
    let again =
        commons.schedule(job, Step::Assign { node: did(100), role: Role::Run, deadline: commons.now + 1000 });
    assert!(matches!(&again, Err(Rejection::Job(JobFault::Ineligible { .. }))), "{again:?}");
}

#[test]
fn a_request_is_refused_for_each_reason_with_its_own_fault() {
    let mut commons = jobs_commons(Some(0));
    commons.offer(100, &[EMBED]);
    let root = commons.state.root();
    let balance = commons.balance(REQUESTER);

    let refused = commons.apply(job_request("embed@2", 5), &key(REQUESTER));
    assert_eq!(refused, Err(Rejection::Job(JobFault::NotApproved("embed@2".into()))));
    let refused = commons.apply(job_request(EMBED, 5), &key(30));
    assert_eq!(refused, Err(Rejection::NotMember(did(30))));
    let refused = commons.apply(job_request(EMBED, 0), &key(REQUESTER));
    assert_eq!(refused, Err(Rejection::Job(JobFault::Budget)));
    let refused = commons.apply(job_request(EMBED, 10), &key(REQUESTER));
    let fault = JobFault::Credits { holder: did(REQUESTER), need: 10, have_milli: balance, floor_milli: 0 };
    assert_eq!(fault.status(), 402);
    assert_eq!(refused, Err(Rejection::Job(fault)));
    let refused = commons.apply(job_request(EMBED, 5), &key(11));
    assert!(matches!(&refused, Err(Rejection::Job(JobFault::Credits { have_milli: 0, .. }))), "{refused:?}");
    // Generation is approved, but nobody offers it.
    let generate = Event::JobRequest(JobRequest {
        workload: GENERATE.into(),
        input: JobInput::Generate { prompt: "Once upon a time".into(), max_tokens: 16 },
        budget: 1,
        deadline_seconds: None,
        requested: requested(),
    });
    assert_eq!(
        commons.apply(generate, &key(REQUESTER)),
        Err(Rejection::Job(JobFault::NoWorker(GENERATE.into())))
    );
    // Nor does anyone whose offer lacks the pinned model.
    let mut stale = offer(110, &[GENERATE]);
    let Event::NodeOffer(o) = &mut stale else { unreachable!() };
    o.models = vec![hex::encode(substrate_core::sha256(b"another model"))];
    commons.ok(stale, &key(110));
    let root_with_offer = commons.state.root();
    let generate = Event::JobRequest(JobRequest {
        workload: GENERATE.into(),
        input: JobInput::Generate { prompt: "Once upon a time".into(), max_tokens: 16 },
        budget: 1,
        deadline_seconds: None,
        requested: requested(),
    });
    assert_eq!(
        commons.apply(generate, &key(REQUESTER)),
        Err(Rejection::Job(JobFault::NoWorker(GENERATE.into())))
    );
    assert_ne!(root, root_with_offer);
    assert_eq!(commons.state.root(), root_with_offer, "a refusal leaves the state as it was");
    assert_eq!(commons.balance(REQUESTER), balance);
    assert!(commons.state.governance().jobs().is_empty());
}

#[test]
fn an_offer_is_only_the_registered_nodes_own() {
    let mut commons = jobs_commons(Some(0));
    let root = commons.state.root();
    let refused = commons.apply(offer(100, &[EMBED]), &key(110));
    assert_eq!(refused, Err(Rejection::Job(JobFault::OfferSigner { node: did(100), signer: did(110) })));
    let refused = commons.apply(offer(130, &[EMBED]), &key(130));
    assert_eq!(refused, Err(Rejection::Job(JobFault::UnregisteredNode(did(130)))));
    assert_eq!(commons.state.root(), root);
    assert!(commons.state.governance().offers().is_empty());

    commons.offer(100, &[EMBED]);
    let record = &commons.state.governance().offers()[&did(100)];
    assert_eq!((&record.operator, &record.workloads), (&did(10), &vec![EMBED.to_owned()]));
    // A node whose operator is no longer verified offers nothing.
    commons.ok(revocation(&did(12), false), &key(1));
    let refused = commons.apply(offer(120, &[EMBED]), &key(120));
    assert_eq!(refused, Err(Rejection::Job(JobFault::OperatorUnverified(did(12)))));
    // An empty offer withdraws it: nobody can take a job any more.
    commons.offer(100, &[]);
    let refused = commons.apply(job_request(EMBED, 1), &key(REQUESTER));
    assert_eq!(refused, Err(Rejection::Job(JobFault::NoWorker(EMBED.into()))));
}

#[test]
fn a_result_is_refused_unless_it_answers_the_nodes_live_assignment_in_shape() {
    let mut commons = jobs_commons(Some(0));
    for node in [100, 110] {
        commons.offer(node, &[EMBED]);
    }
    let job = commons.request(5);
    let assignment = commons.assign(job, 100, Role::Run);
    let root = commons.state.root();

    let refused = commons.apply(job_result(job, assignment, 110, Some(embedding(&RUN)), None, 10), &key(110));
    assert_eq!(refused, Err(Rejection::Job(JobFault::NotAssigned { job, assignment, node: did(110) })));
    let refused = commons.apply(job_result(job, assignment, 100, Some(embedding(&RUN)), None, 10), &key(110));
    assert_eq!(refused, Err(Rejection::Job(JobFault::ResultSigner { node: did(100), signer: did(110) })));
    let refused =
        commons.apply(job_result(job + 1000, assignment, 100, Some(embedding(&RUN)), None, 10), &key(100));
    assert_eq!(refused, Err(Rejection::Job(JobFault::UnknownJob(job + 1000))));
    let refused = commons.apply(job_result(job, job, 100, Some(embedding(&RUN)), None, 10), &key(100));
    assert_eq!(refused, Err(Rejection::Job(JobFault::NotAssigned { job, assignment: job, node: did(100) })));

    let mut nan = RUN;
    nan[1][2] = f32::NAN;
    let generation = JobOutput::Generate { tokens: vec![1, 2], text: "a b".into() };
    let shapes = [
        ("a vector short", embedding(&RUN[..1])),
        ("a NaN", embedding(&nan)),
        ("all zeros", embedding(&[RUN[0], [0.0; 4]])),
        (
            "widths differ",
            JobOutput::Embed { vectors: vec![encode_vector(&RUN[0]), encode_vector(&RUN[1][..3])] },
        ),
        ("not base64", JobOutput::Embed { vectors: vec![encode_vector(&RUN[0]), "not base64!".into()] }),
        ("another kind", generation),
    ];
    for (what, output) in shapes {
        let refused = commons.apply(job_result(job, assignment, 100, Some(output), None, 10), &key(100));
        assert!(matches!(&refused, Err(Rejection::Job(JobFault::Output(_)))), "{what}: {refused:?}");
    }
    let both = commons
        .apply(job_result(job, assignment, 100, Some(embedding(&RUN)), Some("and failed"), 10), &key(100));
    assert!(matches!(&both, Err(Rejection::Job(JobFault::Output(_)))), "{both:?}");
    let neither = commons.apply(job_result(job, assignment, 100, None, None, 10), &key(100));
    assert!(matches!(&neither, Err(Rejection::Job(JobFault::Output(_)))), "{neither:?}");
    let greedy =
        commons.apply(job_result(job, assignment, 100, Some(embedding(&RUN)), None, u64::MAX), &key(100));
    assert!(matches!(&greedy, Err(Rejection::Job(JobFault::Output(_)))), "{greedy:?}");
    assert_eq!(commons.state.root(), root);

    let result = commons.answer(job, assignment, 100, embedding(&RUN), 10);
    let again = commons.apply(job_result(job, assignment, 100, Some(embedding(&RUN)), None, 10), &key(100));
    assert_eq!(again, Err(Rejection::Job(JobFault::NotAssigned { job, assignment, node: did(100) })));
    assert_eq!(commons.job(job).status, JobStatus::Drawing);
    assert_eq!(commons.job(job).runs[0].result, Some(result));
}

#[test]
fn only_the_log_key_schedules_and_a_forged_draw_is_refused() {
    let mut commons = jobs_commons(Some(0));
    commons.offer(100, &[EMBED]);
    let job = commons.request(5);
    let deadline = commons.now + 1000;
    let assign = Event::JobSchedule(JobSchedule {
        job,
        step: Step::Assign { node: did(100), role: Role::Run, deadline },
    });
    assert_eq!(commons.apply(assign, &key(1)), Err(Rejection::NotLogKey(did(1))));
    let assignment = commons.assign(job, 100, Role::Run);
    let result = commons.answer(job, assignment, 100, embedding(&RUN), 10);
    let root = commons.state.root();

    let by_another = STANDARD.encode(key(1).sign(&draw_message(ORIGIN, job, result)).to_bytes());
    let over_another_job = commons.proof(job + 1, result);
    let in_another_commons =
        STANDARD.encode(commons.log.sign(&draw_message("elsewhere", job, result)).to_bytes());
    for proof in [by_another, over_another_job, in_another_commons, "not a signature".into(), String::new()] {
        let refused = commons.schedule(job, Step::Draw { result, proof: proof.clone() });
        assert_eq!(refused, Err(Rejection::Job(JobFault::BadDraw)), "{proof}");
    }
    // The log key's draw must be over the run's result.
    let refused =
        commons.schedule(job, Step::Draw { result: assignment, proof: commons.proof(job, assignment) });
    assert!(matches!(&refused, Err(Rejection::Job(JobFault::OutOfTurn { .. }))), "{refused:?}");
    let draw = Event::JobSchedule(JobSchedule {
        job,
        step: Step::Draw { result, proof: commons.proof(job, result) },
    });
    assert_eq!(commons.apply(draw, &key(1)), Err(Rejection::NotLogKey(did(1))));
    assert_eq!(commons.state.root(), root);
    assert_eq!(commons.job(job).status, JobStatus::Drawing);
}

#[test]
fn a_done_job_takes_nothing_more_and_nobodys_credits_change() {
    let mut commons = jobs_commons(Some(0));
    for node in [100, 110] {
        commons.offer(node, &[EMBED]);
    }
    let job = commons.request(5);
    let assignment = commons.assign(job, 100, Role::Run);
    let result = commons.answer(job, assignment, 100, embedding(&RUN), 2500);
    let draw = commons.draw(job).expect("the draw").index;
    assert!(matches!(commons.job(job).status, JobStatus::Done { verdict: Verdict::Unsampled, .. }));
    let credits: Vec<_> = commons.state.governance().all_credits().cloned().collect();
    let root = commons.state.root();

    let ended = |refused: Result<Applied, Rejection>| {
        assert!(
            matches!(&refused, Err(Rejection::Job(JobFault::Ended { job: j, .. })) if *j == job),
            "{refused:?}"
        );
    };
    ended(commons.apply(job_result(job, assignment, 100, Some(embedding(&RUN)), None, 2500), &key(100)));
    ended(commons.apply(job_result(job, assignment, 100, None, Some("crashed"), 1), &key(100)));
    let deadline = commons.now + 1000;
    ended(commons.schedule(job, Step::Assign { node: did(110), role: Role::Check, deadline }));
    ended(commons.schedule(job, Step::Assign { node: did(110), role: Role::Run, deadline }));
    ended(commons.schedule(job, Step::Abandon { reason: "again".into() }));
    let proof = commons.proof(job, result);
    assert_eq!(commons.schedule(job, Step::Draw { result, proof }), Err(Rejection::Duplicate(draw)));
    ended(commons.schedule(job, Step::Draw { result: assignment, proof: commons.proof(job, assignment) }));

    assert_eq!(commons.state.governance().all_credits().cloned().collect::<Vec<_>>(), credits);
    assert_eq!(commons.state.root(), root);
    assert_eq!(commons.state.governance().compute().count(), 1);
}

#[test]
fn replaying_a_log_of_jobs_gives_the_same_root_every_time() {
    let mut commons = jobs_commons(Some(1_000_000));
    let (job, _, _) = commons.checked(OTHER);
    let assignment = commons.assign(job, 120, Role::Arbitrate);
    commons.answer(job, assignment, 120, embedding(&nudged(RUN, 1e-7)), 900);
    // A second job, left open with a lapsed run.
    let second = commons.request(1);
    commons.assign(second, 110, Role::Run);
    commons.wait_until(commons.now + u64::from(DEADLINE_SECONDS) * 1000 + 1);
    commons.assign(second, 100, Role::Run);

    let replay = || {
        let mut state = State::new();
        for (index, (time, signed)) in commons.entries.iter().enumerate() {
            let reopened = SignedEvent::open_bytes(&signed.envelope.to_bytes()).expect("the entry reopens");
            state.apply(index as u64, *time, &reopened).unwrap_or_else(|e| panic!("entry {index}: {e}"));
        }
        state
    };
    let (once, twice) = (replay(), replay());
    assert_eq!(once.root(), commons.state.root());
    assert_eq!(twice.root(), once.root());
    assert_eq!(once.governance().records(), commons.state.governance().records());
    assert_eq!(once.governance().job_plan(commons.now), commons.plan());
    assert_eq!(once.governance().jobs().len(), 2);
}

#[test]
fn a_drawn_job_no_other_operator_can_check_stands_unchecked_after_one_deadline() {
    let mut commons = jobs_commons(Some(1_000_000));
    // Only operator 10's nodes offer: nobody of another operator can check.
    commons.offer(100, &[EMBED]);
    commons.offer(101, &[EMBED]);
    let job = commons.request(5);
    let run = commons.assign(job, 100, Role::Run);
    commons.answer(job, run, 100, embedding(&RUN), 1500);
    commons.draw(job).expect("the draw");
    assert_eq!(commons.job(job).status, JobStatus::Open { needs: Role::Check });
    assert_eq!(commons.plan(), vec![(job, Planned::Wait)], "it waits for a checker first");
    commons.wait_until(commons.now + u64::from(DEADLINE_SECONDS) * 1000);
    let plan = commons.plan();
    let [(_, Planned::Abandon(reason))] = plan.as_slice() else { panic!("{plan:?}") };
    assert!(reason.contains("check"), "{reason}");
    commons
        .schedule(job, Step::Abandon { reason: reason.clone() })
        .expect("the sequencer gives the check up");
    let JobStatus::Done { verdict, units, .. } = commons.job(job).status else {
        panic!("{:?}", commons.job(job).status)
    };
    assert_eq!((verdict, units), (Verdict::Unchecked, 2));
    assert_eq!(commons.reputation(100), Reputation { node: did(100), ..Reputation::default() });
}

#[path = "jobs/later.rs"]
mod later;
#[path = "jobs/training.rs"]
mod training;
