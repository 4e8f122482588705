//! Sequence sets (RFC 3501 §9, `sequence-set`): sorted UIDs compressed into ranges.

/// Compresses sorted UIDs into an IMAP sequence set (`1:5,7,9:12`).
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut index = 0;
    while index < uids.len() {
        let start = uids[index];
        let mut end = start;
        while index + 1 < uids.len() && uids[index + 1] == end.wrapping_add(1) {
            index += 1;
            end = uids[index];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        index += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[42]), "42");
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[u32::MAX - 1, u32::MAX]), format!("{}:{}", u32::MAX - 1, u32::MAX));
    }

    /// Expands a sequence set as a server reads it.
    fn expand(set: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for range in set.split(',').filter(|r| !r.is_empty()) {
            match range.split_once(':') {
                Some((a, b)) => out.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
                None => out.push(range.parse().unwrap()),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn uid_set_round_trips(uids in proptest::collection::btree_set(1u32..5000, 0..200)) {
            let uids: Vec<u32> = uids.into_iter().collect();
            let set = uid_set(&uids);
            // Compressed: no more ranges than UIDs.
            proptest::prop_assert!(set.split(',').count() <= uids.len().max(1));
            proptest::prop_assert_eq!(expand(&set), uids);
        }
    }
}
