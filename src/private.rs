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

/// Sets `path`'s mode to `mode` unless it already is.
pub fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}
