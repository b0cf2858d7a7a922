//! Each hostile workload tries one way out of its sandbox. Every test checks the world outside
//! (the file, the listener, this process) as well as what the workload says, and that the
//! process running the sandbox goes on working.

use std::path::{Path, PathBuf};
use std::time::Duration;

use substrate_jobs::{Ended, Limits, Network, Report, Sandbox, Strength};

const HOSTILE: &str = env!("CARGO_BIN_EXE_hostile-workload");

/// The exit status with which the workload says the kernel refused it.
const REFUSED: Ended = Ended::Exited(3);

struct Job {
    dir: tempfile::TempDir,
}

impl Job {
    fn new() -> Job {
        Job { dir: tempfile::tempdir().expect("tempdir") }
    }

    fn output(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn inputs(&self) -> PathBuf {
        let inputs = self.dir.path().join("in");
        std::fs::create_dir_all(&inputs).expect("inputs");
        inputs
    }

    fn sandbox(&self, args: &[&str]) -> Sandbox {
        Sandbox::new(HOSTILE, self.output())
            .args(args.iter().copied())
            .limits(Limits { deadline: Duration::from_secs(20), ..Limits::default() })
    }

    fn run(&self, args: &[&str]) -> Report {
        run(self.sandbox(args))
    }
}

fn run(sandbox: Sandbox) -> Report {
    sandbox.run().unwrap_or_else(|error| panic!("the sandbox did not run the job: {error}"))
}

fn said(report: &Report) -> String {
    format!(
        "{}; stdout {:?}; stderr {:?}",
        report.ended,
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr)
    )
}

fn assert_refused(report: &Report) {
    assert_eq!(report.ended, REFUSED, "{}", said(report));
    assert!(report.stdout.starts_with(b"refused: "), "{}", said(report));
}

#[test]
fn honest_work_reads_its_input_and_writes_its_output_on_several_threads() {
    let job = Job::new();
    let input = job.inputs().join("text");
    std::fs::write(&input, b"a kitchen-table story").expect("input");
    let report = run(job.sandbox(&["work", input.to_str().expect("path")]).input(job.inputs()));
    assert!(report.succeeded(), "{}", said(&report));
    let summary = std::fs::read_to_string(job.output().join("result/summary")).expect("summary written");
    let sum: u64 = b"a kitchen-table story".iter().map(|&b| u64::from(b)).sum();
    assert_eq!(summary, format!("21 {sum}\n"));
    assert_eq!(report.isolation.network, Network::Namespace);
    assert!(report.isolation.landlock_abi >= 1);
    assert!(report.startup < report.wall);
}

#[test]
fn the_environment_is_empty_but_for_what_the_job_names() {
    let job = Job::new();
    // This test process's own variables (PATH, HOME, CARGO_*) must not reach the job.
    let report = run(job.sandbox(&["env"]).env("JOB_KIND", "embed"));
    assert!(report.succeeded(), "{}", said(&report));
    assert_eq!(String::from_utf8_lossy(&report.stdout), "got through: JOB_KIND=embed\n\n");
}

#[test]
fn a_file_outside_its_inputs_cannot_be_read() {
    let job = Job::new();
    let secret_dir = job.dir.path().join("secret");
    std::fs::create_dir_all(&secret_dir).expect("dir");
    let secret = secret_dir.join("ledger.sqlite");
    std::fs::write(&secret, b"the worker's own files").expect("secret");
    // Its inputs are readable; the secret beside them is not.
    let report = run(job.sandbox(&["read", secret.to_str().expect("path")]).input(job.inputs()));
    assert_refused(&report);
    assert!(!String::from_utf8_lossy(&report.stdout).contains("worker's own"));
    assert!(!job.output().join("stolen").exists());
    for outside in ["/etc/passwd", "/proc/1/environ"] {
        assert_refused(&job.run(&["read", outside]));
    }
}

#[test]
fn nothing_outside_its_output_directory_can_be_written() {
    let job = Job::new();
    let input = job.inputs().join("text");
    std::fs::write(&input, b"input").expect("input");
    let beside = job.dir.path().join("beside");
    for target in [beside.clone(), input.clone(), PathBuf::from("/tmp/from-the-sandbox")] {
        let report = run(job.sandbox(&["write", target.to_str().expect("path")]).input(job.inputs()));
        assert_refused(&report);
    }
    assert!(!beside.exists());
    assert_eq!(std::fs::read(&input).expect("input"), b"input");
    assert!(!Path::new("/tmp/from-the-sandbox").exists());
    // Inside its output directory it writes as it likes.
    let inside = job.output().join("note");
    assert!(job.run(&["write", inside.to_str().expect("path")]).succeeded());
    assert!(inside.exists());
}

#[test]
fn no_program_but_its_own_can_be_executed() {
    let job = Job::new();
    for program in ["/bin/sh", "/usr/bin/env"] {
        if Path::new(program).exists() {
            assert_refused(&job.run(&["exec", program]));
        }
    }
}

fn listener() -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    listener
}

fn assert_nobody_connected(listener: &std::net::TcpListener) {
    match listener.accept() {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the listener was reached from the sandbox: {other:?}"),
    }
}

#[test]
fn a_listener_on_loopback_cannot_be_reached() {
    let listener = listener();
    let address = listener.local_addr().expect("address").to_string();
    let job = Job::new();
    let report = job.run(&["connect", &address]);
    assert_refused(&report);
    assert_nobody_connected(&listener);
}

#[test]
fn jobs_share_one_empty_network_namespace_that_is_not_the_hosts() {
    let host = std::fs::read_link("/proc/self/ns/net").expect("own namespace").display().to_string();
    let job = Job::new();
    let first = job.run(&["netns"]);
    let second = job.run(&["netns"]);
    assert!(first.succeeded(), "{}", said(&first));
    assert_eq!(first.stdout, second.stdout);
    assert_ne!(String::from_utf8_lossy(&first.stdout), format!("got through: {host}\n"));
    let weaker = Strength { network_namespace: false, ..Strength::FULL };
    let shared = run(job.sandbox(&["netns"]).strength(weaker));
    assert_eq!(String::from_utf8_lossy(&shared.stdout), format!("got through: {host}\n"));
}

#[test]
fn without_a_network_namespace_the_socket_filter_alone_keeps_it_off() {
    let listener = listener();
    let address = listener.local_addr().expect("address").to_string();
    let job = Job::new();
    let weaker = Strength { network_namespace: false, ..Strength::FULL };
    let report = run(job.sandbox(&["connect", &address]).strength(weaker));
    assert_eq!(report.isolation.network, Network::SocketFilter);
    assert_refused(&report);
    assert!(String::from_utf8_lossy(&report.stdout).contains("Operation not permitted"), "{}", said(&report));
    assert_nobody_connected(&listener);
}

#[test]
fn a_fork_bomb_starts_no_process() {
    let job = Job::new();
    let report = job.run(&["fork-bomb"]);
    assert_refused(&report);
    assert!(report.wall < Duration::from_secs(10), "{}", said(&report));
}

#[test]
fn allocating_far_past_the_memory_limit_is_refused() {
    let job = Job::new();
    let limit = 512u64 << 20;
    let sandbox = job.sandbox(&["allocate", &(16u64 << 30).to_string()]).limits(Limits {
        memory_bytes: limit,
        deadline: Duration::from_secs(20),
        ..Limits::default()
    });
    let report = run(sandbox);
    assert_refused(&report);
    assert!(String::from_utf8_lossy(&report.stdout).contains("allocation refused"), "{}", said(&report));
    assert!(report.max_rss_bytes < limit, "peak {} bytes", report.max_rss_bytes);
}

#[test]
fn a_job_past_its_deadline_is_killed() {
    let job = Job::new();
    let deadline = Duration::from_millis(300);
    let report = run(job.sandbox(&["sleep"]).limits(Limits { deadline, ..Limits::default() }));
    assert_eq!(report.ended, Ended::Deadline, "{}", said(&report));
    assert!(report.wall >= deadline && report.wall < deadline + Duration::from_secs(2), "{:?}", report.wall);
}

#[test]
fn a_job_past_its_cpu_time_is_ended_by_the_kernel() {
    let job = Job::new();
    let limits = Limits { cpu_seconds: 1, deadline: Duration::from_secs(30), ..Limits::default() };
    let report = run(job.sandbox(&["spin"]).limits(limits));
    assert_eq!(report.ended, Ended::CpuLimit, "{}", said(&report));
    // The kernel counts CPU time in ticks: the signal comes within one of the second.
    assert!(
        report.cpu >= Duration::from_millis(900) && report.cpu < Duration::from_secs(3),
        "{:?}",
        report.cpu
    );
}

#[test]
fn its_parent_can_be_neither_traced_nor_signalled() {
    let job = Job::new();
    assert_refused(&job.run(&["ptrace-parent"]));
    let report = job.run(&["kill-parent"]);
    // This test still running is the proof that the kill did not land.
    assert_refused(&report);
    assert!(report.isolation.scoped);
}

#[test]
fn it_cannot_make_namespaces_of_its_own() {
    let job = Job::new();
    assert_refused(&job.run(&["unshare"]));
}

#[test]
fn refusals_before_the_start_say_what_is_wrong() {
    let job = Job::new();
    let missing = Sandbox::new("/nonexistent/workload", job.output()).run().expect_err("no program");
    assert!(missing.to_string().contains("/nonexistent/workload"), "{missing}");
    let input = Sandbox::new(HOSTILE, job.output()).input("/nonexistent/input").run().expect_err("no input");
    assert!(input.to_string().contains("/nonexistent/input"), "{input}");
}

#[test]
fn many_jobs_at_once_each_stay_in_their_own_walls() {
    let jobs: Vec<Job> = (0..8).map(|_| Job::new()).collect();
    std::thread::scope(|scope| {
        let runs: Vec<_> = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| {
                let input = job.inputs().join("text");
                std::fs::write(&input, format!("job {i}")).expect("input");
                let other = jobs[(i + 1) % jobs.len()].inputs().join("text");
                scope.spawn(move || {
                    let own = run(job.sandbox(&["work", input.to_str().expect("path")]).input(job.inputs()));
                    let theirs =
                        run(job.sandbox(&["read", other.to_str().expect("path")]).input(job.inputs()));
                    (own, theirs)
                })
            })
            .collect();
        for handle in runs {
            let (own, theirs) = handle.join().expect("thread");
            assert!(own.succeeded(), "{}", said(&own));
            assert_refused(&theirs);
        }
    });
}
