//! Services and their definitions, generated from the province's categories: `service_code` is the category
//! code, `service_name` its Vietnamese name. Every service has the same short definition (the area, when it
//! happened, and for emergencies a notice that phoning is faster), and a request's attributes are checked against
//! it here.

use hotline_domain::province::{AREA_PLACEHOLDER, Category, Deadline, Province};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::doc::{Doc, Node};
use crate::form::{AttributeValue, FieldError};

/// The attribute naming the area (district-level unit) where the problem is: a list of the province's areas.
pub const AREA: &str = "area";
/// When the problem happened or was seen.
pub const OCCURRED_AT: &str = "occurred_at";
/// Information only (`variable=false`): emergencies are faster by phone.
pub const EMERGENCY_NOTICE: &str = "emergency_notice";

/// The attribute datatypes of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    String,
    Number,
    Datetime,
    Text,
    SingleValueList,
    MultiValueList,
}

impl Datatype {
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::String => "string",
            Datatype::Number => "number",
            Datatype::Datetime => "datetime",
            Datatype::Text => "text",
            Datatype::SingleValueList => "singlevaluelist",
            Datatype::MultiValueList => "multivaluelist",
        }
    }
}

/// One attribute of a service definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub variable: bool,
    pub code: &'static str,
    pub datatype: Datatype,
    pub required: bool,
    pub datatype_description: Option<String>,
    pub order: u32,
    pub description: String,
    /// (key, name) for the list datatypes.
    pub values: Vec<(String, String)>,
}

/// The attributes of a category's service.
pub fn attributes(province: &Province, category: &Category) -> Vec<Attribute> {
    let mut out = vec![
        Attribute {
            variable: true,
            code: AREA,
            datatype: Datatype::SingleValueList,
            required: false,
            datatype_description: Some("Mã đơn vị hành chính cấp huyện (thành phố, huyện) trong tỉnh".into()),
            order: 1,
            description: format!(
                "Nơi xảy ra sự việc thuộc thành phố, huyện nào của tỉnh {}? Giúp chuyển đúng cơ quan tại địa bàn.",
                province.name
            ),
            values: province.areas().iter().map(|a| (a.code.clone(), a.name.clone())).collect(),
        },
        Attribute {
            variable: true,
            code: OCCURRED_AT,
            datatype: Datatype::Datetime,
            required: false,
            datatype_description: Some("Ngày giờ theo ISO 8601 có múi giờ, ví dụ 2025-03-01T08:30:00+07:00".into()),
            order: 2,
            description: "Sự việc xảy ra (hoặc được phát hiện) khi nào?".into(),
            values: Vec::new(),
        },
    ];
    if category.emergency {
        out.push(Attribute {
            variable: false,
            code: EMERGENCY_NOTICE,
            datatype: Datatype::String,
            required: false,
            datatype_description: None,
            order: 3,
            description: format!(
                "Trường hợp khẩn cấp đang xảy ra: hãy gọi ngay {}. Phản ánh gửi qua đây được chuyển ngay, nhưng gọi \
                 điện vẫn nhanh hơn.",
                agency_name(province, category)
            ),
            values: Vec::new(),
        });
    }
    out
}

/// What the attributes of a request said, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers {
    /// An area code of the province.
    pub area: Option<String>,
    /// As the client wrote it (validated as a datetime).
    pub occurred_at: Option<String>,
}

/// Checks a request's attributes against the service's definition: unknown codes, values outside a list,
/// malformed datetimes and numbers, informational attributes sent as input, and missing required ones.
pub fn check(province: &Province, category: &Category, given: &[(String, AttributeValue)]) -> Result<Answers, Vec<FieldError>> {
    let definition = attributes(province, category);
    let mut errors = Vec::new();
    let mut answers = Answers::default();
    for (code, value) in given {
        let field = format!("attribute[{code}]");
        let Some(attribute) = definition.iter().find(|a| a.code == code) else {
            let known: Vec<&str> = definition.iter().filter(|a| a.variable).map(|a| a.code).collect();
            errors.push(FieldError::new(
                &field,
                format!("service `{}` has no attribute `{code}`; its attributes: {}", category.code, known.join(", ")),
            ));
            continue;
        };
        if !attribute.variable {
            errors.push(FieldError::new(&field, format!("attribute `{code}` is information only, not an input")));
            continue;
        }
        let single = match (value, attribute.datatype) {
            (AttributeValue::Multi(values), Datatype::MultiValueList) => {
                for v in values {
                    if !attribute.values.iter().any(|(k, _)| k == v) {
                        errors.push(FieldError::new(&field, format!("`{v}` is not a value of attribute `{code}`")));
                    }
                }
                continue;
            }
            (AttributeValue::Multi(_), _) => {
                errors.push(FieldError::new(&field, format!("attribute `{code}` takes one value: attribute[{code}]=...")));
                continue;
            }
            (AttributeValue::Single(v), _) => v,
        };
        let ok = match attribute.datatype {
            Datatype::SingleValueList | Datatype::MultiValueList => attribute.values.iter().any(|(k, _)| k == single),
            Datatype::Datetime => parse_datetime(single).is_some(),
            Datatype::Number => single.parse::<f64>().is_ok_and(f64::is_finite),
            Datatype::String => !single.contains(['\n', '\r']),
            Datatype::Text => true,
        };
        if !ok {
            let expected = match attribute.datatype {
                Datatype::SingleValueList | Datatype::MultiValueList => {
                    let keys: Vec<&str> = attribute.values.iter().map(|(k, _)| k.as_str()).collect();
                    format!("one of {}", keys.join(", "))
                }
                Datatype::Datetime => "a date and time with its time zone, e.g. 2025-03-01T08:30:00+07:00".to_owned(),
                Datatype::Number => "a number".to_owned(),
                _ => "one line of text".to_owned(),
            };
            errors.push(FieldError::new(&field, format!("attribute `{code}` must be {expected}")));
            continue;
        }
        match attribute.code {
            AREA => answers.area = Some(single.clone()),
            OCCURRED_AT => answers.occurred_at = Some(single.clone()),
            _ => {}
        }
    }
    for attribute in definition.iter().filter(|a| a.required && a.variable) {
        if !given.iter().any(|(c, _)| c == attribute.code) {
            errors.push(FieldError::new(
                &format!("attribute[{}]", attribute.code),
                format!("attribute `{}` is required", attribute.code),
            ));
        }
    }
    if errors.is_empty() { Ok(answers) } else { Err(errors) }
}

/// A W3C datetime with its time zone (RFC 3339, or without seconds: `2025-03-01T08:30+07:00`).
pub fn parse_datetime(text: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    // W3C's "complete date plus hours and minutes": insert the seconds before the zone.
    let zone = text.rfind(['Z', 'z', '+']).or_else(|| text.rfind('-').filter(|&i| i > 10))?;
    let (head, tail) = text.split_at(zone);
    if head.len() == 16 { OffsetDateTime::parse(&format!("{head}:00{tail}"), &Rfc3339).ok() } else { None }
}

/// `GET services`: every category, in the configuration's order.
pub fn list(province: &Province) -> Doc {
    let services = province
        .categories()
        .iter()
        .map(|c| {
            Node::Fields(vec![
                ("service_code", Node::text(&c.code)),
                ("service_name", Node::text(&c.name_vi)),
                ("description", Node::text(description(province, c))),
                // Every service has a definition (at least the area list), worth a client's look.
                ("metadata", Node::Bool(true)),
                // The reference is the service_request_id and it exists once POST answers.
                ("type", Node::text("realtime")),
                ("keywords", Node::text(keywords(province, c))),
                ("group", Node::text(group(province, c))),
            ])
        })
        .collect();
    Doc { root: "services", body: Node::List("service", services) }
}

/// `GET services/{code}`, or None for an unknown code.
pub fn definition(province: &Province, code: &str) -> Option<Doc> {
    let category = province.category(code)?;
    let attributes = attributes(province, category)
        .into_iter()
        .map(|a| {
            let mut fields = vec![
                ("variable", Node::Bool(a.variable)),
                ("code", Node::text(a.code)),
                ("datatype", Node::text(a.datatype.as_str())),
                ("required", Node::Bool(a.required)),
                ("datatype_description", Node::opt(a.datatype_description)),
                ("order", Node::number(a.order)),
                ("description", Node::text(a.description)),
            ];
            if matches!(a.datatype, Datatype::SingleValueList | Datatype::MultiValueList) {
                let values = a
                    .values
                    .into_iter()
                    .map(|(key, name)| Node::Fields(vec![("key", Node::Text(key)), ("name", Node::Text(name))]))
                    .collect();
                fields.push(("values", Node::List("value", values)));
            }
            Node::Fields(fields)
        })
        .collect();
    Some(Doc {
        root: "service_definition",
        body: Node::Fields(vec![
            ("service_code", Node::text(&category.code)),
            ("attributes", Node::List("attribute", attributes)),
        ]),
    })
}

/// A category's deadline to answer, in words.
pub fn deadline_words(deadline: Deadline) -> String {
    match deadline {
        Deadline::Immediate => "xử lý ngay".to_owned(),
        Deadline::WorkingDays(n) => format!("{n} ngày làm việc"),
        Deadline::Hours(n) => format!("{n} giờ"),
        Deadline::WorkingHours(n) => format!("{n} giờ làm việc"),
        Deadline::Minutes(n) => format!("{n} phút"),
    }
}

/// What happens next with a request of this service (`service_notice`).
pub fn notice(province: &Province, category: &Category) -> String {
    if category.emergency {
        format!(
            "Khẩn cấp: phản ánh được chuyển ngay cho {}. Nếu sự việc đang xảy ra, hãy gọi điện ngay.",
            agency_name(province, category)
        )
    } else {
        format!(
            "{} xem xét và trả lời trong {} kể từ khi phản ánh được chuyển đến.",
            agency_name(province, category),
            deadline_words(category.deadline)
        )
    }
}

fn description(province: &Province, category: &Category) -> String {
    format!(
        "{} ({}). Cơ quan xử lý: {}. Thời hạn trả lời: {}.",
        category.name_vi,
        category.name_en,
        agency_name(province, category),
        deadline_words(category.deadline)
    )
}

/// The agency a category goes to, or the kind of agency when it depends on the area.
fn agency_name(province: &Province, category: &Category) -> String {
    match province.rules(&category.code) {
        Some(rules) if rules.route.contains(AREA_PLACEHOLDER) => "cơ quan tại địa bàn (thành phố, huyện)".to_owned(),
        Some(rules) => province.agency(&rules.route).map_or_else(|| rules.route.clone(), |a| a.name_vi.clone()),
        None => province.triage_agency().name_vi.clone(),
    }
}

/// Emergencies together; otherwise the agency that handles the category (so a client can group "Sở Tài nguyên
/// và Môi trường" services), or "by area" when that depends on where it happened.
fn group(province: &Province, category: &Category) -> String {
    if category.emergency {
        return "Khẩn cấp".to_owned();
    }
    match province.rules(&category.code) {
        Some(rules) if rules.route.contains(AREA_PLACEHOLDER) => "Chính quyền, công an địa phương".to_owned(),
        _ => agency_name(province, category),
    }
}

/// The English name and the strongest phrases the classifier knows the category by: the words citizens use.
fn keywords(province: &Province, category: &Category) -> String {
    let mut words: Vec<String> = vec![category.name_en.replace(',', "")];
    if let Some(rules) = province.rules(&category.code) {
        let mut phrases: Vec<_> = rules.phrases.iter().collect();
        phrases.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        for p in phrases {
            let phrase = p.phrase.replace(',', " ").trim().to_owned();
            if !phrase.is_empty() && !words.contains(&phrase) {
                words.push(phrase);
            }
            if words.len() == 9 {
                break;
            }
        }
    }
    words.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn province() -> Province {
        Province::parse(Province::BUNDLED, "bundled").expect("bundled province")
    }

    #[test]
    fn every_category_is_a_service_with_its_vietnamese_name() {
        let p = province();
        let doc = list(&p);
        let Node::List("service", services) = &doc.body else { panic!("list") };
        assert_eq!(services.len(), p.categories().len());
        let json = doc.to_json();
        let dot = json.as_array().and_then(|a| a.iter().find(|s| s["service_code"] == "traffic_infrastructure")).expect("service");
        assert_eq!(dot["service_name"], "Hạ tầng giao thông: đèn tín hiệu, ổ gà, kẹt xe, ngập");
        assert_eq!(dot["group"], "Sở Giao thông vận tải");
        assert!(dot["description"].as_str().is_some_and(|d| d.contains("5 ngày làm việc")), "{dot}");
        assert!(dot["keywords"].as_str().is_some_and(|k| k.contains("ổ gà")), "{dot}");
        let fire = json.as_array().and_then(|a| a.iter().find(|s| s["service_code"] == "emergency_fire")).expect("fire");
        assert_eq!(fire["group"], "Khẩn cấp");
    }

    #[test]
    fn attributes_are_checked_against_the_definition() {
        let p = province();
        let c = p.category("environment").expect("category");
        let ok = check(
            &p,
            c,
            &[
                (AREA.into(), AttributeValue::Single("dian".into())),
                (OCCURRED_AT.into(), AttributeValue::Single("2025-03-01T08:30+07:00".into())),
            ],
        )
        .expect("valid");
        assert_eq!(ok, Answers { area: Some("dian".into()), occurred_at: Some("2025-03-01T08:30+07:00".into()) });
        let errors = check(
            &p,
            c,
            &[
                (AREA.into(), AttributeValue::Single("hanoi".into())),
                (OCCURRED_AT.into(), AttributeValue::Single("2025-03-01".into())),
                ("colour".into(), AttributeValue::Single("red".into())),
                (AREA.into(), AttributeValue::Multi(vec!["dian".into()])),
            ],
        )
        .expect_err("invalid");
        assert_eq!(errors.len(), 4, "{errors:?}");
        let fire = p.category("emergency_fire").expect("category");
        let errors = check(&p, fire, &[(EMERGENCY_NOTICE.into(), AttributeValue::Single("x".into()))]).expect_err("info");
        assert!(errors[0].message.contains("information only"));
    }

    #[test]
    fn datetimes_need_a_time_zone() {
        assert!(parse_datetime("2025-03-01T08:30:00Z").is_some());
        assert!(parse_datetime("2025-03-01T08:30:00.5-05:00").is_some());
        assert!(parse_datetime("2025-03-01T08:30+07:00").is_some());
        assert!(parse_datetime("2025-03-01T08:30:00").is_none());
        assert!(parse_datetime("2025-03-01").is_none());
        assert!(parse_datetime("yesterday").is_none());
    }
}
