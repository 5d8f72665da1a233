//! Rebuilding the projections from the log into a fresh file, and swapping it in under the live path
//! (`hotline replay`, docs/audit.md).
//!
//! Why a link and not a plain rename over the live file: SQLite names a database's write-ahead log and its shared
//! memory index after the *path* (`projections.sqlite-wal`, `-shm`). A file renamed over a live WAL database would
//! be opened by new connections with the old file's WAL index, which the old connections still use: that corrupts
//! both. So each rebuild is its own file (`projections.sqlite.gen-<ms>`, with its own `-wal`/`-shm`), and the
//! live path becomes a symbolic link to it, replaced atomically by `rename(2)`. SQLite follows the link, so WAL
//! files sit beside the generation file; the readers and the writer notice that the path names another file
//! (device and inode) and reopen it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use hotline_store::{EventStore, Position};

use crate::{ProjectionError, TimelineWriter};

/// Most commits applied in one transaction of a rebuild.
const BATCH: usize = 2048;
/// Commits read and decoded ahead while a batch is applied.
const AHEAD: usize = 2 * BATCH;
/// How long a rebuild waits for the next commit before asking the log whether it has reached the end.
const QUIET: Duration = Duration::from_secs(2);

/// Where a rebuild stands, reported after every batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Events applied so far.
    pub events: u64,
    /// Log position reached.
    pub position: u64,
    /// The log's last position when the rebuild looked last: where it stops.
    pub target: u64,
}

/// Builds the projection from the whole log into a fresh file at `path` (anything there is removed first) with the
/// same writer as the live projection, in batches, up to the log's last position, then seals the file so it can be
/// moved. Returns the position reached. The live projection is untouched.
///
/// Reading and writing overlap: a task reads and decodes the log (NATS, JSON, decryption) into a queue while the
/// blocking pool applies the batch before to SQLite, so each side runs on its own core; the file is written
/// without a write-ahead log or fsyncs until it is sealed ([`TimelineWriter::open_rebuild`]).
pub async fn rebuild(store: &dyn EventStore, path: &Path, mut progress: impl FnMut(&Progress)) -> Result<u64, ProjectionError> {
    for stale in [path.to_owned(), with_suffix(path, "-wal"), with_suffix(path, "-shm"), with_suffix(path, "-journal")] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ProjectionError::Worker(format!("cannot remove {}: {e}", stale.display()))),
        }
    }
    let mut writer = TimelineWriter::open_rebuild(path)?;
    writer.bind_to_log(&store.log_id().await?)?;
    let mut state = Progress { target: store.last_position().await?, ..Progress::default() };
    progress(&state);
    if state.target > 0 {
        let mut commits = store.subscribe(Position::Start).await?;
        let (ahead, mut queue) = tokio::sync::mpsc::channel(AHEAD);
        let reader = AbortOnDrop(tokio::spawn(async move {
            while let Some(commit) = commits.next().await {
                if ahead.send(commit).await.is_err() {
                    break;
                }
            }
        }));
        'read: loop {
            let first = match tokio::time::timeout(QUIET, queue.recv()).await {
                Ok(Some(commit)) => commit?,
                Ok(None) => return Err(ProjectionError::Worker("the log subscription ended during the rebuild".to_owned())),
                Err(_) => {
                    // Nothing more for a while: done if the log has nothing after what was applied.
                    state.target = store.last_position().await?;
                    if state.position >= state.target {
                        break 'read;
                    }
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match queue.try_recv() {
                    Ok(commit) => batch.push(commit?),
                    Err(_) => break,
                }
            }
            state.events += batch.iter().map(|c| c.events.len() as u64).sum::<u64>();
            let (returned, applied) = tokio::task::spawn_blocking(move || {
                let applied = writer.apply(&batch);
                (writer, applied)
            })
            .await
            .map_err(|e| ProjectionError::Worker(e.to_string()))?;
            writer = returned;
            state.position = applied?;
            if state.position >= state.target {
                // Commits stored while rebuilding: take them too, so the swapped-in file starts close to the head.
                // The live writer applies whatever still comes after, from this file's position.
                state.target = store.last_position().await?;
            }
            progress(&state);
            if state.position >= state.target {
                break;
            }
        }
        drop(reader);
    }
    tokio::task::spawn_blocking(move || writer.seal()).await.map_err(|e| ProjectionError::Worker(e.to_string()))??;
    Ok(state.position)
}

/// Stops the log reader when the rebuild ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Swaps the sealed, rebuilt file at `rebuilt` in under the live path `live`, atomically: it becomes the next
/// generation file beside `live`, and `live` a symbolic link to it (see the module's note on why). Generations
/// older than the one replaced are removed; the one replaced stays until the next swap, since processes that have
/// not yet noticed the swap may still read it. Returns the new generation's path.
#[cfg(unix)]
pub fn install(rebuilt: &Path, live: &Path) -> Result<PathBuf, ProjectionError> {
    let io = |what: &str, e: std::io::Error| ProjectionError::Worker(format!("{what}: {e}"));
    let dir = live.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = live
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ProjectionError::Worker(format!("{} is not a file path", live.display())))?;
    let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let generation = format!("{name}.gen-{millis}");
    std::fs::rename(rebuilt, dir.join(&generation)).map_err(|e| io("cannot move the rebuilt file", e))?;
    let replaced = std::fs::read_link(live).ok().and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
    let link = dir.join(format!("{name}.swap"));
    let _ = std::fs::remove_file(&link);
    // Relative, so the data dir can be moved or copied whole.
    std::os::unix::fs::symlink(&generation, &link).map_err(|e| io("cannot create the link", e))?;
    std::fs::rename(&link, live).map_err(|e| io("cannot swap the link in", e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    let keep: Vec<&str> = std::iter::once(generation.as_str()).chain(replaced.as_deref()).collect();
    remove_generations(dir, name, &keep);
    Ok(dir.join(generation))
}

/// Removes the generation files (with their `-wal`/`-shm`) that `live` no longer names: a replay keeps the one it
/// replaced while processes may still have it open, and personal data erased since then must not survive in it
/// (docs/privacy.md). Called before each erasure; a process that has not moved to the current file yet (they look
/// twice a second) keeps reading the file it has open, which the system frees once it is closed. Returns how many
/// files were removed.
pub fn remove_stale_generations(live: &Path) -> usize {
    let dir = live.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(name) = live.file_name().and_then(|n| n.to_str()) else { return 0 };
    let Some(current) = std::fs::read_link(live).ok().and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned())) else {
        return 0;
    };
    remove_generations(dir, name, &[current.as_str()])
}

/// Removes every generation file of `name` in `dir` (`<name>.gen-<n>` and its `-wal`/`-shm`) but those of the
/// generations in `keep`; returns how many files went.
fn remove_generations(dir: &Path, name: &str, keep: &[&str]) -> usize {
    let prefix = format!("{name}.gen-");
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if !file.starts_with(&prefix) {
            continue;
        }
        let base = file.trim_end_matches("-wal").trim_end_matches("-shm");
        if !keep.contains(&base) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
