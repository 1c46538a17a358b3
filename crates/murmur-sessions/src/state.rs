//! What the stage keeps in storage: reading it at start and after a
//! restart, and saving each change before the answer.

use super::*;

pub(crate) async fn list_state(storage: &storage::Handle) -> Result<Vec<(String, Vec<u8>)>, Error> {
    storage
        .list_state
        .send(storage::ListState(device::PREFIX.to_owned()))
        .await
        .map_err(state_error)?
        .map_err(state_error)
}

impl Crypto {
    /// Loads the stage's state (creating an account and a device on first
    /// start) and starts it under a supervisor.
    pub async fn start(
        storage: storage::Handle,
        node_secret: &[u8],
        settings: &Settings,
        metrics: Metrics,
    ) -> Result<Addr<Self>, Error> {
        let vault = Vault::new(node_secret);
        let records = list_state(&storage).await?;
        let restored =
            Device::restore(vault, settings.limits(), records).map_err(contract_error)?;
        let mut device = match restored {
            Some(device) => device,
            None => {
                let (device, mut records) =
                    Device::create(Vault::new(node_secret), settings.limits(), now());
                let _ = device.commit(&mut records);
                storage
                    .save_state
                    .send(storage::SaveState(records))
                    .await
                    .map_err(state_error)?
                    .map_err(state_error)?;
                device
            }
        };
        device.set_policy(settings.policy);
        let stage = Self {
            device,
            journal: Vault::new(node_secret),
            storage,
            partitions: settings.partitions.max(1),
            metrics,
            reload: false,
            saving: Saving::default(),
            fuse: supervise::Fuse::default(),
        };
        Ok(Supervisor::start(move |_| stage))
    }
    /// Persists `saves`, then answers `result`; see [`Crypto::persist_with`].
    pub(crate) fn persist<T: 'static>(
        &mut self,
        saves: Records,
        result: T,
        ctx: &mut Context<Self>,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        self.persist_with(saves, None, result, ctx)
    }

    /// Persists `saves` and `beside` (a record outside the device's
    /// ledger), then answers `result`: durable before the answer.
    ///
    /// Changes are written a group at a time (group commit): while one
    /// group is being written, the mailbox goes on, and what the next
    /// requests change gathers into the next group, written as one
    /// transaction once the first is done. Groups land in order, so
    /// storage always holds a state the device was in. A group that is
    /// not written fails its requests and the next group's (made on top of
    /// it), and the state in memory is read back from storage.
    pub(crate) fn persist_with<T: 'static>(
        &mut self,
        saves: Records,
        beside: Option<(String, Option<Vec<u8>>)>,
        result: T,
        ctx: &mut Context<Self>,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        if saves.is_empty() && beside.is_none() {
            return supervise::Reply::Now(Ok(result));
        }
        self.saving.records.extend(saves);
        self.saving.beside.extend(beside);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.saving.waiters.push(tx);
        if !self.saving.busy {
            self.flush(ctx);
        }
        // Detached: a request whose group was handed to storage hears how
        // it went even if this stage restarts meanwhile.
        supervise::Reply::Detached(Box::pin(async move {
            match rx.await {
                Ok(Ok(())) => Ok(result),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(Error::Restarted(supervise::Panicked(
                    <Self as supervise::Restartable>::NAME,
                ))),
            }
        }))
    }

    /// Hands the next group to storage, if there is one.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.saving.waiters.is_empty() {
            self.saving.busy = false;
            return;
        }
        self.saving.busy = true;
        let mut records = std::mem::take(&mut self.saving.records);
        let waiters = std::mem::take(&mut self.saving.waiters);
        let undo = self.device.commit(&mut records);
        // Outside the device's ledger: added after its tip.
        records.append(&mut self.saving.beside);
        let save = self.storage.save_state.clone();
        let writing = self.saving.writing.clone();
        let epoch = self.saving.epoch;
        let me = ctx.address();
        // Apart from the actor, so that a restart meanwhile neither drops
        // the answers nor reads the state back before the write landed
        // (the reload waits for `writing`).
        actix::spawn(async move {
            let _writing = writing.acquire_owned().await;
            let outcome = match save.send(storage::SaveState(records)).await {
                Ok(Ok(())) => Ok(()),
                // Not saved: the storage stage restarted on it.
                Ok(Err(storage::Error::Restarted(p))) => Err(Error::Restarted(p)),
                Ok(Err(e)) => Err(state_error(e)),
                Err(e) => Err(state_error(e)),
            };
            for waiter in waiters {
                let _ = waiter.send(outcome.clone());
            }
            me.do_send(Written {
                epoch,
                failed: outcome.err().map(|e| (e, undo)),
            });
        });
    }

    /// Answers a guarded change: persisted first, or its error.
    pub(crate) fn respond<T: 'static>(
        &mut self,
        outcome: Result<Result<(T, Records), Error>, supervise::Panicked>,
        ctx: &mut Context<Self>,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        match outcome {
            Ok(Ok((result, saves))) => self.persist(saves, result, ctx),
            Ok(Err(e)) => supervise::Reply::Now(Err(e)),
            Err(p) => supervise::Reply::Now(Err(p.into())),
        }
    }

    /// After a restart: the group being gathered goes (its changes with
    /// the state in memory, read back from storage once the group being
    /// written landed), and its requests hear so.
    pub(crate) fn forget_unwritten(&mut self) {
        self.saving.epoch += 1;
        self.saving.busy = false;
        self.saving.records.clear();
        self.saving.beside.clear();
        for waiter in self.saving.waiters.drain(..) {
            let _ = waiter.send(Err(Error::Restarted(supervise::Panicked(
                <Self as supervise::Restartable>::NAME,
            ))));
        }
    }

    /// Reads the persisted state back after a restart: what a panic left
    /// half-changed in memory is replaced by what was last saved.
    pub(crate) fn reload(&mut self, ctx: &mut Context<Self>) {
        let storage = self.storage.clone();
        let writing = self.saving.writing.clone();
        ctx.wait(
            async move {
                // A group handed to storage before the restart lands first.
                let _writing = writing.acquire_owned().await;
                list_state(&storage).await
            }
            .into_actor(self)
            .map(|records, act, _| {
                match records.and_then(|r| act.device.reload(r).map_err(contract_error)) {
                    Ok(()) => tracing::info!("crypto stage reloaded its state"),
                    Err(e) => tracing::error!(error = %e, "crypto state not reloaded; keeping the state in memory"),
                }
            }),
        );
    }
}

/// The crypto stage's group commit: at most one group of changes is being
/// written; the next gathers meanwhile.
pub(crate) struct Saving {
    /// One permit, held while a group is being written.
    writing: std::sync::Arc<tokio::sync::Semaphore>,
    /// Whether a group is being written.
    busy: bool,
    /// The next group's records, in the order the changes were made.
    records: Records,
    /// The next group's records outside the device's ledger (kept
    /// plaintexts).
    beside: Records,
    /// Who waits for the next group.
    waiters: Vec<tokio::sync::oneshot::Sender<Result<(), Error>>>,
    /// Counts restarts: a write that finishes after one does not move the
    /// restarted stage's groups on.
    epoch: u64,
}

impl Default for Saving {
    fn default() -> Self {
        Self {
            writing: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
            busy: false,
            records: Records::new(),
            beside: Records::new(),
            waiters: Vec::new(),
            epoch: 0,
        }
    }
}

/// A group was written, or was not.
#[derive(Message)]
#[rtype(result = "()")]
struct Written {
    epoch: u64,
    failed: Option<(Error, murmur_crypto::vault::Undo)>,
}

impl Handler<Written> for Crypto {
    type Result = ();

    fn handle(&mut self, Written { epoch, failed }: Written, ctx: &mut Context<Self>) {
        if epoch != self.saving.epoch {
            return;
        }
        if let Some((e, undo)) = failed {
            // The vault's ledger goes back at once (a reload that fails
            // too must not leave it ahead of storage); the next group was
            // made on top of the lost one and goes with it.
            self.device.undo(undo);
            self.saving.records.clear();
            self.saving.beside.clear();
            for waiter in self.saving.waiters.drain(..) {
                let _ = waiter.send(Err(e.clone()));
            }
            self.reload(ctx);
        }
        self.flush(ctx);
    }
}
