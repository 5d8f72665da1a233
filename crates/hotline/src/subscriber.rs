//! `hotline subscriber init|create|list|revoke`: read-only NATS users for the other systems of the province that
//! subscribe to the published feed (docs/subscribers.md). Each gets a password shown once, and can read one
//! audience of `HOTLINE_FEED` (an agency's, or the public one) through durable consumers of its own names.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use hotline_store::access::{self, Registry, Subscriber};

use crate::settings::Settings;
use crate::system::load_province;

/// What `hotline subscriber` does.
#[derive(Debug, Clone)]
pub enum SubscriberCommand {
    /// The users file (`accounts.conf`) and the internal password, with the subscribers there are (none on a new
    /// server): what a server run by hand needs before its first start.
    Init,
    /// A new subscriber reading `agency`'s feed (None: the public feed), with durable consumers named `name` and
    /// `name-<suffix>` for each extra suffix.
    Create { name: String, agency: Option<String>, extra_consumers: Vec<String> },
    List,
    Revoke { name: String },
}

/// Runs a `hotline subscriber` command on the users of the server whose folder is `nats_dir` (default
/// `<data dir>/nats`, the embedded server of `hotline up`). Returns the lines to print.
pub async fn subscriber(settings: Settings, nats_dir: Option<PathBuf>, command: SubscriberCommand) -> anyhow::Result<Vec<String>> {
    let dir = match nats_dir {
        Some(dir) => dir,
        None if settings.nats_url.is_some() => bail!(
            "NATS_URL names a server you run: `hotline subscriber` edits the users of a server through its folder. \
             Pass --nats-dir <folder with its accounts.conf and nats-server.pid> (deploy/nats/README.md)"
        ),
        None => settings.data_dir.join("nats"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Another `hotline subscriber` run waits until this one has written its change.
    let _lock = access::lock_registry(&dir)?;
    let mut registry = Registry::load(&dir)?;
    // Without subscribers.json, a users file that names subscribers would be rewritten without them, and the reload
    // would lock them out: the registry was lost or not copied with it (a cluster's hosts 2 and 3).
    let registry_path = dir.join(access::REGISTRY_FILE);
    let accounts_path = dir.join(access::ACCOUNTS_FILE);
    if !matches!(command, SubscriberCommand::List)
        && !registry_path.exists()
        && std::fs::read_to_string(&accounts_path).is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("# subscriber ")))
    {
        bail!(
            "{} names subscribers but {} is missing: rewriting it would lock them out. Restore {} (it is copied \
             with accounts.conf), or move accounts.conf away to start the users afresh",
            accounts_path.display(),
            registry_path.display(),
            access::REGISTRY_FILE
        );
    }
    // The client URL of the server: the embedded server's (written by `hotline up`), or NATS_URL's.
    let url = std::fs::read_to_string(settings.data_dir.join("nats.url"))
        .ok()
        .map(|u| u.trim().to_owned())
        .or_else(|| settings.nats_url.clone())
        .map(|u| access::without_credentials(&u));
    // The feed writer's login, to delete consumers: nats.feed_url, or user hotline-feed with the folder's password.
    let feed_url = settings.nats.feed_url.clone().or_else(|| url.as_deref().and_then(|u| access::feed_writer_url(&dir, u)));
    match command {
        SubscriberCommand::Init => {
            let password_existed = dir.join(access::PASSWORD_FILE).exists();
            access::write_accounts(&dir, &registry)?;
            // The three files a cluster's other hosts get a copy of (docs/operations.md) all exist from here on.
            registry.save(&dir)?;
            let mut lines = vec![format!(
                "# wrote {}: hotline's internal user, the feed writer and {} subscriber(s) (of {})",
                accounts_path.display(),
                registry.subscribers.len(),
                access::REGISTRY_FILE
            )];
            lines.push(format!(
                "# the internal password is in {} ({}): hotline's processes log in as user {} with it (NATS_URL), the feed as user {}",
                dir.join(access::PASSWORD_FILE).display(),
                if password_existed { "kept" } else { "new" },
                access::INTERNAL_USER,
                access::FEED_USER
            ));
            lines.push(match access::reload(&dir)? {
                Some(pid) => format!("# nats-server (pid {pid}) reloaded"),
                None => "# no running nats-server found: the users apply from its next start".to_owned(),
            });
            Ok(lines)
        }
        SubscriberCommand::List => Ok(registry
            .subscribers
            .iter()
            .map(|s| {
                format!("{}\t{}\t{}\t{}\t{}", s.name, s.agency.as_deref().unwrap_or("public"), s.filter_subject(), s.consumers.join(","), s.created_at)
            })
            .collect()),
        SubscriberCommand::Revoke { name } => {
            let removed = registry.remove(&name)?;
            access::write_accounts(&dir, &registry)?;
            registry.save(&dir)?;
            let reloaded = access::reload(&dir)?;
            let mut lines = vec![format!("# revoked subscriber {name}")];
            lines.push(match reloaded {
                Some(pid) => format!("# nats-server (pid {pid}) reloaded: its password is refused and its connections are closed"),
                None => "# no running nats-server found: the revocation applies from its next start".to_owned(),
            });
            // Its consumers go too. The names stay retired in subscribers.json either way: a later `create` that
            // reuses one deletes whatever is under it again before handing it out.
            let deleted = match &feed_url {
                Some(feed_url) => access::delete_consumers(feed_url, &removed.consumers).await.map_err(|e| e.to_string()),
                None => Err("no server URL is known".to_owned()),
            };
            lines.push(match deleted {
                Ok(()) => format!("# its consumers ({}) are deleted", removed.consumers.join(", ")),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete a revoked subscriber's consumers");
                    format!(
                        "# its consumers ({}) could not be deleted now ({e}); their names are retired until the server can be asked",
                        removed.consumers.join(", ")
                    )
                }
            });
            Ok(lines)
        }
        SubscriberCommand::Create { name, agency, extra_consumers } => {
            if let Some(code) = &agency {
                let province = load_province(&settings)?;
                if province.agency(code).is_none() {
                    let known: Vec<&str> = province.agencies().iter().map(|a| a.code.as_str()).collect();
                    bail!("no agency `{code}` in the province configuration (known: {})", known.join(", "));
                }
            }
            let mut consumers = vec![name.clone()];
            consumers.extend(extra_consumers.iter().map(|suffix| format!("{name}-{suffix}")));
            let password = access::new_password();
            let subscriber = Subscriber {
                name: name.clone(),
                agency,
                consumers,
                password_hash: access::hash_password(&password)?,
                created_at: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| anyhow!("clock: {e}"))?,
            };
            registry.add(subscriber.clone())?;
            // Before the user exists: a consumer left under one of its names may read another audience.
            let confirmed = access::free_consumer_names(&mut registry, feed_url.as_deref(), &subscriber.consumers).await?;
            access::write_accounts(&dir, &registry)?;
            registry.save(&dir)?;
            let mut lines = vec![format!(
                "# created subscriber {name}: it reads {} of stream {} and nothing else",
                subscriber.filter_subject(),
                access::FEED_STREAM
            )];
            match access::reload(&dir)? {
                Some(pid) => {
                    // The reload is asynchronous: confirm the server took the new user before handing it over.
                    let mut accepted = false;
                    if let Some(url) = &url {
                        for _ in 0..50 {
                            if access::can_login(url, &name, &password).await {
                                accepted = true;
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    lines.push(if accepted {
                        format!("# nats-server (pid {pid}) reloaded; the credentials work now")
                    } else {
                        format!("# nats-server (pid {pid}) was asked to reload; check its log if the login is refused")
                    });
                }
                None => lines.push("# no running nats-server found: the credentials work from its next start".to_owned()),
            }
            if !confirmed {
                lines.push("# the server could not be asked whether consumers under these names exist (none were ever revoked here)".to_owned());
            }
            lines.push("# the password is shown only this once: hand these settings over now (they are an env file)".to_owned());
            lines.push(format!("NATS_URL={}", url.unwrap_or_else(|| "nats://<this host>:<port>".to_owned())));
            lines.push(format!("NATS_USER={name}"));
            lines.push(format!("NATS_PASSWORD={password}"));
            lines.push(format!("NATS_INBOX_PREFIX={}", subscriber.inbox_prefix()));
            lines.push(format!("FEED_STREAM={}", access::FEED_STREAM));
            lines.push(format!("FEED_CONSUMERS={}", subscriber.consumers.join(",")));
            lines.push(format!("FEED_FILTER={}", subscriber.filter_subject()));
            Ok(lines)
        }
    }
}
