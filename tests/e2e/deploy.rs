//! The deployment files of deploy/ are checked here, since most of them cannot run on this machine: every NATS
//! config (and the one `hotline up` writes) fsyncs before it acknowledges and passes `nats-server -t`; the systemd
//! units use known keys, hardening and real `hotline` commands (and `systemd-analyze verify` when it is there);
//! every settings file passes `hotline check-config`, alone and with its env example; the docker-compose file matches the compose-spec schema and
//! the Kubernetes manifests the Kubernetes OpenAPI schemas (pinned Python tools, scripts/lib/python-tools.sh).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::binary;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `python3 <args>` with the pinned test tools on its path.
fn python(args: &[&str]) -> Output {
    let path = std::env::var("HOTLINE_PYTHONPATH").unwrap_or_else(|_| {
        panic!(
            "HOTLINE_PYTHONPATH is not set: these tests validate deploy/ with check-jsonschema and kubernetes-validate. \
             Run `export HOTLINE_PYTHONPATH=$(bash scripts/lib/python-tools.sh)` (scripts/test does it)"
        )
    });
    Command::new("python3").args(args).env("PYTHONPATH", path).output().expect("python3 runs")
}

/// Every document of a YAML file, as JSON (PyYAML's safe loader: anchors and merge keys resolved).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let script = "import json, sys, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1], encoding='utf-8')) if d is not None]))";
    let out = python(&["-c", script, path.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}: not YAML: {}", path.display(), text(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("json")
}

/// The components `hotline serve` accepts, from its own help.
fn components() -> BTreeSet<String> {
    let out = Command::new(binary()).args(["serve", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let found: BTreeSet<String> = help
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split(':').next())
        .map(|c| c.trim().to_owned())
        .collect();
    assert!(found.contains("api") && found.contains("router"), "component list not found in: {help}");
    found
}

/// Whether `hotline <args> --help` is a real command line (clap checks subcommands and values before --help).
fn is_hotline_command(args: &[&str]) -> bool {
    Command::new(binary()).args(args).arg("--help").output().expect("runs").status.success()
}

/// The NATS configs of the Kubernetes ConfigMap (name -> text).
fn kubernetes_nats_config() -> String {
    let docs = yaml_documents(&deploy("kubernetes/nats.yaml"));
    let map = docs.iter().find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "hotline-nats-config").expect("the nats ConfigMap");
    map["data"]["nats-server.conf"].as_str().expect("nats-server.conf in the ConfigMap").to_owned()
}

/// Every nats-server config we ship: (what it is, its text). The `.conf` files under deploy/ that configure a server
/// (have a jetstream block) are all found by walking the folder, so a new one cannot be forgotten here.
fn shipped_nats_configs() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read deploy/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "conf") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("deploy"), &mut files);
    files.sort();
    let mut configs: Vec<(String, String)> = files
        .into_iter()
        .map(|f| (f.strip_prefix(repo()).expect("in repo").display().to_string(), read(&f)))
        .filter(|(_, text)| !uncommented(text).is_empty() && text.contains("jetstream"))
        .collect();
    configs.push(("deploy/kubernetes/nats.yaml ConfigMap".to_owned(), kubernetes_nats_config()));
    assert!(configs.len() >= 5, "single node, three cluster nodes and the Kubernetes one: {:?}", configs.iter().map(|c| &c.0).collect::<Vec<_>>());
    configs
}

/// A NATS config without its comments, one trimmed line each.
fn uncommented(config: &str) -> Vec<String> {
    config.lines().map(|l| l.split('#').next().unwrap_or("").trim().to_owned()).filter(|l| !l.is_empty()).collect()
}

/// The body of the `jetstream { ... }` block (flat: our configs nest nothing in it).
fn jetstream_block(config: &str) -> Option<Vec<String>> {
    let lines = uncommented(config);
    let start = lines.iter().position(|l| l.starts_with("jetstream") && l.ends_with('{'))?;
    let end = lines[start..].iter().position(|l| l == "}")? + start;
    Some(lines[start + 1..end].to_vec())
}

fn assert_fsyncs_before_ack(name: &str, config: &str) {
    let block = jetstream_block(config).unwrap_or_else(|| panic!("{name}: no jetstream {{ }} block"));
    let sync: Vec<&String> = block.iter().filter(|l| l.starts_with("sync_interval")).collect();
    assert_eq!(sync.len(), 1, "{name}: exactly one sync_interval in the jetstream block, found {sync:?}");
    let value = sync[0].split_once([':', '=']).map(|(_, v)| v.trim().trim_matches('"')).unwrap_or("");
    assert_eq!(value, "always", "{name}: sync_interval must be `always` (fsync before every acknowledgement)");
}

#[test]
fn every_nats_config_we_ship_and_the_embedded_one_fsync_before_acknowledging() {
    for (name, config) in shipped_nats_configs() {
        assert_fsyncs_before_ack(&name, &config);
    }
    // The check itself: a config that lost the line, or says something else, is refused.
    let single = read(&deploy("nats/nats-server.conf"));
    let without = single.replace("sync_interval: always", "");
    assert!(std::panic::catch_unwind(|| assert_fsyncs_before_ack("without", &without)).is_err());
    let lazy = single.replace("sync_interval: always", "sync_interval: \"2m\"");
    assert!(std::panic::catch_unwind(|| assert_fsyncs_before_ack("lazy", &lazy)).is_err());

    // The embedded server's config, as `hotline up` writes it.
    let mut system = crate::start();
    let embedded = read(&system.data_dir.join("nats/nats-server.conf"));
    system.terminate();
    assert_fsyncs_before_ack("the config `hotline up` writes", &embedded);
}

#[test]
fn every_nats_config_we_ship_passes_the_servers_config_test() {
    let nats = hotline_testkit::nats_server_binary();
    // The accounts.conf each includes, made the way an operator makes it (docs/operations.md): `subscriber init`
    // before the first start, then a subscriber.
    let accounts = tempfile::tempdir().expect("tmp");
    // `hotline <args>` on the users of the folder `dir`, no server running.
    let on = |dir: &Path, args: &[&str]| {
        Command::new(binary()).args(args).arg("--nats-dir").arg(dir).arg("--data-dir").arg(dir.join("data")).env_remove("NATS_URL").output().expect("runs")
    };
    let hotline = |args: &[&str]| {
        let out = on(accounts.path(), args);
        assert!(out.status.success(), "hotline {args:?}: {}", text(&out));
        text(&out)
    };
    let said = hotline(&["subscriber", "init"]);
    assert!(said.contains("0 subscriber(s)") && said.contains("(new)"), "{said}");
    let password = read(&accounts.path().join("hotline.password"));
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["hotline.password", "accounts.conf"] {
            let mode = std::fs::metadata(accounts.path().join(file)).expect("written").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file} is readable by its owner only");
        }
    }
    let initial = read(&accounts.path().join("accounts.conf"));
    assert!(initial.contains("user: \"hotline\"") && initial.contains("user: \"hotline-feed\"") && !initial.contains("# subscriber"), "{initial}");
    // Again: the password is kept (running hotline processes hold it).
    assert!(hotline(&["subscriber", "init"]).contains("(kept)"));
    assert_eq!(read(&accounts.path().join("hotline.password")), password);
    assert!(accounts.path().join("subscribers.json").exists(), "init writes every file a cluster's other hosts copy");
    hotline(&["subscriber", "create", "ioc"]);
    let generated = read(&accounts.path().join("accounts.conf"));
    assert!(generated.contains("# subscriber ioc"), "{generated}");
    // Without its subscribers.json (not copied, lost), a users file naming subscribers is not rewritten.
    let copy = tempfile::tempdir().expect("tmp");
    for file in ["accounts.conf", "hotline.password"] {
        std::fs::copy(accounts.path().join(file), copy.path().join(file)).expect("copy");
    }
    let out = on(copy.path(), &["subscriber", "init"]);
    assert!(!out.status.success() && text(&out).contains("subscribers.json is missing"), "{}", text(&out));
    assert_eq!(read(&copy.path().join("accounts.conf")), generated, "left as it was");
    let example = read(&deploy("nats/accounts.conf.example"));

    let test = |name: &str, config: &str, accounts_conf: &str| -> Output {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("accounts.conf"), accounts_conf).expect("write");
        let file = dir.path().join("nats-server.conf");
        std::fs::write(&file, config).expect("write");
        let out = Command::new(&nats).arg("-t").arg("-c").arg(&file).env("POD_NAME", "hotline-nats-0").output().expect("nats-server runs");
        eprintln!("{name}: {}", text(&out).trim());
        out
    };
    for (name, config) in shipped_nats_configs() {
        for (what, accounts_conf) in
            [("accounts.conf of `subscriber init`", &initial), ("generated accounts.conf", &generated), ("accounts.conf.example", &example)]
        {
            let out = test(&name, &config, accounts_conf);
            assert!(out.status.success(), "nats-server -t refuses {name} with the {what}: {}", text(&out));
        }
        // The test can fail: a misspelt key is refused.
        let typo = config.replacen("sync_interval", "sync_intervall", 1);
        assert!(!test(&name, &typo, &generated).status.success(), "nats-server -t accepted a misspelt key in {name}");
    }
}

#[test]
fn the_cluster_configs_differ_only_in_the_lines_marked_to_set() {
    let nodes: Vec<String> = (1..=3).map(|i| read(&deploy(&format!("cluster/nats-{i}.conf")))).collect();
    let routes = |config: &str| -> Vec<String> {
        uncommented(config).into_iter().filter(|l| l.starts_with("nats-route://")).collect()
    };
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(routes(node), routes(&nodes[0]), "node {} routes to the same three nodes", i + 1);
        assert_eq!(routes(node).len(), 3, "three routes");
        assert!(uncommented(node).contains(&format!("server_name: hotline-nats-{}", i + 1)), "node {} names itself", i + 1);
        assert!(uncommented(node).contains(&"include \"accounts.conf\"".to_owned()), "the same accounts include as one node");
        // Lines without the marker are the same on every node (the chaos test substitutes only the marked ones).
        let fixed = |c: &str| -> Vec<String> {
            c.lines().filter(|l| !l.contains("# SET:") && !l.trim_start().starts_with('#')).map(str::to_owned).collect()
        };
        assert_eq!(fixed(node), fixed(&nodes[0]), "node {} differs from node 1 outside the `# SET:` lines", i + 1);
    }
    // Distinct ports, so the three can run on one host.
    let ports: BTreeSet<String> = nodes
        .iter()
        .flat_map(|n| uncommented(n).into_iter().filter(|l| l.starts_with("listen:") || l.starts_with("http:")))
        .collect();
    assert_eq!(ports.len(), 9, "client, route and monitoring ports differ between nodes: {ports:?}");
}

/// Keys the units may use, by section: a misspelt key is otherwise only a warning systemd logs and ignores.
const UNIT_KEYS: &[(&str, &[&str])] = &[
    ("Unit", &["Description", "Documentation", "After", "Before", "Wants", "Requires", "BindsTo", "PartOf", "Conflicts"]),
    (
        "Service",
        &[
            "Type", "User", "Group", "ExecStart", "ExecStartPre", "ExecReload", "TimeoutStopSec", "Restart", "RestartSec",
            "LimitNOFILE", "EnvironmentFile", "Environment", "StateDirectory", "StateDirectoryMode", "RuntimeDirectory",
            "RuntimeDirectoryMode", "UMask", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
            "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
            "ProtectClock", "ProtectHostname", "ProtectProc", "RestrictAddressFamilies", "RestrictNamespaces",
            "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute", "SystemCallArchitectures",
            "SystemCallFilter", "CapabilityBoundingSet", "AmbientCapabilities",
        ],
    ),
    ("Install", &["WantedBy", "RequiredBy", "Alias"]),
];

/// A unit file as (section, key, value), in order.
fn unit_entries(name: &str, text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{name}:{}: not key=value: {line}", n + 1));
        out.push((section.clone(), key.trim().to_owned(), value.trim().to_owned()));
    }
    out
}

#[test]
fn the_systemd_units_use_known_keys_hardening_and_real_hotline_commands() {
    let dir = deploy("systemd");
    let units = ["hotline-nats.service", "hotline.service", "hotline@.service"];
    let components = components();
    for unit in units {
        let entries = unit_entries(unit, &read(&dir.join(unit)));
        let get = |key: &str| -> Vec<&str> { entries.iter().filter(|(_, k, _)| k == key).map(|(_, _, v)| v.as_str()).collect() };
        for (section, key, _) in &entries {
            let known = UNIT_KEYS.iter().find(|(s, _)| s == section).unwrap_or_else(|| panic!("{unit}: unknown section [{section}]"));
            assert!(known.1.contains(&key.as_str()), "{unit}: unknown key {key} in [{section}]");
        }
        for (key, value) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("CapabilityBoundingSet", ""),
            ("Restart", "on-failure"),
        ] {
            assert_eq!(get(key), [value], "{unit}: {key}={value}");
        }
        let user = get("User");
        assert!(user.len() == 1 && user[0] != "root" && !user[0].is_empty(), "{unit}: runs as its own user, not root");
        assert_eq!(get("StateDirectory").len(), 1, "{unit}: its state directory");
        assert_eq!(get("WantedBy"), ["multi-user.target"], "{unit}: starts at boot once enabled");

        let exec: Vec<&str> = get("ExecStartPre").into_iter().chain(get("ExecStart")).collect();
        for line in exec {
            let words: Vec<&str> = line.split_whitespace().collect();
            if unit == "hotline-nats.service" {
                assert_eq!(words, ["/usr/local/bin/nats-server", "-c", "/etc/hotline/nats/nats-server.conf"]);
                continue;
            }
            assert_eq!(words[0], "/usr/local/bin/hotline", "{unit}: {line}");
            if words.contains(&"%i") {
                // The template: every component it names in its header comment is a real one, and all are named;
                // each of its commands is real for every component.
                let header = read(&dir.join(unit));
                let listed: BTreeSet<String> = header
                    .lines()
                    .find_map(|l| l.split_once("Components: "))
                    .map(|(_, rest)| rest.trim_end_matches('.').split(", ").map(|c| c.trim_end_matches('.').to_owned()).collect())
                    .expect("the template lists its components");
                assert_eq!(listed, components, "{unit}: the components it lists are `hotline serve`'s");
                let with = |instance: &str| -> Vec<String> {
                    words[1..].iter().map(|w| if *w == "%i" { instance.to_owned() } else { (*w).to_owned() }).collect()
                };
                for c in &components {
                    let args = with(c);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    assert!(is_hotline_command(&args), "{unit}: `hotline {}` is not a hotline command", args.join(" "));
                }
                let nonsense = with("nonsense");
                let nonsense: Vec<&str> = nonsense.iter().map(String::as_str).collect();
                assert!(!is_hotline_command(&nonsense), "the command check can fail");
            } else {
                assert!(is_hotline_command(&words[1..]), "{unit}: `{line}` is not a hotline command");
            }
        }
        if unit != "hotline-nats.service" {
            assert_eq!(get("EnvironmentFile").first(), Some(&"/etc/hotline/hotline.env"), "{unit}: secrets from the env file");
            assert!(get("After").iter().any(|a| a.contains("hotline-nats.service")), "{unit}: ordered after nats-server");
            assert_eq!(get("StateDirectory"), ["hotline"], "{unit}: data dir /var/lib/hotline");
        } else {
            assert_eq!(get("StateDirectory"), ["hotline-nats"], "{unit}: store /var/lib/hotline-nats");
        }
    }

    // The files agree with each other: the pid link of tmpfiles leads to the single node's pid_file, and every
    // store_dir of a host config is in the nats unit's state directory.
    let tmpfiles = read(&dir.join("hotline.tmpfiles"));
    let link = tmpfiles.lines().find(|l| l.starts_with("L ")).expect("the pid link");
    let target = link.split_whitespace().last().expect("target");
    assert!(uncommented(&read(&deploy("nats/nats-server.conf"))).contains(&format!("pid_file: \"{target}\"")), "{link}");
    for (name, config) in shipped_nats_configs().into_iter().filter(|(n, _)| n.ends_with(".conf")) {
        let store = jetstream_block(&config).expect("block").into_iter().find(|l| l.starts_with("store_dir")).expect("store_dir");
        assert!(store.contains("\"/var/lib/hotline-nats"), "{name}: {store}");
        assert!(uncommented(&config).iter().any(|l| l.starts_with(&format!("pid_file: \"{target}\""))), "{name}: pid_file {target}");
    }
    let sysusers = read(&dir.join("hotline.sysusers"));
    for user in ["hotline", "hotline-nats"] {
        assert!(sysusers.lines().any(|l| l.split_whitespace().nth(1) == Some(user)), "sysusers makes {user}");
    }

    // systemd's own check where systemd is installed (not on every CI machine), with the binaries it must find.
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed: skipped `systemd-analyze verify` (the checks above ran)");
        return;
    };
    assert!(out.status.success());
    let tmp = tempfile::tempdir().expect("tmp");
    for unit in units {
        let text = read(&dir.join(unit))
            .replace("/usr/local/bin/hotline", binary().to_str().expect("utf-8"))
            .replace("/usr/local/bin/nats-server", hotline_testkit::nats_server_binary().to_str().expect("utf-8"));
        let name = if unit == "hotline@.service" { "hotline@api.service" } else { unit };
        std::fs::write(tmp.path().join(name), text).expect("write");
    }
    let files: Vec<PathBuf> = ["hotline-nats.service", "hotline.service", "hotline@api.service"].iter().map(|u| tmp.path().join(u)).collect();
    let out = Command::new("systemd-analyze").arg("verify").args(&files).output().expect("runs");
    assert!(out.status.success() && text(&out).trim().is_empty(), "systemd-analyze verify: {}", text(&out));
}

/// The settings file of the Kubernetes ConfigMap `hotline-settings`, written into `dir`.
fn kubernetes_settings(dir: &Path) -> PathBuf {
    let configmap = yaml_documents(&deploy("kubernetes/hotline.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "hotline-settings")
        .expect("the settings ConfigMap");
    let file = dir.join("hotline-k8s.toml");
    std::fs::write(&file, configmap["data"]["hotline.toml"].as_str().expect("hotline.toml")).expect("write");
    file
}

#[test]
fn every_hotline_settings_file_we_ship_passes_check_config() {
    let tmp = tempfile::tempdir().expect("tmp");
    let from_k8s = kubernetes_settings(tmp.path());
    let files = [deploy("systemd/hotline.toml"), deploy("compose/hotline.toml"), from_k8s];
    for file in &files {
        // Only the file speaks: no settings from this test's environment.
        let out = check_config_with(file, &[], &[]);
        assert!(out.status.success() && text(&out).contains("configuration ok"), "{}: {}", file.display(), text(&out));
    }
    // The check can fail: a misspelt key in the same file is refused.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, read(&files[0]).replace("request_timeout_secs", "request_timeout_sec")).expect("write");
    let out = check_config_with(&bad, &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// The variables of an env example, its commented examples too (`# HOTLINE_SMS__ESMS__API_KEY=<...>`), with every
/// `<placeholder>` filled in.
fn env_example(path: &Path) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for line in read(path).lines() {
        let line = line.trim().trim_start_matches('#').trim();
        let Some((name, value)) = line.split_once('=') else { continue };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            continue;
        }
        let value = value
            .replace("<password>", "a-password")
            .replace("<at least 32 random characters>", "0123456789abcdefghijklmnopqrstuvwxyz")
            .replace("<...>", "a-value");
        assert!(!value.contains('<'), "{}: {name}: a placeholder this test does not know: {value}", path.display());
        vars.push((name.to_owned(), value));
    }
    vars
}

/// `hotline check-config --config <settings> <args>` with exactly `vars` as its HOTLINE_* / NATS_URL environment.
fn check_config_with(settings: &Path, args: &[&str], vars: &[(String, String)]) -> Output {
    let mut command = Command::new(binary());
    command.arg("check-config").arg("--config").arg(settings).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("HOTLINE_") || key == "NATS_URL" {
            command.env_remove(key);
        }
    }
    command.envs(vars.iter().map(|(k, v)| (k, v)));
    command.output().expect("runs")
}

#[test]
fn every_env_example_holds_only_settings_that_the_processes_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    let from_k8s = kubernetes_settings(tmp.path());
    // The Kubernetes Secret `hotline` is made from the compose example (deploy/kubernetes/hotline.yaml says so).
    let pairs = [
        (deploy("systemd/hotline.toml"), deploy("systemd/hotline.env.example")),
        (deploy("compose/hotline.toml"), deploy("compose/hotline.env.example")),
        (from_k8s, deploy("compose/hotline.env.example")),
    ];
    for (settings, example) in &pairs {
        let vars = env_example(example);
        for wanted in ["NATS_URL", "HOTLINE_NATS__FEED_URL", "HOTLINE_ADMIN_TOKEN", "HOTLINE_APP__ACCESS_SECRET"] {
            assert!(vars.iter().any(|(k, _)| k == wanted), "{}: no {wanted}", example.display());
        }
        let out = check_config_with(settings, &[], &vars);
        assert!(
            out.status.success() && text(&out).contains("configuration ok") && !text(&out).contains("is no setting"),
            "{} with {}: {}",
            settings.display(),
            example.display(),
            text(&out)
        );
    }
    // The check can fail: a misspelt variable is named, a misspelt channel key or `[app]` key refused.
    let (settings, example) = &pairs[0];
    let mut vars = env_example(example);
    vars.push(("HOTLINE_ADMIN_TOKN".into(), "x".into()));
    let out = check_config_with(settings, &[], &vars);
    assert!(text(&out).contains("HOTLINE_ADMIN_TOKN is no setting"), "{}", text(&out));
    for misspelt in ["HOTLINE_SMS__ESMS__API_KY", "HOTLINE_APP__ACCES_SECRET"] {
        let mut vars = env_example(example);
        vars.push((misspelt.into(), "x".into()));
        let out = check_config_with(settings, &[], &vars);
        assert_eq!(out.status.code(), Some(2), "{misspelt}: {}", text(&out));
        assert!(text(&out).contains("unknown key"), "{misspelt}: {}", text(&out));
    }
    // Per component (hotline@.service): an [sms] section missing its keys (SMPP without the SMSC) holds up the SMS channel and `up`, not
    // the router or the API, which never read it.
    let vars = env_example(example);
    let mut partial = vars.clone();
    partial.push(("HOTLINE_SMS__SEND".into(), "smpp".into()));
    for (component, ok) in [(None, false), (Some("sms"), false), (Some("router"), true), (Some("api"), true)] {
        let args: Vec<&str> = component.map(|c| vec!["--component", c]).unwrap_or_default();
        let out = check_config_with(settings, &args, &partial);
        assert_eq!(out.status.success(), ok, "check-config --component {component:?}: {}", text(&out));
    }
}

#[test]
fn the_compose_file_matches_the_compose_spec_and_runs_the_shipped_configs() {
    let file = deploy("compose/compose.yaml");
    let out = python(&["-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "compose-spec: {}", text(&out));
    // And the schema check can fail.
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = tmp.path().join("compose.yaml");
    std::fs::write(&bad, read(&file).replacen("restart: unless-stopped", "restrat: unless-stopped", 1)).expect("write");
    assert!(!python(&["-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", bad.to_str().expect("utf-8")]).status.success());

    let compose = yaml_documents(&file).remove(0);
    let services = compose["services"].as_object().expect("services");
    let mut served = BTreeSet::new();
    for (name, service) in services {
        let command: Vec<&str> = service["command"].as_array().expect("command").iter().map(|v| v.as_str().expect("text")).collect();
        let volumes: Vec<&str> = service["volumes"].as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if let Some(i) = name.strip_prefix("nats-") {
            assert_eq!(command, ["-c", "/etc/nats/nats-server.conf"]);
            assert!(volumes.contains(&format!("../cluster/nats-{i}.conf:/etc/nats/nats-server.conf:ro").as_str()), "{name} runs deploy/cluster/nats-{i}.conf");
            assert!(volumes.contains(&"./nats/accounts.conf:/etc/nats/accounts.conf:ro"), "{name}: accounts beside the config");
            continue;
        }
        assert_eq!(command[0], "serve", "{name}");
        assert!(is_hotline_command(&command), "{name}: `hotline {}` is not a hotline command", command.join(" "));
        served.insert(command[1].to_owned());
        // The components that share the data dir share the one volume.
        let shares = volumes.iter().any(|v| v.starts_with("hotline-data:"));
        let must = ["api", "projections", "scheduler", "email", "zalo"].contains(&command[1]);
        assert_eq!(shares, must, "{name}: on the shared data volume exactly when it reads or writes the projection or the blobs");
        assert_eq!(service["env_file"], serde_json::json!(["hotline.env"]), "{name}: secrets from the env file");
    }
    assert_eq!(served, components(), "one service per component");
    for config in ["nats-1", "nats-2", "nats-3"] {
        assert!(services.contains_key(config));
    }
    assert!(read(&deploy("compose/hotline.toml")).contains("replicas = 3"), "R3 streams on the cluster");
}

#[test]
fn the_kubernetes_manifests_match_the_openapi_schemas_and_wire_the_cluster() {
    let files = [deploy("kubernetes/nats.yaml"), deploy("kubernetes/hotline.yaml")];
    let version = "1.33.0";
    for file in &files {
        let out = python(&["-m", "kubernetes_validate", "--strict", "-k", version, file.to_str().expect("utf-8")]);
        assert!(out.status.success() && !text(&out).contains("ERROR"), "{}: {}", file.display(), text(&out));
    }
    // Strict validation can fail: an unknown field is refused.
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, read(&files[0]).replacen("serviceName: hotline-nats", "serviceNmae: hotline-nats", 1)).expect("write");
    assert!(!python(&["-m", "kubernetes_validate", "--strict", "-k", version, bad.to_str().expect("utf-8")]).status.success());

    let docs: Vec<Value> = files.iter().flat_map(|f| yaml_documents(f)).collect();
    assert!(docs.iter().all(|d| d["kind"] != "Secret"), "secrets are referenced, never inlined");
    let nats = docs.iter().find(|d| d["kind"] == "StatefulSet" && d["metadata"]["name"] == "hotline-nats").expect("the NATS StatefulSet");
    assert_eq!(nats["spec"]["replicas"], 3);
    assert_eq!(nats["spec"]["serviceName"], "hotline-nats");
    let headless = docs.iter().find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "hotline-nats").expect("headless Service");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    // The routes name the StatefulSet's pods behind its headless Service.
    let config = kubernetes_nats_config();
    for i in 0..3 {
        assert!(config.contains(&format!("nats-route://hotline-nats-{i}.hotline-nats:6222")), "route to pod {i}");
    }

    let mut served = BTreeSet::new();
    for deployment in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let name = deployment["metadata"]["name"].as_str().expect("name");
        let pod = &deployment["spec"]["template"]["spec"];
        for container in pod["containers"].as_array().expect("containers") {
            let args: Vec<&str> = container["args"].as_array().expect("args").iter().map(|v| v.as_str().expect("text")).collect();
            assert!(is_hotline_command(&args), "{name}: `hotline {}`", args.join(" "));
            served.insert(args[1].to_owned());
            assert_eq!(container["envFrom"][0]["secretRef"]["name"], "hotline", "{name}: secrets from the Secret");
            assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
        }
        let volumes = pod["volumes"].as_array().expect("volumes");
        let on_data = volumes.iter().any(|v| v["persistentVolumeClaim"]["claimName"] == "hotline-data");
        assert_eq!(on_data, name == "hotline-core", "{name}: only the pod of the data-dir components holds the volume");
    }
    assert_eq!(served, components(), "every component runs somewhere");
    assert!(read(&files[1]).contains("replicas = 3"), "R3 streams on the cluster");
}
