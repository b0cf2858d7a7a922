//! Opening entries ahead of the fold, for replay and a mirror's ranges: envelopes are parsed and
//! their signatures checked in Ed25519 batches, spread over every core. Replay opens a chunk
//! while it folds the chunk before ([`pipeline`]); a mirror opens a whole range while its ledger
//! keeps the range before (`follow::OpenedRange`).

use std::sync::mpsc;

use ed25519_dalek::{Signature, VerifyingKey};
use substrate_core::SignedEvent;
use substrate_core::envelope::SignatureCheck;
use substrate_core::event::EventError;

/// Entries whose signatures are verified in one Ed25519 batch. Larger batches cost less per
/// signature (256 entries: 513 points in one multiscalar multiplication); a batch that fails is
/// verified again one signature at a time.
pub const BATCH: usize = 256;

/// An entry opened into its event, or why it does not open, in its caller's words.
pub(crate) type Opened = Result<SignedEvent, String>;

/// Opens `envelopes` (JSON bytes) as [`SignedEvent::open_bytes`] does, the signatures of [`BATCH`]
/// envelopes at a time in one Ed25519 batch. An envelope that fails gets exactly the error
/// `open_bytes` gives it: a batch that does not verify is opened again envelope by envelope.
///
/// Accepting a batch is as safe here as checking each signature alone. A batch accepts every
/// signature single verification accepts, and more only where a signature's nonce point is
/// encoded non-canonically or it or the key carries a small-order component: signatures only the
/// holder of the signer's secret key can make (malleated signatures of the signer's own, never
/// forgeries), which single verification refuses. Callers open entries whose exact bytes a
/// checkpoint the log key signed fixes (through the leaf hashes and the tree root), so a
/// malleated signature cannot stand in for the one the sequencer checked.
pub(crate) fn open_batched(envelopes: &[&[u8]]) -> Vec<Result<SignedEvent, EventError>> {
    let mut opened = Vec::with_capacity(envelopes.len());
    for batch in envelopes.chunks(BATCH) {
        let deferred: Vec<_> = batch.iter().map(|bytes| SignedEvent::open_deferred(bytes).ok()).collect();
        let checks: Vec<&SignatureCheck> =
            deferred.iter().flatten().flat_map(|(_, checks)| checks.iter()).collect();
        let messages: Vec<&[u8]> = checks.iter().map(|c| c.message.as_slice()).collect();
        let signatures: Vec<Signature> = checks.iter().map(|c| c.signature).collect();
        let keys: Vec<VerifyingKey> = checks.iter().map(|c| c.key).collect();
        let verified = ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
        for (bytes, deferred) in batch.iter().zip(deferred) {
            opened.push(match deferred {
                Some((event, _)) if verified => Ok(event),
                // An envelope that does not open, or any of a batch that does not verify.
                _ => SignedEvent::open_bytes(bytes),
            });
        }
    }
    opened
}

/// Opens `items` with `open` on a thread per core, keeping their order.
pub(crate) fn open_parallel<T: Sync>(items: &[T], open: fn(&[T]) -> Vec<Opened>) -> Vec<Opened> {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let per = items.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.chunks(per).map(|part| scope.spawn(move || open(part))).collect();
        handles
            .into_iter()
            .zip(items.chunks(per))
            .flat_map(|(handle, part)| {
                handle
                    .join()
                    .unwrap_or_else(|_| vec![Err("an opening thread panicked".to_owned()); part.len()])
            })
            .collect()
    })
}

/// Chunks handed to the opening thread ahead of the fold: the one it opens while a chunk is
/// folded, and the next, read in time for it to go straight on to.
const AHEAD: usize = 2;

/// Hands the items of the chunks `read` gives, in order, to `fold`, each with its event as `open`
/// opens it. Opening is most of the work and spreads over every core, while folding is
/// sequential; so a thread of its own opens the chunk after the one being folded. At most two
/// chunks are held besides the one being folded: the one being opened and the one read for it
/// next. `read` gives `Ok(None)` (or an empty chunk) at the end; an `Err` ends the reading, and comes out once what
/// was read before it is folded. The first error wins, as when opening and folding one entry
/// after the other: `fold`'s at an entry before a chunk that could not be read, then the
/// reading's. `stopped` is the error if the opening thread goes away.
pub(crate) fn pipeline<T: Send + Sync, E>(
    mut read: impl FnMut() -> Result<Option<Vec<T>>, E>,
    open: fn(&[T]) -> Vec<Opened>,
    stopped: impl Fn() -> E,
    mut fold: impl FnMut(T, Opened) -> Result<(), E>,
) -> Result<(), E> {
    std::thread::scope(|scope| {
        // Both channels' ends on this side drop when this closure returns, early or not, which
        // ends the opening thread before the scope waits for it.
        let (to_open, unopened) = mpsc::sync_channel::<Vec<T>>(1);
        let (to_fold, opened) = mpsc::sync_channel::<(Vec<T>, Vec<Opened>)>(1);
        scope.spawn(move || {
            for items in unopened {
                let events = open_parallel(&items, open);
                if to_fold.send((items, events)).is_err() {
                    break;
                }
            }
        });
        let mut in_flight = 0usize;
        // Why the reading ended early.
        let mut ended: Option<E> = None;
        let mut reading = true;
        loop {
            while reading && in_flight < AHEAD {
                match read() {
                    Ok(Some(items)) if !items.is_empty() => {
                        to_open.send(items).map_err(|_| stopped())?;
                        in_flight += 1;
                    }
                    Ok(_) => reading = false,
                    Err(e) => {
                        ended = Some(e);
                        reading = false;
                    }
                }
            }
            if in_flight == 0 {
                return ended.map_or(Ok(()), Err);
            }
            let (items, events) = opened.recv().map_err(|_| stopped())?;
            in_flight -= 1;
            for (item, event) in items.into_iter().zip(events) {
                fold(item, event)?;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use substrate_core::ConsentTier;
    use substrate_core::event::{Deposit, Event};

    use super::*;

    fn envelope(n: usize) -> Vec<u8> {
        let content = n.to_be_bytes();
        let event = Event::Deposit(Deposit {
            cid: Some(substrate_core::Cid::of(&content)),
            register: substrate_core::Register::new("narrative").expect("register"),
            secondary_registers: vec![],
            consent: ConsentTier::Public,
            title: format!("story {n}"),
            language: "en".into(),
            license: "CC-BY-4.0".into(),
            media_type: "text/plain; charset=utf-8".into(),
            size: content.len() as u64,
            created: "2026-11-22T00:00:00.000Z".into(),
        });
        SignedEvent::sign(event, &SigningKey::from_bytes(&[n as u8; 32])).envelope.to_bytes()
    }

    /// A batch with a bad signature in it gives every other envelope its event and the bad one
    /// exactly the error a single verification gives.
    #[test]
    fn a_bad_signature_gets_the_error_single_verification_gives() {
        let mut envelopes: Vec<Vec<u8>> = (0..BATCH + 3).map(envelope).collect();
        // Flip a bit of one signature (base64 in the JSON): change one character of it.
        let bad = 7;
        let text = String::from_utf8(envelopes[bad].clone()).expect("utf-8");
        let at = text.find("\"sig\":\"").expect("a signature") + 7;
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        envelopes[bad] = bytes;
        envelopes.push(b"not json".to_vec());
        let slices: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        let opened = open_batched(&slices);
        assert_eq!(opened.len(), envelopes.len());
        for (bytes, opened) in envelopes.iter().zip(opened) {
            match SignedEvent::open_bytes(bytes) {
                Ok(alone) => {
                    assert_eq!(opened.expect("opens").envelope.to_bytes(), alone.envelope.to_bytes())
                }
                Err(alone) => assert_eq!(opened.err(), Some(alone)),
            }
        }
    }

    /// Items reach the fold in order with their own events, and the first error wins.
    #[test]
    fn the_pipeline_keeps_order_and_stops_at_the_first_error() {
        let envelopes: Vec<Vec<u8>> = (0..40).map(envelope).collect();
        let open: fn(&[Vec<u8>]) -> Vec<Opened> = |items| {
            let slices: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
            open_batched(&slices).into_iter().map(|r| r.map_err(|e| e.to_string())).collect()
        };
        let mut chunks = envelopes.chunks(7).map(<[Vec<u8>]>::to_vec);
        let mut seen = Vec::new();
        let result: Result<(), String> = pipeline(
            || Ok(chunks.next()),
            open,
            || "stopped".to_owned(),
            |item, event| {
                assert_eq!(event.expect("opens").envelope.to_bytes(), item);
                seen.push(item);
                Ok(())
            },
        );
        assert_eq!(result, Ok(()));
        assert_eq!(seen, envelopes);

        let mut chunks = envelopes.chunks(7).map(<[Vec<u8>]>::to_vec);
        let mut read = 0;
        let mut folded = 0;
        let result: Result<(), String> = pipeline(
            || {
                read += 1;
                if read == 4 { Err("unreadable".to_owned()) } else { Ok(chunks.next()) }
            },
            open,
            || "stopped".to_owned(),
            |_, _| {
                folded += 1;
                if folded == 10 { Err("fold".to_owned()) } else { Ok(()) }
            },
        );
        assert_eq!(result, Err("fold".to_owned()), "the fold's error at entry 10 comes before chunk 4's");
    }
}
