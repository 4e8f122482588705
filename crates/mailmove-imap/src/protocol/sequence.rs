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

/// The UIDs of a sequence set a server sent (`1:5,7`, a range either way round; no `*`), sorted
/// and without repeats; `None` when it is not one, or names more than `limit` UIDs (a few bytes
/// of `1:4000000000` must not become 16 GB of memory).
pub(crate) fn parse_uid_set(set: &str, limit: usize) -> Option<Vec<u32>> {
    let mut ranges = Vec::new();
    let mut count = 0usize;
    for range in set.split(',') {
        let (first, last) = match range.split_once(':') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let uid = range.parse::<u32>().ok()?;
                (uid, uid)
            }
        };
        let (low, high) = (first.min(last), first.max(last));
        count = count.checked_add((high - low) as usize + 1)?;
        if count > limit {
            return None;
        }
        ranges.push((low, high));
    }
    let mut uids: Vec<u32> = Vec::with_capacity(count);
    for (low, high) in ranges {
        uids.extend(low..=high);
    }
    uids.sort_unstable();
    uids.dedup();
    Some(uids)
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

    #[test]
    fn uid_sets_from_a_server() {
        assert_eq!(parse_uid_set("1:3,7,10:9", 100), Some(vec![1, 2, 3, 7, 9, 10]));
        assert_eq!(parse_uid_set("5,1:2,2", 100), Some(vec![1, 2, 5]));
        assert_eq!(parse_uid_set("1:4000000000", 1000), None, "not a u32");
        assert_eq!(parse_uid_set("1:4000000", 1000), None, "more than the limit");
        assert_eq!(parse_uid_set("1:*", 1000), None);
        assert_eq!(parse_uid_set("", 1000), None);
    }

    proptest::proptest! {
        #[test]
        fn uid_set_round_trips(uids in proptest::collection::btree_set(1u32..5000, 0..200)) {
            let uids: Vec<u32> = uids.into_iter().collect();
            let set = uid_set(&uids);
            // Compressed: no more ranges than UIDs.
            proptest::prop_assert!(set.split(',').count() <= uids.len().max(1));
            proptest::prop_assert_eq!(expand(&set), uids.clone());
            if !uids.is_empty() {
                proptest::prop_assert_eq!(parse_uid_set(&set, 5000), Some(uids));
            }
        }
    }
}
