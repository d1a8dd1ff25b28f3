//! Connection bookkeeping of the accept loop: a cap on open connections, which of them are
//! idle (no request in progress), and the body wrapper that tells them apart.

use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The connections of one accept loop that have no request in progress, oldest first, with
/// the token that closes each. At the connection cap the oldest idle one is closed to make
/// room, so idle connections can never lock a client out.
#[derive(Default)]
pub(super) struct Idle {
    next_id: AtomicU64,
    idle: Mutex<BTreeMap<u64, CancellationToken>>,
}

impl Idle {
    /// Registers a new (idle) connection; returns its id and the token that closes it.
    pub(super) fn register(&self) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close = CancellationToken::new();
        self.lock().insert(id, close.clone());
        (id, close)
    }

    /// Marks the connection busy (`false`) or idle again (`true`).
    pub(super) fn set(&self, id: u64, idle: bool, close: &CancellationToken) {
        let mut map = self.lock();
        if idle {
            map.insert(id, close.clone());
        } else {
            map.remove(&id);
        }
    }

    /// Forgets a connection that ended.
    pub(super) fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Closes the oldest idle connection; returns whether there was one.
    pub(super) fn evict_oldest(&self) -> bool {
        let oldest = self.lock().pop_first();
        match oldest {
            Some((_, close)) => {
                close.cancel();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        // The map stays consistent even if a holder panicked (every update is one call).
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Requests (and response bodies) in progress on one connection; the connection is idle
/// when this is zero.
#[derive(Clone)]
pub(super) struct Active {
    count: Arc<watch::Sender<usize>>,
}

impl Active {
    pub(super) fn new() -> (Self, watch::Receiver<usize>) {
        let (tx, rx) = watch::channel(0);
        (
            Self {
                count: Arc::new(tx),
            },
            rx,
        )
    }

    /// One more request in progress, until the returned guard is dropped.
    pub(super) fn enter(&self) -> InFlight {
        self.count.send_modify(|n| *n += 1);
        InFlight {
            count: Arc::clone(&self.count),
        }
    }
}

/// A request in progress; dropped with its response body (so a log stream keeps its
/// connection busy for as long as it streams).
pub(super) struct InFlight {
    count: Arc<watch::Sender<usize>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.send_modify(|n| *n = n.saturating_sub(1));
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its request's [`InFlight`] until it is dropped.
    pub(super) struct Tracked<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
    }
}

impl<B> Tracked<B> {
    pub(super) fn new(inner: B, guard: InFlight) -> Self {
        Self {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) {
            this.guard.take();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The default connection cap: what the soft `RLIMIT_NOFILE` allows after keeping a quarter
/// of it (at least 64, at most 1024 descriptors) for spawning tasks (each takes up to four
/// while starting: pipes and pidfd) and for files, at most 4096; 64 when the limit cannot
/// be read.
pub(super) fn default_max_connections() -> usize {
    let soft = soft_nofile().unwrap_or(0);
    connections_for_nofile(soft)
}

/// The connection cap for a soft descriptor limit of `soft`.
pub(super) fn connections_for_nofile(soft: u64) -> usize {
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    let reserve = (soft / 4).clamp(64, 1024);
    soft.saturating_sub(reserve)
        .clamp(MIN_CONNECTIONS, MAX_DEFAULT_CONNECTIONS)
}

const MIN_CONNECTIONS: usize = 16;
const MAX_DEFAULT_CONNECTIONS: usize = 4096;

#[cfg(unix)]
fn soft_nofile() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

#[cfg(not(unix))]
fn soft_nofile() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_room_for_spawning() {
        assert_eq!(connections_for_nofile(1024), 768);
        assert_eq!(connections_for_nofile(256), 192);
        assert_eq!(connections_for_nofile(0), MIN_CONNECTIONS);
        assert_eq!(connections_for_nofile(1 << 20), 4096);
        assert_eq!(connections_for_nofile(4096), 3072);
    }

    #[test]
    fn oldest_idle_is_evicted_first() {
        let idle = Idle::default();
        let (a, ca) = idle.register();
        let (b, cb) = idle.register();
        let (_, cc) = idle.register();
        idle.set(a, false, &ca);
        assert!(idle.evict_oldest());
        assert!(!ca.is_cancelled() && cb.is_cancelled() && !cc.is_cancelled());
        idle.remove(b);
        assert!(idle.evict_oldest());
        assert!(cc.is_cancelled());
        assert!(!idle.evict_oldest(), "a is busy");
    }
}
