//! The jobs' rules of state encoding 4: offers that lapse, the plan's bound on a worker's
//! assignments, the commons floor, and the recheck of a caught node's earlier outputs.

use super::*;

#[test]
fn an_offer_lapses_unless_its_worker_renews_it() {
    let mut commons = jobs_commons(Some(0));
    commons.offer(100, &[EMBED]);
    let offered = commons.now - 1;
    commons.wait_until(offered + OFFER_LIFETIME_MS + 1);
    // Nobody's offer stands: the request is refused rather than left to wait an hour.
    let refused = commons.apply(job_request(EMBED, 5), &key(REQUESTER)).expect_err("no offer stands");
    assert_eq!(refused, Rejection::Job(JobFault::NoWorker(EMBED.into())));
    let record = commons.job_or_none(0);
    assert!(record.is_none());
    let detail = commons.state.governance().ineligible(&placeholder_job(), &did(100), Role::Run, commons.now);
    assert!(
        detail.as_deref().is_some_and(|d| d.contains("offer lapsed") && d.contains("renews")),
        "{detail:?}"
    );

    // The same offer again renews it.
    commons.offer(100, &[EMBED]);
    let job = commons.request(5);
    assert!(
        matches!(commons.plan().as_slice(), [(id, Planned::Assign { node, .. })] if *id == job && *node == did(100))
    );

    // Under state encoding 3 an offer stands until its node withdraws it.
    let mut earlier = jobs_commons_encoded(Some(0), 3);
    earlier.offer(100, &[EMBED]);
    earlier.wait_until(earlier.now + 10 * OFFER_LIFETIME_MS);
    let job = earlier.request(5);
    assert!(matches!(earlier.plan().as_slice(), [(id, Planned::Assign { .. })] if *id == job));
}

/// A job record to ask eligibility about: an embedding job nobody has run.
fn placeholder_job() -> JobRecord {
    JobRecord {
        id: 0,
        workload: EMBED.into(),
        requester: did(REQUESTER),
        input_digest: String::new(),
        budget: 5,
        reserved: 5000,
        floor: 0,
        deadline_ms: u64::from(DEADLINE_SECONDS) * 1000,
        requested_at: 0,
        since: 0,
        input: None,
        runs: Vec::new(),
        draw: None,
        drawn: None,
        status: JobStatus::Open { needs: Role::Run },
        dispute: None,
        outputs: Default::default(),
        recheck: None,
    }
}

trait Lookup {
    fn job_or_none(&self, id: u64) -> Option<&JobRecord>;
}

impl Lookup for Commons {
    fn job_or_none(&self, id: u64) -> Option<&JobRecord> {
        self.state.governance().jobs().get(&id)
    }
}

#[test]
fn a_node_caught_out_of_line_has_every_result_checked_until_its_score_recovers() {
    for encoding in [3, substrate_core::canonical::VERSION] {
        let mut commons = jobs_commons_encoded(Some(1_000_000), encoding);
        // Node 100 is caught: a third operator agrees with the check against its run.
        let (job, _, _) = commons.checked(OTHER);
        let assignment = commons.assign(job, 120, Role::Arbitrate);
        commons.answer(job, assignment, 120, embedding(&OTHER), 900);
        assert!(commons.reputation(100).shunned());
        // From now on the commons samples nothing.
        let voters = [1, 10, 11, 12, REQUESTER];
        commons.pass(1, ProposalClass::Resource, vec![parameter("jobs.check-ppm", json!(0))], &voters);
        assert_eq!(commons.state.governance().check_ppm(), 0);

        // A clean node's result is not drawn.
        let clean = commons.request(1);
        let run = commons.assign(clean, 110, Role::Run);
        commons.answer(clean, run, 110, embedding(&RUN), 1000);
        commons.draw(clean).expect("the draw");
        assert_eq!(commons.job(clean).drawn, Some(false));

        // The caught node's is, under state encoding 4, though the rate is zero.
        let suspect = commons.request(1);
        let run = commons.assign(suspect, 100, Role::Run);
        commons.answer(suspect, run, 100, embedding(&RUN), 1000);
        commons.draw(suspect).expect("the draw");
        let later = encoding >= 4;
        assert_eq!(commons.job(suspect).drawn, Some(later), "state encoding {encoding}");
        if !later {
            continue;
        }
        // Two passed checks bring its score back to one half, and sampling back to the rate.
        for round in 0..3 {
            if round > 0 {
                let job = commons.request(1);
                let run = commons.assign(job, 100, Role::Run);
                commons.answer(job, run, 100, embedding(&RUN), 1000);
                commons.draw(job).expect("the draw");
                let expected = commons.reputation(100).shunned();
                assert_eq!(commons.job(job).drawn, Some(expected), "round {round}");
                if !expected {
                    break;
                }
                let check = commons.assign(job, 110, Role::Check);
                commons.answer(job, check, 110, embedding(&RUN), 1000);
            } else {
                let check = commons.assign(suspect, 110, Role::Check);
                commons.answer(suspect, check, 110, embedding(&RUN), 1000);
            }
        }
        assert!(!commons.reputation(100).shunned(), "{:?}", commons.reputation(100));
    }
}

#[test]
fn the_plan_gives_a_node_the_job_it_runs_and_the_next_two_and_no_more() {
    let mut commons = jobs_commons(Some(0));
    commons.offer(100, &[EMBED]);
    let first = commons.request(1);
    let second = commons.request(1);
    let queued = commons.request(1);
    let third = commons.request(1);
    // All four are planned in one pass: node 100 gets three, the fourth waits for it.
    let plan = commons.plan();
    let assigned = |plan: &[(u64, Planned)], id: u64, to: u8| {
        plan.iter()
            .any(|(job, step)| *job == id && matches!(step, Planned::Assign { node, .. } if *node == did(to)))
    };
    assert!(assigned(&plan, first, 100) && assigned(&plan, second, 100), "{plan:?}");
    assert!(assigned(&plan, queued, 100), "{plan:?}");
    assert!(plan.contains(&(third, Planned::Wait)), "{plan:?}");
    assert_eq!(MAX_ASSIGNED, 3);
    let run = commons.assign(first, 100, Role::Run);
    commons.assign(second, 100, Role::Run);
    commons.assign(queued, 100, Role::Run);
    assert_eq!(commons.plan(), vec![(third, Planned::Wait)]);
    // A second node takes the waiting job at once.
    commons.offer(110, &[EMBED]);
    assert!(assigned(&commons.plan(), third, 110), "{:?}", commons.plan());
    // Once node 100 has answered one, it has room again.
    commons.answer(first, run, 100, embedding(&RUN), 1000);
    commons.draw(first).expect("the draw");
    commons.offer(110, &[]);
    let fourth = commons.request(1);
    let plan = commons.plan();
    assert!(assigned(&plan, fourth, 100) || assigned(&plan, third, 100), "{plan:?}");
    assert!(plan.iter().all(|(_, step)| !matches!(step, Planned::Abandon(_))), "{plan:?}");
}

/// The stability pool's balance (thousandths).
fn pool(commons: &Commons) -> u64 {
    commons
        .state
        .governance()
        .credits(substrate_core::governance::book::STABILITY_POOL)
        .map_or(0, |c| c.balance)
}

/// How much of today's commons floor `n`'s jobs drew (thousandths).
fn floor_used(commons: &Commons, n: u8) -> u64 {
    let today = substrate_core::governance::book::day_of(commons.now);
    commons.state.governance().credits(&did(n)).map_or(0, |c| c.floor_used_on(today))
}

/// What is left of `n`'s commons floor today (thousandths).
fn floor_left(commons: &Commons, n: u8) -> u64 {
    let statement = commons.state.governance().credit_statement(&did(n), commons.now);
    (statement.floor_today * 1000.0).round() as u64
}

#[test]
fn a_job_draws_on_the_commons_floor_before_the_balance_and_gets_back_what_it_did_not_use() {
    let mut commons = jobs_commons_with_floor(Some(0), substrate_core::canonical::VERSION, 20);
    // More deposits grow the stability pool that funds the floor.
    for n in 0..8u8 {
        commons.deposit(10 + n % 3, format!("a song for the harvest, verse {n}").as_bytes(), "lyric");
    }
    commons.offer(100, &[EMBED]);
    let allowance = floor_left(&commons, REQUESTER);
    assert!(allowance > 0, "the pool funds a floor");
    let (balance, pooled) = (commons.balance(REQUESTER), pool(&commons));

    // A job that fails returns what it drew to the floor and the pool, and the rest to the balance.
    let failing = commons.request(3);
    let drawn = allowance.min(3000);
    assert_eq!(commons.job(failing).floor, drawn);
    assert_eq!(commons.balance(REQUESTER), balance - (3000 - drawn));
    assert_eq!(pool(&commons), pooled - drawn);
    assert_eq!(floor_used(&commons, REQUESTER), drawn);
    for attempt in 0..MAX_ATTEMPTS {
        let node = [100, 101, 110][attempt];
        if attempt > 0 {
            commons.offer(node, &[EMBED]);
        }
        let assignment = commons.assign(failing, node, Role::Run);
        commons.ok(job_result(failing, assignment, node, None, Some("out of memory"), 10), &key(node));
    }
    assert!(matches!(commons.job(failing).status, JobStatus::Failed { .. }));
    assert_eq!((commons.balance(REQUESTER), pool(&commons)), (balance, pooled));
    assert_eq!((floor_used(&commons, REQUESTER), floor_left(&commons, REQUESTER)), (0, allowance));

    // A job that runs pays from the floor first.
    let job = commons.request(2);
    let run = commons.assign(job, 110, Role::Run);
    commons.answer(job, run, 110, embedding(&RUN), 900);
    commons.draw(job).expect("the draw");
    let drawn = allowance.min(2000);
    let paid = 1000;
    let floor_back = drawn.saturating_sub(paid);
    assert_eq!(commons.balance(REQUESTER), balance - (paid - (drawn - floor_back)));
    assert_eq!(floor_used(&commons, REQUESTER), drawn - floor_back);

    // Past the balance and the floor together, refused; within them, taken.
    let have = commons.balance(REQUESTER);
    let left = floor_left(&commons, REQUESTER);
    let too_much = (have + left) / 1000 + 1;
    let refused = commons.apply(job_request(EMBED, too_much), &key(REQUESTER));
    assert_eq!(
        refused.map(|_| ()),
        Err(Rejection::Job(JobFault::Credits {
            holder: did(REQUESTER),
            need: too_much,
            have_milli: have,
            floor_milli: left
        }))
    );
    // The next day nothing of it is used.
    commons.wait_until(commons.now + 24 * 3600 * 1000);
    assert_eq!(floor_used(&commons, REQUESTER), 0);

    // A commons of state encoding 3 has no floor for jobs: the balance pays it all.
    let mut earlier = jobs_commons_with_floor(Some(0), 3, 20);
    earlier.offer(100, &[EMBED]);
    let before = earlier.balance(REQUESTER);
    let job = earlier.request(3);
    assert_eq!((earlier.job(job).floor, earlier.balance(REQUESTER)), (0, before - 3000));
}

#[test]
fn a_caught_nodes_earlier_unchecked_output_is_checked_after_all_and_undone_if_wrong() {
    let mut commons = jobs_commons(Some(0));
    for node in [100, 110, 120] {
        commons.offer(node, &[EMBED]);
    }
    let rate = commons.params().credits.compute;
    // Node 100 answers an earlier job wrongly; nothing is sampled, so its output stands.
    let earlier = commons.request(2);
    let run = commons.assign(earlier, 100, Role::Run);
    let wrong = commons.answer(earlier, run, 100, embedding(&OTHER), 1500);
    commons.draw(earlier).expect("the draw");
    assert!(matches!(commons.job(earlier).status, JobStatus::Done { verdict: Verdict::Unsampled, .. }));
    let paid_then = match commons.job(earlier).status {
        JobStatus::Done { paid, .. } => paid,
        _ => unreachable!(),
    };
    assert_eq!(paid_then, 2 * rate * 1000);
    let operator = commons.balance(10);
    assert!(grant_of(&commons, wrong).is_some_and(|g| g.units == 2));

    // Later every result is checked, and node 100 is caught out of line on another job.
    let voters = [1, 10, 11, 12, REQUESTER];
    commons.pass(1, ProposalClass::Resource, vec![parameter("jobs.check-ppm", json!(1_000_000))], &voters);
    let later = commons.request(1);
    let run = commons.assign(later, 100, Role::Run);
    commons.answer(later, run, 100, embedding(&OTHER), 900);
    commons.draw(later).expect("the draw");
    let check = commons.assign(later, 110, Role::Check);
    commons.answer(later, check, 110, embedding(&RUN), 900);
    let arbitration = commons.assign(later, 120, Role::Arbitrate);
    commons.answer(later, arbitration, 120, embedding(&RUN), 900);
    assert!(matches!(commons.job(later).status, JobStatus::Done { verdict: Verdict::Overturned, .. }));
    // What the later job cost is its own affair: the balances from here on.
    let requester = commons.balance(REQUESTER);

    // The earlier job now waits to be checked after all.
    let flagged = commons.job(earlier).recheck.clone().expect("flagged for a recheck");
    assert!(!flagged.started && flagged.paid == paid_then && flagged.verdict == Verdict::Unsampled);
    assert!(commons.plan().contains(&(earlier, Planned::Recheck(wrong))), "{:?}", commons.plan());
    // The step must bring back exactly what the log holds.
    let forged = Step::Recheck {
        input: JobInput::Embed { texts: vec!["another text".into()] },
        output: embedding(&OTHER),
    };
    let refused = commons.schedule(earlier, forged).map(|_| ());
    assert!(matches!(&refused, Err(Rejection::Job(JobFault::OutOfTurn { .. }))), "{refused:?}");
    let step = Step::Recheck {
        input: JobInput::Embed { texts: TEXTS.map(str::to_owned).to_vec() },
        output: embedding(&OTHER),
    };
    commons.schedule(earlier, step.clone()).expect("the recheck");
    assert_eq!(commons.job(earlier).status, JobStatus::Open { needs: Role::Check });
    assert!(!commons.plan().contains(&(earlier, Planned::Recheck(wrong))));
    // The same step again is the same act, already in the log.
    let again = commons.schedule(earlier, step).map(|_| ());
    assert!(matches!(&again, Err(Rejection::Duplicate(_))), "{again:?}");

    // Another operator re-executes it, disagrees, and a third settles it against node 100.
    let check = commons.assign(earlier, 110, Role::Check);
    commons.answer(earlier, check, 110, embedding(&RUN), 1200);
    let arbitration = commons.assign(earlier, 120, Role::Arbitrate);
    commons.answer(earlier, arbitration, 120, embedding(&RUN), 800);
    let record = commons.job(earlier);
    assert!(
        matches!(record.status, JobStatus::Done { verdict: Verdict::Overturned, paid: 0, .. }),
        "{:?}",
        record.status
    );
    // The requester gets back what they paid for the wrong output; node 100's operator loses
    // the grant, and the run no longer counts as compute.
    assert_eq!(commons.balance(REQUESTER), requester + paid_then);
    assert_eq!(commons.balance(10), operator - granted(&commons, 2));
    assert!(grant_of(&commons, wrong).is_some_and(|g| g.units == 0));
    assert_eq!(commons.reputation(100).failed, 2);
    assert!(commons.plan().is_empty(), "{:?}", commons.plan());
}

#[test]
fn a_log_founded_before_rechecks_leaves_a_caught_nodes_earlier_outputs_as_they_stood() {
    let mut commons = jobs_commons_encoded(Some(1_000_000), 3);
    let (job, _, _) = commons.checked(OTHER);
    let arbitration = commons.assign(job, 120, Role::Arbitrate);
    commons.answer(job, arbitration, 120, embedding(&OTHER), 900);
    assert!(commons.reputation(100).shunned());
    assert!(commons.state.governance().jobs().values().all(|j| j.recheck.is_none()));
}
