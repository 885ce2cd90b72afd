//! Where personal data lives (the state store, kept normalizations, raw
//! bodies): directories 0700 and files 0600, whatever the umask, so that
//! only the service's user reads names and ID numbers in the clear.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` 0700 (its missing parents with the usual mode: the
/// warehouse that holds `raw/` stays readable for analysts), and makes `dir`
/// itself 0700 if it already existed with another mode.
pub fn dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        other => other?,
    }
    restrict(dir, 0o700)
}

/// Creates (or truncates) `path` readable and writable by the owner only.
pub fn create(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    restrict(path, 0o600)?;
    Ok(f)
}

/// Creates a new file (failing if `path` exists) readable and writable by
/// its owner only: a new file takes its mode from the open (less the
/// umask, which only removes bits), so no `stat` or `chmod` follows.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

/// Sets `path`'s mode to `mode` unless it already is.
pub fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Who may read the published warehouse (`warehouse.access`). Personal data
/// never reaches it in clear, but a county may still keep it to a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Every local user: directories 0755, files 0644.
    #[default]
    World,
    /// The warehouse directory's group (`chgrp analysts <warehouse>` once):
    /// directories 2750 (setgid, so what is created inside takes the
    /// group), files 0640.
    Group,
    /// The service's user only: 0700 and 0600.
    Owner,
}

impl Access {
    /// (directory mode, file mode).
    pub fn modes(self) -> (u32, u32) {
        match self {
            Access::World => (0o755, 0o644),
            Access::Group => (0o2750, 0o640),
            Access::Owner => (0o700, 0o600),
        }
    }
}

/// Gives `root` and everything under it (not following symlinks) `access`'s
/// modes, whatever the umask they were created with.
pub fn share(root: &Path, access: Access) -> io::Result<()> {
    let (dmode, fmode) = access.modes();
    let set = |p: &Path, mode: u32| -> io::Result<()> {
        let meta = std::fs::symlink_metadata(p)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        restrict_exact(p, mode)
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        set(&d, dmode)?;
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                set(&e.path(), fmode)?;
            }
        }
    }
    Ok(())
}

/// Sets `path`'s mode bits (setgid included) to `mode` unless they are.
pub fn restrict_exact(path: &Path, mode: u32) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}
