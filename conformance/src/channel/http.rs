//! The HTTP driver: plain JSON or SSE requests through the [`HttpClient`], normalised to
//! [`Answer`]s.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::client::{HttpClient, Req, Resp, RespBody, encode_segment};
use super::driver::{Answer, ChannelDriver, answer_from_events, is_refusal, parse_event};
use crate::Failure;

/// The HTTP driver: buffered JSON, or SSE when `sse`.
pub(crate) struct HttpDriver {
    pub(crate) client: HttpClient,
    pub(crate) sse: bool,
}

impl HttpDriver {
    /// A driver for `base_url`.
    pub(crate) fn new(base_url: &str, bearer: Option<String>, sse: bool) -> Result<HttpDriver, Failure> {
        Ok(HttpDriver { client: HttpClient::new(base_url, bearer)?, sse })
    }

    fn turn(&self, path: String, token: Option<&str>, body: &Value) -> Req {
        let mut req = Req::post_json(path, body);
        if let Some(t) = token {
            req = req.header("x-continuation-token", t);
        }
        if self.sse { req.sse() } else { req }
    }

    /// Normalises a turn response: SSE events, a JSON reply, or a JSON error.
    pub(crate) fn interpret(&self, resp: Resp) -> Result<Answer, Failure> {
        if let RespBody::Events(raw) = &resp.body {
            if resp.status != 200 {
                return Err(format!("an SSE stream with HTTP {}", resp.status));
            }
            let mut events = Vec::with_capacity(raw.len());
            let mut reasons = Vec::with_capacity(raw.len());
            for (name, data) in raw {
                let v: Value = serde_json::from_str(data).map_err(|e| format!("SSE data is not JSON ({e}): {data}"))?;
                if name.as_deref() != v["type"].as_str() {
                    return Err(format!("SSE `event: {name:?}` does not match the data's type: {data}"));
                }
                let (event, reason) = parse_event(&v)?;
                events.push(event);
                reasons.push(reason);
            }
            // A refusal streamed as an `error` event breaks the SSE rule; it still counts as
            // a refusal here so each case judges its own rule, and
            // `rest_sse_refusals_are_statuses_not_streams` checks the statuses.
            return answer_from_events(events, reasons);
        }
        if resp.status == 200 {
            if self.sse {
                return Err(format!("asked for text/event-stream, got HTTP 200 {}", resp.content_type));
            }
            let v = resp.json()?;
            let reply = serde_json::from_value(v.clone()).map_err(|e| format!("not a turn reply ({e}): {v}"))?;
            return Ok(Answer::Reply { reply, events: Vec::new() });
        }
        let (reason, message) = resp.error_body()?;
        if is_refusal(&reason) {
            Ok(Answer::Refused(reason))
        } else {
            Ok(Answer::Failed { reason: Some(reason), message, events: Vec::new() })
        }
    }
}

#[async_trait]
impl ChannelDriver for HttpDriver {
    async fn start(&self, body: Value) -> Result<Answer, Failure> {
        let resp = self.client.send(self.turn("/v1/session".into(), None, &body)).await?;
        self.interpret(resp)
    }

    async fn advance(&self, session: &str, token: Option<&str>, body: Value) -> Result<Answer, Failure> {
        let path = format!("/v1/session/{}/message", encode_segment(session));
        let resp = self.client.send(self.turn(path, token, &body)).await?;
        self.interpret(resp)
    }

    async fn recover(&self, session: &str, token: Option<&str>) -> Result<Answer, Failure> {
        let path = format!("/v1/session/{}/recover", encode_segment(session));
        let resp = self.client.send(self.turn(path, token, &json!({}))).await?;
        self.interpret(resp)
    }

    async fn info(&self, session: &str) -> Result<Option<Value>, Failure> {
        let resp = self.client.send(Req::get(format!("/v1/session/{}", encode_segment(session)))).await?;
        match resp.status {
            200 => resp.json().map(Some),
            404 => {
                let (reason, _) = resp.error_body()?;
                if reason == "unknown-session" {
                    Ok(None)
                } else {
                    Err(format!("GET info: HTTP 404 with reason `{reason}`, expected `unknown-session`"))
                }
            }
            s => Err(format!("GET info: HTTP {s}: {:?}", resp.json())),
        }
    }
}
