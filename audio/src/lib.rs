//! Audio for XoQ mount, without any I/O and without reading a clock (callers pass times in):
//!
//! - [`pcm`]: wire PCM (S16 / F32, interleaved) to and from `f32` samples;
//! - [`codec`]: a packet's bytes by the device's format, PCM or Opus, both ways;
//! - [`packetizer`]: cuts a stream of samples into wire packets with sequence numbers and
//!   capture times;
//! - [`jitter`]: the receiving side: reorders packets, conceals lost ones, and plays out at
//!   the consumer's clock with a constant delay, correcting clock drift by resampling;
//! - [`jitter_target`]: the spread of packet arrivals, which an adaptive delay follows;
//! - [`playout`]: hands packets from the receiving task to the real-time thread that owns the
//!   jitter buffer, without a lock between them;
//! - [`sample_queue`]: a bounded lock-free queue of sample chunks between a real-time thread
//!   and a task (under `playout`, and behind the mounter's speaker nodes);
//! - [`resample`]: the adaptive-ratio interpolator the jitter buffer uses;
//! - [`tone`]: the simulated microphone's sine, and [`meter`]: frequency and level of what
//!   arrives, for the simulated speaker and the tests.
#![forbid(unsafe_code)]

pub mod codec;
pub mod drift;
pub mod jitter;
pub mod jitter_target;
pub mod meter;
pub mod packetizer;
pub mod pcm;
pub mod playout;
pub mod resample;
pub mod sample_queue;
pub mod tone;

pub use jitter::{Delay, JitterBuffer, JitterConfig, JitterStats};
pub use meter::{ToneMeter, WindowedFrequency};
pub use packetizer::Packetizer;
pub use playout::{playout, Playout, PlayoutFeed};
pub use sample_queue::SampleQueue;
pub use tone::Tone;
