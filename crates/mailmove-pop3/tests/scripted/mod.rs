//! An in-process scripted POP3 server on 127.0.0.1 for fault injection: no UIDL, no CAPA, no
//! STLS, bytes injected after STLS, connections cut in the middle of RETR, message numbers that
//! change between sessions, stalls. It keeps one maildrop across sessions and, like a real
//! server, removes DELE-marked messages only on QUIT.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

pub const PASSWORD: &str = "correct horse";
/// The one OAuth2 token the server accepts (longer than fits an AUTH command line).
pub const TOKEN: &str = concat!(
    "ya29.a0AfH6SMBx-long-token-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz",
    "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop"
);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How the server behaves.
#[derive(Clone)]
pub struct Options {
    /// Answer UIDL.
    pub uidl: bool,
    /// Answer CAPA.
    pub capa: bool,
    /// Offer and accept STLS (needs `tls`).
    pub stls: bool,
    /// Certificate and key for STLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Bytes sent right after the STLS `+OK`, before the handshake (an injection attempt).
    pub inject_after_stls: Vec<u8>,
    /// List messages in reverse order in every other session (numbers change between sessions).
    pub shuffle_numbers: bool,
    /// Never answer anything after the greeting.
    pub stall_after_greeting: bool,
    /// Leave out USER in CAPA (so a client picks SASL PLAIN).
    pub no_user_capa: bool,
    /// Report every size in LIST as 1 byte (a server that lies, or never stops sending).
    pub tiny_list_sizes: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            uidl: true,
            capa: true,
            stls: false,
            tls: None,
            inject_after_stls: Vec::new(),
            shuffle_numbers: false,
            stall_after_greeting: false,
            no_user_capa: false,
            tiny_list_sizes: false,
        }
    }
}

#[derive(Clone)]
struct Stored {
    uid: String,
    body: Vec<u8>,
}

/// Shared state of the server.
pub struct State {
    maildrop: Mutex<Vec<Stored>>,
    /// Every command line received, verbatim.
    pub commands: Mutex<Vec<String>>,
    /// How many RETRs, counted from now, are cut half-way.
    pub cut_retrs: AtomicUsize,
    /// Sessions accepted.
    pub sessions: AtomicUsize,
    /// RETR commands received.
    pub retrs: AtomicUsize,
    /// How many QUITs, counted from now, are answered by closing the connection without
    /// committing (a cut before the UPDATE state).
    pub cut_quits: AtomicUsize,
}

/// A running scripted server.
pub struct Server {
    pub port: u16,
    pub state: Arc<State>,
}

impl Server {
    pub async fn start(messages: Vec<Vec<u8>>, options: Options) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let maildrop = messages
            .into_iter()
            .enumerate()
            .map(|(index, body)| Stored { uid: format!("uid-{index:04}"), body })
            .collect();
        let state = Arc::new(State {
            maildrop: Mutex::new(maildrop),
            commands: Mutex::new(Vec::new()),
            cut_retrs: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
            retrs: AtomicUsize::new(0),
            cut_quits: AtomicUsize::new(0),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = shared.clone();
                let options = options.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, state, options).await;
                });
            }
        });
        Server { port, state }
    }

    /// The URL of this server with plaintext allowed.
    pub fn url(&self, user: &str) -> String {
        format!("pop3://{user}@127.0.0.1:{}/?tls=none", self.port)
    }

    pub fn commands(&self) -> Vec<String> {
        self.state.commands.lock().unwrap().clone()
    }

    pub fn remaining(&self) -> Vec<Vec<u8>> {
        self.state.maildrop.lock().unwrap().iter().map(|m| m.body.clone()).collect()
    }
}

/// Dot-stuffs like a server: a dot before every line starting with one, CRLF added when the
/// message does not end with it, then the terminator.
pub fn stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 8);
    let mut at_line_start = true;
    for &byte in content {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
    }
    if !content.is_empty() && !content.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

async fn serve(socket: TcpStream, state: Arc<State>, options: Options) -> std::io::Result<()> {
    let session_number = state.sessions.fetch_add(1, Ordering::SeqCst);
    let mut io: BufReader<Box<dyn Io>> = BufReader::new(Box::new(socket));
    io.get_mut().write_all(b"+OK scripted POP3 ready\r\n").await?;
    if options.stall_after_greeting {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return Ok(());
    }
    let mut tls_active = false;
    let mut authenticated = false;
    // The session's view: indexes into the maildrop, in message-number order, and DELE marks.
    let mut view: Vec<usize> = Vec::new();
    let mut deleted: Vec<bool> = Vec::new();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        state.commands.lock().unwrap().push(line.clone());
        let mut parts = line.splitn(3, ' ');
        let verb = parts.next().unwrap_or("").to_ascii_uppercase();
        let arg1 = parts.next().unwrap_or("").to_string();
        let arg2 = parts.next().unwrap_or("").to_string();
        let mut out: Vec<u8> = Vec::new();
        let snapshot = |view: &mut Vec<usize>, deleted: &mut Vec<bool>| {
            let count = state.maildrop.lock().unwrap().len();
            *view = (0..count).collect();
            if options.shuffle_numbers && session_number % 2 == 1 {
                view.reverse();
            }
            *deleted = vec![false; count];
        };
        let message = |number: &str, view: &[usize], deleted: &[bool]| -> Option<(usize, Stored)> {
            let number: usize = number.parse().ok()?;
            let position = number.checked_sub(1)?;
            if *deleted.get(position)? {
                return None;
            }
            let index = *view.get(position)?;
            state.maildrop.lock().unwrap().get(index).cloned().map(|stored| (position, stored))
        };
        match verb.as_str() {
            "CAPA" if options.capa => {
                out.extend_from_slice(b"+OK\r\n");
                if !options.no_user_capa {
                    out.extend_from_slice(b"USER\r\n");
                }
                out.extend_from_slice(b"SASL PLAIN XOAUTH2\r\nTOP\r\n");
                if options.uidl {
                    out.extend_from_slice(b"UIDL\r\n");
                }
                if options.stls && !tls_active {
                    out.extend_from_slice(b"STLS\r\n");
                }
                out.extend_from_slice(b".\r\n");
            }
            "STLS" if options.stls && !tls_active => {
                let mut reply = b"+OK Begin TLS negotiation\r\n".to_vec();
                reply.extend_from_slice(&options.inject_after_stls);
                io.get_mut().write_all(&reply).await?;
                let acceptor = TlsAcceptor::from(options.tls.clone().expect("STLS needs a TLS config"));
                let plain = io.into_inner();
                let tls = acceptor.accept(plain).await?;
                io = BufReader::new(Box::new(tls));
                tls_active = true;
                continue;
            }
            "USER" => out.extend_from_slice(b"+OK\r\n"),
            "PASS" => {
                let given = line.get(5..).unwrap_or("");
                if given == PASSWORD {
                    authenticated = true;
                    snapshot(&mut view, &mut deleted);
                    out.extend_from_slice(b"+OK logged in\r\n");
                } else {
                    // A careless server that echoes what it got (the client must scrub it).
                    out.extend_from_slice(format!("-ERR [AUTH] wrong password {given}\r\n").as_bytes());
                }
            }
            "AUTH" if arg1.eq_ignore_ascii_case("PLAIN") => {
                let decoded =
                    base64::engine::general_purpose::STANDARD.decode(arg2.trim()).unwrap_or_default();
                if decoded.ends_with(format!("\0{PASSWORD}").as_bytes()) {
                    authenticated = true;
                    snapshot(&mut view, &mut deleted);
                    out.extend_from_slice(b"+OK logged in\r\n");
                } else {
                    out.extend_from_slice(b"-ERR [AUTH] bad credentials\r\n");
                }
            }
            "AUTH" if arg1.eq_ignore_ascii_case("XOAUTH2") => {
                // The initial response on the command line, or after an empty continuation.
                let mut response = arg2.trim().to_string();
                if response.is_empty() {
                    io.get_mut().write_all(b"+ \r\n").await?;
                    let mut next = String::new();
                    io.read_line(&mut next).await?;
                    response = next.trim().to_string();
                }
                let decoded = base64::engine::general_purpose::STANDARD.decode(&response).unwrap_or_default();
                let expected = format!("\x01auth=Bearer {TOKEN}\x01\x01");
                if decoded.starts_with(b"user=") && decoded.ends_with(expected.as_bytes()) {
                    authenticated = true;
                    snapshot(&mut view, &mut deleted);
                    out.extend_from_slice(b"+OK logged in\r\n");
                } else {
                    // As Gmail does: a base64 JSON error challenge, answered with an empty line.
                    io.get_mut().write_all(b"+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIn0=\r\n").await?;
                    let mut next = String::new();
                    io.read_line(&mut next).await?;
                    out.extend_from_slice(b"-ERR [AUTH] invalid token\r\n");
                }
            }
            _ if !authenticated && verb != "QUIT" => out.extend_from_slice(b"-ERR log in first\r\n"),
            "STAT" => {
                let maildrop = state.maildrop.lock().unwrap();
                let live: Vec<usize> = (0..view.len()).filter(|p| !deleted[*p]).collect();
                let bytes: usize = live.iter().map(|p| maildrop[view[*p]].body.len()).sum();
                out.extend_from_slice(format!("+OK {} {bytes}\r\n", live.len()).as_bytes());
            }
            "LIST" => {
                out.extend_from_slice(b"+OK\r\n");
                let maildrop = state.maildrop.lock().unwrap();
                for (position, index) in view.iter().enumerate() {
                    if !deleted[position] {
                        let size = if options.tiny_list_sizes { 1 } else { maildrop[*index].body.len() };
                        out.extend_from_slice(format!("{} {size}\r\n", position + 1).as_bytes());
                    }
                }
                out.extend_from_slice(b".\r\n");
            }
            "UIDL" if options.uidl => {
                out.extend_from_slice(b"+OK\r\n");
                let maildrop = state.maildrop.lock().unwrap();
                for (position, index) in view.iter().enumerate() {
                    if !deleted[position] {
                        out.extend_from_slice(
                            format!("{} {}\r\n", position + 1, maildrop[*index].uid).as_bytes(),
                        );
                    }
                }
                out.extend_from_slice(b".\r\n");
            }
            "RETR" | "TOP" => match message(&arg1, &view, &deleted) {
                Some((_, stored)) => {
                    let body = if verb == "TOP" {
                        let end = stored.body.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
                        stored.body[..end.unwrap_or(stored.body.len())].to_vec()
                    } else {
                        state.retrs.fetch_add(1, Ordering::SeqCst);
                        stored.body.clone()
                    };
                    let wire = stuff(&body);
                    let cut = verb == "RETR"
                        && state
                            .cut_retrs
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                    out.extend_from_slice(b"+OK message follows\r\n");
                    if cut {
                        out.extend_from_slice(&wire[..wire.len() / 2]);
                        io.get_mut().write_all(&out).await?;
                        io.get_mut().flush().await?;
                        return Ok(()); // connection cut mid-message
                    }
                    out.extend_from_slice(&wire);
                }
                None => out.extend_from_slice(b"-ERR no such message\r\n"),
            },
            "DELE" => match message(&arg1, &view, &deleted) {
                Some((position, _)) => {
                    deleted[position] = true;
                    out.extend_from_slice(b"+OK marked\r\n");
                }
                None => out.extend_from_slice(b"-ERR no such message\r\n"),
            },
            "RSET" => {
                deleted.iter_mut().for_each(|d| *d = false);
                out.extend_from_slice(b"+OK\r\n");
            }
            "NOOP" => out.extend_from_slice(b"+OK\r\n"),
            "QUIT" => {
                if state
                    .cut_quits
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return Ok(());
                }
                // The UPDATE state: only now are marked messages removed.
                let mut gone: Vec<usize> =
                    (0..view.len()).filter(|p| deleted.get(*p) == Some(&true)).map(|p| view[p]).collect();
                gone.sort_unstable();
                {
                    let mut maildrop = state.maildrop.lock().unwrap();
                    for index in gone.into_iter().rev() {
                        maildrop.remove(index);
                    }
                }
                io.get_mut().write_all(b"+OK bye\r\n").await?;
                return Ok(());
            }
            _ => out.extend_from_slice(b"-ERR unknown command\r\n"),
        }
        io.get_mut().write_all(&out).await?;
        io.get_mut().flush().await?;
    }
}

/// A throw-away CA and a server certificate for 127.0.0.1 / localhost: the server config and
/// the CA's PEM.
pub fn tls_config() -> (Arc<rustls::ServerConfig>, String) {
    let ca = mailmove_net::testing::Issued::authority("scripted test CA");
    let server = ca.issue(&["localhost", "127.0.0.1"], |_| {});
    (server.server_config(), ca.certificate.pem())
}
