//! A ticket's life through two agencies: who gets which copy, and the public feed's complete per-ticket sequence.

use hotline_contract::{Audience, FeedMessage, feed_messages};
use hotline_domain::TicketEvent;
use hotline_domain::event::{PetitionAcknowledged, PetitionAnswered, PetitionRouted, PetitionTransferred, TicketClosed};

use crate::fixtures::{AGENCY, PROVINCE, routed_history, sealed};

fn routed_to(agency: &str) -> TicketEvent {
    TicketEvent::PetitionRouted(PetitionRouted { agency: agency.into(), area: None, emergency: false, acknowledge_by: None, resolve_by: None })
}

#[test]
fn after_a_transfer_the_new_agency_gets_the_petition_and_the_old_one_stops_receiving() {
    let mut history = routed_history();
    let mut messages: Vec<FeedMessage> = Vec::new();
    // The first two events (received, routed to `dot`) as the projector would publish them.
    for (i, e) in history.iter().enumerate() {
        let ticket = hotline_domain::Ticket::from_history(&history[..=i]);
        messages.extend(feed_messages(e, &ticket, PROVINCE));
    }
    let steps = vec![
        vec![TicketEvent::PetitionTransferred(PetitionTransferred {
            from_agency: AGENCY.into(),
            reason: "not ours".into(),
            suggested_agency: Some("electricity".into()),
            bounces: 1,
        })],
        vec![routed_to("electricity")],
        vec![TicketEvent::PetitionAcknowledged(PetitionAcknowledged { agency: "electricity".into() })],
        vec![
            TicketEvent::PetitionAnswered(PetitionAnswered { text: "fixed".into(), agency: "electricity".into(), via_ticket: None, attachments: vec![] }),
            TicketEvent::TicketClosed(TicketClosed { reason: None }),
        ],
    ];
    for events in steps {
        for (e, ticket) in sealed(&history, events) {
            messages.extend(feed_messages(&e, &ticket, PROVINCE));
            history.push(e);
        }
    }

    let to = |audience: &Audience| -> Vec<String> {
        messages.iter().filter(|m| &m.audience == audience).map(|m| m.data["event"]["type"].as_str().expect("type").to_owned()).collect()
    };
    assert_eq!(
        to(&Audience::Public),
        ["PetitionReceived", "PetitionRouted", "PetitionTransferred", "PetitionRouted", "PetitionAcknowledged", "PetitionAnswered", "TicketClosed"]
    );
    // The public feed has every seq of the ticket, in order.
    let seqs: Vec<&str> = messages.iter().filter(|m| m.audience == Audience::Public).map(|m| m.data["event"]["seq"].as_str().expect("seq")).collect();
    assert_eq!(seqs, ["1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(to(&Audience::Agency(AGENCY.into())), ["PetitionRouted", "PetitionTransferred"]);
    assert_eq!(to(&Audience::Agency("electricity".into())), ["PetitionRouted", "PetitionAcknowledged", "PetitionAnswered", "TicketClosed"]);

    let routed_copy = messages
        .iter()
        .find(|m| m.audience == Audience::Agency("electricity".into()) && m.subject.contains(".petition_routed."))
        .expect("the new agency's routing copy");
    assert_eq!(routed_copy.subject, format!("hotline.feed.v1.electricity.petition_routed.{}", crate::fixtures::TICKET));
    assert!(routed_copy.data["petition"]["citizen"]["phone"].is_string(), "the new agency gets the contact");
    assert_eq!(routed_copy.data["ticket"]["bounces"], 1);
    // Ids are unique across the feed (they are the dedupe key of the stream).
    let mut ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), messages.len());
}
