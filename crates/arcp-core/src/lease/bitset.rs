//! A fixed-size bit set over positions `0..len`, with the few word-parallel operations the
//! glob engine needs (shift by one, add with carry, "everything from here on").
//!
//! Deliberately does not grow, iterate or allocate after construction; out-of-range bits are
//! always kept clear.

/// A set of positions `0..len`, stored little-endian in 64-bit words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bitset {
    words: Vec<u64>,
    len: usize,
}

impl Bitset {
    /// The empty set over `0..len`.
    pub(super) fn zeros(len: usize) -> Bitset {
        Bitset { words: vec![0; len.div_ceil(64)], len }
    }

    /// `{ i }` over `0..len` (empty if `i >= len`).
    pub(super) fn single(len: usize, i: usize) -> Bitset {
        let mut set = Bitset::zeros(len);
        set.insert(i);
        set
    }

    /// Adds `i` (ignored if out of range).
    pub(super) fn insert(&mut self, i: usize) {
        if i < self.len
            && let Some(w) = self.words.get_mut(i / 64)
        {
            *w |= 1 << (i % 64);
        }
    }

    /// Whether `i` is in the set.
    pub(super) fn contains(&self, i: usize) -> bool {
        i < self.len && self.words.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Whether the set is empty.
    pub(super) fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The smallest member.
    pub(super) fn first(&self) -> Option<usize> {
        self.words.iter().enumerate().find(|&(_, &w)| w != 0).map(|(k, w)| k * 64 + w.trailing_zeros() as usize)
    }

    /// `self ∩ other`.
    pub(super) fn and(&self, other: &Bitset) -> Bitset {
        self.zip(other, |a, b| a & b)
    }

    /// `self ∪ other`.
    pub(super) fn or(&self, other: &Bitset) -> Bitset {
        self.zip(other, |a, b| a | b)
    }

    /// `self △ other`.
    pub(super) fn xor(&self, other: &Bitset) -> Bitset {
        self.zip(other, |a, b| a ^ b)
    }

    /// `{ i + 1 | i ∈ self }`, truncated to `0..len`.
    pub(super) fn shifted_up(&self) -> Bitset {
        let mut carry = 0;
        let words = self
            .words
            .iter()
            .map(|&w| {
                let out = (w << 1) | carry;
                carry = w >> 63;
                out
            })
            .collect();
        Bitset { words, len: self.len }.trimmed()
    }

    /// The sets read as little-endian integers and added, truncated to `0..len`.
    pub(super) fn plus(&self, other: &Bitset) -> Bitset {
        let mut carry = false;
        let words = self
            .words
            .iter()
            .zip(&other.words)
            .map(|(&a, &b)| {
                let (s1, c1) = a.overflowing_add(b);
                let (s2, c2) = s1.overflowing_add(u64::from(carry));
                carry = c1 || c2;
                s2
            })
            .collect();
        Bitset { words, len: self.len }.trimmed()
    }

    /// `{ i | from <= i < len }`.
    pub(super) fn from_position(len: usize, from: usize) -> Bitset {
        let mut set = Bitset::zeros(len);
        for (k, w) in set.words.iter_mut().enumerate() {
            let lo = k * 64;
            if lo + 64 <= from {
                continue;
            }
            *w = if from <= lo { u64::MAX } else { u64::MAX << (from - lo) };
        }
        set.trimmed()
    }

    fn zip(&self, other: &Bitset, op: impl Fn(u64, u64) -> u64) -> Bitset {
        let words = self.words.iter().zip(&other.words).map(|(&a, &b)| op(a, b)).collect();
        Bitset { words, len: self.len }
    }

    fn trimmed(mut self) -> Bitset {
        let rem = self.len % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1 << rem) - 1;
        }
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn members(set: &Bitset) -> Vec<usize> {
        (0..set.len).filter(|&i| set.contains(i)).collect()
    }

    #[test]
    fn shift_crosses_words_and_truncates() {
        let mut s = Bitset::zeros(130);
        s.insert(63);
        s.insert(129);
        assert_eq!(members(&s.shifted_up()), vec![64]);
    }

    #[test]
    fn plus_carries_across_words() {
        let mut a = Bitset::zeros(130);
        for i in 60..70 {
            a.insert(i);
        }
        let b = Bitset::single(130, 60);
        assert_eq!(members(&a.plus(&b)), vec![70]);
    }

    #[test]
    fn from_position_and_first() {
        let s = Bitset::from_position(70, 65);
        assert_eq!(members(&s), vec![65, 66, 67, 68, 69]);
        assert_eq!(s.first(), Some(65));
        assert!(Bitset::from_position(70, 70).is_empty());
        assert_eq!(Bitset::from_position(3, 0).first(), Some(0));
        assert!(!Bitset::single(3, 5).contains(5));
    }
}
