//! Times on the command line: RFC 3339 in, RFC 3339 out, Unix seconds
//! between (no time-zone database: offsets are explicit).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use med8k_auth::civil;
pub use med8k_auth::civil::rfc3339;

/// Unix seconds of `t` (negative before 1970).
pub fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Microseconds since the Unix epoch (0 before it).
pub fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time `secs` Unix seconds from the epoch.
pub fn from_unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, or a bare date (midnight UTC), as
/// unix seconds. Checks the day against the month.
pub fn parse_rfc3339(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow!("{s:?} is not an RFC 3339 time (e.g. 2030-01-31T12:00:00Z)");
    let num = |part: Option<&str>, lo: i64, hi: i64| -> anyhow::Result<i64> {
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
    if d > civil::days_in_month(y, mo) {
        return Err(bad());
    }
    let days = civil::days_from_civil(y, mo, d);
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
