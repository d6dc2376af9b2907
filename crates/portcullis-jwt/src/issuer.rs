//! [`TokenIssuer`]: signs access and service tokens, publishes the public keys as a JWKS,
//! and rotates keys.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::algorithm::{Algorithm, KeyType};
use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::signature::Signer as _;
use portcullis_core::{Clock, SecretString, SystemClock};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self as sig, KeyPair};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::error::{ConfigError, KeyError};
use crate::keys::{JwkPolicy, KeySet, VerificationKey, min_hmac_key_len};
use crate::provider::{RingSigner, split_point};

/// A private key (or HMAC secret) that signs tokens for one algorithm.
pub struct SigningKey {
    kid: Option<String>,
    alg: Algorithm,
    signer: RingSigner,
    public_jwk: Option<Map<String, Value>>,
    verification: Arc<VerificationKey>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::provider::debug_key(f, "SigningKey", self.kid.as_deref(), self.alg)
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    /// An HMAC key (HS256/384/512). Secrets shorter than the hash output are refused.
    pub fn hmac(kid: Option<&str>, alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < min_hmac_key_len(alg) {
            return Err(KeyError::Weak("HMAC secret shorter than the hash output"));
        }
        let mut verification = VerificationKey::hmac(alg, secret)?;
        if let Some(kid) = kid {
            verification = verification.with_kid(kid);
        }
        let signer = RingSigner::new(alg, &EncodingKey::from_secret(secret))
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(Self {
            kid: kid.map(str::to_owned),
            alg,
            signer,
            public_jwk: None,
            verification: Arc::new(verification),
        })
    }

    /// A private key in DER: PKCS#8 (RSA, ECDSA, Ed25519) or PKCS#1 (RSA).
    pub fn from_der(kid: Option<&str>, alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        let (encoding, jwk) = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let pair = crate::provider::rsa_key_pair(der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                let (n, e) = crate::der::rsa_public_key(pair.public_key().as_ref())
                    .map_err(|_| KeyError::Malformed("RSA public key".into()))?;
                let jwk = json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)});
                (EncodingKey::from_rsa_der(der), jwk)
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let (signing, crv, size) = alg
                    .ecdsa()
                    .ok_or_else(|| KeyError::UnsupportedAlgorithm(alg.to_string()))?;
                let pair = sig::EcdsaKeyPair::from_pkcs8(signing, der, &SystemRandom::new())
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                let (x, y) = split_point(pair.public_key().as_ref(), size)
                    .ok_or(KeyError::Malformed("EC public key".into()))?;
                (
                    EncodingKey::from_ec_der(der),
                    json!({"kty": "EC", "crv": crv, "x": b64(&x), "y": b64(&y)}),
                )
            }
            Algorithm::EdDSA => {
                let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                let x = b64(pair.public_key().as_ref());
                (
                    EncodingKey::from_ed_der(der),
                    json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                )
            }
            _ => {
                return Err(KeyError::Inconsistent(
                    "use SigningKey::hmac for HMAC algorithms",
                ));
            }
        };
        let Value::Object(mut jwk) = jwk else {
            return Err(KeyError::Malformed("JWK".into()));
        };
        jwk.insert("use".into(), Value::from("sig"));
        jwk.insert("alg".into(), Value::from(alg.as_str()));
        if let Some(kid) = kid {
            jwk.insert("kid".into(), Value::from(kid));
        }
        let verification =
            VerificationKey::from_jwk(&Value::Object(jwk.clone()), &JwkPolicy::default())?
                .map_err(|_| KeyError::Inconsistent("public key is not a signature key"))?;
        let signer =
            RingSigner::new(alg, &encoding).map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(Self {
            kid: kid.map(str::to_owned),
            alg,
            signer,
            public_jwk: Some(jwk),
            verification: Arc::new(verification),
        })
    }

    /// A private key in PEM (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY` in PKCS#8).
    pub fn from_pem(kid: Option<&str>, alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let malformed = |e: jsonwebtoken::errors::Error| KeyError::Malformed(e.to_string());
        let encoding = match alg.key_type() {
            KeyType::Rsa => EncodingKey::from_rsa_pem(pem).map_err(malformed)?,
            KeyType::Ec => EncodingKey::from_ec_pem(pem).map_err(malformed)?,
            KeyType::Ed25519 => EncodingKey::from_ed_pem(pem).map_err(malformed)?,
            KeyType::Hmac => {
                return Err(KeyError::Inconsistent(
                    "use SigningKey::hmac for HMAC algorithms",
                ));
            }
        };
        Self::from_der(kid, alg, encoding.as_bytes())
    }

    /// Generates a new key: ECDSA and Ed25519 key pairs with ring, HMAC secrets of twice the
    /// minimum length. ring cannot generate RSA keys; load those with [`SigningKey::from_pem`].
    pub fn generate(kid: &str, alg: Algorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let unavailable = |_| KeyError::Malformed("the system random generator failed".into());
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let mut secret = vec![0u8; 2 * min_hmac_key_len(alg)];
                rng.fill(&mut secret).map_err(unavailable)?;
                let key = Self::hmac(Some(kid), alg, &secret);
                zeroize::Zeroize::zeroize(&mut secret);
                key
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let (signing, _, _) = alg
                    .ecdsa()
                    .ok_or_else(|| KeyError::UnsupportedAlgorithm(alg.to_string()))?;
                let pkcs8 =
                    sig::EcdsaKeyPair::generate_pkcs8(signing, &rng).map_err(unavailable)?;
                Self::from_der(Some(kid), alg, pkcs8.as_ref())
            }
            Algorithm::EdDSA => {
                let pkcs8 = sig::Ed25519KeyPair::generate_pkcs8(&rng).map_err(unavailable)?;
                Self::from_der(Some(kid), alg, pkcs8.as_ref())
            }
            _ => Err(KeyError::UnsupportedAlgorithm(format!(
                "{}: ring cannot generate RSA keys; load one from PEM",
                alg.as_str()
            ))),
        }
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public key as a JWK (`None` for HMAC secrets, which are never published).
    #[must_use]
    pub fn public_jwk(&self) -> Option<&Map<String, Value>> {
        self.public_jwk.as_ref()
    }
}

/// What to put in a token.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TokenRequest {
    /// `sub`.
    pub subject: String,
    /// `aud` (the issuer's default audiences when empty).
    pub audiences: Vec<String>,
    /// `roles`.
    pub roles: Vec<String>,
    /// `scope`, space-separated.
    pub scopes: Vec<String>,
    /// `tenant`.
    pub tenant: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `client_id` (RFC 9068 §2.2): the client the token was issued to.
    pub client_id: Option<String>,
    /// Other claims. They cannot replace the claims above or the registered ones.
    pub extra: Map<String, Value>,
    /// Lifetime (the issuer's default when `None`).
    pub ttl: Option<Duration>,
    /// The `typ` header (`at+jwt` by default).
    pub typ: String,
}

impl TokenRequest {
    /// An RFC 9068 access token for a user.
    #[must_use]
    pub fn access(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            audiences: Vec::new(),
            roles: Vec::new(),
            scopes: Vec::new(),
            tenant: None,
            name: None,
            email: None,
            client_id: None,
            extra: Map::new(),
            ttl: None,
            typ: "at+jwt".into(),
        }
    }

    /// A service-to-service token: `sub` and `client_id` are the calling service, with scopes
    /// for one audience.
    #[must_use]
    pub fn service<I: IntoIterator<Item = S>, S: Into<String>>(
        client_id: impl Into<String>,
        audience: impl Into<String>,
        scopes: I,
    ) -> Self {
        let client_id = client_id.into();
        let mut request = Self::access(client_id.clone());
        request.client_id = Some(client_id);
        request.audiences = vec![audience.into()];
        request.scopes = scopes.into_iter().map(Into::into).collect();
        request
    }

    /// Sets the roles.
    #[must_use]
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the audiences.
    #[must_use]
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the lifetime.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// A signed token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: SecretString,
    /// Its `jti`.
    pub jti: String,
    /// Its `iat`.
    pub issued_at: OffsetDateTime,
    /// Its `exp`.
    pub expires_at: OffsetDateTime,
}

#[derive(Debug)]
struct KeyRing {
    current: Arc<SigningKey>,
    /// Older keys, still published until the tokens they signed have expired.
    previous: Vec<(Arc<SigningKey>, OffsetDateTime)>,
    verification: Arc<KeySet>,
}

impl KeyRing {
    fn new(
        current: Arc<SigningKey>,
        previous: Vec<(Arc<SigningKey>, OffsetDateTime)>,
    ) -> Result<Self, KeyError> {
        let keys = std::iter::once(&current)
            .chain(previous.iter().map(|(k, _)| k))
            .map(|k| Arc::clone(&k.verification))
            .collect::<Vec<_>>();
        Ok(Self {
            current,
            previous,
            verification: Arc::new(KeySet::from_shared(keys)?),
        })
    }
}

struct IssuerInner {
    issuer: String,
    audiences: Vec<String>,
    access_ttl: Duration,
    clock: Arc<dyn Clock>,
    ring: ArcSwap<KeyRing>,
    random: SystemRandom,
}

/// Signs tokens for one issuer, publishes its public keys, rotates keys. Cheap to clone.
///
/// ```
/// use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, TokenRequest};
///
/// let issuer = TokenIssuer::new("https://auth.example.com", SigningKey::generate("k1", Algorithm::EdDSA)?)
///     .audiences(["api"]);
/// let token = issuer.issue(&TokenRequest::access("alice").roles(["admin"]))?;
/// assert_eq!(token.token.expose().split('.').count(), 3);
/// assert_eq!(issuer.jwks()["keys"].as_array().map(Vec::len), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TokenIssuer {
    inner: Arc<IssuerInner>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("access_ttl", &self.inner.access_ttl)
            .field("current_kid", &self.inner.ring.load().current.kid)
            .finish_non_exhaustive()
    }
}

/// Claims a [`TokenRequest::extra`] may not set.
const RESERVED_CLAIMS: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "roles",
    "scope",
    "tenant",
    "name",
    "email",
    "client_id",
    "scp",
];

impl TokenIssuer {
    /// An issuer (`iss`) signing with `key`. Default lifetime 15 minutes.
    #[must_use]
    pub fn new(issuer: impl Into<String>, key: SigningKey) -> Self {
        let current = Arc::new(key);
        let verification =
            KeySet::from_shared(vec![Arc::clone(&current.verification)]).unwrap_or_default();
        Self {
            inner: Arc::new(IssuerInner {
                issuer: issuer.into(),
                audiences: Vec::new(),
                access_ttl: Duration::from_secs(900),
                clock: Arc::new(SystemClock),
                ring: ArcSwap::from_pointee(KeyRing {
                    current,
                    previous: Vec::new(),
                    verification: Arc::new(verification),
                }),
                random: SystemRandom::new(),
            }),
        }
    }

    fn configure(self, f: impl FnOnce(&mut IssuerInner)) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                f(&mut inner);
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Self { inner },
        }
    }

    /// Default audiences (`aud`). Call while building, before the issuer is cloned.
    #[must_use]
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(self, audiences: I) -> Self {
        let audiences = audiences.into_iter().map(Into::into).collect();
        self.configure(|inner| inner.audiences = audiences)
    }

    /// Default lifetime. Call while building.
    #[must_use]
    pub fn access_ttl(self, ttl: Duration) -> Self {
        self.configure(|inner| inner.access_ttl = ttl)
    }

    /// The clock for `iat`/`exp`. Call while building.
    #[must_use]
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.configure(|inner| inner.clock = clock)
    }

    /// The `iss` value.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The default audiences.
    #[must_use]
    pub fn default_audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    /// Signs a token.
    pub fn issue(&self, request: &TokenRequest) -> Result<IssuedToken, ConfigError> {
        let inner = &*self.inner;
        if let Some(reserved) = request
            .extra
            .keys()
            .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
        {
            return Err(ConfigError::Invalid(format!(
                "extra claim {reserved:?} is reserved"
            )));
        }
        let ring = inner.ring.load();
        let key = &ring.current;
        let now = inner.clock.now();
        let ttl = request.ttl.unwrap_or(inner.access_ttl);
        let expires_at = now + ttl;
        let mut jti_bytes = [0u8; 16];
        inner
            .random
            .fill(&mut jti_bytes)
            .map_err(|_| ConfigError::Invalid("the system random generator failed".into()))?;
        let jti = b64(&jti_bytes);

        let mut claims = Map::new();
        claims.insert("iss".into(), Value::from(inner.issuer.as_str()));
        claims.insert("sub".into(), Value::from(request.subject.as_str()));
        let audiences = if request.audiences.is_empty() {
            &inner.audiences
        } else {
            &request.audiences
        };
        match audiences.as_slice() {
            [] => {}
            [one] => {
                claims.insert("aud".into(), Value::from(one.as_str()));
            }
            many => {
                claims.insert("aud".into(), Value::from(many.to_vec()));
            }
        }
        claims.insert("iat".into(), Value::from(now.unix_timestamp()));
        claims.insert("exp".into(), Value::from(expires_at.unix_timestamp()));
        claims.insert("jti".into(), Value::from(jti.as_str()));
        if let Some(client_id) = &request.client_id {
            claims.insert("client_id".into(), Value::from(client_id.as_str()));
        }
        if !request.roles.is_empty() {
            claims.insert("roles".into(), Value::from(request.roles.clone()));
        }
        if !request.scopes.is_empty() {
            claims.insert("scope".into(), Value::from(request.scopes.join(" ")));
        }
        for (name, value) in [
            ("tenant", &request.tenant),
            ("name", &request.name),
            ("email", &request.email),
        ] {
            if let Some(value) = value {
                claims.insert(name.into(), Value::from(value.as_str()));
            }
        }
        claims.extend(request.extra.clone());

        let mut header = Map::new();
        header.insert("alg".into(), Value::from(key.alg.as_str()));
        header.insert("typ".into(), Value::from(request.typ.as_str()));
        if let Some(kid) = &key.kid {
            header.insert("kid".into(), Value::from(kid.as_str()));
        }
        let encode = |value: &Map<String, Value>| {
            serde_json::to_vec(value)
                .map(|bytes| b64(&bytes))
                .map_err(|e| ConfigError::Invalid(e.to_string()))
        };
        let mut token = encode(&header)?;
        token.push('.');
        token.push_str(&encode(&claims)?);
        let signature = key
            .signer
            .try_sign(token.as_bytes())
            .map_err(|_| ConfigError::Invalid("signing failed".into()))?;
        token.push('.');
        token.push_str(&b64(&signature));
        Ok(IssuedToken {
            token: SecretString::new(token),
            jti,
            issued_at: now,
            expires_at,
        })
    }

    /// The public keys (current and not yet retired) as a JWKS document. Empty for HMAC.
    #[must_use]
    pub fn jwks(&self) -> Value {
        let ring = self.inner.ring.load();
        let now = self.inner.clock.now();
        let keys: Vec<Value> = std::iter::once(&ring.current)
            .chain(
                ring.previous
                    .iter()
                    .filter(|(_, retire)| *retire > now)
                    .map(|(k, _)| k),
            )
            .filter_map(|k| k.public_jwk.clone().map(Value::Object))
            .collect();
        json!({ "keys": keys })
    }

    /// The keys that verify this issuer's tokens (what [`crate::KeySource::Issuer`] uses).
    #[must_use]
    pub fn verification_keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.inner.ring.load().verification)
    }

    /// Makes `key` the current key. The previous current key keeps verifying (and stays in
    /// the JWKS) until `retire_after` from now: set it to the longest token lifetime plus
    /// the verifiers' JWKS cache time. Keys past their retirement are dropped.
    pub fn rotate(&self, key: SigningKey, retire_after: Duration) -> Result<(), KeyError> {
        let now = self.inner.clock.now();
        let ring = self.inner.ring.load();
        let mut previous: Vec<_> = ring
            .previous
            .iter()
            .filter(|(_, retire)| *retire > now)
            .cloned()
            .collect();
        previous.push((Arc::clone(&ring.current), now + retire_after));
        let new_ring = KeyRing::new(Arc::new(key), previous)?;
        self.inner.ring.store(Arc::new(new_ring));
        Ok(())
    }

    /// The current key id.
    #[must_use]
    pub fn current_kid(&self) -> Option<String> {
        self.inner.ring.load().current.kid.clone()
    }
}
