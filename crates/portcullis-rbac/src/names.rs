//! Name lookup on the decision path: a seeded hash, byte equality without a call for short
//! names, and a read-only open-addressing table from names to numbers.

use std::hash::BuildHasher as _;

/// Byte equality, lengths first; names of up to 16 bytes are compared in at most two
/// overlapping word loads each, without a call (role, action and resource names are mostly
/// short).
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match a.len() {
        0 => true,
        // With equal lengths below 4, the first, middle and last bytes are all the bytes.
        1..4 => short_word(a) == short_word(b),
        4..8 => {
            word4(a.first_chunk()) == word4(b.first_chunk())
                && word4(a.last_chunk()) == word4(b.last_chunk())
        }
        8..=16 => {
            word8(a.first_chunk()) == word8(b.first_chunk())
                && word8(a.last_chunk()) == word8(b.last_chunk())
        }
        _ => a == b,
    }
}

#[inline]
fn word8(chunk: Option<&[u8; 8]>) -> u64 {
    chunk.map_or(0, |c| u64::from_le_bytes(*c))
}

#[inline]
fn word4(chunk: Option<&[u8; 4]>) -> u64 {
    chunk.map_or(0, |c| u64::from(u32::from_le_bytes(*c)))
}

/// The first, middle and last bytes of a name of 1 to 3 bytes (all of its bytes).
#[inline]
fn short_word(name: &[u8]) -> u64 {
    let byte = |i: usize| u64::from(name.get(i).copied().unwrap_or_default());
    byte(0) | (byte(name.len() / 2) << 8) | (byte(name.len().saturating_sub(1)) << 16)
}

#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// A seeded hash of names: one multiplication for a name of up to 16 bytes, whose bytes it
/// reads in two overlapping words, and one more per further 16 bytes. The tables it indexes
/// are built once per policy and never grow with requests, so a chosen name can at worst
/// lengthen its own probe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameHasher {
    seed: [u64; 2],
}

impl NameHasher {
    /// A hasher with a fresh random seed.
    pub(crate) fn new() -> Self {
        let random = foldhash::fast::RandomState::default();
        Self {
            seed: [random.hash_one(1u64) | 1, random.hash_one(2u64) | 1],
        }
    }

    #[inline]
    pub(crate) fn hash(&self, name: &[u8]) -> u64 {
        let [s0, s1] = self.seed;
        let len = name.len() as u64;
        let (a, b) = match name.len() {
            0..4 => (short_word(name), 0),
            4..8 => (word4(name.first_chunk()), word4(name.last_chunk())),
            8..=16 => (word8(name.first_chunk()), word8(name.last_chunk())),
            _ => return self.hash_long(name),
        };
        folded_multiply(a ^ s0, b ^ s1 ^ len.rotate_left(32))
    }

    #[cold]
    fn hash_long(&self, name: &[u8]) -> u64 {
        let [s0, s1] = self.seed;
        let mut acc = s0 ^ (name.len() as u64);
        let mut chunks = name.chunks_exact(16);
        for chunk in &mut chunks {
            let (a, b) = chunk.split_at(8);
            acc = folded_multiply(acc ^ word8(a.first_chunk()), s1 ^ word8(b.first_chunk()));
        }
        // The last 16 bytes, overlapping the chunks already read when the length is not a
        // multiple of 16 (a name longer than 16 bytes has them).
        let tail = name
            .get(name.len().saturating_sub(16)..)
            .unwrap_or_default();
        let (a, b) = tail.split_at(8.min(tail.len()));
        folded_multiply(
            acc ^ word8(a.first_chunk()) ^ s1,
            s0 ^ word8(b.last_chunk()),
        )
    }
}

/// A name of a [`NameTable`]: where its text is, and a value kept with it.
#[derive(Debug, Clone, Copy)]
struct NameInfo {
    start: u32,
    len: u32,
    value: u32,
}

/// One slot of the table: the high half of the name's hash, and the name's number
/// ([`EMPTY`] when free).
#[derive(Debug, Clone, Copy)]
struct Slot {
    tag: u32,
    id: u32,
}

const EMPTY: u32 = u32::MAX;

/// Names numbered 0, 1, … (in the order given), each with a `u32` value, looked up by linear
/// probing in a table at most two thirds full: a name that is present costs a few slot reads
/// (8 bytes each, 8 to a cache line) and one byte comparison; an absent one a few more slot
/// reads and, thanks to the stored hash halves, almost never a comparison.
#[derive(Debug)]
pub(crate) struct NameTable {
    hasher: NameHasher,
    slots: Box<[Slot]>,
    mask: usize,
    names: Vec<NameInfo>,
    text: String,
}

/// More names than a table can number.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TooManyNames;

impl NameTable {
    /// Builds the table. Names must be distinct; the `i`-th name gets the number `i`.
    pub(crate) fn build<'a>(
        hasher: NameHasher,
        names: impl ExactSizeIterator<Item = (&'a str, u32)>,
    ) -> Result<Self, TooManyNames> {
        // At most two thirds full (between a third and two thirds, by the rounding up).
        let capacity = (names.len().saturating_mul(3) / 2 + 1)
            .next_power_of_two()
            .max(4);
        let mut slots = vec![Slot { tag: 0, id: EMPTY }; capacity].into_boxed_slice();
        let mask = capacity - 1;
        let mut infos = Vec::with_capacity(names.len());
        let mut text = String::new();
        for (name, value) in names {
            let id = u32::try_from(infos.len()).map_err(|_| TooManyNames)?;
            if id == EMPTY {
                return Err(TooManyNames);
            }
            infos.push(NameInfo {
                start: u32::try_from(text.len()).map_err(|_| TooManyNames)?,
                len: u32::try_from(name.len()).map_err(|_| TooManyNames)?,
                value,
            });
            text.push_str(name);
            let hash = hasher.hash(name.as_bytes());
            let mut i = hash as usize;
            // Never full, so a free slot is always found.
            while let Some(slot) = slots.get_mut(i & mask) {
                if slot.id == EMPTY {
                    *slot = Slot {
                        tag: (hash >> 32) as u32,
                        id,
                    };
                    break;
                }
                i = i.wrapping_add(1);
            }
        }
        Ok(Self {
            hasher,
            slots,
            mask,
            names: infos,
            text,
        })
    }

    /// The number and value of `name`, if it is in the table.
    #[inline]
    pub(crate) fn get(&self, name: &[u8]) -> Option<(u32, u32)> {
        let hash = self.hasher.hash(name);
        let tag = (hash >> 32) as u32;
        let mut i = hash as usize;
        loop {
            let slot = self.slots.get(i & self.mask)?;
            if slot.id == EMPTY {
                return None;
            }
            if slot.tag == tag {
                let info = self.names.get(slot.id as usize)?;
                let start = info.start as usize;
                let text = self
                    .text
                    .as_bytes()
                    .get(start..start + info.len as usize)
                    .unwrap_or_default();
                if same_bytes(text, name) {
                    return Some((slot.id, info.value));
                }
            }
            i = i.wrapping_add(1);
        }
    }

    /// Approximate heap size in bytes.
    pub(crate) fn heap_size(&self) -> usize {
        self.slots.len() * size_of::<Slot>()
            + self.names.capacity() * size_of::<NameInfo>()
            + self.text.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::{NameHasher, NameTable, same_bytes};

    #[test]
    fn same_bytes_is_byte_equality_at_every_length() {
        let text: Vec<u8> = (0u8..40).collect();
        for len in 0..40 {
            let a = &text[..len];
            let copy = a.to_vec();
            assert!(same_bytes(a, &copy), "{len}");
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "{len} {at}");
            }
            assert!(!same_bytes(a, &text[..len + 1]), "{len}");
        }
    }

    #[test]
    fn a_name_table_finds_every_name_and_nothing_else() {
        let names: Vec<String> = (0..3_000)
            .map(|i| match i % 4 {
                0 => format!("c{i}"),
                1 => format!("collection{i}:object"),
                2 => format!("a-much-longer-name-with-several-words-{i}"),
                _ => "x".repeat(i % 7 + 1) + &i.to_string(),
            })
            .collect();
        let table = NameTable::build(
            NameHasher::new(),
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i as u32 * 3)),
        )
        .unwrap();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(
                table.get(name.as_bytes()),
                Some((i as u32, i as u32 * 3)),
                "{name}"
            );
        }
        for absent in ["", "c", "c3001", "collection1:objecT", "zz", "x", "xx1"] {
            assert_eq!(table.get(absent.as_bytes()), None, "{absent}");
        }
        let empty = NameTable::build(NameHasher::new(), std::iter::empty()).unwrap();
        assert_eq!(empty.get(b"anything"), None);
    }
}
