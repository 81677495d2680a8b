//! `arcp tail JOB_ID`: follows a job submitted elsewhere (`job.subscribe` with history, §7.6),
//! printing its events so far, then the live ones, then its outcome, as `arcp submit` does.
//!
//! The runtime replays a job's history only while the submitting session's events are still
//! buffered; when they are not (`RESUME_WINDOW_EXPIRED`), `tail` subscribes without history
//! and says so. A job that had already ended by then is reported by its final state alone.

use anyhow::anyhow;
use arcp_client::ClientError;
use arcp_core::message::ErrorStatus;
use arcp_core::negotiate::Feature;
use arcp_core::{ErrorCode, JobId};

use super::args::TailArgs;
use super::output::{Printer, status_name};
use super::{EXIT_FAILED, connect, exit, follow, output_failed, status_exit};
use crate::Failure;

/// Runs `arcp tail`.
pub(crate) async fn run(args: TailArgs) -> Result<(), Failure> {
    let job_id =
        JobId::parse(&args.job_id).map_err(|e| Failure::Usage(format!("invalid JOB_ID {:?}: {e}", args.job_id)))?;
    let client = connect(&args.connect).await?;
    let outcome = tail(&client, job_id, &mut Printer::stdout(args.output.json), &args.connect.url).await;
    let _ = client.close().await;
    outcome
}

async fn tail(
    client: &arcp_client::Client,
    job_id: JobId,
    printer: &mut Printer<std::io::Stdout>,
    url: &str,
) -> Result<(), Failure> {
    if !client.has_feature(&Feature::SUBSCRIBE) {
        return Err(Failure::Fatal(anyhow!(
            "the runtime at {url} does not offer job subscriptions (feature `subscribe`)"
        )));
    }
    let subscribed = match client.subscribe(job_id.clone(), true, None).await {
        Err(ClientError::Refused { payload }) if payload.code == ErrorCode::RESUME_WINDOW_EXPIRED => {
            printer.note(&format!("the events of job {job_id} so far are no longer buffered; showing what follows"));
            client.subscribe(job_id.clone(), false, None).await
        }
        other => other,
    };
    let mut subscription = match subscribed {
        Ok(s) => s,
        Err(ClientError::Refused { payload }) => {
            printer.job_error(None, ErrorStatus::Error, &payload).map_err(output_failed)?;
            return Err(Failure::Status(EXIT_FAILED));
        }
        Err(e) => return Err(Failure::Fatal(anyhow!("cannot follow job {job_id}: {e}"))),
    };
    printer.subscribed(subscription.subscribed()).map_err(output_failed)?;
    let state = subscription.subscribed();
    if state.current_status.is_terminal() && !state.replayed {
        // Nothing will follow: the job had ended and its events are gone.
        let status = state.current_status;
        if !printer.is_json() {
            printer.say(&format!("job {job_id} had already ended: {}", status_name(status))).map_err(output_failed)?;
        }
        return exit(status_exit(status));
    }
    let events = subscription.events();
    follow(client, &job_id, events, subscription.result(), printer).await
}
