//! `arcp keys create|list|revoke`: API keys in the store `arcp serve` uses. The store is
//! found as `serve` finds it: `--store`, else `ARCP_STORE`, else the `store` key of the
//! configuration file (`--config`/`ARCP_CONFIG`, else `./arcp.toml` if it exists), else the
//! default. The commands open the store directly, so they work while a server runs on it
//! (SQLite lets several processes share the file; the server's `PATH.lock` is not taken), and
//! a revocation applies to the server's next handshake or request. See `docs/keys.md`.

use std::sync::Arc;

use anyhow::Context as _;
use arcp_core::{Clock as _, Timestamp};
use arcp_server::store::postgres::{PgOptions, PgStore};
use clap::{Args, Subcommand};
use runtime::keys::{self, ApiKeyStore, KeyError, KeyRecord, NewKey, PgKeyStore, Revoked, SqliteKeyStore};
use serde_json::{Value, json};

use crate::Failure;
use crate::store_choice::{DEFAULT_STORE, StoreSpec, redact};

/// `arcp keys`.
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    /// The store holding the keys: the one `arcp serve` uses, `sqlite:PATH` or
    /// `postgres://USER@HOST/DB` (`memory` keeps keys only inside one server process). Without
    /// it: the `store` of the configuration file, else sqlite:./arcp-data/arcp.db.
    #[arg(long, env = "ARCP_STORE", value_name = "STORE", global = true)]
    pub(crate) store: Option<String>,
    /// The configuration file of `arcp serve` whose `store` to use when neither --store nor
    /// ARCP_STORE is given. Default: ./arcp.toml when it exists.
    #[arg(long, env = "ARCP_CONFIG", value_name = "PATH", global = true)]
    pub(crate) config: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: KeysCommand,
}

/// The `arcp keys` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key and print it once (`api key: arcp_sk_…`), with its id and prefix.
    ///
    /// Only the key's SHA-256 digest and its first 16 characters are stored: copy the key now,
    /// it cannot be shown again.
    Create(CreateArgs),
    /// List the keys: id, prefix, principal, status, creation, expiry, revocation, label
    /// (never a key).
    List(ListArgs),
    /// Revoke a key, named by its id (`key_…`) or its prefix (`arcp_sk_…`, 16 characters).
    ///
    /// New sessions and HTTP requests presenting it are refused at once, by every server on
    /// the store; sessions already open stay open but cannot be resumed with it.
    Revoke(RevokeArgs),
}

/// `arcp keys create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The principal the key authenticates as (it scopes jobs, idempotency keys and cancel
    /// authority).
    #[arg(long, env = "ARCP_PRINCIPAL", value_name = "NAME", default_value = "local")]
    pub(crate) principal: String,
    /// The key stops working this many seconds from now.
    #[arg(long, value_name = "SECS", conflicts_with = "expires_at", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) expires_in: Option<u64>,
    /// The key stops working at this time (RFC 3339, e.g. 2030-01-31T12:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) expires_at: Option<String>,
    /// A note shown by `arcp keys list` (who or what the key is for).
    #[arg(long, value_name = "TEXT")]
    pub(crate) label: Option<String>,
    /// Print one JSON object (the key under `"key"`) instead of lines.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `arcp keys list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `arcp keys revoke`.
#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The key's id (`key_…`) or prefix (`arcp_sk_…`, as `arcp keys list` shows it).
    #[arg(value_name = "ID_OR_PREFIX")]
    pub(crate) key: String,
}

/// Runs `arcp keys …`.
pub(crate) async fn run(args: KeysArgs) -> Result<(), Failure> {
    let store = match args.store {
        Some(store) => store,
        None => store_from_config(args.config.as_deref())?.unwrap_or_else(|| DEFAULT_STORE.to_owned()),
    };
    let spec = StoreSpec::parse(&store).map_err(Failure::Usage)?;
    match args.command {
        KeysCommand::Create(create_args) => {
            let now = now();
            let new = new_key(&create_args, now)?;
            let store = open(&spec, true).await?;
            create(&*store, new, create_args.json, now).await
        }
        KeysCommand::List(list_args) => list(&*open(&spec, false).await?, &spec, list_args.json).await,
        KeysCommand::Revoke(revoke_args) => revoke(&*open(&spec, false).await?, &revoke_args.key).await,
    }
}

/// The `store` key of the configuration file (`path`, else `./arcp.toml` if it exists), if
/// any. The other keys belong to `arcp serve` and are not read here.
fn store_from_config(path: Option<&std::path::Path>) -> Result<Option<String>, Failure> {
    let default = std::path::Path::new(crate::config::DEFAULT_FILE);
    let path = match path {
        Some(p) => p,
        None if default.is_file() => default,
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read the configuration file {}: {e}", path.display())))?;
    let table: toml::Table =
        text.parse().map_err(|e| Failure::Usage(format!("{} is not valid TOML: {e}", path.display())))?;
    match table.get("store") {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Failure::Usage(format!(
            "{}: key `store`: expected a string, got a {}",
            path.display(),
            other.type_str()
        ))),
    }
}

fn now() -> u64 {
    arcp_core::SystemClock.now_millis()
}

/// The key the flags ask for (checked again when minted).
fn new_key(args: &CreateArgs, now: u64) -> Result<NewKey, Failure> {
    let expires_at = match (args.expires_in, &args.expires_at) {
        (Some(secs), _) => Some(
            secs.checked_mul(1_000)
                .and_then(|ms| now.checked_add(ms))
                .ok_or_else(|| Failure::Usage(format!("--expires-in {secs} is too far in the future")))?,
        ),
        (None, Some(at)) => {
            let ts = Timestamp::parse(at)
                .map_err(|e| Failure::Usage(format!("--expires-at {at:?} is not an RFC 3339 time: {e}")))?;
            Some(
                u64::try_from(ts.unix_millis())
                    .map_err(|_| Failure::Usage(format!("--expires-at {at:?} is before 1970")))?,
            )
        }
        (None, None) => None,
    };
    Ok(NewKey { principal: args.principal.clone(), label: args.label.clone(), expires_at })
}

/// Opens the key table of `spec` (`create`: a missing SQLite file is created).
async fn open(spec: &StoreSpec, create: bool) -> Result<Arc<dyn ApiKeyStore>, Failure> {
    match spec {
        StoreSpec::Memory => Err(Failure::Usage(
            "--store memory keeps keys only inside one `arcp serve` process (it prints its key on start): \
             `arcp keys` needs the server's durable store, sqlite:PATH or postgres://…"
                .to_owned(),
        )),
        StoreSpec::Sqlite(path) => {
            let store =
                if create { SqliteKeyStore::open(path).await } else { SqliteKeyStore::open_existing(path).await };
            let store = store.with_context(|| format!("cannot open the key store in {}", path.display()))?;
            Ok(Arc::new(store))
        }
        StoreSpec::Postgres(url) => {
            let pg = PgStore::connect(url, PgOptions::default().with_pool_size(2))
                .await
                .with_context(|| format!("cannot open the PostgreSQL store {}", redact(url)))?;
            let store = PgKeyStore::from_store(&pg)
                .await
                .with_context(|| format!("cannot open the key store in {}", redact(url)))?;
            Ok(Arc::new(store))
        }
    }
}

/// A key error as a failure: refused input is a usage error (exit 2), the rest exit 1.
fn failure(e: KeyError) -> Failure {
    match e {
        KeyError::Invalid(why) => Failure::Usage(why),
        other => Failure::Fatal(other.into()),
    }
}

/// `arcp keys create`.
async fn create(store: &dyn ApiKeyStore, new: NewKey, as_json: bool, now: u64) -> Result<(), Failure> {
    let (key, record) = keys::create_key(store, new, &arcp_core::OsEntropy, now).await.map_err(failure)?;
    if as_json {
        let mut obj = describe(&record, now);
        obj["key"] = json!(key.expose());
        println!("{obj}");
    } else {
        println!("api key: {}", key.expose());
        println!("id: {}", record.id);
        println!("prefix: {}", record.prefix);
        println!("principal: {}", record.principal);
        println!("expires: {}", record.expires_at.map_or_else(|| "never".to_owned(), time));
        if let Some(label) = &record.label {
            println!("label: {label}");
        }
    }
    eprintln!("arcp: the key is shown only now; the store keeps its digest");
    Ok(())
}

/// `arcp keys list`.
async fn list(store: &dyn ApiKeyStore, spec: &StoreSpec, as_json: bool) -> Result<(), Failure> {
    let all = store.list().await.map_err(failure)?;
    let now = now();
    if as_json {
        println!("{}", Value::Array(all.iter().map(|r| describe(r, now)).collect()));
        return Ok(());
    }
    if all.is_empty() {
        eprintln!("arcp: no API keys in {}", spec.describe());
        return Ok(());
    }
    let dash = || "-".to_owned();
    let mut rows =
        vec![["ID", "PREFIX", "PRINCIPAL", "STATUS", "CREATED", "EXPIRES", "REVOKED", "LABEL"].map(str::to_owned)];
    rows.extend(all.iter().map(|r| {
        [
            r.id.clone(),
            r.prefix.clone(),
            r.principal.clone(),
            r.status(now).as_str().to_owned(),
            time(r.created_at),
            r.expires_at.map_or_else(|| "never".to_owned(), time),
            r.revoked_at.map_or_else(dash, time),
            r.label.clone().unwrap_or_else(dash),
        ]
    }));
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let line: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

/// `arcp keys revoke`.
async fn revoke(store: &dyn ApiKeyStore, selector: &str) -> Result<(), Failure> {
    match keys::revoke_key(store, selector, now()).await.map_err(failure)? {
        Revoked::Now(r) => println!("revoked {} ({}, principal {})", r.id, r.prefix, r.principal),
        Revoked::Already(r) => println!(
            "{} ({}, principal {}) was already revoked at {}",
            r.id,
            r.prefix,
            r.principal,
            r.revoked_at.map_or_else(|| "?".to_owned(), time)
        ),
    }
    Ok(())
}

/// A stored key as `arcp keys list --json` shows it (never the key or its digest).
fn describe(r: &KeyRecord, now: u64) -> Value {
    json!({
        "id": r.id,
        "prefix": r.prefix,
        "principal": r.principal,
        "label": r.label,
        "status": r.status(now).as_str(),
        "created_at": time(r.created_at),
        "expires_at": r.expires_at.map(time),
        "revoked_at": r.revoked_at.map(time),
    })
}

/// RFC 3339, UTC, milliseconds.
fn time(ms: u64) -> String {
    Timestamp::from_millis(ms).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(expires_in: Option<u64>, expires_at: Option<&str>) -> CreateArgs {
        CreateArgs {
            principal: "p".into(),
            expires_in,
            expires_at: expires_at.map(str::to_owned),
            label: None,
            json: false,
        }
    }

    #[test]
    fn expiry_flags() {
        let now = 1_700_000_000_000;
        assert_eq!(new_key(&args(None, None), now).unwrap().expires_at, None);
        assert_eq!(new_key(&args(Some(60), None), now).unwrap().expires_at, Some(now + 60_000));
        assert_eq!(
            new_key(&args(None, Some("2030-01-31T12:00:00Z")), now).unwrap().expires_at,
            Some(1_896_091_200_000)
        );
        assert_eq!(
            new_key(&args(None, Some("2030-01-31T13:00:00+01:00")), now).unwrap().expires_at,
            Some(1_896_091_200_000)
        );
        for bad in ["tomorrow", "2030-01-31", "1960-01-01T00:00:00Z"] {
            assert!(matches!(new_key(&args(None, Some(bad)), now), Err(Failure::Usage(_))), "{bad}");
        }
        assert!(matches!(new_key(&args(Some(u64::MAX), None), now), Err(Failure::Usage(_))));
    }

    #[test]
    fn the_store_comes_from_the_configuration_file() {
        let dir = std::env::temp_dir().join(format!("arcp-keys-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("arcp.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nstore = \"sqlite:/srv/arcp.db\"\n").unwrap();
        assert_eq!(store_from_config(Some(&file)).unwrap().as_deref(), Some("sqlite:/srv/arcp.db"));
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\n").unwrap();
        assert_eq!(store_from_config(Some(&file)).unwrap(), None);
        std::fs::write(&file, "store = 3\n").unwrap();
        assert!(matches!(store_from_config(Some(&file)), Err(Failure::Usage(_))));
        std::fs::write(&file, "store = \n").unwrap();
        assert!(matches!(store_from_config(Some(&file)), Err(Failure::Usage(_))));
        assert!(matches!(store_from_config(Some(&dir.join("missing.toml"))), Err(Failure::Usage(_))));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn listings_never_hold_the_key_or_its_digest() {
        let (key, record) = NewKey::for_principal("p").mint(&arcp_core::OsEntropy, 1).unwrap();
        let shown = describe(&record, 2).to_string();
        assert!(!shown.contains(key.expose()) && !shown.contains(&key.expose()[16..]), "{shown}");
        assert!(shown.contains(&record.prefix) && shown.contains(r#""status":"active""#), "{shown}");
    }
}
