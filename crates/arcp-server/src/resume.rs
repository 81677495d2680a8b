//! Resume (§6.3; decisions 2, 4, 8, 15, 16): verify the token in constant time, rotate it,
//! send the welcome, replay everything after the client's cursor, and re-attach the session
//! (with its running jobs and their cancel authority) to the new connection.

use arcp_core::message::ResumeRequest;
use arcp_core::negotiate::Capabilities;
use arcp_core::{ErrorCode, ProtocolVersion};

use crate::Error;
use crate::auth::Identity;
use crate::connection::Conn;
use crate::runtime::Inner;
use crate::session::{Session, SessionMeta};
use crate::store::ResumeRecord;

fn expired(message: &str) -> Error {
    Error::refused(ErrorCode::RESUME_WINDOW_EXPIRED, message)
}

pub(crate) async fn resume(
    conn: &mut Conn,
    identity: Identity,
    version: ProtocolVersion,
    client: Option<&Capabilities>,
    request: ResumeRequest,
) -> Result<(), Error> {
    let rt = conn.rt.clone();
    crate::shutdown::refuse_if_stopping(&rt)?;
    let record = rt.resumes.get(&request.session_id).await?;
    let presented = crate::digest::sha256(request.resume_token.expose().as_bytes());
    // One message for unknown session, wrong token and wrong principal: nothing leaks.
    let record = match record {
        Some(r) if crate::digest::digest_eq(&r.token_digest, &presented) && r.principal == identity.principal => r,
        _ => return Err(expired("Invalid or unknown resume_token")),
    };
    if record.expires_at_millis <= rt.now_millis() {
        return Err(expired("Resume window has expired"));
    }
    let session = match rt.session(&request.session_id) {
        Some(s) => s,
        // Known to the store only: the runtime restarted (or, on a shared store, another
        // node created the session). Its log continues where it ends.
        None => restore(&rt, &record).await?,
    };
    if session.is_terminated() {
        // A buffer cap ended it (§14); its record is being removed.
        return Err(expired("Invalid or unknown resume_token"));
    }
    session.check_coverage(&rt, request.last_event_seq).await?;
    let (meta, caps) = conn.negotiate(version, client);
    *session.meta.lock() = meta;
    let token = conn.issue_token(&session).await?;
    let welcome = conn.welcome(&session, &token, caps)?;
    session.resume_onto(&rt, conn.link.clone(), request.last_event_seq, welcome).await?;
    conn.session = Some(session);
    Ok(())
}

/// Rebuilds a session from its resume record and its event log, and registers it (a racing
/// resume of the same session gets the one registered first).
async fn restore(rt: &std::sync::Arc<Inner>, record: &ResumeRecord) -> Result<std::sync::Arc<Session>, Error> {
    let last_seq = rt.events.bounds(&record.session_id).await?.map_or(arcp_core::EventSeq::ZERO, |b| b.newest);
    let meta = SessionMeta { version: ProtocolVersion::V1_1, features: Vec::new(), heartbeat: None };
    let session = std::sync::Arc::new(Session::restored(
        record.session_id.clone(),
        record.principal.clone(),
        meta,
        last_seq,
        rt.now_millis(),
    ));
    tracing::info!(session = %record.session_id, %last_seq, "restored a session from the store");
    Ok(rt.sessions.lock().entry(record.session_id.clone()).or_insert(session).clone())
}
