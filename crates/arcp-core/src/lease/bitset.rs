//! A fixed-size bit set over positions `0..len`, with the few in-place, word-parallel
//! operations the glob engine needs (shift by one, spread along runs by carry propagation,
//! "everything from here on").
//!
//! Deliberately does not grow or allocate after construction; out-of-range bits are always
//! kept clear.

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
        first_of(self.words.iter().copied())
    }

    /// The smallest member of `self ∩ mask`.
    pub(super) fn first_in(&self, mask: &Bitset) -> Option<usize> {
        first_of(self.words.iter().zip(&mask.words).map(|(a, b)| a & b))
    }

    /// `self ← { i + 1 | i ∈ self ∩ mask }`.
    pub(super) fn keep_and_shift_up(&mut self, mask: &Bitset) {
        let mut carry = 0;
        for (w, m) in self.words.iter_mut().zip(&mask.words) {
            let kept = *w & m;
            *w = (kept << 1) | carry;
            carry = kept >> 63;
        }
        self.trim();
    }

    /// `self ← self ∪ { i + 1 | i ∈ self ∩ mask }`.
    pub(super) fn add_shifted_up(&mut self, mask: &Bitset) {
        let mut carry = 0;
        for (w, m) in self.words.iter_mut().zip(&mask.words) {
            let kept = *w & m;
            *w |= (kept << 1) | carry;
            carry = kept >> 63;
        }
        self.trim();
    }

    /// For every member `i` inside a run `[a, b)` of `runs`, adds `i..=b`: the positions
    /// reachable from `i` by stepping over run members. Computed as
    /// `self ∪ (((self ∩ runs) + runs) ⊕ runs)`, reading the sets as little-endian integers:
    /// the carry started at `i` ripples through the run and stops just past it.
    pub(super) fn spread_along(&mut self, runs: &Bitset) {
        let mut carry = false;
        for (w, r) in self.words.iter_mut().zip(&runs.words) {
            let (sum, c1) = (*w & r).overflowing_add(*r);
            let (sum, c2) = sum.overflowing_add(u64::from(carry));
            carry = c1 || c2;
            *w |= sum ^ r;
        }
        self.trim();
    }

    /// `self ← self ∪ { i | from <= i < len }`.
    pub(super) fn fill_from(&mut self, from: usize) {
        for (k, w) in self.words.iter_mut().enumerate() {
            let lo = k * 64;
            if lo + 64 > from {
                *w |= if from <= lo { u64::MAX } else { u64::MAX << (from - lo) };
            }
        }
        self.trim();
    }

    /// `self ← { i + 1 | i ∈ mask, i >= from }`.
    pub(super) fn set_to_shifted_from(&mut self, mask: &Bitset, from: usize) {
        let mut carry = 0;
        for (k, (w, m)) in self.words.iter_mut().zip(&mask.words).enumerate() {
            let lo = k * 64;
            let window = if lo + 64 <= from {
                0
            } else if from <= lo {
                u64::MAX
            } else {
                u64::MAX << (from - lo)
            };
            let kept = m & window;
            *w = (kept << 1) | carry;
            carry = kept >> 63;
        }
        self.trim();
    }

    fn trim(&mut self) {
        let rem = self.len % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1 << rem) - 1;
        }
    }
}

fn first_of(words: impl Iterator<Item = u64>) -> Option<usize> {
    words.enumerate().find(|&(_, w)| w != 0).map(|(k, w)| k * 64 + w.trailing_zeros() as usize)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn set(len: usize, members: &[usize]) -> Bitset {
        let mut s = Bitset::zeros(len);
        for &i in members {
            s.insert(i);
        }
        s
    }

    fn members(s: &Bitset) -> Vec<usize> {
        (0..s.len).filter(|&i| s.contains(i)).collect()
    }

    #[test]
    fn shift_crosses_words_and_truncates() {
        let mut s = set(130, &[3, 63, 129]);
        s.keep_and_shift_up(&set(130, &[63, 129]));
        assert_eq!(members(&s), vec![64]);
        let mut s = set(130, &[3, 63]);
        s.add_shifted_up(&set(130, &[63]));
        assert_eq!(members(&s), vec![3, 63, 64]);
    }

    #[test]
    fn spread_carries_across_words() {
        let runs = set(140, &(60..70).chain(100..102).collect::<Vec<_>>());
        let mut s = set(140, &[62, 101, 120]);
        s.spread_along(&runs);
        let expected: Vec<usize> = (62..=70).chain([101, 102, 120]).collect();
        assert_eq!(members(&s), expected);
    }

    #[test]
    fn fill_first_and_windowed_shift() {
        let mut s = Bitset::zeros(70);
        s.fill_from(65);
        assert_eq!(members(&s), vec![65, 66, 67, 68, 69]);
        assert_eq!(s.first(), Some(65));
        assert_eq!(s.first_in(&set(70, &[1, 67])), Some(67));
        let mut t = Bitset::zeros(70);
        t.fill_from(70);
        assert!(t.is_empty());
        t.set_to_shifted_from(&set(70, &[2, 10, 64, 69]), 10);
        assert_eq!(members(&t), vec![11, 65]);
        assert!(!set(3, &[5]).contains(5));
    }
}
