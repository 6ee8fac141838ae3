//! The load generator: a closed-loop HTTP/1.1 client that does as little as it can. A
//! request is serialised once; a response is read as bytes and only the status line,
//! `Content-Length` and chunk sizes are parsed, so the client's own CPU (which shares
//! the machine with the servers it measures) stays small and alike for every target.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request, serialised once. It carries a key as an SDK's would: the mock wants one,
/// the proxy ignores it (it sends its own).
pub fn post(addr: SocketAddr, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         authorization: Bearer bench\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub fn get(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").into_bytes()
}

/// When a streamed answer's parts arrived.
pub struct StreamTimes {
    /// The first bytes of the response (its head).
    pub first_byte: Instant,
    /// Each complete SSE event (`\n\n`-terminated), comments included.
    pub events: Vec<Instant>,
    /// The events themselves, to tell comments from `data:` events.
    pub data: Vec<u8>,
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

enum Framing {
    Length(usize),
    Chunked,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends `request` and reads the whole response; returns its status.
    pub async fn request(&mut self, request: &[u8]) -> io::Result<u16> {
        self.stream.write_all(request).await?;
        let (status, head_len, framing) = self.read_head().await?;
        match framing {
            Framing::Length(len) => {
                while self.buf.len() < head_len + len {
                    self.fill().await?;
                }
                self.buf.drain(..head_len + len);
            }
            Framing::Chunked => {
                self.buf.drain(..head_len);
                let mut body = Vec::new();
                while !self.decode_chunks(&mut body)? {
                    self.fill().await?;
                }
            }
        }
        Ok(status)
    }

    /// Sends `request` and reads a streamed (chunked) answer, noting when each event
    /// arrives.
    pub async fn stream(&mut self, request: &[u8]) -> io::Result<StreamTimes> {
        self.stream.write_all(request).await?;
        self.fill().await?;
        let first_byte = Instant::now();
        let (status, head_len, framing) = self.read_head().await?;
        if status != 200 || !matches!(framing, Framing::Chunked) {
            return Err(io::Error::other(format!("stream answered {status}")));
        }
        self.buf.drain(..head_len);
        let (mut data, mut events, mut scanned) = (Vec::new(), Vec::new(), 0);
        loop {
            let done = self.decode_chunks(&mut data)?;
            let now = Instant::now();
            while let Some(at) = data[scanned..].windows(2).position(|w| w == b"\n\n") {
                scanned += at + 2;
                events.push(now);
            }
            if done {
                return Ok(StreamTimes {
                    first_byte,
                    events,
                    data,
                });
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    async fn read_head(&mut self) -> io::Result<(u16, usize, Framing)> {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..end]).map_err(io::Error::other)?;
        let status = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other("no status line"))?;
        let mut framing = Framing::Length(0);
        for line in head.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                framing = Framing::Length(value.trim().parse().map_err(io::Error::other)?);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
            {
                framing = Framing::Chunked;
            }
        }
        Ok((status, end, framing))
    }

    /// Moves the complete chunks in the buffer into `body`; true at the last chunk.
    fn decode_chunks(&mut self, body: &mut Vec<u8>) -> io::Result<bool> {
        loop {
            let Some(line_end) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                return Ok(false);
            };
            let size = std::str::from_utf8(&self.buf[..line_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                .ok_or_else(|| io::Error::other("bad chunk size"))?;
            let needed = line_end + 2 + size + 2;
            if self.buf.len() < needed {
                return Ok(false);
            }
            body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
            self.buf.drain(..needed);
            if size == 0 {
                return Ok(true);
            }
        }
    }
}
