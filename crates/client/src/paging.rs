//! Listings as streams: one page at a time, following `next_cursor`.

use crate::Error;
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::VecDeque;
use std::future::Future;

/// The items of a listing, one page fetched at a time as the stream is
/// polled; an error ends the stream after it is yielded.
///
/// ```no_run
/// use futures_util::TryStreamExt;
/// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
/// let mut records = app.records(Default::default());
/// while let Some(r) = records.try_next().await? {
///     println!("{} = {}", r.key, r.value);
/// }
/// # Ok(()) }
/// ```
pub type Pager<T> = BoxStream<'static, Result<T, Error>>;

/// Where a pager is.
struct State<F, T> {
    fetch: F,
    buffer: VecDeque<T>,
    /// `None` before the first page.
    cursor: Option<String>,
    started: bool,
    done: bool,
}

/// A pager over `fetch(cursor) -> (items, next_cursor)`, starting with `None`.
pub(crate) fn pager<T, F, Fut>(fetch: F) -> Pager<T>
where
    T: Send + 'static,
    F: FnMut(Option<String>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), Error>> + Send + 'static,
{
    let state = State {
        fetch,
        buffer: VecDeque::new(),
        cursor: None,
        started: false,
        done: false,
    };
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(item) = s.buffer.pop_front() {
                return Some((Ok(item), s));
            }
            if s.done || (s.started && s.cursor.is_none()) {
                return None;
            }
            s.started = true;
            match (s.fetch)(s.cursor.take()).await {
                Ok((items, next)) => {
                    s.buffer.extend(items);
                    s.cursor = next;
                }
                Err(e) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
            }
        }
    })
    .boxed()
}
