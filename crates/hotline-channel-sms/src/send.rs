//! Answers out: by SMPP `submit_sm` on the running session, or by a gateway's HTTP send API (eSMS, Twilio),
//! as `[sms] send` says. Vendors' failures are sorted into `Retryable` (try later: down, throttled, out of
//! credit) and `Permanent` (the number or the message will never be accepted).

use axum::http::Method;
use hotline_channel::vendor_http::{VendorHttp, VendorHttpError};
use hotline_channel::{DeliveryError, DeliveryReceipt, OutboundMessage, normalise_msisdn};
use serde::Deserialize;

use crate::config::{EsmsConfig, Secret, TwilioConfig};
use crate::smpp::session::{SmppClient, SubmitError};
use crate::text;
use crate::webhook::form;

/// Where answers go.
pub enum Sender {
    Smpp(SmppClient),
    Esms {
        http: VendorHttp,
        config: EsmsConfig,
    },
    Twilio {
        http: VendorHttp,
        config: TwilioConfig,
    },
    None,
}

impl Sender {
    pub async fn send(&self, message: &OutboundMessage) -> Result<DeliveryReceipt, DeliveryError> {
        let to = message
            .to
            .as_deref()
            .and_then(normalise_msisdn)
            .ok_or_else(|| {
                DeliveryError::Permanent("the citizen left no phone number to answer".into())
            })?;
        if message.text.trim().is_empty() {
            return Err(DeliveryError::Permanent("the answer has no text".into()));
        }
        match self {
            Sender::Smpp(client) => send_smpp(client, message, &to).await,
            Sender::Esms { http, config } => send_esms(http, config, message, &to).await,
            Sender::Twilio { http, config } => send_twilio(http, config, message, &to).await,
            Sender::None => Err(DeliveryError::Permanent(
                "no SMS send route is configured ([sms] send = smpp | esms | twilio)".into(),
            )),
        }
    }
}

async fn send_smpp(
    client: &SmppClient,
    message: &OutboundMessage,
    to: &str,
) -> Result<DeliveryReceipt, DeliveryError> {
    // The concatenation reference comes from the answer's id, so a retry of the same answer reuses it.
    let reference = message.id.as_bytes()[15];
    let parts = text::encode(&message.text, reference).ok_or_else(|| {
        DeliveryError::Permanent("the answer is longer than 255 SMS parts".into())
    })?;
    match client.submit(to, parts).await {
        Ok(ids) => Ok(DeliveryReceipt {
            channel_message_id: Some(ids.join(",")),
        }),
        Err(SubmitError::Retryable(e)) => Err(DeliveryError::Retryable(e)),
        Err(SubmitError::Permanent(e)) => Err(DeliveryError::Permanent(e)),
    }
}

/// eSMS `SendMultipleMessage_V4_post_json` request body.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct EsmsSend<'a> {
    api_key: &'a str,
    secret_key: &'a str,
    phone: &'a str,
    content: &'a str,
    sms_type: &'a str,
    brandname: &'a str,
    is_unicode: &'a str,
    request_id: String,
    sandbox: &'a str,
}

#[derive(Debug, Deserialize)]
struct EsmsAnswer {
    #[serde(rename = "CodeResult")]
    code_result: serde_json::Value,
    #[serde(rename = "SMSID", default)]
    sms_id: Option<serde_json::Value>,
    #[serde(rename = "ErrorMessage", default)]
    error_message: Option<String>,
}

/// eSMS result codes worth trying again: unknown error (99), out of credit (103), the server's IP not yet
/// whitelisted (140); everything else (bad key, unregistered brandname, invalid number, content refused) is
/// permanent.
const ESMS_RETRYABLE: [&str; 3] = ["99", "103", "140"];

async fn send_esms(
    http: &VendorHttp,
    config: &EsmsConfig,
    message: &OutboundMessage,
    to: &str,
) -> Result<DeliveryReceipt, DeliveryError> {
    let body = EsmsSend {
        api_key: config
            .api_key
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default(),
        secret_key: config
            .secret_key
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default(),
        phone: to,
        content: &message.text,
        sms_type: &config.sms_type,
        brandname: config.brandname.as_deref().unwrap_or_default(),
        // Only plain ASCII goes unaccented: eSMS's IsUnicode=0 mode is meant for Vietnamese without diacritics
        // and may mangle what GSM 7-bit could carry (è, £, €), so anything else is sent as Unicode.
        is_unicode: if message.text.is_ascii() { "0" } else { "1" },
        // eSMS refuses a RequestId it has seen (code 124): a retry after a lost answer cannot send twice.
        request_id: message.id.to_string(),
        sandbox: if config.sandbox { "1" } else { "0" },
    };
    let body = serde_json::to_vec(&body).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
    let url = format!(
        "{}/MainService.svc/json/SendMultipleMessage_V4_post_json/",
        config.api_base.trim_end_matches('/')
    );
    let answer = http
        .send(
            Method::POST,
            &url,
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            body,
        )
        .await
        .map_err(transport)?;
    if answer.status >= 500 || answer.status == 429 {
        return Err(DeliveryError::Retryable(format!(
            "eSMS answered HTTP {}",
            answer.status
        )));
    }
    let parsed: EsmsAnswer = serde_json::from_slice(&answer.body).map_err(|e| {
        DeliveryError::Retryable(format!(
            "eSMS answered HTTP {} with an unreadable body: {e}",
            answer.status
        ))
    })?;
    let code = match &parsed.code_result {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let id = parsed.sms_id.map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    });
    match code.as_str() {
        "100" => Ok(DeliveryReceipt {
            channel_message_id: id.map(|i| format!("esms:{i}")),
        }),
        // The RequestId was used: this answer was sent by an earlier try whose reply we lost.
        "124" => Ok(DeliveryReceipt {
            channel_message_id: Some(format!("esms-request:{}", message.id)),
        }),
        c => {
            let reason = format!(
                "eSMS refused the message: CodeResult {c} {}",
                parsed.error_message.unwrap_or_default()
            );
            if ESMS_RETRYABLE.contains(&c) {
                Err(DeliveryError::Retryable(reason))
            } else {
                Err(DeliveryError::Permanent(reason))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct TwilioAnswer {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    code: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

async fn send_twilio(
    http: &VendorHttp,
    config: &TwilioConfig,
    message: &OutboundMessage,
    to: &str,
) -> Result<DeliveryReceipt, DeliveryError> {
    use base64::Engine;
    let sid = config.account_sid.as_deref().unwrap_or_default();
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        config.api_base.trim_end_matches('/'),
        form::encode(sid)
    );
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{sid}:{}", config.auth_token.expose()))
    );
    let body = format!(
        "To={}&From={}&Body={}",
        form::encode(&format!("+{to}")),
        form::encode(config.from.as_deref().unwrap_or_default()),
        form::encode(&message.text)
    );
    let answer = http
        .send(
            Method::POST,
            &url,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("accept", "application/json"),
                ("authorization", &auth),
            ],
            body.into_bytes(),
        )
        .await
        .map_err(transport)?;
    let parsed: Option<TwilioAnswer> = serde_json::from_slice(&answer.body).ok();
    let detail = parsed
        .as_ref()
        .map(|p| {
            format!(
                "{} {}",
                p.code.map(|c| c.to_string()).unwrap_or_default(),
                p.message.clone().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    match answer.status {
        200..=299 => Ok(DeliveryReceipt {
            channel_message_id: parsed.and_then(|p| p.sid).map(|s| format!("twilio:{s}")),
        }),
        429 | 500..=599 => Err(DeliveryError::Retryable(format!(
            "Twilio answered HTTP {}: {detail}",
            answer.status
        ))),
        // Bad credentials or a suspended account: nothing the message can change, but an operator can; keep
        // trying while they do.
        401 | 403 => Err(DeliveryError::Retryable(format!(
            "Twilio refused our credentials (HTTP {}): {detail}",
            answer.status
        ))),
        s => Err(DeliveryError::Permanent(format!(
            "Twilio refused the message (HTTP {s}): {detail}"
        ))),
    }
}

fn transport(e: VendorHttpError) -> DeliveryError {
    DeliveryError::Retryable(e.to_string())
}
