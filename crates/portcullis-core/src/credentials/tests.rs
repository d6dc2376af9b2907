use super::*;
use http::Request;

fn parts(headers: &[(&str, &[u8])]) -> Parts {
    let mut builder = Request::builder().uri("/collections/docs?api_key=pc_live_leaked");
    for (name, value) in headers {
        builder = builder.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    builder.body(()).unwrap().into_parts().0
}

fn extract(headers: &[(&str, &[u8])]) -> Result<Credentials, CredentialError> {
    CredentialExtractor::new().extract(&parts(headers))
}

#[test]
fn no_credentials_is_empty_not_an_error() {
    let creds = extract(&[]).unwrap();
    assert!(creds.is_empty());
}

#[test]
fn query_string_is_never_read() {
    // The URI carries `?api_key=...`: it must not become a credential.
    let creds = extract(&[("accept", b"*/*")]).unwrap();
    assert!(creds.api_key().is_none());
    assert!(creds.is_empty());
}

#[test]
fn bearer_scheme_is_case_insensitive() {
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} abc.def-_~+/ghi==");
        let creds = extract(&[("authorization", value.as_bytes())]).unwrap();
        assert_eq!(creds.bearer().unwrap().expose(), "abc.def-_~+/ghi==");
    }
}

#[test]
fn several_spaces_after_scheme_are_allowed() {
    let creds = extract(&[("authorization", b"Bearer   tok")]).unwrap();
    assert_eq!(creds.bearer().unwrap().expose(), "tok");
}

#[test]
fn bearer_token_must_be_b64token() {
    for bad in [
        &b"Bearer a b"[..],
        b"Bearer a,b",
        b"Bearer =abc",
        b"Bearer abc ",
        b"Bearer a\"b",
        b"Bearer ===",
    ] {
        assert!(
            matches!(
                extract(&[("authorization", bad)]),
                Err(CredentialError::MalformedAuthorization { .. })
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn empty_tokens_are_rejected() {
    for bad in [
        &b"Bearer"[..],
        b"Bearer ",
        b"Bearer    ",
        b"Basic",
        b"ApiKey ",
    ] {
        assert_eq!(
            extract(&[("authorization", bad)]),
            Err(CredentialError::Empty {
                header: AUTHORIZATION
            }),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(matches!(
        extract(&[("authorization", b"")]),
        Err(CredentialError::MalformedAuthorization { .. })
    ));
    assert!(matches!(
        extract(&[("authorization", b" Bearer abc")]),
        Err(CredentialError::MalformedAuthorization { .. })
    ));
    assert_eq!(
        extract(&[("x-api-key", b"")]),
        Err(CredentialError::Empty {
            header: HeaderName::from_static("x-api-key")
        })
    );
}

#[test]
fn several_authorization_headers_are_rejected() {
    let err = extract(&[
        ("authorization", b"Bearer a"),
        ("authorization", b"Bearer b"),
    ]);
    assert_eq!(
        err,
        Err(CredentialError::DuplicateHeader {
            header: AUTHORIZATION,
            count: 2
        })
    );
}

#[test]
fn several_api_key_headers_are_rejected() {
    let err = extract(&[("x-api-key", b"k1"), ("x-api-key", b"k2")]);
    assert!(matches!(err, Err(CredentialError::DuplicateHeader { .. })));
}

#[test]
fn non_ascii_and_control_bytes_are_rejected() {
    for bad in [&b"Bearer caf\xc3\xa9"[..], b"Bearer a\tb", b"Bearer \xff"] {
        assert_eq!(
            extract(&[("authorization", bad)]),
            Err(CredentialError::NotVisibleAscii {
                header: AUTHORIZATION
            })
        );
    }
    assert!(matches!(
        extract(&[("x-api-key", b"key\xe2\x80\x8b")]),
        Err(CredentialError::NotVisibleAscii { .. })
    ));
}

#[test]
fn del_cannot_reach_the_extractor() {
    // `http` itself refuses DEL in a header value; the extractor would refuse it too.
    assert!(HeaderValue::from_bytes(b"Bearer \x7f").is_err());
}

#[test]
fn oversized_values_are_rejected_before_parsing() {
    let long = format!("Bearer {}", "a".repeat(DEFAULT_MAX_CREDENTIAL_LEN));
    assert!(matches!(
        extract(&[("authorization", long.as_bytes())]),
        Err(CredentialError::TooLong { len, max: DEFAULT_MAX_CREDENTIAL_LEN, .. })
            if len == DEFAULT_MAX_CREDENTIAL_LEN + 7
    ));
    // The limit is configurable.
    let small = CredentialExtractor::new().max_credential_len(16).unwrap();
    assert!(matches!(
        small.extract(&parts(&[("x-api-key", b"0123456789abcdefg")])),
        Err(CredentialError::TooLong { max: 16, .. })
    ));
    assert!(
        small
            .extract(&parts(&[("x-api-key", b"0123456789abcdef")]))
            .is_ok()
    );
    assert!(CredentialExtractor::new().max_credential_len(0).is_err());
}

#[test]
fn basic_credentials_are_decoded() {
    // "Aladdin:open sesame" from RFC 7617 §2.
    let creds = extract(&[("authorization", b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")]).unwrap();
    let (user, password) = creds.basic().unwrap();
    assert_eq!(user, "Aladdin");
    assert_eq!(password.expose(), "open sesame");

    // The password may contain colons; only the first separates.
    let creds = extract(&[("authorization", b"basic dTpwOnE=")]).unwrap();
    assert_eq!(creds.basic().unwrap().1.expose(), "p:q");
}

#[test]
fn malformed_basic_is_rejected() {
    for bad in [
        &b"Basic !!!!"[..],
        b"Basic bm9jb2xvbg==",               // "nocolon"
        b"Basic OnBhc3M=",                   // ":pass"
        b"Basic //79",                       // invalid UTF-8
        b"Basic dQpYOnA=",                   // "u\nX:p"
        b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ", // missing padding
    ] {
        assert!(
            matches!(
                extract(&[("authorization", bad)]),
                Err(CredentialError::MalformedBasic { .. })
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn api_key_from_header_and_scheme() {
    let creds = extract(&[("x-api-key", b"pc_live_abc")]).unwrap();
    let (key, source) = creds.api_key().unwrap();
    assert_eq!(key.expose(), "pc_live_abc");
    assert_eq!(
        source,
        &ApiKeySource::Header(HeaderName::from_static("x-api-key"))
    );

    let creds = extract(&[("authorization", b"ApiKey pc_live_abc")]).unwrap();
    let (key, source) = creds.api_key().unwrap();
    assert_eq!(key.expose(), "pc_live_abc");
    assert_eq!(source, &ApiKeySource::AuthorizationScheme);

    assert!(matches!(
        extract(&[("authorization", b"ApiKey a b")]),
        Err(CredentialError::MalformedAuthorization { .. })
    ));
}

#[test]
fn api_key_header_name_is_configurable() {
    let extractor = CredentialExtractor::new()
        .api_key_header("X-Service-Key")
        .unwrap();
    let creds = extractor
        .extract(&parts(&[
            ("x-api-key", b"ignored"),
            ("x-service-key", b"k"),
        ]))
        .unwrap();
    assert_eq!(creds.api_key().unwrap().0.expose(), "k");
    assert_eq!(creds.iter().count(), 1);

    assert!(
        CredentialExtractor::new()
            .api_key_header("bad header")
            .is_err()
    );
    assert!(
        CredentialExtractor::new()
            .api_key_header("Authorization")
            .is_err()
    );
    assert!(CredentialExtractor::new().api_key_header("cookie").is_err());

    let none = CredentialExtractor::new().without_api_key_header();
    assert!(
        none.extract(&parts(&[("x-api-key", b"k")]))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn unknown_scheme_is_kept_without_its_value() {
    let creds = extract(&[("authorization", b"Digest username=\"x\", secret=\"y\"")]).unwrap();
    let only = creds.iter().next().unwrap();
    assert_eq!(
        only,
        &Credential::UnsupportedScheme {
            scheme: "Digest".into()
        }
    );
    assert!(!format!("{creds:?}").contains("secret"));
}

#[test]
fn session_cookie_is_read_when_configured() {
    let extractor = CredentialExtractor::new().session_cookie("sid").unwrap();
    let creds = extractor
        .extract(&parts(&[("cookie", b"theme=dark; sid=abc123; lang=en")]))
        .unwrap();
    assert_eq!(creds.session_cookie().unwrap().expose(), "abc123");

    let quoted = extractor
        .extract(&parts(&[("cookie", b"sid=\"abc123\"")]))
        .unwrap();
    assert_eq!(quoted.session_cookie().unwrap().expose(), "abc123");

    // Not configured: not read.
    assert!(extract(&[("cookie", b"sid=abc123")]).unwrap().is_empty());
    // Prefix of another cookie's name does not match.
    assert!(
        extractor
            .extract(&parts(&[("cookie", b"sidx=1; xsid=2")]))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn session_cookie_duplicates_and_bad_values_are_rejected() {
    let extractor = CredentialExtractor::new().session_cookie("sid").unwrap();
    assert_eq!(
        extractor.extract(&parts(&[("cookie", b"sid=a; sid=b")])),
        Err(CredentialError::DuplicateSessionCookie)
    );
    assert_eq!(
        extractor.extract(&parts(&[("cookie", b"sid=a"), ("cookie", b"sid=b")])),
        Err(CredentialError::DuplicateSessionCookie)
    );
    assert_eq!(
        extractor.extract(&parts(&[("cookie", b"sid=")])),
        Err(CredentialError::Empty { header: COOKIE })
    );
    assert_eq!(
        extractor.extract(&parts(&[("cookie", b"sid=a\\b")])),
        Err(CredentialError::NotVisibleAscii { header: COOKIE })
    );
    let many: Vec<(&str, &[u8])> = (0..=DEFAULT_MAX_COOKIE_HEADERS)
        .map(|_| ("cookie", &b"x=1"[..]))
        .collect();
    assert!(matches!(
        extractor.extract(&parts(&many)),
        Err(CredentialError::TooManyHeaders { .. })
    ));
    assert!(CredentialExtractor::new().session_cookie("s id").is_err());
    assert!(CredentialExtractor::new().session_cookie("").is_err());
    assert!(CredentialExtractor::new().cookie_limits(0, 1).is_err());
    assert!(CredentialExtractor::new().cookie_limits(1, 0).is_err());
}

#[test]
fn peer_certificates_come_from_extensions() {
    let mut p = parts(&[]);
    let chain = PeerCertificates::new(vec![
        CertificateDer::from(vec![1, 2, 3]),
        CertificateDer::from(vec![4, 5]),
    ]);
    p.extensions.insert(chain.clone());
    let creds = CredentialExtractor::new().extract(&p).unwrap();
    let got = creds.peer_certificates().unwrap();
    assert_eq!(got, &chain);
    assert_eq!(got.end_entity().unwrap().as_ref(), &[1, 2, 3]);
    assert_eq!(got.intermediates().len(), 1);
    assert_eq!(got.total_bytes(), 5);

    let mut empty = parts(&[]);
    empty.extensions.insert(PeerCertificates::new(vec![]));
    assert_eq!(
        CredentialExtractor::new().extract(&empty),
        Err(CredentialError::EmptyPeerCertificates)
    );
}

#[test]
fn several_credentials_keep_their_order() {
    let mut p = parts(&[("authorization", b"Bearer t"), ("x-api-key", b"k")]);
    p.extensions
        .insert(PeerCertificates::new(vec![CertificateDer::from(vec![1])]));
    let creds = CredentialExtractor::new().extract(&p).unwrap();
    let kinds: Vec<_> = creds.iter().map(Credential::kind).collect();
    assert_eq!(kinds, ["bearer", "api_key", "peer_certificates"]);
}

#[test]
fn errors_never_echo_the_value() {
    let err = extract(&[("authorization", b"Bearer sup3r\"secret")]).unwrap_err();
    assert!(!err.to_string().contains("sup3r"));
    let err = extract(&[("authorization", b"Basic c2VjcmV0")]).unwrap_err();
    assert!(!err.to_string().contains("c2VjcmV0"));
}
