//! What a microphone or speaker must do, whatever it is. Each runs on its own thread, at its
//! own clock: a microphone pushes what it captured, a speaker pulls what it is about to play.

use std::io;
use std::sync::Arc;

use xoq_wire::AudioFormat;

/// What a speaker plays from: fills interleaved samples for the next period.
pub type Fill = Arc<dyn Fn(&mut [f32]) + Send + Sync>;

/// A microphone.
pub trait Microphone: Send + 'static {
    /// For logs and errors: `hw:1,0`, `440 Hz tone`.
    fn describe(&self) -> String;
    /// The format it captures in (its native one).
    fn format(&self) -> AudioFormat;
    /// Captures until `deliver` returns false (returns `Ok`) or the device fails. `deliver`
    /// gets interleaved samples and the capture time of their first frame (µs since the
    /// epoch). May be called again after an error.
    fn run(&mut self, deliver: &mut dyn FnMut(&[f32], u64) -> bool) -> io::Result<()>;
}

/// A speaker.
pub trait Speaker: Send + 'static {
    fn describe(&self) -> String;
    /// The format it plays (its native one).
    fn format(&self) -> AudioFormat;
    /// Plays until the device fails, asking `fill` for each period just before it is played
    /// (from whatever thread the device calls back on). May be called again after an error.
    fn run(&mut self, fill: Fill) -> io::Result<()>;
}
