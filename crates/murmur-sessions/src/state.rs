//! What the stage keeps in storage: reading it at start and after a
//! restart, and saving each change before the answer.

use murmur_core::commit::{self, Written};
use murmur_crypto::Undo;

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
        let pool = pool::Pool::new(settings.threads, metrics.envelope_panics.clone());
        let stage = Self {
            device,
            journal: Vault::new(node_secret),
            storage,
            partitions: settings.partitions.max(1),
            metrics,
            reload: false,
            saving: Default::default(),
            pool,
            opening: Default::default(),
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
        match self.persisted(saves, beside, ctx) {
            None => supervise::Reply::Now(Ok(result)),
            // Detached: a request whose group was handed to storage hears
            // how it went even if this stage restarts meanwhile.
            Some(written) => {
                supervise::Reply::Detached(Box::pin(async move { written.await.map(|()| result) }))
            }
        }
    }

    /// Hands `saves` and `beside` to the group being gathered: how their
    /// group's write went, apart from the actor, or `None` if there is
    /// nothing to write.
    pub(crate) fn persisted(
        &mut self,
        saves: Records,
        beside: Option<(String, Option<Vec<u8>>)>,
        ctx: &mut Context<Self>,
    ) -> Option<supervise::Later<Result<(), Error>>> {
        if saves.is_empty() && beside.is_none() {
            return None;
        }
        let (written, start) = self.saving.add(saves, beside);
        if start {
            self.flush(ctx);
        }
        Some(Box::pin(commit::answer(written, (), restarted)))
    }

    /// Hands the next group to storage, if there is one, apart from the
    /// actor ([`murmur_core::commit`]).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(mut batch) = self.saving.take() else {
            return;
        };
        let undo = self.device.commit(&mut batch.records);
        batch.spawn(
            self.storage.save_state.clone(),
            (Error::Restarted, Error::State),
            undo,
            ctx.address().recipient(),
        );
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
        self.saving.restarted(&restarted());
    }

    /// Reads the persisted state back after a restart: what a panic left
    /// half-changed in memory is replaced by what was last saved.
    pub(crate) fn reload(&mut self, ctx: &mut Context<Self>) {
        let storage = self.storage.clone();
        let landed = self.saving.landed();
        ctx.wait(
            async move {
                // A group handed to storage before the restart lands first.
                landed.await;
                list_state(&storage).await
            }
            .into_actor(self)
            .map(|records, act, ctx| {
                match records.and_then(|r| act.device.reload(r).map_err(contract_error)) {
                    Ok(()) => tracing::info!("crypto stage reloaded its state"),
                    Err(e) => tracing::error!(error = %e, "crypto state not reloaded; keeping the state in memory"),
                }
                // Envelopes opened before the restart take their steps now.
                act.step_due(ctx);
            }),
        );
    }
}

pub(crate) fn restarted() -> Error {
    Error::Restarted(supervise::Panicked(
        <Crypto as supervise::Restartable>::NAME,
    ))
}

impl Handler<Written<Error, Undo>> for Crypto {
    type Result = ();

    fn handle(&mut self, written: Written<Error, Undo>, ctx: &mut Context<Self>) {
        if let Some(undo) = self.saving.written(written).flatten() {
            // The vault's ledger goes back at once (a reload that fails
            // too must not leave it ahead of storage); the next group was
            // made on top of the lost one and went with it.
            self.device.undo(undo);
            self.reload(ctx);
        }
        self.flush(ctx);
    }
}
