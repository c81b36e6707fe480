//! rustls client configurations for `require` (encrypt, do not verify) and `verify-full`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sluice_core::TlsMode;

/// The certificates of a PEM bundle; an error says what is wrong (for the API's `tls_ca`).
pub fn parse_ca(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no `-----BEGIN CERTIFICATE-----` block".into());
    }
    Ok(certs)
}

/// The client config for a TLS mode; `None` for `disable`. `verify-full` trusts `ca` (PEM) when given,
/// else the web PKI roots.
pub(crate) fn client_config(mode: TlsMode, ca: Option<&str>) -> Option<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().expect("ring supports the default protocol versions");
    match mode {
        TlsMode::Disable => None,
        TlsMode::Require => Some(Arc::new(builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider))).with_no_client_auth())),
        TlsMode::VerifyFull => {
            let roots = match ca.map(parse_ca) {
                Some(Ok(certs)) => {
                    let mut store = RootCertStore::empty();
                    store.add_parsable_certificates(certs);
                    store
                }
                // Validated when stored; a bundle that stopped parsing trusts nothing rather than everything.
                Some(Err(_)) => RootCertStore::empty(),
                None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
            };
            Some(Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
        }
    }
}

/// `require` mode: the connection is encrypted but the certificate is not checked, as libpq's
/// `sslmode=require` does. Signatures are still verified so the handshake itself is sound.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
