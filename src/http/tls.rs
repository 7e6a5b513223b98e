//! HTTPS with optional client certificates (mutual TLS), served by axum.
//!
//! The TLS layer asks every client for a certificate and checks only that the client holds its
//! key (the handshake signature); whether the certificate identifies a registered, unrevoked,
//! unexpired client is decided per request by `verify::clients::authenticate`, so each refusal
//! has its own error code and revocation needs no restart. Handshakes run in their own tasks,
//! with a timeout, so a slow client cannot stall the accept loop.

use crate::pki::Signer as KeySigner;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// What a connection brought: its address and the client certificate, if any.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub remote: SocketAddr,
    pub client_cert: Option<Arc<CertificateDer<'static>>>,
    /// What the certificate was found to be, once per connection.
    pub auth: crate::verify::clients::ConnectionAuth,
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A listener whose connections are TLS streams that finished their handshake.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
    local: SocketAddr,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task ended (its socket failed): stop serving new connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            remote: self.local,
            client_cert: None,
            auth: Default::default(),
        })
    }
}

/// Binds `addr` and starts accepting TLS connections.
pub async fn bind(addr: &str, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
    let tcp = TcpListener::bind(addr).await?;
    let local = tcp.local_addr()?;
    let acceptor = TlsAcceptor::from(config);
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let (sock, remote) = match tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                // The server that consumed these connections is gone.
                break;
            }
            let _ = sock.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock)).await {
                    Ok(Ok(stream)) => {
                        let client_cert = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| Arc::new(c.clone().into_owned()));
                        let _ = tx
                            .send((
                                stream,
                                TlsPeer {
                                    remote,
                                    client_cert,
                                    auth: Default::default(),
                                },
                            ))
                            .await;
                    }
                    Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
    });
    Ok(TlsListener { rx, local })
}

/// Asks for a client certificate, checks possession of its key, defers the rest.
#[derive(Debug)]
struct DeferredClientAuth {
    provider: Arc<CryptoProvider>,
    hints: Vec<DistinguishedName>,
}

impl ClientCertVerifier for DeferredClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server's key, signing through the key store's `Signer` (it never leaves the store).
#[derive(Debug)]
pub(crate) struct StoreKey(pub(crate) Arc<dyn KeySigner>);

impl std::fmt::Debug for dyn KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.key_id())
    }
}

impl rustls::sign::SigningKey for StoreKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(StoreSigner(self.0.clone())) as Box<dyn rustls::sign::Signer>)
    }
    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct StoreSigner(Arc<dyn KeySigner>);

impl rustls::sign::Signer for StoreSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.0
            .sign_der(message)
            .map_err(|_| rustls::Error::General("signing failed".into()))
    }
    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The TLS configuration: the server certificate (signed through the key store) and deferred
/// client authentication, hinting the region's client CA as the acceptable issuer.
pub fn server_config(
    server_cert: &[u8],
    root_cert: &[u8],
    client_ca: &[u8],
    key: Arc<dyn KeySigner>,
) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_ca_subject = x509_parser::parse_x509_certificate(client_ca)
        .map(|(_, c)| DistinguishedName::from(c.subject().as_raw().to_vec()))
        .map_err(|_| rustls::Error::General("client CA certificate unparsable".into()))?;
    let chain = vec![
        CertificateDer::from(server_cert.to_vec()),
        CertificateDer::from(root_cert.to_vec()),
    ];
    let certified = CertifiedKey::new(chain, Arc::new(StoreKey(key)));
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(DeferredClientAuth {
            provider,
            hints: vec![client_ca_subject],
        }))
        .with_cert_resolver(Arc::new(OneCert(Arc::new(certified))));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
