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
    modifiers(&Bearer),
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
