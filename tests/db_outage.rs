//! A database that goes away: Whisper on PostgreSQL behind a TCP proxy the test can cut.
//! While the database is unreachable pages answer 503, handshakes are refused with 503, open
//! sockets answer `SERVICE_UNAVAILABLE` and stay open; when it returns, service resumes.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards connections from a local port to PostgreSQL until switched off; switching off
/// closes the listener (new connections are refused) and cuts every open connection.
struct Proxy {
    addr: SocketAddr,
    on: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (on, _) = watch::channel(true);
        let proxy = Arc::new(Proxy { addr, on });
        let p = proxy.clone();
        tokio::spawn(async move {
            let mut listener = Some(listener);
            let mut state = p.on.subscribe();
            loop {
                match listener.take() {
                    Some(l) => {
                        tokio::select! {
                            accepted = l.accept() => {
                                if let Ok((client, _)) = accepted {
                                    tokio::spawn(pipe(client, target, p.on.subscribe()));
                                }
                                listener = Some(l);
                            }
                            _ = state.changed() => {
                                // Off: drop the listener so new connections are refused.
                                if *state.borrow() { listener = Some(l); }
                            }
                        }
                    }
                    None => {
                        if state.changed().await.is_err() {
                            return;
                        }
                        if *state.borrow() {
                            listener = Some(TcpListener::bind(addr).await.unwrap());
                        }
                    }
                }
            }
        });
        proxy
    }

    fn set(&self, on: bool) {
        self.on.send_replace(on);
    }
}

async fn pipe(mut client: TcpStream, target: SocketAddr, mut state: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = async { while state.changed().await.is_ok() { if !*state.borrow() { break; } } } => {}
    }
}

async fn index_status(client: &reqwest::Client, server: &TestServer, session: &str) -> u16 {
    client
        .get(server.url("/"))
        .header("cookie", format!("sessionid={session}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls `check` every 100 ms for up to 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_503_and_service_resumes() {
    let db = common::pg::PgDatabase::create("outage", common::pg::Locale::C).await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = format!("postgres://postgres@{}/{}", proxy.addr, db.name());
    let server = TestServer::start_with(&[("DATABASE_URL", &url), ("DATABASE_TIMEOUT", "1")]).await;
    let user = server.create_user("dana", false).await;
    let room = server.create_room("Lobby", false).await;
    let session = server.session_for(user).await;
    let client = reqwest::Client::new();
    assert_eq!(index_status(&client, &server, &session).await, 200);
    let mut open = server.ws(Some(&session), None).await.expect("handshake");
    assert_eq!(
        open.call(&join(&format!("\"{room}\""))).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );

    proxy.set(false);
    // Pages and handshakes: 503 while the database is away (never a panic or a hang).
    eventually("index answers 503", || async {
        index_status(&client, &server, &session).await == 503
    })
    .await;
    let refused = server
        .ws(Some(&session), None)
        .await
        .err()
        .expect("handshake refused");
    assert_eq!(handshake_status(&refused), Some(503));
    // An open socket answers commands that need the database and stays open.
    assert_eq!(
        open.call(&send(&format!("\"{room}\""), "\"hi\"")).await,
        r#"{"error": "SERVICE_UNAVAILABLE"}"#
    );
    assert_eq!(
        open.call(&join(&format!("\"{room}\""))).await,
        r#"{"error": "SERVICE_UNAVAILABLE"}"#
    );

    proxy.set(true);
    eventually("index answers 200 again", || async {
        index_status(&client, &server, &session).await == 200
    })
    .await;
    assert_eq!(
        open.call(&send(&format!("\"{room}\""), "\"back\"")).await,
        format!(r#"{{"msg_type": 0, "room": "{room}", "username": "dana", "message": "back"}}"#)
    );
    let mut fresh = server
        .ws(Some(&session), None)
        .await
        .expect("handshake after recovery");
    assert_eq!(
        fresh.call(&join(&format!("\"{room}\""))).await,
        format!(r#"{{"join": "{room}", "title": "Lobby"}}"#)
    );
    server.stop().await;
}
