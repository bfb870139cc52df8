//! "Did you mean …?" suggestions for misspelt keys and values.

/// The candidate closest to `word`, if it is close enough to be a likely typo: the same word in
/// another case, or a small edit distance (one edit for short words, two for longer ones).
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = if lower.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&lower, &c.to_lowercase()), *c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// ` — did you mean 'X'?` when a close candidate exists, else nothing; ready to append to a
/// message.
pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    closest(word, candidates)
        .map(|c| format!(" — did you mean '{c}'?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_case_slips_but_not_unrelated_words() {
        let keys = ["version", "os", "files", "permissions", "hooks"];
        assert_eq!(closest("verison", &keys), Some("version"));
        assert_eq!(closest("Hooks", &keys), Some("hooks"));
        assert_eq!(closest("hook", &keys), Some("hooks"));
        assert_eq!(closest("permission", &keys), Some("permissions"));
        assert_eq!(closest("phases", &keys), None);
        assert_eq!(closest("name", &keys), None);
        assert_eq!(
            did_you_mean(
                "ApplicatiionStart",
                &["ApplicationStart", "ApplicationStop"]
            ),
            " — did you mean 'ApplicationStart'?"
        );
    }
}
