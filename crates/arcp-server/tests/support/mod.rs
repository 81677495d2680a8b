//! Test support: a runtime with test agents, and a scripted client over the in-memory
//! transport that sends raw JSON and reads decoded envelopes.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use arcp_core::message::Message;
use arcp_core::{DecodeOptions, Envelope, decode};
use arcp_server::transport::memory::{MemoryTransport, pair};
use arcp_server::{AgentError, AgentRegistry, JobContext, Runtime, RuntimeConfig, StaticBearerVerifier};
use serde_json::{Value, json};

pub const TOKEN: &str = "tok-alice";
pub const OTHER_TOKEN: &str = "tok-bob";
pub const ALICE_TOO: &str = "tok-alice-2";

pub fn registry() -> AgentRegistry {
    let mut reg = AgentRegistry::new();
    reg.register("echo", |ctx: JobContext, input: Value| async move {
        ctx.info("echo").await?;
        Ok(input)
    })
    .unwrap();
    reg.register("count", |ctx: JobContext, input: Value| async move {
        let n = input["n"].as_u64().unwrap_or(3);
        let delay = input["delay_ms"].as_u64().unwrap_or(0);
        for i in 1..=n {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            ctx.progress(i, Some(n), None).await?;
        }
        Ok(json!({ "count": n }))
    })
    .unwrap();
    reg.register("stream", |ctx: JobContext, input: Value| async move {
        let n = input["n"].as_u64().unwrap_or(10);
        let every = input["yield_every"].as_u64().unwrap_or(0);
        for i in 1..=n {
            ctx.info(format!("line {i}")).await?;
            if every > 0 && i % every == 0 {
                tokio::task::yield_now().await;
            }
        }
        Ok(json!({ "lines": n }))
    })
    .unwrap();
    reg.register("sleep", |ctx: JobContext, input: Value| async move {
        match input["ms"].as_u64() {
            Some(ms) => tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({ "slept_ms": ms })),
                () = ctx.cancelled() => Err(AgentError::new(arcp_core::ErrorCode::CANCELLED, "cancelled")),
            },
            None => {
                ctx.cancelled().await;
                Err(AgentError::new(arcp_core::ErrorCode::CANCELLED, "cancelled"))
            }
        }
    })
    .unwrap();
    reg.register("stubborn", |_ctx: JobContext, _input: Value| async move {
        std::future::pending::<()>().await;
        Ok(Value::Null)
    })
    .unwrap();
    reg.register("fail", |_ctx: JobContext, _input: Value| async move {
        Err(AgentError::new(arcp_core::ErrorCode::PERMISSION_DENIED, "nope").with_details(json!({ "why": "test" })))
    })
    .unwrap();
    reg.register_version("summarizer", "1.0.0", |_c: JobContext, _i: Value| async move { Ok(json!({ "v": "1.0.0" })) })
        .unwrap();
    reg.register_version("summarizer", "2.0.0", |_c: JobContext, _i: Value| async move { Ok(json!({ "v": "2.0.0" })) })
        .unwrap();
    reg.set_default("summarizer", "2.0.0").unwrap();
    reg
}

pub fn runtime_with(config: RuntimeConfig) -> Runtime {
    let verifier = StaticBearerVerifier::new()
        .with_token(TOKEN, "alice")
        .with_token(ALICE_TOO, "alice")
        .with_token(OTHER_TOKEN, "bob");
    Runtime::builder(verifier).config(config).agents(registry()).build()
}

pub fn runtime() -> Runtime {
    runtime_with(RuntimeConfig::default())
}

/// A scripted raw client.
pub struct Client {
    pub t: MemoryTransport,
    pub session_id: Option<String>,
    pub resume_token: Option<String>,
    pub last_seq: u64,
    n: u64,
}

pub const ALL_FEATURES: &[&str] = &[
    "heartbeat",
    "ack",
    "list_jobs",
    "subscribe",
    "lease_expires_at",
    "cost.budget",
    "progress",
    "result_chunk",
    "agent_versions",
];

impl Client {
    pub fn connect(rt: &Runtime) -> Client {
        let (client, server) = pair();
        rt.spawn(server);
        Client { t: client, session_id: None, resume_token: None, last_seq: 0, n: 0 }
    }

    pub fn id(&mut self) -> String {
        self.n += 1;
        format!("msg_test_{}", self.n)
    }

    pub fn send_raw(&self, frame: &str) {
        self.t.send(frame).unwrap();
    }

    pub fn send(&mut self, ty: &str, payload: Value, extra: Value) -> String {
        let id = self.id();
        let mut env = json!({ "arcp": "1.1", "id": id, "type": ty, "payload": payload });
        if let Some(s) = &self.session_id {
            env["session_id"] = json!(s);
        }
        if let Value::Object(map) = extra {
            for (k, v) in map {
                env[k] = v;
            }
        }
        self.t.send(env.to_string()).unwrap();
        id
    }

    /// The next frame, decoded; panics after 10 s of silence.
    pub async fn next(&mut self) -> Envelope {
        let frame = tokio::time::timeout(Duration::from_secs(10), self.t.recv())
            .await
            .expect("a frame within 10 s")
            .expect("the connection is open");
        let env = decode(frame.as_bytes(), &DecodeOptions::default())
            .unwrap_or_else(|f| panic!("undecodable frame {frame}: {}", f.error));
        if let Some(seq) = env.event_seq {
            assert_eq!(seq.get(), self.last_seq + 1, "event_seq must be gap-free: {frame}");
            self.last_seq = seq.get();
        }
        env
    }

    /// Whether the server closed the connection within 5 s (frames still in flight are
    /// skipped).
    pub async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.t.recv()).await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    pub async fn hello_with(&mut self, token: &str, features: Option<&[&str]>) -> Envelope {
        let mut payload =
            json!({ "client": { "name": "test", "version": "0" }, "auth": { "scheme": "bearer", "token": token } });
        if let Some(f) = features {
            payload["capabilities"] = json!({ "features": f });
        }
        self.send_hello(payload).await
    }

    /// Sends `session.hello` with `payload` and adopts the welcome's session id and token.
    async fn send_hello(&mut self, payload: Value) -> Envelope {
        self.send("session.hello", payload, json!({}));
        let welcome = self.next().await;
        if let Message::SessionWelcome(w) = &welcome.message {
            self.session_id = welcome.session_id.as_ref().map(|s| s.to_string());
            self.resume_token = Some(w.resume_token.expose().to_owned());
        }
        welcome
    }

    pub async fn hello(&mut self) -> Envelope {
        self.hello_with(TOKEN, Some(ALL_FEATURES)).await
    }

    pub async fn resume(&mut self, session_id: &str, token: &str, last_seq: u64) -> Envelope {
        let payload = json!({
            "client": { "name": "test", "version": "0" },
            "auth": { "scheme": "bearer", "token": TOKEN },
            "capabilities": { "features": ALL_FEATURES },
            "resume": { "session_id": session_id, "resume_token": token, "last_event_seq": last_seq },
        });
        self.last_seq = last_seq;
        self.send_hello(payload).await
    }

    pub fn submit(&mut self, agent: &str, input: Value) -> String {
        self.send("job.submit", json!({ "agent": agent, "input": input }), json!({}))
    }

    /// Reads until the terminal envelope of `job_id`, returning every envelope of that job.
    pub async fn until_terminal(&mut self, job_id: &str) -> Vec<Envelope> {
        let mut out = Vec::new();
        loop {
            let env = self.next().await;
            let mine = env.job_id.as_ref().is_some_and(|j| j.as_str() == job_id);
            let terminal = matches!(env.message, Message::JobResult(_) | Message::JobError(_));
            if mine {
                out.push(env);
                if terminal {
                    return out;
                }
            }
        }
    }
}

pub fn job_id_of(env: &Envelope) -> String {
    env.job_id.as_ref().expect("job_id").to_string()
}

pub fn kind(env: &Envelope) -> String {
    match &env.message {
        Message::JobEvent(e) => format!("event:{}", e.body.kind()),
        other => other.type_name().to_owned(),
    }
}
