//! The HTTP parser's own refusals in the error shape (`docs/errors.md`). hyper answers a
//! request head it cannot parse itself, before any service sees a request: 400 for a
//! malformed request line or header, 414 for a path too long, 431 for headers too many
//! or too large. It writes them with an empty body and offers no hook to change that.
//! [`ParseRefusals`] wraps a connection's socket and swaps exactly those answers,
//! recognised by the form only hyper gives them, for the same status with an error body;
//! every other byte passes through untouched.
//!
//! On AWS, API Gateway answers such requests itself (with the gateway responses in
//! `template.yaml`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::StatusCode;
use llm_proxy_shared::error::ApiError;
use llm_proxy_shared::layers::SECURITY_HEADERS;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's socket, with hyper's refusals rewritten on their way out.
pub struct ParseRefusals<T> {
    inner: T,
    /// What the socket has yet to take of the rewritten refusal. hyper was told its own
    /// answer was written whole, so this must drain before anything else.
    answer: Bytes,
}

impl<T> ParseRefusals<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            answer: Bytes::new(),
        }
    }
}

impl<T: AsyncWrite + Unpin> ParseRefusals<T> {
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.answer.has_remaining() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.answer))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.answer.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `written` in place of hyper's refusal and starts sending it.
    fn replace(
        &mut self,
        cx: &mut Context<'_>,
        written: usize,
        answer: Bytes,
    ) -> io::Result<usize> {
        self.answer = answer;
        // Whatever the socket does not take now is sent on hyper's flush or shutdown,
        // both of which follow a refusal.
        if let Poll::Ready(Err(error)) = self.poll_answer(cx) {
            return Err(error);
        }
        Ok(written)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ParseRefusals<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParseRefusals<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_answer(cx))?;
        if let Some(answer) = rewritten(buf) {
            return Poll::Ready(this.replace(cx, buf.len(), answer));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_answer(cx))?;
        // A refusal is a head alone, so it comes as one slice.
        let mut filled = bufs.iter().filter(|slice| !slice.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && let Some(answer) = rewritten(only)
        {
            return Poll::Ready(this.replace(cx, only.len(), answer));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_answer(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_answer(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The error-shaped answer for `written`, if it is one of hyper's refusals: a whole
/// response head and nothing more, whose headers are exactly the `connection: close`,
/// `content-length: 0` and `date` hyper gives it. The proxy's own answers always carry
/// a content type and the security headers, so none of them matches.
fn rewritten(written: &[u8]) -> Option<Bytes> {
    // Most writes are bodies or the proxy's own heads: out on the first bytes.
    if !written.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; 3];
    let mut head = httparse::Response::new(&mut headers);
    match head.parse(written) {
        Ok(httparse::Status::Complete(length)) if length == written.len() => {}
        _ => return None,
    }
    let [connection, content_length, date] = head.headers else {
        return None;
    };
    let hyper_own = connection.name.eq_ignore_ascii_case("connection")
        && connection.value == b"close"
        && content_length.name.eq_ignore_ascii_case("content-length")
        && content_length.value == b"0"
        && date.name.eq_ignore_ascii_case("date");
    if !hyper_own {
        return None;
    }
    let (status, field, message) = match head.code? {
        400 => (
            StatusCode::BAD_REQUEST,
            "request",
            "the request line or a header is not valid HTTP/1.1",
        ),
        414 => (
            StatusCode::URI_TOO_LONG,
            "path",
            "the request's path and query are too long",
        ),
        431 => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers",
            "the request's headers are too many or too large",
        ),
        _ => return None,
    };
    tracing::info!(
        status = status.as_u16(),
        "request head refused by the HTTP parser"
    );
    let error = ApiError::RequestHead {
        status,
        field,
        message,
    };
    Some(answer(&error, date.value))
}

/// `error` as a whole HTTP/1.1 answer: the head hyper would write, with a content type
/// and the security headers, then the error's body.
pub(crate) fn answer(error: &ApiError, date: &[u8]) -> Bytes {
    let status = error.status();
    let body = error.body().to_string();
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(b"date: ");
    answer.extend_from_slice(date);
    answer.extend_from_slice(b"\r\n");
    answer.extend_from_slice(b"x-request-id: ");
    answer.extend_from_slice(llm_proxy_shared::request_id::made().as_bytes());
    answer.extend_from_slice(b"\r\n");
    for (name, value) in &SECURITY_HEADERS {
        answer.extend_from_slice(name.as_str().as_bytes());
        answer.extend_from_slice(b": ");
        answer.extend_from_slice(value.as_bytes());
        answer.extend_from_slice(b"\r\n");
    }
    answer.extend_from_slice(b"\r\n");
    answer.extend_from_slice(body.as_bytes());
    answer.into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails loudly")]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    const REFUSAL: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 22:07:29 GMT\r\n\r\n";

    /// A socket that takes at most 7 bytes a write, as a slow peer's would.
    #[derive(Default)]
    struct Trickle(Vec<u8>);

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn split(answer: &[u8]) -> (String, serde_json::Value) {
        let at = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(answer[..at].to_vec()).unwrap();
        (head, serde_json::from_slice(&answer[at + 4..]).unwrap())
    }

    #[tokio::test]
    async fn a_refusal_trickled_out_arrives_whole_in_the_error_shape() {
        let mut socket = ParseRefusals::new(Trickle::default());
        socket.write_all(REFUSAL).await.unwrap();
        socket.shutdown().await.unwrap();
        let (head, body) = split(&socket.inner.0);
        assert!(
            head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\ndate: Sun, 29 Nov 2026 22:07:29 GMT\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\nx-content-type-options: nosniff"),
            "{head}"
        );
        let length = format!("\r\ncontent-length: {}\r\n", body.to_string().len());
        assert!(head.contains(&length), "{head}");
        assert_eq!(body["error"]["code"], 431);
        assert_eq!(body["error"]["type"], "validation");
        assert_eq!(body["error"]["details"]["field"], "headers");
    }

    #[tokio::test]
    async fn every_other_write_passes_through_untouched() {
        let own_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\ndate: x\r\n\r\n{}";
        let with_body = [REFUSAL, b"{}"].concat();
        let success =
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        for written in [
            &own_400[..],
            &with_body,
            success,
            b"0\r\n\r\n",
            &REFUSAL[..40],
        ] {
            let mut socket = ParseRefusals::new(Trickle::default());
            socket.write_all(written).await.unwrap();
            assert_eq!(
                socket.inner.0,
                written,
                "{}",
                String::from_utf8_lossy(written)
            );
        }
    }
}
