//! The socket of one connection as hyper sees it: the bytes read while checking the handshake
//! come first, and once [`Cut`], every read and write fails, so that hyper ends the
//! connection's streams and closes it itself (its tasks end normally rather than aborted).
//!
//! Not here: deciding when to cut (the connection task, and streams of a stalled client).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// A connection's socket with what was read ahead of it and its [`Cut`].
pub(crate) struct Io<T> {
    prefix: Vec<u8>,
    inner: T,
    cut: Cut,
}

impl<T> Io<T> {
    /// `inner`, whose first bytes `prefix` were already read from it.
    pub(crate) fn new(prefix: Vec<u8>, inner: T, cut: Cut) -> Io<T> {
        Io { prefix, inner, cut }
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
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

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
