//! Fuzz entry points: raw bytes in, never a panic out. `fuzz/fuzz_targets/open311_form.rs` calls them, and the
//! crate's tests replay the seeds in `fuzz-corpus/<target>/`.

use std::sync::OnceLock;

use hotline_domain::province::Province;

use crate::form::{self, ServiceRequestForm};
use crate::services;

fn province() -> &'static Province {
    static PROVINCE: OnceLock<Province> = OnceLock::new();
    PROVINCE.get_or_init(Province::bundled)
}

/// A `POST requests` body: form decoding, the field checks, and the attributes against a service's definition
/// (the service named in the body, or the first one), as the endpoint does before anything is stored.
pub fn open311_form(data: &[u8]) {
    let Ok(form) = form::parse(data) else { return };
    let _ = form.list("service_request_id");
    let Ok(request) = ServiceRequestForm::from_form(&form) else { return };
    let _ = request.has_location();
    let p = province();
    let category = request.service_code.as_deref().and_then(|c| p.category(c)).or_else(|| p.categories().first());
    if let Some(category) = category {
        let _ = services::check(p, category, &request.attributes);
    }
}
