//! C2SP tlog-tiles read endpoints: `/tile/<L>/<N>[.p/<W>]` and `/tile/entries/<N>[.p/<W>]`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use substrate_tlog::TilePath;

use crate::ApiError;
use crate::routes::{AppState, blocking};

pub async fn tile(State(app): State<AppState>, Path(path): Path<String>) -> Result<Response, ApiError> {
    let tile = substrate_tlog::parse_tile_path(&path)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("not a tile path: {e}")))?;
    let full = match &tile {
        TilePath::Hashes { width, .. } | TilePath::Entries { width, .. } => width.is_none(),
    };
    let bytes = blocking(&app.reader, move |r| {
        Ok(match tile {
            TilePath::Hashes { level, index, width } => r.tile(level, index, width)?,
            TilePath::Entries { index, width } => r.entry_bundle(index, width)?,
        })
    })
    .await?;
    // Full tiles never change; partial ones are replaced as the log grows.
    let cache = if full { "public, max-age=31536000, immutable" } else { "no-cache" };
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, cache)], bytes)
        .into_response())
}
