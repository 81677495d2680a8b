//! §8.2 and §8.4: progress validation and result streaming (feature `result_chunk`) — one
//! stable `result_id`, contiguous `chunk_seq`, never mixed with an inline result, a final
//! `job.result` with `result_id` and `result_size`, and the size caps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use arcp_core::event::{ChunkEncoding, EventBody, Progress, ResultChunk};
use arcp_core::message::{JobResult, Message};
use arcp_core::{Envelope, ErrorCode};
use arcp_server::{AgentRegistry, JobContext, Runtime, RuntimeConfig, StaticBearerVerifier};
use serde_json::{Value, json};
use support::*;

fn registry() -> AgentRegistry {
    let mut reg = arcp_server::builtin::registry().unwrap();
    // Streams "ab" then returns `input` (mixing when it is not null), without a final chunk.
    reg.register("mixer", |ctx: JobContext, input: Value| async move {
        ctx.result_chunk_text("ab", true).await?;
        Ok(input)
    })
    .unwrap();
    // Binary chunks, a summary, and the rule checks of raw emission.
    reg.register("raw", |ctx: JobContext, _input: Value| async move {
        ctx.result_chunk_bytes(&[0, 1, 2, 255], true).await?;
        let id = ctx.result_id().await.unwrap();
        let mut refused = Vec::new();
        let chunk = |seq: u64, result_id: String, encoding: ChunkEncoding, data: &str| ResultChunk {
            result_id,
            chunk_seq: seq,
            data: data.into(),
            encoding,
            more: true,
        };
        for bad in [
            chunk(1, ctx.job_id().to_string(), ChunkEncoding::Base64, "AA=="),
            chunk(5, id.clone(), ChunkEncoding::Base64, "AA=="),
            chunk(1, id.clone(), ChunkEncoding::Utf8, "x"),
            chunk(1, id.clone(), ChunkEncoding::Base64, "not base64"),
        ] {
            refused.push(ctx.emit(bad).await.map(|()| "ok".to_owned()).unwrap_or_else(|e| e.code().to_string()));
        }
        ctx.result_summary("four bytes").await;
        ctx.result_chunk_bytes(&[], false).await?;
        let after = ctx.result_chunk_text("late", false).await.unwrap_err().code();
        ctx.info(format!("{refused:?} {after}")).await?;
        Ok(Value::Null)
    })
    .unwrap();
    reg.register("progress", |ctx: JobContext, input: Value| async move {
        // Built by hand: the wire decoder would already refuse the negative ones.
        let number = |v: &Value| v.as_number().cloned();
        let body = Progress {
            current: number(&input["current"]).unwrap(),
            total: number(&input["total"]),
            units: None,
            message: None,
        };
        Ok(json!(ctx.emit(body).await.map(|()| "ok".to_owned()).unwrap_or_else(|e| e.code().to_string())))
    })
    .unwrap();
    reg
}

fn runtime_with(config: RuntimeConfig) -> Runtime {
    Runtime::builder(StaticBearerVerifier::new().with_token(TOKEN, "alice")).config(config).agents(registry()).build()
}

async fn run(c: &mut Client, agent: &str, input: Value) -> Vec<Envelope> {
    c.submit(agent, input);
    let accepted = c.next().await;
    let Message::JobAccepted(a) = accepted.message else { panic!("{accepted:?}") };
    c.until_terminal(a.job_id.as_str()).await
}

fn chunks(events: &[Envelope]) -> Vec<ResultChunk> {
    events
        .iter()
        .filter_map(|e| match &e.message {
            Message::JobEvent(ev) => match &ev.body {
                EventBody::ResultChunk(c) => Some(c.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn final_result(events: &[Envelope]) -> JobResult {
    match &events.last().unwrap().message {
        Message::JobResult(r) => r.clone(),
        other => panic!("expected job.result, got {other:?}"),
    }
}

fn error_code(events: &[Envelope]) -> (ErrorCode, bool) {
    match &events.last().unwrap().message {
        Message::JobError(e) => (e.code.clone(), e.retryable),
        other => panic!("expected job.error, got {other:?}"),
    }
}

#[tokio::test]
async fn s8_4_chunks_streams_contiguous_chunks_then_a_result_with_its_id() {
    let rt = runtime_with(RuntimeConfig::default());
    let mut c = Client::connect(&rt);
    c.hello().await;
    let events = run(&mut c, "chunks", json!({"bytes": 200_000})).await;
    let streamed = chunks(&events);
    assert_eq!(streamed.len(), 4, "64 KiB chunks by default");
    let id = streamed[0].result_id.clone();
    assert!(id.starts_with("res_") && id.len() == 30, "{id}");
    let mut assembled = String::new();
    for (i, ch) in streamed.iter().enumerate() {
        assert_eq!((ch.chunk_seq, &ch.result_id, ch.encoding), (i as u64, &id, ChunkEncoding::Utf8));
        assert_eq!(ch.more, i < 3);
        assembled.push_str(&ch.data);
    }
    assert_eq!(streamed[3].data.len(), 200_000 - 3 * 65_536);
    let expected: String = (0..200_000u32).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    assert_eq!(assembled, expected);
    let r = final_result(&events);
    assert_eq!((r.result_id.as_deref(), r.result_size, &r.result), (Some(id.as_str()), Some(200_000), &None));
    // Custom chunk size and the empty result.
    let events = run(&mut c, "chunks", json!({"bytes": 10, "chunk": 4})).await;
    let sizes: Vec<usize> = chunks(&events).iter().map(|c| c.data.len()).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    let events = run(&mut c, "chunks", json!({"bytes": 0})).await;
    let empty = chunks(&events);
    assert_eq!((empty.len(), empty[0].data.as_str(), empty[0].more), (1, "", false));
    assert_eq!(final_result(&events).result_size, Some(0));
}

#[tokio::test]
async fn s8_4_chunks_refuses_bad_input() {
    let rt = runtime_with(RuntimeConfig::default());
    let mut c = Client::connect(&rt);
    c.hello().await;
    for input in [
        json!({}),
        json!(null),
        json!({"bytes": -1}),
        json!({"bytes": 1.5}),
        json!({"bytes": 10, "chunk": 0}),
        json!({"bytes": 10, "chunk": (1 << 20) + 1}),
        json!({"bytes": (256u64 << 20) + 1}),
        json!([1]),
    ] {
        let events = run(&mut c, "chunks", input.clone()).await;
        assert_eq!(error_code(&events).0, ErrorCode::INVALID_REQUEST, "{input}");
        assert!(chunks(&events).is_empty());
    }
}

#[tokio::test]
async fn s8_4_streaming_needs_the_negotiated_feature() {
    let rt = runtime_with(RuntimeConfig::default());
    let mut c = Client::connect(&rt);
    c.hello_with(TOKEN, Some(&["progress"])).await;
    let events = run(&mut c, "chunks", json!({"bytes": 10})).await;
    assert_eq!(error_code(&events).0, ErrorCode::INVALID_REQUEST);
    assert!(chunks(&events).is_empty());
}

#[tokio::test]
async fn s14_chunk_and_total_caps_are_internal_errors() {
    let config = RuntimeConfig { max_result_chunk_bytes: 100, max_result_bytes: 1_000, ..RuntimeConfig::default() };
    let rt = runtime_with(config);
    let mut c = Client::connect(&rt);
    c.hello().await;
    let events = run(&mut c, "chunks", json!({"bytes": 1_000, "chunk": 101})).await;
    assert_eq!(error_code(&events), (ErrorCode::INTERNAL_ERROR, true));
    assert!(chunks(&events).is_empty());
    let events = run(&mut c, "chunks", json!({"bytes": 1_001, "chunk": 100})).await;
    assert_eq!(error_code(&events), (ErrorCode::INTERNAL_ERROR, true));
    assert_eq!(chunks(&events).len(), 10, "everything within the cap was streamed");
    let events = run(&mut c, "chunks", json!({"bytes": 1_000, "chunk": 100})).await;
    assert_eq!(final_result(&events).result_size, Some(1_000));
}

#[tokio::test]
async fn s8_4_inline_and_streamed_never_mix_and_unfinished_streams_are_finalised() {
    let rt = runtime_with(RuntimeConfig::default());
    let mut c = Client::connect(&rt);
    c.hello().await;
    let events = run(&mut c, "mixer", json!({"inline": true})).await;
    assert_eq!(error_code(&events).0, ErrorCode::INVALID_REQUEST);
    let events = run(&mut c, "mixer", Value::Null).await;
    let id = chunks(&events)[0].result_id.clone();
    let r = final_result(&events);
    assert_eq!((r.result_id, r.result_size, r.result), (Some(id), Some(2), None));
}

#[tokio::test]
async fn s8_4_raw_chunks_follow_the_rules() {
    let rt = runtime_with(RuntimeConfig::default());
    let mut c = Client::connect(&rt);
    c.hello().await;
    let events = run(&mut c, "raw", Value::Null).await;
    let streamed = chunks(&events);
    assert_eq!(streamed.len(), 2, "{streamed:?}");
    assert_eq!((streamed[0].data.as_str(), streamed[0].encoding), ("AAEC/w==", ChunkEncoding::Base64));
    let log = events
        .iter()
        .find_map(|e| match &e.message {
            Message::JobEvent(ev) => match &ev.body {
                EventBody::Log(l) => Some(l.message.clone()),
                _ => None,
            },
            _ => None,
        })
        .unwrap();
    // Wrong id, a gap, a second encoding and bad base64 are refused; so is a chunk after the end.
    assert_eq!(log, r#"["INVALID_REQUEST", "INVALID_REQUEST", "INVALID_REQUEST", "INVALID_REQUEST"] INVALID_REQUEST"#);
    let r = final_result(&events);
    assert_eq!((r.result_size, r.summary.as_deref()), (Some(4), Some("four bytes")));
}

#[tokio::test]
async fn s8_2_progress_is_validated() {
    let rt = runtime_with(RuntimeConfig::default());
    let mut c = Client::connect(&rt);
    c.hello().await;
    for (body, expected) in [
        (json!({"current": 1, "total": 2}), "ok"),
        (json!({"current": 2.5, "total": 2.5}), "ok"),
        (json!({"current": 0}), "ok"),
        (json!({"current": 3, "total": 2}), "INVALID_REQUEST"),
        (json!({"current": -1}), "INVALID_REQUEST"),
        (json!({"current": 1, "total": -1}), "INVALID_REQUEST"),
    ] {
        let events = run(&mut c, "progress", body.clone()).await;
        assert_eq!(final_result(&events).result, Some(json!(expected)), "{body}");
    }
}
