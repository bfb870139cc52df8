//! Sizes as people write them in configuration files and on the command line: `4194304`,
//! `64m`, `3M`, `512KiB`, `1.5g`. One grammar for the appspec, the compose files and the
//! command line's byte flags, so a size that works in one place works in the others.

/// Bytes in `text`: a number (digits, optionally with a fraction, optionally after `+`), then
/// optionally spaces and a unit `k`, `m`, `g` or `t` (binary multiples, any case), which may be
/// followed by `b` or `ib` (`kb`, `KiB`); a bare `b` means bytes. Surrounding spaces are
/// ignored. `None` for anything else.
///
/// Whole numbers are computed exactly and saturate at `u64::MAX`; a fraction is computed as
/// Docker's `units.RAMInBytes` does (in floating point, then truncated).
pub fn parse(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let unsigned = lower.strip_prefix('+').unwrap_or(&lower);
    let split = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (number, unit) = unsigned.split_at(split);
    let unit = unit.trim_start();
    // One `b` or `ib` after the multiple (`kb`, `KiB`), or alone: not `10bb` or `10kbib`.
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    if !number.contains('.') {
        let whole: u128 = match number.parse() {
            Ok(whole) => whole,
            // More digits than u128 holds: still a number, of more bytes than u64 counts.
            Err(_) if !number.is_empty() => return Some(u64::MAX),
            Err(_) => return None,
        };
        return Some(u64::try_from(whole.saturating_mul(u128::from(factor))).unwrap_or(u64::MAX));
    }
    let number: f64 = number.parse().ok()?;
    (number.is_finite() && number >= 0.0).then_some((number * factor as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn what_the_appspec_the_compose_files_and_the_command_line_accept() {
        let cases = [
            ("4194304", 4194304),
            ("3M", 3 << 20),
            ("4m", 4 << 20),
            ("+5K", 5 << 10),
            ("1G", 1 << 30),
            (" 10MB ", 10 << 20),
            ("512KiB", 512 << 10),
            ("64m", 64 << 20),
            ("2 t", 2 << 40),
            ("1.5k", 1536),
            (".5m", 1 << 19),
            ("7b", 7),
            ("7ib", 7),
            ("0", 0),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse(text), Some(bytes), "{text}");
        }
    }

    #[test]
    fn refusals() {
        for text in [
            "", "m", "-1m", "1e5", "1x", "1.2.3k", "1 0k", "++1", ".", "k1", "10bb", "10kbib",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    #[test]
    fn too_big_saturates_instead_of_wrapping() {
        assert_eq!(parse("99999999999999999999G"), Some(u64::MAX));
        assert_eq!(parse("18446744073709551615"), Some(u64::MAX));
    }
}
