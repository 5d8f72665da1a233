//! One-line, human summaries of events for timelines, in Vietnamese or English.
//!
//! Rendered when read, not stored, so a timeline can be shown in either language and a renamed agency shows its
//! current name. Personal data (names, phone numbers) never appears in a summary.

use crate::event::{CallEventKind, CallLogged, DeadlineKind, ReplyKind, TicketEvent};
use crate::province::Province;

/// The languages timelines are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Vi,
    En,
}

impl Lang {
    /// Picks the language from an `Accept-Language` header value: the supported tag with the highest q-value,
    /// Vietnamese when the header is absent or names neither.
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let Some(header) = header else { return Lang::Vi };
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.parse::<f32>().ok()))
                .unwrap_or(1.0);
            if q <= 0.0 {
                // q=0 means "not acceptable".
                continue;
            }
            let lang = if tag == "vi" || tag.starts_with("vi-") {
                Lang::Vi
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Vi, |(_, l)| l)
    }
}

/// The summary line of `event`. Agency and category codes become names from `province`.
pub fn summarize(event: &TicketEvent, lang: Lang, province: &Province) -> String {
    let agency = |code: &str| {
        province.agency(code).map_or_else(
            || code.to_owned(),
            |a| match lang {
                Lang::Vi => a.name_vi.clone(),
                Lang::En => a.name_en.clone(),
            },
        )
    };
    let category = |code: &str| {
        province.category(code).map_or_else(
            || code.to_owned(),
            |c| match lang {
                Lang::Vi => c.name_vi.clone(),
                Lang::En => c.name_en.clone(),
            },
        )
    };
    match (event, lang) {
        (TicketEvent::PetitionReceived(e), Lang::Vi) => {
            format!("Tiếp nhận phản ánh qua kênh {} (mã {})", e.channel, e.reference)
        }
        (TicketEvent::PetitionReceived(e), Lang::En) => {
            format!("Petition received via {} (reference {})", e.channel, e.reference)
        }
        (TicketEvent::PetitionCategorized(e), Lang::Vi) => {
            let how = if e.source == "channel" { "theo kênh tiếp nhận" } else { "tự động phân loại" };
            let urgent = if e.emergency { " — KHẨN CẤP" } else { "" };
            format!("Phân loại: {} ({how}){urgent}", category(&e.category))
        }
        (TicketEvent::PetitionCategorized(e), Lang::En) => {
            let how = if e.source == "channel" { "given by the channel" } else { "classified automatically" };
            let urgent = if e.emergency { " — EMERGENCY" } else { "" };
            format!("Categorized as {} ({how}){urgent}", category(&e.category))
        }
        (TicketEvent::PetitionRouted(e), Lang::Vi) => format!("Chuyển đến {}", agency(&e.agency)),
        (TicketEvent::PetitionRouted(e), Lang::En) => format!("Routed to {}", agency(&e.agency)),
        (TicketEvent::PetitionNeedsTriage(e), Lang::Vi) => {
            format!("Chờ {} phân loại thủ công", agency(&e.agency))
        }
        (TicketEvent::PetitionNeedsTriage(e), Lang::En) => {
            format!("Waiting for manual triage at {}: {}", agency(&e.agency), e.reason)
        }
        (TicketEvent::PetitionAcknowledged(e), Lang::Vi) => format!("{} đã tiếp nhận xử lý", agency(&e.agency)),
        (TicketEvent::PetitionAcknowledged(e), Lang::En) => format!("Acknowledged by {}", agency(&e.agency)),
        (TicketEvent::InformationRequested(_), Lang::Vi) => "Đề nghị công dân bổ sung thông tin".to_owned(),
        (TicketEvent::InformationRequested(_), Lang::En) => "More information requested from the citizen".to_owned(),
        (TicketEvent::CitizenReplied(_), Lang::Vi) => "Công dân đã bổ sung thông tin".to_owned(),
        (TicketEvent::CitizenReplied(_), Lang::En) => "The citizen replied".to_owned(),
        (TicketEvent::CitizenWrote(e), Lang::Vi) => format!("Công dân gửi thêm tin nhắn qua {}", e.channel),
        (TicketEvent::CitizenWrote(e), Lang::En) => format!("The citizen wrote again by {}", e.channel),
        (TicketEvent::PetitionTransferred(e), Lang::Vi) => {
            format!("{} trả lại (không thuộc thẩm quyền, lần {}): {}", agency(&e.from_agency), e.bounces, e.reason)
        }
        (TicketEvent::PetitionTransferred(e), Lang::En) => {
            format!("Sent back by {} as not its competence (bounce {}): {}", agency(&e.from_agency), e.bounces, e.reason)
        }
        (TicketEvent::PetitionAnswered(e), Lang::Vi) => format!("{} đã trả lời", agency(&e.agency)),
        (TicketEvent::PetitionAnswered(e), Lang::En) => format!("Answered by {}", agency(&e.agency)),
        (TicketEvent::PetitionRecategorized(e), Lang::Vi) => format!("Phân loại lại: {}", category(&e.category)),
        (TicketEvent::PetitionRecategorized(e), Lang::En) => format!("Recategorized as {}", category(&e.category)),
        (TicketEvent::MarkedDuplicate(e), Lang::Vi) => format!("Trùng với phản ánh {}", e.of_reference),
        (TicketEvent::MarkedDuplicate(e), Lang::En) => format!("Duplicate of ticket {}", e.of_reference),
        (TicketEvent::PetitionRejected(e), Lang::Vi) => format!("Từ chối: {}", e.reason),
        (TicketEvent::PetitionRejected(e), Lang::En) => format!("Rejected: {}", e.reason),
        (TicketEvent::TicketClosed(_), Lang::Vi) => "Đã đóng phản ánh".to_owned(),
        (TicketEvent::TicketClosed(_), Lang::En) => "Closed".to_owned(),
        (TicketEvent::DeadlineApproaching(e), Lang::Vi) => format!("Sắp đến hạn {}: {}", which_vi(e.which), local(e.due, province)),
        (TicketEvent::DeadlineApproaching(e), Lang::En) => format!("{} deadline approaching: {}", which_en(e.which), local(e.due, province)),
        (TicketEvent::DeadlineMissed(e), Lang::Vi) => format!("Quá hạn {} ({}): chuyển lãnh đạo", which_vi(e.which), local(e.due, province)),
        (TicketEvent::DeadlineMissed(e), Lang::En) => {
            format!("{} deadline missed ({}): escalated to supervisors", which_en(e.which), local(e.due, province))
        }
        (TicketEvent::DeadlineExtended(e), Lang::Vi) => format!("Gia hạn xử lý đến {}: {}", local(e.resolve_by, province), e.reason),
        (TicketEvent::DeadlineExtended(e), Lang::En) => format!("Deadline extended to {}: {}", local(e.resolve_by, province), e.reason),
        (TicketEvent::ReplySent(e), Lang::Vi) => format!("Đã gửi {} cho công dân qua kênh {}", reply_vi(e.kind), e.channel),
        (TicketEvent::ReplySent(e), Lang::En) => format!("{} delivered to the citizen via {}", reply_en(e.kind), e.channel),
        (TicketEvent::ReplyFailed(e), Lang::Vi) => format!("Không gửi được {} qua kênh {}: {}", reply_vi(e.kind), e.channel, e.reason),
        (TicketEvent::ReplyFailed(e), Lang::En) => format!("{} could not be delivered via {}: {}", reply_en(e.kind), e.channel, e.reason),
        (TicketEvent::DuplicateLinked(_), Lang::Vi) => "Có phản ánh trùng được gộp vào".to_owned(),
        (TicketEvent::DuplicateLinked(_), Lang::En) => "Another petition was linked as a duplicate".to_owned(),
        (TicketEvent::FeedbackGiven(e), Lang::Vi) => {
            if e.satisfied { "Công dân hài lòng".to_owned() } else { "Công dân chưa hài lòng: mở lại".to_owned() }
        }
        (TicketEvent::FeedbackGiven(e), Lang::En) => {
            if e.satisfied { "The citizen is satisfied".to_owned() } else { "The citizen is not satisfied: reopened".to_owned() }
        }
        (TicketEvent::CallLogged(e), lang) => call(e, lang),
        (TicketEvent::CallbackDone(e), Lang::Vi) => format!("Đã gọi lại cho công dân: {}", e.note),
        (TicketEvent::CallbackDone(e), Lang::En) => format!("The citizen was called back: {}", e.note),
        (TicketEvent::PersonalDataErased(e), Lang::Vi) => match e.reason {
            crate::event::ErasureReason::Request => "Dữ liệu cá nhân của công dân đã được xoá theo yêu cầu".to_owned(),
            crate::event::ErasureReason::Retention => "Dữ liệu cá nhân của công dân đã được xoá khi hết thời hạn lưu trữ".to_owned(),
        },
        (TicketEvent::PersonalDataErased(e), Lang::En) => match e.reason {
            crate::event::ErasureReason::Request => "The citizen's personal data was erased on request".to_owned(),
            crate::event::ErasureReason::Retention => "The citizen's personal data was erased at the end of its retention".to_owned(),
        },
    }
}

/// A call event's line: what happened, with the agent, the length and the cause when known (never the number).
fn call(e: &CallLogged, lang: Lang) -> String {
    let agent = e.agent.as_deref().map(|a| match lang {
        Lang::Vi => format!(" (điện thoại viên {a})"),
        Lang::En => format!(" (agent {a})"),
    });
    let mut line = match (e.kind, lang) {
        (CallEventKind::Started, Lang::Vi) => "Cuộc gọi đến tổng đài".to_owned(),
        (CallEventKind::Started, Lang::En) => "Call reached the hotline".to_owned(),
        (CallEventKind::Answered, Lang::Vi) => format!("Cuộc gọi được nghe máy{}", agent.unwrap_or_default()),
        (CallEventKind::Answered, Lang::En) => format!("Call answered{}", agent.unwrap_or_default()),
        (CallEventKind::Ended, Lang::Vi) => match e.duration_secs {
            Some(s) => format!("Cuộc gọi kết thúc sau {s} giây"),
            None => "Cuộc gọi kết thúc".to_owned(),
        },
        (CallEventKind::Ended, Lang::En) => match e.duration_secs {
            Some(s) => format!("Call ended after {s} s"),
            None => "Call ended".to_owned(),
        },
        (CallEventKind::Recording, Lang::Vi) => "Có bản ghi âm cuộc gọi".to_owned(),
        (CallEventKind::Recording, Lang::En) => "Call recording available".to_owned(),
    };
    if e.kind == CallEventKind::Ended
        && let Some(cause) = &e.cause
    {
        line.push_str(&format!(" ({cause})"));
    }
    line.push_str(&format!(" [{}]", e.source));
    line
}

fn reply_vi(kind: ReplyKind) -> &'static str {
    match kind {
        ReplyKind::Answer => "trả lời",
        ReplyKind::Question => "câu hỏi",
    }
}

fn reply_en(kind: ReplyKind) -> &'static str {
    match kind {
        ReplyKind::Answer => "Answer",
        ReplyKind::Question => "Question",
    }
}

fn which_vi(which: DeadlineKind) -> &'static str {
    match which {
        DeadlineKind::Acknowledge => "tiếp nhận",
        DeadlineKind::Resolve => "xử lý",
    }
}

fn which_en(which: DeadlineKind) -> &'static str {
    match which {
        DeadlineKind::Acknowledge => "Acknowledgement",
        DeadlineKind::Resolve => "Resolution",
    }
}

/// A deadline as people in the province read it: the province's local time, to the minute.
fn local(at: time::OffsetDateTime, province: &Province) -> String {
    // Near the end of the representable range the shift to local time overflows: show such a time as it is.
    let at = at.checked_to_offset(province.calendar.utc_offset).unwrap_or(at);
    format!("{:02}:{:02} {:02}/{:02}/{}", at.hour(), at.minute(), at.day(), u8::from(at.month()), at.year())
}

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn accept_language_picks_the_preferred_supported_tag() {
        assert_eq!(Lang::from_accept_language(None), Lang::Vi);
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("fr, en;q=0.5, vi;q=0.8")), Lang::Vi);
        assert_eq!(Lang::from_accept_language(Some("de")), Lang::Vi);
        assert_eq!(Lang::from_accept_language(Some("vi;q=0.1, en-GB;q=0.2")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("en;q=0, vi;q=0.1")), Lang::Vi);
        assert_eq!(Lang::from_accept_language(Some("vi;q=0, en;q=0.1")), Lang::En);
    }
}
