//! What every long-running component shares: the shutdown signal and how it is raised.
//!
//! Shutdown is a value passed in (`run(..., shutdown)`); loops `select!` on their work and
//! [`Shutdown::wait`], finish what they hold, and return.

use std::time::Duration;

use tokio::sync::watch;

/// Raises the shutdown signal for every [`Shutdown`] cloned from it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A component's view of the shutdown signal. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new, unraised shutdown signal.
pub fn shutdown() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Resolves once shutdown is raised (at once if it already was, or if the trigger is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|raised| *raised).await;
    }

    pub fn is_raised(&self) -> bool {
        *self.0.borrow()
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How long components may take to drain in-flight work after shutdown is raised.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_signal_and_late_waiters_return_at_once() {
        let (trigger, shutdown) = shutdown();
        let mut a = shutdown.clone();
        let waiter = tokio::spawn(async move { a.wait().await });
        assert!(!shutdown.is_raised());
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("woken").expect("joined");
        let mut late = trigger.subscribe();
        tokio::time::timeout(Duration::from_secs(1), late.wait()).await.expect("at once");
    }
}
