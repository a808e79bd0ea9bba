//! A TCP proxy on loopback that adds a one-way delay to every chunk in both directions
//! (a WAN between a Lambda and PostgreSQL or an API server, TLS passing through) and
//! records each connection's round trips: a round trip starts when the client speaks
//! after the server did (or first) and ends with the last server chunk before the
//! client speaks again, or the last so far on a connection kept open. A client flight that the client hangs up after, before any
//! answer (PostgreSQL's `Terminate`, TLS `close_notify`), is no round trip: nobody
//! waited for it. Chunks keep their order and are delivered at arrival + delay, so the
//! delay is latency, not a bandwidth limit; [`hold_until`] keeps it to the delay asked.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One round trip on one connection, as the proxy saw it.
#[derive(Debug, Clone, Copy)]
pub struct RoundTrip {
    pub connection: usize,
    pub start: Instant,
    pub end: Instant,
}

#[derive(Default)]
struct Record {
    connections: usize,
    trips: Vec<RoundTrip>,
    /// Each connection's round trip in progress, once the server has answered it: a
    /// kept-alive connection's last one stays here until the client speaks again.
    answered: std::collections::BTreeMap<usize, RoundTrip>,
}

/// A running proxy; it stops when dropped.
pub struct TcpProxy {
    /// `127.0.0.1:<port>`.
    pub addr: std::net::SocketAddr,
    record: Arc<Mutex<Record>>,
    relays: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpProxy {
    /// Listens on a free loopback port and relays each connection to `upstream`
    /// (`host:port`), each chunk `one_way` later in both directions.
    pub async fn start(upstream: &str, one_way: Duration) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let record = Arc::new(Mutex::new(Record::default()));
        let (upstream, shared) = (upstream.to_string(), record.clone());
        let relays = Arc::new(Mutex::new(Vec::<tokio::task::AbortHandle>::new()));
        let started = relays.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                // As the real ends do (PostgreSQL, Go's and Rust's HTTP stacks): without
                // it, Nagle holds a second chunk until the first is acknowledged.
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let connection = {
                    let mut r = shared.lock().unwrap();
                    r.connections += 1;
                    r.connections
                };
                let relay =
                    tokio::spawn(relay(client, server, one_way, connection, shared.clone()));
                let mut open = started.lock().unwrap();
                open.retain(|relay| !relay.is_finished());
                open.push(relay.abort_handle());
            }
        });
        Ok(TcpProxy {
            addr,
            record,
            relays,
            task,
        })
    }

    /// Hangs up every connection open now, both ways (as a server's timeout or a dropped
    /// network path would); new connections are relayed as before.
    pub fn sever(&self) {
        for relay in self.relays.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    /// Connections accepted so far (each one a TCP handshake, and a TLS one above it).
    pub fn connections(&self) -> usize {
        self.record.lock().unwrap().connections
    }

    /// Every round trip so far, in order of start: the finished ones and those answered
    /// so far on connections whose client has not spoken again.
    pub fn round_trips(&self) -> Vec<RoundTrip> {
        let record = self.record.lock().unwrap();
        let mut trips = record.trips.clone();
        trips.extend(record.answered.values().copied());
        trips.sort_by_key(|t| t.start);
        trips
    }
}

/// Which side spoke last on a connection, and the round trip in progress.
#[derive(Default)]
struct Turn {
    server_spoke: bool,
    open: Option<RoundTrip>,
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    one_way: Duration,
    connection: usize,
    record: Arc<Mutex<Record>>,
) {
    let turn = Arc::new(Mutex::new(Turn::default()));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let hung_up = {
        let turn = turn.clone();
        move || {
            let mut t = turn.lock().unwrap();
            if !t.server_spoke {
                t.open = None;
            }
        }
    };
    let upstream = pump(client_read, server_write, one_way, hung_up, {
        let (turn, record) = (turn.clone(), record.clone());
        move |now| {
            let mut t = turn.lock().unwrap();
            if t.server_spoke || t.open.is_none() {
                if let Some(done) = t.open.take() {
                    let mut r = record.lock().unwrap();
                    r.answered.remove(&connection);
                    r.trips.push(done);
                }
                t.open = Some(RoundTrip {
                    connection,
                    start: now,
                    end: now,
                });
                t.server_spoke = false;
            }
        }
    });
    let downstream = pump(server_read, client_write, one_way, || {}, {
        let (turn, record) = (turn.clone(), record.clone());
        move |now| {
            let mut t = turn.lock().unwrap();
            t.server_spoke = true;
            if let Some(open) = t.open.as_mut() {
                open.end = now;
                record.lock().unwrap().answered.insert(connection, *open);
            }
        }
    });
    tokio::join!(upstream, downstream);
    let done = turn.lock().unwrap().open.take();
    let mut r = record.lock().unwrap();
    r.answered.remove(&connection);
    r.trips.extend(done);
}

/// Copies `from` to `to`, delivering each chunk `delay` after it arrived; `seen` is told
/// when each chunk arrives, `closed` when `from` hangs up.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    closed: impl FnOnce() + Send,
    mut seen: impl FnMut(Instant) + Send,
) {
    let (send, mut receive) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, bytes)) = receive.recv().await {
            hold_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                closed();
                break;
            }
            Ok(n) => {
                let now = Instant::now();
                seen(now);
                if send.send((now + delay, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(send);
    let _ = writer.await;
}

/// Waits until `due`, to within a tenth of a millisecond or so. Tokio's timer fires on
/// its millisecond tick after the deadline (a 10 ms sleep took 11.1 ms on average here),
/// which would add about 2 ms to every modelled round trip; a blocking thread's sleep
/// (`nanosleep`) took 10.2 ms.
pub async fn hold_until(due: Instant) {
    let rest = due.saturating_duration_since(Instant::now());
    if rest.is_zero() {
        return;
    }
    if tokio::task::spawn_blocking(move || std::thread::sleep(rest))
        .await
        .is_err()
    {
        // The runtime is going away; a coarser wait is good enough then.
        tokio::time::sleep_until(due.into()).await;
    }
}

/// The critical path of a run: the longest chain of spans (round trips or calls, from
/// any number of proxies) in which each one started only after the one before it ended,
/// i.e. the number of waits a caller could not overlap. Concurrent spans count once.
pub fn critical_path(spans: impl IntoIterator<Item = (Instant, Instant)>) -> usize {
    let mut spans: Vec<(Instant, Instant)> = spans.into_iter().collect();
    spans.sort_by_key(|&(_, end)| end);
    // best[i]: the longest chain ending with spans[i]; prefix[i]: the best of 0..=i.
    let mut prefix: Vec<usize> = Vec::with_capacity(spans.len());
    for i in 0..spans.len() {
        let start = spans[i].0;
        let before = spans[..i].partition_point(|&(_, end)| end <= start);
        let best = 1 + if before == 0 { 0 } else { prefix[before - 1] };
        prefix.push(prefix.last().copied().unwrap_or(0).max(best));
    }
    prefix.last().copied().unwrap_or(0)
}

impl RoundTrip {
    /// The round trip as a span for [`critical_path`].
    pub fn span(&self) -> (Instant, Instant) {
        (self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_critical_path_counts_waits_in_a_chain_and_overlaps_once() {
        let t0 = Instant::now();
        let at = |a: u64, b: u64| (t0 + Duration::from_millis(a), t0 + Duration::from_millis(b));
        assert_eq!(critical_path([]), 0);
        // Three in a row.
        assert_eq!(critical_path([at(0, 10), at(12, 20), at(25, 30)]), 3);
        // Three at once, then one after them all.
        assert_eq!(
            critical_path([at(0, 10), at(1, 11), at(2, 9), at(15, 20)]),
            2
        );
        // A long call beside a chain of two short ones: the chain is longer.
        assert_eq!(critical_path([at(0, 30), at(0, 10), at(11, 20)]), 2);
        // Order of input does not matter.
        assert_eq!(critical_path([at(25, 30), at(0, 10), at(12, 20)]), 3);
    }

    /// Two exchanges the client waits for (the last one counted before the client speaks
    /// again), then a goodbye it does not wait for.
    #[tokio::test]
    async fn a_round_trip_is_an_answered_flight_and_a_hang_up_is_none() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut socket, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 64];
            while let Ok(n) = socket.read(&mut buf).await {
                if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let proxy = TcpProxy::start(&upstream, Duration::from_millis(5))
            .await
            .unwrap();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        let mut answer = [0u8; 4];
        for message in [b"ping", b"pong"] {
            client.write_all(message).await.unwrap();
            client.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, message);
        }
        // The second exchange was answered: it counts while the connection stays open.
        assert_eq!(proxy.round_trips().len(), 2);
        client.write_all(b"bye!").await.unwrap();
        client.shutdown().await.unwrap();
        drop(client);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let trips = proxy.round_trips();
        assert_eq!(trips.len(), 2, "{trips:?}");
        assert!(
            trips
                .iter()
                .all(|t| t.end - t.start >= Duration::from_millis(5))
        );
        assert_eq!(proxy.connections(), 1);
    }
}
