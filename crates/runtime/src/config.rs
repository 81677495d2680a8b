//! `arcp.toml`: the configuration file of `arcp serve`, and `--print-config`.
//!
//! One precedence, for every setting: **flag > `ARCP_*` environment variable > `arcp.toml` >
//! built-in default**. The file is `--config PATH` (or `ARCP_CONFIG`), else `./arcp.toml` when
//! it exists. Its keys are the long flag names of `arcp serve` (`listen`, `store`,
//! `channel-idle-ttl-secs`, …; `_` may stand for `-`), with TOML strings, integers or booleans
//! (`insecure = true`). The file only fills settings that neither a flag nor a variable set:
//! it is applied by appending `--key value` for those and parsing the command line again, so
//! every value goes through the one real parser and its checks.
//!
//! An unknown key, a value of the wrong type or a value the flag refuses is an error that
//! names the key (exit status 2). `docs/configuration.md` is generated from the parser
//! ([`configuration_md`]) and a test keeps it current.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory as _};

use crate::cli::Cli;

/// The file read when no `--config` is given and it exists.
pub(crate) const DEFAULT_FILE: &str = "arcp.toml";

/// Flags that are not settings (they cannot appear in the file).
const NOT_SETTINGS: &[&str] = &["config", "print-config", "help", "version"];

/// Settings whose value is a secret: `--print-config` shows `***`.
const SECRETS: &[&str] = &["token"];

/// A configuration problem: always names the file and, where it is about one, the key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    /// The file is not TOML.
    #[error("{path} is not valid TOML: {error}")]
    Syntax { path: PathBuf, error: String },
    /// A key is not a setting of `arcp serve`.
    #[error("{path}: unknown key `{key}` (the keys are the long flags of `arcp serve`: {known})")]
    UnknownKey { path: PathBuf, key: String, known: String },
    /// A value has a type the key cannot take, or the flag's parser refused it.
    #[error("{path}: key `{key}`: {problem}")]
    Value { path: PathBuf, key: String, problem: String },
}

/// The command line after the configuration file was applied.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The arguments to parse.
    pub(crate) argv: Vec<OsString>,
    /// The settings (long flag names) the file provided.
    pub(crate) from_file: Vec<String>,
}

/// Applies the configuration file to `argv` (the process's arguments). Anything but
/// `arcp serve`, or a command line clap refuses, comes back unchanged (the real parse reports
/// it).
pub(crate) fn apply(argv: Vec<OsString>) -> Result<Applied, ConfigError> {
    let unchanged = |argv| Ok(Applied { argv, from_file: Vec::new() });
    let Ok(matches) = Cli::command().try_get_matches_from(&argv) else { return unchanged(argv) };
    let Some(("serve", serve)) = matches.subcommand() else { return unchanged(argv) };
    let Some(path) = config_path(serve) else { return unchanged(argv) };
    let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::Read { path: path.clone(), error })?;
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax { path: path.clone(), error: e.to_string() })?;
    let settings = settings();
    let mut out = argv;
    let mut from_file = Vec::new();
    for (raw_key, value) in &table {
        let key = raw_key.replace('_', "-");
        let Some(setting) = settings.iter().find(|s| s.long == key) else {
            let known = settings.iter().map(|s| s.long.as_str()).collect::<Vec<_>>().join(", ");
            return Err(ConfigError::UnknownKey { path, key: raw_key.clone(), known });
        };
        let value_error = |problem: String| ConfigError::Value { path: path.clone(), key: raw_key.clone(), problem };
        if !matches!(serve.value_source(&setting.id), None | Some(ValueSource::DefaultValue)) {
            continue; // a flag or a variable set it: they win
        }
        let mut extra: Vec<OsString> = Vec::new();
        match (value, setting.is_switch) {
            (toml::Value::Boolean(true), true) => extra.push(format!("--{key}").into()),
            (toml::Value::Boolean(false), true) => {}
            (_, true) => return Err(value_error("expected true or false".into())),
            (toml::Value::String(s), false) => extra.push(format!("--{key}={s}").into()),
            (toml::Value::Integer(i), false) => extra.push(format!("--{key}={i}").into()),
            (toml::Value::Float(f), false) => extra.push(format!("--{key}={f}").into()),
            (other, false) => {
                return Err(value_error(format!("expected a string or a number, got a {}", other.type_str())));
            }
        }
        // Each key is checked on its own, so a refusal names it.
        let mut candidate = out.clone();
        candidate.extend(extra);
        if let Err(e) = Cli::command().try_get_matches_from(&candidate) {
            return Err(value_error(first_line(&e.to_string())));
        }
        out = candidate;
        from_file.push(key);
    }
    Ok(Applied { argv: out, from_file })
}

/// `--config PATH`, else `./arcp.toml` if it exists.
fn config_path(serve: &ArgMatches) -> Option<PathBuf> {
    match serve.get_one::<PathBuf>("config") {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| Path::new(p).is_file()),
    }
}

/// One setting of `arcp serve`, as the parser defines it (`env`, `default` and `help` feed
/// the documentation generator, which runs as a test).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Setting {
    id: String,
    long: String,
    env: Option<String>,
    default: Option<String>,
    help: String,
    is_switch: bool,
}

/// Every setting of `arcp serve`, in declaration order.
pub(crate) fn settings() -> Vec<Setting> {
    let cmd = Cli::command();
    let Some(serve) = cmd.find_subcommand("serve") else { return Vec::new() };
    serve
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?.to_owned();
            if NOT_SETTINGS.contains(&long.as_str()) {
                return None;
            }
            Some(Setting {
                id: a.get_id().to_string(),
                long,
                env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
                default: Some(
                    a.get_default_values()
                        .iter()
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(","),
                )
                .filter(|d| !d.is_empty()),
                help: a.get_help().map(|h| first_line(&h.to_string())).unwrap_or_default(),
                is_switch: !a.get_action().takes_values(),
            })
        })
        .collect()
}

/// `--print-config`: the effective value of every setting and where it came from, as TOML
/// an operator can paste into `arcp.toml` (secrets shown as `***`).
pub(crate) fn print_config(serve: &ArgMatches, from_file: &[String]) -> String {
    let mut out =
        String::from("# arcp serve: effective configuration (flag > ARCP_* variable > arcp.toml > default)\n");
    for s in settings() {
        let source = match serve.value_source(&s.id) {
            Some(ValueSource::CommandLine) if from_file.contains(&s.long) => "arcp.toml",
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let value: Option<String> = if s.is_switch {
            serve.try_get_one::<bool>(&s.id).ok().flatten().map(|b| b.to_string())
        } else {
            serve.get_raw(&s.id).and_then(|mut v| v.next()).map(|v| {
                let v = v.to_string_lossy();
                let shown = if SECRETS.contains(&s.long.as_str()) {
                    "***".to_owned()
                } else if s.long == "store" {
                    crate::store_choice::redact(&v)
                } else {
                    v.into_owned()
                };
                format!("{shown:?}")
            })
        };
        match value {
            Some(v) => out.push_str(&format!("{} = {v}  # {source}\n", s.long)),
            None => out.push_str(&format!("# {} is not set\n", s.long)),
        }
    }
    out
}

/// The generated part of `docs/configuration.md`: one row per setting.
#[cfg(test)]
pub(crate) fn configuration_md() -> String {
    let mut out =
        String::from("### `arcp serve`\n\n| `arcp.toml` key / flag | variable | default | what |\n|---|---|---|---|\n");
    for s in settings() {
        let default = match (&s.default, s.is_switch) {
            (_, true) => "`false`".to_owned(),
            (Some(d), false) => format!("`{d}`"),
            (None, false) => "—".to_owned(),
        };
        let env = s.env.as_deref().map_or("—".to_owned(), |e| format!("`{e}`"));
        out.push_str(&format!(
            "| `{}` / `--{}` | {env} | {default} | {} |\n",
            s.long,
            s.long,
            s.help.replace('|', "\\|")
        ));
    }
    let cmd = Cli::command();
    for sub in cmd.get_subcommands().filter(|c| c.get_name() != "serve") {
        command_md(&mut out, &format!("arcp {}", sub.get_name()), sub);
    }
    out
}

/// One table of a (sub)command's flags and arguments, then its subcommands'.
#[cfg(test)]
fn command_md(out: &mut String, path: &str, cmd: &clap::Command) {
    let about = cmd.get_about().map(|a| first_line(&a.to_string())).unwrap_or_default();
    out.push_str(&format!("\n### `{path}`\n\n{about}\n\n"));
    let args: Vec<_> = cmd.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")).collect();
    if !args.is_empty() {
        out.push_str("| flag / argument | variable | default | what |\n|---|---|---|---|\n");
        for a in args {
            let name = match a.get_long() {
                Some(l) => format!("`--{l}`"),
                None => {
                    let value = a.get_value_names().and_then(|v| v.first().map(ToString::to_string));
                    format!("`<{}>`", value.unwrap_or_else(|| a.get_id().to_string()))
                }
            };
            let env = a.get_env().map_or("—".to_owned(), |e| format!("`{}`", e.to_string_lossy()));
            let defaults: Vec<String> =
                a.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            let default = if !a.get_action().takes_values() {
                "`false`".to_owned()
            } else if defaults.is_empty() {
                "—".to_owned()
            } else {
                format!("`{}`", defaults.join(","))
            };
            let help = a.get_help().map(|h| first_line(&h.to_string())).unwrap_or_default().replace('|', "\\|");
            out.push_str(&format!("| {name} | {env} | {default} | {help} |\n"));
        }
    }
    for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
        command_md(out, &format!("{path} {}", sub.get_name()), sub);
    }
}

fn first_line(s: &str) -> String {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().trim_start_matches("error: ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("arcp-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("arcp.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn serve_matches(argv: Vec<OsString>) -> ArgMatches {
        let m = Cli::command().try_get_matches_from(argv).unwrap();
        m.subcommand_matches("serve").unwrap().clone()
    }

    #[test]
    fn the_file_fills_what_flags_and_variables_did_not_set() {
        let path = write("fill", "listen = \"127.0.0.1:9999\"\nchannel_idle_ttl_secs = 60\ninsecure = true\n");
        let p = path.to_str().unwrap();
        let applied = apply(os(&["arcp", "serve", "--config", p])).unwrap();
        assert!(applied.from_file.contains(&"insecure".to_owned()));
        let m = serve_matches(applied.argv);
        // Only when the environment does not set them (CI may).
        if std::env::var_os("ARCP_LISTEN").is_none() {
            assert_eq!(m.get_one::<String>("listen").unwrap(), "127.0.0.1:9999");
        }
        if std::env::var_os("ARCP_CHANNEL_IDLE_TTL_SECS").is_none() {
            assert_eq!(*m.get_one::<u64>("channel_idle_ttl_secs").unwrap(), 60);
        }
        assert!(m.get_flag("insecure"));
        // A flag wins over the file.
        let applied = apply(os(&["arcp", "serve", "--config", p, "--listen", "127.0.0.1:1"])).unwrap();
        assert!(!applied.from_file.contains(&"listen".to_owned()));
        assert_eq!(serve_matches(applied.argv).get_one::<String>("listen").unwrap(), "127.0.0.1:1");
    }

    #[test]
    fn bad_files_name_the_key() {
        let unknown = write("unknown", "lissen = \"x\"\n");
        let e = apply(os(&["arcp", "serve", "--config", unknown.to_str().unwrap()])).unwrap_err().to_string();
        assert!(e.contains("unknown key `lissen`") && e.contains("listen"), "{e}");
        let wrong_type = write("type", "channel-idle-ttl-secs = \"soon\"\n");
        let e = apply(os(&["arcp", "serve", "--config", wrong_type.to_str().unwrap()])).unwrap_err().to_string();
        assert!(e.contains("key `channel-idle-ttl-secs`"), "{e}");
        let switch = write("switch", "insecure = \"yes\"\n");
        let e = apply(os(&["arcp", "serve", "--config", switch.to_str().unwrap()])).unwrap_err().to_string();
        assert!(e.contains("key `insecure`") && e.contains("true or false"), "{e}");
        let syntax = write("syntax", "listen = \n");
        let e = apply(os(&["arcp", "serve", "--config", syntax.to_str().unwrap()])).unwrap_err().to_string();
        assert!(e.contains("not valid TOML"), "{e}");
        let missing = apply(os(&["arcp", "serve", "--config", "/nonexistent/arcp.toml"])).unwrap_err().to_string();
        assert!(missing.contains("cannot read"), "{missing}");
    }

    #[test]
    fn print_config_redacts_secrets_and_store_passwords() {
        let argv = os(&["arcp", "serve", "--token", "s3cret", "--store", "postgres://u:pw@h/db"]);
        let text = print_config(&serve_matches(argv), &[]);
        assert!(!text.contains("s3cret") && !text.contains(":pw@"), "{text}");
        assert!(text.contains("token = \"***\""), "{text}");
        assert!(text.contains("postgres://u:***@h/db"), "{text}");
        // What it prints is a valid arcp.toml.
        let table: toml::Table = text.parse().unwrap();
        assert!(table.contains_key("listen"));
    }

    /// `docs/configuration.md` documents every setting of the real parser. Regenerate with
    /// `ARCP_BLESS=1 cargo test -p runtime --bin arcp configuration_md`.
    #[test]
    fn configuration_md_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let (begin, end) = ("<!-- settings:begin -->\n", "<!-- settings:end -->");
        let generated = configuration_md();
        let current = text.split_once(begin).and_then(|(_, rest)| rest.split_once(end)).map(|(table, _)| table);
        if current != Some(generated.as_str()) {
            if std::env::var_os("ARCP_BLESS").is_some() {
                let (head, tail) = match (text.split_once(begin), text.split_once(end)) {
                    (Some((head, _)), Some((_, tail))) => (head.to_owned(), tail.to_owned()),
                    _ => (text.clone(), "\n".to_owned()),
                };
                std::fs::write(&path, format!("{head}{begin}{generated}{end}{tail}")).unwrap();
            } else {
                panic!(
                    "docs/configuration.md is not current; run ARCP_BLESS=1 cargo test -p runtime --bin arcp configuration_md"
                );
            }
        }
    }
}
