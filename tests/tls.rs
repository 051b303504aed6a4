//! TLS to a carrier, over real loopback sockets: certificates are made here
//! with rcgen, a tokio-rustls server built from `smppgw::tls::server_config*`
//! listens on 127.0.0.1:0, and the client side is `smppgw::tls`.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{CertificateError, ServerConfig};
use smppgw::tls::{self, TlsError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A certificate authority that can issue leaf certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `names`, usable as a server or client.
    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        params
            .distinguished_name
            .push(DnType::CommonName, "smppgw test");
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A TLS server on loopback that accepts one connection, reads "ping" and
/// answers "pong". The handle yields whether the server-side handshake
/// succeeded.
async fn serve_once(cfg: Arc<ServerConfig>) -> (SocketAddr, JoinHandle<Result<(), String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = TlsAcceptor::from(cfg)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        if &buf != b"ping" {
            return Err("unexpected bytes".into());
        }
        tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok(())
    });
    (addr, handle)
}

/// Connects, says "ping", expects "pong".
async fn ping(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    host: &str,
    sni: Option<&str>,
) -> Result<(), TlsError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = tls::server_name(host, sni)?;
    let mut stream = tls::connect(tcp, cfg, name).await?;
    stream
        .write_all(b"ping")
        .await
        .map_err(TlsError::Handshake)?;
    let mut buf = [0u8; 4];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(TlsError::Handshake)?;
    assert_eq!(&buf, b"pong");
    Ok(())
}

/// The rustls reason inside a handshake failure.
fn rustls_reason(e: &TlsError) -> Option<&rustls::Error> {
    match e {
        TlsError::Handshake(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

fn server(ca: &Ca, names: &[&str]) -> Arc<ServerConfig> {
    let (cert, key) = ca.issue(names, ExtendedKeyUsagePurpose::ServerAuth);
    tls::server_config(cert.as_bytes(), key.as_bytes()).unwrap()
}

#[tokio::test]
async fn connects_with_the_right_ca_and_hostname() {
    let ca = Ca::new("carrier CA");
    let (addr, srv) = serve_once(server(&ca, &["smsc.carrier.test"])).await;
    let cfg = tls::client_config_pem(Some(ca.pem.as_bytes()), None).unwrap();
    // Connect to the IP, check the carrier's name (SNI override).
    ping(addr, cfg, "127.0.0.1", Some("smsc.carrier.test"))
        .await
        .unwrap();
    srv.await.unwrap().unwrap();
}

#[tokio::test]
async fn connects_by_ip_address_when_the_certificate_names_it() {
    let ca = Ca::new("carrier CA");
    let (addr, srv) = serve_once(server(&ca, &["127.0.0.1"])).await;
    let cfg = tls::client_config_pem(Some(ca.pem.as_bytes()), None).unwrap();
    ping(addr, cfg, "127.0.0.1", None).await.unwrap();
    srv.await.unwrap().unwrap();
}

#[tokio::test]
async fn rejects_a_server_signed_by_an_unknown_ca() {
    let ca = Ca::new("carrier CA");
    let other = Ca::new("someone else");
    let (addr, srv) = serve_once(server(&ca, &["localhost"])).await;
    let cfg = tls::client_config_pem(Some(other.pem.as_bytes()), None).unwrap();
    let err = ping(addr, cfg, "localhost", None).await.unwrap_err();
    assert!(
        matches!(
            rustls_reason(&err),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
    assert!(srv.await.unwrap().is_err());
}

#[tokio::test]
async fn rejects_a_certificate_for_another_hostname() {
    let ca = Ca::new("carrier CA");
    let (addr, srv) = serve_once(server(&ca, &["smsc.carrier.test"])).await;
    let cfg = tls::client_config_pem(Some(ca.pem.as_bytes()), None).unwrap();
    let err = ping(addr, cfg, "smsc.other.test", None).await.unwrap_err();
    assert!(
        matches!(
            rustls_reason(&err),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err:?}"
    );
    assert!(srv.await.unwrap().is_err());
}

#[tokio::test]
async fn client_certificate_is_accepted_when_the_server_requires_one() {
    let server_ca = Ca::new("carrier CA");
    let client_ca = Ca::new("our client CA");
    let (cert, key) = server_ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let srv_cfg = tls::server_config_with_client_auth(
        cert.as_bytes(),
        key.as_bytes(),
        Some(client_ca.pem.as_bytes()),
    )
    .unwrap();
    let (addr, srv) = serve_once(srv_cfg).await;

    let (ccert, ckey) = client_ca.issue(&["gateway.test"], ExtendedKeyUsagePurpose::ClientAuth);
    let cfg = tls::client_config_pem(
        Some(server_ca.pem.as_bytes()),
        Some((ccert.as_bytes(), ckey.as_bytes())),
    )
    .unwrap();
    ping(addr, cfg, "localhost", None).await.unwrap();
    srv.await.unwrap().unwrap();
}

#[tokio::test]
async fn server_refuses_a_client_without_certificate_when_required() {
    let server_ca = Ca::new("carrier CA");
    let client_ca = Ca::new("our client CA");
    let (cert, key) = server_ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let srv_cfg = tls::server_config_with_client_auth(
        cert.as_bytes(),
        key.as_bytes(),
        Some(client_ca.pem.as_bytes()),
    )
    .unwrap();
    let (addr, srv) = serve_once(srv_cfg).await;
    let cfg = tls::client_config_pem(Some(server_ca.pem.as_bytes()), None).unwrap();
    // With TLS 1.3 the client may only learn of the refusal on its first read.
    assert!(ping(addr, cfg, "localhost", None).await.is_err());
    assert!(srv.await.unwrap().is_err());
}

#[tokio::test]
async fn client_config_reads_ca_and_client_certificate_files() {
    let server_ca = Ca::new("carrier CA");
    let client_ca = Ca::new("our client CA");
    let (cert, key) = server_ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let srv_cfg = tls::server_config_with_client_auth(
        cert.as_bytes(),
        key.as_bytes(),
        Some(client_ca.pem.as_bytes()),
    )
    .unwrap();
    let (addr, srv) = serve_once(srv_cfg).await;

    let dir = tempfile::tempdir().unwrap();
    let (ccert, ckey) = client_ca.issue(&["gateway.test"], ExtendedKeyUsagePurpose::ClientAuth);
    let ca_path = dir.path().join("ca.pem");
    let cert_path = dir.path().join("client.pem");
    let key_path = dir.path().join("client.key");
    std::fs::write(&ca_path, &server_ca.pem).unwrap();
    std::fs::write(&cert_path, ccert).unwrap();
    std::fs::write(&key_path, ckey).unwrap();
    let cfg = tls::client_config(Some(&ca_path), Some(&cert_path), Some(&key_path)).unwrap();
    ping(addr, cfg, "localhost", None).await.unwrap();
    srv.await.unwrap().unwrap();
}

#[test]
fn rejects_a_key_that_does_not_match_the_certificate() {
    let ca = Ca::new("carrier CA");
    let (cert, _) = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (_, other_key) = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    assert!(tls::server_config(cert.as_bytes(), other_key.as_bytes()).is_err());
}
