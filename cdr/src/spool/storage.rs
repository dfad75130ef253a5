//! The seam between the spool's segment writer and the file system: the
//! writer creates, appends to, syncs and cuts back its segment files only
//! through [`Storage`] and [`SegmentFile`].
//!
//! [`Disk`] is the real one: a zero-sized type whose file is a plain
//! `std::fs::File`, so the writer, monomorphised, makes the same calls as
//! without the seam. Tests put a
//! simulated disk in its place that remembers what was synced and, on a
//! simulated power loss, keeps only that, in the manner of TigerBeetle's
//! and FoundationDB's simulated storage, so that a missing sync is a
//! failing test rather than a lost CDR in the field. Recovery at open and
//! the sinks' readers read the files directly: they run on what the disk
//! holds, whatever wrote it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Where the writer's segment files live.
pub trait Storage: Send + 'static {
    type File: SegmentFile;

    /// Creates the file, or empties an existing one, for writing.
    fn create(&mut self, path: &Path) -> io::Result<Self::File>;

    /// Opens an existing file to append to its end.
    fn open_append(&mut self, path: &Path) -> io::Result<Self::File>;

    /// Makes the directory's entries durable: a file created in it
    /// survives a power loss only after this.
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
}

/// One segment file open for writing.
pub trait SegmentFile: Send + 'static {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;

    /// Forces the file's data (and its length) to stable storage.
    fn sync_data(&mut self) -> io::Result<()>;

    /// [`SegmentFile::sync_data`] and the rest of the file's metadata.
    fn sync_all(&mut self) -> io::Result<()>;

    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl Storage for Disk {
    type File = File;

    /// In append mode, as [`Storage::open_append`]: a write after a failed
    /// one that was cut back with `set_len` must land at the end, not
    /// where the failed one stopped (leaving a hole the scan takes for
    /// damage). `O_TRUNC` cannot go with `O_APPEND`, hence `set_len(0)`.
    fn create(&mut self, path: &Path) -> io::Result<File> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        file.set_len(0)?;
        Ok(file)
    }

    fn open_append(&mut self, path: &Path) -> io::Result<File> {
        OpenOptions::new().append(true).open(path)
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl SegmentFile for File {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        io::Write::write_all(self, buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}
