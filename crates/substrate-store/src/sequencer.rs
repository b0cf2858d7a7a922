//! The sequencer: one thread owns the [`Ledger`] and appends whatever has queued up since its last
//! commit as one batch (group commit), so a burst of deposits costs one blob sync and one
//! SQLite fsync, not one each. Callers reach it through a cloneable [`SequencerHandle`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use substrate_core::receipt::Receipt;
use substrate_core::state::Rejection;
use tokio::sync::{mpsc, oneshot, watch};

use crate::ledger::{Ledger, LedgerError, Outcome, Submission, Unbuilt};

/// The most submissions one batch takes; more wait for the next batch.
pub const MAX_BATCH: usize = 2048;
/// How many submissions may wait for the sequencer before callers are made to wait.
const QUEUE: usize = 16 * 1024;

/// The sequencer's answer to one submission: its outcome, whose receipt the caller builds on
/// its own thread, or why its batch failed.
type Reply = oneshot::Sender<Result<Outcome<Unbuilt>, SubmitError>>;

/// What reaches the sequencer: a submission, or the clock's tick that lets it close proposals
/// whose window has ended.
enum Job {
    Submit(Box<Submission>, Reply),
    Tick,
}

/// How often the sequencer looks for proposals to decide; windows are at least a second.
const TICK: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Submitted {
    pub receipt: Receipt,
    /// True when the same act (the same statement from the same signers) was already in the log.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Refused(Rejection),
    /// Shared: one failed batch answers every submission in it.
    #[error("the log could not store the event: {0}")]
    Storage(Arc<LedgerError>),
    #[error("the sequencer has stopped")]
    Stopped,
    #[error("the sequencer cannot be reached from this node: {0}")]
    Unreachable(String),
}

/// The latest checkpoint the sequencer signed: its size and note.
pub type Head = Option<(u64, String)>;

/// Hands a submission to a sequencer elsewhere (a mirror forwards over the mesh) and resolves
/// with the sequencer's answer.
pub trait Forward: Send + Sync {
    fn forward(
        &self,
        submission: Submission,
    ) -> Pin<Box<dyn Future<Output = Result<Submitted, SubmitError>> + Send>>;
}

/// Where submissions go: the sequencer thread of this process, or a sequencer elsewhere.
#[derive(Clone)]
pub struct SequencerHandle {
    route: Route,
}

#[derive(Clone)]
enum Route {
    Local { queue: mpsc::Sender<Job>, head: watch::Receiver<Head> },
    Forward(Arc<dyn Forward>),
}

impl SequencerHandle {
    /// Starts the sequencer thread; it stops when every handle is dropped, after finishing the
    /// batch in hand.
    pub fn spawn(ledger: Ledger) -> std::io::Result<(SequencerHandle, std::thread::JoinHandle<()>)> {
        SequencerHandle::spawn_with_clock(ledger, wall_clock_ms)
    }

    /// [`spawn`](Self::spawn), reading the wall clock from `wall` (milliseconds since the Unix
    /// epoch) instead of the system's: how a test makes the clock jump.
    pub fn spawn_with_clock(
        ledger: Ledger,
        wall: impl Fn() -> u64 + Send + 'static,
    ) -> std::io::Result<(SequencerHandle, std::thread::JoinHandle<()>)> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let (head_tx, head) = watch::channel(ledger.checkpoint_note().ok().flatten());
        let clock = Clock::new(Box::new(wall));
        let thread = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || run(ledger, receiver, head_tx, clock))?;
        // The clock holds only a weak sender, so the sequencer still stops when the last handle goes.
        let clock = queue.downgrade();
        std::thread::Builder::new().name("sequencer-clock".into()).spawn(move || {
            loop {
                std::thread::sleep(TICK);
                let Some(queue) = clock.upgrade() else { return };
                if let Err(mpsc::error::TrySendError::Closed(_)) = queue.try_send(Job::Tick) {
                    return;
                }
            }
        })?;
        Ok((SequencerHandle { route: Route::Local { queue, head } }, thread))
    }

    /// A handle that forwards every submission (a mirror's, to the sequencer over the mesh).
    pub fn forwarding(forward: Arc<dyn Forward>) -> SequencerHandle {
        SequencerHandle { route: Route::Forward(forward) }
    }

    /// The checkpoints this process's sequencer signs, newest first; `None` for a forwarding handle.
    pub fn head(&self) -> Option<watch::Receiver<Head>> {
        match &self.route {
            Route::Local { head, .. } => Some(head.clone()),
            Route::Forward(_) => None,
        }
    }

    /// Offers one event to the log; resolves once it is durable (or refused).
    pub async fn submit(&self, submission: Submission) -> Result<Submitted, SubmitError> {
        match &self.route {
            Route::Local { queue, .. } => {
                let (reply, response) = oneshot::channel();
                queue
                    .send(Job::Submit(Box::new(submission), reply))
                    .await
                    .map_err(|_| SubmitError::Stopped)?;
                match response.await.map_err(|_| SubmitError::Stopped)?? {
                    Outcome::Appended(unbuilt) => {
                        Ok(Submitted { receipt: unbuilt.build(), duplicate: false })
                    }
                    Outcome::Duplicate(receipt) => Ok(Submitted { receipt, duplicate: true }),
                    Outcome::Refused(rejection) => Err(SubmitError::Refused(rejection)),
                }
            }
            Route::Forward(forward) => forward.forward(submission).await,
        }
    }
}

/// How often the maintenance thread moves pending texts to the blob directory, and the
/// checkpointer folds the SQLite WAL back into the database file.
const MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Frames in the WAL (4 KiB pages, so 64 MiB) past which the checkpointer makes the next commit
/// write at the start of the WAL again. While the sequencer commits without pause, a passive
/// checkpoint never finds every frame copied, so SQLite never restarts the WAL on its own: it
/// grew by every page every batch wrote (350 MB for 20,000 deposits), each write extending the
/// file rather than overwriting a page already cached.
const RESTART_FRAMES: i64 = 16 * 1024;

/// Frames left to copy at which the checkpointer holds writers off to copy the rest (and syncs
/// the database file): a few milliseconds at most.
const RESTART_REMAINDER: i64 = 1024;

/// Texts moved to the blob directory per round (one `syncfs`, one SQLite transaction).
const MOVE_AT_ONCE: usize = 512;

/// The share of its time the sequencer may spend committing before texts stop moving: above it,
/// moving them (file creation in the kernel, a transaction that takes the write lock) competes
/// with the deposits for the same cores and the same lock.
const BUSY_SHARE: f64 = 0.25;

/// How many entries' texts may wait in SQLite while the sequencer is busy; past that they move
/// regardless, so a long busy spell cannot grow the database without bound.
const MAX_DEFERRED: u64 = 100_000;

/// Nanoseconds the sequencer has spent appending batches, for the maintenance thread to see how
/// busy it is.
type Busy = Arc<std::sync::atomic::AtomicU64>;

/// Background upkeep beside the sequencer, from a connection of its own: moves accepted texts
/// from SQLite into the blob directory while the sequencer is not busy. Stops, after a last
/// round, when `stop` is dropped.
fn maintenance(
    path: std::path::PathBuf,
    blobs: crate::blobs::BlobStore,
    stop: std::sync::mpsc::Receiver<()>,
    busy: Busy,
) {
    // Upkeep can wait: under load, deposits come first and texts simply stay in SQLite longer.
    crate::blobs::lower_this_threads_priority();
    let mut conn = match crate::schema::open(&path) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, "the maintenance thread cannot open the database; texts stay in SQLite");
            return;
        }
    };
    // The sequencer's busy time as last seen, and when.
    let mut seen = (std::time::Instant::now(), busy.load(std::sync::atomic::Ordering::Relaxed));
    // Whether the sequencer spent less than `BUSY_SHARE` of the time since the last look appending.
    let mut quiet = || {
        let now = (std::time::Instant::now(), busy.load(std::sync::atomic::Ordering::Relaxed));
        let share =
            now.1.saturating_sub(seen.1) as f64 / now.0.duration_since(seen.0).as_nanos().max(1) as f64;
        seen = now;
        share < BUSY_SHARE
    };
    loop {
        let stopping =
            !matches!(stop.recv_timeout(MAINTENANCE_EVERY), Err(std::sync::mpsc::RecvTimeoutError::Timeout));
        let mut move_texts = quiet() || stopping || deferred(&conn) > MAX_DEFERRED;
        while move_texts {
            match crate::ledger::flush_texts(&mut conn, &blobs, MOVE_AT_ONCE) {
                Ok(MOVE_AT_ONCE) => {
                    move_texts = quiet() || stopping || deferred(&conn) > MAX_DEFERRED;
                }
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "moving texts to the blob directory failed; they stay in SQLite for now");
                    break;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// How long, in all, the checkpointer waits for a lock before it tries again at its next round.
const CHECKPOINT_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// The checkpointer's busy handler: steps of 100 µs, up to [`CHECKPOINT_WAIT`].
fn wait_briefly(attempt: i32) -> bool {
    const STEP: std::time::Duration = std::time::Duration::from_micros(100);
    std::thread::sleep(STEP);
    u128::from(attempt.unsigned_abs()) < CHECKPOINT_WAIT.as_micros() / STEP.as_micros()
}

/// Checkpoints the WAL beside the sequencer, from a connection of its own, so the sequencer's
/// commits never pay for it (SQLite's automatic checkpoint would run inside a commit every ~1000
/// pages). Passive checkpoints never block the writer; once the WAL passes `RESTART_FRAMES`,
/// passive passes copy all but the last few frames and a RESTART checkpoint copies those while
/// holding the writer off for a moment, so the next commit starts the WAL over. Runs at normal
/// priority, unlike the text mover: a checkpoint that holds the writer off must not wait for a
/// core. After a deposit is withdrawn or removed it truncates the WAL, whose old frames may still
/// hold the text. Truncates the WAL and stops when `stop` is dropped.
fn checkpoints(path: std::path::PathBuf, stop: std::sync::mpsc::Receiver<()>) {
    let conn = match crate::schema::open(&path).and_then(|conn| {
        // A RESTART or TRUNCATE waits for the writer's commit to end, then for the readers of
        // older snapshots, holding new writers off meanwhile: so it waits briefly and, if they
        // are not done, gives up until the next round rather than stall the sequencer.
        conn.busy_handler(Some(wait_briefly))?;
        Ok(conn)
    }) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, "the checkpointer cannot open the database; the WAL is not checkpointed");
            return;
        }
    };
    // (frames in the WAL, frames copied into the database); SQLite's first column says whether a
    // RESTART or TRUNCATE could not finish because a reader or writer held it off.
    let checkpoint = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        })
        .map(|(blocked, frames, copied)| (blocked != 0, frames, copied))
    };
    // Deposits withdrawn or removed: their texts' bytes may still sit in old frames of the WAL,
    // which a checkpoint copies from but does not erase. Each time this count grows, the WAL is
    // truncated (the database's own pages are zeroed by `secure_delete`).
    let gone = || {
        conn.query_row("SELECT count(*) FROM deposits WHERE status != 'active'", [], |row| {
            row.get::<_, i64>(0)
        })
    };
    let mut erased = -1;
    loop {
        let stopping =
            !matches!(stop.recv_timeout(MAINTENANCE_EVERY), Err(std::sync::mpsc::RecvTimeoutError::Timeout));
        match gone() {
            Ok(now) if now != erased => match checkpoint("TRUNCATE") {
                Ok((false, _, _)) => erased = now,
                // Readers held it off; the next round tries again.
                Ok((true, _, _)) => {}
                Err(error) => {
                    tracing::warn!(%error, "truncating the WAL after a withdrawal failed; retrying")
                }
            },
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "counting withdrawn deposits failed"),
        }
        let result = if stopping {
            checkpoint("TRUNCATE")
        } else {
            checkpoint("PASSIVE").and_then(|(blocked, frames, copied)| {
                if frames < RESTART_FRAMES {
                    return Ok((blocked, frames, copied));
                }
                let mut left = frames - copied;
                for _ in 0..8 {
                    if left < RESTART_REMAINDER {
                        // The writer waits while these few frames are copied.
                        return checkpoint("RESTART");
                    }
                    let (_, frames, copied) = checkpoint("PASSIVE")?;
                    left = frames - copied;
                }
                // The writer outpaced the passes; try again at the next round.
                Ok((blocked, frames, copied))
            })
        };
        if let Err(error) = result {
            tracing::warn!(%error, "WAL checkpoint failed; retrying");
        }
        if stopping {
            return;
        }
    }
}

/// How many entries the texts waiting in SQLite span (an upper bound on their number, read
/// without counting the rows); 0 when none wait or the database cannot say.
fn deferred(conn: &rusqlite::Connection) -> u64 {
    conn.query_row("SELECT max(idx) - min(idx) + 1 FROM pending_texts", [], |row| {
        row.get::<_, Option<u64>>(0)
    })
    .ok()
    .flatten()
    .unwrap_or(0)
}

fn run(mut ledger: Ledger, mut receiver: mpsc::Receiver<Job>, head: watch::Sender<Head>, mut clock: Clock) {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (stop_checkpoints, checkpoints_stopped) = std::sync::mpsc::channel::<()>();
    let database = ledger.dir().database();
    let blobs = ledger.blobs().clone();
    let busy = Busy::default();
    let seen = Arc::clone(&busy);
    let texts = database.clone();
    let upkeep = std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || maintenance(texts, blobs, stopped, seen));
    let checkpointer = std::thread::Builder::new()
        .name("checkpoints".into())
        .spawn(move || checkpoints(database, checkpoints_stopped));
    if let Err(error) = ledger.leave_checkpoints_to_others() {
        tracing::warn!(%error, "could not turn off SQLite's automatic checkpoints");
    }
    sequence(&mut ledger, &mut receiver, &head, &busy, &mut clock);
    drop(stop);
    if let Ok(upkeep) = upkeep {
        let _ = upkeep.join();
    }
    // The last round of moving texts is in the WAL before it is truncated.
    drop(stop_checkpoints);
    if let Ok(checkpointer) = checkpointer {
        let _ = checkpointer.join();
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// How much faster than real time (the monotonic clock) integrated time may run to catch up with
/// a wall clock that jumped ahead: a tenth.
const CATCH_UP_SHARE: u64 = 10;

/// A wall clock this far ahead of the time last trusted plus the real time since is a jump, not
/// drift or a slow batch.
const CLOCK_TOLERANCE_MS: u64 = 2_000;

/// The time entries are integrated at: the wall clock, unless it ran ahead of real time. Between
/// two readings the monotonic clock says how much time really passed; a wall clock more than
/// [`CLOCK_TOLERANCE_MS`] past that (an NTP step, an operator's mistake, a forged time source)
/// is not followed at once: integrated time runs at most a tenth faster than real time until it
/// meets the wall clock again. So a forward jump cannot close a vote early by more than a tenth
/// of the time that really passed. A clock that goes back is the ledger's to handle (integrated
/// time never goes back). After a restart there is no real time to compare with: the wall clock
/// is taken as it is.
struct Clock {
    wall: Box<dyn Fn() -> u64 + Send>,
    /// The last wall-clock reading that was followed, and when it was read.
    trusted: Option<(u64, std::time::Instant)>,
    /// When the jump was last logged.
    warned: Option<std::time::Instant>,
}

impl Clock {
    fn new(wall: Box<dyn Fn() -> u64 + Send>) -> Clock {
        Clock { wall, trusted: None, warned: None }
    }

    fn now(&mut self) -> u64 {
        let wall = (self.wall)();
        let read = std::time::Instant::now();
        let Some((trusted, at)) = self.trusted else {
            self.trusted = Some((wall, read));
            return wall;
        };
        let real = u64::try_from(read.duration_since(at).as_millis()).unwrap_or(u64::MAX);
        let most = trusted.saturating_add(real).saturating_add(real / CATCH_UP_SHARE);
        if wall <= most.saturating_add(CLOCK_TOLERANCE_MS) {
            self.trusted = Some((wall, read));
            self.warned = None;
            return wall;
        }
        if self.warned.is_none_or(|warned| warned.elapsed() >= std::time::Duration::from_secs(60)) {
            tracing::error!(
                ahead_ms = wall - most,
                "CLOCK JUMP: the wall clock is ahead of the real time passed since it was last trusted; \
                 entries are integrated at most a tenth faster than real time until it is met again \
                 (if the clock was wrong before, restart the node to take the wall clock as it is)"
            );
            self.warned = Some(read);
        }
        most
    }
}

fn sequence(
    ledger: &mut Ledger,
    receiver: &mut mpsc::Receiver<Job>,
    head: &watch::Sender<Head>,
    busy: &Busy,
    clock: &mut Clock,
) {
    let mut pending = Vec::with_capacity(MAX_BATCH);
    while receiver.blocking_recv_many(&mut pending, MAX_BATCH) > 0 {
        let started = std::time::Instant::now();
        let (batch, replies): (Vec<Submission>, Vec<Reply>) = pending
            .drain(..)
            .filter_map(|job| match job {
                Job::Submit(submission, reply) => Some((*submission, reply)),
                Job::Tick => None,
            })
            .unzip();
        // A batch decides closed proposals before its own entries (`Ledger::append_batch`); a
        // tick alone decides them when nothing else arrives.
        let now = clock.now();
        if !batch.is_empty() {
            commit(ledger, batch, replies, now);
        } else if let Err(error) = ledger.decide_due(now) {
            tracing::error!(%error, "deciding closed proposals failed; retrying at the next tick");
        }
        // Jobs are scheduled after what arrived, so a request or a result is acted on at once.
        if let Err(error) = ledger.schedule_jobs(now) {
            tracing::error!(%error, "scheduling jobs failed; retrying at the next tick");
        }
        let size = ledger.state().size();
        if head.borrow().as_ref().is_none_or(|(held, _)| *held != size) {
            match ledger.checkpoint_note() {
                Ok(latest) => {
                    head.send_replace(latest);
                }
                Err(error) => tracing::warn!(%error, "could not read the checkpoint just signed"),
            }
        }
        busy.fetch_add(started.elapsed().as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

fn commit(ledger: &mut Ledger, batch: Vec<Submission>, replies: Vec<Reply>, now: u64) {
    let size = batch.len();
    match ledger.append_unbuilt(batch, now) {
        Ok(outcomes) => {
            tracing::debug!(batch = size, log_size = ledger.state().size(), "batch committed");
            for (outcome, reply) in outcomes.into_iter().zip(replies) {
                // A caller that went away no longer needs its answer; the entry stays.
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            tracing::error!(%error, batch = size, "batch failed; nothing of it was acknowledged");
            let error = Arc::new(error);
            for reply in replies {
                let _ = reply.send(Err(SubmitError::Storage(Arc::clone(&error))));
            }
        }
    }
}
