//! The TLS client of `http.outbound` (rustls with the ring provider, the stack `arcp serve
//! --tls-cert` and the `wss://` client commands use).
//!
//! [`OutboundTls`] decides what a server certificate must chain to: the system's CA bundle
//! (read from its usual place, the first of [`SYSTEM_BUNDLES`] found, as the client commands
//! do) plus any certificate the embedder added with [`OutboundTls::trust_pem`] (an internal
//! CA; tests add the certificate of their loopback server). A certificate added that way is
//! also accepted as the server's own certificate when the server presents exactly it (a
//! self-signed certificate, which WebPKI refuses as "a CA used as an end entity"). Either way
//! the certificate must name the **host name of the URL** (never the IP address the
//! connection was pinned to) and the handshake signatures are verified.
//!
//! The configuration is built on the first `https` call and kept: a missing system bundle
//! fails `https` calls (`tls_failed`), not the load.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::{WebPkiServerVerifier, verify_server_name};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::ParsedCertificate;
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::PluginError;

/// Where systems keep their CA bundle (Debian/Ubuntu/Alpine, Fedora/RHEL, openSUSE, macOS
/// and the BSDs).
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// What outbound `https` calls trust (see the module docs). Cheap to clone.
#[derive(Clone, Default)]
pub struct OutboundTls {
    /// Certificates trusted in addition to the system bundle.
    extra: Vec<CertificateDer<'static>>,
    /// Whether the system bundle is read (off only for tests that want a closed trust set).
    no_system: bool,
    built: Arc<OnceLock<Result<TlsConnector, String>>>,
}

impl std::fmt::Debug for OutboundTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundTls")
            .field("extra", &self.extra.len())
            .field("system_bundle", &!self.no_system)
            .finish_non_exhaustive()
    }
}

impl OutboundTls {
    /// The system CA bundle only.
    pub fn system() -> Self {
        Self::default()
    }

    /// Also trusts the certificates of `pem` (one or more PEM `CERTIFICATE` blocks): CA
    /// certificates, or a server's own self-signed certificate. An `invalid_argument` error
    /// if `pem` holds no certificate.
    pub fn trust_pem(mut self, pem: &[u8]) -> Result<Self, PluginError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| PluginError::Invalid(format!("not a PEM certificate file: {e}")))?;
        if certs.is_empty() {
            return Err(PluginError::Invalid("the PEM data holds no certificate".to_owned()));
        }
        self.extra.extend(certs);
        self.built = Arc::default();
        Ok(self)
    }

    /// [`OutboundTls::trust_pem`] of a file's contents.
    pub fn trust_pem_file(self, path: &Path) -> Result<Self, PluginError> {
        let pem = std::fs::read(path).map_err(|e| PluginError::Invalid(format!("{}: {e}", path.display())))?;
        self.trust_pem(&pem)
    }

    /// Trusts only the certificates given with [`OutboundTls::trust_pem`], not the system
    /// bundle (for tests that need a closed set of trusted certificates).
    #[must_use]
    pub fn without_system_bundle(mut self) -> Self {
        self.no_system = true;
        self.built = Arc::default();
        self
    }

    /// The connector, built on first use.
    pub(crate) fn connector(&self) -> Result<TlsConnector, PluginError> {
        self.built.get_or_init(|| self.build()).clone().map_err(PluginError::Tls)
    }

    fn build(&self) -> Result<TlsConnector, String> {
        let mut roots = RootCertStore::empty();
        if !self.no_system {
            match SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("cannot read the CA bundle {}: {e}", path.display()))?
                        .filter_map(Result::ok);
                    roots.add_parsable_certificates(certs);
                }
                None if self.extra.is_empty() => {
                    return Err(format!("no system CA bundle found (looked at {})", SYSTEM_BUNDLES.join(", ")));
                }
                None => {}
            }
        }
        roots.add_parsable_certificates(self.extra.iter().cloned());
        if roots.is_empty() {
            return Err("no trusted CA certificate: https calls cannot be verified".to_owned());
        }
        let provider = Arc::new(ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("the TLS provider supports no protocol version: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { webpki, pinned: self.extra.clone() }))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConnector::from(Arc::new(config)))
    }
}

/// The TLS server name of `host` (a DNS name: the allowlist refuses IP literals).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, PluginError> {
    ServerName::try_from(host.to_owned()).map_err(|e| PluginError::Tls(format!("{host} is not a TLS server name: {e}")))
}

/// WebPKI, plus the extra certificates accepted as they are (see the module docs).
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The certificates added with [`OutboundTls::trust_pem`].
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
                // The very certificate the embedder trusts: only its name is left to check
                // (its key signs the handshake, checked below).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_refused_and_an_empty_trust_set_fails_calls() {
        assert_eq!(OutboundTls::system().trust_pem(b"nothing here").unwrap_err().reason(), "invalid_argument");
        let e = OutboundTls::system().without_system_bundle().connector().err().unwrap();
        assert_eq!(e.reason(), "tls_failed", "{e}");
        assert!(server_name("api.example.com").is_ok());
        assert!(server_name("bad host").is_err());
    }
}
