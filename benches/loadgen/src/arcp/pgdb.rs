//! `arcp pgdb create|drop`: a scratch PostgreSQL database for one benchmark run, so `arcp
//! serve --store postgres://…` starts on an empty store and leaves nothing behind.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use serde_json::json;

use crate::report;

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Creates a database `arcp_bench_…` on the server of `--url`. Result: {name, url} (the
    /// URL of the new database).
    Create {
        /// A URL of the server (any database the user may connect to).
        #[arg(long)]
        url: String,
    },
    /// Drops database `--name` (only names starting with `arcp_bench_`).
    Drop {
        /// A URL of the server (not of the database being dropped).
        #[arg(long)]
        url: String,
        /// The database to drop.
        #[arg(long)]
        name: String,
    },
}

/// The prefix of every scratch database.
const PREFIX: &str = "arcp_bench_";

/// Runs `action`.
pub(crate) async fn run(action: Action) -> Result<()> {
    match action {
        Action::Create { url } => {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let name = format!("{PREFIX}{}_{nanos}", std::process::id());
            connect(&url)
                .await?
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .await
                .context("CREATE DATABASE")?;
            report::emit(&json!({"name": name, "url": with_database(&url, &name)?}));
            Ok(())
        }
        Action::Drop { url, name } => {
            if !name.starts_with(PREFIX) || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                bail!("refusing to drop {name:?}: not a scratch database of this tool");
            }
            connect(&url)
                .await?
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await
                .context("DROP DATABASE")?;
            report::emit(&json!({"dropped": name}));
            Ok(())
        }
    }
}

/// A plain connection to `url` (its driver runs on a task).
async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("pgdb: connection: {e}");
        }
    });
    Ok(client)
}

/// `url` with its database replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> Result<String> {
    let (scheme, rest) = url.split_once("://").context("a PostgreSQL URL needs a scheme")?;
    let (base, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = base.split_once('/').map_or(base, |(a, _)| a);
    Ok(match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "x").unwrap(), "postgres://u@h:5432/x");
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgresql://h", "x").unwrap(), "postgresql://h/x");
        assert!(with_database("nope", "x").is_err());
    }
}
