//! The argon2 known answers of `../shared/vectors/argon2_vectors.json`: the reference
//! implementation's PHC strings go through [`Passwords::verify`] exactly as a stored hash
//! would (the right password matches, rehash is asked below the policy, a wrong password does
//! not match), and the RFC 9106 §5 tags (with secret and associated data) come out of the
//! argon2 primitive the hasher is built on. Absent vectors skip with a printed reason outside
//! CI and fail under it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};
use portcullis_core::SecretString;
use portcullis_identity::{Argon2Params, OWASP_MINIMUMS, PasswordPolicy, Passwords, Verified};
use portcullis_testkit::vectors;
use serde_json::Value;

fn load() -> Option<Value> {
    vectors::json("argon2_vectors.json")
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap().to_owned()
}

fn number(v: &Value, key: &str) -> u32 {
    u32::try_from(v[key].as_u64().unwrap()).unwrap()
}

#[tokio::test]
async fn reference_phc_strings_verify_through_the_stored_hash_path() {
    let Some(file) = load() else { return };
    let passwords = Passwords::new(Argon2Params::OWASP, PasswordPolicy::default()).unwrap();
    let cases = file["phc_reference"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let phc = text(case, "phc");
        let password = SecretString::new(text(case, "password"));
        let verified = passwords.verify(&password, Some(&phc)).await.unwrap();
        let below_policy = number(case, "m_cost_kib") < 19_456 || number(case, "t_cost") < 2;
        assert_eq!(
            verified,
            Verified::Valid {
                rehash: below_policy
            },
            "{phc}"
        );
        let wrong = SecretString::new(format!("{}x", text(case, "password")));
        assert_eq!(
            passwords.verify(&wrong, Some(&phc)).await.unwrap(),
            Verified::Invalid,
            "{phc}"
        );
        // The PHC tag is the known answer's tag.
        let hash = argon2::PasswordHash::new(&phc).unwrap();
        assert_eq!(
            hex::encode(hash.hash.unwrap().as_bytes()),
            text(case, "tag_hex")
        );
    }
}

#[test]
fn rfc9106_tags_with_secret_and_associated_data() {
    let Some(file) = load() else { return };
    let cases = file["rfc9106"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let algorithm = match case["type"].as_str().unwrap() {
            "argon2d" => Algorithm::Argon2d,
            "argon2i" => Algorithm::Argon2i,
            "argon2id" => Algorithm::Argon2id,
            other => panic!("unknown type {other}"),
        };
        let ad = hex::decode(text(case, "ad_hex")).unwrap();
        let params = ParamsBuilder::new()
            .m_cost(number(case, "m_cost_kib"))
            .t_cost(number(case, "t_cost"))
            .p_cost(number(case, "p_cost"))
            .output_len(32)
            .data(AssociatedData::new(&ad).unwrap())
            .build()
            .unwrap();
        let secret = hex::decode(text(case, "secret_hex")).unwrap();
        let argon = Argon2::new_with_secret(&secret, algorithm, Version::V0x13, params).unwrap();
        let mut tag = [0u8; 32];
        argon
            .hash_password_into(
                &hex::decode(text(case, "password_hex")).unwrap(),
                &hex::decode(text(case, "salt_hex")).unwrap(),
                &mut tag,
            )
            .unwrap();
        assert_eq!(
            hex::encode(tag),
            text(case, "tag_hex"),
            "{}",
            text(case, "source")
        );
    }
}

#[test]
fn the_owasp_minimums_in_the_vectors_are_the_ones_enforced() {
    let Some(file) = load() else { return };
    let listed: Vec<(u32, u32)> = file["owasp_password_storage_cheat_sheet_argon2id_minimums"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            assert_eq!(number(row, "p_cost"), 1);
            (number(row, "m_cost_kib"), number(row, "t_cost"))
        })
        .collect();
    assert_eq!(listed, OWASP_MINIMUMS);
    for (m, t) in listed {
        assert!(Argon2Params::new(m, t, 1).meets_owasp());
        assert!(
            !Argon2Params::new(m - 1, t, 1).meets_owasp(),
            "m={m}, t={t}"
        );
    }
}

#[tokio::test]
async fn new_hashes_are_argon2id_phc_strings_at_the_policy_with_a_16_byte_salt() {
    let passwords = Passwords::new(Argon2Params::OWASP, PasswordPolicy::default()).unwrap();
    let phc = passwords
        .hash(&SecretString::new("securepassword123"))
        .await
        .unwrap();
    let hash = argon2::PasswordHash::new(&phc).unwrap();
    assert_eq!(hash.algorithm.as_str(), "argon2id");
    assert_eq!(hash.version, Some(19));
    assert!(phc.contains("$m=19456,t=2,p=1$"), "{phc}");
    let mut salt = [0u8; 64];
    assert_eq!(hash.salt.unwrap().decode_b64(&mut salt).unwrap().len(), 16);
    assert_eq!(hash.hash.unwrap().len(), 32);
    let again = passwords
        .hash(&SecretString::new("securepassword123"))
        .await
        .unwrap();
    assert_ne!(phc, again, "a fresh salt each time");
}
