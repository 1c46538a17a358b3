//! The priority of the timer thread that gossipsub wakes for every message.
//!
//! rust-libp2p's gossipsub arms a `futures_timer::Delay` for each message it
//! queues for a peer and drops it when the message leaves; `futures-timer`
//! keeps all its delays on one helper thread per process, and both the arming
//! and the dropping wake that thread if it sleeps. At the scheduler's normal
//! priority the woken helper preempts whatever runs on its core, which under
//! load is the swarm's own thread: a context switch there and back for a few
//! microseconds of the helper's work, up to twice per message relayed. In
//! `murmur bench relay`, `perf sched` counted 1.4 wake-ups of the helper per
//! message from murmur's publishing thread (0.35 from bare gossipsub's, which
//! publishes in bursts), and that thread was switched out about as often;
//! see docs/benchmarks.md, "Relay".
//!
//! Raising the helper's nice value leaves its timers as punctual on an idle
//! machine and keeps it from preempting the network on a busy one; it still
//! gets its share of the processor (at nice 10, a tenth of a nice-0 thread's),
//! which is far more than its few microseconds per message, so gossipsub's
//! queue timeouts and heartbeats still fire, within a scheduler slice of
//! their time. Linux keeps a nice value per thread, so only that thread is
//! touched; elsewhere this does nothing.

/// The nice value a node gives the timer thread unless configured otherwise.
pub const DEFAULT_NICE: u8 = 10;

/// The highest nice value there is.
pub const MAX_NICE: u8 = 19;

/// Gives `futures-timer`'s helper thread in this process at least `nice`
/// (at most [`MAX_NICE`]), starting the thread first if no delay has yet.
/// A thread already nicer is left as it is; 0 changes nothing. Answers how
/// many threads were changed. Idempotent, cheap enough to call at every
/// start.
pub fn lower_priority(nice: u8) -> usize {
    if nice == 0 {
        return 0;
    }
    // The helper starts with the first delay of the process.
    drop(futures_timer::Delay::new(std::time::Duration::ZERO));
    imp::lower_priority(i32::from(nice.min(MAX_NICE)))
}

#[cfg(target_os = "linux")]
mod imp {
    use rustix::process::{getpriority_process, setpriority_process, Pid};

    /// The name `futures-timer` gives its helper thread.
    const NAME: &str = "futures-timer";

    /// The helper threads of this process (one, unless `futures-timer`
    /// raced at its own start); empty without /proc.
    pub(super) fn helpers() -> Vec<Pid> {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == NAME)
            })
            .filter_map(|task| Pid::from_raw(task.file_name().to_str()?.parse().ok()?))
            .collect()
    }

    pub(super) fn lower_priority(nice: i32) -> usize {
        let helpers = helpers();
        if helpers.is_empty() {
            tracing::debug!(
                thread = NAME,
                "no such thread; timer thread priority left alone"
            );
        }
        let mut changed = 0;
        for pid in helpers {
            match getpriority_process(Some(pid)) {
                Ok(current) if current >= nice => {}
                Ok(_) => match setpriority_process(Some(pid), nice) {
                    Ok(()) => {
                        tracing::debug!(thread = NAME, nice, "timer thread priority lowered");
                        changed += 1;
                    }
                    Err(e) => tracing::debug!(error = %e, "timer thread priority left as it is"),
                },
                Err(e) => tracing::debug!(error = %e, "timer thread priority unknown"),
            }
        }
        changed
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn lower_priority(_: i32) -> usize {
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn timer_nice() -> Option<i32> {
        let helper = *imp::helpers().first()?;
        rustix::process::getpriority_process(Some(helper)).ok()
    }

    #[test]
    fn the_timer_thread_gets_the_nice_value_once_and_never_a_lower_one() {
        // Zero touches nothing, not even to start the thread.
        assert_eq!(lower_priority(0), 0);
        // Nodes started by other tests may have got there first.
        lower_priority(DEFAULT_NICE);
        assert_eq!(timer_nice(), Some(i32::from(DEFAULT_NICE)));
        assert_eq!(lower_priority(DEFAULT_NICE), 0, "already there");
        assert_eq!(lower_priority(3), 0, "never made less nice");
        assert_eq!(timer_nice(), Some(i32::from(DEFAULT_NICE)));
        assert_eq!(lower_priority(200), 1, "capped at the maximum");
        assert_eq!(timer_nice(), Some(i32::from(MAX_NICE)));
    }
}
