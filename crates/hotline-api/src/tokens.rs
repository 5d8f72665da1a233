//! Issuing API tokens, shared by `POST /v1/admin/tokens` and `hotline token create`.

use hotline_domain::access::Role;
use hotline_domain::province::Province;
use hotline_store::TokenRecord;
use time::OffsetDateTime;

use crate::auth::{hash_token, new_token};

/// Checks a token request against the province and makes the record and the token (shown once, never stored).
pub fn issue(
    province: &Province,
    role: &str,
    agency: Option<&str>,
    name: &str,
    created_by: &str,
) -> Result<(TokenRecord, String), String> {
    let role = Role::parse(role).ok_or_else(|| {
        let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role `{role}`; known: {}", known.join(", "))
    })?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err("a token needs a name of 1 to 200 characters (who holds it)".to_owned());
    }
    let agency = match (role, agency) {
        (Role::Agency, Some(code)) if province.agency(code).is_some() => Some(code.to_owned()),
        (Role::Agency, Some(code)) => return Err(format!("unknown agency `{code}`")),
        (Role::Agency, None) => return Err("an agency token needs the agency it acts for".to_owned()),
        (_, Some(_)) => return Err(format!("only agency tokens are bound to an agency, not {} tokens", role.as_str())),
        (_, None) => None,
    };
    let (id, token) = new_token();
    let record = TokenRecord {
        id,
        role,
        agency,
        name: name.to_owned(),
        hash: hash_token(&token),
        created_at: OffsetDateTime::now_utc(),
        created_by: created_by.to_owned(),
        revoked_at: None,
    };
    Ok((record, token))
}

/// A token as admins may list it: no hash.
pub fn public_view(record: &TokenRecord) -> serde_json::Value {
    serde_json::json!({
        "id": record.id,
        "role": record.role,
        "agency": record.agency,
        "name": record.name,
        "created_at": record.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "created_by": record.created_by,
        "revoked": record.revoked_at.is_some(),
    })
}
