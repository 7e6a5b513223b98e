//! Calling another region's verification endpoint over mutual TLS, with the client certificate
//! that region issued us. The key signs through our key store; the server is trusted only if it
//! chains to that region's pinned root.

use crate::app::App;
use crate::error::{Error, Result};
use crate::store::ForeignRegionRow;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
struct OurClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for OurClientCert {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// Sends a JSON POST to `path` of the region's endpoint; returns the status and the JSON body.
pub async fn post(
    app: &App,
    region: &ForeignRegionRow,
    path: &str,
    body: &Value,
) -> Result<(u16, Value)> {
    let fail = |why: String| Error::ForeignRegion {
        region: region.code.clone(),
        reason: why,
    };
    let endpoint = region
        .endpoint
        .as_deref()
        .ok_or_else(|| fail("its trust list names no endpoint".into()))?;
    let authority = endpoint
        .strip_prefix("https://")
        .ok_or_else(|| fail("its endpoint is not https".into()))?
        .trim_end_matches('/');
    let host = authority.rsplit_once(':').map(|x| x.0).unwrap_or(authority);
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:443")
    };
    let (cert, key_id) = match (&region.client_cert, &region.client_key_id) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            return Err(fail(
                "no client certificate from that region was imported".into(),
            ));
        }
    };
    let signer = app.pki.keys().signer(&key_id).await?;
    let certified = CertifiedKey::new(
        vec![CertificateDer::from(cert)],
        Arc::new(crate::http::tls::StoreKey(signer)),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(region.root_der.clone()))
        .map_err(|e| fail(format!("its root: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(OurClientCert(Arc::new(certified))));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name =
        ServerName::try_from(host.to_string()).map_err(|_| fail(format!("bad host {host}")))?;
    let io = async {
        let tcp = tokio::net::TcpStream::connect(&addr).await?;
        let mut tls = connector.connect(name, tcp).await?;
        let text = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
        tls.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        // An answer is a few KB; never buffer more than 1 MiB from another region.
        (&mut tls).take(1 << 20).read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let out = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("malformed HTTP response".into()))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fail("malformed HTTP status".into()))?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(fail("chunked responses are not supported".into()));
    }
    let json = serde_json::from_str(body).map_err(|_| fail("the answer is not JSON".into()))?;
    Ok((status, json))
}
