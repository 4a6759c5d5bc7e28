//! Log files that roll over daily (UTC), `PREFIX.YYYY-MM-DD.log`, created
//! 0600 and pruned to the newest few. tracing-appender's rolling files
//! would be created with the process's umask, usually 0644, and logs name
//! peers, addresses and sessions.

use std::{
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::state_file;

/// The current day's log file, reopened when the day changes.
pub struct DailyFile {
    dir: PathBuf,
    prefix: String,
    keep: usize,
    day: i64,
    file: File,
}

impl DailyFile {
    /// Opens today's file in `dir` (which must exist), keeping at most
    /// `keep` files of `prefix` there.
    pub fn open(dir: &Path, prefix: &str, keep: usize) -> io::Result<Self> {
        let day = days_since_epoch(SystemTime::now());
        let file = state_file::open_private_append(&dir.join(file_name(prefix, day)))?;
        let daily = Self {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            keep,
            day,
            file,
        };
        daily.prune();
        Ok(daily)
    }

    /// The path of the file written now.
    pub fn path(&self) -> PathBuf {
        self.dir.join(file_name(&self.prefix, self.day))
    }

    fn roll_over(&mut self) -> io::Result<()> {
        let day = days_since_epoch(SystemTime::now());
        if day != self.day {
            let file =
                state_file::open_private_append(&self.dir.join(file_name(&self.prefix, day)))?;
            self.day = day;
            self.file = file;
            self.prune();
        }
        Ok(())
    }

    /// Deletes the oldest of this prefix's files beyond `keep`; a failure
    /// only leaves an old file behind.
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let start = format!("{}.", self.prefix);
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(&start) && n.ends_with(".log"))
            .collect();
        // ISO dates sort by name.
        names.sort();
        let excess = names.len().saturating_sub(self.keep);
        for name in &names[..excess] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }
}

impl Write for DailyFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.roll_over()?;
        self.file.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn days_since_epoch(now: SystemTime) -> i64 {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (secs / 86_400) as i64
}

fn file_name(prefix: &str, day: i64) -> String {
    let (y, m, d) = civil_date(day);
    format!("{prefix}.{y:04}-{m:02}-{d:02}.log")
}

/// The Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_789), (2026, 12, 2));
        assert_eq!(file_name("conclaved", 20_789), "conclaved.2026-12-02.log");
    }

    #[test]
    fn the_file_is_owner_only_and_old_files_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        for old in ["x.2020-01-01.log", "x.2020-01-02.log", "x.2020-01-03.log"] {
            std::fs::write(dir.path().join(old), b"old\n").unwrap();
        }
        std::fs::write(dir.path().join("other.2020-01-01.log"), b"").unwrap();
        let mut log = DailyFile::open(dir.path(), "x", 2).unwrap();
        log.write_all(b"line\n").unwrap();
        let mode = std::fs::metadata(log.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let today = log
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(names, ["other.2020-01-01.log", "x.2020-01-03.log", &today]);
    }
}
