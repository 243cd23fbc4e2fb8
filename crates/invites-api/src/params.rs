//! Parameter types whose documented schema is strict but whose parsing is left to the handler,
//! so each operation chooses the status a malformed value gets (400 where the contract lists it,
//! 404 where it does not).

use std::borrow::Cow;

use invites_domain::{Error, ObjectId};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseFromParameter, ParseResult, Type};

/// A path segment documented as a 24-hex id (`^([a-f0-9]{24})$`), accepted as any string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexId(pub String);

impl HexId {
    /// Parses the id, answering a malformed one with `on_malformed(raw)`.
    pub fn parse_or(&self, on_malformed: impl FnOnce(&str) -> Error) -> Result<ObjectId, Error> {
        self.0.parse().map_err(|_| on_malformed(&self.0))
    }
}

impl Type for HexId {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string(hex24)".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.pattern = Some("^([a-f0-9]{24})$".to_owned());
        schema.example = Some(serde_json::Value::String(
            "32b6e34b3d91647abb20e7b8".to_owned(),
        ));
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromParameter for HexId {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(HexId(value.to_owned()))
    }
}

/// A boolean query flag (`envelope`, `pretty`) documented as `boolean`, default false. `true` and
/// `false` (any case) are accepted; any other value is kept as given so that the handler refuses
/// it through the operation's own error enum (400 where the contract lists it, else 404), rather
/// than poem-openapi answering 400 everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag(pub Result<bool, String>);

impl Flag {
    /// The flag's value, or an `INVALID_ATTRIBUTE` error naming the parameter.
    pub fn value(flag: &Option<Flag>, name: &str) -> Result<bool, Error> {
        match flag {
            None => Ok(false),
            Some(Flag(Ok(v))) => Ok(*v),
            Some(Flag(Err(raw))) => Err(Error::new(
                invites_domain::ErrorCode::InvalidAttribute,
                format!("Query parameter {name} must be true or false, not {raw:?}."),
            )
            .with_parameter(name, raw.clone())
            .with_field(name, "must be true or false")),
        }
    }
}

impl Type for Flag {
    const IS_REQUIRED: bool = false;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "boolean".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("boolean");
        schema.default = Some(serde_json::Value::Bool(false));
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromParameter for Flag {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Flag(if value.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if value.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(value.chars().take(64).collect())
        }))
    }
}

/// An integer parameter (path id, `limit`, `offset`) documented as `integer` with the bounds the
/// handler enforces (`MIN`, `MAX`; the extremes of `i64` document none), accepted as any text so
/// the handler answers a non-integer or out-of-range value with its operation's documented status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntParam<const MIN: i64 = { i64::MIN }, const MAX: i64 = { i64::MAX }>(
    pub Result<i64, String>,
);

impl<const MIN: i64, const MAX: i64> IntParam<MIN, MAX> {
    /// The value, or `on_bad(raw)`.
    pub fn or(&self, on_bad: impl FnOnce(&str) -> Error) -> Result<i64, Error> {
        self.0.clone().map_err(|raw| on_bad(&raw))
    }
}

impl<const MIN: i64, const MAX: i64> Type for IntParam<MIN, MAX> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        format!("integer(int64, {MIN}..={MAX})").into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new_with_format("integer", "int64");
        schema.minimum = (MIN != i64::MIN).then_some(MIN as f64);
        schema.maximum = (MAX != i64::MAX).then_some(MAX as f64);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl<const MIN: i64, const MAX: i64> ParseFromParameter for IntParam<MIN, MAX> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(IntParam(
            value
                .parse::<i64>()
                .map_err(|_| value.chars().take(64).collect()),
        ))
    }
}
