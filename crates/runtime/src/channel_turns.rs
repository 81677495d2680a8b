//! How a channel turn runs an ARCP agent: [`AgentTurns`] is the `channel-core` turn runner of
//! `arcp serve`, and [`InProcessKeys`] lets it open ARCP sessions as the turn's principal.
//!
//! A turn body is `{"input": <any JSON>, "agent"?: "<name or name@version>",
//! "continuationToken"?: "<token>"}`. The turn submits one ARCP job (the named agent, or the
//! default agent) over an in-process connection authenticated as the principal that owns the
//! conversation, and maps the job onto the channel:
//!
//! | ARCP | channel |
//! |---|---|
//! | a `job.event` | `record {record: {job_id, kind, ts, body}}` |
//! | a `result_chunk` event with `encoding: "utf8"` | `delta {text: data}` (text streamed by the agent) |
//! | `job.result` | `finished {output: result}` |
//! | `job.result` after a last `status` event with phase `input_required` | `parked {wait}`: the status body without `phase`, plus `result` when the job returned one |
//! | `job.result` after a last `status` event with phase `contended` | `contended {current}`: the status body without `phase` |
//! | `job.error` with `CANCELLED`, `TIMEOUT` or `LEASE_EXPIRED` | `aborted` (nothing committed; the token stays valid) |
//! | any other `job.error`, or a refused submit | the turn failed (`500 turn-failed` / an `error` event) |
//!
//! One ARCP session per principal is opened lazily and shared by that principal's turns
//! (jobs multiplex on it), so a turn costs one submit, not a handshake.
//!
//! That session is authenticated with the process-internal key ([`InProcessKeys`]), not
//! with the user's API key, and is kept for the process lifetime. Revoking an API key does
//! not need to close it: every `/v1` request is authenticated by the HTTP layer with the
//! configured verifier (the key store is read on each request), so a revoked key gets `401`
//! on its next request and never reaches the session; the principal's other keys go on
//! using it. A turn already running when its key is revoked finishes, and a `/v1/ws`
//! connection (authenticated at its upgrade) stays open until it closes, like an open ARCP
//! session.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arcp_client::{Client, ClientError, ClientOptions, SubmitRequest};
use arcp_core::ErrorCode;
use arcp_core::agent::AgentRef;
use arcp_server::transport::memory;
use arcp_server::{BearerVerifier, Identity, Runtime};
use async_trait::async_trait;
use channel_core::{ChannelEvent, EventSink, RunnerError, Turn, TurnOutcome, TurnRunner};
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};

/// The status phase with which an agent asks for input (the turn is `parked`).
pub(crate) const PHASE_INPUT_REQUIRED: &str = "input_required";

/// The status phase with which an agent reports that the conversation's state is held
/// elsewhere (the turn is `contended`).
pub(crate) const PHASE_CONTENDED: &str = "contended";

/// Bearer keys that exist only inside this process: `<secret>.<principal>`, where the secret
/// is 256 random bits minted at startup and never leaves the process. The channel uses them
/// to open ARCP sessions as a principal the HTTP layer already authenticated.
pub(crate) struct InProcessKeys {
    secret: String,
}

impl InProcessKeys {
    /// Fresh keys from the OS CSPRNG.
    pub(crate) fn new() -> Result<Self, arcp_core::Error> {
        use arcp_core::Entropy as _;
        let mut bytes = [0u8; 32];
        arcp_core::OsEntropy.fill(&mut bytes)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(InProcessKeys { secret: format!("arcp_inproc_{hex}.") })
    }

    fn key_for(&self, principal: &str) -> String {
        format!("{}{principal}", self.secret)
    }

    /// The principal an in-process key names, if `token` is one.
    fn principal_of<'t>(&self, token: &'t str) -> Option<&'t str> {
        use subtle::ConstantTimeEq as _;
        let prefix = token.get(..self.secret.len())?;
        let same: bool = prefix.as_bytes().ct_eq(self.secret.as_bytes()).into();
        same.then(|| &token[self.secret.len()..])
    }
}

/// The verifier of `arcp serve`: in-process keys first, then the configured verifier.
pub(crate) struct ServeVerifier<V> {
    pub(crate) keys: Arc<InProcessKeys>,
    pub(crate) inner: V,
}

#[async_trait]
impl<V: BearerVerifier> BearerVerifier for ServeVerifier<V> {
    async fn verify(&self, token: &str) -> Result<Identity, arcp_server::Error> {
        match self.keys.principal_of(token) {
            Some(principal) if !principal.is_empty() => Ok(Identity { principal: principal.to_owned() }),
            _ => self.inner.verify(token).await,
        }
    }
}

/// The channel's turn runner in `arcp serve`: each turn is one ARCP job.
pub(crate) struct AgentTurns {
    runtime: Runtime,
    keys: Arc<InProcessKeys>,
    default_agent: String,
    agents: BTreeSet<String>,
    clients: tokio::sync::Mutex<HashMap<String, Client>>,
}

impl AgentTurns {
    /// Turns on `runtime`, running `default_agent` when a body names none; `agents` are the
    /// registered agent names (a body naming another is refused before anything runs).
    pub(crate) fn new(
        runtime: Runtime,
        keys: Arc<InProcessKeys>,
        default_agent: String,
        agents: impl IntoIterator<Item = String>,
    ) -> Self {
        AgentTurns {
            runtime,
            keys,
            default_agent,
            agents: agents.into_iter().collect(),
            clients: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The principal's shared in-process ARCP session, opened if needed.
    async fn client(&self, principal: &str) -> Result<Client, RunnerError> {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(principal).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let runtime = self.runtime.clone();
        let connector = move || {
            let runtime = runtime.clone();
            async move {
                let (ours, theirs) = memory::pair();
                // The channel request that runs this turn was already admitted by the rate
                // limit: its job must not take a second token.
                runtime.spawn_unlimited(theirs);
                Ok::<_, arcp_server::transport::TransportError>(ours)
            }
        };
        let options = ClientOptions::default()
            .with_token(self.keys.key_for(principal))
            .with_client("arcp-channel", env!("CARGO_PKG_VERSION"));
        let client = Client::connect_with(connector, options)
            .await
            .map_err(|e| RunnerError::new(format!("cannot open an ARCP session: {e}")))?;
        clients.insert(principal.to_owned(), client.clone());
        Ok(client)
    }

    fn agent_of<'b>(&'b self, body: &'b Value) -> &'b str {
        body.get("agent").and_then(Value::as_str).unwrap_or(&self.default_agent)
    }
}

#[async_trait]
impl TurnRunner for AgentTurns {
    fn check(&self, body: &Value) -> Result<(), String> {
        let Some(obj) = body.as_object() else {
            return Err("the body must be a JSON object: {\"input\": …, \"agent\"?: \"name\"}".into());
        };
        let agent = match obj.get("agent") {
            None | Some(Value::Null) => self.default_agent.as_str(),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err("\"agent\" must be a string (\"name\" or \"name@version\")".into()),
        };
        let parsed = AgentRef::parse(agent).map_err(|e| format!("invalid agent {agent:?}: {e}"))?;
        if !self.agents.contains(parsed.name()) {
            let known: Vec<&str> = self.agents.iter().map(String::as_str).collect();
            return Err(format!("unknown agent {:?} (known: {})", parsed.name(), known.join(", ")));
        }
        Ok(())
    }

    async fn run(&self, turn: &Turn, body: Value, emit: &mut dyn EventSink) -> Result<TurnOutcome, RunnerError> {
        let agent = self.agent_of(&body).to_owned();
        let input = body.get("input").cloned().unwrap_or(Value::Null);
        let client = self.client(&turn.owner).await?;
        let mut job = client.submit(SubmitRequest::new(agent, input)).await.map_err(failure)?;
        let job_id = job.job_id().to_string();
        let mut last_status: Option<Map<String, Value>> = None;
        let mut events = job.events();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            let value = serde_json::to_value(&event.event).unwrap_or(Value::Null);
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
            let body = value.get("body").cloned().unwrap_or(Value::Null);
            if kind == "status" {
                last_status = body.as_object().cloned();
            }
            if kind == "result_chunk"
                && body.get("encoding").and_then(Value::as_str) == Some("utf8")
                && let Some(text) = body.get("data").and_then(Value::as_str)
            {
                emit.emit(ChannelEvent::Delta { text: text.to_owned() });
                continue;
            }
            emit.emit(ChannelEvent::Record {
                record: json!({"job_id": job_id, "kind": kind, "ts": value.get("ts"), "body": body}),
            });
        }
        match job.result().await {
            Ok(result) => Ok(outcome(result.result, last_status)),
            Err(ClientError::Job { payload, .. })
                if [ErrorCode::CANCELLED, ErrorCode::TIMEOUT, ErrorCode::LEASE_EXPIRED].contains(&payload.code) =>
            {
                Ok(TurnOutcome::Aborted)
            }
            Err(e) => Err(failure(e)),
        }
    }
}

/// The outcome of a successful job whose last `status` event (if any) had `last_status`.
fn outcome(result: Option<Value>, last_status: Option<Map<String, Value>>) -> TurnOutcome {
    let Some(mut status) = last_status else { return TurnOutcome::Finished { output: result } };
    let phase = status.remove("phase");
    match phase.as_ref().and_then(Value::as_str) {
        Some(PHASE_INPUT_REQUIRED) => {
            if let Some(r) = result.filter(|r| !r.is_null()) {
                status.insert("result".into(), r);
            }
            TurnOutcome::Parked { wait: Value::Object(status) }
        }
        Some(PHASE_CONTENDED) => TurnOutcome::Contended { current: Value::Object(status) },
        _ => TurnOutcome::Finished { output: result },
    }
}

/// A failed turn: what the client sees (the ARCP code and message, never internals).
fn failure(e: ClientError) -> RunnerError {
    match e.payload() {
        Some(p) => RunnerError::new(format!("{}: {}", p.code, p.message)),
        None => RunnerError::new(format!("the job could not run: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_phases_pick_the_outcome() {
        let st = |v: Value| v.as_object().cloned();
        assert_eq!(outcome(Some(json!(1)), None), TurnOutcome::Finished { output: Some(json!(1)) });
        assert_eq!(
            outcome(Some(json!(1)), st(json!({"phase": "running"}))),
            TurnOutcome::Finished { output: Some(json!(1)) }
        );
        assert_eq!(
            outcome(Some(json!({"q": 1})), st(json!({"phase": "input_required", "message": "name?"}))),
            TurnOutcome::Parked { wait: json!({"message": "name?", "result": {"q": 1}}) }
        );
        assert_eq!(
            outcome(None, st(json!({"phase": "contended", "message": "node-2"}))),
            TurnOutcome::Contended { current: json!({"message": "node-2"}) }
        );
    }

    #[test]
    fn in_process_keys_name_their_principal_only() {
        let keys = InProcessKeys::new().unwrap();
        let k = keys.key_for("alice");
        assert_eq!(keys.principal_of(&k), Some("alice"));
        assert_eq!(keys.principal_of("alice"), None);
        assert_eq!(keys.principal_of(&k.replace("arcp_inproc_", "arcp_inproX_")), None);
        let other = InProcessKeys::new().unwrap();
        assert_eq!(other.principal_of(&k), None);
    }
}
