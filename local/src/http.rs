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
pub async fn serve_or_drop<H, F>(listener: TcpListener, handler: H, shutdown: watch::Receiver<bool>)
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Option<Response<Body>>> + Send + 'static,
{
    serve_io(listener, handler, shutdown, |stream| stream).await;
}

/// Like [`serve`], but requests the HTTP layer cannot parse (a raw `<` or space in
/// the path, a bad header, a URI or headers too long) are answered with a JSON body
/// ([`JsonRejections`]) instead of hyper's empty one.
pub async fn serve_json<H, F>(listener: TcpListener, handler: H, shutdown: watch::Receiver<bool>)
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    serve_io(
        listener,
        move |request| {
            let answer = handler(request);
            async move { Some(answer.await) }
        },
        shutdown,
        JsonRejections::new,
    )
    .await;
}

async fn serve_io<H, F, W, IO>(
    listener: TcpListener,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    wrap: W,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Option<Response<Body>>> + Send + 'static,
    W: Fn(tokio::net::TcpStream) -> IO,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let stream = wrap(stream);
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

/// A connection whose automatic HTTP-layer rejections get a JSON body.
///
/// hyper answers a request it cannot parse itself (400, 414 URI too long, 431 headers
/// too large) with an empty body and closes the connection; API Gateway's clients
/// expect JSON. Every other answer on the connection comes from a handler and always
/// has a body, so an answer with a 4xx status, `content-length: 0` and no
/// `content-type` is one of hyper's, and is replaced as it is written. (The writes are
/// not vectored, so hyper hands over each answer whole.)
#[derive(Debug)]
pub struct JsonRejections<S> {
    inner: S,
    /// A replacement being written, how much of it is out, and what to report written.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<S> JsonRejections<S> {
    /// Wraps a connection.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            replacing: None,
        }
    }
}

/// The JSON answer that replaces hyper's empty rejection `head`, if it is one.
pub fn json_rejection(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head.get(..head.len().min(512))?).ok()?;
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let lower = text.to_ascii_lowercase();
    let empty = lower.contains("\r\ncontent-length: 0\r\n") && !lower.contains("content-type");
    let message = match status {
        "400" => "Bad Request: the request line or a header is malformed",
        "414" => "Request-URI Too Long",
        "431" => "Request Header Fields Too Large",
        _ => return None,
    };
    if !empty {
        return None;
    }
    let body = serde_json::json!({ "message": message }).to_string();
    let reason = text.split("\r\n").next()?.get(13..).unwrap_or_default();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nx-amzn-errortype: BadRequestException\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for JsonRejections<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for JsonRejections<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        if self.replacing.is_none()
            && let Some(replacement) = json_rejection(buf)
        {
            self.replacing = Some((replacement, 0, buf.len()));
        }
        let this = &mut *self;
        let Some((replacement, written, reported)) = &mut this.replacing else {
            return std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        while *written < replacement.len() {
            match std::pin::Pin::new(&mut this.inner).poll_write(cx, &replacement[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let reported = *reported;
        this.replacing = None;
        Poll::Ready(Ok(reported))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_rejections_are_replaced() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 18:00:00 GMT\r\n\r\n";
        let replaced = String::from_utf8(json_rejection(hyper_400).unwrap()).unwrap();
        assert!(
            replaced.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{replaced}"
        );
        let body = replaced.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["message"].as_str().unwrap().starts_with("Bad Request"));
        assert!(replaced.contains(&format!("content-length: {}\r\n", body.len())));
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(json_rejection(hyper_431).is_some());
        // A handler's answers are left alone: they have bodies and a content-type.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{\"error\":\"X\"}";
        assert!(json_rejection(ours).is_none());
        let no_content = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
        assert!(json_rejection(no_content).is_none());
    }
}
