//! Which datagram of the session a raw `udp://` datagram heard on the live group is.
//!
//! RTP numbers its packets (RFC 3550 §5.1), raw UDP does not: a server names a datagram
//! it hears on the live group by finding the same bytes among the datagrams its own engine
//! rendered. Bytes need not be unique. A datagram of seven null packets (PID 0x1FFF, whose
//! `continuity_counter` is undefined, ISO/IEC 13818-1 §2.4.3.3) looks the same wherever it
//! falls, and so may any repeated stretch of a stream. A wrong name is costly either way: a
//! name too far ahead makes a seamless takeover skip the datagrams in between, one too far
//! behind makes it send them twice. So [`pick`] names a datagram only when the bytes and
//! the time leave one answer:
//!
//! 1. the datagram after the last one named, when its bytes match (a stream heard without
//!    loss names itself, nulls included);
//! 2. else the only match;
//! 3. else, among the matches already due when the datagram arrived (a sender never sends
//!    early), the first after the last one named, or the only one when nothing was named yet;
//! 4. else nothing: the next datagram with bytes of its own names the position again.

/// The name of a datagram heard on the live group, from `matches` (every index whose
/// rendered bytes equal the datagram's, ascending), `last` (the last datagram named) and
/// `due` (whether an index was due by the datagram's arrival, with the clock offset's
/// tolerance). See the module documentation for the rule.
pub fn pick(matches: &[u64], last: Option<u64>, due: impl Fn(u64) -> bool) -> Option<u64> {
    if let Some(next) = last.and_then(|l| l.checked_add(1)) {
        if matches.binary_search(&next).is_ok() {
            return Some(next);
        }
    }
    if let [only] = matches {
        return Some(*only);
    }
    let mut plausible = matches.iter().copied().filter(|&i| due(i));
    match last {
        Some(l) => plausible.find(|&i| i > l),
        None => match (plausible.next(), plausible.next()) {
            (Some(i), None) => Some(i),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_next_datagram_names_itself() {
        // Nulls at 415 and 421: heard right after 414, it is 415.
        assert_eq!(pick(&[415, 421], Some(414), |_| true), Some(415));
    }

    #[test]
    fn a_unique_match_is_taken() {
        assert_eq!(pick(&[300], None, |_| false), Some(300));
        assert_eq!(pick(&[300], Some(10), |_| true), Some(300));
    }

    #[test]
    fn repeated_bytes_without_a_position_are_not_named() {
        // The bug this rule fixes: a server that had just joined named a null datagram by
        // the match nearest its own engine's position, six datagrams ahead of the one
        // heard, and its takeover skipped six.
        assert_eq!(pick(&[409, 415, 421], None, |i| i <= 421), None);
    }

    #[test]
    fn matches_not_yet_due_are_ruled_out() {
        assert_eq!(pick(&[415, 421], None, |i| i <= 418), Some(415));
        assert_eq!(pick(&[415, 421, 430], Some(410), |i| i <= 425), Some(415));
        assert_eq!(pick(&[405, 421], Some(410), |i| i <= 418), None);
    }

    #[test]
    fn after_a_loss_the_first_match_past_the_last_named() {
        // 416 lost; 417 and 423 carry the same bytes; 417 was due, 423 not yet.
        assert_eq!(pick(&[409, 417, 423], Some(415), |i| i <= 418), Some(417));
    }

    #[test]
    fn no_match_no_name() {
        assert_eq!(pick(&[], Some(3), |_| true), None);
        assert_eq!(pick(&[], None, |_| true), None);
    }

    proptest! {
        /// On a stream of datagrams drawn from a small alphabet (so most repeat), heard in
        /// order and without loss from any starting point, every name given is the true
        /// index, and once a datagram was named every later one is.
        #[test]
        fn never_a_wrong_name_in_order(
            stream in proptest::collection::vec(0u8..4, 20..200),
            start in 0usize..20,
            lead in 0u64..3,
        ) {
            let mut last = None;
            for (i, b) in stream.iter().enumerate().skip(start) {
                let i = i as u64;
                let matches: Vec<u64> = stream
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| *c == b)
                    .map(|(k, _)| k as u64)
                    .collect();
                let got = pick(&matches, last, |k| k <= i + lead);
                if let Some(g) = got {
                    prop_assert_eq!(g, i);
                }
                if last.is_some() {
                    prop_assert_eq!(got, Some(i));
                }
                last = got.or(last);
            }
        }
    }
}
