//! The HTTP API of a commons node: `/v1` JSON, the OpenAPI document, C2SP tlog-tiles reads,
//! `/health`, and the web pages `substrate-web` renders. The only crate that knows HTTP.

mod adapters;
mod amputation;
mod error;
mod generation;
mod governance;
mod jobs;
pub mod metering;
mod ollama;
pub mod openai;
mod routes;
mod search;
pub mod signatures;
mod tiles;
mod web;

pub use error::ApiError;
pub use openai::Inference;
pub use routes::{AppState, MeshView, router};

/// The OpenAPI 3.1 document describing every route.
pub const OPENAPI: &str = include_str!("openapi.json");

/// How much of a request's head (request line and headers) the HTTP layer reads before it gives
/// up with a bare 431 of its own. Set well past the limits the API enforces itself (16 KiB of
/// request target, 64 KiB of headers), so that a request past those gets the API's
/// `{error, detail}` answer; only a head past this one does not.
const MAX_HEAD_BYTES: usize = 1536 * 1024;

/// Serves `state` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max_deposit_bytes = state.max_deposit_bytes;
    // What members' requests use goes to the log every little while, and once more at the end.
    let (stop_reports, reports_stop) = tokio::sync::oneshot::channel::<()>();
    let reports = state.inference.as_ref().map(|inference| {
        tokio::spawn(metering::report_usage(
            inference.meter(),
            state.reader.clone(),
            state.sequencer.clone(),
            async {
                let _ = reports_stop.await;
            },
        ))
    });
    let app = router(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(MAX_HEAD_BYTES);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted: the
                    // listener is fine; wait a moment rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The size limits are checked here rather than as a router layer, which cost a fifth of
        // the node's CPU per deposit.
        let router = hyper_util::service::TowerToHyperService::new(app.clone());
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let answer = match routes::oversized(request.uri(), request.headers(), max_deposit_bytes) {
                Some(refusal) => Err(refusal),
                None => Ok(hyper::service::Service::call(&router, request)),
            };
            async move {
                match answer {
                    Ok(routed) => routed.await,
                    Err(refusal) => Ok(refusal),
                }
            }
        });
        let connection =
            connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    let _ = stop_reports.send(());
    if let Some(reports) = reports {
        let _ = reports.await;
    }
    Ok(())
}
