//! Resume (§6.3; decisions 2, 4, 8, 15, 16): verify the token in constant time, rotate it,
//! send the welcome, replay everything after the client's cursor, and re-attach the session
//! (with its running jobs and their cancel authority) to the new connection.

use arcp_core::message::ResumeRequest;
use arcp_core::negotiate::Capabilities;
use arcp_core::{ErrorCode, ProtocolVersion};

use crate::Error;
use crate::auth::Identity;
use crate::connection::Conn;

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
    let Some(session) = rt.session(&request.session_id) else {
        return Err(expired("Invalid or unknown resume_token"));
    };
    session.check_coverage(&rt, request.last_event_seq).await?;
    let (meta, caps) = conn.negotiate(version, client);
    *session.meta.lock() = meta;
    let token = conn.issue_token(&session).await?;
    let welcome = conn.welcome(&session, &token, caps)?;
    session.resume_onto(&rt, conn.link.clone(), request.last_event_seq, welcome).await?;
    conn.session = Some(session);
    Ok(())
}
