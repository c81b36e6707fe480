//! Calendars in a time zone: which period an instant falls in — fixed lengths that divide a day (`15m`,
//! `1h`, `1d`) or the gaps between a cron schedule's fire times — and when a schedule fires next. The
//! file-drop sink cuts its files by period; backup policies fire by cron.
//!
//! Periods are intervals of real time. In a zone with daylight saving time an hourly period never spans a
//! transition: the hour that repeats in autumn is two periods, and their labels differ by their UTC offset
//! (`20261025T0200+0200`, then `20261025T0200+0100`); the hour skipped in spring has no period. A daily
//! period runs from local midnight to local midnight (23 or 25 hours on transition days).

use std::str::FromStr;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};

/// One period: `[start_ms, end_ms)` in Unix milliseconds, and the label its file names carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Local start and UTC offset: `20261204T1000Z`, `20261025T0200+0100`.
    pub label: String,
}

#[derive(Debug)]
pub struct Calendar {
    kind: Kind,
    tz: TimeZone,
    utc: bool,
}

#[derive(Debug)]
enum Kind {
    /// A length in seconds that divides a day, counted from local midnight.
    Every(i64),
    Cron(Box<jiff_cron::Schedule>),
}

const DAY: i64 = 86_400;

impl Calendar {
    /// `every` or `cron` (exactly one), in the IANA zone `zone`; errors say what is wrong with the value.
    pub fn every(every: Duration, zone: &str) -> Result<Self, String> {
        let secs = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
        if every.subsec_nanos() != 0 || secs < 1 || DAY % secs != 0 {
            return Err(format!("`{}` does not divide a day into whole seconds (use 1s … 1d, e.g. 15m, 1h, 6h, or `cron`)", humantime::format_duration(every)));
        }
        Ok(Self { kind: Kind::Every(secs), tz: zone_named(zone)?, utc: zone == "UTC" })
    }

    /// A cron schedule: five fields (minute hour day-of-month month day-of-week) or six with seconds first.
    pub fn cron(expr: &str, zone: &str) -> Result<Self, String> {
        let fields = expr.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {expr}"),
            6 => expr.to_string(),
            n => return Err(format!("`{expr}` has {n} fields; a cron schedule has 5 (minute hour day month weekday) or 6 (seconds first)")),
        };
        let schedule = jiff_cron::Schedule::from_str(&full).map_err(|e| format!("`{expr}` is not a cron schedule: {e}"))?;
        let cal = Self { kind: Kind::Cron(Box::new(schedule)), tz: zone_named(zone)?, utc: zone == "UTC" };
        // A schedule that never fires (`0 0 30 2 *`) would leave every row without a period.
        let now = Timestamp::now().as_millisecond();
        if cal.fire_after(now).is_none() || cal.fire_at_or_before(now).is_none() {
            return Err(format!("`{expr}` never fires"));
        }
        Ok(cal)
    }

    /// The period holding the instant `ms`.
    pub fn containing(&self, ms: i64) -> Period {
        let (start, end) = match &self.kind {
            Kind::Every(secs) if *secs == DAY => self.local_day(ms),
            Kind::Every(secs) => self.fixed(ms, *secs),
            Kind::Cron(_) => (self.fire_at_or_before(ms).unwrap_or(ms.div_euclid(1000) * 1000), self.fire_after(ms).unwrap_or(i64::MAX / 2)),
        };
        Period { start_ms: start, end_ms: end, label: self.label(start) }
    }

    /// The period right after `p`.
    pub fn next(&self, p: &Period) -> Period {
        self.containing(p.end_ms)
    }

    fn zoned(&self, ms: i64) -> Zoned {
        Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH).to_zoned(self.tz.clone())
    }

    /// A length that divides a day: aligned to local midnight at the offset in force at `ms`, cut at the
    /// zone's transitions so no period spans one.
    fn fixed(&self, ms: i64, len: i64) -> (i64, i64) {
        let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
        let offset = self.tz.to_offset(ts).seconds() as i64;
        let local = ms.div_euclid(1000) + offset;
        let start_local = local - local.rem_euclid(len);
        let mut start = (start_local - offset) * 1000;
        let mut end = (start_local + len - offset) * 1000;
        if let Some(t) = self.tz.preceding(Timestamp::from_millisecond(ms + 1).unwrap_or(ts)).next() {
            start = start.max(t.timestamp().as_millisecond());
        }
        if let Some(t) = self.tz.following(ts).next() {
            end = end.min(t.timestamp().as_millisecond());
        }
        (start, end)
    }

    fn local_day(&self, ms: i64) -> (i64, i64) {
        let z = self.zoned(ms);
        let start = z.start_of_day().map(|s| s.timestamp().as_millisecond()).unwrap_or(ms);
        let end = z.tomorrow().and_then(|t| t.start_of_day()).map(|s| s.timestamp().as_millisecond()).unwrap_or(start + DAY * 1000);
        (start, end)
    }

    /// The first cron fire strictly after `ms` (`None` for a fixed-length calendar).
    pub fn fire_after(&self, ms: i64) -> Option<i64> {
        let Kind::Cron(s) = &self.kind else { return None };
        s.after(self.zoned(ms)).next().map(|z| z.timestamp().as_millisecond())
    }

    /// The last cron fire at or before `ms` (`None` for a fixed-length calendar).
    pub fn fire_at_or_before(&self, ms: i64) -> Option<i64> {
        let Kind::Cron(s) = &self.kind else { return None };
        // `next_back` gives the last fire strictly before its start; fires are on whole seconds.
        s.after(self.zoned(ms.div_euclid(1000) * 1000 + 1000)).next_back().map(|z| z.timestamp().as_millisecond())
    }

    fn label(&self, start_ms: i64) -> String {
        let z = self.zoned(start_ms);
        let offset = z.offset().seconds();
        let zone = if self.utc {
            "Z".to_string()
        } else {
            let a = offset.unsigned_abs();
            format!("{}{:02}{:02}", if offset < 0 { '-' } else { '+' }, a / 3600, a % 3600 / 60)
        };
        let secs = if z.second() != 0 { format!("{:02}", z.second()) } else { String::new() };
        format!("{:04}{:02}{:02}T{:02}{:02}{secs}{zone}", z.year(), z.month(), z.day(), z.hour(), z.minute())
    }
}

/// RFC 3339 text of an instant, in the calendar's zone (for manifests).
pub fn rfc3339(ms: i64, zone: &str) -> String {
    let tz = zone_named(zone).unwrap_or(TimeZone::UTC);
    let z = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH).to_zoned(tz);
    if zone == "UTC" { z.timestamp().to_string() } else { z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string() }
}

fn zone_named(zone: &str) -> Result<TimeZone, String> {
    if zone == "UTC" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(zone).map_err(|e| format!("`{zone}` is not a time zone this host knows (an IANA name such as `Europe/Berlin`): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn hourly_utc() {
        let c = Calendar::every(Duration::from_secs(3600), "UTC").unwrap();
        let p = c.containing(ms("2026-12-04T10:59:59.999Z"));
        assert_eq!((p.start_ms, p.end_ms, p.label.as_str()), (ms("2026-12-04T10:00:00Z"), ms("2026-12-04T11:00:00Z"), "20261204T1000Z"));
        assert_eq!(c.next(&p).label, "20261204T1100Z");
        assert_eq!(c.containing(ms("2026-12-04T11:00:00Z")).label, "20261204T1100Z");
    }

    #[test]
    fn the_repeated_autumn_hour_is_two_periods_and_the_skipped_spring_hour_none() {
        let c = Calendar::every(Duration::from_secs(3600), "Europe/Berlin").unwrap();
        // 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
        let a = c.containing(ms("2026-10-25T00:30:00Z"));
        assert_eq!((a.label.as_str(), a.start_ms, a.end_ms), ("20261025T0200+0200", ms("2026-10-25T00:00:00Z"), ms("2026-10-25T01:00:00Z")));
        let b = c.next(&a);
        assert_eq!((b.label.as_str(), b.start_ms, b.end_ms), ("20261025T0200+0100", ms("2026-10-25T01:00:00Z"), ms("2026-10-25T02:00:00Z")));
        assert_eq!(c.next(&b).label, "20261025T0300+0100");
        // 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
        let before = c.containing(ms("2026-03-29T00:30:00Z"));
        assert_eq!(before.label, "20260329T0100+0100");
        let after = c.next(&before);
        assert_eq!((after.label.as_str(), after.end_ms - after.start_ms), ("20260329T0300+0200", 3_600_000));
    }

    #[test]
    fn days_and_half_hour_zones() {
        let day = Calendar::every(Duration::from_secs(86_400), "Europe/Berlin").unwrap();
        let p = day.containing(ms("2026-10-25T12:00:00Z"));
        assert_eq!((p.label.as_str(), p.end_ms - p.start_ms), ("20261025T0000+0200", 25 * 3_600_000));
        let india = Calendar::every(Duration::from_secs(3600), "Asia/Kolkata").unwrap();
        let p = india.containing(ms("2026-12-04T10:10:00Z"));
        assert_eq!((p.label.as_str(), p.start_ms), ("20261204T1500+0530", ms("2026-12-04T09:30:00Z")));
    }

    #[test]
    fn cron_periods_run_from_fire_to_fire() {
        let c = Calendar::cron("0 */6 * * *", "UTC").unwrap();
        let p = c.containing(ms("2026-12-04T13:00:00Z"));
        assert_eq!((p.start_ms, p.end_ms, p.label.as_str()), (ms("2026-12-04T12:00:00Z"), ms("2026-12-04T18:00:00Z"), "20261204T1200Z"));
        assert_eq!(c.containing(ms("2026-12-04T12:00:00Z")).start_ms, ms("2026-12-04T12:00:00Z"));
        assert_eq!(c.next(&p).label, "20261204T1800Z");
    }

    #[test]
    fn bad_values_say_why() {
        assert!(Calendar::every(Duration::from_secs(7 * 60), "UTC").unwrap_err().contains("divide a day"));
        assert!(Calendar::every(Duration::from_secs(3600), "Mars/Olympus").unwrap_err().contains("time zone"));
        assert!(Calendar::cron("* * *", "UTC").unwrap_err().contains("3 fields"));
        assert!(Calendar::cron("0 0 30 2 *", "UTC").unwrap_err().contains("never fires"));
    }
}
