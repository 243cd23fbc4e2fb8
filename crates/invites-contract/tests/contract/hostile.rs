//! Hostile and broken documents (`hostile/`, small files; large ones are written at run time):
//! each is refused with one line naming the file and the place, never a panic, a stack
//! overflow, memory exhaustion, a read outside the document's folder or, unless allowed, a
//! request to the network (remote references against a loopback server).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use invites_contract::{Contract, LoadOptions};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/contract/hostile")
        .join(name)
}

/// The error of loading `path` with `options`, as one line.
fn refusal(path: &Path, options: &LoadOptions) -> String {
    let err = Contract::load(path, options)
        .map(|_| ())
        .expect_err("the document is refused")
        .to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    err
}

#[test]
fn a_reference_cycle_across_files_is_named() {
    let err = refusal(&fixture("cycle/a.yaml"), &LoadOptions::default());
    assert!(
        err.contains("a.yaml#/") && err.contains("cycle") && err.contains("b.yaml#/B ->"),
        "{err}"
    );
}

#[test]
fn a_schema_recursive_across_files_loads() {
    let contract = Contract::load(&fixture("recursive/a.yaml"), &LoadOptions::default()).unwrap();
    let op = &contract.operations()[0];
    let schema = op.responses[0].contents[0].schema.unwrap();
    let tree = json!({"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]});
    let schemas = contract.schemas();
    assert!(schemas
        .validate(schema, &tree, "body", invites_contract::Strictness::Exact)
        .is_ok());
    let bad = json!({"name": "a", "children": [{"children": [{"name": 3}]}]});
    assert!(schemas
        .validate(schema, &bad, "body", invites_contract::Strictness::Exact)
        .is_err());
}

#[test]
fn a_reference_that_points_nowhere_is_named() {
    let err = refusal(&fixture("unresolved/root.yaml"), &LoadOptions::default());
    assert!(err.contains("root.yaml"), "{err}");
    assert!(
        err.contains("points nowhere") && err.contains("\"Pet\""),
        "{err}"
    );
    assert!(err.contains("/content/application~1json/schema"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.yaml");
    std::fs::write(
        &root,
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a: {$ref: 'missing.yaml'}\n",
    )
    .unwrap();
    let err = refusal(&root, &LoadOptions::default());
    assert!(
        err.contains("root.yaml#") && err.contains("missing.yaml"),
        "{err}"
    );
}

#[test]
fn what_is_not_an_openapi_document_is_named() {
    for (file, says) in [
        ("not-openapi.json", "openapi"),
        ("swagger2.yaml", "openapi"),
        ("scalar.yaml", "openapi"),
    ] {
        let err = refusal(&fixture(file), &LoadOptions::default());
        assert!(err.contains(file) && err.contains(says), "{file}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    // Random bytes (a fixed generator, so the run repeats), NUL bytes, invalid UTF-8, nothing.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let cases: [(&str, Vec<u8>, &str); 6] = [
        ("random.bin", random, "not UTF-8"),
        ("nul.yaml", vec![0; 64], "NUL byte at offset 0"),
        (
            "nul-in.yaml",
            b"openapi: 3.0.3\npaths: {}\n\0\0\0".to_vec(),
            "offset 25",
        ),
        (
            "latin1.yaml",
            b"openapi: 3.0.3\ninfo: {title: caf\xe9}\n".to_vec(),
            "offset 32",
        ),
        ("empty.yaml", Vec::new(), "openapi"),
        ("binary.json", b"{\"a\": \"\x01\x02\"}".to_vec(), "JSON"),
    ];
    for (name, bytes, says) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = refusal(&path, &LoadOptions::default());
        assert!(err.contains(name) && err.contains(says), "{name}: {err}");
    }
}

#[test]
fn nesting_ten_thousand_deep_is_refused_not_overflowed() {
    let dir = tempfile::tempdir().unwrap();
    let n = 10_000;
    let cases = [
        (
            "deep.json",
            format!("{{\"openapi\": {}0{}}}", "[".repeat(n), "]".repeat(n)),
        ),
        (
            "deep-objects.json",
            format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)),
        ),
        (
            "deep-flow.yaml",
            format!("openapi: {}0{}\n", "[".repeat(n), "]".repeat(n)),
        ),
        (
            "deep-block.yaml",
            (0..n).map(|i| format!("{}a:\n", " ".repeat(i))).collect(),
        ),
    ];
    for (name, text) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = refusal(&path, &LoadOptions::default());
        assert!(
            err.contains(name) && err.contains("nested"),
            "{name}: {err}"
        );
    }
}

#[test]
fn references_stay_in_the_document_folder() {
    let root = fixture("outside/doc/root.yaml");
    let err = refusal(&root, &LoadOptions::default());
    assert!(
        err.contains("leaves the document's folder") && err.contains("--allow-ref-outside"),
        "{err}"
    );
    let allowed = LoadOptions {
        allow_outside: vec![fixture("outside")],
        ..LoadOptions::default()
    };
    assert!(Contract::load(&root, &allowed).is_ok());

    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc");
    std::fs::create_dir(&doc).unwrap();
    std::fs::write(dir.path().join("outside.yaml"), "S: {type: string}\n").unwrap();
    let spec = |reference: &str| {
        format!(
            "openapi: 3.0.3\ninfo: {{title: t, version: '1'}}\npaths:\n  /x:\n    get:\n      \
             responses:\n        '200':\n          description: ok\n          content:\n            \
             application/json:\n              schema: {{$ref: '{reference}'}}\n"
        )
    };
    let outside = dir.path().join("outside.yaml");
    let absolute = format!("{}#/S", outside.display());
    for reference in [
        "../../../../../../etc/passwd",
        "/etc/passwd",
        absolute.as_str(),
    ] {
        std::fs::write(doc.join("root.yaml"), spec(reference)).unwrap();
        let err = refusal(&doc.join("root.yaml"), &LoadOptions::default());
        assert!(
            err.contains("leaves the document's folder"),
            "{reference}: {err}"
        );
    }
    // A link inside the folder to a file outside it is followed before the check.
    std::os::unix::fs::symlink(&outside, doc.join("inside.yaml")).unwrap();
    std::fs::write(doc.join("root.yaml"), spec("inside.yaml#/S")).unwrap();
    let err = refusal(&doc.join("root.yaml"), &LoadOptions::default());
    assert!(err.contains("leaves the document's folder"), "{err}");
    // So is a link to a folder outside.
    std::os::unix::fs::symlink(dir.path(), doc.join("up")).unwrap();
    std::fs::write(doc.join("root.yaml"), spec("up/outside.yaml#/S")).unwrap();
    let err = refusal(&doc.join("root.yaml"), &LoadOptions::default());
    assert!(err.contains("leaves the document's folder"), "{err}");
    let allowed = LoadOptions {
        allow_outside: vec![dir.path().to_path_buf()],
        ..LoadOptions::default()
    };
    assert!(Contract::load(&doc.join("root.yaml"), &allowed).is_ok());
    // A link that stays inside is fine.
    std::fs::write(doc.join("real.yaml"), "S: {type: integer}\n").unwrap();
    std::os::unix::fs::symlink(doc.join("real.yaml"), doc.join("alias.yaml")).unwrap();
    std::fs::write(doc.join("root.yaml"), spec("alias.yaml#/S")).unwrap();
    assert!(Contract::load(&doc.join("root.yaml"), &LoadOptions::default()).is_ok());
}

#[test]
fn files_and_sizes_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // A chain of files, each naming the next.
    std::fs::write(
        dir.path().join("root.yaml"),
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\ncomponents:\n  schemas:\n    \
         S: {$ref: 'f1.yaml#/S'}\n",
    )
    .unwrap();
    for i in 1..=20 {
        std::fs::write(
            dir.path().join(format!("f{i}.yaml")),
            if i < 20 {
                format!("S: {{$ref: 'f{}.yaml#/S'}}\n", i + 1)
            } else {
                "S: {type: string}\n".to_owned()
            },
        )
        .unwrap();
    }
    let root = dir.path().join("root.yaml");
    assert!(Contract::load(&root, &LoadOptions::default()).is_ok());
    let few = LoadOptions {
        max_files: 10,
        ..LoadOptions::default()
    };
    let err = refusal(&root, &few);
    assert!(
        err.contains("f9.yaml#") && err.contains("more than 10 files (--max-files)"),
        "{err}"
    );
    let small = LoadOptions {
        max_file_bytes: 50,
        ..LoadOptions::default()
    };
    let err = refusal(&root, &small);
    assert!(
        err.contains("root.yaml#") && err.contains("--max-file-bytes"),
        "{err}"
    );
}

/// A loopback HTTP server answering GETs of `files` (path to body; 404 otherwise) after `delay`,
/// for at most 10 s: its base URL and the count of connections it accepted.
fn http_server(files: Vec<(&'static str, String)>, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request).into_owned();
            let path = request.split(' ').nth(1).unwrap_or_default().to_owned();
            std::thread::sleep(delay);
            let answer = match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
            };
            let _ = s.write_all(answer.as_bytes());
        }
    });
    (base, accepted)
}

/// A document whose one response's schema is `reference`.
fn referring_to(dir: &Path, reference: &str) -> PathBuf {
    let path = dir.join("root.yaml");
    std::fs::write(
        &path,
        format!(
            "openapi: 3.0.3\ninfo: {{title: t, version: '1'}}\npaths:\n  /pet:\n    get:\n      \
             responses:\n        '200':\n          description: ok\n          content:\n            \
             application/json:\n              schema: {{$ref: '{reference}'}}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn remote_references_are_fetched_only_when_allowed() {
    let (base, accepted) = http_server(
        vec![
            (
                "/schemas/pet.yaml",
                "Pet:\n  type: object\n  required: [name]\n  properties:\n    name: {$ref: '../common.yaml#/Name'}\n".into(),
            ),
            ("/common.yaml", "Name: {type: string, maxLength: 5}\n".into()),
        ],
        Duration::ZERO,
    );
    let dir = tempfile::tempdir().unwrap();
    let root = referring_to(dir.path(), &format!("{base}/schemas/pet.yaml#/Pet"));
    let err = refusal(&root, &LoadOptions::default());
    assert!(
        err.contains("root.yaml#") && err.contains("not fetched unless --allow-remote-refs"),
        "{err}"
    );
    // No request left: the server never saw a connection.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(accepted.load(Ordering::SeqCst), 0);

    let allowed = LoadOptions {
        allow_remote_refs: true,
        ..LoadOptions::default()
    };
    let contract = Contract::load(&root, &allowed).unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "each file fetched once");
    let schema = contract.operations()[0].responses[0].contents[0]
        .schema
        .unwrap();
    let strict = invites_contract::Strictness::Exact;
    let schemas = contract.schemas();
    assert!(schemas
        .validate(schema, &json!({"name": "Rex"}), "b", strict)
        .is_ok());
    assert!(schemas
        .validate(schema, &json!({"name": "Rexxxx"}), "b", strict)
        .is_err());
    assert_eq!(contract.files().len(), 1, "remote files are not watched");

    // A remote file that is not there is named by its URL.
    let root = referring_to(dir.path(), &format!("{base}/nope.yaml#/Pet"));
    let err = refusal(&root, &allowed);
    assert!(
        err.contains(&format!("{base}/nope.yaml#: answered 404 Not Found")),
        "{err}"
    );
    // https would need a TLS client, which the mock does not have.
    let root = referring_to(dir.path(), "https://127.0.0.1:9/x.yaml#/Pet");
    let err = refusal(&root, &allowed);
    assert!(err.contains("no TLS client"), "{err}");
}

#[test]
fn remote_references_are_bounded_in_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let (slow, _) = http_server(
        vec![("/pet.yaml", "Pet: {type: string}\n".into())],
        Duration::from_secs(3),
    );
    let root = referring_to(dir.path(), &format!("{slow}/pet.yaml#/Pet"));
    let options = LoadOptions {
        allow_remote_refs: true,
        remote_timeout: Duration::from_millis(300),
        ..LoadOptions::default()
    };
    let started = Instant::now();
    let err = refusal(&root, &options);
    assert!(
        err.contains(&format!("{slow}/pet.yaml#"))
            && err.contains("within 300ms (--remote-ref-timeout)"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let big = format!(
        "Pet: {{type: string, description: '{}'}}\n",
        "x".repeat(10_000)
    );
    let (base, _) = http_server(vec![("/pet.yaml", big)], Duration::ZERO);
    let root = referring_to(dir.path(), &format!("{base}/pet.yaml#/Pet"));
    let options = LoadOptions {
        allow_remote_refs: true,
        max_file_bytes: 4096,
        ..LoadOptions::default()
    };
    let err = refusal(&root, &options);
    assert!(
        err.contains("larger than 4096 bytes (--max-file-bytes)"),
        "{err}"
    );
}
