//! `bench --instructions` (issue 12, item 3): the cost of one delivered frame in CPU
//! instructions, which unlike deliveries/s does not depend on the machine. Every server process
//! runs under callgrind; once its clients are connected, joined and warmed up, its counters are
//! zeroed (`callgrind_control --zero`), a fixed number of messages goes out at a low fixed rate,
//! and when every delivery has arrived the counters are dumped (`callgrind_control --dump`).
//! The dump's total instructions (Ir) over the frames the clients received is the figure:
//!
//! * `local`: Whisper and the bare server, one room of `--clients` clients, `--senders` senders;
//! * `big-room`: the same with one room of `--big-room` members and one sender;
//! * `own`, `pubsub`, `core` (`--layer`): two Whisper processes over Redis, clients and senders
//!   split across both (scenario 6); both processes' Ir over all deliveries, against the local
//!   bare figure.
//!
//! Whisper's periodic session re-check (a cost per socket and second) is moved out of the
//! window (`SESSION_RECHECK_SECONDS=3600`), so the counts repeat; an idle window as long as
//! the measured one (zeroed, nothing sent, dumped) shows what time alone still costs, and the
//! table gives the figures net of it too.
//!
//! Goals: ≤ 1.3× bare on the local paths, ≤ 2× on every Redis path. Then the top `--top`
//! functions by self cost of Whisper's and the bare server's local dumps, read from the dump
//! files here (plain names: `--compress-strings=no`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::load::{Layout, Swarm};
use crate::login::login_all;
use crate::scale_out::layer_env;
use crate::scenarios::BUSY_READ_BUFFER;
use crate::servers::Server;
use crate::setup::{PASSWORD, Run};
use crate::{Args, Layer, Sizes, Target};

/// Valgrind is ~50× slower: room for a server to start, and for its clients to connect.
const READY: Duration = Duration::from_secs(120);
const CONNECT: Duration = Duration::from_secs(900);
/// Deliveries/s offered while measuring (at least one message a second): low, so nothing
/// queues up and nothing is lost even under valgrind.
const RATE: f64 = 1000.0;

/// Whisper re-checks every open socket's session every `SESSION_RECHECK_SECONDS` (5 s): a cost
/// per socket and second, not per delivery, and a window of a few seconds holds a check or
/// not. Moved out of the window so counts repeat; the idle window shows what stays.
const RECHECK: (&str, &str) = ("SESSION_RECHECK_SECONDS", "3600");

/// One measured path of one target.
struct Measured {
    ir: u64,
    deliveries: u64,
    messages: u64,
    dumps: Vec<PathBuf>,
    secs: f64,
    /// Ir of an idle window as long as the measured one (same sockets, nothing sent).
    idle_ir: u64,
}

impl Measured {
    fn per_delivery(&self) -> f64 {
        self.ir as f64 / self.deliveries.max(1) as f64
    }

    /// Ir/delivery net of what the idle window cost.
    fn net_per_delivery(&self) -> f64 {
        self.ir.saturating_sub(self.idle_ir) as f64 / self.deliveries.max(1) as f64
    }
}

/// The cost mode: measures every path, prints the table, the `RESULT` lines and the profiles.
pub async fn run(args: &Args, sizes: &Sizes) -> anyhow::Result<()> {
    for tool in ["valgrind", "callgrind_control"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .await
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            bail!("{tool} is required for --instructions (apt-get install valgrind)");
        }
    }
    let messages = args.messages.unwrap_or(if args.quick { 50 } else { 200 });
    let big_room = args.big_room.unwrap_or(2000);
    let top = args.top;
    let layers = args.layers();

    let run = setup(args, sizes).await?;
    let result = async {
        // Logging in hashes at 1,000,000 PBKDF2 iterations: done once, outside valgrind, on a
        // plain Whisper; the sessions live in the shared database.
        let plain =
            Server::start_wrapped(&run, Target::Whisper, &[], "whisper-login", &[], READY).await?;
        let cookies = login_all(&plain.base_url(), &run.users, PASSWORD).await;
        plain.stop().await;
        let cookies: Vec<Option<String>> = cookies?.into_iter().map(Some).collect();

        let mut rows: Vec<Row> = Vec::new();
        let mut profiles: Vec<(Target, PathBuf, u64)> = Vec::new();
        let local = (sizes.clients, sizes.senders);
        let mut bare_local = None;
        let mut bare_local_net = f64::NAN;
        for (path, (clients, senders)) in [("local", local), ("big-room", (big_room, 1))] {
            let bare = measure(
                &run,
                Target::Bare,
                None,
                1,
                path,
                clients,
                senders,
                &[None],
                messages,
            )
            .await
            .with_context(|| format!("{path}: bare"))?;
            let whisper = measure(
                &run,
                Target::Whisper,
                None,
                1,
                path,
                clients,
                senders,
                &cookies,
                messages,
            )
            .await
            .with_context(|| format!("{path}: whisper"))?;
            if path == "local" {
                profiles.push((
                    Target::Whisper,
                    whisper.dumps[0].clone(),
                    whisper.deliveries,
                ));
                profiles.push((Target::Bare, bare.dumps[0].clone(), bare.deliveries));
                bare_local = Some(bare.per_delivery());
                bare_local_net = bare.net_per_delivery();
            }
            rows.push(Row {
                path: path.to_string(),
                clients,
                senders,
                bare: bare.per_delivery(),
                bare_net: bare.net_per_delivery(),
                whisper,
                goal: 1.3,
            });
        }
        let bare_local = bare_local.unwrap_or(f64::NAN);
        for &layer in &layers {
            let path = layer.name();
            let whisper = measure(
                &run,
                Target::Whisper,
                Some(layer),
                2,
                path,
                local.0,
                local.1,
                &cookies,
                messages,
            )
            .await
            .with_context(|| format!("{path}: two Whisper processes"))?;
            rows.push(Row {
                path: format!("{path} (2 processes)"),
                clients: local.0,
                senders: local.1,
                whisper,
                bare: bare_local,
                bare_net: bare_local_net,
                goal: 2.0,
            });
        }
        print_table(&rows);
        for (target, dump, deliveries) in &profiles {
            print_profile(*target, dump, *deliveries, top)?;
        }
        if args.keep {
            println!("\ncallgrind dumps kept in {}", run.dir.display());
        }
        anyhow::Ok(())
    }
    .await;
    if !args.keep {
        run.cleanup().await;
    }
    result
}

async fn setup(args: &Args, sizes: &Sizes) -> anyhow::Result<Run> {
    let run = Run::prepare(args, sizes, &[Target::Whisper, Target::Bare]).await?;
    eprintln!(
        "bench: cost mode, run directory {}, Redis prefix {}",
        run.dir.display(),
        run.prefix
    );
    Ok(run)
}

/// Starts `procs` servers of `target` under callgrind (over Redis `layer` when given),
/// connects `clients` (round-robin over the servers) to one room, warms up, zeroes, sends
/// `messages` and dumps; sums the Ir of every process.
#[allow(clippy::too_many_arguments)]
async fn measure(
    run: &Run,
    target: Target,
    layer: Option<Layer>,
    procs: usize,
    path: &str,
    clients: usize,
    senders: usize,
    cookies: &[Option<String>],
    messages: u64,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut env = layer.map(|l| layer_env(run, l).1).unwrap_or_default();
    env.push((RECHECK.0, RECHECK.1.to_string()));
    let mut servers = Vec::new();
    let mut outs = Vec::new();
    let mut result = async {
        for i in 0..procs {
            let tag = format!("cost-{path}-{}-{i}", target.name());
            let out = run.dir.join(format!("{tag}.%p.cg"));
            let wrap: Vec<String> = [
                "valgrind",
                "--tool=callgrind",
                "--dump-instr=no",
                "--compress-strings=no",
                "--compress-pos=no",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("--callgrind-out-file={}", out.display())])
            .collect();
            let server = Server::start_wrapped(run, target, &env, &tag, &wrap, READY).await?;
            outs.push(
                run.dir
                    .join(format!("{tag}.{}.cg", server.pid().context("no pid")?)),
            );
            servers.push(server);
        }
        let layout = Layout {
            addrs: servers.iter().map(|s| s.addr).collect(),
            sources: Vec::new(),
            rooms: vec![run.rooms[0]],
            clients,
            senders,
            cookies: cookies.to_vec(),
            read_buffer: BUSY_READ_BUFFER,
            concurrency: 16,
            connect_limit: CONNECT,
            track_last: false,
        };
        let (mut swarm, took) = Swarm::connect(&layout).await?;
        let senders = senders.min(clients).max(1) as u64;
        let rate = RATE.max(clients as f64);
        // One message per sender first: first-use allocations and, over Redis, subscriptions
        // settle before the counters are zeroed.
        let warm = pace(1, senders, clients, rate);
        let w = swarm
            .step(rate, warm, Duration::from_secs(300), None)
            .await?;
        if w.received != w.expected || w.expected == 0 {
            bail!(
                "warm-up: {} of {} deliveries arrived",
                w.received,
                w.expected
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for server in &servers {
            callgrind_control(server, "--zero").await?;
        }
        let zeroed = Instant::now();
        let per_sender = messages.div_ceil(senders).max(1);
        let window = pace(per_sender, senders, clients, rate);
        let r = swarm
            .step(rate, window, Duration::from_secs(600), None)
            .await?;
        let (ir, dumps) = dump_all(&servers, &outs).await?;
        let measured = zeroed.elapsed();
        for server in &servers {
            callgrind_control(server, "--zero").await?;
        }
        tokio::time::sleep(measured).await;
        let (idle_ir, _) = dump_all(&servers, &outs).await?;
        if r.lost != 0 || r.closed != 0 {
            bail!(
                "{} of {} deliveries lost, {} sockets closed: the count would not be per delivery",
                r.lost,
                r.expected,
                r.closed
            );
        }
        let m = Measured {
            ir,
            deliveries: r.received,
            messages: r.expected / clients as u64,
            dumps,
            secs: 0.0,
            idle_ir,
        };
        eprintln!(
            "bench: cost {path} {}: {} clients joined in {:.1} s, {} messages → {} deliveries in \
             {:.1} s, {:.0} Ir/delivery ({:.0} net of {} Ir idle)",
            target.name(),
            clients,
            took.as_secs_f64(),
            m.messages,
            m.deliveries,
            measured.as_secs_f64(),
            m.per_delivery(),
            m.net_per_delivery(),
            m.idle_ir
        );
        anyhow::Ok(m)
    }
    .await;
    for server in servers {
        server.stop().await;
    }
    if let Ok(m) = &mut result {
        m.secs = started.elapsed().as_secs_f64();
    }
    result
}

/// Dumps every server; the sum of their Ir and the dump files.
async fn dump_all(servers: &[Server], outs: &[PathBuf]) -> anyhow::Result<(u64, Vec<PathBuf>)> {
    let mut ir = 0;
    let mut dumps = Vec::new();
    for (server, out) in servers.iter().zip(outs) {
        callgrind_control(server, "--dump").await?;
        let dump = newest_dump(out)?;
        ir += dump_total(&dump)?;
        dumps.push(dump);
    }
    Ok((ir, dumps))
}

/// How long a step must offer `rate` deliveries/s so each of `senders` senders in a room of
/// `clients` sends exactly `per_sender` messages: sender k sends ⌊t·p + k/senders⌋ by time t
/// (p its messages/s), so the step ends half a phase after the last one is due.
fn pace(per_sender: u64, senders: u64, clients: usize, rate: f64) -> Duration {
    let p = rate / senders as f64 / clients as f64;
    Duration::from_secs_f64((per_sender as f64 + 0.5 / senders as f64) / p)
}

/// `callgrind_control <action> <pid>`: the pid is valgrind's own (the server process runs
/// inside it), which is the process callgrind_control addresses.
async fn callgrind_control(server: &Server, action: &str) -> anyhow::Result<()> {
    let pid = server.pid().context("server exited")?;
    let out = Command::new("callgrind_control")
        .arg(action)
        .arg(pid.to_string())
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("OK") {
        bail!(
            "callgrind_control {action} {pid}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The newest numbered dump (`<out>.1`, `<out>.2`, …) of an output file.
fn newest_dump(out: &Path) -> anyhow::Result<PathBuf> {
    let dir = out.parent().context("no directory")?;
    let name = out.file_name().context("no name")?.to_string_lossy();
    let prefix = format!("{name}.");
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(part) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u64>().ok())
            && best.as_ref().is_none_or(|(b, _)| part > *b)
        {
            best = Some((part, entry.path()));
        }
    }
    best.map(|(_, p)| p)
        .with_context(|| format!("no dump {}.N after callgrind_control --dump", out.display()))
}

/// The total Ir of a dump: its `summary:` line (what callgrind counted between the zero and
/// the dump; callgrind_annotate's "PROGRAM TOTALS"), else `totals:` (the sum of its cost
/// lines, seen ~1% higher after a zero).
fn dump_total(dump: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(dump)?;
    header_total(&text)
        .with_context(|| format!("no summary: or totals: line in {}", dump.display()))
}

fn header_total(text: &str) -> Option<u64> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    field("summary:").or_else(|| field("totals:"))
}

/// Self cost per function of a callgrind dump (Ir, the first event), and the total. Self cost
/// is every cost line under `fn=` except the one right after a `calls=` line (that one is the
/// inclusive cost of the call, charged to the callee). Names are plain
/// (`--compress-strings=no`); a function of the same name in several files is one entry.
fn self_costs(text: &str) -> (Vec<(String, u64)>, u64) {
    let mut costs: HashMap<&str, u64> = HashMap::new();
    let mut current = "";
    let mut after_calls = false;
    let mut total = 0;
    for line in text.lines() {
        let first = line.as_bytes().first().copied().unwrap_or(b' ');
        if first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'*') {
            if after_calls {
                after_calls = false;
                continue;
            }
            let ir = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            *costs.entry(current).or_default() += ir;
            total += ir;
        } else if let Some(name) = line.strip_prefix("fn=") {
            current = name;
            after_calls = false;
        } else if line.starts_with("calls=") {
            after_calls = true;
        }
    }
    let mut sorted: Vec<(String, u64)> = costs
        .into_iter()
        .map(|(name, ir)| (name.to_string(), ir))
        .collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    (sorted, total)
}

struct Row {
    path: String,
    clients: usize,
    senders: usize,
    whisper: Measured,
    /// Ir/delivery of the bare server (the local one for Redis paths), gross and net of idle.
    bare: f64,
    bare_net: f64,
    goal: f64,
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| path | clients/senders | messages → deliveries | whisper Ir/delivery | bare Ir/delivery | ratio | goal | net of idle: whisper / bare / ratio | took |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for r in rows {
        let w = r.whisper.per_delivery();
        let ratio = w / r.bare;
        let net = r.whisper.net_per_delivery();
        let net_ratio = net / r.bare_net;
        let status = if ratio <= r.goal { "ok" } else { "over" };
        println!(
            "| {} | {}/{} | {} → {} | {w:.0} | {:.0} | {ratio:.2}× | ≤ {}× {status} | {net:.0} / {:.0} / {net_ratio:.2}× | {:.0} s |",
            r.path,
            r.clients,
            r.senders,
            r.whisper.messages,
            r.whisper.deliveries,
            r.bare,
            r.goal,
            r.bare_net,
            r.whisper.secs
        );
        let path = r.path.split(' ').next().unwrap_or(&r.path);
        results.push(format!(
            "RESULT target={} scenario=instructions path={path} ir_per_delivery={w:.0} \
             bare_ir_per_delivery={:.0} ratio={ratio:.3} goal={} status={status} \
             net_ir_per_delivery={net:.0} bare_net_ir_per_delivery={:.0} net_ratio={net_ratio:.3} \
             ir={} idle_ir={} deliveries={} clients={} senders={}",
            Target::Whisper.name(),
            r.bare,
            r.goal,
            r.bare_net,
            r.whisper.ir,
            r.whisper.idle_ir,
            r.whisper.deliveries,
            r.clients,
            r.senders
        ));
    }
    println!();
    for line in results {
        println!("{line}");
    }
}

fn print_profile(target: Target, dump: &Path, deliveries: u64, top: usize) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(dump)?;
    let (costs, self_sum) = self_costs(&text);
    let total = header_total(&text).unwrap_or(self_sum).max(1);
    println!(
        "\n{} on the local path: top {top} functions by self cost, % of the {total} Ir counted \
         (self costs sum to {self_sum}) over {deliveries} deliveries ({})",
        target.name(),
        dump.display()
    );
    println!("| self % | self Ir | Ir/delivery | function |");
    println!("|---|---|---|---|");
    for (name, ir) in costs.iter().take(top) {
        let shown: String = name.chars().take(140).collect();
        println!(
            "| {:.2} | {ir} | {:.0} | `{shown}` |",
            *ir as f64 * 100.0 / total as f64,
            *ir as f64 / deliveries.max(1) as f64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::self_costs;

    #[test]
    fn self_cost_skips_the_inclusive_cost_line_after_calls() {
        let dump = "events: Ir\nfl=a.rs\nfn=main\n3 10\ncfn=work\ncalls=2 7\n4 500\n5 1\n\
                    fn=work\n7 500\ntotals: 1011\n";
        let (costs, total) = self_costs(dump);
        assert_eq!(total, 511);
        assert_eq!(costs[0], ("work".to_string(), 500));
        assert_eq!(costs[1], ("main".to_string(), 11));
    }
}
