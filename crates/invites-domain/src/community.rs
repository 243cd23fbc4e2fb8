//! Community platform rules: targets (groups and courses), who may manage their invitations, and
//! the parser of the `users` list that the removal and invitation endpoints take.

use crate::error::{Error, ErrorCode};
use crate::roles::CommunityRole;

/// A community group or a course, by its integer id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommunityTarget {
    Group(i64),
    Course(i64),
}

impl CommunityTarget {
    pub fn id(self) -> i64 {
        match self {
            CommunityTarget::Group(id) | CommunityTarget::Course(id) => id,
        }
    }

    /// `group` or `course`, as in the paths.
    pub fn kind(self) -> &'static str {
        match self {
            CommunityTarget::Group(_) => "group",
            CommunityTarget::Course(_) => "course",
        }
    }
}

/// A user with a pending invitation, as the list endpoint shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitedUser {
    pub id: i64,
    pub username: String,
    pub real_name: String,
    pub avatar: Option<String>,
    pub ext_id: Option<String>,
}

/// No such group or course.
pub fn not_found(target: CommunityTarget) -> Error {
    Error::new(
        ErrorCode::CommunityResourceNotFound,
        format!("No {} with id {} exists.", target.kind(), target.id()),
    )
    .with_parameter("id", target.id().to_string())
}

/// The caller may not manage the target's invitations ([`may_manage`] said no).
pub fn not_a_manager(target: CommunityTarget) -> Error {
    Error::new(
        ErrorCode::UserUnauthorized,
        match target {
            CommunityTarget::Group(_) => "Only the group's managers may do this.",
            CommunityTarget::Course(_) => "Only the course's creator or managers may do this.",
        },
    )
}

/// A join by someone without a pending invitation to the target.
pub fn no_pending_invitation(target: CommunityTarget) -> Error {
    Error::new(
        ErrorCode::InvitationNotFound,
        format!(
            "You have no pending invitation to {} {}.",
            target.kind(),
            target.id()
        ),
    )
}

/// Removal and invitation are allowed to a group's managers, and to a course's creator or managers.
pub fn may_manage(target: CommunityTarget, role: Option<CommunityRole>, is_creator: bool) -> bool {
    match target {
        CommunityTarget::Group(_) => role == Some(CommunityRole::Manager),
        CommunityTarget::Course(_) => is_creator || role == Some(CommunityRole::Manager),
    }
}

/// Most user ids one request may name.
pub const MAX_USERS: usize = 1000;

/// Reads the `users` list from a request body: JSON (`{"users": [1, 2]}`), a form
/// (`users=1&users=2`, also `users[]=`), or JSON text sent under a form content type, as the
/// documented example does. Returns the ids without repeats, in first-seen order; any value that
/// is not a positive integer is reported, all of them at once.
pub fn parse_users(content_type: &str, body: &[u8]) -> Result<Vec<i64>, Error> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|_| {
        Error::new(
            ErrorCode::ValidationError,
            "The request body is not UTF-8 text.",
        )
    })?;
    let looks_json = text.trim_start().starts_with('{');
    let raw: Vec<RawId> = if essence == "application/json"
        || essence.ends_with("+json")
        || looks_json
    {
        from_json(text)?
    } else if essence == "application/x-www-form-urlencoded" || essence.is_empty() {
        from_form(text)?
    } else {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!("The request body must be application/json or application/x-www-form-urlencoded, not {essence}."),
        ));
    };
    if raw.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidAttribute,
            "users must name at least one user.",
        )
        .with_field("users", "must not be empty"));
    }
    if raw.len() > MAX_USERS {
        return Err(Error::new(
            ErrorCode::InvalidAttribute,
            format!("users may name at most {MAX_USERS} users."),
        )
        .with_field("users", "too many users"));
    }
    let mut ids = Vec::with_capacity(raw.len());
    let mut bad = Vec::new();
    for r in raw {
        match r {
            RawId::Id(id) => {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            RawId::Bad(text) => bad.push(text),
        }
    }
    if !bad.is_empty() {
        let mut e = Error::new(
            ErrorCode::InvalidUserIds,
            format!("users must be positive integers; not: {}.", bad.join(", ")),
        )
        .with_field("users", "must be a list of positive integers");
        for b in bad {
            e = e.with_parameter("user", b);
        }
        return Err(e);
    }
    Ok(ids)
}

enum RawId {
    Id(i64),
    Bad(String),
}

fn missing() -> Error {
    Error::new(ErrorCode::InvalidAttribute, "users is required.").with_field("users", "is required")
}

fn from_json(text: &str) -> Result<Vec<RawId>, Error> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Error::new(
            ErrorCode::ValidationError,
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    let users = value.get("users").ok_or_else(missing)?;
    let list = users.as_array().ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidAttribute,
            "users must be a list of user ids.",
        )
        .with_field("users", "must be a list")
    })?;
    Ok(list
        .iter()
        .map(|v| match v.as_i64() {
            Some(id) if id > 0 => RawId::Id(id),
            _ => RawId::Bad(v.to_string()),
        })
        .collect())
}

fn from_form(text: &str) -> Result<Vec<RawId>, Error> {
    let mut found = false;
    let mut out = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k)?;
        if key != "users" && key != "users[]" {
            continue;
        }
        found = true;
        let v = decode(v)?;
        out.push(match v.trim().parse::<i64>() {
            Ok(id) if id > 0 && v.trim().bytes().all(|b| b.is_ascii_digit()) => RawId::Id(id),
            _ => RawId::Bad(format!("{v:?}")),
        });
    }
    if !found {
        return Err(missing());
    }
    Ok(out)
}

/// Percent-decoding of one form component (`+` is a space).
fn decode(s: &str) -> Result<String, Error> {
    let bad = || {
        Error::new(
            ErrorCode::ValidationError,
            "The form body has a malformed percent-escape.",
        )
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn the_three_documented_shapes_parse_alike() {
        assert_eq!(
            parse_users("application/json", br#"{"users": [1, 2, 2]}"#).unwrap(),
            vec![1, 2]
        );
        assert_eq!(parse_users(FORM, b"users=1&users=2").unwrap(), vec![1, 2]);
        assert_eq!(
            parse_users(FORM, b"users%5B%5D=3&other=x").unwrap(),
            vec![3]
        );
        // The seed's example: a JSON text with a form content type (here with real ids).
        assert_eq!(
            parse_users(FORM, b"{\n  \"users\": [4]\n}").unwrap(),
            vec![4]
        );
        assert_eq!(
            parse_users("application/json; charset=utf-8", br#"{"users":[5]}"#).unwrap(),
            vec![5]
        );
    }

    #[test]
    fn bad_lists_are_refused_with_the_offending_values() {
        let e = parse_users(FORM, b"{\n  \"users\": [\"integer\"]\n}").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidUserIds);
        assert_eq!(
            e.parameters,
            vec![("user".to_owned(), "\"integer\"".to_owned())]
        );
        let e = parse_users("application/json", br#"{"users": [1, -2, 1.5]}"#).unwrap_err();
        let named: Vec<_> = e.parameters.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(named, ["-2", "1.5"]);
        assert_eq!(
            parse_users("application/json", b"{}").unwrap_err().fields[0].description,
            "is required"
        );
        assert_eq!(
            parse_users("application/json", br#"{"users": []}"#)
                .unwrap_err()
                .fields[0]
                .description,
            "must not be empty"
        );
        assert_eq!(
            parse_users(FORM, b"").unwrap_err().fields[0].description,
            "is required"
        );
        assert_eq!(
            parse_users("application/json", b"{oops").unwrap_err().code,
            ErrorCode::ValidationError
        );
        assert_eq!(
            parse_users("text/plain", b"users=1").unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
        assert_eq!(
            parse_users(FORM, b"users=%zz").unwrap_err().code,
            ErrorCode::ValidationError
        );
    }

    #[test]
    fn only_managers_and_creators_manage() {
        assert!(may_manage(
            CommunityTarget::Group(1),
            Some(CommunityRole::Manager),
            false
        ));
        assert!(!may_manage(
            CommunityTarget::Group(1),
            Some(CommunityRole::Member),
            true
        ));
        assert!(may_manage(CommunityTarget::Course(1), None, true));
        assert!(may_manage(
            CommunityTarget::Course(1),
            Some(CommunityRole::Manager),
            false
        ));
        assert!(!may_manage(
            CommunityTarget::Course(1),
            Some(CommunityRole::Member),
            false
        ));
    }

    proptest! {
        #[test]
        fn never_panics(ct in "(application/json|application/x-www-form-urlencoded|text/plain|)", body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_users(&ct, &body);
        }

        #[test]
        fn json_and_form_agree(ids in proptest::collection::vec(1i64..1_000_000, 1..20)) {
            let json = serde_json::json!({"users": ids}).to_string();
            let form: Vec<String> = ids.iter().map(|i| format!("users={i}")).collect();
            let a = parse_users("application/json", json.as_bytes()).unwrap();
            let b = parse_users(FORM, form.join("&").as_bytes()).unwrap();
            let c = parse_users(FORM, json.as_bytes()).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(&a, &c);
            prop_assert!(a.iter().all(|i| ids.contains(i)));
        }
    }
}
