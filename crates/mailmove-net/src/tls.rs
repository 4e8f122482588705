//! TLS for mailmove's network backends: one client configuration and one handshake, used by IMAP
//! and POP3 alike (rustls with the *ring* provider).
//!
//! # What is trusted
//!
//! Server certificates are always verified; there is no switch that turns verification off.
//! A certificate is accepted when one of these holds:
//!
//! 1. **It chains to a trusted root** and is valid for the host name the user gave and for the
//!    current time (the ordinary web-PKI check of `rustls-webpki`). The roots are those of the
//!    system (`rustls-native-certs`); a system without any (a minimal container) gets Mozilla's
//!    roots bundled through `webpki-roots` rather than no roots at all.
//! 2. **It chains to a certificate of the `ca=PATH` file.** Every certificate of that PEM file
//!    is added to the roots: this is how a private CA is trusted.
//! 3. **It is, byte for byte, one of the certificates of the `ca=PATH` file** (a *pinned*
//!    certificate). Small servers often present a self-signed certificate, and the usual way to
//!    make one (`openssl req -x509`) marks it `CA:TRUE`; the web-PKI check refuses such a
//!    certificate as a server's own (`CaUsedAsEndEntity`) even when it is in the roots. The user
//!    who gives exactly that certificate with `ca=` has vouched for it, so the checks of the
//!    chain (who issued it, its CA flag, the purposes it names) give way to the byte comparison.
//!    Nothing else is waived: the certificate must still parse (critical extensions included),
//!    be valid for the host name and be within its validity period, and the handshake signature
//!    (checked with the provider's default algorithms) proves that the server holds its private
//!    key. The comparison is on the whole certificate, so a different certificate with the same
//!    name, say one made by an attacker, is not pinned by it.
//!
//! # Errors
//!
//! A refused certificate will not be accepted by retrying: it is a configuration error
//! ([`Error::Config`], exit status 2 in the CLI) whose message says what is wrong (not trusted,
//! not valid for the host, expired, a CA certificate presented as the server's own) and what to
//! do about it. A handshake that does not finish in time is an [`Error::Timeout`]; every other
//! handshake failure (a reset, a server that does not speak TLS on that port) is a transient
//! [`Error::Connection`]. The messages name the server and certificate details, never a secret.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mailmove_core::{Error, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::{verify_server_name, WebPkiServerVerifier};
use tokio_rustls::rustls::server::ParsedCertificate;
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

/// Builds the client configuration: the system roots (or the bundled Mozilla roots when the
/// system has none), plus the certificates of `ca_file`, which are also pinned (see the
/// [module documentation](self)).
///
/// Build it once per source or store and share it between connections: loading the system roots
/// reads files.
///
/// # Errors
/// [`Error::Config`] when `ca_file` cannot be read, is not PEM, holds no certificate or a
/// certificate that cannot serve as a root.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(errors = ?native.errors, "some system root certificates could not be loaded");
    }
    // A system certificate rustls cannot use is skipped, as every TLS client does.
    let (added, _unusable) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let mut pinned = Vec::new();
    if let Some(path) = ca_file {
        pinned = read_ca_file(path)?;
        for certificate in &pinned {
            roots.add(certificate.clone()).map_err(|error| {
                Error::config(format!(
                    "the CA file {} holds a certificate that cannot be used: {error}",
                    path.display()
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|error| Error::config(format!("TLS setup: {error}")))?;
    let verifier = Verifier { webpki, pinned, ca_file: ca_file.map(Path::to_path_buf) };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::config(format!("TLS setup: {error}")))?
        // "Dangerous" only in rustls' sense of "custom": `Verifier` runs the standard verifier
        // first and relaxes nothing but the chain of a pinned certificate.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|error| Error::config(format!("cannot read the CA file {}: {error}", path.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|error| {
            Error::config(format!("the CA file {} is not valid PEM: {error}", path.display()))
        })?;
    if certificates.is_empty() {
        return Err(Error::config(format!("the CA file {} holds no certificate", path.display())));
    }
    Ok(certificates)
}

/// Runs the TLS handshake over `stream`, verifying the server's certificate for `host`, within
/// `timeout` (a server that accepts the connection but never answers the handshake must not hang
/// the run). `peer` names the server in messages, e.g. `"IMAP server mail.example.org"`.
///
/// # Errors
/// [`Error::Config`] when `host` is not a valid server name or the certificate is refused,
/// [`Error::Timeout`] when the handshake takes longer than `timeout`, [`Error::Connection`] for
/// any other failure.
pub async fn handshake<S>(
    connector: &TlsConnector,
    host: &str,
    stream: S,
    timeout: Duration,
    peer: &str,
) -> Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::config(format!("{host:?} is not a valid TLS server name")))?;
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Err(_) => Err(Error::Timeout { what: format!("TLS handshake with {peer}") }),
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(error)) => Err(classify(peer, error)),
    }
}

/// A refused certificate becomes a configuration error (retrying cannot help, the user must
/// act); anything else in the handshake is treated like a cut connection.
fn classify(peer: &str, error: std::io::Error) -> Error {
    let tls = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(reason)) => {
            // Every certificate passes through `Verifier`, which explains its refusals; the
            // fallback only covers a refusal from elsewhere in rustls.
            let explained = match reason {
                CertificateError::Other(OtherError(inner)) => {
                    inner.downcast_ref::<Refusal>().map(|refusal| refusal.what.clone())
                }
                _ => None,
            };
            let what = explained.unwrap_or_else(|| format!("is not accepted: {reason}"));
            Error::config(format!("TLS certificate of {peer} {what}"))
        }
        _ => Error::Connection {
            message: format!("TLS handshake with {peer} failed"),
            source: Some(Box::new(error)),
        },
    }
}

/// The standard web-PKI verifier, plus the certificates of `ca=` accepted as pinned.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The certificates of the `ca=` file, compared byte for byte with the server's.
    pinned: Vec<CertificateDer<'static>>,
    ca_file: Option<PathBuf>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let refused = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(refused) => refused,
        };
        let is_pinned = self.pinned.iter().any(|pinned| pinned.as_ref() == end_entity.as_ref());
        let cause = if is_pinned {
            match verify_pinned(end_entity, server_name, now) {
                Ok(()) => {
                    tracing::debug!(
                        server = %server_name.to_str(),
                        "accepted the server's certificate as pinned by the ca= file ({refused})"
                    );
                    return Ok(ServerCertVerified::assertion());
                }
                Err(cause) => cause,
            }
        } else {
            refused
        };
        let what = explain(&cause, &server_name.to_str(), is_pinned, self.ca_file.as_deref());
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refusal {
            what,
            cause,
        })))))
    }

    // The handshake signatures are checked exactly as by the standard verifier, with the
    // provider's default algorithms, for pinned certificates too: that proves the server holds
    // the certificate's private key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.webpki.root_hint_subjects()
    }
}

/// The checks a pinned certificate still has to pass: its chain is vouched for by the user, its
/// name and validity period are not.
fn verify_pinned(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> std::result::Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(end_entity)?;
    verify_server_name(&parsed, server_name)?;
    // rustls does not expose the validity period, so it is read here; a certificate whose
    // period cannot be read is refused, not waved through.
    let (not_before, not_after) = validity(end_entity.as_ref()).ok_or(CertificateError::BadEncoding)?;
    if now < not_before {
        return Err(CertificateError::NotValidYetContext { time: now, not_before }.into());
    }
    if now > not_after {
        return Err(CertificateError::ExpiredContext { time: now, not_after }.into());
    }
    Ok(())
}

/// Why a certificate was refused, in words, and the refusal itself.
#[derive(Debug)]
struct Refusal {
    /// Completes "TLS certificate of PEER …".
    what: String,
    cause: rustls::Error,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// Says what is wrong with the certificate and what the user can do, completing
/// "TLS certificate of PEER …".
fn explain(cause: &rustls::Error, host: &str, pinned: bool, ca_file: Option<&Path>) -> String {
    let subject = match (pinned, ca_file) {
        (true, Some(path)) => format!("(pinned by {}) ", path.display()),
        _ => String::new(),
    };
    let rustls::Error::InvalidCertificate(reason) = cause else {
        return format!("{subject}is not accepted: {cause}");
    };
    match reason {
        CertificateError::UnknownIssuer => {
            let nor = ca_file.map(|path| format!(" nor in {}", path.display())).unwrap_or_default();
            format!(
                "{subject}is not trusted: issued by a CA that is not in the system roots{nor}; give that CA \
                 (or the server's own self-signed certificate) with ca=PATH"
            )
        }
        CertificateError::BadSignature => {
            let issuer = ca_file
                .map(|path| format!(" (in the system roots or {})", path.display()))
                .unwrap_or_default();
            format!(
                "{subject}is not trusted: it names a trusted certificate{issuer} as its issuer but is not \
                 signed by it: a different certificate under the same name (renewed, or not the real \
                 server's)"
            )
        }
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names: Vec<&str> = presented.iter().map(|name| tidy_name(name)).collect();
            let names = if names.is_empty() {
                "it names no host".to_string()
            } else {
                format!("it is for {}", names.join(", "))
            };
            format!("{subject}is not valid for {host}: {names}")
        }
        CertificateError::NotValidForName => format!("{subject}is not valid for {host}"),
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("{subject}has expired: it was valid until {}", date(*not_after))
        }
        CertificateError::Expired => format!("{subject}has expired"),
        CertificateError::NotValidYetContext { not_before, .. } => {
            format!("{subject}is not valid yet: it is valid from {} (is the clock right?)", date(*not_before))
        }
        CertificateError::NotValidYet => format!("{subject}is not valid yet (is the clock right?)"),
        CertificateError::Other(OtherError(inner))
            if matches!(inner.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity)) =>
        {
            let held = ca_file
                .map(|path| format!(" ({} does not hold exactly that certificate)", path.display()))
                .unwrap_or_default();
            format!(
                "{subject}is not trusted: the server presents a CA certificate as its own{held}; giving exactly \
                 that certificate with ca=PATH pins it"
            )
        }
        other => format!("{subject}is not accepted: {other}"),
    }
}

/// `DnsName("mail.example.org")` → `mail.example.org`, `IpAddress(127.0.0.1)` → `127.0.0.1`: the
/// names as the user would type them, from the form rustls-webpki reports them in.
fn tidy_name(presented: &str) -> &str {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| presented.strip_prefix("IpAddress(").and_then(|rest| rest.strip_suffix(')')))
        .unwrap_or(presented)
}

fn date(time: UnixTime) -> String {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
        .map(|time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{} seconds after 1970", time.as_secs()))
}

/// The validity period (notBefore, notAfter) of a DER-encoded X.509 certificate (RFC 5280
/// §4.1): `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
/// serialNumber, signature, issuer, validity SEQUENCE { notBefore, notAfter }, … }, … }`.
fn validity(der: &[u8]) -> Option<(UnixTime, UnixTime)> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    let (certificate, _) = der_element(der, SEQUENCE)?;
    let (mut tbs, _) = der_element(certificate, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = der_element(tbs, VERSION)?.1;
    }
    let (_serial, rest) = der_element(tbs, INTEGER)?;
    let (_signature, rest) = der_element(rest, SEQUENCE)?;
    let (_issuer, rest) = der_element(rest, SEQUENCE)?;
    let (validity, _) = der_element(rest, SEQUENCE)?;
    let (not_before, rest) = der_time(validity)?;
    let (not_after, rest) = der_time(rest)?;
    rest.is_empty().then_some((not_before, not_after))
}

/// One DER element with the tag `tag`: its contents and what follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: the low bits say how many length bytes follow (a certificate needs few).
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        (bytes.iter().fold(0usize, |length, &byte| (length << 8) | usize::from(byte)), rest)
    };
    (rest.len() >= length).then(|| rest.split_at(length))
}

/// A `Time` of RFC 5280 §4.1.2.5: UTCTime `YYMMDDHHMMSSZ` (years 1950–2049) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`, the only forms a certificate may use.
fn der_time(input: &[u8]) -> Option<(UnixTime, &[u8])> {
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    let tag = *input.first()?;
    let (contents, rest) = der_element(input, tag)?;
    let digits = std::str::from_utf8(contents).ok()?.strip_suffix('Z')?;
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let (year, rest_digits) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let short: i32 = digits[..2].parse().ok()?;
            (if short >= 50 { 1900 + short } else { 2000 + short }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |at: usize| rest_digits[at..at + 2].parse::<u32>().ok();
    let time = chrono::NaiveDate::from_ymd_opt(year, field(0)?, field(2)?)?
        .and_hms_opt(field(4)?, field(6)?, field(8)?)?
        .and_utc();
    // A time before 1970 is long past: as the first second it compares just the same.
    let seconds = u64::try_from(time.timestamp()).unwrap_or(0);
    Some((UnixTime::since_unix_epoch(Duration::from_secs(seconds)), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(time: UnixTime) -> u64 {
        time.as_secs()
    }

    #[test]
    fn reads_the_validity_period_in_both_time_forms() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        // 1975 is written as a UTCTime, 2051 as a GeneralizedTime.
        params.not_before = rcgen::date_time_ymd(1975, 3, 4);
        params.not_after = rcgen::date_time_ymd(2051, 11, 30);
        let certificate = params.self_signed(&key).unwrap();
        let (not_before, not_after) = validity(certificate.der().as_ref()).unwrap();
        assert_eq!(seconds(not_before), 163_123_200);
        assert_eq!(seconds(not_after), 2_584_915_200);
        assert_eq!(date(not_after), "2051-11-30 00:00:00 UTC");
    }

    #[test]
    fn refuses_what_is_not_a_certificate() {
        assert_eq!(validity(b""), None);
        assert_eq!(validity(&[0x30, 0x82, 0xff]), None);
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        let der = certificate.der().as_ref();
        // Cut anywhere, the certificate no longer parses (the lengths do not fit).
        for end in [1, 4, der.len() / 2, der.len() - 1] {
            assert_eq!(validity(&der[..end]), None, "cut at {end}");
        }
    }

    #[test]
    fn times_follow_rfc_5280() {
        let utc = |text: &str| der_time(&[&[0x17, text.len() as u8], text.as_bytes()].concat()).map(|t| t.0);
        let generalized =
            |text: &str| der_time(&[&[0x18, text.len() as u8], text.as_bytes()].concat()).map(|t| t.0);
        assert_eq!(utc("491231235959Z").map(seconds), Some(2_524_607_999));
        assert_eq!(utc("500101000000Z").map(seconds), Some(0), "1950 is before 1970: clamped");
        assert_eq!(generalized("20240229120000Z").map(seconds), Some(1_709_208_000));
        assert_eq!(utc("240229120000"), None, "no Z");
        assert_eq!(utc("240230120000Z"), None, "no 30 February");
        assert_eq!(generalized("2024022912000Z"), None, "too short");
        assert_eq!(utc("20240229120000Z"), None, "GeneralizedTime digits in a UTCTime");
        assert_eq!(utc("24022912000+Z"), None);
    }

    #[test]
    fn names_are_shown_as_typed() {
        assert_eq!(tidy_name("DnsName(\"mail.example.org\")"), "mail.example.org");
        assert_eq!(tidy_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(tidy_name("UniformResourceIdentifier(\"x\")"), "UniformResourceIdentifier(\"x\")");
    }
}
