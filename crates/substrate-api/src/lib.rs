//! The HTTP API of a commons node: `/v1` JSON, the OpenAPI document, C2SP tlog-tiles reads and
//! `/health`. The only crate that knows HTTP.

mod adapters;
mod error;
mod governance;
mod routes;
mod tiles;

pub use error::ApiError;
pub use routes::{AppState, MeshView, router};

/// The OpenAPI 3.1 document describing every route.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Serves `state` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
