//! Durations on the command line: a whole number with a unit, `30s`, `15m`, `36h`, `7d`.

/// Milliseconds in `text`, e.g. `7d` or `30s`.
pub fn parse_ms(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("'{text}' is not a duration such as 30s, 15m, 36h or 7d"))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => anyhow::bail!("'{text}' has no known unit; use ms, s, m, h or d (e.g. 7d)"),
    };
    number.checked_mul(scale).ok_or_else(|| anyhow::anyhow!("'{text}' is too long a duration"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_need_a_unit() {
        assert_eq!(super::parse_ms("30s").expect("30s"), 30_000);
        assert_eq!(super::parse_ms("7d").expect("7d"), 604_800_000);
        assert!(super::parse_ms("7").is_err());
        assert!(super::parse_ms("soon").is_err());
    }
}
