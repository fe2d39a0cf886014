//! `thesa-bff dev-token`: prints a signed token for local development, so a
//! BFF can be called with curl without an identity provider. The claims go
//! where the configuration's claim paths say, so the BFF that reads the same
//! configuration accepts the token.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};
use thesa_core::config::IdentityConfig;
use thesa_core::duration::Duration;

use crate::settings;

/// Prints a token signed with the development key (DEVELOPMENT ONLY).
///
/// The development key in config/dev/ is public knowledge: never configure
/// a deployed BFF to trust it. The token carries the issuer, audience and
/// claim paths of the configuration (--config, else config/config.yaml,
/// else the compiled defaults), which must set identity.issuer and
/// identity.audience. Only the token is printed, so it can be captured:
///
///   TOKEN=$(thesa-bff dev-token --sub alice --tenant acme --roles admin,clerk)
///
///   curl -H "Authorization: Bearer $TOKEN" http://localhost:8080/ui/navigation
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "DEVELOPMENT ONLY: the key in config/dev/ is public knowledge.\n\n\
    Example:\n  \
    TOKEN=$(thesa-bff dev-token --sub alice --tenant acme --roles admin,clerk)\n  \
    curl -H \"Authorization: Bearer $TOKEN\" http://localhost:8080/ui/navigation"
)]
pub struct DevTokenArgs {
    /// Subject: the caller's user ID
    #[arg(long, value_name = "ID")]
    pub sub: String,

    /// Tenant
    #[arg(long, value_name = "TENANT")]
    pub tenant: String,

    /// Roles, comma-separated
    #[arg(
        long,
        value_name = "ROLE,...",
        value_delimiter = ',',
        default_value = ""
    )]
    pub roles: Vec<String>,

    /// E-mail address
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,

    /// Partitions, repeated or comma-separated; the first is the default
    #[arg(long, value_name = "PARTITION,...", value_delimiter = ',')]
    pub partition: Vec<String>,

    /// Lifetime: seconds or a duration such as 30m or 8h
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: Duration,

    /// Private key in PEM: RSA (signs RS256) or EC P-256 in PKCS#8 (ES256)
    #[arg(
        long,
        value_name = "PEM",
        default_value = "config/dev/jwt-dev-private.pem"
    )]
    pub key: PathBuf,

    /// Key ID put in the token header; the JWKS must have a key with it
    #[arg(long, value_name = "KID", default_value = "thesa-dev-1")]
    pub kid: String,
}

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DevTokenError {
    /// The configuration lacks a setting the token needs.
    #[error(
        "{key} is not set in {config}; the BFF accepts no token without it \
         (pass --config with an identity section)"
    )]
    MissingSetting {
        /// The setting.
        key: &'static str,
        /// Where the configuration came from.
        config: String,
    },
    /// The key file cannot be read.
    #[error("cannot read the signing key {path}: {source}")]
    ReadKey {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The key file holds a public key.
    #[error("{path} is a public key; --key needs the private key")]
    PublicKey {
        /// The key file.
        path: PathBuf,
    },
    /// The key file is neither an RSA nor a PKCS#8 EC private key.
    #[error(
        "{path} is neither an RSA private key (PKCS#1 or PKCS#8 PEM) nor an EC P-256 private key \
         in PKCS#8 PEM (convert a SEC1 EC key with `openssl pkcs8 -topk8 -nocrypt -in KEY`)"
    )]
    UnsupportedKey {
        /// The key file.
        path: PathBuf,
    },
    /// A claim path is empty, or leads through a claim that is not an
    /// object, or names a claim already set.
    #[error(
        "identity.claim_paths.{setting} ({path:?}) cannot hold the value: {why}; \
         give every claim its own path"
    )]
    ClaimPath {
        /// The claim-path setting, e.g. `tenant_id`.
        setting: &'static str,
        /// Its value.
        path: String,
        /// What is in the way.
        why: &'static str,
    },
    /// The key cannot sign (e.g. an EC key on another curve than P-256).
    #[error("cannot sign with {path}: {source}")]
    Sign {
        /// The key file.
        path: PathBuf,
        /// jsonwebtoken's error.
        source: jsonwebtoken::errors::Error,
    },
}

/// Prints the token and a newline; errors go to standard error with exit
/// code 2.
pub fn run(config: Option<PathBuf>, args: DevTokenArgs) -> ExitCode {
    // The same configuration `serve` reads, `THESA_*` overrides included,
    // so the token fits the server started in the same environment.
    let (source, config) = match settings::load(config.as_deref(), std::env::vars()) {
        Ok(settings) => (settings.source, settings.config),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match token(&config.identity, &source, &args, now) {
        Ok(token) => match writeln!(io::stdout().lock(), "{token}") {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(2),
        },
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

/// The signed token: `iss`, `aud`, `iat` and `exp`, and each of the
/// caller's claims at its configured claim path. `config` names where
/// `identity` came from, for messages.
pub(crate) fn token(
    identity: &IdentityConfig,
    config: &str,
    args: &DevTokenArgs,
    now: u64,
) -> Result<String, DevTokenError> {
    let setting = |value: &Option<String>, key| {
        value
            .clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| DevTokenError::MissingSetting {
                key,
                config: config.to_string(),
            })
    };
    let issuer = setting(&identity.issuer, "identity.issuer")?;
    let audience = setting(&identity.audience, "identity.audience")?;
    let (alg, key) = signing_key(&args.key)?;

    let mut claims = Map::new();
    claims.insert("iss".into(), issuer.into());
    claims.insert("aud".into(), audience.into());
    claims.insert("iat".into(), now.into());
    claims.insert(
        "exp".into(),
        now.saturating_add(args.ttl.get().as_secs()).into(),
    );
    let paths = &identity.claim_paths;
    put(
        &mut claims,
        "subject_id",
        &paths.subject_id,
        args.sub.clone().into(),
    )?;
    put(
        &mut claims,
        "tenant_id",
        &paths.tenant_id,
        args.tenant.clone().into(),
    )?;
    if let Some(email) = &args.email {
        put(&mut claims, "email", &paths.email, email.clone().into())?;
    }
    let roles = non_empty(&args.roles);
    if !roles.is_empty() {
        put(&mut claims, "roles", &paths.roles, roles.into())?;
    }
    // One partition as a string (the usual shape of a default-partition
    // claim), several as an array.
    match non_empty(&args.partition).as_slice() {
        [] => {}
        [one] => put(
            &mut claims,
            "partition_id",
            &paths.partition_id,
            one.clone().into(),
        )?,
        several => put(
            &mut claims,
            "partition_id",
            &paths.partition_id,
            several.into(),
        )?,
    }

    let mut header = Header::new(alg);
    header.kid = Some(args.kid.clone());
    jsonwebtoken::encode(&header, &Value::Object(claims), &key).map_err(|source| {
        DevTokenError::Sign {
            path: args.key.clone(),
            source,
        }
    })
}

fn non_empty(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// The key in `path` and the algorithm it signs: RS256 for RSA, ES256 for
/// EC (jsonwebtoken tells the two apart by the key's OID).
fn signing_key(path: &Path) -> Result<(Algorithm, EncodingKey), DevTokenError> {
    let pem = std::fs::read(path).map_err(|source| DevTokenError::ReadKey {
        path: path.to_path_buf(),
        source,
    })?;
    // jsonwebtoken would load an RSA public key as a signing key and fail
    // only when signing, with a less helpful message.
    if String::from_utf8_lossy(&pem).contains("PUBLIC KEY-----") {
        return Err(DevTokenError::PublicKey {
            path: path.to_path_buf(),
        });
    }
    if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
        return Ok((Algorithm::RS256, key));
    }
    if let Ok(key) = EncodingKey::from_ec_pem(&pem) {
        return Ok((Algorithm::ES256, key));
    }
    Err(DevTokenError::UnsupportedKey {
        path: path.to_path_buf(),
    })
}

/// Puts `value` at the dotted claim `path`, creating the objects on the way
/// (`realm_access.roles` becomes `{"realm_access": {"roles": ...}}`), as
/// the BFF reads it.
fn put(
    claims: &mut Map<String, Value>,
    setting: &'static str,
    path: &str,
    value: Value,
) -> Result<(), DevTokenError> {
    let conflict = |why| DevTokenError::ClaimPath {
        setting,
        path: path.to_string(),
        why,
    };
    if path.split('.').any(str::is_empty) {
        return Err(conflict("the path is empty or has an empty segment"));
    }
    let (parents, leaf) = match path.rsplit_once('.') {
        Some((parents, leaf)) => (Some(parents), leaf),
        None => (None, path),
    };
    let mut object = claims;
    for segment in parents.into_iter().flat_map(|p| p.split('.')) {
        object = match object
            .entry(segment)
            .or_insert_with(|| Value::Object(Map::new()))
        {
            Value::Object(inner) => inner,
            _ => return Err(conflict("it leads through a claim that is not an object")),
        };
    }
    if object.contains_key(leaf) {
        return Err(conflict("another claim is already there"));
    }
    object.insert(leaf.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;
    use crate::access::auth::{Authenticator, Principal};

    fn repo(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
    }

    fn http() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: DevTokenArgs,
    }

    fn parse(args: &[&str]) -> DevTokenArgs {
        Cli::try_parse_from([&["dev-token"], args].concat())
            .unwrap()
            .args
    }

    /// The repository's development configuration, with the development
    /// JWKS file as the key source (whatever config.yaml names).
    fn dev_identity() -> IdentityConfig {
        let text = std::fs::read_to_string(repo("config/config.yaml")).unwrap();
        let mut findings = Vec::new();
        let config =
            thesa_core::config::Config::from_text("config/config.yaml", &text, &mut findings)
                .unwrap_or_else(|| panic!("config/config.yaml: {findings:?}"));
        IdentityConfig {
            jwks_url: None,
            jwks_file: Some(repo("config/dev/jwks.json").display().to_string()),
            ..config.identity
        }
    }

    #[test]
    fn parses_lists_and_defaults() {
        let args = parse(&[
            "--sub",
            "alice",
            "--tenant",
            "acme",
            "--roles",
            "admin,clerk",
            "--partition",
            "eu",
            "--partition",
            "us,ap",
            "--ttl",
            "30m",
        ]);
        assert_eq!(args.roles, ["admin", "clerk"]);
        assert_eq!(args.partition, ["eu", "us", "ap"]);
        assert_eq!(args.ttl, Duration::from_secs(1800));
        let args = parse(&["--sub", "alice", "--tenant", "acme"]);
        assert!(non_empty(&args.roles).is_empty());
        assert_eq!(args.ttl, Duration::from_secs(3600));
        assert_eq!(args.key, Path::new("config/dev/jwt-dev-private.pem"));
        assert_eq!(args.kid, "thesa-dev-1");
        assert!(Cli::try_parse_from(["dev-token", "--sub", "alice"]).is_err());
    }

    #[tokio::test]
    async fn dev_token_verifies_against_the_dev_jwks() {
        let identity = dev_identity();
        let mut args = parse(&[
            "--sub",
            "alice",
            "--tenant",
            "acme",
            "--roles",
            "admin,clerk",
            "--email",
            "alice@acme.test",
            "--partition",
            "eu,us",
        ]);
        args.key = repo("config/dev/jwt-dev-private.pem");
        let token = token(&identity, "config/config.yaml", &args, now()).unwrap();
        let auth = Authenticator::new(&identity, http()).await.unwrap();
        let principal = auth
            .authenticate(Some(&format!("Bearer {token}")))
            .await
            .unwrap();
        assert_eq!(
            principal,
            Principal {
                subject: "alice".into(),
                tenant: "acme".into(),
                email: Some("alice@acme.test".into()),
                roles: vec!["admin".into(), "clerk".into()],
                partitions: vec!["eu".into(), "us".into()],
            }
        );
    }

    #[tokio::test]
    async fn ec_key_signs_es256_with_nested_claim_paths() {
        let mut identity = dev_identity();
        identity.jwks_file =
            Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/jwks-test.json").into());
        identity.claim_paths.roles = "realm_access.roles".into();
        identity.claim_paths.tenant_id = "org.tenant".into();
        let mut args = parse(&[
            "--sub",
            "bob",
            "--tenant",
            "acme",
            "--roles",
            "viewer",
            "--kid",
            "test-ec-1",
        ]);
        args.key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/ec-test.pem").into();
        let token = token(&identity, "test", &args, now()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        let auth = Authenticator::new(&identity, http()).await.unwrap();
        let principal = auth
            .authenticate(Some(&format!("Bearer {token}")))
            .await
            .unwrap();
        assert_eq!(principal.tenant, "acme");
        assert_eq!(principal.roles, ["viewer"]);
        assert!(principal.partitions.is_empty());
    }

    #[test]
    fn claims_go_to_nested_paths_and_conflicts_are_errors() {
        let mut claims = Map::new();
        put(&mut claims, "roles", "realm_access.roles", json!(["a"])).unwrap();
        put(&mut claims, "tenant_id", "realm_access.tenant", json!("t")).unwrap();
        put(&mut claims, "subject_id", "sub", json!("s")).unwrap();
        assert_eq!(
            Value::Object(claims.clone()),
            json!({ "realm_access": { "roles": ["a"], "tenant": "t" }, "sub": "s" })
        );
        for (path, why) in [
            ("sub.x", "not an object"),
            ("sub", "already there"),
            ("", "empty"),
            ("a..b", "empty"),
        ] {
            let err = put(&mut claims, "email", path, json!("e")).unwrap_err();
            assert!(err.to_string().contains(why), "{path:?}: {err}");
        }
    }

    #[test]
    fn explains_missing_settings_and_unusable_keys() {
        let mut args = parse(&["--sub", "alice", "--tenant", "acme"]);
        args.key = repo("config/dev/jwt-dev-private.pem");
        let err = token(
            &IdentityConfig::default(),
            "the compiled defaults",
            &args,
            now(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("identity.issuer is not set in the compiled defaults"),
            "{err}"
        );

        let identity = dev_identity();
        args.key = repo("config/dev/jwt-dev-public.pem");
        let err = token(&identity, "c", &args, now()).unwrap_err();
        assert!(matches!(err, DevTokenError::PublicKey { .. }), "{err}");
        args.key = repo("config/dev/README.md");
        let err = token(&identity, "c", &args, now()).unwrap_err();
        assert!(matches!(err, DevTokenError::UnsupportedKey { .. }), "{err}");
        args.key = repo("config/dev/missing.pem");
        let err = token(&identity, "c", &args, now()).unwrap_err();
        assert!(matches!(err, DevTokenError::ReadKey { .. }), "{err}");
    }
}
