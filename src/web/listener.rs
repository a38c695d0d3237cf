//! The accept loop: hyper's HTTP/1.1 with a header-read deadline, connection limits (in all
//! and per client address) and a shutdown bounded by `SHUTDOWN_TIMEOUT` (issue 10, SECURITY.md).
//!
//! * `HTTP_HEADER_READ_TIMEOUT`: hyper's timer runs from the moment a connection waits for a
//!   request until its headers are complete, so it bounds a slow sender of headers and an idle
//!   keep-alive connection alike.
//! * `HTTP_MAX_CONNECTIONS` / `HTTP_MAX_CONNECTIONS_PER_ADDRESS`: a connection over either is
//!   accepted and closed at once. An upgraded WebSocket counts until its TCP connection closes:
//!   the count travels with the stream.
//! * Shutdown: the listener closes, idle connections close, requests in flight may finish, and
//!   whatever is still open at `SHUTDOWN_TIMEOUT` is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::Limits;

/// Connections the kernel holds for the accept loop. `TcpListener::bind` asks for 128, and a
/// connect storm of a few hundred at once overflowed it: each connection dropped there waits
/// a second for its SYN to be sent again (issue 12: 126 of 10,000 in a run, a second added to
/// every such run). 2,048 is uvicorn's default; the kernel caps it at `net.core.somaxconn`.
pub const BACKLOG: u32 = 2048;

/// Listens on the first of `addr`'s addresses that binds, with [`BACKLOG`] (and, as
/// `TcpListener::bind` does, `SO_REUSEADDR`).
pub async fn bind(addr: impl tokio::net::ToSocketAddrs) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")))
}

/// What the accept loop enforces.
#[derive(Clone, Copy, Debug)]
pub struct ListenLimits {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub header_read_timeout: Duration,
}

impl ListenLimits {
    pub fn of(limits: &Limits) -> Self {
        ListenLimits {
            max_connections: limits.http_max_connections,
            max_connections_per_address: limits.http_max_connections_per_address,
            header_read_timeout: limits.http_header_read_timeout,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then gives in-flight requests
/// `shutdown_timeout` to finish. Returns that deadline, which open WebSockets share. Each
/// request carries its client address (`ConnectInfo<SocketAddr>`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenLimits,
    shutdown: impl Future<Output = ()>,
    shutdown_timeout: Duration,
) -> Instant {
    let counts = Counts::new(limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            // Finished connections are reaped as they end. Reaped only at the next accept, a
            // crowd that left kept every connection's task (a few KiB each) until someone
            // else came: none of 10,000 closed sockets' memory went back (issue 12).
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(admission) = counts.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: HTTP_MAX_CONNECTIONS(_PER_ADDRESS)");
            continue;
        };
        // Small chat frames must leave at once: without TCP_NODELAY a write that follows an
        // unacknowledged one waits for the peer's delayed ACK (up to 40 ms; BENCHMARKS.md).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let io = TokioIo::new(Counted {
            stream,
            _admission: admission,
        });
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder.serve_connection(io, service).with_upgrades();
            tokio::pin!(conn);
            let done = tokio::select! {
                done = conn.as_mut() => done,
                _ = async { let _ = stop.wait_for(|stopped| *stopped).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = done {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    let deadline = Instant::now() + shutdown_timeout;
    let _ = stop_tx.send(true);
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout_at(deadline, drained).await.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "HTTP connections still open at SHUTDOWN_TIMEOUT: dropped"
        );
        tasks.abort_all();
    }
    deadline
}

/// Open connections, in all and per address.
#[derive(Clone)]
struct Counts {
    limits: ListenLimits,
    inner: Arc<Mutex<CountsInner>>,
}

#[derive(Default)]
struct CountsInner {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl Counts {
    fn new(limits: ListenLimits) -> Self {
        Counts {
            limits,
            inner: Arc::default(),
        }
    }

    fn admit(&self, ip: IpAddr) -> Option<Admission> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mine = inner.per_address.get(&ip).copied().unwrap_or(0);
        if inner.total >= self.limits.max_connections
            || mine >= self.limits.max_connections_per_address
        {
            return None;
        }
        inner.total += 1;
        inner.per_address.insert(ip, mine + 1);
        Some(Admission {
            counts: self.clone(),
            ip,
        })
    }
}

/// One counted connection; dropping it gives the slot back.
struct Admission {
    counts: Counts,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut inner = self.counts.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.total -= 1;
        if let Some(n) = inner.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                inner.per_address.remove(&self.ip);
            }
        }
    }
}

/// A TCP stream that holds its connection slot, through a WebSocket upgrade too.
pub struct Counted {
    stream: TcpStream,
    _admission: Admission,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_address_and_given_back() {
        let counts = Counts::new(ListenLimits {
            max_connections: 3,
            max_connections_per_address: 2,
            header_read_timeout: Duration::from_secs(1),
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = counts.admit(a).unwrap();
        let _a2 = counts.admit(a).unwrap();
        assert!(counts.admit(a).is_none(), "per address");
        let _b1 = counts.admit(b).unwrap();
        assert!(counts.admit(b).is_none(), "in all");
        drop(a1);
        assert!(counts.admit(b).is_some(), "a slot came back");
    }
}
