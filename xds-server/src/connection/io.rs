//! The socket of one connection as hyper sees it: the bytes read while checking the handshake
//! come first, reads are made [`READ_AHEAD`] at a time, and once [`Cut`], every read and write
//! fails, so that hyper ends the connection's streams and closes it itself (its tasks end
//! normally rather than aborted).
//!
//! Not here: deciding when to cut (the connection task, and streams of a stalled client).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Makes a connection's socket fail. Cloned into every request of the connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cut(Arc<CutState>);

#[derive(Debug, Default)]
struct CutState {
    cut: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Cut {
    /// Every later read and write of the connection fails; a pending one is woken.
    pub(crate) fn cut(&self) {
        self.0.cut.store(true, Ordering::Release);
        let waker = self
            .0
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether [`Cut::cut`] was called.
    pub(crate) fn is_cut(&self) -> bool {
        self.0.cut.load(Ordering::Acquire)
    }
}

/// How much a connection reads from its socket at once, when HTTP/2 asks for less.
///
/// h2 reads into the space left in its frame buffer, at most a frame (16 KiB) at a time: one
/// system call per frame, and one TCP window update back to the client for each. Envoy's
/// state-of-the-world acknowledgement of endpoints lists every cluster (150 KB at 10,000
/// clusters), so a fleet's acknowledgements of one change are 150 MB read in 16 KiB steps.
/// Reading ahead costs one copy of the bytes, and memory only while the client is sending
/// more than h2 asks for at once: it starts when a read fills h2's buffer, and the buffer is
/// freed once the socket has nothing more ([`Io`]), so an idle connection holds none and a
/// small request is read as before (BENCHMARKS.md, issue 13).
pub(crate) const READ_AHEAD: usize = 64 << 10;

/// A connection's socket with what was read ahead of it and its [`Cut`].
pub(crate) struct Io<T> {
    /// Bytes read from the socket that hyper has not taken yet: the handshake's, then a
    /// [`READ_AHEAD`] read's. Without an allocation once the socket is drained.
    ahead: BytesMut,
    /// The last read filled what hyper asked for: the client is sending more than that, and
    /// reads go through `ahead` until the socket has nothing more. Otherwise (a client's
    /// occasional small request) reads go straight into hyper's buffer, allocating nothing.
    inflow: bool,
    inner: T,
    cut: Cut,
}

impl<T> Io<T> {
    /// `inner`, whose first bytes `prefix` were already read from it.
    pub(crate) fn new(prefix: Vec<u8>, inner: T, cut: Cut) -> Io<T> {
        Io {
            ahead: BytesMut::from(&prefix[..]),
            inflow: false,
            inner,
            cut,
        }
    }

    /// Bytes read ahead and not yet taken, with the allocation that holds them.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (self.ahead.len(), self.ahead.capacity())
    }

    /// `Some(error)` once cut. Otherwise registers the task, so that a cut wakes it if the
    /// operation it is about to try stays pending.
    fn check(&self, cx: &Context<'_>) -> Option<std::io::Error> {
        let state = &self.cut.0;
        let mut waker = state.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if state.cut.load(Ordering::Acquire) {
            return Some(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "connection closed by the server",
            ));
        }
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        None
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        let this = &mut *self;
        if this.ahead.is_empty() {
            if !this.inflow || buf.remaining() >= READ_AHEAD {
                // Straight into hyper's buffer; one that comes back full starts an inflow.
                let asked = buf.remaining();
                let read = Pin::new(&mut this.inner).poll_read(cx, buf);
                this.inflow =
                    matches!(read, Poll::Ready(Ok(()))) && asked > 0 && buf.remaining() == 0;
                return read;
            }
            this.ahead.reserve(READ_AHEAD);
            let read = std::pin::pin!(this.inner.read_buf(&mut this.ahead));
            match read.poll(cx) {
                // The end of the stream: nothing put in `buf` says so.
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // Nothing more for now: the inflow is over, and no buffer is held while waiting.
                Poll::Pending => {
                    this.ahead = BytesMut::new();
                    this.inflow = false;
                    return Poll::Pending;
                }
            }
        }
        let n = this.ahead.len().min(buf.remaining());
        buf.put_slice(&this.ahead[..n]);
        this.ahead.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Io<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A small request is read straight into the caller's buffer. Once a read fills it (the
    /// client sends more than is asked for), the bytes come from reads of READ_AHEAD, in
    /// order, until the socket has nothing more; no buffer is held while waiting.
    #[tokio::test]
    async fn an_inflow_is_read_ahead_and_no_buffer_is_held_idle() {
        let (a, mut b) = tokio::io::duplex(4 * READ_AHEAD);
        let mut io = Io::new(b"PRI".to_vec(), a, Cut::default());
        let mut frame = vec![0u8; 16 << 10];
        b.write_all(&[7; 100]).await.expect("write");
        let n = io.read(&mut frame).await.expect("read");
        assert_eq!(&frame[..n], b"PRI", "the handshake's bytes first");
        let n = io.read(&mut frame).await.expect("read");
        assert_eq!((n, io.held()), (100, (0, 0)), "small: read as asked");
        let sent: Vec<u8> = (0..3 * READ_AHEAD / 2).map(|i| (i % 251) as u8).collect();
        b.write_all(&sent).await.expect("write");
        let mut got = Vec::new();
        let n = io.read(&mut frame).await.expect("read");
        got.extend_from_slice(&frame[..n]);
        assert_eq!((n, io.held()), (frame.len(), (0, 0)), "filled as asked");
        let n = io.read(&mut frame).await.expect("read");
        got.extend_from_slice(&frame[..n]);
        assert_eq!(n, frame.len());
        assert_eq!(io.held().0, READ_AHEAD - n, "then one read of READ_AHEAD");
        while got.len() < sent.len() {
            let n = io.read(&mut frame).await.expect("read");
            got.extend_from_slice(&frame[..n]);
        }
        assert_eq!(got, sent);
        // Drained: the next read waits, holding no buffer, and the inflow is over.
        let waiting = tokio::time::timeout(Duration::from_millis(20), io.read(&mut frame)).await;
        assert!(waiting.is_err(), "nothing to read");
        assert_eq!(io.held(), (0, 0));
        b.write_all(&[1; 10]).await.expect("write");
        assert_eq!(io.read(&mut frame).await.expect("read"), 10);
        assert_eq!(io.held(), (0, 0));
        // The end is still the end, in an inflow too.
        b.write_all(&sent).await.expect("write");
        drop(b);
        let mut total = 0;
        loop {
            let n = io.read(&mut frame).await.expect("read");
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, sent.len());
        assert_eq!(
            io.read(&mut frame[..1]).await.expect("read"),
            0,
            "the end again"
        );
    }

    #[tokio::test]
    async fn the_prefix_is_read_first_and_a_cut_fails_a_pending_read() {
        let (a, mut b) = tokio::io::duplex(64);
        let cut = Cut::default();
        let mut io = Io::new(b"PRI".to_vec(), a, cut.clone());
        b.write_all(b" rest").await.expect("write");
        let mut got = [0u8; 8];
        io.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"PRI rest");
        let pending = tokio::spawn(async move {
            let mut one = [0u8; 1];
            io.read(&mut one).await
        });
        tokio::task::yield_now().await;
        cut.cut();
        let result = pending.await.expect("task");
        assert_eq!(
            result.map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::ConnectionAborted)
        );
    }
}
