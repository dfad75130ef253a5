//! What the CDR figures depend on beyond the code: PostgreSQL's durability
//! settings (read with `SHOW`) and the filesystem the spool is written to
//! (its `statfs` type and its mount's options), so a figure taken with
//! `fsync = off` or on tmpfs says so.

use serde::Serialize;
use sqlx::postgres::PgPool;
use std::path::Path;

/// PostgreSQL's settings that decide what a commit costs.
#[derive(Debug, Clone, Serialize)]
pub struct PgSettings {
    pub server_version: String,
    pub fsync: String,
    pub synchronous_commit: String,
    pub full_page_writes: String,
    pub wal_sync_method: String,
}

impl PgSettings {
    pub async fn read(pool: &PgPool) -> Result<PgSettings, sqlx::Error> {
        let show = |name: &'static str| async move {
            let (v,): (String,) = sqlx::query_as(&format!("SHOW {name}"))
                .fetch_one(pool)
                .await?;
            Ok::<_, sqlx::Error>(v)
        };
        Ok(PgSettings {
            server_version: show("server_version").await?,
            fsync: show("fsync").await?,
            synchronous_commit: show("synchronous_commit").await?,
            full_page_writes: show("full_page_writes").await?,
            wal_sync_method: show("wal_sync_method").await?,
        })
    }

    /// Whether a commit waits for the disk.
    pub fn durable(&self) -> bool {
        self.fsync == "on" && self.synchronous_commit != "off"
    }
}

/// The filesystem holding the spool directory.
#[derive(Debug, Clone, Serialize)]
pub struct SpoolFs {
    pub dir: String,
    /// `statfs`'s f_type, in hex, and its name when known.
    pub magic: String,
    pub kind: String,
    /// From `/proc/self/mountinfo`: the mount holding `dir`, its type,
    /// and its mount and superblock options (empty when unreadable).
    pub mount_point: String,
    pub mount_type: String,
    pub mount_options: String,
}

impl SpoolFs {
    pub fn of(dir: &Path) -> std::io::Result<SpoolFs> {
        let dir = dir.canonicalize()?;
        let magic = statfs_type(&dir)?;
        let (mount_point, mount_type, mount_options) = mount_of(
            &dir,
            &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        )
        .unwrap_or_default();
        Ok(SpoolFs {
            dir: dir.display().to_string(),
            magic: format!("{magic:#x}"),
            kind: fs_name(magic).into(),
            mount_point,
            mount_type,
            mount_options,
        })
    }

    /// Whether fsync reaches a disk here (tmpfs and ramfs have none).
    pub fn fsync_reaches_disk(&self) -> bool {
        !matches!(self.kind.as_str(), "tmpfs" | "ramfs")
    }
}

fn statfs_type(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a zeroed statfs is valid for the kernel to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statfs to fill.
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_type as u64)
}

/// Names of the `statfs` magic numbers a spool is likely to sit on.
fn fs_name(magic: u64) -> &'static str {
    match magic {
        0xef53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0x794c_7630 => "overlayfs",
        0x2fc1_2fc1 => "zfs",
        0xf2f5_2010 => "f2fs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        _ => "unknown",
    }
}

/// Mountinfo's octal escapes (`\040` for a space) decoded.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out + rest
}

/// The mount holding `dir` (the longest mount point above it): its point,
/// type, and mount options followed by superblock options.
fn mount_of(dir: &Path, mountinfo: &str) -> Option<(String, String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            let point = unescape(f.get(4)?);
            dir.starts_with(&point).then(|| {
                let options = format!("{} ({})", f.get(5)?, r.get(2).unwrap_or(&""));
                Some((point, r.first()?.to_string(), options))
            })?
        })
        .max_by_key(|(point, _, _)| point.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 259:1 / / rw,relatime - ext4 /dev/vda1 rw,discard
30 27 0:30 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw,size=1024k
31 27 0:31 / /mnt/my\\040disk rw - xfs /dev/vdb rw,attr2
";

    #[test]
    fn the_spool_sits_on_the_longest_mount_above_it() {
        let m = |d: &str| mount_of(Path::new(d), MOUNTINFO).expect("a mount");
        assert_eq!(
            m("/tmp/tollgate-bench-cdr"),
            (
                "/tmp".into(),
                "tmpfs".into(),
                "rw,nosuid,nodev (rw,size=1024k)".into()
            )
        );
        assert_eq!(m("/var/lib/tollgate").1, "ext4");
        assert_eq!(m("/mnt/my disk/spool").1, "xfs");
        // A path under "/tmpx" is not under "/tmp".
        assert_eq!(m("/tmpx/spool").1, "ext4");
    }

    #[test]
    fn this_hosts_temporary_directory_has_a_filesystem() {
        let fs = SpoolFs::of(&std::env::temp_dir()).expect("statfs");
        assert!(
            fs.magic.starts_with("0x") && !fs.mount_type.is_empty(),
            "{fs:?}"
        );
    }
}
