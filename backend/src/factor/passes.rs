//! Admission of the forward passes that run off the async workers.
//!
//! A pass of many rows takes milliseconds of CPU (or a GPU's queue). Without a bound,
//! an overload (or a caller sending large requests in a loop) would start one blocking
//! thread per request, up to tokio's 512, each holding its request's rows: every answer
//! slows down until all time out together, and memory grows with the crowd. Here at
//! most `running` passes run and `queued` more wait; a request beyond that is refused
//! at once (503 with `Retry-After`), so the caller — the gateway's retry and circuit
//! breaker, or a load balancer — can go elsewhere or come back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Room for forward passes: how many run at once and how many more may wait.
#[derive(Debug)]
pub struct PassLimit {
    /// One permit per pass that may run.
    running: Arc<Semaphore>,
    /// One permit per pass that may run or wait: taken without waiting.
    admitted: Arc<Semaphore>,
    /// Passes that may run at once.
    max_running: usize,
    /// Passes that may run or wait.
    capacity: usize,
    /// Callers waiting for a place to run now (for the metrics: the semaphores cannot
    /// tell a waiting caller from a running one).
    waiting: Arc<AtomicUsize>,
}

/// One caller counted as waiting until it is dropped (it got its place, or its request
/// went away while it waited).
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(count: &Arc<AtomicUsize>) -> Waiting {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The right to run one pass; the room is given back when it is dropped (after the
/// pass, even when the request that asked for it is gone).
#[derive(Debug)]
pub struct PassPermit {
    _running: OwnedSemaphorePermit,
    /// `None` for [`PassLimit::wait_to_run`], whose callers are bounded elsewhere.
    _admitted: Option<OwnedSemaphorePermit>,
}

/// The error code of a factor service's 503 answer when every place to run or wait for
/// a forward pass is taken: a caller retries it (after `Retry-After`) rather than
/// counting the service as failing.
pub const PASSES_BUSY: &str = "passes_busy";

impl PassPermit {
    /// Runs `f` (a forward pass) on tokio's blocking pool, holding this place until it
    /// returns, even if the caller stops waiting for it.
    pub async fn run_blocking<T, F>(self, f: F) -> Result<T, tokio::task::JoinError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let _room = self;
            f()
        })
        .await
    }
}

/// Every place to run or to wait is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("busy: {running} forward passes running and {queued} waiting; try again shortly")]
pub struct PassesBusy {
    /// Passes that may run at once.
    pub running: usize,
    /// Passes that may wait.
    pub queued: usize,
}

impl PassLimit {
    /// At most `running` passes at once (at least 1) and `queued` more waiting.
    pub fn new(running: usize, queued: usize) -> Self {
        let running = running.clamp(1, Semaphore::MAX_PERMITS);
        let capacity = running.saturating_add(queued).min(Semaphore::MAX_PERMITS);
        PassLimit {
            running: Arc::new(Semaphore::new(running)),
            admitted: Arc::new(Semaphore::new(capacity)),
            max_running: running,
            capacity,
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A place to run a pass: at once, after waiting for one (cancelled with the
    /// request), or refused when the waiting room is full too.
    pub async fn enter(&self) -> Result<PassPermit, PassesBusy> {
        let busy = PassesBusy {
            running: self.max_running,
            queued: self.capacity - self.max_running,
        };
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy)?;
        Ok(PassPermit {
            _running: self.running_place().await,
            _admitted: Some(admitted),
        })
    }

    /// A place to run a pass, waiting as long as it takes (cancelled with the caller):
    /// for callers whose number is bounded elsewhere, the gateway's factors in its own
    /// process (its connection limit and request time limit bound the waiting calls),
    /// which must not refuse a pass that an HTTP caller would simply retry.
    pub async fn wait_to_run(&self) -> PassPermit {
        PassPermit {
            _running: self.running_place().await,
            _admitted: None,
        }
    }

    /// A place among the running passes, waiting for one.
    async fn running_place(&self) -> OwnedSemaphorePermit {
        if let Ok(p) = self.running.clone().try_acquire_owned() {
            return p;
        }
        let _waiting = Waiting::new(&self.waiting);
        match self.running.clone().acquire_owned().await {
            Ok(p) => p,
            // Acquiring fails only on a closed semaphore, and this one is never closed
            // (no `close` call exists on it): a place that cannot be had is never freed.
            Err(_) => std::future::pending().await,
        }
    }

    /// Passes running or waiting now (those that came through [`PassLimit::enter`]).
    pub fn in_use(&self) -> usize {
        self.capacity - self.admitted.available_permits()
    }

    /// Passes running now, however they came in.
    pub fn running(&self) -> usize {
        self.max_running - self.running.available_permits()
    }

    /// Callers waiting for a place to run now, however they came in.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The most passes that run at once, and the most that may wait besides.
    pub fn limits(&self) -> (usize, usize) {
        (self.max_running, self.capacity - self.max_running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_waits_then_refuses() {
        let limit = Arc::new(PassLimit::new(1, 1));
        let first = limit.enter().await.unwrap();
        assert_eq!(limit.in_use(), 1);
        let waiting = tokio::spawn({
            let limit = limit.clone();
            async move { limit.enter().await.map(|_| ()) }
        });
        while limit.in_use() < 2 {
            tokio::task::yield_now().await;
        }
        // Waiting, not refused and not running.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        assert_eq!((limit.running(), limit.waiting()), (1, 1));
        assert_eq!(limit.limits(), (1, 1));
        assert_eq!(
            limit.enter().await.unwrap_err(),
            PassesBusy {
                running: 1,
                queued: 1
            }
        );
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(limit.in_use(), 0);
        assert_eq!((limit.running(), limit.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn in_process_callers_wait_for_a_place_to_run() {
        let limit = Arc::new(PassLimit::new(1, 0));
        let running = limit.wait_to_run().await;
        // It takes no place in the waiting room: an HTTP caller is admitted and waits.
        assert_eq!(limit.in_use(), 0);
        let admitted = tokio::time::timeout(Duration::from_millis(20), limit.enter()).await;
        assert!(admitted.is_err(), "ran beside the running pass");
        let waiting = tokio::spawn({
            let limit = limit.clone();
            async move {
                let _p = limit.wait_to_run().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "ran beside the running pass");
        // The metrics see it waiting, as they see an HTTP caller.
        assert_eq!((limit.running(), limit.waiting()), (1, 1));
        drop(running);
        waiting.await.unwrap();
        assert_eq!((limit.running(), limit.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn a_cancelled_wait_gives_its_place_back() {
        let limit = PassLimit::new(1, 1);
        let running = limit.enter().await.unwrap();
        let timed_out = tokio::time::timeout(Duration::from_millis(10), limit.enter()).await;
        assert!(timed_out.is_err());
        assert_eq!(limit.in_use(), 1);
        assert_eq!(limit.waiting(), 0, "a caller that went away is not waiting");
        drop(running);
        let _again = limit.enter().await.unwrap();
    }

    #[tokio::test]
    async fn no_waiting_room_and_at_least_one_pass() {
        let limit = PassLimit::new(0, 0);
        let running = limit.enter().await.unwrap();
        assert!(limit.enter().await.is_err());
        drop(running);
        assert!(limit.enter().await.is_ok());
        // Absurd settings do not overflow the semaphores.
        let huge = PassLimit::new(usize::MAX, usize::MAX);
        assert!(huge.enter().await.is_ok());
    }
}
