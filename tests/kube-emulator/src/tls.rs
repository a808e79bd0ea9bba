//! TLS material: a local CA and server certificate made in-process with rcgen, or PEM
//! files made elsewhere (the local stack uses openssl), served with rustls on `ring`.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Certificates and key the server presents, plus the CA clients should trust.
#[derive(Debug)]
pub struct TlsMaterial {
    /// PEM of the CA that signed the server certificate.
    pub ca_pem: String,
    /// Server certificate chain (leaf first).
    pub chain: Vec<CertificateDer<'static>>,
    /// Server private key.
    pub key: PrivateKeyDer<'static>,
    /// Server certificate chain as PEM.
    pub cert_pem: String,
    /// Server private key as PEM.
    pub key_pem: String,
}

/// Errors from building TLS material.
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn err(what: &str) -> impl FnOnce(rcgen::Error) -> TlsError + '_ {
    move |e| TlsError(format!("{what}: {e}"))
}

/// A fresh CA and a server certificate for `127.0.0.1`, `::1` and `localhost`.
pub fn self_signed() -> Result<TlsMaterial, TlsError> {
    let ca_key = KeyPair::generate().map_err(err("CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA params"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kube-emulator-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(err("CA certificate"))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().map_err(err("server key"))?;
    let mut params = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "localhost".to_string(),
    ])
    .map_err(err("server params"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(err("server certificate"))?;
    let key_pem = key.serialize_pem();
    from_pem(&cert.pem(), &key_pem, &ca_cert.pem())
}

/// Material from PEM text: server certificate (chain), its key, and the CA.
pub fn from_pem(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<TlsMaterial, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("server certificate: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError("server certificate: no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TlsError(format!("server key: {e}")))?;
    if CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .next()
        .is_none()
    {
        return Err(TlsError("CA: no CERTIFICATE block".into()));
    }
    Ok(TlsMaterial {
        ca_pem: ca_pem.to_string(),
        chain,
        key,
        cert_pem: cert_pem.to_string(),
        key_pem: key_pem.to_string(),
    })
}

/// Material from PEM files.
pub fn from_files(cert: &Path, key: &Path, ca: &Path) -> Result<TlsMaterial, TlsError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| TlsError(format!("{}: {e}", p.display())))
    };
    from_pem(&read(cert)?, &read(key)?, &read(ca)?)
}

/// A rustls server configuration on the `ring` provider, offering HTTP/2 and HTTP/1.1.
pub fn server_config(m: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .map_err(|e| TlsError(format!("server certificate/key: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_material_builds_a_server_config() {
        let m = self_signed().unwrap();
        assert!(m.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        server_config(&m).unwrap();
        let again = from_pem(&m.cert_pem, &m.key_pem, &m.ca_pem).unwrap();
        assert_eq!(again.chain, m.chain);
        assert!(from_pem(&m.cert_pem, "not a key", &m.ca_pem).is_err());
        assert!(from_pem("", &m.key_pem, &m.ca_pem).is_err());
    }
}
