//! Files the hotline keeps (documents attached to answers; later, e-mail attachments): a content-addressed store
//! under the data dir. A file's name is the SHA-256 of its bytes, so the same file is stored once, a stored file
//! never changes, and events refer to it by hash.
//!
//! Files are written to a temporary name, fsynced, then renamed into place: a crash leaves either the whole file
//! or none. The store is a directory of the data dir; processes on other hosts need it on a shared volume.

use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Largest file accepted.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;

/// A stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub sha256: String,
    pub size: u64,
}

/// The content-addressed store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn new(root: impl Into<PathBuf>) -> BlobStore {
        BlobStore { root: root.into() }
    }

    /// Stores `bytes` (once, whatever how often it is put) and returns its hash.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<Blob> {
        let sha256: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        let path = self.path_of(&sha256).ok_or_else(|| std::io::Error::other("bad hash"))?;
        if !path.exists() {
            let dir = path.parent().ok_or_else(|| std::io::Error::other("no parent"))?;
            std::fs::create_dir_all(dir)?;
            let tmp = dir.join(format!(".{sha256}.{}.part", std::process::id()));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(Blob { sha256, size: bytes.len() as u64 })
    }

    /// The bytes of a stored file; None when there is none (or `sha256` is no hash).
    pub fn get(&self, sha256: &str) -> std::io::Result<Option<Vec<u8>>> {
        let Some(path) = self.path_of(sha256) else { return Ok(None) };
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes a stored file (erasure of the citizen who sent it); false when there was none.
    pub fn remove(&self, sha256: &str) -> std::io::Result<bool> {
        let Some(path) = self.path_of(sha256) else { return Ok(false) };
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn contains(&self, sha256: &str) -> bool {
        self.path_of(sha256).is_some_and(|p| p.is_file())
    }

    /// `<root>/ab/abcdef...`; None for anything but 64 lowercase hex digits (so no path can be smuggled in).
    fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| self.root.join(&sha256[..2]).join(sha256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_stored_once_under_its_hash_and_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let blobs = BlobStore::new(dir.path());
        let a = blobs.put(b"quyet dinh").expect("put");
        assert_eq!(blobs.put(b"quyet dinh").expect("again"), a);
        assert_eq!(a.size, 10);
        assert_eq!(blobs.get(&a.sha256).expect("get"), Some(b"quyet dinh".to_vec()));
        assert!(blobs.contains(&a.sha256));
        assert_eq!(blobs.get(&"0".repeat(64)).expect("get"), None);
        for bad in ["../../etc/passwd", "ABC", &"g".repeat(64)] {
            assert_eq!(blobs.get(bad).expect("get"), None, "{bad}");
        }
    }
}
