//! Result streaming (§8.4, feature `result_chunk`): the per-job [`StreamState`] that keeps a
//! streamed result well-formed, and how a streamed job is finalised.
//!
//! Rules enforced on every chunk an agent emits (a violation is refused to the agent and
//! nothing is emitted): the owning session negotiated `result_chunk` (`INVALID_REQUEST`); one
//! stable `result_id` per job (minted `res_` + ULID by [`crate::JobContext::result_chunk_text`]
//! and friends, or the agent's own on its first raw chunk); `chunk_seq` contiguous from 0; no
//! chunk after `more: false` or after the agent returned; one encoding per result; `base64`
//! data is RFC 4648 with padding; the decoded chunk within
//! [`crate::RuntimeConfig::max_result_chunk_bytes`] and the running total within
//! [`crate::RuntimeConfig::max_result_bytes`] (both `INTERNAL_ERROR`, §14).
//!
//! Once a chunk was emitted the terminal `job.result` carries that `result_id` and the
//! assembled size (`result_size`), never an inline `result`; an agent that returns a non-null
//! value after streaming mixed the two and its job ends with `INVALID_REQUEST`.

use arcp_core::event::{ChunkEncoding, ResultChunk};
use arcp_core::{ErrorCode, ErrorPayload};
use serde_json::Value;

use crate::job::Outcome;

/// The streamed-result bookkeeping of one job.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    /// The result's id, once streaming started.
    pub(crate) result_id: Option<String>,
    /// The `chunk_seq` the next chunk must carry.
    next_seq: u64,
    /// The encoding of the first chunk.
    encoding: Option<ChunkEncoding>,
    /// Decoded bytes streamed so far.
    total: u64,
    /// A chunk with `more: false` was emitted.
    closed: bool,
    /// The agent returned; nothing more may be streamed.
    finalized: bool,
    /// The summary for the terminal `job.result`.
    pub(crate) summary: Option<String>,
}

/// What [`StreamState::admit`] accepted: apply it with [`StreamState::commit`] once the chunk
/// was emitted.
#[derive(Debug)]
pub(crate) struct Admitted {
    result_id: String,
    encoding: ChunkEncoding,
    decoded: u64,
    more: bool,
}

fn invalid(message: impl Into<String>) -> ErrorPayload {
    ErrorPayload::new(ErrorCode::INVALID_REQUEST, message)
}

impl StreamState {
    /// The `chunk_seq` the next chunk gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Checks `chunk` against the rules (caps: `max_chunk`, `max_total` decoded bytes)
    /// without changing anything.
    pub(crate) fn admit(&self, chunk: &ResultChunk, max_chunk: u64, max_total: u64) -> Result<Admitted, ErrorPayload> {
        if self.finalized {
            return Err(invalid("the job's result is already final"));
        }
        if self.closed {
            return Err(invalid("a result_chunk after the chunk with more: false"));
        }
        match &self.result_id {
            Some(id) if *id != chunk.result_id => {
                return Err(invalid(format!("a job streams one result; its result_id is {id:?}")));
            }
            Some(_) => {}
            None => {
                let id = &chunk.result_id;
                if id.is_empty() || id.len() > arcp_core::ids::MAX_ID_LEN || id.chars().any(char::is_control) {
                    return Err(invalid("result_id must be 1..=256 bytes without control characters"));
                }
            }
        }
        if chunk.chunk_seq != self.next_seq {
            return Err(invalid(format!("chunk_seq {} where {} was due", chunk.chunk_seq, self.next_seq)));
        }
        if self.encoding.is_some_and(|e| e != chunk.encoding) {
            return Err(invalid("one encoding per streamed result"));
        }
        let decoded = match chunk.encoding {
            ChunkEncoding::Utf8 => u64::try_from(chunk.data.len()).unwrap_or(u64::MAX),
            ChunkEncoding::Base64 => {
                base64_decoded_len(&chunk.data).ok_or_else(|| invalid("data is not padded RFC 4648 base64"))?
            }
        };
        if decoded > max_chunk {
            return Err(cap_error(format!("a result chunk of {decoded} bytes exceeds the cap of {max_chunk}")));
        }
        if self.total.saturating_add(decoded) > max_total {
            return Err(cap_error(format!("the streamed result would exceed the cap of {max_total} bytes")));
        }
        Ok(Admitted { result_id: chunk.result_id.clone(), encoding: chunk.encoding, decoded, more: chunk.more })
    }

    /// Records an emitted chunk.
    pub(crate) fn commit(&mut self, admitted: Admitted) {
        self.result_id = Some(admitted.result_id);
        self.encoding = Some(admitted.encoding);
        self.next_seq = self.next_seq.saturating_add(1);
        self.total = self.total.saturating_add(admitted.decoded);
        self.closed = !admitted.more;
    }

    /// The job's outcome once its agent returned `value`: an inline result, or — if a chunk
    /// was streamed — the streamed result (`value` must then be `null`). Closes the stream.
    pub(crate) fn finalize(&mut self, value: Value) -> Outcome {
        self.finalized = true;
        match self.result_id.clone() {
            None => Outcome::Success(value),
            Some(_) if !value.is_null() => Outcome::Failed(invalid(
                "the agent returned an inline result after streaming result chunks (§8.4: never both)",
            )),
            Some(result_id) => Outcome::Streamed { result_id, result_size: self.total, summary: self.summary.take() },
        }
    }
}

fn cap_error(message: String) -> ErrorPayload {
    ErrorPayload::new(ErrorCode::INTERNAL_ERROR, message)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [group[0], group.get(1).copied().unwrap_or(0), group.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The decoded length of padded standard base64, or `None` if `s` is not that.
pub(crate) fn base64_decoded_len(s: &str) -> Option<u64> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let pad = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if pad > 2 {
        return None;
    }
    let body = &bytes[..bytes.len() - pad];
    if !body.iter().all(|b| ALPHABET.contains(b)) {
        return None;
    }
    u64::try_from(bytes.len() / 4 * 3 - pad).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn chunk(id: &str, seq: u64, data: &str, encoding: ChunkEncoding, more: bool) -> ResultChunk {
        ResultChunk { result_id: id.into(), chunk_seq: seq, data: data.into(), encoding, more }
    }

    fn push(s: &mut StreamState, c: &ResultChunk) -> Result<(), ErrorPayload> {
        let a = s.admit(c, 1 << 20, 1 << 28)?;
        s.commit(a);
        Ok(())
    }

    #[test]
    fn base64_round_trip_lengths() {
        for (raw, enc) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg==")] {
            assert_eq!(base64_encode(raw.as_bytes()), enc);
            assert_eq!(base64_decoded_len(enc), Some(raw.len() as u64));
        }
        assert_eq!(base64_encode(&[0xff, 0xfe]), "//4=");
        for bad in ["Zg", "Zg=", "Z===", "Zm9v!A==", "Zm-v", "===="] {
            assert_eq!(base64_decoded_len(bad), None, "{bad}");
        }
    }

    #[test]
    fn chunks_must_be_contiguous_stable_and_single_encoding() {
        let mut s = StreamState::default();
        let u = ChunkEncoding::Utf8;
        assert!(push(&mut s, &chunk("res_1", 1, "a", u, true)).is_err(), "must start at 0");
        push(&mut s, &chunk("res_1", 0, "ab", u, true)).unwrap();
        assert_eq!(push(&mut s, &chunk("res_2", 1, "a", u, true)).unwrap_err().code, ErrorCode::INVALID_REQUEST);
        assert!(push(&mut s, &chunk("res_1", 2, "a", u, true)).is_err(), "gap");
        assert!(push(&mut s, &chunk("res_1", 1, "Zg==", ChunkEncoding::Base64, true)).is_err(), "mixed encoding");
        push(&mut s, &chunk("res_1", 1, "cd", u, false)).unwrap();
        assert!(push(&mut s, &chunk("res_1", 2, "e", u, false)).is_err(), "after more:false");
        match s.finalize(Value::Null) {
            Outcome::Streamed { result_id, result_size, .. } => {
                assert_eq!((result_id.as_str(), result_size), ("res_1", 4))
            }
            _ => panic!("expected a streamed outcome"),
        }
    }

    #[test]
    fn caps_are_internal_errors_and_leave_the_state_alone() {
        let mut s = StreamState::default();
        let big = "x".repeat(11);
        let e = s.admit(&chunk("r", 0, &big, ChunkEncoding::Utf8, true), 10, 100).unwrap_err();
        assert_eq!((e.code, e.retryable), (ErrorCode::INTERNAL_ERROR, true));
        for seq in 0..10 {
            let a = s.admit(&chunk("r", seq, "0123456789", ChunkEncoding::Utf8, true), 10, 100).unwrap();
            s.commit(a);
        }
        let e = s.admit(&chunk("r", 10, "x", ChunkEncoding::Utf8, true), 10, 100).unwrap_err();
        assert_eq!(e.code, ErrorCode::INTERNAL_ERROR);
        assert_eq!(s.next_seq(), 10);
    }

    #[test]
    fn inline_and_streamed_never_mix() {
        let mut s = StreamState::default();
        assert!(matches!(s.finalize(Value::from(3)), Outcome::Success(_)));
        let mut s = StreamState::default();
        push(&mut s, &chunk("r", 0, "a", ChunkEncoding::Utf8, true)).unwrap();
        match s.finalize(Value::from(3)) {
            Outcome::Failed(e) => assert_eq!(e.code, ErrorCode::INVALID_REQUEST),
            _ => panic!("mixing must fail"),
        }
        assert!(s.admit(&chunk("r", 1, "a", ChunkEncoding::Utf8, false), 10, 10).is_err(), "finalized");
    }
}
