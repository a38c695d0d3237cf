//! `bench`: Whisper's side-by-side load generator (issue 5).
//!
//! One run drives the same scenarios against every target — Whisper (the release binary, a real
//! process), the Python Channels app in `compat/` under uvicorn + `RedisPubSubChannelLayer` and
//! under daphne + `RedisChannelLayer`, and a bare reference server written here — then prints one
//! table with the ratios. Module map:
//!
//! * `setup`: the throw-away SQLite database, users, rooms and Redis prefixes of one run;
//! * `servers`: starting, probing and stopping target processes, and their RSS;
//! * `bare`: the reference server (`bench serve-bare PORT`);
//! * `login`: logging in through the real login page;
//! * `connect`: opening WebSockets, joined, many at a time on every core;
//! * `load`: the WebSocket clients, paced senders and per-step delivery statistics, with
//!   `lasts`: each message's latency to its last receipt;
//! * `scenarios`: scenarios 1–5 built from those parts, `scale_out`: scenario 6 on each
//!   channel-layer format, `hostile`: scenario 7, a room with a flooder and a stopped reader,
//!   `members`: scenario 8, many members on one process, and `big_room`: scenario 9;
//! * `cost`: `--instructions`, callgrind's instructions per delivered frame against the bare
//!   server;
//! * `report`: the table, the ratios and the machine-readable `RESULT` lines.

mod bare;
mod big_room;
mod connect;
mod cost;
mod hostile;
mod lasts;
mod load;
mod login;
mod members;
mod report;
mod scale_out;
mod scenarios;
mod servers;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Load generator for Whisper and the Python Channels app it replaces.
#[derive(Parser, Debug, Clone)]
#[command(name = "bench", version)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    /// Targets to measure (repeat or comma-separate); default all four.
    #[arg(long = "target", value_delimiter = ',')]
    pub targets: Vec<Target>,
    /// Scenarios to run (1–9; repeat or comma-separate); default all.
    #[arg(long = "scenario", value_delimiter = ',')]
    pub scenarios: Vec<u8>,
    /// Channel-layer formats of scenario 6 (repeat or comma-separate); default all three.
    #[arg(long = "layer", value_delimiter = ',')]
    pub layers: Vec<Layer>,
    /// Smaller sizes and shorter steps (a run of a few minutes).
    #[arg(long)]
    pub quick: bool,
    /// The Whisper release binary.
    #[arg(long, default_value = "target/release/whisper")]
    pub whisper: PathBuf,
    /// The compat/ Django project (its .venv must exist: compat/bootstrap.sh 5.2).
    #[arg(long, default_value = "compat")]
    pub compat: PathBuf,
    /// Redis for the channel layers and scenario 6; every run uses its own key/channel prefix.
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    pub redis_url: String,
    /// Clients in the one room of scenarios 1, 3, 5 and 6.
    #[arg(long)]
    pub clients: Option<usize>,
    /// Senders among them.
    #[arg(long)]
    pub senders: Option<usize>,
    /// Clients of scenario 2 (spread over `--rooms` rooms, one sender per room).
    #[arg(long)]
    pub many_clients: Option<usize>,
    #[arg(long)]
    pub rooms: Option<usize>,
    /// Sockets of scenario 4 for the Rust targets.
    #[arg(long)]
    pub sockets: Option<usize>,
    /// Sockets of scenario 4 for the Python targets (bounded by `--python-connect-limit`).
    #[arg(long)]
    pub python_sockets: Option<usize>,
    /// Deliveries/s of the fixed-rate latency run (scenarios 3 and 5).
    #[arg(long)]
    pub latency_rate: Option<u64>,
    /// Seconds of the fixed-rate latency run.
    #[arg(long)]
    pub latency_secs: Option<f64>,
    /// Concurrent logins of scenario 5.
    #[arg(long)]
    pub logins: Option<usize>,
    /// Users logged in through the login page per target (sockets share their sessions).
    #[arg(long)]
    pub users: Option<usize>,
    /// Seconds of each of scenario 7's two runs (clean, hostile).
    #[arg(long)]
    pub hostile_secs: Option<f64>,
    /// Members of scenario 8 (spread over `--member-rooms` rooms).
    #[arg(long)]
    pub members: Option<usize>,
    #[arg(long)]
    pub member_rooms: Option<usize>,
    /// Seconds scenario 8 measures the idle server's CPU.
    #[arg(long)]
    pub idle_secs: Option<f64>,
    /// Members of scenario 9's one room (`--instructions`: of its big room, default 2000).
    #[arg(long)]
    pub big_room: Option<usize>,
    /// Seconds each offered rate of a step-up lasts.
    #[arg(long)]
    pub step_secs: Option<f64>,
    /// First offered rate of a step-up, deliveries/s.
    #[arg(long)]
    pub start_rate: Option<u64>,
    /// Highest offered rate of a step-up, deliveries/s.
    #[arg(long)]
    pub max_rate: Option<u64>,
    /// A step of scenarios 1, 2 and 6 fails above this p99 latency (ms).
    #[arg(long, default_value_t = 100.0)]
    pub p99_limit_ms: f64,
    /// Seconds a Python target may spend connecting the sockets of one scenario.
    #[arg(long)]
    pub python_connect_limit: Option<f64>,
    /// Seconds a Rust target may spend connecting the members of scenario 8 (default 600) or
    /// the big room of scenario 9 (default 300): raise it where connects are slow (an emulated
    /// guest, `compat/vm/bench.sh`).
    #[arg(long)]
    pub connect_limit: Option<f64>,
    /// A command that wraps the Whisper server process, for profiling (split on spaces), e.g.
    /// `--whisper-wrap "valgrind --tool=callgrind --callgrind-out-file=/tmp/whisper.cg"`.
    #[arg(long)]
    pub whisper_wrap: Option<String>,
    /// Instead of the scenarios: Ir per delivered frame under callgrind for the local,
    /// big-room and Redis (`--layer`) paths, against the bare server (`cost`).
    #[arg(long)]
    pub instructions: bool,
    /// `--instructions`: messages sent while counting (default 200, `--quick` 50).
    #[arg(long)]
    pub messages: Option<u64>,
    /// `--instructions`: functions shown of the local path's profiles, by self cost.
    #[arg(long, default_value_t = 15)]
    pub top: usize,
    /// Keep the run directory (database, server logs) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}

impl Args {
    /// `--layer`, sorted and without repeats; all three formats when not given.
    pub fn layers(&self) -> Vec<Layer> {
        let mut layers = if self.layers.is_empty() {
            Layer::ALL.to_vec()
        } else {
            self.layers.clone()
        };
        layers.sort_unstable();
        layers.dedup();
        layers
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum Cmd {
    /// Runs the bare reference server on 127.0.0.1:PORT (used by the bench itself).
    ServeBare {
        port: u16,
        /// Send enter and leave notices, as Whisper does with
        /// `NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS` (scenario 8).
        #[arg(long)]
        notices: bool,
    },
}

/// How scenario 6's two Whisper processes talk over Redis.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// Whisper's own format (`REDIS_URL`).
    Own,
    /// `CHANNEL_LAYERS` with `channels_redis.pubsub.RedisPubSubChannelLayer`.
    Pubsub,
    /// `CHANNEL_LAYERS` with `channels_redis.core.RedisChannelLayer` (default `capacity`).
    Core,
}

impl Layer {
    pub const ALL: [Layer; 3] = [Layer::Own, Layer::Pubsub, Layer::Core];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Own => "own",
            Layer::Pubsub => "pubsub",
            Layer::Core => "core",
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Whisper,
    Uvicorn,
    Daphne,
    Bare,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::Whisper,
        Target::Uvicorn,
        Target::Daphne,
        Target::Bare,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Whisper => "whisper",
            Target::Uvicorn => "uvicorn+pubsub",
            Target::Daphne => "daphne+core",
            Target::Bare => "bare",
        }
    }

    pub fn is_python(self) -> bool {
        matches!(self, Target::Uvicorn | Target::Daphne)
    }
}

/// Every size of a run, from the flags, `--quick` and the defaults.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub clients: usize,
    pub senders: usize,
    pub many_clients: usize,
    pub rooms: usize,
    pub sockets: usize,
    pub python_sockets: usize,
    pub latency_rate: u64,
    pub latency_secs: f64,
    pub logins: usize,
    pub hostile_secs: f64,
    pub users: usize,
    pub members: usize,
    pub member_rooms: usize,
    pub idle_secs: f64,
    pub big_room: usize,
    pub step_secs: f64,
    pub start_rate: u64,
    pub max_rate: u64,
    pub python_connect_limit: f64,
    /// `--connect-limit`, when given.
    pub connect_limit: Option<f64>,
    pub p99_limit_ms: f64,
}

impl Sizes {
    fn from_args(a: &Args) -> Sizes {
        let q = a.quick;
        Sizes {
            clients: a.clients.unwrap_or(100),
            senders: a.senders.unwrap_or(10),
            many_clients: a.many_clients.unwrap_or(if q { 300 } else { 1000 }),
            rooms: a.rooms.unwrap_or(10),
            sockets: a.sockets.unwrap_or(if q { 2000 } else { 10_000 }),
            python_sockets: a.python_sockets.unwrap_or(if q { 200 } else { 10_000 }),
            latency_rate: a.latency_rate.unwrap_or(2000),
            latency_secs: a.latency_secs.unwrap_or(if q { 3.0 } else { 6.0 }),
            logins: a.logins.unwrap_or(50),
            hostile_secs: a.hostile_secs.unwrap_or(if q { 12.0 } else { 20.0 }),
            users: a.users.unwrap_or(if q { 4 } else { 10 }),
            members: a.members.unwrap_or(if q { 10_000 } else { 100_000 }),
            member_rooms: a.member_rooms.unwrap_or(if q { 100 } else { 1000 }),
            idle_secs: a.idle_secs.unwrap_or(if q { 10.0 } else { 60.0 }),
            big_room: a.big_room.unwrap_or(if q { 2_000 } else { 10_000 }),
            step_secs: a.step_secs.unwrap_or(if q { 1.0 } else { 2.0 }),
            start_rate: a.start_rate.unwrap_or(250),
            max_rate: a.max_rate.unwrap_or(8_000_000),
            python_connect_limit: a
                .python_connect_limit
                .unwrap_or(if q { 30.0 } else { 120.0 }),
            connect_limit: a.connect_limit,
            p99_limit_ms: a.p99_limit_ms,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Some(Cmd::ServeBare { port, notices }) = args.command {
        return match runtime.block_on(bare::serve(port, notices)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench serve-bare: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut sizes = Sizes::from_args(&args);
    if args.instructions {
        return cost::run(&args, &sizes).await;
    }
    let mut targets = if args.targets.is_empty() {
        Target::ALL.to_vec()
    } else {
        args.targets.clone()
    };
    targets.dedup();
    let mut wanted: Vec<u8> = if args.scenarios.is_empty() {
        (1..=9).collect()
    } else {
        args.scenarios.clone()
    };
    wanted.sort_unstable();
    wanted.dedup();
    if let Some(bad) = wanted.iter().find(|s| !(1..=9).contains(*s)) {
        anyhow::bail!("no scenario {bad} (there are 1 to 9)");
    }
    if !wanted.contains(&8) {
        sizes.member_rooms = 0;
    }
    // Scenario 8 holds a descriptor per member; the servers started from here inherit this.
    let (open_files, why) = members::raise_open_files();
    eprintln!(
        "bench: descriptor limit {open_files}{}",
        why.map(|w| format!(" ({w})")).unwrap_or_default()
    );
    let layers = args.layers();
    let run = setup::Run::prepare(&args, &sizes, &targets).await?;
    eprintln!(
        "bench: run directory {} (SQLite {}), Redis prefix {}",
        run.dir.display(),
        run.db_path.display(),
        run.prefix
    );
    let mut report = report::Report::new(sizes.clone());
    for &target in &targets {
        let outcome =
            scenarios::run_target(&run, &sizes, target, &wanted, &layers, &mut report).await;
        if let Err(e) = outcome {
            eprintln!("bench: {} failed: {e:#}", target.name());
            report.failed(target, &format!("{e:#}"));
        }
    }
    report.print();
    if !args.keep {
        run.cleanup().await;
    }
    if report.has_failures() {
        anyhow::bail!("some target failed to run (see the table)");
    }
    Ok(())
}
