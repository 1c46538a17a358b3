//! The log of a group's signed membership events: inserted in any
//! order, applied in one order every member agrees on, folded into the
//! group's state.

use super::*;

/// One member's copy of a group's log.
#[derive(Debug, Clone)]
pub struct Log {
    group: GroupId,
    /// Applied events in the group's order.
    events: BTreeMap<(u64, EventId), Event>,
    clocks: HashMap<EventId, u64>,
    /// Events none of the others cite.
    heads: BTreeSet<EventId>,
    /// Events waiting for parents, by id, and in the order they came.
    pending: HashMap<EventId, Event>,
    arrivals: VecDeque<EventId>,
    /// The applied events folded in order: kept, since every message
    /// opened asks for it.
    state: State,
    /// Authors who signed two events neither of which cites the other: an
    /// honest author builds each event on its own last one, so this is an
    /// author showing different histories to different members.
    forks: BTreeSet<MemberId>,
}

impl Log {
    /// An empty log for `group` (a joining member's, before events arrive).
    pub fn new(group: GroupId) -> Self {
        Self {
            group,
            events: BTreeMap::new(),
            clocks: HashMap::new(),
            heads: BTreeSet::new(),
            pending: HashMap::new(),
            arrivals: VecDeque::new(),
            state: State::default(),
            forks: BTreeSet::new(),
        }
    }

    /// Creates a group; answers its log and the `Create` event to send.
    pub fn create(key: &SigningKey, name: &str) -> (Self, Event) {
        let unsigned = Unsigned::create(key.verifying_key().into(), name);
        let signature = key.sign(&unsigned.signed_bytes()).to_bytes();
        let create = unsigned.sign(signature);
        let log = Self::from_create(create.clone()).expect("a fresh create event is valid");
        (log, create)
    }

    /// The log of the group a signed `Create` event starts.
    pub fn from_create(create: Event) -> Result<Self, InsertError> {
        let mut log = Self::new(create.id());
        log.insert(create)?;
        Ok(log)
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Signs `action` on top of everything this log has applied, inserts it,
    /// and answers it to send to the others. Whether it holds is for
    /// [`Log::state`] to say, as for anyone's event.
    pub fn author(&mut self, key: &SigningKey, action: Action) -> Result<Event, InsertError> {
        let unsigned = self.prepare(key.verifying_key().into(), action);
        let signature = key.sign(&unsigned.signed_bytes()).to_bytes();
        let event = unsigned.sign(signature);
        self.insert(event.clone())?;
        Ok(event)
    }

    /// `action` by `author` on top of everything this log has applied, to
    /// be signed and then inserted.
    pub fn prepare(&self, author: MemberId, action: Action) -> Unsigned {
        let parents: Vec<EventId> = self.heads.iter().copied().collect();
        let clock = parents
            .iter()
            .filter_map(|p| self.clocks.get(p))
            .max()
            .map_or(1, |c| c + 1);
        Unsigned(Event {
            group: self.group,
            author,
            clock,
            parents,
            action,
            signature: [0; 64],
        })
    }

    /// Takes an event from anyone, in any order.
    pub fn insert(&mut self, event: Event) -> Result<Inserted, InsertError> {
        let id = event.id();
        let is_create = matches!(event.action, Action::Create { .. });
        if is_create {
            if id != self.group || !event.parents.is_empty() || event.clock != 1 {
                return Err(InsertError::WrongGroup);
            }
        } else if event.group != self.group {
            return Err(InsertError::WrongGroup);
        }
        if let Action::Create { name }
        | Action::Rename(name)
        | Action::Channel(name)
        | Action::DropChannel(name) = &event.action
        {
            if name.len() > MAX_NAME {
                return Err(InsertError::NameTooLong);
            }
        }
        let distinct: BTreeSet<_> = event.parents.iter().collect();
        if event.parents.len() > MAX_PARENTS
            || distinct.len() != event.parents.len()
            || (!is_create && event.parents.is_empty())
        {
            return Err(InsertError::BadParents);
        }
        if self.clocks.contains_key(&id) || self.pending.contains_key(&id) {
            return Err(InsertError::Duplicate);
        }
        if !event.verify() {
            return Err(InsertError::BadSignature);
        }
        if event.parents.iter().any(|p| !self.clocks.contains_key(p)) {
            self.wait(id, event);
            return Ok(Inserted::Pending);
        }
        self.apply(id, event)?;
        // Waiting events this one completes, and those they complete.
        loop {
            let ready: Vec<EventId> = self
                .pending
                .iter()
                .filter(|(_, e)| e.parents.iter().all(|p| self.clocks.contains_key(p)))
                .map(|(id, _)| *id)
                .collect();
            if ready.is_empty() {
                break;
            }
            for id in ready {
                if let Some(e) = self.pending.remove(&id) {
                    self.arrivals.retain(|a| *a != id);
                    // An inconsistent clock, or a stranger's event, is
                    // dropped now its parents are known.
                    let _ = self.apply(id, e);
                }
            }
        }
        Ok(Inserted::Applied)
    }

    /// Keeps `event` until its parents come. Bounded per author and in
    /// all: past either bound the oldest waiting event of the author with
    /// the most waiting goes, so a flood evicts its own events first.
    fn wait(&mut self, id: EventId, event: Event) {
        let author = event.author;
        let mut per_author: HashMap<MemberId, usize> = HashMap::new();
        for e in self.pending.values() {
            *per_author.entry(e.author).or_default() += 1;
        }
        let evict_from = if per_author.get(&author).copied().unwrap_or(0) >= MAX_PENDING_PER_AUTHOR
        {
            Some(author)
        } else if self.pending.len() >= MAX_PENDING {
            per_author
                .iter()
                .max_by_key(|(m, n)| (**n, **m))
                .map(|(m, _)| *m)
        } else {
            None
        };
        if let Some(victim) = evict_from {
            let oldest = self
                .arrivals
                .iter()
                .position(|a| self.pending.get(a).is_some_and(|e| e.author == victim));
            if let Some(i) = oldest.and_then(|i| self.arrivals.remove(i)) {
                self.pending.remove(&i);
            }
        }
        self.pending.insert(id, event);
        self.arrivals.push_back(id);
    }

    fn apply(&mut self, id: EventId, event: Event) -> Result<(), InsertError> {
        let expected = event
            .parents
            .iter()
            .filter_map(|p| self.clocks.get(p))
            .max()
            .map_or(1, |c| c + 1);
        if event.clock != expected {
            return Err(InsertError::BadParents);
        }
        // The usual case: the event cites every head, so it follows every
        // event of the log, is concurrent with none, and changes no other
        // event's standing; it holds if it holds on the state as it is.
        let follows_all = event.parents.len() == self.heads.len()
            && event.parents.iter().all(|p| self.heads.contains(p));
        // A member now, under an event that follows them all, was added in
        // its past: no walk through the log for the usual case.
        let admitted = matches!(event.action, Action::Create { .. })
            || (follows_all && self.state.members.contains_key(&event.author))
            || self.admitted_before(&event);
        if !admitted {
            return Err(InsertError::NotMember);
        }
        if !follows_all {
            // An event that cites every head follows all the author's
            // others; one that does not must still follow each of them.
            let past = self.past(&event.parents);
            if self
                .events
                .iter()
                .any(|((_, other), e)| e.author == event.author && !past.contains(other))
            {
                self.forks.insert(event.author);
            }
        }
        for p in &event.parents {
            self.heads.remove(p);
        }
        self.heads.insert(id);
        self.clocks.insert(id, event.clock);
        let key = (event.clock, id);
        self.events.insert(key, event);
        if follows_all {
            let event = &self.events[&key];
            if !self.state.apply(event, self.group, id) {
                self.state.rejected.insert(id);
            }
        } else {
            self.state = authority::resolve(self.group, &self.events);
        }
        Ok(())
    }

    /// Whether `event`'s own causal past creates the group by its author or
    /// adds its author: an account never added writes nothing into the
    /// log, not even a rejected event. A function of the event alone, so
    /// that every member keeps the same events whatever order they came in.
    fn admitted_before(&self, event: &Event) -> bool {
        let mut seen: BTreeSet<EventId> = BTreeSet::new();
        let mut next: Vec<EventId> = event.parents.clone();
        while let Some(id) = next.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(e) = self
                .clocks
                .get(&id)
                .and_then(|c| self.events.get(&(*c, id)))
            else {
                continue;
            };
            match &e.action {
                Action::Add(m) if *m == event.author => return true,
                Action::Create { .. } if e.author == event.author => return true,
                _ => {}
            }
            next.extend(e.parents.iter().copied());
        }
        false
    }

    /// Every applied event `parents` cite, directly or not, and themselves.
    fn past(&self, parents: &[EventId]) -> BTreeSet<EventId> {
        let mut seen = BTreeSet::new();
        let mut next = parents.to_vec();
        while let Some(id) = next.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(e) = self
                .clocks
                .get(&id)
                .and_then(|c| self.events.get(&(*c, id)))
            {
                next.extend(e.parents.iter().copied());
            }
        }
        seen
    }

    /// Members caught signing two events neither of which cites the other
    /// (an admin showing different members different histories).
    pub fn equivocators(&self) -> &BTreeSet<MemberId> {
        &self.forks
    }

    /// The events no other cites: what a member sends with its messages,
    /// so that others see what they lack.
    pub fn heads(&self) -> impl Iterator<Item = &EventId> {
        self.heads.iter()
    }

    /// Whether the log holds event `id`, applied or waiting for parents.
    pub fn holds(&self, id: &EventId) -> bool {
        self.clocks.contains_key(id) || self.pending.contains_key(id)
    }

    /// The group as the applied events say, in the group's order.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// How many events wait for parents.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The applied events a new member needs, in the group's order: every
    /// one that counts, and of those that do not (an unauthorized
    /// member's), only the ones a later event cites, without which it
    /// could not be placed. A rejected event no one built on goes no
    /// further than the logs that already hold it.
    pub fn shipped(&self) -> Vec<&Event> {
        let mut needed: BTreeSet<EventId> = BTreeSet::new();
        let mut kept = Vec::new();
        for ((_, id), event) in self.events.iter().rev() {
            if self.state.rejected.contains(id) && !needed.contains(id) {
                continue;
            }
            needed.extend(event.parents.iter().copied());
            kept.push(event);
        }
        kept.reverse();
        kept
    }

    /// Every applied event, in the group's order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.values()
    }

    /// Whether `unsigned`, once signed, would hold: it sorts after every
    /// event this log has applied (its clock is one more than theirs), so
    /// this is the state as it is, and the event applied to it. An author
    /// asks before signing, so that a refused event never enters its log
    /// (where later events would cite it as a parent).
    pub fn allows(&self, unsigned: &Unsigned) -> bool {
        let mut state = self.state.clone();
        state.apply(&unsigned.0, self.group, EventId([0; 32]))
    }

    /// Every event held, applied or waiting for parents.
    pub fn all_events(&self) -> impl Iterator<Item = &Event> {
        self.events.values().chain(self.pending.values())
    }
}
