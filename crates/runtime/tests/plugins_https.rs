//! `http.outbound` over HTTPS against local rustls servers on loopback (reached as
//! `localhost`, allowed with the test-only `allowPrivateAddresses`), their certificates made
//! with the `openssl` command: a trusted CA's certificate for `localhost` is accepted (and
//! the server sees the SNI name `localhost`, not the pinned IP); a self-signed certificate
//! added to the trust is accepted; a trusted CA's certificate for another name and an
//! untrusted CA's certificate are refused (`tls_failed`); an https → http redirect is
//! refused (`scheme_not_allowed`), http → https is followed; and the `webhooks` plugin
//! delivers to an `https` URL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use plugin_api::{Format, Origin};
use runtime::plugins::demo::Demo;
use runtime::plugins::webhooks::Webhooks;
use runtime::plugins::{HostConfig, OutboundTls, Plugins};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const WAIT: Duration = Duration::from_secs(10);

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arcp-plugins-https-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA (`ca.pem`, `ca.key`) in `dir`.
fn ca(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=arcp test CA",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    (cert, key)
}

/// A server certificate for `dns` signed by the CA `(ca_cert, ca_key)`: `(chain, key)`.
fn leaf(dir: &Path, dns: &str, (ca_cert, ca_key): (&Path, &Path)) -> (PathBuf, PathBuf) {
    let (cert, key, csr, ext) = (
        dir.join(format!("{dns}.pem")),
        dir.join(format!("{dns}.key")),
        dir.join(format!("{dns}.csr")),
        dir.join("ext.cnf"),
    );
    std::fs::write(
        &ext,
        format!(
            "subjectAltName=DNS:{dns}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &format!("/CN={dns}"),
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca_cert.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    (cert, key)
}

/// A self-signed certificate for `localhost`, as `openssl req -x509` makes it (a CA
/// certificate, which WebPKI alone refuses as an end entity).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("self.pem"), dir.join("self.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    (cert, key)
}

/// What a test server saw of one request: the SNI name and the request line's path.
type Seen = (Option<String>, String, Bytes);

/// An HTTPS server on 127.0.0.1 with `(cert, key)`. `GET /ok` answers `200 hello tls`;
/// `/downgrade` redirects to `http://localhost:{plain}/`; anything else gets `200` and its
/// body echoed. Every request is reported.
async fn https_server(cert: &Path, key: &Path, plain: u16) -> (u16, mpsc::UnboundedReceiver<Seen>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (tx, sni) = (tx.clone(), sni.clone());
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let _ = tx.send((sni, path.clone(), body.clone()));
                        let res = match path.as_str() {
                            "/ok" => Response::new(Full::new(Bytes::from_static(b"hello tls"))),
                            "/downgrade" => Response::builder()
                                .status(StatusCode::FOUND)
                                .header("location", format!("http://localhost:{plain}/"))
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                            _ => Response::new(Full::new(body)),
                        };
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    (port, rx)
}

/// A plain HTTP server on 127.0.0.1 redirecting every request to `https://localhost:{to}/ok`;
/// it reports each request it gets.
async fn plain_redirector(to: u16) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let _ = tx.send(req.uri().path().to_owned());
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(StatusCode::FOUND)
                                .header("location", format!("https://localhost:{to}/ok"))
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });
    (port, rx)
}

/// The demo plugin with `http.outbound` to `localhost` (loopback allowed), trusting `tls`.
async fn demo(tls: OutboundTls) -> Plugins {
    let policy = plugin_api::load_policy(
        &json!({"plugins": {"demo": {
            "enabled": true,
            "grant": ["agents.register", "routes", "http.outbound"],
            "outboundHosts": ["localhost"],
            "allowPrivateAddresses": true
        }}})
        .to_string(),
        Format::Json,
    )
    .unwrap();
    Plugins::load_in(&policy, vec![(Arc::new(Demo), Origin::Builtin)], HostConfig::default().tls(tls)).await.unwrap()
}

fn trusting(cert: &Path) -> OutboundTls {
    OutboundTls::system().trust_pem_file(cert).unwrap()
}

#[tokio::test]
async fn an_https_get_succeeds_and_verifies_the_host_name_not_the_ip() {
    let dir = tempdir("ok");
    let (ca_cert, ca_key) = ca(&dir);
    let (cert, key) = leaf(&dir, "localhost", (&ca_cert, &ca_key));
    let (port, mut seen) = https_server(&cert, &key, 9).await;
    let plugins = demo(trusting(&ca_cert)).await;
    let ctx = plugins.context("demo").unwrap();

    let res =
        tokio::time::timeout(WAIT, ctx.http().get(&format!("https://localhost:{port}/ok"))).await.unwrap().unwrap();
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, Bytes::from_static(b"hello tls"));
    assert!(res.peer.ip().is_loopback() && res.peer.port() == port, "{}", res.peer);
    assert_eq!(res.url, format!("https://localhost:{port}/ok"));
    let (sni, path, _) = seen.recv().await.unwrap();
    assert_eq!((sni.as_deref(), path.as_str()), (Some("localhost"), "/ok"), "SNI is the host name");

    // A POST body goes through the encrypted connection unchanged.
    let req = runtime::plugins::OutboundRequest::post(format!("https://localhost:{port}/echo"), "ping");
    let res = ctx.http().request(req).await.unwrap();
    assert_eq!(res.body, Bytes::from_static(b"ping"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_self_signed_certificate_added_to_the_trust_is_accepted() {
    let dir = tempdir("self");
    let (cert, key) = self_signed(&dir);
    let (port, _seen) = https_server(&cert, &key, 9).await;
    let plugins = demo(trusting(&cert).without_system_bundle()).await;
    let res = plugins.context("demo").unwrap().http().get(&format!("https://localhost:{port}/ok")).await.unwrap();
    assert_eq!(res.body, Bytes::from_static(b"hello tls"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let dir = tempdir("name");
    let (ca_cert, ca_key) = ca(&dir);
    let (cert, key) = leaf(&dir, "other.example", (&ca_cert, &ca_key));
    let (port, mut seen) = https_server(&cert, &key, 9).await;
    let plugins = demo(trusting(&ca_cert)).await;
    let e = plugins.context("demo").unwrap().http().get(&format!("https://localhost:{port}/ok")).await.unwrap_err();
    assert_eq!(e.reason(), "tls_failed", "{e}");
    assert!(e.to_string().to_lowercase().contains("name"), "{e}");
    assert!(seen.try_recv().is_err(), "no request reached the server");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let dir = tempdir("untrusted");
    let (ca_cert, ca_key) = ca(&dir);
    let (cert, key) = leaf(&dir, "localhost", (&ca_cert, &ca_key));
    let (port, mut seen) = https_server(&cert, &key, 9).await;
    // The system bundle only: the test CA is unknown to it.
    let plugins = demo(OutboundTls::system()).await;
    let e = plugins.context("demo").unwrap().http().get(&format!("https://localhost:{port}/ok")).await.unwrap_err();
    assert_eq!(e.reason(), "tls_failed", "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    assert!(seen.try_recv().is_err(), "no request reached the server");
    assert!(plugins.audit().iter().any(|r| r.reason == "tls_failed"), "audited: {:?}", plugins.audit());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_https_to_http_redirect_is_refused_and_http_to_https_is_followed() {
    let dir = tempdir("redirect");
    let (ca_cert, ca_key) = ca(&dir);
    let (cert, key) = leaf(&dir, "localhost", (&ca_cert, &ca_key));
    // `plain` redirects to `target` (HTTPS); `https` redirects `/downgrade` to `plain`.
    let (target, _target_seen) = https_server(&cert, &key, 9).await;
    let (plain, mut plain_seen) = plain_redirector(target).await;
    let (https, _seen) = https_server(&cert, &key, plain).await;
    let plugins = demo(trusting(&ca_cert)).await;
    let ctx = plugins.context("demo").unwrap();

    let e = ctx.http().get(&format!("https://localhost:{https}/downgrade")).await.unwrap_err();
    assert_eq!(e.reason(), "scheme_not_allowed", "{e}");
    assert!(plain_seen.try_recv().is_err(), "the plain-HTTP target was never contacted");
    assert!(plugins.audit().iter().any(|r| r.reason == "scheme_not_allowed" && r.message.contains("https -> http")));

    let res = ctx.http().get(&format!("http://localhost:{plain}/start")).await.unwrap();
    assert_eq!(res.body, Bytes::from_static(b"hello tls"));
    assert!(res.url.starts_with("https://localhost:"), "{}", res.url);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn webhooks_deliver_to_an_https_url() {
    let dir = tempdir("webhooks");
    let (ca_cert, ca_key) = ca(&dir);
    let (cert, key) = leaf(&dir, "localhost", (&ca_cert, &ca_key));
    let (port, mut seen) = https_server(&cert, &key, 9).await;
    let policy = plugin_api::load_policy(
        &json!({"plugins": {"webhooks": {
            "enabled": true,
            "grant": ["http.outbound", "session.events", "storage.kv", "scheduler", "routes"],
            "outboundHosts": ["localhost"],
            "allowPrivateAddresses": true,
            "config": {"endpoints": [{"url": format!("https://localhost:{port}/hook"), "secret": "s3"}]}
        }}})
        .to_string(),
        Format::Json,
    )
    .unwrap();
    let plugins = Plugins::load_in(
        &policy,
        vec![(Arc::new(Webhooks::default()), Origin::Builtin)],
        HostConfig::default().tls(trusting(&ca_cert)),
    )
    .await
    .unwrap();
    plugins.publish(arcp_server::JobLifecycle {
        kind: arcp_server::LifecycleKind::Result,
        job_id: "job_1".into(),
        session_id: "sess_1".into(),
        principal: "alice".into(),
        agent: "echo".into(),
        payload: json!({"result": {"ping": 1}}),
        at_millis: 1,
    });
    let (sni, path, body) = tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap();
    assert_eq!((sni.as_deref(), path.as_str()), (Some("localhost"), "/hook"));
    let delivered: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((delivered["event"].as_str(), delivered["job_id"].as_str()), (Some("job.result"), Some("job_1")));
    let _ = std::fs::remove_dir_all(&dir);
}
