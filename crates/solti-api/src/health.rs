//! Liveness and readiness: [`Health`], shared by the HTTP `/healthz` and `/readyz` routes,
//! the `grpc.health.v1.Health` service and whatever else reports the agent's state.

use std::{fmt, sync::Arc};

use tokio::sync::watch;

/// Where an agent is in its life, as readiness probes see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// Starting: the supervisor or the listeners are not up yet (`/readyz` 503).
    Starting,
    /// Serving: the supervisor runs and the listeners are bound (`/readyz` 200).
    Ready,
    /// Shutting down: no new work is taken (`/readyz` 503). Final.
    ShuttingDown,
}

impl Readiness {
    /// The word `/readyz` answers: `starting`, `ready` or `shutting down`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::ShuttingDown => "shutting down",
        }
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The readiness of one agent, cheap to clone; every clone sees the same state.
///
/// Starts [`Starting`](Readiness::Starting) ([`new`](Self::new)) or
/// [`Ready`](Readiness::Ready) ([`ready`](Self::ready)); moves forward only:
/// `Starting → Ready → ShuttingDown` (a shutdown during start-up skips `Ready`).
///
/// ```
/// use solti_api::{Health, Readiness};
///
/// let health = Health::new();
/// assert_eq!(health.readiness(), Readiness::Starting);
/// health.set_ready();
/// health.set_shutting_down();
/// health.set_ready(); // no way back
/// assert_eq!(health.readiness(), Readiness::ShuttingDown);
/// ```
#[derive(Clone)]
pub struct Health {
    state: Arc<watch::Sender<Readiness>>,
}

impl Health {
    /// A health in [`Readiness::Starting`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: Arc::new(watch::Sender::new(Readiness::Starting)),
        }
    }

    /// A health already [`Readiness::Ready`] (for servers that are ready as soon as they
    /// serve; the default of [`HttpApi`](crate::HttpApi) and [`GrpcApi`](crate::GrpcApi)).
    #[must_use]
    pub fn ready() -> Self {
        let health = Self::new();
        health.set_ready();
        health
    }

    /// The current state.
    #[must_use]
    pub fn readiness(&self) -> Readiness {
        *self.state.borrow()
    }

    /// Whether the state is [`Readiness::Ready`].
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.readiness() == Readiness::Ready
    }

    /// `Starting → Ready`; does nothing once shutting down.
    pub fn set_ready(&self) {
        self.state.send_if_modified(|s| {
            if *s == Readiness::Starting {
                *s = Readiness::Ready;
                true
            } else {
                false
            }
        });
    }

    /// Moves to [`Readiness::ShuttingDown`] (final).
    pub fn set_shutting_down(&self) {
        self.state.send_if_modified(|s| {
            let changed = *s != Readiness::ShuttingDown;
            *s = Readiness::ShuttingDown;
            changed
        });
    }

    /// A receiver that sees every change of state.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Readiness> {
        self.state.subscribe()
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("readiness", &self.readiness())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_only() {
        let h = Health::new();
        let mut rx = h.subscribe();
        assert_eq!(h.readiness(), Readiness::Starting);
        h.set_ready();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), Readiness::Ready);
        h.set_ready();
        assert!(!rx.has_changed().unwrap());
        h.set_shutting_down();
        h.set_ready();
        assert_eq!(h.readiness(), Readiness::ShuttingDown);
        let h = Health::new();
        h.set_shutting_down();
        h.set_ready();
        assert_eq!(h.readiness(), Readiness::ShuttingDown);
        assert!(Health::ready().is_ready());
    }
}
