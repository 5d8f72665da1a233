//! `hotline`: the provincial citizen hotline backend. See README.md for the two commands that matter.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hotline::settings::{Overrides, Settings};
use hotline::{Component, SubscriberCommand, TokenCommand, check_config, serve, subscriber, token, up};

#[derive(Debug, Parser)]
#[command(name = "hotline", version, about = "Provincial citizen hotline (1022) backend")]
struct Cli {
    /// Settings file (TOML). Every setting can also come from HOTLINE_* variables: see docs/configuration.md.
    #[arg(long, global = true, env = "HOTLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./data]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:8080]
    #[arg(long, global = true)]
    http: Option<String>,
    /// Province configuration file [default: the bundled Bình Dương configuration]
    #[arg(long, global = true)]
    province: Option<PathBuf>,
    /// A running NATS server [default: start an embedded one]
    #[arg(long, global = true)]
    nats_url: Option<String>,
    /// The e-mail channel's SMTP listener, also HOTLINE_SMTP_ADDR [default: 127.0.0.1:2525]
    #[arg(long, global = true)]
    smtp: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system in one process (starts its own nats-server unless NATS_URL is set).
    Up,
    /// Run one component against NATS_URL.
    Serve {
        #[arg(value_enum)]
        component: Component,
    },
    /// Load and check the settings and the province configuration, then exit.
    CheckConfig {
        /// Check only what `hotline serve <component>` reads [default: everything, as `hotline up` reads it]
        #[arg(long, value_enum)]
        component: Option<Component>,
    },
    /// Manage API tokens of the running system (found through NATS_URL or <data dir>/nats.url).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Rebuild the projections from the log into a fresh file beside the live one and swap it in atomically; the
    /// running system keeps serving and follows the swap (docs/audit.md).
    Replay,
    /// A ticket as it stood at an instant, read from the log (docs/audit.md).
    Ticket {
        /// Its reference (or id)
        ticket: String,
        /// RFC 3339 instant, e.g. 2026-11-28T09:30:00+07:00 [default: now]
        #[arg(long)]
        as_of: Option<String>,
        /// Print JSON (the API's `timeline?as_of=` shape without summaries)
        #[arg(long)]
        json: bool,
    },
    /// Auditors' tools on the log (docs/audit.md).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Citizens' personal data (docs/privacy.md).
    Citizen {
        #[command(subcommand)]
        action: CitizenAction,
    },
    /// Manage the NATS users of subscriber systems (read-only access to the published feed; docs/subscribers.md).
    Subscriber {
        /// The folder of the nats-server whose users to manage (its accounts.conf, subscribers.json and
        /// nats-server.pid) [default: <data dir>/nats, the embedded server of `hotline up`]
        #[arg(long, global = true)]
        nats_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: SubscriberAction,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Check the whole log: every ticket's hash chain and every checkpoint's Merkle root. Prints a summary; on a
    /// break names the first bad event and exits non-zero.
    Verify,
    /// Stream the events the log stored in a time range, one line each, with actor, time, ticket and hash.
    Export {
        /// Start (inclusive): RFC 3339, or a date meaning its local midnight
        #[arg(long)]
        from: String,
        /// End (exclusive): RFC 3339, or a date meaning the whole of that day
        #[arg(long)]
        to: String,
        /// Only events of tickets assigned to this agency at that event
        #[arg(long)]
        agency: Option<String>,
        /// Only events of tickets in this category at that event
        #[arg(long)]
        category: Option<String>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: hotline::audit::Format,
    },
}

#[derive(Debug, Subcommand)]
enum CitizenAction {
    /// Erase a citizen's personal data on every ticket of theirs and destroy their key: name them by a ticket
    /// reference (or id), a phone number, an e-mail address, or zalo:<id>. Cannot be undone.
    Erase { citizen: String },
}

#[derive(Debug, Subcommand)]
enum SubscriberAction {
    /// Write the server's users file (accounts.conf) and the internal password (hotline.password) without adding
    /// a subscriber: the step before a self-run nats-server's first start. Safe to run again.
    Init,
    /// Create a subscriber; prints its connection settings as an env file, the password shown only this once.
    Create {
        /// Its NATS user name, also its consumer name and inbox prefix (a-z, 0-9, -)
        name: String,
        /// The agency whose feed it reads (an agency code of the province configuration) [default: the public feed]
        #[arg(long)]
        agency: Option<String>,
        /// An extra durable consumer it may use, named <name>-<suffix> (repeatable)
        #[arg(long = "consumer")]
        consumers: Vec<String>,
    },
    /// List subscribers (name, audience, filter subject, consumers, created); never passwords.
    List,
    /// Revoke a subscriber: its password is refused and its connections closed once the server reloads.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create a token; it is printed once, alone on the last line.
    Create {
        /// operator, agency, supervisor or admin
        #[arg(long)]
        role: String,
        /// The agency an agency token acts for (an agency code of the province configuration)
        #[arg(long)]
        agency: Option<String>,
        /// Who holds it, e.g. "Nguyễn Văn A, Sở GTVT"
        #[arg(long)]
        name: String,
    },
    /// Revoke a token by its id; it stops working at once.
    Revoke { id: String },
    /// List tokens (id, role, agency, state, name); never the tokens themselves.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        http_addr: cli.http.clone(),
        data_dir: cli.data_dir.clone(),
        nats_url: cli.nats_url.clone(),
        province: cli.province.clone(),
        smtp_addr: cli.smtp.clone(),
    };
    let settings = match Settings::load(cli.config.as_deref(), std::env::vars(), &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hotline: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings.log);
    if let Command::CheckConfig { component } = cli.command {
        for name in &settings.ignored_env {
            eprintln!("hotline: note: {name} is no setting (docs/configuration.md lists them) and is ignored");
        }
        return match check_config(&settings, component) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hotline: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hotline: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up => up(settings).await,
            Command::Serve { component } => serve(settings, component).await,
            Command::CheckConfig { .. } => Ok(()),
            Command::Token { action } => {
                let command = match action {
                    TokenAction::Create { role, agency, name } => TokenCommand::Create { role, agency, name },
                    TokenAction::Revoke { id } => TokenCommand::Revoke { id },
                    TokenAction::List => TokenCommand::List,
                };
                token(settings, command).await.map(|lines| {
                    for line in lines {
                        println!("{line}");
                    }
                })
            }
            Command::Replay => hotline::audit::replay(settings).await,
            Command::Ticket { ticket, as_of, json } => hotline::audit::ticket(settings, &ticket, as_of.as_deref(), json).await.map(|lines| {
                for line in lines {
                    println!("{line}");
                }
            }),
            Command::Audit { action: AuditAction::Verify } => match hotline::audit::verify(settings).await {
                Ok(report) => {
                    for line in hotline::audit::verify_summary(&report) {
                        println!("{line}");
                    }
                    if report.problems.is_empty() {
                        Ok(())
                    } else {
                        Err(anyhow::anyhow!("the log does not verify: {} problems", report.problems.len()))
                    }
                }
                Err(e) => Err(e),
            },
            Command::Audit { action: AuditAction::Export { from, to, agency, category, format } } => {
                let options = hotline::audit::ExportOptions { from, to, agency, category, format };
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                hotline::audit::export(settings, options, &mut out).await.map(|n| eprintln!("exported {n} events"))
            }
            Command::Citizen { action: CitizenAction::Erase { citizen } } => hotline::erasure::erase_citizen(settings, &citizen).await.map(|e| {
                println!(
                    "erased: {} tickets ({} already erased), {} key destroyed, {} files and {} entries about the contact removed",
                    e.tickets, e.already, e.keys, e.files, e.entries
                );
            }),
            Command::Subscriber { nats_dir, action } => {
                let command = match action {
                    SubscriberAction::Init => SubscriberCommand::Init,
                    SubscriberAction::Create { name, agency, consumers } => {
                        SubscriberCommand::Create { name, agency, extra_consumers: consumers }
                    }
                    SubscriberAction::List => SubscriberCommand::List,
                    SubscriberAction::Revoke { name } => SubscriberCommand::Revoke { name },
                };
                subscriber(settings, nats_dir, command).await.map(|lines| {
                    for line in lines {
                        println!("{line}");
                    }
                })
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}
