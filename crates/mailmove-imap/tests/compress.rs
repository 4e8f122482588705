//! `compress=on` against a scripted server that speaks COMPRESS=DEFLATE with flate2's own raw
//! DEFLATE streams (an implementation independent of ours): folders, pipelined appends, listing
//! and byte-exact fetches all go through the compressed connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use mailmove_core::{FolderPath, MailSink, MailSource, Message, MessageBody, MessageMeta, Secret, SourceKey};
use mailmove_imap::{ImapConfig, ImapStore};

const CAPS: &str = "IMAP4rev1 LITERAL+ UIDPLUS COMPRESS=DEFLATE";

/// Raw DEFLATE decoding of a socket that hands out everything decodable before it reads again
/// (flate2's `read::DeflateDecoder` reads the socket first, which blocks on an interactive stream
/// while the decompressor still holds output).
struct Inflate {
    stream: TcpStream,
    decompress: flate2::Decompress,
    input: Vec<u8>,
}

impl Inflate {
    fn new(stream: TcpStream) -> Self {
        Inflate { stream, decompress: flate2::Decompress::new(false), input: Vec::new() }
    }
}

impl Read for Inflate {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let (before_in, before_out) = (self.decompress.total_in(), self.decompress.total_out());
            self.decompress
                .decompress(&self.input, out, flate2::FlushDecompress::None)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let consumed = (self.decompress.total_in() - before_in) as usize;
            let produced = (self.decompress.total_out() - before_out) as usize;
            self.input.drain(..consumed);
            if produced > 0 || out.is_empty() {
                return Ok(produced);
            }
            if consumed > 0 {
                continue;
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = self.stream.read(&mut chunk)?;
            if read == 0 {
                return Ok(0);
            }
            self.input.extend_from_slice(&chunk[..read]);
        }
    }
}

#[derive(Default)]
struct Server {
    messages: Mutex<Vec<Vec<u8>>>,
    /// Commands read after COMPRESS DEFLATE.
    compressed_commands: AtomicUsize,
}

/// Reads one command line and, for a trailing `{n+}`/`{n}` literal, the literal and the rest.
fn read_command(reader: &mut impl BufRead, writer: &mut impl Write) -> Option<(String, Option<Vec<u8>>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let line = line.trim_end().to_string();
    let Some(open) = line.rfind('{').filter(|_| line.ends_with('}')) else { return Some((line, None)) };
    let spec = &line[open + 1..line.len() - 1];
    if !spec.ends_with('+') {
        writer.write_all(b"+ go\r\n").ok()?;
        writer.flush().ok()?;
    }
    let mut literal = vec![0u8; spec.trim_end_matches('+').parse().ok()?];
    reader.read_exact(&mut literal).ok()?;
    let mut rest = String::new();
    reader.read_line(&mut rest).ok()?;
    Some((line, Some(literal)))
}

fn reply(server: &Server, line: &str, literal: Option<Vec<u8>>) -> Vec<u8> {
    let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
    let upper = rest.to_ascii_uppercase();
    let messages = server.messages.lock().unwrap();
    let mut out = Vec::new();
    if upper.starts_with("LIST \"\" \"\"") {
        out.extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
    } else if upper.starts_with("LIST") {
        out.extend_from_slice(b"* LIST () \"/\" \"INBOX\"\r\n");
    } else if upper.starts_with("STATUS") {
        let n = messages.len();
        out.extend_from_slice(
            format!("* STATUS \"INBOX\" (MESSAGES {n} UIDNEXT {} UIDVALIDITY 9)\r\n", n + 1).as_bytes(),
        );
    } else if upper.starts_with("SELECT") || upper.starts_with("EXAMINE") {
        out.extend_from_slice(
            format!("* {} EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\n* OK [UIDNEXT {}] ok\r\n* OK [PERMANENTFLAGS (\\Seen \\*)] ok\r\n", messages.len(), messages.len() + 1).as_bytes(),
        );
    } else if upper.starts_with("UID SEARCH") {
        let uids: Vec<String> = (1..=messages.len()).map(|n| n.to_string()).collect();
        out.extend_from_slice(format!("* SEARCH {}\r\n", uids.join(" ")).as_bytes());
    } else if upper.starts_with("UID FETCH") {
        let with_body = upper.contains("BODY.PEEK[]");
        for (index, body) in messages.iter().enumerate() {
            out.extend_from_slice(
                format!("* {n} FETCH (UID {n} FLAGS (\\Seen) RFC822.SIZE {}", body.len(), n = index + 1)
                    .as_bytes(),
            );
            if with_body {
                out.extend_from_slice(format!(" BODY[] {{{}}}\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
            }
            out.extend_from_slice(b")\r\n");
        }
    } else if upper.starts_with("APPEND") {
        drop(messages);
        let mut messages = server.messages.lock().unwrap();
        messages.push(literal.unwrap_or_default());
        return format!("{tag} OK [APPENDUID 9 {}] stored\r\n", messages.len()).into_bytes();
    } else if upper.starts_with("LOGOUT") {
        out.extend_from_slice(b"* BYE bye\r\n");
    }
    out.extend_from_slice(format!("{tag} OK done\r\n").as_bytes());
    out
}

fn session(stream: TcpStream, server: Arc<Server>) -> Option<()> {
    let mut writer = stream.try_clone().ok()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(format!("* OK [CAPABILITY {CAPS}] compressing server\r\n").as_bytes()).ok()?;
    // Plain until COMPRESS DEFLATE.
    loop {
        let (line, _) = read_command(&mut reader, &mut writer)?;
        let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let upper = rest.to_ascii_uppercase();
        let answer = if upper.starts_with("LOGIN") {
            format!("{tag} OK [CAPABILITY {CAPS}] in\r\n")
        } else if upper.starts_with("CAPABILITY") {
            format!("* CAPABILITY {CAPS}\r\n{tag} OK done\r\n")
        } else if upper.starts_with("COMPRESS DEFLATE") {
            writer.write_all(format!("{tag} OK DEFLATE active\r\n").as_bytes()).ok()?;
            break;
        } else {
            String::from_utf8(reply(&server, &line, None)).ok()?
        };
        writer.write_all(answer.as_bytes()).ok()?;
    }
    // The client waits for the OK before it compresses: nothing is buffered past it.
    assert!(reader.buffer().is_empty());
    let raw = reader.into_inner();
    let mut reader = BufReader::new(Inflate::new(raw.try_clone().ok()?));
    let mut writer = flate2::write::DeflateEncoder::new(raw, flate2::Compression::default());
    loop {
        let (line, literal) = read_command(&mut reader, &mut writer)?;
        server.compressed_commands.fetch_add(1, Ordering::Relaxed);
        let answer = reply(&server, &line, literal);
        writer.write_all(&answer).ok()?;
        // A sync flush: the client can decompress the whole answer now.
        writer.flush().ok()?;
        if line.to_ascii_uppercase().contains("LOGOUT") {
            return Some(());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_session_appends_and_fetches_byte_exact() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Arc::new(Server::default());
    let shared = server.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let server = shared.clone();
            std::thread::spawn(move || session(stream, server));
        }
    });
    let url = format!("imap://u@127.0.0.1:{port}/?tls=none&auth=login&timeout=5&compress=on&connections=2");
    let store = ImapStore::connect(ImapConfig::from_url(&url).unwrap().with_password(Secret::new("pw")))
        .await
        .unwrap();
    assert!(store.has_capability("COMPRESS=DEFLATE"));

    let bodies: Vec<Vec<u8>> = vec![
        b"Subject: small\r\n\r\nhello\r\n".to_vec(),
        format!("Subject: text\r\n\r\n{}", "Lorem ipsum dolor sit amet.\r\n".repeat(5000)).into_bytes(),
        (0..300_000u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x01).collect(),
    ];
    let inbox = FolderPath::inbox();
    for body in &bodies {
        let message = Message::new(MessageMeta::new("k", 0), MessageBody::from(body.clone()));
        store.append(&inbox, &message).await.unwrap();
    }
    store.flush(&inbox).await.unwrap();
    // Stored byte-exact through DEFLATE, with the line endings APPEND must send (CRLF).
    let sent: Vec<Vec<u8>> = bodies.iter().map(|body| mailmove_core::crlf::to_crlf_bytes(body)).collect();
    assert_eq!(*server.messages.lock().unwrap(), sent, "stored byte-exact through DEFLATE");

    let metas: Vec<_> = store.list_messages(&inbox, None).collect().await;
    let keys: Vec<SourceKey> = metas.into_iter().map(|m| m.unwrap().key).collect();
    let fetched: Vec<_> = store.fetch(&inbox, &keys).collect().await;
    let fetched: Vec<Vec<u8>> =
        fetched.into_iter().map(|m| m.unwrap().body.to_bytes().unwrap().to_vec()).collect();
    assert_eq!(fetched, sent, "read back byte-exact through DEFLATE");
    assert!(server.compressed_commands.load(Ordering::Relaxed) >= 5, "the commands went compressed");
    store.close().await;
}
