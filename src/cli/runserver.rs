//! `runserver [ADDR:PORT]`: starts the chat server like Django's `runserver`
//! (default `127.0.0.1:8000`; a bare port, `0:PORT` for all interfaces and `[v6]:PORT` work).
//!
//! Before serving: on an SQLite file that does not exist yet, creates and migrates it; refuses
//! an unmigrated database; resolves `SECRET_KEY` (a generated key is announced once on stderr);
//! tells how to create a user when there is none. The opened database and resolved key are
//! passed on (`startup::open` once, then `startup::serve_opened`), which runs until
//! Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::config::{DatabaseUrl, Settings};

use super::{CommandError, CommandResult, open_store};

const DEFAULT_ADDR: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 8000;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Optional port number, or ipaddr:port (default 127.0.0.1:8000).
    #[arg(value_name = "ADDRPORT")]
    pub addrport: Option<String>,
    /// Accepted for compatibility (Whisper never auto-reloads).
    #[arg(long = "noreload")]
    pub noreload: bool,
}

/// Django's `addrport` forms → `(host, port)`; the host keeps IPv6 brackets off.
fn parse_addrport(raw: Option<&str>) -> Result<(String, u16), CommandError> {
    let Some(raw) = raw else {
        return Ok((DEFAULT_ADDR.to_string(), DEFAULT_PORT));
    };
    let invalid = || {
        CommandError::new(format!(
            "{raw:?} is not a valid port number or address:port pair."
        ))
    };
    let port = |p: &str| -> Result<u16, CommandError> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        p.parse().map_err(|_| invalid())
    };
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return Ok((DEFAULT_ADDR.to_string(), port(raw)?));
    }
    let (host, p) = if let Some(rest) = raw.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
        let p = after.strip_prefix(':').ok_or_else(invalid)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(CommandError::new(format!(
                "{host:?} is not a valid IPv6 address."
            )));
        }
        (host.to_string(), p)
    } else {
        let (host, p) = raw.rsplit_once(':').ok_or_else(invalid)?;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        {
            return Err(invalid());
        }
        // Django: "0" is shorthand for 0.0.0.0.
        let host = if host == "0" { "0.0.0.0" } else { host };
        (host.to_string(), p)
    };
    Ok((host, port(p)?))
}

fn url_host(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

/// A future resolving on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed now, before
/// the "Quit the server" line is printed, so an early signal still stops the server cleanly.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt()).ok();
        let term = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(int) => {}
                _ = wait(term) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn bind_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "That port is already in use.".to_string(),
        std::io::ErrorKind::PermissionDenied => {
            "You don't have permission to access that port.".to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => "That IP address can't be assigned to.".to_string(),
        _ => e.to_string(),
    }
}

pub async fn run(settings: Settings, args: &Args) -> CommandResult {
    let (host, port) = parse_addrport(args.addrport.as_deref())?;
    let shutdown = shutdown_signal();

    // The embedded SQLite default: create and migrate a database file that does not exist yet.
    if let DatabaseUrl::Sqlite(path) = &settings.database_url
        && !path.exists()
    {
        let store = open_store(&settings, true).await?;
        let report = store.migrate().await;
        store.close().await;
        let report = report?;
        println!(
            "Created the database {} ({} migrations applied).",
            path.display(),
            report.applied.len()
        );
    }
    // SECRET_KEY, the database and its migrations: checked once, here, and passed on.
    let opened = crate::startup::open(settings)
        .await
        .map_err(|e| CommandError::new(format!("{e:#}")))?;
    let users = opened.store.count_users().await?;
    if opened.generated_secret_key {
        eprintln!(
            "SECRET_KEY was not set: generated a new one and stored it in {} (keep that file \
             private; set SECRET_KEY to use another key).",
            opened
                .settings
                .secret_key_file()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    let settings = &opened.settings;

    let listener = match crate::web::listener::bind((host.as_str(), port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Error: {}", bind_error(&e));
            return Ok(ExitCode::FAILURE);
        }
    };
    let local = listener.local_addr()?;

    println!("Performing system checks...");
    println!();
    println!("System check identified no issues (0 silenced).");
    if users == 0 {
        println!();
        println!("There are no users yet. Create one with: ./manage createsuperuser");
        println!();
    }
    println!("{}", chrono::Local::now().format("%B %d, %Y - %H:%M:%S"));
    println!(
        "Whisper version {}, using settings from the environment",
        env!("CARGO_PKG_VERSION")
    );
    println!("Password hashing: {}", settings.password_hashers.describe());
    println!(
        "Starting development server at http://{}:{}/",
        url_host(&local),
        local.port()
    );
    println!("Quit the server with CONTROL-C.");

    crate::startup::serve_opened(opened, listener, shutdown)
        .await
        .map_err(|e| CommandError::new(format!("{e:#}")))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addrport_forms() {
        let p = |s: Option<&str>| parse_addrport(s).map_err(|e| e.0);
        assert_eq!(p(None).unwrap(), ("127.0.0.1".into(), 8000));
        assert_eq!(p(Some("8001")).unwrap(), ("127.0.0.1".into(), 8001));
        assert_eq!(p(Some("0.0.0.0:80")).unwrap(), ("0.0.0.0".into(), 80));
        assert_eq!(p(Some("0:8000")).unwrap(), ("0.0.0.0".into(), 8000));
        assert_eq!(p(Some("[::1]:8000")).unwrap(), ("::1".into(), 8000));
        assert_eq!(
            p(Some("localhost:9000")).unwrap(),
            ("localhost".into(), 9000)
        );
        for bad in [
            "", "abc", "1.2.3.4", "1.2.3.4:", ":80", "[::1]", "[zz]:80", "h:99999", "a b:1",
        ] {
            assert!(p(Some(bad)).is_err(), "{bad}");
        }
    }
}
