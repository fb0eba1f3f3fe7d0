//! Times on the command line (`--from`, `--to`): `now`, relative (`-30m`,
//! `-2h`, `-7d`, `-90s`), Unix seconds or milliseconds, or a UTC date-time
//! (`2026-11-21T03:12:00Z`, `2026-11-21 03:12`, `2026-11-21`), or a UTC time of
//! day (`03:12`: the last one that has passed).

/// Parses a time argument into ms since the Unix epoch, relative to `now_ms`.
pub fn parse_time_ms(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now_ms);
    }
    if let Some(rest) = text.strip_prefix('-') {
        return parse_duration_ms(rest)
            .map(|ms| now_ms - ms)
            .ok_or_else(|| format!("{text:?}: expected a duration like -30s, -15m, -2h or -7d"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        let n: i64 = text
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        // Seconds until the year 5138; beyond, the number is milliseconds.
        return Ok(if n < 100_000_000_000 { n * 1000 } else { n });
    }
    if let Some(seconds_of_day) = parse_clock(text) {
        // A time of day alone: today (UTC), or yesterday when that is still ahead.
        let day_start = now_ms.div_euclid(86_400_000) * 86_400_000;
        let at = day_start + seconds_of_day * 1000;
        return Ok(if at > now_ms { at - 86_400_000 } else { at });
    }
    parse_utc(text).ok_or_else(|| {
        format!(
            "{text:?} is not a time: use now, -2h (relative), Unix seconds or ms, \
             or a UTC date-time like 2026-11-21T03:12:00Z"
        )
    })
}

/// `HH:MM` or `HH:MM:SS` as seconds of the day.
fn parse_clock(text: &str) -> Option<i64> {
    let mut parts = text.split(':');
    let hour: i64 = parts.next()?.parse().ok()?;
    let minute: i64 = parts.next()?.parse().ok()?;
    let second: i64 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(hour * 3600 + minute * 60 + second)
}

/// A duration argument (`replay --step`): `90s`, `15m`, `2h`, `7d`, or a
/// plain number of seconds (`5`, `2.5`), in ms.
pub fn parse_step_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let ms = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Some((seconds * 1000.0) as i64),
        Ok(_) => None,
        Err(_) => parse_duration_ms(text),
    };
    ms.ok_or_else(|| format!("{text:?}: expected a duration like 5s, 1m or 2h, or seconds"))
}

/// `90s`, `15m`, `2h`, `7d` in ms.
fn parse_duration_ms(text: &str) -> Option<i64> {
    let unit_ms = match text.chars().last()? {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let number: f64 = text[..text.len() - 1].parse().ok()?;
    (number.is_finite() && number >= 0.0).then_some((number * unit_ms as f64) as i64)
}

/// `YYYY-MM-DD`, optionally `[T ]HH:MM[:SS]`, optionally `Z`: always UTC.
fn parse_utc(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut seconds_of_day = 0i64;
    if let Some(time) = time {
        let mut parts = time.split(':');
        let hour: i64 = parts.next()?.parse().ok()?;
        let minute: i64 = parts.next()?.parse().ok()?;
        let second: i64 = match parts.next() {
            Some(s) => s.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        seconds_of_day = hour * 3600 + minute * 60 + second;
    }
    Some((days_from_civil(year, month, day) * 86_400 + seconds_of_day) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's method).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A UTC date-time for tables: `2026-11-21 03:12:05`.
pub fn format_utc(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_forms() {
        assert_eq!(parse_step_ms("5s"), Ok(5_000));
        assert_eq!(parse_step_ms("15"), Ok(15_000));
        assert_eq!(parse_step_ms("2.5"), Ok(2_500));
        assert_eq!(parse_step_ms("1m"), Ok(60_000));
        for bad in ["", "-5", "5x", "inf", "s"] {
            assert!(parse_step_ms(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn forms() {
        let now = 1_795_294_247_269;
        assert_eq!(parse_time_ms("now", now), Ok(now));
        assert_eq!(parse_time_ms("-2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_time_ms("-1.5m", now), Ok(now - 90_000));
        assert_eq!(parse_time_ms("1700000000", now), Ok(1_700_000_000_000));
        assert_eq!(parse_time_ms("1700000000123", now), Ok(1_700_000_000_123));
        // 1700000000 s is 2023-11-14 22:13:20 UTC (date -u -d @1700000000).
        assert_eq!(
            parse_time_ms("2023-11-14T22:13:20Z", now),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_time_ms("2023-11-14 22:13", now),
            Ok(1_699_999_980_000)
        );
        assert_eq!(parse_time_ms("1970-01-01", now), Ok(0));
        // now is 2026-11-21 20:50:47.269 UTC (date -u -d @1795294247).
        assert_eq!(format_utc(now), "2026-11-21 20:50:47");
        assert_eq!(
            parse_time_ms("03:12", now).map(format_utc),
            Ok("2026-11-21 03:12:00".to_string())
        );
        assert_eq!(
            parse_time_ms("23:00:05", now).map(format_utc),
            Ok("2026-11-20 23:00:05".to_string()),
            "a time still ahead today is yesterday's"
        );
        assert_eq!(format_utc(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00");
        for bad in ["yesterday", "-2x", "2023-13-01", "2023-11-14T25:00", ""] {
            let err = parse_time_ms(bad, now).unwrap_err();
            assert!(err.contains(bad) || bad.is_empty(), "{err}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
