//! Names on the decision path: a seeded hash, byte equality without a call for short names,
//! a read-only open-addressing table from role names to numbers, a numbered list that
//! confirms a probed entry's name, and a filter of which tables a name may appear in.

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

/// The two words that, with the length, hold every byte of a name of up to 16 bytes (the
/// first and last 8 or 4 bytes, overlapping; or the first, middle and last bytes of a
/// shorter name), or `None` for a longer name.
#[inline]
fn words(name: &[u8]) -> Option<(u64, u64)> {
    Some(match name.len() {
        0..4 => (short_word(name), 0),
        4..8 => (word4(name.first_chunk()), word4(name.last_chunk())),
        8..=16 => (word8(name.first_chunk()), word8(name.last_chunk())),
        _ => return None,
    })
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
        match words(name) {
            Some((a, b)) => self.hash_words(a, b, name.len()),
            None => self.hash_long(name),
        }
    }

    #[inline]
    fn hash_words(&self, a: u64, b: u64, len: usize) -> u64 {
        let [s0, s1] = self.seed;
        folded_multiply(a ^ s0, b ^ s1 ^ (len as u64).rotate_left(32))
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

/// A numbered name (see [`NameList`]): its two [`words`] for a name of up to 16 bytes, or the
/// position of its text (`a`) for a longer one.
#[derive(Debug, Clone, Copy)]
struct NameInfo {
    a: u64,
    b: u64,
    len: u32,
}

/// A name in a [`NameTable`]: the whole name (its two [`words`] for a name of up to 16 bytes;
/// its hash and the position of its text in `NameTable::text` for a longer one), its length,
/// its number and its value. A lookup reads one slot per probe and nothing else.
#[derive(Debug, Clone, Copy)]
struct Slot {
    a: u64,
    b: u64,
    len: usize,
    number: u32,
    value: u32,
}

/// Names numbered 0, 1, … (in the order given), each with a `u32` value, looked up by linear
/// probing in a table at most two thirds full: a few slot reads, each comparing the two words
/// and the length of a name of up to 16 bytes, or the hash and then the text of a longer one.
/// Used for role names (a policy has few roles).
#[derive(Debug)]
pub(crate) struct NameTable {
    hasher: NameHasher,
    /// `None`: a free slot.
    slots: Box<[Option<Slot>]>,
    mask: usize,
    /// The text of the names longer than 16 bytes.
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
        let mut slots = vec![None; capacity].into_boxed_slice();
        let mask = capacity - 1;
        let mut text = String::new();
        for (index, (name, value)) in names.enumerate() {
            let number = u32::try_from(index).map_err(|_| TooManyNames)?;
            let bytes = name.as_bytes();
            let hash = hasher.hash(bytes);
            let (a, b) = match words(bytes) {
                Some(words) => words,
                None => {
                    let start = text.len() as u64;
                    text.push_str(name);
                    (hash, start)
                }
            };
            let mut i = hash as usize;
            // Never full, so a free slot is always found.
            while let Some(slot) = slots.get_mut(i & mask) {
                if slot.is_none() {
                    *slot = Some(Slot {
                        a,
                        b,
                        len: name.len(),
                        number,
                        value,
                    });
                    break;
                }
                i = i.wrapping_add(1);
            }
        }
        Ok(Self {
            hasher,
            slots,
            mask,
            text,
        })
    }

    /// The number and value of `name`, if it is in the table.
    #[inline]
    pub(crate) fn get(&self, name: &[u8]) -> Option<(u32, u32)> {
        let slot = match words(name) {
            Some((a, b)) => {
                let hash = self.hasher.hash_words(a, b, name.len());
                self.find(hash, |slot| {
                    slot.a == a && slot.b == b && slot.len == name.len()
                })
            }
            None => {
                let hash = self.hasher.hash_long(name);
                self.find(hash, |slot| {
                    let start = slot.b as usize;
                    slot.a == hash
                        && slot.len == name.len()
                        && self.text.as_bytes().get(start..start + name.len()) == Some(name)
                })
            }
        }?;
        Some((slot.number, slot.value))
    }

    /// The slot `same` accepts, probing from `hash`; a free slot ends the search.
    #[inline]
    fn find(&self, hash: u64, same: impl Fn(&Slot) -> bool) -> Option<&Slot> {
        let mut i = hash as usize;
        loop {
            let slot = self.slots.get(i & self.mask)?.as_ref()?;
            if same(slot) {
                return Some(slot);
            }
            i = i.wrapping_add(1);
        }
    }

    /// Approximate heap size in bytes.
    pub(crate) fn heap_size(&self) -> usize {
        self.slots.len() * size_of::<Option<Slot>>() + self.text.capacity()
    }
}

/// A name being looked for: its seeded hash and the [`words`] it is compared by (a name of up
/// to 16 bytes), or its bytes (a longer one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sought<'a> {
    /// The name's hash (see [`NameHasher`]).
    pub(crate) hash: u64,
    a: u64,
    b: u64,
    name: &'a [u8],
}

impl NameHasher {
    /// The hash and words of `name`, computed once for every table it is looked for in.
    #[inline]
    pub(crate) fn sought<'a>(&self, name: &'a [u8]) -> Sought<'a> {
        match words(name) {
            Some((a, b)) => Sought {
                hash: self.hash_words(a, b, name.len()),
                a,
                b,
                name,
            },
            None => Sought {
                hash: self.hash_long(name),
                a: 0,
                b: 0,
                name,
            },
        }
    }
}

/// Distinct names by number, compared with a [`Sought`] name: two words and the length for a
/// name of up to 16 bytes, the text for a longer one.
#[derive(Debug, Default)]
pub(crate) struct NameList {
    names: Vec<NameInfo>,
    /// The text of the names longer than 16 bytes.
    text: String,
}

impl NameList {
    /// An empty list with room for `names` names.
    pub(crate) fn with_capacity(names: usize) -> Self {
        Self {
            names: Vec::with_capacity(names),
            text: String::new(),
        }
    }

    /// Gives back the room that pushing left over.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        self.text.shrink_to_fit();
    }

    /// Adds `name` (the caller keeps names distinct) and returns its number.
    pub(crate) fn push(&mut self, name: &str) -> Result<u32, TooManyNames> {
        let id = u32::try_from(self.names.len()).map_err(|_| TooManyNames)?;
        let (a, b) = match words(name.as_bytes()) {
            Some(words) => words,
            None => {
                let start = self.text.len() as u64;
                self.text.push_str(name);
                (start, 0)
            }
        };
        self.names.push(NameInfo {
            a,
            b,
            len: u32::try_from(name.len()).map_err(|_| TooManyNames)?,
        });
        Ok(id)
    }

    /// Whether the name numbered `id` is `sought`.
    #[inline]
    pub(crate) fn is(&self, id: u32, sought: &Sought<'_>) -> bool {
        let Some(info) = self.names.get(id as usize) else {
            return false;
        };
        if info.len as usize != sought.name.len() {
            return false;
        }
        if sought.name.len() <= 16 {
            return info.a == sought.a && info.b == sought.b;
        }
        let start = info.a as usize;
        self.text.as_bytes().get(start..start + sought.name.len()) == Some(sought.name)
    }

    /// Approximate heap size in bytes.
    pub(crate) fn heap_size(&self) -> usize {
        self.names.capacity() * size_of::<NameInfo>() + self.text.capacity()
    }
}

/// For every bucket of name hashes, the union of a small set of bits (which tables the names
/// of that bucket appear in): a filter with false positives only, at most one in eight buckets
/// used, read with one byte load.
#[derive(Debug)]
pub(crate) struct BitsFilter {
    buckets: Box<[u8]>,
    mask: usize,
}

impl BitsFilter {
    /// A filter over `entries` (hash, bits).
    pub(crate) fn build(entries: impl ExactSizeIterator<Item = (u64, u8)>) -> Self {
        let len = entries.len().saturating_mul(8).next_power_of_two().max(64);
        let mut buckets = vec![0u8; len].into_boxed_slice();
        let mask = len - 1;
        for (hash, bits) in entries {
            if let Some(bucket) = buckets.get_mut(Self::bucket(hash) & mask) {
                *bucket |= bits;
            }
        }
        Self { buckets, mask }
    }

    /// The high half of the hash picks the bucket (the low half places entries in tables).
    #[inline]
    fn bucket(hash: u64) -> usize {
        (hash >> 32) as usize
    }

    /// The bits of the bucket of `hash`: every bit of every name with this hash, and maybe
    /// more.
    #[inline]
    pub(crate) fn get(&self, hash: u64) -> u8 {
        self.buckets
            .get(Self::bucket(hash) & self.mask)
            .copied()
            .unwrap_or(0)
    }

    /// Approximate heap size in bytes.
    pub(crate) fn heap_size(&self) -> usize {
        self.buckets.len()
    }
}

/// A few names (an action vocabulary) looked up by a linear scan of their [`words`]; names
/// longer than 16 bytes are compared as text.
#[derive(Debug)]
pub(crate) struct ShortList {
    entries: Box<[(u64, u64, usize)]>,
    long: Box<[(usize, Box<str>)]>,
}

impl ShortList {
    pub(crate) fn new<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        let mut entries = Vec::new();
        let mut long = Vec::new();
        for (i, name) in names.enumerate() {
            match words(name.as_bytes()) {
                Some((a, b)) => entries.push((a, b, name.len())),
                None => {
                    // Never equal to the words of a short name (their lengths differ).
                    entries.push((0, 0, usize::MAX));
                    long.push((i, Box::from(name)));
                }
            }
        }
        Self {
            entries: entries.into(),
            long: long.into(),
        }
    }

    /// The position of `name` in the list.
    #[inline]
    pub(crate) fn position(&self, name: &[u8]) -> Option<usize> {
        match words(name) {
            Some((a, b)) => self
                .entries
                .iter()
                .position(|&(x, y, len)| x == a && y == b && len == name.len()),
            None => self
                .long
                .iter()
                .find(|(_, text)| text.as_bytes() == name)
                .map(|(i, _)| *i),
        }
    }

    /// Approximate heap size in bytes.
    pub(crate) fn heap_size(&self) -> usize {
        self.entries.len() * size_of::<(u64, u64, usize)>()
            + self
                .long
                .iter()
                .map(|(_, t)| t.len() + size_of::<(usize, Box<str>)>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::{BitsFilter, NameHasher, NameList, NameTable, ShortList, same_bytes};

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
        let list = ShortList::new(names.iter().take(40).map(String::as_str));
        for (i, name) in names.iter().take(40).enumerate() {
            assert_eq!(list.position(name.as_bytes()), Some(i), "{name}");
        }
        assert_eq!(list.position(b"c3001"), None);
        assert_eq!(
            list.position(b"a-much-longer-name-with-several-words-3001"),
            None
        );
        let empty = NameTable::build(NameHasher::new(), std::iter::empty()).unwrap();
        assert_eq!(empty.get(b"anything"), None);
    }

    #[test]
    fn a_name_list_confirms_its_names_and_nothing_else() {
        let hasher = NameHasher::new();
        let names: Vec<String> = (0..500)
            .map(|i| match i % 3 {
                0 => format!("c{i}"),
                1 => format!("c{i}:o{i}"),
                _ => format!("a-name-longer-than-sixteen-bytes-{i}"),
            })
            .collect();
        let mut list = NameList::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            assert_eq!(list.push(name).unwrap(), i as u32);
        }
        list.shrink_to_fit();
        for (i, name) in names.iter().enumerate() {
            let sought = hasher.sought(name.as_bytes());
            assert!(list.is(i as u32, &sought), "{name}");
            // Every other number, and a number past the end, is a different name.
            assert!(!list.is(((i + 1) % names.len()) as u32, &sought), "{name}");
            assert!(!list.is(names.len() as u32, &sought), "{name}");
            // The same name one byte longer or with its last byte changed is not it.
            let mut longer = name.clone();
            longer.push('x');
            assert!(
                !list.is(i as u32, &hasher.sought(longer.as_bytes())),
                "{name}"
            );
            let mut changed = name.clone().into_bytes();
            if let Some(last) = changed.last_mut() {
                *last ^= 1;
            }
            assert!(!list.is(i as u32, &hasher.sought(&changed)), "{name}");
        }
    }

    #[test]
    fn the_bits_filter_has_no_false_negatives_and_few_false_positives() {
        let hasher = NameHasher::new();
        let names: Vec<(u64, u8)> = (0..4_000u32)
            .map(|i| (hasher.hash(format!("c{i}:o{i}").as_bytes()), 1u8 << (i % 6)))
            .collect();
        let filter = BitsFilter::build(names.iter().copied());
        for (hash, bits) in &names {
            assert_eq!(filter.get(*hash) & bits, *bits);
        }
        // At most one bucket in eight holds a name, so absent names rarely look present.
        let present = (0..4_000u32)
            .filter(|i| filter.get(hasher.hash(format!("absent{i}").as_bytes())) != 0)
            .count();
        assert!(present < 4_000 / 8 + 200, "{present}");
    }
}
