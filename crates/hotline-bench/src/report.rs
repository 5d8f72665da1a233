//! The figures of a run: a human table and the JSON written by `--json`.

use std::fmt::Write;

use serde::Serialize;

use crate::raw::{Appends, FeedProgress, OrderedRead};
use crate::system::Memory;
use crate::{Latency, Options};

/// Everything one run measured. Sections are None when the run stopped before them.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub nats_server: String,
    pub durability: &'static str,
    pub options: OptionsShown,
    pub raw_appends: Option<Appends>,
    pub throughput: Option<Throughput>,
    /// Where the published feed stood when the maximum-throughput run was routed and projected.
    pub feed_after_throughput: Option<FeedProgress>,
    /// How fast the feed projector published during the maximum run, and how long it then took to catch up.
    pub feed_catch_up: Option<FeedCatchUp>,
    pub latency: Option<Latencies>,
    pub fill: Option<Fill>,
    /// Memory of the processes that took every petition of the run, once the projection caught up.
    pub memory_running: Option<ProcessMemory>,
    pub replay: Option<Replay>,
    pub memory_restart: Option<Restart>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedCatchUp {
    /// Feed messages published per second during the maximum run (from its start until it was projected).
    pub during_run_per_s: f64,
    /// Seconds after that until the feed reached the log position the maximum run ended at.
    pub seconds: f64,
    /// Feed messages published per second while catching up (no petitions coming in).
    pub catch_up_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OptionsShown {
    pub petitions: usize,
    pub connections: usize,
    pub rate: f64,
    pub latency_secs: f64,
    pub raw_messages: usize,
    pub tickets: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub petitions: usize,
    pub connections: usize,
    /// Petitions acknowledged (202) per second.
    pub acknowledged_per_s: f64,
    /// Petitions whose routing decision is stored, per second.
    pub routed_per_s: f64,
    /// Petitions acknowledged, routed and visible in the timeline projection, per second.
    pub end_to_end_per_s: f64,
    pub ratio_to_pipelined: f64,
    pub ratio_to_one_at_a_time: f64,
    pub acknowledgement: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latencies {
    pub rate_requested: f64,
    pub rate_used: f64,
    pub petitions: usize,
    /// From when the petition was due to its 202.
    pub acknowledgement: Latency,
    /// From when it was due to its routing decision being stored.
    pub routed: Latency,
    /// From when it was due to the projection (the API) showing it routed.
    pub visible: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fill {
    pub tickets: usize,
    pub seconds: f64,
    pub per_s: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcessMemory {
    pub hotline: Memory,
    pub nats_server: Memory,
}

#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    pub commits: u64,
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    pub commits_per_s: f64,
    pub ordered_read: OrderedRead,
    /// Replay's commits per second over the raw read's messages per second.
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    pub tickets: usize,
    pub log_commits: u64,
    /// From the restart to the rebuilt projection reaching the log's end.
    pub catch_up_seconds: f64,
    pub hotline: Memory,
    pub nats_server: Memory,
}

impl Report {
    pub(crate) fn new(opts: &Options, machine: &Machine) -> Report {
        Report {
            machine: machine.clone(),
            nats_server: String::new(),
            durability: "sync_interval: always (fsync before every acknowledgement), R1 file storage",
            options: OptionsShown {
                petitions: opts.petitions,
                connections: opts.concurrency,
                rate: opts.rate,
                latency_secs: opts.latency_secs,
                raw_messages: opts.raw_messages,
                tickets: opts.tickets,
            },
            raw_appends: None,
            throughput: None,
            feed_after_throughput: None,
            feed_catch_up: None,
            latency: None,
            fill: None,
            memory_running: None,
            replay: None,
            memory_restart: None,
        }
    }
}

/// What this machine is, from /proc.
pub(crate) fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok()))
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    Machine { cpu, cpus: std::thread::available_parallelism().map_or(0, usize::from), memory_gib: kib / 1024.0 / 1024.0, kernel }
}

fn lat(l: &Latency) -> String {
    format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", l.p50_ms, l.p99_ms, l.max_ms)
}

/// The human table.
pub fn table(r: &Report) -> String {
    let mut t = String::new();
    let mut row = |name: &str, value: String| {
        let _ = writeln!(t, "| {name:<46} | {value} |");
    };
    row("machine", format!("{} x {}, {:.0} GiB, Linux {}", r.machine.cpus, r.machine.cpu, r.machine.memory_gib, r.machine.kernel));
    row("nats-server", format!("{}, {}", r.nats_server, r.durability));
    if let Some(a) = &r.raw_appends {
        row("raw append, pipelined", format!("{:.0}/s ({} messages of {} bytes)", a.pipelined_per_s, a.messages, a.payload_bytes));
        row("raw append, one at a time, expected seq", format!("{:.0}/s ({})", a.one_at_a_time_per_s, lat(&a.one_at_a_time_latency)));
    }
    if let Some(x) = &r.throughput {
        row("max throughput: acknowledged", format!("{:.0} petitions/s ({} petitions, {} connections)", x.acknowledged_per_s, x.petitions, x.connections));
        row("max throughput: routed", format!("{:.0} petitions/s", x.routed_per_s));
        row("max throughput: routed and projected", format!("{:.0} petitions/s", x.end_to_end_per_s));
        row("  ratio to raw pipelined / one-at-a-time", format!("{:.3} / {:.3}", x.ratio_to_pipelined, x.ratio_to_one_at_a_time));
        row("  acknowledgement under max load", lat(&x.acknowledgement));
    }
    if let Some(f) = &r.feed_after_throughput {
        row("  published feed then", format!("at log position {} of {} ({} messages)", f.feed_log_position, f.log_position, f.feed_messages));
    }
    if let Some(f) = &r.feed_catch_up {
        row("  feed publishing during the run", format!("{:.0} messages/s", f.during_run_per_s));
        row("  feed caught up after the run", format!("in {:.1} s ({:.0} messages/s)", f.seconds, f.catch_up_per_s));
    }
    if let Some(l) = &r.latency {
        row("latency run", format!("{} petitions at {:.0}/s (asked {:.0}/s)", l.petitions, l.rate_used, l.rate_requested));
        row("  intake acknowledgement", lat(&l.acknowledgement));
        row("  intake to routed (stored)", lat(&l.routed));
        row("  intake to visible in the API (projected)", lat(&l.visible));
    }
    if let Some(f) = &r.fill {
        row("fill through the intake", format!("{} tickets in {:.0} s ({:.0}/s, routed included)", f.tickets, f.seconds, f.per_s));
    }
    if let Some(m) = &r.memory_running {
        row("peak RSS after the run: hotline", format!("{:.0} MiB (now {:.0} MiB)", m.hotline.peak_mib, m.hotline.current_mib));
        row("peak RSS after the run: nats-server", format!("{:.0} MiB (now {:.0} MiB)", m.nats_server.peak_mib, m.nats_server.current_mib));
    }
    if let Some(p) = &r.replay {
        row("hotline replay", format!("{:.0} events/s, {:.0} commits/s ({} events, {} commits, {:.1} s)", p.events_per_s, p.commits_per_s, p.events, p.commits, p.seconds));
        row("raw ordered-consumer read of the log", format!("{:.0} messages/s ({:.1} MB/s)", p.ordered_read.messages_per_s, p.ordered_read.megabytes_per_s));
        row("  replay / raw read", format!("{:.3}", p.ratio));
    }
    if let Some(m) = &r.memory_restart {
        row("restart, projection rebuilt", format!("{} tickets, {} commits, caught up in {:.1} s", m.tickets, m.log_commits, m.catch_up_seconds));
        row("  peak RSS: hotline", format!("{:.0} MiB (now {:.0} MiB)", m.hotline.peak_mib, m.hotline.current_mib));
        row("  peak RSS: nats-server", format!("{:.0} MiB (now {:.0} MiB)", m.nats_server.peak_mib, m.nats_server.current_mib));
    }
    t
}
