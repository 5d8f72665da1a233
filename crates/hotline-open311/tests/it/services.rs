//! Discovery, the service list and the service definitions, in both formats, against the spec's field lists.

use hotline_domain::province::Province;

use crate::{Harness, child_text, children, errors, json, object_keys, array_item, spec, xml};

#[tokio::test(flavor = "multi_thread")]
async fn discovery_names_the_endpoint_and_both_formats() {
    let h = Harness::start().await;
    let response = h.get("/open311/v2/discovery.xml").await;
    assert_eq!(response.status, 200);
    let doc = xml(&response);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "discovery");
    assert_eq!(children(root), spec::DISCOVERY);
    let endpoints = root.children().find(|n| n.has_tag_name("endpoints")).expect("endpoints");
    let endpoint = endpoints.first_element_child().expect("endpoint");
    assert_eq!(endpoint.tag_name().name(), "endpoint");
    assert_eq!(children(endpoint), spec::ENDPOINT);
    assert_eq!(child_text(endpoint, "specification").as_deref(), Some("http://wiki.open311.org/GeoReport_v2"));
    assert_eq!(child_text(endpoint, "url"), Some(format!("http://{}/open311/v2", h.addr)));
    assert_eq!(child_text(endpoint, "type").as_deref(), Some("production"));
    let formats: Vec<&str> = endpoint
        .children()
        .find(|n| n.has_tag_name("formats"))
        .expect("formats")
        .children()
        .filter(|n| n.has_tag_name("format"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(formats, ["text/xml", "application/json"]);

    let response = h.get("/open311/v2/discovery.json").await;
    let body = json(&response);
    assert_eq!(object_keys(&response.text()), spec::DISCOVERY);
    let text = response.text();
    let endpoints = &text[text.find("\"endpoints\":").expect("endpoints") + "\"endpoints\":".len()..];
    assert_eq!(object_keys(array_item(endpoints, 0)), spec::ENDPOINT, "the endpoint object");
    assert_eq!(body["endpoints"][0]["formats"], serde_json::json!(["text/xml", "application/json"]));
    assert!(body["contact"].as_str().is_some_and(|c| c.contains("1022")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_base_url_and_contact_are_what_discovery_shows() {
    let h = Harness::with_config(serde_json::json!({
        "open311_base_url": "https://hotline.example.vn/open311/v2/",
        "open311_contact": "Sở TT&TT Bình Dương <1022@example.vn>",
    }))
    .await;
    let doc = xml(&h.get("/open311/v2/discovery.xml").await);
    let root = doc.root_element();
    assert_eq!(child_text(root, "contact").as_deref(), Some("Sở TT&TT Bình Dương <1022@example.vn>"));
    let endpoint = root.descendants().find(|n| n.has_tag_name("endpoint")).expect("endpoint");
    assert_eq!(child_text(endpoint, "url").as_deref(), Some("https://hotline.example.vn/open311/v2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_category_is_a_service_in_both_formats_with_the_spec_fields_in_order() {
    let h = Harness::start().await;
    let province = Province::bundled();
    let response = h.get("/open311/v2/services.xml").await;
    assert_eq!(response.status, 200);
    let doc = xml(&response);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "services");
    let services: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert_eq!(services.len(), province.categories().len());
    for (service, category) in services.iter().zip(province.categories()) {
        assert_eq!(service.tag_name().name(), "service");
        assert_eq!(children(*service), spec::SERVICE);
        assert_eq!(child_text(*service, "service_code"), Some(category.code.clone()));
        // Vietnamese names survive the XML writer and a real parser.
        assert_eq!(child_text(*service, "service_name"), Some(category.name_vi.clone()));
        assert_eq!(child_text(*service, "metadata").as_deref(), Some("true"));
        assert_eq!(child_text(*service, "type").as_deref(), Some("realtime"));
    }

    let response = h.get("/open311/v2/services.json").await;
    let body = json(&response);
    let text = response.text();
    let list = body.as_array().expect("array");
    assert_eq!(list.len(), province.categories().len());
    for (i, (service, category)) in list.iter().zip(province.categories()).enumerate() {
        assert_eq!(object_keys(array_item(&text, i)), spec::SERVICE);
        assert_eq!(service["service_code"], category.code.as_str());
        assert_eq!(service["service_name"], category.name_vi.as_str());
        assert_eq!(service["metadata"], true);
        assert!(["realtime", "batch", "blackbox"].contains(&service["type"].as_str().expect("type")));
        assert!(service["keywords"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(service["group"].as_str().is_some_and(|g| !g.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_definition_lists_the_areas_and_follows_the_spec() {
    let h = Harness::start().await;
    let province = Province::bundled();
    let response = h.get("/open311/v2/services/environment.xml").await;
    assert_eq!(response.status, 200);
    let doc = xml(&response);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "service_definition");
    assert_eq!(children(root), spec::SERVICE_DEFINITION);
    assert_eq!(child_text(root, "service_code").as_deref(), Some("environment"));
    let attributes: Vec<_> =
        root.children().find(|n| n.has_tag_name("attributes")).expect("attributes").children().filter(|n| n.is_element()).collect();
    assert!(!attributes.is_empty());
    let mut orders = Vec::new();
    for attribute in &attributes {
        assert_eq!(attribute.tag_name().name(), "attribute");
        let names = children(*attribute);
        let datatype = child_text(*attribute, "datatype").expect("datatype");
        assert!(spec::DATATYPES.contains(&datatype.as_str()), "{datatype}");
        if datatype.ends_with("valuelist") {
            assert_eq!(names[..spec::ATTRIBUTE.len()], *spec::ATTRIBUTE);
            assert_eq!(names[spec::ATTRIBUTE.len()..], ["values"]);
        } else {
            assert_eq!(names, spec::ATTRIBUTE);
        }
        for flag in ["variable", "required"] {
            assert!(matches!(child_text(*attribute, flag).as_deref(), Some("true" | "false")));
        }
        orders.push(child_text(*attribute, "order").and_then(|o| o.parse::<u32>().ok()).expect("positive order"));
    }
    let mut unique = orders.clone();
    unique.dedup();
    assert!(orders.iter().all(|&o| o > 0) && unique.len() == orders.len(), "{orders:?}");
    let area = attributes.iter().find(|a| child_text(**a, "code").as_deref() == Some("area")).expect("area");
    assert_eq!(child_text(*area, "datatype").as_deref(), Some("singlevaluelist"));
    let values: Vec<(String, String)> = area
        .children()
        .find(|n| n.has_tag_name("values"))
        .expect("values")
        .children()
        .filter(|n| n.is_element())
        .map(|v| {
            assert_eq!(v.tag_name().name(), "value");
            assert_eq!(children(v), spec::VALUE);
            (child_text(v, "key").expect("key"), child_text(v, "name").expect("name"))
        })
        .collect();
    let expected: Vec<(String, String)> = province.areas().iter().map(|a| (a.code.clone(), a.name.clone())).collect();
    assert_eq!(values, expected);

    let response = h.get("/open311/v2/services/environment.json").await;
    let body = json(&response);
    let text = response.text();
    assert_eq!(object_keys(&text), spec::SERVICE_DEFINITION);
    let first = &body["attributes"][0];
    assert_eq!(first["code"], "area");
    assert_eq!(first["variable"], true);
    assert!(first["order"].is_u64());
    assert_eq!(first["values"][0], serde_json::json!({ "key": "tdm", "name": "Thủ Dầu Một" }));
    let attribute_text = &text[text.find("\"attributes\":").expect("attributes") + "\"attributes\":".len()..];
    assert_eq!(object_keys(array_item(attribute_text, 0))[..spec::ATTRIBUTE.len()], *spec::ATTRIBUTE);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emergency_service_tells_clients_to_phone_with_an_information_only_attribute() {
    let h = Harness::start().await;
    let body = json(&h.get("/open311/v2/services/emergency_fire.json").await);
    let notice = body["attributes"].as_array().and_then(|a| a.iter().find(|x| x["variable"] == false)).expect("notice");
    assert!(notice["description"].as_str().is_some_and(|d| d.contains("114")), "{notice}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_services_resources_and_methods_answer_spec_errors_in_the_asked_format() {
    let h = Harness::start().await;
    for (method, path, status) in [
        ("GET", "/open311/v2/services/potholes.xml", 404),
        ("GET", "/open311/v2/services/potholes.json", 404),
        ("GET", "/open311/v2/services", 404),
        ("GET", "/open311/v2/widgets.json", 404),
        ("GET", "/open311/v2/a/b/c.json", 404),
        ("DELETE", "/open311/v2/services.json", 405),
        ("POST", "/open311/v2/services.xml", 405),
        ("GET", "/open311/v2/services.json?jurisdiction_id=a&jurisdiction_id=b", 400),
        ("GET", "/open311/v2/services.json?x=%zz", 400),
    ] {
        let response = h.request(method, path, &[], b"").await;
        assert_eq!(response.status, status, "{method} {path}: {}", response.text());
        let errors = errors(&response);
        assert_eq!(errors.len(), 1, "{path}");
        assert_eq!(errors[0].0, status);
        assert!(!errors[0].1.is_empty());
        let expected = if path.contains(".json") { "application/json; charset=utf-8" } else { "text/xml; charset=utf-8" };
        assert_eq!(response.header("content-type"), Some(expected), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_jurisdiction_is_not_found_when_one_is_configured() {
    let h = Harness::with_config(serde_json::json!({ "open311_jurisdiction_id": "binhduong.gov.vn" })).await;
    assert_eq!(h.get("/open311/v2/services.json?jurisdiction_id=binhduong.gov.vn").await.status, 200);
    assert_eq!(h.get("/open311/v2/services.json").await.status, 200, "optional for one jurisdiction");
    let response = h.get("/open311/v2/services.xml?jurisdiction_id=hanoi.gov.vn").await;
    assert_eq!(response.status, 404);
    assert!(errors(&response)[0].1.contains("hanoi.gov.vn"));
}
