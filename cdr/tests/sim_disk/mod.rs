//! A simulated disk under the spool's segment writer, in the manner of
//! TigerBeetle's and FoundationDB's simulated storage: it knows which
//! bytes are only written and which are synced, and a simulated power loss
//! keeps only the synced ones.
//!
//! Writes go through to the real files at once (they stand for the page
//! cache, which the spool's readers and its recovery at open read), and
//! the disk keeps, apart from them, each file's durable image: its content
//! at its last sync, and whether its directory entry was synced since it
//! was created. A power loss puts every file back to that image, followed
//! by a torn prefix of its unsynced tail if asked; a file whose directory
//! was not synced since its creation disappears. What the spool does
//! outside the seam (cursor files, recovery's repairs, unlinks of taken
//! segments) is taken as durable. A write can also be made to fail
//! halfway, as a full disk fails it.
//!
//! The files are opened and written by the real [`Disk`], so they behave as
//! the spool's own do (open modes, file positions).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tollgate_cdr::spool::storage::{Disk, SegmentFile, Storage};

/// What a power loss leaves of a file's unsynced tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Torn {
    Nothing,
    /// Its first n bytes, as written.
    Prefix(usize),
    /// Its first n bytes, every bit flipped (a sector half written).
    Scrambled(usize),
}

/// A file as a power loss would leave it.
#[derive(Debug, Default)]
struct Durable {
    bytes: Vec<u8>,
    /// Its directory entry is synced.
    linked: bool,
}

#[derive(Debug)]
struct State {
    files: HashMap<PathBuf, Durable>,
    powered: bool,
    /// Operations left before the power goes by itself, and what it tears.
    cut: Option<(usize, Torn)>,
    /// Operations carried out.
    ops: usize,
    /// The next write puts this many bytes down, then fails.
    fail_write: Option<usize>,
    /// Every write fails with ENOSPC, having put nothing down.
    full: bool,
}

/// The disk; clones share it, so a test keeps one to cut the power.
#[derive(Debug, Clone)]
pub struct SimDisk(Arc<Mutex<State>>);

fn power_off() -> io::Error {
    io::Error::other("simulated power loss: the disk is off")
}

impl Default for SimDisk {
    /// A disk that stays powered until [`SimDisk::cut_power`].
    fn default() -> SimDisk {
        SimDisk(Arc::new(Mutex::new(State {
            files: HashMap::new(),
            powered: true,
            cut: None,
            ops: 0,
            fail_write: None,
            full: false,
        })))
    }
}

impl SimDisk {
    /// A disk that loses power instead of carrying out its operation
    /// number `ops` (from 0): every operation fails from then on.
    pub fn cut_before_op(ops: usize, torn: Torn) -> SimDisk {
        let disk = SimDisk::default();
        disk.state().cut = Some((ops, torn));
        disk
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts the power now.
    pub fn cut_power(&self, torn: Torn) {
        self.state().power_loss(torn);
    }

    /// The next write puts down its first `bytes` bytes and fails, as on
    /// a full disk.
    pub fn fail_next_write(&self, bytes: usize) {
        self.state().fail_write = Some(bytes);
    }

    /// Fills the disk (every write fails with ENOSPC) or frees it.
    pub fn set_full(&self, full: bool) {
        self.state().full = full;
    }

    pub fn is_powered(&self) -> bool {
        self.state().powered
    }

    /// Operations carried out so far.
    pub fn ops(&self) -> usize {
        self.state().ops
    }

    /// Bytes written to the files and not yet synced.
    pub fn unsynced(&self) -> u64 {
        let st = self.state();
        st.files
            .iter()
            .map(|(path, d)| {
                let now = std::fs::metadata(path).map_or(0, |m| m.len());
                now.saturating_sub(d.bytes.len() as u64)
            })
            .sum()
    }

    /// Carries out one operation, unless the power is off or goes now.
    fn op<T>(&self, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.state();
        if !st.powered {
            return Err(power_off());
        }
        if let Some((at, torn)) = st.cut {
            if st.ops == at {
                st.power_loss(torn);
                return Err(power_off());
            }
        }
        st.ops += 1;
        f(&mut st)
    }
}

impl State {
    /// Puts every file back to its durable image (and a torn tail).
    fn power_loss(&mut self, torn: Torn) {
        self.powered = false;
        for (path, d) in &self.files {
            if !d.linked {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => panic!("simulated power loss: remove {}: {e}", path.display()),
                }
                continue;
            }
            let now = match std::fs::read(path) {
                Ok(b) => b,
                // Unlinked outside the seam: gone for good.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => panic!("simulated power loss: read {}: {e}", path.display()),
            };
            let mut kept = d.bytes.clone();
            if now.len() > kept.len() && now.starts_with(&kept) {
                let tail = &now[kept.len()..];
                match torn {
                    Torn::Nothing => {}
                    Torn::Prefix(n) => kept.extend_from_slice(&tail[..n.min(tail.len())]),
                    Torn::Scrambled(n) => {
                        kept.extend(tail[..n.min(tail.len())].iter().map(|b| !b));
                    }
                }
            }
            std::fs::write(path, &kept)
                .unwrap_or_else(|e| panic!("simulated power loss: {}: {e}", path.display()));
        }
    }
}

impl Storage for SimDisk {
    type File = SimFile;

    fn create(&mut self, path: &Path) -> io::Result<SimFile> {
        self.op(|st| {
            let existed = std::fs::read(path).ok();
            let real = Disk.create(path)?;
            // Emptying is not durable either, until a sync.
            st.files.entry(path.to_path_buf()).or_insert(Durable {
                linked: existed.is_some(),
                bytes: existed.unwrap_or_default(),
            });
            Ok(SimFile {
                real,
                path: path.to_path_buf(),
                disk: self.clone(),
            })
        })
    }

    fn open_append(&mut self, path: &Path) -> io::Result<SimFile> {
        self.op(|st| {
            let real = Disk.open_append(path)?;
            if !st.files.contains_key(path) {
                // What was on disk before this disk was used is durable.
                let bytes = std::fs::read(path)?;
                st.files.insert(
                    path.to_path_buf(),
                    Durable {
                        bytes,
                        linked: true,
                    },
                );
            }
            Ok(SimFile {
                real,
                path: path.to_path_buf(),
                disk: self.clone(),
            })
        })
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        self.op(|st| {
            for (path, d) in st.files.iter_mut() {
                if path.parent() == Some(dir) {
                    d.linked = true;
                }
            }
            Ok(())
        })
    }
}

/// A segment file on the [`SimDisk`].
#[derive(Debug)]
pub struct SimFile {
    real: File,
    path: PathBuf,
    disk: SimDisk,
}

impl SimFile {
    fn sync(&mut self) -> io::Result<()> {
        let path = &self.path;
        self.disk.op(|st| {
            let bytes = std::fs::read(path)?;
            st.files.entry(path.clone()).or_default().bytes = bytes;
            Ok(())
        })
    }
}

impl SegmentFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let real = &mut self.real;
        self.disk.op(|st| match st.fail_write.take() {
            None if st.full => Err(io::Error::from_raw_os_error(28)),
            None => real.write_all(buf),
            Some(n) => {
                real.write_all(&buf[..n.min(buf.len())])?;
                Err(io::Error::from_raw_os_error(28)) // ENOSPC
            }
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let real = &mut self.real;
        self.disk.op(|_| real.set_len(len))
    }
}
