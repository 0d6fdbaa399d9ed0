//! Request bodies: a bound on how long a client may pause while sending one.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};

/// The error a [`TimeoutBody`] yields when the client pauses too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body read timed out")
    }
}

impl std::error::Error for BodyTimeout {}

/// A body that fails with [`BodyTimeout`] when no frame arrives within `gap` of the previous
/// one (or of the first poll): a slow-body client cannot hold a request open for ever.
#[derive(Debug)]
pub struct TimeoutBody<B> {
    inner: B,
    gap: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> TimeoutBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, gap: Duration) -> TimeoutBody<B> {
        TimeoutBody { inner, gap, sleep: None }
    }
}

impl<B> Body for TimeoutBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.sleep = None;
                Poll::Ready(r.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let gap = this.gap;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `e` (or one of its sources) is a [`BodyTimeout`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyTimeout>() {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_pause_longer_than_the_gap_fails_and_a_steady_body_passes() {
        // Three frames 50 ms apart, then a pause of 2 s: the 300 ms gap allows the first and
        // fails on the second.
        let stream = futures_util::stream::unfold(0u32, |i| async move {
            let pause = if i < 3 { Duration::from_millis(50) } else { Duration::from_secs(2) };
            tokio::time::sleep(pause).await;
            Some((Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(b"x"))), i + 1))
        });
        let body = http_body_util::StreamBody::new(Box::pin(stream));
        let started = std::time::Instant::now();
        let mut body = std::pin::pin!(TimeoutBody::new(body, Duration::from_millis(300)));
        let mut got = 0;
        let err = loop {
            match body.frame().await {
                Some(Ok(_)) => got += 1,
                Some(Err(e)) => break e,
                None => panic!("body ended without the timeout"),
            }
        };
        assert_eq!(got, 3);
        assert!(is_body_timeout(&*err));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
