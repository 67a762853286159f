//! What keeps one client from flooding the server: idle connections are closed, each client
//! address holds a bounded number of connections, each access key a bounded number of blocking
//! jobs at once, and refusals are logged at a bounded rate.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits for one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// A connection that moves no byte either way for this long is closed.
    pub idle: Duration,
    /// Open connections one client address may hold; more are closed as soon as accepted.
    pub per_address: usize,
}

/// A TCP listener whose connections close when idle, with at most
/// [`ConnLimits::per_address`] open per client address.
pub struct LimitedListener {
    inner: TcpListener,
    limits: ConnLimits,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    refusals: Arc<LogLimiter>,
}

impl LimitedListener {
    /// Wraps `inner`.
    pub fn new(inner: TcpListener, limits: ConnLimits) -> LimitedListener {
        LimitedListener {
            inner,
            limits,
            open: Arc::new(Mutex::new(HashMap::new())),
            refusals: Arc::new(LogLimiter::new(10, Duration::from_secs(10))),
        }
    }
}

/// The client address of a connection, for handlers (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, LimitedListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, LimitedListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Limited;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Limited, SocketAddr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    if let Some(suppressed) = self.refusals.allow() {
                        tracing::warn!(error = %e, suppressed, "accepting a connection failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let ip = addr.ip();
            {
                let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
                let count = open.entry(ip).or_insert(0);
                if *count >= self.limits.per_address {
                    drop(open);
                    if let Some(suppressed) = self.refusals.allow() {
                        tracing::info!(client = %ip, limit = self.limits.per_address, suppressed,
                            "connection refused: the client holds too many");
                    }
                    continue;
                }
                *count += 1;
            }
            let io = Limited {
                inner: stream,
                idle: self.limits.idle,
                deadline: Box::pin(tokio::time::sleep(self.limits.idle)),
                reading_since: None,
                slot: Slot { ip, open: Arc::clone(&self.open) },
            };
            return (io, addr);
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Gives the connection's place back when it closes.
struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A connection that fails with `TimedOut` once no byte has moved for its idle time, or when
/// the bytes of one request (everything read between two responses) keep trickling in for
/// longer than that: a client sending a byte now and then cannot hold it open for ever.
pub struct Limited {
    inner: TcpStream,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// When the first byte read since the last write arrived.
    reading_since: Option<Instant>,
    #[allow(dead_code)] // held for its Drop
    slot: Slot,
}

impl Limited {
    fn touch(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Notes `n` bytes read; false when the request they belong to has taken too long.
    fn read_in_time(&mut self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        self.touch();
        let since = *self.reading_since.get_or_insert_with(Instant::now);
        since.elapsed() <= self.idle
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle")
}

impl AsyncRead for Limited {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if !this.read_in_time(buf.filled().len() - before) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request arriving too slowly")))
            }
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Limited {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.touch();
                    this.reading_since = None;
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// At most `burst` log lines per `window`; the next line allowed says how many were left out.
pub struct LogLimiter {
    burst: u32,
    window: Duration,
    state: Mutex<(Instant, u32, u64)>,
}

impl LogLimiter {
    /// A limiter allowing `burst` lines per `window`.
    pub fn new(burst: u32, window: Duration) -> LogLimiter {
        LogLimiter { burst, window, state: Mutex::new((Instant::now(), 0, 0)) }
    }

    /// `Some(lines suppressed since the last allowed one)` when a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (start, used, suppressed) = &mut *state;
        if now.duration_since(*start) >= self.window {
            *start = now;
            *used = 0;
        }
        if *used < self.burst {
            *used += 1;
            Some(std::mem::take(suppressed))
        } else {
            *suppressed += 1;
            None
        }
    }
}

/// Blocking jobs each client (access key) may run at once; the rest of its requests wait
/// their turn without holding a thread, so one account cannot take every blocking thread.
pub struct JobSlots {
    per_client: usize,
    clients: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl JobSlots {
    /// `per_client` jobs at once per client.
    pub fn new(per_client: usize) -> JobSlots {
        JobSlots { per_client: per_client.max(1), clients: Mutex::new(HashMap::new()) }
    }

    /// Waits for one of `client`'s slots.
    pub async fn acquire(&self, client: &str) -> OwnedSemaphorePermit {
        let semaphore = {
            let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            // Forget clients with nothing running, so made-up keys cannot grow the map.
            if clients.len() > 4096 {
                let per_client = self.per_client;
                clients.retain(|_, s| s.available_permits() < per_client);
            }
            Arc::clone(clients.entry(client.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_client))))
        };
        semaphore.acquire_owned().await.expect("job semaphores are never closed")
    }
}

/// The access key a request claims (SigV4 header or presigned query), before verification:
/// enough to queue it with its client's other requests.
pub fn claimed_key<'a>(headers: &'a [(String, String)], query: &'a str) -> &'a str {
    let from_header = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next());
    let from_query =
        || query.split('&').find_map(|p| p.strip_prefix("X-Amz-Credential=")).and_then(|c| c.split(['/', '%']).next());
    from_header.or_else(from_query).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn log_lines_are_bounded_per_window_and_count_what_was_left_out() {
        let limiter = LogLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limiter.allow_at(t0), Some(0));
        assert_eq!(limiter.allow_at(t0), Some(0));
        for _ in 0..5 {
            assert_eq!(limiter.allow_at(t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(limiter.allow_at(t0 + Duration::from_secs(11)), Some(5));
    }

    #[test]
    fn the_claimed_key_comes_from_the_header_or_the_query() {
        let headers = vec![(
            "Authorization".to_string(),
            "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261203/us-east-1/ec2/aws4_request, SignedHeaders=host".into(),
        )];
        assert_eq!(claimed_key(&headers, ""), "AKIAEXAMPLE");
        assert_eq!(claimed_key(&[], "Action=X&X-Amz-Credential=test%2F20261203%2Fus-east-1"), "test");
        assert_eq!(claimed_key(&[], "Action=X"), "");
    }

    #[tokio::test]
    async fn a_client_runs_its_jobs_a_few_at_a_time_and_others_are_not_held_up() {
        let slots = JobSlots::new(2);
        let a1 = slots.acquire("a").await;
        let _a2 = slots.acquire("a").await;
        let third = tokio::time::timeout(Duration::from_millis(50), slots.acquire("a")).await;
        assert!(third.is_err(), "a third job of one client waits");
        let _b = tokio::time::timeout(Duration::from_millis(50), slots.acquire("b")).await.expect("b is not held up");
        drop(a1);
        let _again =
            tokio::time::timeout(Duration::from_millis(50), slots.acquire("a")).await.expect("a's slot came back");
    }

    #[tokio::test]
    async fn idle_connections_close_and_each_address_holds_a_bounded_number() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut listener = LimitedListener::new(inner, ConnLimits { idle: Duration::from_millis(300), per_address: 2 });
        let server = tokio::spawn(async move {
            loop {
                let (mut io, _) = axum::serve::Listener::accept(&mut listener).await;
                tokio::spawn(async move {
                    let mut buf = [0u8; 16];
                    // Echo until the client or the idle timer ends it.
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let mut first = TcpStream::connect(addr).await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        // A third from the same address is closed at once.
        let mut third = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 4];
        let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf)).await.unwrap().unwrap_or(0);
        assert_eq!(n, 0, "over the limit: closed");
        // A live connection works; once idle it is closed.
        first.write_all(b"ping").await.unwrap();
        first.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        let n = tokio::time::timeout(Duration::from_secs(3), first.read(&mut buf)).await.unwrap().unwrap_or(0);
        assert_eq!(n, 0, "closed after its idle time");
        server.abort();
    }

    #[tokio::test]
    async fn a_request_trickling_in_is_cut_off() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut listener = LimitedListener::new(inner, ConnLimits { idle: Duration::from_millis(400), per_address: 2 });
        let server = tokio::spawn(async move {
            let (mut io, _) = axum::serve::Listener::accept(&mut listener).await;
            // Reads a "request" up to a newline, never answering: what a slow sender meets.
            let mut buf = [0u8; 1];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.kind()),
                }
            }
        });
        // One byte every 100 ms for 5 s never trips the idle timer, but the request as a whole
        // does, long before the sender stops.
        let trickle = tokio::spawn(async move {
            let mut client = TcpStream::connect(addr).await.unwrap();
            for _ in 0..50 {
                if client.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let outcome = tokio::time::timeout(Duration::from_secs(2), server).await.expect("cut off in time").unwrap();
        assert_eq!(outcome, Err(io::ErrorKind::TimedOut));
        trickle.abort();
    }
}
