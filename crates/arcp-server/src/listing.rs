//! `session.list_jobs` → `session.jobs` (§6.6, feature `list_jobs`): filters, keyset
//! pagination over `(created_at, job_id)` with an opaque cursor, and the live
//! `last_event_seq` of running jobs. Only the caller principal's jobs are ever listed
//! (decision 22).

use arcp_core::agent::AgentRef;
use arcp_core::message::{JobListEntry, Message, SessionJobs, SessionListJobs};
use arcp_core::{ErrorCode, JobId, MessageId};

use crate::Error;
use crate::connection::Conn;
use crate::session::Session;
use crate::store::{AgentMatch, JobQuery, ListKey};

/// The cursor's prefix (a version tag: a later format can be told apart).
const CURSOR_PREFIX: &str = "c1_";

/// Encodes a listing position as an opaque cursor: `c1_` + hex of `"{created_at_ms}:{job_id}"`.
pub(crate) fn encode_cursor(key: &ListKey) -> String {
    let raw = format!("{}:{}", key.created_at_millis, key.job_id);
    let mut out = String::with_capacity(CURSOR_PREFIX.len() + raw.len() * 2);
    out.push_str(CURSOR_PREFIX);
    for b in raw.bytes() {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    out
}

/// Decodes a cursor made by [`encode_cursor`]; `None` if it is malformed.
pub(crate) fn decode_cursor(cursor: &str) -> Option<ListKey> {
    let hex = cursor.strip_prefix(CURSOR_PREFIX)?;
    if hex.len() % 2 != 0 || hex.len() > 2 * 300 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes: Option<Vec<u8>> =
        hex.as_bytes().chunks(2).map(|p| Some((nibble(*p.first()?)? << 4) | nibble(*p.get(1)?)?)).collect();
    let raw = String::from_utf8(bytes?).ok()?;
    let (millis, job) = raw.split_once(':')?;
    if millis.is_empty() || !millis.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(ListKey { created_at_millis: millis.parse().ok()?, job_id: JobId::parse(job).ok()? })
}

fn invalid(message: impl Into<String>) -> Error {
    Error::refused(ErrorCode::INVALID_REQUEST, message)
}

/// Builds the store query for `req` from `principal` (an invalid filter or cursor is
/// `INVALID_REQUEST`).
pub(crate) fn query(
    principal: &str,
    req: &SessionListJobs,
    default_limit: u32,
    max_limit: u32,
) -> Result<JobQuery, Error> {
    let filter = req.filter.clone().unwrap_or_default();
    let agent = match filter.agent.as_deref() {
        None => None,
        Some(a) => {
            let parsed = AgentRef::parse(a).map_err(|e| invalid(format!("filter.agent: {e}")))?;
            Some(match parsed.version() {
                Some(_) => AgentMatch::Exact(a.to_owned()),
                None => AgentMatch::Name(parsed.name().to_owned()),
            })
        }
    };
    let after = match req.cursor.as_deref() {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| invalid("malformed cursor"))?),
    };
    let limit = req.limit.map_or(default_limit, std::num::NonZeroU32::get).min(max_limit.max(1));
    Ok(JobQuery {
        principal: principal.to_owned(),
        statuses: filter.status,
        agent,
        created_after_millis: filter.created_after.as_ref().map(arcp_core::Timestamp::unix_millis),
        created_before_millis: filter.created_before.as_ref().map(arcp_core::Timestamp::unix_millis),
        after,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    })
}

/// Handles `session.list_jobs` (the feature is checked by the caller). A store failure is
/// reported as `session.error INTERNAL_ERROR` through the returned error.
pub(crate) async fn list_jobs(
    conn: &Conn,
    session: &Session,
    request_id: &MessageId,
    req: &SessionListJobs,
) -> Result<(), Error> {
    let rt = &conn.rt;
    let mut query = query(&session.principal, req, rt.config.default_list_limit, rt.config.max_list_limit)?;
    let limit = query.limit;
    query.limit = limit.saturating_add(1);
    let mut records = rt.job_store.list(&query).await?;
    let next_cursor = if records.len() > limit {
        records.truncate(limit);
        records.last().map(|r| encode_cursor(&r.key()))
    } else {
        None
    };
    let mut jobs = Vec::with_capacity(records.len());
    for r in records {
        // A job still in memory is fresher than its record: its `last_event_seq`, and its
        // status (a durable record is written after the terminal envelope was sent, so a
        // client that saw the terminal must not see the job listed as running).
        let (status, last_event_seq) = match rt.job(&r.job_id) {
            Some(j) => (j.state.lock().await.status, j.last_owner_seq().max(r.last_event_seq)),
            None => (r.status, r.last_event_seq),
        };
        if query.statuses.as_ref().is_some_and(|s| !s.contains(&status)) {
            continue;
        }
        jobs.push({
            JobListEntry {
                job_id: r.job_id,
                agent: r.agent,
                status,
                lease: r.lease,
                parent_job_id: r.parent_job_id,
                created_at: arcp_core::Timestamp::from_millis(r.created_at_millis),
                submitted_at: Some(arcp_core::Timestamp::from_millis(r.created_at_millis)),
                trace_id: r.trace_id,
                last_event_seq,
            }
        });
    }
    let page = SessionJobs { request_id: request_id.clone(), jobs, next_cursor };
    let env = session.envelope(rt, Message::SessionJobs(page))?;
    conn.send(&env).await;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let key = ListKey { created_at_millis: 1_700_000_000_123, job_id: JobId::parse("job_01ABC").unwrap() };
        let c = encode_cursor(&key);
        assert_eq!(decode_cursor(&c), Some(key));
        for bad in ["", "c1_", "c1_zz", "c1_4", "x", "c1_3a6a6f62", "c2_00", "c1_313a"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
