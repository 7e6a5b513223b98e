//! The one mapping from domain errors to HTTP responses, and extractors whose rejections use it.

use crate::error::{Error, Kind};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable code, e.g. `LIC-0004`; see docs/API.md.
    pub code: String,
    pub message: String,
    /// Structured details (field errors, limits, ...), or null.
    #[schema(value_type = Option<Object>)]
    pub details: serde_json::Value,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = match (&e, e.kind()) {
            (Error::BodyTooLarge, _) => StatusCode::PAYLOAD_TOO_LARGE,
            (Error::InvalidFields { .. }, _) => StatusCode::UNPROCESSABLE_ENTITY,
            (_, Kind::Invalid) => StatusCode::BAD_REQUEST,
            (_, Kind::NotFound) => StatusCode::NOT_FOUND,
            (_, Kind::Conflict) => StatusCode::CONFLICT,
            (_, Kind::Unauthenticated) => StatusCode::UNAUTHORIZED,
            (_, Kind::Forbidden) => StatusCode::FORBIDDEN,
            (_, Kind::MethodNotAllowed) => StatusCode::METHOD_NOT_ALLOWED,
            (_, Kind::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
            (_, Kind::Internal) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status.is_server_error() {
            tracing::error!(code = e.code(), error = %e, "request failed");
            match e.kind() {
                Kind::Unavailable => "the database is unavailable; retry later".to_string(),
                _ => "internal error; it has been logged".to_string(),
            }
        } else {
            e.to_string()
        };
        let body = ErrorBody {
            code: e.code().to_string(),
            message,
            details: if status.is_server_error() {
                serde_json::Value::Null
            } else {
                e.details()
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED
            && let Ok(v) = "Bearer".parse()
        {
            resp.headers_mut().insert("www-authenticate", v);
        }
        resp
    }
}

/// `axum::Json` whose rejections become coded errors.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(r) => Err(ApiError(json_rejection(r))),
        }
    }
}

fn json_rejection(r: JsonRejection) -> Error {
    match r {
        JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::BodyTooLarge
        }
        JsonRejection::MissingJsonContentType(_) => {
            Error::bad_request("the body must be JSON (Content-Type: application/json)")
        }
        other => Error::bad_request(other.body_text()),
    }
}

/// `axum::extract::Path` with coded rejections.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|r: PathRejection| ApiError(Error::bad_request(r.body_text())))
    }
}

/// `axum::extract::Query` with coded rejections.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|r: QueryRejection| ApiError(Error::bad_request(r.body_text())))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A PDF upload: the raw body (`application/pdf`), or the `file` part (or the first part typed
/// `application/pdf`) of a `multipart/form-data` body. Too large: `REQ-0002` (413).
pub struct PdfBody(pub Vec<u8>);

impl<S: Send + Sync> FromRequest<S> for PdfBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let multipart = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        let too_large = |status: StatusCode, text: String| {
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError(Error::BodyTooLarge)
            } else {
                ApiError(Error::bad_request(text))
            }
        };
        if !multipart {
            return axum::body::Bytes::from_request(req, state)
                .await
                .map(|b| PdfBody(b.to_vec()))
                .map_err(|r| too_large(r.status(), r.body_text()));
        }
        let mut parts = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|r| too_large(r.status(), r.body_text()))?;
        while let Some(field) = parts
            .next_field()
            .await
            .map_err(|e| too_large(e.status(), e.body_text()))?
        {
            if field.name() == Some("file") || field.content_type() == Some("application/pdf") {
                let b = field
                    .bytes()
                    .await
                    .map_err(|e| too_large(e.status(), e.body_text()))?;
                return Ok(PdfBody(b.to_vec()));
            }
        }
        Err(ApiError(Error::bad_request(
            "the multipart body has no \"file\" part (or part typed application/pdf)",
        )))
    }
}
