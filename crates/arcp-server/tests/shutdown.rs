//! `Runtime::shutdown`: attached sessions get `session.bye {reason: "shutdown"}` and stay
//! resumable, new sessions and resumes are refused (retryable), running jobs get the deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use arcp_core::ErrorCode;
use arcp_core::message::Message;
use serde_json::json;
use support::*;

#[tokio::test]
async fn shutdown_says_bye_waits_for_jobs_and_refuses_new_sessions() {
    let rt = runtime();
    let mut a = Client::connect(&rt);
    a.hello().await;
    a.submit("sleep", json!({ "ms": 200 }));
    assert!(matches!(a.next().await.message, Message::JobAccepted(_)));
    a.next().await; // status running
    let report = rt.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.sessions_closed, 1);
    assert_eq!(report.jobs_left_running, 0, "the job finished within the deadline");
    let bye = a.next().await;
    let Message::SessionBye(b) = &bye.message else { panic!("{bye:?}") };
    assert_eq!(b.reason.as_deref(), Some("shutdown"));
    assert!(a.closed().await, "the transport closes after the bye");

    let mut late = Client::connect(&rt);
    let refused = late.hello().await;
    let Message::SessionError(e) = &refused.message else { panic!("{refused:?}") };
    assert_eq!(e.code, ErrorCode::INTERNAL_ERROR);
    assert!(e.retryable);
    assert_eq!(e.details.as_ref().unwrap()["reason"], "shutting_down");
    let mut resumer = Client::connect(&rt);
    let refused = resumer.resume(a.session_id.as_deref().unwrap(), a.resume_token.as_deref().unwrap(), 0).await;
    assert!(matches!(refused.message, Message::SessionError(_)), "{refused:?}");
}

#[tokio::test]
async fn a_job_outliving_the_deadline_is_reported() {
    let rt = runtime();
    let mut a = Client::connect(&rt);
    a.hello().await;
    a.submit("sleep", json!({}));
    a.next().await;
    a.next().await;
    let report = rt.shutdown(Duration::from_millis(50)).await;
    assert_eq!(report.jobs_left_running, 1);
}
