//! Opening the bench's WebSockets: TCP from a chosen loopback source, the handshake with the
//! session cookie, the join and its ack, many at a time.
//!
//! Handshakes in flight are split into one shard per runtime thread, each a task of its own, so
//! the generator drives connections on every core it has: one task polling every handshake
//! kept it to one core (issue 12), and a connect rate measured that way says how fast the
//! generator is, not the server. The scenarios report the generator's CPU beside the server's.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::COOKIE;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

pub type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket to `/chat/stream/`, with the session cookie when the target has logins,
/// from the loopback `source` address when one is given (each source address has its own
/// ~28,000 ephemeral ports, so 100,000 sockets need several: 127.0.0.2, .3, …).
pub async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    cookie: Option<&str>,
    read_buffer: usize,
) -> anyhow::Result<Ws> {
    let stream = match source {
        None => TcpStream::connect(addr).await.context("TCP connect")?,
        Some(ip) => {
            let socket = TcpSocket::new_v4()?;
            no_port_at_bind(&socket);
            socket
                .bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("binding a source port on {ip}"))?;
            socket.connect(addr).await.context("TCP connect")?
        }
    };
    stream.set_nodelay(true)?;
    let mut request = format!("ws://{addr}/chat/stream/").into_client_request()?;
    if let Some(cookie) = cookie {
        request.headers_mut().insert(COOKIE, cookie.parse()?);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(0);
    let (ws, _) = client_async_with_config(request, stream, Some(config))
        .await
        .context("WebSocket handshake")?;
    Ok(ws)
}

/// `IP_BIND_ADDRESS_NO_PORT`: the kernel picks the source port at connect time, for the whole
/// 4-tuple, instead of at bind time, where finding a port no other socket of that address
/// holds gets slower with every socket bound (tens of thousands of sockets).
fn no_port_at_bind(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `on` for the length given; the descriptor is the socket's own.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Sends a join and waits for its ack (`{"join": …}`); an `{"error": …}` reply fails.
pub async fn join(ws: &mut Ws, room: i64) -> anyhow::Result<()> {
    ws.send(Message::text(format!(
        r#"{{"command": "join", "room": {room}}}"#
    )))
    .await?;
    while let Some(msg) = ws.next().await {
        if let Message::Text(text) = msg? {
            if text.starts_with(r#"{"join""#) {
                return Ok(());
            }
            if text.starts_with(r#"{"error""#) {
                bail!("join refused: {}", text.as_str());
            }
        }
    }
    bail!("socket closed before the join ack")
}

/// Where and how [`connect_many`] connects.
struct Plan {
    addrs: Vec<SocketAddr>,
    sources: Vec<IpAddr>,
    rooms: Vec<i64>,
    cookies: Vec<Option<String>>,
    read_buffer: usize,
}

impl Plan {
    /// Socket `i`: its server, source, cookie and room, round-robin.
    async fn open(&self, i: usize) -> anyhow::Result<Ws> {
        let source = (!self.sources.is_empty()).then(|| self.sources[i % self.sources.len()]);
        let cookie = self.cookies[i % self.cookies.len()].as_deref();
        let addr = self.addrs[i % self.addrs.len()];
        let mut ws = connect(addr, source, cookie, self.read_buffer).await?;
        join(&mut ws, self.rooms[i % self.rooms.len()]).await?;
        Ok(ws)
    }
}

/// Connects `count` sockets round-robin over `addrs` (from `sources`, round-robin, when given)
/// with cookies round-robin over `cookies`, `concurrency` handshakes at a time in all, each
/// joined to `rooms[i % rooms.len()]`. Returns them in order and the time it took. Fails if any
/// socket fails or `limit` passes first.
#[allow(clippy::too_many_arguments)]
pub async fn connect_many(
    addrs: &[SocketAddr],
    sources: &[IpAddr],
    rooms: &[i64],
    cookies: &[Option<String>],
    count: usize,
    read_buffer: usize,
    concurrency: usize,
    limit: Duration,
) -> anyhow::Result<(Vec<Ws>, Duration)> {
    let started = Instant::now();
    let plan = Arc::new(Plan {
        addrs: addrs.to_vec(),
        sources: sources.to_vec(),
        rooms: rooms.to_vec(),
        cookies: cookies.to_vec(),
        read_buffer,
    });
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shards = threads.min(concurrency.max(1)).min(count.max(1));
    let per_shard = (concurrency / shards).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for shard in 0..shards {
        let plan = plan.clone();
        tasks.spawn(async move {
            futures_util::stream::iter((shard..count).step_by(shards))
                .map(|i| {
                    let plan = plan.clone();
                    async move { (i, plan.open(i).await) }
                })
                .buffer_unordered(per_shard)
                .collect::<Vec<_>>()
                .await
        });
    }
    let gathered = async {
        let mut all = Vec::with_capacity(count);
        while let Some(shard) = tasks.join_next().await {
            all.extend(shard.context("a connecting task failed")?);
        }
        anyhow::Ok(all)
    };
    let mut results = match tokio::time::timeout(limit, gathered).await {
        Ok(results) => results?,
        Err(_) => bail!(
            "connecting {count} sockets took over {:.0} s",
            limit.as_secs_f64()
        ),
    };
    let took = started.elapsed();
    results.sort_unstable_by_key(|(i, _)| *i);
    let mut sockets = Vec::with_capacity(count);
    for (i, result) in results {
        sockets.push(result.with_context(|| format!("socket {i}"))?);
    }
    Ok((sockets, took))
}
