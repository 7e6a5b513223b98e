//! The OpenAPI 3 document, generated from the route annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "elicense", description = "Electronic licenses, signatures and seals. Errors are `{code, message, details}` with stable codes (docs/API.md)."),
    paths(
        super::admin::healthz,
        super::admin::region,
        super::admin::root_pem,
        super::admin::service_signer_pem,
        super::admin::crl,
        super::admin::client_ca_pem,
        super::admin::client_ca_crl,
        super::admin::trust_list,
        super::admin::status_list,
        super::admin::verify_show_code,
        super::admin::verify_show_code_image,
        super::admin::authorities,
        super::admin::authority,
        super::admin::add_authority,
        super::admin::revoke_authority_cert,
        super::admin::types,
        super::admin::license_type,
        super::admin::add_type,
        super::licenses::list,
        super::licenses::issue,
        super::licenses::show,
        super::licenses::pdf,
        super::licenses::set_status,
        super::licenses::amend,
        super::licenses::import,
        super::verify::verify,
        super::verify::add_client,
        super::verify::list_clients,
        super::verify::revoke_client,
        super::verify::verify_receipt,
        super::holder::dev_sign_in,
        super::holder::licenses,
        super::holder::list_grants,
        super::holder::create_grant,
        super::holder::withdraw_grant,
        super::holder::accesses,
        super::holder::show_code,
        super::seals::add,
        super::seals::list,
        super::seals::set_status,
        super::seals::sign,
        super::seals::tsa,
        super::seals::verify,
    ),
    modifiers(&Bearer, &CommonErrors),
    tags(
        (name = "licenses", description = "Issue, list, show, amend and change the status of e-licenses"),
        (name = "authorities", description = "Issuing authorities and their seal certificates"),
        (name = "types", description = "License types and their JSON Schemas"),
        (name = "pki", description = "The region's root CA and CRL"),
        (name = "verification", description = "Mutual-recognition verification for case-handling systems (mutual TLS) and their registration"),
        (name = "holder", description = "Holders: sign-in, own licenses, grants (用证授权), and who used their licenses"),
        (name = "seals", description = "Digital seals (电子印章), PAdES sealing of PDFs, and the RFC 3161 time-stamp authority"),
        (name = "service", description = "Health"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// Error answers any operation can give, added where an annotation does not list them: 400
/// (malformed path, query or body), 401/403 (operations behind a bearer token or holder
/// session), 413 (request bodies over the size limit) and 503 (database unavailable), all with
/// the `ErrorBody` JSON.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |why: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(why)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let r = &mut op.responses.responses;
                r.entry("400".into())
                    .or_insert_with(|| error("Malformed request (stable code in the body)"));
                if secured {
                    r.entry("401".into())
                        .or_insert_with(|| error("Missing or invalid credentials"));
                    r.entry("403".into())
                        .or_insert_with(|| error("Not allowed for these credentials"));
                }
                if has_body {
                    r.entry("413".into())
                        .or_insert_with(|| error("Request body over the size limit"));
                }
                r.entry("503".into())
                    .or_insert_with(|| error("The database is unavailable; retry later"));
            }
        }
    }
}

/// The document as JSON text, pretty-printed (what the snapshot test compares).
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

pub async fn document() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json(),
    )
}
