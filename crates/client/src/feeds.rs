//! Feeds (SPEC §8).

use crate::http::{seg, Req};
use crate::paging::{pager, Pager};
use crate::{Error, Ns};
use lockstep_api::feeds::{
    AppendBody, Entries, EntriesQuery, Entry, EntryAppended, EntryDeleted, Feed, FeedConfigured,
    FeedImported, FeedSummary, Feeds, FeedsQuery, ImportQuery, MarkedRead, ReadBody,
};
use lockstep_api::{FeedConfig, Page};
use reqwest::Method;
use serde_json::Value;

impl Ns {
    fn feed_path(&self, feed: &str, rest: &str) -> String {
        if rest.is_empty() {
            self.at(&format!("feeds/{}", seg(feed)))
        } else {
            self.at(&format!("feeds/{}/{rest}", seg(feed)))
        }
    }

    /// Appends an entry; a second append of its id changes nothing
    /// (`created: false`).
    ///
    /// ```no_run
    /// use lockstep_client::api::feeds::AppendBody;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let body = AppendBody { id: "photo-1".into(), data: serde_json::json!({"url": "u"}), at: None };
    /// let e = app.append("photos", &body).await?;
    /// # Ok(()) }
    /// ```
    pub async fn append(&self, feed: &str, body: &AppendBody) -> Result<EntryAppended, Error> {
        let req = Req::write(Method::POST, self.feed_path(feed, "entries")).json(body)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// A feed's visible entries (newest first unless `order: asc`).
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let entries: Vec<_> = app.entries("photos", Default::default()).try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn entries(&self, feed: &str, q: EntriesQuery) -> Pager<Entry> {
        let (ns, path) = (self.clone(), self.feed_path(feed, "entries"));
        pager(move |cursor| {
            let (ns, path, mut q) = (ns.clone(), path.clone(), q.clone());
            async move {
                q.cursor = cursor.or(q.cursor);
                let req = Req::get(path).query(&q)?;
                let p: Page<Entries> = ns.t().send(&req).await?.body;
                Ok((p.items.entries, p.next_cursor))
            }
        })
    }

    /// One page of entries, with the feed's unread count.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let page = app.entries_page("photos", &Default::default()).await?;
    /// println!("{} unread", page.items.unread_count);
    /// # Ok(()) }
    /// ```
    pub async fn entries_page(&self, feed: &str, q: &EntriesQuery) -> Result<Page<Entries>, Error> {
        let req = Req::get(self.feed_path(feed, "entries")).query(q)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// A feed's configuration in force and its counts.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// println!("{} entries", app.feed("photos").await?.entries);
    /// # Ok(()) }
    /// ```
    pub async fn feed(&self, feed: &str) -> Result<Feed, Error> {
        Ok(self.t().send(&Req::get(self.feed_path(feed, ""))).await?.body)
    }

    /// Sets a feed's cap, maximum age and scrubbed fields.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let c = app.configure_feed("photos", &Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn configure_feed(&self, feed: &str, config: &FeedConfig) -> Result<FeedConfigured, Error> {
        let req = Req::write(Method::PUT, self.feed_path(feed, "")).json(config)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// Sets the configuration of every feed of the namespace without its own.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let c = app.configure_feed_defaults(&Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn configure_feed_defaults(&self, config: &FeedConfig) -> Result<FeedConfigured, Error> {
        let req = Req::write(Method::PUT, self.at("feed-defaults")).json(config)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// Marks entries read: by ids, up to a cursor, or all.
    ///
    /// ```no_run
    /// use lockstep_client::api::feeds::ReadBody;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// app.mark_read("photos", &ReadBody { all: Some(true), ..Default::default() }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn mark_read(&self, feed: &str, body: &ReadBody) -> Result<MarkedRead, Error> {
        let req = Req::write(Method::POST, self.feed_path(feed, "read")).json(body)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// Deletes one entry.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// app.delete_entry("photos", "photo-1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_entry(&self, feed: &str, id: &str) -> Result<EntryDeleted, Error> {
        let path = self.feed_path(feed, &format!("entries/{}", seg(id)));
        Ok(self.t().send(&Req::write(Method::DELETE, path)).await?.body)
    }

    /// Imports a legacy JSON array of entries, each id once.
    ///
    /// ```no_run
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let items = [serde_json::json!({"id": "a", "at": "2026-01-01T00:00:00Z", "data": {}})];
    /// let r = app.import("photos", &Default::default(), &items).await?;
    /// # Ok(()) }
    /// ```
    pub async fn import(&self, feed: &str, q: &ImportQuery, items: &[Value]) -> Result<FeedImported, Error> {
        let req = Req::write(Method::POST, self.feed_path(feed, "import"))
            .json(items)?
            .query(q)?;
        Ok(self.t().send(&req).await?.body)
    }

    /// The namespace's feeds by name, with their counts.
    ///
    /// ```no_run
    /// use futures_util::TryStreamExt;
    /// # async fn f(app: lockstep_client::Ns) -> Result<(), lockstep_client::Error> {
    /// let feeds: Vec<_> = app.feeds(Default::default()).try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn feeds(&self, q: FeedsQuery) -> Pager<FeedSummary> {
        let ns = self.clone();
        pager(move |cursor| {
            let (ns, mut q) = (ns.clone(), q.clone());
            async move {
                q.cursor = cursor.or(q.cursor);
                let req = Req::get(ns.at("feeds")).query(&q)?;
                let p: Page<Feeds> = ns.t().send(&req).await?.body;
                Ok((p.items.feeds, p.next_cursor))
            }
        })
    }
}
