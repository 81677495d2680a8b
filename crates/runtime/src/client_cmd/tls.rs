//! `wss://` for the client commands: a [`Connector`](arcp_client::Connector) that opens TCP,
//! then TLS (rustls with the ring provider, the same stack `arcp serve --tls-cert` uses), then
//! the WebSocket handshake, for every (re)connection.
//!
//! The server certificate is checked against the CA certificates of `--ca-cert` (a PEM file),
//! else against the system's CA bundle, read from its usual place. A certificate of the
//! `--ca-cert` file is also accepted as the server's own certificate when the server presents
//! exactly it (a self-signed certificate, as `openssl req -x509` makes for a local `arcp serve
//! --tls-cert`, which WebPKI refuses as "a CA used as an end entity"). Either way the host
//! name (or IP address) of the URL must be in the certificate and the handshake signatures
//! are verified.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use arcp_server::transport::TransportError;
use arcp_server::transport::ws::{self, WsTransport};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::{WebPkiServerVerifier, verify_server_name};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::ParsedCertificate;
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where systems keep their CA bundle (Debian/Ubuntu/Alpine, Fedora/RHEL, openSUSE, macOS
/// and the BSDs).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// What a `wss://` connection needs, prepared once: the TLS settings and where to connect.
#[derive(Clone)]
pub(crate) struct WssTarget {
    url: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    max_frame_bytes: usize,
}

impl WssTarget {
    /// Reads the trusted CA certificates (`ca_cert`, else the system bundle) and checks `url`.
    pub(crate) fn new(url: &str, ca_cert: Option<&Path>, max_frame_bytes: usize) -> anyhow::Result<WssTarget> {
        let parsed = url::Url::parse(url).with_context(|| format!("invalid URL {url:?}"))?;
        let (host, server_name) = match parsed.host() {
            Some(url::Host::Domain(d)) => {
                (d.to_owned(), ServerName::try_from(d.to_owned()).with_context(|| format!("invalid host name {d:?}"))?)
            }
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), ServerName::IpAddress(std::net::IpAddr::V4(ip).into())),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), ServerName::IpAddress(std::net::IpAddr::V6(ip).into())),
            None => bail!("{url:?} names no host"),
        };
        let port = parsed.port_or_known_default().unwrap_or(443);
        let (roots, pinned) = roots(ca_cert)?;
        let provider = Arc::new(ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .context("cannot build the certificate verifier")?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("the TLS provider supports no protocol version")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { webpki, pinned }))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(WssTarget {
            url: url.to_owned(),
            host,
            port,
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
            max_frame_bytes,
        })
    }

    /// One connection: TCP, TLS, WebSocket.
    pub(crate) async fn connect(&self) -> Result<WsTransport<TlsStream<TcpStream>>, TransportError> {
        let io = |what: &str, e: &dyn std::fmt::Display| TransportError::Io(format!("{what}: {e}"));
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| io(&format!("cannot connect to {}:{}", self.host, self.port), &e))?;
        let _ = tcp.set_nodelay(true);
        let tls = self.tls.connect(self.server_name.clone(), tcp).await.map_err(|e| io("TLS handshake failed", &e))?;
        let config = Some(ws::config(self.max_frame_bytes));
        let (socket, _response) =
            tokio_tungstenite::client_async_with_config(self.url.as_str(), tls, config).await.map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(r) => {
                    TransportError::Io(format!("WebSocket upgrade refused with HTTP {}", r.status()))
                }
                e => io("WebSocket handshake failed", &e),
            })?;
        Ok(WsTransport::new(socket))
    }
}

/// WebPKI, plus the certificates of `--ca-cert` accepted as they are (see the module docs).
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The certificates of `--ca-cert` (none for the system bundle).
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(verified) => Ok(verified),
            Err(e) if self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) => {
                // The very certificate the user trusts: only its name is left to check (its
                // key signs the handshake, checked below).
                verify_server_name(&ParsedCertificate::try_from(end_entity).map_err(|_| e)?, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The CA certificates to trust, and those to accept as they are (`--ca-cert` only).
fn roots(ca_cert: Option<&Path>) -> anyhow::Result<(RootCertStore, Vec<CertificateDer<'static>>)> {
    let path: PathBuf = match ca_cert {
        Some(p) => p.to_owned(),
        None => match SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
            Some(p) => p.to_owned(),
            None => bail!(
                "no system CA bundle found (looked at {}): pass --ca-cert FILE (PEM) with the CA that signed the \
                 server's certificate",
                SYSTEM_BUNDLES.join(", ")
            ),
        },
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .with_context(|| format!("cannot read the CA certificates {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        bail!("{} holds no usable CA certificate", path.display());
    }
    Ok((roots, if ca_cert.is_some() { certs } else { Vec::new() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("arcp-cli-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = WssTarget::new("wss://127.0.0.1:1/arcp", Some(&missing), 1024).err().unwrap();
        assert!(format!("{e:#}").contains("cannot read the CA certificates"), "{e:#}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = WssTarget::new("wss://127.0.0.1:1/arcp", Some(&empty), 1024).err().unwrap();
        assert!(format!("{e:#}").contains("holds no usable CA certificate"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
