//! A bare IMAP session over plain TCP on 127.0.0.1, for what a test must see as the server says it
//! (untagged counts such as `RECENT`, an admin's commands) rather than through the store.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One command's answer.
#[derive(Debug)]
pub struct Answer {
    /// The tagged line (`A1 OK ...`).
    pub tagged: String,
    /// The untagged lines before it (literals are not parsed: lines as sent).
    pub untagged: Vec<String>,
}

impl Answer {
    /// Whether the command ended OK.
    pub fn ok(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("OK")
    }

    /// The number of an untagged `* n NAME` line (`EXISTS`, `RECENT`), when there is one.
    pub fn count(&self, name: &str) -> Option<u64> {
        self.untagged.iter().find_map(|line| {
            let mut words = line.split(' ');
            let (star, number, word) = (words.next()?, words.next()?, words.next()?);
            (star == "*" && word.eq_ignore_ascii_case(name)).then(|| number.parse().ok()).flatten()
        })
    }
}

/// Reads up to the tagged answer of `tag`; returns it and the untagged lines before it.
async fn read_tagged(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    tag: &str,
    transcript: &mut String,
) -> (String, Vec<String>) {
    let mut untagged = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await.expect("reading from the server");
        assert!(n > 0, "the server closed the connection; transcript:\n{transcript}");
        transcript.push_str(&line);
        if line.starts_with(&format!("{tag} ")) {
            return (line.trim_end().to_string(), untagged);
        }
        untagged.push(line.trim_end().to_string());
    }
}

/// Logs in as `user` with `password` on 127.0.0.1:`port` (plain IMAP), runs the commands and
/// logs out; returns each command's answer. The commands must not hold literals.
pub async fn session(port: &str, user: &str, password: &str, commands: &[&str]) -> Vec<Answer> {
    let stream = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server on 127.0.0.1:{port}: {e}"));
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut transcript = String::new();
    let mut greeting = String::new();
    reader.read_line(&mut greeting).await.unwrap();
    transcript.push_str(&greeting);
    assert!(greeting.starts_with("* OK"), "greeting: {greeting:?}");
    write.write_all(format!("A0 LOGIN \"{user}\" \"{password}\"\r\n").as_bytes()).await.unwrap();
    let (answer, _) = read_tagged(&mut reader, "A0", &mut transcript).await;
    assert!(answer.starts_with("A0 OK"), "LOGIN as {user} refused; transcript:\n{transcript}");
    let mut answers = Vec::new();
    for (n, command) in commands.iter().enumerate() {
        let tag = format!("A{}", n + 1);
        write.write_all(format!("{tag} {command}\r\n").as_bytes()).await.unwrap();
        let (tagged, untagged) = read_tagged(&mut reader, &tag, &mut transcript).await;
        answers.push(Answer { tagged, untagged });
    }
    write.write_all(b"AZ LOGOUT\r\n").await.unwrap();
    let _ = read_tagged(&mut reader, "AZ", &mut transcript).await;
    answers
}
