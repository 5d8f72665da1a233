//! eSMS.vn's short-code MO callback: `GET /v1/sms/esms?sender=..&content=..&serviceNumber=..&keyword=..
//! &sign=..&cpid=..&smsid=..&receiverTime=..`, signed with `sign = MD5(cpid + smsid + content + receiverTime +
//! PrivateKey)` (channels-reference §2.2).
//!
//! Two things the documentation leaves open are accepted both ways: the hex digits' case (compared
//! case-insensitively), and whether `content` is hashed URL-decoded (tried first, as the documentation's formula
//! names the parameter's value) or exactly as it appears in the query string. Either way the private key is
//! needed, so accepting both does not weaken the check.
//!
//! The answer is eSMS's XML `ClientResponse`, whose `Message` becomes an SMS to the citizen: a short
//! acknowledgement in Vietnamese with the ticket's reference (or nothing, with `esms.acknowledge = false`).

use axum::http::Method;
use axum::response::Response;
use hotline_channel::Received;
use md5::{Digest, Md5};

use super::{MoGateway, MoRequest, WebhookError, WebhookRequest, form, xml, xml_escape};
use crate::config::Secret;

/// The eSMS MO webhook.
#[derive(Debug, Clone)]
pub struct EsmsWebhook {
    private_key: Secret,
    acknowledge: bool,
}

impl EsmsWebhook {
    pub fn new(private_key: Secret, acknowledge: bool) -> EsmsWebhook {
        EsmsWebhook {
            private_key,
            acknowledge,
        }
    }
}

/// `MD5(cpid + smsid + content + receiverTime + private_key)` in lower-case hex.
pub fn sign(
    cpid: &str,
    smsid: &str,
    content: &[u8],
    receiver_time: &str,
    private_key: &str,
) -> String {
    let mut md5 = Md5::new();
    md5.update(cpid.as_bytes());
    md5.update(smsid.as_bytes());
    md5.update(content);
    md5.update(receiver_time.as_bytes());
    md5.update(private_key.as_bytes());
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The fields of an eSMS MO query, strictly decoded (for the fuzz target and the webhook).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EsmsQuery {
    pub sender: String,
    pub content: String,
    pub service_number: String,
    pub keyword: String,
    pub sign: String,
    pub cpid: String,
    pub smsid: String,
    pub receiver_time: String,
}

/// Reads an eSMS MO query string.
pub fn parse_query(query: &[u8]) -> Result<EsmsQuery, WebhookError> {
    let pairs = form::parse(query)?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Ok(EsmsQuery {
        sender: get("sender"),
        content: get("content"),
        service_number: get("serviceNumber"),
        keyword: get("keyword"),
        sign: get("sign"),
        cpid: get("cpid"),
        smsid: get("smsid"),
        receiver_time: get("receiverTime"),
    })
}

impl MoGateway for EsmsWebhook {
    fn name(&self) -> &'static str {
        "esms"
    }

    fn path(&self) -> &'static str {
        "/v1/sms/esms"
    }

    fn method(&self) -> Method {
        Method::GET
    }

    fn parse(&self, request: &WebhookRequest<'_>) -> Result<MoRequest, WebhookError> {
        let q = parse_query(request.query)?;
        if q.sign.trim().is_empty() {
            return Err(WebhookError::MissingSignature);
        }
        let given = q.sign.trim().to_ascii_lowercase();
        let key = self.private_key.expose();
        let decoded = sign(
            &q.cpid,
            &q.smsid,
            q.content.as_bytes(),
            &q.receiver_time,
            key,
        );
        let raw = form::raw_value(request.query, "content").unwrap_or_default();
        let as_sent = sign(&q.cpid, &q.smsid, raw, &q.receiver_time, key);
        // Both are computed whatever the first gives, so the time taken does not tell which form matched.
        let ok = super::same_bytes(given.as_bytes(), decoded.as_bytes())
            | super::same_bytes(given.as_bytes(), as_sent.as_bytes());
        if !ok {
            return Err(WebhookError::BadSignature);
        }
        if q.smsid.is_empty() {
            return Err(WebhookError::Malformed("smsid is missing".into()));
        }
        if q.sender.is_empty() {
            return Err(WebhookError::Malformed("sender is missing".into()));
        }
        Ok(MoRequest {
            message_id: format!("esms:{}", q.smsid),
            from: q.sender,
            text: q.content,
            // eSMS's short-code MO carries text only.
            attachments: Vec::new(),
            gateway_id: q.smsid,
        })
    }

    fn accepted(&self, message: &MoRequest, received: &Received) -> Response {
        let text = if !self.acknowledge {
            String::new()
        } else {
            match received {
                Received::Opened(_) => {
                    format!(
                        "Duong day nong da nhan phan anh cua ban. Ma so tra cuu: {}",
                        received.reference()
                    )
                }
                Received::Attached { .. } => format!(
                    "Da nhan tin nhan bo sung cho phan anh {}.",
                    received.reference()
                ),
            }
        };
        // The documentation's sample closes <Smsid> with </Smdid>, a typo that would make the XML malformed;
        // the well-formed tag is sent.
        xml(format!(
            "<ClientResponse><Message>{}</Message><Smsid>{}</Smsid><Receiver>{}</Receiver></ClientResponse>",
            xml_escape(&text),
            xml_escape(&message.gateway_id),
            xml_escape(&message.from)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_hash_construction() {
        // eSMS's example: hash("abcdef","1234","xyz") = MD5("abcdef1234xyz" + private key), here with five values.
        let expected: String = Md5::digest(b"abcdef1234xyz20250101120000key")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            sign("abcdef", "1234", b"xyz", "20250101120000", "key"),
            expected
        );
    }

    #[test]
    fn a_query_with_vietnamese_content_decodes() {
        let q = parse_query(b"sender=84912345678&content=M%E1%BA%A5t+%C4%91i%E1%BB%87n&serviceNumber=8079&keyword=MAT&sign=x&cpid=c&smsid=9&receiverTime=20250101120000").expect("valid");
        assert_eq!(
            (
                q.content.as_str(),
                q.service_number.as_str(),
                q.smsid.as_str()
            ),
            ("Mất điện", "8079", "9")
        );
    }
}
