//! `Client::connect_ws` against the runtime served over real WebSockets on localhost, with a
//! TCP proxy in between that the test can cut to force a resume over a new WebSocket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arcp_client::{Client, SubmitRequest};
use arcp_server::Runtime;
use arcp_server::transport::ws;
use futures_util::StreamExt as _;
use serde_json::json;
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MAX: usize = 1 << 20;

async fn serve(rt: Runtime) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let rt = rt.clone();
            tokio::spawn(async move {
                if let Ok(transport) = ws::accept(stream, "/arcp", MAX).await {
                    rt.serve(transport).await;
                }
            });
        }
    });
    addr
}

/// A TCP proxy to `upstream` whose live connections can all be cut at once.
#[derive(Clone, Default)]
struct Proxy {
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(&self, upstream: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = self.conns.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(task);
            }
        });
        addr
    }

    fn cut(&self) {
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_websocket_a_cut_connection_is_resumed_on_a_new_one() {
    let rt = runtime();
    let server = serve(rt).await;
    let proxy = Proxy::default();
    let addr = proxy.start(server).await;
    let client =
        within(Client::connect_ws(format!("ws://{addr}/arcp"), options().with_max_frame_bytes(MAX))).await.unwrap();
    assert!(client.session_id().as_str().starts_with("sess_"));

    let echo = within(client.submit(SubmitRequest::new("echo", json!({"over": "ws"})))).await.unwrap();
    assert_eq!(within(echo.result()).await.unwrap().result, Some(json!({"over": "ws"})));

    let mut job = within(client.submit(SubmitRequest::new("count", json!({"n": 30, "delay_ms": 4})))).await.unwrap();
    let mut stream = job.events();
    let mut events = Vec::new();
    while let Some(item) = within(stream.next()).await {
        events.push(item.unwrap());
        if events.len() == 5 {
            proxy.cut();
        }
    }
    let counts: Vec<u64> = events.iter().filter_map(progress_current).collect();
    assert_eq!(counts, (1..=30).collect::<Vec<_>>(), "every event exactly once, in order");
    assert!(events.windows(2).all(|w| w[1].event_seq.get() == w[0].event_seq.get() + 1));
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!({"count": 30})));
    assert_eq!(client.resumes(), 1);
    within(client.close()).await.unwrap();
}
