//! Retrieval over the commons: every deposit whose consent lets it be found (`public`, and
//! `commons` for members) is indexed for full text with BM25 (tantivy) and, when an embedding
//! model is loaded, as a vector; a query ranks both ways and fuses the two rankings by reciprocal
//! rank. `training-only` and `local` texts are never indexed.
//!
//! The index follows the log: [`SearchIndex::catch_up`] reads the entries after the last one it
//! indexed, adds the deposits, and deletes what a withdrawal, a removal or a narrowed consent
//! took away; the position is kept in each commit, so a restarted node goes on from there.
//! A search also checks every hit against the ledger as it is at that moment, so a withdrawn
//! text is gone from the results once its withdrawal's receipt is returned, even before the index
//! has caught up.
//!
//! Invariant: this crate only reads the ledger; what can be found is decided by the deposits'
//! consent and status there.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use substrate_core::event::Event;
use substrate_core::governance::acts::{Effect, Ruling};
use substrate_core::state::DepositRecord;
use substrate_core::{Cid, ConsentTier, SignedEvent};
use substrate_models::Embedder;
use substrate_store::Reader;
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, STORED, STRING, Schema, TEXT, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

/// Hits each ranking contributes to the fusion.
const DEPTH: usize = 100;
/// The constant of reciprocal rank fusion (Cormack, Clarke and Büttcher, 2009).
const RRF_K: f64 = 60.0;
/// Entries read from the log per step.
const STEP: u64 = 512;
/// Words of a text per passage vector, and the most passages of one text (spread over it).
const PASSAGE_WORDS: usize = 160;
const MOST_PASSAGES: usize = 64;
/// How the vectors were made, recorded with the model in each commit: another way rebuilds.
const PASSAGES: &str = "passages-160w-64";

/// The passages of `text` that are embedded: runs of [`PASSAGE_WORDS`] words, and past
/// [`MOST_PASSAGES`] of them, that many spread evenly over the text.
fn passages(text: &str) -> Vec<String> {
    passage_spans(text)
        .into_iter()
        .map(|(start, end)| text[start..end].split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The byte ranges of `text` that [`passages`] embeds, in order.
fn passage_spans(text: &str) -> Vec<(usize, usize)> {
    let words: Vec<(usize, usize)> = text
        .split_whitespace()
        .map(|word| {
            let start = word.as_ptr() as usize - text.as_ptr() as usize;
            (start, start + word.len())
        })
        .collect();
    if words.is_empty() {
        return vec![(0, 0)];
    }
    let runs: Vec<&[(usize, usize)]> = words.chunks(PASSAGE_WORDS).collect();
    let picked: Vec<&[(usize, usize)]> = if runs.len() <= MOST_PASSAGES {
        runs
    } else {
        (0..MOST_PASSAGES).map(|i| runs[i * runs.len() / MOST_PASSAGES]).collect()
    };
    picked.into_iter().map(|run| (run[0].0, run[run.len() - 1].1)).collect()
}

/// What a commit records as its embedding model when there is none.
const NO_MODEL: &str = "-";
/// How documents are laid out: an index of another layout is rebuilt. `registers-2`: a text's
/// secondary registers are values of its register field after the primary.
const LAYOUT: &str = "registers-2";
/// Most hits one search returns.
pub const MOST_HITS: usize = 100;

/// Why the index could not be opened, kept or searched.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the search index at {path}: {source}")]
    Index { path: String, source: tantivy::TantivyError },
    #[error("the search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("reading the ledger: {0}")]
    Read(#[from] substrate_store::ReadError),
    #[error("the embedding model: {0}")]
    Model(#[from] substrate_models::ModelError),
}

/// How a query is ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// BM25 and vectors, fused by reciprocal rank.
    Hybrid,
    Bm25,
    Vector,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "hybrid" => Some(Mode::Hybrid),
            "bm25" => Some(Mode::Bm25),
            "vector" => Some(Mode::Vector),
            _ => None,
        }
    }
}

/// What a search may find: by register, language and depositor; `commons` texts only for a member.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub register: Option<String>,
    pub language: Option<String>,
    pub depositor: Option<String>,
    pub include_commons: bool,
}

/// One text found, with the ledger's record of it as the search saw it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub deposit: DepositRecord,
    pub score: f64,
    /// Its rank (from 1) in the full-text and vector rankings, where it was in them.
    pub bm25_rank: Option<usize>,
    pub vector_rank: Option<usize>,
    /// A passage of the text around the query's words (or its beginning).
    pub snippet: String,
}

struct Fields {
    cid: Field,
    title: Field,
    text: Field,
    register: Field,
    language: Field,
    depositor: Field,
    consent: Field,
    vector: Field,
}

/// One text's place in the fused ranking: its score and its rank in each ranking it was in.
#[derive(Default)]
struct Fused {
    score: f64,
    bm25: Option<usize>,
    vector: Option<usize>,
    /// The number of the text's passage nearest the query, in the vector ranking.
    passage: Option<usize>,
}

/// The vectors of the indexed texts' passages, held in memory and searched exactly: a text is as
/// near a query as its nearest passage.
#[derive(Default)]
struct Vectors {
    width: usize,
    values: Vec<f32>,
    /// The slot of each row of `values`.
    rows: Vec<usize>,
    slots: Vec<Slot>,
    by_cid: HashMap<String, usize>,
}

struct Slot {
    cid: String,
    /// The primary register, then the secondary ones: a register filter finds any of them.
    registers: Vec<String>,
    language: String,
    depositor: String,
    consent: String,
    alive: bool,
}

impl Vectors {
    /// Holds a text's passage vectors, `width` floats each, one after the other.
    fn insert(&mut self, slot: Slot, width: usize, passages: &[f32]) {
        if self.width == 0 {
            self.width = width;
        }
        if width != self.width || width == 0 || passages.is_empty() || !passages.len().is_multiple_of(width) {
            return;
        }
        if let Some(old) = self.by_cid.get(&slot.cid) {
            self.slots[*old].alive = false;
        }
        let index = self.slots.len();
        self.by_cid.insert(slot.cid.clone(), index);
        self.values.extend_from_slice(passages);
        self.rows.extend(std::iter::repeat_n(index, passages.len() / width));
        self.slots.push(slot);
    }

    fn remove(&mut self, cid: &str) {
        if let Some(slot) = self.by_cid.remove(cid) {
            self.slots[slot].alive = false;
        }
    }

    /// The `depth` nearest alive vectors that pass `keep`, by cosine (the vectors are unit length).
    /// The `depth` texts nearest `query` that pass `keep`, each with its nearest passage's
    /// number.
    fn nearest(&self, query: &[f32], depth: usize, keep: impl Fn(&Slot) -> bool) -> Vec<(String, usize)> {
        if query.len() != self.width || self.width == 0 {
            return Vec::new();
        }
        let wanted: Vec<bool> = self.slots.iter().map(|slot| slot.alive && keep(slot)).collect();
        // Per slot: the best cosine, the row it came from, and the slot's first row.
        let mut best = vec![(f32::NEG_INFINITY, 0usize, usize::MAX); self.slots.len()];
        for (row, values) in self.values.chunks_exact(self.width).enumerate() {
            let slot = self.rows[row];
            best[slot].2 = best[slot].2.min(row);
            if wanted[slot] {
                let score = dot(values, query);
                if score > best[slot].0 {
                    best[slot].0 = score;
                    best[slot].1 = row;
                }
            }
        }
        let mut scored: Vec<(usize, f32)> =
            best.iter().enumerate().filter(|(slot, _)| wanted[*slot]).map(|(slot, b)| (slot, b.0)).collect();
        let depth = depth.min(scored.len());
        if depth == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(depth - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(depth);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().map(|(i, _)| (self.slots[i].cid.clone(), best[i].1 - best[i].2)).collect()
    }
}

/// The dot product of two vectors of the same width, in sixteen independent lanes so that the
/// compiler keeps them in vector registers (a plain sum is one serial chain of additions).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let (chunks_a, rest_a) = a.as_chunks::<LANES>();
    let (chunks_b, rest_b) = b.as_chunks::<LANES>();
    let mut lanes = [0f32; LANES];
    for (x, y) in chunks_a.iter().zip(chunks_b) {
        for lane in 0..LANES {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    let rest: f32 = rest_a.iter().zip(rest_b).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + rest
}

/// The index of one node's commons.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    embedder: Option<Arc<Embedder>>,
    /// The embedding model's name, kept in each commit (`-` for none).
    model: String,
    vectors: RwLock<Vectors>,
    /// The next log index to read.
    next: std::sync::atomic::AtomicU64,
    /// Steps left that collect the index's unused files again after a purge: a search under way
    /// during the purge keeps the old segments' files alive, so the purge's own collection may
    /// leave them; a later step deletes them once that search is done.
    sweeps: std::sync::atomic::AtomicU32,
}

/// Steps (a quarter second apart on a node) that sweep again after a purge.
const SWEEPS: u32 = 40;

fn findable(consent: ConsentTier) -> bool {
    matches!(consent, ConsentTier::Public | ConsentTier::Commons)
}

impl SearchIndex {
    /// Opens the index in `dir` (made if missing), with `embedder` for vectors if given.
    pub fn open(dir: &Path, embedder: Option<(String, Arc<Embedder>)>) -> Result<SearchIndex, SearchError> {
        let failed = |source| SearchError::Index { path: dir.display().to_string(), source };
        let mut builder = Schema::builder();
        let fields = Fields {
            cid: builder.add_text_field("cid", STRING | STORED),
            title: builder.add_text_field("title", TEXT | STORED),
            // Not stored: the text is read from the ledger, which deletes it on withdrawal.
            text: builder.add_text_field("text", TEXT),
            register: builder.add_text_field("register", STRING | STORED),
            language: builder.add_text_field("language", STRING | STORED),
            depositor: builder.add_text_field("depositor", STRING | STORED),
            consent: builder.add_text_field("consent", STRING | STORED),
            vector: builder.add_bytes_field("vector", STORED),
        };
        let schema = builder.build();
        let model = embedder
            .as_ref()
            .map_or_else(|| NO_MODEL.to_owned(), |(id, _)| format!("{}/{PASSAGES}", id.replace(' ', "_")));
        // What the index was built with: the model and how its documents are laid out.
        let model = format!("{model}/{LAYOUT}");
        let system = |what: &str, e: &dyn std::fmt::Display| {
            failed(tantivy::TantivyError::SystemError(format!("{what}: {e}")))
        };
        // The index is derived from the log: one made with another schema or another embedding
        // model (whose vectors would not compare with this one's) is dropped and rebuilt.
        let open = || -> Result<(Index, Option<u64>), tantivy::TantivyError> {
            std::fs::create_dir_all(dir).map_err(|e| tantivy::TantivyError::SystemError(e.to_string()))?;
            let directory = tantivy::directory::MmapDirectory::open(dir)
                .map_err(|e| tantivy::TantivyError::SystemError(e.to_string()))?;
            let index = Index::open_or_create(directory, schema.clone())?;
            // No payload: nothing committed yet. Otherwise "NEXT MODEL".
            let next = match index.load_metas()?.payload {
                None => Some(0),
                Some(payload) => payload
                    .split_once(' ')
                    .filter(|(_, built_with)| *built_with == model)
                    .and_then(|(next, _)| next.parse::<u64>().ok()),
            };
            Ok((index, next))
        };
        let (index, next) = match open() {
            Ok((index, Some(next))) => (index, next),
            _ => {
                tracing::info!(dir = %dir.display(), model, "rebuilding the search index from the log");
                std::fs::remove_dir_all(dir).or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(system("clearing it to rebuild", &e)),
                })?;
                let (index, _) = open().map_err(failed)?;
                (index, 0)
            }
        };
        let writer = index.writer_with_num_threads(1, 64 << 20).map_err(failed)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(failed)?;
        let search = SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            embedder: embedder.map(|(_, model)| model),
            model,
            vectors: RwLock::new(Vectors::default()),
            next: std::sync::atomic::AtomicU64::new(next),
            sweeps: std::sync::atomic::AtomicU32::new(0),
        };
        search.load_vectors()?;
        Ok(search)
    }

    /// The entries indexed so far (the next log index to read).
    pub fn indexed(&self) -> u64 {
        self.next.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether vectors are searched (an embedding model is loaded).
    pub fn has_vectors(&self) -> bool {
        self.embedder.is_some()
    }

    fn load_vectors(&self) -> Result<(), SearchError> {
        let searcher = self.reader.searcher();
        let mut vectors = self.vectors.write().unwrap_or_else(|e| e.into_inner());
        for address in searcher.search(&AllQuery, &DocSetCollector)? {
            let doc: TantivyDocument = searcher.doc(address)?;
            let text = |field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let Some(bytes) = doc.get_first(self.fields.vector).and_then(|v| v.as_bytes()) else { continue };
            let vector: Vec<f32> =
                bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let width = self.embedder.as_ref().map_or(vector.len(), |e| e.dim);
            vectors.insert(
                Slot {
                    cid: text(self.fields.cid),
                    registers: doc
                        .get_all(self.fields.register)
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    language: text(self.fields.language),
                    depositor: text(self.fields.depositor),
                    consent: text(self.fields.consent),
                    alive: true,
                },
                width,
                &vector,
            );
        }
        Ok(())
    }

    /// Indexes what the log holds past what was indexed: deposits that may be found are added,
    /// texts withdrawn, removed or narrowed out of reach are deleted. Returns the entries read.
    pub fn catch_up(&self, reader: &Reader) -> Result<u64, SearchError> {
        let mut read = 0;
        loop {
            match self.step(reader)? {
                0 => return Ok(read),
                n => read += n,
            }
        }
    }

    /// Indexes at most one step of entries past what was indexed; returns how many were read
    /// (0 when the index is current).
    pub fn step(&self, reader: &Reader) -> Result<u64, SearchError> {
        use std::sync::atomic::Ordering;
        if self.sweeps.load(Ordering::Relaxed) > 0 {
            self.sweeps.fetch_sub(1, Ordering::Relaxed);
            let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            writer.garbage_collect_files().wait()?;
        }
        let head = reader.tree_head().0;
        let mut read = 0;
        if self.indexed() < head {
            let start = self.indexed();
            let entries = reader.entries(start, STEP.min(head - start))?;
            if entries.is_empty() {
                return Ok(0);
            }
            let mut added: Vec<(DepositRecord, String)> = Vec::new();
            let mut touched: BTreeSet<Cid> = BTreeSet::new();
            for entry in &entries {
                let Ok(signed) = SignedEvent::open_logged(&entry.envelope) else { continue };
                match &signed.event {
                    Event::Deposit(d) => {
                        let Some(cid) = &d.cid else { continue };
                        if !findable(d.consent) {
                            continue;
                        }
                        // As the ledger holds it now: it may be gone or narrowed since.
                        let Ok(record) = reader.deposit(&cid.to_string()) else { continue };
                        if record.status.is_gone() || !findable(record.consent) {
                            continue;
                        }
                        if let Some(text) = reader.content(cid)? {
                            added.push((record, String::from_utf8_lossy(&text).into_owned()));
                        }
                    }
                    event => {
                        // A narrowed or ended consent takes the text out; a widened one brings it in.
                        for cid in touched_by(event, reader) {
                            let record = reader.deposit(&cid.to_string()).ok();
                            let content = match &record {
                                Some(r) if !r.status.is_gone() && findable(r.consent) => {
                                    reader.content(&cid)?
                                }
                                _ => None,
                            };
                            match (record, content) {
                                (Some(record), Some(text)) => {
                                    added.retain(|(r, _)| r.cid != cid);
                                    added.push((record, String::from_utf8_lossy(&text).into_owned()));
                                }
                                _ => {
                                    added.retain(|(r, _)| r.cid != cid);
                                    touched.insert(cid);
                                }
                            }
                        }
                    }
                }
            }
            let end = start + entries.len() as u64;
            self.apply(added, touched, reader, end)?;
            read += entries.len() as u64;
        }
        Ok(read)
    }

    fn apply(
        &self,
        added: Vec<(DepositRecord, String)>,
        touched: BTreeSet<Cid>,
        reader: &Reader,
        end: u64,
    ) -> Result<(), SearchError> {
        // Each text's passages, embedded together: their vectors one after the other.
        let vectors: Vec<Option<Vec<f32>>> = match &self.embedder {
            Some(embedder) => added
                .iter()
                .map(|(_, text)| Ok(Some(embedder.embed(&passages(text))?.concat())))
                .collect::<Result<_, SearchError>>()?,
            None => vec![None; added.len()],
        };
        let width = self.embedder.as_ref().map_or(0, |e| e.dim);
        let f = &self.fields;
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut removed = Vec::new();
        for cid in &touched {
            let keep =
                reader.deposit(&cid.to_string()).is_ok_and(|r| !r.status.is_gone() && findable(r.consent));
            if !keep {
                writer.delete_term(Term::from_field_text(f.cid, &cid.to_string()));
                removed.push(cid.to_string());
            }
        }
        let mut inserted = Vec::new();
        for ((record, text), vector) in added.into_iter().zip(vectors) {
            let cid = record.cid.to_string();
            writer.delete_term(Term::from_field_text(f.cid, &cid));
            let mut document = doc!(
                f.cid => cid.clone(),
                f.title => record.title.clone(),
                f.text => text,
                f.register => record.register.as_str(),
                f.language => record.language.clone(),
                f.depositor => record.depositor.clone(),
                f.consent => record.consent.as_str(),
            );
            // The primary register first (what a hit shows), then the secondary ones, which a
            // register filter finds as well.
            for secondary in &record.secondary_registers {
                document.add_text(f.register, secondary.as_str());
            }
            if let Some(vector) = &vector {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                document.add_bytes(f.vector, &bytes);
            }
            writer.add_document(document)?;
            if let Some(vector) = vector {
                inserted.push((record, vector));
            }
        }
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&format!("{end} {}", self.model));
        commit.commit()?;
        if !removed.is_empty() {
            self.purge(&mut writer)?;
        }
        drop(writer);
        self.reader.reload()?;
        let mut held = self.vectors.write().unwrap_or_else(|e| e.into_inner());
        for cid in removed {
            held.remove(&cid);
        }
        for (record, vector) in inserted {
            held.insert(
                Slot {
                    cid: record.cid.to_string(),
                    registers: registers_of(&record),
                    language: record.language.clone(),
                    depositor: record.depositor.clone(),
                    consent: record.consent.as_str().to_owned(),
                    alive: true,
                },
                width,
                &vector,
            );
        }
        self.next.store(end, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// The texts that best answer `query` under `filters`, ranked by `mode`, at most `limit`
    /// (up to [`MOST_HITS`]); each hit is checked against the ledger as it is now.
    pub fn search(
        &self,
        query: &str,
        filters: &Filters,
        mode: Mode,
        limit: usize,
        reader: &Reader,
    ) -> Result<Vec<Hit>, SearchError> {
        let limit = limit.clamp(1, MOST_HITS);
        let searcher = self.reader.searcher();
        let f = &self.fields;
        let mut parser = QueryParser::for_index(&self.index, vec![f.title, f.text]);
        parser.set_field_boost(f.title, 2.0);
        let (parsed, _) = parser.parse_query_lenient(query);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, parsed.box_clone())];
        let exact = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
        };
        for (field, value) in [
            (f.register, &filters.register),
            (f.language, &filters.language),
            (f.depositor, &filters.depositor),
        ] {
            if let Some(value) = value {
                clauses.push((Occur::Must, exact(field, value)));
            }
        }
        if !filters.include_commons {
            clauses.push((Occur::Must, exact(f.consent, ConsentTier::Public.as_str())));
        }
        let mut bm25: Vec<String> = Vec::new();
        if mode != Mode::Vector {
            let top =
                searcher.search(&BooleanQuery::new(clauses), &TopDocs::with_limit(DEPTH).order_by_score())?;
            for (_, address) in top {
                let doc: TantivyDocument = searcher.doc(address)?;
                let cid = doc.get_first(f.cid).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                bm25.push(cid);
            }
        }
        let mut nearest: Vec<(String, usize)> = Vec::new();
        if mode != Mode::Bm25
            && let Some(embedder) = &self.embedder
        {
            let vector = embedder.embed(&[query.to_owned()])?.pop().unwrap_or_default();
            let held = self.vectors.read().unwrap_or_else(|e| e.into_inner());
            let keep = |slot: &Slot| {
                filters.register.as_ref().is_none_or(|r| slot.registers.contains(r))
                    && filters.language.as_ref().is_none_or(|l| *l == slot.language)
                    && filters.depositor.as_ref().is_none_or(|d| *d == slot.depositor)
                    && (filters.include_commons || slot.consent == ConsentTier::Public.as_str())
            };
            nearest = held.nearest(&vector, DEPTH, keep);
        }
        // Reciprocal rank fusion of the two rankings (or one of them alone).
        let mut fused: HashMap<String, Fused> = HashMap::new();
        for (rank, cid) in bm25.iter().enumerate() {
            let entry = fused.entry(cid.clone()).or_default();
            entry.score += 1.0 / (RRF_K + rank as f64 + 1.0);
            entry.bm25 = Some(rank + 1);
        }
        for (rank, (cid, passage)) in nearest.iter().enumerate() {
            let entry = fused.entry(cid.clone()).or_default();
            entry.score += 1.0 / (RRF_K + rank as f64 + 1.0);
            entry.vector = Some(rank + 1);
            entry.passage = Some(*passage);
        }
        let mut ranked: Vec<(String, Fused)> = fused.into_iter().collect();
        ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then_with(|| a.0.cmp(&b.0)));
        let snippets = SnippetGenerator::create(&searcher, &*parsed, f.text).ok();
        let mut hits = Vec::new();
        for (cid, Fused { score, bm25: bm25_rank, vector: vector_rank, passage }) in ranked {
            if hits.len() == limit {
                break;
            }
            // The ledger decides, as it is now: a text withdrawn a moment ago is not found.
            let Ok(deposit) = reader.deposit(&cid) else { continue };
            if deposit.status.is_gone()
                || !findable(deposit.consent)
                || (deposit.consent == ConsentTier::Commons && !filters.include_commons)
            {
                continue;
            }
            // The text from the ledger too: the index keeps only its words.
            let Some(bytes) = reader.content(&deposit.cid)? else { continue };
            let text = String::from_utf8_lossy(&bytes);
            let snippet = match &snippets {
                Some(generator) => generator.snippet(&text).fragment().to_owned(),
                None => String::new(),
            };
            // Where the words did not match, the passage whose meaning did (or the beginning).
            let snippet = if snippet.is_empty() {
                let start = passage.and_then(|p| passage_spans(&text).get(p).map(|span| span.0)).unwrap_or(0);
                text[start..].chars().take(150).collect()
            } else {
                snippet
            };
            hits.push(Hit { deposit, score, bm25_rank, vector_rank, snippet });
        }
        Ok(hits)
    }

    /// Rewrites every segment that holds deleted documents without them, and deletes the old
    /// files: a text taken out of reach leaves none of its words or its vector in the index.
    fn purge(&self, writer: &mut IndexWriter) -> Result<(), SearchError> {
        for _ in 0..100 {
            let stale: Vec<tantivy::index::SegmentId> = self
                .index
                .searchable_segment_metas()?
                .iter()
                .filter(|m| m.has_deletes())
                .map(|m| m.id())
                .collect();
            if stale.is_empty() {
                break;
            }
            // A merge the writer began on its own holds some of them: wait for it and try again.
            if writer.merge(&stale).wait().is_err() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        self.reader.reload()?;
        writer.garbage_collect_files().wait()?;
        self.sweeps.store(SWEEPS, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// The deposits an entry other than a deposit may have taken out of reach or brought into it: a
/// withdrawal or a consent change names its deposit; a decision, the deposits it removed or ruled on; a ruling,
/// its dispute's deposit (a relabelling too: the index files a text under its register).
fn touched_by(event: &Event, reader: &Reader) -> Vec<Cid> {
    let disputed = |id: u64| reader.governance().ok().and_then(|g| g.dispute(id).map(|d| d.cid.clone()));
    match event {
        Event::Withdrawal(_) | Event::ConsentChange(_) => event.cid().cloned().into_iter().collect(),
        Event::Decision(d) => d
            .effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Removed { cid } => Some(cid.clone()),
                // A relabelling changes what a register filter finds; the others, whether it is found.
                Effect::Ruling { dispute, .. } => disputed(*dispute),
                _ => None,
            })
            .collect(),
        Event::DisputeRuling(r) if !matches!(r.ruling, Ruling::Dismiss) => {
            disputed(r.dispute).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::dot;

    #[test]
    fn the_lane_wise_dot_product_is_the_plain_one() {
        for width in [0, 1, 15, 16, 17, 384, 385] {
            let a: Vec<f32> = (0..width).map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0).collect();
            let b: Vec<f32> = (0..width).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-4, "width {width}");
        }
    }
}

#[cfg(test)]
mod passage_tests {
    use super::{MOST_PASSAGES, PASSAGE_WORDS, passages};

    #[test]
    fn a_long_text_is_embedded_as_passages_spread_over_it() {
        assert_eq!(passages("one two three"), ["one two three"]);
        assert_eq!(passages("   "), [""]);
        let words: Vec<String> = (0..PASSAGE_WORDS * 3 + 5).map(|i| format!("w{i}")).collect();
        let three = passages(&words.join(" "));
        assert_eq!(three.len(), 4);
        assert!(three[3].starts_with(&format!("w{}", PASSAGE_WORDS * 3)), "{}", three[3]);
        let long: Vec<String> = (0..PASSAGE_WORDS * MOST_PASSAGES * 3).map(|i| format!("w{i}")).collect();
        let spread = passages(&long.join(" "));
        assert_eq!(spread.len(), MOST_PASSAGES);
        // The spans are the passages' places in the text itself, whitespace kept.
        let text = "  alpha\n beta   gamma ";
        let spans = super::passage_spans(text);
        assert_eq!(spans.len(), 1);
        assert_eq!(&text[spans[0].0..spans[0].1], "alpha\n beta   gamma");
        assert!(
            spread
                .last()
                .is_some_and(|p| p.starts_with(&format!("w{}", PASSAGE_WORDS * (MOST_PASSAGES * 3 - 3))))
        );
    }
}

/// A deposit's primary register, then its secondary ones.
fn registers_of(record: &DepositRecord) -> Vec<String> {
    std::iter::once(record.register.as_str().to_owned())
        .chain(record.secondary_registers.iter().map(|r| r.as_str().to_owned()))
        .collect()
}
