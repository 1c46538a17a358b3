//! What the stage keeps in storage: each group's keys and log, sealed,
//! written before the answer that follows from them, a group of changes
//! at a time ([`murmur_core::commit`]).

use murmur_core::commit::{self, Written};
use murmur_crypto::Undo;

use super::*;

pub(crate) async fn list_state(storage: &storage::Handle) -> Result<Vec<(String, Vec<u8>)>, Error> {
    storage
        .list_state
        .send(storage::ListState(STATE.to_owned()))
        .await
        .map_err(state_error)?
        .map_err(state_error)
}

pub(crate) fn restarted() -> Error {
    Error::Restarted(supervise::Panicked(
        <Membership as supervise::Restartable>::NAME,
    ))
}

impl Membership {
    /// The sealed state entries of a group: its keys, and its log too when
    /// `log` (membership changed).
    fn save(&self, id: GroupId, log: bool) -> Vec<(String, Option<Vec<u8>>)> {
        let Some(g) = self.groups.get(&id) else {
            return Vec::new();
        };
        let keys = format!("{STATE}{id}/keys");
        let mut entries = vec![(keys.clone(), Some(self.vault.seal(&keys, &g.keys_bytes())))];
        if log {
            let name = format!("{STATE}{id}/log");
            entries.push((name.clone(), Some(self.vault.seal(&name, &g.log_bytes()))));
        }
        entries
    }

    /// Persists `group` (its log too, if `log`), then answers `result`; see
    /// [`Membership::persist_all`].
    pub(crate) fn persist<T: 'static>(
        &mut self,
        group: GroupId,
        log: bool,
        result: T,
        ctx: &mut Context<Self>,
    ) -> Later<Result<T, Error>> {
        self.persist_all(&[group], log, None, result, ctx)
    }

    /// Persists `groups` (and `beside`, a record outside the groups'
    /// ledger, in the same transaction), then answers `result`.
    ///
    /// Group commit: while one write is on its way, the mailbox goes on,
    /// and what the next requests change gathers into the next write,
    /// each changed chat group's state sealed once per write however many
    /// messages moved its chains. Writes land in order, so storage always
    /// holds a state the stage was in; one that is not written fails the
    /// requests gathered on top of it, and the groups are read back.
    pub(crate) fn persist_all<T: 'static>(
        &mut self,
        groups: &[GroupId],
        log: bool,
        beside: Option<(String, Option<Vec<u8>>)>,
        result: T,
        ctx: &mut Context<Self>,
    ) -> Later<Result<T, Error>> {
        for id in groups {
            *self.dirty.entry(*id).or_default() |= log;
        }
        let (written, start) = self.saving.add(Vec::new(), beside);
        if start {
            self.flush(ctx);
        }
        Box::pin(commit::answer(written, result, restarted))
    }

    /// Hands the next group to storage, if there is one, apart from the
    /// actor: the state of the groups its requests changed, as it is now.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(mut batch) = self.saving.take() else {
            return;
        };
        let changed: Vec<_> = std::mem::take(&mut self.dirty)
            .into_iter()
            .flat_map(|(id, log)| self.save(id, log))
            .collect();
        batch.records.extend(changed);
        let undo = self.vault.commit(&tip(), &mut batch.records);
        batch.spawn(
            self.storage.save_state.clone(),
            (Error::Restarted, Error::State),
            undo,
            ctx.address().recipient(),
        );
    }

    /// After a restart: the group being gathered goes (its changes with
    /// the groups in memory, read back once the group being written
    /// landed), and its requests hear so.
    pub(crate) fn forget_unwritten(&mut self) {
        self.saving.restarted(&restarted());
        self.dirty.clear();
    }

    /// Reads the groups back from storage after a restart or a failed
    /// write, once the group being written landed.
    pub(crate) fn reload(&mut self, ctx: &mut Context<Self>) {
        let storage = self.storage.clone();
        let landed = self.saving.landed();
        ctx.wait(
            async move {
                landed.await;
                list_state(&storage).await
            }
            .into_actor(self)
            .map(|entries, act, _| match entries.and_then(|e| act.load(e)) {
                Ok(()) => tracing::info!("membership stage reloaded its groups"),
                Err(e) => {
                    tracing::error!(error = %e, "groups not reloaded; keeping those in memory")
                }
            }),
        );
    }
}

impl Handler<Written<Error, Undo>> for Membership {
    type Result = ();

    fn handle(&mut self, written: Written<Error, Undo>, ctx: &mut Context<Self>) {
        match self.saving.written(written) {
            None => return,
            // The ledger back at once (a reload that fails too must not
            // leave it ahead of storage); the groups changed on top of the
            // lost write went with it, and come back with the reload.
            Some(Some(undo)) => {
                self.vault.undo(undo);
                self.dirty.clear();
                self.reload(ctx);
            }
            Some(None) => {}
        }
        self.flush(ctx);
    }
}
