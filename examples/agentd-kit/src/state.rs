//! The agent's state store: in memory, or durable under `--state-dir` (docs/state.md).

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context as _, Result};
use solti_core::{DiskStore, DiskStoreError, MemoryStore, StateConfig, StateStore};

use crate::{Config, StateBackendArg, TransportKind};

/// The store the supervisor is built on, and the durable one when `--state disk`.
pub(crate) struct Opened {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) disk: Option<Arc<DiskStore>>,
}

/// The store file of `transport`'s agent under the state directory.
pub(crate) fn store_file(config: &Config, transport: TransportKind) -> PathBuf {
    config
        .state_dir()
        .join(format!("{}.tasks.redb", transport.binary_name()))
}

/// Opens the store `--state` asks for; with `--state-reset`, moves the old file aside first.
///
/// # Errors
/// Names the file and the way out, which depends on the cause: a corrupted store or one
/// written by a newer version (`--state-reset`), one in use by another agent, a file that
/// cannot be opened (permissions, read-only file system), or a directory that cannot be
/// created.
pub(crate) fn open(
    config: &Config,
    transport: TransportKind,
    state: &StateConfig,
) -> Result<Opened> {
    if config.state == StateBackendArg::Memory {
        if config.state_reset {
            tracing::warn!("--state-reset has no effect with --state memory");
        }
        return Ok(Opened {
            store: Arc::new(MemoryStore::new(state)),
            disk: None,
        });
    }
    let file = store_file(config, transport);
    if let Some(dir) = file.parent() {
        create_private_dir(dir)
            .with_context(|| format!("--state-dir: cannot create {}", dir.display()))?;
    }
    if config.state_reset && file.exists() {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = file.with_extension(format!("redb.reset-{secs}"));
        std::fs::rename(&file, &aside).with_context(|| {
            format!(
                "--state-reset: cannot move {} aside to {}",
                file.display(),
                aside.display()
            )
        })?;
        tracing::warn!(from = %file.display(), to = %aside.display(),
            "--state-reset: moved the state store aside; starting with no tasks");
    }
    let started = std::time::Instant::now();
    let disk = DiskStore::open(&file, state).map_err(|e| {
        let way_out = match e {
            DiskStoreError::Io { .. } => {
                "check that the state directory is writable by the agent and its file system \
                 is mounted read-write with space left (--state-dir, SOLTI_STATE_DIR), or start \
                 with --state memory to keep no state"
            }
            DiskStoreError::InUse { .. } => {
                "another agent uses this state directory: stop it, or give this agent its own \
                 --state-dir"
            }
            _ => {
                "start with --state-reset (SOLTI_STATE_RESET=1) to move it aside and start \
                 empty, or with --state memory to keep no state"
            }
        };
        anyhow::Error::new(e).context(format!(
            "cannot open the task state store {}: {way_out}",
            file.display()
        ))
    })?;
    let disk = Arc::new(disk);
    let restored = disk.phase_counts().values().sum::<u64>();
    tracing::info!(file = %file.display(), tasks = restored,
        elapsed_ms = started.elapsed().as_millis() as u64, "task state store opened");
    Ok(Opened {
        store: Arc::clone(&disk) as Arc<dyn StateStore>,
        disk: Some(disk),
    })
}

/// Creates `dir` (and its parents) readable by the agent's user only.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
