//! `arcp submit AGENT [INPUT_JSON]`: submits a job and follows it to its end.
//!
//! Prints `job.accepted`, every event, then the result (or the error), in the chosen output
//! mode (see the [module docs](super)); exits with the job's status. The client resumes the
//! session across disconnects, and a submit caught by one is resent with the same
//! idempotency key, so the agent never runs twice.

use std::io::Read as _;

use anyhow::Context as _;
use arcp_client::{ClientError, SubmitRequest};
use arcp_core::message::ErrorStatus;
use serde_json::Value;

use super::args::SubmitArgs;
use super::output::Printer;
use super::{EXIT_FAILED, connect, follow, output_failed};
use crate::Failure;

/// Runs `arcp submit`.
pub(crate) async fn run(args: SubmitArgs) -> Result<(), Failure> {
    let input = read_input(args.input.as_deref())?;
    let mut request = SubmitRequest::new(args.agent, input);
    if let Some(key) = args.idempotency_key {
        if key.is_empty() {
            return Err(Failure::Usage("--idempotency-key must not be empty".to_owned()));
        }
        request = request.with_idempotency_key(key);
    }
    if let Some(lease) = &args.lease {
        let lease = serde_json::from_str(lease).map_err(|e| {
            Failure::Usage(format!(
                "--lease is not a lease ({e}): give a JSON object of capability → glob patterns, e.g. \
                 '{{\"agent.delegate\": [\"echo\"]}}'"
            ))
        })?;
        request = request.with_lease(lease);
    }
    if let Some(secs) = args.max_runtime_sec {
        request = request.with_max_runtime_sec(secs);
    }
    let client = connect(&args.connect).await?;
    let mut printer = Printer::stdout(args.output.json);
    let outcome = match client.submit(request).await {
        Ok(mut job) => {
            printer.accepted(job.accepted()).map_err(output_failed)?;
            let job_id = job.job_id().clone();
            let events = job.events();
            follow(&client, &job_id, events, job.result(), &mut printer).await
        }
        Err(ClientError::Refused { payload }) => {
            printer.job_error(None, ErrorStatus::Error, &payload).map_err(output_failed)?;
            Err(Failure::Status(EXIT_FAILED))
        }
        Err(e) => Err(Failure::Fatal(anyhow::anyhow!("the submit failed: {e}"))),
    };
    let _ = client.close().await;
    outcome
}

/// The agent's input: `null` when absent, stdin for `-`, else the argument, as JSON.
fn read_input(arg: Option<&str>) -> Result<Value, Failure> {
    let (text, from) = match arg {
        None => return Ok(Value::Null),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read the input from stdin")?;
            (text, "the input read from stdin")
        }
        Some(text) => (text.to_owned(), "INPUT_JSON"),
    };
    parse_input(&text, from)
}

fn parse_input(text: &str, from: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        Failure::Usage(format!(
            "{from} is not valid JSON ({e}): give the agent's input as one JSON value, quoted for the shell, e.g. \
             '{{\"n\": 50}}'"
        ))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_bad_lease_is_a_usage_error_before_connecting() {
        for bad in ["", "[]", r#"{"agent.delegate": "echo"}"#, r#"{"fs.read": [1]}"#] {
            let args = SubmitArgs {
                agent: "delegate".to_owned(),
                input: None,
                idempotency_key: None,
                lease: Some(bad.to_owned()),
                max_runtime_sec: None,
                output: super::super::args::OutputArgs { json: true },
                // Nothing listens there: a usage error must come first.
                connect: super::super::args::ConnectArgs {
                    url: "ws://127.0.0.1:1/arcp".to_owned(),
                    key: None,
                    ca_cert: None,
                },
            };
            let Err(Failure::Usage(message)) = run(args).await else { panic!("{bad:?} was accepted") };
            assert!(message.starts_with("--lease is not a lease ("), "{message}");
        }
    }

    #[test]
    fn input_is_json_or_null() {
        assert_eq!(read_input(None).unwrap(), Value::Null);
        assert_eq!(read_input(Some(r#"{"n": 50}"#)).unwrap(), json!({"n": 50}));
        assert_eq!(read_input(Some("-5")).unwrap(), json!(-5));
        assert_eq!(read_input(Some(r#""text""#)).unwrap(), json!("text"));
        for bad in ["", "{n: 50}", "{\"n\": 50", "hello", "[1,]", "1 2"] {
            let Err(Failure::Usage(message)) = read_input(Some(bad)) else { panic!("{bad:?} was accepted") };
            assert!(message.starts_with("INPUT_JSON is not valid JSON ("), "{message}");
        }
    }
}
