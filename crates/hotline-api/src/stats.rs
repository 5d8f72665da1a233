//! `GET /v1/stats` (figures of the statistics projection, with filters) and `GET /v1/map.geojson` (open tickets
//! with a place, for the operations centre's map). Agencies get their own agency's figures and tickets only.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use hotline_channel::http::ApiError;
use hotline_domain::access::{Principal, Role};
use hotline_projections::{MapTicket, StatsFilter};
use serde::Deserialize;
use time::Date;

use crate::ApiState;

/// The channels a ticket can come from (the `channel` filter).
const CHANNELS: [&str; 5] = ["app", "sms", "email", "zalo", "phone"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsQuery {
    from: Option<String>,
    to: Option<String>,
    category: Option<String>,
    agency: Option<String>,
    channel: Option<String>,
    area: Option<String>,
}

fn invalid(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn day(name: &str, text: Option<&str>) -> Result<Option<Date>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else { return Ok(None) };
    Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .map(Some)
        .map_err(|_| invalid("invalid_date", format!("`{name}` must be a date like 2026-03-01, not `{text}`")))
}

/// An empty query value is no filter (`?category=` from a form).
fn given(v: Option<String>) -> Option<String> {
    v.filter(|v| !v.is_empty())
}

/// `GET /v1/stats?from=&to=&category=&agency=&channel=&area=`: totals, rates and breakdowns by category, agency,
/// channel, area and local day of the tickets received in the range (days of the province calendar's time zone).
pub(crate) async fn stats(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let principal = state.auth.principal(&headers).await?;
    let Query(q) = query.map_err(|e| invalid("invalid_query", e.body_text()))?;
    let (from, to) = (day("from", q.from.as_deref())?, day("to", q.to.as_deref())?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(invalid("invalid_date", format!("`from` ({f}) is after `to` ({t})")));
    }
    let (category, area, channel) = (given(q.category), given(q.area), given(q.channel));
    hotline_channel::validate_codes(&state.province, category.as_deref(), area.as_deref())?;
    if let Some(c) = &channel
        && !CHANNELS.contains(&c.as_str())
    {
        return Err(invalid("unknown_channel", format!("unknown channel `{c}`; known: {}", CHANNELS.join(", "))));
    }
    let mut agency = given(q.agency);
    if let Some(a) = &agency
        && state.province.agency(a).is_none()
    {
        let known: Vec<&str> = state.province.agencies().iter().map(|a| a.code.as_str()).collect();
        return Err(invalid("unknown_agency", format!("unknown agency `{a}`; known: {}", known.join(", "))));
    }
    // An agency sees its own figures, whatever it asked for.
    if principal.role == Role::Agency {
        agency = Some(own_agency(&principal)?);
    }
    let calendar = &state.province.calendar;
    let filter = StatsFilter {
        from,
        to,
        category: category.clone(),
        agency: agency.clone(),
        channel: channel.clone(),
        area: area.clone(),
        utc_offset: calendar.utc_offset,
    };
    let stats = state.reader.stats(filter).await.map_err(ApiError::internal)?;
    let mut body = serde_json::to_value(&stats).map_err(ApiError::internal)?;
    if let Some(object) = body.as_object_mut() {
        object.insert(
            "filters".into(),
            serde_json::json!({
                "from": from.map(|d| d.to_string()),
                "to": to.map(|d| d.to_string()),
                "category": category,
                "agency": agency,
                "channel": channel,
                "area": area,
                "time_zone": calendar.timezone,
            }),
        );
    }
    Ok(axum::Json(body))
}

fn own_agency(principal: &Principal) -> Result<String, ApiError> {
    // A registry never issues an agency token without its agency; refuse rather than show everyone's figures.
    principal.agency.clone().ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "forbidden", "agency token without an agency"))
}

/// `GET /v1/map.geojson`: a GeoJSON FeatureCollection (RFC 7946) of the open tickets that have a place: the
/// petition's own coordinates, or else the configured centre of its area (`"approximate": true`). Nothing about
/// the citizen: no text, no name, no address.
pub(crate) async fn map(State(state): State<ApiState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    let principal = state.auth.principal(&headers).await?;
    let agency = if principal.role == Role::Agency { Some(own_agency(&principal)?) } else { None };
    let tickets = state.reader.map_tickets(agency).await.map_err(ApiError::internal)?;
    let features: Vec<serde_json::Value> = tickets.iter().filter_map(|t| feature(&state.province, t)).collect();
    let body = serde_json::json!({ "type": "FeatureCollection", "features": features });
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/geo+json"))], body.to_string()))
}

fn feature(province: &hotline_domain::province::Province, t: &MapTicket) -> Option<serde_json::Value> {
    let ((lat, lon), approximate) = match t.point {
        Some(point) => (point, false),
        None => {
            let index = province.areas().iter().position(|a| Some(&a.code) == t.area.as_ref())?;
            let centre = province.centres.get(index).copied().flatten()?;
            ((centre.lat, centre.lon), true)
        }
    };
    Some(serde_json::json!({
        "type": "Feature",
        // RFC 7946 §3.1.1: longitude first.
        "geometry": { "type": "Point", "coordinates": [lon, lat] },
        "properties": {
            "reference": t.reference,
            "category": t.category,
            "agency": t.agency,
            "area": t.area,
            "status": t.status,
            "emergency": t.emergency,
            "received_at": t.received_at,
            "deadline": t.deadline,
            "approximate": approximate,
        },
    }))
}
