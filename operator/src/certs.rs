//! The webhook's certificate when cert-manager is not there: the operator
//! generates a CA and a serving certificate once, keeps them in a Secret
//! (so every replica serves the same one and a restart keeps it), and
//! writes the CA into the ValidatingWebhookConfiguration's `caBundle`.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A serving certificate, its key and the CA that signed it, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pem {
    /// `tls.crt`.
    pub cert: String,
    /// `tls.key`.
    pub key: String,
    /// `ca.crt`.
    pub ca: String,
}

/// A new CA (10 years) and a serving certificate for `dns_names` signed by
/// it.
pub fn generate(dns_names: &[String]) -> Result<Pem, rcgen::Error> {
    let validity = |params: &mut CertificateParams| {
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "thesa-operator webhook CA");
    validity(&mut ca);
    let ca = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(dns_names.to_vec())?;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, "thesa-operator webhook");
    validity(&mut leaf);
    let leaf = leaf.signed_by(&key, &ca, &ca_key)?;
    Ok(Pem {
        cert: leaf.pem(),
        key: key.serialize_pem(),
        ca: ca.pem(),
    })
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// The certificate in the Secret `namespace/name`, generated and stored
/// first when the Secret does not exist (of replicas racing, the first
/// create wins and the others read it).
pub async fn ensure(
    client: &Client,
    namespace: &str,
    name: &str,
    dns_names: &[String],
) -> Result<Pem, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read = |secret: &Secret| -> Option<Pem> {
        Some(Pem {
            cert: text(secret, "tls.crt")?,
            key: text(secret, "tls.key")?,
            ca: text(secret, "ca.crt")?,
        })
    };
    let fail = |e: kube::Error| format!("Secret {namespace}/{name}: {e}");
    if let Some(secret) = secrets.get_opt(name).await.map_err(fail)? {
        return read(&secret).ok_or_else(|| {
            format!("Secret {namespace}/{name} lacks tls.crt, tls.key or ca.crt; delete it to have it generated again")
        });
    }
    let pem =
        generate(dns_names).map_err(|e| format!("generating the webhook certificate: {e}"))?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            [
                ("tls.crt", &pem.cert),
                ("tls.key", &pem.key),
                ("ca.crt", &pem.ca),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.clone().into_bytes())))
            .collect(),
        ),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(pem),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let secret = secrets.get(name).await.map_err(fail)?;
            read(&secret).ok_or_else(|| format!("Secret {namespace}/{name} is incomplete"))
        }
        Err(err) => Err(fail(err)),
    }
}

/// Writes `ca` into every webhook of the ValidatingWebhookConfiguration
/// `name` whose `caBundle` differs.
pub async fn inject(client: &Client, name: &str, ca: &str) -> Result<(), String> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let fail = |e: kube::Error| format!("ValidatingWebhookConfiguration {name}: {e}");
    let mut configuration = api.get(name).await.map_err(fail)?;
    let bundle = ByteString(ca.as_bytes().to_vec());
    let mut changed = false;
    for webhook in configuration.webhooks.iter_mut().flatten() {
        if webhook.client_config.ca_bundle.as_ref() != Some(&bundle) {
            webhook.client_config.ca_bundle = Some(bundle.clone());
            changed = true;
        }
    }
    if changed {
        api.replace(name, &PostParams::default(), &configuration)
            .await
            .map_err(fail)?;
    }
    Ok(())
}
