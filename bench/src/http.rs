//! A minimal HTTP/1.1 response parser for the keep-alive load generator: the status line,
//! `Content-Length`, and a clear error for everything it does not handle (chunked bodies,
//! malformed heads), so a misbehaving server stops the run instead of hanging it.

use std::io::{self, Read};

/// The most bytes a response head may take.
const MAX_HEAD: usize = 16 * 1024;

/// One parsed response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body's length in bytes.
    pub body_len: usize,
}

/// Why a response could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad HTTP response: {}", self.0)
    }
}

impl From<ParseError> for io::Error {
    fn from(err: ParseError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, err.to_string())
    }
}

fn bad(what: impl Into<String>) -> ParseError {
    ParseError(what.into())
}

/// Parses the response at the start of `buf`: `Ok(None)` while it is incomplete,
/// `Ok(Some((length, response)))` once `buf` holds all of it (head and body, `length` bytes).
pub fn parse_response(buf: &[u8]) -> Result<Option<(usize, Response)>, ParseError> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(bad(format!("no end of head in {MAX_HEAD} bytes")));
        }
        return Ok(None);
    };
    if head_end > MAX_HEAD {
        return Err(bad(format!("head longer than {MAX_HEAD} bytes")));
    }
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(bad(format!("status line {status_line:?}: not HTTP/1.x")));
    }
    let status: u16 = parts
        .next()
        .filter(|code| code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(format!("status line {status_line:?}: no status code")))?;
    let mut content_length: Option<usize> = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("header line {line:?} has no ':'")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| bad(format!("Content-Length {value:?} is not a number")))?;
            if content_length.is_some_and(|m| m != n) {
                return Err(bad("conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad(format!(
                "Transfer-Encoding: {value} is not handled (only Content-Length bodies)"
            )));
        }
    }
    // 1xx, 204 and 304 have no body; anything else must say how long it is, since a
    // keep-alive connection cannot be read to its end.
    let body_len = match (status, content_length) {
        (100..=199 | 204 | 304, _) => 0,
        (_, Some(n)) => n,
        (_, None) => return Err(bad(format!("status {status} without Content-Length"))),
    };
    let total = head_end + 4 + body_len;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((total, Response { status, body_len })))
}

/// Reads whole responses from one connection, keeping bytes that arrived early for the next.
#[derive(Debug, Default)]
pub struct ResponseReader {
    buf: Vec<u8>,
}

impl ResponseReader {
    /// Reads from `stream` until one whole response is in, and returns it. The end of the
    /// stream before that is an `UnexpectedEof` error; a malformed response is `InvalidData`.
    pub fn read_response(&mut self, stream: &mut impl Read) -> io::Result<Response> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((len, response)) = parse_response(&self.buf)? {
                self.buf.drain(..len);
                return Ok(response);
            }
            let n = match stream.read(&mut chunk) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the server closed the connection with {} bytes of a response read",
                        self.buf.len()
                    ),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\ndate: Mon, 07 Dec 2026 17:00:00 GMT\r\n\r\nHello, world!";

    /// A reader that hands out its bytes a few at a time.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(self.data.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn whole_response() {
        let parsed = parse_response(HELLO).unwrap().unwrap();
        assert_eq!(
            parsed,
            (
                HELLO.len(),
                Response {
                    status: 200,
                    body_len: 13
                }
            )
        );
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for cut in 0..HELLO.len() {
            assert_eq!(parse_response(&HELLO[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn split_reads_and_back_to_back_responses() {
        let mut two = HELLO.to_vec();
        two.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        for step in [1, 2, 7, 64, 4096] {
            let mut stream = Trickle { data: &two, step };
            let mut reader = ResponseReader::default();
            assert_eq!(
                reader.read_response(&mut stream).unwrap(),
                Response {
                    status: 200,
                    body_len: 13
                }
            );
            assert_eq!(
                reader.read_response(&mut stream).unwrap(),
                Response {
                    status: 404,
                    body_len: 0
                }
            );
            let err = reader.read_response(&mut stream).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let cases: [&[u8]; 8] = [
            b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",
        ];
        for case in cases {
            assert!(
                parse_response(case).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(case)
            );
        }
        let chunked = parse_response(cases[5]).unwrap_err();
        assert!(chunked.0.contains("Transfer-Encoding"), "{chunked}");
    }

    #[test]
    fn bodiless_statuses_and_endless_heads() {
        assert_eq!(
            parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap(),
            Some((
                27,
                Response {
                    status: 204,
                    body_len: 0
                }
            ))
        );
        let endless = vec![b'a'; MAX_HEAD + 1];
        assert!(parse_response(&endless).is_err());
        let mut reader = ResponseReader::default();
        let err = reader
            .read_response(&mut Trickle {
                data: &endless,
                step: 100,
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
