//! How the control thread wakes a socket worker: an eventfd the worker's
//! io_uring reads, rung only when the worker has not been rung since it
//! last looked at its inbox. A burst of flow changes (a call's offer puts
//! several flows) then costs one `write` and one wakeup, not one each.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Doorbell {
    fd: OwnedFd,
    /// Rung and not yet answered: the worker will look at its inbox.
    rung: AtomicBool,
}

impl Doorbell {
    pub fn new() -> io::Result<Doorbell> {
        // SAFETY: eventfd(2) returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Doorbell {
            // SAFETY: fd is a fresh descriptor we now own.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            rung: AtomicBool::new(false),
        })
    }

    /// After a message is in the worker's inbox: wakes the worker unless
    /// a ring it has not answered yet will make it look anyway.
    pub fn ring(&self) {
        if self.rung.swap(true, Ordering::AcqRel) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writing 8 bytes to an eventfd we own.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
    }

    /// The worker, woken, before it drains its inbox: a message sent from
    /// here on rings again, so none waits for a later wakeup.
    pub fn answer(&self) {
        self.rung.store(false, Ordering::SeqCst);
    }

    /// The descriptor the worker's ring reads.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::Doorbell;

    fn pending(d: &Doorbell) -> u64 {
        let mut v: u64 = 0;
        // SAFETY: reading 8 bytes from an eventfd we own into a u64.
        let n = unsafe { libc::read(d.raw_fd(), &mut v as *mut u64 as *mut libc::c_void, 8) };
        assert_eq!(n, 8);
        v
    }

    #[test]
    fn rings_once_until_answered_then_again() {
        let d = Doorbell::new().unwrap();
        d.ring();
        d.ring();
        d.ring();
        assert_eq!(pending(&d), 1, "three messages, one write");
        d.answer();
        d.ring();
        assert_eq!(pending(&d), 1, "a message after the answer rings again");
    }
}
