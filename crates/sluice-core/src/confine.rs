//! Files that something sent through the API may write: only relative names under the owning object's own
//! folder in the data dir (a managed pipeline's `DATA_DIR/pipelines/<id>/`). An absolute path, a `..`, or a
//! symbolic link anywhere on the way that leads out of the folder is refused, so a spec can never append to
//! a shell profile or a cron file, whatever the server runs as.

use std::path::{Component, Path, PathBuf};

/// The folder a caller's files are confined to.
#[derive(Debug, Clone)]
pub struct ConfinedDir {
    root: PathBuf,
}

impl ConfinedDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the relative name `rel` lands, checked by its text only: plain names separated by `/`, no
    /// absolute path, no `.`/`..`, no empty name. The message says what is wrong, for the key's error.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, String> {
        if rel.is_empty() {
            return Err("is empty".into());
        }
        let path = Path::new(rel);
        if path.is_absolute() {
            return Err(format!("`{rel}` is an absolute path; give a relative file name, kept in the pipeline's own folder of the data dir"));
        }
        for c in path.components() {
            match c {
                Component::Normal(_) => {}
                Component::ParentDir => return Err(format!("`{rel}` goes up with `..`; give a relative file name inside the pipeline's own folder")),
                _ => return Err(format!("`{rel}` is not a plain relative file name")),
            }
        }
        if rel.ends_with('/') || rel.contains("//") || rel.contains('\0') {
            return Err(format!("`{rel}` is not a plain relative file name"));
        }
        Ok(self.root.join(path))
    }

    /// Before opening `path` (from [`resolve`](Self::resolve)): creates its folders, then proves that,
    /// with every symbolic link followed, the folder is still inside the root and the file itself is not
    /// a link. Opening with `O_NOFOLLOW` afterwards closes the last gap.
    pub fn prepare(&self, path: &Path) -> Result<(), String> {
        let parent = path.parent().ok_or_else(|| format!("{} has no folder", path.display()))?;
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let root = self.root.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", self.root.display()))?;
        let real_parent = parent.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", parent.display()))?;
        if !real_parent.starts_with(&root) {
            return Err(format!("{} leads out of the pipeline's folder through a symbolic link; refused", path.display()));
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Err(format!("{} is a symbolic link; refused", path.display())),
            Ok(m) if !m.is_file() => Err(format!("{} exists and is not a regular file", path.display())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_resolve() {
        let d = ConfinedDir::new("/data/pipelines/p1");
        assert_eq!(d.resolve("out.jsonl").unwrap(), Path::new("/data/pipelines/p1/out.jsonl"));
        assert_eq!(d.resolve("files/out.jsonl").unwrap(), Path::new("/data/pipelines/p1/files/out.jsonl"));
        for bad in ["", "/etc/cron.d/x", "../x", "a/../../x", "./x", "a//b", "a/", "x\0y"] {
            assert!(d.resolve(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn symbolic_links_out_of_the_folder_are_refused() {
        let tmp = std::env::temp_dir().join(format!("sluice-confine-{}", std::process::id()));
        let root = tmp.join("root");
        let outside = tmp.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), root.join("link.jsonl")).unwrap();
        let d = ConfinedDir::new(&root);
        assert!(d.prepare(&d.resolve("escape/f.jsonl").unwrap()).unwrap_err().contains("symbolic link"));
        assert!(d.prepare(&d.resolve("link.jsonl").unwrap()).unwrap_err().contains("symbolic link"));
        assert!(d.prepare(&d.resolve("sub/ok.jsonl").unwrap()).is_ok());
        assert!(!outside.join("f").exists() && !outside.join("f.jsonl").exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
