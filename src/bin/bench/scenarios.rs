//! Scenarios 1–6 of issue 5, run for one target at a time on a server of its own:
//!
//! 1. fan-out: `clients` in one room, `senders` of them sending; the offered rate doubles until
//!    a step loses a delivery, falls behind or shows p99 > 100 ms (`--p99-limit-ms`), then two bisection steps;
//!    the highest zero-loss rate counts;
//! 2. many rooms: `many_clients` over `rooms` rooms, one sender per room, stepped the same way;
//! 3. latency at a fixed `latency_rate` on scenario 1's sockets;
//! 4. connect `sockets` authenticated sockets (Python: `python_sockets`) and join; seconds, and
//!    RSS growth per idle joined socket, on a freshly started server, and the RSS once they
//!    have all closed;
//! 5. `logins` concurrent logins through the login page while scenario 3's load runs;
//! 6. two Whisper processes over Redis, clients and senders split across them (Whisper only),
//!    once per channel-layer format (`--layer`): Whisper's own (`REDIS_URL`), channels_redis'
//!    pub/sub and core (`CHANNEL_LAYERS`, default `capacity`); both processes' loss counters
//!    (`/healthz`) and, on the core layer, the peak queue length (`ZCARD`) come with it;
//! 7. a hostile room (Whisper only, `hostile`): victims at `latency_rate` beside a flooder and
//!    a stopped reader, against the same run without them;
//! 8. `members` authenticated members in `member_rooms` rooms on one process (`members`);
//! 9. one room of `big_room` members, and a small room beside it (`big_room`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::load::{Layout, StepResult, Swarm, connect_many};
use crate::login::{http_client, login, login_all};
use crate::report::Report;
use crate::servers::{Server, cpu_seconds};
use crate::setup::{PASSWORD, Run};
use crate::{Layer, Sizes, Target, big_room, hostile, members, scale_out};

/// Client read buffer for measured traffic (fewer reads at high rates) and for idle sockets.
pub const BUSY_READ_BUFFER: usize = 64 * 1024;
const IDLE_READ_BUFFER: usize = 4 * 1024;

pub async fn run_target(
    run: &Run,
    sizes: &Sizes,
    target: Target,
    wanted: &[u8],
    layers: &[Layer],
    report: &mut Report,
) -> anyhow::Result<()> {
    let single: Vec<u8> = wanted.iter().copied().filter(|s| *s <= 5).collect();
    if !single.is_empty() {
        let server = Server::start(run, target, &[], target.name()).await?;
        let result = single_server(run, sizes, &server, &single, report).await;
        server.stop().await;
        result?;
    }
    if wanted.contains(&6) {
        if target == Target::Whisper {
            for &layer in layers {
                if let Err(e) = scale_out::two_processes(run, sizes, layer, report).await {
                    eprintln!("bench: whisper: scenario 6 ({}): {e:#}", layer.name());
                    report.failed(target, &format!("scenario 6 ({}): {e:#}", layer.name()));
                }
            }
        } else {
            report.cell(target, 6, "not run: two Whisper processes only");
        }
    }
    if wanted.contains(&8)
        && let Err(e) = members::members(run, sizes, target, report).await
    {
        eprintln!("bench: {}: scenario 8: {e:#}", target.name());
        report.failed(target, &format!("scenario 8: {e:#}"));
    }
    if wanted.contains(&9)
        && let Err(e) = big_room::big_room(run, sizes, target, report).await
    {
        eprintln!("bench: {}: scenario 9: {e:#}", target.name());
        report.failed(target, &format!("scenario 9: {e:#}"));
    }
    if wanted.contains(&7) {
        if target == Target::Whisper {
            if let Err(e) = hostile::hostile_room(run, sizes, report).await {
                eprintln!("bench: whisper: scenario 7: {e:#}");
                report.failed(target, &format!("scenario 7: {e:#}"));
            }
        } else {
            report.cell(target, 7, "not run: Whisper's limits only");
        }
    }
    Ok(())
}

async fn single_server(
    run: &Run,
    sizes: &Sizes,
    server: &Server,
    wanted: &[u8],
    report: &mut Report,
) -> anyhow::Result<()> {
    let target = server.target;
    let cookies = cookies_for(run, server).await?;
    let connect_limit = connect_limit(sizes, target);

    if wanted.iter().any(|s| matches!(s, 1 | 3 | 5)) {
        let layout = Layout {
            addrs: vec![server.addr],
            sources: Vec::new(),
            rooms: vec![run.rooms[0]],
            clients: sizes.clients,
            senders: sizes.senders,
            cookies: cookies.clone(),
            read_buffer: BUSY_READ_BUFFER,
            concurrency: 64,
            connect_limit,
            track_last: false,
        };
        let (mut swarm, took) = Swarm::connect(&layout)
            .await
            .context("scenario 1 sockets")?;
        eprintln!(
            "bench: {}: {} clients joined in {:.2} s",
            target.name(),
            sizes.clients,
            took.as_secs_f64()
        );
        if wanted.contains(&1) {
            let best = step_up(&mut swarm, &layout, sizes, target, "1").await?;
            report.throughput(target, 1, best);
            if swarm.damaged() {
                drop(swarm);
                swarm = Swarm::connect(&layout)
                    .await
                    .context("scenario 3 sockets")?
                    .0;
            } else {
                swarm.settle(Duration::from_secs(10)).await;
            }
        }
        if wanted.contains(&3) {
            let r = fixed_rate(&mut swarm, sizes, None).await?;
            eprintln!("bench: {}: scenario 3: {}", target.name(), describe(&r));
            report.latency(target, 3, &r);
        }
        if wanted.contains(&5) {
            if target == Target::Bare {
                report.cell(target, 5, "n/a: no login page");
            } else {
                login_flood(&mut swarm, sizes, server, run, report).await?;
            }
        }
        drop(swarm);
    }

    if wanted.contains(&2) {
        let rooms: Vec<i64> = run.rooms.iter().copied().take(sizes.rooms).collect();
        let layout = Layout {
            addrs: vec![server.addr],
            sources: Vec::new(),
            senders: rooms.len(),
            rooms,
            clients: sizes.many_clients,
            cookies: cookies.clone(),
            read_buffer: BUSY_READ_BUFFER,
            concurrency: 64,
            connect_limit,
            track_last: false,
        };
        match Swarm::connect(&layout).await {
            Ok((mut swarm, took)) => {
                eprintln!(
                    "bench: {}: {} clients in {} rooms joined in {:.2} s",
                    target.name(),
                    sizes.many_clients,
                    sizes.rooms,
                    took.as_secs_f64()
                );
                let best = step_up(&mut swarm, &layout, sizes, target, "2").await?;
                report.throughput(target, 2, best);
            }
            Err(e) if target.is_python() => {
                report.cell(target, 2, &format!("not run: {e:#}"));
            }
            Err(e) => return Err(e.context("scenario 2 sockets")),
        }
    }

    if wanted.contains(&4) {
        connect_scenario(run, sizes, target, &cookies, report).await?;
    }
    Ok(())
}

/// The run's users logged in through `server`'s login page: their session cookies (none for
/// the bare server, which has no logins).
pub async fn cookies_for(run: &Run, server: &Server) -> anyhow::Result<Vec<Option<String>>> {
    if server.target == Target::Bare {
        return Ok(vec![None]);
    }
    let started = Instant::now();
    let cookies = login_all(&server.base_url(), &run.users, PASSWORD).await?;
    eprintln!(
        "bench: {}: {} users logged in through the login page in {:.1} s",
        server.target.name(),
        cookies.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(cookies.into_iter().map(Some).collect())
}

/// Runs `measure` on a server of `target` of its own (`env` added to the run's settings) with
/// the run's users logged in there, and stops the server. A Python target that cannot do it
/// gets a "not run" cell and `None`; any other failure fails the scenario.
pub async fn on_own_server<T>(
    run: &Run,
    target: Target,
    env: &[(&str, String)],
    scenario: u8,
    report: &mut Report,
    measure: impl AsyncFnOnce(&Server, &[Option<String>]) -> anyhow::Result<T>,
) -> anyhow::Result<Option<T>> {
    let tag = format!("{}-scenario-{scenario}", target.name());
    let server = Server::start(run, target, env, &tag).await?;
    let result = async {
        let cookies = cookies_for(run, &server).await?;
        measure(&server, &cookies).await
    }
    .await;
    server.stop().await;
    match result {
        Ok(measured) => Ok(Some(measured)),
        Err(e) if target.is_python() => {
            eprintln!("bench: {}: scenario {scenario}: {e:#}", target.name());
            report.cell(target, scenario, &format!("not run: {e:#}"));
            Ok(None)
        }
        Err(e) => Err(e.context(format!("scenario {scenario}"))),
    }
}

fn connect_limit(sizes: &Sizes, target: Target) -> Duration {
    if target.is_python() {
        Duration::from_secs_f64(sizes.python_connect_limit)
    } else {
        Duration::from_secs(120)
    }
}

fn describe(r: &StepResult) -> String {
    format!(
        "offered {:.0}/s delivered {:.0}/s expected {} received {} lost {} closed {}{} p50 {:.2} ms p99 {:.2} ms max {:.1} ms",
        r.offered,
        r.delivered_per_sec,
        r.expected,
        r.received,
        r.lost,
        r.closed,
        if r.behind { " (senders behind)" } else { "" },
        r.p(0.5),
        r.p(0.99),
        r.max_ms()
    )
}

/// Scenario 1/2's search: doubling from `start_rate` until a step fails, then two geometric
/// bisection steps. Returns the best step that held, if any. Sockets the server closed (a full
/// outbound queue) fail the step and are replaced by a fresh swarm on `layout`.
pub async fn step_up(
    swarm: &mut Swarm,
    layout: &Layout,
    sizes: &Sizes,
    target: Target,
    label: &str,
) -> anyhow::Result<Option<StepResult>> {
    let duration = Duration::from_secs_f64(sizes.step_secs);
    let drain = Duration::from_secs(2);
    let mut best: Option<StepResult> = None;
    let mut failed_at: Option<f64> = None;
    let mut rate = sizes.start_rate as f64;
    let max = sizes.max_rate as f64;
    let mut bisections = 0;
    loop {
        let r = swarm.step(rate, duration, drain, None).await?;
        let held = r.holds(sizes.p99_limit_ms);
        eprintln!(
            "bench: {}: scenario {label}: {} {}",
            target.name(),
            describe(&r),
            if held { "ok" } else { "FAIL" }
        );
        if held {
            best = Some(r);
        } else {
            failed_at = Some(rate);
            if swarm.damaged() {
                // The server closed sockets (slow consumers): continue on fresh ones.
                *swarm = Swarm::connect(layout).await?.0;
            } else {
                swarm.settle(Duration::from_secs(10)).await;
            }
        }
        let low = best.as_ref().map(|b| b.offered);
        rate = match (low, failed_at) {
            (_, None) if rate >= max => break,
            (_, None) => (rate * 2.0).min(max),
            (None, Some(_)) => break,
            (Some(low), Some(high)) => {
                if bisections == 2 || high / low < 1.1 {
                    break;
                }
                bisections += 1;
                (low * high).sqrt()
            }
        };
    }
    Ok(best)
}

/// Scenario 3's load: `latency_rate` deliveries/s for `latency_secs` (or until `stop`).
async fn fixed_rate(
    swarm: &mut Swarm,
    sizes: &Sizes,
    stop: Option<Arc<AtomicBool>>,
) -> anyhow::Result<StepResult> {
    let duration = match stop {
        Some(_) => Duration::from_secs(300),
        None => Duration::from_secs_f64(sizes.latency_secs),
    };
    swarm
        .step(
            sizes.latency_rate as f64,
            duration,
            Duration::from_secs(3),
            stop,
        )
        .await
}

/// Scenario 5: `logins` concurrent logins through the page while the fixed-rate load runs.
async fn login_flood(
    swarm: &mut Swarm,
    sizes: &Sizes,
    server: &Server,
    run: &Run,
    report: &mut Report,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        let base = server.base_url();
        let users = run.users.clone();
        let logins = sizes.logins;
        tokio::spawn(async move {
            // Let the chat load settle for half a second before the flood starts.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let http = http_client();
            let started = Instant::now();
            let jobs = (0..logins).map(|i| login(&http, &base, &users[i % users.len()], PASSWORD));
            let results = futures_util::future::join_all(jobs).await;
            let took = started.elapsed();
            tokio::time::sleep(Duration::from_millis(200)).await;
            stop.store(true, Ordering::Release);
            let failures = results.iter().filter(|r| r.is_err()).count();
            let first_error = results
                .into_iter()
                .find_map(Result::err)
                .map(|e| format!("{e:#}"));
            (took, failures, first_error)
        })
    };
    let r = fixed_rate(swarm, sizes, Some(stop.clone())).await?;
    stop.store(true, Ordering::Release);
    let (took, failures, first_error) = flood.await?;
    eprintln!(
        "bench: {}: scenario 5: {} logins in {:.1} s ({failures} failed{}); chat {}",
        server.target.name(),
        sizes.logins,
        took.as_secs_f64(),
        first_error
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default(),
        describe(&r)
    );
    report.flood(server.target, &r, took, failures);
    Ok(())
}

/// Scenario 4 on a freshly started server: RSS after one warm-up socket, then `n` sockets.
async fn connect_scenario(
    run: &Run,
    sizes: &Sizes,
    target: Target,
    cookies: &[Option<String>],
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = if target.is_python() {
        sizes.python_sockets
    } else {
        sizes.sockets
    };
    let server = Server::start(run, target, &[], &format!("{}-connect", target.name())).await?;
    let rooms = &run.rooms[..1];
    let warm = connect_many(
        &[server.addr],
        &[],
        rooms,
        cookies,
        1,
        IDLE_READ_BUFFER,
        1,
        Duration::from_secs(30),
    )
    .await;
    drop(warm.context("warm-up socket")?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib()?;
    let concurrency = if target.is_python() { 64 } else { 256 };
    let limit = connect_limit(sizes, target);
    // Which side the rate says something about: the server's CPU and the generator's own.
    let cpu = || -> anyhow::Result<(f64, f64)> {
        let server = cpu_seconds(server.pid().context("server exited")?)?;
        Ok((server, cpu_seconds(std::process::id())?))
    };
    let cpu_before = cpu()?;
    match connect_many(
        &[server.addr],
        &[],
        rooms,
        cookies,
        n,
        IDLE_READ_BUFFER,
        concurrency,
        limit,
    )
    .await
    {
        Ok((sockets, took)) => {
            let cpu_after = cpu()?;
            let secs = took.as_secs_f64();
            eprintln!(
                "bench: {}: scenario 4: CPU while connecting: server {:.0} %, generator {:.0} % of one core",
                target.name(),
                100.0 * (cpu_after.0 - cpu_before.0) / secs,
                100.0 * (cpu_after.1 - cpu_before.1) / secs,
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = server.rss_kib()?;
            let per_socket = after.saturating_sub(before) as f64 / n as f64;
            eprintln!(
                "bench: {}: scenario 4: {n} sockets joined in {:.2} s; RSS {before} → {after} KiB ({per_socket:.1} KiB/socket)",
                target.name(),
                took.as_secs_f64()
            );
            drop(sockets);
            // What the server gives back once every socket is gone (issue 10: memory per
            // socket is returned after disconnect): Whisper trims every 5 s (`web::memory`), so two
            // trims fall within the wait even when the closes straddle one (fewer than 1,000
            // sockets never trigger a trim: `web::memory::AFTER_CLOSED`).
            let wait = if n >= 1000 { 12 } else { 1 };
            tokio::time::sleep(Duration::from_secs(wait)).await;
            let closed = server.rss_kib()?;
            eprintln!(
                "bench: {}: scenario 4: after every socket closed, RSS {closed} KiB ({} KiB of {} returned)",
                target.name(),
                after.saturating_sub(closed),
                after.saturating_sub(before)
            );
            report.connect(target, n, took, per_socket, [before, after, closed]);
        }
        Err(e) => {
            eprintln!("bench: {}: scenario 4: {e:#}", target.name());
            report.cell(target, 4, &format!("not run: {e:#}"));
        }
    }
    server.stop().await;
    Ok(())
}
