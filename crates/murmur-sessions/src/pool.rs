//! Threads beside the stage for the envelopes' key agreements.
//!
//! Sealing or opening an envelope costs one X25519 (and sealing a fresh
//! key pair), most of what a message costs the stage, and needs only the
//! device's identity key or the recipient's. On the stage's own thread a
//! burst of envelopes waits for each other's agreements in series; here
//! they run on every core while the stage goes on with the session steps,
//! which stay in order on its thread.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
};

use futures::FutureExt as _;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting for a thread, at most; past that a job runs on the
/// caller's thread, as it would without the pool.
const QUEUE: usize = 1024;

/// Pools made in this process so far: their threads' names tell the
/// stages of several nodes in one process apart.
static POOLS: AtomicUsize = AtomicUsize::new(0);

/// A fixed set of threads that run short jobs in the order given.
pub(crate) struct Pool {
    jobs: Option<mpsc::SyncSender<Job>>,
    /// Jobs that panicked (`Metrics::envelope_panics`).
    panics: Counter,
}

impl Pool {
    /// `threads` threads; none runs every job on the caller's thread.
    /// Each job that panics counts in `panics`.
    pub(crate) fn new(threads: usize, panics: Counter) -> Self {
        if threads == 0 {
            return Self { jobs: None, panics };
        }
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let pool = POOLS.fetch_add(1, Ordering::Relaxed);
        let mut spawned = 0;
        for n in 0..threads {
            let rx = rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("murmur-seal-{pool}.{n}"))
                .spawn(move || loop {
                    // The lock is held only to take a job, not to run it.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        // The stage and its pool are gone.
                        Err(_) => return,
                    }
                });
            match thread {
                Ok(_) => spawned += 1,
                Err(e) => tracing::warn!(error = %e, "an envelope thread did not start"),
            }
        }
        Self {
            jobs: (spawned > 0).then_some(tx),
            panics,
        }
    }

    /// What counts the jobs that panicked, for [`guarded`] in a job.
    pub(crate) fn panics(&self) -> Counter {
        self.panics.clone()
    }

    /// Runs `work` on a thread of the pool, or here if it has none or is
    /// full; a panic in it is caught and logged.
    pub(crate) fn spawn(&self, work: impl FnOnce() + Send + 'static) {
        let panics = self.panics.clone();
        let job: Job = Box::new(move || {
            let _ = guarded(&panics, work);
        });
        match &self.jobs {
            Some(jobs) => match jobs.try_send(job) {
                Ok(()) => {}
                Err(mpsc::TrySendError::Full(job) | mpsc::TrySendError::Disconnected(job)) => {
                    job();
                }
            },
            None => job(),
        }
    }

    /// Runs `work` on a thread of the pool (or here, if it has none or is
    /// full); `None` if it panicked.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> impl std::future::Future<Output = Option<T>> {
        let (tx, rx) = oneshot::channel();
        // A panic drops `tx` unsent: the answer is `None`.
        self.spawn(move || {
            let _ = tx.send(work());
        });
        rx.map(Result::ok)
    }
}

/// `work`'s value, or `None` (logged, and counted in `panics`) if it
/// panicked: a defect met on one envelope must not take a thread of the
/// pool with it.
pub(crate) fn guarded<T>(panics: &Counter, work: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(value) => Some(value),
        Err(panic) => {
            panics.inc();
            let panic = murmur_core::supervise::message(&*panic);
            tracing::error!(%panic, "an envelope job panicked");
            None
        }
    }
}

/// How many threads the pool gets by default: one per core, at most four.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        actix_rt::System::new().block_on(future)
    }

    #[test]
    fn jobs_run_on_the_pool_and_a_panic_is_only_that_jobs() {
        block_on(async {
            let panics = Counter::default();
            let pool = Pool::new(2, panics.clone());
            let here = std::thread::current().id();
            let there = pool.run(move || std::thread::current().id()).await;
            assert!(there.is_some_and(|id| id != here));
            assert_eq!(pool.run(|| -> u8 { panic!("a defect") }).await, None);
            assert_eq!(panics.get(), 1, "counted");
            // Both threads still serve.
            let all: Vec<_> = (0..8u32).map(|n| pool.run(move || n * 2)).collect();
            let got: Vec<_> = futures::future::join_all(all).await;
            assert_eq!(got, (0..8).map(|n| Some(n * 2)).collect::<Vec<_>>());
        });
    }

    #[test]
    fn without_threads_a_job_runs_on_the_caller() {
        let pool = Pool::new(0, Counter::default());
        let here = std::thread::current().id();
        let there = block_on(pool.run(move || std::thread::current().id()));
        assert_eq!(there, Some(here));
    }
}
