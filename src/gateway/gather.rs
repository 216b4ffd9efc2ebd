//! The answer's chunks on their way to the CLI, written at most once per [`WRITE_INTERVAL`].
//!
//! A chunk that comes when the last write is older than the interval goes on at once, as it
//! came: the first byte of every answer, and every event of an answer streamed at a model's
//! pace (milliseconds apart), pay nothing. Chunks that come faster than that are gathered and
//! written together when the interval since the last write is up, so no chunk waits longer
//! than the interval (and the timer's tick, a millisecond). Without it, every event of a fast
//! stream costs the gateway, the kernel and the CLI a read, a write and a wake-up each, on the
//! same cores as the CLI and its tools (BENCHMARKS.md, "Issue 24"); nginx in the same place
//! gathers what has come too.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

/// The least time between two writes of a fast answer, and so the most a chunk is held.
/// tokio's timers tick in milliseconds, so less would be rounded up to it.
pub const WRITE_INTERVAL: Duration = Duration::from_millis(1);

/// Gathered chunks are written at once when they come to this much (the chunk that crosses
/// it included), whatever the interval.
const MOST_GATHERED: usize = 64 * 1024;

/// `chunks`, gathered: see the module's comment.
pub struct Gathered<S, E> {
    chunks: S,
    interval: Duration,
    gathered: BytesMut,
    /// An error that came after chunks still gathered: it goes on after them.
    error: Option<E>,
    ended: bool,
    last_write: Option<Instant>,
    /// Armed while chunks are held, for when the interval is up.
    due: Pin<Box<Sleep>>,
}

impl<S, E> Gathered<S, E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    pub fn new(chunks: S, interval: Duration) -> Self {
        Self {
            chunks,
            interval,
            gathered: BytesMut::new(),
            error: None,
            ended: false,
            last_write: None,
            due: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// When the next write may be, if not now.
    fn not_before(&self, now: Instant) -> Option<Instant> {
        let due = self.last_write? + self.interval;
        (due > now).then_some(due)
    }

    fn write(&mut self, now: Instant, chunk: Bytes) -> Poll<Option<Result<Bytes, E>>> {
        self.last_write = Some(now);
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl<S, E> Stream for Gathered<S, E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while !this.ended && this.error.is_none() && this.gathered.len() < MOST_GATHERED {
            match this.chunks.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let now = Instant::now();
                    if this.gathered.is_empty() && this.not_before(now).is_none() {
                        // Nothing held, and the last write long enough ago: as it came.
                        return this.write(now, chunk);
                    }
                    this.gathered.extend_from_slice(&chunk);
                }
                Poll::Ready(Some(Err(err))) => this.error = Some(err),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => break,
            }
        }
        if !this.gathered.is_empty() {
            let now = Instant::now();
            let full = this.ended || this.error.is_some() || this.gathered.len() >= MOST_GATHERED;
            match this.not_before(now) {
                Some(due) if !full => {
                    this.due.as_mut().reset(due);
                    if this.due.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                _ => {}
            }
            let chunk = this.gathered.split().freeze();
            return this.write(Instant::now(), chunk);
        }
        if let Some(err) = this.error.take() {
            this.ended = true;
            return Poll::Ready(Some(Err(err)));
        }
        if this.ended {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream::BoxStream;
    use tokio::sync::mpsc;

    type Chunks = Gathered<BoxStream<'static, Result<Bytes, &'static str>>, &'static str>;

    fn gathered() -> (mpsc::Sender<Result<Bytes, &'static str>>, Chunks) {
        let (tx, mut rx) = mpsc::channel(64);
        let received = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
        (tx, Gathered::new(received, Duration::from_millis(1)))
    }

    async fn send(tx: &mpsc::Sender<Result<Bytes, &'static str>>, text: &'static str) {
        tx.send(Ok(Bytes::from_static(text.as_bytes())))
            .await
            .unwrap();
    }

    /// The next write, and how long after `since` it came.
    async fn next_write(chunks: &mut Chunks, since: Instant) -> (String, Duration) {
        let chunk = chunks.next().await.unwrap().unwrap();
        (String::from_utf8(chunk.to_vec()).unwrap(), since.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_chunk_goes_on_at_once() {
        let (tx, mut chunks) = gathered();
        let start = Instant::now();
        send(&tx, "event: message_start\n\n").await;
        assert_eq!(
            next_write(&mut chunks, start).await,
            ("event: message_start\n\n".to_owned(), Duration::ZERO)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_a_model_spaces_out_go_on_one_by_one_and_at_once() {
        let (tx, mut chunks) = gathered();
        for text in ["a", "b", "c"] {
            let start = Instant::now();
            send(&tx, text).await;
            assert_eq!(
                next_write(&mut chunks, start).await,
                (text.to_owned(), Duration::ZERO)
            );
            tokio::time::advance(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_faster_than_the_interval_are_written_together_when_it_is_up() {
        let (tx, mut chunks) = gathered();
        let start = Instant::now();
        send(&tx, "a").await;
        assert_eq!(next_write(&mut chunks, start).await.0, "a");
        for text in ["b", "c", "d"] {
            send(&tx, text).await;
        }
        assert_eq!(
            next_write(&mut chunks, start).await,
            ("bcd".to_owned(), Duration::from_millis(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_held_goes_on_before_the_end_and_before_an_error() {
        let (tx, mut chunks) = gathered();
        let start = Instant::now();
        send(&tx, "a").await;
        assert_eq!(next_write(&mut chunks, start).await.0, "a");
        send(&tx, "b").await;
        tx.send(Err("reset")).await.unwrap();
        // Not held for the interval: nothing more can come.
        assert_eq!(
            next_write(&mut chunks, start).await,
            ("b".to_owned(), Duration::ZERO)
        );
        assert_eq!(chunks.next().await, Some(Err("reset")));

        let (tx, mut chunks) = gathered();
        send(&tx, "a").await;
        assert_eq!(next_write(&mut chunks, start).await.0, "a");
        send(&tx, "b").await;
        drop(tx);
        assert_eq!(next_write(&mut chunks, start).await.0, "b");
        assert_eq!(chunks.next().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gathered_write_is_at_most_its_bound() {
        let (tx, mut chunks) = gathered();
        let start = Instant::now();
        send(&tx, "a").await;
        next_write(&mut chunks, start).await;
        let big: &'static str = Box::leak("x".repeat(MOST_GATHERED / 2).into_boxed_str());
        for _ in 0..3 {
            send(&tx, big).await;
        }
        // Two halves make a whole write, at once: a full one is not held.
        let (first, after) = next_write(&mut chunks, start).await;
        assert_eq!((first.len(), after), (MOST_GATHERED, Duration::ZERO));
        assert_eq!(
            next_write(&mut chunks, start).await.0.len(),
            MOST_GATHERED / 2
        );
    }
}
