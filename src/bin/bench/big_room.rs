//! Scenario 9: one room of `big_room` members (10,000 at the defaults) with one sender,
//! searched like scenario 1 for the highest zero-loss rate, with the latency from each send to
//! the room's last receipt of it; and a small room (`clients / 10` members at
//! `latency_rate / 10` deliveries/s) measured alone and then beside the big room at that rate,
//! because fan-out to a big room must not hold up the other rooms.

use std::time::Duration;

use anyhow::Context;

use crate::load::{Layout, StepResult, Swarm};
use crate::report::Report;
use crate::scenarios::{BUSY_READ_BUFFER, on_own_server, step_up};
use crate::servers::Server;
use crate::setup::Run;
use crate::{Sizes, Target};

/// What scenario 9 measured on one target.
pub struct BigRoom {
    pub members: usize,
    /// The best zero-loss step (its `last` is the latency to the last member).
    pub best: Option<StepResult>,
    pub small_members: usize,
    pub small_alone: StepResult,
    /// The small room during a step of the big room at half its best rate (where this
    /// machine, which also runs the load generator, has cores to spare), then at the best.
    pub beside: Vec<Beside>,
}

pub struct Beside {
    pub big_rate: f64,
    pub small: StepResult,
    pub big: StepResult,
}

pub async fn big_room(
    run: &Run,
    sizes: &Sizes,
    target: Target,
    report: &mut Report,
) -> anyhow::Result<()> {
    let measured = on_own_server(run, target, &[], 9, report, async |server, cookies| {
        measure(run, sizes, server, cookies).await
    })
    .await?;
    if let Some(b) = measured {
        report.big_room(target, &b);
    }
    Ok(())
}

async fn measure(
    run: &Run,
    sizes: &Sizes,
    server: &Server,
    cookies: &[Option<String>],
) -> anyhow::Result<BigRoom> {
    let name = server.target.name();
    let connect_limit = if server.target.is_python() {
        Duration::from_secs_f64(sizes.python_connect_limit)
    } else {
        Duration::from_secs_f64(sizes.connect_limit.unwrap_or(300.0))
    };
    let layout = |room: i64, clients: usize, track_last: bool| Layout {
        addrs: vec![server.addr],
        sources: Vec::new(),
        rooms: vec![room],
        clients,
        senders: 1,
        cookies: cookies.to_vec(),
        read_buffer: BUSY_READ_BUFFER,
        concurrency: 256,
        connect_limit,
        track_last,
    };
    let small_members = (sizes.clients / 10).max(2);
    let small_rate = (sizes.latency_rate / 10).max(1) as f64;
    let secs = Duration::from_secs_f64(sizes.latency_secs);
    let drain = Duration::from_secs(5);
    let small_layout = layout(run.rooms[1], small_members, false);
    let (mut small, _) = Swarm::connect(&small_layout).await.context("small room")?;
    let small_alone = small.step(small_rate, secs, drain, None).await?;
    eprintln!(
        "bench: {name}: scenario 9: small room of {small_members} alone @{small_rate}/s: p99 {:.2} ms",
        small_alone.p(0.99)
    );

    let big_layout = layout(run.rooms[0], sizes.big_room, true);
    let (mut big, took) = Swarm::connect(&big_layout).await.context("big room")?;
    eprintln!(
        "bench: {name}: scenario 9: {} members joined one room in {:.1} s",
        sizes.big_room,
        took.as_secs_f64()
    );
    // One message is `big_room` deliveries: start where a step holds a few messages a
    // second, and allow the p99 that writing one message to every member takes.
    let search = Sizes {
        start_rate: sizes.start_rate.max(2 * sizes.big_room as u64),
        p99_limit_ms: sizes.p99_limit_ms.max(1000.0),
        ..sizes.clone()
    };
    let best = step_up(&mut big, &big_layout, &search, server.target, "9").await?;
    let mut beside = Vec::new();
    if let Some(best) = &best {
        for big_rate in [best.offered / 2.0, best.offered] {
            if big.damaged() {
                break;
            }
            big.settle(Duration::from_secs(10)).await;
            let (b, s) = tokio::join!(
                big.step(big_rate, secs, drain, None),
                small.step(small_rate, secs, drain, None)
            );
            let (big, small) = (b?, s?);
            eprintln!(
                "bench: {name}: scenario 9: beside the big room @{big_rate:.0}/s (lost {}): small room p99 {:.2} ms (alone {:.2} ms), lost {}",
                big.lost,
                small.p(0.99),
                small_alone.p(0.99),
                small.lost
            );
            beside.push(Beside {
                big_rate,
                small,
                big,
            });
        }
    }
    Ok(BigRoom {
        members: sizes.big_room,
        best,
        small_members,
        small_alone,
        beside,
    })
}
