//! The little DER reading RSA public keys need: `RSAPublicKey` (PKCS#1) and the
//! `SubjectPublicKeyInfo` that wraps it.

/// A DER input that is not an RSA public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadDer;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;

/// Reads one TLV with definite length; returns (tag, contents, rest).
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), BadDer> {
    let (&tag, rest) = input.split_first().ok_or(BadDer)?;
    let (&first, rest) = rest.split_first().ok_or(BadDer)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(BadDer);
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 || bytes.first() == Some(&0) {
            return Err(BadDer); // not the shortest form
        }
        (len, rest)
    };
    if rest.len() < len {
        return Err(BadDer);
    }
    let (contents, rest) = rest.split_at(len);
    Ok((tag, contents, rest))
}

fn positive_integer(contents: &[u8]) -> Result<Vec<u8>, BadDer> {
    match contents {
        [] => Err(BadDer),
        [first, ..] if first & 0x80 != 0 => Err(BadDer), // negative
        [0, second, ..] if second & 0x80 == 0 => Err(BadDer), // non-minimal
        [0, rest @ ..] => Ok(rest.to_vec()),
        all => Ok(all.to_vec()),
    }
}

/// Parses `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`, or a
/// `SubjectPublicKeyInfo` holding one, into big-endian (n, e) without leading zeros.
pub(crate) fn rsa_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), BadDer> {
    let (tag, body, rest) = read_tlv(der)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return Err(BadDer);
    }
    let (first_tag, first, after) = read_tlv(body)?;
    if first_tag == SEQUENCE {
        // SubjectPublicKeyInfo: AlgorithmIdentifier, then BIT STRING { RSAPublicKey }.
        let (bits_tag, bits, trailing) = read_tlv(after)?;
        if bits_tag != BIT_STRING || !trailing.is_empty() {
            return Err(BadDer);
        }
        let (&unused, key) = bits.split_first().ok_or(BadDer)?;
        if unused != 0 {
            return Err(BadDer);
        }
        return rsa_public_key(key);
    }
    if first_tag != INTEGER {
        return Err(BadDer);
    }
    let (e_tag, e, trailing) = read_tlv(after)?;
    if e_tag != INTEGER || !trailing.is_empty() {
        return Err(BadDer);
    }
    Ok((positive_integer(first)?, positive_integer(e)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pkcs1_key_and_rejects_junk() {
        // SEQUENCE { INTEGER 0x00c5, INTEGER 3 }
        let der = [0x30, 0x07, 0x02, 0x02, 0x00, 0xc5, 0x02, 0x01, 0x03];
        assert_eq!(rsa_public_key(&der), Ok((vec![0xc5], vec![3])));
        assert_eq!(rsa_public_key(&der[..5]), Err(BadDer));
        assert_eq!(rsa_public_key(&[]), Err(BadDer));
        let negative = [0x30, 0x06, 0x02, 0x01, 0xc5, 0x02, 0x01, 0x03];
        assert_eq!(rsa_public_key(&negative), Err(BadDer));
    }
}
