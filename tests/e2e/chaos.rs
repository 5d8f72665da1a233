//! Failure tests with exact accounting (issue 8): components and the NATS server SIGKILLed under load, a subscriber
//! that hangs, a full store, a broken config reload. Each ends by comparing petitions acknowledged to clients,
//! tickets in the log and tickets in the projection (tests/e2e/load.rs), which must be equal, with no ticket routed
//! twice. The cluster's failures are in cluster.rs.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotline_testkit::{HangingSubscriber, NatsProcess, System, TestNats, free_port, signal};

use crate::load::{Load, account};
use crate::{Served, binary};

/// How long to let the load run between two steps of a test.
const STEADY: Duration = Duration::from_millis(1500);

fn target(addr: &str) -> Arc<Mutex<String>> {
    Arc::new(Mutex::new(addr.to_owned()))
}

/// Waits until the clients have seen `more` new answers with `status` (0: no answer) since `before`, or panics.
fn wait_for_answers(load: &Load, status: u16, more: usize, limit: Duration, what: &str) {
    let before = load.ledger.lock().expect("lock").count(status);
    let start = Instant::now();
    while load.ledger.lock().expect("lock").count(status) < before + more {
        assert!(start.elapsed() < limit, "{what}: the clients saw no {more} more answers {status} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killing_each_component_under_load_and_restarting_it_loses_no_petition_and_routes_each_once() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let nats = runtime.block_on(TestNats::start());
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    let (url, feed_url) = (nats.url(), nats.server.feed_url());
    // Fixed ports, as a deployment has: a restarted component comes back where its clients expect it.
    let (app_port, api_port) = (free_port(), free_port());
    let start = |component: &str| -> Served {
        let http = match component {
            "app" => format!("127.0.0.1:{app_port}"),
            "api" => format!("127.0.0.1:{api_port}"),
            _ => "127.0.0.1:0".to_owned(),
        };
        let prefix = format!("hotline: {component} listening on http://");
        let awaited = matches!(component, "app" | "api").then_some(prefix.as_str());
        let env = [("HOTLINE_ADMIN_TOKEN", Some("t0ken")), ("HOTLINE_NATS__FEED_URL", Some(feed_url.as_str()))];
        crate::serve(component, &["--http", &http], &url, data, &env, awaited)
    };
    let components = ["router", "projections", "app", "api", "scheduler", "feed"];
    let mut running: Vec<Option<Served>> = components.iter().map(|c| Some(start(c))).collect();
    let app = format!("127.0.0.1:{app_port}");
    let load = Load::start("components", target(&app), 2, 20);

    for (i, component) in components.iter().enumerate() {
        std::thread::sleep(STEADY);
        wait_for_answers(&load, 202, 5, Duration::from_secs(30), &format!("before killing {component}"));
        // Dropping a `Served` is SIGKILL: no drain, no goodbye. Then it starts again on the same port.
        drop(running[i].take());
        running[i] = Some(start(component));
        eprintln!("chaos: killed and restarted {component}");
    }
    std::thread::sleep(STEADY);
    let ledger = load.finish(&app);
    let counts = account(&ledger, data, &url, Duration::from_secs(90));
    eprintln!("chaos components: {counts}, answers by status {:?}", ledger.statuses);
    assert!(counts.acknowledged > 100, "the load was real: {counts:?}");
    // Every restarted component is still up, and the feed (killed and restarted too) published each petition
    // once: one public `petition_received` per acknowledged ticket, none twice.
    for (component, served) in components.iter().zip(running.iter_mut()) {
        assert!(served.as_mut().is_some_and(Served::is_running), "{component} is running after its restart");
    }
    let start = Instant::now();
    loop {
        let info = runtime.block_on(hotline_testkit::stream_info(&feed_url, "HOTLINE_FEED", Some("hotline.feed.v1.public.petition_received.*")));
        let per_ticket: Vec<u64> = info.as_ref().and_then(|i| i["state"]["subjects"].as_object()).map(|m| m.values().filter_map(|v| v.as_u64()).collect()).unwrap_or_default();
        assert!(per_ticket.iter().all(|n| *n == 1), "a petition published twice in the feed: {per_ticket:?}");
        if per_ticket.len() == counts.acknowledged {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the feed published {} of {} petitions", per_ticket.len(), counts.acknowledged);
        std::thread::sleep(Duration::from_millis(500));
    }

    // The restarted API serves the projection.
    let id = ledger.acknowledged.values().next().expect("a ticket");
    let r = hotline_testkit::http("GET", &format!("127.0.0.1:{api_port}"), &format!("/v1/tickets/{id}"), &[("Authorization", "Bearer t0ken")], b"")
        .expect("api answers");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn killing_nats_under_load_answers_503_meanwhile_and_loses_no_acknowledged_petition() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut nats = runtime.block_on(TestNats::start());
    let url = nats.url();
    let feed_url = nats.server.feed_url();
    let system = System::start(binary(), &[("NATS_URL", url.as_str()), ("HOTLINE_NATS__FEED_URL", feed_url.as_str())]);
    let load = Load::start("nats", target(&system.addr), 2, 25);

    for round in 0..2 {
        std::thread::sleep(STEADY);
        wait_for_answers(&load, 202, 5, Duration::from_secs(30), "before the kill");
        nats.server.kill();
        // While it is down, intake says so: a 503 with the JSON error (checked for each answer by the ledger).
        wait_for_answers(&load, 503, 5, Duration::from_secs(30), "while nats-server is down");
        std::thread::sleep(Duration::from_secs(2));
        runtime.block_on(nats.server.restart()).expect("nats-server restarts on its store");
        wait_for_answers(&load, 202, 5, Duration::from_secs(60), "after nats-server is back");
        eprintln!("chaos: nats-server killed and restarted ({round})");
    }
    std::thread::sleep(STEADY);
    let ledger = load.finish(&system.addr);
    let counts = account(&ledger, &system.data_dir, &url, Duration::from_secs(90));
    eprintln!("chaos nats: {counts}, answers by status {:?}", ledger.statuses);
    assert!(counts.acknowledged > 50, "the load was real: {counts:?}");
}

/// The embedded server's internal login and the feed writer's, from the data dir of a running `hotline up`.
fn embedded_urls(data_dir: &Path) -> (String, String) {
    let url = std::fs::read_to_string(data_dir.join("nats.url")).expect("nats.url").trim().to_owned();
    let password = std::fs::read_to_string(data_dir.join("nats/hotline.password")).expect("password").trim().to_owned();
    let port = url.rsplit(':').next().expect("port").to_owned();
    (url, format!("nats://hotline-feed:{password}@127.0.0.1:{port}"))
}

/// `hotline subscriber create <args>` against the system; returns (success, stdout, stderr).
fn subscriber(system: &System, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .args(["subscriber"])
        .args(args)
        .arg("--data-dir")
        .arg(&system.data_dir)
        .env_remove("NATS_URL")
        .output()
        .expect("hotline subscriber runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_hanging_feed_subscriber_stops_neither_intake_nor_routing_nor_projections_nor_the_feed() {
    let system = crate::start();
    let (ok, env, err) = subscriber(&system, &["create", "hang"]);
    assert!(ok, "{env}{err}");
    let setting = |key: &str| {
        env.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("{key} in {env}")).to_owned()
    };
    let addr = setting("NATS_URL").trim_start_matches("nats://").to_owned();
    let load = Load::start("hanging", target(&system.addr), 2, 25);
    std::thread::sleep(STEADY);
    // It holds every message it is handed and never reads the socket the server writes them to.
    let _hanging = HangingSubscriber::start(
        &addr,
        &setting("NATS_USER"),
        &setting("NATS_PASSWORD"),
        &setting("NATS_INBOX_PREFIX"),
        &setting("FEED_STREAM"),
        setting("FEED_CONSUMERS").split(',').next().expect("consumer"),
        &setting("FEED_FILTER"),
    )
    .expect("the hanging subscriber connects");
    std::thread::sleep(Duration::from_secs(12));
    wait_for_answers(&load, 202, 20, Duration::from_secs(30), "with the subscriber hanging");
    let ledger = load.finish(&system.addr);
    let (url, feed_url) = embedded_urls(&system.data_dir);
    let counts = account(&ledger, &system.data_dir, &url, Duration::from_secs(60));

    // The feed kept up too: each ticket's petition is in the public feed exactly once.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let start = Instant::now();
    let published = loop {
        // One subject per ticket (the ticket id is the subject's last token): the counts are summed.
        let info = runtime.block_on(hotline_testkit::stream_info(&feed_url, "HOTLINE_FEED", Some("hotline.feed.v1.public.petition_received.*")));
        let n: u64 = info.as_ref().and_then(|i| i["state"]["subjects"].as_object()).map(|m| m.values().filter_map(|v| v.as_u64()).sum()).unwrap_or(0);
        if n as usize >= counts.acknowledged || start.elapsed() > Duration::from_secs(60) {
            break n as usize;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    // The subscriber was handed messages and sits on them (the server has them pending its acknowledgement).
    let start = Instant::now();
    let consumer = loop {
        // Asked again for a while: one API request may time out on a loaded machine.
        match runtime.block_on(hotline_testkit::jetstream_api(&feed_url, "$JS.API.CONSUMER.INFO.HOTLINE_FEED.hang", "")) {
            Some(consumer) => break consumer,
            None => assert!(start.elapsed() < Duration::from_secs(30), "the subscriber's consumer is not there"),
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let held = consumer["num_ack_pending"].as_u64().unwrap_or(0);
    let log = std::fs::read_to_string(system.data_dir.join("nats/nats-server.log")).unwrap_or_default();
    eprintln!(
        "chaos hanging subscriber: {counts}, {published} petitions in the public feed, {held} messages held unacknowledged \
         by the subscriber, server cut it as a slow consumer: {}",
        log.contains("Slow Consumer")
    );
    assert!(held > 0, "the subscriber holds messages it never acknowledges: {consumer}");
    assert_eq!(published, counts.acknowledged, "every petition in the public feed once");
}

/// A nats-server with a small JetStream file store (`max_file_store`), standing in for a full disk without root.
fn limited_nats(dir: &Path, port: u16, limit: &str) -> String {
    format!(
        "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  max_file_store: {limit}\n  sync_interval: always\n}}\n",
        dir.join("store").display()
    )
}

#[test]
fn a_full_store_answers_503_keeps_what_it_acknowledged_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let config = dir.path().join("nats.conf");
    std::fs::write(&config, limited_nats(dir.path(), port, "1MB")).expect("config");
    let nats = NatsProcess::start("full", config.clone(), port);
    let url = format!("nats://127.0.0.1:{port}");
    let system = System::start(binary(), &[("NATS_URL", url.as_str())]);
    let load = Load::start("full", target(&system.addr), 2, 40);

    // The store fills up: intake answers 503 with the JSON error (the ledger checks each), and goes on doing so.
    wait_for_answers(&load, 503, 10, Duration::from_secs(90), "once the store is full");
    let full_log = nats.log_since(0);
    let said = full_log.lines().find(|l| l.contains("resource") || l.contains("limit"));
    assert!(said.is_some(), "the server ran out of storage:\n{full_log}");
    eprintln!("chaos full store: nats-server said {:?}", said.unwrap_or_default());
    let acknowledged_when_full = load.ledger.lock().expect("lock").acknowledged.len();
    std::thread::sleep(Duration::from_secs(2));
    let still = load.ledger.lock().expect("lock").acknowledged.len();
    assert!(still <= acknowledged_when_full + 2, "nothing more fits: {acknowledged_when_full} then {still}");

    // Space returns (the operator frees or grows the disk; here: a bigger limit, reloaded).
    std::fs::write(&config, limited_nats(dir.path(), port, "256MB")).expect("config");
    let before = nats.log_len();
    signal(nats.pid().expect("pid"), libc::SIGHUP);
    wait_for_answers(&load, 202, 20, Duration::from_secs(60), "once space returns");
    assert!(nats.log_since(before).contains("Reloaded"), "{}", nats.log_since(before));
    let ledger = load.finish(&system.addr);
    let counts = account(&ledger, &system.data_dir, &url, Duration::from_secs(90));
    eprintln!(
        "chaos full store: {counts}, {acknowledged_when_full} acknowledged when the store filled, answers by status {:?}",
        ledger.statuses
    );
}

#[test]
fn a_reload_with_a_broken_accounts_file_leaves_nats_and_the_system_running_on_the_old_config() {
    let system = crate::start();
    let load = Load::start("reload", target(&system.addr), 2, 20);
    std::thread::sleep(STEADY);
    let nats_dir = system.data_dir.join("nats");
    let pid: u32 = std::fs::read_to_string(nats_dir.join("nats-server.pid")).expect("pid file").trim().parse().expect("pid");
    let log_path = nats_dir.join("nats-server.log");
    let log_len = || std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);

    // A broken accounts file reloaded (what a hand edit, or a half-written file, would do at `subscriber create`).
    let accounts = nats_dir.join("accounts.conf");
    let good = std::fs::read_to_string(&accounts).expect("accounts.conf");
    std::fs::write(&accounts, "accounts { HOTLINE: { users: [ { user: \"hotline\", password: \n").expect("break it");
    let before = log_len();
    signal(pid, libc::SIGHUP);
    let start = Instant::now();
    let said = loop {
        let log = std::fs::read(&log_path).unwrap_or_default();
        let said = String::from_utf8_lossy(&log[before as usize..]).into_owned();
        if said.contains("ERR") || start.elapsed() > Duration::from_secs(10) {
            break said;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(said.contains("ERR") && said.contains("reload"), "nats-server refused the reload:\n{said}");
    wait_for_answers(&load, 202, 20, Duration::from_secs(30), "after the refused reload");

    // `hotline subscriber create` with a broken registry refuses and reloads nothing; the server keeps running.
    std::fs::write(&accounts, good).expect("restore accounts.conf");
    let registry = nats_dir.join("subscribers.json");
    let kept = std::fs::read(&registry).ok();
    std::fs::write(&registry, "{ not json").expect("break the registry");
    let before = log_len();
    let (ok, out, err) = subscriber(&system, &["create", "after-break"]);
    assert!(!ok, "a broken registry is refused: {out}");
    assert!(err.contains("subscribers.json"), "the message names the file: {err}");
    match kept {
        Some(kept) => std::fs::write(&registry, kept).expect("restore"),
        None => std::fs::remove_file(&registry).expect("remove"),
    }
    wait_for_answers(&load, 202, 20, Duration::from_secs(30), "after the refused subscriber create");
    let log = std::fs::read(&log_path).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&log[before as usize..]).contains("Trapped \"hangup\""), "nothing was reloaded");
    // The server is the same process, still on the old (good) config: a new login with the old password works.
    assert_eq!(std::fs::read_to_string(nats_dir.join("nats-server.pid")).expect("pid").trim(), pid.to_string());
    let (ok, out, err) = subscriber(&system, &["create", "after-repair"]);
    assert!(ok && out.contains("the credentials work now"), "{out}{err}");

    let ledger = load.finish(&system.addr);
    let (url, _) = embedded_urls(&system.data_dir);
    let counts = account(&ledger, &system.data_dir, &url, Duration::from_secs(60));
    eprintln!("chaos reload: {counts}, answers by status {:?}", ledger.statuses);
}

/// The largest file the projection process may write while its "disk" is full.
const FULL_AT: u64 = 256 * 1024;

/// Sets a running process's file-size limit (prlimit(2)): how the test gives the "disk" its space back.
#[allow(unsafe_code)]
fn file_size_limit(pid: u32, bytes: u64) {
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: prlimit(2) on a child this test started, with a valid rlimit.
    let done = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
#[allow(unsafe_code)]
fn a_full_disk_under_the_projection_stops_nothing_else_and_the_projection_catches_up_once_space_returns() {
    use std::os::unix::process::CommandExt;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let nats = runtime.block_on(TestNats::start());
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let log = dir.path().join("projections.log");
    let url = nats.url();
    let env = [("HOTLINE_ADMIN_TOKEN", Some("t0ken"))];
    let _router = crate::serve("router", &[], &url, &data, &env, None);
    let app = crate::serve("app", &["--http", "127.0.0.1:0"], &url, &data, &env, Some("hotline: app listening on http://"));
    let app = app.addr.clone().map(|a| (app, a)).expect("app address");
    // The projection's files may not grow past FULL_AT: writing more fails with EFBIG, as on a full disk (the
    // signal a too-large write raises is ignored, as a real full disk raises none).
    let log_file = std::fs::File::create(&log).expect("log file");
    let projections = crate::serve_with("projections", &[], &url, &data, &env, None, |command| {
        command.stderr(log_file);
        // SAFETY: between fork and exec only async-signal-safe calls: signal(2) and setrlimit(2).
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit { rlim_cur: FULL_AT, rlim_max: libc::RLIM_INFINITY };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let mut projections = projections;
    let load = Load::start("fulldisk", target(&app.1), 2, 30);

    // Intake and routing go on while the projection cannot write: wait until it has failed for that reason.
    let start = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("timeline projection failed") {
        assert!(start.elapsed() < Duration::from_secs(90), "the projection never hit the full disk: {}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for_answers(&load, 202, 30, Duration::from_secs(60), "while the projection's disk is full");
    assert!(projections.is_running(), "the projection process stays up and retries");
    let stalled = crate::load::projected_ids(&data).len();
    std::thread::sleep(Duration::from_secs(2));
    assert!(load.ledger.lock().expect("lock").acknowledged.len() > stalled, "petitions keep being acknowledged past the projection");

    // Space returns: the projection catches up by itself, and every number agrees.
    file_size_limit(projections.pid(), libc::RLIM_INFINITY);
    let ledger = load.finish(&app.1);
    let counts = account(&ledger, &data, &url, Duration::from_secs(120));
    eprintln!("chaos full disk: {counts}; {stalled} were projected while the disk was full");
    assert!(counts.projected > stalled, "the projection caught up");
    drop(app);
}
