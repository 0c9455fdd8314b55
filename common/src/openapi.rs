//! OpenAPI pieces every service's document shares: the bearer security scheme, the `Problem`
//! schema of every error answer, the schemas of uploaded and downloaded files, and [`document`],
//! which finishes a service's document.
//!
//! Handlers list each error status they can answer with a description only; [`document`] gives
//! every 4xx/5xx answer its `application/problem+json` body and headers, and adds the answers
//! the shared middleware gives to any operation (503 when shedding load or timing out, 500).

use std::borrow::Cow;

use utoipa::{
    openapi::{
        content::ContentBuilder,
        header::HeaderBuilder,
        path::Operation,
        schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        OpenApi, Ref, RefOr, Response, ResponseBuilder, Schema,
    },
    PartialSchema, ToSchema,
};

/// The name of the bearer (JWT) security scheme: `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";
/// The content type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Adds the security scheme and the `Problem` schema, completes every error answer and adds the
/// middleware's answers to every operation; the result is what `/openapi.json` serves.
pub fn document(mut doc: OpenApi) -> serde_json::Value {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    components.schemas.insert(
        crate::Problem::name().into_owned(),
        crate::Problem::schema(),
    );
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            add_middleware_answers(operation);
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response {
                    complete_error(status, response);
                }
            }
        }
    }
    let mut value = serde_json::to_value(doc).unwrap_or_default();
    name_link_fields_as_openapi_does(&mut value);
    value
}

/// utoipa 5 writes a Link object's fields in snake case (`operation_id`, `request_body`), which
/// OpenAPI does not know; clients following links (schemathesis' stateful tests, generated SDKs)
/// look for `operationId` and `requestBody`.
fn name_link_fields_as_openapi_does(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else {
            continue;
        };
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_owned(), value);
                }
            }
        }
    }
}

/// Every application route runs behind load shedding, a timeout and a minimum body rate
/// (`middleware::guard_app`), and any handler can fail on our side.
fn add_middleware_answers(operation: &mut Operation) {
    let takes_body = operation.request_body.is_some();
    let responses = &mut operation.responses.responses;
    if takes_body {
        responses.entry("408".to_owned()).or_insert_with(|| {
            response("The request body arrived too slowly (see `REQUEST_BODY_MIN_KIB_PER_SEC`); the connection is closed")
        });
    }
    responses.entry("503".to_owned()).or_insert_with(|| {
        response("This instance is at capacity, or the request took too long; retry after `Retry-After` seconds")
    });
    responses
        .entry("500".to_owned())
        .or_insert_with(|| response("Failed on our side; quote the `request_id` if you report it"));
}

fn response(description: &str) -> RefOr<Response> {
    RefOr::T(ResponseBuilder::new().description(description).build())
}

/// A 4xx/5xx answer without a body gets the problem+json one, and the headers its status
/// always carries (`WWW-Authenticate` on 401, `Retry-After` on 429 and 503).
fn complete_error(status: &str, response: &mut Response) {
    if !(status.starts_with('4') || status.starts_with('5')) {
        return;
    }
    if response.content.is_empty() {
        response.content.insert(
            PROBLEM_JSON.to_owned(),
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(crate::Problem::name())))
                .build(),
        );
    }
    let header = match status {
        "401" => Some((
            "WWW-Authenticate",
            "`Bearer`: the scheme to authenticate with",
        )),
        "429" | "503" => Some(("Retry-After", "Seconds to wait before retrying")),
        _ => None,
    };
    if let Some((name, description)) = header {
        let schema = if name == "Retry-After" {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
        } else {
            ObjectBuilder::new().schema_type(Type::String)
        };
        response.headers.entry(name.to_owned()).or_insert_with(|| {
            HeaderBuilder::new()
                .schema(schema)
                .description(Some(description))
                .build()
        });
    }
}

/// The bytes of a file as a request or response body: `type: string, format: binary`.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Binary")
    }
}

/// A `multipart/form-data` body carrying one file in the field `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FileUpload {
    /// The image: JPEG, PNG, WebP or GIF (decided by its content, not by its name or type).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// What a served document must say and does not, one sentence per operation and fault: every
/// operation answers 503 (load shedding, timeout), every one with the bearer scheme answers 401,
/// every 4xx/5xx answer has a `Problem` body, every 401 sends `WWW-Authenticate` and every
/// 429/503 `Retry-After`. The services' tests assert that it is empty.
pub fn shortcomings(doc: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    let problem_ref = format!("#/components/schemas/{}", crate::Problem::name());
    let empty = serde_json::Map::new();
    let paths = doc["paths"].as_object().unwrap_or(&empty);
    for (path, item) in paths {
        let operations = item.as_object().unwrap_or(&empty);
        for (method, operation) in operations {
            let name = format!("{} {path}", method.to_uppercase());
            let security = operation.get("security").unwrap_or(&doc["security"]);
            let secured = security
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get(BEARER).is_some()));
            let responses = operation["responses"].as_object().unwrap_or(&empty);
            let mut required = vec!["503"];
            if secured {
                required.push("401");
            }
            for status in required {
                if !responses.contains_key(status) {
                    found.push(format!("{name} does not document {status}"));
                }
            }
            for (status, response) in responses {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let schema = &response["content"][PROBLEM_JSON]["schema"]["$ref"];
                if schema.as_str() != Some(problem_ref.as_str()) {
                    found.push(format!(
                        "{name} {status} has no {PROBLEM_JSON} Problem body"
                    ));
                }
                let header = match status.as_str() {
                    "401" => Some("WWW-Authenticate"),
                    "429" | "503" => Some("Retry-After"),
                    _ => None,
                };
                if let Some(header) = header {
                    if response["headers"].get(header).is_none() {
                        found.push(format!("{name} {status} does not document {header}"));
                    }
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use utoipa::openapi::{
        path::{OperationBuilder, PathItemBuilder},
        HttpMethod, OpenApiBuilder, PathsBuilder, ResponsesBuilder,
    };

    fn one_operation(responses: &[(&str, &str)], secured: bool) -> OpenApi {
        let mut operation = OperationBuilder::new().responses(responses.iter().fold(
            ResponsesBuilder::new(),
            |b, (status, description)| {
                b.response(*status, ResponseBuilder::new().description(*description))
            },
        ));
        if secured {
            operation = operation.security(utoipa::openapi::security::SecurityRequirement::new::<
                _,
                _,
                &str,
            >(BEARER, []));
        }
        OpenApiBuilder::new()
            .paths(
                PathsBuilder::new().path(
                    "/things/{id}",
                    PathItemBuilder::new()
                        .operation(HttpMethod::Get, operation.build())
                        .build(),
                ),
            )
            .build()
    }

    #[test]
    fn each_error_answer_gets_the_problem_body_and_its_headers() {
        let doc = document(one_operation(
            &[
                ("200", "The thing"),
                ("401", "No token"),
                ("404", "No such thing"),
            ],
            true,
        ));
        let responses = &doc["paths"]["/things/{id}"]["get"]["responses"];
        for status in ["401", "404", "500", "503"] {
            assert_eq!(
                responses[status]["content"][PROBLEM_JSON]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{status}"
            );
        }
        assert!(responses["200"].get("content").is_none());
        assert!(responses["401"]["headers"]["WWW-Authenticate"].is_object());
        assert!(responses["503"]["headers"]["Retry-After"].is_object());
        assert_eq!(
            doc["components"]["schemas"]["Problem"]["properties"]["status"]["type"],
            "integer"
        );
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        assert_eq!(shortcomings(&doc), Vec::<String>::new());
    }

    #[test]
    fn link_fields_are_named_as_openapi_names_them() {
        let mut doc = json!({ "paths": { "/login": { "post": { "responses": { "200": {
            "links": { "Refresh": {
                "operation_id": "refresh",
                "request_body": { "refresh_token": "$response.body#/refresh_token" }
            } }
        } } } } } });
        name_link_fields_as_openapi_does(&mut doc);
        assert_eq!(
            doc["paths"]["/login"]["post"]["responses"]["200"]["links"]["Refresh"],
            json!({
                "operationId": "refresh",
                "requestBody": { "refresh_token": "$response.body#/refresh_token" }
            })
        );
    }

    #[test]
    fn a_secured_operation_without_401_is_a_shortcoming() {
        let doc = document(one_operation(&[("200", "The thing")], true));
        assert_eq!(
            shortcomings(&doc),
            ["GET /things/{id} does not document 401"]
        );
    }

    #[test]
    fn an_error_answer_without_a_problem_body_is_a_shortcoming() {
        let doc = json!({"paths": {"/x": {"get": {"responses": {
            "404": {"description": "gone"},
            "503": {"description": "busy", "headers": {"Retry-After": {}},
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}},
        }}}}});
        assert_eq!(
            shortcomings(&doc),
            [format!("GET /x 404 has no {PROBLEM_JSON} Problem body")]
        );
    }
}
