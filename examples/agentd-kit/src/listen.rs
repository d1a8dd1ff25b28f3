//! Where the API listens (TCP or a Unix socket), the start-up refusals that keep a bearer
//! token off the network in clear text, and the descriptor limit.

use std::{fmt, net::SocketAddr, os::unix::fs::FileTypeExt as _, path::PathBuf, str::FromStr};

use anyhow::{Context as _, Result, bail};
use tokio::net::UnixListener;

use crate::Config;

/// The API listen address: `host:port`, or `unix:/path/agent.sock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix-domain socket path (local clients only; access by file mode and owner).
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() || !path.starts_with('/') {
                return Err(format!(
                    "a Unix socket needs an absolute path (unix:/run/solti/agent.sock), got {s:?}"
                ));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>()
            .map(Self::Tcp)
            .map_err(|_| format!("expected host:port or unix:/path/agent.sock, got {s:?}"))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Parses `--listen-mode`: an octal file mode such as `0600` or `660`, at most `0777`.
///
/// # Errors
/// When the value is not octal or sets bits outside `0777`.
pub fn parse_mode(raw: &str) -> Result<u32> {
    let digits = raw.trim().trim_start_matches("0o");
    let mode = u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777);
    mode.with_context(|| {
        format!(
            "--listen-mode / SOLTI_LISTEN_MODE: expected an octal mode such as 0600, got {raw:?}"
        )
    })
}

/// Binds a Unix socket at `path` with `mode`; the returned [`SocketFile`] names the socket
/// file this call created (remove it with [`SocketFile::remove`] at shutdown; dropping it
/// removes it too).
///
/// A file already at `path` is removed only when it is a socket that nobody answers on (left
/// over by an agent that did not exit cleanly); a live socket or any other kind of file is
/// refused.
///
/// The socket never exists at `path` with any mode but `mode`, and the process umask is not
/// touched (it is process-wide: a task spawned meanwhile would inherit a changed one). The
/// socket is bound inside a fresh directory next to `path` that only the agent's user can
/// enter, given `mode` there, then hard-linked to `path` (which fails instead of replacing
/// a file that appeared meanwhile) and the private directory removed.
///
/// # Errors
/// When the path is taken, or binding or setting the mode fails.
pub fn bind_unix(path: &std::path::Path, mode: u32) -> Result<(UnixListener, SocketFile)> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};

    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "--listen: {} is in use by a running process; stop it or pick another path",
                    path.display()
                );
            }
            std::fs::remove_file(path).with_context(|| {
                format!("--listen: cannot remove stale socket {}", path.display())
            })?;
            tracing::info!(path = %path.display(), "removed a stale socket file");
        }
        Ok(_) => bail!(
            "--listen: {} exists and is not a socket; refusing to replace it",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("--listen: cannot inspect {}", path.display()));
        }
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| std::path::Path::new("/"));
    // Short, so the temporary path fits in sun_path whenever `path` does.
    let private = parent.join(format!(".solti-{}.d", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| {
            format!(
                "--listen: cannot create the private directory {} to bind in",
                private.display()
            )
        })?;
    let temp = private.join("s");
    let bound = (|| -> Result<UnixListener> {
        let listener = UnixListener::bind(&temp)
            .with_context(|| format!("--listen: cannot bind {}", path.display()))?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("--listen-mode: cannot chmod {}", temp.display()))?;
        std::fs::hard_link(&temp, path)
            .with_context(|| format!("--listen: cannot create {}", path.display()))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&temp);
    let _ = std::fs::remove_dir(&private);
    let listener = bound?;
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("--listen: cannot inspect {}", path.display()))?;
    Ok((
        listener,
        SocketFile {
            path: path.to_owned(),
            id: FileId::of(&meta),
        },
    ))
}

/// The socket file an agent created, identified by device, inode and change time: at
/// shutdown it is removed only if the path still names that very file, so an agent stopping
/// late never deletes the socket of a newer agent bound at the same path meanwhile. (The
/// change time guards against a freed inode number being reused for the newer socket; it is
/// read once the file is complete, and nothing of the agent's changes it afterwards.)
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    id: FileId,
}

/// What tells one file from another at the same path over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl SocketFile {
    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Whether `path` still names the socket this agent created.
    #[must_use]
    pub fn is_ours(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && FileId::of(&m) == self.id)
    }

    /// Removes the socket file if it is still ours (see [`SocketFile`]).
    pub fn remove(self) {
        drop(self);
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.is_ours() {
            let _ = std::fs::remove_file(&self.path);
        } else {
            tracing::debug!(path = %self.path.display(),
                "the socket path now names another file; leaving it");
        }
    }
}

/// Whether `host` (from a URL) names this machine's loopback: `localhost` or a loopback IP.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host of an `http(s)://host[:port][/…]` URL.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.starts_with('[') {
        return authority.split_once(']').map_or(authority, |(h, _)| h);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

impl Config {
    /// Whether a bearer token is configured (`--token` or `--token-file`).
    #[must_use]
    pub fn has_token(&self) -> bool {
        self.token.is_some() || self.token_file.is_some()
    }

    /// Refuses configurations that would send the bearer token in clear text over a
    /// network, or that silently ignore a flag:
    /// - a token on a non-loopback TCP API without `--tls-cert`;
    /// - a token sent to an `http://` control plane that is not on loopback;
    /// - `--cp-client-cert` without `--cp-ca` (the client certificate would not be used);
    /// - TLS on a Unix socket (not supported; the socket's mode protects it).
    ///
    /// `--insecure-allow-cleartext-token` lifts the first two.
    ///
    /// # Errors
    /// Names the flags involved and how to fix them.
    pub fn check_cleartext(&self, listen: &ListenAddr) -> Result<()> {
        let allow = self.insecure_allow_cleartext_token;
        if let ListenAddr::Tcp(addr) = listen
            && self.has_token()
            && !addr.ip().is_loopback()
            && self.tls_cert.is_none()
            && !allow
        {
            bail!(
                "refusing to accept the bearer token in clear text on non-loopback address \
                 {addr}: set --tls-cert/--tls-key, listen on loopback or on a Unix socket \
                 (--listen unix:/run/solti/agent.sock), or pass \
                 --insecure-allow-cleartext-token if this network cannot be observed"
            );
        }
        if let Some(cp) = &self.control_plane
            && self.has_token()
            && cp
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
            && !is_loopback_host(url_host(cp))
            && !allow
        {
            bail!(
                "refusing to send the bearer token in clear text to control plane {cp}: use an \
                 https:// URL (with --cp-ca), or pass --insecure-allow-cleartext-token"
            );
        }
        if self.cp_client_cert.is_some() && self.cp_ca.is_none() {
            bail!(
                "--cp-client-cert / --cp-client-key need --cp-ca (the CA that signed the control \
                 plane's certificate); without it the client certificate would not be used"
            );
        }
        if matches!(listen, ListenAddr::Unix(_)) && self.tls_cert.is_some() {
            bail!(
                "--tls-cert with --listen unix:…: TLS is not served on a Unix socket; its file \
                 mode (--listen-mode) restricts who can connect"
            );
        }
        Ok(())
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (capped at 1,048,576 when the hard
/// limit is unlimited): each connection and each task being spawned needs descriptors, and
/// the common soft default of 1,024 runs out under load. Returns `(before, after)`.
pub(crate) fn raise_nofile_limit() -> Option<(u64, u64)> {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let target = if hard == RLIM_INFINITY { 1 << 20 } else { hard };
    if soft >= target {
        return Some((soft, soft));
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => Some((soft, target)),
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
            Some((soft, soft))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("agentd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn listen_forms() {
        assert_eq!(
            "unix:/run/a.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/run/a.sock".into())
        );
        assert_eq!(
            "127.0.0.1:1".parse::<ListenAddr>().unwrap().to_string(),
            "127.0.0.1:1"
        );
        assert!("unix:rel.sock".parse::<ListenAddr>().is_err());
        assert!("localhost:1".parse::<ListenAddr>().is_err());
        assert_eq!(parse_mode("0600").unwrap(), 0o600);
        assert_eq!(parse_mode("660").unwrap(), 0o660);
        assert!(parse_mode("0800").is_err());
        assert!(parse_mode("1777").is_err());
    }

    #[test]
    fn cleartext_token_refusals() {
        let tcp = |s: &str| ListenAddr::Tcp(s.parse().unwrap());
        let c = parse(&["--token", "t"]);
        c.check_cleartext(&tcp("127.0.0.1:1")).unwrap();
        let err = c
            .check_cleartext(&tcp("0.0.0.0:1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--insecure-allow-cleartext-token"), "{err}");
        parse(&["--token", "t", "--insecure-allow-cleartext-token"])
            .check_cleartext(&tcp("0.0.0.0:1"))
            .unwrap();
        parse(&["--token", "t", "--tls-cert", "c", "--tls-key", "k"])
            .check_cleartext(&tcp("0.0.0.0:1"))
            .unwrap();
        // No token: nothing to leak (the non-loopback auth rule is checked separately).
        parse(&[]).check_cleartext(&tcp("0.0.0.0:1")).unwrap();

        let lo = tcp("127.0.0.1:1");
        let err = parse(&["--token", "t", "--control-plane", "http://podium.lan:8080"])
            .check_cleartext(&lo)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("control plane http://podium.lan:8080"),
            "{err}"
        );
        for ok in [
            "https://podium.lan:8080",
            "http://127.0.0.1:8080",
            "http://localhost:1/",
            "http://[::1]:9",
        ] {
            parse(&["--token", "t", "--control-plane", ok])
                .check_cleartext(&lo)
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let err = parse(&["--cp-client-cert", "c", "--cp-client-key", "k"])
            .check_cleartext(&lo)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--cp-client-cert / --cp-client-key need --cp-ca"),
            "{err}"
        );
        let err = parse(&["--tls-cert", "c", "--tls-key", "k"])
            .check_cleartext(&ListenAddr::Unix("/x.sock".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Unix socket"), "{err}");
    }

    #[test]
    fn stale_sockets_are_replaced_and_other_files_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempdir();
        let path = dir.join("agent.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (live, file) = bind_unix(&path, 0o600).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            // Nothing but the socket is left next to it (the private directory is gone).
            let names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["agent.sock"]);
            // It answers at `path`.
            drop(std::os::unix::net::UnixStream::connect(&path).unwrap());
            // In use: refused.
            let err = bind_unix(&path, 0o600).unwrap_err().to_string();
            assert!(err.contains("in use"), "{err}");
            drop(live);
            drop(file);
            assert!(!path.exists());
            // Stale (the agent was killed: the file stays): replaced.
            let (stale, file) = bind_unix(&path, 0o660).unwrap();
            std::mem::forget(file);
            drop(stale);
            let (_l, file) = bind_unix(&path, 0o660).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o660);
            file.remove();
            assert!(!path.exists());
            // A regular file: kept.
            std::fs::write(&path, "data").unwrap();
            let err = bind_unix(&path, 0o600).unwrap_err().to_string();
            assert!(err.contains("not a socket"), "{err}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shutdown_leaves_a_newer_agents_socket_alone() {
        let dir = tempdir();
        let path = dir.join("agent.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (old, old_file) = bind_unix(&path, 0o600).unwrap();
            // The old agent hangs; an operator moves its socket away and starts a new agent.
            drop(old);
            std::fs::rename(&path, dir.join("old.sock")).unwrap();
            let (_new, new_file) = bind_unix(&path, 0o600).unwrap();
            assert!(!old_file.is_ours() && new_file.is_ours());
            // The old agent finally stops: the new agent's socket stays.
            old_file.remove();
            assert!(path.exists());
            drop(std::os::unix::net::UnixStream::connect(&path).unwrap());
            new_file.remove();
            assert!(!path.exists());
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "agentd-kit-listen-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
