//! A throwaway CA, the registry's server certificate and the token issuer's signing key.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::RegistryError;

/// Everything TLS and token auth need, written under one directory.
pub struct Pki {
    /// The CA certificate (PEM): trust this to talk to the registry.
    pub ca_pem: PathBuf,
    /// A directory holding only `ca.crt` (the CA), in the layout `skopeo --cert-dir` and
    /// docker's `certs.d/<host>/` use.
    pub cert_dir: PathBuf,
    /// The server certificate (PEM), for 127.0.0.1, ::1 and localhost.
    pub server_cert: PathBuf,
    /// Its key (PEM).
    pub server_key: PathBuf,
    /// The server certificate (DER), for in-process TLS servers such as the token server.
    pub server_cert_der: Vec<u8>,
    /// Its key (PKCS#8 DER).
    pub server_key_pkcs8: Vec<u8>,
    /// The token signing certificate (DER), signed by the CA; it goes in the JWT `x5c`.
    pub token_cert_der: Vec<u8>,
    /// The token signing key (PKCS#8 DER, ECDSA P-256).
    pub token_key_pkcs8: Vec<u8>,
}

fn pki_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> RegistryError {
    move |source| RegistryError::Pki { what, source }
}

/// Generates a CA, a server certificate and a token signing certificate into `dir`.
pub fn generate(dir: &Path) -> Result<Pki, RegistryError> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(pki_err("CA params"))?;
    ca.distinguished_name
        .push(DnType::CommonName, "rkt test CA (loopback only)");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(pki_err("CA key"))?;
    let ca_cert = ca.self_signed(&ca_key).map_err(pki_err("CA certificate"))?;
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(pki_err("server params"))?;
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let server_key = KeyPair::generate().map_err(pki_err("server key"))?;
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(pki_err("server certificate"))?;

    // distribution verifies the x5c chain with ExtKeyUsageAny, so no EKU is needed here.
    let mut token =
        CertificateParams::new(Vec::<String>::new()).map_err(pki_err("token params"))?;
    token
        .distinguished_name
        .push(DnType::CommonName, "rkt test token issuer");
    token.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let token_key = KeyPair::generate().map_err(pki_err("token key"))?;
    let token_cert = token
        .signed_by(&token_key, &issuer)
        .map_err(pki_err("token certificate"))?;

    let io = |what: &'static str| {
        move |source| RegistryError::Io {
            what: what.to_owned(),
            source,
        }
    };
    let cert_dir = dir.join("certs.d");
    fs::create_dir_all(&cert_dir).map_err(io("cannot create the certificate directory"))?;
    let pki = Pki {
        ca_pem: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server-key.pem"),
        cert_dir: cert_dir.clone(),
        server_cert_der: server_cert.der().to_vec(),
        server_key_pkcs8: server_key.serialize_der(),
        token_cert_der: token_cert.der().to_vec(),
        token_key_pkcs8: token_key.serialize_der(),
    };
    fs::write(&pki.ca_pem, ca_cert.pem())
        .and_then(|()| fs::write(cert_dir.join("ca.crt"), ca_cert.pem()))
        .and_then(|()| fs::write(&pki.server_cert, server_cert.pem()))
        .and_then(|()| fs::write(&pki.server_key, server_key.serialize_pem()))
        .map_err(io("cannot write the test certificates"))?;
    Ok(pki)
}

impl Pki {
    /// A rustls server configuration presenting the server certificate.
    pub fn rustls_server_config(
        &self,
    ) -> Result<std::sync::Arc<rustls::ServerConfig>, rustls::Error> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.server_cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_pkcs8.clone())),
            )?;
        Ok(std::sync::Arc::new(cfg))
    }
}
