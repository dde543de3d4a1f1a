//! Real-time scheduling for the threads that keep an audio clock: a simulated or real sound
//! card's thread must run when its period is due, whatever else the host is busy with. PipeWire
//! gives its own data threads the same (`module-rt`); this is for ours.

/// The priority our audio threads ask for: below PipeWire's data threads (88), so a graph on
/// the same host is never held up by us, above every normal-priority task.
pub const AUDIO_PRIORITY: i32 = 70;

/// Makes the calling thread `SCHED_FIFO` at `priority` (children it forks are reset to normal
/// scheduling). Where the process may not (no `CAP_SYS_NICE` and no `RLIMIT_RTPRIO`), the
/// thread stays as it was and the reason is returned: the caller logs it, audio still works,
/// only less steadily on a busy host.
pub fn promote_current_thread(priority: i32) -> Result<(), String> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: sched_setscheduler reads the sched_param we pass by pointer for the duration of
    // the call only; pid 0 is the calling thread.
    let r = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    Err(format!(
        "cannot schedule this audio thread real-time (SCHED_FIFO {priority}): {e}; run as root, \
         give the service CAP_SYS_NICE, or raise RLIMIT_RTPRIO (LimitRTPRIO= in systemd)"
    ))
}

/// The calling thread's scheduling policy (`SCHED_OTHER`, `SCHED_FIFO`, ...), without the
/// `SCHED_RESET_ON_FORK` flag.
pub fn current_policy() -> i32 {
    // SAFETY: sched_getscheduler takes no pointer and only reads the calling thread's policy.
    let policy = unsafe { libc::sched_getscheduler(0) };
    policy & !libc::SCHED_RESET_ON_FORK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_promoted_or_told_why_not() {
        let outcome = std::thread::spawn(|| {
            let r = promote_current_thread(AUDIO_PRIORITY);
            (r, current_policy())
        })
        .join()
        .expect("thread");
        match outcome {
            (Ok(()), policy) => assert_eq!(policy, libc::SCHED_FIFO),
            (Err(why), policy) => {
                assert_eq!(policy, libc::SCHED_OTHER);
                assert!(why.contains("SCHED_FIFO"), "{why}");
            }
        }
    }
}
