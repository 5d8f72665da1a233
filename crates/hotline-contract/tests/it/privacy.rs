//! No personal data in headers or in the public feed; the agency copy has what the agency needs; messages stay
//! small whatever the citizen sent.

use hotline_contract::{Audience, CUT_MARK, ce_headers, feed_messages, percent_decode};
use hotline_domain::TicketEvent;
use hotline_domain::event::{Attachment, CitizenReplied};

use crate::fixtures::{self, EMAIL, NAME, PHONE, PROVINCE, ZALO_ID, every_message, personal_strings, routed_history, sealed};

#[test]
fn no_public_message_and_no_header_holds_personal_data_or_free_text() {
    let messages = every_message();
    let mut public = 0;
    for (_, message) in &messages {
        let headers = ce_headers(message);
        let header_text: String = headers.iter().map(|(k, v)| format!("{k}: {v}\n{}\n", percent_decode(v).expect("decodes"))).collect();
        for needle in personal_strings() {
            assert!(!header_text.contains(needle), "{}: header holds `{needle}`:\n{header_text}", message.subject);
        }
        if message.audience == Audience::Public {
            public += 1;
            let json = serde_json::to_string(&message.data).expect("json");
            for needle in personal_strings() {
                assert!(!json.contains(needle), "{}: public message holds `{needle}`:\n{json}", message.subject);
            }
        }
    }
    assert_eq!(public, TicketEvent::TYPES.len());
}

#[test]
fn the_agency_copy_of_the_routing_carries_the_petition_and_the_contact() {
    let routed = routed_history().remove(1);
    let ticket = hotline_domain::Ticket::from_history(&routed_history());
    let messages = feed_messages(&routed, &ticket, PROVINCE);
    assert_eq!(messages.len(), 2);
    let copy = &messages[1];
    assert_eq!(copy.audience, Audience::Agency(fixtures::AGENCY.into()));
    let petition = &copy.data["petition"];
    assert_eq!(petition["citizen"]["name"], NAME);
    assert_eq!(petition["citizen"]["phone"], PHONE);
    assert_eq!(petition["citizen"]["email"], EMAIL);
    assert_eq!(petition["citizen"]["zaloId"], ZALO_ID);
    assert!(petition["text"].as_str().expect("text").contains("petition"));
    assert_eq!(petition["reference"], ticket.reference.as_ref().expect("reference").as_str());
    assert_eq!(petition["location"]["area"], "dien_bien_phu");
    assert_eq!(copy.data["event"]["audience"], "AUDIENCE_AGENCY");
    assert_eq!(copy.data["event"]["agency"], fixtures::AGENCY);
    assert_eq!(copy.data["event"]["seq"], "2", "uint64 is a JSON string");
    assert_eq!(copy.data["ticket"]["status"], "TICKET_STATUS_ROUTED");
    // The public message of the same event: the routing, no petition.
    assert!(messages[0].data.get("petition").is_none());
    assert_eq!(messages[0].data["agency"], fixtures::AGENCY);
    assert_eq!(messages[0].data["event"]["audience"], "AUDIENCE_PUBLIC");
}

#[test]
fn a_ticket_whose_agency_code_is_no_safe_audience_gets_no_agency_copy() {
    let routed = routed_history().remove(1);
    let mut ticket = hotline_domain::Ticket::from_history(&routed_history());
    for bad in ["public", "po.lice", "*", ">", "po lice", ""] {
        ticket.agency = Some(bad.to_owned());
        let messages = feed_messages(&routed, &ticket, PROVINCE);
        assert_eq!(messages.len(), 1, "agency {bad:?} got a copy: {:?}", messages.iter().map(|m| &m.subject).collect::<Vec<_>>());
        assert_eq!(messages[0].audience, Audience::Public);
        assert!(messages[0].data.get("petition").is_none());
    }
}

#[test]
fn public_coordinates_are_rounded_to_about_a_kilometre() {
    let (_, message) = every_message().into_iter().find(|(t, _)| *t == "PetitionReceived").expect("received");
    assert_eq!(message.data["location"]["lat"], 21.39);
    assert_eq!(message.data["location"]["lon"], 103.02);
    assert_eq!(message.data["location"]["area"], "dien_bien_phu");
    assert_eq!(message.data["attachmentCount"], 2);
    assert_eq!(message.data["hasSubject"], true);
}

#[test]
fn headers_are_the_cloudevents_binary_mode_set_with_the_event_id_as_nats_msg_id() {
    let (_, message) = every_message().into_iter().find(|(t, m)| *t == "PetitionAnswered" && m.audience != Audience::Public).expect("copy");
    let headers = ce_headers(&message);
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject", "ce-datacontenttype", "ce-dataschema", "Nats-Msg-Id"]
    );
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).expect(name);
    assert_eq!(get("ce-specversion"), "1.0");
    assert_eq!(get("ce-id"), message.id);
    assert_eq!(get("Nats-Msg-Id"), message.id);
    assert!(message.id.ends_with(":dot"));
    assert_eq!(get("ce-source"), "/hotline/dien_bien");
    assert_eq!(get("ce-type"), "vn.gov.hotline.v1.petition_answered");
    assert_eq!(get("ce-subject"), fixtures::TICKET.to_string());
    assert_eq!(get("ce-datacontenttype"), "application/json");
    assert_eq!(get("ce-dataschema"), "proto:hotline.v1.PetitionAnswered");
    assert_eq!(get("ce-time"), message.data["event"]["occurredAt"]);
    // Every header value is printable ASCII without space, quote or a bare percent sign.
    for (_, v) in &headers {
        assert!(v.bytes().all(|b| (0x21..=0x7E).contains(&b) && b != b'"'), "{v}");
    }
}

#[test]
fn a_header_value_outside_printable_ascii_is_percent_encoded() {
    let (_, mut message) = every_message().remove(0);
    message.ce_source = "/hotline/Điện Biên 100%".into();
    let headers = ce_headers(&message);
    let source = &headers.iter().find(|(k, _)| k == "ce-source").expect("source").1;
    assert_eq!(source, "/hotline/%C4%90i%E1%BB%87n%20Bi%C3%AAn%20100%25");
    assert_eq!(percent_decode(source).as_deref(), Some("/hotline/Điện Biên 100%"));
}

#[test]
fn a_huge_reply_with_many_files_still_makes_a_small_message() {
    let history = routed_history();
    let huge = "Nội dung rất dài. ".repeat(60_000);
    let files: Vec<Attachment> = (0..200)
        .map(|i| Attachment {
            name: format!("{}{i}", "tên-tệp-".repeat(100)),
            url: Some(format!("https://x.example/{}", "a".repeat(5000))),
            sha256: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
            media_type: Some("image/jpeg".into()),
            size: Some(1),
        })
        .collect();
    let event = TicketEvent::CitizenReplied(CitizenReplied {
        text: huge.clone(),
        acknowledge_by: None,
        resolve_by: None,
        channel_ref: None,
        attachments: files,
    });
    let (envelope, ticket) = sealed(&history, vec![event]).remove(0);
    for message in feed_messages(&envelope, &ticket, PROVINCE) {
        let size = serde_json::to_vec(&message.data).expect("json").len();
        assert!(size < 48 * 1024, "{}: {size} bytes", message.subject);
        assert_eq!(message.data["attachmentCount"], 200);
        if message.audience != Audience::Public {
            let text = message.data["text"].as_str().expect("text");
            assert!(text.ends_with(CUT_MARK) && huge.starts_with(text.trim_end_matches(CUT_MARK)));
            assert_eq!(message.data["attachments"].as_array().expect("list").len(), hotline_contract::MAX_LISTED_ATTACHMENTS);
        }
    }
}
