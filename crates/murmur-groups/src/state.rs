//! What a group is, folded from its log: members and roles, bans, channels,
//! pins and deletions, the join mode and invites, and the rights each role
//! holds over them.

use super::*;

/// What the log says the group is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The group's name.
    pub name: String,
    /// Who created it.
    pub creator: Option<MemberId>,
    /// Members and their roles.
    pub members: BTreeMap<MemberId, Role>,
    /// Events in the log that did not hold when they were applied.
    pub rejected: BTreeSet<EventId>,
    /// Accounts kept out.
    pub banned: BTreeSet<MemberId>,
    /// The role of whoever set each ban: only that role or a higher one
    /// lifts it.
    pub ban_rank: BTreeMap<MemberId, Role>,
    /// Open channels.
    pub channels: BTreeSet<String>,
    /// Pinned messages.
    pub pinned: BTreeSet<[u8; 16]>,
    /// Deleted messages.
    pub deleted: BTreeSet<[u8; 16]>,
    /// How accounts join.
    pub join_mode: JoinMode,
    /// SHA-256 of the secrets of the invites registered, with the admin
    /// who registered each: an invite admits only while that member is an
    /// admin.
    pub invites: BTreeMap<[u8; 32], MemberId>,
}

impl State {
    /// A member's role, if it is a member.
    pub fn role(&self, member: &MemberId) -> Option<Role> {
        self.members.get(member).copied()
    }

    /// Whether `author` may act on `target` (remove, ban, set a role):
    /// owners and admins on anyone below admin, and admins on admins only
    /// if they are the owner; moderators on members (and non-members).
    pub(crate) fn outranks(&self, author: &MemberId, target: &MemberId) -> bool {
        let (Some(a), t) = (self.role(author), self.role(target).unwrap_or(Role::Member)) else {
            return false;
        };
        author != target
            && t != Role::Owner
            && match a {
                Role::Owner => true,
                Role::Admin => t > Role::Admin,
                Role::Moderator => t == Role::Member,
                Role::Member => false,
            }
    }

    /// Applies one event in order; false if it does not hold.
    pub(crate) fn apply(&mut self, e: &Event, group: GroupId, id: EventId) -> bool {
        let author = e.author;
        let role = self.role(&author);
        let admin = role.is_some_and(Role::is_admin);
        let owner = role == Some(Role::Owner);
        let moderates = role.is_some_and(Role::moderates);
        match &e.action {
            Action::Create { name } if id == group && self.creator.is_none() => {
                self.creator = Some(author);
                self.name.clone_from(name);
                self.members.insert(author, Role::Owner);
            }
            Action::Add(m)
                if admin && !self.members.contains_key(m) && !self.banned.contains(m) =>
            {
                self.members.insert(*m, Role::Member);
            }
            Action::Remove(m) if self.members.contains_key(m) && self.outranks(&author, m) => {
                self.members.remove(m);
            }
            Action::Leave if self.members.contains_key(&author) => {
                self.members.remove(&author);
            }
            // Only the owner makes and unmakes admins.
            Action::Promote(m) if owner && self.role(m) == Some(Role::Member) => {
                self.members.insert(*m, Role::Admin);
            }
            Action::Demote(m) if owner && self.role(m) == Some(Role::Admin) => {
                self.members.insert(*m, Role::Member);
            }
            Action::SetRole(m, r)
                if *r != Role::Owner
                    && self.members.contains_key(m)
                    && self.outranks(&author, m)
                    && (role == Some(Role::Owner) || *r > Role::Admin) =>
            {
                self.members.insert(*m, *r);
            }
            Action::Ban(m)
                if !self.banned.contains(m) && self.outranks(&author, m) && moderates =>
            {
                self.members.remove(m);
                self.banned.insert(*m);
                if let Some(role) = role {
                    self.ban_rank.insert(*m, role);
                }
            }
            // A moderator does not lift a ban an admin or the owner set.
            Action::Unban(m)
                if moderates
                    && self.banned.contains(m)
                    && role <= self.ban_rank.get(m).copied().or(Some(Role::Member)) =>
            {
                self.banned.remove(m);
                self.ban_rank.remove(m);
            }
            Action::Channel(name) if admin && !name.is_empty() => {
                return self.channels.insert(name.clone());
            }
            Action::DropChannel(name) if admin => return self.channels.remove(name),
            Action::Pin(m) if moderates => return self.pinned.insert(*m),
            Action::Unpin(m) if moderates => return self.pinned.remove(m),
            Action::Delete(m) if moderates => {
                self.pinned.remove(m);
                return self.deleted.insert(*m);
            }
            Action::JoinMode(mode) if admin => self.join_mode = *mode,
            Action::Invite(h) if admin && !self.invites.contains_key(h) => {
                self.invites.insert(*h, author);
            }
            Action::RevokeInvite(h) if admin => return self.invites.remove(h).is_some(),
            Action::Rename(name) if admin => self.name.clone_from(name),
            _ => return false,
        }
        true
    }
}
