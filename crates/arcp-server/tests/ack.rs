//! §6.5 acknowledgement and back-pressure: the running maximum, early freeing of acknowledged
//! events (and what that means for resume), and the one-shot, re-armed back-pressure event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use arcp_core::ErrorCode;
use arcp_core::event::EventBody;
use arcp_core::message::Message;
use arcp_server::RuntimeConfig;
use serde_json::json;
use support::{Client, TOKEN, job_id_of, runtime, runtime_with};

fn ack(c: &mut Client, seq: u64) {
    c.send("session.ack", json!({"last_processed_seq": seq}), json!({}));
}

/// Runs `count n` to its end; returns the session id and resume token.
async fn count_session(c: &mut Client, n: u64) -> (String, String) {
    c.hello().await;
    c.submit("count", json!({"n": n}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    c.until_terminal(a.job_id.as_str()).await;
    (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap())
}

/// A ping round trip: everything sent before it has been handled.
async fn sync(c: &mut Client) {
    c.send("session.ping", json!({"nonce": "sync", "sent_at": "2026-01-01T00:00:00Z"}), json!({}));
    let env = c.next().await;
    assert!(matches!(env.message, Message::SessionPong(_)), "an ack is never answered: {env:?}");
}

#[tokio::test]
async fn s6_5_acknowledged_events_are_freed_and_an_earlier_resume_is_refused_not_gapped() {
    let rt = runtime_with(RuntimeConfig { free_acked_events_eagerly: true, ..RuntimeConfig::default() });
    let mut c = Client::connect(&rt);
    let (session, token) = count_session(&mut c, 5).await; // seqs 1..=7
    ack(&mut c, 4);
    sync(&mut c).await;
    drop(c);

    let mut early = Client::connect(&rt);
    let refused = early.resume(&session, &token, 2).await;
    let Message::SessionError(e) = &refused.message else { panic!("{refused:?}") };
    assert_eq!(e.code, ErrorCode::RESUME_WINDOW_EXPIRED, "events 3..4 were freed: refused, never a gap");
    assert_eq!(e.details.as_ref().unwrap()["oldest_event_seq"], 5);
    assert!(early.closed().await);

    let mut again = Client::connect(&rt);
    let w = again.resume(&session, &token, 4).await;
    assert!(matches!(w.message, Message::SessionWelcome(_)), "the refused resume left the token valid: {w:?}");
    let replayed: Vec<u64> = [again.next().await, again.next().await, again.next().await]
        .iter()
        .map(|e| e.event_seq.unwrap().get())
        .collect();
    assert_eq!(replayed, vec![5, 6, 7], "a resume from the acknowledged point replays the rest");
}

#[tokio::test]
async fn s6_5_acks_keep_the_running_maximum_and_ignore_the_impossible() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    let (session, token) = count_session(&mut c, 5).await; // seqs 1..=7
    ack(&mut c, 100); // beyond the newest: ignored, nothing freed
    ack(&mut c, 3);
    ack(&mut c, 1); // backwards: ignored
    sync(&mut c).await;
    drop(c);
    let mut again = Client::connect(&rt);
    let w = again.resume(&session, &token, 3).await;
    assert!(matches!(w.message, Message::SessionWelcome(_)), "{w:?}");
    assert_eq!(again.next().await.event_seq.unwrap().get(), 4);
}

#[tokio::test]
async fn s6_5_an_ack_without_the_feature_is_ignored() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello_with(TOKEN, Some(&["progress"])).await;
    let (session, token) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap());
    c.submit("count", json!({"n": 3}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    c.until_terminal(a.job_id.as_str()).await;
    ack(&mut c, 5);
    sync(&mut c).await;
    drop(c);
    let mut again = Client::connect(&rt);
    again.resume(&session, &token, 0).await;
    assert_eq!(again.next().await.event_seq.unwrap().get(), 1, "nothing was freed");
}

fn back_pressure(env: &arcp_core::Envelope) -> Option<String> {
    match &env.message {
        Message::JobEvent(e) => match &e.body {
            EventBody::Status(s) if s.phase == "back_pressure" => Some(s.message.clone().unwrap_or_default()),
            _ => None,
        },
        _ => None,
    }
}

#[tokio::test]
async fn s6_5_back_pressure_is_sent_once_on_the_newest_running_job_and_rearmed_at_half() {
    let rt = runtime_with(RuntimeConfig { back_pressure_threshold: 10, ..RuntimeConfig::default() });
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("sleep", json!({}));
    let Message::JobAccepted(sleeper) = c.next().await.message else { panic!() };
    c.next().await; // sleep: status running (seq 1)
    for round in 0..2 {
        c.submit("stream", json!({"n": 30}));
        let accepted = c.next().await;
        let streamer = job_id_of(&accepted);
        let mut signals = Vec::new();
        loop {
            let env = c.next().await;
            if let Some(message) = back_pressure(&env) {
                signals.push((job_id_of(&env), message));
            }
            if matches!(env.message, Message::JobResult(_)) {
                break;
            }
        }
        assert_eq!(signals.len(), 1, "round {round}: exactly one back-pressure event: {signals:?}");
        assert_eq!(signals[0].0, streamer, "on the most recently started running job");
        assert!(signals[0].1.contains("exceeds threshold 10"), "{}", signals[0].1);
        // Catching up re-arms it.
        let newest = c.last_seq;
        ack(&mut c, newest);
        sync(&mut c).await;
    }
    c.send("job.cancel", json!({}), json!({"job_id": sleeper.job_id}));
    c.until_terminal(sleeper.job_id.as_str()).await;
}

#[tokio::test]
async fn s6_5_no_back_pressure_without_the_ack_feature() {
    let rt = runtime_with(RuntimeConfig { back_pressure_threshold: 10, ..RuntimeConfig::default() });
    let mut c = Client::connect(&rt);
    c.hello_with(TOKEN, Some(&["progress"])).await;
    c.submit("stream", json!({"n": 30}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    let ev = c.until_terminal(a.job_id.as_str()).await;
    assert!(ev.iter().all(|e| back_pressure(e).is_none()));
    assert_eq!(ev.len(), 32);
}

#[tokio::test]
async fn s6_5_by_default_acknowledged_events_stay_replayable_until_a_cap_needs_room() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    let (session, token) = count_session(&mut c, 5).await; // seqs 1..=7
    ack(&mut c, 7);
    sync(&mut c).await;
    drop(c);
    let mut again = Client::connect(&rt);
    let w = again.resume(&session, &token, 2).await;
    assert!(matches!(w.message, Message::SessionWelcome(_)), "{w:?}");
    let mut replayed = Vec::new();
    for _ in 3..=7 {
        replayed.push(again.next().await.event_seq.unwrap().get());
    }
    assert_eq!(replayed, vec![3, 4, 5, 6, 7], "acknowledged events are kept while there is room");
}
