//! The one place where domain errors become HTTP statuses and `{error, detail}` bodies.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use substrate_core::event::{ContentError, EventError};
use substrate_core::state::Rejection;
use substrate_store::{ReadError, SubmitError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub error: &'static str,
    /// What was wrong and what to do, for people.
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError { status, error, detail: detail.into() }
    }

    pub fn bad_request(error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error, detail)
    }

    /// A failure of ours: logged with its cause, reported without internals.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the node failed to answer; its log says why",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({"error": self.error, "detail": self.detail}))).into_response()
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        let code = match e {
            EventError::Envelope(substrate_core::envelope::EnvelopeError::PayloadType(_)) => {
                "invalid_envelope"
            }
            EventError::Envelope(_) => "bad_signature",
            EventError::EnvelopeTooLarge(_) => "too_large",
            EventError::UnknownPredicate(_) => "unknown_event",
            EventError::SubjectDigest { .. } => "digest_mismatch",
            EventError::Field { field: "size", .. } => "empty_content",
            _ => "invalid_event",
        };
        if matches!(e, EventError::EnvelopeTooLarge(_)) {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, e.to_string());
        }
        ApiError::bad_request(code, e.to_string())
    }
}

impl From<ContentError> for ApiError {
    fn from(e: ContentError) -> Self {
        let code = match e {
            ContentError::Empty => "empty_content",
            ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. } => "digest_mismatch",
            ContentError::NotUtf8(_) => "not_text",
        };
        ApiError::bad_request(code, e.to_string())
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let (status, code) = match &r {
            Rejection::UnknownRegister { .. } => (StatusCode::BAD_REQUEST, "unknown_register"),
            Rejection::AlreadyDeposited { .. } => (StatusCode::CONFLICT, "already_deposited"),
            Rejection::UnknownDeposit(_) => (StatusCode::NOT_FOUND, "unknown_deposit"),
            Rejection::NotDepositor { .. } => (StatusCode::FORBIDDEN, "not_depositor"),
            Rejection::Withdrawn(_) => (StatusCode::GONE, "withdrawn"),
            Rejection::ConsentWidening { .. } => (StatusCode::CONFLICT, "consent_widening"),
            Rejection::ConsentUnchanged { .. } => (StatusCode::CONFLICT, "consent_unchanged"),
            Rejection::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Rejection::NotMember(_) => (StatusCode::FORBIDDEN, "not_member"),
            Rejection::MembershipExpired { .. } => (StatusCode::FORBIDDEN, "membership_expired"),
            Rejection::NotSteward(_) => (StatusCode::FORBIDDEN, "not_steward"),
            Rejection::NotLogKey(_) => (StatusCode::FORBIDDEN, "not_log_key"),
            Rejection::UnknownProposal(_) => (StatusCode::NOT_FOUND, "unknown_proposal"),
            Rejection::UnknownDispute(_) => (StatusCode::NOT_FOUND, "unknown_dispute"),
            Rejection::VotingClosed { .. } => (StatusCode::CONFLICT, "voting_closed"),
            Rejection::Ballot { fault, .. } => (StatusCode::BAD_REQUEST, fault.code()),
            Rejection::Proposal(fault) => (StatusCode::BAD_REQUEST, fault.code()),
            Rejection::DecisionPending { .. } => (StatusCode::CONFLICT, "decision_pending"),
            Rejection::UnregisteredNode(_) => (StatusCode::FORBIDDEN, "unregistered_node"),
            Rejection::NotAMixtureDecision(_) => (StatusCode::BAD_REQUEST, "not_a_mixture_decision"),
            Rejection::SnapshotSize { .. } => (StatusCode::BAD_REQUEST, "snapshot_size"),
            Rejection::SnapshotMismatch { .. } => (StatusCode::CONFLICT, "snapshot_mismatch"),
            Rejection::AdapterPublished { .. } => (StatusCode::CONFLICT, "adapter_published"),
            Rejection::AttestationDays { .. } => (StatusCode::BAD_REQUEST, "attestation_days"),
            Rejection::NodeKeyNotPerson(_) => (StatusCode::CONFLICT, "node_key_not_person"),
            Rejection::RevokedDuplicate(_) => (StatusCode::CONFLICT, "revoked_duplicate"),
            Rejection::SelfAttestation => (StatusCode::FORBIDDEN, "self_attestation"),
            Rejection::MayNotVouch(_) => (StatusCode::FORBIDDEN, "may_not_vouch"),
            Rejection::StewardOnly { .. } => (StatusCode::FORBIDDEN, "steward_only"),
            Rejection::StewardRevocation { .. } => (StatusCode::FORBIDDEN, "steward_revocation_quorum"),
            Rejection::AlreadyRevoked(_) => (StatusCode::CONFLICT, "already_revoked"),
            Rejection::NodeTaken { .. } => (StatusCode::CONFLICT, "node_taken"),
            Rejection::PersonKeyNotNode(_) => (StatusCode::CONFLICT, "person_key_not_node"),
            Rejection::NodeBinding(_) => (StatusCode::BAD_REQUEST, "node_binding"),
            Rejection::AlreadyDecided(_) => (StatusCode::CONFLICT, "already_decided"),
            Rejection::DecisionEarly { .. } => (StatusCode::CONFLICT, "decision_early"),
            Rejection::DisputeRegister => (StatusCode::BAD_REQUEST, "dispute_register"),
            Rejection::AlreadyRuled(_) => (StatusCode::CONFLICT, "already_ruled"),
            Rejection::AlreadyEndorsed(_) => (StatusCode::CONFLICT, "already_endorsed"),
            Rejection::SameRegister { .. } => (StatusCode::CONFLICT, "same_register"),
            Rejection::Compute(fault) => (StatusCode::FORBIDDEN, fault.code()),
            Rejection::Job(fault) => {
                (StatusCode::from_u16(fault.status()).unwrap_or(StatusCode::BAD_REQUEST), fault.code())
            }
            Rejection::Token(fault) => {
                (StatusCode::from_u16(fault.status()).unwrap_or(StatusCode::BAD_REQUEST), fault.code())
            }
            Rejection::Doi(fault) => {
                (StatusCode::from_u16(fault.status()).unwrap_or(StatusCode::BAD_REQUEST), fault.code())
            }
            Rejection::Usage(fault) => {
                (StatusCode::from_u16(fault.status()).unwrap_or(StatusCode::BAD_REQUEST), fault.code())
            }
            Rejection::Duplicate(_) => (StatusCode::CONFLICT, "duplicate"),
            Rejection::DecisionMismatch { .. } => (StatusCode::CONFLICT, "decision_mismatch"),
            Rejection::OutOfOrder { .. } => (StatusCode::CONFLICT, "out_of_order"),
            Rejection::NoGenesis => (StatusCode::CONFLICT, "no_genesis"),
            Rejection::SecondGenesis => (StatusCode::CONFLICT, "second_genesis"),
            Rejection::GenesisSigner { .. } => (StatusCode::FORBIDDEN, "genesis_signer"),
            Rejection::GenesisLogKey(_) => (StatusCode::BAD_REQUEST, "genesis_log_key"),
            Rejection::GenesisSteward { .. } => (StatusCode::BAD_REQUEST, "genesis_steward"),
        };
        ApiError::new(status, code, r.to_string())
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Refused(r) => r.into(),
            SubmitError::Unreachable(detail) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "sequencer_unreachable",
                format!("{detail}; nothing was recorded, try again later or send it to the sequencer"),
            ),
            SubmitError::Storage(ref ledger) => ledger_failure(ledger).unwrap_or_else(|| not_stored(&e)),
            SubmitError::Stopped => not_stored(&e),
        }
    }
}

/// A submission the node could not store for now: retrying later may succeed.
fn not_stored(e: &SubmitError) -> ApiError {
    tracing::error!(error = %e, "submission not stored");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the node could not store the event durably; nothing was recorded, try again later",
    )
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::NotFound(detail) => ApiError::new(StatusCode::NOT_FOUND, "not_found", detail),
            ReadError::BadRequest(detail) => ApiError::bad_request("bad_request", detail),
            ReadError::Ledger(ledger) => {
                ledger_failure(&ledger).unwrap_or_else(|| ApiError::internal(&ledger))
            }
            other => ApiError::internal(&other),
        }
    }
}

/// A failure of the ledger with a code of its own: a 500 whose cause is logged and whose detail
/// says only whether the stored log is damaged. `None` for storage that failed to answer (SQL,
/// I/O), which a read reports as `internal` and a submission as `unavailable`.
fn ledger_failure(e: &substrate_store::LedgerError) -> Option<ApiError> {
    use substrate_store::LedgerError;
    let code = match e {
        LedgerError::MissingEntry { .. } => "missing_entry",
        LedgerError::MalformedLeaf { .. } => "malformed_leaf",
        LedgerError::UnopenableEntry { .. } => "unopenable_entry",
        LedgerError::MalformedHash { .. } => "malformed_hash",
        LedgerError::UnparsableRecord { .. } => "unparsable_record",
        LedgerError::UnparsableCid { .. } => "unparsable_cid",
        LedgerError::UnverifiedCheckpoint { .. } => "unverified_checkpoint",
        LedgerError::CheckpointMismatch { .. } => "checkpoint_mismatch",
        LedgerError::NoStateLine { .. } => "checkpoint_without_state",
        LedgerError::InclusionProof { .. } => "inclusion_proof_failed",
        LedgerError::Tally { .. } => "tally_refused",
        LedgerError::DecisionLogged { .. } => "decision_already_logged",
        LedgerError::DecisionRefused { .. } => "decision_refused",
        LedgerError::RecordsUpgrade { .. } => "records_upgrade_failed",
        LedgerError::Signing { .. } => "checkpoint_signing_failed",
        LedgerError::NoOutcome { .. } => "no_outcome",
        LedgerError::Database { .. }
        | LedgerError::Sql(_)
        | LedgerError::Column(_)
        | LedgerError::Blob(_)
        | LedgerError::Io { .. }
        | LedgerError::AlreadyInitialised(_)
        | LedgerError::NotInitialised(_)
        | LedgerError::LogKey { .. }
        | LedgerError::Genesis(_)
        | LedgerError::Mirror => return None,
    };
    tracing::error!(cause = %e, code, "the ledger failed");
    let detail = if e.is_damage() {
        "the node's stored log is damaged; its operator can find where with `substrate ledger replay --check`"
    } else {
        "the node failed to answer; its log says why"
    };
    Some(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, detail))
}

/// Turns the framework's own plain-text refusals (a path or query that does not parse, a wrong
/// method) into the same `{error, detail}` JSON as every other error.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&body).trim().to_owned();
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let detail =
        if detail.is_empty() { status.canonical_reason().unwrap_or("refused").to_owned() } else { detail };
    ApiError::new(status, code, detail).into_response()
}

/// Every API response is data, never a page: browsers must not sniff it into HTML, and should it
/// be opened as a document anyway, it runs no script and loads nothing (the web pages, merged
/// beside this router, send their own policy).
pub async fn inert(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .insert(axum::http::header::X_CONTENT_TYPE_OPTIONS, axum::http::HeaderValue::from_static("nosniff"));
    headers.entry(axum::http::header::CONTENT_SECURITY_POLICY).or_insert(
        axum::http::HeaderValue::from_static("default-src 'none'; sandbox; frame-ancestors 'none'"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use substrate_core::state::Rejection;
    use substrate_store::{LedgerError, ReadError, ReplayError, SubmitError};

    use super::*;

    /// One of each ledger failure that has a code of its own.
    fn failures() -> Vec<LedgerError> {
        let json = || serde_json::from_str::<u8>("x").expect_err("not json");
        let checkpoint = || substrate_tlog::CheckpointError::MissingNewline;
        vec![
            LedgerError::MissingEntry { index: 7 },
            LedgerError::MalformedLeaf { index: 7, source: substrate_core::entry::EntryError(3) },
            LedgerError::UnopenableEntry {
                index: 7,
                source: Box::new(substrate_core::SignedEvent::open_bytes(b"x").expect_err("no envelope")),
            },
            LedgerError::MalformedHash { column: "leaf hash", index: 7, len: 2 },
            LedgerError::UnparsableRecord { table: substrate_store::ledger::Table::Deposits, source: json() },
            LedgerError::UnparsableCid {
                table: substrate_store::ledger::Table::PendingTexts,
                source: substrate_core::Cid::parse("x").expect_err("not a CID"),
            },
            LedgerError::UnverifiedCheckpoint { source: checkpoint() },
            LedgerError::CheckpointMismatch {
                checkpoint_size: 8,
                checkpoint_root: [1; 32],
                log_size: 7,
                log_root: [2; 32],
            },
            LedgerError::NoStateLine { size: 8 },
            LedgerError::InclusionProof {
                index: 9,
                size: 8,
                source: substrate_tlog::ProofError::IndexOutOfRange { index: 9, size: 8 },
            },
            LedgerError::Tally { proposal: 3, rejection: Box::new(Rejection::UnknownProposal(3)) },
            LedgerError::DecisionLogged { proposal: 3, index: 7 },
            LedgerError::DecisionRefused { proposal: 3, rejection: Box::new(Rejection::UnknownProposal(3)) },
            LedgerError::RecordsUpgrade { source: ReplayError::LogKey("unreadable".into()) },
            LedgerError::Signing { size: 8, source: checkpoint() },
            LedgerError::NoOutcome { position: 0, batch: 1 },
        ]
    }

    /// Whether read or submitted, each failure is a 500 with a code of its own; damage says so
    /// and points at replay, and no detail carries the cause.
    #[test]
    fn ledger_failures_are_500s_with_distinct_codes() {
        let mut codes = std::collections::BTreeSet::new();
        for failure in failures() {
            let cause = failure.to_string();
            let damage = failure.is_damage();
            let shared = Arc::new(failure);
            let submitted = ApiError::from(SubmitError::Storage(Arc::clone(&shared)));
            let read = ApiError::from(ReadError::Ledger(Arc::into_inner(shared).expect("one owner")));
            for api in [&read, &submitted] {
                assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR, "{cause}");
                assert_ne!(api.error, "internal", "{cause}");
                assert_eq!(api.detail.contains("replay --check"), damage, "{cause}: {}", api.detail);
                assert!(!api.detail.contains(&cause), "{cause}");
            }
            assert_eq!(read.error, submitted.error);
            assert!(codes.insert(read.error), "{} is used twice", read.error);
        }
    }

    /// Storage that merely failed to answer keeps its old answers: `internal` for a read, a
    /// retryable `unavailable` for a submission.
    #[test]
    fn storage_that_failed_to_answer_has_no_code_of_its_own() {
        let io = || LedgerError::Io { path: "blobs".into(), source: std::io::Error::other("disk full") };
        assert_eq!(ApiError::from(ReadError::Ledger(io())).error, "internal");
        let submitted = ApiError::from(SubmitError::Storage(Arc::new(io())));
        assert_eq!((submitted.status, submitted.error), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    }
}
