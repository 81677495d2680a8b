//! The one engine behind both [`super::Glob::matches`] and [`super::Glob::covers`]: does a
//! token sequence (the *parent*) accept a sequence of symbols (the *subject*)?
//!
//! A target string is a subject made only of literal bytes; a child glob is a subject whose
//! wildcards are opaque symbols. Each parent token absorbs a contiguous block of subject
//! symbols, and only when every string of that block is in the token's language, so an
//! accepted child glob denotes a subset of the parent's language (sound, conservative).
//!
//! The search runs over "reachable subject positions" as a bit set, one parent token at a
//! time: `O(parent tokens × subject length / 64)` word operations, with no backtracking.
//! Deliberately does not parse patterns (see `glob.rs`).

use super::bitset::Bitset;

/// The separator byte: `*` never crosses it. The same for every target kind (see `glob.rs`).
pub(super) const SEP: u8 = b'/';

/// One token of a compiled glob, with its language (`.` = any byte, `/` = [`SEP`]):
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Tok {
    /// Exactly this byte.
    Lit(u8),
    /// `*`: `[^/]*`.
    Star,
    /// `**` that is not a whole path segment: `.*`.
    Any,
    /// A trailing `/**` segment: `(/.*)?` (zero or more further segments).
    OptTail,
    /// A `/**/` segment in the middle: `/(.*/)?` (zero or more segments in between).
    SlashAny,
}

/// Symbols checked against parent tokens, with the per-position masks precomputed.
pub(super) struct Subject {
    syms: Vec<Tok>,
    /// Positions holding a symbol inside one segment (`Lit(b != '/')` or `Star`).
    in_segment: Bitset,
    /// Positions holding a symbol whose strings all start and end with `/`
    /// (`Lit('/')` or `SlashAny`).
    slashy: Bitset,
    /// Positions holding `OptTail`.
    opt_tail: Bitset,
    /// Lazily built `Lit(b)` masks, for the bytes asked about so far.
    literal: Vec<(u8, Bitset)>,
}

impl Subject {
    /// A subject made of `syms`.
    pub(super) fn new(syms: Vec<Tok>) -> Subject {
        let len = syms.len() + 1;
        let mut in_segment = Bitset::zeros(len);
        let mut slashy = Bitset::zeros(len);
        let mut opt_tail = Bitset::zeros(len);
        for (j, sym) in syms.iter().enumerate() {
            match sym {
                Tok::Lit(SEP) | Tok::SlashAny => slashy.insert(j),
                Tok::Lit(_) | Tok::Star => in_segment.insert(j),
                Tok::OptTail => opt_tail.insert(j),
                Tok::Any => {}
            }
        }
        Subject { syms, in_segment, slashy, opt_tail, literal: Vec::new() }
    }

    /// A subject made of the literal bytes of `s`.
    pub(super) fn literal(s: &str) -> Subject {
        Subject::new(s.bytes().map(Tok::Lit).collect())
    }

    /// The positions holding `Lit(byte)` (always `Some`; built on first use).
    fn literal_mask(&mut self, byte: u8) -> Option<&Bitset> {
        if !self.literal.iter().any(|(b, _)| *b == byte) {
            let mut mask = Bitset::zeros(self.syms.len() + 1);
            for (j, sym) in self.syms.iter().enumerate() {
                if *sym == Tok::Lit(byte) {
                    mask.insert(j);
                }
            }
            self.literal.push((byte, mask));
        }
        self.literal.iter().find(|(b, _)| *b == byte).map(|(_, mask)| mask)
    }

    /// A cheap necessary condition: the parent's leading and trailing literals can only be
    /// consumed by the same literals at the subject's ends.
    fn literal_ends_agree(&self, parent: &[Tok]) -> bool {
        let is_lit = |t: &&Tok| matches!(t, Tok::Lit(_));
        let prefix = parent.iter().take_while(is_lit).count();
        if prefix == parent.len() {
            return parent == self.syms.as_slice();
        }
        let suffix = parent.iter().rev().take_while(is_lit).count();
        prefix + suffix <= self.syms.len()
            && parent.get(..prefix) == self.syms.get(..prefix)
            && parent.get(parent.len() - suffix..) == self.syms.get(self.syms.len() - suffix..)
    }

    /// Whether `parent` accepts the whole subject (anchored at both ends).
    pub(super) fn accepted_by(&mut self, parent: &[Tok]) -> bool {
        if !self.literal_ends_agree(parent) {
            return false;
        }
        let len = self.syms.len() + 1;
        let mut reach = Bitset::zeros(len);
        reach.insert(0);
        for tok in parent {
            match *tok {
                Tok::Lit(b) => match self.literal_mask(b) {
                    Some(mask) => reach.keep_and_shift_up(mask),
                    None => return false,
                },
                // Each reachable position spreads to the end of its run of in-segment
                // symbols, and one past it.
                Tok::Star => reach.spread_along(&self.in_segment),
                Tok::Any => match reach.first() {
                    Some(start) => reach.fill_from(start),
                    None => return false,
                },
                Tok::OptTail => {
                    let start = reach.first_in(&self.slashy);
                    reach.add_shifted_up(&self.opt_tail);
                    if let Some(start) = start {
                        reach.fill_from(start + 1);
                    }
                }
                Tok::SlashAny => match reach.first_in(&self.slashy) {
                    Some(start) => reach.set_to_shifted_from(&self.slashy, start),
                    None => return false,
                },
            }
            if reach.is_empty() {
                return false;
            }
        }
        reach.contains(self.syms.len())
    }
}
