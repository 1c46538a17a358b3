//! Sent 1:1 messages followed to their receipts: each of the recipient's
//! devices counted once, and no other account's receipt counted at all.

use super::*;

/// A sent 1:1 message, followed to its receipts.
pub(super) struct Tracked {
    state: Arc<watch::Sender<DeliveryState>>,
    /// The account it went to: only its devices acknowledge it.
    to: AccountId,
    /// The devices that did, each counted once.
    devices: Vec<crypto::DeviceId>,
}

impl Tracked {
    pub(super) fn new(state: Arc<watch::Sender<DeliveryState>>, to: AccountId) -> Self {
        Self {
            state,
            to,
            devices: Vec::new(),
        }
    }

    /// A receipt for it from `account`'s `device`. A device counts once,
    /// however often it sends one (again after its restart, or after a
    /// reset sent the message twice), and a receipt from any other
    /// account than the recipient's, which could know the id only from a
    /// leak, counts not at all; answers whether it counted.
    pub(super) fn acknowledged(&mut self, account: AccountId, device: crypto::DeviceId) -> bool {
        if account != self.to || self.devices.contains(&device) {
            return false;
        }
        self.devices.push(device);
        self.state.send_replace(DeliveryState::Acknowledged {
            devices: self.devices.len(),
        });
        true
    }
}
