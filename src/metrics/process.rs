//! The process's own metrics, under the names every Prometheus client uses
//! (`process_resident_memory_bytes`, `process_open_fds`, …), read from `/proc/self` per scrape.
//! Where `/proc` is missing (not Linux) they are left out rather than reported as zero.

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

pub fn registry() -> Registry {
    let mut r = Registry::with_prefix("process");
    // SAFETY: sysconf only reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as i64;
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
    {
        r.register(
            "resident_memory_bytes",
            "Resident memory size in bytes",
            ConstGauge::new(pages * page),
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries.
        let open = dir.count().saturating_sub(1) as i64;
        r.register("open_fds", "Open file descriptors", ConstGauge::new(open));
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        r.register(
            "max_fds",
            "Maximum number of open file descriptors",
            ConstGauge::new(limit.rlim_cur.min(i64::MAX as u64) as i64),
        );
    }
    if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = s.get(s.rfind(')')? + 2..)?.to_string();
            Some(rest)
        })
    {
        let fields: Vec<&str> = stat.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the name.
        let cpu = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (cpu(11), cpu(12)) {
            r.register(
                "cpu_seconds",
                "User and system CPU time spent in seconds",
                ConstCounter::new((user + system) / ticks),
            );
        }
        let start = fields.get(19).and_then(|v| v.parse::<f64>().ok());
        if let (Some(start), Some(boot)) = (start, boot_time()) {
            r.register(
                "start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                ConstGauge::new(boot + start / ticks),
            );
        }
    }
    r
}

/// `btime` of `/proc/stat`: when the system booted, in seconds since the epoch.
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}
