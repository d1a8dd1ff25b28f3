//! The agent's stable identity, kept in a small state file.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use solti_model::AgentId;

/// File name of the agent id inside the state directory.
const AGENT_ID_FILE: &str = "agent-id";

/// Returns the agent id kept in `state_dir`, creating (and persisting) a new one on first use.
/// The file is written atomically (temp file + rename) so a crash never leaves half an id.
///
/// # Errors
/// When the directory cannot be created, the file cannot be read or written, or it holds an
/// invalid id (it is never silently replaced: that would change identity with the control plane).
pub fn load_or_create_agent_id(state_dir: &Path) -> Result<AgentId> {
    let path = state_dir.join(AGENT_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => AgentId::try_new(s.trim()).with_context(|| {
            format!(
                "{}: holds an invalid agent id; fix or remove it",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = AgentId::generate();
            write_atomically(state_dir, &path, id.as_str())?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_atomically(dir: &Path, path: &PathBuf, contents: &str) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    let (tmp, mut f) = create_temp(dir)?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(())
}

/// Creates a new temporary file next to the id file. `create_new` (`O_CREAT|O_EXCL`) never
/// opens an existing file and never follows a symlink, so a link planted at the temp name
/// (by another user of a shared state directory) cannot redirect the write; the name is
/// unpredictable and retried on collision.
fn create_temp(dir: &Path) -> Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt as _;

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for attempt in 0..16u32 {
        let tmp = dir.join(format!(
            ".{AGENT_ID_FILE}.tmp.{}.{seed:x}.{attempt}",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot write {}", tmp.display())),
        }
    }
    anyhow::bail!("cannot create a temporary file in {}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_created_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("agentd-kit-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = load_or_create_agent_id(&dir).unwrap();
        let b = load_or_create_agent_id(&dir).unwrap();
        assert_eq!(a, b);
        std::fs::write(dir.join(AGENT_ID_FILE), "bad id!").unwrap();
        assert!(
            load_or_create_agent_id(&dir)
                .unwrap_err()
                .to_string()
                .contains("invalid agent id")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let dir = std::env::temp_dir().join(format!("agentd-kit-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // Every name the old code used, and a link at a would-be temp name.
        std::os::unix::fs::symlink(
            &victim,
            dir.join(format!(".{AGENT_ID_FILE}.tmp.{}", std::process::id())),
        )
        .unwrap();
        let (tmp, _f) = create_temp(&dir).unwrap();
        assert!(
            !std::fs::symlink_metadata(&tmp)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let id = load_or_create_agent_id(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(dir.join(AGENT_ID_FILE))
                .unwrap()
                .trim(),
            id.as_str()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
