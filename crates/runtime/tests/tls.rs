//! `arcp serve --tls-cert/--tls-key`: the one listener speaks TLS (wss://, https://), a
//! non-loopback bind needs no --insecure then, plain HTTP to it fails, and bad files are a
//! clear startup error (exit 2). Certificates are made with the `openssl` command.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl made the certificate");
    (cert, key)
}

/// `arcp serve --token t` on `listen` with the TLS files `cert` and `key`.
fn serve_tls(listen: &str, cert: &Path, key: &Path) -> common::Arcp {
    common::spawn(&[
        "serve",
        "--listen",
        listen,
        "--token",
        "t",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arcp-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn curl(args: &[&str]) -> String {
    let out =
        tokio::process::Command::new("curl").args(["-sS", "-w", " %{http_code}"]).args(args).output().await.unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_speaks_tls_when_given_a_certificate() {
    let dir = tempdir("ok");
    let (cert, key) = self_signed(&dir);
    let mut arcp = serve_tls("127.0.0.1:0", &cert, &key);
    let line = arcp.line().await;
    let url = line.strip_prefix("arcp listening on ").unwrap_or_else(|| panic!("{line}")).to_owned();
    assert!(url.starts_with("wss://127.0.0.1:") && url.ends_with("/arcp"), "{url}");
    let base = url.replace("wss://", "https://").trim_end_matches("/arcp").to_owned();
    let ok = curl(&["--cacert", cert.to_str().unwrap(), &format!("{base}/healthz")]).await;
    assert!(ok.ends_with(" 200") && ok.contains("ok"), "{ok}");
    // The channel over HTTPS needs the key like over HTTP.
    let unauthorized = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &format!("{base}/v1/session"),
    ])
    .await;
    assert!(unauthorized.ends_with(" 401"), "{unauthorized}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = curl(&["--max-time", "5", &format!("{}/healthz", base.replace("https://", "http://"))]).await;
    assert!(!plain.ends_with(" 200"), "{plain}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_a_non_loopback_bind_needs_no_insecure() {
    let dir = tempdir("public");
    let (cert, key) = self_signed(&dir);
    let mut arcp = serve_tls("0.0.0.0:0", &cert, &key);
    let line = arcp.line().await;
    assert!(line.starts_with("arcp listening on wss://0.0.0.0:"), "{line}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_tls_files_are_a_clear_startup_error() {
    let dir = tempdir("bad");
    let (cert, key) = self_signed(&dir);
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a pem file").unwrap();
    for (c, k, expect) in [
        (garbage.as_path(), key.as_path(), "no certificate"),
        (cert.as_path(), garbage.as_path(), "private key"),
        (Path::new("/nonexistent/cert.pem"), key.as_path(), "cannot read the TLS certificate"),
    ] {
        let mut arcp = serve_tls("127.0.0.1:0", c, k);
        assert_eq!(arcp.exit_code().await, Some(2), "{expect}");
        let stderr = arcp.stderr().await;
        assert!(stderr.contains(expect), "{expect}: {stderr}");
    }
    // One without the other is a usage error too.
    let mut arcp = common::spawn(&["serve", "--token", "t", "--tls-cert", cert.to_str().unwrap()]);
    assert_eq!(arcp.exit_code().await, Some(2));
    let _ = std::fs::remove_dir_all(dir);
}
