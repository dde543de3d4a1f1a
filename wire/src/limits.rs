//! Upper bounds on every variable-length field. A decoder checks these before allocating.

/// Largest message body accepted on any stream (the catalog is the largest message).
pub const MAX_BODY: usize = 320 * 1024;
/// Largest chunk of serial data in one `Data` message.
pub const MAX_DATA: usize = 64 * 1024;
/// Largest encoded video frame (a 4K MJPEG image fits).
pub const MAX_FRAME: usize = 8 * 1024 * 1024;
/// Largest run of samples in one audio packet (a datagram holds far less; this bounds a
/// hostile one).
pub const MAX_AUDIO_DATA: usize = 16 * 1024;
/// Most video modes one camera may list.
pub const MAX_MODES: usize = 64;
/// Longest device or server name, in bytes of UTF-8.
pub const MAX_NAME: usize = 64;
/// Longest human-readable error or refusal text, in bytes of UTF-8.
pub const MAX_TEXT: usize = 1024;
/// Most devices one catalog may list (a robot with more is several servers): bounds what a
/// hostile server can make a mounter create.
pub const MAX_DEVICES: usize = 64;
/// Largest opaque kind-specific settings blob inside a catalog entry.
pub const MAX_SETTINGS: usize = 1024;
/// Highest baud rate accepted in line settings (16 Mbaud covers every UART we know).
pub const MAX_BAUD: u32 = 16_000_000;
/// Longest break a client may request, in milliseconds.
pub const MAX_BREAK_MS: u16 = 10_000;

/// Largest encoding of one catalog entry: name, kind, access, capabilities, settings blob.
pub const MAX_DEVICE_INFO: usize = 2 + MAX_NAME + 1 + 1 + 4 + 2 + MAX_SETTINGS;

// A full catalog must fit in one body, or a server could send what its clients reject.
const _: () = assert!(2 + 2 + MAX_NAME + 2 + MAX_DEVICES * MAX_DEVICE_INFO <= MAX_BODY);
