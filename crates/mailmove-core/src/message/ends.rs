//! The two ends of a body, read without the middle: a writer wants the header section (to place
//! lines before its end) and the last bytes (to know how the message ends), and a body read
//! where it lies (a Maildir file) or spooled was read whole for each (issue 16: a Maildir → mbox
//! copy read every large message three times).

use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;

use super::{BodyInner, MessageBody};
use crate::error::{Error, Result};

/// The first step of [`MessageBody::head_to_blank_line`]: most header sections fit.
const FIRST_STEP: usize = 16 * 1024;

/// Whether `bytes` (the start of a message) hold the blank line that ends a header section, or
/// start with one (an empty header section).
fn holds_blank_line(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\n")
        || bytes.starts_with(b"\r\n")
        || memchr::memmem::find(bytes, b"\n\n").is_some()
        || memchr::memmem::find(bytes, b"\n\r\n").is_some()
}

impl MessageBody {
    /// A start of the body that holds its header section: at least every byte up to and
    /// including the first blank line (`\n\n` or `\n\r\n`), or the first `limit` bytes when no
    /// blank line comes before; perhaps a few bytes more. What [`head`](MessageBody::head)`(limit)`
    /// gives for reading headers, without reading all `limit` bytes of a large body from a file.
    ///
    /// ```
    /// # use mailmove_core::MessageBody;
    /// let body = MessageBody::from_bytes(&b"Subject: x\r\n\r\nbody"[..]);
    /// assert!(body.head_to_blank_line(1024).unwrap().starts_with(b"Subject: x\r\n\r\n"));
    /// ```
    pub fn head_to_blank_line(&self, limit: usize) -> Result<Bytes> {
        if let BodyInner::Memory(_) = &self.inner {
            return self.head(limit);
        }
        let mut step = FIRST_STEP.min(limit);
        loop {
            let head = self.head(step)?;
            if step >= limit || (head.len() as u64) < step as u64 || holds_blank_line(&head) {
                return Ok(head);
            }
            step = step.saturating_mul(4).min(limit);
        }
    }

    /// The last `limit` bytes (all of a shorter body), read without the rest.
    ///
    /// ```
    /// # use mailmove_core::MessageBody;
    /// let body = MessageBody::from_bytes(&b"Subject: x\r\n\r\nbody\r\n"[..]);
    /// assert_eq!(&body.tail(3).unwrap()[..], b"y\r\n");
    /// assert_eq!(&body.tail(100).unwrap()[..], b"Subject: x\r\n\r\nbody\r\n");
    /// ```
    pub fn tail(&self, limit: usize) -> Result<Bytes> {
        let len = self.len();
        let start = len.saturating_sub(limit as u64);
        let context = |err| Error::io("reading the end of a message", err);
        let mut out = vec![0u8; (len - start) as usize];
        match &self.inner {
            BodyInner::Memory(bytes) => return Ok(bytes.slice(start as usize..)),
            BodyInner::Spooled { path, .. } => {
                let mut file = std::fs::File::open(path.as_ref() as &std::path::Path).map_err(context)?;
                file.seek(SeekFrom::Start(start)).map_err(context)?;
                file.read_exact(&mut out).map_err(context)?;
            }
            BodyInner::File { file, len } => {
                super::file_body::FileRange::starting_at(file.clone(), start, *len)
                    .read_exact(&mut out)
                    .map_err(context)?;
            }
        }
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use crate::message::SpoolConfig;
    use crate::MessageBody;

    fn bodies(bytes: &[u8]) -> Vec<MessageBody> {
        let mut spool = SpoolConfig { threshold: 0, dir: None }.builder();
        spool.push(bytes).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        vec![
            MessageBody::from_bytes(bytes.to_vec()),
            spool.finish().unwrap(),
            MessageBody::from_file(file).unwrap(),
        ]
    }

    #[test]
    fn the_tail_is_the_last_bytes_of_every_kind_of_body() {
        let bytes: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8).collect();
        for body in bodies(&bytes) {
            for limit in [0, 1, 3, 99_999, 100_000, 200_000] {
                let want = &bytes[bytes.len().saturating_sub(limit)..];
                assert_eq!(&body.tail(limit).unwrap()[..], want, "{body:?}, limit {limit}");
            }
        }
    }

    #[test]
    fn the_head_to_the_blank_line_holds_it_or_the_whole_limit() {
        let mut header = Vec::new();
        for n in 0..3000 {
            header.extend_from_slice(format!("X-Field-{n}: value\r\n").as_bytes());
        }
        let deep = [header.clone(), b"\r\nbody\r\n".to_vec()].concat();
        let blank_at = header.len();
        for body in bodies(&deep) {
            let head = body.head_to_blank_line(256 * 1024).unwrap();
            assert!(head.len() >= blank_at + 2, "{body:?}: {} bytes", head.len());
            assert_eq!(&head[..], &deep[..head.len()]);
            // No blank line within the limit: exactly the limit, as `head` gives it.
            assert_eq!(body.head_to_blank_line(1000).unwrap(), body.head(1000).unwrap());
        }
        let headerless = vec![b'x'; 300_000];
        for body in bodies(&headerless) {
            assert_eq!(body.head_to_blank_line(256 * 1024).unwrap().len(), 256 * 1024);
        }
        for empty_header in [&b"\r\nbody"[..], b"\nbody"] {
            for body in bodies(empty_header) {
                assert!(body.head_to_blank_line(256 * 1024).unwrap().starts_with(&empty_header[..1]));
            }
        }
    }
}
