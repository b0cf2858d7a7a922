//! What the fuzz targets share: a small commons founded, signed and logged as a node does it,
//! so that the targets check their parsers against real keys, notes and proofs, and the seed
//! corpora (`fuzz/seeds/`, written by the `seeds` binary) are real inputs.
//!
//! Everything is deterministic: keys come from fixed seeds and the clock is a constant, so the
//! same build gives the same fixtures and the same seeds every time.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use substrate_core::event::{ConsentChange, Deposit, Genesis, Withdrawal};
use substrate_core::governance::acts::{Action, Attestation, Proposal, VoteCast};
use substrate_core::governance::params::Windows;
use substrate_core::governance::tally::{ProposalClass, Vote};
use substrate_core::identity::did_of;
use substrate_core::receipt::Receipt;
use substrate_core::{Cid, ConsentTier, Event, LogEntry, Register, SignedEvent, State};
use substrate_tlog::{Checkpoint, NoteSigner, NoteVerifier, TlogProof, Tree};

/// The commons' origin line, also its log key's name.
pub const ORIGIN: &str = "fuzz.example/commons";
/// The seed of the log key.
pub const LOG_KEY: u8 = 42;
/// 2027-01-15, ms since the epoch: when the commons is founded.
pub const START: u64 = 1_800_000_000_000;
/// Voting windows of a minute, so that a proposal closes within a fuzz input's reach.
pub const WINDOWS: Windows = Windows { ordinary: 60_000, resource: 60_000, constitutional: 120_000 };
/// The stewards, by key seed: the first board, members from the start.
pub const STEWARDS: [u8; 3] = [1, 2, 3];
/// The members the stewards attest, by key seed.
pub const MEMBERS: [u8; 3] = [10, 11, 12];
/// The member whose ballot the `ballot` target reads; the only member who has not voted.
pub const VOTER: u8 = 10;
/// The witness (a mirror's node key) that cosigns the checkpoints, by key seed.
pub const WITNESS: u8 = 77;
/// The text of the deposit in the sample log.
pub const TEXT: &[u8] = b"A kitchen-table story, told twice and written down once.\n";

/// The key made from a 32-byte seed of `n`.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// The did:key of [`key`]`(n)`.
pub fn did(n: u8) -> String {
    did_of(&key(n).verifying_key())
}

/// The log key as a signed-note signer.
pub fn log_signer() -> NoteSigner {
    // The origin is a valid key name (no whitespace, no '+'): this cannot fail.
    NoteSigner::new(ORIGIN, key(LOG_KEY)).expect("the origin is a valid key name")
}

/// The log key as `substrate verify --commons-key` and every mirror hold it.
pub fn log_verifier() -> NoteVerifier {
    log_signer().verifier()
}

fn register(name: &str) -> Register {
    Register::new(name).expect("a default register name")
}

/// The commons' founding event.
pub fn genesis() -> Event {
    Event::Genesis(Genesis {
        name: "fuzz".into(),
        origin: ORIGIN.into(),
        log_key: log_verifier().to_vkey(),
        registers: Register::defaults(),
        handle_prefix: "tag:fuzz.example,2027:d/".into(),
        created: "2027-01-15T00:00:00.000Z".into(),
        stewards: STEWARDS.iter().map(|n| did(*n)).collect(),
        windows: Some(WINDOWS),
        state_encoding: Some(substrate_core::canonical::VERSION),
    })
}

fn attestation(person: u8, n: usize) -> Event {
    Event::Attestation(Attestation {
        person: did(person),
        days: None,
        note: Some("met at the library".into()),
        requested: format!("request-{n}"),
    })
}

/// The deposit of [`TEXT`].
pub fn deposit() -> Event {
    Event::Deposit(Deposit {
        cid: Some(Cid::of(TEXT)),
        register: register("narrative"),
        secondary_registers: vec![register("oral")],
        consent: ConsentTier::Public,
        title: "A kitchen-table story".into(),
        language: "en-GB".into(),
        license: "CC-BY-4.0".into(),
        media_type: "text/plain; charset=utf-8".into(),
        size: TEXT.len() as u64,
        created: "2027-01-15T00:00:00.000Z".into(),
    })
}

/// A distribution over registers.
pub fn mix(weights: &[(&str, f64)]) -> BTreeMap<Register, f64> {
    weights.iter().map(|(name, weight)| (register(name), *weight)).collect()
}

/// The proposal that sets the mixture.
pub fn mixture_proposal() -> Event {
    Event::Proposal(Proposal {
        title: "The mixture for the spring run".into(),
        summary: Some("More oral history.\nLess encyclopedia.".into()),
        class: ProposalClass::Ordinary,
        actions: vec![Action::SetMixture { ballot: mix(&[("narrative", 0.5), ("oral", 0.5)]) }],
        requested: "request-mixture".into(),
    })
}

/// The proposal that elects two of four candidates to the board.
pub fn election_proposal() -> Event {
    Event::Proposal(Proposal {
        title: "A new board".into(),
        summary: None,
        class: ProposalClass::Ordinary,
        actions: vec![Action::ElectBoard { seats: 2, candidates: candidates() }],
        requested: "request-election".into(),
    })
}

/// The candidates of [`election_proposal`], in its order (the tie-break order).
pub fn candidates() -> Vec<String> {
    [1, 10, 11, 12].iter().map(|n| did(*n)).collect()
}

/// A vote predicate.
pub fn vote(
    proposal: u64,
    choice: Vote,
    mixture: Option<BTreeMap<Register, f64>>,
    ranking: Option<Vec<String>>,
    requested: &str,
) -> VoteCast {
    VoteCast { proposal, choice, mixture, ranking, requested: requested.into() }
}

/// The mixtures the stewards and members other than [`VOTER`] voted for, in their order.
pub fn fixture_mixtures() -> Vec<BTreeMap<Register, f64>> {
    vec![
        mix(&[("narrative", 0.7), ("lyric", 0.3)]),
        mix(&[("oral", 1.0)]),
        mix(&[("technical", 0.25), ("oral", 0.75)]),
        mix(&[("sacred", 0.1), ("narrative", 0.9)]),
        mix(&[("narrative", 0.5), ("oral", 0.5)]),
    ]
}

/// A commons with two open proposals, the state a ballot arrives in.
#[derive(Clone, Debug)]
pub struct Ballots {
    pub state: State,
    /// The proposal that sets the mixture (its log index).
    pub mixture: u64,
    /// The proposal that elects the board.
    pub election: u64,
    /// The time the next entry is integrated at: both proposals are still open.
    pub now: u64,
}

impl Ballots {
    /// Founds the commons, attests [`MEMBERS`], opens both proposals and has every steward and
    /// member but [`VOTER`] vote on them, so that one more ballot decides them.
    pub fn new() -> Ballots {
        let mut state = State::new();
        let mut now = START;
        let mut apply = |state: &mut State, event: Event, signer: u8| -> u64 {
            let signed = SignedEvent::sign(event, &key(signer));
            let index = state.size();
            let kind = signed.event.kind();
            if let Err(e) = state.apply(index, now, &signed) {
                panic!("the fixture's {kind} was refused: {e}");
            }
            now += 1;
            index
        };
        apply(&mut state, genesis(), LOG_KEY);
        for (n, member) in MEMBERS.iter().enumerate() {
            apply(&mut state, attestation(*member, n), STEWARDS[0]);
        }
        let mixture = apply(&mut state, mixture_proposal(), STEWARDS[0]);
        let election = apply(&mut state, election_proposal(), STEWARDS[0]);
        let voters = [2, 3, 11, 12, 1];
        let rankings: [[u8; 3]; 5] = [[10, 11, 1], [11, 10, 12], [11, 12, 1], [12, 1, 10], [1, 10, 11]];
        for ((voter, weights), ranking) in voters.into_iter().zip(fixture_mixtures()).zip(rankings) {
            let ranking = ranking.iter().map(|n| did(*n)).collect();
            let requested = format!("request-vote-{voter}");
            let mixture_vote = vote(mixture, Vote::Yes, Some(weights), None, &requested);
            apply(&mut state, Event::Vote(mixture_vote), voter);
            let election_vote = vote(election, Vote::Yes, None, Some(ranking), &requested);
            apply(&mut state, Event::Vote(election_vote), voter);
        }
        Ballots { state, mixture, election, now }
    }
}

impl Default for Ballots {
    fn default() -> Self {
        Ballots::new()
    }
}

/// A log as the sequencer writes it: entries, their events, the Merkle tree over their leaves.
#[derive(Debug)]
pub struct Log {
    pub events: Vec<SignedEvent>,
    pub entries: Vec<LogEntry>,
    pub tree: Tree,
}

impl Log {
    /// The genesis, two attestations, a deposit, a consent change, a withdrawal and a proposal,
    /// integrated a second apart.
    pub fn sample() -> Log {
        let cid = Cid::of(TEXT);
        let events = [
            (genesis(), LOG_KEY),
            (attestation(MEMBERS[0], 0), STEWARDS[0]),
            (attestation(MEMBERS[1], 1), STEWARDS[0]),
            (deposit(), MEMBERS[0]),
            (
                Event::ConsentChange(ConsentChange {
                    cid: Some(cid.clone()),
                    consent: ConsentTier::Commons,
                    requested: "2027-01-15T00:00:05.000Z".into(),
                }),
                MEMBERS[0],
            ),
            (
                Event::Withdrawal(Withdrawal {
                    cid: Some(cid),
                    reason: Some("my grandmother asked me to".into()),
                    requested: "2027-01-15T00:00:06.000Z".into(),
                }),
                MEMBERS[0],
            ),
            (mixture_proposal(), STEWARDS[0]),
        ];
        let mut log = Log { events: Vec::new(), entries: Vec::new(), tree: Tree::new() };
        for (index, (event, signer)) in events.into_iter().enumerate() {
            let signed = SignedEvent::sign(event, &key(signer));
            let entry = LogEntry {
                index: index as u64,
                integrated_time: START + 1000 * index as u64,
                envelope: signed.envelope_bytes().to_vec(),
            };
            log.tree.push(entry.leaf_hash());
            log.entries.push(entry);
            log.events.push(signed);
        }
        log
    }

    /// The signed checkpoint note for the first `size` entries, with a state line as the
    /// sequencer writes one, cosigned by [`WITNESS`].
    pub fn note(&self, size: u64) -> String {
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: self.tree.root_at(size).expect("a size the log holds"),
            extensions: vec![format!("substrate-state {}", STANDARD.encode([size as u8; 32]))],
        };
        let note = checkpoint.sign(&log_signer()).expect("a well-formed checkpoint");
        substrate_tlog::cosignature::cosign(&note, &did(WITNESS), &key(WITNESS), START / 1000 + size)
            .expect("a signed note")
    }

    /// The tlog-proof of entry `index` in the tree of `size` entries.
    pub fn proof(&self, index: u64, size: u64) -> TlogProof {
        TlogProof {
            index,
            hashes: self.tree.inclusion_proof(index, size).expect("an entry the tree holds"),
            extra: None,
            checkpoint: self.note(size),
        }
    }

    /// The receipt of entry `index` as the node hands it out, its proof leading to the
    /// checkpoint of the whole log.
    pub fn receipt(&self, index: usize) -> Receipt {
        let size = self.tree.size();
        let handle = (index == 3).then(|| format!("tag:fuzz.example,2027:d/{index}"));
        let proof = self.proof(index as u64, size).to_text();
        Receipt::new(&self.events[index], &self.entries[index], handle, proof)
    }
}
