//! JSON request bodies of the Atlas and Ops Manager families: documented with their family's media
//! type (`application/vnd.atlas.2023-01-01+json`, `application/json`) and schema, accepted as any
//! JSON media type (`application/json`, `application/vnd.atlas.*+json`) with or without parameters
//! such as `; charset=utf-8`, and parsed without failing the request: a body that is missing, of
//! another media type or not the documented shape reaches the handler as an [`Error`], so the
//! operation's error enum decides which documented status it gets.
//!
//! [`LenientForm`] does the same for `application/x-www-form-urlencoded` bodies (the OAuth2 token
//! endpoint).

use invites_domain::{Error, ErrorCode};
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::atlas::ATLAS_MEDIA_TYPE;

/// The media type a lenient JSON body is documented with.
pub trait DocumentedMediaType: Send {
    const MEDIA_TYPE: &'static str;
}

/// Documented as `application/vnd.atlas.2023-01-01+json` (the Atlas family).
#[derive(Debug)]
pub struct AtlasMedia;

impl DocumentedMediaType for AtlasMedia {
    const MEDIA_TYPE: &'static str = ATLAS_MEDIA_TYPE;
}

/// Documented as `application/json` (the Ops Manager family).
#[derive(Debug)]
pub struct PlainJson;

impl DocumentedMediaType for PlainJson {
    const MEDIA_TYPE: &'static str = "application/json";
}

/// A JSON request body: the parsed value, or why it could not be parsed.
#[derive(Debug)]
pub struct LenientJson<T, M>(pub Result<T, Error>, std::marker::PhantomData<M>);

/// An Atlas request body.
pub type AtlasBody<T> = LenientJson<T, AtlasMedia>;
/// An Ops Manager request body.
pub type OpsManagerBody<T> = LenientJson<T, PlainJson>;

impl<T, M> LenientJson<T, M> {
    /// The parsed body, or the error that explains why there is none.
    pub fn into_result(self) -> Result<T, Error> {
        self.0
    }
}

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

/// A request's Content-Type as an error message quotes it.
fn shown_content_type(content_type: &str) -> &str {
    if content_type.is_empty() {
        "no Content-Type"
    } else {
        content_type
    }
}

/// Reads the whole body, up to `limit` bytes (`code` when it is larger; a 400
/// `VALIDATION_ERROR` when the client stopped sending it, which every operation can answer).
pub(crate) async fn read_body(
    body: &mut RequestBody,
    limit: usize,
    code: ErrorCode,
) -> Result<bytes::Bytes, Error> {
    match body.take() {
        Ok(b) => b.into_bytes_limit(limit).await.map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => Error::new(
                code,
                "The request body could not be read within its size limit.",
            ),
            _ => Error::new(
                ErrorCode::ValidationError,
                "The request body could not be read.",
            ),
        }),
        Err(_) => Err(Error::internal()),
    }
}

async fn parse<T: ParseFromJSON + Type>(
    request: &Request,
    body: &mut RequestBody,
    documented: &str,
) -> Result<T, Error> {
    let content_type = request.content_type().unwrap_or("");
    if !media_type_ok(content_type) {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "The request body must be {documented} (or another JSON media type); got {:?}.",
                shown_content_type(content_type)
            ),
        ));
    }
    let bytes = read_body(body, MAX_BODY, ErrorCode::RequestTooLarge).await?;
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
    if let Some(field) = first_null::<T>(&value) {
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

/// The path of the first `null` in a body's documented properties. No field of the Atlas request
/// schemas is nullable, and poem-openapi would otherwise read `null` as an absent optional field.
/// Properties the schema does not name are ignored whatever they hold (the contract allows them:
/// `"extra": [1, null]` was refused as "extra[1] must not be null").
fn first_null<T: Type>(v: &serde_json::Value) -> Option<String> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    null_in(&registry, &T::schema_ref(), v, String::new())
}

fn null_in(
    registry: &Registry,
    schema: &MetaSchemaRef,
    v: &serde_json::Value,
    path: String,
) -> Option<String> {
    let schema = match schema {
        MetaSchemaRef::Inline(s) => s.as_ref(),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name)?,
    };
    match v {
        serde_json::Value::Null => Some(path),
        serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
            let (_, property) = schema.properties.iter().find(|(name, _)| name == k)?;
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            null_in(registry, property, x, p)
        }),
        serde_json::Value::Array(a) => {
            let items = schema.items.as_deref()?;
            a.iter()
                .enumerate()
                .find_map(|(i, x)| null_in(registry, items, x, format!("{path}[{i}]")))
        }
        _ => None,
    }
}

impl<'a, T: ParseFromJSON + Type + Send, M: DocumentedMediaType> ApiExtractor<'a>
    for LenientJson<T, M>
{
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
                content_type: M::MEDIA_TYPE,
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
        Ok(LenientJson(
            parse::<T>(request, body, M::MEDIA_TYPE).await,
            std::marker::PhantomData,
        ))
    }
}

/// A form body (`application/x-www-form-urlencoded`): the parsed value, or why it could not be
/// parsed. Unlike poem-openapi's `Form`, a missing or foreign Content-Type reaches the handler.
#[derive(Debug)]
pub struct LenientForm<T>(pub Result<T, Error>);

impl<T> LenientForm<T> {
    /// The parsed body, or the error that explains why there is none.
    pub fn into_result(self) -> Result<T, Error> {
        self.0
    }
}

const FORM_MEDIA_TYPE: &str = "application/x-www-form-urlencoded";

async fn parse_form<T: serde::de::DeserializeOwned>(
    request: &Request,
    body: &mut RequestBody,
) -> Result<T, Error> {
    let content_type = request.content_type().unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(FORM_MEDIA_TYPE) {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "The request body must be {FORM_MEDIA_TYPE}; got {:?}.",
                shown_content_type(content_type)
            ),
        ));
    }
    let bytes = read_body(body, MAX_BODY, ErrorCode::RequestTooLarge).await?;
    serde_urlencoded::from_bytes(&bytes).map_err(|e| {
        Error::new(
            ErrorCode::ValidationError,
            format!("The form body is not acceptable: {e}."),
        )
    })
}

impl<'a, T: serde::de::DeserializeOwned + Type + Send> ApiExtractor<'a> for LenientForm<T> {
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
                content_type: FORM_MEDIA_TYPE,
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
        Ok(LenientForm(parse_form::<T>(request, body).await))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_cut_short_is_a_400_and_a_long_one_the_given_code() {
        /// A client that sends a byte, then resets the connection.
        struct Cut(bool);
        impl tokio::io::AsyncRead for Cut {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if std::mem::replace(&mut self.0, true) {
                    return std::task::Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
                }
                buf.put_slice(b"{");
                std::task::Poll::Ready(Ok(()))
            }
        }
        let cut = poem::Body::from_async_read(Cut(false));
        let e = read_body(&mut RequestBody::new(cut), 100, ErrorCode::RequestTooLarge)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
        let long = poem::Body::from(vec![b' '; 101]);
        let e = read_body(&mut RequestBody::new(long), 100, ErrorCode::RequestTooLarge)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestTooLarge);
    }

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
    fn nulls_are_found_in_documented_properties_at_any_depth() {
        use crate::model::OrganizationInvitationRequest as Request;
        let v = serde_json::json!({"roles": ["A"], "groupRoleAssignments": [{"groupId": "x"}, {"groupId": null}]});
        assert_eq!(
            first_null::<Request>(&v).as_deref(),
            Some("groupRoleAssignments[1].groupId")
        );
        assert_eq!(
            first_null::<Request>(&serde_json::json!({"roles": []})),
            None
        );
        assert_eq!(
            first_null::<Request>(&serde_json::json!({"roles": null})).as_deref(),
            Some("roles")
        );
        // Unknown properties are the client's business, whatever they hold.
        let v = serde_json::json!({"roles": ["A"], "extra": [1, null], "other": null, "deep": {"x": null}});
        assert_eq!(first_null::<Request>(&v), None);
    }
}
