//! The membership stage's handle: a recipient per message.

use actix::Recipient;

use super::*;

/// The membership stage as the rest of the node holds it.
#[derive(Clone)]
pub struct Handle {
    /// Where [`Create`] goes.
    pub create: Recipient<Create>,
    /// Where [`Change`] goes.
    pub change: Recipient<Change>,
    /// Where [`Post`] goes.
    pub post: Recipient<Post>,
    /// Where [`Open`] goes.
    pub open: Recipient<Open>,
    /// Where [`RequestKey`] goes.
    pub request_key: Recipient<RequestKey>,
    /// Where [`Control`] goes.
    pub control: Recipient<Control>,
    /// Where [`Info`] goes.
    pub info: Recipient<Info>,
    /// Where [`List`] goes.
    pub list: Recipient<List>,
    /// Where [`Topics`] goes.
    pub topics: Recipient<Topics>,
    /// Where [`CreateInvite`] goes.
    pub create_invite: Recipient<CreateInvite>,
    /// Where [`Join`] goes.
    pub join: Recipient<Join>,
    /// Where [`Requests`] goes.
    pub requests: Recipient<Requests>,
    /// Where [`Revoked`] goes.
    pub revoked: Recipient<Revoked>,
    /// Where [`Unhandled`] goes.
    pub unhandled: Recipient<Unhandled>,
    /// Where [`Handled`] goes.
    pub handled: Recipient<Handled>,
    /// Where [`InjectPanic`](crate::supervise::InjectPanic) goes (tests of
    /// supervision).
    pub inject_panic: Recipient<crate::supervise::InjectPanic>,
}

impl<A> From<actix::Addr<A>> for Handle
where
    A: actix::Actor<Context = actix::Context<A>>
        + actix::Handler<Create>
        + actix::Handler<Change>
        + actix::Handler<Post>
        + actix::Handler<Open>
        + actix::Handler<RequestKey>
        + actix::Handler<Control>
        + actix::Handler<Info>
        + actix::Handler<List>
        + actix::Handler<Topics>
        + actix::Handler<CreateInvite>
        + actix::Handler<Join>
        + actix::Handler<Requests>
        + actix::Handler<Revoked>
        + actix::Handler<Unhandled>
        + actix::Handler<Handled>
        + actix::Handler<crate::supervise::InjectPanic>,
{
    fn from(addr: actix::Addr<A>) -> Self {
        Self {
            create: addr.clone().recipient(),
            change: addr.clone().recipient(),
            post: addr.clone().recipient(),
            open: addr.clone().recipient(),
            request_key: addr.clone().recipient(),
            control: addr.clone().recipient(),
            info: addr.clone().recipient(),
            list: addr.clone().recipient(),
            topics: addr.clone().recipient(),
            create_invite: addr.clone().recipient(),
            join: addr.clone().recipient(),
            requests: addr.clone().recipient(),
            revoked: addr.clone().recipient(),
            unhandled: addr.clone().recipient(),
            handled: addr.clone().recipient(),
            inject_panic: addr.recipient(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("groups::Handle").finish_non_exhaustive()
    }
}
