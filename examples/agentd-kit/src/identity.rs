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
    let tmp = dir.join(format!(".{AGENT_ID_FILE}.tmp.{}", std::process::id()));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(())
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
}
