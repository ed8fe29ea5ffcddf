//! A minimal HTTP/1.1 server loop on hyper, shared by the Runtime API and the gateway.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A response body.
pub type Body = Full<Bytes>;

/// A JSON or empty response.
pub fn response(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}

/// Reads a request body whole, up to `limit` bytes.
///
/// # Errors
/// A message if the body cannot be read or is too large.
pub async fn read_body(
    request: Request<Incoming>,
    limit: usize,
) -> Result<(hyper::http::request::Parts, Bytes), String> {
    let (parts, body) = request.into_parts();
    let bytes = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((parts, bytes))
}

/// Binds 127.0.0.1:`port` (0 for any free port).
///
/// # Errors
/// If the port cannot be bound.
pub async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let address = listener.local_addr()?;
    Ok((listener, address))
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// Serves connections with `handler` until `shutdown` turns true, then drops the
/// open connections too (a pending request's future is cancelled).
pub async fn serve<H, F>(listener: TcpListener, handler: H, shutdown: watch::Receiver<bool>)
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    serve_or_drop(
        listener,
        move |request| {
            let answer = handler(request);
            async move { Some(answer.await) }
        },
        shutdown,
    )
    .await;
}

/// The connection was dropped on purpose, without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped without an answer")
    }
}

impl std::error::Error for Dropped {}

/// Like [`serve`], but a handler that answers `None` drops the connection without a
/// response: the client sees the connection close mid-request, as after a reset.
pub async fn serve_or_drop<H, F>(
    listener: TcpListener,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Option<Response<Body>>> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handler = Arc::clone(&handler);
                let mut stop = shutdown.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let handler = Arc::clone(&handler);
                        async move { handler(request).await.ok_or(Dropped) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    // Shutting down drops open connections with their pending requests.
                    tokio::select! {
                        _ = connection => {}
                        () = stopped(&mut stop) => {}
                    }
                });
            }
            () = stopped(&mut shutdown) => break,
        }
    }
}
