//! Civil time: the proleptic Gregorian calendar on Unix seconds, UTC
//! (H. Hinnant's algorithms). Certificates, consent periods and the command
//! line all need it; there is no time-zone database here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds of `t` (negative before 1970).
pub fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Microseconds since the Unix epoch (0 before it): audit event times.
pub fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The time `secs` Unix seconds from the epoch.
pub fn from_unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// A time that is not RFC 3339 (the text, cut to 64 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 time (e.g. 2030-01-31T12:00:00Z)")]
pub struct BadTime(pub String);

/// Whether `y` is a leap year.
pub fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in month `m` (1–12) of year `y`.
pub fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day, hour, minute, second) of unix seconds, UTC.
pub fn civil_from_unix(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3_600, secs % 3_600 / 60, secs % 60)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(t: i64) -> String {
    let (y, m, d, h, mi, s) = civil_from_unix(t);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, or a bare date (midnight UTC), as
/// unix seconds. Checks the day against the month.
pub fn parse_rfc3339(s: &str) -> Result<i64, BadTime> {
    let bad = || BadTime(s.chars().take(64).collect());
    let num = |part: Option<&str>, lo: i64, hi: i64| -> Result<i64, BadTime> {
        let v: i64 = part
            .filter(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(bad())
        }
    };
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut dp = date.split('-');
    let (y, mo, d) = (
        num(dp.next(), 0, 9999)?,
        num(dp.next(), 1, 12)?,
        num(dp.next(), 1, 31)?,
    );
    if dp.next().is_some() {
        return Err(bad());
    }
    if d > days_in_month(y, mo) {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, d);
    let mut secs = days * 86_400;
    if let Some(t) = time {
        let (clock, offset) = if let Some(c) = t.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else if let Some(i) = t.rfind(['+', '-']) {
            let (c, o) = t.split_at(i);
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let mut op = o.get(1..).unwrap_or_default().split(':');
            let off = num(op.next(), 0, 23)? * 3600 + num(op.next(), 0, 59)? * 60;
            if op.next().is_some() {
                return Err(bad());
            }
            (c, sign * off)
        } else {
            return Err(bad());
        };
        let (clock, frac) = clock.split_once('.').unwrap_or((clock, "0"));
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let mut cp = clock.split(':');
        secs +=
            num(cp.next(), 0, 23)? * 3600 + num(cp.next(), 0, 59)? * 60 + num(cp.next(), 0, 60)?;
        if cp.next().is_some() {
            return Err(bad());
        }
        secs -= offset;
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for t in [
            -86_400 * 800_000,
            -1,
            0,
            951_782_400,
            1_896_093_296,
            253_402_300_799,
        ] {
            let (y, m, d, h, mi, s) = civil_from_unix(t);
            assert_eq!(
                days_from_civil(y, m, d) * 86_400 + h * 3_600 + mi * 60 + s,
                t
            );
        }
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
    }

    #[test]
    fn rfc3339_parses_and_refuses() {
        assert_eq!(
            parse_rfc3339("2030-01-31T12:34:56Z").ok(),
            Some(1_896_093_296)
        );
        assert_eq!(
            parse_rfc3339("2030-01-31T21:34:56.5+09:00").ok(),
            Some(1_896_093_296)
        );
        assert_eq!(parse_rfc3339("1970-01-02").ok(), Some(86_400));
        assert_eq!(rfc3339(1_896_093_296), "2030-01-31T12:34:56Z");
        for bad in [
            "",
            "2030-13-01",
            "2030-02-30",
            "2030-01-01T25:00:00Z",
            "2030-01-01T12:00:00",
            "2030-01-01T12:00:00.Z",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
