//! Request bodies of the Atlas family: documented as `application/vnd.atlas.2023-01-01+json` with
//! their schema, accepted as that type or `application/json`, with or without parameters such as
//! `; charset=utf-8`, and parsed without failing the request: a body that is missing, of another
//! media type or not the documented shape reaches the handler as an [`Error`], so the operation's
//! error enum decides which documented status it gets.

use invites_domain::{Error, ErrorCode};
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::atlas::ATLAS_MEDIA_TYPE;

/// An Atlas request body: the parsed value, or why it could not be parsed.
#[derive(Debug)]
pub struct AtlasBody<T>(pub Result<T, Error>);

fn media_type_ok(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/vnd.atlas.") && essence.ends_with("+json"))
}

/// The largest body read here; the edge's limit is normally lower.
const MAX_BODY: usize = 1024 * 1024;

async fn parse<T: ParseFromJSON>(request: &Request, body: &mut RequestBody) -> Result<T, Error> {
    let content_type = request.content_type().unwrap_or("");
    if !media_type_ok(content_type) {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "The request body must be {ATLAS_MEDIA_TYPE} or application/json; got {:?}.",
                if content_type.is_empty() {
                    "no Content-Type"
                } else {
                    content_type
                }
            ),
        ));
    }
    let bytes = match body.take() {
        Ok(b) => b.into_bytes_limit(MAX_BODY).await.map_err(|_| {
            Error::new(
                ErrorCode::RequestTooLarge,
                "The request body could not be read within its size limit.",
            )
        })?,
        Err(_) => return Err(Error::internal()),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::new(
            ErrorCode::ValidationError,
            "A request body is required.",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorCode::ValidationError,
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    if !value.is_object() {
        return Err(Error::new(
            ErrorCode::ValidationError,
            "The request body must be a JSON object.",
        ));
    }
    if let Some(field) = first_null(&value, String::new()) {
        return Err(Error::new(
            ErrorCode::InvalidAttribute,
            format!("{field} must not be null."),
        )
        .with_parameter("field", field.clone())
        .with_field(field, "must not be null"));
    }
    T::parse_from_json(Some(value)).map_err(|e| {
        Error::new(
            ErrorCode::InvalidAttribute,
            format!(
                "The request body does not match {}: {}.",
                T::name(),
                e.into_message()
            ),
        )
    })
}

/// The path of the first `null` in a body. No field of the Atlas request schemas is nullable, and
/// poem-openapi would otherwise read `null` as an absent optional field.
fn first_null(v: &serde_json::Value, path: String) -> Option<String> {
    match v {
        serde_json::Value::Null => Some(path),
        serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            first_null(x, p)
        }),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| first_null(x, format!("{path}[{i}]"))),
        _ => None,
    }
}

impl<'a, T: ParseFromJSON + Type + Send> ApiExtractor<'a> for AtlasBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: ATLAS_MEDIA_TYPE,
                schema: T::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(AtlasBody(parse::<T>(request, body).await))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_real_clients_send() {
        for ct in [
            "application/vnd.atlas.2023-01-01+json",
            "application/vnd.atlas.2023-01-01+json; charset=utf-8",
            "application/vnd.atlas.2025-03-12+json",
            "application/json",
            "application/json;charset=UTF-8",
            "Application/JSON",
        ] {
            assert!(media_type_ok(ct), "{ct}");
        }
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
            "application/xml",
        ] {
            assert!(!media_type_ok(ct), "{ct}");
        }
    }

    #[test]
    fn nulls_are_found_at_any_depth() {
        let v = serde_json::json!({"roles": ["A"], "groupRoleAssignments": [{"groupId": "x"}, {"groupId": null}]});
        assert_eq!(
            first_null(&v, String::new()).as_deref(),
            Some("groupRoleAssignments[1].groupId")
        );
        assert_eq!(
            first_null(&serde_json::json!({"roles": []}), String::new()),
            None
        );
    }
}
