//! What mailmove's network backends (IMAP, POP3) share, written once so that the two protocols
//! cannot drift apart.
//!
//! * [`tls`]: the rustls client configuration (system roots, `ca=PATH`, a self-signed server
//!   certificate given as `ca=` accepted as a pinned certificate) and the handshake with its
//!   error classification: a certificate problem is a configuration error (the user must act),
//!   anything else a transient connection error.
//! * [`deadline`]: the rule that bounds how long a response may take: a server must answer
//!   within the time limit and then keep delivering at a minimum rate, so a server that sends
//!   one byte a second cannot hold a run forever.
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod deadline;
pub mod tls;
