//! Tidy checks run with the ordinary tests: source-file headers and Cargo.toml conventions.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') && name != "snapshots" {
                    rust_files(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn every_source_file_says_what_it_is_for() {
        let mut files = Vec::new();
        rust_files(&root().join("crates"), &mut files);
        rust_files(&root().join("xtask"), &mut files);
        assert!(files.len() > 10, "found only {} files", files.len());
        let missing: Vec<_> = files
            .iter()
            .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
            .collect();
        assert!(
            missing.is_empty(),
            "files without a leading `//!` line: {missing:?}"
        );
    }

    #[test]
    fn every_crate_uses_workspace_lints_and_is_in_architecture_md() {
        let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
        for entry in std::fs::read_dir(root().join("crates")).unwrap() {
            let dir = entry.unwrap().path();
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let toml = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            assert!(
                toml.contains(&format!("name = \"{name}\"")),
                "{name}: package name must equal folder name"
            );
            assert!(
                toml.contains("[lints]\nworkspace = true"),
                "{name}: must use workspace lints"
            );
            assert!(
                arch.contains(&format!("`crates/{name}`")),
                "ARCHITECTURE.md has no section for {name}"
            );
        }
    }
}
