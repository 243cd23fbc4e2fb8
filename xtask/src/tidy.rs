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
        rust_files(&root().join("fuzz"), &mut files);
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

    /// The image builds with the workspace's cargo settings (`.cargo/config.toml` sets the
    /// bundled SQLite's flags): the Dockerfile copies `.cargo` before it builds, and the build
    /// context does not leave it out.
    #[test]
    fn the_image_builds_with_the_cargo_settings_the_benchmarks_used() {
        let config = std::fs::read_to_string(root().join(".cargo/config.toml")).unwrap();
        assert!(
            config.contains("LIBSQLITE3_FLAGS"),
            "the setting this test is about"
        );
        let dockerfile = std::fs::read_to_string(root().join("docker/Dockerfile")).unwrap();
        let copy = dockerfile.find("\nCOPY .cargo .cargo\n");
        let build = dockerfile.find("cargo build");
        assert!(
            matches!((copy, build), (Some(c), Some(b)) if c < b),
            "docker/Dockerfile must `COPY .cargo .cargo` before `cargo build`"
        );
        let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
        assert!(
            !ignore
                .lines()
                .any(|l| l.trim().trim_start_matches("**/") == ".cargo"),
            ".dockerignore must not leave .cargo out of the build context"
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

    /// A version such as `1.88` as three numbers (`1.88` and `1.88.0` are the same).
    fn version(text: &str) -> Vec<u64> {
        let mut v: Vec<u64> = text.split('.').map(|p| p.parse().unwrap_or(0)).collect();
        v.resize(3, 0);
        v
    }

    /// The `rust-version` the workspace declares is what it takes: at least that of every
    /// dependency built here (read from the sources cargo downloaded, so no network is needed).
    #[test]
    fn the_declared_minimum_rust_version_covers_every_dependency() {
        let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
        let declared = manifest
            .lines()
            .find_map(|l| l.strip_prefix("rust-version = "))
            .map(|v| version(v.trim_matches('"')))
            .expect("the workspace declares a rust-version");
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
        let sources: Vec<PathBuf> = std::fs::read_dir(cargo_home.join("registry/src"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
        let mut checked = 0;
        let mut newer = Vec::new();
        for package in lock.split("[[package]]").skip(1) {
            let field = |key: &str| {
                package.lines().find_map(|l| {
                    l.strip_prefix(key)
                        .map(|v| v.trim_start_matches(" = ").trim_matches('"').to_owned())
                })
            };
            let (Some(name), Some(ver)) = (field("name"), field("version")) else {
                continue;
            };
            let Some(toml) = sources.iter().find_map(|s| {
                std::fs::read_to_string(s.join(format!("{name}-{ver}/Cargo.toml"))).ok()
            }) else {
                continue; // not built on this platform (or a workspace member)
            };
            checked += 1;
            let wanted = toml.lines().find_map(|l| {
                l.strip_prefix("rust-version")
                    .map(|v| version(v.trim_start_matches([' ', '=']).trim().trim_matches('"')))
            });
            if let Some(wanted) = wanted.filter(|w| *w > declared) {
                newer.push(format!("{name} {ver} needs {wanted:?}"));
            }
        }
        assert!(
            checked > 100,
            "found the sources of only {checked} dependencies under {}",
            cargo_home.display()
        );
        assert!(
            newer.is_empty(),
            "the workspace declares rust-version {declared:?}, but: {newer:#?}"
        );
    }
}
