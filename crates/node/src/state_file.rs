//! The folders and files a profile keeps its state in: folders 0700, files
//! 0600 from the moment they exist, and every file replaced atomically and
//! durably (temporary file, fsync, rename, fsync of the folder), so that a
//! crash or a power loss leaves the old file or the new one, never an empty
//! or a partial one, and no other user can read either.

use std::{
    fs::{DirBuilder, File, OpenOptions, Permissions},
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

/// Mode of the folders that hold a profile's state.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every state file.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) owner-only, and makes an existing
/// `dir` owner-only too: a folder the user made 0755 before the first start
/// would otherwise show every later file's name and size to other users.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
}

/// Creates the missing folders of `dir` owner-only, leaving folders that
/// exist as they are (for paths the user chose, such as a key file's).
pub fn create_missing_dirs(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Replaces `path` with `bytes`: written to a 0600 temporary file beside
/// it, synced, renamed over `path`, and the folder synced so the rename
/// survives a power loss. The folder must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let staged = staging_path(path);
    // A temporary file left by a crash is ours to replace; create_new then
    // refuses to follow anything planted in its place.
    match std::fs::remove_file(&staged) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&staged)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&staged, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Opens `path` for appending, creating it 0600 (log files).
pub fn open_private_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
}

/// `path` with `.tmp` appended to its file name.
fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Syncs the folder `dir` itself, so a file created or renamed in it
/// survives a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_existing_folder_is_made_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let fresh = root.path().join("a/b");
        create_private_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
    }

    #[test]
    fn a_replaced_file_is_owner_only_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        // A temporary file a crash left behind is replaced, not appended to.
        std::fs::write(staging_path(&path), b"stale stale stale").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        assert!(!staging_path(&path).exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"old").unwrap();
        // The rename cannot replace a folder with a file.
        std::fs::create_dir(dir.path().join("folder")).unwrap();
        assert!(write_atomic(&dir.path().join("folder"), b"new").is_err());
        assert!(!staging_path(&dir.path().join("folder")).exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn appended_files_are_created_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        open_private_append(&path)
            .unwrap()
            .write_all(b"line\n")
            .unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
