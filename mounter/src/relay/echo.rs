//! A relay writer's own CAN frames, kept out of what it reads back. The server's `state` track
//! carries every frame the bus carried, this client's commands included, while a local bus (and
//! the iroh path) never shows a sender its own frames again. So the frames this mount sent are
//! remembered for a while and the first matching frame on `state` (same id, flags, length and
//! data) is dropped in their place, oldest first, as the server matches its confirmations.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xoq_link::sync::lock;
use xoq_wire::CanFrame;

/// How long a sent frame waits for its echo; one never carried (stale, refused) is forgotten.
const REMEMBER: Duration = Duration::from_secs(5);
/// The most frames remembered; a writer faster than its echoes forgets the oldest.
const MOST: usize = 4096;

type Key = (u32, u8, u8, Vec<u8>);

fn key(f: &CanFrame) -> Key {
    (f.id, f.flags, f.len, f.data.clone())
}

#[derive(Default)]
pub struct EchoFilter {
    sent: Mutex<VecDeque<(Key, Instant)>>,
}

impl EchoFilter {
    /// Remembers frames this mount sent.
    pub fn sent(&self, frames: &[CanFrame]) {
        let now = Instant::now();
        let mut sent = lock(&self.sent);
        for f in frames {
            if sent.len() == MOST {
                sent.pop_front();
            }
            sent.push_back((key(f), now));
        }
    }

    /// Drops from `frames` those that are this mount's own, each matched once.
    pub fn strip(&self, frames: &mut Vec<CanFrame>) {
        let mut sent = lock(&self.sent);
        let now = Instant::now();
        while sent
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) > REMEMBER)
        {
            sent.pop_front();
        }
        if sent.is_empty() {
            return;
        }
        frames.retain(|f| {
            let k = key(f);
            match sent.iter().position(|(s, _)| *s == k) {
                Some(i) => {
                    sent.remove(i);
                    false
                }
                None => true,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u32, data: &[u8]) -> CanFrame {
        CanFrame {
            id,
            flags: 0,
            len: data.len() as u8,
            data: data.to_vec(),
            timestamp_us: 1,
        }
    }

    #[test]
    fn each_sent_frame_hides_one_echo_and_nothing_else() {
        let f = EchoFilter::default();
        f.sent(&[frame(1, &[1]), frame(1, &[1]), frame(2, &[2])]);
        let mut seen = vec![
            frame(1, &[1]),
            frame(0x11, &[9]),
            frame(1, &[1]),
            frame(1, &[1]),
            frame(2, &[3]),
        ];
        f.strip(&mut seen);
        // Two echoes of 1#01 hidden, the third is someone else's; 2#03 is not 2#02.
        assert_eq!(
            seen,
            vec![frame(0x11, &[9]), frame(1, &[1]), frame(2, &[3])]
        );
        let mut later = vec![frame(2, &[2]), frame(2, &[2])];
        f.strip(&mut later);
        assert_eq!(later, vec![frame(2, &[2])]);
    }
}
