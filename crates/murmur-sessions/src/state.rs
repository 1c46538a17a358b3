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
            fuse: supervise::Fuse::default(),
        };
        Ok(Supervisor::start(move |_| stage))
    }
    /// Persists `saves`, then answers `result`: durable before the answer,
    /// and the mailbox waits, so saves land in order.
    pub(crate) fn persist<T: 'static>(
        &self,
        saves: Records,
        result: T,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        self.persist_with(saves, None, result)
    }

    /// Persists `saves` and `beside` (a record outside the device's
    /// ledger) in one transaction, then answers `result`.
    pub(crate) fn persist_with<T: 'static>(
        &self,
        mut saves: Records,
        beside: Option<(String, Option<Vec<u8>>)>,
        result: T,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        if saves.is_empty() && beside.is_none() {
            return supervise::Reply::Now(Ok(result));
        }
        let undo = self.device.commit(&mut saves);
        saves.extend(beside);
        let save = self.storage.save_state.clone();
        let saved = async move {
            match save.send(storage::SaveState(saves)).await {
                Ok(Ok(())) => Ok(result),
                // Not saved: the storage stage restarted on it.
                Ok(Err(storage::Error::Restarted(p))) => Err(Error::Restarted(p)),
                Ok(Err(e)) => Err(state_error(e)),
                Err(e) => Err(state_error(e)),
            }
        };
        supervise::Reply::Wait(Box::pin(
            supervise::Guarded::new(Box::pin(saved.into_actor(self))).map(|outcome, act, ctx| {
                let outcome = outcome.unwrap_or_else(|p| Err(p.into()));
                if outcome.is_err() {
                    // Not saved: the vault's ledger goes back at once (a
                    // reload that fails too must not leave it ahead of
                    // storage), and the state in memory with the reload.
                    act.device.undo(undo);
                    act.reload(ctx);
                }
                outcome
            }),
        ))
    }
    /// Answers a guarded change: persisted first, or its error.
    pub(crate) fn respond<T: 'static>(
        &self,
        outcome: Result<Result<(T, Records), Error>, supervise::Panicked>,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        match outcome {
            Ok(Ok((result, saves))) => self.persist(saves, result),
            Ok(Err(e)) => supervise::Reply::Now(Err(e)),
            Err(p) => supervise::Reply::Now(Err(p.into())),
        }
    }
    /// Reads the persisted state back after a restart: what a panic left
    /// half-changed in memory is replaced by what was last saved.
    pub(crate) fn reload(&mut self, ctx: &mut Context<Self>) {
        let storage = self.storage.clone();
        ctx.wait(
            async move { list_state(&storage).await }
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
