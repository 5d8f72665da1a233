//! `hotline-bench`: the benchmark of the real system (see docs/performance.md). Prints a table; `--json` writes the
//! figures.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "hotline-bench", about = "Benchmark the real hotline system: raw JetStream limit, throughput, latency, replay, memory")]
struct Cli {
    /// The hotline binary [default: `hotline` next to this executable]
    #[arg(long)]
    hotline: Option<PathBuf>,
    /// The system's data dir (kept afterwards) [default: a temporary one, removed]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Petitions of the maximum-throughput run
    #[arg(long, default_value_t = 20_000)]
    petitions: usize,
    /// HTTP connections submitting at once
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Petitions per second of the latency run (80% of the measured maximum if that is lower)
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Seconds of the latency run
    #[arg(long, default_value_t = 20.0)]
    latency_secs: f64,
    /// Messages of each raw JetStream append measurement
    #[arg(long, default_value_t = 20_000)]
    raw_messages: usize,
    /// Tickets in the log for the replay and memory measurements (filled through the intake)
    #[arg(long, default_value_t = 1_000_000)]
    tickets: usize,
    /// Write the figures as JSON to this file
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let hotline = match cli.hotline.clone().or_else(|| {
        std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("hotline")))
    }) {
        Some(path) => path,
        None => {
            eprintln!("hotline-bench: cannot tell where the hotline binary is; pass --hotline");
            return ExitCode::from(2);
        }
    };
    let options = hotline_bench::Options {
        hotline,
        data_dir: cli.data_dir,
        petitions: cli.petitions,
        concurrency: cli.concurrency,
        rate: cli.rate,
        latency_secs: cli.latency_secs,
        raw_messages: cli.raw_messages,
        tickets: cli.tickets,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hotline-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(hotline_bench::run(&options, |line| eprintln!("bench: {line}")));
    match result {
        Ok(report) => {
            print!("{}", hotline_bench::table(&report));
            if let Some(path) = cli.json {
                let json = match serde_json::to_string_pretty(&report) {
                    Ok(j) => j,
                    Err(e) => {
                        eprintln!("hotline-bench: cannot render the figures: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                if let Err(e) = std::fs::write(&path, json + "\n") {
                    eprintln!("hotline-bench: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(hotline_bench::BenchError::Invalid(message)) => {
            eprintln!("hotline-bench: {message}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("hotline-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
