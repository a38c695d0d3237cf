//! The lockstep comparison machinery: what a socket produced next (`Got`), the bookkeeping of
//! comparisons and mismatches (`Check`), a socket pair driven on both servers (`Duo`) and the
//! protocol frames the scenarios send and expect.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::common::{Ws, handshake_status};

/// How long to wait for a frame that must come.
pub(crate) const WAIT: Duration = Duration::from_secs(5);
/// How long a socket must stay quiet where nothing is expected.
pub(crate) const QUIET_MS: u64 = 300;
/// How long to wait for the original's crash close: the dying application first waits for its
/// pending channel-layer read (a Redis blocking pop) to give up, which takes up to ~5 s.
pub(crate) const CRASH_WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// What a socket produced next.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Got {
    Text(String),
    Close(u16),
    Silent,
    Ended,
    Error(String),
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Text(t) => write!(f, "{t}"),
            Got::Close(c) => write!(f, "<close {c}>"),
            Got::Silent => write!(f, "<nothing>"),
            Got::Ended => write!(f, "<stream ended without close>"),
            Got::Error(e) => write!(f, "<error {e}>"),
        }
    }
}

pub(crate) fn text(s: &str) -> Got {
    Got::Text(s.to_string())
}

pub(crate) async fn next(ws: &mut Ws, wait: Duration) -> Got {
    loop {
        match tokio::time::timeout(wait, ws.stream.next()).await {
            Err(_) => return Got::Silent,
            Ok(None) => return Got::Ended,
            Ok(Some(Err(e))) => return Got::Error(e.to_string()),
            Ok(Some(Ok(msg))) => match msg {
                Message::Text(t) => return Got::Text(t.as_str().to_string()),
                Message::Close(Some(CloseFrame { code, .. })) => return Got::Close(code.into()),
                Message::Close(None) => return Got::Close(1005),
                Message::Binary(b) => return Got::Error(format!("binary frame {b:?}")),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            },
        }
    }
}

pub(crate) async fn open(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, u16> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((stream, _)) => Ok(Ws { stream }),
        Err(e) => Err(handshake_status(&e).unwrap_or_else(|| panic!("handshake failed: {e}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping: comparisons made and mismatches found.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub(crate) struct Check {
    pub(crate) scenario: String,
    /// Steps where both servers had to emit the same bytes.
    pub(crate) same: usize,
    /// Steps where Python's output was also checked against the spec's literal bytes.
    pub(crate) literal: usize,
    /// Rows of the documented differences (Python crash/ignore vs Whisper's reply).
    pub(crate) documented: usize,
    pub(crate) per_scenario: Vec<(String, usize, usize)>,
    pub(crate) failures: Vec<String>,
}

impl Check {
    pub(crate) fn begin(&mut self, name: &str) {
        self.scenario = name.to_string();
        self.per_scenario.push((name.to_string(), 0, 0));
    }

    pub(crate) fn fail(&mut self, msg: String) {
        eprintln!("MISMATCH [{}] {msg}", self.scenario);
        self.failures.push(format!("[{}] {msg}", self.scenario));
    }

    pub(crate) fn same(&mut self, step: &str, py: &Got, rs: &Got) {
        self.same += 1;
        self.per_scenario.last_mut().unwrap().1 += 1;
        if py != rs {
            self.fail(format!("{step}\n    python:  {py}\n    whisper: {rs}"));
        }
    }

    pub(crate) fn literal(&mut self, step: &str, py: &Got, want: &Got) {
        self.literal += 1;
        if py != want {
            self.fail(format!(
                "{step}: Python differs from the spec\n    python: {py}\n    spec:   {want}"
            ));
        }
    }

    pub(crate) fn documented(
        &mut self,
        step: &str,
        py: &Got,
        py_want: &Got,
        rs: &Got,
        rs_want: &Got,
    ) {
        self.documented += 1;
        self.per_scenario.last_mut().unwrap().2 += 1;
        if py != py_want || rs != rs_want {
            self.fail(format!(
                "{step} (documented difference)\n    python:  {py} (expected {py_want})\n    \
                 whisper: {rs} (expected {rs_want})"
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A socket pair: the same user on both servers, driven in lockstep.
// ---------------------------------------------------------------------------------------------

pub(crate) struct Duo {
    pub(crate) name: String,
    pub(crate) py: Ws,
    pub(crate) rs: Ws,
}

impl Duo {
    pub(crate) async fn send(&mut self, frame: &str) {
        let (a, b) = tokio::join!(
            self.py.stream.send(Message::text(frame)),
            self.rs.stream.send(Message::text(frame))
        );
        a.expect("send to python");
        b.expect("send to whisper");
    }

    pub(crate) async fn next_both(&mut self, wait: Duration) -> (Got, Got) {
        tokio::join!(next(&mut self.py, wait), next(&mut self.rs, wait))
    }

    /// The next frame of both servers must be the same (and `want`, if given).
    pub(crate) async fn recv(&mut self, ck: &mut Check, want: Option<&str>) -> Got {
        let (py, rs) = self.next_both(WAIT).await;
        let step = format!("{} <- next frame", self.name);
        if let Some(want) = want {
            ck.literal(&step, &py, &text(want));
        }
        ck.same(&step, &py, &rs);
        py
    }

    pub(crate) async fn call(&mut self, ck: &mut Check, frame: &str, want: Option<&str>) -> Got {
        self.send(frame).await;
        let (py, rs) = self.next_both(WAIT).await;
        let step = format!("{} -> {frame}", self.name);
        if let Some(want) = want {
            ck.literal(&step, &py, &text(want));
        }
        ck.same(&step, &py, &rs);
        py
    }

    /// `n` frames whose order between themselves is not defined (Python set order).
    pub(crate) async fn recv_unordered(&mut self, ck: &mut Check, n: usize) {
        let mut py = Vec::new();
        let mut rs = Vec::new();
        for _ in 0..n {
            let (a, b) = self.next_both(WAIT).await;
            py.push(a);
            rs.push(b);
        }
        py.sort();
        rs.sort();
        let step = format!("{} <- {n} frames in any order", self.name);
        ck.same(
            &step,
            &Got::Text(join_lines(&py)),
            &Got::Text(join_lines(&rs)),
        );
    }

    pub(crate) async fn silence(&mut self, ck: &mut Check) {
        let (py, rs) = self.next_both(Duration::from_millis(QUIET_MS)).await;
        let step = format!("{} <- nothing more", self.name);
        ck.literal(&step, &py, &Got::Silent);
        ck.same(&step, &py, &rs);
    }

    /// A row where the original crashes: Python must close 1011, Whisper must answer `rs_want`.
    pub(crate) async fn crash(&mut self, ck: &mut Check, frame: Option<&str>, rs_want: Got) {
        match frame {
            Some(f) => self.send(f).await,
            None => {
                let bin = br#"{"command": "join", "room": "1"}"#.to_vec();
                self.py
                    .stream
                    .send(Message::binary(bin.clone()))
                    .await
                    .unwrap();
                self.rs.stream.send(Message::binary(bin)).await.unwrap();
            }
        }
        let (py, rs) = tokio::join!(next(&mut self.py, CRASH_WAIT), next(&mut self.rs, WAIT));
        let step = format!("{} -> {}", self.name, frame.unwrap_or("<binary frame>"));
        ck.documented(&step, &py, &Got::Close(1011), &rs, &rs_want);
    }

    /// A row the original ignores: Python stays silent, Whisper answers `UNKNOWN_COMMAND`.
    pub(crate) async fn ignored(&mut self, ck: &mut Check, frame: &str) {
        self.send(frame).await;
        let (py, rs) = self.next_both(Duration::from_millis(QUIET_MS)).await;
        let step = format!("{} -> {frame}", self.name);
        ck.documented(
            &step,
            &py,
            &Got::Silent,
            &rs,
            &text(&err("UNKNOWN_COMMAND")),
        );
    }

    pub(crate) async fn close(mut self, code: u16) {
        for ws in [&mut self.py, &mut self.rs] {
            let _ = ws
                .stream
                .close(Some(CloseFrame {
                    code: code.into(),
                    reason: "bye".into(),
                }))
                .await;
        }
        tokio::join!(drain(&mut self.py), drain(&mut self.rs));
    }
}

/// Reads until the server answers the close (or gives up after [`WAIT`]).
pub(crate) async fn drain(ws: &mut Ws) {
    let _ = tokio::time::timeout(WAIT, async { while ws.stream.next().await.is_some() {} }).await;
}

pub(crate) fn join_lines(v: &[Got]) -> String {
    v.iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

pub(crate) fn err(code: &str) -> String {
    format!(r#"{{"error": "{code}"}}"#)
}

pub(crate) fn join(room: &str) -> String {
    format!(r#"{{"command": "join", "room": {room}}}"#)
}

pub(crate) fn leave(room: &str) -> String {
    format!(r#"{{"command": "leave", "room": {room}}}"#)
}

pub(crate) fn send(room: &str, message: &str) -> String {
    format!(r#"{{"command": "send", "room": {room}, "message": {message}}}"#)
}

pub(crate) fn ack_join(id: i64, title: &str) -> String {
    format!(r#"{{"join": "{id}", "title": "{title}"}}"#)
}

pub(crate) fn ack_leave(id: i64) -> String {
    format!(r#"{{"leave": "{id}"}}"#)
}

pub(crate) fn enter(room: &str, user: &str) -> String {
    format!(r#"{{"msg_type": 4, "room": {room}, "username": "{user}"}}"#)
}

pub(crate) fn left(room: &str, user: &str) -> String {
    format!(r#"{{"msg_type": 5, "room": {room}, "username": "{user}"}}"#)
}

pub(crate) fn chat(room: &str, user: &str, message: &str) -> String {
    format!(r#"{{"msg_type": 0, "room": {room}, "username": "{user}", "message": {message}}}"#)
}
