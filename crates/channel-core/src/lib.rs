//! `channel-core`: the transport-agnostic two-identifier session protocol (sans-IO).
//!
//! A channel conversation is named by a stable [`SessionId`] and advanced by presenting a
//! single-use [`ContinuationToken`] that rotates on every committed turn. This crate holds the
//! wire shapes ([`TurnOutcome`], [`ChannelEvent`], [`TurnReply`]), the refusal taxonomy
//! ([`Refusal`]), the [`TokenStore`] trait with its atomic claim and a bounded
//! [`MemoryTokenStore`], and the port itself ([`Channel`]) which validates, claims, runs a
//! [`TurnRunner`] and rotates. It does no IO and depends on no async runtime; time and
//! randomness come in through `arcp_core`'s [`Clock`](arcp_core::Clock) and
//! [`Entropy`](arcp_core::Entropy).

mod error;
mod ids;
mod port;
mod record;
mod store;
mod wire;

pub use error::{Error, Refusal, RunnerError, StoreError};
pub use ids::{ContinuationToken, SessionId};
pub use port::{Channel, ChannelConfig, ClaimedTurn, EventSink, RecoveredTurn, Turn, TurnRunner};
pub use record::{Recovered, SessionInfo, TurnLog, TurnSummary};
pub use store::{Claim, MemoryTokenStore, TokenStore};
pub use wire::{ChannelEvent, TurnOutcome, TurnReply};
