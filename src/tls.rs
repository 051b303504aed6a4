//! rustls client (and test server) configuration from config paths: system or configured CA, client certificates.
//!
//! Everything uses rustls' `ring` provider explicitly (never a process-wide
//! default provider) with rustls' safe default protocol versions (TLS 1.2
//! and 1.3). Certificate and hostname checks are always on; the carrier's
//! config may override the name checked (SNI) but never switches the check
//! off. TLS is chosen per carrier, never inferred from the port
//! (CARRIERS.md §6).
//!
//! This is shell code: [`connect`] performs the handshake over a connected
//! `TcpStream`; the caller bounds it with its connect timeout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// What went wrong building a TLS configuration or connecting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A configured certificate or key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM section could not be parsed.
    #[error("invalid PEM in {what}: {detail}")]
    Pem {
        /// Which input (file path or "certificate", "key").
        what: String,
        /// The parser's complaint.
        detail: String,
    },
    /// The input held no certificate.
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    /// The input held no private key.
    #[error("no private key found in {0}")]
    NoPrivateKey(String),
    /// A client certificate was configured without its key, or the reverse.
    #[error("client certificate and client key must be configured together")]
    ClientAuthIncomplete,
    /// The operating system's trust store gave no usable root certificate.
    #[error("no usable root certificate in the system trust store")]
    NoSystemRoots,
    /// A CA certificate was rejected by the trust store.
    #[error("invalid CA certificate in {what}: {source}")]
    BadCa {
        /// Which input.
        what: String,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// The host name (or its override) is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// rustls refused the configuration (e.g. key does not match).
    #[error("tls configuration rejected: {0}")]
    Config(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The handshake failed: unknown CA, wrong host name, protocol error, or
    /// the connection closed.
    #[error("tls handshake failed: {0}")]
    Handshake(#[source] std::io::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what.to_owned()));
    }
    Ok(certs)
}

fn key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey(what.to_owned()),
        other => TlsError::Pem {
            what: what.to_owned(),
            detail: other.to_string(),
        },
    })
}

fn roots_from_pem(pem: &[u8], what: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(pem, what)? {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            what: what.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "skipping part of the system trust store");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "unparsable certificates in the system trust store");
    }
    if added == 0 {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(roots)
}

/// A client configuration from PEM bytes: trust `ca_pem` (or the system
/// store when `None`), and present `client` = (certificate chain, key) when
/// given.
///
/// # Errors
/// Bad PEM, no certificate or key, an unusable CA, or a key that does not
/// match the certificate.
pub fn client_config_pem(
    ca_pem: Option<&[u8]>,
    client: Option<(&[u8], &[u8])>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = match ca_pem {
        Some(pem) => roots_from_pem(pem, "CA certificate")?,
        None => system_roots()?,
    };
    let client = match client {
        Some((cert_pem, key_pem)) => Some((
            certs(cert_pem, "client certificate")?,
            key(key_pem, "client key")?,
        )),
        None => None,
    };
    build_client(roots, client)
}

fn build_client(
    roots: RootCertStore,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let cfg = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// The client configuration for a carrier from its config paths: `ca` (PEM
/// bundle; the system trust store when `None`), and an optional client
/// certificate chain and key (PEM; both or neither).
///
/// # Errors
/// Unreadable files (the error names the path), bad PEM, a certificate
/// without its key (or the reverse), an empty system store.
pub fn client_config(
    ca: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let client = match (client_cert, client_key) {
        (Some(cert_path), Some(key_path)) => Some((
            certs(&read(cert_path)?, &cert_path.display().to_string())?,
            key(&read(key_path)?, &key_path.display().to_string())?,
        )),
        (None, None) => None,
        _ => return Err(TlsError::ClientAuthIncomplete),
    };
    let roots = match ca {
        Some(path) => roots_from_pem(&read(path)?, &path.display().to_string())?,
        None => system_roots()?,
    };
    build_client(roots, client)
}

/// The name the server certificate must carry: `override_name` when the
/// carrier config sets one (SNI override), else the host we connect to. An
/// IP address is checked against the certificate's IP SANs.
///
/// # Errors
/// [`TlsError::InvalidServerName`] for an empty or malformed name.
pub fn server_name(
    host: &str,
    override_name: Option<&str>,
) -> Result<ServerName<'static>, TlsError> {
    let name = override_name.unwrap_or(host).trim();
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::InvalidServerName(name.to_owned()))
}

/// Runs the TLS handshake over a connected socket, checking the server's
/// certificate chain and `name`.
///
/// # Errors
/// [`TlsError::Handshake`] when the certificate is not trusted, does not
/// match `name`, or the connection fails.
///
/// # Cancel safety
/// Dropping the future drops the connection; nothing else is lost. Bound it
/// with the connect timeout.
pub async fn connect(
    tcp: TcpStream,
    cfg: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Result<TlsStream<TcpStream>, TlsError> {
    TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(TlsError::Handshake)
}

/// A server configuration for the simulator (and tests) from PEM bytes: the
/// certificate chain and its private key; no client certificate asked for.
///
/// # Errors
/// Bad PEM, no certificate or key, or a key that does not match.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_client_auth(cert_pem, key_pem, None)
}

/// Like [`server_config`], and when `client_ca_pem` is given, every client
/// must present a certificate issued by one of those CAs.
///
/// # Errors
/// As [`server_config`], plus an unusable client CA.
pub fn server_config_with_client_auth(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certs(cert_pem, "server certificate")?;
    let key = key(key_pem, "server key")?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_ca_pem {
        Some(pem) => {
            let roots = Arc::new(roots_from_pem(pem, "client CA certificate")?);
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots, provider()).build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(builder.with_single_cert(chain, key)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_prefers_the_override() {
        let n = server_name("10.0.0.7", Some("smpp.carrier.example")).unwrap();
        assert_eq!(n.to_str(), "smpp.carrier.example");
        let n = server_name("smpp.carrier.example", None).unwrap();
        assert_eq!(n.to_str(), "smpp.carrier.example");
    }

    #[test]
    fn ip_host_becomes_an_ip_server_name() {
        assert!(matches!(
            server_name("127.0.0.1", None).unwrap(),
            ServerName::IpAddress(_)
        ));
    }

    #[test]
    fn rejects_empty_or_malformed_server_name() {
        assert!(matches!(
            server_name("", None),
            Err(TlsError::InvalidServerName(_))
        ));
        assert!(matches!(
            server_name("host", Some("bad name!")),
            Err(TlsError::InvalidServerName(_))
        ));
    }

    #[test]
    fn rejects_pem_without_certificate() {
        assert!(matches!(
            client_config_pem(Some(b"not a pem file"), None),
            Err(TlsError::NoCertificate(_))
        ));
    }

    #[test]
    fn rejects_client_cert_without_key() {
        let p = Path::new("/nonexistent/cert.pem");
        assert!(matches!(
            client_config(None, Some(p), None),
            Err(TlsError::ClientAuthIncomplete)
        ));
    }

    #[test]
    fn unreadable_ca_file_names_the_path() {
        let e = client_config(Some(Path::new("/nonexistent/ca.pem")), None, None).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
