//! Decoding errors and the error codes carried in `Error` and `Refused` messages.

use thiserror::Error;

/// Why bytes could not be decoded. Any of these closes the stream that carried them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("message type 0x{0:02x} is unknown to this protocol version")]
    UnknownType(u8),
    #[error("message type 0x{ty:02x} travels the other way; this peer may not send it")]
    WrongDirection { ty: u8 },
    #[error("message of type 0x{ty:02x} declares {len} bytes, more than the limit of {max}")]
    TooLong { ty: u8, len: usize, max: usize },
    #[error("message of type 0x{ty:02x} is truncated: {field} is missing")]
    Truncated { ty: u8, field: &'static str },
    #[error("message of type 0x{ty:02x} has {extra} unexpected trailing bytes")]
    TrailingBytes { ty: u8, extra: usize },
    #[error("field {field} is {len} bytes, more than the limit of {max}")]
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{count} {field} listed, more than the limit of {max}")]
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("field {field} is not valid UTF-8")]
    BadUtf8 { field: &'static str },
    #[error("field {field} has the invalid value {value}")]
    BadValue { field: &'static str, value: u64 },
    #[error(
        "field {field} is not a valid name: \"{name}\" (1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)"
    )]
    BadName { field: &'static str, name: String },
    #[error("the catalog lists the device name \"{name}\" more than once")]
    DuplicateName { name: String },
}

/// Machine-readable reason in an `Error` or `Refused` message; the text beside it is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No protocol version in common.
    UnsupportedVersion,
    /// The client key is not in the server's authorized-clients file.
    Unauthorized,
    /// No device by that name on this server.
    UnknownDevice,
    /// The client is authorized, but not for this device (or not for writing it).
    NotPermitted,
    /// Another client already holds this device read-write.
    Busy,
    /// The client opened the device read-only and tried to change it.
    ReadOnly,
    /// The device failed an operation (I/O error from the OS).
    DeviceIo,
    /// The peer sent bytes that do not decode; the stream is being closed.
    Malformed,
    /// The device disappeared (unplugged, driver gone).
    DeviceGone,
    /// A setting the device cannot apply (e.g. a parity the port lacks).
    InvalidSetting,
    /// Data was lost because this client read too slowly; the text says how much.
    Overrun,
    /// A message that is valid but not expected in this state (e.g. data before `Open`).
    UnexpectedMessage,
    /// A code from a newer peer; kept so it can be shown.
    Other(u16),
}

impl ErrorCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::UnsupportedVersion => 1,
            ErrorCode::Unauthorized => 2,
            ErrorCode::UnknownDevice => 3,
            ErrorCode::NotPermitted => 4,
            ErrorCode::Busy => 5,
            ErrorCode::ReadOnly => 6,
            ErrorCode::DeviceIo => 7,
            ErrorCode::Malformed => 8,
            ErrorCode::DeviceGone => 9,
            ErrorCode::InvalidSetting => 10,
            ErrorCode::Overrun => 11,
            ErrorCode::UnexpectedMessage => 12,
            ErrorCode::Other(n) => n,
        }
    }

    /// The code for a number read from the wire; unknown numbers become [`ErrorCode::Other`].
    pub fn from_u16(n: u16) -> Self {
        match n {
            1 => ErrorCode::UnsupportedVersion,
            2 => ErrorCode::Unauthorized,
            3 => ErrorCode::UnknownDevice,
            4 => ErrorCode::NotPermitted,
            5 => ErrorCode::Busy,
            6 => ErrorCode::ReadOnly,
            7 => ErrorCode::DeviceIo,
            8 => ErrorCode::Malformed,
            9 => ErrorCode::DeviceGone,
            10 => ErrorCode::InvalidSetting,
            11 => ErrorCode::Overrun,
            12 => ErrorCode::UnexpectedMessage,
            n => ErrorCode::Other(n),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ErrorCode::UnsupportedVersion => "unsupported version",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UnknownDevice => "unknown device",
            ErrorCode::NotPermitted => "not permitted",
            ErrorCode::Busy => "busy",
            ErrorCode::ReadOnly => "read-only",
            ErrorCode::DeviceIo => "device I/O error",
            ErrorCode::Malformed => "malformed message",
            ErrorCode::DeviceGone => "device gone",
            ErrorCode::InvalidSetting => "invalid setting",
            ErrorCode::Overrun => "overrun",
            ErrorCode::UnexpectedMessage => "unexpected message",
            ErrorCode::Other(n) => return write!(f, "error {n}"),
        };
        f.write_str(s)
    }
}
