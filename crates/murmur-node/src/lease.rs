//! Replicas: several processes on one database are one node, run by one at
//! a time. A process takes the database's lease before any stage loads its
//! state, and stands by while another holds it; the holder renews it every
//! third of its term. The persistence stage fences every write with it, so
//! a holder that lost the lease (paused past its term, cut off from the
//! database) writes nothing; it learns so at its next renewal and says so
//! through [`Node::lease_lost`](crate::Node::lease_lost).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use murmur_core::storage::{self, Acquire, Lease, Release};
use tokio::sync::watch;

use crate::Error;

/// The one lease of a node's database.
const NAME: &str = "node";

/// This process's tenure of the database's lease.
#[derive(Debug, Clone)]
pub(crate) struct Tenure {
    holder: String,
    storage: storage::Handle,
    /// Until when the lease is surely held, or who took it.
    state: watch::Receiver<State>,
    /// Given up: the renewals end.
    closed: Arc<AtomicBool>,
}

/// What this process knows of its lease.
#[derive(Debug, Clone)]
struct State {
    /// Until when it surely holds it, by this process's clock: two thirds
    /// of a term after it last asked with success. A process that was
    /// frozen for longer wakes past this, and hands nothing more to its
    /// application until a renewal says whether it still holds the lease.
    valid_until: Instant,
    /// Who took it, once it is lost.
    lost: Option<String>,
}

/// How long after asking successfully the lease is surely held: another
/// process may take it a whole term after the holder's last renewal, by
/// the database's clock.
fn surely_held(term: Duration) -> Duration {
    term * 2 / 3
}

/// A name for this process's run: what a standby logs as the holder.
fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "host".to_owned());
    format!(
        "{host}/{}/{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Takes the lease, waiting while another process holds it, and keeps it
/// renewed from then on.
pub(crate) async fn take(storage: &storage::Handle, term: Duration) -> Result<Tenure, Error> {
    let holder = holder_name();
    let ask = Acquire::new(NAME, holder.clone(), term);
    let mut told = false;
    let (epoch, asked) = loop {
        let asked = Instant::now();
        let answer = match storage.acquire.send(ask.clone()).await? {
            Ok(answer) => answer,
            // The holder froze mid-write (its transaction holds the lease
            // row until the server ends it), or the database is away.
            Err(e) => {
                tracing::warn!(error = %e, "the database's lease could not be asked for; asking again");
                tokio::time::sleep(term / 3).await;
                continue;
            }
        };
        match answer {
            Lease::Held { epoch } => break (epoch, asked),
            Lease::Taken {
                holder: other,
                remaining,
            } => {
                if !told {
                    tracing::info!(
                        holder = %other,
                        "standing by: another process runs this node; taking over when its lease lapses"
                    );
                    told = true;
                }
                // Asked again a little after it would lapse, and at least
                // every third of a term (the holder may hand it over).
                let wait = remaining.min(term / 3) + Duration::from_millis(50);
                tokio::time::sleep(wait).await;
            }
        }
    };
    tracing::info!(%holder, epoch, "holding the database's lease");
    let (state_tx, state) = watch::channel(State {
        valid_until: asked + surely_held(term),
        lost: None,
    });
    let tenure = Tenure {
        holder,
        storage: storage.clone(),
        state,
        closed: Arc::default(),
    };
    let renewing = tenure.clone();
    actix::spawn(async move { renewing.renew(ask, epoch, term, state_tx).await });
    Ok(tenure)
}

impl Tenure {
    /// Renews the lease every third of its term until it is lost or given up.
    async fn renew(self, ask: Acquire, epoch: u64, term: Duration, state: watch::Sender<State>) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(term / 3).await;
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let asked = Instant::now();
            let taken_by = match self.storage.acquire.send(ask.clone()).await {
                Ok(Ok(Lease::Held { epoch: now })) if now == epoch => {
                    renewed = asked;
                    state.send_modify(|s| s.valid_until = asked + surely_held(term));
                    continue;
                }
                // Taken and given back in between: what this process holds
                // in memory may be older than the database.
                Ok(Ok(Lease::Held { .. })) => "another process, in between".to_owned(),
                Ok(Ok(Lease::Taken { holder, .. })) => holder,
                Ok(Err(e)) if renewed.elapsed() < term => {
                    tracing::warn!(error = %e, "the lease was not renewed; trying again");
                    continue;
                }
                Ok(Err(e)) => format!("unknown: not renewed for a whole term ({e})"),
                // The node is gone.
                Err(_) => return,
            };
            tracing::error!(
                holder = %taken_by,
                "this process lost the database's lease: it writes nothing more; \
                 start it again to stand by"
            );
            state.send_modify(|s| s.lost = Some(taken_by));
            return;
        }
    }

    /// Waits until the lease is lost; answers who took it.
    pub(crate) async fn lost(&self) -> String {
        let mut state = self.state.clone();
        let taken = match state.wait_for(|s| s.lost.is_some()).await {
            Ok(s) => s.lost.clone().unwrap_or_default(),
            // The renewals ended without a loss (the node closed): never.
            Err(_) => return std::future::pending().await,
        };
        taken
    }

    /// Answers at once while the lease is surely held; past that (a
    /// process that was frozen), waits for the next renewal's word. Answers
    /// who holds it instead once it is lost or given up.
    pub(crate) async fn confirmed(&self) -> Result<(), String> {
        let mut state = self.state.clone();
        loop {
            {
                let s = state.borrow_and_update();
                if let Some(holder) = &s.lost {
                    return Err(holder.clone());
                }
                if Instant::now() < s.valid_until {
                    return Ok(());
                }
            }
            if state.changed().await.is_err() {
                return Err(format!("nobody: {} gave it up", self.holder));
            }
        }
    }

    /// Ends the renewals (the node is gone): the lease lapses.
    pub(crate) fn stop_renewing(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Gives the lease up, so that a standby takes over at once; this
    /// process writes nothing more.
    pub(crate) async fn release(&self) -> Result<(), Error> {
        self.stop_renewing();
        self.storage
            .release
            .send(Release::new(NAME, self.holder.clone()))
            .await??;
        tracing::info!(holder = %self.holder, "gave up the database's lease");
        Ok(())
    }
}
