//! The benchmark (crates/hotline-bench) at a tiny size against the real binary, so it cannot rot: it completes and
//! its JSON has every figure. No figure is judged here (speed is read from a real run, docs/performance.md).

use crate::binary;

/// Every leaf of the report, with its path.
fn leaves(value: &serde_json::Value, path: String, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| leaves(v, format!("{path}.{k}"), out)),
        serde_json::Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| leaves(v, format!("{path}[{i}]"), out)),
        other => out.push((path, other.clone())),
    }
}

#[test]
fn the_bench_runs_every_measurement_and_reports_every_figure() {
    let options = hotline_bench::Options {
        hotline: binary().to_owned(),
        data_dir: None,
        petitions: 40,
        concurrency: 8,
        rate: 40.0,
        latency_secs: 1.0,
        raw_messages: 100,
        tickets: 300,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let report = runtime.block_on(hotline_bench::run(&options, |line| eprintln!("bench: {line}"))).expect("the bench completes");
    let table = hotline_bench::table(&report);
    let json = serde_json::to_value(&report).expect("the report is JSON");

    for section in ["raw_appends", "throughput", "feed_after_throughput", "feed_catch_up", "latency", "fill", "memory_running", "replay", "memory_restart"] {
        assert!(json[section].is_object(), "section {section} is missing: {json:#}");
    }
    let mut all = Vec::new();
    leaves(&json, String::new(), &mut all);
    for (path, value) in &all {
        assert!(!value.is_null(), "{path} has no figure: {json:#}");
        if let Some(n) = value.as_f64() {
            assert!(n.is_finite() && n >= 0.0, "{path} = {n}");
        }
    }
    // Figures that must be counted, not merely present.
    assert_eq!(json["throughput"]["acknowledgement"]["samples"], 40);
    assert_eq!(json["latency"]["routed"]["samples"], json["latency"]["petitions"]);
    assert!(json["replay"]["events"].as_u64().is_some_and(|e| e >= 600), "every ticket has a petition and a routing decision");
    assert_eq!(json["memory_restart"]["tickets"], 300);
    assert!(json["memory_restart"]["hotline"]["peak_mib"].as_f64().is_some_and(|m| m > 0.0));
    assert!(table.contains("replay / raw read"), "{table}");
}
