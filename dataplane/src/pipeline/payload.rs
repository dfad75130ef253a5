//! [`Payload`]: the UDP payload of one packet as stages see it, in place in
//! the backend's frame buffer, with room after it to grow (an SRTP tag, a
//! longer transcoded frame). Writing through it marks the packet modified so
//! the backend knows to fix the IP and UDP lengths and checksum.

/// The new length does not fit the room the backend gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payload of {wanted} bytes does not fit the {room} bytes of room")]
pub struct TooLong {
    pub wanted: usize,
    pub room: usize,
}

/// One datagram's payload: `buf[..len]` is the data, `buf[len..]` free room.
pub struct Payload<'a> {
    buf: &'a mut [u8],
    len: usize,
    modified: bool,
}

impl<'a> Payload<'a> {
    /// `buf` runs from the payload's first byte to the end of usable room;
    /// `len` (clamped to the room) bytes of it are the payload.
    pub fn new(buf: &'a mut [u8], len: usize) -> Self {
        let len = len.min(buf.len());
        Payload {
            buf,
            len,
            modified: false,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The payload for writing; the packet counts as modified from here on.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.modified = true;
        &mut self.buf[..self.len]
    }

    /// Grows or shrinks the payload within the room (new bytes keep whatever
    /// the buffer held: write them).
    pub fn set_len(&mut self, len: usize) -> Result<(), TooLong> {
        if len > self.buf.len() {
            return Err(TooLong {
                wanted: len,
                room: self.buf.len(),
            });
        }
        self.len = len;
        self.modified = true;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the payload may grow to.
    pub fn room(&self) -> usize {
        self.buf.len()
    }

    /// Whether a stage wrote to or resized the payload.
    pub fn modified(&self) -> bool {
        self.modified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_does_not_mark_modified_but_writing_and_resizing_do() {
        let mut buf = [1u8, 2, 3, 0, 0];
        let mut p = Payload::new(&mut buf, 3);
        assert_eq!(p.bytes(), &[1, 2, 3]);
        assert!(!p.modified());
        p.bytes_mut()[0] = 9;
        assert!(p.modified());
        let mut p = Payload::new(&mut buf, 3);
        p.set_len(5).unwrap();
        assert_eq!(p.len(), 5);
        assert!(p.modified());
        assert_eq!(p.set_len(6), Err(TooLong { wanted: 6, room: 5 }));
        assert_eq!(Payload::new(&mut buf, 99).len(), 5);
    }
}
