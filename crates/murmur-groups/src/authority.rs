//! Which events of a log count, whatever parents their authors chose.
//!
//! An event's author picks its parents, and so where it sorts: a removed
//! admin can sign an event on a view of the log that ends before its
//! removal, and in `(clock, id)` order that event sorts before the removal,
//! where the author still held the right. So an event counts only if
//!
//! 1. its author held the right in the event's own causal past (the events
//!    it cites, directly or not, that count, folded in the group's order),
//!    and
//! 2. no event that counts and lowers its author (removes, bans, demotes or
//!    gives it another role, or its own leaving) is concurrent with it — one
//!    that neither cites it nor is cited by it — unless the author's new
//!    role would still allow it;
//!
//! and it then holds in the group's order, as before. An event the author
//! signed before it saw its own removal therefore stops counting when the
//! removal arrives, whatever clock and id the author chose: removal wins
//! over what the removed member did concurrently, as a power change wins in
//! Matrix's state resolution. Back-dating gains nothing, and neither does
//! grinding ids, since concurrency is a matter of who cites whom.
//!
//! Lowering another member needs a higher role than the target's, so the
//! checks of rule 2 climb the ranks towards the owner, whom nothing lowers.
//! Where two events would each need the other decided first (a cycle only
//! concurrent role changes by the owner's own devices can make), the one
//! met again while being decided counts for that inner decision; the order
//! of decision is the group's order, so every member holding the same
//! events decides the same.

use super::*;

/// Events of one log, by their position in the group's order.
struct Resolver<'a> {
    group: GroupId,
    events: Vec<(EventId, &'a Event)>,
    /// Each event's ancestors, as a bit set over positions.
    ancestors: Vec<Vec<u64>>,
    /// Positions of the events that lower each member.
    lowering: HashMap<MemberId, Vec<usize>>,
    verdicts: Vec<Verdict>,
    /// The state each event's causal past folds to, once asked.
    pasts: HashMap<usize, State>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Unknown,
    Deciding,
    Counts,
    Void,
}

/// The member an event lowers, if it lowers one.
fn lowered(event: &Event) -> Option<MemberId> {
    match &event.action {
        Action::Remove(m) | Action::Ban(m) | Action::Demote(m) | Action::SetRole(m, _) => Some(*m),
        Action::Leave => Some(event.author),
        _ => None,
    }
}

fn has(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

impl<'a> Resolver<'a> {
    fn new(group: GroupId, events: &'a BTreeMap<(u64, EventId), Event>) -> Self {
        let events: Vec<(EventId, &Event)> = events.iter().map(|((_, id), e)| (*id, e)).collect();
        let position: HashMap<EventId, usize> = events
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (*id, i))
            .collect();
        let words = events.len().div_ceil(64);
        let mut ancestors: Vec<Vec<u64>> = Vec::with_capacity(events.len());
        let mut lowering: HashMap<MemberId, Vec<usize>> = HashMap::new();
        for (i, (_, e)) in events.iter().enumerate() {
            // Parents sort before their children: their sets are complete.
            let mut bits = vec![0u64; words];
            for p in e.parents.iter().filter_map(|p| position.get(p)) {
                for (w, a) in bits.iter_mut().zip(&ancestors[*p]) {
                    *w |= a;
                }
                bits[p / 64] |= 1 << (p % 64);
            }
            ancestors.push(bits);
            if let Some(m) = lowered(e) {
                lowering.entry(m).or_default().push(i);
            }
        }
        let n = events.len();
        Self {
            group,
            events,
            ancestors,
            lowering,
            verdicts: vec![Verdict::Unknown; n],
            pasts: HashMap::new(),
        }
    }

    fn concurrent(&self, a: usize, b: usize) -> bool {
        a != b && !has(&self.ancestors[a], b) && !has(&self.ancestors[b], a)
    }

    /// Whether the event at `i` counts (rules 1 and 2).
    fn counts(&mut self, i: usize) -> bool {
        match self.verdicts[i] {
            Verdict::Counts | Verdict::Deciding => return true,
            Verdict::Void => return false,
            Verdict::Unknown => {}
        }
        self.verdicts[i] = Verdict::Deciding;
        let counts = self.authorized(i) && !self.lowered_concurrently(i);
        self.verdicts[i] = if counts {
            Verdict::Counts
        } else {
            Verdict::Void
        };
        counts
    }

    /// The state the event at `i`'s causal past folds to.
    fn past(&mut self, i: usize) -> State {
        if let Some(state) = self.pasts.get(&i) {
            return state.clone();
        }
        let mut state = State::default();
        for j in 0..i {
            if has(&self.ancestors[i], j) && self.counts(j) {
                let (id, e) = self.events[j];
                state.apply(e, self.group, id);
            }
        }
        self.pasts.insert(i, state.clone());
        state
    }

    /// Rule 1: the author held the right in the event's causal past.
    fn authorized(&mut self, i: usize) -> bool {
        let (id, e) = self.events[i];
        self.past(i).apply(e, self.group, id)
    }

    /// Rule 2: an event that counts and lowers the author, concurrent with
    /// the event at `i`, leaves the author without the right.
    fn lowered_concurrently(&mut self, i: usize) -> bool {
        let (id, e) = self.events[i];
        let candidates: Vec<usize> = self
            .lowering
            .get(&e.author)
            .into_iter()
            .flatten()
            .copied()
            .filter(|r| self.concurrent(i, *r))
            .collect();
        for r in candidates {
            if !self.counts(r) {
                continue;
            }
            let (r_id, r_event) = self.events[r];
            let mut after = self.past(r);
            after.apply(r_event, self.group, r_id);
            let mut without = self.past(i);
            match after.role(&e.author) {
                Some(role) => {
                    without.members.insert(e.author, role);
                }
                None => {
                    without.members.remove(&e.author);
                }
            }
            if !without.apply(e, self.group, id) {
                return true;
            }
        }
        false
    }
}

/// The state `events` (a whole log, in the group's order) fold to: each
/// event that counts applied in order, every other one listed as rejected.
pub(crate) fn resolve(group: GroupId, events: &BTreeMap<(u64, EventId), Event>) -> State {
    let mut resolver = Resolver::new(group, events);
    let mut state = State::default();
    for i in 0..resolver.events.len() {
        let (id, e) = resolver.events[i];
        if !(resolver.counts(i) && state.apply(e, group, id)) {
            state.rejected.insert(id);
        }
    }
    state
}
