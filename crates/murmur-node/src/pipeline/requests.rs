//! Message requests on the chat path: what a stranger's messages would
//! have caused (a receipt, joining the group it added this account to) is
//! held, bounded and in memory, until the user accepts it; then it happens.
//! Across a restart the receipts are not lost: when the user accepts an
//! account the crypto stage still lists as a request, its newest messages
//! in the durable inbox are acknowledged too. An invite to a group is
//! lost: the stranger's next one asks again.

use std::collections::{HashMap, HashSet};

use super::*;

/// Accounts whose requests are held at most; the oldest goes first.
const ACCOUNTS: usize = 1024;
/// Receipts, and group control messages, held per account at most.
const PER_ACCOUNT: usize = 64;

/// What is held for the accounts that wait to be accepted.
#[derive(Default)]
pub(super) struct Held {
    by_account: HashMap<AccountId, Waiting>,
    order: VecDeque<AccountId>,
    /// Accounts accepted while this node runs: an envelope the crypto
    /// stage opened as a request just before the user accepted its sender
    /// may reach the pipeline after [`Accepted`]; it is answered then.
    accepted: HashSet<AccountId>,
}

/// What one account's messages would have caused.
#[derive(Default)]
struct Waiting {
    receipts: Vec<MessageId>,
    /// A group control message (an invite to a group): from which device,
    /// and the plaintext.
    controls: Vec<(crypto::DeviceId, bytes::Bytes)>,
}

impl Held {
    /// Whether `account` was accepted since the crypto stage said it was
    /// not.
    pub(super) fn accepted_since(&self, account: AccountId) -> bool {
        self.accepted.contains(&account)
    }

    /// Whether anything is held for `account`.
    pub(super) fn holds(&self, account: AccountId) -> bool {
        self.by_account.contains_key(&account)
    }

    fn waiting(&mut self, account: AccountId) -> &mut Waiting {
        if !self.by_account.contains_key(&account) {
            if self.order.len() >= ACCOUNTS {
                if let Some(oldest) = self.order.pop_front() {
                    self.by_account.remove(&oldest);
                }
            }
            self.order.push_back(account);
        }
        self.by_account.entry(account).or_default()
    }

    /// A message of `account` that was not acknowledged.
    pub(super) fn receipt(&mut self, account: AccountId, id: MessageId) {
        let w = self.waiting(account);
        if w.receipts.len() < PER_ACCOUNT {
            w.receipts.push(id);
        }
    }

    /// A group control message of `account` that the membership stage
    /// refused because the account is not accepted.
    pub(super) fn control(
        &mut self,
        account: AccountId,
        device: crypto::DeviceId,
        message: bytes::Bytes,
    ) {
        let w = self.waiting(account);
        if w.controls.len() < PER_ACCOUNT {
            w.controls.push((device, message));
        }
    }

    fn take(&mut self, account: AccountId) -> Option<Waiting> {
        if self.accepted.len() >= ACCOUNTS {
            self.accepted.clear();
        }
        self.accepted.insert(account);
        self.order.retain(|a| *a != account);
        self.by_account.remove(&account)
    }
}

/// Group messages parked for a key or an invite that has come since go
/// through the lane again.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Unpark;

impl Handler<Unpark> for Pipeline {
    type Result = ();

    fn handle(&mut self, Unpark: Unpark, ctx: &mut Context<Self>) {
        let parked = self.chat.as_mut().map(|c| std::mem::take(&mut c.parked));
        for delivery in parked.into_iter().flatten() {
            self.queue_for_lane(delivery, ctx);
        }
    }
}

/// `account` was accepted: the receipts held for it go, and the groups it
/// added this account to are joined. `request`: the user accepted it
/// while the crypto stage listed it as a message request, so its messages
/// in the durable inbox are all unacknowledged requests (see the module's
/// doc); not set when a group introduced it, or it was accepted before.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Accepted {
    pub(crate) account: AccountId,
    pub(crate) request: bool,
}

impl Handler<Accepted> for Pipeline {
    type Result = ();

    fn handle(&mut self, accepted: Accepted, ctx: &mut Context<Self>) {
        self.release(accepted.account, accepted.request, ctx);
    }
}

impl Pipeline {
    /// What was held for `account`'s requests goes: it was accepted here
    /// or on another device of this account. With `from_inbox`, the
    /// receipts also go for its messages in the durable inbox, which a
    /// restart did not forget as it forgot what was held.
    pub(super) fn release(
        &mut self,
        account: AccountId,
        from_inbox: bool,
        ctx: &mut Context<Self>,
    ) {
        let mailbox = self.mailbox(ctx);
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        let held = chat.held.take(account);
        if held.is_none() && !from_inbox {
            return;
        }
        let mut waiting = held.unwrap_or_default();
        if from_inbox {
            // What came before a restart is in the durable inbox only;
            // what came since is held too, and goes once.
            let kept = chat
                .book
                .as_ref()
                .map(|book| book.kept_from(account, PER_ACCOUNT))
                .unwrap_or_default();
            let held: HashSet<MessageId> = waiting.receipts.iter().copied().collect();
            let mut receipts: Vec<MessageId> =
                kept.into_iter().filter(|id| !held.contains(id)).collect();
            receipts.append(&mut waiting.receipts);
            let over = receipts.len().saturating_sub(PER_ACCOUNT);
            waiting.receipts = receipts.split_off(over);
        }
        if !waiting.receipts.is_empty() {
            let publish = publish_sealed(
                chat.crypto.seal.clone(),
                crypto::Seal::new(account, chat::encode_receipt(&waiting.receipts)),
                chat.sharding.clone(),
                chat.outbox.clone(),
                mailbox.publisher(),
            );
            self.background(ctx, "receipts held for a message request", publish);
        }
        let Some(groups) = self.chat.as_ref().and_then(|c| c.groups.clone()) else {
            return;
        };
        if waiting.controls.is_empty() {
            return;
        }
        let join = async move {
            for (device, message) in waiting.controls {
                let control = groups::Control {
                    from: account,
                    device,
                    message,
                    request: false,
                };
                match groups.control.send(control).await? {
                    Ok(effects) => {
                        if let Some(outcome) = mailbox.ask(ApplyEffects(effects)).await? {
                            outcome?;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "held group control refused"),
                }
            }
            // Group messages that came before these keys open now.
            mailbox.ask(Unpark).await?;
            Ok::<_, Error>(())
        };
        self.background(ctx, "groups held for a message request", join);
    }
}
