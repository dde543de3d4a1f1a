//! Bounded primitive readers and writers shared by every message body.

use crate::error::WireError;

/// Appends big-endian primitives and length-prefixed fields to a buffer.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// A string with a u16 length prefix. Callers keep strings within their limits; an
    /// over-long string is cut at a character boundary so that encoding never fails.
    pub(crate) fn str(&mut self, s: &str, max: usize) {
        let mut end = s.len().min(max);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.bytes16(&s.as_bytes()[..end]);
    }
    pub(crate) fn bytes16(&mut self, b: &[u8]) {
        // Limits are all far below u16::MAX, enforced by the callers.
        self.u16(b.len() as u16);
        self.0.extend_from_slice(b);
    }
}

/// Reads big-endian primitives from a message body, never past its end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    ty: u8,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(ty: u8, buf: &'a [u8]) -> Self {
        Reader { buf, ty }
    }
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated { ty: self.ty, field });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, field)?[0])
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    /// Exactly `n` bytes (n is already bounded by the caller).
    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        self.take(n, field)
    }
    pub(crate) fn bytes16(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], WireError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(WireError::FieldTooLong { field, len, max });
        }
        self.take(len, field)
    }
    pub(crate) fn str(&mut self, field: &'static str, max: usize) -> Result<String, WireError> {
        let b = self.bytes16(field, max)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| WireError::BadUtf8 { field })
    }
    /// A name (server, client, device): a string that must pass [`crate::name::check_name`].
    pub(crate) fn name(&mut self, field: &'static str) -> Result<String, WireError> {
        let s = self.str(field, crate::limits::MAX_NAME)?;
        crate::name::check_name(field, &s)?;
        Ok(s)
    }
    /// Everything that is left, for fields that run to the end of the body.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    /// Whether the body has been read to its end (for a trailing optional field).
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub(crate) fn finish(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes {
                ty: self.ty,
                extra: self.buf.len(),
            })
        }
    }
}
