//! docs/backup.md promises that a sealed file can be restored without Sluice. This runs the page's own Python
//! recipe (Debian's python3 with python3-cryptography and python3-zstandard, installed by scripts/tools.sh)
//! on files Sluice sealed, and compares what it restores.

use std::process::Command;

use sluice_backup::{Compression, DataKey, seal};

const PYTHON: &str = "/usr/bin/python3";

fn recipe() -> String {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/backup.md")).unwrap();
    let start = page.find("```python\n").expect("docs/backup.md has a python block") + "```python\n".len();
    let end = start + page[start..].find("```").unwrap();
    page[start..end].to_string()
}

#[tokio::test]
async fn the_documented_recipe_restores_what_sluice_sealed() {
    let ok = Command::new(PYTHON).args(["-c", "import cryptography, zstandard"]).status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "tool `python3` with cryptography and zstandard is not available at {PYTHON}: run ./scripts/tools.sh (installs python3-cryptography and python3-zstandard)"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("unseal.py");
    std::fs::write(&script, recipe()).unwrap();
    let key = DataKey::generate();
    let key_file = dir.path().join("key.hex");
    std::fs::write(&key_file, hex::encode(key.as_bytes())).unwrap();
    let input: Vec<u8> = (0..1_000_000u32).flat_map(|i| format!("row {i},{}\n", i % 977).into_bytes()).collect();
    for (name, c, chunk) in [("zstd", Compression::Zstd(3), 1 << 20), ("plain", Compression::None, 65_536), ("empty", Compression::Zstd(3), 1024)] {
        let data = if name == "empty" { Vec::new() } else { input.clone() };
        let sealed_path = dir.path().join(format!("{name}.sealed"));
        let mut out = Vec::new();
        seal(&data[..], &mut out, &key, c, chunk).await.unwrap();
        std::fs::write(&sealed_path, &out).unwrap();
        let run = Command::new(PYTHON).arg(&script).arg(&sealed_path).arg(&key_file).output().unwrap();
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        assert!(run.stdout == data, "{name}: the recipe restored {} bytes, not the {} sealed", run.stdout.len(), data.len());
        // A damaged file makes the recipe fail, not print wrong bytes.
        let mut damaged = out.clone();
        let at = damaged.len() / 2;
        damaged[at] ^= 0x40;
        std::fs::write(&sealed_path, &damaged).unwrap();
        if !data.is_empty() {
            let run = Command::new(PYTHON).arg(&script).arg(&sealed_path).arg(&key_file).output().unwrap();
            assert!(!run.status.success(), "{name}: the recipe accepted a damaged file");
        }
    }
}
