//! JSON objects parsed strictly: a key that appears twice, at any depth and however it is
//! escaped (`"aud"` and `"\u0061ud"`), is an error rather than "last one wins" (RFC 7515
//! §5.2, RFC 8725 §2.6).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON object whose members keep their order and whose keys are unique. Keys borrow from
/// the input unless they contain escapes.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct StrictObject<'a>(pub(crate) Vec<(Cow<'a, str>, Value)>);

impl<'a> StrictObject<'a> {
    /// Parses `bytes` as exactly one JSON object (no BOM, no trailing bytes).
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let object = de.deserialize_map(ObjectVisitor)?;
        de.end()?;
        Ok(object)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Removes and returns a member.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        let index = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(index).1)
    }

    /// The members with owned keys.
    pub(crate) fn into_map(self) -> Map<String, Value> {
        self.0
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v))
            .collect()
    }
}

/// A member name, borrowed from the input when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

struct ObjectVisitor;

fn duplicate<E: de::Error>(key: &str) -> E {
    // Keys are attacker-chosen: report the length, not the text.
    E::custom(format_args!("duplicate member name ({} bytes)", key.len()))
}

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = StrictObject<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Value)> =
            Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if members.iter().any(|(k, _)| *k == key) {
                return Err(duplicate(&key));
            }
            let value = map.next_value_seed(StrictValue)?;
            members.push((key, value));
        }
        Ok(StrictObject(members))
    }
}

/// Deserializes any JSON value, refusing duplicate keys in nested objects too.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                return Err(duplicate(&key));
            }
            let value = map.next_value_seed(StrictValue)?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_every_depth_and_escape() {
        assert!(StrictObject::parse(br#"{"a":1,"b":2}"#).is_ok());
        assert!(StrictObject::parse(br#"{"a":1,"a":2}"#).is_err());
        assert!(StrictObject::parse(br#"{"aud":1,"\u0061ud":2}"#).is_err());
        assert!(StrictObject::parse(br#"{"x":{"r":1,"r":2}}"#).is_err());
        assert!(StrictObject::parse(br#"{"x":[{"r":1,"r":2}]}"#).is_err());
    }

    #[test]
    fn only_one_object_is_accepted() {
        assert!(StrictObject::parse(br#"[1]"#).is_err());
        assert!(StrictObject::parse(br#""s""#).is_err());
        assert!(StrictObject::parse(br#"{} {}"#).is_err());
        assert!(StrictObject::parse(b"\xef\xbb\xbf{}").is_err());
        assert!(StrictObject::parse(br#" {"a" : 1} "#).is_ok());
    }
}

/// A JWT claims set: the registered time, issuer, subject and audience claims in their own
/// slots (found in one pass), everything else in order. Member names are unique across both.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ClaimsSet<'a> {
    pub(crate) iss: Option<Value>,
    pub(crate) sub: Option<Value>,
    pub(crate) aud: Option<Value>,
    pub(crate) exp: Option<Value>,
    pub(crate) nbf: Option<Value>,
    pub(crate) iat: Option<Value>,
    pub(crate) other: StrictObject<'a>,
}

impl<'a> ClaimsSet<'a> {
    /// Parses `bytes` as exactly one JSON object (no BOM, no trailing bytes).
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, ClaimsParseError> {
        // One UTF-8 check of the whole payload, rather than one per string member.
        let text = std::str::from_utf8(bytes).map_err(|_| ClaimsParseError)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let claims = de
            .deserialize_map(ClaimsVisitor)
            .map_err(|_| ClaimsParseError)?;
        de.end().map_err(|_| ClaimsParseError)?;
        Ok(claims)
    }
}

/// A claims set that is not one JSON object of unique members in UTF-8.
#[derive(Debug)]
pub(crate) struct ClaimsParseError;

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = ClaimsSet<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClaimsSet<'de>, A::Error> {
        let mut claims = ClaimsSet {
            other: StrictObject(Vec::with_capacity(map.size_hint().unwrap_or(8))),
            ..ClaimsSet::default()
        };
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let slot = match key.as_ref() {
                "iss" => &mut claims.iss,
                "sub" => &mut claims.sub,
                "aud" => &mut claims.aud,
                "exp" => &mut claims.exp,
                "nbf" => &mut claims.nbf,
                "iat" => &mut claims.iat,
                _ => {
                    if claims.other.0.iter().any(|(k, _)| *k == key) {
                        return Err(duplicate(&key));
                    }
                    let value = map.next_value_seed(StrictValue)?;
                    claims.other.0.push((key, value));
                    continue;
                }
            };
            if slot.is_some() {
                return Err(duplicate(&key));
            }
            *slot = Some(map.next_value_seed(StrictValue)?);
        }
        Ok(claims)
    }
}

/// The protected header members Portcullis acts on, borrowed from the decoded header, with
/// flags for the members whose mere presence matters. Member names are unique.
#[derive(Debug, Default)]
pub(crate) struct RawHeader<'a> {
    pub(crate) alg: Option<Cow<'a, str>>,
    pub(crate) kid: Option<Cow<'a, str>>,
    pub(crate) typ: Option<Cow<'a, str>>,
    pub(crate) cty: Option<Cow<'a, str>>,
    pub(crate) crit: bool,
    pub(crate) b64: bool,
    pub(crate) enc: bool,
    pub(crate) zip: bool,
    pub(crate) key_reference: bool,
}

impl<'a> RawHeader<'a> {
    /// Parses `bytes` as exactly one JSON object (no BOM, no trailing bytes).
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let header = de.deserialize_map(HeaderVisitor)?;
        de.end()?;
        Ok(header)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = RawHeader<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader<'de>, A::Error> {
        let mut header = RawHeader::default();
        let mut others: Vec<Cow<'de, str>> = Vec::new();
        let mut seen_flags = [false; 8];
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let text_slot = match key.as_ref() {
                "alg" => Some(&mut header.alg),
                "kid" => Some(&mut header.kid),
                "typ" => Some(&mut header.typ),
                "cty" => Some(&mut header.cty),
                _ => None,
            };
            if let Some(slot) = text_slot {
                if slot.is_some() {
                    return Err(duplicate(&key));
                }
                *slot = Some(map.next_value_seed(KeySeed)?);
                continue;
            }
            let flag = match key.as_ref() {
                "crit" => Some((0, &mut header.crit)),
                "b64" => Some((1, &mut header.b64)),
                "enc" => Some((2, &mut header.enc)),
                "zip" => Some((3, &mut header.zip)),
                "jku" => Some((4, &mut header.key_reference)),
                "x5u" => Some((5, &mut header.key_reference)),
                "jwk" => Some((6, &mut header.key_reference)),
                "x5c" => Some((7, &mut header.key_reference)),
                _ => None,
            };
            match flag {
                Some((index, flag)) => {
                    let seen = seen_flags
                        .get_mut(index)
                        .ok_or_else(|| duplicate::<A::Error>(&key))?;
                    if *seen {
                        return Err(duplicate(&key));
                    }
                    *seen = true;
                    *flag = true;
                }
                None => {
                    if others.contains(&key) {
                        return Err(duplicate(&key));
                    }
                    others.push(key);
                }
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(header)
    }
}
