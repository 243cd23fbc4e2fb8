//! A mock server driven only by OpenAPI documents ([`invites_contract::Contract`]): it routes by
//! each document's paths (under its `servers` base path), checks each request against its
//! operation (credentials, parameters, body), and answers a documented response: its example,
//! or one synthesized from the schema. In proxy mode it forwards to a real server instead and
//! reports every request and response that breaks the document.
//!
//! Everything is prepared once at start, so answering costs the same on a 600-operation document
//! as on a small one. Clients pick responses with Prism's conventions (`Prefer: code=404`,
//! `example=name`, `dynamic=true`, or the `__code`, `__example`, `__dynamic` query parameters);
//! `X-Mock-Operation` says which operation matched and `X-Mock-Violation` which rule a request
//! broke.

mod proxy;
mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

pub use invites_contract::{Contract, LoadError, LoadOptions, Operation, ParamIn};

/// How the mock answers.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// CORS headers on every answer, and preflight requests answered (Prism's default).
    pub cors: bool,
    /// Check parameters and bodies (credentials are always checked).
    pub validate: bool,
    /// Answer with generated data rather than the documented example.
    pub dynamic: bool,
    /// Makes generated data repeatable: the same request gets the same data.
    pub seed: Option<u64>,
    /// Forward to a real server instead of answering (proxy mode).
    pub proxy: Option<ProxyConfig>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            cors: true,
            validate: true,
            dynamic: false,
            seed: None,
            proxy: None,
        }
    }
}

/// Proxy mode: where requests go, and what violations do.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `http://host:port[/base]` of the real server.
    pub upstream: String,
    /// Violations answer 502 with a problem+json body instead of passing the answer through.
    pub errors: bool,
}

/// One document served, reloadable.
#[derive(Debug)]
pub struct Served {
    /// The file as given (or a name for a document given as text).
    pub name: String,
    path: Option<PathBuf>,
    options: LoadOptions,
    contract: RwLock<Arc<Contract>>,
    /// Modification times of the files read, to notice changes.
    stamps: Mutex<Vec<(PathBuf, Option<SystemTime>)>>,
}

fn stamps(files: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>)> {
    files
        .iter()
        .map(|f| {
            (
                f.clone(),
                std::fs::metadata(f).and_then(|m| m.modified()).ok(),
            )
        })
        .collect()
}

impl Served {
    /// The document at `path` (and the files it references).
    pub fn load(path: &std::path::Path, options: &LoadOptions) -> Result<Served, LoadError> {
        let contract = Contract::load(path, options)?;
        Ok(Served {
            name: path.display().to_string(),
            path: Some(path.to_path_buf()),
            options: options.clone(),
            stamps: Mutex::new(stamps(contract.files())),
            contract: RwLock::new(Arc::new(contract)),
        })
    }

    /// A document already prepared (not reloaded).
    pub fn from_contract(name: &str, contract: Contract) -> Served {
        Served {
            name: name.to_owned(),
            path: None,
            options: LoadOptions::default(),
            stamps: Mutex::new(Vec::new()),
            contract: RwLock::new(Arc::new(contract)),
        }
    }

    /// The document as served now.
    pub fn contract(&self) -> Arc<Contract> {
        self.contract
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the document again if one of its files changed: Some(Ok(operations)) when the new
    /// version serves, Some(Err) when it cannot (the old one keeps serving), None when nothing
    /// changed.
    pub fn reload_if_changed(&self) -> Option<Result<usize, LoadError>> {
        let path = self.path.as_ref()?;
        let mut known = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamps(&known.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
        if now == *known {
            return None;
        }
        *known = now;
        match Contract::load(path, &self.options) {
            Ok(c) => {
                let operations = c.operations().len();
                *known = stamps(c.files());
                *self.contract.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
                Some(Ok(operations))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// The mock (or proxy) of one or more documents.
#[derive(Debug)]
pub struct Mock {
    specs: Vec<Served>,
    config: MockConfig,
    /// Violations seen in proxy mode, by (operation, rule).
    violations: Mutex<BTreeMap<(String, String), u64>>,
    /// Requests answered, for seeds of generated data without `--seed`.
    counter: AtomicU64,
    client: Option<reqwest::Client>,
}

impl Mock {
    /// A mock of documents, each under its own base path.
    pub fn new(specs: Vec<Served>, config: MockConfig) -> Mock {
        let client = config.proxy.as_ref().map(|_| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a plain HTTP client builds")
        });
        Mock {
            specs,
            config,
            violations: Mutex::new(BTreeMap::new()),
            counter: AtomicU64::new(0),
            client,
        }
    }

    /// A mock of one document given as JSON text, with the default configuration.
    pub fn from_json(text: &str) -> Result<Mock, LoadError> {
        Ok(Mock::new(
            vec![Served::from_contract(
                "document",
                Contract::from_json(text)?,
            )],
            MockConfig::default(),
        ))
    }

    /// The documents served.
    pub fn specs(&self) -> &[Served] {
        &self.specs
    }

    /// The first document (the only one, usually).
    pub fn contract(&self) -> Arc<Contract> {
        self.specs[0].contract()
    }

    /// Checks every document for changed files and reloads those (see
    /// [`Served::reload_if_changed`]); logs what happened.
    pub fn reload_changed(&self) {
        for s in &self.specs {
            match s.reload_if_changed() {
                Some(Ok(n)) => {
                    tracing::info!(spec = s.name, operations = n, "document changed: reloaded")
                }
                Some(Err(e)) => tracing::error!(
                    spec = s.name,
                    error = %e,
                    "document changed but cannot be served; the previous version keeps serving"
                ),
                None => {}
            }
        }
    }

    /// A poem endpoint sharing this mock (the caller keeps it for [`Mock::summary`]).
    pub fn endpoint(self: &Arc<Self>) -> SharedMock {
        SharedMock(Arc::clone(self))
    }

    pub(crate) fn record_violation(&self, operation: &str, rule: &str) {
        let mut v = self.violations.lock().unwrap_or_else(|e| e.into_inner());
        *v.entry((operation.to_owned(), rule.to_owned()))
            .or_insert(0) += 1;
    }

    /// Violations seen in proxy mode: a line per operation and rule with its count, or None.
    pub fn summary(&self) -> Option<String> {
        let v = self.violations.lock().unwrap_or_else(|e| e.into_inner());
        if v.is_empty() {
            return None;
        }
        let total: u64 = v.values().sum();
        let mut out = format!("{total} contract violation(s) seen:\n");
        for ((op, rule), n) in v.iter() {
            out.push_str(&format!("  {n:>6}  {op}: {rule}\n"));
        }
        Some(out)
    }

    pub(crate) fn next_seed(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// [`Mock`] behind an `Arc`, as a poem endpoint.
#[derive(Debug, Clone)]
pub struct SharedMock(pub Arc<Mock>);

impl poem::Endpoint for SharedMock {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        self.0.call(req).await
    }
}
