//! Scenario 8: many authenticated members on one process (issue 12). `members` sockets, logged
//! in through the real login page, in `member_rooms` rooms (100 each at the defaults: 100,000
//! in 1,000), connected from several loopback source addresses so the ephemeral ports last.
//! On a freshly started server with enter/leave notices on, it measures:
//!
//! * the yardstick: p99 at `latency_rate` deliveries/s on `clients` members in one room;
//! * the connect+join rate of all the members, and the server's RSS per member;
//! * p99 at the same rate spread over every room (one sender per room), against the yardstick;
//! * the idle cost: the server's CPU over `idle_secs` with every member connected and silent
//!   (keep-alive pings and session re-checks only), in one-second samples;
//! * the time until every remaining member has its leave notices when a tenth drop at once.
//!
//! Every member costs a descriptor in the bench and one in the server: the bench raises its
//! limit as far as the system lets it ([`raise_open_files`]) and, when that is still too low,
//! runs the whole rooms that fit and says so.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::load::{Layout, StepResult, Swarm};
use crate::report::Report;
use crate::scenarios::{BUSY_READ_BUFFER, on_own_server};
use crate::servers::{Server, cpu_seconds};
use crate::setup::Run;
use crate::{Sizes, Target};

/// Sockets per loopback source address (each has ~28,000 ephemeral ports).
const PER_SOURCE: usize = 20_000;
/// Descriptors kept free for everything that is not a member (logins, logs, the yardstick).
const RESERVE: u64 = 1_000;

/// The descriptor limit after raising it: the soft limit to the hard one, and the hard one to
/// `fs.nr_open` (which needs CAP_SYS_RESOURCE). Returns the limit now in force and, when it
/// could not be raised that far, why. Servers started afterwards inherit it.
pub fn raise_open_files() -> (u64, Option<String>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (1024, Some("getrlimit failed".into()));
    }
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(lim.rlim_max);
    let mut note = None;
    if lim.rlim_max < ceiling {
        let wanted = libc::rlimit {
            rlim_cur: ceiling,
            rlim_max: ceiling,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            lim = wanted;
        } else {
            note = Some(format!(
                "the hard limit {} cannot be raised to fs.nr_open {ceiling} ({})",
                lim.rlim_max,
                std::io::Error::last_os_error()
            ));
        }
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            note = Some(format!(
                "the soft limit cannot be raised ({})",
                std::io::Error::last_os_error()
            ));
        }
    }
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) };
    (now.rlim_cur, note)
}

/// What scenario 8 measured on one target.
pub struct Members {
    pub members: usize,
    pub rooms: usize,
    /// Set when the descriptor limit made the run smaller than asked.
    pub shrunk: Option<String>,
    pub joined_in: Duration,
    pub kib_per_member: f64,
    pub yardstick: StepResult,
    pub spread: StepResult,
    /// The server's CPU while idle: average and busiest one-second sample, % of one core.
    pub idle_avg: f64,
    pub idle_max: f64,
    pub idle_secs: f64,
    pub dropped: usize,
    /// Until every leave notice arrived (`None`: not all within the limit).
    pub leaves_in: Option<Duration>,
    pub leaves_expected: u64,
    pub leaves_received: u64,
}

pub async fn members(
    run: &Run,
    sizes: &Sizes,
    target: Target,
    report: &mut Report,
) -> anyhow::Result<()> {
    let room_size = (sizes.members / sizes.member_rooms.max(1)).max(1);
    let (limit, note) = raise_open_files();
    let fit = (limit.saturating_sub(RESERVE) as usize / room_size).min(sizes.member_rooms);
    let rooms = fit.min(run.rooms.len());
    let members = rooms * room_size;
    if rooms == 0 {
        anyhow::bail!("descriptor limit {limit} leaves no room for a room of {room_size}");
    }
    let shrunk = (members < sizes.members).then(|| {
        format!(
            "descriptor limit {limit}{}: {members} members in {rooms} rooms of {room_size}, not {}",
            note.as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            sizes.members
        )
    });
    if let Some(why) = &shrunk {
        eprintln!("bench: {}: scenario 8: {why}", target.name());
    }
    let notify = [("NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS", "true".to_string())];
    let measured = on_own_server(run, target, &notify, 8, report, async |server, cookies| {
        measure(run, sizes, server, cookies, rooms, members, shrunk).await
    })
    .await?;
    if let Some(m) = measured {
        report.members(target, &m);
    }
    Ok(())
}

async fn measure(
    run: &Run,
    sizes: &Sizes,
    server: &Server,
    cookies: &[Option<String>],
    rooms: usize,
    members: usize,
    shrunk: Option<String>,
) -> anyhow::Result<Members> {
    let name = server.target.name();
    let pid = server.pid().context("server exited")?;
    let connect_limit = if server.target.is_python() {
        Duration::from_secs_f64(sizes.python_connect_limit)
    } else {
        Duration::from_secs_f64(sizes.connect_limit.unwrap_or(600.0))
    };
    let rate = sizes.latency_rate as f64;
    let secs = Duration::from_secs_f64(sizes.latency_secs);
    let drain = Duration::from_secs(5);
    let before = server.rss_kib()?;

    // The yardstick: the same rate on one room of `clients`.
    let small = Layout {
        addrs: vec![server.addr],
        sources: Vec::new(),
        rooms: vec![run.rooms[0]],
        clients: sizes.clients,
        senders: sizes.senders,
        cookies: cookies.to_vec(),
        read_buffer: BUSY_READ_BUFFER,
        concurrency: 64,
        connect_limit,
        track_last: false,
    };
    let (mut swarm, _) = Swarm::connect(&small).await.context("yardstick")?;
    let yardstick = swarm.step(rate, secs, drain, None).await?;
    eprintln!(
        "bench: {name}: scenario 8: {} members in one room: p99 {:.2} ms, lost {}",
        sizes.clients,
        yardstick.p(0.99),
        yardstick.lost
    );
    drop(swarm);

    let sources: Vec<IpAddr> = (0..members.div_ceil(PER_SOURCE))
        .map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + k as u8)))
        .collect();
    let layout = Layout {
        addrs: vec![server.addr],
        sources,
        rooms: run.rooms[..rooms].to_vec(),
        clients: members,
        senders: rooms,
        cookies: cookies.to_vec(),
        read_buffer: 4 * 1024,
        concurrency: 256,
        connect_limit,
        track_last: false,
    };
    let (mut swarm, joined_in) = Swarm::connect(&layout).await.context("members")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib()?;
    let kib_per_member = after.saturating_sub(before) as f64 / members as f64;
    eprintln!(
        "bench: {name}: scenario 8: {members} members in {rooms} rooms joined in {:.1} s ({:.0}/s); RSS {before} → {after} KiB ({kib_per_member:.2} KiB/member)",
        joined_in.as_secs_f64(),
        members as f64 / joined_in.as_secs_f64()
    );

    let spread = swarm.step(rate, secs, drain, None).await?;
    eprintln!(
        "bench: {name}: scenario 8: spread over {rooms} rooms: p99 {:.2} ms, lost {}",
        spread.p(0.99),
        spread.lost
    );

    // Idle: nothing sent; only the server's own timers run.
    let mut samples = Vec::new();
    let mut last = cpu_seconds(pid)?;
    let idle_started = Instant::now();
    let idle = Duration::from_secs_f64(sizes.idle_secs);
    while idle_started.elapsed() < idle {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_seconds(pid)?;
        samples.push(now - last);
        last = now;
    }
    let idle_secs = idle_started.elapsed().as_secs_f64();
    let idle_avg = 100.0 * samples.iter().sum::<f64>() / idle_secs;
    let idle_max = 100.0 * samples.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "bench: {name}: scenario 8: idle for {idle_secs:.0} s: {idle_avg:.2} % of a core (busiest second {idle_max:.0} %)"
    );

    // A tenth drop at once; the others get one leave notice per departed room-mate.
    let dropped = members / 10;
    let leaves_before = swarm.leaves();
    let started = Instant::now();
    let leaves_expected = swarm.disconnect_first(dropped);
    let limit = Duration::from_secs(120);
    let leaves_in = loop {
        let got = swarm.leaves() - leaves_before;
        if got >= leaves_expected {
            break Some(started.elapsed());
        }
        if started.elapsed() > limit {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let leaves_received = swarm.leaves() - leaves_before;
    eprintln!(
        "bench: {name}: scenario 8: {dropped} dropped: {leaves_received} of {leaves_expected} leave notices {}",
        leaves_in.map_or("not all within 120 s".to_string(), |d| format!(
            "in {:.2} s",
            d.as_secs_f64()
        ))
    );
    Ok(Members {
        members,
        rooms,
        shrunk,
        joined_in,
        kib_per_member,
        yardstick,
        spread,
        idle_avg,
        idle_max,
        idle_secs,
        dropped,
        leaves_in,
        leaves_expected,
        leaves_received,
    })
}
