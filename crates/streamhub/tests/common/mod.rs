//! One way to start the real server on port 0, and a raw Engine.IO v4 / Socket.IO v5 client
//! over a websocket (Rust Socket.IO client crates are dormant; the protocol is small).

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use streamhub::config::Config;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub struct Server {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
    /// Holds the database file; removed when the server is dropped.
    pub dir: tempfile::TempDir,
}

/// Starts `streamhub::run` on 127.0.0.1:0 with a fresh database and the defaults changed by
/// `tweak`.
pub async fn start(tweak: impl FnOnce(&mut Config)) -> Server {
    start_in(tempfile::tempdir().unwrap(), tweak).await
}

/// [`start`] on the database in `dir` (`streamhub.db`), e.g. one a stopped server left.
pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::defaults();
    config.db = dir.path().join("streamhub.db");
    tweak(&mut config);
    // The binary's own listener (backlog 4096), on a free port.
    let listener = streamhub::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(streamhub::run(config, listener, shutdown.clone()));
    Server {
        addr,
        shutdown,
        handle,
        dir,
    }
}

impl Server {
    /// Cancels the shutdown token and waits for `run` to return cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }

    /// Stops the server and hands back its database directory (for a restart on it).
    pub async fn stop_keeping_db(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
        self.dir
    }

    /// Polls the stats API until the stream has taken `n` frames (frames are handled in
    /// order on the streamer's connection, after the websocket write returns).
    pub async fn wait_frames_in(&self, key: &str, n: u64) {
        for _ in 0..100 {
            let (_, body) = http_get(self.addr, &format!("/api/streams/{key}")).await;
            if body["stats"]["framesIn"] == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("stream {key} never reached {n} frames");
    }
}

/// A Socket.IO event as received: name and arguments, binary attachments put back in place
/// as `{"$binary": [bytes...]}`.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: String,
    pub args: Vec<Value>,
    pub binaries: Vec<Vec<u8>>,
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

const TIMEOUT: Duration = Duration::from_secs(5);

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut c = Client { ws };
        let open = c.next_text().await;
        assert!(
            open.starts_with('0'),
            "expected an Engine.IO open packet, got {open}"
        );
        c.ws.send(Message::text("40")).await.unwrap();
        let ack = c.next_text().await;
        assert!(
            ack.starts_with("40"),
            "expected a Socket.IO connect ack, got {ack}"
        );
        c
    }

    async fn next_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(TIMEOUT, self.ws.next())
                .await
                .expect("timed out waiting for a message")
                .expect("connection closed")
                .unwrap();
            match msg {
                Message::Text(t) if t.as_str() == "2" => {
                    self.ws.send(Message::text("3")).await.unwrap();
                }
                Message::Text(t) => return t.to_string(),
                _ => {}
            }
        }
    }

    pub async fn emit(&mut self, event: &str, payload: Value) {
        let packet = format!("42{}", json!([event, payload]));
        self.ws.send(Message::text(packet)).await.unwrap();
    }

    /// Emits with one binary attachment standing for `payload[field]`.
    pub async fn emit_binary(
        &mut self,
        event: &str,
        mut payload: Value,
        field: &str,
        bin: Vec<u8>,
    ) {
        payload[field] = json!({"_placeholder": true, "num": 0});
        let packet = format!("451-{}", json!([event, payload]));
        self.ws.send(Message::text(packet)).await.unwrap();
        self.ws.send(Message::binary(bin)).await.unwrap();
    }

    /// The next event (any name).
    pub async fn next_event(&mut self) -> Received {
        loop {
            let text = self.next_text().await;
            if let Some(body) = text.strip_prefix("42") {
                let mut arr: Vec<Value> = serde_json::from_str(body).unwrap();
                let event = arr.remove(0).as_str().unwrap().to_owned();
                return Received {
                    event,
                    args: arr,
                    binaries: vec![],
                };
            }
            if let Some(rest) = text.strip_prefix("45") {
                let (count, body) = rest.split_once('-').unwrap();
                let count: usize = count.parse().unwrap();
                let mut arr: Vec<Value> = serde_json::from_str(body).unwrap();
                let event = arr.remove(0).as_str().unwrap().to_owned();
                let mut binaries = Vec::new();
                while binaries.len() < count {
                    let msg = tokio::time::timeout(TIMEOUT, self.ws.next())
                        .await
                        .unwrap()
                        .unwrap()
                        .unwrap();
                    if let Message::Binary(b) = msg {
                        binaries.push(b.to_vec());
                    }
                }
                return Received {
                    event,
                    args: arr,
                    binaries,
                };
            }
            // Ignore other packets (acks, noop).
        }
    }

    /// Skips events until one named `event` arrives.
    pub async fn wait_for(&mut self, event: &str) -> Received {
        loop {
            let r = self.next_event().await;
            if r.event == event {
                return r;
            }
        }
    }

    /// Connects a STREAMER and returns it with the key of the stream made for it.
    pub async fn streamer(addr: SocketAddr, name: &str) -> (Client, String) {
        let mut c = Client::connect(addr).await;
        c.register(name, "STREAMER").await;
        let created = c.wait_for("stream:created").await;
        let key = created.args[0]["stream"]["streamKey"]
            .as_str()
            .unwrap()
            .to_owned();
        (c, key)
    }

    /// Registers and returns the `user:registered` payload.
    pub async fn register(&mut self, name: &str, role: &str) -> Value {
        self.emit("user:register", json!({"username": name, "role": role}))
            .await;
        self.wait_for("user:registered").await.args[0].clone()
    }
}

/// A plain HTTP/1.1 GET, enough for our JSON API.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}
