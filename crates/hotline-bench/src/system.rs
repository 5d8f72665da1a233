//! The system under test: the real `hotline up` binary on a data dir of the bench's, with its embedded
//! nats-server (`sync_interval: always`, the production durability). Its log goes to `<data dir>/hotline.log`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;

/// How long `hotline up` may take to print its address (it starts nats-server and opens the projections).
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long a SIGTERM may take before SIGKILL (draining is bounded by the system's own timeout).
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// A running `hotline up`. Killed when dropped.
pub struct System {
    child: Option<Child>,
    /// `host:port` of its HTTP listener.
    pub addr: String,
    pub data_dir: PathBuf,
}

impl System {
    /// Starts `hotline up` on `data_dir` and a free port; returns once it listens.
    pub fn start(hotline: &Path, data_dir: &Path) -> Result<System, BenchError> {
        std::fs::create_dir_all(data_dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("hotline.log"))?;
        let mut child = Command::new(hotline)
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http")
            .arg("127.0.0.1:0")
            // Another system on this machine may hold the default SMTP port.
            .env("HOTLINE_SMTP_ADDR", "127.0.0.1:0")
            .env_remove("NATS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| BenchError::System(format!("cannot run {}: {e}", hotline.display())))?;
        let stdout = child.stdout.take().ok_or_else(|| BenchError::System("no stdout".to_owned()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Read stdout to its end: a closed pipe would fail the system's later prints.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("hotline: listening on http://")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let mut system = System { child: Some(child), addr: String::new(), data_dir: data_dir.to_owned() };
        match rx.recv_timeout(START_LIMIT) {
            Ok(addr) => system.addr = addr,
            Err(e) => {
                system.kill();
                let why = match e {
                    std::sync::mpsc::RecvTimeoutError::Timeout => format!("did not listen within {START_LIMIT:?}"),
                    std::sync::mpsc::RecvTimeoutError::Disconnected => "exited before listening".to_owned(),
                };
                let log = std::fs::read_to_string(data_dir.join("hotline.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
                return Err(BenchError::System(format!("hotline up {why}; its log ends:\n{tail}")));
            }
        }
        Ok(system)
    }

    /// The hotline process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The embedded nats-server's process id (from its pid file).
    pub fn nats_pid(&self) -> Option<u32> {
        let path = self.data_dir.join("nats").join(hotline_store::access::PID_FILE);
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    /// The internal NATS URL `hotline up` wrote (it carries the internal password: never printed).
    pub fn nats_url(&self) -> Result<String, BenchError> {
        let path = self.data_dir.join("nats.url");
        let url = std::fs::read_to_string(&path).map_err(|e| BenchError::System(format!("{}: {e}", path.display())))?;
        Ok(url.trim().to_owned())
    }

    /// SIGTERM, and wait for a clean stop (SIGKILL after a minute).
    pub fn stop(&mut self) -> Result<(), BenchError> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on our own child with a valid signal number touches no memory.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                // Its nats-server dies with it (parent-death signal); give the kernel a moment to release the store.
                std::thread::sleep(Duration::from_millis(300));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(BenchError::System(format!("hotline up did not stop within {STOP_LIMIT:?} of SIGTERM; killed")))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Peak and current resident memory of a process, in MiB (`VmHWM`, `VmRSS` of /proc/<pid>/status).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    pub peak_mib: f64,
    pub current_mib: f64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |field: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse::<f64>().ok()
    };
    Some(Memory { peak_mib: kib("VmHWM:")? / 1024.0, current_mib: kib("VmRSS:")? / 1024.0 })
}
