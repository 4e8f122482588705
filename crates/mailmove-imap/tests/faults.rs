//! Server answers mapped to errors, and reconnection, against a scripted IMAP server.
use std::sync::{Arc, Mutex};

use mailmove_core::{Error, FolderPath, MailSink, Message, MessageBody, MessageMeta, Secret};
use mailmove_imap::{ImapConfig, ImapStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How the scripted server answers the n-th APPEND (counted over all connections).
#[derive(Clone, Copy)]
enum Answer {
    /// A tagged response instead of the `+` continuation (the literal is never sent).
    RejectBeforeLiteral(&'static str),
    /// Take the literal, then answer with this tagged status text.
    AfterLiteral(&'static str),
    /// Take the literal, send BYE and close the connection.
    ByeAndClose,
}

async fn serve(answers: Vec<Answer>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let server_log = log.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let log = server_log.clone();
            let answers = answers.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut reader = BufReader::new(read);
                write
                    .write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN UIDPLUS] scripted\r\n")
                    .await
                    .unwrap();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    log.lock().unwrap().push(line.trim_end().to_string());
                    let (tag, rest) = line.trim_end().split_once(' ').unwrap_or(("*", ""));
                    let upper = rest.to_ascii_uppercase();
                    let reply = if upper.starts_with("LOGIN") {
                        format!("{tag} OK [CAPABILITY IMAP4rev1 UIDPLUS] in\r\n")
                    } else if upper.starts_with("CAPABILITY") {
                        format!("* CAPABILITY IMAP4rev1 UIDPLUS\r\n{tag} OK done\r\n")
                    } else if upper.starts_with("LIST") {
                        format!("* LIST () \"/\" \"\"\r\n{tag} OK done\r\n")
                    } else if upper.starts_with("SELECT") {
                        format!("* OK [PERMANENTFLAGS (\\Seen \\*)] ok\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-WRITE] done\r\n")
                    } else if upper.starts_with("APPEND") {
                        let length: usize =
                            rest.rsplit('{').next().unwrap().trim_end_matches('}').parse().unwrap();
                        let answer = answers
                            .lock()
                            .unwrap()
                            .next()
                            .unwrap_or(Answer::AfterLiteral("OK [APPENDUID 7 1] done"));
                        if let Answer::RejectBeforeLiteral(text) = answer {
                            write.write_all(format!("{tag} {text}\r\n").as_bytes()).await.unwrap();
                            continue;
                        }
                        write.write_all(b"+ go ahead\r\n").await.unwrap();
                        let mut literal = vec![0u8; length + 2];
                        reader.read_exact(&mut literal).await.unwrap();
                        match answer {
                            Answer::AfterLiteral(text) => format!("{tag} {text}\r\n"),
                            _ => {
                                write.write_all(b"* BYE shutting down\r\n").await.unwrap();
                                return;
                            }
                        }
                    } else if upper.starts_with("LOGOUT") {
                        format!("* BYE bye\r\n{tag} OK done\r\n")
                    } else {
                        format!("{tag} OK done\r\n")
                    };
                    write.write_all(reply.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (port, log)
}

async fn store(port: u16) -> ImapStore {
    let url = format!("imap://u@127.0.0.1:{port}/?tls=none&auth=login&connections=1&timeout=5&pipeline=0");
    ImapStore::connect(ImapConfig::from_url(&url).unwrap().with_password(Secret::new("pw"))).await.unwrap()
}

fn message() -> Message {
    let body = b"Subject: x\r\n\r\nbody\r\n".to_vec();
    Message::new(MessageMeta::new("k", 0), MessageBody::from(body))
}

#[tokio::test]
async fn append_answers_map_to_error_kinds() {
    let (port, _log) = serve(vec![
        Answer::RejectBeforeLiteral("NO [OVERQUOTA] Quota exceeded"),
        Answer::RejectBeforeLiteral("NO [TOOBIG] Too big"),
        Answer::AfterLiteral("NO [LIMIT] Too many messages"),
        Answer::AfterLiteral("NO [THROTTLED] slow down"),
        Answer::AfterLiteral("NO Request is throttled. Suggested Backoff Time: 1500 milliseconds"),
        Answer::AfterLiteral("NO Message contains a virus"),
        Answer::AfterLiteral("OK [APPENDUID 7 42] stored"),
    ])
    .await;
    let sink = store(port).await;
    let folder = FolderPath::inbox();
    let kinds = ["quota_exceeded", "too_big", "too_big", "throttled", "throttled", "refused"];
    for kind in kinds {
        let error = sink.append(&folder, &message()).await.expect_err(kind);
        assert_eq!(error.kind(), kind, "{error:?}");
        if kind == "throttled" && error.retry_after().is_some() {
            assert_eq!(error.retry_after(), Some(std::time::Duration::from_millis(1500)));
        }
    }
    let appended = sink.append(&folder, &message()).await.unwrap();
    assert_eq!(appended.dest_key.as_deref(), Some("7:42"));
}

#[tokio::test]
async fn bye_is_transient_and_the_next_operation_reconnects() {
    let (port, log) = serve(vec![Answer::ByeAndClose]).await;
    let sink = store(port).await;
    let error = sink.append(&FolderPath::inbox(), &message()).await.expect_err("cut");
    assert!(matches!(error, Error::Connection { .. }), "{error:?}");
    assert!(error.is_transient());
    let appended = sink.append(&FolderPath::inbox(), &message()).await.unwrap();
    assert_eq!(appended.dest_key.as_deref(), Some("7:1"));
    let logins = log.lock().unwrap().iter().filter(|l| l.contains("LOGIN")).count();
    assert_eq!(logins, 2, "a new connection was opened after the cut");
}

#[tokio::test]
async fn nul_bytes_without_binary_are_refused_before_sending() {
    let (port, log) = serve(vec![]).await;
    let sink = store(port).await;
    assert!(!sink.capabilities().binary);
    let body = b"Subject: x\r\n\r\nnul \0 here\r\n".to_vec();
    let error = sink
        .append(&FolderPath::inbox(), &Message::new(MessageMeta::new("k", 0), MessageBody::from(body)))
        .await;
    assert!(matches!(error, Err(Error::Refused { .. })), "{error:?}");
    assert!(!log.lock().unwrap().iter().any(|l| l.contains("APPEND")));
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (_socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    });
    let url = format!("imap://u@127.0.0.1:{port}/?tls=none&timeout=1");
    let error =
        ImapStore::connect(ImapConfig::from_url(&url).unwrap().with_password(Secret::new("pw"))).await;
    assert!(matches!(error, Err(Error::Timeout { .. })), "{error:?}");
}

#[tokio::test]
async fn a_server_silent_during_the_tls_handshake_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        // Accepts, reads the ClientHello, never answers.
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 1024];
        let _ = socket.read(&mut buffer).await;
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    });
    let url = format!("imaps://u@127.0.0.1:{port}/?timeout=1");
    let error =
        ImapStore::connect(ImapConfig::from_url(&url).unwrap().with_password(Secret::new("pw"))).await;
    assert!(matches!(error, Err(Error::Timeout { .. })), "{error:?}");
}
