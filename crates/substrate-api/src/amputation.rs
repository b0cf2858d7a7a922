//! A deposit's score from the latest amputation audit (`substrate audit amputation`): how CCNet's
//! perplexity filter would treat its text, read from the report the audit kept in the data
//! directory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::http::StatusCode;
use serde_json::{Value, json};
use substrate_store::DataDir;
use substrate_training::amputation::{self, Report};

use crate::ApiError;

/// The report last read, with the file's modification time and size: read again when they change.
struct Cached {
    /// The file, its modification time and its size: a node in a process of its own has one
    /// data directory, but tests and tools may open several.
    stamp: (std::path::PathBuf, SystemTime, u64),
    report: Arc<Report>,
    by_cid: HashMap<String, usize>,
}

static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

/// `{perplexity, bucket, …, cutoffs, reference}` for `cid`, or `{scored: false, reason}` when the
/// latest audit did not score it; 404 `no_ccnet_scores` when no audit has run here.
pub(crate) fn ccnet_score(dir: &DataDir, cid: &str) -> Result<Value, ApiError> {
    let path = dir.root().join(amputation::SCORES_FILE);
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_ccnet_scores",
            "this node has not run the amputation audit; `substrate audit amputation --data-dir DIR` scores every eligible deposit and keeps the scores here",
        )
    };
    let meta = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(ApiError::internal(&e)),
        Ok(m) => m,
    };
    let stamp = (path.clone(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if cache.as_ref().is_none_or(|c| c.stamp != stamp) {
        let report = amputation::read_scores(dir)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ccnet_scores_unreadable",
                    format!("the amputation audit's scores on this node cannot be read ({e}); its operator runs `substrate audit amputation` again"),
                )
            })?
            .ok_or_else(missing)?;
        let by_cid = report.deposits.iter().enumerate().map(|(i, d)| (d.cid.clone(), i)).collect();
        *cache = Some(Cached { stamp, report: Arc::new(report), by_cid });
    }
    let Some(cached) = cache.as_ref() else { return Err(missing()) };
    let report = &cached.report;
    let audit = json!({
        "log_size": report.log_size,
        "head_cutoff": report.head_cutoff,
        "tail_cutoff": report.tail_cutoff,
        "thresholds": report.thresholds,
        "reference": {
            // The file's name: where it sits on the operator's machine is not the API's business.
            "source": std::path::Path::new(&report.reference.source).file_name().map(|n| n.to_string_lossy().into_owned()),
            "language": report.reference.language,
            "order": report.reference.order,
            "tokens": report.reference.tokens,
        },
    });
    let Some(&i) = cached.by_cid.get(cid) else {
        return Ok(json!({
            "scored": false,
            "reason": format!(
                "the latest audit (of the log's first {} entries) did not score this deposit: it came later, or was not eligible then; run `substrate audit amputation` again",
                report.log_size
            ),
            "audit": audit,
        }));
    };
    let d = &report.deposits[i];
    let reason = match (d.covered, d.perplexity) {
        (false, _) => Some(format!(
            "the text is in {}, which the reference ({}) does not cover",
            d.language, report.reference.language
        )),
        (true, None) => Some("the text has no words to score".to_owned()),
        _ => None,
    };
    Ok(json!({
        "scored": d.perplexity.is_some(),
        "perplexity": d.perplexity,
        "bucket": d.bucket,
        "dropped_by_ccnet": d.bucket.as_deref() == Some("tail"),
        "tokens": d.tokens,
        "oov": d.oov,
        "reason": reason,
        "audit": audit,
    }))
}
