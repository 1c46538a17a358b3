//! How callers publish through the pipeline, and who drives a publish the
//! pipeline hands on; how work beside its mailbox reaches it.

use super::*;

/// Where envelopes are published through: the pipeline, and who drives
/// each publish once the pipeline handed it on.
#[derive(Clone)]
pub(crate) struct Publisher {
    pub(crate) addr: Addr<Pipeline>,
    /// The caller is work beside the mailbox, which drives its publishes
    /// itself. Handed to that same bounded runner instead, each would wait
    /// for a slot that the work waiting for it may hold: with every slot
    /// so held (a receipt to each of 256 senders at once), none would end.
    pub(crate) beside: bool,
}

impl Publisher {
    /// For a caller that awaits the publish (an application's send): the
    /// pipeline runs it beside its mailbox, so that it completes even if
    /// the caller stops waiting.
    pub(crate) fn caller(addr: Addr<Pipeline>) -> Self {
        Self {
            addr,
            beside: false,
        }
    }
}

/// The pipeline's mailbox as background work reaches it (see
/// [`Pipeline::mailbox`]).
#[derive(Clone)]
pub(crate) struct Mailbox {
    pub(super) addr: Addr<Pipeline>,
    /// Whether the work may wait for the mailbox's answers.
    pub(super) wait: bool,
}

impl Mailbox {
    /// For work nobody in the mailbox waits for: it may always wait.
    pub(crate) fn waiting(addr: Addr<Pipeline>) -> Self {
        Self { addr, wait: true }
    }

    /// The pipeline to publish through, if the work may wait for it. The
    /// work drives each publish itself ([`Publisher`]).
    pub(crate) fn publisher(&self) -> Option<Publisher> {
        self.wait.then(|| Publisher {
            addr: self.addr.clone(),
            beside: true,
        })
    }

    /// Hands `msg` to the pipeline: waiting for room and for the answer if
    /// the work may, else only if there is room now (`None` then).
    pub(crate) async fn ask<M>(&self, msg: M) -> Result<Option<M::Result>, Error>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        Pipeline: Handler<M>,
    {
        if self.wait {
            return Ok(Some(self.addr.send(msg).await?));
        }
        self.addr
            .try_send(msg)
            .map(|()| None)
            .map_err(|_| Error::Busy("the pipeline's mailbox is full"))
    }
}

/// Publishes through `pipeline`; answers once the message is durable:
/// taken by the network, or else in the outbox.
pub(crate) async fn publish(
    pipeline: &Addr<Pipeline>,
    outgoing: Outgoing,
) -> Result<crate::Publication, Error> {
    outbound(&Publisher::caller(pipeline.clone()), outgoing, false).await
}

/// Publishes through `pipeline`; answers once the message is in the
/// outbox, whether or not the network took it. Chat envelopes go so: a
/// process that dies before the bytes left publishes the envelope again at
/// start, and a bot that committed its position after a reply cannot lose
/// the reply. A raw publish answers as soon as the network took it, which
/// is as fast as the relay allows; its guarantee is its acknowledgement.
pub(crate) async fn publish_durably(
    pipeline: &Publisher,
    outgoing: Outgoing,
) -> Result<crate::Publication, Error> {
    outbound(pipeline, outgoing, true).await
}

async fn outbound(
    pipeline: &Publisher,
    outgoing: Outgoing,
    durably: bool,
) -> Result<crate::Publication, Error> {
    let (addr, beside) = (&pipeline.addr, pipeline.beside);
    let outbound = Outbound {
        outgoing,
        durably,
        beside,
    };
    addr.send(outbound).await??.await
}
