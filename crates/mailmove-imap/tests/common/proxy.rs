//! A TCP proxy in front of a real server that cuts connections where a test tells it to: after a
//! number of bytes sent by the client (in the middle of an APPEND literal, say), after a number
//! of bytes sent by the server (in the middle of a FETCH response), or just before the server's
//! `OK [APPENDUID ...]` reaches the client, i.e. after the server stored the message.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Where to cut. Byte counts run over all connections of the proxy.
#[derive(Debug, Default)]
pub struct Rules {
    /// Cut once the client has sent this many bytes (each entry once, in increasing order).
    pub upstream_cuts: Vec<u64>,
    pub upstream_bytes: u64,
    /// Cut once the server has sent this many bytes.
    pub downstream_cuts: Vec<u64>,
    pub downstream_bytes: u64,
    /// Cut instead of forwarding the n-th `OK [APPENDUID` answer (1-based, counted over all
    /// connections): the server stored that message, the client never hears of it.
    pub appended_cuts: Vec<u64>,
    pub appended_seen: u64,
    /// Cuts done so far.
    pub cuts: u64,
}

/// A running proxy.
pub struct CutProxy {
    pub port: u16,
    pub rules: Arc<Mutex<Rules>>,
}

impl CutProxy {
    pub async fn start(upstream: u16, rules: Rules) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let rules = Arc::new(Mutex::new(rules));
        let shared = rules.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rules = shared.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        relay(client, server, rules).await;
                    }
                });
            }
        });
        CutProxy { port, rules }
    }

    pub fn cuts(&self) -> u64 {
        self.rules.lock().unwrap().cuts
    }
}

/// How many bytes of `chunk` to forward before cutting, if a rule fires in it.
fn upstream_cut(rules: &mut Rules, length: usize) -> Option<usize> {
    let start = rules.upstream_bytes;
    rules.upstream_bytes += length as u64;
    let at = *rules.upstream_cuts.first()?;
    if at >= rules.upstream_bytes {
        return None;
    }
    rules.upstream_cuts.remove(0);
    rules.cuts += 1;
    Some(at.saturating_sub(start) as usize)
}

fn downstream_cut(rules: &mut Rules, chunk: &[u8]) -> Option<usize> {
    let start = rules.downstream_bytes;
    rules.downstream_bytes += chunk.len() as u64;
    let mut cut = None;
    if let Some(&at) = rules.downstream_cuts.first() {
        if at < rules.downstream_bytes {
            rules.downstream_cuts.remove(0);
            cut = Some(at.saturating_sub(start) as usize);
        }
    }
    let needle = b"OK [APPENDUID";
    let mut from = 0;
    while let Some(position) = chunk[from..].windows(needle.len()).position(|w| w == needle) {
        let position = from + position;
        rules.appended_seen += 1;
        if rules.appended_cuts.first() == Some(&rules.appended_seen) {
            rules.appended_cuts.remove(0);
            // Forward up to the start of that answer's line only.
            let line_start = chunk[..position].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            cut = Some(cut.map_or(line_start, |c: usize| c.min(line_start)));
            break;
        }
        from = position + needle.len();
    }
    if cut.is_some() {
        rules.cuts += 1;
    }
    cut
}

async fn relay(mut client: TcpStream, mut server: TcpStream, rules: Arc<Mutex<Rules>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(read) = read else { return };
                if read == 0 {
                    return;
                }
                let cut = upstream_cut(&mut rules.lock().unwrap(), read);
                let forward = cut.unwrap_or(read).min(read);
                if server.write_all(&up[..forward]).await.is_err() || cut.is_some() {
                    return;
                }
            }
            read = server.read(&mut down) => {
                let Ok(read) = read else { return };
                if read == 0 {
                    let _ = client.shutdown().await;
                    return;
                }
                let cut = downstream_cut(&mut rules.lock().unwrap(), &down[..read]);
                let forward = cut.unwrap_or(read).min(read);
                if client.write_all(&down[..forward]).await.is_err() || cut.is_some() {
                    return;
                }
            }
        }
    }
}
