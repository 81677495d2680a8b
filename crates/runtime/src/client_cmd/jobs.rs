//! `arcp jobs`: lists the key's principal's jobs (`session.list_jobs`, §6.6), oldest first,
//! following `next_cursor` to the end or until `--limit` jobs were listed.
//!
//! Human output is a table; `--json` prints one `session.jobs` entry per line (the wire
//! fields; `lease` and `last_event_seq` are left out when the runtime did not send them).

use std::collections::HashSet;
use std::io::Write as _;
use std::num::NonZeroU32;

use anyhow::anyhow;
use arcp_client::{Client, ClientError, JobsPage, ListedJob};
use arcp_core::message::{JobFilter, SessionListJobs};
use arcp_core::negotiate::Feature;
use serde_json::{Value, json};

use super::args::JobsArgs;
use super::output::status_name;
use super::render::clean;
use super::{connect, output_failed};
use crate::Failure;

/// How many times a page is asked for again when a resume interrupted the request.
const RETRIES: u32 = 3;

/// Runs `arcp jobs`.
pub(crate) async fn run(args: JobsArgs) -> Result<(), Failure> {
    let client = connect(&args.connect).await?;
    let outcome = list(&client, &args).await;
    let _ = client.close().await;
    outcome
}

async fn list(client: &Client, args: &JobsArgs) -> Result<(), Failure> {
    if !client.has_feature(&Feature::LIST_JOBS) {
        return Err(Failure::Fatal(anyhow!(
            "the runtime at {} does not offer job listings (feature `list_jobs`)",
            args.connect.url
        )));
    }
    let filter = JobFilter {
        status: (!args.status.is_empty()).then(|| args.status.iter().map(|s| (*s).into()).collect()),
        agent: args.agent.clone(),
        ..JobFilter::default()
    };
    let filter = (filter != JobFilter::default()).then_some(filter);
    let mut remaining = args.limit;
    let mut cursor: Option<String> = None;
    let mut seen_cursors = HashSet::new();
    let mut table = Vec::new();
    let mut deviations = Vec::new();
    let mut stdout = std::io::stdout().lock();
    loop {
        let request = SessionListJobs {
            filter: filter.clone(),
            limit: remaining.and_then(NonZeroU32::new),
            cursor: cursor.clone(),
        };
        let page = page(client, request).await?;
        for d in page.deviations() {
            if !deviations.contains(&d) {
                deviations.push(d);
            }
        }
        for job in &page.jobs {
            if remaining == Some(0) {
                break;
            }
            if args.output.json {
                serde_json::to_writer(&mut stdout, &entry_json(job)).map_err(|e| output_failed(e.into()))?;
                stdout.write_all(b"\n").and_then(|()| stdout.flush()).map_err(output_failed)?;
            } else {
                table.push(row(job));
            }
            remaining = remaining.map(|r| r.saturating_sub(1));
        }
        match page.next_cursor {
            // A runtime handing back a cursor it gave before would loop forever.
            Some(next) if remaining != Some(0) && seen_cursors.insert(next.clone()) => cursor = Some(next),
            _ => break,
        }
    }
    if !deviations.is_empty() {
        let names: Vec<String> = deviations.iter().map(ToString::to_string).collect();
        eprintln!("arcp: the runtime's listing deviates from the spec: {}", names.join(", "));
    }
    if !args.output.json {
        let text = if table.is_empty() { "no jobs\n".to_owned() } else { render_table(&table) };
        stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).map_err(output_failed)?;
    }
    Ok(())
}

/// One page, asked for again if a resume interrupted the request.
async fn page(client: &Client, request: SessionListJobs) -> Result<JobsPage, Failure> {
    let mut tries = 0;
    loop {
        match client.list_jobs(request.clone()).await {
            Err(ClientError::Interrupted) if tries < RETRIES => tries += 1,
            Ok(page) => return Ok(page),
            Err(e) => return Err(Failure::Fatal(anyhow!("cannot list the jobs: {e}"))),
        }
    }
}

/// A listed job as one NDJSON object, with the wire field names.
fn entry_json(job: &ListedJob) -> Value {
    let mut out = json!({
        "job_id": job.job_id,
        "agent": job.agent,
        "status": job.status,
        "parent_job_id": job.parent_job_id,
        "created_at": job.created_at,
    });
    if let Some(lease) = &job.lease {
        out["lease"] = json!(lease);
    }
    if let Some(trace) = &job.trace_id {
        out["trace_id"] = json!(trace);
    }
    if let Some(seq) = job.last_event_seq {
        out["last_event_seq"] = json!(seq.get());
    }
    out
}

/// The table's columns.
const HEADER: [&str; 5] = ["JOB ID", "AGENT", "STATUS", "CREATED", "LAST SEQ"];

fn row(job: &ListedJob) -> [String; 5] {
    let mut id = job.job_id.to_string();
    if let Some(parent) = &job.parent_job_id {
        id = format!("{id} (child of {parent})");
    }
    [
        clean(&id),
        clean(&job.agent),
        status_name(job.status),
        clean(job.created_at.as_str()),
        job.last_event_seq.map_or_else(|| "-".to_owned(), |s| s.to_string()),
    ]
}

/// Left-aligned columns, two spaces apart, the header first.
fn render_table(rows: &[[String; 5]]) -> String {
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADER.map(str::to_owned);
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let rows = [
            [
                "job_1".to_owned(),
                "count@1".to_owned(),
                "success".to_owned(),
                "2026-01-01T00:00:00Z".to_owned(),
                "7".to_owned(),
            ],
            [
                "job_22".to_owned(),
                "echo".to_owned(),
                "running".to_owned(),
                "2026-01-01T00:00:01Z".to_owned(),
                "-".to_owned(),
            ],
        ];
        assert_eq!(
            render_table(&rows),
            "JOB ID  AGENT    STATUS   CREATED               LAST SEQ\n\
             job_1   count@1  success  2026-01-01T00:00:00Z  7\n\
             job_22  echo     running  2026-01-01T00:00:01Z  -\n"
        );
    }
}
