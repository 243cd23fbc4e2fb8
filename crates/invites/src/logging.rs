//! Where the log goes and how it looks: tracing events to stderr, as text for a person (colour
//! only on a terminal) or, with `--log-format json`, one JSON object per line for a collector.
//!
//! A JSON line holds `timestamp` (RFC 3339, UTC), `level`, `target`, the event's own fields
//! (`message` among them) and the fields of every span it happened in, flattened: each line of a
//! request carries its `request_id`, and the request's own line `method`, `path` (the documented
//! template), `status`, `latency_us` and `principal` (see `invites_api::edge`).

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The shape of log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; the request id in the span prefix (`request{request_id=...}`).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `INVITES_LOG` when it holds a valid filter, else `info,sqlx=warn`.
fn filter() -> EnvFilter {
    EnvFilter::try_from_env("INVITES_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"))
}

/// Installs the process's logger, writing to stderr.
pub fn init(format: LogFormat) {
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            // Colour codes only for a person at a terminal, never in a file or a collector.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => json_subscriber(filter(), std::io::stderr).init(),
    }
}

/// A subscriber writing JSON lines to `writer`.
fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(filter)
        .with(SpanFields)
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLines)
                .with_writer(writer),
        )
}

/// A span's fields as JSON values, kept in the span's extensions by [`SpanFields`].
struct SpanJson(Map<String, Value>);

/// Records every span's fields (at creation and when recorded later) for [`JsonLines`].
struct SpanFields;

impl<S> Layer<S> for SpanFields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanJson(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<SpanJson>() {
                values.record(&mut JsonVisitor(&mut fields.0));
            }
        }
    }
}

/// Formats an event as one JSON object on one line.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().to_string().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanJson>() {
                    line.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        // serde_json escapes control characters: a field cannot break the line.
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects fields as JSON values: numbers and booleans as themselves, the rest as text.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn json_lines_flatten_span_fields_into_each_event() {
        let buffer = Buffer::default();
        let subscriber = json_subscriber(EnvFilter::new("info"), buffer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::error_span!("request", request_id = "r-1", later = tracing::field::Empty);
            let _in = span.enter();
            span.record("later", 7u64);
            tracing::info!(status = 204u16, method = %"DELETE", ok = true, "done\nsecond line");
            tracing::debug!("filtered out");
        });
        tracing::subscriber::with_default(
            json_subscriber(EnvFilter::new("info"), buffer.clone()),
            || {
                tracing::warn!(error = %"outside any request", "no span");
            },
        );
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["request_id"], "r-1");
        assert_eq!(first["later"], 7);
        assert_eq!(first["status"], 204);
        assert_eq!(first["method"], "DELETE");
        assert_eq!(first["ok"], true);
        assert_eq!(first["message"], "done\nsecond line");
        assert!(chrono::DateTime::parse_from_rfc3339(first["timestamp"].as_str().unwrap()).is_ok());
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["error"], "outside any request");
        assert!(lines[1].get("request_id").is_none());
    }
}
