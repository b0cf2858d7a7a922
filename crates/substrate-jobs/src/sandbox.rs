//! The sandbox: one child process per job, confined before its first instruction.
//!
//! Between `fork` and `exec` the child, still running this crate's code, makes itself a session
//! of its own, leaves the network (joins a network namespace with nothing in it), drops every
//! capability, sets its rlimits,
//! sets `no_new_privs`, enters a Landlock domain (read: the program, the system's libraries and
//! the job's inputs; write: its output directory; no signals or abstract sockets out of the
//! domain) and installs two seccomp filters (no sockets, no new processes, no tracing, no
//! namespaces or mounts, no kernel keyrings, modules, BPF or io_uring). Only then does it exec the
//! workload, with an empty environment but for what the job names. The parent waits on a pidfd
//! until the process ends or its deadline passes, and then kills the whole session.
//!
//! Everything the child does before `exec` is a plain system call: the ruleset and the filters
//! are built in the parent, because a child forked from a threaded process must not allocate.

// The child side of the fork, the probes and the pidfd wait are system calls `std` does not wrap.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

/// The Landlock ABI the ruleset is written for: every filesystem right up to device ioctls, and
/// the signal and abstract-socket scopes. An older kernel enforces what it knows (best effort);
/// [`Strength`] says which gaps an operator accepts.
const LANDLOCK_ABI: ABI = ABI::V6;

/// The first Landlock ABI with scopes (Linux 6.12).
const SCOPED_ABI: i32 = 6;

/// How much of a job's stdout and of its stderr is kept; the rest is read and dropped.
const OUTPUT_KEPT: usize = 1 << 20;

/// Directories and files of the system a dynamically linked program needs to start; each one
/// that exists is readable by the job (never writable or executable).
const SYSTEM_READ: [&str; 6] =
    ["/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache", "/etc/ld.so.conf"];

/// What a job may use. Each limit is the kernel's: the job meets it as a failed call or a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time in seconds (`RLIMIT_CPU`): at the limit the kernel sends SIGXCPU, a second later
    /// SIGKILL.
    pub cpu_seconds: u64,
    /// Address space in bytes (`RLIMIT_AS`): a mapping past it fails.
    pub memory_bytes: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// The largest file it may write, in bytes (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
    /// Wall-clock time from the spawn; past it the job's session is killed.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            cpu_seconds: 600,
            memory_bytes: 4 << 30,
            open_files: 256,
            file_bytes: 4 << 30,
            deadline: Duration::from_secs(900),
        }
    }
}

/// The guarantees the operator requires; a kernel that cannot give them gets no job to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strength {
    /// Run jobs in an empty network namespace, no interface up (the default). Without
    /// it (the weaker guarantee, for kernels that refuse unprivileged namespaces) the job shares
    /// the host's network and only the seccomp filter, which refuses `socket`, keeps it off.
    pub network_namespace: bool,
    /// Require Landlock's scopes (ABI 6, Linux 6.12): the job cannot signal a process outside its
    /// sandbox, nor connect to an abstract socket outside it. Without them (the weaker guarantee)
    /// a job could signal other processes of its user, the worker among them.
    pub scoped: bool,
}

impl Strength {
    /// Every guarantee: what a job gets unless the operator opts into less.
    pub const FULL: Strength = Strength { network_namespace: true, scoped: true };
}

impl Default for Strength {
    fn default() -> Strength {
        Strength::FULL
    }
}

/// How a job was kept off the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A network namespace with nothing in it (shared by the jobs of this worker, none of which
    /// can make a socket), and the seccomp filter.
    Namespace,
    /// The host's network namespace; only the seccomp filter refuses its sockets.
    SocketFilter,
}

/// What the kernel offers a sandbox, probed once per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    /// The Landlock ABI version, 0 without Landlock.
    pub landlock_abi: i32,
    /// Whether a seccomp filter can be installed.
    pub seccomp: bool,
    /// The `unshare` flags that make a network namespace: `CLONE_NEWNET` with the privilege for
    /// it, else with `CLONE_NEWUSER`; `None` if neither works.
    pub network_namespace: Option<libc::c_int>,
}

impl Kernel {
    /// The isolation a job gets here with `strength`, or why this kernel cannot give it.
    pub fn check(&self, strength: Strength) -> Result<Isolation, SandboxError> {
        let kernel = self;
        if kernel.landlock_abi < 1 {
            return Err(SandboxError::Unconfinable {
                what: "restrict a process's files with Landlock",
                hint: " (boot with `lsm=...,landlock`)",
            });
        }
        if !kernel.seccomp {
            return Err(SandboxError::Unconfinable { what: "install seccomp filters", hint: "" });
        }
        if strength.scoped && kernel.landlock_abi < SCOPED_ABI {
            return Err(SandboxError::Unconfinable {
                what: "keep a job's signals inside its sandbox (Landlock ABI 6, Linux 6.12)",
                hint: "; an operator who accepts that a job could signal other processes of its user can \
                       run jobs without that scope",
            });
        }
        let network = match (strength.network_namespace, kernel.network_namespace) {
            (true, Some(_)) => Network::Namespace,
            (true, None) => {
                return Err(SandboxError::Unconfinable {
                    what: "give a job a network namespace of its own",
                    hint: "; an operator who accepts the socket filter alone can run jobs without one",
                });
            }
            (false, _) => Network::SocketFilter,
        };
        Ok(Isolation {
            landlock_abi: kernel.landlock_abi,
            network,
            scoped: kernel.landlock_abi >= SCOPED_ABI,
        })
    }

    /// What this kernel offers, asked once (each probe is a short-lived forked child).
    pub fn probe() -> Kernel {
        static KERNEL: OnceLock<Kernel> = OnceLock::new();
        *KERNEL.get_or_init(|| {
            // SAFETY: asking for the version takes no pointer (NULL, 0).
            let abi = unsafe {
                libc::syscall(
                    libc::SYS_landlock_create_ruleset,
                    std::ptr::null::<libc::c_void>(),
                    0usize,
                    LANDLOCK_CREATE_RULESET_VERSION,
                )
            };
            let network_namespace = [libc::CLONE_NEWNET, libc::CLONE_NEWUSER | libc::CLONE_NEWNET]
                .into_iter()
                .find(|&flags| in_child(|| unsafe { libc::unshare(flags) } == 0));
            Kernel {
                landlock_abi: i32::try_from(abi.max(0)).unwrap_or(0),
                seccomp: in_child(seccomp_works),
                network_namespace,
            }
        })
    }
}

const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// Runs `probe` in a forked child and tells whether it returned true. `probe` must make only
/// async-signal-safe calls: the parent may have other threads.
fn in_child(probe: impl FnOnce() -> bool) -> bool {
    // SAFETY: the child runs only `probe` (system calls) and `_exit`.
    match unsafe { libc::fork() } {
        -1 => false,
        0 => {
            let ok = probe();
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        child => {
            let mut status = 0;
            // SAFETY: waits for the child just forked.
            let waited = unsafe { libc::waitpid(child, &mut status, 0) };
            waited == child && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
        }
    }
}

/// Installs a filter that allows everything: whether the kernel takes seccomp filters at all.
fn seccomp_works() -> bool {
    let mut allow = [libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x7fff_0000 }]; // BPF_RET|BPF_K, ALLOW
    let program = libc::sock_fprog { len: 1, filter: allow.as_mut_ptr() };
    // SAFETY: the program lives across the calls; the kernel copies it.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &program) == 0
    }
}

/// One network namespace with nothing in it (its loopback down), made once per process and
/// kept open; every job joins it. A namespace of each job's own would cost the kernel about 20 ms
/// to tear down at each job's exit, and would isolate no better: a job can make no socket, and
/// abstract sockets are scoped to its own Landlock domain.
struct EmptyNetwork {
    /// The user namespace it belongs to, when it took one to make it (an unprivileged worker).
    user: Option<OwnedFd>,
    net: OwnedFd,
}

impl EmptyNetwork {
    fn shared() -> std::io::Result<&'static EmptyNetwork> {
        static SHARED: OnceLock<Result<EmptyNetwork, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let flags =
                    Kernel::probe().network_namespace.ok_or("this kernel makes no network namespace")?;
                EmptyNetwork::make(flags).map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(|error| std::io::Error::other(error.clone()))
    }

    /// Forks a child that unshares `flags` and waits; opens its namespaces from `/proc`; kills it.
    fn make(flags: libc::c_int) -> std::io::Result<EmptyNetwork> {
        let mut ends = [0; 2];
        // SAFETY: a pipe into a local array.
        if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the child makes only system calls (unshare, write, pause, _exit).
        let child = unsafe { libc::fork() };
        if child == 0 {
            unsafe {
                let done: u8 = if libc::unshare(flags) == 0 { 1 } else { 0 };
                libc::write(ends[1], (&raw const done).cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        // SAFETY: closes the write end this side does not use.
        unsafe { libc::close(ends[1]) };
        let mut done = 0u8;
        // SAFETY: one byte into a local.
        let read = unsafe { libc::read(ends[0], (&raw mut done).cast(), 1) };
        unsafe { libc::close(ends[0]) };
        let opened = if child < 0 {
            Err(std::io::Error::last_os_error())
        } else if read != 1 || done != 1 {
            Err(std::io::Error::other("the child could not unshare its network namespace"))
        } else {
            let open =
                |kind: &str| std::fs::File::open(format!("/proc/{child}/ns/{kind}")).map(OwnedFd::from);
            let user = if flags & libc::CLONE_NEWUSER != 0 { open("user").map(Some) } else { Ok(None) };
            user.and_then(|user| open("net").map(|net| EmptyNetwork { user, net }))
        };
        if child > 0 {
            let mut status = 0;
            // SAFETY: kills and reaps the child forked above.
            unsafe {
                libc::kill(child, libc::SIGKILL);
                libc::waitpid(child, &mut status, 0);
            }
        }
        opened
    }
}

/// What confined a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isolation {
    /// The Landlock ABI the kernel enforced the ruleset with.
    pub landlock_abi: i32,
    pub network: Network,
    /// Whether signals and abstract sockets were scoped to the sandbox.
    pub scoped: bool,
}

/// How a job's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it (SIGABRT for a failed allocation, SIGSYS, SIGSEGV...).
    Signal(i32),
    /// It used up its CPU time and the kernel ended it.
    CpuLimit,
    /// It was still running at its deadline and was killed.
    Deadline,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited(code) => write!(f, "exited with status {code}"),
            Ended::Signal(signal) => write!(f, "ended by signal {signal}"),
            Ended::CpuLimit => write!(f, "ended at its CPU time limit"),
            Ended::Deadline => write!(f, "killed at its deadline"),
        }
    }
}

/// What a job's run came to.
#[derive(Debug, Clone)]
pub struct Report {
    pub ended: Ended,
    /// From the spawn to `exec` done: fork, confinement and loading the program.
    pub startup: Duration,
    /// From the spawn to the end.
    pub wall: Duration,
    /// User and system CPU time.
    pub cpu: Duration,
    /// Peak resident memory, in bytes.
    pub max_rss_bytes: u64,
    /// The first MiB of its stdout and of its stderr.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub isolation: Isolation,
}

impl Report {
    /// Whether the job exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.ended == Ended::Exited(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "this kernel cannot {what}, so no job runs here; jobs need Linux 5.13 or later with Landlock \
         and seccomp filters enabled{hint}"
    )]
    Unconfinable { what: &'static str, hint: &'static str },
    #[error("the workload program {path} cannot be used: {source}; name an executable file on this node")]
    Program { path: PathBuf, source: std::io::Error },
    #[error("the job's input {path} cannot be read: {source}; name a file or directory on this node")]
    Input { path: PathBuf, source: std::io::Error },
    #[error(
        "the job's output directory {path} cannot be made: {source}; name a directory this node can write"
    )]
    Output { path: PathBuf, source: std::io::Error },
    #[error("the Landlock ruleset for {path} cannot be built: {detail}")]
    Ruleset { path: PathBuf, detail: String },
    #[error("the seccomp filter cannot be built: {0}")]
    Filter(String),
    #[error(
        "the empty network namespace for jobs cannot be made: {0}; `substrate sandbox` says what this kernel offers, \
         and an operator who accepts the weaker guarantee runs jobs without one"
    )]
    Namespace(String),
    #[error(
        "the workload {program} did not start in its sandbox: {source}; `substrate sandbox` says what this kernel \
         offers"
    )]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("waiting for the job's process failed: {0}")]
    Wait(std::io::Error),
}

/// One job's process, described before it runs: what it runs, what it may read and write, its
/// limits.
#[derive(Debug, Clone)]
pub struct Sandbox {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    inputs: Vec<PathBuf>,
    stdin: Option<PathBuf>,
    output: PathBuf,
    limits: Limits,
    strength: Strength,
}

impl Sandbox {
    /// A job running `program`, writing into `output` (made if missing).
    pub fn new(program: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Sandbox {
        Sandbox {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            inputs: Vec::new(),
            stdin: None,
            output: output.into(),
            limits: Limits::default(),
            strength: Strength::FULL,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Sandbox {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Sandbox {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets one variable in the job's otherwise empty environment.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Sandbox {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Lets the job read `path` (a file, or a directory and everything under it).
    pub fn input(mut self, path: impl Into<PathBuf>) -> Sandbox {
        self.inputs.push(path.into());
        self
    }

    /// Gives the job `path` as its standard input (opened here, read-only); else it reads
    /// nothing there.
    pub fn stdin(mut self, path: impl Into<PathBuf>) -> Sandbox {
        self.stdin = Some(path.into());
        self
    }

    pub fn limits(mut self, limits: Limits) -> Sandbox {
        self.limits = limits;
        self
    }

    pub fn strength(mut self, strength: Strength) -> Sandbox {
        self.strength = strength;
        self
    }

    /// Runs the job to its end (or its deadline) and says how it went. Blocks: call it from a
    /// thread that may wait.
    pub fn run(&self) -> Result<Report, SandboxError> {
        let kernel = Kernel::probe();
        let isolation = self.isolation(&kernel)?;
        let program = std::fs::canonicalize(&self.program)
            .map_err(|source| SandboxError::Program { path: self.program.clone(), source })?;
        std::fs::create_dir_all(&self.output)
            .map_err(|source| SandboxError::Output { path: self.output.clone(), source })?;
        let output = std::fs::canonicalize(&self.output)
            .map_err(|source| SandboxError::Output { path: self.output.clone(), source })?;
        let ruleset = self.ruleset(&program, &output)?;
        let filters = filters()?;
        let namespaces = match isolation.network {
            Network::Namespace => {
                let shared =
                    EmptyNetwork::shared().map_err(|error| SandboxError::Namespace(error.to_string()))?;
                (shared.user.as_ref().map_or(-1, AsRawFd::as_raw_fd), shared.net.as_raw_fd())
            }
            Network::SocketFilter => (-1, -1),
        };
        let limits = self.limits;
        let ruleset_fd = ruleset.as_raw_fd();
        let stdin = match &self.stdin {
            None => Stdio::null(),
            Some(path) => std::fs::File::open(path)
                .map(Stdio::from)
                .map_err(|source| SandboxError::Input { path: path.clone(), source })?,
        };

        let mut command = Command::new(&program);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .current_dir(&output)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: `confine` makes only system calls, allocates nothing and touches only what was
        // built before the fork (the ruleset's descriptor, the filters, the limits).
        unsafe {
            command.pre_exec(move || confine(namespaces, &limits, ruleset_fd, &filters));
        }
        let started = Instant::now();
        let mut child =
            command.spawn().map_err(|source| SandboxError::Spawn { program: program.clone(), source })?;
        let startup = started.elapsed();
        drop(ruleset);
        let stdout = child.stdout.take().map(keep_first);
        let stderr = child.stderr.take().map(keep_first);
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|_| SandboxError::Wait(std::io::ErrorKind::InvalidData.into()))?;
        let waited = wait(pid, started + limits.deadline);
        let (status, usage, deadline) = waited.map_err(SandboxError::Wait)?;
        let wall = started.elapsed();
        let collected = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
            reader.and_then(|reader| reader.join().ok()).unwrap_or_default()
        };
        let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
        let ended = if libc::WIFEXITED(status) {
            Ended::Exited(libc::WEXITSTATUS(status))
        } else if deadline {
            Ended::Deadline
        } else {
            let signal = libc::WTERMSIG(status);
            // The kernel counts CPU time in ticks.
            let cpu_spent = cpu + Duration::from_millis(100) >= Duration::from_secs(limits.cpu_seconds);
            if signal == libc::SIGXCPU || (signal == libc::SIGKILL && cpu_spent) {
                Ended::CpuLimit
            } else {
                Ended::Signal(signal)
            }
        };
        Ok(Report {
            ended,
            startup,
            wall,
            cpu,
            max_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
            stdout: collected(stdout),
            stderr: collected(stderr),
            isolation,
        })
    }

    /// The confinement this kernel gives, or why it cannot give what the operator requires.
    fn isolation(&self, kernel: &Kernel) -> Result<Isolation, SandboxError> {
        kernel.check(self.strength)
    }

    /// The Landlock ruleset: read and execute the program; read the system's libraries and the
    /// inputs; read and write (never execute) under the output directory; `/dev/null` both ways.
    fn ruleset(&self, program: &Path, output: &Path) -> Result<OwnedFd, SandboxError> {
        let failed = |path: &Path| {
            let path = path.to_path_buf();
            move |error: landlock::RulesetError| SandboxError::Ruleset {
                path: path.clone(),
                detail: error.to_string(),
            }
        };
        let read = AccessFs::ReadFile | AccessFs::ReadDir;
        let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> =
            vec![(program.to_path_buf(), AccessFs::ReadFile | AccessFs::Execute)];
        // The kernel opens a dynamically linked program's loader as it opens the program: the
        // loader needs the right to execute too (that one file, not the directories around it).
        if let Some(loader) = interpreter(program).and_then(|loader| std::fs::canonicalize(loader).ok()) {
            rules.push((loader, AccessFs::ReadFile | AccessFs::Execute));
        }
        rules.extend(
            SYSTEM_READ
                .iter()
                .map(Path::new)
                .filter(|path| path.exists())
                .map(|path| (path.to_path_buf(), read)),
        );
        for input in &self.inputs {
            let input = std::fs::canonicalize(input)
                .map_err(|source| SandboxError::Input { path: input.clone(), source })?;
            rules.push((input, read));
        }
        rules.push((output.to_path_buf(), AccessFs::from_all(LANDLOCK_ABI) & !AccessFs::Execute));
        rules.push((PathBuf::from("/dev/null"), AccessFs::ReadFile | AccessFs::WriteFile));

        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(LANDLOCK_ABI))
            .and_then(|ruleset| ruleset.scope(Scope::from_all(LANDLOCK_ABI)))
            .and_then(|ruleset| ruleset.create())
            .map_err(failed(output))?;
        for (path, access) in rules {
            let fd = PathFd::new(&path)
                .map_err(|error| SandboxError::Ruleset { path: path.clone(), detail: error.to_string() })?;
            // A file takes only a file's rights.
            let access = if path.is_dir() { access } else { access & AccessFs::from_file(LANDLOCK_ABI) };
            ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).map_err(failed(&path))?;
        }
        Option::<OwnedFd>::from(ruleset).ok_or(SandboxError::Unconfinable {
            what: "restrict a process's files with Landlock",
            hint: " (boot with `lsm=...,landlock`)",
        })
    }
}

/// The program interpreter (`PT_INTERP`) a 64-bit little-endian ELF file names, if it names one:
/// the dynamic loader the kernel starts it with. Reads the headers only.
fn interpreter(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(program).ok()?;
    let read = |at: u64, length: usize| -> Option<Vec<u8>> {
        let mut bytes = vec![0; length];
        file.read_exact_at(&mut bytes, at).ok()?;
        Some(bytes)
    };
    let number = |bytes: &[u8], at: usize, width: usize| -> Option<u64> {
        let bytes = bytes.get(at..at.checked_add(width)?)?;
        Some(bytes.iter().rev().fold(0u64, |value, &byte| value << 8 | u64::from(byte)))
    };
    let header = read(0, 64)?;
    // "\x7fELF", 64-bit, little-endian.
    if header.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let table = number(&header, 0x20, 8)?;
    let entry_size = usize::try_from(number(&header, 0x36, 2)?).ok()?;
    let entries = usize::try_from(number(&header, 0x38, 2)?).ok()?;
    let table = read(table, entries.checked_mul(entry_size)?)?;
    table.chunks_exact(entry_size.max(1)).find_map(|entry| {
        if number(entry, 0, 4)? != 3 {
            return None; // not PT_INTERP
        }
        let (offset, size) = (number(entry, 8, 8)?, number(entry, 32, 8)?);
        let path = read(offset, usize::try_from(size).ok().filter(|&size| size <= 4096)?)?;
        let path = path.strip_suffix(b"\0").unwrap_or(&path);
        Some(PathBuf::from(std::str::from_utf8(path).ok()?))
    })
}

/// The system calls a job is refused with EPERM, each with the conditions under which (none:
/// always).
fn refused() -> Vec<(libc::c_long, Vec<SeccompCondition>)> {
    let always = |call: libc::c_long| (call, Vec::new());
    let mut calls = vec![
        // The network: every socket (socketpair stays, it reaches nothing).
        always(libc::SYS_socket),
        // New processes: fork, vfork, and clone other than a thread of this process.
        always(libc::SYS_fork),
        always(libc::SYS_vfork),
        // Other processes: tracing, reading or writing their memory.
        always(libc::SYS_ptrace),
        always(libc::SYS_process_vm_readv),
        always(libc::SYS_process_vm_writev),
        always(libc::SYS_pidfd_getfd),
        // A way out of the namespaces and the file tree.
        always(libc::SYS_unshare),
        always(libc::SYS_setns),
        always(libc::SYS_mount),
        always(libc::SYS_umount2),
        always(libc::SYS_pivot_root),
        always(libc::SYS_chroot),
        always(libc::SYS_open_by_handle_at),
        always(libc::SYS_name_to_handle_at),
        // The kernel's own surfaces: BPF, perf, keyrings, modules, io_uring (which runs its
        // operations past seccomp), userfaultfd.
        always(libc::SYS_bpf),
        always(libc::SYS_perf_event_open),
        always(libc::SYS_keyctl),
        always(libc::SYS_add_key),
        always(libc::SYS_request_key),
        always(libc::SYS_init_module),
        always(libc::SYS_finit_module),
        always(libc::SYS_delete_module),
        always(libc::SYS_kexec_load),
        always(libc::SYS_kexec_file_load),
        always(libc::SYS_io_uring_setup),
        always(libc::SYS_io_uring_enter),
        always(libc::SYS_io_uring_register),
        always(libc::SYS_userfaultfd),
        // The machine: reboot, swap, clocks, accounting.
        always(libc::SYS_reboot),
        always(libc::SYS_swapon),
        always(libc::SYS_swapoff),
        always(libc::SYS_settimeofday),
        always(libc::SYS_clock_settime),
        always(libc::SYS_adjtimex),
        always(libc::SYS_acct),
        always(libc::SYS_sethostname),
        always(libc::SYS_setdomainname),
        always(libc::SYS_syslog),
        always(libc::SYS_iopl),
        always(libc::SYS_ioperm),
        // Priorities: a job cannot raise itself over the worker.
        always(libc::SYS_setpriority),
        always(libc::SYS_sched_setscheduler),
        always(libc::SYS_sched_setattr),
    ];
    // clone's first argument holds its flags: without CLONE_THREAD it makes a process.
    if let Ok(not_a_thread) = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        0,
    ) {
        calls.push((libc::SYS_clone, vec![not_a_thread]));
    }
    calls
}

/// The two seccomp programs: the refusals above (EPERM), and `clone3` answered ENOSYS (its flags
/// sit in memory a filter cannot read, and with ENOSYS the C library falls back to `clone`).
fn filters() -> Result<[BpfProgram; 2], SandboxError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|error: seccompiler::BackendError| SandboxError::Filter(error.to_string()))?;
    let mut refusals = BTreeMap::new();
    for (call, conditions) in refused() {
        let rules = if conditions.is_empty() {
            Vec::new()
        } else {
            vec![SeccompRule::new(conditions).map_err(|error| SandboxError::Filter(error.to_string()))?]
        };
        refusals.insert(call, rules);
    }
    let program = |rules, errno| -> Result<BpfProgram, SandboxError> {
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno), arch)
            .map_err(|error| SandboxError::Filter(error.to_string()))?;
        BpfProgram::try_from(filter).map_err(|error| SandboxError::Filter(error.to_string()))
    };
    let clone3 = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    Ok([program(refusals, libc::EPERM as u32)?, program(clone3, libc::ENOSYS as u32)?])
}

/// The child's side, between fork and exec: only system calls, in the order that lets each one
/// still be made. Any failure aborts the spawn with its errno.
fn confine(
    (user, net): (libc::c_int, libc::c_int),
    limits: &Limits,
    ruleset: libc::c_int,
    filters: &[BpfProgram; 2],
) -> std::io::Result<()> {
    let check = |result: libc::c_long| if result < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) };
    // SAFETY: each call below is a plain system call on values owned by this process.
    unsafe {
        // A session of its own: the deadline kills it whole, and no terminal reaches it.
        check(libc::setsid().into())?;
        // The job dies with the worker.
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).into())?;
        // Into the empty network namespace (through its user namespace when unprivileged).
        if user >= 0 {
            check(libc::setns(user, libc::CLONE_NEWUSER).into())?;
        }
        if net >= 0 {
            check(libc::setns(net, libc::CLONE_NEWNET).into())?;
        }
        // No capabilities, now or after the exec: a job never needs one, and a worker running as
        // root would otherwise hand them all over. Emptying the bounding set needs CAP_SETPCAP,
        // which an unprivileged worker does not have (nor any capability to lose).
        for capability in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, capability as libc::c_ulong, 0, 0, 0);
        }
        let header = CapabilityHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
        let none = [CapabilityData::default(); 2];
        check(libc::syscall(libc::SYS_capset, &header, none.as_ptr()))?;
        let cpu = limits.cpu_seconds;
        for (resource, soft, hard) in [
            (libc::RLIMIT_CPU, cpu, cpu.saturating_add(1)),
            (libc::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
            (libc::RLIMIT_NOFILE, limits.open_files, limits.open_files),
            (libc::RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
            (libc::RLIMIT_CORE, 0, 0),
        ] {
            let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
            check(libc::setrlimit(resource, &limit).into())?;
        }
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0).into())?;
        check(libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0))?;
        // Nothing the worker holds open survives the exec.
        check(libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC))?;
        for filter in filters {
            seccompiler::apply_filter(filter).map_err(|_| std::io::Error::last_os_error())?;
        }
    }
    Ok(())
}

/// `struct __user_cap_header_struct` of `<linux/capability.h>`.
#[repr(C)]
struct CapabilityHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: two of them for 64 capabilities.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapabilityData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Reads a pipe to its end on a thread of its own, keeping the first [`OUTPUT_KEPT`] bytes.
fn keep_first(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    let room = OUTPUT_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        kept
    })
}

/// Waits for `pid` until `deadline`, then kills its session; reaps it. Returns its wait status,
/// its resource usage and whether the deadline ended it.
fn wait(pid: libc::pid_t, deadline: Instant) -> std::io::Result<(libc::c_int, libc::rusage, bool)> {
    // SAFETY: a pidfd of our own child; it cannot be reaped (and the pid reused) before wait4.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let mut killed = false;
    if pidfd >= 0 {
        let pidfd = libc::c_int::try_from(pidfd)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll = libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 };
            let millis =
                libc::c_int::try_from(left.as_millis().saturating_add(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: one pollfd, on the stack.
            let ready = unsafe { libc::poll(&mut poll, 1, millis) };
            if ready > 0 {
                break;
            }
            if ready < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if Instant::now() >= deadline {
                // SAFETY: signals the child through its pidfd (it cannot be another process), then
                // whatever is left of its session.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd,
                        libc::SIGKILL,
                        std::ptr::null::<libc::c_void>(),
                        0,
                    );
                    libc::kill(-pid, libc::SIGKILL);
                }
                killed = true;
                break;
            }
        }
        // SAFETY: closes the pidfd opened above.
        unsafe { libc::close(pidfd) };
    }
    // Whatever else the job's session holds goes with it. Its leader is not reaped yet, so the
    // group's id cannot have been reused.
    // SAFETY: a signal to the job's own process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: reaps our own child into locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    Ok((status, usage, killed && !libc::WIFEXITED(status)))
}

fn timeval(time: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(time.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(time.tv_usec).unwrap_or(0))
}
