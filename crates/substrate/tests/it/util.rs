//! Shared harness: a founded commons in a temporary directory, the daemon as a child process that
//! is killed when dropped, the CLI, a small HTTP client, and signing helpers.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use substrate_core::event::{Deposit, Event};
use substrate_core::{Cid, ConsentTier, Envelope, Register, SignedEvent};

/// The `substrate` binary Cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_substrate")
}

/// A `substrate` command that ignores the caller's SUBSTRATE_* environment.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for var in [
        "SUBSTRATE_NODE",
        "SUBSTRATE_DATA",
        "SUBSTRATE_KEY",
        "SUBSTRATE_LISTEN",
        "SUBSTRATE_CONFIG",
        "SUBSTRATE_COMMONS_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Runs `substrate ARGS`, feeding `stdin` when given.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = command(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("spawn substrate");
    // Feed stdin from another thread so a child that writes before reading cannot deadlock us.
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        std::thread::spawn(move || pipe.write_all(&input))
    });
    let output = child.wait_with_output().expect("wait for substrate");
    if let Some(writer) = writer {
        writer.join().expect("stdin writer").expect("write stdin");
    }
    output
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "substrate {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `substrate ARGS`, requires success, returns (stdout, stderr).
pub fn ok(args: &[&str]) -> (String, String) {
    ok_stdin(args, None)
}

pub fn ok_stdin(args: &[&str], stdin: Option<&[u8]>) -> (String, String) {
    let out = run(args, stdin);
    assert!(out.status.success(), "expected success:\n{}", describe(args, &out));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs `substrate ARGS`, requires failure, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(!out.status.success(), "expected failure:\n{}", describe(args, &out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value after `label` on the line that starts with it (after trimming), e.g. `cid:`.
pub fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .map(|rest| rest.trim().to_owned())
        .unwrap_or_else(|| panic!("no '{label}' line in:\n{text}"))
}

/// A commons founded in a temporary directory.
pub struct Commons {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    /// The log's signed-note verifier key, as `init` printed it.
    pub vkey: String,
}

impl Commons {
    pub fn init(name: &str) -> Commons {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let (stdout, _) = ok(&["init", "--data-dir", path(&data), "--name", name]);
        let vkey = field(&stdout, "log key:");
        Commons { tmp, data, vkey }
    }

    /// Founds a commons whose node accepts texts of at most `max_deposit_bytes`.
    pub fn init_with_limit(name: &str, max_deposit_bytes: usize) -> Commons {
        let commons = Commons::init(name);
        std::fs::write(
            commons.data.join("substrate.toml"),
            format!("listen = \"127.0.0.1:0\"\nmax_deposit_bytes = {max_deposit_bytes}\n"),
        )
        .expect("write config");
        commons
    }

    pub fn start(&self) -> Daemon {
        Daemon::start(&self.data, self.tmp.path())
    }

    pub fn verifier(&self) -> substrate_tlog::NoteVerifier {
        substrate_tlog::NoteVerifier::from_vkey(&self.vkey).expect("vkey")
    }

    /// A file path inside the temporary directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn database(&self) -> PathBuf {
        self.data.join("ledger.sqlite")
    }

    /// `substrate ledger replay MODE` (`--check` or `--rebuild`) on the data directory.
    pub fn replay(&self, mode: &str) -> Output {
        run(&["ledger", "replay", mode, "--data-dir", path(&self.data)], None)
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

static DAEMONS: AtomicUsize = AtomicUsize::new(0);

/// `substrate serve` as a child process; killed (SIGKILL) when dropped.
pub struct Daemon {
    child: Child,
    pub url: String,
    /// Kept open so the daemon never writes into a closed pipe.
    stdout: BufReader<ChildStdout>,
    log: PathBuf,
}

impl Daemon {
    /// Starts serving `data` on a free loopback port; returns once it prints its address.
    pub fn start(data: &Path, logs: &Path) -> Daemon {
        Daemon::start_with(data, logs, &[])
    }

    /// Starts `substrate serve` on `data` with `extra` arguments after the usual ones.
    pub fn start_with(data: &Path, logs: &Path, extra: &[&str]) -> Daemon {
        let log = logs.join(format!("daemon-{}.log", DAEMONS.fetch_add(1, Ordering::Relaxed)));
        let stderr = File::create(&log).expect("daemon log file");
        let mut args = vec!["serve", "--data-dir", path(data), "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = command(&args)
            .env("RUST_LOG", "info,libp2p=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn substrate serve");
        let stdout = BufReader::new(child.stdout.take().expect("stdout pipe"));
        // From here on, a failed start still kills the child (Drop).
        let mut daemon = Daemon { child, url: String::new(), stdout, log };
        let mut line = String::new();
        daemon.stdout.read_line(&mut line).expect("read the daemon's first line");
        let url = line.trim().strip_prefix("listening on ").map(str::to_owned);
        let Some(url) = url.filter(|u| u.starts_with("http://127.0.0.1:")) else {
            panic!("the daemon did not start: first line {line:?}\n{}", daemon.log_text());
        };
        daemon.url = url;
        daemon
    }

    /// Starts a mesh node on `data`, listening for peers on a free loopback port and dialling
    /// `bootstrap`; returns it and its mesh address (`…/p2p/<peer id>`), as it printed them.
    pub fn start_mesh(data: &Path, logs: &Path, bootstrap: &[&str]) -> (Daemon, String) {
        Daemon::start_mesh_with(data, logs, bootstrap, &[])
    }

    /// [`Daemon::start_mesh`] with `more` arguments after the mesh's.
    pub fn start_mesh_with(data: &Path, logs: &Path, bootstrap: &[&str], more: &[&str]) -> (Daemon, String) {
        let mut extra = vec!["--p2p-listen", "/ip4/127.0.0.1/tcp/0"];
        for addr in bootstrap {
            extra.extend(["--bootstrap", addr]);
        }
        extra.extend_from_slice(more);
        let mut daemon = Daemon::start_with(data, logs, &extra);
        let mut line = String::new();
        daemon.stdout.read_line(&mut line).expect("read the daemon's mesh line");
        let address = line.trim().split_once(" at ").map(|(_, addr)| addr.to_owned());
        let Some(address) = address.filter(|a| a.starts_with("/ip4/127.0.0.1/tcp/") && a.contains("/p2p/"))
        else {
            panic!("the daemon did not join the mesh: {line:?}\n{}", daemon.log_text());
        };
        (daemon, address)
    }

    pub fn http(&self) -> Http {
        Http::new(&self.url)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the daemon");
        self.child.wait().expect("reap the daemon");
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        terminate(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the daemon") {
                assert!(status.success(), "the daemon exited with {status} on SIGTERM:\n{}", self.log_text());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop within 20 s of SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of the daemon at {}\n{}", self.url, self.log_text());
        }
    }
}

#[allow(unsafe_code)]
fn terminate(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) only sends a signal; `pid` is our own child, not yet reaped.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill(SIGTERM): {}", std::io::Error::last_os_error());
}

/// An answer: status and body, whatever the status.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Requires an `{error, detail}` answer with `status` and `code`; returns the detail.
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "expected {status} {code}, got: {}", self.body);
        let body = self.json();
        assert_eq!(body["error"], code, "{}", self.body);
        let detail = body["detail"].as_str().unwrap_or_else(|| panic!("no detail in {}", self.body));
        assert!(!detail.is_empty(), "empty detail: {}", self.body);
        detail.to_owned()
    }
}

/// A blocking HTTP client for one node.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    pub base: String,
}

impl Http {
    pub fn new(base: &str) -> Http {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build();
        Http { agent, base: base.to_owned() }
    }

    /// GET, or the transport error.
    pub fn try_get(&self, path: &str) -> Result<Reply, String> {
        reply(self.agent.get(&format!("{}{path}", self.base)).call())
    }

    /// POST raw bytes as JSON, or the transport error.
    pub fn try_post(&self, path: &str, body: &[u8]) -> Result<Reply, String> {
        let request =
            self.agent.post(&format!("{}{path}", self.base)).set("Content-Type", "application/json");
        reply(request.send_bytes(body))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.try_get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Reply {
        self.try_post(path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, &serde_json::to_vec(body).expect("json"))
    }

    /// POSTs a body the node may refuse before reading it all: the request is written from another
    /// thread while the answer is read, so an early answer (and the connection closing under the
    /// rest of the body) is seen as the answer rather than as a broken pipe.
    pub fn post_oversized(&self, path: &str, body: &[u8]) -> Reply {
        let addr = self.base.strip_prefix("http://").expect("http base");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let mut writer = stream.try_clone().expect("clone stream");
        // Write errors are expected once the node has answered and closed.
        let sender = std::thread::spawn(move || {
            let _ = writer.write_all(&request);
        });
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                // A reset after the whole answer arrived is fine; a partial answer fails below.
                Err(_) => break,
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
        sender.join().expect("request writer");
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {head:?}"));
        let length: Option<usize> = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
        });
        if let Some(length) = length {
            assert_eq!(body.len(), length, "truncated answer: {text:?}");
        }
        Reply { status, body: body.to_owned() }
    }

    /// The log size `/health` reports.
    pub fn log_size(&self) -> u64 {
        let health = self.get("/health");
        assert_eq!(health.status, 200, "{}", health.body);
        let body = health.json();
        assert_eq!(body["status"], "ok", "{}", health.body);
        body["log_size"].as_u64().unwrap_or_else(|| panic!("no log_size: {}", health.body))
    }

    /// POSTs a deposit; requires 201 and returns the receipt JSON.
    pub fn deposit(&self, event: &SignedEvent, content: &[u8]) -> Value {
        let reply = self.post_json("/v1/deposits", &deposit_body(&event.envelope, content));
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.json()
    }
}

fn reply(result: Result<ureq::Response, ureq::Error>) -> Result<Reply, String> {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(transport)) => return Err(transport.to_string()),
    };
    let status = response.status();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).map_err(|e| format!("reading the body: {e}"))?;
    Ok(Reply { status, body: String::from_utf8_lossy(&body).into_owned() })
}

pub fn new_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

pub fn did(key: &SigningKey) -> String {
    substrate_core::identity::did_of(&key.verifying_key())
}

/// A public narrative deposit of `text`.
pub fn deposit_event(text: &[u8], register: &str, consent: ConsentTier) -> Event {
    Event::Deposit(Deposit {
        cid: Some(Cid::of(text)),
        register: Register::new(register).expect("register name"),
        secondary_registers: Vec::new(),
        consent,
        title: "A test text".into(),
        language: "en".into(),
        license: "CC-BY-4.0".into(),
        media_type: "text/plain; charset=utf-8".into(),
        size: text.len() as u64,
        created: "2026-01-01T00:00:00.000Z".into(),
    })
}

pub fn signed_deposit(key: &SigningKey, text: &[u8]) -> SignedEvent {
    SignedEvent::sign(deposit_event(text, "narrative", ConsentTier::Public), key)
}

pub fn deposit_body(envelope: &Envelope, content: &[u8]) -> Value {
    json!({"envelope": envelope, "content": STANDARD.encode(content)})
}

/// The in-toto statement `event` would be signed as, as JSON to tamper with.
pub fn statement(event: &Event) -> Value {
    serde_json::to_value(event.to_statement()).expect("statement json")
}

/// Signs an arbitrary (possibly invalid) statement with `key`.
pub fn sign_statement(statement: &Value, key: &SigningKey) -> Envelope {
    Envelope::sign(serde_json::to_vec(statement).expect("json"), key)
}

/// The envelope as JSON to tamper with.
pub fn envelope_json(envelope: &Envelope) -> Value {
    serde_json::to_value(envelope).expect("envelope json")
}

/// A distinct UTF-8 text of exactly `size` bytes.
pub fn text(tag: &str, size: usize) -> Vec<u8> {
    let mut out = format!("{tag}\n").into_bytes();
    let filler = b"The commons keeps what people give it, and gives it back. ";
    while out.len() < size {
        out.push(filler[out.len() % filler.len()]);
    }
    out.truncate(size);
    out
}

/// Percent-encodes one URL path segment (handles carry ':' and '/').
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
