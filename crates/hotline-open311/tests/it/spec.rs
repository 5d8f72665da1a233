//! The element lists of GeoReport v2, in the spec's order (open311.github.io GeoReport_v2/index.md, "Response"
//! tables, and the Service Discovery page).

pub const DISCOVERY: &[&str] = &["changeset", "contact", "key_service", "endpoints"];
pub const ENDPOINT: &[&str] = &["specification", "url", "changeset", "type", "formats"];
pub const SERVICE: &[&str] = &["service_code", "service_name", "description", "metadata", "type", "keywords", "group"];
pub const SERVICE_DEFINITION: &[&str] = &["service_code", "attributes"];
pub const ATTRIBUTE: &[&str] =
    &["variable", "code", "datatype", "required", "datatype_description", "order", "description"];
pub const VALUE: &[&str] = &["key", "name"];
pub const DATATYPES: &[&str] = &["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"];
pub const POST_RESPONSE: &[&str] = &["service_request_id", "service_notice", "account_id"];
pub const TOKEN_RESPONSE: &[&str] = &["service_request_id", "token"];
pub const REQUEST: &[&str] = &[
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
];
pub const ERROR: &[&str] = &["code", "description"];
