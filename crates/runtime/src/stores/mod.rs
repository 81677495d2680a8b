//! Durable [`TokenStore`](channel_core::TokenStore)s for the channel: the continuation-token
//! state kept in the same database as the ARCP stores, so a channel conversation survives a
//! restart.

pub mod postgres_tokens;
mod row;
pub mod sqlite_tokens;
