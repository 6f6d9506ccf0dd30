//! Times of day, UTC offsets and dates as playlists write them.

/// A time of day, milliseconds since midnight (`HH:MM:SS[.mmm]`, 00:00:00 ..= 23:59:59.999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(pub u32);

impl TimeOfDay {
    /// 00:00:00.
    pub const MIDNIGHT: TimeOfDay = TimeOfDay(0);

    /// Parses `HH:MM:SS` or `HH:MM:SS.mmm` (1-3 fraction digits).
    pub fn parse(s: &str) -> Result<TimeOfDay, String> {
        let bad = || format!("\"{s}\" is not a time of day (HH:MM:SS or HH:MM:SS.mmm)");
        let (hms, frac) = match s.split_once('.') {
            Some((a, f)) => (a, Some(f)),
            None => (s, None),
        };
        let parts: Vec<&str> = hms.split(':').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.len() != 2) {
            return Err(bad());
        }
        let num = |p: &str| {
            p.parse::<u32>()
                .ok()
                .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))
        };
        let (Some(h), Some(m), Some(sec)) = (num(parts[0]), num(parts[1]), num(parts[2])) else {
            return Err(bad());
        };
        if h > 23 || m > 59 || sec > 59 {
            return Err(bad());
        }
        let ms = match frac {
            None => 0,
            Some(f) if (1..=3).contains(&f.len()) => {
                let v = num(f).ok_or_else(bad)?;
                v * 10u32.pow(3 - f.len() as u32)
            }
            Some(_) => return Err(bad()),
        };
        Ok(TimeOfDay(((h * 60 + m) * 60 + sec) * 1000 + ms))
    }
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        write!(
            f,
            "{:02}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    }
}

/// A fixed offset from UTC, in minutes (east positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcOffset(pub i32);

impl UtcOffset {
    /// UTC itself.
    pub const UTC: UtcOffset = UtcOffset(0);

    /// Parses `UTC`, `Z` or `+HH:MM` / `-HH:MM`. Zone names with daylight saving time
    /// (`Europe/Berlin`) are refused for now: their days of 23 and 25 hours need the zone
    /// database, which tandem does not carry yet.
    pub fn parse(s: &str) -> Result<UtcOffset, String> {
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(UtcOffset::UTC);
        }
        let sign = match s.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ if s.contains('/') => {
                return Err(format!(
                    "\"{s}\": zone names are not supported yet (no zone database); give the UTC offset, e.g. \"+01:00\""
                ))
            }
            _ => return Err(format!("\"{s}\" is not a UTC offset (\"UTC\", \"+01:00\", \"-05:00\")")),
        };
        let rest = &s[1..];
        let ok = rest.len() == 5 && rest.as_bytes()[2] == b':';
        let h = rest.get(..2).and_then(|x| x.parse::<i32>().ok());
        let m = rest.get(3..).and_then(|x| x.parse::<i32>().ok());
        match (ok, h, m) {
            (true, Some(h), Some(m)) if h <= 14 && m < 60 => Ok(UtcOffset(sign * (h * 60 + m))),
            _ => Err(format!(
                "\"{s}\" is not a UTC offset (\"UTC\", \"+01:00\", \"-05:00\")"
            )),
        }
    }
}

/// Parses `YYYY-MM-DD` (a real calendar date).
pub fn parse_date(s: &str) -> Result<(u16, u8, u8), String> {
    let bad = || format!("\"{s}\" is not a date (YYYY-MM-DD)");
    let p: Vec<&str> = s.split('-').collect();
    if p.len() != 3 || p[0].len() != 4 || p[1].len() != 2 || p[2].len() != 2 {
        return Err(bad());
    }
    let (Ok(y), Ok(m), Ok(d)) = (p[0].parse::<u16>(), p[1].parse::<u8>(), p[2].parse::<u8>())
    else {
        return Err(bad());
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if d == 0 || d > days {
        return Err(bad());
    }
    Ok((y, m, d))
}
