//! Serialised invitation lists, kept and served again while their scope's version stands.
//!
//! A list of 1,000 invitations is about 400 KB of JSON and takes milliseconds of CPU to read and
//! build; asked again with nothing changed it is the same bytes. An entry is keyed by everything
//! the bytes depend on (the scope, the username filter, the base URL the `links` are written
//! with) and tagged with the scope's version as read together with the rows. A request reads the
//! scope's current version first (one indexed read, after authorization) and is served the entry
//! only when the tags match, otherwise it reads the list and keeps it. The version moves in the
//! same transaction as any change to the scope's invitations, whoever makes it (database
//! triggers), so what the cache answers is what the database would answer at that moment, on
//! every replica.
//!
//! Bounded: a body over [`MAX_ENTRY_BYTES`] is not kept, and past [`MAX_BYTES`] in all the
//! entries kept longest go first.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::Mutex;

use bytes::Bytes;
use invites_domain::{Error, Invitation};
use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};

use crate::backend::{Backend, Caller, Scope};

/// All kept bodies together at most.
pub const MAX_BYTES: usize = 4 << 20;
/// The largest body kept.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

/// What a list's bytes depend on besides the data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub scope: Scope,
    pub username: Option<String>,
    pub base: String,
}

struct Entry {
    version: i64,
    body: Bytes,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Keys in the order they were kept, oldest first (a key appears once).
    order: VecDeque<Key>,
    bytes: usize,
}

/// The kept lists of one server.
#[derive(Default)]
pub struct ListCache {
    inner: Mutex<Inner>,
    /// Where hits and misses are counted.
    metrics: Option<std::sync::Arc<invites_metrics::Metrics>>,
}

impl ListCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts its hits and misses in `metrics`.
    pub fn with_metrics(
        mut self,
        metrics: Option<std::sync::Arc<invites_metrics::Metrics>>,
    ) -> Self {
        self.metrics = metrics;
        self
    }

    /// The body kept for `key` if it was read at `version`.
    pub fn get(&self, key: &Key, version: i64) -> Option<Bytes> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .entries
            .get(key)
            .filter(|e| e.version == version)
            .map(|e| e.body.clone())
    }

    /// Keeps `body` as `key`'s list at `version`, in place of what was kept for it.
    pub fn put(&self, key: Key, version: i64, body: Bytes) {
        if body.len() > MAX_ENTRY_BYTES {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = inner.entries.remove(&key) {
            inner.bytes -= old.body.len();
            inner.order.retain(|k| k != &key);
        }
        while inner.bytes + body.len() > MAX_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(old) = inner.entries.remove(&oldest) {
                inner.bytes -= old.body.len();
            }
        }
        inner.bytes += body.len();
        inner.order.push_back(key.clone());
        inner.entries.insert(key, Entry { version, body });
    }

    /// Bytes kept in all.
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

/// The body of `scope`'s pending invitations (optionally for one username) as `render` turns them
/// into the operation's JSON, from the cache while the scope's version stands.
pub async fn pending_list<T: ToJSON>(
    backend: &dyn Backend,
    cache: &ListCache,
    caller: &Caller,
    key: Key,
    render: impl FnOnce(&[Invitation], &str) -> T,
) -> Result<Bytes, Error> {
    let version = backend.invitations_version(caller, key.scope).await?;
    let kept = cache.get(&key, version);
    if let Some(metrics) = &cache.metrics {
        metrics.list_cache(kept.is_some());
    }
    if let Some(body) = kept {
        return Ok(body);
    }
    let (version, list) = backend
        .list_invitations_versioned(caller, key.scope, key.username.as_deref())
        .await?;
    // What `poem_openapi::payload::Json` would send for the same value.
    let body = Bytes::from(
        serde_json::to_vec(&render(&list, &key.base).to_json()).expect("JSON values serialise"),
    );
    if let Some(version) = version {
        cache.put(key, version, body.clone());
    }
    Ok(body)
}

/// A JSON body already serialised, documented as `T`: the same schema and bytes as
/// `poem_openapi::payload::Json<T>`, without building the value again.
pub struct JsonBytes<T> {
    body: Bytes,
    of: PhantomData<fn() -> T>,
}

impl<T> JsonBytes<T> {
    pub fn new(body: Bytes) -> Self {
        JsonBytes {
            body,
            of: PhantomData,
        }
    }
}

impl<T: Type> Payload for JsonBytes<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for JsonBytes<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use invites_domain::ObjectId;

    fn key(n: u8) -> Key {
        Key {
            scope: Scope::AtlasOrg(ObjectId::from_bytes([n; 12])),
            username: None,
            base: "http://h".into(),
        }
    }

    #[test]
    fn an_entry_is_served_only_at_its_version() {
        let cache = ListCache::new();
        cache.put(key(1), 7, Bytes::from_static(b"[1]"));
        assert_eq!(cache.get(&key(1), 7).as_deref(), Some(&b"[1]"[..]));
        assert_eq!(cache.get(&key(1), 8), None, "the scope changed since");
        assert_eq!(cache.get(&key(2), 7), None, "another scope");
        let other_base = Key {
            base: "http://other".into(),
            ..key(1)
        };
        assert_eq!(
            cache.get(&other_base, 7),
            None,
            "links written for another host"
        );
        cache.put(key(1), 8, Bytes::from_static(b"[2]"));
        assert_eq!(cache.get(&key(1), 8).as_deref(), Some(&b"[2]"[..]));
        assert_eq!(cache.bytes(), 3, "the entry was replaced, not added");
    }

    #[test]
    fn the_cache_stays_within_its_bounds() {
        let cache = ListCache::new();
        cache.put(key(0), 1, Bytes::from(vec![b' '; MAX_ENTRY_BYTES + 1]));
        assert_eq!(cache.bytes(), 0, "too large to keep");
        let body = Bytes::from(vec![b' '; MAX_ENTRY_BYTES]);
        for n in 1..=10 {
            cache.put(key(n), 1, body.clone());
            assert!(cache.bytes() <= MAX_BYTES);
        }
        assert_eq!(cache.get(&key(1), 1), None, "the oldest went first");
        assert!(cache.get(&key(10), 1).is_some(), "the newest stays");
    }
}
