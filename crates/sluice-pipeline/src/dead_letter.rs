//! The dead-letter output: records that cannot be delivered or shaped, each with the reason, as JSON lines in
//! a file. Written before the runtime acknowledges the records they replace, and synced before every
//! checkpoint save, so a dead letter is never lost either.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Serialize)]
pub struct DeadLetterEntry<'a, T: Serialize> {
    /// Unix milliseconds.
    pub at: i64,
    pub pipeline: &'a str,
    /// `shape` or `sink:<name>`.
    pub stage: &'a str,
    pub reason: &'a str,
    /// The shaping config row the error concerns, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_id: Option<i64>,
    pub record: &'a T,
}

pub struct DeadLetter {
    path: PathBuf,
    file: File,
    pub written: u64,
}

impl DeadLetter {
    pub async fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path).await?;
        Ok(Self { path: path.to_path_buf(), file, written: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn write<T: Serialize>(&mut self, entry: &DeadLetterEntry<'_, T>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line).await?;
        self.written += 1;
        Ok(())
    }

    pub async fn sync(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        self.file.sync_data().await
    }
}
