//! §8.2, §8.4 (feature `result_chunk`): progress stays within its total, and a result
//! streamed by the contract agent `chunks` arrives as contiguous chunks of one `result_id`,
//! closed by a `job.result` carrying that id and the assembled size.

use serde_json::{Value, json};

use super::leases::require_feature;
use super::{Case, adopt_welcome, case, ensure, hello_payload, job_id, open, require_agent, submit, until_terminal};
use crate::{Ctx, Failure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s8_2_progress_current_never_exceeds_total,
            "8.2",
            "progress events carry 0 ≤ current ≤ total (count: current 1..n, total n)"
        ),
        case!(
            s8_2_progress_is_not_delivered_without_the_feature,
            "8.2",
            "decision 23: a session that did not negotiate progress receives no progress event, and the job is not failed for emitting them"
        ),
        case!(
            s8_4_chunks_are_contiguous_and_end_with_the_result_id,
            "8.4",
            "result_chunks share one result_id, chunk_seq runs 0,1,2… with more:false last; job.result carries result_id and result_size, no inline result"
        ),
        case!(
            s8_4_an_empty_streamed_result_is_one_final_chunk,
            "8.4",
            "Streaming zero bytes still yields one chunk (more:false) and a job.result with result_size 0"
        ),
        case!(
            s8_4_no_chunks_without_the_feature,
            "8.4",
            "A session that did not negotiate result_chunk receives no result_chunk; the streaming job fails with INVALID_REQUEST"
        ),
    ]
}

fn chunk_bodies(frames: &[Value]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "job.event" && f["payload"]["kind"] == "result_chunk")
        .map(|f| f["payload"]["body"].clone())
        .collect()
}

async fn s8_2_progress_current_never_exceeds_total(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "progress")?;
    require_agent(&welcome, "count")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "count", "input": {"n": 5}})).await?;
    let frames = until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let progress: Vec<(f64, f64)> = frames
        .iter()
        .filter(|f| f["payload"]["kind"] == "progress")
        .map(|f| {
            let b = &f["payload"]["body"];
            (b["current"].as_f64().unwrap_or(-1.0), b["total"].as_f64().unwrap_or(-1.0))
        })
        .collect();
    ensure(
        progress == vec![(1.0, 5.0), (2.0, 5.0), (3.0, 5.0), (4.0, 5.0), (5.0, 5.0)],
        format!("expected current 1..5 of total 5, got {progress:?}"),
    )?;
    ensure(progress.iter().all(|(c, t)| *c >= 0.0 && c <= t), "0 ≤ current ≤ total")
}

async fn s8_4_chunks_are_contiguous_and_end_with_the_result_id(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "result_chunk")?;
    require_agent(&welcome, "chunks")?;
    let (_, accepted) =
        submit(&mut peer, json!({"agent": "chunks", "input": {"bytes": 150_000, "chunk": 65_536}})).await?;
    let frames = until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let chunks = chunk_bodies(&frames);
    ensure(chunks.len() == 3, format!("150 000 bytes in 64 KiB chunks are 3 chunks, got {}", chunks.len()))?;
    let result_id = chunks[0]["result_id"].clone();
    ensure(result_id.as_str().is_some_and(|s| !s.is_empty()), "a result_id is set")?;
    let mut total = 0;
    for (i, c) in chunks.iter().enumerate() {
        ensure(c["result_id"] == result_id, format!("chunk {i}: result_id must be stable: {c}"))?;
        ensure(c["chunk_seq"] == i, format!("chunk {i}: chunk_seq must be {i}: {c}"))?;
        ensure(c["more"] == (i + 1 < chunks.len()), format!("chunk {i}: only the last has more:false: {c}"))?;
        ensure(c["encoding"] == "utf8", format!("chunk {i}: the chunks agent streams utf8: {c}"))?;
        total += c["data"].as_str().map_or(0, str::len);
    }
    ensure(total == 150_000, format!("the assembled result is 150 000 bytes, got {total}"))?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(
        last["type"] == "job.result"
            && last["payload"]["result_id"] == result_id
            && last["payload"]["result_size"] == 150_000
            && last["payload"].get("result").is_none(),
        format!("expected job.result with result_id {result_id} and result_size 150000, no inline result: {last}"),
    )
}

async fn s8_4_an_empty_streamed_result_is_one_final_chunk(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "result_chunk")?;
    require_agent(&welcome, "chunks")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "chunks", "input": {"bytes": 0}})).await?;
    let frames = until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let chunks = chunk_bodies(&frames);
    ensure(
        chunks.len() == 1 && chunks[0]["data"] == "" && chunks[0]["more"] == false && chunks[0]["chunk_seq"] == 0,
        format!("expected one empty final chunk, got {chunks:?}"),
    )?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(
        last["type"] == "job.result"
            && last["payload"]["result_id"] == chunks[0]["result_id"]
            && last["payload"]["result_size"] == 0,
        format!("expected job.result with result_size 0, got {last}"),
    )
}

async fn s8_4_no_chunks_without_the_feature(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["capabilities"]["features"] = json!(["progress"]);
    peer.send("session.hello", hello, json!({}))?;
    let welcome = peer.recv().await?;
    ensure(welcome["type"] == "session.welcome", format!("expected session.welcome, got {welcome}"))?;
    adopt_welcome(&mut peer, &welcome)?;
    require_agent(&welcome, "chunks")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "chunks", "input": {"bytes": 10}})).await?;
    let frames = until_terminal(&mut peer, &job_id(&accepted)?).await?;
    ensure(chunk_bodies(&frames).is_empty(), "no result_chunk without the feature")?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(
        last["type"] == "job.error" && last["payload"]["code"] == "INVALID_REQUEST",
        format!("expected job.error INVALID_REQUEST, got {last}"),
    )
}

async fn s8_2_progress_is_not_delivered_without_the_feature(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["capabilities"]["features"] = json!(["result_chunk"]);
    peer.send("session.hello", hello, json!({}))?;
    let welcome = peer.recv().await?;
    ensure(welcome["type"] == "session.welcome", format!("expected session.welcome, got {welcome}"))?;
    adopt_welcome(&mut peer, &welcome)?;
    require_agent(&welcome, "count")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "count", "input": {"n": 5}})).await?;
    let frames = until_terminal(&mut peer, &job_id(&accepted)?).await?;
    ensure(
        !frames.iter().any(|f| f["payload"]["kind"] == "progress"),
        format!("no progress event without the feature: {frames:?}"),
    )?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(
        last["type"] == "job.result" && last["payload"]["result"]["count"] == 5,
        format!("the job runs to its result, got {last}"),
    )
}
