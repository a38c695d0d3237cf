//! Scenario 6: two Whisper processes sharing one room over Redis, half the clients and senders
//! on each, searched like scenario 1, once per channel-layer format: Whisper's own
//! (`REDIS_URL`), channels_redis' pub/sub and core (`CHANNEL_LAYERS`, default `capacity`).
//! Both processes' loss counters (`/healthz`) come with each result, and on the core layer the
//! peak length of a process queue (`ZCARD`, sampled every 5 ms).

use std::time::Duration;

use crate::load::{Layout, Swarm};
use crate::login::login_all;
use crate::report::Report;
use crate::scenarios::{BUSY_READ_BUFFER, step_up};
use crate::servers::{Server, healthz};
use crate::setup::{PASSWORD, Run};
use crate::{Layer, Sizes, Target};

/// Scenario 6: two Whisper processes sharing rooms over Redis in one channel-layer format,
/// half the clients on each.
pub async fn two_processes(
    run: &Run,
    sizes: &Sizes,
    layer: Layer,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (prefix, env) = layer_env(run, layer);
    let tag = format!("whisper-redis-{}", layer.name());
    let a = Server::start(run, Target::Whisper, &env, &format!("{tag}-a")).await?;
    let b = Server::start(run, Target::Whisper, &env, &format!("{tag}-b")).await?;
    let result = async {
        let cookies = login_all(&a.base_url(), &run.users, PASSWORD).await?;
        let layout = Layout {
            addrs: vec![a.addr, b.addr],
            sources: Vec::new(),
            rooms: vec![run.rooms[0]],
            clients: sizes.clients,
            senders: sizes.senders,
            cookies: cookies.into_iter().map(Some).collect(),
            read_buffer: BUSY_READ_BUFFER,
            concurrency: 64,
            connect_limit: Duration::from_secs(60),
            track_last: false,
        };
        let (mut swarm, _) = Swarm::connect(&layout).await?;
        // Let both processes' Redis subscriptions settle before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let peak = QueuePeak::start(&run.redis_url, &prefix, layer == Layer::Core).await?;
        let label = format!("6 ({})", layer.name());
        let best = step_up(&mut swarm, &layout, sizes, Target::Whisper, &label).await;
        let peak = peak.stop().await;
        let mut counters = LayerCounters::default();
        for server in [&a, &b] {
            counters.add(&healthz(&server.base_url()).await?);
        }
        counters.peak_queue = peak;
        Ok::<_, anyhow::Error>((best?, counters))
    }
    .await;
    a.stop().await;
    b.stop().await;
    let (best, counters) = result?;
    report.two_processes(layer, best, &counters);
    Ok(())
}

/// The Redis key/channel prefix of `layer`'s run and the environment that selects it.
pub fn layer_env(run: &Run, layer: Layer) -> (String, Vec<(&'static str, String)>) {
    let prefix = format!("{}{}-", run.prefix, layer.name());
    let backend = match layer {
        Layer::Own => None,
        Layer::Pubsub => Some("channels_redis.pubsub.RedisPubSubChannelLayer"),
        Layer::Core => Some("channels_redis.core.RedisChannelLayer"),
    };
    let env = match backend {
        None => vec![
            ("REDIS_URL", run.redis_url.clone()),
            ("REDIS_PREFIX", prefix.clone()),
        ],
        Some(backend) => vec![(
            "CHANNEL_LAYERS",
            serde_json::json!({"default": {"BACKEND": backend,
                "CONFIG": {"hosts": [run.redis_url], "prefix": prefix}}})
            .to_string(),
        )],
    };
    (prefix, env)
}

/// Both processes' `/healthz` loss counters after scenario 6, and the core layer's peak queue.
#[derive(Default, Debug)]
pub struct LayerCounters {
    pub publish_failures: u64,
    pub over_capacity: u64,
    /// Largest `ZCARD` of a process queue seen (sampled every `QueuePeak::EVERY`).
    pub peak_queue: Option<u64>,
}

impl LayerCounters {
    fn add(&mut self, health: &serde_json::Value) {
        let c = &health["redis_counters"];
        self.publish_failures += c["publish_failures"].as_u64().unwrap_or(0);
        self.over_capacity += c["over_capacity"].as_u64().unwrap_or(0);
    }
}

/// Samples the largest process queue (`prefix + "specific.*"`, the core layer's) while a
/// scenario runs.
struct QueuePeak {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<u64>>,
}

impl QueuePeak {
    const EVERY: Duration = Duration::from_millis(5);
    const SCRIPT: &str = "local m = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
        local n = redis.call('ZCARD', k) if n > m then m = n end end return m";

    async fn start(url: &str, prefix: &str, enabled: bool) -> anyhow::Result<QueuePeak> {
        if !enabled {
            return Ok(QueuePeak {
                stop: None,
                task: None,
            });
        }
        let mut conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let pattern = format!("{prefix}specific.*");
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            loop {
                let n: u64 = redis::cmd("EVAL")
                    .arg(Self::SCRIPT)
                    .arg(0)
                    .arg(&pattern)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or(0);
                peak = peak.max(n);
                tokio::select! {
                    _ = tokio::time::sleep(Self::EVERY) => {}
                    _ = &mut stopped => return peak,
                }
            }
        });
        Ok(QueuePeak {
            stop: Some(stop),
            task: Some(task),
        })
    }

    async fn stop(mut self) -> Option<u64> {
        let _ = self.stop.take()?.send(());
        self.task.take()?.await.ok()
    }
}
