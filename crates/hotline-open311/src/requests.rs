//! Service requests both ways: a `POST requests` becomes a [`NewPetition`] of the app channel, and a ticket of
//! the projection becomes a `request` element. Our ten states map onto the spec's `open` / `closed`, with
//! `status_notes` saying in Vietnamese where the petition really stands.
//!
//! What is public: `GET requests` needs no key, so it shows no personal data at all (no names, phone numbers or
//! e-mail addresses, ever). Petitions that came in through Open311 were filed on a public interface and show
//! their description, location and media link; petitions from the hotline's private channels (phone, SMS,
//! e-mail, Zalo, the app's own form) show only their service, state, agency, dates and area. No answer's text is
//! shown for any petition: answers are written to the citizen and often name them.

use hotline_channel::{NewPetition, normalise_msisdn};
use hotline_domain::event::{Citizen, Location, PetitionReceived};
use hotline_domain::province::Province;
use hotline_domain::Status;
use hotline_projections::TicketView;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::doc::Node;
use crate::form::ServiceRequestForm;
use crate::services::Answers;

/// The channel Open311 petitions belong to.
pub const CHANNEL: &str = "app";
/// How petitions filed through Open311 are recognised: their `channel_ref` starts with this.
pub const REF_PREFIX: &str = "open311:";
/// The line of the petition's text that carries the client's `media_url`.
const MEDIA_LABEL: &str = "Ảnh, video: ";
const OCCURRED_LABEL: &str = "Thời điểm xảy ra: ";

/// The petition a checked request files. `channel_ref` makes retries with the same `Idempotency-Key` land on the
/// same ticket; `area` comes from the `area` attribute or `address_id` (already checked against the province).
pub fn petition(request: &ServiceRequestForm, category: &str, service_name: &str, answers: &Answers, area: Option<String>, channel_ref: String) -> NewPetition {
    let description = request.description.as_deref().map(str::trim).filter(|d| !d.is_empty());
    // A petition needs text; a report with only a service and a place is still a report.
    let mut text = description.map_or_else(|| format!("Phản ánh qua Open311: {service_name}"), str::to_owned);
    if let Some(at) = &answers.occurred_at {
        text.push_str(&format!("\n\n{OCCURRED_LABEL}{at}"));
    }
    if let Some(url) = &request.media_url {
        text.push_str(&format!("\n{}{MEDIA_LABEL}{url}", if answers.occurred_at.is_some() { "" } else { "\n" }));
    }
    // Vietnamese names are written family name first.
    let name = match (request.last_name.as_deref(), request.first_name.as_deref()) {
        (Some(last), Some(first)) => Some(format!("{last} {first}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
        (None, None) => None,
    };
    let phone = request.phone.as_deref().map(|p| normalise_msisdn(p).unwrap_or_else(|| p.to_owned()));
    let email = request.email.as_deref().map(str::to_lowercase);
    let citizen = (name.is_some() || phone.is_some() || email.is_some())
        .then(|| Citizen { name, phone, email, ..Citizen::default() });
    NewPetition {
        citizen_key: None,
        channel: CHANNEL.to_owned(),
        channel_ref: Some(channel_ref),
        text,
        subject: None,
        category: Some(category.to_owned()),
        citizen,
        location: Some(Location { area, lat: request.lat, lon: request.long, address: request.address_string.clone() }),
        attachments: Vec::new(),
    }
}

/// Open or closed, and the state in words.
///
/// The agency's answer text is never shown, not even for requests filed through Open311: answers are written to
/// the citizen and often name them ("Kính gửi ông A, nhà số 12..."), and the citizen reads theirs with the
/// reference and access code. The public list says only that an answer was given.
pub fn status(province: &Province, ticket: &TicketView, duplicate_of: Option<&str>) -> (&'static str, String) {
    let agency = ticket.agency.as_deref().and_then(|a| province.agency(a)).map(|a| a.name_vi.as_str());
    let agency_or = |fallback: &str| agency.map_or_else(|| fallback.to_owned(), str::to_owned);
    let status = Status::parse(&ticket.status).unwrap_or_default();
    let notes = match status {
        Status::None | Status::Received => "Đã tiếp nhận, đang phân loại và xác định cơ quan có thẩm quyền".to_owned(),
        Status::Routed => format!("Đã chuyển {} xử lý", agency_or("cơ quan có thẩm quyền")),
        Status::NeedsTriage => {
            format!("{} đang xem xét, chuyển cơ quan có thẩm quyền", agency_or("Tổ tiếp nhận"))
        }
        Status::Acknowledged => format!("{} đã nhận và đang xử lý", agency_or("Cơ quan có thẩm quyền")),
        Status::WaitingForCitizen => "Đang chờ người phản ánh bổ sung thông tin".to_owned(),
        Status::Transferred => "Cơ quan được giao chuyển trả; đang chuyển cơ quan có thẩm quyền khác".to_owned(),
        // Who answered (the agency, or the desk from its knowledge base) is in the log, not in this row.
        Status::Answered => "Đã trả lời".to_owned(),
        Status::Closed => "Đã xử lý xong".to_owned(),
        Status::Rejected => "Không thụ lý: nội dung không phải phản ánh, kiến nghị".to_owned(),
        Status::Duplicate => match duplicate_of {
            Some(reference) => format!("Trùng với phản ánh {reference}, được xử lý chung"),
            None => "Trùng với một phản ánh khác, được xử lý chung".to_owned(),
        },
    };
    (if status.is_open() { "open" } else { "closed" }, notes)
}

/// Whether a petition was filed through Open311 (and so may show its text and place): on the app channel AND
/// with an Open311 `channel_ref`. The prefix alone is not enough: an e-mail's Message-ID or an SMS id can start
/// with anything, and the app channel refuses `Idempotency-Key`s with this prefix, so only Open311 makes one.
pub fn filed_through_open311(petition: Option<&PetitionReceived>) -> bool {
    petition.is_some_and(|p| p.channel == CHANNEL && p.channel_ref.as_deref().is_some_and(|r| r.starts_with(REF_PREFIX)))
}

/// The `request` element of a ticket, fields in the spec's order.
pub fn request_node(province: &Province, ticket: &TicketView, petition: Option<&PetitionReceived>, duplicate_of: Option<&str>) -> Node {
    let public = filed_through_open311(petition);
    let (status, notes) = status(province, ticket, duplicate_of);
    let category = ticket.category.as_deref().and_then(|c| province.category(c));
    let offset = province.calendar.utc_offset;
    let location = petition.and_then(|p| p.location.as_ref());
    let area = ticket.area.as_deref().and_then(|a| province.area(a));
    // Public petitions show the address they were filed with; the others only their area's name.
    let address = if public { location.and_then(|l| l.address.clone()) } else { None }
        .or_else(|| area.map(|a| format!("{}, {}", a.name, province.name)));
    let (lat, long) = match location {
        Some(l) if public => (l.lat, l.lon),
        _ => (None, None),
    };
    let media = if public { petition.and_then(|p| media_url(&p.text)) } else { None };
    let number = |v: Option<f64>| v.map_or(Node::Null, Node::number);
    Node::Fields(vec![
        ("service_request_id", Node::text(&ticket.reference)),
        ("status", Node::text(status)),
        ("status_notes", Node::text(notes)),
        ("service_name", Node::opt(category.map(|c| c.name_vi.clone()))),
        ("service_code", Node::opt(ticket.category.clone())),
        ("description", Node::opt(if public && ticket.status != "rejected" { Some(ticket.text.clone()) } else { None })),
        ("agency_responsible", Node::opt(ticket.agency.as_deref().and_then(|a| province.agency(a)).map(|a| a.name_vi.clone()))),
        ("service_notice", Node::opt(category.map(|c| crate::services::notice(province, c)))),
        ("requested_datetime", Node::opt(w3c(&ticket.received_at, offset))),
        ("updated_datetime", Node::opt(w3c(&ticket.updated_at, offset))),
        ("expected_datetime", Node::opt(ticket.resolve_by.as_deref().and_then(|t| w3c(t, offset)))),
        ("address", Node::opt(address)),
        ("address_id", Node::opt(ticket.area.clone())),
        // Not kept: Vietnamese postcodes say little beyond the province.
        ("zipcode", Node::Null),
        ("lat", number(lat)),
        ("long", number(long)),
        ("media_url", Node::opt(media)),
    ])
}

/// The `media_url` a petition filed through Open311 carries on its own line.
fn media_url(text: &str) -> Option<String> {
    let line = text.lines().last()?;
    let url = line.strip_prefix(MEDIA_LABEL)?;
    (url.starts_with("https://") || url.starts_with("http://")).then(|| url.to_owned())
}

/// An RFC 3339 instant as the spec's W3C datetime in the province's time zone, to the second.
pub fn w3c(stored: &str, offset: UtcOffset) -> Option<String> {
    let t = OffsetDateTime::parse(stored, &Rfc3339).ok()?.to_offset(offset).replace_nanosecond(0).ok()?;
    t.format(&Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: &str) -> TicketView {
        TicketView {
            ticket_id: uuid::Uuid::nil(),
            reference: "AB12CD34".into(),
            status: status.into(),
            category: Some("environment".into()),
            agency: Some("donre".into()),
            area: Some("dian".into()),
            emergency: false,
            confidence: None,
            channel: "sms".into(),
            subject: None,
            text: "Tôi là Nguyễn Văn A, 0912345678: khói nhà máy".into(),
            received_at: "2025-03-01T01:30:00.123456Z".into(),
            updated_at: "2025-03-02T01:30:00Z".into(),
            events: 3,
            answer: Some("Kính gửi ông A: đã kiểm tra".into()),
            duplicate_of: None,
            bounces: 0,
            acknowledge_by: None,
            resolve_by: Some("2025-03-08T10:00:00Z".into()),
            escalated: false,
            callback_due: false,
            queue_key: Default::default(),
        }
    }

    #[test]
    fn every_state_maps_onto_open_or_closed_with_notes_in_words() {
        let p = Province::parse(Province::BUNDLED, "bundled").expect("province");
        let cases = [
            ("received", "open"),
            ("routed", "open"),
            ("needs_triage", "open"),
            ("acknowledged", "open"),
            ("waiting_for_citizen", "open"),
            ("transferred", "open"),
            ("answered", "closed"),
            ("closed", "closed"),
            ("rejected", "closed"),
            ("duplicate", "closed"),
        ];
        for (state, expected) in cases {
            let (status, notes) = status(&p, &view(state), None);
            assert_eq!(status, expected, "{state}");
            assert!(!notes.is_empty());
        }
        assert_eq!(status(&p, &view("routed"), None).1, "Đã chuyển Sở Tài nguyên và Môi trường xử lý");
        assert_eq!(status(&p, &view("duplicate"), Some("ZZ99ZZ99")).1, "Trùng với phản ánh ZZ99ZZ99, được xử lý chung");
        // The answer's text is never public (it is written to the citizen and names them): only that there is one.
        assert_eq!(status(&p, &view("answered"), None).1, "Đã trả lời");
        assert_eq!(status(&p, &view("closed"), None).1, "Đã xử lý xong");
    }

    #[test]
    fn a_private_channels_petition_shows_neither_its_text_nor_its_place() {
        let p = Province::parse(Province::BUNDLED, "bundled").expect("province");
        let node = request_node(&p, &view("routed"), None, None);
        let json = crate::doc::Doc { root: "x", body: node }.to_json();
        assert_eq!(json["description"], serde_json::Value::Null);
        assert_eq!(json["address"], "Dĩ An, Bình Dương");
        assert_eq!(json["lat"], serde_json::Value::Null);
        assert_eq!(json["requested_datetime"], "2025-03-01T08:30:00+07:00");
        assert!(!json.to_string().contains("0912345678"));
    }

    #[test]
    fn only_app_petitions_with_an_open311_ref_count_as_filed_through_open311() {
        let petition = |channel: &str, channel_ref: &str| PetitionReceived {
            citizen_key: None,
            reference: hotline_domain::Reference::derive(uuid::Uuid::nil(), 0),
            channel: channel.into(),
            channel_ref: Some(channel_ref.into()),
            text: "x".into(),
            subject: None,
            category: None,
            citizen: None,
            location: None,
            attachments: Vec::new(),
        };
        assert!(filed_through_open311(Some(&petition("app", "open311:c1:key:k"))));
        // A Message-ID, an SMS id or a Zalo message id may start with anything.
        for channel in ["email", "sms", "zalo", "phone"] {
            assert!(!filed_through_open311(Some(&petition(channel, "open311:c1:key:k"))), "{channel}");
        }
        assert!(!filed_through_open311(Some(&petition("app", "my-key"))));
        assert!(!filed_through_open311(None));
    }

    #[test]
    fn the_media_url_line_is_read_back_only_when_it_is_a_url() {
        assert_eq!(media_url("Ổ gà\n\nẢnh, video: https://x.vn/a.jpg").as_deref(), Some("https://x.vn/a.jpg"));
        assert_eq!(media_url("Ảnh, video: javascript:alert(1)"), None);
        assert_eq!(media_url("Ổ gà"), None);
    }
}
