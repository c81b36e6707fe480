//! Maintenance windows: the days and hours in which tickets may run on an instance (its own windows) or
//! on any instance of an environment (when the instance has none). A ticket whose run time falls outside
//! every window of one of its targets is refused, naming the next opening; a scheduled ticket whose time
//! comes outside them (the windows changed) is cancelled with that reason rather than run.

use serde::{Deserialize, Serialize};
use sluice_core::Environment;
use utoipa::ToSchema;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A window as the API takes it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub name: String,
    /// The instance (id or name) it governs, or
    pub instance: Option<String>,
    /// every instance of this environment that has no window of its own.
    pub environment: Option<Environment>,
    /// `mon` … `sun`: the days the window opens on.
    pub days: Vec<String>,
    /// `HH:MM` it opens and closes (a close before the open runs past midnight).
    pub start: String,
    pub end: String,
    /// The window's clock: minutes east of UTC (480 for UTC+8). Default 0.
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

/// The stored form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WindowDef {
    /// 0 = Monday.
    pub days: Vec<u8>,
    pub start_min: u32,
    pub end_min: u32,
    pub utc_offset_minutes: i32,
}

fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
}

impl WindowSpec {
    /// The stored form, or the first bad field and why.
    pub fn definition(&self) -> Result<WindowDef, (String, String)> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err(("name".into(), "name: 1–100 characters".into()));
        }
        if self.instance.is_some() == self.environment.is_some() {
            return Err(("instance".into(), "instance: name an instance or an environment, not both".into()));
        }
        let mut days = Vec::new();
        for (i, d) in self.days.iter().enumerate() {
            let n = DAYS.iter().position(|x| x.eq_ignore_ascii_case(d)).ok_or_else(|| (format!("days[{i}]"), format!("days[{i}]: `{d}` is not mon … sun")))?;
            days.push(n as u8);
        }
        if days.is_empty() {
            return Err(("days".into(), "days: at least one day".into()));
        }
        let start_min = minutes(&self.start).ok_or_else(|| ("start".to_string(), format!("start: `{}` is not HH:MM", self.start)))?;
        let end_min = minutes(&self.end).ok_or_else(|| ("end".to_string(), format!("end: `{}` is not HH:MM", self.end)))?;
        if start_min == end_min {
            return Err(("end".into(), "end: a window needs a length (start and end differ)".into()));
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return Err(("utc_offset_minutes".into(), "utc_offset_minutes: −840 to 840".into()));
        }
        Ok(WindowDef { days, start_min, end_min, utc_offset_minutes: self.utc_offset_minutes })
    }
}

impl WindowDef {
    /// Whether the window is open at `t_ms` (unix milliseconds).
    pub fn contains(&self, t_ms: i64) -> bool {
        let local = t_ms.div_euclid(60_000) + self.utc_offset_minutes as i64;
        let day = (local.div_euclid(1440) + 3).rem_euclid(7) as u8; // 1970-01-01 was a Thursday
        let m = local.rem_euclid(1440) as u32;
        let prev = (day + 6) % 7;
        if self.start_min < self.end_min {
            self.days.contains(&day) && (self.start_min..self.end_min).contains(&m)
        } else {
            (self.days.contains(&day) && m >= self.start_min) || (self.days.contains(&prev) && m < self.end_min)
        }
    }
}

/// The first minute at or after `t_ms` when one of the windows is open (within 8 days).
pub fn next_open(defs: &[WindowDef], t_ms: i64) -> Option<i64> {
    let start = t_ms.div_euclid(60_000) * 60_000;
    (0..8 * 1440).map(|i| start + i * 60_000).find(|t| defs.iter().any(|d| d.contains(*t))).map(|t| t.max(t_ms))
}

/// RFC 3339 in UTC, for messages.
pub fn iso(t_ms: i64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(t_ms.max(0) as u64)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        humantime::parse_rfc3339(s).unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    }

    #[test]
    fn windows_open_on_their_days_and_hours_in_their_clock() {
        // Saturday and Sunday 02:00–05:00 at UTC+8.
        let w = WindowDef { days: vec![5, 6], start_min: 120, end_min: 300, utc_offset_minutes: 480 };
        assert!(w.contains(at("2026-12-05T18:30:00Z")), "Sunday 02:30 at UTC+8");
        assert!(!w.contains(at("2026-12-05T21:00:00Z")), "Sunday 05:00: closed");
        assert!(!w.contains(at("2026-12-07T18:30:00Z")), "Tuesday");
        assert_eq!(next_open(&[w], at("2026-12-02T00:00:00Z")), Some(at("2026-12-04T18:00:00Z")), "Saturday 02:00 local");
        // Overnight: Friday 22:00 to Saturday 04:00 UTC.
        let n = WindowDef { days: vec![4], start_min: 22 * 60, end_min: 4 * 60, utc_offset_minutes: 0 };
        assert!(n.contains(at("2026-12-04T23:00:00Z")) && n.contains(at("2026-12-05T03:59:00Z")));
        assert!(!n.contains(at("2026-12-05T04:00:00Z")) && !n.contains(at("2026-12-03T23:00:00Z")));
    }

    #[test]
    fn bad_windows_name_their_field() {
        let spec = |start: &str| WindowSpec {
            name: "w".into(),
            instance: Some("db".into()),
            environment: None,
            days: vec!["sat".into()],
            start: start.into(),
            end: "04:00".into(),
            utc_offset_minutes: 0,
        };
        assert_eq!(spec("25:00").definition().unwrap_err().0, "start");
        assert!(spec("02:00").definition().is_ok());
    }
}
